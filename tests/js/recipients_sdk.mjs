// Drives the official @knocklabs/node SDK's recipient calls against a Tidings server,
// unchanged: users (identify, get, list with auto-pagination, merge, channel data, bulk
// identify, delete), objects (set, get, list, bulk set, delete), tenants (set, get, list,
// delete) and bulk operations. Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

assert.ok(process.env.KNOCK_API_KEY, "KNOCK_API_KEY is required");
assert.ok(process.env.KNOCK_BASE_URL, "KNOCK_BASE_URL is required");
const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL, maxRetries: 0 });

// Users
const user = await knock.users.update("ann", { name: "Ann", email: "ann@example.com", plan: { tier: "pro" } });
assert.equal(user.__typename, "User");
assert.equal(user.id, "ann");
assert.equal(user.plan.tier, "pro");
const merged = await knock.users.update("ann", { plan: { seats: 3 } });
assert.deepEqual(merged.plan, { tier: "pro", seats: 3 });
assert.equal((await knock.users.get("ann")).email, "ann@example.com");

const op = await knock.users.bulk.identify({
  users: Array.from({ length: 120 }, (_, i) => ({ id: `bulk-${i}`, name: `Bulk ${i}` })),
});
assert.equal(op.__typename, "BulkOperation");
assert.equal(op.status, "completed");
assert.equal(op.success_count, 120);
const fetchedOp = await knock.bulkOperations.get(op.id);
assert.equal(fetchedOp.success_count, 120);

const ids = [];
for await (const u of knock.users.list({ page_size: 50 })) ids.push(u.id);
assert.equal(ids.length, 121, "auto-pagination walks every page once");
assert.equal(new Set(ids).size, 121);

// Channel data is kept only for channels that exist: the server's in-app feed channel.
const channel = process.env.TIDINGS_CHANNEL_ID;
assert.ok(channel, "TIDINGS_CHANNEL_ID is required");
const data = await knock.users.setChannelData("ann", channel, { data: { tokens: ["tok"] } });
assert.deepEqual(data.data, { tokens: ["tok"] });
assert.deepEqual((await knock.users.getChannelData("ann", channel)).data, { tokens: ["tok"] });
await knock.users.unsetChannelData("ann", channel);

await knock.users.update("ann-old", { name: "Old", phone_number: "+15550100" });
const primary = await knock.users.merge("ann", { from_user_id: "ann-old" });
assert.equal(primary.name, "Ann");
assert.equal(primary.phone_number, "+15550100");

await knock.users.delete("ann");
await assert.rejects(knock.users.get("ann"), (e) => e.status === 404);

// Objects
const project = await knock.objects.set("projects", "p1", { name: "Apollo", budget: { usd: 5 } });
assert.equal(project.__typename, "Object");
assert.equal(project.collection, "projects");
assert.deepEqual(project.properties, { name: "Apollo", budget: { usd: 5 } });
assert.equal((await knock.objects.get("projects", "p1")).properties.name, "Apollo");
const objOp = await knock.objects.bulk.set("projects", { objects: [{ id: "p2" }, { id: "p3", name: "Three" }] });
assert.equal(objOp.success_count, 2);
const objects = [];
for await (const o of knock.objects.list("projects")) objects.push(o.id);
assert.deepEqual(objects, ["p1", "p2", "p3"]);
await knock.objects.delete("projects", "p1");
await assert.rejects(knock.objects.get("projects", "p1"), (e) => e.status === 404);

// Tenants
const tenant = await knock.tenants.set("acme", {
  name: "Acme",
  settings: { branding: { primary_color: "#DF1A22" }, preference_set: { channel_types: { email: false } } },
});
assert.equal(tenant.__typename, "Tenant");
assert.equal(tenant.settings.branding.primary_color, "#DF1A22");
assert.equal((await knock.tenants.get("acme")).name, "Acme");
const tenants = [];
for await (const t of knock.tenants.list({ name: "Acme" })) tenants.push(t.id);
assert.deepEqual(tenants, ["acme"]);
await knock.tenants.delete("acme");
await assert.rejects(knock.tenants.get("acme"), (e) => e.status === 404);

// Errors surface as the SDK's typed errors.
await assert.rejects(knock.users.update("bad", { email: 5 }), (e) => e.status === 422);

console.log("recipients sdk: ok");
