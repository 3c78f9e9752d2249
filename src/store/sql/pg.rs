//! The PostgreSQL side of the connection layer: the store's SQLite-shaped values bound to
//! and read from PostgreSQL's typed columns, through the synchronous `postgres` client
//! (the store's writer and readers run on their own threads, as with SQLite).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::BytesMut;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, NoTls};

use super::param_list::Params;
use super::value::ValueRef;
use super::{Error, Result};

/// Statements a connection keeps prepared; beyond this the cache is emptied (queries
/// built at run time are not cached, so this is only a guard).
const MAX_CACHED_STATEMENTS: usize = 512;

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// `postgres://user:password@host:port/database?…` (libpq's URL form).
    pub url: String,
    /// Reader connections kept and used at once.
    pub pool_size: usize,
    /// `synchronous_commit = on` (the default): a commit is on the server's disk before
    /// it returns, so an acknowledged write survives a PostgreSQL crash. `off` (Tidings'
    /// `--synchronous normal`) survives a Tidings crash only.
    pub synchronous_commit: bool,
    /// CA certificates (PEM) trusted beside the system's for a TLS connection
    /// (`sslmode=require` in `url`): `--database-ca-file`.
    pub ca_file: Option<std::path::PathBuf>,
    /// PostgreSQL ends this connection's session when it sits inside a transaction,
    /// waiting for the next statement, longer than this
    /// (`idle_in_transaction_session_timeout`). A node frozen mid-transaction (a stopped
    /// process, a paused VM) would otherwise hold that transaction's row locks, and hold
    /// back the counter fold, until it wakes: the successor that took its leases could not
    /// write the runs it took over. `None`: the server's setting.
    pub idle_in_transaction: Option<std::time::Duration>,
}

impl PgConfig {
    /// The defaults for `url` (tests, tools).
    pub fn at(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            pool_size: 16,
            synchronous_commit: true,
            ca_file: None,
            idle_in_transaction: None,
        }
    }
}

/// One PostgreSQL session. The client needs `&mut` per call and a connection is only ever
/// used by one thread at a time (the writer's, or one reader's), hence the `RefCell`.
pub struct PgConn {
    /// `None` only while being dropped.
    client: RefCell<Option<Client>>,
    cache: RefCell<HashMap<String, postgres::Statement>>,
    /// The lock statement [`super::Conn::hold_lock_once`] ran since the last statement
    /// sent through [`PgConn::batch_execute`] (every `BEGIN`, `COMMIT`, `SAVEPOINT`,
    /// `RELEASE` and `ROLLBACK [TO]` goes there, and any of them forgets it).
    held_lock: Cell<Option<&'static str>>,
}

impl Drop for PgConn {
    fn drop(&mut self) {
        self.cache.get_mut().clear();
        if let Some(client) = self.client.get_mut().take() {
            // Closing the client blocks on its own runtime, which panics on a thread that
            // drives async tasks (the last `Store` clone can go there at shutdown): there
            // it is closed on a thread of its own.
            if tokio::runtime::Handle::try_current().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("tidings-pg-close".into())
                    .spawn(move || drop(client));
            } else {
                drop(client);
            }
        }
    }
}

impl PgConn {
    pub(super) fn connect(config: &PgConfig) -> Result<PgConn> {
        let (tls, url) = super::pg_tls::requested(&config.url);
        let mut settings: postgres::Config = url.parse()?;
        if settings.get_connect_timeout().is_none() {
            // An unreachable host fails a request in seconds (503), not after the OS's
            // TCP timeout; `?connect_timeout=` in the URL overrides it.
            settings.connect_timeout(std::time::Duration::from_secs(5));
        }
        let mut client = if tls {
            settings.connect(super::pg_tls::connector(config.ca_file.as_deref())?)?
        } else {
            settings.connect(NoTls)?
        };
        let idle_limit = config.idle_in_transaction.map_or(String::new(), |limit| {
            format!(
                "; SET idle_in_transaction_session_timeout = {}",
                limit.as_millis().max(1)
            )
        });
        // Durable before acknowledged, whatever the server's default; text compares
        // byte-wise below (columns are declared COLLATE "C"), as SQLite's do; and the
        // idle-transaction limit, when one is set (`PgConfig::idle_in_transaction`).
        client.batch_execute(&format!(
            "SET synchronous_commit = {}; SET client_encoding = 'UTF8'; \
             SET client_min_messages = warning{idle_limit}",
            if config.synchronous_commit {
                "on"
            } else {
                "off"
            }
        ))?;
        Ok(PgConn {
            client: RefCell::new(Some(client)),
            cache: RefCell::new(HashMap::new()),
            held_lock: Cell::new(None),
        })
    }

