// inbox.js: the Tidings inbox (a bell, its badge and a panel) and the feed list the admin
// page reuses. Plain DOM, no framework. Item HTML comes only from the server-sanitized
// `rendered` HTML of the `body` block; every other field is written as text, and URLs are
// followed only when they are http(s) or same-page.
import { createClient, Feed, tokenClaims } from "./tidings.js";

const h = (tag, attrs = {}, ...children) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
};

const svg = (paths, cls = "tg-icon") => {
  const el = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  el.setAttribute("viewBox", "0 0 24 24");
  el.setAttribute("class", cls);
  el.setAttribute("aria-hidden", "true");
  el.setAttribute("focusable", "false");
  for (const d of paths) {
    const p = document.createElementNS("http://www.w3.org/2000/svg", "path");
    p.setAttribute("d", d);
    el.append(p);
  }
  return el;
};

export const ICONS = {
  bell: ["M6 8a6 6 0 1 1 12 0c0 7 3 9 3 9H3s3-2 3-9", "M10.3 21a1.94 1.94 0 0 0 3.4 0"],
  archive: ["M3 4h18v4H3z", "M5 8v11a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V8", "M10 12h4"],
  unarchive: ["M3 4h18v4H3z", "M5 8v11a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V8", "M12 17v-6", "M9.5 13.5 12 11l2.5 2.5"],
  check: ["M20 6 9 17l-5-5"],
  inbox: ["M22 12h-6l-2 3h-4l-2-3H2", "M5.45 5.11 2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z"],
  alert: ["M12 9v4", "M12 17h.01", "M10.29 3.86 1.82 18a2 2 0 0 0 1.71 3h16.94a2 2 0 0 0 1.71-3L13.71 3.86a2 2 0 0 0-3.42 0z"],
  lock: ["M5 11h14v10H5z", "M8 11V7a4 4 0 0 1 8 0v4"],
  clock: ["M12 21a9 9 0 1 0 0-18 9 9 0 0 0 0 18z", "M12 7v5l3 2"],
  pin: ["M12 17v5", "M9 3h6l-1 5 3 4H7l3-4z"],
  spark: ["M12 3v4", "M12 17v4", "M3 12h4", "M17 12h4", "M5.6 5.6l2.8 2.8", "M15.6 15.6l2.8 2.8", "M5.6 18.4l2.8-2.8", "M15.6 8.4l2.8-2.8"],
};
export const icon = (name, cls) => svg(ICONS[name], cls);

/** A URL that is safe to follow: same-page (`#…`), relative, or http(s). */
export function safeUrl(raw) {
  if (typeof raw !== "string" || !raw.trim()) return null;
  try {
    const url = new URL(raw.trim(), location.href);
    return url.protocol === "http:" || url.protocol === "https:" ? url : null;
  } catch {
    return null;
  }
}

const DROP = "script,style,iframe,object,embed,form,input,button,textarea,select,link,meta,base,svg,math";

