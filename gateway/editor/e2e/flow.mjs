// The whole editor flow in Debian's Chromium, driven by playwright-core (no browser download).
//
//   node e2e/flow.mjs --base http://127.0.0.1:8800 --artifacts DIR --image IMG.png --model tiny-i2v --out OUT.mp4
//
// Register → log in → upload an image → image-to-video generation (progress sampled as it streams)
// → place the result and the image on two tracks → trim → text clip → export → download the MP4.
// Writes DIR/result.json (what was observed; the pytest side asserts on it) and a screenshot per
// page. Exits non-zero on the first failed step, with the error in result.json.
import { cliArgs, finish, openPage, recordFailure } from "./browser.mjs";
import { join } from "node:path";

const args = cliArgs({
  image: { type: "string" },
  model: { type: "string", default: "" },
  prompt: { type: "string", default: "a small red ball rolling across a wooden table" },
  out: { type: "string" },
  until: { type: "string", default: "" },
  "job-timeout": { type: "string", default: "420" },
});
const jobTimeout = Number(args["job-timeout"]) * 1000;

const result = { steps: [], consoleErrors: [], generationProgress: [], renderProgress: [], error: null };
const email = `e2e-${Date.now().toString(36)}@example.com`;
const password = "correct horse battery staple 42";

const { browser, context, page } = await openPage(args, result, {
  context: { acceptDownloads: true, viewport: { width: 1400, height: 900 } }, timeout: 30_000, errors: { location: true },
});

const shot = (name) => page.screenshot({ path: join(args.artifacts, `${name}.png`), fullPage: true });

async function step(name, fn) {
  const started = Date.now();
  await fn();
  result.steps.push({ name, seconds: (Date.now() - started) / 1000 });
  if (args.until === name) throw new Error(`stopped after ${name} (--until)`);
}

// Record every rendered change of a progress bar (MutationObserver in the page, so nothing is
// missed between polls), and poll until `done()` holds.
async function observeProgress(testId) {
  await page.evaluate((id) => {
    window.__samples ??= {};
    const samples = (window.__samples[id] = []);
    const record = () => {
      const bar = document.querySelector(`[data-testid=${id}]`);
      if (!bar) return;
      const sample = { t: Date.now(), percent: Number(bar.getAttribute("data-percent")), label: bar.textContent };
      const last = samples.at(-1);
      if (!last || last.label !== sample.label || last.percent !== sample.percent) samples.push(sample);
    };
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  }, testId);
}

async function waitDone(testId, done, timeout) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await done()) return page.evaluate((id) => window.__samples[id], testId);
    await page.waitForTimeout(100);
  }
  throw new Error(`timed out waiting on ${testId}`);
}

async function dragBy(locator, dx) {
  const box = await locator.boundingBox();
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  await page.mouse.move(x, y);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(x + (dx * i) / 10, y);
  await page.mouse.up();
}