    pub(super) fn prepare(&self, sql: &str, cached: bool) -> Result<PgStatement<'_>> {
        if cached && let Some(stmt) = self.cache.borrow().get(sql) {
            return Ok(PgStatement {
                conn: self,
                stmt: stmt.clone(),
            });
        }
        let stmt = self.client()?.prepare(&placeholders(sql))?;
        if cached {
            let mut cache = self.cache.borrow_mut();
            if cache.len() >= MAX_CACHED_STATEMENTS {
                cache.clear();
            }
            cache.insert(sql.to_owned(), stmt.clone());
        }
        Ok(PgStatement { conn: self, stmt })
    }

    pub(super) fn is_closed(&self) -> bool {
        self.client.borrow().as_ref().is_none_or(Client::is_closed)
    }

    pub(super) fn batch_execute(&self, sql: &str) -> Result<()> {
        self.held_lock.set(None);
        Ok(self.client()?.batch_execute(sql)?)
    }

    /// Whether `lock_sql` ran since the last [`PgConn::batch_execute`].
    pub(super) fn holds(&self, lock_sql: &'static str) -> bool {
        self.held_lock.get() == Some(lock_sql)
    }

    /// [`super::Conn::copy_in`]: the rows of `values` through a binary COPY. An error
    /// before `finish` drops the writer, which aborts the COPY (the transaction is then
    /// failed, as after a failed statement).
    pub(super) fn copy_in(
        &self,
        copy_sql: &str,
        columns: &[super::CopyColumn],
        values: &[&dyn super::ToValue],
    ) -> Result<u64> {
        let types: Vec<Type> = columns
            .iter()
            .map(|c| match c {
                super::CopyColumn::Text => Type::TEXT,
                super::CopyColumn::BigInt => Type::INT8,
            })
            .collect();
        if types.is_empty() || !values.len().is_multiple_of(types.len()) {
            return Err(Error::Param(format!(
                "{} values do not make rows of {} columns",
                values.len(),
                types.len()
            )));
        }
        let values = values
            .iter()
            .map(|v| v.to_value())
            .collect::<Result<Vec<ValueRef<'_>>>>()?;
        let values: Vec<&(dyn ToSql + Sync)> =
            values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
        let mut client = self.client()?;
        let mut writer = BinaryCopyInWriter::new(client.copy_in(copy_sql)?, &types);
        for row in values.chunks(types.len()) {
            writer.write(row)?;
        }
        Ok(writer.finish()?)
    }

    /// Remembers that `lock_sql` just ran (see [`PgConn::holds`]).
    pub(super) fn mark_held(&self, lock_sql: &'static str) {
        self.held_lock.set(Some(lock_sql));
    }

    fn client(&self) -> Result<std::cell::RefMut<'_, Client>> {
        std::cell::RefMut::filter_map(self.client.borrow_mut(), Option::as_mut)
            .map_err(|_| Error::Param("the connection is closed".into()))
    }
}

/// A statement prepared on one connection.
pub struct PgStatement<'c> {
    conn: &'c PgConn,
    stmt: postgres::Statement,
}

impl PgStatement<'_> {
    pub(super) fn execute(&mut self, params: &impl Params) -> Result<usize> {
        let changed = params.with_values(|values| {
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            self.conn.client().map(|mut c| c.execute(&self.stmt, &refs))
        })???;
        usize::try_from(changed).map_err(|e| Error::Param(e.to_string()))
    }

    pub(super) fn query(&mut self, params: &impl Params) -> Result<Vec<postgres::Row>> {
        Ok(params.with_values(|values| {
            let refs: Vec<&(dyn ToSql + Sync)> =
                values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
            self.conn.client().map(|mut c| c.query(&self.stmt, &refs))
        })???)
    }
}

/// Column `idx` of a PostgreSQL row, as the SQLite storage class it maps to.
pub(super) fn column(row: &postgres::Row, idx: usize) -> Result<ValueRef<'_>> {
    Ok(row.try_get::<_, Any<'_>>(idx)?.0)
}

