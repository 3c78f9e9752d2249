-- A SQLite database at the current schema with rows in every table (store::copy's tests):
-- chosen rowids and sequence numbers with gaps, NULLs, non-ASCII text, a recipient run
-- whose workflow is NULL (written before its run), and AUTOINCREMENT high-water marks
-- above the largest remaining number (rows deleted), which the copy must carry.
UPDATE meta SET value = '12' WHERE key = 'run_records_derived_after_seq';
INSERT INTO meta(key, value) VALUES ('secret_key', 'sk_copy'), ('public_key', 'pk_copy');
INSERT INTO channels(id, key, type, inserted_at)
    VALUES ('ch-1', 'in-app-feed', 'in_app_feed', '2026-01-01T00:00:00.000000Z');
INSERT INTO workflows(key, definition, version_id, inserted_at, updated_at)
    VALUES ('wf', '{"steps":[]}', 'v1', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
INSERT INTO users(rowid, id, properties, inserted_at, updated_at)
    VALUES (3, 'u1', '{"name":"Zoë ✓"}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z'),
           (9, 'u2', '{}', '2026-01-01T00:00:01.000000Z', '2026-01-01T00:00:01.000000Z');
INSERT INTO objects(rowid, collection, id, properties, inserted_at, updated_at)
    VALUES (4, 'projects', 'p1', '{"a":[1,2]}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
-- More rows than one INSERT batch holds: full batches and a last, shorter one.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1234)
INSERT INTO objects(collection, id, properties, inserted_at, updated_at)
    SELECT 'bulk', 'o' || i, '{"i":' || i || '}', '2026-01-02T00:00:00.000000Z', '2026-01-02T00:00:00.000000Z' FROM n;
INSERT INTO tenants(rowid, id, properties, inserted_at, updated_at)
    VALUES (2, 'acme', '{"name":"Acme"}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
INSERT INTO preference_sets VALUES ('user', '', 'u1', 'default', '{"channel_types":{"email":false}}', '2026-01-01T00:00:00.000000Z');
INSERT INTO channel_data VALUES ('user', '', 'u1', 'ch-1', '{"tokens":["a"]}', '2026-01-01T00:00:00.000000Z');
INSERT INTO subscriptions(rowid, object_collection, object_id, recipient_kind, recipient_collection,
                          recipient_id, properties, inserted_at, updated_at)
    VALUES (5, 'projects', 'p1', 'user', '', 'u1', NULL, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
INSERT INTO feeds(id, channel_id, recipient_kind, recipient_collection, recipient_id) VALUES (6, 'ch-1', 'user', '', 'u1');
INSERT INTO feed_counters(feed, tenant, total, unread, unseen) VALUES (6, 'acme', 2, 1, 1);
UPDATE feed_fold SET folded_through = 11;
-- Written before its run exists: SQLite's trigger left its workflow NULL.
INSERT INTO workflow_recipient_runs(rowid, id, workflow_run_id, recipient_kind, recipient_collection,
        recipient_id, status, events, inserted_at, updated_at)
    VALUES (8, 'rr2', 'r1', 'user', '', 'u2', 'failed', '[{"event":"x"}]', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
INSERT INTO workflow_runs(rowid, id, workflow_key, request, cancellation_key, tenant, status, inserted_at,
        updated_at, audience_cursor, recipient_count, attempts, failure_reason)
    VALUES (7, 'r1', 'wf', '{"actor":"u2"}', 'ck', 'acme', 'completed', '2026-01-01T00:00:00.000000Z',
            '2026-01-01T00:00:00.000000Z', NULL, 2, 1, NULL);
INSERT INTO workflow_recipient_runs(rowid, id, workflow_run_id, recipient_kind, recipient_collection,
        recipient_id, status, events, inserted_at, updated_at, resume)
    VALUES (10, 'rr1', 'r1', 'user', '', 'u1', 'completed', '[]', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', '{"step":1}');
INSERT INTO messages(seq, id, channel_id, recipient_kind, recipient_id, tenant, workflow_key, workflow_version_id,
        workflow_run_id, workflow_recipient_run_id, step_ref, data, inserted_at, updated_at, read_at, feed)
    VALUES (11, 'm11', 'ch-1', 'user', 'u1', 'acme', 'wf', 'v1', 'r1', 'rr1', 'in_app', '{"x":"ünï"}',
            '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:05.000000Z', 6),
           (12, 'm12', 'ch-1', 'user', 'u1', 'acme', 'wf', 'v1', 'r1', 'rr1', 'in_app_2', '{}',
            '2026-01-01T00:00:01.000000Z', '2026-01-01T00:00:01.000000Z', NULL, 6),
           (40, 'm40', 'ch-1', 'user', 'u1', NULL, 'wf', 'v1', 'r1', 'rr1', 'in_app_3', '{}',
            '2026-01-01T00:00:02.000000Z', '2026-01-01T00:00:02.000000Z', NULL, 6);
DELETE FROM messages WHERE seq = 40;
INSERT INTO workflow_run_data(run_id, data) VALUES ('r1', '{"a":1,"b":"two"}');
INSERT INTO workflow_run_data_values(run_id, key, type, value) VALUES ('r1', 'a', 'integer', '1'), ('r1', 'b', 'text', 'two');
INSERT INTO idempotency_keys VALUES ('k1', 'hash', 'r1', 'req1', '2026-01-01T00:00:00.000000Z');
INSERT INTO timers(id, due_at, kind, target) VALUES (21, '2026-01-03T00:00:00.000000Z', 'delay', 'rr1'),
                                                   (30, '2026-01-03T00:00:00.000000Z', 'delay', 'rr2');
DELETE FROM timers WHERE id = 30;
INSERT INTO batches VALUES ('b1', 'wf/u1', 'open', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:10:00.000000Z', NULL, '{"render_limit":10}');
INSERT INTO batch_activities(seq, batch_id, recipient_run, id, actor, data, inserted_at, cancelled)
    VALUES (3, 'b1', 'rr1', 'a1', NULL, '{}', '2026-01-01T00:00:00.000000Z', 0),
           (4, 'b1', 'rr1', 'a2', '"u2"', '{"n":2}', '2026-01-01T00:00:01.000000Z', 1);
INSERT INTO schedule_payloads VALUES ('pl1', '{"p":true}');
INSERT INTO schedules(rowid, id, workflow_key, recipient_kind, recipient_collection, recipient_id, actor, tenant,
        data, repeats, scheduled_at, ending_at, next_occurrence_at, last_occurrence_at, inserted_at, updated_at, payload_id)
    VALUES (12, 's1', 'wf', 'user', '', 'u1', NULL, NULL, NULL, '[{"frequency":"daily"}]', NULL, NULL,
            '2026-01-04T00:00:00.000000Z', NULL, '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z', 'pl1');
INSERT INTO workflow_cancellations VALUES ('wf', 'ck', 'user', '', 'u2', '2026-01-01T00:00:00.000000Z');
INSERT INTO engine_gates VALUES ('g1', '2026-01-01T00:00:00.000000Z', NULL, 3);
INSERT INTO bulk_operations VALUES ('bo1', '{"status":"completed"}', '2026-01-01T00:00:00.000000Z');
INSERT INTO translations VALUES ('', 'en', '', '{"hello":"Hello"}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z');
