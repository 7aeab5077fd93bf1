// Keyframe lanes and the transition picker in Chromium (issue 19): sign in, open a prepared project
// (a red clip, then a navy clip with a crossfade into it), select the red clip, add an opacity
// keyframe at 0 s and set it to 0, add one at 2 s and set it to 1, drag that point to 1 s, ease
// into it, then change the crossfade to "circleopen" and wait for its preview. The pytest side
// checks the saved project and renders it.
//   node e2e/keyframes.mjs --base URL --artifacts DIR --email E --password P --project ID
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
const saved = () => page.waitForSelector("[data-testid=save-state][data-state=saved]");
const kf = (i) => page.getByTestId(`kf-opacity-${i}`);

try {
  await page.goto(`${args.base}/login`);
  await page.fill("input[name=email]", args.email);
  await page.fill("input[name=password]", args.password);
  await page.click("button[type=submit]");
  await page.getByTestId("assets-page").waitFor();
  await page.goto(`${args.base}/projects/${args.project}`);
  await page.getByTestId("editor-page").waitFor();
  result.h1 = await page.locator("h1").count();

  // The red clip's opacity: a keyframe at the playhead (0 s), its value set to 0.
  await page.locator("[data-testid=lane-v1] [data-testid=clip]").first().click();
  await page.getByTestId("keyframe-lanes").waitFor();
  await page.getByTestId("add-kf-opacity").click();
  await kf(0).click();
  await page.getByTestId("kf-value").fill("0");
  await page.waitForFunction(() => document.querySelector("[data-testid=kf-opacity-0]")?.dataset.value === "0");

  // A second keyframe at 2 s (the ruler: 80 px per second), set to 1.
  await page.getByTestId("ruler").click({ position: { x: 160, y: 10 } });
  await page.waitForFunction(() => document.querySelector("[data-testid=playhead]")?.dataset.seconds === "2");
  await page.getByTestId("add-kf-opacity").click();
  await kf(1).click();
  await page.getByTestId("kf-value").fill("1");
  await page.waitForFunction(() => document.querySelector("[data-testid=kf-opacity-1]")?.dataset.value === "1");
  await saved();

  // Drag it from 2 s to 1 s along the lane (a touch above its row: the value stays at the top, 1).
  const lane = await page.locator("[data-testid=kf-lane-opacity] .kf-track").boundingBox();
  const point = await kf(1).boundingBox();
  const x = point.x + point.width / 2;
  const y = point.y + point.height / 2;
  const perSecond = lane.width / 3; // the clip lasts 3 s
  await page.mouse.move(x, y);
  await page.mouse.down();
  for (let i = 1; i <= 5; i++) await page.mouse.move(x - (perSecond * i) / 5, y - 2);
  await page.mouse.up();
  await page.waitForFunction(() => document.querySelector("[data-testid=kf-opacity-1]")?.dataset.time === "1");
  result.movedTime = Number(await kf(1).getAttribute("data-time"));
  result.movedValue = Number(await kf(1).getAttribute("data-value"));
  // Ease into it.
  await kf(1).click();
  await page.getByTestId("kf-easing").selectOption({ label: "Ease in" });
  await saved();
  await page.screenshot({ path: join(args.artifacts, "01-keyframes.png") });

  // The navy clip's crossfade becomes "circleopen" (a name ListCapabilities lists), previewed.
  await page.locator("[data-testid=lane-v1] [data-testid=clip]").nth(1).click();
  result.transitionOptions = await page.locator("[data-testid=clip-transition] option").evaluateAll((os) => os.map((o) => o.value));
  await page.getByTestId("clip-transition").selectOption("circleopen");
  await page.waitForFunction(() => {
    const img = document.querySelector("[data-testid=transition-preview]");
    return img && img.complete && img.naturalWidth > 0;
  });
  result.previewTime = Number(await page.getByTestId("transition-preview").getAttribute("data-time"));
  await saved();
  await page.screenshot({ path: join(args.artifacts, "02-transition.png") });
} catch (err) {
  result.error = String(err?.stack ?? err);
  await page.screenshot({ path: join(args.artifacts, "zz-failure.png") }).catch(() => {});
} finally {
  writeFileSync(join(args.artifacts, "result.json"), JSON.stringify(result, null, 2));
  await browser.close();
}
process.exit(result.error ? 1 : 0);