/** The body block's HTML as a fragment, with a second, client-side pass of defence. */
function bodyFragment(item) {
  const block = (item.blocks || []).find((b) => b.name === "body");
  const tpl = document.createElement("template");
  tpl.innerHTML = block && typeof block.rendered === "string" ? block.rendered : "";
  tpl.content.querySelectorAll(DROP).forEach((el) => el.remove());
  for (const el of tpl.content.querySelectorAll("*")) {
    for (const attr of [...el.attributes]) {
      const name = attr.name.toLowerCase();
      if (name.startsWith("on") || name === "style" || name === "srcdoc") el.removeAttribute(attr.name);
      else if (name === "href" && !safeUrl(attr.value)) el.removeAttribute(attr.name);
      // Images only from absolute https URLs (no relative or mixed-content fetches).
      else if (name === "src" && !/^https:\/\//i.test(attr.value.trim())) el.removeAttribute(attr.name);
    }
    if (el.tagName === "IMG") {
      if (!el.hasAttribute("src")) { el.remove(); continue; }
      if (!el.hasAttribute("alt")) el.setAttribute("alt", "");
    }
    if (el.tagName === "A") { el.setAttribute("rel", "noopener noreferrer"); el.setAttribute("tabindex", "-1"); }
  }
  return tpl.content;
}

const PALETTE = 8;
function hue(id) {
  let n = 0;
  for (const ch of String(id)) n = (n * 31 + ch.codePointAt(0)) >>> 0;
  return n % PALETTE;
}

export function initials(name) {
  const words = String(name || "").trim().split(/\s+/).filter(Boolean);
  if (!words.length) return "?";
  const letters = words.length === 1 ? [...words[0]].slice(0, 2) : [[...words[0]][0], [...words[words.length - 1]][0]];
  return letters.join("").toUpperCase();
}

function actorName(actor) {
  if (!actor) return null;
  return actor.name || (actor.properties && actor.properties.name) || actor.id || null;
}

function avatar(actor) {
  if (!actor) return h("span", { class: "tg-avatar tg-avatar--system", "aria-hidden": "true" }, icon("spark"));
  const name = actorName(actor);
  const url = safeUrl(actor.avatar || (actor.properties && actor.properties.avatar));
  const el = h("span", { class: `tg-avatar tg-hue-${hue(actor.id || name)}`, "aria-hidden": "true" }, initials(name));
  if (url && url.protocol === "https:") {
    const img = h("img", { alt: "", src: url.href, loading: "lazy", referrerpolicy: "no-referrer" });
    img.addEventListener("error", () => img.remove());
    el.append(img);
  }
  return el;
}

const rtf = typeof Intl !== "undefined" && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" }) : null;

export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return "";
  const s = Math.round((t - now) / 1000);
  const abs = Math.abs(s);
  if (abs < 45) return "just now";
  const steps = [[60, "second", 1], [3600, "minute", 60], [86400, "hour", 3600], [604800, "day", 86400]];
  for (const [limit, unit, div] of steps) {
    if (abs < limit) return rtf ? rtf.format(Math.round(s / div), unit) : `${Math.round(abs / div)} ${unit}s ago`;
  }
  return new Date(t).toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** The snooze menu's choices: when each one wakes the item, from `now`. */
export const SNOOZE_CHOICES = [
  { key: "hour", label: "In 1 hour", until: (now = new Date()) => new Date(now.getTime() + 3600e3) },
  {
    key: "tomorrow", label: "Tomorrow morning",
    until: (now = new Date()) => new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1, 9),
  },
  {
    key: "week", label: "Next week",
    // Next Monday, 9:00 local time.
    until: (now = new Date()) => new Date(now.getFullYear(), now.getMonth(), now.getDate() + ((8 - now.getDay()) % 7 || 7), 9),
  },
];

/**
 * The snooze button and its menu (keyboard: Enter opens, arrows move, Escape closes).
 * `state.open` names the item whose menu is open, so a re-render of the list (a push,
 * a seen mark) keeps it open, and focus comes back through the `data-focus` keys.
 */
