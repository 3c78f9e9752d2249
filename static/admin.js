// The `/admin` page: a tenant admin (or an object's owner) picks an object their token
// grants and watches its feed live, rendered like the inbox. What the token does not grant
// the server refuses, and the page says so.
import { createClient, Feed, tokenClaims } from "./tidings.js";
import { feedList, connectionPill, initials } from "./inbox.js";
import { demoApi, showToast } from "./page.js";

const config = JSON.parse(document.getElementById("tidings-config").textContent);
const $ = (id) => document.getElementById(id);
const state = { client: null, feed: null, claims: null, name: null, demo: null, object: null };
window.tidings = { get feed() { return state.feed; } };

/** What the token's grants name: tenants and objects (paths as in Knock's grants). */
function grantsOf(claims) {
  const tenants = [];
  const objects = [];
  for (const uri of Object.keys((claims && claims.grants) || {})) {
    let path;
    try { path = new URL(uri, "https://x").pathname; } catch { continue; }
    const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
    if (parts[0] !== "v1") continue;
    if (parts[1] === "tenants" && parts.length === 3) tenants.push(parts[2]);
    else if (parts[1] === "objects" && parts[2] === "$tenants" && parts.length === 4) tenants.push(parts[3]);
    else if (parts[1] === "objects" && parts.length === 4) objects.push({ collection: parts[2], id: parts[3] });
  }
  return { tenants, objects };
}

const tenantName = (id) => (state.demo && state.demo.tenants.find((t) => t.id === id) || {}).name || id;

function signIn(token, name) {
  if (state.feed) state.feed.stop();
  if (state.client) state.client.socket.disconnect();
  state.claims = tokenClaims(token);
  state.name = name || (state.claims && state.claims.sub) || "admin";
  state.client = createClient({ host: config.host, publicKey: config.publicKey, userToken: token });
  $("me").hidden = false;
  $("me").textContent = initials(state.name);
  $("me").title = `Signed in as ${state.name}`;
  const grants = grantsOf(state.claims);
  state.grants = grants;
  const said = [];
  if (grants.tenants.length) said.push(`tenant admin of ${grants.tenants.map(tenantName).join(", ")}`);
  if (grants.objects.length) said.push(`granted ${grants.objects.map((o) => `${o.collection}/${o.id}`).join(", ")}`);
  $("grants").textContent = said.length ? `This token: ${said.join("; ")}.` : "This token names no tenant or object grants.";
  const collections = new Set(grants.objects.map((o) => o.collection));
  if (state.demo) for (const o of state.demo.objects) collections.add(o.collection);
  const select = $("collection");
  select.replaceChildren(...[...collections].map((c) => Object.assign(document.createElement("option"), { value: c, textContent: c })));
  select.closest(".field").hidden = collections.size === 0;
  showFeed(null);
  listObjects().catch((e) => showToast(e.message, true));
}

/** Objects of the selected collection in the admin's tenants, plus those granted by name. */
async function listObjects() {
  const collection = $("collection").value;
  const found = new Map();
  const notes = [];
  for (const tenant of state.grants.tenants) {
    try {
      const body = await state.client.request("GET", `/v1/tenants/${encodeURIComponent(tenant)}/objects`, { query: { collection } });
      for (const o of body.entries || body.items || []) {
        found.set(`${o.collection || collection}/${o.id}`, { collection: o.collection || collection, id: o.id, name: o.name || (o.properties && o.properties.name) || o.id, tenant });
      }
    } catch (err) {
      if (err.status === 404 && err.code === "route_missing" && state.demo) {
        // Servers without the listing endpoint: the demo knows its own objects.
        for (const o of state.demo.objects.filter((x) => x.tenant === tenant && x.collection === collection)) found.set(`${o.collection}/${o.id}`, o);
        notes.push("This server cannot list a tenant's objects; showing the demo's.");
      } else {
        notes.push(`Listing ${tenantName(tenant)}'s objects failed: ${err.message}`);
      }
    }
  }
  for (const o of state.grants.objects.filter((x) => x.collection === collection)) {
    const known = state.demo && state.demo.objects.find((x) => x.collection === o.collection && x.id === o.id);
    if (!found.has(`${o.collection}/${o.id}`)) found.set(`${o.collection}/${o.id}`, known || { ...o, name: o.id });
  }
  const list = $("objects");
  list.replaceChildren(...[...found.values()].map((o) => {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "object-btn";
    b.dataset.key = `${o.collection}/${o.id}`;
    const glyph = Object.assign(document.createElement("span"), { className: "object-glyph", textContent: initials(o.name || o.id) });
    glyph.setAttribute("aria-hidden", "true");
    const text = document.createElement("span");
    text.append(String(o.name || o.id), Object.assign(document.createElement("small"), { textContent: `${o.collection}/${o.id}${o.tenant ? ` · ${tenantName(o.tenant)}` : ""}` }));
    b.append(glyph, text);
    b.addEventListener("click", () => {
      showFeed(o);
      // On narrow screens the feed sits below the list: bring it into view.
      if (matchMedia("(max-width: 860px)").matches) document.querySelector(".feed-card").scrollIntoView({ block: "start" });
    });
    li.append(b);
    return li;
  }));
  $("objects-note").textContent = found.size ? notes.join(" ") : [...notes, `No ${collection || "objects"} to show for this token.`].join(" ");
  if (found.size && !state.object) showFeed(found.values().next().value);
}

