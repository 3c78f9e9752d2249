-- Batch steps (issue 6 item 3): open batches and their activities, durable across restarts.

-- One row per batch. `identity` = workflow, step, recipient, tenant and batch-key value;
-- at most one batch per identity is open. The scheduler closes a batch when the clock
-- reaches `closes_at`: it deletes the batch and its activities in the same transaction
-- that writes the continuing run's results (exactly once; the message keeps what the
-- batch showed, so closed batches take no space).
CREATE TABLE batches (
    id            TEXT PRIMARY KEY,
    identity      TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('open', 'closed')),
    opened_at     TEXT NOT NULL,
    closes_at     TEXT NOT NULL,
    -- Sliding windows: the latest `closes_at` may move to (NULL = fixed window).
    extend_until  TEXT,
    -- How the batch renders at close (`{render_limit, order}`).
    settings      TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX batches_open_identity ON batches(identity) WHERE status = 'open';
CREATE INDEX batches_due ON batches(closes_at) WHERE status = 'open';

-- Each trigger that joined a batch: its recipient run (paused until close), actor, data.
-- A cancelled run's activity is marked, never counted or rendered.
CREATE TABLE batch_activities (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id      TEXT NOT NULL REFERENCES batches(id) ON DELETE CASCADE,
    recipient_run TEXT NOT NULL,
    id            TEXT NOT NULL,
    actor         TEXT,
    data          TEXT NOT NULL,
    inserted_at   TEXT NOT NULL,
    cancelled     INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX batch_activities_batch ON batch_activities(batch_id, cancelled, seq);
CREATE INDEX batch_activities_run ON batch_activities(recipient_run);

-- A message produced after a batch: `{activities, total_activities, total_actors}`.
ALTER TABLE messages ADD COLUMN batch TEXT;
