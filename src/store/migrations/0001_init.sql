-- Tidings schema v1. Forward-only: never edit a migration that has shipped; add a new file.

-- Small key/value facts about this installation (generated keys, signing key).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    properties  TEXT NOT NULL DEFAULT '{}',  -- JSON object: name, email, ..., custom (flattened on the wire)
    inserted_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

CREATE TABLE objects (
    collection  TEXT NOT NULL,
    id          TEXT NOT NULL,
    properties  TEXT NOT NULL DEFAULT '{}',  -- JSON object, nested under `properties` on the wire
    inserted_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (collection, id)
) STRICT;

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    properties  TEXT NOT NULL DEFAULT '{}',  -- JSON object: name, settings, custom
    inserted_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

-- Preference sets per recipient (user or object); kept apart from custom properties.
CREATE TABLE preference_sets (
    recipient_kind       TEXT NOT NULL,      -- 'user' | 'object'
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    set_id               TEXT NOT NULL,
    body                 TEXT NOT NULL,      -- JSON PreferenceSet body
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (recipient_kind, recipient_collection, recipient_id, set_id)
) STRICT;

CREATE TABLE channels (
    id          TEXT PRIMARY KEY,            -- UUID, what the SDKs send
    key         TEXT NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    inserted_at TEXT NOT NULL
) STRICT;

CREATE TABLE workflows (
    key         TEXT PRIMARY KEY,
    definition  TEXT NOT NULL,               -- JSON Workflow (management API shape, @-refs resolved)
    version_id  TEXT NOT NULL,               -- UUID, changes on every upsert
    inserted_at TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) STRICT;

-- One row per accepted trigger. status: queued -> completed. The runner picks up queued
-- rows at start, so an acknowledged run survives a crash.
CREATE TABLE workflow_runs (
    id               TEXT PRIMARY KEY,       -- UUID v4 workflow_run_id
    workflow_key     TEXT NOT NULL,
    request          TEXT NOT NULL,          -- JSON: normalized trigger (recipient refs, actor ref, data, tenant)
    cancellation_key TEXT,
    tenant           TEXT,
    status           TEXT NOT NULL,
    inserted_at      TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE INDEX workflow_runs_status ON workflow_runs(status) WHERE status = 'queued';

-- One row per (run, recipient): its own workflow_recipient_run_id and a log of what happened.
CREATE TABLE workflow_recipient_runs (
    id                   TEXT PRIMARY KEY,
    workflow_run_id      TEXT NOT NULL REFERENCES workflow_runs(id),
    recipient_kind       TEXT NOT NULL,
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    status               TEXT NOT NULL,
    events               TEXT NOT NULL DEFAULT '[]',
    inserted_at          TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (workflow_run_id, recipient_kind, recipient_collection, recipient_id)
) STRICT;

-- Idempotency-Key replay cache for triggers (24 h window).
CREATE TABLE idempotency_keys (
    key             TEXT PRIMARY KEY,
    request_hash    TEXT NOT NULL,
    workflow_run_id TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    inserted_at     TEXT NOT NULL
) STRICT;

-- In-app messages (= feed items). seq is the monotonic order behind cursors.
CREATE TABLE messages (
    seq                       INTEGER PRIMARY KEY AUTOINCREMENT,
    id                        TEXT NOT NULL UNIQUE,   -- KSUID, 27 chars base62
    channel_id                TEXT NOT NULL,
    recipient_kind            TEXT NOT NULL,          -- 'user' | 'object'
    recipient_collection      TEXT NOT NULL DEFAULT '',
    recipient_id              TEXT NOT NULL,
    tenant                    TEXT,                   -- NULL = no tenant
    workflow_key              TEXT NOT NULL,
    workflow_version_id       TEXT NOT NULL,
    workflow_categories       TEXT NOT NULL DEFAULT '[]',
    workflow_run_id           TEXT NOT NULL,
    workflow_recipient_run_id TEXT NOT NULL,
    step_ref                  TEXT NOT NULL,
    actors                    TEXT NOT NULL DEFAULT '[]',  -- JSON [RecipientRef]
    data                      TEXT NOT NULL DEFAULT '{}',
    blocks                    TEXT NOT NULL DEFAULT '[]',
    metadata                  TEXT NOT NULL DEFAULT '{}',
    inserted_at               TEXT NOT NULL,
    updated_at                TEXT NOT NULL,
    seen_at                   TEXT,
    read_at                   TEXT,
    archived_at               TEXT,
    interacted_at             TEXT,
    link_clicked_at           TEXT,
    UNIQUE (workflow_recipient_run_id, step_ref)           -- a run step produces at most one message
) STRICT;
CREATE INDEX messages_feed ON messages(channel_id, recipient_kind, recipient_collection, recipient_id, seq);
CREATE INDEX messages_run ON messages(workflow_run_id);

-- Badge counters for non-archived messages per (channel, recipient, tenant). tenant '' = none.
-- Maintained in the same transaction as every message change, so they never drift.
CREATE TABLE feed_counters (
    channel_id           TEXT NOT NULL,
    recipient_kind       TEXT NOT NULL,
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    tenant               TEXT NOT NULL DEFAULT '',
    total                INTEGER NOT NULL DEFAULT 0,
    unread               INTEGER NOT NULL DEFAULT 0,
    unseen               INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (channel_id, recipient_kind, recipient_collection, recipient_id, tenant)
) STRICT;

-- Bulk operations are applied synchronously; the row is what GET /v1/bulk_operations/{id} returns.
CREATE TABLE bulk_operations (
    id          TEXT PRIMARY KEY,
    body        TEXT NOT NULL,
    inserted_at TEXT NOT NULL
) STRICT;
