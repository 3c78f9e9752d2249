// tidings.js: a small browser client for Tidings, speaking the same HTTP API and Phoenix v2
// socket as the official @knocklabs/client (Knock spec §6.5 and §7): public key plus user
// token on every request, `feeds:<channel>:<user>` topics joined with per-client-ref
// params, a `new-message` push carrying fresh counts, answered by a `before=<head cursor>`
// refetch. No build step, no dependencies.

const JOIN_REF_PREFIX = "client_";
const HEARTBEAT_MS = 30000;
const RECONNECT_STEPS_MS = [1000, 2000, 4000, 8000, 10000];

/** An HTTP error in Knock's shape. */
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "http_error";
  }
}

/** HTTP and socket access for one user token. */
export function createClient({ host = location.origin, publicKey, userToken }) {
  const base = host.replace(/\/$/, "");
  const headers = { Authorization: `Bearer ${publicKey}`, "X-Knock-User-Token": userToken };

  async function request(method, path, { query, body } = {}) {
    const url = new URL(base + path);
    for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) url.searchParams.set(k, v);
    let res;
    try {
      res = await fetch(url, {
        method,
        headers: body ? { ...headers, "Content-Type": "application/json" } : headers,
        body: body ? JSON.stringify(body) : undefined,
      });
    } catch {
      throw new ApiError(0, { code: "network", message: "Tidings cannot be reached." });
    }
    const text = await res.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
    if (!res.ok) throw new ApiError(res.status, json);
    return json;
  }

  const socket = new Socket(base, publicKey, userToken);
  return { request, socket, publicKey, userToken };
}

/**
 * A Phoenix v2 socket that reconnects by itself (backoff 1 s → 10 s), answers nothing
 * but heartbeats, and rejoins its channels after every reconnect. `state` is one of
 * `connecting`, `live`, `reconnecting`, `offline`; listeners get every change.
 */
export class Socket {
  constructor(base, publicKey, userToken) {
    const url = new URL(base + "/ws/v1/websocket");
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    url.search = new URLSearchParams({ api_key: publicKey, user_token: userToken, vsn: "2.0.0" });
    this.url = url.toString();
    this.ref = 0;
    this.channels = new Map();
    this.listeners = new Set();
    this.state = "idle";
    this.attempts = 0;
    this.ws = null;
    this.pendingHeartbeat = null;
    this.closedByUs = false;
    this.connects = 0;
    this.onOnline = () => { if (!this.isOpen()) this.reconnectNow(); };
    this.onVisible = () => { if (document.visibilityState === "visible" && !this.isOpen()) this.reconnectNow(); };
    this.onOffline = () => this.setState("offline");
    addEventListener("online", this.onOnline);
    addEventListener("offline", this.onOffline);
    document.addEventListener("visibilitychange", this.onVisible);
  }

  onState(fn) { this.listeners.add(fn); fn(this.state); return () => this.listeners.delete(fn); }

  setState(state) {
    if (state === this.state) return;
    this.state = state;
    for (const fn of this.listeners) fn(state);
  }

  isOpen() { return this.ws && this.ws.readyState === WebSocket.OPEN; }

  nextRef() { return String(++this.ref); }

