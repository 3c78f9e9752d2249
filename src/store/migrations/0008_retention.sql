-- Retention deletes by age; these indexes find what expired without scanning the tables.
CREATE INDEX messages_inserted_at ON messages(inserted_at);
CREATE INDEX messages_archived_at ON messages(archived_at) WHERE archived_at IS NOT NULL;
CREATE INDEX workflow_runs_updated_at ON workflow_runs(updated_at);
CREATE INDEX idempotency_keys_inserted_at ON idempotency_keys(inserted_at);