function snoozeControl(item, onSnooze, state) {
  const isOpen = state.open === item.id;
  const button = h("button", {
    type: "button", class: "tg-icon-btn tg-snooze", "aria-label": "Snooze", title: "Snooze",
    "aria-haspopup": "menu", "aria-expanded": String(isOpen), "data-focus": `snooze:${item.id}`,
  }, icon("clock"));
  const choices = SNOOZE_CHOICES.map((c) => h("button", {
    type: "button", role: "menuitem", tabindex: "-1", class: "tg-menu-item", "data-choice": c.key,
    "data-focus": `snooze:${item.id}:${c.key}`,
    onclick: (ev) => { ev.stopPropagation(); close(false); onSnooze(item, c.until()); },
  }, c.label));
  const menu = h("div", { class: "tg-menu", role: "menu", "aria-label": "Snooze until", hidden: !isOpen }, choices);
  function close(refocus) {
    if (state.open === item.id) state.open = null;
    menu.hidden = true;
    button.setAttribute("aria-expanded", "false");
    if (refocus) button.focus();
  }
  button.addEventListener("click", (ev) => {
    ev.stopPropagation();
    if (!menu.hidden) return close(true);
    state.open = item.id;
    menu.hidden = false;
    button.setAttribute("aria-expanded", "true");
    choices[0].focus();
  });
  menu.addEventListener("click", (ev) => ev.stopPropagation());
  menu.addEventListener("keydown", (ev) => {
    const i = choices.indexOf(document.activeElement);
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      choices[(i + (ev.key === "ArrowDown" ? 1 : choices.length - 1)) % choices.length].focus();
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      ev.stopPropagation();
      close(true);
    } else if (ev.key === "Tab") {
      close(false);
    }
  });
  // Focus leaving for elsewhere closes it (not a re-render: that drops this menu first).
  menu.addEventListener("focusout", (ev) => {
    if (ev.relatedTarget && !menu.contains(ev.relatedTarget) && ev.relatedTarget !== button) close(false);
  });
  return h("span", { class: "tg-snooze-wrap" }, button, menu);
}

/** How long until `iso` ("in 5 sec.", "in 2 hr."), for an expiring item's time left. */
export function timeLeft(iso, now = Date.now()) {
  const s = Math.round((Date.parse(iso) - now) / 1000);
  if (Number.isNaN(s)) return "";
  if (s <= 0) return "now";
  if (s < 60) return rtf ? rtf.format(s, "second") : `in ${s} seconds`;
  return relativeTime(iso, now);
}

/** "Ada Lovelace and 3 others", from the batch fields when present. */
export function whoLine(item) {
  const name = actorName(item.actors && item.actors[0]);
  const others = Math.max(0, (item.total_actors || 0) - 1);
  if (!name) return null;
  return others > 0 ? `${name} and ${others} other${others === 1 ? "" : "s"}` : name;
}

/**
 * One feed item. `handlers` (absent on read-only views): open(item), button(item, b),
 * archive(item), unarchive(item).
 */
