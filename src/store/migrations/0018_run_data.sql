-- The trigger's `data` beside its run (issue 18: fast reads again). A message that shares
-- its run's data stores `''` and reads the run's; until now that meant extracting `data`
-- from the whole stored request (with up to 1,000 listed recipients, kilobytes that spill
-- onto overflow pages) for every item a page or a `trigger_data` filter looked at. Here the
-- data is alone in a narrow table: a read probes one short row. No row = no data (`{}`).
CREATE TABLE workflow_run_data (
    run_id TEXT PRIMARY KEY,
    data   TEXT NOT NULL          -- JSON object: the trigger's `data`
) STRICT, WITHOUT ROWID;
INSERT INTO workflow_run_data(run_id, data)
SELECT id, request -> '$.data' FROM workflow_runs WHERE request -> '$.data' IS NOT NULL;

-- The data's top-level scalars, one row each: a `trigger_data` filter probes (run, key)
-- per item instead of parsing each item's data, so its cost does not grow with the size
-- of the data. `type`/`value` are `json_each`'s type and atom (text cut to its first 256
-- characters, as the filter compares it); objects and arrays never match a filter.
CREATE TABLE workflow_run_data_values (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    type   TEXT NOT NULL,
    value  ANY,
    PRIMARY KEY (run_id, key)
) STRICT, WITHOUT ROWID;
INSERT INTO workflow_run_data_values(run_id, key, type, value)
SELECT d.run_id, j.key, j.type, CASE WHEN j.type = 'text' THEN substr(j.atom, 1, 256) ELSE j.atom END
FROM workflow_run_data d, json_each(d.data) j
WHERE j.type NOT IN ('object', 'array');
