// The page under test: the official @knocklabs/client, unchanged, pointed at Tidings.
// run.mjs drives it through `window.e2e`; every step records what the client saw.
import Knock from "@knocklabs/client";

const state = { realtime: [], errors: [] };

function render(feed) {
  const { items, metadata } = feed.getState();
  document.getElementById("items").innerHTML = items
    .map((i) => `<li>${i.id}</li>`)
    .join("");
  document.getElementById("unread").textContent = String(metadata.unread_count);
}

window.e2e = {
  state,

  // authenticate, fetch, listenForUpdates; resolves with the first fetch's result.
  async start({ host, publicKey, userId, userToken, channelId }) {
    const knock = new Knock(publicKey, { host, logLevel: "debug" });
    knock.authenticate(userId, userToken);
    const feed = knock.feeds.initialize(channelId, { archived: "exclude" });
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
    const { items, metadata } = window.e2e.feed.getState();
    return {
      items: items.map((i) => ({ id: i.id, read_at: i.read_at, cursor: i.__cursor })),
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
