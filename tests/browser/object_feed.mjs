// End-to-end: a tenant admin follows object feeds in headless Chromium. The page (plain
// browser JavaScript, no SDK: @knocklabs/client has no object feeds) uses the admin's
// user token to list the tenant's objects (GET /v1/tenants/{t}/objects), read each
// object feed, and join its socket topic; a trigger to an object of that tenant must
// arrive live, and another tenant's object must show nothing. Started by
// tests/api/browser_objects.rs. Exits 0 only when every step was observed.
import { CHROMIUM, FLAGS, harness, requirePackage, servePage } from "./harness.mjs";

const STEP_TIMEOUT_MS = 15000;

const { fail, need } = harness("object feed e2e");

const cfg = {
  host: need("TIDINGS_URL"),
  publicKey: need("TIDINGS_PUBLIC_KEY"),
  userToken: need("TIDINGS_USER_TOKEN"),
  channelId: need("TIDINGS_CHANNEL_ID"),
  tenant: "acme",
};
const secretKey = need("TIDINGS_SECRET_KEY");
const { chromium } = await requirePackage("playwright-core", fail);

// The admin page: everything it does goes through `window.admin`.
const page_js = `
window.admin = {
  pushes: [],
  async api(path) {
    const res = await fetch(this.cfg.host + path, { headers: {
      authorization: "Bearer " + this.cfg.publicKey, "x-knock-user-token": this.cfg.userToken } });
    return { status: res.status, body: await res.json() };
  },
  feed(id) { return this.api("/v1/objects/projects/" + id + "/feeds/" + this.cfg.channelId); },
  async start(cfg) {
    this.cfg = cfg;
    const objects = await this.api("/v1/tenants/" + cfg.tenant + "/objects?collection=projects");
    const ws = new WebSocket(cfg.host.replace("http", "ws") + "/ws/v1/websocket?vsn=2.0.0&api_key="
      + cfg.publicKey + "&user_token=" + cfg.userToken);
    this.ws = ws;
    ws.onmessage = (e) => {
      const [, ref, topic, event, payload] = JSON.parse(e.data);
      if (event === "phx_reply") this.pushes.push({ topic, event, status: payload.status, ref });
      if (event === "new-message") this.pushes.push({ topic, event,
        total: payload.data && payload.data.client_admin ? payload.data.client_admin.metadata.total_count : null });
    };
    await new Promise((ok, err) => { ws.onopen = ok; ws.onerror = err; });
    let ref = 0;
    for (const id of ["p1", "p2"]) {
      ref += 1;
      ws.send(JSON.stringify([String(ref), String(ref), "object_feeds:" + cfg.channelId + ":projects:" + id,
        "phx_join", { client_admin: {} }]));
    }
    return objects;
  },
};`;
const html = `<!doctype html><html><head><meta charset="utf-8"><title>tenant admin</title></head>
<body><script>${page_js}</script></body></html>`;
const { server, pageUrl } = await servePage(html);

async function call(method, path, body) {
  const res = await fetch(`${cfg.host}${path}`, {
    method,
    headers: { authorization: `Bearer ${secretKey}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  if (res.status !== 200) fail(`${method} ${path} answered ${res.status}: ${await res.text()}`);
  return res.json();
}
const notify = (id, tenant, note) => call("POST", "/v1/workflows/new-comment/trigger", {
  recipients: [{ id, collection: "projects" }], tenant, data: { page_title: note },
});

async function waitFor(page, what, accept) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  let last;
  while (Date.now() < deadline) {
    last = await page.evaluate(() => window.admin.pushes);
    if (accept(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  fail(`timed out waiting for ${what}; pushes: ${JSON.stringify(last)}`);
}
function check(condition, message, seen) {
  if (!condition) fail(`${message}; saw ${JSON.stringify(seen)}`);
  console.log(`ok - ${message}`);
}

let browser;
try {
  await call("PUT", "/v1/objects/projects/p1", { name: "Apollo" });
  await call("PUT", "/v1/objects/projects/p2", { name: "Gemini" });
  await notify("p1", "acme", "first");
  await notify("p2", "globex", "theirs");
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  const page = await browser.newPage();
  page.on("pageerror", (err) => console.log(`[page error] ${err.message}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.admin !== undefined);

  // The first item may still be running: wait until the tenant lists it.
  let objects;
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  do {
    objects = await page.evaluate(async (c) => { window.admin.cfg = c; return window.admin.api(
      "/v1/tenants/" + c.tenant + "/objects?collection=projects"); }, cfg);
  } while (objects.body.entries && objects.body.entries.length === 0 && Date.now() < deadline);
  check(objects.status === 200 && objects.body.entries.map((o) => o.id).join() === "p1",
    "the admin's token lists acme's objects (p1 only)", objects);
  const other = await page.evaluate(() => window.admin.api("/v1/tenants/globex/objects"));
  check(other.status === 403, "the admin's token cannot list globex's objects", other);

  await page.evaluate((c) => window.admin.start(c), cfg);
  await waitFor(page, "both joins", (p) => p.filter((x) => x.event === "phx_reply").length === 2);
  const joins = await page.evaluate(() => window.admin.pushes.filter((x) => x.event === "phx_reply"));
  check(joins.every((j) => j.status === "ok"), "the socket joined both object feeds", joins);
  const initial = await waitFor(page, "the counts after join", (p) => p.filter((x) => x.event === "new-message").length >= 2);
  const p2Initial = initial.find((x) => x.topic.endsWith(":p2") && x.event === "new-message");
  check(p2Initial.total === 0, "globex's object shows no items to acme's admin", initial);

  const p1Feed = await page.evaluate(() => window.admin.feed("p1"));
  check(p1Feed.status === 200 && p1Feed.body.entries.length === 1, "p1's feed has acme's item", p1Feed.body.meta);
  const p2Feed = await page.evaluate(() => window.admin.feed("p2"));
  check(p2Feed.status === 200 && p2Feed.body.entries.length === 0 && p2Feed.body.meta.total_count === 0,
    "p2's feed (globex) is empty for acme's admin", p2Feed.body);

  await notify("p2", "globex", "theirs again");
  await notify("p1", "acme", "second");
  const live = await waitFor(page, "the live push for p1",
    (p) => p.some((x) => x.event === "new-message" && x.topic.endsWith(":p1") && x.total === 2));
  check(!live.some((x) => x.event === "new-message" && x.topic.endsWith(":p2") && x.total > 0),
    "a new acme item on p1 arrived live and nothing of globex's did", live);
  const after = await page.evaluate(() => window.admin.feed("p1"));
  check(after.body.entries.length === 2 && after.body.meta.unread_count === 2,
    "a refetch of p1 shows both items, unread 2", after.body.meta);
  console.log("object feed e2e passed");
} catch (err) {
  fail(err && err.stack ? err.stack : String(err));
} finally {
  if (browser) await browser.close().catch(() => {});
  server.close();
}
process.exit(0);
