// Shared by the `/` and `/admin` pages: demo endpoint calls, the toast, and the snippets
// the pages show.

/** Calls a demo endpoint (no credentials: they exist only in demo mode). */
export async function demoApi(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { "Content-Type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json().catch(() => null);
  if (!res.ok) throw new Error((json && json.message) || `HTTP ${res.status}`);
  return json;
}

let toastTimer = null;
export function showToast(text, isError = false) {
  const toast = document.getElementById("toast");
  toast.textContent = text;
  toast.classList.toggle("is-error", isError);
  toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { toast.hidden = true; }, 3500);
}

const origin = () => location.origin;

export function embedSnippet(config) {
  return `<link rel="stylesheet" href="${origin()}/static/inbox.css">
<div id="bell"></div>
<script type="module">
  import { mountInbox } from "${origin()}/static/inbox.js";
  mountInbox(document.getElementById("bell"), {
    host: "${origin()}",
    publicKey: "${config.publicKey}",
    channelId: "${config.channelId}",
    userId: currentUser.id,
    userToken: currentUser.tidingsToken, // signed by your backend
    tenant: currentWorkspace.id,         // optional
  });
</script>`;
}

export function curlSnippet(config, userId, tenant) {
  const body = { recipients: [userId], actor: { id: "linus", name: "Linus Torvalds" }, data: { page_title: "Launch plan", page_url: `${origin()}/#/pages/launch-plan`, comment_preview: "Looks great, ship it!" } };
  if (tenant) body.tenant = tenant;
  return `export SK=$(cargo run -q --release -- keys | awk '/^secret key/ {print $3}')
curl -s -X POST ${origin()}/v1/workflows/new-comment/trigger \\
  -H "Authorization: Bearer $SK" -H "Content-Type: application/json" \\
  -d '${JSON.stringify(body)}'`;
}
