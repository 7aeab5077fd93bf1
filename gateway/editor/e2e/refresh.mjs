// Silent token refresh in Chromium: sign up, wait past the (short) access token lifetime, and check
// the session was rotated in the background and still works after a reload.
//   node e2e/refresh.mjs --base URL --artifacts DIR --wait 6
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    base: { type: "string" },
    artifacts: { type: "string" },
    wait: { type: "string", default: "6" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
  },
});
mkdirSync(args.artifacts, { recursive: true });
const result = { consoleErrors: [], calls: [], error: null };
const browser = await chromium.launch({
  executablePath: args.chromium,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await (await browser.newContext()).newPage();
page.on("console", (msg) => msg.type() === "error" && result.consoleErrors.push(msg.text()));
page.on("pageerror", (err) => result.consoleErrors.push(`pageerror: ${err.message}`));
// Every gRPC-Web call with its outcome, so a failure says which call went wrong and how.
page.on("requestfinished", async (request) => {
  const response = await request.response();
  if (!response || !request.url().includes(".v1.")) return;
  const headers = await response.allHeaders().catch(() => ({}));
  result.calls.push(`${new URL(request.url()).pathname} http=${response.status()} grpc=${headers["grpc-status"] ?? "trailer"}`);
});
page.on("requestfailed", (request) => result.calls.push(`${new URL(request.url()).pathname} failed: ${request.failure()?.errorText}`));
const session = () => page.evaluate(() => JSON.parse(localStorage.getItem("viarte.session") ?? "null"));
try {
  await page.goto(`${args.base}/assets`);
  await page.getByTestId("login-form").waitFor(); // protected route → login
  result.redirectedTo = new URL(page.url()).pathname;
  await page.goto(`${args.base}/register`);
  await page.fill("input[name=displayName]", "Refresher");
  await page.fill("input[name=email]", `refresh-${Date.now().toString(36)}@example.com`);
  await page.fill("input[name=password]", "correct horse battery staple 42");
  await page.click("button[type=submit]");
  await page.getByTestId("display-name").waitFor();
  const before = await session();
  await page.waitForTimeout(Number(args.wait) * 1000);
  const after = await session();
  result.rotated = before.accessToken !== after.accessToken && before.refreshToken !== after.refreshToken;
  result.expiresLater = after.accessExpiresAt > before.accessExpiresAt;
  await page.reload();
  await page.getByTestId("display-name").waitFor();
  result.nameAfterReload = await page.getByTestId("display-name").textContent();
  result.stillSignedIn = new URL(page.url()).pathname === "/assets";
  await page.screenshot({ path: join(args.artifacts, "refreshed.png") });
} catch (err) {
  result.error = String(err?.stack ?? err);
  result.url = page.url();
  result.text = (await page.locator("body").innerText().catch(() => "")).slice(0, 1000);
  await page.screenshot({ path: join(args.artifacts, "failure.png") }).catch(() => {});
} finally {
  writeFileSync(join(args.artifacts, "result.json"), JSON.stringify(result, null, 2));
  await browser.close();
}
process.exit(result.error ? 1 : 0);
