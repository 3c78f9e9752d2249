-- Several nodes (issue 20): a stored recipient run's list position (its rowid) is the
-- messages' high-water mark shifted left, plus a counter. On one SQLite writer the
-- counter is `max(rowid) + 1`; on PostgreSQL several nodes' writers run concurrent
-- transactions that would read the same maximum and collide on the rowid (the second
-- insert waited for the first to commit, then inserted nothing, and its page failed).
-- This sequence hands out the counter instead: unique across nodes, never waited on.
CREATE SEQUENCE recipient_run_positions;