  connect() {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    this.closedByUs = false;
    this.setState(this.attempts === 0 && this.connects === 0 ? "connecting" : "reconnecting");
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.attempts = 0;
      this.connects += 1;
      this.setState("live");
      this.pendingHeartbeat = null;
      clearInterval(this.heartbeat);
      this.heartbeat = setInterval(() => this.beat(), HEARTBEAT_MS);
      for (const channel of this.channels.values()) channel.join();
    };
    ws.onmessage = (ev) => this.dispatch(ev.data);
    ws.onclose = () => {
      clearInterval(this.heartbeat);
      if (this.ws !== ws) return;
      this.ws = null;
      for (const channel of this.channels.values()) channel.joined = false;
      if (this.closedByUs) return;
      this.setState(navigator.onLine === false ? "offline" : "reconnecting");
      this.scheduleReconnect();
    };
    // Errors are followed by `close`, which reconnects; nothing else to do here.
    ws.onerror = () => {};
  }

  scheduleReconnect() {
    clearTimeout(this.retry);
    const step = RECONNECT_STEPS_MS[Math.min(this.attempts, RECONNECT_STEPS_MS.length - 1)];
    this.attempts += 1;
    const delay = step / 2 + Math.random() * (step / 2);
    this.retry = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    clearTimeout(this.retry);
    this.connect();
  }

  beat() {
    if (this.pendingHeartbeat) {
      // The last heartbeat was never answered: the connection is dead even if the
      // browser has not noticed. Drop it; `onclose` reconnects.
      this.ws && this.ws.close();
      return;
    }
    this.pendingHeartbeat = this.nextRef();
    this.send([null, this.pendingHeartbeat, "phoenix", "heartbeat", {}]);
  }

  send(frame) {
    if (this.isOpen()) this.ws.send(JSON.stringify(frame));
  }

  dispatch(raw) {
    let frame;
    try { frame = JSON.parse(raw); } catch { return; }
    if (!Array.isArray(frame) || frame.length !== 5) return;
    const [joinRef, ref, topic, event, payload] = frame;
    if (topic === "phoenix") {
      if (ref === this.pendingHeartbeat) this.pendingHeartbeat = null;
      return;
    }
    const channel = this.channels.get(topic);
    if (!channel) return;
    // Phoenix drops pushes addressed to an older join of the topic.
    if (joinRef !== null && joinRef !== channel.joinRef) return;
    channel.receive(ref, event, payload || {});
  }

  /** Joins `topic` with `params` (one client ref); `onPush(metadata)` on each new-message. */
  channel(topic, params, { onPush, onJoin, onError }) {
    const existing = this.channels.get(topic);
    if (existing) existing.leave();
    const channel = new Channel(this, topic, params, { onPush, onJoin, onError });
    this.channels.set(topic, channel);
    if (this.isOpen()) channel.join();
    else this.connect();
    return channel;
  }

  disconnect() {
    this.closedByUs = true;
    clearTimeout(this.retry);
    clearInterval(this.heartbeat);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    removeEventListener("online", this.onOnline);
    removeEventListener("offline", this.onOffline);
    document.removeEventListener("visibilitychange", this.onVisible);
    this.setState("idle");
  }
}

class Channel {
  constructor(socket, topic, params, handlers) {
    this.socket = socket;
    this.topic = topic;
    this.clientRef = JOIN_REF_PREFIX + Math.random().toString(36).slice(2, 12);
    this.params = params;
    this.handlers = handlers;
    this.joinRef = null;
    this.joined = false;
  }

  join() {
    this.joinRef = this.socket.nextRef();
    this.joined = false;
    this.socket.send([this.joinRef, this.joinRef, this.topic, "phx_join", { [this.clientRef]: this.params }]);
  }

  receive(ref, event, payload) {
    if (event === "phx_reply" && ref === this.joinRef) {
      if (payload.status === "ok") {
        this.joined = true;
        this.handlers.onJoin && this.handlers.onJoin();
      } else {
        this.handlers.onError && this.handlers.onError(payload.response || {});
      }
    } else if ((event === "phx_error" || event === "phx_close") && this.socket.channels.get(this.topic) === this) {
      this.joined = false;
      setTimeout(() => { if (this.socket.isOpen() && this.socket.channels.get(this.topic) === this) this.join(); }, 1000);
    } else if (event === "new-message" && payload.event === "new-message") {
      if (!Array.isArray(payload.attn) || !payload.attn.includes(this.clientRef)) return;
      const data = payload.data && payload.data[this.clientRef];
      this.handlers.onPush && this.handlers.onPush(data ? data.metadata : null);
    }
  }

  leave() {
    if (this.socket.channels.get(this.topic) === this) this.socket.channels.delete(this.topic);
    if (this.joinRef) this.socket.send([this.joinRef, this.socket.nextRef(), this.topic, "phx_leave", {}]);
  }
}

/**
 * One feed (a user's or an object's) with its filters, pages, counts and live updates.
 * `subscribe(fn)` calls `fn(feed)` after every change; `fn(feed, {arrived})` names the ids
 * that arrived live.
 */
export class Feed {
  /**
   * @param client from createClient
   * @param opts.path   `/v1/users/{id}/feeds/{channel}` or the object equivalent
   * @param opts.topic  the socket topic
   * @param opts.channelId the channel UUID (bulk calls)
   * @param opts.userId for bulk calls on a user feed (omit on object feeds)
   * @param opts.pageSize items per page
   */
  constructor(client, { path, topic, channelId, userId, pageSize = 20 }) {
    Object.assign(this, { client, path, topic, channelId, userId, pageSize });
    this.items = [];
    /** Pinned items of the view (`pinned=true`), shown above the list. */
    this.pinned = [];
    this.meta = { unread_count: 0, unseen_count: 0, total_count: 0 };
    this.after = null;
    this.status = "idle";
    this.error = null;
    this.loadingMore = false;
    this.filters = { tenant: null, view: "all" };
    this.listeners = new Set();
    this.generation = 0;
    this.channel = null;
  }

  subscribe(fn) { this.listeners.add(fn); return () => this.listeners.delete(fn); }

