// The official @knocklabs/node SDK against a Tidings server whose key may send 1 trigger/s
// (a burst of 2) on a clock that stands still (tests/api/backpressure.rs): two triggers
// pass, the third is Knock's 429 with Retry-After. Retries are off so the 429 is seen.
// Env: KNOCK_API_KEY, KNOCK_BASE_URL. Exits non-zero on any failure.
import assert from "node:assert/strict";
import Knock from "@knocklabs/node";

const knock = new Knock({
  apiKey: process.env.KNOCK_API_KEY,
  baseURL: process.env.KNOCK_BASE_URL,
  maxRetries: 0,
});

for (let i = 0; i < 2; i++) {
  const run = await knock.workflows.trigger("new-comment", { recipients: ["sdk-rl"] });
  assert.ok(run.workflow_run_id, "a run id");
}
await assert.rejects(
  knock.workflows.trigger("new-comment", { recipients: ["sdk-rl"] }),
  (e) => {
    assert.ok(e instanceof Knock.RateLimitError, `a RateLimitError, got ${e?.constructor?.name}`);
    assert.equal(e.status, 429);
    const retryAfter = typeof e.headers?.get === "function" ? e.headers.get("retry-after") : e.headers?.["retry-after"];
    assert.equal(retryAfter, "1");
    assert.equal(e.error?.code, "rate_limited");
    return true;
  },
);
console.log("node sdk rate limit: ok");
