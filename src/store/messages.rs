//! Message rows (feed items) and the badge counters kept beside them.
//!
//! Invariant: `feed_counters` holds, per (feed, tenant), the number of counted messages
//! (not archived, snoozed or expired), and of those the unread and unseen ones, among the
//! messages with `seq <= feed_fold.folded_through` (the fold, `store::fold`, moves that
//! watermark). Inserting a message leaves the counters alone (it is in the tail); every
//! function here that changes a message at or below the watermark adjusts the counters in
//! the same transaction.

use std::collections::HashMap;
use std::sync::Arc;

use crate::store::sql::{Dialect, OptionalExtension, ToValue, params};
use serde_json::Value;

use super::{Db, StoreError, StoreResult, feed_keys, fold};
use crate::model::RecipientRef;
use crate::model::message::Blocks;

/// A message's `data`. Every recipient without `$trigger_data` shares the run's `data`:
/// one allocation in memory (`Arc`), and in the database it is not copied into each
/// message row but read from `workflow_run_data` (see [`DATA_SQL`]). Only a
/// recipient whose data really differs stores its own.
#[derive(Debug, Clone)]
pub enum MessageData {
    /// The trigger's `data`, as stored with the run.
    Run(Arc<Value>),
    /// This recipient's own data (the trigger's `data` merged with its `$trigger_data`).
    Own(Arc<Value>),
}

impl MessageData {
    pub fn value(&self) -> &Arc<Value> {
        match self {
            MessageData::Run(v) | MessageData::Own(v) => v,
        }
    }
}

impl From<Value> for MessageData {
    fn from(value: Value) -> Self {
        MessageData::Own(Arc::new(value))
    }
}

/// A message row's `data` as SQL: its own, or (stored as `''`) the run's `data`.
macro_rules! data_sql {
    () => {
        "COALESCE(NULLIF(messages.data, ''), \
         (SELECT r.data FROM workflow_run_data r WHERE r.run_id = messages.workflow_run_id), '{}')"
    };
}

/// The SQL expression of a message's `data` (for filters on it).
pub const DATA_SQL: &str = data_sql!();

/// A message the engine wants stored. `id` and timestamps are chosen by the caller.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: String,
    pub channel_id: String,
    pub recipient: RecipientRef,
    pub tenant: Option<String>,
    pub workflow_key: String,
    pub workflow_version_id: String,
    pub workflow_categories: Vec<String>,
    pub workflow_run_id: String,
    pub workflow_recipient_run_id: String,
    pub step_ref: String,
    pub actors: Vec<RecipientRef>,
    pub data: MessageData,
    /// Shared by the messages of one shared render, with its JSON (see [`Blocks`]).
    pub blocks: Blocks,
    pub inserted_at: String,
    /// The closed batch this message renders (see `MessageRow::batch`).
    pub batch: Option<Arc<Value>>,
    /// The step's expiry (`expires_after` / `expires_at_field_path`), stored form.
    pub expires_at: Option<String>,
    /// Set when the step pins its items (`"pinned": true`): the creation time.
    pub pinned_at: Option<String>,
}

/// The row type lives in `model` (it is what feeds, views and filters reason about);
/// re-exported here because every read path in `store` returns it.
pub use crate::model::message::MessageRow;

/// Columns in the order [`row_to_message`] reads them, selected `FROM messages`.
pub const MESSAGE_COLUMNS: &str = concat!(
    "seq, id, channel_id, recipient_kind, recipient_collection, recipient_id, tenant, \
     workflow_key, workflow_version_id, workflow_categories, workflow_run_id, workflow_recipient_run_id, step_ref, \
     actors, ",
    data_sql!(),
    ", blocks, metadata, inserted_at, updated_at, seen_at, read_at, archived_at, interacted_at, link_clicked_at, batch, \
     expires_at, expired, snoozed_until, pinned_at"
);

