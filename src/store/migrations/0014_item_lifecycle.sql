-- Items that expire, snooze and pin (issue 21). Every column is NULL for an item that
-- uses none of them, so existing rows need no rewrite.
--
-- * `expires_at`: from this instant the item is absent from every feed view and count.
--   Reads filter on it against the clock; the expiry due-source takes its contribution out
--   of `feed_counters` when it fires and sets `expired` = 1 in the same transaction (the
--   flag says "the counters no longer hold it", so a later status change moves nothing).
--   Expired rows are deleted a grace period after `expires_at`.
-- * `snoozed_until`: set while the item is snoozed (it counts nowhere meanwhile); the wake
--   due-source clears it, makes the item unread and unseen with a new `seq` (the head of
--   the feed) and counts it again, in one transaction.
-- * `pinned_at`: when the item was pinned; pinning never moves a count.
ALTER TABLE messages ADD COLUMN expires_at TEXT;
ALTER TABLE messages ADD COLUMN expired INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN snoozed_until TEXT;
ALTER TABLE messages ADD COLUMN pinned_at TEXT;

-- The expiry due-source: items whose expiry is still counted, earliest first.
CREATE INDEX messages_expiry_due ON messages(expires_at)
    WHERE expires_at IS NOT NULL AND expired = 0;
-- The purge of expired items after the grace period.
CREATE INDEX messages_expired ON messages(expires_at) WHERE expired = 1;
-- Counts of one feed subtract the items past their expiry that the due-source has not
-- reached yet: a range over this feed's few uncounted-expiry rows.
CREATE INDEX messages_feed_expiring ON messages(channel_id, recipient_kind, recipient_collection, recipient_id, expires_at)
    WHERE expires_at IS NOT NULL AND expired = 0;
-- The wake due-source: snoozed items, earliest wake first.
CREATE INDEX messages_snooze_due ON messages(snoozed_until) WHERE snoozed_until IS NOT NULL;
