//! Issue 20: several nodes on one PostgreSQL and one NATS, 1, 2 and 3 nodes side by side.
//!
//! Every node is the real binary (`tidings serve`, release build) started as a child
//! process on a fresh PostgreSQL database of its own configuration
//! (`tidings_bench_<pid>_<n>`, created through `--database-url` and dropped after) and a
//! NATS subject prefix of its own (`cb<pid>_<n>`), exactly as `scripts/cluster` starts
//! them, plus `TIDINGS_ENHANCED_SECURITY=false` (sockets join with the public key, as in
//! the sockets bench), a per-address socket cap above the bench's sockets and a 1 h idle
//! timeout (the idle sockets send no heartbeat), and `--pool-size` (default 8) reader
//! connections per node instead of 16 (this server's `max_connections` is 100, shared with
//! other benches; 8 readers already exceed the machine's 2 cores). For each node count it
//! measures (with autovacuum's analyze checked every `--analyze-secs`, default 10: each
//! table changed past autovacuum's threshold is analyzed, as on a default server; this
//! one runs with `autovacuum = off`, see `support::Analyzer` and BENCHMARKS.md issue 19):
//!
//! 1. **At rest**: each node's RSS and CPU (% of one core) over `--rest-secs`.
//! 2. **Committed items/s**: `--triggers` triggers of `--recipients` listed recipients
//!    each, sent round-robin to the nodes (16 in flight), timed from the first trigger
//!    until `SELECT COUNT(*) FROM messages` reads them all (polled every 50 ms); CPU
//!    seconds of each node and of PostgreSQL (every `postgres` process) per 1,000 items.
//! 3. **RSS per idle joined socket**: `--sockets` sockets spread round-robin over the
//!    nodes, each joining its own user's feed `feeds:in-app-feed:u<i>` with the official
//!    client's join payload (`{"client_<ref>": {"archived": "exclude"}}`, what
//!    `@knocklabs/client`'s `FeedSocketManager` sends for a default feed) and waiting for
//!    the reply and the counts push; (VmRSS after − before) / sockets per node, after a
//!    warm-up burst and a settle, as `benches/sockets.rs` does. A bare actix-ws echo
//!    server (this binary re-run with `--serve-bare`) is measured the same way once per
//!    run, as the baseline.
//! 4. **notify → push across nodes**: with those sockets joined, triggers of
//!    `--per-trigger` recipients at a steady `--rate` items/s for `--secs`, each sent to
//!    a node other than the one holding its recipients' sockets (one node: the same
//!    node, the baseline). Latency = from sending the trigger to the recipient's socket
//!    receiving a `new-message` whose count includes the item. p50/p99/max, and the
//!    items whose push arrived vs the items sent.
//!
//! `--triggers-to one` sends every latency trigger to node 1 (its recipients' sockets on
//! the other nodes): one node writes, the others only push.
//!
//! Then, once per `--failover` entry (`LEASE_SECS` or `LEASE_SECS:RESCAN_MS`), on the
//! largest node count (at least 2): **a node's death to its work resuming**. An object
//! with `--fanout` subscribers, a trigger to it accepted by node 1, `kill -9` of node 1
//! once its first page is committed; from the kill to the first item committed under
//! another node's lease (`run_leases.owner`), and to the run's completion.
//!
//! Prints a table and writes `bench-results/cluster.json` (or `--out PATH`).
//!
//! Run (tiny sizes, well under a minute once built): `cargo bench --bench cluster`
//! (`-- --quick` is the same). The sizes: `ulimit -n 20000 && cargo bench --bench
//! cluster -- --full` (10,000 sockets, 1,000 items/s for 20 s, 50,000 committed items per
//! node count, failover with `--lease-secs` 15 and 3). Any size flag after `--full`
//! overrides it. Needs PostgreSQL (`--database-url`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`, where the bench may CREATE DATABASE)
//! and NATS (`--nats-url`, default `nats://127.0.0.1:4222`).

#[path = "support/bare_ws.rs"]
mod bare_ws;
#[path = "support/mod.rs"]
mod support;
use bare_ws::serve_bare;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;

use support::{Api, PUBLIC, PgDatabase, SECRET};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Sockets connecting at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Triggers in flight in the items/s workload.
const TRIGGERS_IN_FLIGHT: usize = 16;

#[derive(Debug, Clone)]
struct Args {
    nodes: Vec<usize>,
    triggers: usize,
    recipients: usize,
    sockets: usize,
    rate: usize,
    per_trigger: usize,
    secs: f64,
    fanout: usize,
    failover: Vec<(u64, Option<u64>)>,
    rest_secs: f64,
    settle: Duration,
    pool_size: usize,
    analyze_secs: f64,
    /// Latency triggers all to node 1 (its recipients' sockets on the other nodes)
    /// instead of spread over the nodes.
    triggers_to_one: bool,
    admin_url: String,
    nats_url: String,
    out: PathBuf,
    serve_bare: bool,
    node_env: Vec<(String, String)>,
}

