// End-to-end: the official @knocklabs/client in headless Chromium sees its badge drop
// when an item expires or is snoozed, and rise when the item wakes, without reloading
// (issue 21). Started by tests/api/browser_lifecycle.rs, whose server runs on a manual
// clock: at each `step: NAME` line printed here, the test moves the clock (or snoozes
// an item) and answers `go` on stdin. Exits 0 only when every step was observed.
import readline from "node:readline";

import { CHROMIUM, FLAGS, clientPage, harness, requirePackage, servePage } from "./harness.mjs";

const STEP_TIMEOUT_MS = 15000;
const { fail, need } = harness("browser lifecycle");
const cfg = {
  host: need("TIDINGS_URL"),
  publicKey: need("TIDINGS_PUBLIC_KEY"),
  userId: need("TIDINGS_USER_ID"),
  userToken: need("TIDINGS_USER_TOKEN"),
  channelId: need("TIDINGS_CHANNEL_ID"),
};

const { chromium } = await requirePackage("playwright-core", fail);
const { html, bundle } = await clientPage(fail);
const { server, pageUrl } = await servePage(html, bundle);
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

/**
 * Asks the test to do `name` (move the clock, snooze) and waits for its `go`. First waits
 * until the client has no feed fetch in flight: the official client skips the fetch a
 * push asks for while another is in flight, and the earlier fetch's answer (read before
 * this step's change) would then put the old badge back, as it would for a real user.
 */
async function step(page, name) {
  await waitFor(page, `the client to settle before ${name}`, (s) => s.idle);
  console.log(`step: ${name}`);
  const { value, done } = await lines.next();
  if (done || value.trim() !== "go") fail(`the test did not answer step ${name}: ${value}`);
}

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

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.log(`[page error] ${err.message}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.e2e !== undefined);
  const first = await page.evaluate((c) => window.e2e.start(c), cfg);
  if (first.entries !== 2 || first.meta.unread_count !== 2) fail(`expected 2 unread items: ${JSON.stringify(first)}`);
  await waitFor(page, "the socket join", (s) => s.realtime.length >= 1);
  console.log("ok - two unread items, socket joined");

  await step(page, "expire");
  await waitFor(page, "the badge to drop when the item expires", (s) => s.idle && s.metadata.unread_count === 1);
  console.log("ok - the badge dropped to 1 when the item expired");

  await step(page, "snooze");
  await waitFor(page, "the badge to drop when the item is snoozed", (s) => s.idle && s.metadata.unread_count === 0);
  console.log("ok - the badge dropped to 0 when the other item was snoozed");

  const before = await page.evaluate(() => window.e2e.snapshot());
  await step(page, "wake");
  const woke = await waitFor(page, "the badge to rise when the item wakes",
    (s) => s.idle && s.metadata.unread_count === 1 && s.realtime.length > before.realtime.length
      && s.realtime.some((r) => r.ids.length === 1));
  console.log(`ok - the badge rose to 1 when the item woke (${JSON.stringify(woke.metadata)})`);
  console.log("browser lifecycle passed");
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
process.exit(0);
