//! The raw limit on PostgreSQL (`--engine postgres`): the same minimal feed-item table
//! as [`super::raw`] written directly with the `postgres` crate over ONE connection,
//! `synchronous_commit = on`, 1,000 rows per transaction in ONE multi-row `INSERT`
//! (prepared once). Issue 19 reads Tidings-on-PostgreSQL as a ratio of this, measured in
//! the same round, on the same server, in a fresh database of its own.
//!
//! Same columns and indexes as the SQLite table: an integer primary key (`bigserial`
//! for `INTEGER PRIMARY KEY`), a unique index on the item id and the feed index
//! `(channel_id, recipient_id, seq)`; the values are the same strings.

use std::time::Instant;

use svix_ksuid::{Ksuid, KsuidLike};

const SCHEMA: &str = "
CREATE TABLE feed_items (
    seq          BIGSERIAL PRIMARY KEY,
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

const ROWS_PER_TX: usize = 1000;
const COLUMNS: usize = 6;
const CHANNEL: &str = "6f1c2a5e-9a43-4c1e-8d1b-2b7f4c7e0a11";

/// `INSERT … VALUES ($1, …, $6), …` for `rows` rows.
fn insert_sql(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|r| {
            let params: Vec<String> = (1..=COLUMNS)
                .map(|c| format!("${}", r * COLUMNS + c))
                .collect();
            format!("({})", params.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO feed_items(id, channel_id, recipient_id, data, blocks, inserted_at) VALUES {}",
        values.join(", ")
    )
}

/// Writes `items` rows for the recipients named by `recipient(i)` into a fresh table of
/// the (fresh) database at `url` and returns rows committed per second, and the CPU µs
/// per row of every `postgres` process meanwhile (read while the connection is still
/// open, so its backend is counted). Blocking: call it off the async runtime's threads.
pub fn rows_per_sec(
    url: &str,
    items: usize,
    recipient: impl Fn(usize) -> String,
) -> Result<(f64, Option<f64>), postgres::Error> {
    let mut client = postgres::Client::connect(url, postgres::NoTls)?;
    client.batch_execute("SET synchronous_commit = on; SET client_min_messages = warning")?;
    client.batch_execute(SCHEMA)?;
    let data = format!(
        "{{\"page\":\"Quarterly report\",\"url\":\"https://example.com/docs/q3\",\"comment\":\"{}\"}}",
        "x".repeat(220)
    );
    let full = client.prepare(&insert_sql(ROWS_PER_TX))?;
    let cpu_before = crate::support::postgres_cpu_seconds();
    let started = Instant::now();
    let mut written = 0;
    while written < items {
        let end = (written + ROWS_PER_TX).min(items);
        // The values are built before the transaction, as the SQLite baseline's are
        // built inside its loop: both pay their ids and strings in the timed region.
        let mut values: Vec<String> = Vec::with_capacity((end - written) * COLUMNS);
        for i in written..end {
            let user = recipient(i);
            let blocks = format!(
                "[{{\"type\":\"markdown\",\"name\":\"body\",\"content\":\"Hi {user}: **Ada** commented on Quarterly report\",\
                 \"rendered\":\"<p>Hi {user}: <strong>Ada</strong> commented on Quarterly report</p>\"}}]"
            );
            values.extend([
                Ksuid::new(None, None).to_string(),
                CHANNEL.to_owned(),
                user,
                data.clone(),
                blocks,
                "2026-11-30T08:00:00.000000Z".to_owned(),
            ]);
        }
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let mut tx = client.transaction()?;
        if end - written == ROWS_PER_TX {
            tx.execute(&full, &params)?;
        } else {
            tx.execute(insert_sql(end - written).as_str(), &params)?;
        }
        tx.commit()?;
        written = end;
    }
    let rate = items as f64 / started.elapsed().as_secs_f64();
    let cpu = cpu_before
        .zip(crate::support::postgres_cpu_seconds())
        .map(|(before, after)| (after - before) * 1e6 / items as f64);
    Ok((rate, cpu))
}