/// A shared query as PostgreSQL reads it, outside quotes and comments: SQLite's `?N` / `?`
/// placeholders become `$N` (a bare `?` takes the number after the largest used so far,
/// as SQLite numbers it), and SQLite's planner hints (`INDEXED BY name`) are dropped
/// (PostgreSQL's planner takes none).
fn placeholders(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut largest = 0u32;
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += 1;
                }
                i += 1;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'I' if sql[i..].starts_with(HINT) && (i == 0 || !is_word(bytes[i - 1])) => {
                out.push_str(&sql[copied..i]);
                i += HINT.len();
                while i < bytes.len() && is_word(bytes[i]) {
                    i += 1;
                }
                copied = i;
            }
            b'?' => {
                out.push_str(&sql[copied..i]);
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let n = if digits == 0 {
                    largest + 1
                } else {
                    sql[i + 1..i + 1 + digits].parse().unwrap_or(largest + 1)
                };
                largest = largest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
                i += 1 + digits;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied.min(sql.len())..]);
    out
}

/// SQLite's index hint, which PostgreSQL does not parse.
const HINT: &str = "INDEXED BY ";

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Binds a SQLite-shaped value to whatever type PostgreSQL inferred for the parameter.
impl ToSql for ValueRef<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match *self {
            ValueRef::Null => Ok(IsNull::Yes),
            ValueRef::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR => i.to_string().to_sql(ty, out),
                _ => Err(format!("an integer cannot be bound to a {ty} parameter").into()),
            },
            ValueRef::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (f as f32).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR => f.to_string().to_sql(ty, out),
                _ => Err(format!("a real cannot be bound to a {ty} parameter").into()),
            },
            // Text goes as its bytes, unvalidated here: the server checks every text
            // value it receives against the database encoding (and refuses bad UTF-8),
            // and a page's COPY or INSERT binds ~20 per item (`from_utf8` was 2.6% of the
            // runner's CPU at fan-out rates, BENCHMARKS.md session 25).
            ValueRef::Text(t) => match *ty {
                Type::JSONB => {
                    out.extend_from_slice(&[1]);
                    out.extend_from_slice(t);
                    Ok(IsNull::No)
                }
                Type::INT8 => std::str::from_utf8(t)?.parse::<i64>()?.to_sql(ty, out),
                _ => {
                    out.extend_from_slice(t);
                    Ok(IsNull::No)
                }
            },
            ValueRef::Blob(b) => b.to_sql(ty, out),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// Any column, read as the SQLite storage class it maps to.
struct Any<'a>(ValueRef<'a>);

