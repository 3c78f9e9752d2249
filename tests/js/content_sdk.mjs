// Drives the official @knocklabs/node SDK's message content calls against a Tidings
// server, unchanged: `messages.getContent` and `messages.batch.getContent`.
// Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on any failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

const knock = new Knock({ apiKey: process.env.KNOCK_API_KEY, baseURL: process.env.KNOCK_BASE_URL });
const user = `content-user-${process.pid}`;

await knock.workflows.trigger("new-comment", {
  recipients: [user],
  data: { page_title: "Docs", page_url: "https://example.com/d", comment_preview: "hello" },
});
let messages;
for (const start = Date.now(); ; ) {
  messages = await knock.users.listMessages(user);
  if (messages.items.length >= 1 || Date.now() - start > 10_000) break;
  await new Promise((resolve) => setTimeout(resolve, 50));
}
const message = messages.items[0];
assert.ok(message, "the trigger produced a message");

const content = await knock.messages.getContent(message.id);
assert.equal(content.__typename, "MessageContent");
assert.equal(content.message_id, message.id);
assert.equal(content.inserted_at, message.inserted_at);
assert.equal(content.data.__typename, "MessageInAppFeedContent");
const body = content.data.blocks.find((b) => b.name === "body");
assert.equal(body.type, "markdown");
assert.match(body.rendered, /Docs/);

const batch = await knock.messages.batch.getContent({ message_ids: [message.id, "missing-id"] });
assert.equal(batch.length, 1);
assert.deepEqual(batch[0], content);

await assert.rejects(knock.messages.getContent("missing-id"), (e) => e.status === 404);
console.log("content sdk: ok");
