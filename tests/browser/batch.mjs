// A closed batch in the official @knocklabs/client (rich mode) in headless Chromium.
// Started by tests/api/browser_batch.rs against a server on a manual clock: this script
// loads the page, fetches and listens, prints "ready", and the Rust test then triggers
// the batch and advances the clock. The item must arrive in real time carrying
// `total_activities`, `total_actors`, `actors` and `activities`, and the page renders them.
import { CHROMIUM, FLAGS, clientPage, harness, requirePackage, servePage } from "./harness.mjs";

const STEP_TIMEOUT_MS = 20000;

const { fail, need } = harness("batch e2e");
const cfg = {
  host: need("TIDINGS_URL"),
  publicKey: need("TIDINGS_PUBLIC_KEY"),
  userId: need("TIDINGS_USER_ID"),
  userToken: need("TIDINGS_USER_TOKEN"),
  channelId: need("TIDINGS_CHANNEL_ID"),
  mode: "rich",
};

const { chromium } = await requirePackage("playwright-core", fail);
const { html, bundle } = await clientPage(fail);
const { server, pageUrl } = await servePage(html, bundle);

function check(condition, message, seen) {
  if (!condition) fail(`${message}; saw ${JSON.stringify(seen)}`);
  console.log(`ok - ${message}`);
}

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.log(`[page error] ${err.message}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.e2e !== undefined);
  const first = await page.evaluate((c) => window.e2e.start(c), cfg);
  check(first.status === "ok" && first.entries === 0, "fetch() returns the empty feed", first);
  const deadline = () => Date.now() + STEP_TIMEOUT_MS;
  let until = deadline();
  let seen = await page.evaluate(() => window.e2e.snapshot());
  while (seen.realtime.length < 1 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    seen = await page.evaluate(() => window.e2e.snapshot());
  }
  check(seen.realtime.length >= 1, "listenForUpdates() joined the feed", seen);
  console.log("ready");

  until = deadline();
  while (!(seen.items.length === 1 && seen.realtime.some((r) => r.ids.length === 1)) && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 50));
    seen = await page.evaluate(() => window.e2e.snapshot());
  }
  const [item] = seen.items;
  check(item && seen.realtime.some((r) => r.ids.includes(item.id)),
    "the closed batch arrived as ONE item through items.received.realtime", seen);
  check(item.total_activities === 3 && item.total_actors === 2,
    "the client reads total_activities 3 and total_actors 2", item);
  check(item.actors.join(",") === "Ada,Bob", "the client reads both actors", item);
  check(item.activities.length === 3 && item.activities[2].actor === "ada" && item.activities[1].data.n === 2,
    "the client reads each activity with its actor and data", item);
  check(item.body.includes("3 comments by Ada and 1 other"), "the item's body rendered the batch", item);
  check(seen.rendered.includes("3 activities by Ada, Bob (2 actors)"), "the page renders the batch fields", seen);
  console.log("batch e2e passed");
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
process.exit(0);
