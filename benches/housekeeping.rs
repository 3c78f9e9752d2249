//! Housekeeping benchmark (issue 17 item 10): what the retention path's purge costs the
//! triggers acknowledged meanwhile, and how large the WAL grows under continuous load.
//!
//! 1. Purge: seeds `--keys` (default 1,000,000) expired idempotency keys, then measures
//!    the ack latency of triggers sent by `--concurrency` clients (a) with nothing else
//!    running, (b) during a retention pass that deletes the keys (batches of 500 in the
//!    writer's bulk lane), and (c) during the old way, one unbounded `DELETE` in the
//!    quick lane (after re-seeding), all in the same run.
//! 2. WAL: `--minutes` (default 10) of mixed load, trigger clients and feed readers
//!    without pause, sampling the WAL file every 100 ms; reports the largest size.
//!
//! Prints the figures and writes `bench-results/housekeeping.json`. Not a test.

//! Run: `cargo bench --bench housekeeping -- --keys 1000000 --minutes 10`
//! (`--minutes 0` skips the WAL part, `--keys 0` the purge part).

// The bench seeds rows relative to the wall clock of the server it starts (no manual clock).
#![allow(clippy::disallowed_methods)]

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::retention::{RetentionPolicy, run_pass};
use tidings::{Application, Settings};

#[path = "support/mod.rs"]
mod support;

use support::{Api, SECRET};

struct Args {
    keys: u64,
    minutes: f64,
    concurrency: usize,
    baseline_secs: u64,
    readers: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        keys: 1_000_000,
        minutes: 10.0,
        concurrency: 16,
        baseline_secs: 10,
        readers: 8,
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv.windows(2) {
        match pair[0].as_str() {
            "--keys" => args.keys = pair[1].parse().unwrap_or(args.keys),
            "--minutes" => args.minutes = pair[1].parse().unwrap_or(args.minutes),
            "--concurrency" => args.concurrency = pair[1].parse().unwrap_or(args.concurrency),
            "--baseline-secs" => args.baseline_secs = pair[1].parse().unwrap_or(args.baseline_secs),
            "--readers" => args.readers = pair[1].parse().unwrap_or(args.readers),
            _ => {}
        }
    }
    args
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        return 0.0;
    }
    values[((values.len() as f64 - 1.0) * p).round() as usize]
}

struct Server {
    api: Arc<Api>,
    state: actix_web::web::Data<tidings::state::AppState>,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let mut settings = Settings::for_database(db.clone());
    settings.workflows = dir.path().join("no-workflows");
    settings.secret_key = Some(SECRET.into());
    let fast = NonZeroU32::new(1_000_000).expect("non-zero");
    settings.trigger_rate_per_key = fast;
    settings.trigger_rate_per_tenant = fast;
    let app = Application::build(settings).await.expect("server starts");
    let state = app.state();
    let api = Arc::new(Api::new(app.port()));
    tokio::spawn(app.run_until_stopped());
    let workflow = json!({"workflow": {"name": "Bench", "steps": [{
        "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
        "template": {"markdown_body": "**{{ actor.name }}** commented on {{ data.page }}"}
    }]}});
    api.call(reqwest::Method::PUT, "/v1/workflows/bench", &workflow)
        .await;
    Server {
        api,
        state,
        db,
        _dir: dir,
    }
}

/// Inserts `n` idempotency keys stored two days ago (past the 24 h window).
fn seed_keys(db: &Path, n: u64) -> Duration {
    let started = Instant::now();
    let conn = rusqlite::Connection::open(db).expect("open");
    conn.busy_timeout(Duration::from_secs(30)).expect("busy");
    let old = tidings::clock::format(chrono::Utc::now() - chrono::Duration::days(2));
    conn.execute_batch(&format!(
        "BEGIN IMMEDIATE;
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT OR IGNORE INTO idempotency_keys SELECT 'bench-' || i, 'h', 'r', 'q', '{old}' FROM n;
         COMMIT;",
        last = n.saturating_sub(1)
    ))
    .expect("seed keys");
    started.elapsed()
}