  emit(extra = {}) { for (const fn of this.listeners) fn(this, extra); }

  /** The query the current view sends (spec §6.1). */
  query(extra = {}) {
    const { tenant, view } = this.filters;
    return {
      page_size: this.pageSize,
      mode: "compact",
      archived: view === "archived" ? "only" : "exclude",
      status: view === "unread" ? "unread" : undefined,
      tenant: tenant || undefined,
      ...extra,
    };
  }

  /** What the badge counts: unarchived items in the current tenant, whatever the tab. */
  joinParams() {
    const params = { archived: "exclude", mode: "compact" };
    if (this.filters.tenant) params.tenant = this.filters.tenant;
    return params;
  }

  /** Changes tenant and/or tab: fetches the first page and rejoins with the new scope. */
  async setFilters(filters) {
    const tenantChanged = "tenant" in filters && filters.tenant !== this.filters.tenant;
    this.filters = { ...this.filters, ...filters };
    if (tenantChanged && this.channel) this.listen();
    await this.load();
  }

  /** The first page of the current view (replaces what is shown). */
  async load() {
    const generation = ++this.generation;
    this.status = this.items.length ? "refreshing" : "loading";
    if (this.status === "loading") this.emit();
    try {
      const [body, pinned] = await Promise.all([
        this.client.request("GET", this.path, { query: this.query() }),
        this.filters.view === "archived"
          ? { entries: [] }
          : this.client.request("GET", this.path, { query: this.query({ pinned: true }) }),
      ]);
      if (generation !== this.generation) return;
      this.items = body.entries;
      this.pinned = pinned.entries;
      this.after = body.page_info.after;
      this.applyMeta(body.meta);
      this.status = "ready";
      this.error = null;
    } catch (err) {
      if (generation !== this.generation) return;
      this.status = "error";
      this.error = err;
      this.items = [];
    }
    this.emit();
  }

  applyMeta(meta) {
    // `status` does not narrow the badge counts, but `archived=only` does: the archive
    // tab's counts are not the badge's.
    if (!meta) return;
    if (this.filters.view === "archived") {
      this.meta = { ...this.meta, archived_total: meta.total_count };
    } else {
      this.meta = { ...this.meta, ...meta };
    }
  }

  /** The next (older) page, by cursor. */
  async loadMore() {
    if (!this.after || this.loadingMore) return;
    this.loadingMore = true;
    this.emit();
    const generation = this.generation;
    try {
      const body = await this.client.request("GET", this.path, { query: this.query({ after: this.after }) });
      if (generation === this.generation) {
        this.merge(body.entries);
        this.after = body.page_info.after;
      }
    } catch (err) {
      this.error = err;
    }
    this.loadingMore = false;
    this.emit();
  }

  merge(entries) {
    const byId = new Map(this.items.map((i) => [i.id, i]));
    for (const e of entries) byId.set(e.id, e);
    this.items = [...byId.values()].sort((a, b) => (a.inserted_at < b.inserted_at ? 1 : a.inserted_at > b.inserted_at ? -1 : 0));
  }

  /** Items newer than the head (what a `new-message` push asks for, spec §7.4). */
  async fetchNewer() {
    if (this.filters.view === "archived" || this.status === "loading" || this.status === "refreshing") return;
    if (this.status !== "ready") return this.load();
    const generation = this.generation;
    const head = this.items[0] && this.items[0].__cursor;
    const body = await this.client.request("GET", this.path, { query: this.query(head ? { before: head } : {}) });
    if (generation !== this.generation) return;
    const known = new Set(this.items.map((i) => i.id));
    const arrived = body.entries.filter((e) => !known.has(e.id)).map((e) => e.id);
    this.merge(body.entries);
    this.applyMeta(body.meta);
    if (!head && body.page_info) this.after = body.page_info.after;
    this.emit({ arrived });
  }

  /** Joins the socket topic; every push updates the badge and fetches what is new. */
  listen({ onRefused } = {}) {
    if (onRefused) this.onRefused = onRefused;
    this.channel = this.client.socket.channel(this.topic, this.joinParams(), {
      onPush: (metadata) => {
        if (metadata) { this.meta = { ...this.meta, ...metadata }; this.emit(); }
        this.fetchNewer().catch((err) => { this.error = err; this.emit(); });
      },
      onError: (response) => this.onRefused && this.onRefused(response),
    });
  }

  stop() {
    if (this.channel) this.channel.leave();
    this.channel = null;
  }

  patch(ids, change) {
    const set = new Set(ids);
    this.items = this.items.map((i) => (set.has(i.id) ? { ...i, ...change } : i));
  }

