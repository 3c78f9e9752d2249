// End-to-end: Tidings' own demo page (`/`, static/index.html + feed.js) in headless
// Chromium. Paste a user token, see the feed, receive a triggered item live over the
// socket, click it to mark it read, and see the badges change. Started by
// tests/api/browser.rs with the server and credentials in the environment.
import { existsSync } from "node:fs";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];

function fail(message, code = 1) {
  console.error(`demo page e2e FAILED: ${message}`);
  process.exit(code);
}
const need = (name) => process.env[name] || fail(`environment variable ${name} is not set`, 2);
if (!existsSync(CHROMIUM)) fail(`chromium not found at ${CHROMIUM} (apt-get install chromium)`, 2);
const host = need("TIDINGS_URL");
const secretKey = need("TIDINGS_SECRET_KEY");
const userId = need("TIDINGS_USER_ID");
const userToken = need("TIDINGS_USER_TOKEN");
const { chromium } = await import("playwright-core").catch(() =>
  fail("npm packages missing: run `npm ci` in tests/browser", 2));

async function trigger(title) {
  const res = await fetch(`${host}/v1/workflows/new-comment/trigger`, {
    method: "POST",
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json" },
    body: JSON.stringify({ recipients: [userId], actor: { id: "demo-actor", name: "Demo Actor" },
      data: { page_title: title, page_url: "https://example.com/demo", comment_preview: "hello <script>alert(1)</script>" } }),
  });
  if (res.status !== 200) fail(`trigger answered ${res.status}: ${await res.text()}`);
}

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const page = await browser.newPage();
  const dialogs = [];
  page.on("dialog", (d) => { dialogs.push(d.message()); d.dismiss(); });
  page.on("pageerror", (err) => console.log(`[page error] ${err.message}`));
  await page.goto(`${host}/`);
  await page.fill("#token", userToken);
  await page.click("#login button");
  await page.waitForFunction(() => document.getElementById("status").textContent === "connected", null, { timeout: 15000 });
  console.log("ok - the page fetched the feed and connected the socket");

  await trigger("Live item");
  await page.waitForSelector("#items li.unread", { timeout: 15000 });
  const text = await page.textContent("#items li");
  if (!text.includes("Demo Actor") || !text.includes("Live item")) fail(`unexpected item text: ${text}`);
  await page.waitForFunction(() => document.getElementById("unread").textContent === "1 unread", null, { timeout: 15000 });
  console.log("ok - the triggered item arrived live with 1 unread");
  if (await page.$("#items li script")) fail("a script element from trigger data reached the page");

  await page.click("#items li");
  await page.waitForSelector("#items li.read", { timeout: 15000 });
  await page.waitForFunction(() => document.getElementById("unread").textContent === "0 unread", null, { timeout: 15000 });
  console.log("ok - clicking marked it read and the badge dropped to 0");
  if (dialogs.length) fail(`the page opened dialogs: ${dialogs.join(", ")}`);
  console.log("demo page e2e passed");
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(0);