function showFeed(object) {
  if (state.feed) state.feed.stop();
  state.feed = null;
  state.object = object;
  for (const b of document.querySelectorAll(".object-btn")) b.setAttribute("aria-current", String(object !== null && b.dataset.key === `${object.collection}/${object.id}`));
  $("counts").hidden = true;
  $("send").hidden = true;
  if (!object) {
    $("feed-title").textContent = "No object selected";
    $("feed-sub").textContent = "Pick an object on the left.";
    $("feed-slot").replaceChildren();
    return;
  }
  const { collection, id } = object;
  $("feed-title").textContent = object.name || id;
  $("feed-sub").textContent = `${collection}/${id}`;
  const feed = new Feed(state.client, {
    path: `/v1/objects/${encodeURIComponent(collection)}/${encodeURIComponent(id)}/feeds/${encodeURIComponent(config.channelId)}`,
    topic: `object_feeds:${config.channelId}:${collection}:${id}`,
    channelId: config.channelId,
    pageSize: 20,
  });
  state.feed = feed;
  const list = feedList(feed, {
    tenants: Object.fromEntries(((state.demo && state.demo.tenants) || []).map((t) => [t.id, t.name])),
    label: `Feed of ${collection}/${id}`,
    emptyText: () => ["No notifications yet", "Items sent to this object appear here live."],
  });
  $("feed-slot").replaceChildren(list);
  $("conn-slot").replaceChildren(connectionPill(state.client.socket));
  feed.subscribe(() => {
    if (feed.status === "error" && feed.error && feed.error.status === 403) {
      const title = list.querySelector(".tg-state-title");
      if (title) title.textContent = `${state.name} has no access to ${collection}/${id}`;
      $("counts").hidden = true;
      return;
    }
    if (feed.status !== "ready") return;
    $("counts").hidden = false;
    $("count-unread").replaceChildren(Object.assign(document.createElement("strong"), { textContent: String(feed.meta.unread_count || 0) }), " unread");
    $("count-total").replaceChildren(Object.assign(document.createElement("strong"), { textContent: String(feed.meta.total_count || 0) }), " total");
    $("send").hidden = !state.demo;
  });
  feed.load().then(() => {
    if (state.feed === feed && feed.status === "ready") feed.listen();
  });
}

$("collection").addEventListener("change", () => { state.object = null; listObjects().catch((e) => showToast(e.message, true)); });
$("other-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const collection = $("other-collection").value.trim();
  const id = $("other-id").value.trim();
  if (!collection || !id || !state.client) return;
  const known = state.demo && state.demo.objects.find((x) => x.collection === collection && x.id === id);
  showFeed(known || { collection, id, name: id });
});
$("send").addEventListener("click", async () => {
  if (!state.object) return;
  try {
    await demoApi("POST", "/demo/v1/notify", { collection: state.object.collection, object_id: state.object.id });
  } catch (e) {
    showToast(e.message, true);
  }
});

async function startDemo() {
  $("demo-pill").hidden = false;
  $("identity-field").hidden = false;
  $("eyebrow").textContent = "Demo mode · tenant admin";
  state.demo = await demoApi("GET", "/demo/v1/identities");
  const admins = state.demo.identities.filter((i) => i.role === "admin");
  const select = $("identity");
  select.replaceChildren(...admins.map((a) => Object.assign(document.createElement("option"), { value: a.id, textContent: `${a.name} — ${a.title}` })));
  const wanted = new URLSearchParams(location.search).get("admin") || localStorage.getItem("tidings-demo-admin");
  select.value = admins.some((a) => a.id === wanted) ? wanted : admins[0].id;
  const use = async () => {
    const who = admins.find((a) => a.id === select.value);
    localStorage.setItem("tidings-demo-admin", who.id);
    const { token } = await demoApi("POST", "/demo/v1/token", { id: who.id });
    signIn(token, who.name);
  };
  select.addEventListener("change", () => use().catch((e) => showToast(e.message, true)));
  await use();
}

function startSignIn() {
  const form = $("signin-form");
  form.hidden = false;
  const saved = sessionStorage.getItem("tidings-admin-token");
  if (saved) $("token").value = saved;
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token").value.trim();
    if (!tokenClaims(token)) { $("grants").textContent = "That is not a user token (JWT)."; return; }
    sessionStorage.setItem("tidings-admin-token", token);
    signIn(token);
  });
  if (saved) signIn(saved);
}

if (config.demo) startDemo().catch((e) => showToast(`Demo unavailable: ${e.message}`, true));
else startSignIn();
