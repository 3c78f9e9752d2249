//! Fairness benchmark: another tenant's single notify while one tenant's fan-out drains.
//!
//! Starts the real server in-process on a temp database and joins ONE WebSocket to
//! tenant B's user feed. A probe is one trigger for that user with `tenant: "b"`; it
//! measures the acknowledgement (the 200, i.e. the run row committed) and "committed and
//! pushed" (the socket received the `new-message` push for that item). The probes run
//! first on an idle server, then while tenant A's fan-out of `--items` items drains, in
//! two shapes: `listed` (items/1,000 triggers of 1,000 listed users, all acknowledged
//! before probing starts) and `object` (ONE trigger to an object with `--items` − 1
//! subscribers: with the object's own item that is `--items` items, so 1,000,000 stays
//! within the per-trigger audience limit of 1,000,000 recipients). Reports p50/p99 (ms) of both latencies for each phase, the ratio to
//! idle, and the fan-out's items/s; writes `bench-results/fairness.json`.
//!
//! Run: `cargo bench --bench fairness` (tiny default: 20,000 items per shape, ~10 s), or
//! e.g. `cargo bench --bench fairness -- --items 1000000 --shapes listed`.
//!
//! `--engine postgres` (issue 19) runs the server on PostgreSQL instead: a fresh database
//! of its own, created through `--database-url URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`, used only to create and drop it) and
//! dropped at the end; `--analyze-secs N` runs `ANALYZE` on it every N seconds, as
//! autovacuum would on a server that has it on (see `support::Analyzer`). `--out PATH`
//! writes the JSON there instead of `bench-results/fairness.json`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tidings::{Application, Settings};
use tokio_tungstenite::tungstenite::Message;

#[path = "support/mod.rs"]
mod support;

use support::{Analyzer, Api, Engine, PUBLIC, PgDatabase, SECRET, analyze_every_from_args};
/// Pause between probes, so the probes themselves are not a load.
const PROBE_GAP: Duration = Duration::from_millis(10);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Args {
    items: usize,
    idle_probes: usize,
    shapes: Vec<String>,
    /// Fixed fan-out pages of this size (`TIDINGS_FANOUT_PAGE_SIZE` and
    /// `TIDINGS_FANOUT_SOLO_PAGE_SIZE`; the server's adaptive default unless given).
    page_size: Option<usize>,
    engine: Engine,
    out: Option<std::path::PathBuf>,
}

fn parse_args() -> Args {
    let mut args = Args {
        items: 20_000,
        idle_probes: 50,
        shapes: vec!["listed".into(), "object".into()],
        page_size: None,
        engine: Engine::from_args().unwrap_or_else(|e| panic!("{e}")),
        out: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv.windows(2) {
        match pair[0].as_str() {
            "--items" => args.items = pair[1].parse().unwrap_or(args.items),
            "--idle-probes" => args.idle_probes = pair[1].parse().unwrap_or(args.idle_probes),
            "--shapes" => args.shapes = pair[1].split(',').map(str::to_owned).collect(),
            "--page-size" => args.page_size = pair[1].parse().ok(),
            "--out" => args.out = Some(pair[1].clone().into()),
            _ => {}
        }
    }
    args.items = args.items.max(1000) / 1000 * 1000;
    args
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn trigger_body(recipients: Value, tenant: &str) -> Value {
    json!({"recipients": recipients, "tenant": tenant,
           "actor": {"id": "bench-actor", "name": "Ada"},
           "data": {"page": "p", "url": "https://example.com"}})
}

async fn next_push(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(120), socket.next())
            .await
            .expect("a push within 120 s")
            .expect("socket open")
            .expect("socket ok");
        match msg {
            Message::Text(text) => {
                let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
                if frame[3] == "new-message" {
                    return frame;
                }
            }
            Message::Close(reason) => panic!("the server closed the probe socket: {reason:?}"),
            _ => {}
        }
    }
}

/// Tenant B's probe user, its socket, and how many items its feed holds.
struct Probe {
    socket: Socket,
    sent: u64,
}

impl Probe {
    /// One notify: (ack ms, committed-and-pushed ms).
    async fn once(&mut self, api: &Api) -> (f64, f64) {
        let started = Instant::now();
        api.call(
            reqwest::Method::POST,
            "/v1/workflows/bench/trigger",
            &trigger_body(json!(["b-user"]), "b"),
        )
        .await;
        let ack = started.elapsed().as_secs_f64() * 1000.0;
        self.sent += 1;
        loop {
            let frame = next_push(&mut self.socket).await;
            // Counts are current at push time; a push for this probe counts it.
            if frame[4]["metadata"]["total_count"].as_u64() >= Some(self.sent) {
                break;
            }
        }
        (ack, started.elapsed().as_secs_f64() * 1000.0)
    }
}

#[derive(Default)]
struct Phase {
    acks: Vec<f64>,
    pushed: Vec<f64>,
}