impl<'a> FromSql<'a> for Any<'a> {
    fn from_sql(
        ty: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Any(match *ty {
            Type::INT8 => ValueRef::Integer(i64::from_sql(ty, raw)?),
            Type::INT4 => ValueRef::Integer(i32::from_sql(ty, raw)?.into()),
            Type::INT2 => ValueRef::Integer(i16::from_sql(ty, raw)?.into()),
            Type::OID => ValueRef::Integer(u32::from_sql(ty, raw)?.into()),
            Type::BOOL => ValueRef::Integer(bool::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => ValueRef::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => ValueRef::Real(f32::from_sql(ty, raw)?.into()),
            Type::BYTEA => ValueRef::Blob(raw),
            // `sum(bigint)` is NUMERIC; a whole number reads as an integer, as in SQLite.
            Type::NUMERIC => numeric(raw)?,
            Type::JSONB => ValueRef::Text(raw.get(1..).unwrap_or_default()),
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::JSON | Type::UNKNOWN => {
                ValueRef::Text(raw)
            }
            _ => {
                return Err(format!(
                    "a {ty} column has no SQLite storage class (cast it in the query)"
                )
                .into());
            }
        }))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Any(ValueRef::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A NUMERIC in PostgreSQL's binary form (base-10000 digits) as an integer when it is
/// whole and fits, else as a real.
fn numeric(raw: &[u8]) -> std::result::Result<ValueRef<'static>, Box<dyn StdError + Sync + Send>> {
    let word = |i: usize| -> std::result::Result<i16, Box<dyn StdError + Sync + Send>> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a truncated NUMERIC".into())
    };
    let (ndigits, weight, sign, dscale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Ok(ValueRef::Real(f64::NAN));
    }
    let mut value = 0f64;
    let mut whole: Option<i128> = Some(0);
    for i in 0..usize::try_from(ndigits)? {
        let digit = word(4 + i)?;
        let exponent = i32::from(weight) - i as i32;
        value += f64::from(digit) * 10f64.powi(4 * exponent);
        whole = match (whole, u32::try_from(exponent)) {
            (Some(w), Ok(e)) => 10_000i128
                .checked_pow(e)
                .and_then(|p| p.checked_mul(i128::from(digit)))
                .and_then(|d| w.checked_add(d)),
            _ => None,
        };
    }
    let negative = sign == 0x4000;
    Ok(
        match whole.and_then(|w| i64::try_from(if negative { -w } else { w }).ok()) {
            Some(i) if dscale == 0 => ValueRef::Integer(i),
            _ => ValueRef::Real(if negative { -value } else { value }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn numbered_and_bare_placeholders_become_dollar_numbers() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1"
        );
        assert_eq!(placeholders("VALUES (?, ?, ?)"), "VALUES ($1, $2, $3)");
        assert_eq!(placeholders("x = ?3 AND y = ?"), "x = $3 AND y = $4");
    }

    #[test]
    fn question_marks_in_literals_and_comments_stay() {
        assert_eq!(
            placeholders("SELECT '?1', \"a?\" -- ?2\n, ?1 /* ? */"),
            "SELECT '?1', \"a?\" -- ?2\n, $1 /* ? */"
        );
        assert_eq!(
            placeholders("SELECT 'it''s ?' , ?"),
            "SELECT 'it''s ?' , $1"
        );
    }
}

#[cfg(test)]
mod lock_once_tests {
    /// Counts its runs: each run draws a number from a sequence.
    const COUNTED: &str = "SELECT nextval('lock_once_runs')";

    fn runs(conn: &crate::store::sql::Conn) -> i64 {
        conn.query_row(
            "SELECT last_value - 1 + CASE WHEN is_called THEN 1 ELSE 0 END FROM lock_once_runs",
            [],
            |r| r.get(0),
        )
        .expect("runs")
    }

    /// `hold_lock_once` runs its statement once per command and again after anything
    /// sent through `execute_batch` (a savepoint's rollback releases a lock taken inside
    /// it, so the memo must not outlive one).
    #[test]
    fn a_lock_is_taken_once_per_command_and_again_after_a_savepoint() {
        for test_db in crate::store::test_engines::engines() {
            if test_db.engine != "postgres" {
                continue;
            }
            let conn = &test_db.conn;
            conn.execute_batch("CREATE SEQUENCE lock_once_runs")
                .expect("sequence");
            conn.begin().expect("begin");
            conn.execute_batch("SAVEPOINT cmd").expect("savepoint");
            for _ in 0..5 {
                conn.hold_lock_once(COUNTED).expect("lock");
            }
            assert_eq!(runs(conn), 1, "five calls in one command run it once");
            conn.execute_batch("ROLLBACK TO cmd; RELEASE cmd")
                .expect("rollback");
            conn.hold_lock_once(COUNTED).expect("lock");
            assert_eq!(runs(conn), 2, "taken again after the rollback");
            conn.execute_batch("COMMIT").expect("commit");
            conn.begin().expect("begin");
            conn.hold_lock_once(COUNTED).expect("lock");
            assert_eq!(runs(conn), 3, "taken again in the next transaction");
            conn.execute_batch("ROLLBACK").expect("end");
        }
    }
}

#[cfg(test)]
mod text_tests {
    use crate::store::sql::{CopyColumn, Value};

    /// Text is sent unvalidated (the server checks it): what is valid UTF-8 arrives byte
    /// for byte, through a statement and through COPY, and bytes that are not UTF-8 are
    /// refused by PostgreSQL and store nothing.
    #[test]
    fn text_arrives_as_given_and_the_server_refuses_what_is_not_utf8() {
        for test_db in crate::store::test_engines::engines() {
            if test_db.engine != "postgres" {
                continue;
            }
            let conn = &test_db.conn;
            conn.execute_batch("CREATE TABLE texts (t TEXT COLLATE \"C\", n BIGINT)")
                .expect("table");
            let given = "plain, ünïcödé, 🦀, 'quoted' \\ tab\there";
            conn.execute("INSERT INTO texts(t, n) VALUES (?1, 1)", [given])
                .expect("insert");
            let copied = Value::Text(given.to_owned());
            let n = Value::Integer(2);
            conn.copy_in(
                "COPY texts(t, n) FROM STDIN (FORMAT binary)",
                &[CopyColumn::Text, CopyColumn::BigInt],
                &[&copied, &n],
            )
            .expect("copy");
            let stored: Vec<String> = conn
                .prepare("SELECT t FROM texts ORDER BY n")
                .expect("prepare")
                .query_map([], |r| r.get(0))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert_eq!(stored, [given, given]);
            let bad = Value::Blob(vec![b'a', 0xff, b'b']);
            let bad_text = BadText(&bad);
            assert!(
                conn.execute(
                    "INSERT INTO texts(t, n) VALUES (?1, 3)",
                    [&bad_text as &dyn crate::store::sql::ToValue]
                )
                .is_err(),
                "the server refuses bytes that are not UTF-8"
            );
            let count: i64 = conn
                .query_row("SELECT count(*) FROM texts", [], |r| r.get(0))
                .expect("count");
            assert_eq!(count, 2);
        }
    }

    /// Bytes bound as text (a value read from a SQLite file is text by its storage
    /// class, whatever its bytes).
    struct BadText<'a>(&'a Value);

    impl crate::store::sql::ToValue for BadText<'_> {
        fn to_value(&self) -> crate::store::sql::Result<crate::store::sql::ValueRef<'_>> {
            match self.0 {
                Value::Blob(b) => Ok(crate::store::sql::ValueRef::Text(b)),
                _ => Err(crate::store::sql::Error::Param("bytes expected".into())),
            }
        }
    }
}