pub(crate) fn row_to_message(
    row: &crate::store::sql::Row<'_>,
) -> crate::store::sql::Result<MessageRow> {
    let json = |i: usize| -> crate::store::sql::Result<Value> {
        let text: String = row.get(i)?;
        serde_json::from_str(&text).map_err(|e| crate::store::sql::Error::conversion(i, e))
    };
    let kind: String = row.get(3)?;
    let collection: String = row.get(4)?;
    let recipient_id: String = row.get(5)?;
    let categories = json(9)?;
    let actors = json(13)?;
    Ok(MessageRow {
        seq: row.get(0)?,
        id: row.get(1)?,
        channel_id: row.get(2)?,
        recipient: RecipientRef::from_stored(&kind, &collection, &recipient_id),
        tenant: row.get(6)?,
        workflow_key: row.get(7)?,
        workflow_version_id: row.get(8)?,
        workflow_categories: serde_json::from_value(categories).unwrap_or_default(),
        workflow_run_id: row.get(10)?,
        workflow_recipient_run_id: row.get(11)?,
        step_ref: row.get(12)?,
        actors: serde_json::from_value(actors).unwrap_or_default(),
        data: Arc::new(json(14)?),
        blocks: Blocks::new(json(15)?),
        metadata: json(16)?,
        inserted_at: row.get(17)?,
        updated_at: row.get(18)?,
        seen_at: row.get(19)?,
        read_at: row.get(20)?,
        archived_at: row.get(21)?,
        interacted_at: row.get(22)?,
        link_clicked_at: row.get(23)?,
        batch: row
            .get::<_, Option<String>>(24)?
            .and_then(|b| serde_json::from_str(&b).ok())
            .map(Arc::new),
        expires_at: row.get(25)?,
        expired: row.get::<_, i64>(26)? != 0,
        snoozed_until: row.get(27)?,
        pinned_at: row.get(28)?,
    })
}

/// A [`NewMessage`] with its JSON columns already serialized, so that the serializing
/// (and the copies of the row) happen before the write, off the writer thread: see
/// `engine::waits::prepare`. Built by [`NewMessage::prepare`].
#[derive(Debug)]
pub struct PreparedMessage {
    pub message: NewMessage,
    categories: String,
    actors: String,
    /// `''` for the run's data (see [`DATA_SQL`]).
    data: String,
    batch: Option<String>,
    /// The feed's key once resolved for a whole page ([`resolve_feeds`]).
    feed: Option<i64>,
}

impl NewMessage {
    /// Serializes the JSON columns now (see [`PreparedMessage`]).
    /// The blocks' JSON is serialized here once per shared render: messages sharing the
    /// blocks share their text too.
    pub fn prepare(self) -> StoreResult<PreparedMessage> {
        self.blocks.json()?;
        Ok(PreparedMessage {
            categories: serde_json::to_string(&self.workflow_categories)?,
            actors: serde_json::to_string(&self.actors)?,
            data: match &self.data {
                MessageData::Run(_) => String::new(),
                MessageData::Own(data) => serde_json::to_string(&**data)?,
            },
            batch: self
                .batch
                .as_deref()
                .map(serde_json::to_string)
                .transpose()?,
            feed: None,
            message: self,
        })
    }
}

/// Resolves the feed key of every message of a page before [`insert_prepared`]: one
/// lookup for the page (and one insert for the feeds it creates), not one per message.
pub fn resolve_feeds<'m>(
    db: &Db<'_>,
    page: impl IntoIterator<Item = &'m mut PreparedMessage>,
) -> StoreResult<()> {
    let mut page: Vec<&'m mut PreparedMessage> = page.into_iter().collect();
    let (names, at) = feed_keys::distinct(
        page.iter()
            .map(|p| (p.message.channel_id.as_str(), &p.message.recipient)),
    );
    let keys = feed_keys::resolve(db, &names)?;
    for (p, i) in page.iter_mut().zip(at) {
        p.feed = keys.get(i).copied();
    }
    Ok(())
}

/// Inserts a message unless its (recipient run, step) already produced one (the counters
/// see it as part of its feed's tail until the fold). Returns the stored row when it was new, `None` when it was a replay — this is
/// what makes re-running a run after a crash exactly-once.
pub fn insert(db: &Db<'_>, m: &NewMessage) -> StoreResult<Option<MessageRow>> {
    insert_prepared(db, m.clone().prepare()?)
}