export function renderItem(item, { handlers, tenants = {}, showTenant = true, fresh = false } = {}) {
  const unread = !item.read_at;
  const body = h("div", { class: "tg-item-body" });
  body.append(bodyFragment(item));
  const who = whoLine(item);
  const activities = item.total_activities > 1 ? `${item.total_activities} updates` : null;
  const tenantName = item.tenant ? tenants[item.tenant] || item.tenant : null;
  const meta = h("div", { class: "tg-item-meta" },
    h("time", { datetime: item.inserted_at, title: new Date(item.inserted_at).toLocaleString() }, relativeTime(item.inserted_at)),
    who && (item.total_actors || 0) > 1 ? h("span", { class: "tg-batch" }, `${who}`) : null,
    activities ? h("span", { class: "tg-batch" }, activities) : null,
    showTenant && tenantName ? h("span", { class: "tg-chip" }, tenantName) : null,
    item.expires_at ? h("span", { class: "tg-chip tg-expiry" }, "Expires ",
      h("time", { datetime: item.expires_at, "data-left": "", title: new Date(item.expires_at).toLocaleString() }, timeLeft(item.expires_at))) : null,
  );
  const actions = (item.blocks || []).find((b) => b.name === "actions");
  const buttons = actions && Array.isArray(actions.buttons) && actions.buttons.length && handlers
    ? h("div", { class: "tg-item-buttons" }, actions.buttons.map((b, i) =>
      h("button", {
        type: "button",
        class: i === 0 ? "tg-btn tg-btn--primary tg-btn--sm" : "tg-btn tg-btn--sm",
        onclick: (ev) => { ev.stopPropagation(); handlers.button(item, b); },
      }, String(b.label || b.name || "Open"))))
    : null;
  const side = h("div", { class: "tg-item-side" },
    unread ? h("span", { class: "tg-dot", title: "Unread" }, h("span", { class: "tg-sr" }, "Unread")) : null,
    handlers && handlers.pin ? h("button", {
      type: "button",
      class: `tg-icon-btn tg-pin${item.pinned_at ? " is-pinned" : ""}`,
      "aria-label": item.pinned_at ? "Unpin" : "Pin",
      "aria-pressed": item.pinned_at ? "true" : "false",
      title: item.pinned_at ? "Unpin" : "Pin",
      "data-focus": `pin:${item.id}`,
      onclick: (ev) => { ev.stopPropagation(); handlers.pin(item, !item.pinned_at); },
    }, icon("pin")) : null,
    handlers && handlers.snooze && !item.archived_at ? snoozeControl(item, handlers.snooze, handlers.snoozeMenu || {}) : null,
    handlers ? h("button", {
      type: "button",
      class: "tg-icon-btn tg-archive",
      "aria-label": item.archived_at ? "Unarchive" : "Archive",
      title: item.archived_at ? "Unarchive" : "Archive",
      onclick: (ev) => { ev.stopPropagation(); (item.archived_at ? handlers.unarchive : handlers.archive)(item); },
    }, icon(item.archived_at ? "unarchive" : "archive")) : null,
  );
  const li = h("li", {
    class: `tg-item${unread ? " is-unread" : ""}${fresh ? " is-new" : ""}${handlers ? " is-interactive" : ""}`,
    "data-id": item.id,
    "data-tenant": item.tenant || "",
    tabindex: handlers ? "0" : null,
  }, avatar(item.actors && item.actors[0]), h("div", { class: "tg-item-main" }, body, meta, buttons), side);
  if (handlers) {
    li.addEventListener("click", (ev) => {
      if (ev.target.closest("a")) ev.preventDefault();
      handlers.open(item);
    });
    li.addEventListener("keydown", (ev) => {
      if ((ev.key === "Enter" || ev.key === " ") && ev.target === li) { ev.preventDefault(); handlers.open(item); }
    });
  }
  return li;
}

/** Loading, empty and error states, designed once for both pages. */
export function stateView(kind, { title, text, action } = {}) {
  if (kind === "loading") {
    return h("div", { class: "tg-state tg-state--loading", role: "status" },
      h("span", { class: "tg-sr" }, "Loading notifications"),
      [0, 1, 2].map(() => h("div", { class: "tg-skeleton", "aria-hidden": "true" },
        h("span", { class: "tg-skel-avatar" }), h("span", { class: "tg-skel-lines" }, h("span"), h("span")))));
  }
  const glyph = { empty: "inbox", error: "alert", refused: "lock" }[kind] || "inbox";
  return h("div", { class: `tg-state tg-state--${kind}`, role: kind === "error" || kind === "refused" ? "alert" : "status" },
    h("span", { class: "tg-state-icon" }, icon(glyph)),
    h("p", { class: "tg-state-title" }, title),
    text ? h("p", { class: "tg-state-text" }, text) : null,
    action || null);
}

const CONN_LABEL = { idle: "Offline", connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };

/** The connection pill; follows the socket's state. */
export function connectionPill(socket) {
  const label = h("span", { class: "tg-conn-label" });
  const pill = h("span", { class: "tg-conn", role: "status", title: "Live updates" }, h("span", { class: "tg-conn-dot", "aria-hidden": "true" }), label);
  socket.onState((state) => {
    pill.dataset.state = state;
    label.textContent = CONN_LABEL[state] || state;
  });
  return pill;
}

const EMPTY = {
  all: ["You're all caught up", "New notifications show up here the moment they happen."],
  unread: ["No unread notifications", "Everything here has been read."],
  archived: ["Nothing archived", "Archive a notification to tidy it away; it stays here."],
};

