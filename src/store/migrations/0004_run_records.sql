-- Run records (GET /v1/workflow_recipient_runs): each recipient run carries its run's
-- workflow key and tenant, so every list filter is one index and pages in rowid order
-- (newest first) without a join or a sort.
ALTER TABLE workflow_recipient_runs ADD COLUMN workflow_key TEXT;
ALTER TABLE workflow_recipient_runs ADD COLUMN tenant TEXT;

UPDATE workflow_recipient_runs SET
    workflow_key = (SELECT r.workflow_key FROM workflow_runs r WHERE r.id = workflow_run_id),
    tenant       = (SELECT r.tenant FROM workflow_runs r WHERE r.id = workflow_run_id);

-- Filled here rather than by every insert path, so a new writer of recipient runs cannot
-- forget it. An `INSERT OR IGNORE` that is ignored does not fire it.
CREATE TRIGGER workflow_recipient_runs_copy_run AFTER INSERT ON workflow_recipient_runs
WHEN NEW.workflow_key IS NULL
BEGIN
    UPDATE workflow_recipient_runs SET
        workflow_key = (SELECT r.workflow_key FROM workflow_runs r WHERE r.id = NEW.workflow_run_id),
        tenant       = (SELECT r.tenant FROM workflow_runs r WHERE r.id = NEW.workflow_run_id)
    WHERE rowid = NEW.rowid;
END;

-- One index per filter; SQLite appends the rowid, so equality on any of them pages in order.
CREATE INDEX workflow_recipient_runs_recipient
    ON workflow_recipient_runs(recipient_kind, recipient_collection, recipient_id);
CREATE INDEX workflow_recipient_runs_workflow ON workflow_recipient_runs(workflow_key);
CREATE INDEX workflow_recipient_runs_tenant ON workflow_recipient_runs(tenant);
CREATE INDEX workflow_recipient_runs_status ON workflow_recipient_runs(status);
CREATE INDEX workflow_recipient_runs_inserted ON workflow_recipient_runs(inserted_at);
