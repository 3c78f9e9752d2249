// Minimal live-feed client for the demo pages: Knock's HTTP feed API plus the Phoenix v2
// socket, exactly as @knocklabs/client speaks them (no build step needed).
export function createFeed({ apiKey, userToken, feedPath, topic, onUpdate, onStatus }) {
  const headers = { Authorization: `Bearer ${apiKey}`, "X-Knock-User-Token": userToken, "Content-Type": "application/json" };
  const ref = "client_demo";
  let items = [], meta = {}, socket = null, seq = 0, joinRef = null, heartbeat = null;

  async function fetchFeed(before) {
    const q = new URLSearchParams({ archived: "exclude", mode: "compact", page_size: "50" });
    if (before) q.set("before", before);
    const res = await fetch(`${feedPath}?${q}`, { headers });
    const body = await res.json();
    if (!res.ok) throw new Error(`${res.status} ${body.code}: ${body.message}`);
    const byId = new Map(items.map((i) => [i.id, i]));
    for (const e of body.entries) byId.set(e.id, e);
    items = [...byId.values()].sort((a, b) => (a.inserted_at < b.inserted_at ? 1 : -1));
    meta = body.meta;
    onUpdate(items, meta);
  }

  function send(frame) { socket.send(JSON.stringify(frame)); }

  function connect() {
    const url = new URL("/ws/v1/websocket", location.href);
    url.protocol = url.protocol.replace("http", "ws");
    url.search = new URLSearchParams({ api_key: apiKey, user_token: userToken, vsn: "2.0.0" });
    socket = new WebSocket(url);
    socket.onopen = () => {
      onStatus("connected");
      joinRef = String(++seq);
      send([joinRef, joinRef, topic, "phx_join", { [ref]: { archived: "exclude", mode: "compact" } }]);
      heartbeat = setInterval(() => send([null, String(++seq), "phoenix", "heartbeat", {}]), 30000);
    };
    socket.onmessage = (ev) => {
      const [, , , event, payload] = JSON.parse(ev.data);
      if (event === "phx_reply" && payload.status !== "ok") onStatus(`join refused: ${JSON.stringify(payload.response)}`);
      if (event === "new-message" && payload.attn && payload.attn.includes(ref)) {
        if (payload.data?.[ref]?.metadata) { meta = payload.data[ref].metadata; onUpdate(items, meta); }
        fetchFeed(items[0]?.__cursor).catch((e) => onStatus(e.message));
      }
    };
    socket.onclose = () => { clearInterval(heartbeat); onStatus("disconnected, retrying in 2 s"); setTimeout(connect, 2000); };
  }

  async function mark(status, id) {
    const res = await fetch("/v1/messages/batch/" + status, { method: "POST", headers, body: JSON.stringify({ message_ids: [id] }) });
    if (!res.ok) onStatus(`mark ${status} failed: ${res.status}`);
    await fetchFeed();
  }

  return { start: async () => { await fetchFeed(); connect(); }, mark };
}

export function renderItems(list, items, onClick) {
  list.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    li.className = item.read_at ? "read" : "unread";
    const body = item.blocks.find((b) => b.name === "body");
    const content = document.createElement("div");
    content.innerHTML = body ? body.rendered : "";  // server-sanitized HTML
    const when = document.createElement("small");
    when.textContent = `${new Date(item.inserted_at).toLocaleString()}${item.tenant ? " · " + item.tenant : ""}`;
    li.append(content, when);
    li.onclick = () => onClick(item);
    return li;
  }));
}

export function tokenSubject(token) {
  try { return JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/"))).sub; } catch { return null; }
}