/**
 * The list of a feed with its states and "load more"; re-renders on every change.
 * Returns the element. `opts.handlers` makes items interactive.
 */
export function feedList(feed, { handlers, tenants = {}, onRendered, label = "Notifications", emptyText } = {}) {
  const list = h("ul", { class: "tg-list", role: "list", "aria-label": label });
  const pinnedList = h("ul", { class: "tg-list", role: "list", "aria-label": "Pinned notifications" });
  const uid = Math.random().toString(36).slice(2, 8);
  const visible = (items) => (feed.visible ? feed.visible(items) : items);
  const more = h("button", { type: "button", class: "tg-btn tg-more", onclick: () => feed.loadMore() }, "Load more");
  const root = h("div", { class: "tg-feed" });
  const fresh = new Set();
  feed.subscribe((_, { arrived = [] } = {}) => {
    for (const id of arrived) { fresh.add(id); setTimeout(() => fresh.delete(id), 4000); }
    render();
  });
  function render() {
    // What has focus, read before the lists are rebuilt, to give it back after.
    const focused = document.activeElement && root.contains(document.activeElement) ? document.activeElement : null;
    const focusId = focused && focused.closest(".tg-item") ? focused.closest(".tg-item").dataset.id : null;
    const focusKey = focused && focused.dataset ? focused.dataset.focus : null;
    const focusMore = focused === more;
    const children = [];
    if (feed.status === "loading" || feed.status === "idle") children.push(stateView("loading"));
    else if (feed.status === "error") {
      const refused = feed.error && feed.error.status === 403;
      children.push(refused
        ? stateView("refused", { title: "You don't have access to this feed", text: feed.error.message })
        : stateView("error", {
          title: "Couldn't load notifications",
          text: feed.error ? feed.error.message : "",
          action: h("button", { type: "button", class: "tg-btn", onclick: () => feed.load() }, "Try again"),
        }));
    } else {
      // Pinned items (Tidings' extension) get a section above the list when the view
      // can pin; an item past its expiry is not shown even before the server's push.
      const pinning = handlers && handlers.pin && feed.filters.view !== "archived";
      const byId = new Map();
      if (pinning) for (const i of [...(feed.pinned || []), ...feed.items]) if (i.pinned_at) byId.set(i.id, i);
      const pinnedItems = visible([...byId.values()]);
      const items = visible(feed.items.filter((i) => !byId.has(i.id)));
      const showTenant = !feed.filters.tenant;
      const row = (item) => renderItem(item, { handlers, tenants, showTenant, fresh: fresh.has(item.id) });
      if (pinnedItems.length) {
        pinnedList.replaceChildren(...pinnedItems.map(row));
        children.push(h("section", { class: "tg-pinned", "aria-labelledby": `tg-pinned-${uid}` },
          h("h3", { class: "tg-section-title", id: `tg-pinned-${uid}` }, icon("pin"), "Pinned"), pinnedList));
      }
      if (!items.length && !pinnedItems.length) {
        const [title, text] = (emptyText && emptyText(feed)) || EMPTY[feed.filters.view] || EMPTY.all;
        children.push(stateView("empty", { title, text }));
      } else {
        list.replaceChildren(...items.map(row));
        children.push(list);
      }
      if (feed.after && items.length) {
        more.disabled = feed.loadingMore;
        more.textContent = feed.loadingMore ? "Loading…" : "Load more";
        children.push(h("div", { class: "tg-more-row" }, more));
      }
    }
    root.replaceChildren(...children);
    const control = focusKey && root.querySelector(`[data-focus="${CSS.escape(focusKey)}"]`);
    if (control) control.focus();
    else if (focusId) {
      const again = root.querySelector(`.tg-item[data-id="${CSS.escape(focusId)}"]`);
      if (again) again.focus();
    } else if (focusMore && more.isConnected) more.focus();
    onRendered && onRendered();
  }
  render();
  return root;
}

