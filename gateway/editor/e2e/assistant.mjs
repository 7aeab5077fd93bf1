// Magic Prompt and the assistant panel in Chromium: the enhanced prompt replaces the idea, and an
// action the assistant proposes changes the timeline only after the user presses Apply.
//   node e2e/assistant.mjs --base URL --artifacts DIR
import { cliArgs, finish, openPage, recordFailure, register } from "./browser.mjs";
import { join } from "node:path";

const args = cliArgs();
const result = { consoleErrors: [], error: null };
const { browser, page } = await openPage(args, result, { timeout: 30_000 });
try {
  await register(page, args.base, {
    displayName: "Assisted", email: `assist-${Date.now().toString(36)}@example.com`, password: "correct horse battery staple 42",
  });

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
  await recordFailure(page, result, err, args.artifacts);
} finally {
  await finish(browser, result, args.artifacts);
}
process.exit(result.error ? 1 : 0);
