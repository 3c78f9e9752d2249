//! What the HTTP-driven benches share: the keys they start the server with and a small
//! client for the calls they all make (a secret-key request, a user's feed total, waiting
//! until the last recipients of a fan-out have their item). Not a bench itself: each bench
//! includes it with `#[path = "support/mod.rs"] mod support;`.

use std::time::{Duration, Instant};

use serde_json::Value;

/// The secret key every bench server is started with.
pub const SECRET: &str = "sk_bench";
/// The public key, for the benches that open sockets.
#[allow(dead_code)]
pub const PUBLIC: &str = "pk_bench";

/// A client for one bench server.
pub struct Api {
    pub base: String,
    pub client: reqwest::Client,
}

impl Api {
    pub fn new(port: u16) -> Self {
        Api {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
        }
    }

    /// Sends `body` with the secret key; `Err` names the path and the answer unless it
    /// is a success (for a bench that reports its failure instead of panicking).
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> Result<Value, String> {
        let res = self
            .client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(SECRET)
            .json(body)
            .send()
            .await
            .map_err(|e| format!("{path}: {e}"))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(format!("{path}: {status} {body}"));
        }
        Ok(body)
    }

    /// [`Api::try_call`] that panics on a failure (a bench whose setup failed must not
    /// print figures).
    #[allow(dead_code)] // not every bench uses every helper
    pub async fn call(&self, method: reqwest::Method, path: &str, body: &Value) -> Value {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// How many items `user`'s in-app feed holds.
    ///
    /// A read, so a failure to send is tried twice more: a poll can pick a pooled
    /// keep-alive connection the server is closing at that moment (hyper reports it as
    /// "error sending request"), which says nothing about the server.
    pub async fn try_feed_total(&self, user: &str) -> Result<u64, String> {
        let path = format!("/v1/users/{user}/feeds/in-app-feed?page_size=1");
        let mut tries = 0;
        let body = loop {
            tries += 1;
            match self
                .try_call(reqwest::Method::GET, &path, &Value::Null)
                .await
            {
                Ok(body) => break body,
                Err(e) if tries < 3 && e.contains("error sending request") => continue,
                Err(e) => return Err(e),
            }
        };
        Ok(body["meta"]["total_count"].as_u64().unwrap_or(0))
    }

    /// [`Api::try_feed_total`] that panics on a failure.
    #[allow(dead_code)] // not every bench uses every helper
    pub async fn feed_total(&self, user: &str) -> u64 {
        self.try_feed_total(user)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Waits until each of `users` has an item (the last recipients of their runs),
    /// polling every `poll`, for at most `timeout`; returns when the last one had it.
    #[allow(dead_code)] // not every bench uses every helper
    pub async fn wait_for(&self, users: &[String], poll: Duration, timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        for user in users {
            while self.feed_total(user).await == 0 {
                assert!(Instant::now() < deadline, "{user} never got its item");
                tokio::time::sleep(poll).await;
            }
        }
        Instant::now()
    }
}

/// `--engine sqlite|postgres` and `--database-url URL`, shared by the benches that take
/// them (`throughput`, `reads`, `fairness`).
#[allow(dead_code)] // not every bench takes an engine
#[derive(Debug, Clone, PartialEq)]
pub enum Engine {
    Sqlite,
    /// PostgreSQL: the URL reaches a server where the bench may `CREATE DATABASE` (its
    /// own database is created per server and dropped after; nothing else is touched).
    Postgres {
        admin_url: String,
    },
}

/// The admin URL `--database-url` defaults to (local PostgreSQL, trust auth).
#[allow(dead_code)]
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

#[allow(dead_code)]
impl Engine {
    /// From the values of `--engine` and `--database-url` (either may be missing).
    pub fn parse(engine: Option<&str>, url: Option<&str>) -> Result<Engine, String> {
        match engine.unwrap_or("sqlite") {
            "sqlite" => Ok(Engine::Sqlite),
            "postgres" | "postgresql" | "pg" => Ok(Engine::Postgres {
                admin_url: url.unwrap_or(DEFAULT_ADMIN_URL).to_owned(),
            }),
            other => Err(format!("--engine {other}: sqlite or postgres")),
        }
    }

    /// `--engine VALUE` and `--database-url VALUE` from the command line.
    pub fn from_args() -> Result<Engine, String> {
        let argv: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            argv.windows(2)
                .find(|pair| pair[0] == flag)
                .map(|pair| pair[1].clone())
        };
        Engine::parse(
            value("--engine").as_deref(),
            value("--database-url").as_deref(),
        )
    }

    pub fn name(&self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres { .. } => "postgres",
        }
    }
}

/// A PostgreSQL database of the bench's own (`tidings_bench_<pid>_<n>`), created on a
/// server reached by an admin URL and dropped when this value is dropped.
///
/// The `postgres` crate's client blocks on a runtime of its own, so every call here runs
/// on a plain thread (safe to call from async code, and from `Drop` anywhere).
#[allow(dead_code)]
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    /// The URL of the new database (the admin URL with its path replaced).
    pub url: String,
}