/// The head of a message insert, up to `VALUES`: one column list for SQLite's single-row
/// insert and PostgreSQL's multi-row ones ([`pg_insert_sql`]).
macro_rules! insert_message_head {
    () => {
        "INTO messages(id, channel_id, recipient_kind, recipient_collection, recipient_id, tenant, \
     workflow_key, workflow_version_id, workflow_categories, workflow_run_id, workflow_recipient_run_id, step_ref, \
     actors, data, blocks, metadata, inserted_at, updated_at, batch, expires_at, pinned_at, feed) VALUES "
    };
}

/// [`insert`] of a message serialized beforehand; the returned row takes the message's
/// values over instead of copying them.
pub fn insert_prepared(db: &Db<'_>, p: PreparedMessage) -> StoreResult<Option<MessageRow>> {
    if db.0.dialect() == Dialect::Postgres {
        // The one-row case of the page insert: one statement and one value list.
        let mut rows = Vec::with_capacity(1);
        insert_page(db, vec![p], &mut rows)?;
        return Ok(rows.pop());
    }
    let m = p.message;
    let feed = match p.feed {
        Some(key) => key,
        None => feed_keys::ensure(db, &m.channel_id, &m.recipient)?,
    };
    // `INSERT OR IGNORE` and the rowid it made: a `RETURNING` clause gives every insert a
    // statement journal, which cost SQLite 2.4x the CPU per item (BENCHMARKS.md, issue 19).
    let inserted =
        db.0.prepare_cached(concat!(
            "INSERT OR IGNORE ",
            insert_message_head!(),
            "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, '{}', ?16, ?16, \
             ?17, ?18, ?19, ?20)"
        ))?
        .execute(params![
            m.id,
            m.channel_id,
            m.recipient.kind(),
            m.recipient.collection(),
            m.recipient.id(),
            m.tenant,
            m.workflow_key,
            m.workflow_version_id,
            p.categories,
            m.workflow_run_id,
            m.workflow_recipient_run_id,
            m.step_ref,
            p.actors,
            p.data,
            m.blocks.json()?,
            m.inserted_at,
            p.batch,
            m.expires_at,
            m.pinned_at,
            feed,
        ])?;
    let seq = (inserted == 1).then(|| db.0.last_insert_rowid()).flatten();
    Ok(seq.map(|seq| stored_row(m, seq)))
}

/// The row as stored, built from what was inserted rather than read back: reading it
/// would parse the run's data once more per message.
fn stored_row(m: NewMessage, seq: i64) -> MessageRow {
    MessageRow {
        seq,
        id: m.id,
        channel_id: m.channel_id,
        recipient: m.recipient,
        tenant: m.tenant,
        workflow_key: m.workflow_key,
        workflow_version_id: m.workflow_version_id,
        workflow_categories: m.workflow_categories,
        workflow_run_id: m.workflow_run_id,
        workflow_recipient_run_id: m.workflow_recipient_run_id,
        step_ref: m.step_ref,
        actors: m.actors,
        data: match m.data {
            MessageData::Run(v) | MessageData::Own(v) => v,
        },
        blocks: m.blocks,
        metadata: Value::Object(Default::default()),
        updated_at: m.inserted_at.clone(),
        inserted_at: m.inserted_at,
        seen_at: None,
        read_at: None,
        archived_at: None,
        interacted_at: None,
        link_clicked_at: None,
        batch: m.batch,
        expires_at: m.expires_at,
        expired: false,
        snoozed_until: None,
        pinned_at: m.pinned_at,
    }
}

/// Rows per multi-row message insert on PostgreSQL, largest first: a run of `n` plain
/// messages is written with as few statements of these sizes as fit (a fan-out page of
/// 100 or 500 targets, `engine::audience`, is one statement). Fixed sizes, so that each
/// statement is prepared once per connection; 500 rows bind 10,000 parameters, well under
/// PostgreSQL's 65,535.
const PG_INSERT_SIZES: [usize; 5] = [500, 100, 20, 5, 1];

