-- Where a run's fan-out stands (engine::audience::AudienceCursor as JSON; NULL = not
-- started). Written in the same transaction as each page's items, so a restart resumes
-- after the last committed page.
ALTER TABLE workflow_runs ADD COLUMN audience_cursor TEXT;
