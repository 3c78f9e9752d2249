-- Cancels that arrive before a run pauses, and the backlog counted in recipients.

-- A cancel (`POST /v1/workflows/{key}/cancel`) recorded while a run with its key was still
-- `queued` (its fan-out not finished), so the runner cancels a recipient run of that run
-- that reaches a pause (delay or batch) afterwards. `recipient_kind` '' = every recipient.
-- `created_at` is the writer's clock at the cancel; it covers runs inserted at or before
-- it. A row lives only while such a queued run exists (see the trigger below).
CREATE TABLE workflow_cancellations (
    workflow_key         TEXT NOT NULL,
    cancellation_key     TEXT NOT NULL,
    recipient_kind       TEXT NOT NULL,
    recipient_collection TEXT NOT NULL,
    recipient_id         TEXT NOT NULL,
    created_at           TEXT NOT NULL,
    PRIMARY KEY (workflow_key, cancellation_key, recipient_kind, recipient_collection, recipient_id)
) STRICT, WITHOUT ROWID;

-- A run leaving `queued` (completed or failed) drops the cancellations of its key that no
-- longer cover any queued run: the table holds only what the runner may still need. In
-- the same transaction as the status change, so no writer can forget it.
CREATE TRIGGER workflow_runs_release_cancellations AFTER UPDATE OF status ON workflow_runs
WHEN OLD.status = 'queued' AND NEW.status <> 'queued' AND NEW.cancellation_key IS NOT NULL
BEGIN
    DELETE FROM workflow_cancellations
    WHERE workflow_key = NEW.workflow_key AND cancellation_key = NEW.cancellation_key
      AND NOT EXISTS (
        SELECT 1 FROM workflow_runs r
        WHERE r.workflow_key = NEW.workflow_key AND r.cancellation_key = NEW.cancellation_key
          AND r.status = 'queued' AND r.inserted_at <= workflow_cancellations.created_at);
END;

-- The recipients a trigger listed (an object counts once), summed over queued runs by the
-- backlog gate (`--max-queued-items`). Runs queued before this migration get their count
-- from their stored request.
ALTER TABLE workflow_runs ADD COLUMN recipient_count INTEGER NOT NULL DEFAULT 1;
UPDATE workflow_runs SET recipient_count = COALESCE(json_array_length(request, '$.recipients'), 1)
WHERE status = 'queued';
