//! Scheduler benchmark (issue 6): with N delayed recipient runs pending, the process's CPU
//! use while nothing is due and its RSS; then how late due timers fire (p50/p99) while
//! triggers are being accepted at a target rate. Starts the real server in-process on a
//! temp database (system clock); prints JSON and writes `bench-results/scheduler.json`.
//!
//! Run: `cargo bench --bench scheduler` (tiny default: 10,000 pending, 40 probes, 200
//! triggers/s), or e.g. `cargo bench --bench scheduler -- --pending 100000 --rate 1000`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::{Application, Settings};

const SECRET: &str = "sk_bench";

struct Args {
    pending: usize,
    probes: usize,
    rate: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        pending: 10_000,
        probes: 40,
        rate: 200,
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--pending", Some(v)) => args.pending = v,
            ("--probes", Some(v)) => args.probes = v,
            ("--rate", Some(v)) => args.rate = v,
            _ => {}
        }
    }
    args.pending = args.pending.max(1000) / 1000 * 1000;
    args
}

/// (user+system CPU seconds, RSS in MiB) of this process, from /proc.
fn cpu_and_rss() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // After the `)`: state is field 0, utime 11, stime 12 (clock ticks, 100/s on Linux).
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, rss_kb / 1024.0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(i).copied().unwrap_or(0.0)
}

async fn call(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: &Value,
) {
    let res = client
        .request(method, format!("{base}{path}"))
        .bearer_auth(SECRET)
        .json(body)
        .send()
        .await
        .expect("request");
    let status = res.status();
    assert!(status.is_success(), "{path}: {status}");
}

fn count(db: &std::path::Path, sql: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

fn step(delay: Value) -> Value {
    json!([{"ref": "wait", "type": "delay", "settings": {"delay_for": delay}},
           {"ref": "msg", "type": "channel", "channel_key": "in-app-feed",
            "template": {"markdown_body": "due"}}])
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.db");
    let mut settings = Settings::for_database(db.clone());
    settings.workflows = dir.path().join("no-workflows");
    settings.secret_key = Some(SECRET.into());
    let app = Application::build(settings).await.expect("server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let put = |key: &str, steps: Value| {
        (
            format!("/v1/workflows/{key}"),
            json!({"workflow": {"name": key, "steps": steps}}),
        )
    };
    for (path, body) in [
        put("pending", step(json!({"unit": "days", "value": 7}))),
        put("probe", step(json!({"unit": "seconds", "value": 1}))),
        put(
            "noise",
            json!([{"ref": "msg", "type": "channel", "channel_key": "in-app-feed",
                              "template": {"markdown_body": "noise"}}]),
        ),
    ] {
        call(&client, &base, reqwest::Method::PUT, &path, &body).await;
    }

    // N pending delays, 1,000 recipients per trigger.
    let (_, rss_before) = cpu_and_rss();
    for t in 0..args.pending / 1000 {
        let recipients: Vec<String> = (0..1000).map(|i| format!("p{t}-{i}")).collect();
        call(
            &client,
            &base,
            reqwest::Method::POST,
            "/v1/workflows/pending/trigger",
            &json!({"recipients": recipients}),
        )
        .await;
    }
    let deadline = Instant::now() + Duration::from_secs(600);
    while count(&db, "SELECT COUNT(*) FROM timers") < args.pending as i64 {
        assert!(Instant::now() < deadline, "pending delays never all stored");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (cpu0, rss_pending) = cpu_and_rss();
    let idle = Duration::from_secs(5);
    tokio::time::sleep(idle).await;
    let (cpu1, _) = cpu_and_rss();
    let idle_cpu_pct = (cpu1 - cpu0) / idle.as_secs_f64() * 100.0;

    // Lateness: probes with a 1 s delay while `rate` triggers/s are accepted.
    let noise = {
        let (client, base, rate) = (client.clone(), base.clone(), args.rate);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1) as u32);
            let mut n = 0u64;
            loop {
                tick.tick().await;
                n += 1;
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    let _ = client
                        .post(format!("{base}/v1/workflows/noise/trigger"))
                        .bearer_auth(SECRET)
                        .json(&json!({"recipients": [format!("n{}", n % 500)]}))
                        .send()
                        .await;
                });
            }
        })
    };
    for i in 0..args.probes {
        call(
            &client,
            &base,
            reqwest::Method::POST,
            "/v1/workflows/probe/trigger",
            &json!({"recipients": [format!("probe-{i}")]}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(
        &db,
        "SELECT COUNT(*) FROM messages WHERE workflow_key = 'probe'",
    ) < args.probes as i64
    {
        assert!(Instant::now() < deadline, "probes never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    noise.abort();
    // Lateness = message inserted_at - the `delayed` event's `until`.
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open db");
    let mut stmt = conn
        .prepare(
            "SELECT rr.events, m.inserted_at FROM messages m JOIN workflow_recipient_runs rr \
             ON rr.id = m.workflow_recipient_run_id WHERE m.workflow_key = 'probe'",
        )
        .expect("prepare");
    let mut late: Vec<f64> = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query")
        .filter_map(Result::ok)
        .filter_map(|(events, inserted)| {
            let events: Value = serde_json::from_str(&events).ok()?;
            let until = events
                .as_array()?
                .iter()
                .find(|e| e["event"] == "delayed")?["data"]["until"]
                .as_str()?
                .to_owned();
            let until = chrono::DateTime::parse_from_rfc3339(&until).ok()?;
            let at = chrono::DateTime::parse_from_rfc3339(&inserted).ok()?;
            Some((at - until).num_microseconds()? as f64 / 1000.0)
        })
        .collect();
    let report = json!({
        "pending_delays": args.pending,
        "idle_cpu_percent_with_pending": idle_cpu_pct,
        "rss_mib_before": rss_before,
        "rss_mib_with_pending": rss_pending,
        "probes": late.len(),
        "noise_triggers_per_sec": args.rate,
        "timer_lateness_ms_p50": percentile(&mut late, 0.5),
        "timer_lateness_ms_p99": percentile(&mut late, 0.99),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    std::fs::create_dir_all("bench-results").expect("bench-results dir");
    std::fs::write(
        "bench-results/scheduler.json",
        serde_json::to_vec_pretty(&report).unwrap_or_default(),
    )
    .expect("write json");
    println!("wrote bench-results/scheduler.json");
}
