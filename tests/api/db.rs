//! Read-only looks into a test server's SQLite file, for facts no endpoint shows yet
//! (run status, recipient runs) and for exactly-once counting after a crash.
#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::OpenFlags;
use serde_json::Value;
use tidings::store::sql::{self, Conn, Params, Row};

/// A read-only look into the test's database: the SQLite file at `path`, or (on
/// PostgreSQL) the schema of the directory holding it (`engine`). Each statement runs on
/// a thread of its own with a fresh connection: PostgreSQL's client blocks, and a test's
/// body runs on an async runtime where blocking clients refuse to run.
pub struct Connection {
    path: std::path::PathBuf,
}

/// A statement of a [`Connection`], run when it is queried.
pub struct Statement<'c> {
    conn: &'c Connection,
    sql: String,
}

pub fn open(path: &Path) -> Connection {
    Connection {
        path: path.to_path_buf(),
    }
}

/// Writes to the test's database directly (seeding rows no endpoint makes, or making a
/// state a test must start from); `sql` may hold several statements.
pub fn execute_batch(path: &Path, sql: &str) {
    on_thread_writable(path, |conn| conn.execute_batch(sql)).expect("write to the test database");
}

/// One statement with parameters, written to the test's database; rows changed.
pub fn execute<P: Params + Send>(path: &Path, sql: &str, params: P) -> usize {
    on_thread_writable(path, |conn| conn.execute(sql, params)).expect("write to the test database")
}

fn on_thread_writable<T: Send>(path: &Path, f: impl FnOnce(&Conn) -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let conn = if crate::engine::is_postgres() {
                    connect(path)
                } else {
                    let conn = rusqlite::Connection::open(path).expect("open for writing");
                    conn.busy_timeout(Duration::from_secs(5))
                        .expect("busy timeout");
                    conn.into()
                };
                f(&conn)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A connection to the database at `path`, on the calling thread.
fn connect(path: &Path) -> Conn {
    if crate::engine::is_postgres() {
        let dir = path.parent().expect("a database path in a test directory");
        return Conn::connect_postgres(&sql::PgConfig::at(crate::engine::url_for(dir)))
            .expect("open the test schema");
    }
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open database read-only");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.into()
}

/// Runs `f` on a thread of its own with a connection to `path`'s database.
fn on_thread<T: Send>(path: &Path, f: impl FnOnce(&Conn) -> T + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| f(&connect(path)))
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Connection {
    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> sql::Result<T>
    where
        T: Send,
        P: Params + Send,
        F: FnOnce(&Row<'_>) -> sql::Result<T> + Send,
    {
        on_thread(&self.path, |conn| conn.query_row(sql, params, f))
    }

    pub fn prepare(&self, sql: &str) -> sql::Result<Statement<'_>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_owned(),
        })
    }
}

impl Statement<'_> {
    /// Every row mapped by `f` (read at once).
    pub fn query_map<T, P, F>(
        &mut self,
        params: P,
        f: F,
    ) -> sql::Result<std::vec::IntoIter<sql::Result<T>>>
    where
        T: Send,
        P: Params + Send,
        F: FnMut(&Row<'_>) -> sql::Result<T> + Send,
    {
        let sql = &self.sql;
        on_thread(&self.conn.path, |conn| {
            let mut stmt = conn.prepare(sql)?;
            let rows: Vec<sql::Result<T>> = stmt.query_map(params, f)?.collect();
            Ok(rows.into_iter())
        })
    }
}

/// A stored message, as the tests inspect it.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub recipient_kind: String,
    pub recipient_collection: String,
    pub recipient_id: String,
    pub tenant: Option<String>,
    pub workflow_key: String,
    pub categories: Value,
    pub workflow_recipient_run_id: String,
    pub step_ref: String,
    pub actors: Value,
    pub data: Value,
    pub blocks: Value,
}