  /** `POST /v1/messages/batch/{status}`, applied to what is shown at once. */
  async mark(status, items, metadata) {
    if (!items.length) return;
    const ids = items.map((i) => i.id);
    const now = new Date().toISOString();
    const unread = items.filter((i) => !i.read_at && !i.archived_at).length;
    const unseen = items.filter((i) => !i.seen_at && !i.archived_at).length;
    const m = { ...this.meta };
    if (status === "seen") { this.patch(ids, { seen_at: now }); m.unseen_count = Math.max(0, m.unseen_count - unseen); }
    if (status === "read") { this.patch(ids, { read_at: now }); m.unread_count = Math.max(0, m.unread_count - unread); }
    if (status === "interacted") {
      this.patch(ids, { interacted_at: now });
      for (const i of items) { if (!i.read_at) this.patch([i.id], { read_at: now }); if (!i.seen_at) this.patch([i.id], { seen_at: now }); }
      m.unread_count = Math.max(0, m.unread_count - unread);
      m.unseen_count = Math.max(0, m.unseen_count - unseen);
    }
    if (status === "archived" || status === "unarchived") {
      // Leaves the current tab; the badge counts change by what it held.
      this.items = this.items.filter((i) => !ids.includes(i.id));
      const sign = status === "archived" ? -1 : 1;
      m.unread_count = Math.max(0, m.unread_count + sign * items.filter((i) => !i.read_at).length);
      m.unseen_count = Math.max(0, m.unseen_count + sign * items.filter((i) => !i.seen_at).length);
      m.total_count = Math.max(0, m.total_count + sign * items.length);
    }
    this.meta = m;
    this.emit();
    try {
      await this.client.request("POST", `/v1/messages/batch/${status}`, { body: metadata ? { message_ids: ids, metadata } : { message_ids: ids } });
    } catch (err) {
      this.error = err;
      await this.load();
    }
  }

  /** Items to show now: an item past its `expires_at` is gone even before the push. */
  visible(items, now = Date.now()) {
    return items.filter((i) => !i.expires_at || Date.parse(i.expires_at) > now);
  }

  /**
   * Snoozes `item` until `until` (a Date): it leaves the list and the badge at once, and
   * comes back unread at the head (pushed) when it wakes. Tidings' extension.
   */
  async snooze(item, until) {
    const gone = (list) => list.filter((i) => i.id !== item.id);
    this.items = gone(this.items);
    this.pinned = gone(this.pinned);
    if (!item.archived_at) {
      const m = { ...this.meta };
      m.total_count = Math.max(0, m.total_count - 1);
      if (!item.read_at) m.unread_count = Math.max(0, m.unread_count - 1);
      if (!item.seen_at) m.unseen_count = Math.max(0, m.unseen_count - 1);
      this.meta = m;
    }
    this.emit();
    try {
      await this.client.request("PUT", `/v1/messages/${encodeURIComponent(item.id)}/snoozed`, { body: { snoozed_until: until.toISOString() } });
    } catch (err) {
      this.error = err;
      await this.load();
    }
  }

  /** Pins or unpins `item` (Tidings' extension); counts do not change. */
  async pin(item, on) {
    const pinned_at = on ? new Date().toISOString() : null;
    this.patch([item.id], { pinned_at });
    this.pinned = on
      ? [{ ...item, pinned_at }, ...this.pinned.filter((i) => i.id !== item.id)]
      : this.pinned.filter((i) => i.id !== item.id);
    if (!on) this.merge([{ ...item, pinned_at }]);
    this.emit();
    try {
      await this.client.request(on ? "PUT" : "DELETE", `/v1/messages/${encodeURIComponent(item.id)}/pinned`);
    } catch (err) {
      this.error = err;
      await this.load();
    }
  }

  /** One bulk request for the whole feed scope (spec §6.5 `markAllAsRead`). */
  async markAllRead() {
    const now = new Date().toISOString();
    this.items = this.items.map((i) => (i.read_at ? i : { ...i, read_at: now }));
    this.meta = { ...this.meta, unread_count: 0 };
    this.emit();
    const body = { user_ids: [this.userId], engagement_status: "unread", archived: "exclude" };
    if (this.filters.tenant) body.tenants = [this.filters.tenant];
    try {
      await this.client.request("POST", `/v1/channels/${this.channelId}/messages/bulk/read`, { body });
    } catch (err) {
      this.error = err;
    }
    // Converge with the server's counts (items without a tenant, concurrent arrivals).
    await this.load();
  }
}

/** The claims of a JWT, unverified (to show who is signed in and what grants say). */
export function tokenClaims(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return null;
  }
}
