// The inspector's effects and the smart edit in Chromium (issue 18): sign in, open a prepared
// project, upload a .cube LUT onto the first video clip, give the music clip the "voice" EQ and
// duck it under the video track, "Snap to beats", then "Auto-edit to music" and Undo. The pytest side checks
// the saved project and renders it.
//   node e2e/effects.mjs --base URL --artifacts DIR --email E --password P --project ID --lut FILE
import { cliArgs, finish, login, openPage, recordFailure } from "./browser.mjs";
import { join } from "node:path";

const args = cliArgs({ email: { type: "string" }, password: { type: "string" }, project: { type: "string" }, lut: { type: "string" } });
const result = { consoleErrors: [], error: null };
const { browser, page } = await openPage(args, result, { timeout: 60_000 });
const saved = () => page.waitForSelector("[data-testid=save-state][data-state=saved]");

try {
  await login(page, args.base, args.email, args.password);
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
  await recordFailure(page, result, err, args.artifacts);
} finally {
  await finish(browser, result, args.artifacts);
}
process.exit(result.error ? 1 : 0);
