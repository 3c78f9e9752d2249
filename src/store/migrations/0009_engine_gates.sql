-- Gates the engine decides in the write transaction (issue 6): throttle windows and
-- `trigger_frequency`. One row per gate key; a window opens with its first pass and a
-- later pass after `closes_at` opens a new one (NULL = never closes).
CREATE TABLE engine_gates (
    key        TEXT PRIMARY KEY,
    opened_at  TEXT NOT NULL,
    closes_at  TEXT,
    count      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