/// Rows from which a chunk is first tried as a plain `INSERT` in a savepoint
/// ([`pg_insert_chunk`]). Below it, `ON CONFLICT DO NOTHING` at once: a delivery written
/// one message at a time (a workflow with a batch or delay step) otherwise paid three
/// round trips per message instead of one (+25% PostgreSQL CPU per item in the cluster
/// bench, BENCHMARKS.md session 23).
const PG_PLAIN_INSERT_MIN_ROWS: usize = 20;

/// Parameters bound per message row of [`insert_page`]'s statements.
const PG_ROW_PARAMS: usize = 20;

/// The multi-row insert of `rows` messages (see [`PG_INSERT_SIZES`]), returning each
/// message's `(id, seq)`; with `skip_conflicts`, the replays (a conflict on `id` or on
/// (recipient run, step)) are left out instead of failing the statement.
fn pg_insert_sql(rows: usize, skip_conflicts: bool) -> &'static str {
    static SQL: std::sync::OnceLock<[Vec<String>; 2]> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
        [false, true].map(|skip| {
            PG_INSERT_SIZES
                .iter()
                .map(|&n| {
                    let mut sql = String::from(concat!("INSERT ", insert_message_head!()));
                    for r in 0..n {
                        let b = r * PG_ROW_PARAMS;
                        if r > 0 {
                            sql.push_str(", ");
                        }
                        sql.push('(');
                        for i in 1..=15 {
                            sql.push_str(&format!("?{}, ", b + i));
                        }
                        sql.push_str(&format!(
                            "'{{}}', ?{0}, ?{0}, ?{1}, ?{2}, ?{3}, ?{4})",
                            b + 16,
                            b + 17,
                            b + 18,
                            b + 19,
                            b + 20
                        ));
                    }
                    if skip {
                        sql.push_str(" ON CONFLICT DO NOTHING");
                    }
                    sql.push_str(" RETURNING id, seq");
                    sql
                })
                .collect()
        })
    });
    let at = PG_INSERT_SIZES
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(PG_INSERT_SIZES.len() - 1);
    &all[usize::from(skip_conflicts)][at]
}

/// Inserts a run of plain messages (a fan-out page's, feed keys resolved by
/// [`resolve_feeds`]) in order, as [`insert_prepared`] does one by one, and appends the
/// rows that were new to `rows` (replays are left out: exactly-once after a crash).
///
/// SQLite inserts them one by one (an in-process call each, and `INSERT OR IGNORE` is
/// its cheapest form: see [`insert_prepared`]). PostgreSQL takes them in multi-row
/// statements ([`PG_INSERT_SIZES`]): one round trip per statement instead of one per
/// message, which bounded its fan-out at a tenth of the raw insert rate (BENCHMARKS.md,
/// issue 19). Each row's values are in page order, so sequence numbers follow the page.
pub fn insert_page(
    db: &Db<'_>,
    mut page: Vec<PreparedMessage>,
    rows: &mut Vec<MessageRow>,
) -> StoreResult<()> {
    if db.0.dialect() == Dialect::Sqlite {
        for message in page {
            if let Some(row) = insert_prepared(db, message)? {
                rows.push(row);
            }
        }
        return Ok(());
    }
    for p in &mut page {
        if p.feed.is_none() {
            p.feed = Some(feed_keys::ensure(
                db,
                &p.message.channel_id,
                &p.message.recipient,
            )?);
        }
    }
    let mut seqs: Vec<Option<i64>> = Vec::with_capacity(page.len());
    let mut rest = page.as_slice();
    while !rest.is_empty() {
        let n = PG_INSERT_SIZES
            .iter()
            .copied()
            .find(|&n| n <= rest.len())
            .unwrap_or(1);
        let (chunk, after) = rest.split_at(n);
        rest = after;
        // The values computed from a message (recipient columns, blocks' JSON), kept
        // here for the statement to borrow.
        let computed = chunk
            .iter()
            .map(|p| {
                let r = &p.message.recipient;
                Ok([r.kind(), r.collection(), r.id(), p.message.blocks.json()?])
            })
            .collect::<StoreResult<Vec<[&str; 4]>>>()?;
        let mut values: Vec<&dyn ToValue> = Vec::with_capacity(n * PG_ROW_PARAMS);
        for (p, [kind, collection, recipient_id, blocks]) in chunk.iter().zip(&computed) {
            let m = &p.message;
            values.extend([
                &m.id as &dyn ToValue,
                &m.channel_id,
                kind,
                collection,
                recipient_id,
                &m.tenant,
                &m.workflow_key,
                &m.workflow_version_id,
                &p.categories,
                &m.workflow_run_id,
                &m.workflow_recipient_run_id,
                &m.step_ref,
                &p.actors,
                &p.data,
                blocks,
                &m.inserted_at,
                &p.batch,
                &m.expires_at,
                &m.pinned_at,
                &p.feed,
            ]);
        }
        let mut inserted = pg_insert_chunk(db, n, &values)?;
        // A message id seen twice in one chunk is stored once: `remove` hands its
        // sequence number to the first only.
        seqs.extend(chunk.iter().map(|p| inserted.remove(&p.message.id)));
    }
    rows.extend(
        page.into_iter()
            .zip(seqs)
            .filter_map(|(p, seq)| seq.map(|seq| stored_row(p.message, seq))),
    );
    Ok(())
}

