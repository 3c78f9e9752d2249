// The page under test: the official @knocklabs/client, unchanged, pointed at Tidings.
// run.mjs drives it through `window.e2e`; every step records what the client saw.
import Knock from "@knocklabs/client";

const state = { realtime: [], errors: [] };

/** A batch item's summary as an app would render it from the client's fields. */
function batchText(i) {
  if (!i.total_activities || i.total_activities < 2) return "";
  const names = i.actors.map((a) => a.name || a.id).join(", ");
  return ` ${i.total_activities} activities by ${names} (${i.total_actors} actors)`;
}

function render(feed) {
  const { items, metadata } = feed.getState();
  const list = document.getElementById("items");
  list.replaceChildren(...items.map((i) => {
    const li = document.createElement("li");
    li.textContent = `${i.id}${batchText(i)}`;
    return li;
  }));
  document.getElementById("unread").textContent = String(metadata.unread_count);
}

window.e2e = {
  state,

  // authenticate, fetch, listenForUpdates; resolves with the first fetch's result.
  // `mode` is the feed's mode ("compact" unless given).
  async start({ host, publicKey, userId, userToken, channelId, mode }) {
    const knock = new Knock(publicKey, { host, logLevel: "debug" });
    knock.authenticate(userId, userToken);
    const feed = knock.feeds.initialize(channelId, { archived: "exclude", ...(mode ? { mode } : {}) });
    feed.on("items.received.realtime", ({ items, metadata }) => {
      state.realtime.push({ ids: items.map((i) => i.id), metadata });
      render(feed);
    });
    window.e2e.knock = knock;
    window.e2e.feed = feed;
    const first = await feed.fetch();
    render(feed);
    feed.listenForUpdates();
    return { status: first.status, entries: first.data.entries.length, meta: first.data.meta };
  },

  snapshot() {
    const { items, metadata, networkStatus } = window.e2e.feed.getState();
    return {
      // The client skips a fetch while one is in flight ("loading"/"fetchMore"), so a
      // push that lands then only moves the badge until that fetch's answer resets it.
      idle: networkStatus === "ready" || networkStatus === "error",
      items: items.map((i) => ({
        id: i.id, read_at: i.read_at, cursor: i.__cursor,
        total_activities: i.total_activities, total_actors: i.total_actors,
        actors: i.actors.map((a) => a.name || a.id),
        activities: (i.activities || []).map((a) => ({ actor: a.actor && a.actor.id, data: a.data })),
        body: i.blocks.find((b) => b.name === "body")?.rendered,
      })),
      rendered: document.getElementById("items").textContent,
      metadata,
      realtime: state.realtime,
    };
  },

  async markFirstAsRead() {
    const feed = window.e2e.feed;
    const [item] = feed.getState().items;
    const result = await feed.markAsRead(item);
    render(feed);
    return { id: item.id, result: Array.isArray(result) ? result.length : result };
  },

  // A fresh first page from the server: its meta are the server's counts.
  async refetch() {
    const result = await window.e2e.feed.fetch();
    render(window.e2e.feed);
    return { status: result.status, meta: result.data.meta };
  },
};
