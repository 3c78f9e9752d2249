// Drives the official @knocklabs/node SDK's feed and message calls against a Tidings server,
// unchanged: feed listing with every filter encoding and auto-pagination, feed settings,
// every message status call, batch and bulk updates, bulk operations, message lists,
// activities and events. Env: KNOCK_API_KEY, KNOCK_BASE_URL, TIDINGS_CHANNEL_ID.
// Exits non-zero on any failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

const channelId = process.env.TIDINGS_CHANNEL_ID;
assert.ok(channelId, "TIDINGS_CHANNEL_ID is required");
const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL });
const user = `feed-user-${process.pid}`;

const comment = (tenant, data) =>
  knock.workflows.trigger("new-comment", {
    recipients: [user],
    actor: { id: "sdk-actor", name: "Sdk Actor" },
    tenant,
    data: { page_title: "P", page_url: "https://example.com/p", comment_preview: "c", ...data },
  });
await comment("acme", { page_id: "p1" });
await comment(undefined, { page_id: "p2" });
await knock.workflows.trigger("project-invite", {
  recipients: [user],
  data: { project_name: "Apollo", invite_url: "https://example.com/i" },
});

let page;
for (const start = Date.now(); ; ) {
  page = await knock.users.feeds.listItems(user, channelId);
  if (page.entries.length >= 3 || Date.now() - start > 10_000) break;
  await new Promise((resolve) => setTimeout(resolve, 50));
}
assert.equal(page.entries.length, 3);
assert.equal(page.entries[0].__typename, "FeedItem");

const walked = [];
for await (const item of knock.users.feeds.listItems(user, channelId, { page_size: 1 })) walked.push(item.id);
assert.deepEqual(walked, page.entries.map((e) => e.id), "auto-pagination walks every item once");

const count = async (params) => (await knock.users.feeds.listItems(user, channelId, params)).entries.length;
assert.equal(await count({ workflow_categories: ["invites"] }), 1);
assert.equal(await count({ tenant: "acme" }), 3, "acme plus the items without a tenant");
assert.equal(await count({ tenant: "acme", has_tenant: true }), 1);
assert.equal(await count({ trigger_data: JSON.stringify({ page_id: "p2" }) }), 1);
assert.equal(await count({ source: "project-invite" }), 1);
assert.equal(await count({ "inserted_at.gte": "2000-01-01T00:00:00Z" }), 3);
assert.equal(await count({ inserted_at: { gte: "2100-01-01T00:00:00Z" } }), 0);
assert.equal(await count({ status: "unread", archived: "include", mode: "compact" }), 3);

assert.deepEqual(await knock.users.feeds.getSettings(user, channelId), { features: { branding_required: false } });

const id = page.entries[0].id;
let m = await knock.messages.markAsSeen(id);
assert.ok(m.seen_at);
m = await knock.messages.markAsRead(id);
assert.ok(m.read_at);
m = await knock.messages.markAsUnread(id);
assert.equal(m.read_at, null);
m = await knock.messages.markAsUnseen(id);
assert.equal(m.seen_at, null);
m = await knock.messages.archive(id);
assert.ok(m.archived_at);
m = await knock.messages.unarchive(id);
assert.equal(m.archived_at, null);
m = await knock.messages.markAsInteracted(id, { metadata: { source: "sdk" } });
assert.ok(m.interacted_at && m.read_at && m.seen_at);
assert.deepEqual(m.metadata, { source: "sdk" });
m = await knock.messages.get(id);
assert.equal(m.id, id);
assert.equal(m.status, "delivered");

const batch = await knock.messages.batch.markAsRead({ message_ids: [page.entries[1].id] });
assert.equal(batch.length, 1);
assert.ok(batch[0].read_at);
await knock.messages.batch.markAsInteracted({ message_ids: [page.entries[1].id], metadata: { a: 1 } });

const op = await knock.channels.bulk.updateMessageStatus(channelId, "seen", { recipient_ids: [user], archived: "include" });
assert.equal(op.status, "completed");
assert.equal(op.success_count, 1, "only the one unseen item changes");
assert.equal((await knock.bulkOperations.get(op.id)).id, op.id);

const seen = [];
for await (const msg of knock.users.listMessages(user, { page_size: 1, engagement_status: ["seen"] })) seen.push(msg.id);
assert.equal(seen.length, 3);
const listed = [];
for await (const msg of knock.messages.list({ page_size: 2, source: "project-invite" })) listed.push(msg);
assert.ok(listed.some((msg) => msg.recipient === user));

const activities = [];
for await (const a of knock.messages.listActivities(id)) activities.push(a);
assert.equal(activities[0].__typename, "Activity");
const events = [];
for await (const e of knock.messages.listEvents(id)) events.push(e.type);
assert.ok(events.includes("message.sent") && events.includes("message.interacted"), events.join());

await assert.rejects(knock.messages.get("2FVHPWxRqNuXQ9krvNP5A6Z4qXe"), (e) => e.status === 404);
await assert.rejects(knock.users.feeds.listItems(user, channelId, { page_size: 500 }), (e) => e.status === 422);

console.log("messages sdk: ok");
