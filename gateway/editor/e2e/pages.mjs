// The Account and Training pages, and the checks every page gets (issue 19), in Debian's Chromium
// driven by playwright-core, against a mesh the pytest side prepared (a user, assets, a project).
//
//   node e2e/pages.mjs --base URL --artifacts DIR --flow checks|account|training --email E --password P [--params JSON]
//
// checks:   every page (signed out: login, register; signed in: library, generate, projects, the
//           editor, export, training, account) gets axe-core (violations by impact) and a console
//           error listener; the page's own JS requests are recorded too (what loaded initially).
// account:  API key create (secret shown once) / revoke, usage totals and ledger, a webhook endpoint
//           disabled by a 410 enabled again and its delivery sent again, a refused URL's reason.
// training: dataset + parameters + estimate, start, live loss chart and samples, the LoRA used in
//           Generate.
// Writes DIR/result.json (the pytest side asserts on it); exits non-zero on the first failed step.
import { cliArgs, finish, login as signIn, openPage, recordFailure } from "./browser.mjs";
import { createRequire } from "node:module";
import { join } from "node:path";

const args = cliArgs({
  flow: { type: "string" },
  email: { type: "string" },
  password: { type: "string" },
  params: { type: "string", default: "{}" },
  "job-timeout": { type: "string", default: "600" },
});
const params = JSON.parse(args.params);
const jobTimeout = Number(args["job-timeout"]) * 1000;
const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

const result = { steps: [], consoleErrors: [], pages: {}, error: null };
let currentPage = "";
const { browser, page } = await openPage(args, result, { timeout: 30_000, errors: { prefix: () => `[${currentPage}] `, location: true } });

const shot = (name) => page.screenshot({ path: join(args.artifacts, `${name}.png`), fullPage: true });

async function step(name, fn) {
  const started = Date.now();
  await fn();
  result.steps.push({ name, seconds: (Date.now() - started) / 1000 });
}

// axe-core on the page as it is now: every violation with its impact and where.
async function axe(name) {
  await page.addScriptTag({ path: AXE });
  const found = await page.evaluate(async () => {
    const run = await window.axe.run(document, { resultTypes: ["violations"] });
    return run.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.slice(0, 5).map((n) => n.target.join(" ")) }));
  });
  result.pages[name].violations = found;
}

// Visits a page, waits for its marker and for the network to settle (lazy chunks, first RPCs),
// and records which JS files the page fetched and axe's violations.
async function visit(name, path, testId, ready) {
  currentPage = name;
  const scripts = [];
  const onResponse = (response) => {
    if (response.request().resourceType() === "script") scripts.push(new URL(response.url()).pathname);
  };
  page.on("response", onResponse);
  await page.goto(`${args.base}${path}`);
  await page.getByTestId(testId).waitFor();
  if (ready) await ready();
  // A page that keeps calling the gateway (an effect re-running in a loop) never settles.
  const settled = await page.waitForLoadState("networkidle", { timeout: 20_000 }).then(() => true, () => false);
  page.off("response", onResponse);
  // Calls made while the page sits idle for 2 s: 0 for every page (no polling, no loops). On a loaded
  // machine a page's first calls can follow its lazy chunk by more than networkidle's 500 ms, so a
  // window with calls is followed by another (up to 3): a page that polls or loops calls in every one.
  let idleCalls = 0;
  const idleCallUrls = []; // which calls, so a failure says what kept calling
  const onRequest = (request) => {
    if (request.method() === "POST") {
      idleCalls += 1;
      idleCallUrls.push(request.url().replace(args.base, ""));
    }
  };
  page.on("request", onRequest);
  for (let window = 0; window < 3; window += 1) {
    idleCalls = 0;
    await page.waitForTimeout(2000);
    if (idleCalls === 0) break;
    await page.waitForLoadState("networkidle", { timeout: 20_000 }).catch(() => undefined);
  }
  page.off("request", onRequest);
  result.pages[name] = { scripts, settled, idleCalls, idleCallUrls };
  await axe(name);
  await shot(`page-${name}`);
}

