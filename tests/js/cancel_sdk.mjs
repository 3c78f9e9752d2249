// The official @knocklabs/node SDK's `workflows.cancel`, unchanged, against Tidings. The
// Rust test (tests/api/engine_sdk_cancel.rs) paused runs of `sdk-cancel` for users
// `sdk-c1` and `sdk-c2` under cancellation key `sdk-cancel-key` before running this, and
// checks afterwards that only `sdk-c1` was cancelled.
// Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on any failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

const knock = new Knock({
  apiKey: process.env.KNOCK_API_KEY,
  baseURL: process.env.KNOCK_BASE_URL,
});

const answer = await knock.workflows.cancel("sdk-cancel", {
  cancellation_key: "sdk-cancel-key",
  recipients: ["sdk-c1"],
});
assert.ok(answer === undefined || answer === null || answer === "", `unexpected answer ${answer}`);
// An unknown key cancels nothing and still answers 204.
await knock.workflows.cancel("sdk-cancel", { cancellation_key: "no-such-key" });
// An unknown workflow is Knock's 404.
await assert.rejects(
  knock.workflows.cancel("no-such-workflow", { cancellation_key: "x" }),
  (e) => e.status === 404,
);
console.log("node sdk cancel: ok");
