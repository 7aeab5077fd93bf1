// Silent token refresh in Chromium: sign up, wait past the (short) access token lifetime, and check
// the session was rotated in the background and still works after a reload; then a second tab on the
// same session, both refreshing for --tabs-wait seconds: neither may present a token the other spent.
//   node e2e/refresh.mjs --base URL --artifacts DIR --wait 6 --tabs-wait 14
import { cliArgs, finish, openPage, recordFailure, register } from "./browser.mjs";
import { join } from "node:path";

const args = cliArgs({ wait: { type: "string", default: "6" }, "tabs-wait": { type: "string", default: "14" } });
const result = { consoleErrors: [], calls: [], error: null };
const { browser, context, page } = await openPage(args, result, { context: {} });
// Every gRPC-Web call of every tab with its outcome, so a failure says which call went wrong and how.
context.on("requestfinished", async (request) => {
  const response = await request.response();
  if (!response || !request.url().includes(".v1.")) return;
  const headers = await response.allHeaders().catch(() => ({}));
  result.calls.push(`${new URL(request.url()).pathname} http=${response.status()} grpc=${headers["grpc-status"] ?? "trailer"}`);
});
context.on("requestfailed", (request) => result.calls.push(`${new URL(request.url()).pathname} failed: ${request.failure()?.errorText}`));
const session = (tab = page) => tab.evaluate(() => JSON.parse(localStorage.getItem("viarte.session") ?? "null"));
try {
  await page.goto(`${args.base}/assets`);
  await page.getByTestId("login-form").waitFor(); // protected route → login
  result.redirectedTo = new URL(page.url()).pathname;
  await register(page, args.base, {
    displayName: "Refresher", email: `refresh-${Date.now().toString(36)}@example.com`,
    password: "correct horse battery staple 42", ready: "display-name",
  });
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

  // Two tabs, one session: each refreshes on its own timer.
  const second = await context.newPage();
  await second.goto(`${args.base}/assets`);
  await second.getByTestId("display-name").waitFor();
  const shared = await session();
  await page.waitForTimeout(Number(args["tabs-wait"]) * 1000);
  const [first, other] = [await session(), await session(second)];
  result.tabsRotated = first?.refreshToken !== shared.refreshToken;
  await Promise.all([page.reload(), second.reload()]);
  await Promise.all([page.getByTestId("display-name").waitFor(), second.getByTestId("display-name").waitFor()]);
  result.tabsSignedIn = [new URL(page.url()).pathname, new URL(second.url()).pathname];
  result.tabsShareTokens = first?.refreshToken === other?.refreshToken;
} catch (err) {
  result.url = page.url();
  result.text = (await page.locator("body").innerText().catch(() => "")).slice(0, 1000);
  await recordFailure(page, result, err, args.artifacts, "failure");
} finally {
  await finish(browser, result, args.artifacts);
}
process.exit(result.error ? 1 : 0);