impl Phase {
    fn add(&mut self, (ack, pushed): (f64, f64)) {
        self.acks.push(ack);
        self.pushed.push(pushed);
    }

    fn report(mut self) -> Value {
        // The first probe of a phase meets the fan-out before it has seen another tenant
        // (with adaptive pages: behind solo-sized pages).
        let first = (self.acks.first().copied(), self.pushed.first().copied());
        self.acks.sort_by(f64::total_cmp);
        self.pushed.sort_by(f64::total_cmp);
        json!({
            "probes": self.acks.len(),
            "first_ack_ms": first.0,
            "first_pushed_ms": first.1,
            "ack_ms_p50": percentile(&self.acks, 0.5),
            "ack_ms_p99": percentile(&self.acks, 0.99),
            "pushed_ms_p50": percentile(&self.pushed, 0.5),
            "pushed_ms_p99": percentile(&self.pushed, 0.99),
            "pushed_ms_max": percentile(&self.pushed, 1.0),
        })
    }
}

/// Sets up tenant A's audience; returns the trigger bodies and the users whose items
/// mark the end of the drain.
async fn prepare(api: &Api, shape: &str, n: usize) -> (Vec<Value>, Vec<String>) {
    match shape {
        "object" => {
            api.call(
                reqwest::Method::PUT,
                "/v1/objects/projects/big",
                &json!({"name": "Big"}),
            )
            .await;
            // The object's own item counts: n items in all, within the per-trigger
            // audience limit (object + subscribers ≤ 1,000,000) at n = 1,000,000.
            let subscribers = n - 1;
            for start in (0..subscribers).step_by(10_000) {
                let groups: Vec<Value> = (start..(start + 10_000).min(subscribers))
                    .collect::<Vec<_>>()
                    .chunks(100)
                    .map(|chunk| {
                        let users: Vec<Value> = chunk
                            .iter()
                            .map(|i| json!({"id": format!("s{i}")}))
                            .collect();
                        json!({"id": "big", "recipients": users})
                    })
                    .collect();
                api.call(
                    reqwest::Method::POST,
                    "/v1/objects/projects/bulk/subscriptions/add",
                    &json!({"subscriptions": groups}),
                )
                .await;
            }
            let body = trigger_body(json!([{"id": "big", "collection": "projects"}]), "a");
            (vec![body], vec![format!("s{}", subscribers - 1)])
        }
        _ => {
            let mut bodies = Vec::new();
            let mut lasts = Vec::new();
            for b in 0..n / 1000 {
                let users: Vec<String> = (0..1000).map(|i| format!("l{b}-{i}")).collect();
                let identify: Vec<Value> = users.iter().map(|u| json!({"id": u})).collect();
                api.call(
                    reqwest::Method::POST,
                    "/v1/users/bulk/identify",
                    &json!({"users": identify}),
                )
                .await;
                lasts.push(users[999].clone());
                bodies.push(trigger_body(json!(users), "a"));
            }
            (bodies, lasts)
        }
    }
}

/// Triggers tenant A's fan-out and probes until it has drained.
/// The writer's transaction-time histogram (`/metrics`): cumulative count per bucket.
async fn writer_commit_buckets(api: &Api) -> Vec<(String, f64)> {
    let text = match api.client.get(format!("{}/metrics", api.base)).send().await {
        Ok(res) => res.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter_map(|line| line.strip_prefix("tidings_writer_commit_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            Some((le.to_owned(), count.trim().parse().ok()?))
        })
        .collect()
}

/// How many writer transactions of the phase fell in each time bucket (the drain's own
/// histogram: after minus before), so a probe's wait can be read against the
/// transactions it queued behind.
fn bucket_diff(before: &[(String, f64)], after: &[(String, f64)]) -> Value {
    let mut previous = 0.0;
    let mut out = serde_json::Map::new();
    for (le, count) in after {
        let was = before
            .iter()
            .find(|(b, _)| b == le)
            .map_or(0.0, |(_, c)| *c);
        let cumulative = count - was;
        out.insert(format!("le_{le}"), json!(cumulative - previous));
        previous = cumulative;
    }
    Value::Object(out)
}

async fn drain_phase(api: &Arc<Api>, probe: &mut Probe, shape: &str, n: usize) -> Value {
    let (bodies, lasts) = prepare(api, shape, n).await;
    let commits_before = writer_commit_buckets(api).await;
    let started = Instant::now();
    let triggers = bodies
        .iter()
        .map(|body| api.call(reqwest::Method::POST, "/v1/workflows/bench/trigger", body));
    futures_util::future::join_all(triggers).await;
    let accepted_ms = started.elapsed().as_secs_f64() * 1000.0;
    let drained = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (api, drained) = (api.clone(), drained.clone());
        tokio::spawn(async move {
            api.wait_for(&lasts, Duration::from_millis(20), Duration::from_secs(3600))
                .await;
            drained.store(true, Ordering::SeqCst);
            Instant::now()
        })
    };
    let mut phase = Phase::default();
    while !drained.load(Ordering::SeqCst) {
        phase.add(probe.once(api).await);
        tokio::time::sleep(PROBE_GAP).await;
    }
    let done = watcher.await.expect("watcher");
    let seconds = done.duration_since(started).as_secs_f64();
    let mut report = phase.report();
    report["fanout_items"] = json!(n);
    report["fanout_triggers_acknowledged_ms"] = json!(accepted_ms);
    report["fanout_items_per_sec"] = json!(n as f64 / seconds);
    report["writer_commits_by_seconds"] =
        bucket_diff(&commits_before, &writer_commit_buckets(api).await);
    report
}

