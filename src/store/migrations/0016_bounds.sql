-- Housekeeping in small steps (issue 17 item 10): each delete of the retention path takes
-- at most 500 rows found through an index, so one batch costs the same however large the
-- table (a scan per batch would make a backlog of N rows cost N²/500).
CREATE INDEX IF NOT EXISTS idempotency_keys_inserted ON idempotency_keys(inserted_at);
-- Windows that close; a `once` gate (closes_at NULL) is kept forever.
CREATE INDEX IF NOT EXISTS engine_gates_closes ON engine_gates(closes_at)
    WHERE closes_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS bulk_operations_inserted ON bulk_operations(inserted_at);
