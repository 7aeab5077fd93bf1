// Keyframe lanes and the transition picker in Chromium (issue 19): sign in, open a prepared project
// (a red clip, then a navy clip with a crossfade into it), select the red clip, add an opacity
// keyframe at 0 s and set it to 0, add one at 2 s and set it to 1, drag that point to 1 s, ease
// into it, then change the crossfade to "circleopen" and wait for its preview. The pytest side
// checks the saved project and renders it.
//   node e2e/keyframes.mjs --base URL --artifacts DIR --email E --password P --project ID
import { cliArgs, finish, login, openPage, recordFailure } from "./browser.mjs";
import { join } from "node:path";

const args = cliArgs({ email: { type: "string" }, password: { type: "string" }, project: { type: "string" } });
const result = { consoleErrors: [], error: null };
const { browser, page } = await openPage(args, result, { timeout: 60_000 });
const saved = () => page.waitForSelector("[data-testid=save-state][data-state=saved]");
const kf = (i) => page.getByTestId(`kf-opacity-${i}`);

try {
  await login(page, args.base, args.email, args.password);
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
  await recordFailure(page, result, err, args.artifacts);
} finally {
  await finish(browser, result, args.artifacts);
}
process.exit(result.error ? 1 : 0);
