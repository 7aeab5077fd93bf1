// Filmstrips and waveforms in Chromium (issue 19): open a prepared project holding a video clip
// and an audio clip, wait until both clips have drawn their overview, and report the colours
// along the filmstrip and the bar heights along the waveform for the pytest side to check.
//   node e2e/strips.mjs --base URL --artifacts DIR --email E --password P --project ID
import { cliArgs, finish, login, openPage, recordFailure } from "./browser.mjs";
import { join } from "node:path";

const args = cliArgs({ email: { type: "string" }, password: { type: "string" }, project: { type: "string" } });
const result = { consoleErrors: [], error: null };
const { browser, page } = await openPage(args, result, { timeout: 60_000 });

// Per 10 px column of a canvas: the mean colour of its upper part (the tiles) and the height of
// the drawn waveform (rows whose alpha is set) in its lower part.
function readCanvas(testid) {
  return page.evaluate((id) => {
    const c = document.querySelector(`[data-testid=${id}][data-drawn=true]`);
    const g = c.getContext("2d");
    const { data, width, height } = g.getImageData(0, 0, c.width, c.height);
    const columns = [];
    for (let x = 5; x < width; x += 10) {
      let r = 0, gr = 0, b = 0, n = 0, lit = 0;
      for (let y = 0; y < height; y++) {
        const i = (y * width + x) * 4;
        if (y < height - 14) { r += data[i]; gr += data[i + 1]; b += data[i + 2]; n++; }
        if (data[i + 3] > 0 && data[i + 1] > 150) lit++;
      }
      columns.push({ x, rgb: n ? [r / n, gr / n, b / n] : null, lit });
    }
    return { width, height, cssWidth: c.getBoundingClientRect().width, columns };
  }, testid);
}

try {
  await login(page, args.base, args.email, args.password);
  await page.goto(`${args.base}/projects/${args.project}`);
  await page.waitForSelector("[data-testid=filmstrip][data-drawn=true]", { timeout: 180_000 });
  await page.waitForSelector("[data-testid=waveform][data-drawn=true]", { timeout: 180_000 });
  result.pxPerSecond = Number((await page.locator(".ruler-head").textContent()).split(" ")[0]);
  result.filmstrip = await readCanvas("filmstrip");
  result.waveform = await readCanvas("waveform");
  await page.getByTestId("timeline").screenshot({ path: join(args.artifacts, "timeline.png") });
} catch (err) {
  await recordFailure(page, result, err, args.artifacts);
} finally {
  await finish(browser, result, args.artifacts);
}
process.exit(result.error ? 1 : 0);
