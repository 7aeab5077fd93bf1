// Timeline playback in Chromium (issue 19): sign in, open a prepared project, press Space, and
// record what the media clock did against wall time, whether sound was decoded, five frames as
// shown (with their media times) for the pytest side to compare with RenderFrame, and — after an
// edit — which segments the service rendered again.
//   node e2e/playback.mjs --base URL --artifacts DIR --email E --password P --project ID
import { cliArgs, finish, login, openPage, recordFailure } from "./browser.mjs";
import { join } from "node:path";

const args = cliArgs({ email: { type: "string" }, password: { type: "string" }, project: { type: "string" } });
const result = { consoleErrors: [], error: null };
const { browser, page } = await openPage(args, result, { timeout: 60_000, extraArgs: ["--autoplay-policy=no-user-gesture-required"] });

// Presses Space and measures from the moment the media clock runs: 3 s of wall time against the
// playhead the page shows, five frames captured as presented (requestVideoFrameCallback).
async function playThreeSeconds() {
  await page.keyboard.press("Space");
  return page.evaluate(async () => {
    const video = document.querySelector("[data-testid=player]");
    const playhead = () => Number(document.querySelector("[data-testid=playhead-time]").getAttribute("data-seconds"));
    while (video.paused || video.currentTime === 0 || video.readyState < 3) await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    const p0 = playhead();
    const frames = [];
    const marks = [0.4, 0.9, 1.4, 1.9, 2.4].map((d) => d + video.currentTime);
    const canvas = document.createElement("canvas");
    const capture = (_now, meta) => {
      if (frames.length < marks.length && meta.mediaTime >= marks[frames.length]) {
        canvas.width = video.videoWidth;
        canvas.height = video.videoHeight;
        canvas.getContext("2d").drawImage(video, 0, 0);
        frames.push({ mediaTime: meta.mediaTime, png: canvas.toDataURL("image/png") });
      }
      if (frames.length < marks.length) video.requestVideoFrameCallback(capture);
    };
    video.requestVideoFrameCallback(capture);
    await new Promise((r) => setTimeout(r, 3000));
    const wall = (performance.now() - t0) / 1000;
    const advanced = playhead() - p0;
    return {
      wall, advanced, frames, audioBytes: video.webkitAudioDecodedByteCount, videoWidth: video.videoWidth,
      stalls: video.webkitDroppedFrameCount ?? null, log: window.__playback?.log ?? null,
    };
  });
}

try {
  await login(page, args.base, args.email, args.password);
  await page.goto(`${args.base}/projects/${args.project}`);
  await page.getByTestId("frame-preview").waitFor();
  // The editor renders the segments ahead of the playhead while the user edits.
  await page.waitForSelector("[data-testid=player][data-warm=ready]", { state: "attached", timeout: 180_000 });
  result.warmOpen = await page.evaluate(() => window.__warmLog);
  await page.screenshot({ path: join(args.artifacts, "01-editor.png") });

  result.play = await playThreeSeconds();
  await page.screenshot({ path: join(args.artifacts, "02-playing.png") });
  await page.keyboard.press("k");
  await page.waitForSelector("[data-testid=play][data-playing=false]");
  result.pausedAt = Number(await page.getByTestId("playhead-time").getAttribute("data-seconds"));

  // An edit (a text over 0..3 s), then play from the start again: the player's log says which
  // segments came from the service's cache.
  await page.keyboard.press("Home");
  await page.waitForSelector("[data-testid=playhead-time][data-seconds='0']");
  await page.waitForSelector("[data-testid=player][data-warm=ready]", { state: "attached", timeout: 180_000 });
  await page.getByTestId("add-text").click();
  await page.getByTestId("clip-text").waitFor(); // the edit is committed (and the warm state reset)
  await page.waitForSelector("[data-testid=save-state][data-state=saved]");
  await page.waitForSelector("[data-testid=player][data-warm=ready]", { state: "attached", timeout: 180_000 });
  result.warmAfterEdit = await page.evaluate(() => window.__warmLog);
  await page.locator("body").press("Space");
  await page.waitForFunction(() => (window.__playback?.log?.segments?.length ?? 0) >= 3, null, { timeout: 120_000 });
  result.afterEdit = await page.evaluate(() => window.__playback.log);
  await page.keyboard.press("k");
  await page.screenshot({ path: join(args.artifacts, "03-after-edit.png") });
} catch (err) {
  await recordFailure(page, result, err, args.artifacts);
} finally {
  await finish(browser, result, args.artifacts);
}
process.exit(result.error ? 1 : 0);
