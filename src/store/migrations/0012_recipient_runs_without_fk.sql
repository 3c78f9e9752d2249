-- Recipient runs without the foreign key to workflow_runs (issue 10, throughput). An
-- immediate foreign key makes SQLite open a statement journal for every INSERT (so the
-- statement could be undone alone), and releasing it was 12% of the writer's time in a
-- fan-out: one per recipient. The writer's per-command savepoint already undoes a failed
-- command whole, and `store::runs::ensure_recipient_run` reads the run in the same
-- transaction before inserting, so the parent still exists whenever a child is written.
-- Rows keep their rowids: run-record cursors page by them.
CREATE TABLE workflow_recipient_runs_0011 (
    id                   TEXT PRIMARY KEY,
    workflow_run_id      TEXT NOT NULL,
    recipient_kind       TEXT NOT NULL,
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    status               TEXT NOT NULL,
    events               TEXT NOT NULL DEFAULT '[]',
    inserted_at          TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    workflow_key         TEXT,
    tenant               TEXT,
    resume               TEXT,
    UNIQUE (workflow_run_id, recipient_kind, recipient_collection, recipient_id)
) STRICT;

INSERT INTO workflow_recipient_runs_0011(rowid, id, workflow_run_id, recipient_kind,
    recipient_collection, recipient_id, status, events, inserted_at, updated_at,
    workflow_key, tenant, resume)
SELECT rowid, id, workflow_run_id, recipient_kind, recipient_collection, recipient_id,
    status, events, inserted_at, updated_at, workflow_key, tenant, resume
FROM workflow_recipient_runs;

DROP TABLE workflow_recipient_runs;
ALTER TABLE workflow_recipient_runs_0011 RENAME TO workflow_recipient_runs;

-- As 0004 made them.
CREATE TRIGGER workflow_recipient_runs_copy_run AFTER INSERT ON workflow_recipient_runs
WHEN NEW.workflow_key IS NULL
BEGIN
    UPDATE workflow_recipient_runs SET
        workflow_key = (SELECT r.workflow_key FROM workflow_runs r WHERE r.id = NEW.workflow_run_id),
        tenant       = (SELECT r.tenant FROM workflow_runs r WHERE r.id = NEW.workflow_run_id)
    WHERE rowid = NEW.rowid;
END;
CREATE INDEX workflow_recipient_runs_recipient
    ON workflow_recipient_runs(recipient_kind, recipient_collection, recipient_id);
CREATE INDEX workflow_recipient_runs_workflow ON workflow_recipient_runs(workflow_key);
CREATE INDEX workflow_recipient_runs_tenant ON workflow_recipient_runs(tenant);
CREATE INDEX workflow_recipient_runs_status ON workflow_recipient_runs(status);
CREATE INDEX workflow_recipient_runs_inserted ON workflow_recipient_runs(inserted_at);