#[allow(dead_code)]
impl PgDatabase {
    pub fn create(admin_url: &str) -> Result<PgDatabase, String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("tidings_bench_{}_{n}", std::process::id());
        let mut url = url::Url::parse(admin_url).map_err(|e| format!("{admin_url}: {e}"))?;
        url.set_path(&format!("/{name}"));
        let sql = format!("CREATE DATABASE {name}");
        on_thread(admin_url, move |client| client.batch_execute(&sql))?;
        Ok(PgDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url: url.to_string(),
        })
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = on_thread(&self.admin_url, move |client| client.batch_execute(&sql)) {
            eprintln!("could not drop database {}: {e}", self.name);
        }
    }
}

/// Connects to `url` on a thread of its own and runs `f` with the client there.
#[allow(dead_code)]
pub fn on_thread<T: Send + 'static>(
    url: &str,
    f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error> + Send + 'static,
) -> Result<T, String> {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let mut client = postgres::Client::connect(&url, postgres::NoTls)
            .map_err(|e| format!("connect {url}: {e}"))?;
        f(&mut client).map_err(|e| e.to_string())
    })
    .join()
    .map_err(|_| "the PostgreSQL thread panicked".to_owned())?
}

/// CPU seconds used so far by every `postgres` process on this machine (user + system),
/// counting the backends that have exited through the postmaster's children times.
/// `None` where `/proc` does not tell. For the throughput bench's PostgreSQL runs: the
/// server's own work per item, beside this process's.
#[allow(dead_code)]
pub fn postgres_cpu_seconds() -> Option<f64> {
    let mut ticks = 0.0;
    let mut seen = false;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if !head.ends_with("(postgres") {
            continue;
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime, stime, cutime, cstime are fields 14–17 (11–14 after the name).
        for i in 11..=14 {
            ticks += fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
        seen = true;
    }
    seen.then_some(ticks / 100.0)
}

/// Autovacuum's analyze, every `every`, on a thread of its own, until the returned guard
/// is dropped (the benches' `--analyze-secs N`). PostgreSQL keeps a prepared statement's
/// generic plan until the statistics of its tables change, so on a server with
/// `autovacuum = off` (this machine's CI configuration) a plan made while a table was
/// empty is kept for good; an `ANALYZE` invalidates it.
///
/// Like autovacuum, it analyzes only the tables changed past the server's own threshold
/// (`autovacuum_analyze_threshold` + `autovacuum_analyze_scale_factor` × rows, 50 + 10% by
/// default), not the whole database each time: a database-wide `ANALYZE` costs over a
/// second of a core at a million items, more than a real server spends, and it showed in
/// the cluster bench's tail latency (BENCHMARKS.md, session 24).
#[allow(dead_code)]
pub struct Analyzer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<u32>>,
}

#[allow(dead_code)]
impl Analyzer {
    pub fn start(url: &str, every: std::time::Duration) -> Analyzer {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (url, flag) = (url.to_owned(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut runs = 0;
            let Ok(mut client) = postgres::Client::connect(&url, postgres::NoTls) else {
                eprintln!("analyzer: cannot connect to {url}");
                return runs;
            };
            let mut next = Instant::now() + every;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                if Instant::now() >= next {
                    match analyze_changed_tables(&mut client) {
                        Ok(tables) => runs += tables,
                        Err(e) => eprintln!("analyzer: {e}"),
                    }
                    next = Instant::now() + every;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            runs
        });
        Analyzer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops it; how many tables it analyzed.
    pub fn finish(mut self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

/// `ANALYZE` of each table of the current database whose rows changed since its last
/// analyze by more than autovacuum's threshold; how many it analyzed.
fn analyze_changed_tables(client: &mut postgres::Client) -> Result<u32, postgres::Error> {
    let due = client.query(
        "SELECT quote_ident(s.schemaname) || '.' || quote_ident(s.relname) \
         FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid \
         WHERE s.n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8 \
             + current_setting('autovacuum_analyze_scale_factor')::float8 \
               * greatest(c.reltuples, 0)",
        &[],
    )?;
    let mut analyzed = 0;
    for row in due {
        let table: String = row.get(0);
        client.batch_execute(&format!("ANALYZE {table}"))?;
        analyzed += 1;
    }
    Ok(analyzed)
}

impl Drop for Analyzer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `--analyze-secs N` from the command line (0 or absent: never).
#[allow(dead_code)]
pub fn analyze_every_from_args() -> Option<std::time::Duration> {
    let argv: Vec<String> = std::env::args().collect();
    argv.windows(2)
        .find(|pair| pair[0] == "--analyze-secs")
        .and_then(|pair| pair[1].parse::<f64>().ok())
        .filter(|secs| *secs > 0.0)
        .map(std::time::Duration::from_secs_f64)
}