#[cfg(test)]
mod idle_limit_tests {
    use std::time::{Duration, Instant};

    use crate::store::sql::{Conn, PgConfig};

    fn idle_limit(conn: &Conn) -> String {
        conn.query_row("SHOW idle_in_transaction_session_timeout", [], |r| r.get(0))
            .expect("show")
    }

    /// Where the session's value comes from: `session` once a `SET` changed it, else the
    /// server's configuration (`default`, `configuration file`, a role's or database's).
    fn idle_limit_source(conn: &Conn) -> String {
        conn.query_row(
            "SELECT source FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'",
            [],
            |r| r.get(0),
        )
        .expect("source")
    }

    /// A connection with an idle-transaction limit is ended by the server once it sits in
    /// a transaction longer than that, and its transaction (with its locks) goes with it
    /// (a frozen node's successor is not blocked); one without keeps the server's setting.
    #[test]
    fn a_session_idle_in_a_transaction_past_its_limit_is_ended_by_the_server() {
        for test_db in crate::store::test_engines::engines() {
            if test_db.engine != "postgres" {
                continue;
            }
            let url = crate::store::test_engines::postgres_url();
            let unlimited = Conn::connect_postgres(&PgConfig::at(url.clone())).expect("connect");
            let server_default = idle_limit(&test_db.conn);
            assert_eq!(idle_limit(&unlimited), server_default);
            // Not set to the same value either: the server's own setting is left alone.
            assert_ne!(idle_limit_source(&unlimited), "session");
            let limited = Conn::connect_postgres(&PgConfig {
                idle_in_transaction: Some(Duration::from_millis(300)),
                ..PgConfig::at(url)
            })
            .expect("connect");
            assert_eq!(idle_limit(&limited), "300ms");
            assert_eq!(idle_limit_source(&limited), "session");
            let pid: i64 = limited
                .query_row("SELECT pg_backend_pid()::bigint", [], |r| r.get(0))
                .expect("pid");
            limited.begin().expect("begin");
            let deadline = Instant::now() + Duration::from_secs(20);
            let alive = |pid: i64| -> i64 {
                unlimited
                    .query_row(
                        "SELECT count(*) FROM pg_stat_activity WHERE pid = ?1",
                        [pid],
                        |r| r.get(0),
                    )
                    .expect("activity")
            };
            while alive(pid) > 0 {
                assert!(
                    Instant::now() < deadline,
                    "the idle session was never ended"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(
                limited
                    .query_row("SELECT 1::bigint", [], |r| r.get::<_, i64>(0))
                    .is_err(),
                "the ended session answers nothing"
            );
        }
    }
}
