// Filmstrips and waveforms in Chromium (issue 19): open a prepared project holding a video clip
// and an audio clip, wait until both clips have drawn their overview, and report the colours
// along the filmstrip and the bar heights along the waveform for the pytest side to check.
//   node e2e/strips.mjs --base URL --artifacts DIR --email E --password P --project ID
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
  await page.goto(`${args.base}/login`);
  await page.fill("input[name=email]", args.email);
  await page.fill("input[name=password]", args.password);
  await page.click("button[type=submit]");
  await page.getByTestId("assets-page").waitFor();
  await page.goto(`${args.base}/projects/${args.project}`);
  await page.waitForSelector("[data-testid=filmstrip][data-drawn=true]", { timeout: 180_000 });
  await page.waitForSelector("[data-testid=waveform][data-drawn=true]", { timeout: 180_000 });
  result.pxPerSecond = Number((await page.locator(".ruler-head").textContent()).split(" ")[0]);
  result.filmstrip = await readCanvas("filmstrip");
  result.waveform = await readCanvas("waveform");
  await page.getByTestId("timeline").screenshot({ path: join(args.artifacts, "timeline.png") });
} catch (err) {
  result.error = String(err?.stack ?? err);
  await page.screenshot({ path: join(args.artifacts, "zz-failure.png") }).catch(() => {});
} finally {
  writeFileSync(join(args.artifacts, "result.json"), JSON.stringify(result, null, 2));
  await browser.close();
}
process.exit(result.error ? 1 : 0);
