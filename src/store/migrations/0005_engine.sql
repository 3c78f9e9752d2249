-- Durable workflow engine (issue 6): paused recipient runs, their timers, cancellation.

-- While a recipient run is paused: where it resumes and what it needs to
-- (JSON {"paused_at": [..], "step_ref", "trigger_data", "subscription"}); NULL otherwise.
ALTER TABLE workflow_recipient_runs ADD COLUMN resume TEXT;

-- Every timed item the scheduler fires: `resume` = a paused recipient run (target = its
-- id) continues after its delay. Firing deletes the row in the same transaction that
-- writes the resumed step's results (exactly once).
CREATE TABLE timers (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    due_at  TEXT NOT NULL,
    kind    TEXT NOT NULL,
    target  TEXT NOT NULL,
    UNIQUE (kind, target)
) STRICT;
CREATE INDEX timers_due ON timers(due_at, id);

CREATE INDEX workflow_runs_cancellation ON workflow_runs(workflow_key, cancellation_key)
    WHERE cancellation_key IS NOT NULL;
