// Magic Prompt and the assistant panel in Chromium: the enhanced prompt replaces the idea, and an
// action the assistant proposes changes the timeline only after the user presses Apply.
//   node e2e/assistant.mjs --base URL --artifacts DIR
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    base: { type: "string" },
    artifacts: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
mkdirSync(args.artifacts, { recursive: true });
const result = { consoleErrors: [], error: null };
const browser = await chromium.launch({
  executablePath: args.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await (await browser.newContext({ viewport: { width: 1400, height: 900 } })).newPage();
page.setDefaultTimeout(30_000);
page.on("console", (msg) => msg.type() === "error" && result.consoleErrors.push(msg.text()));
page.on("pageerror", (err) => result.consoleErrors.push(`pageerror: ${err.message}`));
try {
  await page.goto(`${args.base}/register`);
  await page.fill("input[name=displayName]", "Assisted");
  await page.fill("input[name=email]", `assist-${Date.now().toString(36)}@example.com`);
  await page.fill("input[name=password]", "correct horse battery staple 42");
  await page.click("button[type=submit]");
  await page.getByTestId("assets-page").waitFor();

  await page.getByRole("link", { name: "Generate" }).click();
  await page.fill("textarea[name=prompt]", "fox in snow");
  await page.waitForSelector("[data-testid=magic-prompt]:not([disabled])");
  await page.getByTestId("magic-prompt").click();
  await page.waitForFunction(() => document.querySelector("textarea[name=prompt]").value !== "fox in snow");
  result.enhancedPrompt = await page.inputValue("textarea[name=prompt]");
  result.enhancedNegative = await page.inputValue("input[name=negativePrompt]");
  await page.screenshot({ path: join(args.artifacts, "01-magic-prompt.png") });

  await page.getByRole("link", { name: "Projects" }).click();
  await page.fill("input[name=title]", "Assisted cut");
  await page.getByTestId("new-project").click();
  await page.getByTestId("editor-page").waitFor();
  await page.getByTestId("assistant-toggle").click();
  const panel = page.getByTestId("assistant-panel");
  await panel.locator("input").fill("Add a holiday title please");
  await panel.getByRole("button", { name: "Send" }).click();
  await page.getByTestId("proposed-action").waitFor();
  result.answer = await panel.locator(".bubble.bot").last().textContent();
  result.actionSummary = await page.getByTestId("proposed-action").locator("span").textContent();
  result.textClipsBeforeApply = await page.locator("[data-testid=lane-t1] [data-testid=clip]").count();
  await page.screenshot({ path: join(args.artifacts, "02-proposed-action.png") });
  await page.getByTestId("proposed-action").getByRole("button", { name: "Apply" }).click();
  await page.locator("[data-testid=lane-t1] [data-testid=clip]").first().waitFor();
  result.textClipsAfterApply = await page.locator("[data-testid=lane-t1] [data-testid=clip]").count();
  result.appliedText = await page.locator("[data-testid=lane-t1] [data-testid=clip] .clip-name").first().textContent();
  await page.waitForSelector("[data-testid=save-state][data-state=saved]");
  await page.screenshot({ path: join(args.artifacts, "03-applied.png") });
} catch (err) {
  result.error = String(err?.stack ?? err);
  await page.screenshot({ path: join(args.artifacts, "zz-failure.png") }).catch(() => {});
} finally {
  writeFileSync(join(args.artifacts, "result.json"), JSON.stringify(result, null, 2));
  await browser.close();
}
process.exit(result.error ? 1 : 0);
