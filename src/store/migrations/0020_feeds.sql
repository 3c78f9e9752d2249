-- Feeds with integer keys, and badge counters folded in the background (issue 18, items
-- 2 and 3). Before, every delivered item wrote two b-trees keyed by repeated text (the
-- feed index and an upsert of its feed counter), each a random page per item.
--
-- * `feeds`: the integer surrogate key of one feed (channel, recipient). A row is created
--   by the first message of the feed, never by a read, and never deleted (so a key once
--   handed out always means the same feed).
-- * `messages.feed`: the message's feed key. `messages_feed` and `messages_feed_expiring`
--   are keyed by it instead of the four text columns (which stay, for reads).
-- * `feed_counters`: per (feed, tenant), the non-archived, non-snoozed, not-expired
--   messages and of those the unread and unseen ones, but ONLY for messages with
--   `seq <= feed_fold.folded_through`. Inserting a message does not touch it; the fold
--   (`store::fold`) adds the messages past the watermark in bounded chunks, moving the
--   watermark in the same transaction. A badge is the counter rows plus a live count of
--   the feed's tail (`seq > folded_through`, a range on `messages_feed`).
-- * `feed_fold`: the one watermark row.
--
-- Upgrade: feeds from the existing messages and counter rows (a counter row outlives
-- its messages: it says the recipient had items in that tenant), keys backfilled, the
-- old exact counter rows re-keyed, and the watermark at the newest message, since the
-- old counters covered everything stored.
CREATE TABLE feeds (
    id                   INTEGER PRIMARY KEY,
    channel_id           TEXT NOT NULL,
    recipient_kind       TEXT NOT NULL,          -- 'user' | 'object'
    recipient_collection TEXT NOT NULL DEFAULT '',
    recipient_id         TEXT NOT NULL,
    UNIQUE (channel_id, recipient_kind, recipient_collection, recipient_id)
) STRICT;
-- The feeds of an object, on any channel (the objects of a tenant).
CREATE INDEX feeds_object ON feeds(recipient_collection, recipient_id)
    WHERE recipient_kind = 'object';

INSERT INTO feeds(channel_id, recipient_kind, recipient_collection, recipient_id)
    SELECT channel_id, recipient_kind, recipient_collection, recipient_id FROM messages
    UNION
    SELECT channel_id, recipient_kind, recipient_collection, recipient_id FROM feed_counters
    ORDER BY 1, 2, 3, 4;

ALTER TABLE messages ADD COLUMN feed INTEGER;
UPDATE messages SET feed = f.id FROM feeds f
    WHERE f.channel_id = messages.channel_id AND f.recipient_kind = messages.recipient_kind
      AND f.recipient_collection = messages.recipient_collection
      AND f.recipient_id = messages.recipient_id;

DROP INDEX messages_feed;
CREATE INDEX messages_feed ON messages(feed, seq);
DROP INDEX messages_feed_expiring;
CREATE INDEX messages_feed_expiring ON messages(feed, expires_at)
    WHERE expires_at IS NOT NULL AND expired = 0;

CREATE TABLE feed_counters_keyed (
    feed   INTEGER NOT NULL,
    tenant TEXT NOT NULL DEFAULT '',            -- '' = no tenant
    total  INTEGER NOT NULL DEFAULT 0,
    unread INTEGER NOT NULL DEFAULT 0,
    unseen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (feed, tenant)
) STRICT, WITHOUT ROWID;
INSERT INTO feed_counters_keyed(feed, tenant, total, unread, unseen)
    SELECT f.id, c.tenant, c.total, c.unread, c.unseen FROM feed_counters c JOIN feeds f
    ON f.channel_id = c.channel_id AND f.recipient_kind = c.recipient_kind
       AND f.recipient_collection = c.recipient_collection AND f.recipient_id = c.recipient_id;
DROP TABLE feed_counters;
ALTER TABLE feed_counters_keyed RENAME TO feed_counters;

CREATE TABLE feed_fold (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    folded_through INTEGER NOT NULL              -- messages.seq
) STRICT;
INSERT INTO feed_fold(id, folded_through) SELECT 1, coalesce(max(seq), 0) FROM messages;
