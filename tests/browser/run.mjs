// End-to-end: the official @knocklabs/client in headless Chromium against a running
// Tidings server. Started by tests/api/browser.rs, which passes the server and
// credentials in the environment. Exits 0 only when every step was observed; any
// failure prints what was seen and exits 1 (2 when the tooling itself is missing).
import { CHROMIUM, FLAGS, clientPage, harness, requirePackage, servePage } from "./harness.mjs";

const STEP_TIMEOUT_MS = 15000;

const { fail, need } = harness("browser e2e");

const cfg = {
  host: need("TIDINGS_URL"),
  publicKey: need("TIDINGS_PUBLIC_KEY"),
  userId: need("TIDINGS_USER_ID"),
  userToken: need("TIDINGS_USER_TOKEN"),
  channelId: need("TIDINGS_CHANNEL_ID"),
};
const secretKey = need("TIDINGS_SECRET_KEY");
// Where triggers go: the browser's server unless set (the cluster test triggers on
// another node than the one the browser's socket sits on).
const triggerHost = process.env.TIDINGS_TRIGGER_URL || cfg.host;

const { chromium } = await requirePackage("playwright-core", fail);
// The page's script (with @knocklabs/client) bundled in memory, on a static server of its
// own port: the page's origin differs from the API's (CORS).
const { html, bundle } = await clientPage(fail);
const { server, pageUrl } = await servePage(html, bundle);

async function trigger(data) {
  const res = await fetch(`${triggerHost}/v1/workflows/new-comment/trigger`, {
    method: "POST",
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json" },
    body: JSON.stringify({ recipients: [cfg.userId], actor: { id: "e2e-actor", name: "E2E Actor" }, data }),
  });
  if (res.status !== 200) fail(`trigger answered ${res.status}: ${await res.text()}`);
}

/** Polls `probe` in the page until `accept(value)` holds or the step times out. */
async function waitFor(page, what, accept) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last;
  while (Date.now() < deadline) {
    last = await page.evaluate(() => window.e2e.snapshot());
    if (accept(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`timed out waiting for ${what}; last state: ${JSON.stringify(last)}`);
}

function check(condition, message, seen) {
  if (!condition) fail(`${message}; saw ${JSON.stringify(seen)}`);
  console.log(`ok - ${message}`);
}

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const page = await browser.newPage();
  page.on("console", (msg) => {
    if (msg.type() === "error") console.log(`[page ${msg.type()}] ${msg.text()}`);
  });
  page.on("pageerror", (err) => console.log(`[page error] ${err.message}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.e2e !== undefined);

  const first = await page.evaluate((c) => window.e2e.start(c), cfg);
  check(first.status === "ok" && first.entries === 0, "fetch() returns the empty feed", first);

  // The server pushes current counts after every join; the client answers with a refetch
  // announced as items.received.realtime. That proves the socket joined.
  await waitFor(page, "the socket join (initial counts push)", (s) => s.realtime.length >= 1);
  console.log("ok - listenForUpdates() joined the feed");

  await trigger({ page_url: "https://example.com/p/1", comment: "first" });
  const afterFirst = await waitFor(page, "the triggered item via items.received.realtime",
    (s) => s.realtime.some((r) => r.ids.length === 1));
  check(afterFirst.items.length === 1 && afterFirst.metadata.unread_count === 1,
    "the triggered item arrived in real time with unread_count 1", afterFirst);

  const marked = await page.evaluate(() => window.e2e.markFirstAsRead());
  check(marked.id === afterFirst.items[0].id, "markAsRead() on the item", marked);
  const optimistic = await page.evaluate(() => window.e2e.snapshot());
  check(optimistic.metadata.unread_count === 0 && optimistic.items[0].read_at,
    "the client shows it read with unread_count 0", optimistic);
  const server_ = await page.evaluate(() => window.e2e.refetch());
  check(server_.status === "ok" && server_.meta.unread_count === 0 && server_.meta.total_count === 1,
    "the server's counts agree after a refetch", server_);

  await trigger({ page_url: "https://example.com/p/2", comment: "second" });
  const afterSecond = await waitFor(page, "the second item",
    (s) => s.items.length === 2 && s.metadata.unread_count === 1);
  check(afterSecond.metadata.total_count === 2,
    "a second push carries the new counts (total 2, unread 1)", afterSecond);
  console.log("browser e2e passed");
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
process.exit(0);