/**
 * Mounts the inbox (bell, badge, panel) into `root`.
 * config: { host?, publicKey, userId, userToken, channelId, tenant?, tenants?: {id: name},
 *           onNavigate?(url, item), open? }
 * Returns { feed, client, setTenant(id), open(), close(), destroy() }.
 */
export function mountInbox(root, config) {
  const { publicKey, userToken, channelId } = config;
  const userId = config.userId || (tokenClaims(userToken) || {}).sub;
  const client = createClient({ host: config.host, publicKey, userToken });
  const feed = new Feed(client, {
    path: `/v1/users/${encodeURIComponent(userId)}/feeds/${encodeURIComponent(channelId)}`,
    topic: `feeds:${channelId}:${userId}`,
    channelId,
    userId,
    pageSize: config.pageSize || 15,
  });
  feed.filters.tenant = config.tenant || null;
  const tenants = config.tenants || {};
  const navigate = config.onNavigate || ((url) => location.assign(url.href));
  const uid = Math.random().toString(36).slice(2, 8);

  async function follow(item, target, metadata) {
    await feed.mark("interacted", [item], metadata);
    const url = safeUrl(target);
    if (url) navigate(url, item);
  }
  const actionUrl = (item) => {
    const block = (item.blocks || []).find((b) => b.name === "action_url");
    return block ? block.rendered : null;
  };
  const handlers = {
    open: (item) => follow(item, actionUrl(item), { type: "cell_click", action: actionUrl(item) || "" }),
    button: (item, b) => follow(item, b.action, { type: "button_click", name: String(b.name || ""), label: String(b.label || ""), action: String(b.action || "") }),
    archive: (item) => feed.mark("archived", [item]),
    unarchive: (item) => feed.mark("unarchived", [item]),
    snooze: (item, until) => {
      feed.snooze(item, until);
      live.textContent = `Snoozed until ${until.toLocaleString()}`;
    },
    pin: (item, on) => feed.pin(item, on),
    /** Which item's snooze menu is open (kept across re-renders). */
    snoozeMenu: { open: null },
  };

  const badge = h("span", { class: "tg-badge", "aria-hidden": "true" });
  const bell = h("button", {
    type: "button", class: "tg-bell", "aria-haspopup": "dialog", "aria-expanded": "false", "aria-controls": `tg-panel-${uid}`,
  }, icon("bell"), badge);
  const tabs = ["all", "unread", "archived"].map((view) => h("button", {
    type: "button", role: "tab", id: `tg-tab-${view}-${uid}`, class: "tg-tab", "data-view": view,
    "aria-controls": `tg-tabpanel-${uid}`,
    onclick: () => selectTab(view),
    onkeydown: (ev) => {
      const order = ["all", "unread", "archived"];
      const i = order.indexOf(view);
      const next = ev.key === "ArrowRight" ? order[(i + 1) % 3] : ev.key === "ArrowLeft" ? order[(i + 2) % 3] : null;
      if (next) { ev.preventDefault(); selectTab(next); tabs[order.indexOf(next)].focus(); }
    },
  }, { all: "All", unread: "Unread", archived: "Archived" }[view]));
  const markAll = h("button", { type: "button", class: "tg-btn tg-btn--ghost tg-mark-all", onclick: () => feed.markAllRead() }, icon("check"), "Mark all as read");
  const live = h("div", { class: "tg-sr", "aria-live": "polite" });
  let panelOpen = false;
  const list = feedList(feed, {
    handlers,
    tenants,
    onRendered: () => { if (isOpen()) markVisibleSeen(); },
  });
  const title = h("h2", { class: "tg-panel-title", id: `tg-title-${uid}` }, "Notifications");
  const panel = h("section", {
    class: "tg-panel", id: `tg-panel-${uid}`, role: "dialog", "aria-labelledby": `tg-title-${uid}`, hidden: true,
  },
  h("header", { class: "tg-panel-head" }, title, connectionPill(client.socket), markAll),
  h("div", { class: "tg-tabs", role: "tablist", "aria-label": "Filter notifications" }, tabs),
  h("div", { class: "tg-panel-body", role: "tabpanel", id: `tg-tabpanel-${uid}` }, list),
  h("footer", { class: "tg-panel-foot" }, h("span", {}, "Powered by "), h("strong", {}, "Tidings")));
  const wrap = h("div", {
    class: "tg-inbox",
    onkeydown: (ev) => { if (ev.key === "Escape" && isOpen()) { close(); bell.focus(); } },
  }, bell, panel, live);
  root.append(wrap);
  // A click anywhere but a snooze control closes an open snooze menu (capture: item
  // buttons stop their clicks from bubbling).
  wrap.addEventListener("click", (ev) => {
    if (!handlers.snoozeMenu.open || ev.target.closest(".tg-snooze-wrap")) return;
    handlers.snoozeMenu.open = null;
    for (const m of wrap.querySelectorAll(".tg-menu:not([hidden])")) {
      m.hidden = true;
      m.parentElement.querySelector(".tg-snooze").setAttribute("aria-expanded", "false");
    }
  }, true);

  function isOpen() { return panelOpen; }
  function open() {
    panelOpen = true;
    panel.hidden = false;
    bell.setAttribute("aria-expanded", "true");
    markVisibleSeen();
  }
  function close() {
    panelOpen = false;
    panel.hidden = true;
    bell.setAttribute("aria-expanded", "false");
  }
  bell.addEventListener("click", () => (isOpen() ? close() : open()));
  const onDocClick = (ev) => { if (isOpen() && !wrap.contains(ev.target) && config.closeOnOutsideClick !== false) close(); };
  document.addEventListener("click", onDocClick);

  function markVisibleSeen() {
    const unseen = feed.items.filter((i) => !i.seen_at && !i.archived_at);
    if (unseen.length) feed.mark("seen", unseen);
  }

  function selectTab(view) {
    for (const t of tabs) {
      const on = t.dataset.view === view;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
    }
    panel.querySelector(".tg-panel-body").setAttribute("aria-labelledby", `tg-tab-${view}-${uid}`);
    feed.setFilters({ view });
  }

  let lastUnread = null;
  feed.subscribe((_, { arrived = [] } = {}) => {
    const n = feed.meta.unread_count || 0;
    badge.textContent = n > 99 ? "99+" : String(n);
    badge.hidden = n === 0;
    bell.setAttribute("aria-label", n ? `Notifications, ${n} unread` : "Notifications, none unread");
    if (lastUnread !== null && n > lastUnread) { badge.classList.remove("is-bump"); void badge.offsetWidth; badge.classList.add("is-bump"); }
    lastUnread = n;
    markAll.disabled = n === 0 || feed.filters.view === "archived";
    if (arrived.length) {
      const item = feed.items.find((i) => i.id === arrived[0]);
      const who = item && whoLine(item);
      live.textContent = arrived.length === 1 ? `New notification${who ? ` from ${who}` : ""}` : `${arrived.length} new notifications`;
    }
  });

  // Times move on; an item whose expiry passed leaves the list even without a push.
  const ticker = setInterval(() => {
    for (const t of wrap.querySelectorAll("time[datetime]")) {
      const at = t.getAttribute("datetime");
      t.textContent = t.hasAttribute("data-left") ? timeLeft(at) : relativeTime(at);
    }
    const shown = [...feed.items, ...(feed.pinned || [])];
    if (feed.visible(shown).length !== shown.length) feed.emit();
  }, 15000);

  selectTab("all");
  feed.listen();
  if (config.open) open();

  return {
    feed,
    client,
    open,
    close,
    setTenant: (tenant) => feed.setFilters({ tenant: tenant || null }),
    destroy() {
      clearInterval(ticker);
      document.removeEventListener("click", onDocClick);
      feed.stop();
      client.socket.disconnect();
      wrap.remove();
    },
  };
}
