// A closed batch in the official @knocklabs/client (rich mode) in headless Chromium.
// Started by tests/api/browser_batch.rs against a server on a manual clock: this script
// loads the page, fetches and listens, prints "ready", and the Rust test then triggers
// the batch and advances the clock. The item must arrive in real time carrying
// `total_activities`, `total_actors`, `actors` and `activities`, and the page renders them.
import { existsSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const STEP_TIMEOUT_MS = 20000;

function fail(message, code = 1) {
  console.error(`batch e2e FAILED: ${message}`);
  process.exit(code);
}

function need(name) {
  const value = process.env[name];
  if (!value) fail(`environment variable ${name} is not set`, 2);
  return value;
}

if (!existsSync(CHROMIUM)) fail(`chromium not found at ${CHROMIUM} (apt-get install chromium)`, 2);
const cfg = {
  host: need("TIDINGS_URL"),
  publicKey: need("TIDINGS_PUBLIC_KEY"),
  userId: need("TIDINGS_USER_ID"),
  userToken: need("TIDINGS_USER_TOKEN"),
  channelId: need("TIDINGS_CHANNEL_ID"),
  mode: "rich",
};

const { build } = await import("esbuild").catch(() =>
  fail("npm packages missing: run `npm ci` in tests/browser", 2));
const { chromium } = await import("playwright-core").catch(() =>
  fail("npm packages missing: run `npm ci` in tests/browser", 2));

const bundled = await build({
  entryPoints: [join(here, "page/app.js")],
  bundle: true, format: "esm", platform: "browser", write: false, logLevel: "silent",
});
const bundle = bundled.outputFiles[0].text;
const html = readFileSync(join(here, "page/index.html"), "utf8");
const server = createServer((req, res) => {
  if (req.url === "/bundle.js") {
    res.writeHead(200, { "content-type": "text/javascript" });
    res.end(bundle);
  } else if (req.url === "/" || req.url === "/index.html") {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(html);
  } else {
    res.writeHead(404);
    res.end();
  }
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

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
