-- Bounded attempts at a run (issue 17, items 1 and 2). `attempts` is stored BEFORE each
-- attempt starts (a trigger's insert counts the first), so a run that crashes the process
-- is not replayed forever at restart; a committed page resets it (the run made progress).
-- `failure_reason` is the last attempt's error, and why a run ended `failed`.
ALTER TABLE workflow_runs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workflow_runs ADD COLUMN failure_reason TEXT;
