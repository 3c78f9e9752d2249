-- Object subscriptions (spec §4.3): `recipient` follows `object`. A trigger to the object
-- fans out to its subscribers (depth 2). rowid order is the listing and fan-out order.
CREATE TABLE subscriptions (
    object_collection    TEXT NOT NULL,
    object_id            TEXT NOT NULL,
    recipient_kind       TEXT NOT NULL,          -- 'user' | 'object'
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    properties           TEXT,                   -- JSON object, or NULL
    inserted_at          TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    UNIQUE (object_collection, object_id, recipient_kind, recipient_collection, recipient_id)
) STRICT;
-- Subscribers of one object in rowid order (listing and fan-out pages).
CREATE INDEX subscriptions_object ON subscriptions(object_collection, object_id);
-- The objects following one object, in rowid order (cycle checks, depth-2 fan-out hubs).
CREATE INDEX subscriptions_object_objects ON subscriptions(object_collection, object_id)
    WHERE recipient_kind = 'object';
-- What one recipient follows (user/object subscription lists, deletes, cycle checks).
CREATE INDEX subscriptions_recipient ON subscriptions(recipient_kind, recipient_collection, recipient_id);

-- The objects of a tenant (GET /v1/tenants/{t}/objects) are found through their counters.
CREATE INDEX feed_counters_tenant ON feed_counters(tenant, recipient_kind, recipient_collection, recipient_id);
