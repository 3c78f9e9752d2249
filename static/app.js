// The `/` page: a small host app around the inbox. In demo mode it signs in as a demo
// user (tokens minted by the server's demo endpoints); otherwise it asks for a user token.
import { mountInbox, initials } from "./inbox.js";
import { tokenClaims } from "./tidings.js";
import { demoApi, showToast, embedSnippet, curlSnippet } from "./page.js";

const config = JSON.parse(document.getElementById("tidings-config").textContent);
const $ = (id) => document.getElementById(id);
let inbox = null;
let tenantNames = {};

/** Exposed for the browser tests and for poking around in the console. */
window.tidings = { get inbox() { return inbox; } };

$("embed-code").textContent = embedSnippet(config);

function onNavigate(url) {
  if (url.origin === location.origin && url.pathname === location.pathname && url.hash) {
    history.replaceState(null, "", url.hash);
    showToast(`Your app would now open ${url.hash.slice(1)}`);
  } else {
    location.assign(url.href);
  }
}

function setTenants(ids, selected) {
  const select = $("tenant");
  const options = [["", "All workspaces"], ...ids.map((id) => [id, tenantNames[id] || id])];
  select.replaceChildren(...options.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = label;
    return o;
  }));
  select.value = selected || "";
  $("tenant-wrap").hidden = ids.length === 0;
}

function start({ userId, userToken, name, tenants, open }) {
  if (inbox) inbox.destroy();
  const saved = sessionStorage.getItem(`tidings-tenant:${userId}`) || "";
  const tenant = tenants.includes(saved) ? saved : "";
  setTenants(tenants, tenant);
  $("me").hidden = false;
  $("me").textContent = initials(name || userId);
  $("me").title = `Signed in as ${name || userId}`;
  inbox = mountInbox($("inbox-slot"), {
    host: config.host,
    publicKey: config.publicKey,
    channelId: config.channelId,
    userId,
    userToken,
    tenant: tenant || null,
    tenants: tenantNames,
    onNavigate,
    open,
  });
  $("curl").textContent = curlSnippet(config, userId, tenant);
}

$("tenant").addEventListener("change", (ev) => {
  if (!inbox) return;
  const tenant = ev.target.value;
  sessionStorage.setItem(`tidings-tenant:${inbox.feed.userId}`, tenant);
  inbox.setTenant(tenant);
  $("curl").textContent = curlSnippet(config, inbox.feed.userId, tenant);
});

async function startDemo() {
  $("demo").hidden = false;
  $("eyebrow").textContent = "Demo mode · live in-app notifications";
  const data = await demoApi("GET", "/demo/v1/identities");
  tenantNames = Object.fromEntries(data.tenants.map((t) => [t.id, t.name]));
  const users = data.identities.filter((i) => i.role === "user");
  const select = $("identity");
  select.replaceChildren(...users.map((u) => {
    const o = document.createElement("option");
    o.value = u.id;
    o.textContent = `${u.name} — ${u.title}`;
    return o;
  }));
  const wanted = new URLSearchParams(location.search).get("user") || localStorage.getItem("tidings-demo-user");
  select.value = users.some((u) => u.id === wanted) ? wanted : users[0].id;
  async function signIn(first) {
    const who = users.find((u) => u.id === select.value);
    localStorage.setItem("tidings-demo-user", who.id);
    const { token } = await demoApi("POST", "/demo/v1/token", { id: who.id });
    start({ userId: who.id, userToken: token, name: who.name, tenants: who.tenants, open: first && !matchMedia("(max-width: 560px)").matches });
  }
  select.addEventListener("change", () => signIn(false).catch((e) => showToast(e.message, true)));
  $("send").addEventListener("click", async () => {
    const button = $("send");
    button.disabled = true;
    $("send-status").textContent = "Sending…";
    try {
      const tenant = $("tenant").value || null;
      await demoApi("POST", "/demo/v1/notify", { user_id: select.value, tenant });
      $("send-status").textContent = "Sent. Watch the bell.";
    } catch (e) {
      $("send-status").textContent = e.message;
    } finally {
      button.disabled = false;
      setTimeout(() => { $("send-status").textContent = ""; }, 4000);
    }
  });
  await signIn(true);
}

function startSignIn() {
  $("signin").hidden = false;
  const saved = sessionStorage.getItem("tidings-token");
  if (saved) $("token").value = saved;
  $("tenants").value = sessionStorage.getItem("tidings-tenants") || "";
  const submit = () => {
    const token = $("token").value.trim();
    const claims = tokenClaims(token);
    if (!claims || !claims.sub) {
      $("signin-status").textContent = "That is not a user token (a JWT with a `sub`).";
      return;
    }
    $("signin-status").textContent = "";
    sessionStorage.setItem("tidings-token", token);
    sessionStorage.setItem("tidings-tenants", $("tenants").value);
    const tenants = $("tenants").value.split(",").map((t) => t.trim()).filter(Boolean);
    start({ userId: claims.sub, userToken: token, name: claims.sub, tenants, open: true });
  };
  $("signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); submit(); });
  if (saved) submit();
}

if (config.demo) startDemo().catch((e) => showToast(`Demo unavailable: ${e.message}`, true));
else startSignIn();
