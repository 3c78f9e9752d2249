-- Schedules (recurring triggers): one row per (schedule, recipient). `next_occurrence_at`
-- is the claim: firing an occurrence advances it in the same transaction that inserts
-- the workflow run, so each occurrence runs once, also across restarts.
CREATE TABLE schedules (
    id                   TEXT PRIMARY KEY,      -- UUID v4
    workflow_key         TEXT NOT NULL,
    recipient_kind       TEXT NOT NULL,
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    actor                TEXT,                  -- JSON recipient reference
    tenant               TEXT,
    data                 TEXT,                  -- JSON object
    repeats              TEXT NOT NULL,         -- JSON: normalized ScheduleRepeat rules
    scheduled_at         TEXT,
    ending_at            TEXT,
    next_occurrence_at   TEXT,                  -- NULL: nothing left to fire
    last_occurrence_at   TEXT,
    inserted_at          TEXT NOT NULL,
    updated_at           TEXT NOT NULL
) STRICT;
CREATE INDEX schedules_workflow ON schedules(workflow_key);
CREATE INDEX schedules_recipient ON schedules(recipient_kind, recipient_collection, recipient_id);
CREATE INDEX schedules_due ON schedules(next_occurrence_at) WHERE next_occurrence_at IS NOT NULL;