/// Sends triggers from `clients` tasks until `stop`; returns each ack's latency in ms.
async fn trigger_load(api: Arc<Api>, clients: usize, stop: Arc<AtomicBool>) -> Vec<f64> {
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (api, stop) = (api.clone(), stop.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let body = json!({"recipients": [format!("u{}", (c as u64 * 7 + i) % 100)],
                                      "actor": {"id": "a", "name": "Ann"}, "data": {"page": i}});
                    let started = Instant::now();
                    if api
                        .try_call(reqwest::Method::POST, "/v1/workflows/bench/trigger", &body)
                        .await
                        .is_ok()
                    {
                        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                    }
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all
}

fn summary(mut latencies: Vec<f64>, took: Duration) -> Value {
    let n = latencies.len();
    json!({
        "acks": n,
        "secs": took.as_secs_f64(),
        "acks_per_sec": n as f64 / took.as_secs_f64().max(1e-9),
        "p50_ms": percentile(&mut latencies, 0.50),
        "p99_ms": percentile(&mut latencies, 0.99),
        "max_ms": percentile(&mut latencies, 1.0),
    })
}

/// Runs the trigger load while `work` runs (or for `secs` when `work` is `None`).
async fn load_during<F>(server: &Server, clients: usize, work: F) -> (Value, Value)
where
    F: Future<Output = Value>,
{
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let load = tokio::spawn(trigger_load(server.api.clone(), clients, stop.clone()));
    let outcome = work.await;
    stop.store(true, Ordering::Relaxed);
    let latencies = load.await.unwrap_or_default();
    (summary(latencies, started.elapsed()), outcome)
}

async fn purge_part(server: &Server, args: &Args) -> Value {
    let seeded = seed_keys(&server.db, args.keys);
    println!(
        "seeded {} expired idempotency keys in {:.1}s",
        args.keys,
        seeded.as_secs_f64()
    );
    let baseline_secs = args.baseline_secs;
    let (baseline, _) = load_during(server, args.concurrency, async move {
        tokio::time::sleep(Duration::from_secs(baseline_secs)).await;
        Value::Null
    })
    .await;
    println!("no purge:            {baseline}");
    let store = server.state.store.clone();
    let (during, pass) = load_during(server, args.concurrency, async move {
        let started = Instant::now();
        let report = run_pass(
            &store,
            &RetentionPolicy::default(),
            chrono::Utc::now(),
            None,
        )
        .await
        .expect("pass");
        json!({
            "idempotency_keys_deleted": report.idempotency_keys,
            "batches": report.batches,
            "slowest_batch_ms": report.slowest_batch.as_secs_f64() * 1000.0,
            "took_s": started.elapsed().as_secs_f64(),
        })
    })
    .await;
    println!("during batched purge: {during}\n  pass: {pass}");
    let reseeded = seed_keys(&server.db, args.keys);
    println!("re-seeded in {:.1}s", reseeded.as_secs_f64());
    let store = server.state.store.clone();
    let (old_way, old) = load_during(server, args.concurrency, async move {
        let started = Instant::now();
        let cutoff = tidings::clock::format(chrono::Utc::now() - chrono::Duration::hours(24));
        // What `runner::purge_idempotency_keys` did before: one DELETE, one quick command.
        let deleted = store
            .write(move |db| {
                tidings::store::retention::delete_expired_idempotency_keys(db, &cutoff, usize::MAX)
            })
            .await
            .expect("delete");
        json!({"deleted": deleted, "took_s": started.elapsed().as_secs_f64()})
    })
    .await;
    println!("during one unbounded DELETE (before): {old_way}\n  delete: {old}");
    json!({
        "keys": args.keys,
        "no_purge": baseline,
        "during_batched_purge": during,
        "batched_pass": pass,
        "during_unbounded_delete": old_way,
        "unbounded_delete": old,
    })
}

fn wal_size(db: &Path) -> u64 {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    std::fs::metadata(PathBuf::from(name)).map_or(0, |m| m.len())
}

async fn wal_part(server: &Server, args: &Args) -> Value {
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let readers: Vec<_> = (0..args.readers)
        .map(|r| {
            let (api, stop, reads) = (server.api.clone(), stop.clone(), reads.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("u{}", (r as u64 * 13 + i) % 100);
                    let path = format!("/v1/users/{user}/feeds/in-app-feed?page_size=50");
                    if api
                        .try_call(reqwest::Method::GET, &path, &Value::Null)
                        .await
                        .is_ok()
                    {
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    let load = tokio::spawn(trigger_load(
        server.api.clone(),
        args.concurrency,
        stop.clone(),
    ));
    let started = Instant::now();
    let length = Duration::from_secs_f64(args.minutes * 60.0);
    let (mut largest, mut samples, mut over_limit) = (0u64, 0u64, 0u64);
    let mut last_print = Instant::now();
    while started.elapsed() < length {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let size = wal_size(&server.db);
        largest = largest.max(size);
        samples += 1;
        if size > 64 * 1024 * 1024 {
            over_limit += 1;
        }
        if last_print.elapsed() >= Duration::from_secs(30) {
            last_print = Instant::now();
            println!(
                "  {:>4.0}s: WAL {:.1} MiB (largest {:.1} MiB), gauge {:.1} MiB",
                started.elapsed().as_secs_f64(),
                size as f64 / 1048576.0,
                largest as f64 / 1048576.0,
                server.state.store.wal_bytes() as f64 / 1048576.0
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let acks = load.await.unwrap_or_default();
    for r in readers {
        let _ = r.await;
    }
    let took = started.elapsed();
    json!({
        "minutes": args.minutes,
        "largest_wal_bytes": largest,
        "largest_wal_mib": largest as f64 / 1048576.0,
        "samples": samples,
        "samples_over_64_mib": over_limit,
        "triggers": summary(acks, took),
        "feed_reads": reads.load(Ordering::Relaxed),
        "feed_reads_per_sec": reads.load(Ordering::Relaxed) as f64 / took.as_secs_f64(),
    })
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let mut report = json!({"concurrency": args.concurrency});
    if args.keys > 0 {
        let server = start().await;
        report["purge"] = purge_part(&server, &args).await;
    }
    if args.minutes > 0.0 {
        let server = start().await;
        println!(
            "mixed load for {} min ({} trigger clients, {} feed readers)...",
            args.minutes, args.concurrency, args.readers
        );
        report["wal"] = wal_part(&server, &args).await;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    std::fs::create_dir_all("bench-results").expect("bench-results dir");
    std::fs::write(
        "bench-results/housekeeping.json",
        serde_json::to_vec_pretty(&report).unwrap_or_default(),
    )
    .expect("write json");
    println!("wrote bench-results/housekeeping.json");
}
