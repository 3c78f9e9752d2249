//! The raw limit: a minimal feed-item table written directly with rusqlite, the way the
//! fastest possible in-app feed would store its items. Tidings' figure is read as a ratio
//! of this one, measured in the same process, on the same disk, in the same round.
//!
//! Shape (issue 10): one table, 2 secondary indexes (the item id, and the feed), WAL,
//! `synchronous=FULL`, 1,000 rows per transaction, ~300 B of data and ~200 B of blocks
//! per row, and the same page cache as Tidings' writer. Recipients and channel follow the same distribution as the Tidings run.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, params};
use svix_ksuid::{Ksuid, KsuidLike};

const SCHEMA: &str = "
CREATE TABLE feed_items (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    channel_id   TEXT NOT NULL,
    recipient_id TEXT NOT NULL,
    data         TEXT NOT NULL,
    blocks       TEXT NOT NULL,
    inserted_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX feed_items_id ON feed_items(id);
CREATE INDEX feed_items_feed ON feed_items(channel_id, recipient_id, seq);
";

/// The page cache Tidings' writer connection uses (`store::connection`), so that the
/// ratio measures the schema and the engine, not a tuning the baseline lacks.
const CACHE_KIB: i64 = 64 * 1024;
/// Rows per transaction (one fsync each, as a group commit would do).
const ROWS_PER_TX: usize = 1000;
const CHANNEL: &str = "6f1c2a5e-9a43-4c1e-8d1b-2b7f4c7e0a11";

/// Writes `items` rows for the recipients named by `recipient(i)` into a fresh database
/// at `path` and returns rows committed per second.
pub fn rows_per_sec(
    path: &Path,
    items: usize,
    recipient: impl Fn(usize) -> String,
) -> rusqlite::Result<f64> {
    let mut conn = Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    conn.execute_batch(SCHEMA)?;
    let data = format!(
        "{{\"page\":\"Quarterly report\",\"url\":\"https://example.com/docs/q3\",\"comment\":\"{}\"}}",
        "x".repeat(220)
    );
    let started = Instant::now();
    let mut written = 0;
    while written < items {
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO feed_items(id, channel_id, recipient_id, data, blocks, inserted_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for i in written..(written + ROWS_PER_TX).min(items) {
                let user = recipient(i);
                let blocks = format!(
                    "[{{\"type\":\"markdown\",\"name\":\"body\",\"content\":\"Hi {user}: **Ada** commented on Quarterly report\",\
                     \"rendered\":\"<p>Hi {user}: <strong>Ada</strong> commented on Quarterly report</p>\"}}]"
                );
                insert.execute(params![
                    Ksuid::new(None, None).to_string(),
                    CHANNEL,
                    user,
                    data,
                    blocks,
                    "2026-11-30T08:00:00.000000Z"
                ])?;
            }
        }
        tx.commit()?;
        written = (written + ROWS_PER_TX).min(items);
    }
    Ok(items as f64 / started.elapsed().as_secs_f64())
}