try {
  await step("register", async () => {
    await page.goto(`${args.base}/register`);
    await page.getByTestId("register-form").waitFor();
    await shot("01-register");
    await page.fill("input[name=displayName]", "E2E");
    await page.fill("input[name=email]", email);
    await page.fill("input[name=password]", password);
    await page.click("button[type=submit]");
    await page.getByTestId("assets-page").waitFor();
  });

  await step("login", async () => {
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByTestId("login-form").waitFor();
    await shot("02-login");
    await page.fill("input[name=email]", email);
    await page.fill("input[name=password]", "wrong password 123");
    await page.click("button[type=submit]");
    await page.getByTestId("error-banner").waitFor();
    result.wrongPasswordReason = await page.getByTestId("error-banner").getAttribute("data-reason");
    await page.fill("input[name=password]", password);
    await page.click("button[type=submit]");
    await page.getByTestId("assets-page").waitFor();
    result.user = await page.getByTestId("current-user").textContent();
  });

  await step("upload", async () => {
    await page.getByTestId("upload-input").setInputFiles(args.image);
    const card = page.locator("[data-testid=asset-card][data-kind=image]");
    await card.first().waitFor();
    await page.locator("[data-testid=asset-card][data-kind=image] img").first().waitFor({ timeout: 15_000 }).catch(() => {});
    result.imageAssetId = await card.first().getAttribute("data-asset-id");
    await shot("03-library");
  });

  await step("generate", async () => {
    await page.getByRole("link", { name: "Generate" }).click();
    await page.getByTestId("generate-page").waitFor();
    const select = page.getByTestId("model-select");
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=model-select] option").length > 0);
    if (args.model) await select.selectOption(args.model);
    await page.getByTestId("task-2").check(); // TASK_IMAGE_TO_VIDEO
    await page.getByTestId("image-select").selectOption(result.imageAssetId);
    await page.fill("textarea[name=prompt]", args.prompt);
    await page.fill("input[name=seed]", "7");
    // A width the model refuses: the BadRequest field violation shows next to the Width field.
    const width = await page.inputValue("input[name=width]");
    await page.fill("input[name=width]", String(Number(width) + 1));
    await page.getByTestId("generate-button").click();
    const violation = page.locator("label.field.invalid", { has: page.locator("input[name=width]") }).locator(".violation");
    await violation.waitFor();
    result.widthViolation = await violation.textContent();
    result.widthBannerReason = await page.getByTestId("error-banner").getAttribute("data-reason");
    await shot("04-generate-form");
    await page.fill("input[name=width]", width);
    await observeProgress("gen-progress");
    await page.getByTestId("generate-button").click();
    await page.getByTestId("job-panel").waitFor();
    let midShot = false;
    result.generationProgress = await waitDone(
      "gen-progress",
      async () => {
        const label = (await page.getByTestId("gen-status").textContent()) ?? "";
        if (!midShot && /step|frame/.test(label)) {
          midShot = true;
          await shot("05-generate-progress");
        }
        const state = await page.getByTestId("job-panel").getAttribute("data-state");
        if (state === "failed" || state === "cancelled") throw new Error(`generation ${state}: ${label}`);
        return state === "succeeded";
      },
      jobTimeout,
    );
    result.generationEvents = Number(await page.getByTestId("job-panel").getAttribute("data-events"));
    result.generationPlacement = await page.getByTestId("gen-placement").textContent();
    await page.getByTestId("gen-result").waitFor();
    await shot("06-generate-done");
  });

  // A second, longer generation, cancelled while it denoises.
  await step("cancel", async () => {
    await page.fill("input[name=steps]", "40");
    await page.getByTestId("generate-button").click();
    await page.waitForFunction(() => {
      const panel = document.querySelector("[data-testid=job-panel]");
      const status = document.querySelector("[data-testid=gen-status]")?.textContent ?? "";
      return panel?.getAttribute("data-state") === "running" && /step \d+\/40/.test(status);
    }, null, { timeout: jobTimeout });
    await page.getByTestId("cancel-button").click();
    await page.waitForSelector("[data-testid=job-panel][data-state=cancelled]", { timeout: 60_000 });
    result.cancelledAt = await page.getByTestId("gen-status").textContent();
  });

  await step("edit", async () => {
    await page.getByRole("link", { name: "Projects" }).click();
    await page.getByTestId("projects-page").waitFor();
    await page.fill("input[name=title]", "E2E cut");
    await page.getByTestId("new-project").click();
    await page.getByTestId("editor-page").waitFor();
    const video = page.locator("[data-testid=library-item][data-kind=video]").first();
    const image = page.locator("[data-testid=library-item][data-kind=image]").first();
    await video.waitFor();
    await video.dragTo(page.getByTestId("lane-v1"), { targetPosition: { x: 5, y: 20 } });
    await image.dragTo(page.getByTestId("lane-v2"), { targetPosition: { x: 5, y: 20 } });
    const v1 = page.locator("[data-testid=lane-v1] [data-testid=clip]");
    const v2 = page.locator("[data-testid=lane-v2] [data-testid=clip]");
    await v1.first().waitFor();
    await v2.first().waitFor();
    result.clips = { v1: await v1.count(), v2: await v2.count() };

    // Move the image to the other track by dragging it (pointer events), then undo the move.
    const imageId = await v2.first().getAttribute("data-clip-id");
    const from = await v2.first().boundingBox();
    const lane1 = await page.getByTestId("lane-v1").boundingBox();
    await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) {
      await page.mouse.move(from.x + from.width / 2 + i * 20, from.y + from.height / 2 + ((lane1.y - from.y) * i) / 10);
    }
    await page.mouse.up();
    const movedTo = await page.locator(`[data-clip-id="${imageId}"]`).evaluate((el) => el.closest("[data-track-id]").dataset.trackId);
    await page.getByTestId("undo").click();
    const backTo = await page.locator(`[data-clip-id="${imageId}"]`).evaluate((el) => el.closest("[data-track-id]").dataset.trackId);
    result.move = { movedTo, backTo };

    // Trim both: the end of the video (left edge drag would need a longer source) and the image.
    const before = Number(await v1.first().getAttribute("data-duration"));
    await dragBy(v1.first().getByTestId("trim-end"), -Math.max(8, (await v1.first().boundingBox()).width * 0.25));
    const after = Number(await v1.first().getAttribute("data-duration"));
    const imageBefore = Number(await v2.first().getAttribute("data-duration"));
    await dragBy(v2.first().getByTestId("trim-end"), -60);
    const imageAfter = Number(await v2.first().getAttribute("data-duration"));
    result.trim = { videoBefore: before, videoAfter: after, imageBefore, imageAfter };

    // Undo restores the image's length, redo trims it again.
    await page.getByTestId("undo").click();
    const undone = Number(await v2.first().getAttribute("data-duration"));
    await page.getByTestId("redo").click();
    const redone = Number(await v2.first().getAttribute("data-duration"));
    result.undoRedo = { undone, redone };

    await page.getByTestId("add-text").click();
    await page.getByTestId("clip-text").fill("Hello from Viarte");
    result.textClips = await page.locator("[data-testid=lane-t1] [data-testid=clip][data-type=text]").count();

    // Scrub to 0.5 s and wait for the server-rendered frame.
    const ruler = page.getByTestId("ruler");
    const rbox = await ruler.boundingBox();
    await page.mouse.click(rbox.x + 40, rbox.y + rbox.height / 2);
    await page.getByTestId("frame-preview").waitFor({ timeout: 30_000 });
    await page.waitForSelector("[data-testid=save-state][data-state=saved]", { timeout: 30_000 });
    await shot("07-editor");
  });

  await step("export", async () => {
    await page.getByTestId("export-link").click();
    await page.getByTestId("export-page").waitFor();
    await page.getByTestId("quality-select").selectOption({ label: "Draft (fast)" });
    await page.getByTestId("size-select").selectOption({ label: "640 × 360" });
    await shot("08-export-form");
    await observeProgress("render-progress");
    await page.getByTestId("start-export").click();
    await page.getByTestId("render-panel").waitFor();
    result.renderProgress = await waitDone(
      "render-progress",
      async () => {
        const state = await page.getByTestId("render-panel").getAttribute("data-state");
        if (state === "failed" || state === "cancelled") throw new Error(`render ${state}`);
        return state === "succeeded";
      },
      jobTimeout,
    );
    result.renderEvents = Number(await page.getByTestId("render-panel").getAttribute("data-events"));
    await page.getByTestId("download-link").waitFor();
    await shot("09-export-done");
  });

  await step("download", async () => {
    const [download] = await Promise.all([page.waitForEvent("download", { timeout: 30_000 }), page.getByTestId("download-link").click()]);
    await download.saveAs(args.out);
    result.downloadName = download.suggestedFilename();
  });

  // Two tabs on one project: the second saves first, so the first one's autosave is refused
  // (ABORTED, ETAG_MISMATCH) and the editor says so instead of overwriting.
  await step("conflict", async () => {
    await page.getByRole("link", { name: "← Back to the editor" }).click();
    await page.getByTestId("editor-page").waitFor();
    const editorUrl = page.url();
    const other = await context.newPage();
    other.on("console", (msg) => {
      if (msg.type() === "error") result.consoleErrors.push(`tab 2: ${msg.text()}`);
    });
    await other.goto(editorUrl);
    await other.getByTestId("editor-page").waitFor();
    await other.getByTestId("add-text").click();
    await other.waitForSelector("[data-testid=save-state][data-state=saved]");
    await page.getByTestId("add-text").click();
    await page.getByTestId("conflict-banner").waitFor();
    result.conflictReason = await page.getByTestId("error-banner").getAttribute("data-reason");
    await shot("10-editor-conflict");
    await page.getByTestId("conflict-banner").getByRole("button").click();
    await page.waitForSelector("[data-testid=save-state][data-state=saved]");
    result.textClipsAfterReload = await page.locator("[data-testid=lane-t1] [data-testid=clip]").count();
    await other.close();
  });
} catch (err) {
  await recordFailure(page, result, err, args.artifacts, "zz-failure", { fullPage: true });
} finally {
  await finish(browser, result, args.artifacts);
}
process.exit(result.error && !result.error.includes("(--until)") ? 1 : 0);