async function login() {
  currentPage = "login";
  await signIn(page, args.base, args.email, args.password);
}

async function until(check, timeout, what) {
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    if (await check()) return;
    await page.waitForTimeout(200);
  }
  throw new Error(`timed out waiting for ${what}`);
}

const attr = (locator, name) => locator.getAttribute(name);

async function checks() {
  await step("signed-out", async () => {
    await visit("login", "/login", "login-form");
    await visit("register", "/register", "register-form");
  });
  await step("signed-in", async () => {
    await login();
    await visit("library", "/assets", "assets-page", () => page.locator("[data-testid=asset-card]").first().waitFor());
    await visit("generate", "/generate", "generate-page", () => page.waitForFunction(() => document.querySelectorAll("[data-testid=model-select] option").length > 0));
    await visit("projects", "/projects", "projects-page");
    await visit("editor", `/projects/${params.projectId}`, "editor-page");
    await visit("export", `/projects/${params.projectId}/export`, "export-page");
    await visit("training", "/training", "training-page", () => page.locator("[data-testid=dataset-item]").first().waitFor());
    await visit("account", "/account", "account-page", () => page.getByTestId("usage-totals").waitFor());
  });
}

async function account() {
  await login();
  await page.getByRole("link", { name: "Account" }).click();
  await page.getByTestId("account-page").waitFor();
  currentPage = "account";

  await step("usage", async () => {
    const totals = page.getByTestId("usage-totals");
    await totals.waitFor();
    await page.locator("[data-testid=usage-record]").first().waitFor();
    result.usage = {
      credits: await attr(totals, "data-credits"),
      jobs: await attr(totals, "data-jobs"),
      ledger: await page.locator("[data-testid=usage-record]").evaluateAll((rows) => rows.map((r) => ({ job: r.dataset.jobId, credits: r.dataset.credits }))),
      chartTotal: await attr(page.getByTestId("usage-chart"), "data-total"),
      chartDays: await attr(page.getByTestId("usage-chart"), "data-days"),
      byKind: await page.locator("[data-testid=usage-by-kind] li").allTextContents(),
      balance: await attr(page.getByTestId("credit-balance"), "data-balance"),
    };
  });

  await step("api-key", async () => {
    const form = page.getByTestId("api-key-form");
    await form.locator("input[name=keyName]").fill("partner backend");
    await form.locator("input[value='usage:read']").check();
    await form.locator("input[name=createsPerMinute]").fill("2");
    await form.locator("input[name=monthlyCreditBudget]").fill("500");
    await page.getByTestId("create-api-key").click();
    await page.getByTestId("api-key-secret").waitFor();
    result.apiKeySecret = await page.locator("[data-testid=api-key-secret] code").textContent();
    const row = page.locator("[data-testid=api-key-row]").first();
    await row.waitFor();
    result.apiKeyRow = await row.innerText();
    result.apiKeyId = await attr(row, "data-key-id");
    await shot("account-key-created");
    await page.getByTestId("api-key-secret").getByRole("button", { name: "Done" }).click();
    result.secretGone = (await page.getByTestId("api-key-secret").count()) === 0 && !(await page.content()).includes(result.apiKeySecret);
    // Refused: a negative limit comes back as a field violation with its reason.
    await form.locator("input[name=keyName]").fill("bad");
    await form.locator("input[name=readsPerMinute]").fill("-1");
    await page.getByTestId("create-api-key").click();
    await page.locator("[data-testid=api-keys] [data-testid=error-banner]").waitFor();
    result.badKeyReason = await attr(page.locator("[data-testid=api-keys] [data-testid=error-banner]"), "data-reason");
    result.badKeyBanner = await page.locator("[data-testid=api-keys] [data-testid=error-banner]").innerText();
    await form.locator("input[name=readsPerMinute]").fill("");
    await page.getByRole("button", { name: "Revoke partner backend" }).click();
    await until(async () => (await page.locator(`[data-key-id="${result.apiKeyId}"][data-revoked=false]`).count()) === 0, 15_000, "the revoked key");
  });

  await step("webhooks", async () => {
    // A refused URL: the ErrorInfo reason in the banner, the violation next to the field.
    const form = page.getByTestId("webhook-form");
    await form.locator("input[name=webhookUrl]").fill("ftp://example.com/hooks");
    await page.getByTestId("add-webhook").click();
    const banner = page.locator("[data-testid=webhooks] [data-testid=error-banner]");
    await banner.waitFor();
    result.badWebhookReason = await attr(banner, "data-reason");
    result.badWebhookBanner = await banner.innerText();
    // The endpoint the pytest side made: disabled by its receiver's 410.
    const endpoint = page.locator(`[data-testid=webhook-endpoint][data-endpoint-id="${params.endpointId}"]`);
    await endpoint.waitFor();
    result.endpointDisabledBefore = await attr(endpoint, "data-disabled");
    await endpoint.getByTestId("enable-webhook").click();
    await until(async () => (await attr(endpoint, "data-disabled")) === "false", 15_000, "the endpoint enabled");
    await endpoint.getByTestId("show-deliveries").click();
    const delivery = endpoint.locator("[data-testid=delivery]").first();
    await delivery.waitFor();
    result.deliveryBefore = { state: await attr(delivery, "data-state"), status: await attr(delivery, "data-status"), attempts: await attr(delivery, "data-attempts") };
    await delivery.getByTestId("redeliver").click();
    await until(async () => (await attr(delivery, "data-status")) === "200", 30_000, "the redelivery answered");
    result.deliveryAfter = { state: await attr(delivery, "data-state"), status: await attr(delivery, "data-status"), attempts: await attr(delivery, "data-attempts") };
    result.attemptLines = await delivery.locator(".attempts li").allTextContents();
    // "Send test": a signed webhook.test event, one more delivery in the log, followed until answered.
    await endpoint.getByTestId("send-test-webhook").click();
    const tested = endpoint.locator('[data-testid=delivery][data-event-type="webhook.test"]').first();
    await tested.waitFor({ timeout: 15_000 });
    await until(async () => (await attr(tested, "data-status")) === "200", 30_000, "the test event answered");
    result.testDelivery = { state: await attr(tested, "data-state"), status: await attr(tested, "data-status"), attempts: await attr(tested, "data-attempts") };
    // A new endpoint through the form: its secret once.
    await form.locator("input[name=webhookUrl]").fill(params.secondUrl);
    await page.getByTestId("add-webhook").click();
    await page.getByTestId("webhook-secret").waitFor();
    result.webhookSecret = await page.locator("[data-testid=webhook-secret] code").textContent();
    result.endpoints = await page.locator("[data-testid=webhook-endpoint]").count();
    await shot("account-webhooks");
  });
}