fn parse_args() -> Args {
    let argv: Vec<String> = std::env::args().collect();
    let full = argv.iter().any(|a| a == "--full");
    let mut args = Args {
        nodes: vec![1, 2, 3],
        triggers: if full { 60 } else { 20 },
        recipients: if full { 500 } else { 100 },
        sockets: if full { 10_000 } else { 300 },
        rate: if full { 1000 } else { 200 },
        per_trigger: 10,
        secs: if full { 20.0 } else { 3.0 },
        fanout: if full { 30_000 } else { 3_000 },
        failover: if full {
            vec![(15, None), (3, None)]
        } else {
            vec![(3, None)]
        },
        rest_secs: if full { 5.0 } else { 1.0 },
        settle: Duration::from_secs(if full { 3 } else { 1 }),
        pool_size: 8,
        analyze_secs: 10.0,
        triggers_to_one: false,
        admin_url: support::DEFAULT_ADMIN_URL.to_owned(),
        nats_url: "nats://127.0.0.1:4222".to_owned(),
        out: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench-results/cluster.json"),
        serve_bare: argv.iter().any(|a| a == "--serve-bare"),
        node_env: Vec::new(),
    };
    for pair in argv.windows(2) {
        let v = pair[1].as_str();
        let num = |d: usize| v.parse().unwrap_or(d);
        match pair[0].as_str() {
            "--nodes" => args.nodes = v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
            "--triggers" => args.triggers = num(args.triggers),
            "--recipients" => args.recipients = num(args.recipients),
            "--sockets" => args.sockets = num(args.sockets),
            "--rate" => args.rate = num(args.rate),
            "--per-trigger" => args.per_trigger = num(args.per_trigger).max(1),
            "--secs" => args.secs = v.parse().unwrap_or(args.secs),
            "--fanout" => args.fanout = num(args.fanout),
            "--rest-secs" => args.rest_secs = v.parse().unwrap_or(args.rest_secs),
            "--settle-secs" => {
                args.settle = v
                    .parse()
                    .map(Duration::from_secs_f64)
                    .unwrap_or(args.settle)
            }
            "--failover" => {
                args.failover = v
                    .split(',')
                    .filter(|s| !s.trim().is_empty() && s.trim() != "none")
                    .filter_map(|s| match s.trim().split_once(':') {
                        Some((l, r)) => Some((l.parse().ok()?, Some(r.parse().ok()?))),
                        None => Some((s.trim().parse().ok()?, None)),
                    })
                    .collect()
            }
            "--triggers-to" => args.triggers_to_one = v == "one",
            "--analyze-secs" => args.analyze_secs = v.parse().unwrap_or(args.analyze_secs),
            "--pool-size" => args.pool_size = num(args.pool_size).max(1),
            "--database-url" => args.admin_url = v.to_owned(),
            "--nats-url" => args.nats_url = v.to_owned(),
            "--out" => args.out = PathBuf::from(v),
            "--node-env" => {
                if let Some((key, value)) = v.split_once('=') {
                    args.node_env.push((key.to_owned(), value.to_owned()));
                }
            }
            _ => {}
        }
    }
    args.nodes.retain(|n| *n >= 1);
    args
}

// ---- processes ---------------------------------------------------------------------------

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// `VmRSS` of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU seconds of a process so far.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (11 and 12 after the name).
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

struct NodeConfig<'a> {
    db_url: &'a str,
    nats_url: &'a str,
    prefix: &'a str,
    lease_secs: u64,
    rescan_ms: Option<u64>,
    socket_cap: usize,
    pool_size: usize,
    /// `--node-env KEY=VALUE` (repeatable): extra settings for every node, to compare one
    /// setting's effect (e.g. `TIDINGS_FOLD_INTERVAL_MS=60000`).
    extra_env: &'a [(String, String)],
}

/// One `tidings serve` child process; killed (SIGKILL) when dropped.
struct Node {
    id: String,
    port: u16,
    child: Child,
    log: PathBuf,
}

