-- Partial indexes for the rows nobody looks up through them (issue 10, throughput). Every
-- feed item of a fan-out writes a recipient run and bumps a feed counter; these three
-- indexes took an entry for each although no query ever reads those entries:
--
-- * `workflow_recipient_runs_tenant`: the run-record filter is `rr.tenant = ?`, which never
--   matches a NULL tenant, so runs without a tenant need no entry. SQLite uses the partial
--   index for `tenant = ?` as it is (a comparison implies `IS NOT NULL`).
-- * `workflow_recipient_runs_status`: a plain delivery is written `completed` and stays so.
--   Almost every row is `completed`, so a `completed` filter pages the table in rowid
--   order anyway; the index serves the rare states (queued, processing, paused, failed,
--   cancelled), and `store::run_records` adds `rr.status <> 'completed'` to a status
--   filter without `completed` so that SQLite may use it.
-- * `feed_counters_tenant`: read only for the objects of a tenant
--   (`recipients::objects`, `f.recipient_kind = 'object'`, the same term as below).
DROP INDEX workflow_recipient_runs_tenant;
CREATE INDEX workflow_recipient_runs_tenant ON workflow_recipient_runs(tenant)
    WHERE tenant IS NOT NULL;
DROP INDEX workflow_recipient_runs_status;
CREATE INDEX workflow_recipient_runs_status ON workflow_recipient_runs(status)
    WHERE status <> 'completed';
DROP INDEX feed_counters_tenant;
CREATE INDEX feed_counters_tenant ON feed_counters(tenant, recipient_kind, recipient_collection, recipient_id)
    WHERE recipient_kind = 'object';
