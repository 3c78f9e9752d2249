// Drives the official @knocklabs/node SDK's schedule calls against a Tidings server,
// unchanged: schedules.create (inline identify, repeats as the SDK types them),
// schedules.list (auto-pagination, recipients filter), users.listSchedules,
// schedules.update, schedules.bulk.create and schedules.delete.
// Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

assert.ok(process.env.KNOCK_API_KEY, "KNOCK_API_KEY is required");
assert.ok(process.env.KNOCK_BASE_URL, "KNOCK_BASE_URL is required");
const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL, maxRetries: 0 });

const data = { page_title: "Digest", page_url: "https://example.com/d" };
const repeats = [
  { __typename: "ScheduleRepeat", day_of_month: null, days: ["mon", "wed", "fri"], frequency: "weekly", hours: 9, interval: 1, minutes: 30 },
];
const created = await knock.schedules.create({
  workflow: "new-comment",
  recipients: [{ id: "ann", name: "Ann" }, ...Array.from({ length: 59 }, (_, i) => `fan-${i}`)],
  repeats,
  data,
  tenant: "acme",
  scheduled_at: "2030-01-01T00:00:00Z",
});
assert.equal(created.length, 60);
assert.equal(created[0].__typename, "Schedule");
assert.equal(created[0].recipient.id, "ann");
assert.equal(created[0].recipient.name, "Ann");
assert.equal(created[0].workflow, "new-comment");
assert.deepEqual(created[0].repeats[0].days, ["mon", "wed", "fri"]);
assert.equal(created[0].next_occurrence_at, "2030-01-02T09:30:00.000000Z"); // the first Wednesday
assert.equal((await knock.users.get("ann")).name, "Ann", "inline identify");

const all = [];
for await (const s of knock.schedules.list({ workflow: "new-comment" })) all.push(s.id);
assert.equal(all.length, 60, "auto-pagination walks every page once");
assert.equal(new Set(all).size, 60);

const some = await knock.schedules.list({ workflow: "new-comment", recipients: ["ann", "fan-0"] });
assert.deepEqual(some.entries.map((s) => s.recipient.id).sort(), ["ann", "fan-0"]);

const anns = await knock.users.listSchedules("ann");
assert.equal(anns.entries.length, 1);

const updated = await knock.schedules.update({ schedule_ids: [created[0].id], data: { ...data, page_title: "New" } });
assert.equal(updated[0].data.page_title, "New");

const bulk = await knock.schedules.bulk.create({
  schedules: [{ workflow: "new-comment", recipient: "bea", repeats, data }],
});
assert.equal(bulk.__typename, "BulkOperation");
assert.equal(bulk.status, "completed");

const deleted = await knock.schedules.delete({ schedule_ids: created.map((s) => s.id) });
assert.equal(deleted.length, 60);
const left = await knock.schedules.list({ workflow: "new-comment" });
assert.deepEqual(left.entries.map((s) => s.recipient.id), ["bea"]);

await assert.rejects(
  knock.schedules.create({ workflow: "new-comment", recipients: ["ann"], repeats: [{ frequency: "yearly" }] }),
  (e) => e.status === 422,
);

console.log("schedules sdk: ok");