async function training() {
  await login();
  await page.getByRole("link", { name: "Training" }).click();
  await page.getByTestId("training-page").waitFor();
  currentPage = "training";
  await step("configure", async () => {
    await page.waitForFunction(() => document.querySelectorAll("[data-testid=base-model-select] option").length > 0);
    await page.getByTestId("base-model-select").selectOption(params.model);
    const item = page.locator(`[data-testid=dataset-item][data-asset-id="${params.imageAssetId}"]`);
    await item.locator("input[type=checkbox]").check();
    await item.getByTestId("caption-input").fill("a red square on a green square");
    const fill = (name, value) => page.fill(`[data-testid=training-form] input[name=${name}]`, String(value));
    await fill("name", "square style");
    await fill("triggerWord", "vrt");
    for (const [name, value] of Object.entries(params.numbers)) await fill(name, value);
    await fill("validationPrompt", "vrt a square");
    await until(async () => (await attr(page.getByTestId("training-estimate"), "data-credits")) !== "", 15_000, "the estimate");
    result.estimate = await page.getByTestId("training-estimate").textContent();
    result.estimateCredits = await attr(page.getByTestId("training-estimate"), "data-credits");
  });
  await step("train", async () => {
    await page.getByTestId("start-training").click();
    const job = page.getByTestId("training-job");
    await job.waitFor();
    // Sampled as the page renders them: the loss chart grows point by point while it runs.
    const growth = [];
    const deadline = Date.now() + jobTimeout;
    while (Date.now() < deadline) {
      const points = Number(await attr(page.getByTestId("loss-chart"), "data-points"));
      if (growth.at(-1) !== points) growth.push(points);
      const state = await attr(job, "data-state");
      if (["succeeded", "failed", "cancelled"].includes(state)) break;
      await page.waitForTimeout(100);
    }
    result.lossGrowth = growth;
    result.trainingState = await attr(job, "data-state");
    result.trainingJobId = await attr(job, "data-job-id");
    if (result.trainingState !== "succeeded") throw new Error(`training ended ${result.trainingState}: ${await page.getByTestId("training-status").textContent()}`);
    await page.getByTestId("use-lora").waitFor();
    result.lossPoints = Number(await attr(page.getByTestId("loss-chart"), "data-points"));
    result.placement = await page.getByTestId("training-placement").textContent().catch(() => null);
    await until(async () => ((await page.getByTestId("training-cost").textContent()) ?? "").startsWith("Charged"), 30_000, "the charge").catch(() => {});
    result.cost = await page.getByTestId("training-cost").textContent().catch(() => null);
    result.samples = await page.locator("[data-testid=training-sample]").evaluateAll((els) => els.map((e) => ({ step: Number(e.dataset.step), assetId: e.dataset.assetId })));
    // The first sample plays: the video element reaches a decodable frame.
    const video = page.locator("[data-testid=training-sample] video").first();
    await video.waitFor();
    await page.waitForFunction(() => {
      const v = document.querySelector("[data-testid=training-sample] video");
      return v && v.readyState >= 2 && v.videoWidth > 0;
    }, null, { timeout: 30_000 });
    result.sampleVideo = await video.evaluate((v) => ({ width: v.videoWidth, height: v.videoHeight, duration: v.duration }));
    result.loraId = await attr(page.getByTestId("use-lora"), "data-lora-id");
    await shot("training-done");
    result.listedLoras = await page.locator("[data-testid=lora]").evaluateAll((els) => els.map((e) => e.dataset.loraId));
  });
  await step("generate-with-lora", async () => {
    await page.getByTestId("use-lora").click();
    await page.getByTestId("generate-page").waitFor();
    currentPage = "generate";
    await until(async () => (await page.getByTestId("lora-select").count()) > 0 && (await page.getByTestId("lora-select").inputValue()) === result.loraId, 15_000, "the LoRA picked");
    result.generateModel = await page.getByTestId("model-select").inputValue();
    for (const [name, value] of Object.entries(params.generate)) await page.fill(`input[name=${name}]`, String(value));
    await page.fill("textarea[name=prompt]", "vrt a square");
    await page.getByTestId("generate-button").click();
    const panel = page.getByTestId("job-panel");
    await panel.waitFor();
    await until(async () => ["succeeded", "failed", "cancelled"].includes(await attr(panel, "data-state")), jobTimeout, "the generation");
    result.generationState = await attr(panel, "data-state");
    result.generationJobId = await attr(panel, "data-job-id");
    result.generationPlacement = await page.getByTestId("gen-placement").textContent().catch(() => null);
    await shot("training-generate");
  });
}

try {
  if (args.flow === "checks") await checks();
  else if (args.flow === "account") await account();
  else if (args.flow === "training") await training();
  else throw new Error(`unknown flow ${args.flow}`);
} catch (err) {
  await recordFailure(page, result, err, args.artifacts, "failure", { fullPage: true });
  process.exitCode = 1;
} finally {
  await finish(browser, result, args.artifacts);
}