/// Writes one chunk of [`insert_page`] and returns the new messages' `id → seq`.
///
/// A chunk is first written by a plain `INSERT` inside a savepoint: the runner left out
/// every recipient that already has its message (`runs::without_recipient_runs`), so a
/// conflict is rare (a crash's replay racing another node's, or a single message written
/// twice). `ON CONFLICT DO NOTHING` costs a speculative insertion per row (a pre-check of
/// every unique index and a confirmation record: ~25% of the insert, BENCHMARKS.md issue 19)
/// and is paid only when the plain insert met a conflict, after rolling it back.
fn pg_insert_chunk(
    db: &Db<'_>,
    rows: usize,
    values: &[&dyn ToValue],
) -> StoreResult<HashMap<String, i64>> {
    let run = |sql: &str| -> StoreResult<HashMap<String, i64>> {
        let mut stmt = db.0.prepare_cached(sql)?;
        Ok(stmt
            .query_map(values, |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?)
    };
    if !db.in_write_transaction() || rows < PG_PLAIN_INSERT_MIN_ROWS {
        // Outside the writer's transaction (a test's autocommit connection) there is no
        // savepoint to fall back to; and for a few rows the savepoint's two extra round
        // trips cost more than the conflict check: the statement that never fails on a
        // replay.
        return run(pg_insert_sql(rows, true));
    }
    db.0.execute_batch("SAVEPOINT message_chunk")?;
    match run(pg_insert_sql(rows, false)) {
        Ok(inserted) => {
            db.0.execute_batch("RELEASE message_chunk")?;
            Ok(inserted)
        }
        Err(StoreError::Sql(e)) if e.is_unique_violation() => {
            db.0.execute_batch("ROLLBACK TO message_chunk; RELEASE message_chunk")?;
            run(pg_insert_sql(rows, true))
        }
        Err(e) => {
            // Leave the transaction as the caller's savepoint expects it.
            let _ =
                db.0.execute_batch("ROLLBACK TO message_chunk; RELEASE message_chunk");
            Err(e)
        }
    }
}

/// Loads one message by id.
pub fn get(db: &Db<'_>, id: &str) -> StoreResult<Option<MessageRow>> {
    let sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?1");
    Ok(db
        .0
        .prepare_cached(&sql)?
        .query_row([id], row_to_message)
        .optional()?)
}

/// How one change moves a feed's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterDelta {
    pub total: i64,
    pub unread: i64,
    pub unseen: i64,
}

