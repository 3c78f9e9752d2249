-- Channel data per recipient (push tokens, Slack connections, ...), one row per channel.
-- Kept apart from custom properties so it is never flattened into a User.
CREATE TABLE channel_data (
    recipient_kind       TEXT NOT NULL,      -- 'user' | 'object' | 'tenant'
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    channel_id           TEXT NOT NULL,
    data                 TEXT NOT NULL,      -- JSON object
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (recipient_kind, recipient_collection, recipient_id, channel_id)
) STRICT;

-- Tenant lists filter by name.
CREATE INDEX tenants_name ON tenants(json_extract(properties, '$.name'));
