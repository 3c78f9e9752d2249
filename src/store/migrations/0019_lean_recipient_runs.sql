-- Lean recipient runs (issue 18): from this version on a plain delivery stores no
-- `workflow_recipient_runs` row; its run record is derived from its messages, which carry
-- its deterministic recipient-run id (`ids::recipient_run_id`). No table changes.
--
-- Where derived records can begin: every message already stored belongs to a stored
-- recipient run, so the run-record list's derived side reads only messages after the
-- newest one (`store::run_records`); an upgraded database's old records keep answering
-- from their rows, at their old positions (their rowids).
INSERT OR REPLACE INTO meta(key, value)
SELECT 'run_records_derived_after_seq',
       CAST(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0) AS TEXT);

-- A workflow-filtered run-record list reaches a rare workflow's derived records through
-- its runs (`messages_run`): one entry per run (trigger), not per item.
CREATE INDEX workflow_runs_workflow ON workflow_runs(workflow_key);