pub fn messages_of_run(path: &Path, run_id: &str) -> Vec<Message> {
    let conn = open(path);
    // A message shares its run's data unless its own differs (`DATA_SQL` reads either).
    let sql = format!(
        "SELECT id, recipient_kind, recipient_collection, recipient_id, tenant, workflow_key, \
         workflow_categories, workflow_recipient_run_id, step_ref, actors, {}, blocks \
         FROM messages WHERE workflow_run_id = ?1 ORDER BY seq",
        tidings::store::messages::DATA_SQL
    );
    let mut stmt = conn.prepare(&sql).expect("prepare");
    let json = |s: String| serde_json::from_str::<Value>(&s).expect("stored JSON");
    stmt.query_map([run_id], |r| {
        Ok(Message {
            id: r.get(0)?,
            recipient_kind: r.get(1)?,
            recipient_collection: r.get(2)?,
            recipient_id: r.get(3)?,
            tenant: r.get(4)?,
            workflow_key: r.get(5)?,
            categories: json(r.get(6)?),
            workflow_recipient_run_id: r.get(7)?,
            step_ref: r.get(8)?,
            actors: json(r.get(9)?),
            data: json(r.get(10)?),
            blocks: json(r.get(11)?),
        })
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

pub fn run_status(path: &Path, run_id: &str) -> Option<String> {
    let conn = open(path);
    conn.query_row(
        "SELECT status FROM workflow_runs WHERE id = ?1",
        [run_id],
        |r| r.get(0),
    )
    .ok()
}

/// Waits (≤10 s) until the run left `queued`; returns its final status.
pub async fn wait_for_run(path: &Path, run_id: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match run_status(path, run_id) {
            Some(s) if s != "queued" => return s,
            _ if Instant::now() > deadline => panic!("run {run_id} did not complete in time"),
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// The recipient runs of every run, stored or derived: a plain delivery stores no row,
/// its run is its messages (`store::run_records`), `completed` with one `message_created`
/// each. Columns: workflow_run_id, recipient_id, status, events (JSON).
pub fn all_recipient_runs() -> &'static str {
    if crate::engine::is_postgres() {
        ALL_RECIPIENT_RUNS_POSTGRES
    } else {
        ALL_RECIPIENT_RUNS
    }
}

/// [`ALL_RECIPIENT_RUNS`] in PostgreSQL's JSON functions.
const ALL_RECIPIENT_RUNS_POSTGRES: &str = "(SELECT workflow_run_id, recipient_id, status, events \
     FROM workflow_recipient_runs UNION ALL \
     SELECT m.workflow_run_id, m.recipient_id, 'completed', json_agg(json_build_object(\
       'data', CASE WHEN m.expires_at IS NULL THEN json_build_object('message_id', m.id) \
               ELSE json_build_object('expires_at', m.expires_at, 'message_id', m.id) END, \
       'event', 'message_created', 'status', 'ok', 'step_ref', m.step_ref, \
       'step_type', 'channel') ORDER BY m.seq)::text \
     FROM messages m WHERE NOT EXISTS (SELECT 1 FROM workflow_recipient_runs s \
       WHERE s.id = m.workflow_recipient_run_id) GROUP BY m.workflow_recipient_run_id, m.workflow_run_id, m.recipient_id) AS all_runs";

const ALL_RECIPIENT_RUNS: &str = "(SELECT workflow_run_id, recipient_id, status, events \
     FROM workflow_recipient_runs UNION ALL \
     SELECT m.workflow_run_id, m.recipient_id, 'completed', json_group_array(json(json_object(\
       'data', CASE WHEN m.expires_at IS NULL THEN json_object('message_id', m.id) \
               ELSE json_object('expires_at', m.expires_at, 'message_id', m.id) END, \
       'event', 'message_created', 'status', 'ok', 'step_ref', m.step_ref, \
       'step_type', 'channel')) ORDER BY m.seq) \
     FROM messages m WHERE NOT EXISTS (SELECT 1 FROM workflow_recipient_runs s \
       WHERE s.id = m.workflow_recipient_run_id) GROUP BY m.workflow_recipient_run_id)";

/// (status, events) of each recipient run of a run (stored or derived), by recipient id.
pub fn recipient_runs(path: &Path, run_id: &str) -> Vec<(String, String, Value)> {
    let conn = open(path);
    let mut stmt = conn
        .prepare(&format!(
            "SELECT recipient_id, status, events FROM {} \
             WHERE workflow_run_id = ?1 ORDER BY recipient_id",
            all_recipient_runs()
        ))
        .expect("prepare");
    stmt.query_map([run_id], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            serde_json::from_str(&r.get::<_, String>(2)?).unwrap_or(Value::Null),
        ))
    })
    .expect("query")
    .collect::<Result<_, _>>()
    .expect("rows")
}

/// Every feed's badges as (channel, recipient id, tenant, total, unread, unseen), all-zero
/// ones left out: the counter rows, which cover the messages up to the fold's watermark,
/// plus the live tail above it (what a badge read adds up), in one statement.
pub const BADGES: &str = "SELECT channel_id, recipient_id, tenant, sum(total) AS total, \
     sum(unread) AS unread, sum(unseen) AS unseen FROM ( \
     SELECT f.channel_id, f.recipient_id, c.tenant, c.total, c.unread, c.unseen \
     FROM feed_counters c JOIN feeds f ON f.id = c.feed \
     UNION ALL SELECT channel_id, recipient_id, coalesce(tenant, ''), 1, \
     CASE WHEN read_at IS NULL THEN 1 ELSE 0 END, CASE WHEN seen_at IS NULL THEN 1 ELSE 0 END \
     FROM messages WHERE seq > (SELECT folded_through FROM feed_fold) \
     AND archived_at IS NULL AND snoozed_until IS NULL AND expired = 0) AS badges \
     GROUP BY 1, 2, 3 HAVING sum(total) != 0 OR sum(unread) != 0 OR sum(unseen) != 0 ORDER BY 1, 2, 3";

/// One feed's badges as a row: (channel, recipient id, tenant, total, unread, unseen).
pub type BadgeRow = (String, String, String, i64, i64, i64);

/// The rows of `sql`, a query of [`BadgeRow`]s ([`BADGES`], or a recount to compare with).
pub fn badge_rows(conn: &Connection, sql: &str) -> Vec<BadgeRow> {
    conn.prepare(sql)
        .expect("query")
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

pub fn count(path: &Path, sql: &str) -> i64 {
    open(path).query_row(sql, [], |r| r.get(0)).expect("count")
}
