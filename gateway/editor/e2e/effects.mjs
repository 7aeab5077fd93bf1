// The inspector's effects and the smart edit in Chromium (issue 18): sign in, open a prepared
// project, upload a .cube LUT onto the first video clip, give the music clip the "voice" EQ and
// duck it under the video track, "Snap to beats", then "Auto-edit to music" and Undo. The pytest side checks
// the saved project and renders it.
//   node e2e/effects.mjs --base URL --artifacts DIR --email E --password P --project ID --lut FILE
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    base: { type: "string" },
    artifacts: { type: "string" },
    email: { type: "string" },
    password: { type: "string" },
    project: { type: "string" },
    lut: { type: "string" },
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
page.setDefaultTimeout(60_000);
page.on("console", (msg) => msg.type() === "error" && result.consoleErrors.push(msg.text()));
page.on("pageerror", (err) => result.consoleErrors.push(`pageerror: ${err.message}`));
const saved = () => page.waitForSelector("[data-testid=save-state][data-state=saved]");

try {
  await page.goto(`${args.base}/login`);
  await page.fill("input[name=email]", args.email);
  await page.fill("input[name=password]", args.password);
  await page.click("button[type=submit]");
  await page.getByTestId("assets-page").waitFor();
  await page.goto(`${args.base}/projects/${args.project}`);
  await page.getByTestId("editor-page").waitFor();

  // A LUT onto the first video clip: uploaded through storage (parsed there), then picked.
  await page.locator("[data-testid=lane-v1] [data-testid=clip]").first().click();
  await page.getByTestId("effects-inspector").waitFor();
  await page.getByTestId("lut-upload").setInputFiles(args.lut);
  await page.waitForFunction(() => document.querySelector("[data-testid=clip-lut]")?.value !== "", null, { timeout: 60_000 });
  result.lutAssetId = await page.getByTestId("clip-lut").inputValue();
  await saved();

  // The music: the "voice" EQ and ducked under the video track's sound.
  await page.locator("[data-testid=lane-a1] [data-testid=clip]").first().click();
  await page.getByTestId("clip-eq").selectOption("voice");
  await page.getByTestId("track-ducking").selectOption("v1");
  await saved();
  await page.screenshot({ path: join(args.artifacts, "01-effects.png") });

  // Snap to beats: the user's cut (2.8 s) moves onto the music's nearest beat.
  await page.getByTestId("snap-to-beats").click();
  await page.waitForFunction(() => document.querySelector("[data-testid=notice]")?.textContent?.startsWith("Snap to beats:"), null, { timeout: 300_000 });
  result.snapNotice = await page.getByTestId("notice").textContent();
  await saved();

  // Auto-edit to music: one change, the proposal's tracks replace the timeline's.
  await page.getByTestId("auto-edit").click();
  await page.waitForFunction(() => document.querySelector("[data-testid=notice]")?.textContent?.startsWith("Auto-edit:"), null, { timeout: 300_000 });
  result.autoEditNotice = await page.getByTestId("notice").textContent();
  result.proposedClips = await page.locator("[data-testid=lane-video] [data-testid=clip]").count();
  await saved();
  await page.screenshot({ path: join(args.artifacts, "02-auto-edit.png") });

  // One Undo brings the edited timeline back, effects included.
  await page.getByTestId("undo").click();
  await page.locator("[data-testid=lane-v1] [data-testid=clip]").first().waitFor();
  result.afterUndoProposedClips = await page.locator("[data-testid=lane-video] [data-testid=clip]").count();
  await saved();
} catch (err) {
  result.error = String(err?.stack ?? err);
  await page.screenshot({ path: join(args.artifacts, "zz-failure.png") }).catch(() => {});
} finally {
  writeFileSync(join(args.artifacts, "result.json"), JSON.stringify(result, null, 2));
  await browser.close();
}
process.exit(result.error ? 1 : 0);
