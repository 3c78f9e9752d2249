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

use crate::store::sql::{CopyColumn, Dialect, OptionalExtension, ToValue, params};
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

/// Rows per multi-row message insert on PostgreSQL (the `ON CONFLICT` path: pages under
/// [`PG_COPY_MIN_ROWS`], a page whose COPY met a replay, writes outside the writer),
/// largest first: `n` messages go in as few statements of these sizes as fit. Fixed
/// sizes, so that each statement is prepared once per connection; 500 rows bind 10,000
/// parameters, well under PostgreSQL's 65,535.
const PG_INSERT_SIZES: [usize; 5] = [500, 100, 20, 5, 1];

/// Rows from which a page is written by one binary COPY in a savepoint
/// ([`pg_copy_page`]). Below it, `INSERT … ON CONFLICT DO NOTHING` at once: for a delivery
/// written one message at a time (a workflow with a batch or delay step) the savepoint's
/// two round trips cost more than the conflict check (+25% PostgreSQL CPU per item in the
/// cluster bench, BENCHMARKS.md session 23).
const PG_COPY_MIN_ROWS: usize = 20;

/// Parameters bound per message row of [`insert_page`]'s `INSERT` statements.
const PG_ROW_PARAMS: usize = 20;

/// The multi-row `INSERT … ON CONFLICT DO NOTHING` of `rows` messages (see
/// [`PG_INSERT_SIZES`]), returning each new message's `(id, seq)`: the replays (a
/// conflict on `id` or on (recipient run, step)) are left out instead of failing it.
fn pg_insert_sql(rows: usize) -> &'static str {
    static SQL: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let all = SQL.get_or_init(|| {
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
                sql.push_str(" ON CONFLICT DO NOTHING RETURNING id, seq");
                sql
            })
            .collect()
    });
    let at = PG_INSERT_SIZES
        .iter()
        .position(|&n| n == rows)
        .unwrap_or(PG_INSERT_SIZES.len() - 1);
    &all[at]
}

/// Inserts a run of plain messages (a fan-out page's, feed keys resolved by
/// [`resolve_feeds`]) in order, as [`insert_prepared`] does one by one, and appends the
/// rows that were new to `rows` (replays are left out: exactly-once after a crash).
///
/// SQLite inserts them one by one (an in-process call each, and `INSERT OR IGNORE` is
/// its cheapest form: see [`insert_prepared`]). PostgreSQL takes a page in the writer's
/// transaction as one binary COPY ([`pg_copy_page`]), and anything else (a few rows, a
/// page that met a replay, a connection outside the writer) in multi-row
/// `INSERT … ON CONFLICT DO NOTHING` statements ([`PG_INSERT_SIZES`]); one round trip
/// per message bounded its fan-out at a tenth of the raw insert rate (BENCHMARKS.md,
/// issue 19). Sequence numbers follow the page's order either way.
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
    if db.in_write_transaction()
        && page.len() >= PG_COPY_MIN_ROWS
        && let Some(seqs) = pg_copy_page(db, &page)?
    {
        rows.extend(
            page.into_iter()
                .zip(seqs)
                .map(|(p, seq)| stored_row(p.message, seq)),
        );
        return Ok(());
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
        let computed = computed_columns(chunk)?;
        let mut values: Vec<&dyn ToValue> = Vec::with_capacity(n * PG_ROW_PARAMS);
        for (p, computed) in chunk.iter().zip(&computed) {
            values.extend(row_values(p, computed));
        }
        let mut inserted: HashMap<String, i64> =
            db.0.prepare_cached(pg_insert_sql(n))?
                .query_map(values.as_slice(), |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()?;
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

/// The values computed from a message (recipient columns, blocks' JSON), kept for the
/// statement to borrow.
fn computed_columns(page: &[PreparedMessage]) -> StoreResult<Vec<[&str; 4]>> {
    page.iter()
        .map(|p| {
            let r = &p.message.recipient;
            Ok([r.kind(), r.collection(), r.id(), p.message.blocks.json()?])
        })
        .collect()
}

/// A message's values in [`insert_message_head!`]'s column order, less the two the
/// statements write themselves (`metadata`, and `updated_at` = `inserted_at`).
fn row_values<'a>(p: &'a PreparedMessage, computed: &'a [&'a str; 4]) -> [&'a dyn ToValue; 20] {
    let m = &p.message;
    let [kind, collection, recipient_id, blocks] = computed;
    [
        &m.id,
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
    ]
}

