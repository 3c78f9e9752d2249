// End-to-end: Tidings' own pages (`/` inbox, `/admin` object feeds) in headless Chromium
// against the real binary in demo mode (`tidings serve --demo`), started and restarted by
// this script. One browser for every check; each check saves a screenshot in
// tests/browser/out/. Started by tests/api/browser.rs (TIDINGS_BIN = the built binary).
// Exits 0 only when every check passed; 1 on a failure, 2 when tooling is missing.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "out");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
];
const T = 15000;

function fail(message, code = 1) {
  console.error(`inbox e2e FAILED: ${message}`);
  if (server) server.kill("SIGKILL");
  process.exit(code);
}
let server = null;
const BIN = process.env.TIDINGS_BIN || fail("environment variable TIDINGS_BIN is not set", 2);
const WORKFLOWS = process.env.TIDINGS_WORKFLOWS || join(here, "../../workflows");
if (!existsSync(CHROMIUM)) fail(`chromium not found at ${CHROMIUM} (apt-get install chromium)`, 2);
const { chromium } = await import("playwright-core").catch(() => fail("npm packages missing: run `npm ci` in tests/browser", 2));
const axeSource = (() => {
  try { return readFileSync(join(here, "node_modules/axe-core/axe.min.js"), "utf8"); } catch { return fail("npm package axe-core missing: run `npm ci` in tests/browser", 2); }
})();
mkdirSync(out, { recursive: true });
const dir = mkdtempSync(join(tmpdir(), "tidings-inbox-"));
const db = join(dir, "demo.db");

/** Starts `tidings serve --demo` (on `port`, 0 = any); resolves {url, secretKey}. The
 * secret key is printed only by the start that generated it; a restart passes it in. */