impl Node {
    fn spawn(dir: &Path, id: &str, cfg: &NodeConfig) -> Node {
        let port = free_port();
        let log = dir.join(format!("{id}.log"));
        let file = std::fs::File::create(&log).expect("node log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
        for (key, _) in std::env::vars() {
            if key.starts_with("TIDINGS_") {
                command.env_remove(key);
            }
        }
        command
            .arg("serve")
            .current_dir(dir)
            .env("TIDINGS_ADDR", format!("127.0.0.1:{port}"))
            .env("TIDINGS_DATABASE_URL", cfg.db_url)
            .env("TIDINGS_NATS_URL", cfg.nats_url)
            .env("TIDINGS_NATS_SUBJECT_PREFIX", cfg.prefix)
            .env("TIDINGS_NODE_ID", id)
            .env("TIDINGS_LEASE_SECS", cfg.lease_secs.to_string())
            .env("TIDINGS_SECRET_KEY", SECRET)
            .env("TIDINGS_PUBLIC_KEY", PUBLIC)
            .env("TIDINGS_ENHANCED_SECURITY", "false")
            .env("TIDINGS_WORKFLOWS", dir.join("no-workflows"))
            .env("TIDINGS_WS_MAX_PER_ADDRESS", cfg.socket_cap.to_string())
            .env("TIDINGS_WS_IDLE_TIMEOUT_SECS", "3600")
            .env("TIDINGS_LOG", "warn")
            .env("TIDINGS_DATABASE_POOL_SIZE", cfg.pool_size.to_string())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        if let Some(ms) = cfg.rescan_ms {
            command.env("TIDINGS_RUN_RESCAN_MS", ms.to_string());
        }
        for (key, value) in cfg.extra_env {
            command.env(key, value);
        }
        let child = command.spawn().expect("tidings serve starts");
        Node {
            id: id.to_owned(),
            port,
            child,
            log,
        }
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `/health` answers with NATS connected (the node subscribed).
    async fn wait_healthy(&mut self, http: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!(
                    "{} exited ({status}) before it was healthy:\n{log}",
                    self.id
                );
            }
            if let Ok(res) = http.get(format!("{}/health", self.base())).send().await
                && let Ok(health) = res.json::<Value>().await
                && health["nats"] == "connected"
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never healthy with NATS connected (log: {})",
                self.id,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- SQL from the bench ----------------------------------------------------------------

type Row = Vec<Option<String>>;

/// A trigger's 202: its `workflow_run_id` and when the answer arrived.
type Acked = (String, Instant);

/// One socket's `new-message` pushes: (the count it carried, when it arrived).
type Pushes = Mutex<Vec<(i64, Instant)>>;

/// One PostgreSQL connection on a plain thread of its own (the `postgres` client blocks
/// on a runtime of its own); queries return their first row, every column cast to text.
struct Sql {
    tx: Option<std::sync::mpsc::Sender<(String, oneshot::Sender<Row>)>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sql {
    fn connect(url: &str) -> Sql {
        let (tx, rx) = std::sync::mpsc::channel::<(String, oneshot::Sender<Row>)>();
        let url = url.to_owned();
        let thread = std::thread::spawn(move || {
            let mut client =
                postgres::Client::connect(&url, postgres::NoTls).expect("bench SQL connection");
            for (sql, reply) in rx {
                let row = client
                    .query_opt(sql.as_str(), &[])
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
                let values = row
                    .map(|r| {
                        (0..r.len())
                            .map(|i| r.get::<_, Option<String>>(i))
                            .collect()
                    })
                    .unwrap_or_default();
                let _ = reply.send(values);
            }
        });
        Sql {
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    async fn row(&self, sql: String) -> Row {
        let (reply, answer) = oneshot::channel();
        self.tx
            .as_ref()
            .expect("SQL thread")
            .send((sql, reply))
            .expect("SQL thread alive");
        answer.await.expect("SQL answer")
    }

    async fn count(&self, sql: String) -> i64 {
        self.row(sql)
            .await
            .first()
            .cloned()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Sql {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---- a cluster -------------------------------------------------------------------------

/// N nodes on one fresh database and one subject prefix. Fields drop in order: the
/// nodes, then the SQL connection, then the database.
struct Cluster {
    nodes: Vec<Node>,
    _analyzer: Option<support::Analyzer>,
    sql: Sql,
    _db: PgDatabase,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Cluster {
    async fn start(n: usize, args: &Args, lease_secs: u64, rescan_ms: Option<u64>) -> Cluster {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let db = PgDatabase::create(&args.admin_url).unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("no-workflows")).expect("workflows dir");
        let prefix = format!(
            "cb{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let cfg = NodeConfig {
            db_url: &db.url,
            nats_url: &args.nats_url,
            prefix: &prefix,
            lease_secs,
            rescan_ms,
            socket_cap: args.sockets + 2 * CONNECT_CONCURRENCY + 256,
            pool_size: args.pool_size,
            extra_env: &args.node_env,
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("HTTP client");
        // The first node applies the schema alone; then the others.
        let mut nodes = Vec::new();
        for i in 1..=n {
            let mut node = Node::spawn(dir.path(), &format!("node-{i}"), &cfg);
            node.wait_healthy(&http).await;
            nodes.push(node);
        }
        let sql = Sql::connect(&db.url);
        let analyzer = (args.analyze_secs > 0.0)
            .then(|| support::Analyzer::start(&db.url, Duration::from_secs_f64(args.analyze_secs)));
        let api = Api::new(nodes[0].port);
        api.call(
            reqwest::Method::PUT,
            "/v1/workflows/bench",
            &json!({"workflow": {"name": "Bench", "steps": [{
                "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed",
                "channel_type": "in_app_feed",
                "template": {"markdown_body": "**{{ actor.name }}** commented on {{ data.page }}"}
            }]}}),
        )
        .await;
        Cluster {
            nodes,
            _analyzer: analyzer,
            sql,
            _db: db,
            _dir: dir,
            http,
        }
    }

    /// Per node, the run attempts its log says failed so far (`TIDINGS_LOG=warn` keeps
    /// them).
    fn failed_attempts(&self) -> Vec<usize> {
        self.nodes
            .iter()
            .map(|n| {
                std::fs::read_to_string(&n.log)
                    .map(|log| log.matches("workflow run attempt failed").count())
                    .unwrap_or(0)
            })
            .collect()
    }

    /// CPU seconds so far of each backend serving this cluster's database, by pid (other
    /// sessions' PostgreSQL work on the same server is not counted).
    async fn pg_backends_cpu(&self) -> std::collections::HashMap<u32, f64> {
        let pids = self
            .sql
            .row(
                "SELECT string_agg(pid::text, ',') FROM pg_stat_activity \
                 WHERE datname = current_database()"
                    .into(),
            )
            .await;
        pids.first()
            .cloned()
            .flatten()
            .unwrap_or_default()
            .split(',')
            .filter_map(|p| p.parse().ok())
            .map(|pid| (pid, cpu_secs(pid)))
            .collect()
    }

    fn cpu(&self) -> Vec<f64> {
        self.nodes.iter().map(|n| cpu_secs(n.pid())).collect()
    }

    fn rss(&self) -> Vec<u64> {
        self.nodes.iter().map(|n| rss_kib(n.pid())).collect()
    }

    async fn trigger(&self, node: usize, body: &Value) -> bool {
        let url = format!("{}/v1/workflows/bench/trigger", self.nodes[node].base());
        match self
            .http
            .post(url)
            .bearer_auth(SECRET)
            .json(body)
            .send()
            .await
        {
            Ok(res) => res.status().is_success(),
            Err(_) => false,
        }
    }
}

/// CPU seconds the backends used between two snapshots (a backend that started in
/// between counts whole; one that exited in between is lost).
fn pg_delta(
    before: &std::collections::HashMap<u32, f64>,
    after: &std::collections::HashMap<u32, f64>,
) -> f64 {
    after
        .iter()
        .map(|(pid, b)| b - before.get(pid).copied().unwrap_or(0.0))
        .sum()
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ---- 1. at rest --------------------------------------------------------------------------

async fn at_rest(c: &Cluster, args: &Args) -> Value {
    tokio::time::sleep(args.settle).await;
    let cpu0 = c.cpu();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.rest_secs)).await;
    let secs = started.elapsed().as_secs_f64();
    let cpu1 = c.cpu();
    let rss = c.rss();
    let cpu_pct: Vec<f64> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| round2((b - a) / secs * 100.0))
        .collect();
    let rss_mb: Vec<f64> = rss
        .iter()
        .map(|k| round1(*k as f64 * 1.024 / 1000.0))
        .collect();
    json!({"rss_mb_per_node": rss_mb, "cpu_pct_of_a_core_per_node": cpu_pct, "window_secs": round1(secs)})
}

// ---- 2. committed items/s ----------------------------------------------------------------

async fn throughput(c: &Cluster, args: &Args) -> Value {
    let n = c.nodes.len();
    let k = args.recipients;
    let before = c
        .sql
        .count("SELECT COUNT(*)::text FROM messages".into())
        .await;
    let (cpu0, pg0) = (c.cpu(), support::postgres_cpu_seconds());
    let db0 = c.pg_backends_cpu().await;
    let started = Instant::now();
    let acked = futures_util::stream::iter(0..args.triggers)
        .map(|t| {
            let recipients: Vec<String> = (0..k).map(|r| format!("t{t}-r{r}")).collect();
            let body = json!({"recipients": recipients, "actor": {"id": "bench-actor", "name": "Bench"},
                              "data": {"page": format!("p{t}")}});
            async move { c.trigger(t % n, &body).await }
        })
        .buffer_unordered(TRIGGERS_IN_FLIGHT)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    let acked_secs = started.elapsed().as_secs_f64();
    let want = (acked * k) as i64;
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut committed;
    // Until every item is in, or no run is left queued (a run that failed all its
    // attempts is reported, not waited for).
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        committed = c
            .sql
            .count("SELECT COUNT(*)::text FROM messages".into())
            .await
            - before;
        if committed >= want
            || c.sql
                .count("SELECT COUNT(*)::text FROM workflow_runs WHERE status = 'queued'".into())
                .await
                == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "items/s: {committed} of {want} items committed after 15 min"
        );
    }
    let failed_runs = c
        .sql
        .count("SELECT COUNT(*)::text FROM workflow_runs WHERE status = 'failed'".into())
        .await;
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, pg1) = (c.cpu(), support::postgres_cpu_seconds());
    let db_cpu = pg_delta(&db0, &c.pg_backends_cpu().await);
    let items = committed.max(1) as f64;
    // Per run: from its acceptance to its last item (the nodes' clocks are this machine's).
    let runs = c
        .sql
        .row(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::text, MAX(d)::text, \
             (COUNT(*) FILTER (WHERE d > 1))::text FROM (SELECT EXTRACT(EPOCH FROM \
             MAX(m.inserted_at)::timestamptz - r.inserted_at::timestamptz) AS d \
             FROM workflow_runs r JOIN messages m ON m.workflow_run_id = r.id \
             GROUP BY r.id, r.inserted_at) AS per_run"
                .into(),
        )
        .await;
    let run_secs: Vec<Value> = runs
        .iter()
        .map(|v| {
            v.as_deref()
                .and_then(|v| v.parse::<f64>().ok())
                .map_or(Value::Null, |x| json!(round2(x)))
        })
        .collect();
    let per_k = |s: f64| round1(s * 1000.0 / items * 1000.0);
    let node_ms: Vec<f64> = cpu0.iter().zip(&cpu1).map(|(a, b)| per_k(b - a)).collect();
    let nodes_total: f64 = cpu0.iter().zip(&cpu1).map(|(a, b)| b - a).sum();
    let pg = match (pg0, pg1) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    json!({
        "triggers": args.triggers, "recipients_per_trigger": k, "acked_triggers": acked,
        "items": want, "committed": committed, "failed_runs": failed_runs,
        "failed_attempts_per_node": c.failed_attempts(), "acked_secs": round2(acked_secs), "secs": round2(secs),
        "items_per_sec": (items / secs).round(),
        "cpu_ms_per_1000_items_per_node": node_ms,
        "cpu_ms_per_1000_items_all_nodes": per_k(nodes_total),
        "postgres_cpu_ms_per_1000_items": pg.map(per_k),
        "postgres_cpu_ms_per_1000_items_this_database": per_k(db_cpu),
        "cpu_cores_busy_nodes_plus_postgres": pg.map(|p| round2((nodes_total + p) / secs)),
        "run_accept_to_last_item_secs_p50_max_over1s": run_secs,
    })
}

// ---- 3 and 4. sockets: RSS, then notify → push -----------------------------------------

fn client_ref(i: usize) -> String {
    // The shape of the SDK's reference ids (`client_` + a 21-character nanoid).
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
    let alphabet = b"useandom-26T198340PX75pxJACKVERYMINDBUSHWOLF_GQZbfghjklqvwyzrict";
    let mut id = String::from("client_");
    for _ in 0..21 {
        id.push(alphabet[(x & 63) as usize] as char);
        x = x.rotate_right(6) ^ (x >> 3);
    }
    id
}

/// Connects socket `i` to `port` and joins user `u<i>`'s feed with the SDK's payload;
/// returns it once the join is answered (Tidings: the counts push after the reply;
/// the bare echo server: the echoed join).
async fn connect_join(port: u16, i: usize, tidings: bool) -> Socket {
    let url = format!("ws://127.0.0.1:{port}/ws/v1/websocket?api_key={PUBLIC}&vsn=2.0.0");
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .unwrap_or_else(|e| panic!("connect socket {i} to {port}: {e}"));
    let topic = format!("feeds:in-app-feed:u{i}");
    let mut params = serde_json::Map::new();
    params.insert(client_ref(i), json!({"archived": "exclude"}));
    let join = json!(["1", "1", topic, "phx_join", params]);
    socket
        .send(Message::text(join.to_string()))
        .await
        .expect("join sent");
    let wanted = if tidings { "new-message" } else { "phx_join" };
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("an answer to the join within 60 s")
            .expect("socket open")
            .expect("socket ok");
        if let Message::Text(text) = msg {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            if frame[3] == "phx_reply" && frame[4]["status"] != "ok" {
                panic!("join refused: {frame}");
            }
            if frame[3] == wanted {
                return socket;
            }
        }
    }
}

/// Connects `ids` (socket i to `ports[i % ports.len()]`), 64 at once.
async fn connect_many(
    ports: &[u16],
    ids: std::ops::Range<usize>,
    tidings: bool,
) -> Vec<(usize, Socket)> {
    let ports = ports.to_vec();
    futures_util::stream::iter(ids)
        .map(|i| {
            let port = ports[i % ports.len()];
            async move { (i, connect_join(port, i, tidings).await) }
        })
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await
}

/// Per socket on each node: KB (1,000 bytes) of RSS, from (after − before) KiB.
fn per_socket_kb(before: &[u64], after: &[u64], sockets: &[usize]) -> Vec<f64> {
    before
        .iter()
        .zip(after)
        .zip(sockets)
        .map(|((b, a), s)| round2(a.saturating_sub(*b) as f64 * 1.024 / (*s).max(1) as f64))
        .collect()
}

async fn sockets_and_latency(c: &Cluster, args: &Args) -> Value {
    let n = c.nodes.len();
    let s = args.sockets;
    let ports: Vec<u16> = c.nodes.iter().map(|n| n.port).collect();
    // Warm-up burst on every node (ids past the measured ones), then RSS before.
    let warm = connect_many(&ports, s..s + CONNECT_CONCURRENCY * n, true).await;
    drop(warm);
    tokio::time::sleep(args.settle).await;
    let before = c.rss();
    let connect_started = Instant::now();
    let sockets = connect_many(&ports, 0..s, true).await;
    let connect_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(args.settle).await;
    let after = c.rss();
    let on_node: Vec<usize> = (0..n)
        .map(|k| (0..s).filter(|i| i % n == k).count())
        .collect();
    let kb = per_socket_kb(&before, &after, &on_node);
    let total_kb = round2(
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| a.saturating_sub(*b) as f64)
            .sum::<f64>()
            * 1.024
            / s.max(1) as f64,
    );
    let held = sockets.len();

    // Readers: every `new-message` on socket i is (count, when) for user i.
    let pushes: Arc<Vec<Pushes>> = Arc::new((0..s).map(|_| Mutex::new(Vec::new())).collect());
    let frames = Arc::new(AtomicUsize::new(0));
    let mut sinks: Vec<SplitSink<Socket, Message>> = Vec::with_capacity(held);
    let mut readers = tokio::task::JoinSet::new();
    for (i, socket) in sockets {
        let (sink, mut stream) = socket.split();
        sinks.push(sink);
        let (pushes, frames) = (pushes.clone(), frames.clone());
        readers.spawn(async move {
            while let Some(Ok(msg)) = stream.next().await {
                let Message::Text(text) = msg else { continue };
                if !text.as_str().contains("\"new-message\"") {
                    continue;
                }
                let at = Instant::now();
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                let payload = &frame[4];
                let total = payload["data"]
                    .as_object()
                    .and_then(|d| d.values().next())
                    .and_then(|v| v["metadata"]["total_count"].as_i64())
                    .or_else(|| payload["metadata"]["total_count"].as_i64())
                    .unwrap_or(0);
                frames.fetch_add(1, Ordering::Relaxed);
                pushes[i].lock().expect("pushes").push((total, at));
            }
        });
    }

    // Let the readers' first polls (10,000 tasks at once) pass before the clock starts:
    // they would otherwise delay the first triggers in this process, not in the nodes.
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Steady load: a trigger every per_trigger / rate seconds, open loop.
    let per = args.per_trigger.min(s.max(1));
    let n_triggers = ((args.secs * args.rate as f64) / per as f64)
        .round()
        .max(1.0) as usize;
    let period = Duration::from_secs_f64(per as f64 / args.rate.max(1) as f64);
    // Per socket, each item sent to its user: (when, the trigger's index).
    let sends: Vec<Mutex<Vec<(Instant, usize)>>> = (0..s).map(|_| Mutex::new(Vec::new())).collect();
    let failed = Arc::new(AtomicUsize::new(0));
    // Per trigger: its run id and when its 202 arrived (the breakdown below).
    let acks: Arc<Mutex<Vec<Option<Acked>>>> = Arc::new(Mutex::new(vec![None; n_triggers]));
    let trigger_sent: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; n_triggers]));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut inflight = tokio::task::JoinSet::new();
    let mut cursor = 0usize;
    let cpu0 = c.cpu();
    let pg0 = support::postgres_cpu_seconds();
    let db0 = c.pg_backends_cpu().await;
    // The nodes' clock is this machine's system clock, read as the server reads it.
    let wall0 = (Instant::now(), tidings::clock::Clock::default().now_utc());
    let load_started = Instant::now();
    for j in 0..n_triggers {
        ticker.tick().await;
        let node = if args.triggers_to_one { 0 } else { j % n };
        let mut users = Vec::with_capacity(per);
        while users.len() < per {
            let u = cursor % s;
            cursor += 1;
            // Recipients whose sockets are on another node (one node: its own).
            if n == 1 || u % n != node {
                users.push(u);
            }
        }
        let now = Instant::now();
        for &u in &users {
            sends[u].lock().expect("sends").push((now, j));
        }
        trigger_sent.lock().expect("sent")[j] = Some(now);
        let body = json!({
            "recipients": users.iter().map(|u| format!("u{u}")).collect::<Vec<_>>(),
            "actor": {"id": "bench-actor", "name": "Bench"}, "data": {"page": format!("p{j}")}
        });
        let url = format!("{}/v1/workflows/bench/trigger", c.nodes[node].base());
        let (http, failed, acks) = (c.http.clone(), failed.clone(), acks.clone());
        inflight.spawn(async move {
            let run = match http.post(url).bearer_auth(SECRET).json(&body).send().await {
                Ok(res) if res.status().is_success() => {
                    let at = Instant::now();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    body["workflow_run_id"]
                        .as_str()
                        .map(|id| (id.to_owned(), at))
                }
                _ => None,
            };
            match run {
                Some(run) => acks.lock().expect("acks")[j] = Some(run),
                None => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let load_secs = load_started.elapsed().as_secs_f64();
    let (cpu1, pg1) = (c.cpu(), support::postgres_cpu_seconds());
    let db_cpu = pg_delta(&db0, &c.pg_backends_cpu().await);
    while inflight.join_next().await.is_some() {}
    let expected: usize = sends.iter().map(|v| v.lock().expect("sends").len()).sum();
    let seen_items = || -> usize {
        (0..s)
            .map(|u| {
                let sent = sends[u].lock().expect("sends").len();
                let top = pushes[u]
                    .lock()
                    .expect("pushes")
                    .iter()
                    .map(|p| p.0)
                    .max()
                    .unwrap_or(0);
                sent.min(top.max(0) as usize)
            })
            .sum()
    };
    // Until every item's push arrived, or 15 s of silence after the last trigger.
    let mut last = (seen_items(), Instant::now());
    while last.0 < expected && last.1.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = seen_items();
        if now != last.0 {
            last = (now, Instant::now());
        }
    }
    let written = run_write_times(c, wall0).await;
    let acks = acks.lock().expect("acks").clone();
    let trigger_sent = trigger_sent.lock().expect("sent").clone();
    let mut latencies = Vec::with_capacity(expected);
    // Where each item's time went: sent → 202, sent → its page's write began (the
    // message's `inserted_at`), that → pushed.
    let (mut to_ack, mut to_write, mut write_to_push) = (Vec::new(), Vec::new(), Vec::new());
    // The slowest items: (latency ms, sent at s into the load), to tell a periodic stall
    // from queueing.
    let mut slowest: Vec<(f64, f64)> = Vec::new();
    let quarters = (load_secs * 4.0).ceil() as usize + 1;
    let quarter = |at: Instant| {
        ((at.saturating_duration_since(load_started).as_secs_f64() * 4.0) as usize)
            .min(quarters - 1)
    };
    // The worst ack and page-write start of the triggers sent in each quarter second.
    let (mut worst_ack, mut worst_write) = (vec![0.0f64; quarters], vec![0.0f64; quarters]);
    for (j, ack) in acks.iter().enumerate() {
        if let (Some((run, at)), Some(sent)) = (ack, trigger_sent[j]) {
            let q = quarter(sent);
            to_ack.push(ms(at.saturating_duration_since(sent)));
            worst_ack[q] = worst_ack[q].max(ms(at.saturating_duration_since(sent)).round());
            if let Some(w) = written.get(run) {
                to_write.push(ms(w.saturating_duration_since(sent)));
                worst_write[q] = worst_write[q].max(ms(w.saturating_duration_since(sent)).round());
            }
        }
    }
    for (sent, got) in sends.iter().zip(pushes.iter()) {
        let sent = sent.lock().expect("sends");
        let got = got.lock().expect("pushes");
        for (k, (at, j)) in sent.iter().enumerate() {
            if let Some((_, when)) = got.iter().find(|(total, _)| *total > k as i64) {
                latencies.push(ms(when.saturating_duration_since(*at)));
                slowest.push((
                    round2(ms(when.saturating_duration_since(*at))),
                    round2(at.saturating_duration_since(load_started).as_secs_f64()),
                ));
                let w = acks[*j].as_ref().and_then(|(run, _)| written.get(run));
                if let Some(w) = w {
                    write_to_push.push(ms(when.saturating_duration_since(*w)));
                }
            }
        }
    }
    latencies.sort_by(f64::total_cmp);
    let stage = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        json!({"p50_ms": round2(percentile(&v, 0.5)), "p99_ms": round2(percentile(&v, 0.99)),
               "max_ms": round2(percentile(&v, 1.0)), "n": v.len()})
    };
    // The worst latency of the items sent in each quarter second of the load.
    let mut worst_per_quarter = vec![0.0f64; quarters];
    for (lat, at) in &slowest {
        let k = ((at * 4.0) as usize).min(worst_per_quarter.len() - 1);
        worst_per_quarter[k] = worst_per_quarter[k].max(*lat);
    }
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    slowest.truncate(60);
    let breakdown = json!({
        "sent_to_ack": stage(to_ack),
        "sent_to_page_write": stage(to_write),
        "page_write_to_push": stage(write_to_push),
        "slowest_ms_at_secs": slowest,
        "worst_ms_per_quarter_sec": worst_per_quarter.iter().map(|v| v.round()).collect::<Vec<_>>(),
        "worst_ack_ms_per_quarter_sec": worst_ack,
        "worst_page_write_ms_per_quarter_sec": worst_write,
    });
    readers.abort_all();
    drop(sinks);
    let cpu_pct: Vec<f64> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| round1((b - a) / load_secs * 100.0))
        .collect();
    json!({
        "sockets": s, "sockets_held": held, "sockets_per_node": on_node,
        "connect_and_join_secs": round2(connect_secs),
        "rss_kib_before_per_node": before, "rss_kib_after_per_node": after,
        "kb_per_idle_socket_per_node": kb, "kb_per_idle_socket": total_kb,
        "latency": {
            "items_per_sec_target": args.rate, "recipients_per_trigger": per,
            "triggers": n_triggers, "failed_triggers": failed.load(Ordering::Relaxed),
            "load_secs": round2(load_secs),
            "items_per_sec_sent": (expected as f64 / load_secs).round(),
            "cross_node": n > 1,
            "triggers_to": if args.triggers_to_one { "node-1" } else { "spread" },
            "items_expected": expected, "items_pushed": latencies.len(),
            "push_frames": frames.load(Ordering::Relaxed),
            "p50_ms": round2(percentile(&latencies, 0.5)),
            "p99_ms": round2(percentile(&latencies, 0.99)),
            "max_ms": round2(percentile(&latencies, 1.0)),
            "breakdown": breakdown,
            "cpu_pct_of_a_core_per_node": cpu_pct,
            "failed_attempts_per_node_so_far": c.failed_attempts(),
            "postgres_cpu_pct_of_a_core_this_database": round1(db_cpu / load_secs * 100.0),
            "postgres_cpu_pct_of_a_core": match (pg0, pg1) {
                (Some(a), Some(b)) => json!(round1((b - a) / load_secs * 100.0)),
                _ => Value::Null,
            },
        },
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// When each run's first page write began (its first message's `inserted_at`, the
/// writing node's clock), as an `Instant` of this process through `wall0`.
async fn run_write_times(
    c: &Cluster,
    wall0: (Instant, chrono::DateTime<chrono::Utc>),
) -> std::collections::HashMap<String, Instant> {
    let row = c
        .sql
        .row(
            "SELECT string_agg(workflow_run_id || ' ' || m, ',') FROM \
             (SELECT workflow_run_id, min(inserted_at) AS m FROM messages GROUP BY 1) t"
                .into(),
        )
        .await;
    let list = row.first().cloned().flatten().unwrap_or_default();
    list.split(',')
        .filter_map(|pair| {
            let (run, at) = pair.split_once(' ')?;
            let at = tidings::clock::parse(at)?;
            let offset = (at - wall0.1).to_std().ok()?;
            Some((run.to_owned(), wall0.0 + offset))
        })
        .collect()
}

// ---- the bare baseline (child process) ---------------------------------------------------

async fn bare_baseline(args: &Args) -> Value {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(std::env::current_exe().expect("current exe"))
        .arg("--serve-bare")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("bare server starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let port: u16 = loop {
        let line = lines.next().expect("PORT line").expect("stdout");
        if let Some(p) = line.strip_prefix("PORT ") {
            break p.trim().parse().expect("port");
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let s = args.sockets;
    let warm = connect_many(&[port], s..s + CONNECT_CONCURRENCY, false).await;
    drop(warm);
    tokio::time::sleep(args.settle).await;
    let before = rss_kib(child.id());
    let sockets = connect_many(&[port], 0..s, false).await;
    tokio::time::sleep(args.settle).await;
    let after = rss_kib(child.id());
    drop(sockets);
    drop(child.stdin.take());
    let _ = child.wait();
    json!({"sockets": s, "rss_kib_before": before, "rss_kib_after": after,
           "kb_per_idle_socket": per_socket_kb(&[before], &[after], &[s])[0]})
}

// ---- 5. a node's death -----------------------------------------------------------------

async fn failover(args: &Args, lease_secs: u64, rescan_ms: Option<u64>) -> Value {
    let n = args.nodes.iter().copied().max().unwrap_or(3).max(2);
    let mut c = Cluster::start(n, args, lease_secs, rescan_ms).await;
    let api = Api::new(c.nodes[0].port);
    api.call(
        reqwest::Method::PUT,
        "/v1/objects/projects/big",
        &json!({"name": "Big"}),
    )
    .await;
    let subscribers = args.fanout.div_ceil(100) * 100;
    for call in 0..subscribers.div_ceil(10_000) {
        let groups: Vec<Value> = (0..100)
            .filter_map(|g| {
                let first = call * 10_000 + g * 100;
                (first < subscribers).then(|| {
                    let recipients: Vec<Value> = (first..first + 100)
                        .map(|i| json!({"id": format!("s-{i}")}))
                        .collect();
                    json!({"id": "big", "recipients": recipients})
                })
            })
            .collect();
        api.call(
            reqwest::Method::POST,
            "/v1/objects/projects/bulk/subscriptions/add",
            &json!({"subscriptions": groups}),
        )
        .await;
    }
    let run = api
        .call(
            reqwest::Method::POST,
            "/v1/workflows/bench/trigger",
            &json!({"recipients": [{"id": "big", "collection": "projects"}],
                    "actor": {"id": "bench-actor", "name": "Bench"}, "data": {"page": "big"}}),
        )
        .await;
    let run_id = run["workflow_run_id"].as_str().expect("run id").to_owned();
    let of_run = format!(
        "SELECT (SELECT COUNT(*) FROM messages WHERE workflow_run_id = '{run_id}')::text, \
         (SELECT owner FROM run_leases WHERE run_id = '{run_id}'), \
         (SELECT status FROM workflow_runs WHERE id = '{run_id}')"
    );
    let parse = |row: Row| -> (i64, Option<String>, Option<String>) {
        let mut it = row.into_iter();
        let count = it
            .next()
            .flatten()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (count, it.next().flatten(), it.next().flatten())
    };
    // Kill node 1 once its first page is in.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (count, _, _) = parse(c.sql.row(of_run.clone()).await);
        if count > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the fan-out never started");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let victim = c.nodes[0].id.clone();
    c.nodes[0].child.kill().expect("SIGKILL node 1");
    let killed = Instant::now();
    let _ = c.nodes[0].child.wait();
    let (at_kill, owner_at_kill, status_at_kill) = parse(c.sql.row(of_run.clone()).await);
    let total = subscribers as i64 + 1; // the object's own item too
    let mut dead_count = at_kill;
    let mut resumed: Option<(f64, Option<String>, i64)> = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    let completed = loop {
        let (count, owner, status) = parse(c.sql.row(of_run.clone()).await);
        let secs = killed.elapsed().as_secs_f64();
        if owner.as_deref() == Some(victim.as_str()) {
            dead_count = count;
        } else if resumed.is_none() && count > dead_count {
            resumed = Some((secs, owner.clone(), count));
        }
        if status.as_deref() == Some("completed") {
            break Some(secs);
        }
        if Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (final_count, _, _) = parse(c.sql.row(of_run.clone()).await);
    let distinct = c
        .sql
        .count(format!(
            "SELECT COUNT(DISTINCT recipient_id)::text FROM messages WHERE workflow_run_id = '{run_id}'"
        ))
        .await;
    let rescan = rescan_ms.unwrap_or(5000);
    json!({
        "nodes": n, "lease_secs": lease_secs, "run_rescan_ms": rescan,
        "fanout_items": total, "items_at_kill": at_kill, "owner_at_kill": owner_at_kill,
        "status_at_kill": status_at_kill, "items_by_dead_node": dead_count,
        "kill_to_first_item_elsewhere_secs": resumed.as_ref().map(|r| round2(r.0)),
        "resumed_by": resumed.as_ref().and_then(|r| r.1.clone()),
        "kill_to_completed_secs": completed.map(round2),
        "items_per_sec_after_resume": match (&resumed, completed) {
            (Some((r, _, _)), Some(done)) if done > *r => json!(((total - dead_count) as f64 / (done - r)).round()),
            _ => Value::Null,
        },
        "expected_window_secs": [round2(lease_secs as f64 * 2.0 / 3.0), round2(lease_secs as f64 + rescan as f64 / 1000.0)],
        "final_items": final_count, "distinct_recipients": distinct,
        "exactly_once": final_count == total && distinct == total,
    })
}

// ---- main ------------------------------------------------------------------------------

/// The machine's wall clock, for the report's start and end times (a bench's own record,
/// not a server's time).
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> String {
    chrono::Utc::now().to_rfc3339()
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn fmt_list(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        })
        .unwrap_or_else(|| v.to_string())
}

fn print_table(configs: &[Value], bare: &Value, failovers: &[Value]) {
    println!();
    println!(
        "| | {} |",
        configs
            .iter()
            .map(|c| format!("{} node(s)", c["nodes"]))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(configs.len()));
    let row = |name: &str, f: &dyn Fn(&Value) -> String| {
        println!(
            "| {name} | {} |",
            configs.iter().map(f).collect::<Vec<_>>().join(" | ")
        );
    };
    row("RSS at rest per node, MB", &|c| {
        fmt_list(&c["rest"]["rss_mb_per_node"])
    });
    row("CPU at rest per node, % of a core", &|c| {
        fmt_list(&c["rest"]["cpu_pct_of_a_core_per_node"])
    });
    row("committed items/s", &|c| {
        c["items"]["items_per_sec"].to_string()
    });
    row(
        "run accepted → last item, p50 / max / runs over 1 s",
        &|c| fmt_list(&c["items"]["run_accept_to_last_item_secs_p50_max_over1s"]),
    );
    row("failed run attempts (items/s phase), each node", &|c| {
        fmt_list(&c["items"]["failed_attempts_per_node"])
    });
    row("CPU ms per 1,000 items, each node", &|c| {
        fmt_list(&c["items"]["cpu_ms_per_1000_items_per_node"])
    });
    row("CPU ms per 1,000 items, all nodes", &|c| {
        c["items"]["cpu_ms_per_1000_items_all_nodes"].to_string()
    });
    row(
        "PostgreSQL CPU ms per 1,000 items, this database (all)",
        &|c| {
            format!(
                "{} ({})",
                c["items"]["postgres_cpu_ms_per_1000_items_this_database"],
                c["items"]["postgres_cpu_ms_per_1000_items"]
            )
        },
    );
    row("sockets held", &|c| {
        format!(
            "{} of {}",
            c["sockets"]["sockets_held"], c["sockets"]["sockets"]
        )
    });
    row("KB per idle joined socket, each node", &|c| {
        fmt_list(&c["sockets"]["kb_per_idle_socket_per_node"])
    });
    row("notify→push p50 ms", &|c| {
        c["sockets"]["latency"]["p50_ms"].to_string()
    });
    row("notify→push p99 ms", &|c| {
        c["sockets"]["latency"]["p99_ms"].to_string()
    });
    row("notify→push max ms", &|c| {
        c["sockets"]["latency"]["max_ms"].to_string()
    });
    row("items pushed / sent", &|c| {
        let l = &c["sockets"]["latency"];
        format!(
            "{} / {} ({} failed triggers)",
            l["items_pushed"], l["items_expected"], l["failed_triggers"]
        )
    });
    row("items/s sent", &|c| {
        c["sockets"]["latency"]["items_per_sec_sent"].to_string()
    });
    row("CPU under load per node, % of a core", &|c| {
        fmt_list(&c["sockets"]["latency"]["cpu_pct_of_a_core_per_node"])
    });
    row(
        "PostgreSQL CPU under load, % of a core, this database (all)",
        &|c| {
            let l = &c["sockets"]["latency"];
            format!(
                "{} ({})",
                l["postgres_cpu_pct_of_a_core_this_database"], l["postgres_cpu_pct_of_a_core"]
            )
        },
    );
    println!(
        "\nbare actix-ws echo server: {} KB per idle socket ({} sockets)",
        bare["kb_per_idle_socket"], bare["sockets"]
    );
    for f in failovers {
        println!(
            "failover ({} nodes, --lease-secs {}, rescan {} ms): kill → first item elsewhere {} s (by {}), → completed {} s; expected window {}; {} of {} items at kill; exactly once: {}",
            f["nodes"],
            f["lease_secs"],
            f["run_rescan_ms"],
            f["kill_to_first_item_elsewhere_secs"],
            f["resumed_by"],
            f["kill_to_completed_secs"],
            f["expected_window_secs"],
            f["items_at_kill"],
            f["fanout_items"],
            f["exactly_once"]
        );
    }
}

fn main() {
    let args = parse_args();
    if args.serve_bare {
        return actix_web::rt::System::new().block_on(serve_bare());
    }
    if let Some(limit) = open_files_limit()
        && limit < args.sockets as u64 + 1024
    {
        eprintln!(
            "`ulimit -n` is {limit}: too low for {} sockets (this process holds one descriptor per socket, and so do the \
             nodes that inherit it); raise it (e.g. `ulimit -n 20000`)",
            args.sockets
        );
        std::process::exit(2);
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let started = wall_clock();
    eprintln!("cluster bench: {args:?}");
    let mut configs = Vec::new();
    for &n in &args.nodes {
        eprintln!("--- {n} node(s)");
        let c = Cluster::start(n, &args, 15, None).await;
        let rest = at_rest(&c, &args).await;
        eprintln!("at rest: {rest}");
        let items = throughput(&c, &args).await;
        eprintln!("items/s: {items}");
        let sockets = sockets_and_latency(&c, &args).await;
        eprintln!("sockets and latency: {sockets}");
        configs.push(json!({"nodes": n, "rest": rest, "items": items, "sockets": sockets}));
        drop(c);
    }
    eprintln!("--- bare actix-ws baseline");
    let bare = bare_baseline(&args).await;
    eprintln!("bare: {bare}");
    let mut failovers = Vec::new();
    for &(lease, rescan) in &args.failover {
        eprintln!("--- failover, --lease-secs {lease}");
        let f = failover(&args, lease, rescan).await;
        eprintln!("failover: {f}");
        failovers.push(f);
    }
    print_table(&configs, &bare, &failovers);
    let report = json!({
        "started_utc": started,
        "finished_utc": wall_clock(),
        "args": format!("{args:?}"),
        "configs": configs, "bare_actix_ws": bare, "failover": failovers,
    });
    if let Some(dir) = args.out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(
        &args.out,
        serde_json::to_string_pretty(&report).unwrap_or_default(),
    ) {
        Ok(()) => println!("\nwrote {}", args.out.display()),
        Err(e) => eprintln!("could not write {}: {e}", args.out.display()),
    }
}
