// What every Chromium script in e2e/ shares: its command line (--base, --artifacts, --chromium plus
// its own options), Debian's Chromium launched headless through playwright-core (no browser
// download), console and page errors collected into the result (the pytest side asserts there are
// none), the login form, and result.json written however the script ends.
import { chromium } from "playwright-core";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";

// No sandbox (CI runs as root), no GPU, and none of Chromium's own background traffic (updates,
// sync) mixed into what a script records.
const LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
export const VIEWPORT = { width: 1400, height: 900 };

// The parsed options (the script's own beside the common three); the artifacts folder exists.
export function cliArgs(options = {}) {
  const { values } = parseArgs({
    options: {
      base: { type: "string" },
      artifacts: { type: "string" },
      chromium: { type: "string", default: "/usr/bin/chromium" },
      ...options,
    },
  });
  mkdirSync(values.artifacts, { recursive: true });
  return values;
}

// Every console error and uncaught page error of `page` pushed onto `errors`: its text, after
// `prefix()` (say, the page being checked), with the script's URL when `location` is set.
export function collectErrors(page, errors, { prefix = () => "", location = false } = {}) {
  page.on("console", (msg) => {
    if (msg.type() === "error") errors.push(`${prefix()}${msg.text()}${location ? ` @ ${msg.location().url ?? ""}` : ""}`);
  });
  page.on("pageerror", (err) => errors.push(`${prefix()}pageerror: ${err.message}`));
}

// Chromium, one context (`context`: its options), one page whose errors go to `result.consoleErrors`
// (`errors`: collectErrors' options); `timeout`: the page's default for every wait, if given.
export async function openPage(args, result, { extraArgs = [], context = { viewport: VIEWPORT }, timeout, errors = {} } = {}) {
  const browser = await chromium.launch({ executablePath: args.chromium, headless: true, args: [...LAUNCH_ARGS, ...extraArgs] });
  const browserContext = await browser.newContext(context);
  const page = await browserContext.newPage();
  if (timeout) page.setDefaultTimeout(timeout);
  collectErrors(page, result.consoleErrors, errors);
  return { browser, context: browserContext, page };
}

// Signs in through the login form and waits for the library (where the editor lands a user).
export async function login(page, base, email, password) {
  await page.goto(`${base}/login`);
  await page.getByTestId("login-form").waitFor();
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await page.click("button[type=submit]");
  await page.getByTestId("assets-page").waitFor();
}

// Registers a new user through the form; `ready`: the test id that says the app signed them in.
export async function register(page, base, { displayName, email, password, ready = "assets-page" }) {
  await page.goto(`${base}/register`);
  await page.fill("input[name=displayName]", displayName);
  await page.fill("input[name=email]", email);
  await page.fill("input[name=password]", password);
  await page.click("button[type=submit]");
  await page.getByTestId(ready).waitFor();
}

// A failed step: its error in the result and a screenshot of where the page stood.
export async function recordFailure(page, result, err, artifacts, name = "zz-failure", { fullPage = false } = {}) {
  result.error = String(err?.stack ?? err);
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage }).catch(() => {});
}

// The end of every script, passed or not: result.json for the pytest side, the browser closed.
export async function finish(browser, result, artifacts) {
  writeFileSync(join(artifacts, "result.json"), JSON.stringify(result, null, 2));
  await browser.close();
}