impl CounterDelta {
    /// What a message contributes to the counters in its current state: nothing while
    /// archived, snoozed, or once its expiry has been applied (`expired`).
    pub fn contribution(m: &MessageRow) -> Self {
        if m.archived_at.is_some() || m.snoozed_until.is_some() || m.expired {
            return CounterDelta::default();
        }
        CounterDelta {
            total: 1,
            unread: i64::from(m.read_at.is_none()),
            unseen: i64::from(m.seen_at.is_none()),
        }
    }

    /// `after - before`.
    pub fn between(before: &MessageRow, after: &MessageRow) -> Self {
        let (b, a) = (Self::contribution(before), Self::contribution(after));
        CounterDelta {
            total: a.total - b.total,
            unread: a.unread - b.unread,
            unseen: a.unseen - b.unseen,
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == CounterDelta::default()
    }
}

/// Applies `delta` to the counter row of `m`'s feed (creating it at zero first) when `m`
/// is at or below the fold's watermark; a message above it is counted live from its
/// current state, so it needs nothing. `m` is the row as it was before the change (its
/// `seq` then).
///
/// On PostgreSQL it first takes the shared side of the fold's lock until the
/// transaction ends, so the watermark it reads cannot move before this change commits
/// (several nodes' status changes share it; only a fold excludes them): once per
/// command ([`crate::store::sql::Conn::hold_lock_once`]), so a bulk change pays one round
/// trip for it, not one per message.
pub fn adjust_counters(db: &Db<'_>, m: &MessageRow, delta: CounterDelta) -> StoreResult<()> {
    if delta.is_zero() {
        return Ok(());
    }
    db.0.hold_lock_once(fold::SHARE_FOLD_LOCK)?;
    db.0.prepare_cached(
        "INSERT INTO feed_counters(feed, tenant, total, unread, unseen) \
         SELECT f.id, ?5, ?6, ?7, ?8 FROM feeds f WHERE f.channel_id = ?1 AND f.recipient_kind = ?2 \
         AND f.recipient_collection = ?3 AND f.recipient_id = ?4 \
         AND ?9 <= (SELECT folded_through FROM feed_fold) \
         ON CONFLICT(feed, tenant) DO UPDATE SET \
         total = feed_counters.total + excluded.total, unread = feed_counters.unread + excluded.unread, \
         unseen = feed_counters.unseen + excluded.unseen",
    )?
    .execute(params![
        m.channel_id,
        m.recipient.kind(),
        m.recipient.collection(),
        m.recipient.id(),
        m.tenant.as_deref().unwrap_or(""),
        delta.total,
        delta.unread,
        delta.unseen,
        m.seq,
    ])?;
    Ok(())
}

/// Moves the counters from `before`'s contribution to `after`'s: the difference when the
/// message keeps its `seq`; when it moves (a wake puts it at the head of its feed), each
/// position is settled on its own side of the watermark.
pub fn move_counters(db: &Db<'_>, before: &MessageRow, after: &MessageRow) -> StoreResult<()> {
    if before.seq == after.seq {
        return adjust_counters(db, before, CounterDelta::between(before, after));
    }
    let gone = CounterDelta::contribution(before);
    adjust_counters(
        db,
        before,
        CounterDelta {
            total: -gone.total,
            unread: -gone.unread,
            unseen: -gone.unseen,
        },
    )?;
    adjust_counters(db, after, CounterDelta::contribution(after))
}

/// Sets a message's engagement timestamps to `after`'s values and moves the counters by
/// the difference. The one way status changes are written.
pub fn update_engagement(db: &Db<'_>, before: &MessageRow, after: &MessageRow) -> StoreResult<()> {
    db.0.prepare_cached(
        "UPDATE messages SET seen_at = ?2, read_at = ?3, archived_at = ?4, interacted_at = ?5, \
         link_clicked_at = ?6, metadata = ?7, updated_at = ?8 WHERE id = ?1",
    )?
    .execute(params![
        after.id,
        after.seen_at,
        after.read_at,
        after.archived_at,
        after.interacted_at,
        after.link_clicked_at,
        serde_json::to_string(&after.metadata)?,
        after.updated_at,
    ])?;
    move_counters(db, before, after)
}
