// Drives the official @knocklabs/node SDK against a Tidings server, unchanged:
// identify a user, trigger a workflow, wait for the feed item, mark it read.
// Env: KNOCK_API_KEY (secret key), KNOCK_BASE_URL (server origin), TIDINGS_CHANNEL_ID
// (the in-app channel UUID, what real apps pass). Exits non-zero on any failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

const channelId = process.env.TIDINGS_CHANNEL_ID;
assert.ok(process.env.KNOCK_API_KEY, "KNOCK_API_KEY is required");
assert.ok(process.env.KNOCK_BASE_URL, "KNOCK_BASE_URL is required");
assert.ok(channelId, "TIDINGS_CHANNEL_ID is required");

const knock = new Knock({
  apiKey: process.env.KNOCK_API_KEY,
  baseURL: process.env.KNOCK_BASE_URL,
});
const userId = `sdk-user-${process.pid}-${Date.now()}`;

const user = await knock.users.update(userId, { name: "Sdk User", email: "sdk@example.com" });
assert.equal(user.id, userId);
assert.equal(user.name, "Sdk User");

const { workflow_run_id } = await knock.workflows.trigger("new-comment", {
  recipients: [userId],
  actor: { id: `sdk-actor-${process.pid}`, name: "Sdk Actor" },
  data: { page_title: "SDK page", page_url: "https://example.com/sdk", comment_preview: "From node" },
});
assert.match(workflow_run_id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);

async function feed() {
  return knock.users.feeds.listItems(userId, channelId);
}

let page;
const deadline = Date.now() + 10_000;
for (;;) {
  page = await feed();
  if (page.entries.length > 0 || Date.now() > deadline) break;
  await new Promise((resolve) => setTimeout(resolve, 50));
}
assert.equal(page.entries.length, 1, "the triggered item is in the feed");
const item = page.entries[0];
assert.equal(item.source.key, "new-comment");
assert.deepEqual(item.source.categories, ["collaboration"]);
assert.equal(item.read_at, null);
const body = item.blocks.find((b) => b.name === "body");
assert.ok(body && body.rendered.includes("<strong>Sdk Actor</strong>"), JSON.stringify(item.blocks));
// The page object keeps the whole response body (entries, meta, page_info, vars).
assert.equal(page.body.meta.unread_count, 1);

const message = await knock.messages.markAsRead(item.id);
assert.equal(message.id, item.id);
assert.ok(message.read_at, "markAsRead sets read_at");

const after = await feed();
assert.ok(after.entries[0].read_at, "the feed shows the item read");
assert.equal(after.body.meta.unread_count, 0);

console.log(`node sdk: ok (user ${userId}, run ${workflow_run_id}, message ${item.id})`);