function startServer(port = 0, knownSecretKey = null) {
  const env = { ...process.env, TIDINGS_LOG: "warn" };
  for (const k of ["TIDINGS_SECRET_KEY", "TIDINGS_PUBLIC_KEY", "TIDINGS_SIGNING_PUBLIC_KEY", "TIDINGS_ADDR", "TIDINGS_DB"]) delete env[k];
  const child = spawn(BIN, ["--addr", `127.0.0.1:${port}`, "--db", db, "--workflows", WORKFLOWS, "--workers", "2", "serve", "--demo"], { env, stdio: ["ignore", "pipe", "pipe"] });
  server = child;
  let stdout = "";
  let stderr = "";
  child.stderr.on("data", (d) => { stderr += d; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start: ${stdout} ${stderr}`)), 30000);
    child.stdout.on("data", (d) => {
      stdout += d;
      const url = stdout.match(/listening on (http:\/\/[0-9.:]+)/);
      const sk = stdout.match(/secret key: (sk_\S+)/);
      const secretKey = sk ? sk[1] : knownSecretKey;
      if (url && secretKey && /demo mode/.test(stdout)) { clearTimeout(timer); resolve({ url: url[1], secretKey }); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`server exited (${code}): ${stderr}`)); });
  });
}

function stopServer() {
  return new Promise((resolve) => {
    const child = server;
    server = null;
    child.removeAllListeners("exit");
    child.on("exit", resolve);
    child.kill("SIGTERM");
  });
}

let { url: host, secretKey } = await startServer();
const port = new URL(host).port;

async function api(method, path, body) {
  const res = await fetch(host + path, {
    method,
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) fail(`${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

let seq = 0;
/** Triggers `demo-comment` with a unique comment; returns the text to look for. */
async function notify(recipient, tenant, actor = { id: "e2e-actor", name: "Edith Eetoo" }) {
  const text = `e2e note ${++seq} ${Date.now()}`;
  await api("POST", "/v1/workflows/demo-comment/trigger", {
    recipients: [recipient], actor, tenant: tenant || undefined,
    data: { page: "Test page", slug: `test-${seq}`, comment: `${text} <script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">` },
  });
  return text;
}

function check(ok, message, seen) {
  if (!ok) fail(`${message}${seen === undefined ? "" : `; saw ${JSON.stringify(seen)}`}`);
  console.log(`ok - ${message}`);
}

const consoleErrors = [];
let expectErrors = null;
function watch(page, label) {
  page.on("console", (msg) => {
    if (msg.type() !== "error") return;
    const text = msg.text();
    if (expectErrors && expectErrors.test(text)) return;
    consoleErrors.push(`[${label}] ${text}`);
  });
  page.on("pageerror", (err) => consoleErrors.push(`[${label}] page error: ${err.message}`));
  page.on("dialog", (d) => { consoleErrors.push(`[${label}] dialog: ${d.message()}`); d.dismiss(); });
  return page;
}
const noErrors = (what) => check(consoleErrors.length === 0, `${what}: no console errors`, consoleErrors);
const shot = (page, name) => page.screenshot({ path: join(out, `${name}.png`) });

const badge = (page) => page.evaluate(() => {
  const b = document.querySelector(".tg-badge");
  return b.hidden ? 0 : Number(b.textContent);
});
const waitBadge = (page, n) => page.waitForFunction((n) => {
  const b = document.querySelector(".tg-badge");
  return (b.hidden ? 0 : Number(b.textContent)) === n;
}, n, { timeout: T });
const itemWith = (text) => `.tg-item:has-text("${text}")`;
const connState = (page) => page.getAttribute(".tg-panel .tg-conn", "data-state");
/** Opens the panel if an outside click (e.g. the workspace picker) closed it. */
async function ensureOpen(page) {
  if (await page.$eval(".tg-panel", (p) => p.hidden)) await page.click(".tg-bell");
}
const waitLive = (page) => page.waitForSelector('.tg-conn[data-state="live"]', { timeout: T });

let browser;
try {
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = watch(await context.newPage(), "inbox");

  // 1. The page loads the demo user's inbox, open, live, with no console errors.
  await page.goto(`${host}/?user=ada`);
  await page.waitForSelector(".tg-panel:not([hidden]) .tg-item", { timeout: T });
  await waitLive(page);
  await page.waitForFunction(() => !document.querySelector(".tg-item .tg-dot") || document.querySelectorAll(".tg-item").length > 0);
  await shot(page, "01-loaded");
  noErrors("the inbox loads with seeded items, the panel open and the socket live");

  // 2. A notify from the API appears live, highlighted, and the badge increments.
  const before = await badge(page);
  const live = await notify("ada");
  await page.waitForSelector(itemWith(live), { timeout: T });
  await waitBadge(page, before + 1);
  check(await page.$eval(itemWith(live), (el) => el.classList.contains("is-new") && el.classList.contains("is-unread")),
    "the item arrived live, unread and highlighted; badge went from " + before + " to " + (before + 1));
  check(await page.evaluate(() => window.__pwned === undefined && !document.querySelector(".tg-item script, .tg-item img[onerror]")),
    "nothing from trigger data ran or reached the page as markup");
  await shot(page, "02-live-arrival");

  // 3. Clicking it marks it read (and interacted) and follows its action_url.
  const id = await page.getAttribute(itemWith(live), "data-id");
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/messages/batch/interacted")),
    page.click(`${itemWith(live)} .tg-item-body`),
  ]);
  await waitBadge(page, before);
  await page.waitForFunction(() => location.hash.startsWith("#/pages/test-"), null, { timeout: T });
  const message = await api("GET", `/v1/messages/${id}`);
  check(message.read_at && message.interacted_at, "clicking marked it read and interacted on the server, the badge decremented, and its action_url was followed", message);
  check(!(await page.$eval(itemWith(live), (el) => el.classList.contains("is-unread"))), "the item shows as read");
  await shot(page, "03-clicked-read");

  // 4. The tenant switcher scopes items and badge.
  await page.selectOption("#tenant", "globex");
  await ensureOpen(page);
  await page.waitForFunction(() => {
    const items = [...document.querySelectorAll(".tg-item")];
    return items.length > 0 && items.every((i) => ["globex", ""].includes(i.dataset.tenant)) && items.some((i) => i.dataset.tenant === "globex");
  }, null, { timeout: T });
  const acmeText = await notify("ada", "acme");
  const globexText = await notify("ada", "globex");
  await page.waitForSelector(itemWith(globexText), { timeout: T });
  check(!(await page.$(itemWith(acmeText))), "in Globex, a Globex item arrives live and the Acme item does not show");
  const globexBadge = await badge(page);
  const globexServer = await api("GET", "/v1/users/ada/feeds/in-app-feed?tenant=globex");
  check(globexBadge === globexServer.meta.unread_count, "the badge is Globex's unread count", { globexBadge, server: globexServer.meta });
  await shot(page, "04-tenant-globex");
  await page.selectOption("#tenant", "acme");
  await ensureOpen(page);
  await page.waitForSelector(itemWith(acmeText), { timeout: T });
  check(!(await page.$(itemWith(globexText))), "in Acme, the Acme item shows and the Globex one does not");
  await page.selectOption("#tenant", "");
  await ensureOpen(page);
  await page.waitForSelector(itemWith(globexText), { timeout: T });

  // 5. Mark all as read: one bulk request, badge to 0, server agrees.
  const bulk = [];
  page.on("request", (r) => { if (r.url().includes("/messages/bulk/")) bulk.push(r.url()); });
  // The page updates optimistically; the server is asked once the request completed.
  await Promise.all([page.waitForResponse((r) => r.url().includes("/messages/bulk/read")), page.click(".tg-mark-all")]);
  await waitBadge(page, 0);
  await page.waitForFunction(() => !document.querySelector(".tg-item.is-unread"), null, { timeout: T });
  const after = await api("GET", "/v1/users/ada/feeds/in-app-feed");
  check(bulk.length === 1 && bulk[0].endsWith("/messages/bulk/read") && after.meta.unread_count === 0,
    "mark all as read sent one bulk request and the server counts 0 unread", { bulk, meta: after.meta });
  await shot(page, "05-mark-all-read");

  // 6. Archive, the Archived tab, unarchive.
  const first = page.locator(".tg-item").first();
  const archivedId = await first.getAttribute("data-id");
  await first.hover();
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/messages/batch/archived")),
    first.locator(".tg-archive").click(),
  ]);
  await page.waitForFunction((id) => !document.querySelector(`.tg-item[data-id="${id}"]`), archivedId, { timeout: T });
  await page.click('.tg-tab[data-view="archived"]');
  await page.waitForSelector(`.tg-item[data-id="${archivedId}"]`, { timeout: T });
  check((await page.$$(".tg-item")).length === 1, "the archived item left All and is the one item in Archived");
  await shot(page, "06-archived-tab");
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith("/messages/batch/unarchived")),
    page.click(`.tg-item[data-id="${archivedId}"] .tg-archive`),
  ]);
  await page.waitForSelector(".tg-state--empty", { timeout: T });
  await page.click('.tg-tab[data-view="all"]');
  await page.waitForSelector(`.tg-item[data-id="${archivedId}"]`, { timeout: T });
  check((await api("GET", `/v1/messages/${archivedId}`)).archived_at === null, "unarchiving brought it back to All");

  // 7. Load more by cursor. A trigger's 200 means its run is stored, not its item yet:
  // wait until all 8 items are in the feed, or one landing after the reload would arrive
  // live and make the first page longer than 15.
  const feedTotal = async () => (await api("GET", "/v1/users/ada/feeds/in-app-feed")).meta.total_count;
  const totalBefore = await feedTotal();
  for (let i = 0; i < 8; i++) await notify("ada");
  for (const deadline = Date.now() + T; (await feedTotal()) < totalBefore + 8;) {
    if (Date.now() > deadline) fail("the 8 notifications never reached the feed");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await page.reload();
  await page.waitForSelector(".tg-more", { timeout: T });
  const firstPage = await page.$$eval(".tg-item", (els) => els.map((e) => e.dataset.id));
  await page.click(".tg-more");
  await page.waitForFunction((n) => document.querySelectorAll(".tg-item").length > n, firstPage.length, { timeout: T });
  const both = await page.$$eval(".tg-item", (els) => els.map((e) => e.dataset.id));
  check(firstPage.length === 15 && both.length > 15 && new Set(both).size === both.length,
    `load more appended the next page (${firstPage.length} → ${both.length} items, no duplicates)`);
  await shot(page, "07-load-more");
  noErrors("inbox interactions");

  // 7b. Expiry, snooze and pin (Tidings' extensions): an expiring item shows its time
  // left, then leaves the list and the badge when it expires; the snooze menu and the
  // pin button work from the keyboard; pinned items sit in a section above the list.
  const lifecycleStep = (extra) => ({ ref: "in_app", type: "channel", channel_key: "in-app-feed",
    template: { markdown_body: "{{ data.text }}" }, ...extra });
  await api("PUT", "/v1/workflows/e2e-expiring", { workflow: { name: "Expiring",
    steps: [lifecycleStep({ expires_after: { unit: "seconds", value: 5 } })] } });
  await api("PUT", "/v1/workflows/e2e-pinned", { workflow: { name: "Pinned", steps: [lifecycleStep({ pinned: true })] } });
  const flashText = `flash sale ${Date.now()}`;
  const pinnedText = `pinned notice ${Date.now()}`;
  await api("POST", "/v1/workflows/e2e-pinned/trigger", { recipients: ["ada"], data: { text: pinnedText } });
  await page.waitForSelector(`.tg-pinned ${itemWith(pinnedText)}`, { timeout: T });
  const pinnedFirst = await page.evaluate(() => {
    const body = document.querySelector(".tg-panel-body");
    const pinned = body.querySelector(".tg-pinned");
    return pinned && pinned.compareDocumentPosition(body.querySelector(".tg-list:not([aria-label^=Pinned])")) === Node.DOCUMENT_POSITION_FOLLOWING;
  });
  check(pinnedFirst, "a pinned step's item shows in the Pinned section above the list");
  const badgeBeforeFlash = await badge(page);
  await api("POST", "/v1/workflows/e2e-expiring/trigger", { recipients: ["ada"], data: { text: flashText } });
  await page.waitForSelector(`${itemWith(flashText)} .tg-expiry`, { timeout: T });
  const timeLeft = await page.textContent(`${itemWith(flashText)} .tg-expiry`);
  check(/^Expires in \d+ sec/.test(timeLeft), `the expiring item shows its time left ("${timeLeft}")`, timeLeft);
  await waitBadge(page, badgeBeforeFlash + 1);
  await shot(page, "07b-expiring");
  await page.waitForSelector(itemWith(flashText), { state: "detached", timeout: T });
  await waitBadge(page, badgeBeforeFlash);
  check(true, "when it expired the item left the list and the badge dropped by one, without a reload");

  // Snooze from the keyboard: Tab to the snooze button, Enter opens the menu on its first
  // choice, ArrowDown moves to "Tomorrow morning", Enter snoozes.
  const snoozeText = await notify("ada");
  await page.waitForSelector(itemWith(snoozeText), { timeout: T });
  const snoozeId = await page.getAttribute(itemWith(snoozeText), "data-id");
  const badgeBeforeSnooze = await badge(page);
  await page.focus(`.tg-item[data-id="${snoozeId}"]`);
  for (let i = 0; i < 8 && !(await page.evaluate(() => document.activeElement.classList.contains("tg-snooze"))); i++) {
    await page.keyboard.press("Tab");
  }
  check(await page.evaluate(() => document.activeElement.classList.contains("tg-snooze")), "the snooze button is reachable with Tab");
  await page.keyboard.press("Enter");
  check(await page.evaluate(() => document.activeElement.getAttribute("role") === "menuitem"
    && document.activeElement.textContent === "In 1 hour"), "Enter opens the snooze menu on \"In 1 hour\"");
  // A push or a seen mark re-renders the list while the menu is open: it stays open.
  await page.evaluate(() => window.tidings.inbox.feed.emit());
  check(await page.evaluate(() => document.activeElement.getAttribute("role") === "menuitem"
    && document.activeElement.textContent === "In 1 hour"), "the open menu and its focus survive a re-render of the list");
  const choices = await page.$$eval(`.tg-item[data-id="${snoozeId}"] .tg-menu-item`, (els) => els.map((e) => e.textContent));
  check(choices.join("|") === "In 1 hour|Tomorrow morning|Next week", "the menu offers 1 hour, tomorrow morning, next week", choices);
  // As in step 10: no arrival animation mid-way while contrast is measured.
  await page.emulateMedia({ reducedMotion: "reduce" });
  await axe(page, "the inbox with the snooze menu open");
  await page.emulateMedia({ reducedMotion: "no-preference" });
  await page.keyboard.press("Escape");
  check(await page.evaluate(() => document.activeElement.classList.contains("tg-snooze")
    && document.activeElement.getAttribute("aria-expanded") === "false"), "Escape closes the menu back onto its button");
  await page.keyboard.press("Enter");
  await page.keyboard.press("ArrowDown");
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/v1/messages/${snoozeId}/snoozed`) && r.status() === 200),
    page.keyboard.press("Enter"),
  ]);
  await page.waitForSelector(`.tg-item[data-id="${snoozeId}"]`, { state: "detached", timeout: T });
  await waitBadge(page, badgeBeforeSnooze - 1);
  const snoozedUntil = new Date((await api("GET", `/v1/messages/${snoozeId}`)).snoozed_until);
  const tomorrow = new Date(); tomorrow.setDate(tomorrow.getDate() + 1);
  check(snoozedUntil.getDate() === tomorrow.getDate() && snoozedUntil.getHours() === 9,
    `"Tomorrow morning" snoozed it until 9:00 tomorrow (${snoozedUntil.toString()}); it left the list and the badge`);
  // Waking it (as its time would) brings it back at the head, unread, live.
  await api("DELETE", `/v1/messages/${snoozeId}/snoozed`);
  await page.waitForSelector(`.tg-list:not([aria-label^=Pinned]) .tg-item[data-id="${snoozeId}"]:first-child`, { timeout: T });
  await waitBadge(page, badgeBeforeSnooze);
  check(true, "the woken item came back live at the head of the list and the badge rose");

  // Pin from the keyboard: the item moves to the Pinned section; the badge does not move.
  const pinTarget = page.locator(`.tg-item[data-id="${snoozeId}"] .tg-pin`);
  await pinTarget.focus();
  await Promise.all([
    page.waitForResponse((r) => r.url().endsWith(`/v1/messages/${snoozeId}/pinned`) && r.status() === 200),
    page.keyboard.press("Enter"),
  ]);
  await page.waitForSelector(`.tg-pinned .tg-item[data-id="${snoozeId}"]`, { timeout: T });
  check(await page.getAttribute(`.tg-pinned .tg-item[data-id="${snoozeId}"] .tg-pin`, "aria-pressed") === "true"
    && await badge(page) === badgeBeforeSnooze && (await api("GET", `/v1/messages/${snoozeId}`)).pinned_at,
  "Enter on the pin button pinned it (in the Pinned section, aria-pressed, badge unchanged)");
  await shot(page, "07b-pinned");
  noErrors("expiry, snooze and pin");

  // 8. The connection state recovers after a server restart and shows what was sent while down.
  await waitLive(page);
  expectErrors = /WebSocket connection to .* failed|ERR_CONNECTION_REFUSED|Failed to load resource/;
  await stopServer();
  await page.waitForFunction(() => {
    const s = window.tidings.inbox.client.socket;
    return s.state === "reconnecting" && s.attempts >= 3;
  }, null, { timeout: 30000 });
  check(["reconnecting", "offline"].includes(await connState(page)), "the panel shows the connection is down");
  await shot(page, "08-reconnecting");
  ({ url: host, secretKey } = await startServer(Number(port), secretKey));
  const disconnected = await page.evaluate(() => !window.tidings.inbox.client.socket.isOpen());
  const whileDown = await notify("ada");
  await waitLive(page);
  await page.waitForSelector(itemWith(whileDown), { timeout: T });
  check(disconnected, "after the restart the socket reconnected by itself, and the item sent before it did shows up");
  await shot(page, "08-recovered");
  expectErrors = null;

  // 9. The admin page: a tenant admin sees an object's feed live; an object without a
  // grant is refused.
  const admin = watch(await context.newPage(), "admin");
  await admin.goto(`${host}/admin?admin=margaret`);
  await admin.waitForSelector('.object-btn[data-key="projects/apollo"]', { timeout: T });
  await admin.click('.object-btn[data-key="projects/apollo"]');
  await admin.waitForSelector("#feed-slot .tg-item", { timeout: T });
  await admin.waitForSelector('#conn-slot .tg-conn[data-state="live"]', { timeout: T });
  const objectText = await notify({ id: "apollo", collection: "projects" }, "acme");
  await admin.waitForSelector(`#feed-slot ${itemWith(objectText)}`, { timeout: T });
  check(true, "the admin page shows projects/apollo's feed and a new item arrives live");
  await page.waitForSelector(itemWith(objectText), { timeout: T });
  check(true, "Ada follows projects/apollo: the same notification reached her open inbox live");
  await shot(admin, "09-admin-live");
  noErrors("the admin page");
  expectErrors = /status of 403/;
  await admin.goto(`${host}/admin?admin=katherine`);
  await admin.waitForSelector("#feed-slot .tg-item", { timeout: T });
  await admin.click(".snippet summary");
  await admin.fill("#other-collection", "projects");
  await admin.fill("#other-id", "gemini");
  await admin.click("#other-form button");
  await admin.waitForSelector("#feed-slot .tg-state--refused", { timeout: T });
  const refusal = await admin.textContent("#feed-slot .tg-state--refused");
  check(/no access to projects\/gemini/.test(refusal), "an object without a grant is refused and the page says so", refusal);
  await shot(admin, "09-admin-refused");
  expectErrors = null;

  // 10. Accessibility: axe-core finds no serious or critical violations, light and dark.
  async function axe(p, what) {
    await p.evaluate(axeSource);
    const result = await p.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
    const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    check(bad.length === 0, `axe: no serious violations on ${what}`, bad.map((v) => ({ id: v.id, nodes: v.nodes.slice(0, 3).map((n) => n.target) })));
  }
  for (const scheme of ["light", "dark"]) {
    // Reduced motion: no arrival/skeleton animation mid-way while contrast is measured.
    await page.emulateMedia({ colorScheme: scheme, reducedMotion: "reduce" });
    await page.goto(`${host}/?user=ada`);
    await page.waitForSelector(".tg-panel:not([hidden]) .tg-item", { timeout: T });
    await axe(page, `the inbox (${scheme})`);
    await shot(page, `10-inbox-${scheme}`);
    await admin.emulateMedia({ colorScheme: scheme, reducedMotion: "reduce" });
    await admin.goto(`${host}/admin?admin=margaret`);
    await admin.waitForSelector("#feed-slot .tg-item", { timeout: T });
    await axe(admin, `the admin page (${scheme})`);
    await shot(admin, `10-admin-${scheme}`);
  }

  // 11. Phone width: the panel fits, nothing scrolls sideways; keyboard opens the panel.
  const phone = watch(await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true }), "phone");
  await phone.goto(`${host}/?user=grace`);
  await phone.waitForSelector(".tg-bell", { timeout: T });
  await phone.focus(".tg-bell");
  await phone.keyboard.press("Enter");
  await phone.waitForSelector(".tg-panel:not([hidden]) .tg-item", { timeout: T });
  const fits = await phone.evaluate(() => {
    const r = document.querySelector(".tg-panel").getBoundingClientRect();
    return { overflow: document.documentElement.scrollWidth - innerWidth, left: r.left, right: r.right, width: innerWidth };
  });
  check(fits.overflow <= 0 && fits.left >= 0 && fits.right <= fits.width, "at 390 px the panel fits the screen without sideways scrolling", fits);
  await phone.keyboard.press("Escape");
  check(await phone.$eval(".tg-panel", (p) => p.hidden) && await phone.evaluate(() => document.activeElement.classList.contains("tg-bell")),
    "Escape closes the panel and returns focus to the bell");
  await shot(phone, "11-phone");
  // 12. Rendering rules on synthetic items (the page's own module): batch fields, and
  // nothing unsafe followed or kept from a body.
  const PNG = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==", "base64");
  await phone.route("https://img.test/**", (r) => r.fulfill({ status: 200, contentType: "image/png", body: PNG }));
  // A body with a handler never comes from the server (it sanitizes); parsing this one
  // makes Chromium report the CSP refusing the handler, which is expected here.
  expectErrors = /Content Security Policy/;
  const rendered = await phone.evaluate(async () => {
    const { renderItem, safeUrl } = await import("/static/inbox.js");
    const batch = renderItem({
      id: "b1", inserted_at: new Date().toISOString(), total_actors: 3, total_activities: 4,
      actors: [{ __typename: "User", id: "u1", name: "Ada Lovelace" }],
      blocks: [{ name: "body", type: "markdown", rendered: '<p>Hi <a href="javascript:alert(1)">x</a><img src="https://img.test/a.png" onerror="window.__pwned = 3"><img src="rel.png"></p>' }],
    });
    return {
      meta: batch.querySelector(".tg-item-meta").textContent,
      href: batch.querySelector(".tg-item-body a").getAttribute("href"),
      imgs: [...batch.querySelectorAll(".tg-item-body img")].map((i) => [i.getAttribute("src"), i.getAttribute("onerror"), i.getAttribute("alt")]),
      pwned: window.__pwned === undefined,
      urls: ["javascript:alert(1)", "data:text/html,x", "#/a", "https://x.example/p"].map((u) => (safeUrl(u) ? "ok" : "no")),
    };
  });
  check(rendered.meta.includes("Ada Lovelace and 2 others") && rendered.meta.includes("4 updates"),
    "a batched item reads \"Ada Lovelace and 2 others\" and \"4 updates\" from total_actors/total_activities", rendered);
  expectErrors = null;
  check(rendered.pwned && await phone.evaluate(() => window.__pwned === undefined) && rendered.href === null && JSON.stringify(rendered.imgs) === JSON.stringify([["https://img.test/a.png", null, ""]])
    && rendered.urls.join() === "no,no,ok,ok", "javascript:/data: URLs, handlers and relative images never survive", rendered);
  noErrors("the whole run");
  console.log("inbox e2e passed");
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
