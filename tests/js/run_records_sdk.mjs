// Drives the official @knocklabs/node SDK's run-record calls against a Tidings server,
// unchanged: workflowRecipientRuns.list (auto-pagination, recipient/status/workflow
// filters, an object recipient) and workflowRecipientRuns.get with the events.
// Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

assert.ok(process.env.KNOCK_API_KEY, "KNOCK_API_KEY is required");
assert.ok(process.env.KNOCK_BASE_URL, "KNOCK_BASE_URL is required");
const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL, maxRetries: 0 });

const data = { page_title: "Doc", page_url: "https://example.com/doc" };
const recipients = [...Array.from({ length: 55 }, (_, i) => `r-${i}`), { id: "p1", collection: "projects" }];
await knock.workflows.trigger("new-comment", { recipients, data });

// Runs complete asynchronously: wait until every recipient has its record.
let all = [];
for (let tries = 0; tries < 200; tries++) {
  all = [];
  for await (const run of knock.workflowRecipientRuns.list({ workflow: "new-comment" })) all.push(run);
  if (all.length === 56) break;
  await new Promise((r) => setTimeout(r, 50));
}
assert.equal(all.length, 56, "auto-pagination walks every page once");
assert.equal(new Set(all.map((r) => r.id)).size, 56);

const one = await knock.workflowRecipientRuns.list({ recipient: "r-7", status: ["completed"] });
assert.equal(one.items.length, 1);
assert.equal(one.items[0].__typename, "WorkflowRecipientRun");
assert.equal(one.items[0].recipient, "r-7");
const object = await knock.workflowRecipientRuns.list({ recipient: { id: "p1", collection: "projects" } });
assert.deepEqual(object.items.map((r) => r.recipient), [{ id: "p1", collection: "projects" }]);

const detail = await knock.workflowRecipientRuns.get(one.items[0].id);
assert.equal(detail.id, one.items[0].id);
assert.ok(detail.events.some((e) => e.event === "message_created" && e.__typename === "WorkflowRecipientRunEvent"));

await assert.rejects(knock.workflowRecipientRuns.list({ status: ["done"] }), (e) => e.status === 422);
await assert.rejects(knock.workflowRecipientRuns.get("00000000-0000-4000-8000-000000000000"), (e) => e.status === 404);

console.log("run records sdk: ok");
