// Drives the official @knocklabs/node SDK's subscription calls against a Tidings server,
// unchanged: objects.addSubscriptions (inline identify + properties), listSubscriptions
// (auto-pagination, recipient filter, mode=recipient), deleteSubscriptions,
// users.listSubscriptions (object filter) and objects.bulk.addSubscriptions /
// deleteSubscriptions. Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

assert.ok(process.env.KNOCK_API_KEY, "KNOCK_API_KEY is required");
assert.ok(process.env.KNOCK_BASE_URL, "KNOCK_BASE_URL is required");
const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL, maxRetries: 0 });

await knock.objects.set("projects", "p1", { name: "Apollo" });
await knock.objects.set("projects", "p2", { name: "Gemini" });
await knock.users.update("ann", { name: "Ann" });

const added = await knock.objects.addSubscriptions("projects", "p1", {
  recipients: ["ann", { id: "bob", name: "Bob" }, ...Array.from({ length: 60 }, (_, i) => ({ id: `fan-${i}` }))],
  properties: { role: "viewer" },
});
assert.equal(added.length, 62);
assert.equal(added[0].__typename, "Subscription");
assert.equal(added[0].recipient.id, "ann");
assert.equal(added[0].object.id, "p1");
assert.deepEqual(added[0].properties, { role: "viewer" });
assert.equal((await knock.users.get("bob")).name, "Bob", "inline identify");

const all = [];
for await (const s of knock.objects.listSubscriptions("projects", "p1")) all.push(s.recipient.id);
assert.equal(all.length, 62, "auto-pagination walks every page once");
assert.equal(new Set(all).size, 62);

const only = await knock.objects.listSubscriptions("projects", "p1", { recipients: ["bob", "ann"] });
assert.deepEqual(only.entries.map((s) => s.recipient.id).sort(), ["ann", "bob"]);

await knock.objects.addSubscriptions("projects", "p2", { recipients: ["ann", { id: "p1", collection: "projects" }] });
const annFollows = await knock.users.listSubscriptions("ann");
assert.deepEqual(annFollows.entries.map((s) => s.object.id), ["p1", "p2"]);
const filtered = await knock.users.listSubscriptions("ann", { objects: [{ id: "p2", collection: "projects" }] });
assert.deepEqual(filtered.entries.map((s) => s.object.id), ["p2"]);
const p1Follows = await knock.objects.listSubscriptions("projects", "p1", { mode: "recipient" });
assert.deepEqual(p1Follows.entries.map((s) => s.object.id), ["p2"]);

const removed = await knock.objects.deleteSubscriptions("projects", "p1", { recipients: ["bob", "nobody"] });
assert.deepEqual(removed.map((s) => s.recipient.id), ["bob"]);

await assert.rejects(
  knock.objects.addSubscriptions("projects", "p1", { recipients: [{ id: "p1", collection: "projects" }] }),
  (e) => e.status === 422,
);
await assert.rejects(
  knock.objects.addSubscriptions("projects", "p1", { recipients: Array.from({ length: 101 }, (_, i) => `x${i}`) }),
  (e) => e.status === 422,
);

const bulk = await knock.objects.bulk.addSubscriptions("projects", {
  subscriptions: [{ id: "p2", recipients: [{ id: "cy" }, { id: "dee" }], properties: { via: "bulk" } }],
});
assert.equal(bulk.__typename, "BulkOperation");
assert.equal(bulk.success_count, 2);
const bulkDel = await knock.objects.bulk.deleteSubscriptions("projects", {
  subscriptions: [{ id: "p2", recipients: ["cy"] }],
});
assert.equal(bulkDel.success_count, 1);

console.log("subscriptions sdk: ok");
