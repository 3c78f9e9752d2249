-- The trigger's `data` beside its run (issue 18: fast reads again). A message that shares
-- its run's data stores `''` and reads the run's; until now that meant extracting `data`
-- from the whole stored request (with up to 1,000 listed recipients) for every item a page
-- or a `trigger_data` filter looked at. `data` holds the object alone, as JSON text; NULL
-- for a run whose request carried none (read as `{}`).
ALTER TABLE workflow_runs ADD COLUMN data TEXT;
UPDATE workflow_runs SET data = request -> '$.data' WHERE request -> '$.data' IS NOT NULL;