fn ratio(a: &Value, b: &Value, field: &str) -> Value {
    match (a[field].as_f64(), b[field].as_f64()) {
        (Some(x), Some(y)) if y > 0.0 => json!((x / y * 10.0).round() / 10.0),
        _ => Value::Null,
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_database(dir.path().join("bench.db"));
    let database = match &args.engine {
        Engine::Sqlite => None,
        Engine::Postgres { admin_url } => {
            Some(PgDatabase::create(admin_url).unwrap_or_else(|e| panic!("{e}")))
        }
    };
    settings.database_url = database.as_ref().map(|db| db.url.clone());
    let analyzer = database
        .as_ref()
        .zip(analyze_every_from_args())
        .map(|(db, every)| Analyzer::start(&db.url, every));
    settings.workflows = dir.path().join("no-workflows");
    settings.secret_key = Some(SECRET.into());
    settings.public_key = Some(PUBLIC.into());
    settings.enhanced_security = false;
    // The probe socket sends no heartbeats while tenant A's audience is set up.
    settings.ws_idle_timeout_secs = 3600;
    // Tenant A's whole fan-out is sent at once, and at `--items 1000000` it is exactly the
    // default `--max-queued-items`: the backlog gate's estimate could refuse A's last
    // trigger. This measures the scheduling (tenant B has its reserve either way).
    settings.max_queued_items = std::num::NonZeroU32::MAX;
    if let Some(page_size) = args.page_size {
        settings.fanout_page_size = page_size;
        settings.fanout_solo_page_size = page_size;
    }
    let page_size = settings.fanout_page_size;
    let solo_page_size = settings.fanout_solo_page_size;
    let app = Application::build(settings).await.expect("server starts");
    let port = app.port();
    let api = Arc::new(Api::new(port));
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    api.call(
        reqwest::Method::PUT,
        "/v1/workflows/bench",
        &json!({"workflow": {"name": "Bench", "steps": [{
            "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
            "template": {"markdown_body": "**{{ actor.name }}** commented on {{ data.page }} ({{ recipient.subscription.object.name | default: \"direct\" }})",
                         "action_url": "{{ data.url }}"}}]}}),
    )
    .await;
    api.call(
        reqwest::Method::PUT,
        "/v1/users/b-user",
        &json!({"name": "B"}),
    )
    .await;

    let url = format!("ws://127.0.0.1:{port}/ws/v1/websocket?api_key={PUBLIC}&&vsn=2.0.0");
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let join = json!(["1", "1", "feeds:in-app-feed:b-user", "phx_join", {"client_0": {}}]);
    socket
        .send(Message::text(join.to_string()))
        .await
        .expect("join");
    next_push(&mut socket).await; // the counts pushed after every join
    let mut probe = Probe { socket, sent: 0 };

    let mut idle = Phase::default();
    for _ in 0..args.idle_probes {
        idle.add(probe.once(&api).await);
        tokio::time::sleep(PROBE_GAP).await;
    }
    let idle = idle.report();
    let mut report = json!({"engine": args.engine.name(),
                             "analyze_secs": analyze_every_from_args().map(|d| d.as_secs_f64()),
                             "items": args.items, "page_size": page_size,
                             "solo_page_size": solo_page_size, "idle": idle});
    for shape in &args.shapes {
        let drain = drain_phase(&api, &mut probe, shape, args.items).await;
        let mut ratios = json!({});
        for field in ["ack_ms_p50", "ack_ms_p99", "pushed_ms_p50", "pushed_ms_p99"] {
            ratios[field] = ratio(&drain, &idle, field);
        }
        report[format!("while_{shape}_drains")] = drain;
        report[format!("while_{shape}_drains_vs_idle")] = ratios;
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    let out = args.out.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results/fairness.json")
    });
    if let Some(dir) = out.parent()
        && std::fs::create_dir_all(dir).is_ok()
    {
        let _ = std::fs::write(&out, report.to_string());
    }
    // The server lets go of its database before the database is dropped.
    drop(probe);
    drop(analyzer);
    handle.stop(true).await;
    let _ = server.await;
    drop(database);
}
