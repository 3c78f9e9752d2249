-- Housekeeping in small steps (issue 17 item 10): each delete of the retention path takes
-- at most 500 rows found through an index, so one batch costs the same however large the
-- table (a scan per batch would make a backlog of N rows cost N²/500).
CREATE INDEX IF NOT EXISTS idempotency_keys_inserted ON idempotency_keys(inserted_at);
-- Windows that close; a `once` gate (closes_at NULL) is kept forever.
CREATE INDEX IF NOT EXISTS engine_gates_closes ON engine_gates(closes_at)
    WHERE closes_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS bulk_operations_inserted ON bulk_operations(inserted_at);

-- Schedules hold `data` once per create (issue 17 item 8): the schedules one request made
-- (one per recipient) share one payload row instead of a copy each. A payload goes with
-- the last schedule that refers to it (the triggers below, in the same transaction).
CREATE TABLE schedule_payloads (
    id   TEXT PRIMARY KEY,                  -- UUID v4
    data TEXT NOT NULL                      -- JSON object
) STRICT;
ALTER TABLE schedules ADD COLUMN payload_id TEXT;  -- NULL: no data
CREATE INDEX schedules_payload ON schedules(payload_id) WHERE payload_id IS NOT NULL;
-- Upgrade: rows written before keep their data, moved into one payload per distinct value
-- (the copies a create made become one again); the old column stays NULL from now on.
INSERT INTO schedule_payloads(id, data)
    SELECT MIN(id), data FROM schedules WHERE data IS NOT NULL GROUP BY data;
UPDATE schedules SET payload_id = p.id, data = NULL
    FROM schedule_payloads p WHERE schedules.data = p.data;
CREATE TRIGGER schedules_release_payload AFTER DELETE ON schedules
WHEN OLD.payload_id IS NOT NULL
BEGIN
    DELETE FROM schedule_payloads WHERE id = OLD.payload_id
      AND NOT EXISTS (SELECT 1 FROM schedules WHERE payload_id = OLD.payload_id);
END;
CREATE TRIGGER schedules_release_replaced_payload AFTER UPDATE OF payload_id ON schedules
WHEN OLD.payload_id IS NOT NULL AND OLD.payload_id IS NOT NEW.payload_id
BEGIN
    DELETE FROM schedule_payloads WHERE id = OLD.payload_id
      AND NOT EXISTS (SELECT 1 FROM schedules WHERE payload_id = OLD.payload_id);
END;
