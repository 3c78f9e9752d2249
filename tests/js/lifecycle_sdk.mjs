// The official @knocklabs/node SDK, unchanged, reading the item lifecycle fields Tidings
// adds (issue 21): `expires_at`, `snoozed_until`, `pinned_at` on feed items and messages.
// The SDK passes unknown fields through; snooze and pin go through its generic `put`.
// Env: KNOCK_API_KEY, KNOCK_BASE_URL, TIDINGS_CHANNEL_ID. The server has the workflows
// `lifecycle-expiring` (expires_after 2 hours) and `lifecycle-pinned` (pinned: true).
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

const channelId = process.env.TIDINGS_CHANNEL_ID;
assert.ok(channelId, "TIDINGS_CHANNEL_ID is required");
const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL });
const user = `lifecycle-user-${process.pid}`;

await knock.workflows.trigger("lifecycle-expiring", { recipients: [user] });
await knock.workflows.trigger("lifecycle-pinned", { recipients: [user] });

let page;
for (const start = Date.now(); ; ) {
  page = await knock.users.feeds.listItems(user, channelId);
  if (page.entries.length >= 2 || Date.now() - start > 10_000) break;
  await new Promise((resolve) => setTimeout(resolve, 50));
}
assert.equal(page.entries.length, 2);
const expiring = page.entries.find((e) => e.source.key === "lifecycle-expiring");
const pinned = page.entries.find((e) => e.source.key === "lifecycle-pinned");
assert.ok(expiring && pinned, "both items listed");
const hoursLeft = (Date.parse(expiring.expires_at) - Date.now()) / 3_600_000;
assert.ok(hoursLeft > 1.9 && hoursLeft <= 2, `expires_at two hours ahead: ${expiring.expires_at}`);
assert.equal(expiring.pinned_at, null);
assert.equal(expiring.snoozed_until, null);
assert.ok(Date.parse(pinned.pinned_at) > 0, `pinned_at: ${pinned.pinned_at}`);
assert.equal(pinned.expires_at, null);

const pinnedOnly = await knock.users.feeds.listItems(user, channelId, { pinned: true });
assert.deepEqual(pinnedOnly.entries.map((e) => e.id), [pinned.id]);

// Snooze through the SDK's generic request method; the feed and messages show it.
const until = new Date(Date.now() + 3_600_000).toISOString();
const snoozed = await knock.put(`/v1/messages/${expiring.id}/snoozed`, { body: { snoozed_until: until } });
assert.equal(Date.parse(snoozed.snoozed_until), Date.parse(until));
const message = await knock.messages.get(expiring.id);
assert.equal(Date.parse(message.snoozed_until), Date.parse(until));
assert.equal(message.expires_at, expiring.expires_at);
const after = await knock.users.feeds.listItems(user, channelId);
assert.deepEqual(after.entries.map((e) => e.id), [pinned.id], "the snoozed item left the feed");
const snoozedView = await knock.users.feeds.listItems(user, channelId, { status: "snoozed" });
assert.deepEqual(snoozedView.entries.map((e) => e.id), [expiring.id]);
assert.equal(Date.parse(snoozedView.entries[0].snoozed_until), Date.parse(until));

// Unpin and wake through the SDK too.
const unpinned = await knock.delete(`/v1/messages/${pinned.id}/pinned`);
assert.equal(unpinned.pinned_at, null);
const woken = await knock.delete(`/v1/messages/${expiring.id}/snoozed`);
assert.equal(woken.snoozed_until, null);
const last = await knock.users.feeds.listItems(user, channelId);
assert.equal(last.entries.length, 2);
assert.equal(last.entries[0].id, expiring.id, "the woken item is at the head");

console.log("lifecycle sdk: ok");