/// [`pg_copy_page`]'s statement: a row's [`row_values`] in their order, then the `seq`
/// it took and the two columns the `INSERT` writes itself (`metadata`, `updated_at`).
const PG_COPY_SQL: &str = "COPY messages(id, channel_id, recipient_kind, \
     recipient_collection, recipient_id, tenant, workflow_key, workflow_version_id, \
     workflow_categories, workflow_run_id, workflow_recipient_run_id, step_ref, actors, data, \
     blocks, inserted_at, batch, expires_at, pinned_at, feed, seq, metadata, updated_at) \
     FROM STDIN (FORMAT binary)";

/// The types of [`PG_COPY_SQL`]'s columns, in order: text but for `feed` and `seq`.
const PG_COPY_COLUMNS: [CopyColumn; 23] = {
    let mut columns = [CopyColumn::Text; 23];
    columns[19] = CopyColumn::BigInt;
    columns[20] = CopyColumn::BigInt;
    columns
};

/// A new message's `metadata`.
const EMPTY_METADATA: &str = "{}";

/// Writes `page` by one binary COPY inside a savepoint; each row's `seq` in page order,
/// or `None` when a row met a unique key (a replay: the savepoint is rolled back and the
/// caller's `ON CONFLICT` inserts leave the replays out).
///
/// Why COPY: PostgreSQL writes its rows through the bulk path (many rows per heap WAL
/// record, no per-row expression evaluation), about half the multi-row `INSERT`'s cost
/// (BENCHMARKS.md, session 25). COPY has no `RETURNING`, so the sequence numbers are taken
/// first (`nextval`, after the transaction took its id in `Conn::begin`, as the identity
/// default would: the fold's horizon, `store::fold`, holds) and written explicitly,
/// ascending in page order. A page holds no recipient its run already reached (direct
/// recipients cannot have been, subscribers were looked up: `runs::without_recipient_runs`)
/// and a second runner of the same page is refused before it writes
/// (`runs::advance_audience_cursor`), so a conflict is rare (one message given twice);
/// the numbers a rolled-back COPY took stay unused, a gap like any other.
fn pg_copy_page(db: &Db<'_>, page: &[PreparedMessage]) -> StoreResult<Option<Vec<i64>>> {
    db.0.execute_batch("SAVEPOINT message_page")?;
    match pg_copy_rows(db, page) {
        Ok(seqs) => {
            db.0.execute_batch("RELEASE message_page")?;
            Ok(Some(seqs))
        }
        Err(StoreError::Sql(e)) if e.is_unique_violation() => {
            db.0.execute_batch("ROLLBACK TO message_page; RELEASE message_page")?;
            Ok(None)
        }
        Err(e) => {
            // Leave the transaction as the caller's savepoint expects it.
            let _ =
                db.0.execute_batch("ROLLBACK TO message_page; RELEASE message_page");
            Err(e)
        }
    }
}

/// [`pg_copy_page`]'s work inside its savepoint.
fn pg_copy_rows(db: &Db<'_>, page: &[PreparedMessage]) -> StoreResult<Vec<i64>> {
    let wanted = i64::try_from(page.len()).unwrap_or(i64::MAX);
    let mut seqs: Vec<i64> =
        db.0.prepare_cached("SELECT nextval('messages_seq_seq') FROM generate_series(1, ?1)")?
            .query_map([wanted], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    seqs.sort_unstable();
    let computed = computed_columns(page)?;
    let mut values: Vec<&dyn ToValue> = Vec::with_capacity(page.len() * PG_COPY_COLUMNS.len());
    for ((p, computed), seq) in page.iter().zip(&computed).zip(&seqs) {
        values.extend(row_values(p, computed));
        values.extend([seq as &dyn ToValue, &EMPTY_METADATA, &p.message.inserted_at]);
    }
    // Fewer numbers than messages would leave rows out of the zip: the count says so.
    let copied = db.0.copy_in(PG_COPY_SQL, &PG_COPY_COLUMNS, &values)?;
    if copied != page.len() as u64 {
        return Err(StoreError::Conflict(format!(
            "COPY wrote {copied} of {} messages",
            page.len()
        )));
    }
    Ok(seqs)
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
