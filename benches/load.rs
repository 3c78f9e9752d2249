//! Load benchmark: starts the real server in-process on a temp database and measures
//! trigger acknowledgement throughput and latency, trigger→stored-item throughput, a
//! 1,000-recipient fan-out, and feed-read latency. Prints a table and writes
//! `bench-results/load.json`. Each scenario runs several rounds; medians are reported
//! because these 2-core machines are noisy.
//!
//! Run: `cargo bench --bench load` (optionally `-- --rounds 5 --triggers 2000`).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::{Application, Settings};

const SECRET: &str = "sk_bench";

struct Args {
    rounds: usize,
    triggers: usize,
    concurrency: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 5,
        triggers: 2000,
        concurrency: 32,
    };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let value = argv.get(i + 1).and_then(|v| v.parse().ok());
        match (argv[i].as_str(), value) {
            ("--rounds", Some(v)) => args.rounds = v,
            ("--triggers", Some(v)) => args.triggers = v,
            ("--concurrency", Some(v)) => args.concurrency = v,
            _ => {}
        }
        i += 1;
    }
    args
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        0.0
    } else {
        values[values.len() / 2]
    }
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    if values.is_empty() {
        return 0.0;
    }
    let index = ((values.len() as f64 - 1.0) * p).round() as usize;
    values[index]
}

/// A cheap, cloneable client for the benchmark server.
#[derive(Clone)]
struct Api {
    base: String,
    client: reqwest::Client,
}

/// The running server; owns its temp dir.
struct Server {
    api: Api,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings::for_database(dir.path().join("bench.db"));
        settings.workflows = dir.path().join("no-workflows");
        settings.secret_key = Some(SECRET.into());
        let app = Application::build(settings).await.expect("server starts");
        let base = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .build()
            .expect("client");
        let server = Server {
            api: Api { base, client },
            _dir: dir,
        };
        let workflow = json!({"workflow": {"name": "Bench", "steps": [{
            "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
            "template": {"markdown_body": "**{{ actor.name }}** commented on {{ data.page }}", "action_url": "{{ data.url }}"}
        }]}});
        let res = server
            .api
            .request(reqwest::Method::PUT, "/v1/workflows/bench")
            .json(&workflow)
            .send()
            .await
            .expect("upsert");
        assert!(
            res.status().is_success(),
            "workflow upsert failed: {}",
            res.text().await.unwrap_or_default()
        );
        server
    }
}

impl Api {
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(SECRET)
    }

    async fn trigger(&self, body: &Value) -> Duration {
        let started = Instant::now();
        let res = self
            .request(reqwest::Method::POST, "/v1/workflows/bench/trigger")
            .json(body)
            .send()
            .await
            .expect("trigger");
        assert_eq!(res.status(), 200, "trigger failed");
        let _ = res.bytes().await;
        started.elapsed()
    }

    async fn feed_total(&self, user: &str, query: &str) -> u64 {
        let body: Value = self
            .request(
                reqwest::Method::GET,
                &format!("/v1/users/{user}/feeds/in-app-feed?{query}"),
            )
            .send()
            .await
            .expect("feed")
            .json()
            .await
            .expect("feed json");
        body["meta"]["total_count"].as_u64().unwrap_or(0)
    }

    /// Waits until `users` together hold `expected` items; returns when that happened.
    async fn wait_for_items(&self, users: &[String], expected: u64) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let mut total = 0;
            for user in users {
                total += self.feed_total(user, "").await;
            }
            if total >= expected || Instant::now() > deadline {
                assert!(
                    total >= expected,
                    "only {total} of {expected} items appeared"
                );
                return Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

#[derive(Default)]
struct Round {
    acks_per_sec: f64,
    ack_p50_ms: f64,
    ack_p99_ms: f64,
    items_per_sec: f64,
}

async fn trigger_round(server: &Api, round: usize, args: &Args) -> Round {
    let users: Vec<String> = (0..20).map(|u| format!("r{round}-u{u}")).collect();
    let started = Instant::now();
    let per_task = args.triggers / args.concurrency;
    let mut tasks = Vec::new();
    for task in 0..args.concurrency {
        let server = server.clone();
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_task);
            for i in 0..per_task {
                let user = &users[(task * per_task + i) % users.len()];
                let body = json!({"recipients": [user], "actor": {"id": "bench-actor", "name": "Ada"},
                                  "data": {"page": format!("page-{i}"), "url": "https://example.com"}});
                latencies.push(server.trigger(&body).await.as_secs_f64() * 1000.0);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    let acked = started.elapsed();
    let total = (per_task * args.concurrency) as u64;
    let done = server.wait_for_items(&users, total).await;
    Round {
        acks_per_sec: total as f64 / acked.as_secs_f64(),
        ack_p50_ms: percentile(&mut latencies, 0.5),
        ack_p99_ms: percentile(&mut latencies, 0.99),
        items_per_sec: total as f64 / done.duration_since(started).as_secs_f64(),
    }
}

async fn fanout_round(server: &Api, round: usize) -> f64 {
    let recipients: Vec<String> = (0..1000).map(|u| format!("fan{round}-u{u}")).collect();
    let started = Instant::now();
    server
        .trigger(
            &json!({"recipients": recipients, "data": {"page": "p", "url": "https://example.com"}}),
        )
        .await;
    // The last recipient's item is written in the same transaction as all the others.
    server.wait_for_items(&recipients[999..], 1).await;
    started.elapsed().as_secs_f64() * 1000.0
}

async fn feed_read(server: &Api, query: &str, samples: usize) -> (f64, f64) {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let res = server
            .request(
                reqwest::Method::GET,
                &format!("/v1/users/reader/feeds/in-app-feed?{query}"),
            )
            .send()
            .await
            .expect("feed");
        assert_eq!(res.status(), 200);
        let _ = res.bytes().await;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    (
        percentile(&mut latencies, 0.5),
        percentile(&mut latencies, 0.99),
    )
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let running = Server::start().await;
    let server = &running.api;

    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        rounds.push(trigger_round(server, round, &args).await);
    }
    let mut fanouts: Vec<f64> = Vec::new();
    for round in 0..args.rounds {
        fanouts.push(fanout_round(server, round).await);
    }

    // A feed of 2,000 items for the read benchmark.
    for chunk in 0..20 {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let body = json!({"recipients": ["reader"], "tenant": if i % 2 == 0 { json!("acme") } else { json!(null) },
                                  "data": {"page": format!("p{chunk}-{i}"), "url": "https://example.com", "kind": i % 5}});
                let server = server.clone();
                tokio::spawn(async move { server.trigger(&body).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("seed trigger");
        }
    }
    server.wait_for_items(&["reader".to_owned()], 2000).await;
    let (read_p50, read_p99) = feed_read(server, "page_size=50", 300).await;
    let (tenant_p50, tenant_p99) = feed_read(server, "page_size=50&tenant=acme", 300).await;
    let (filtered_p50, filtered_p99) = feed_read(
        server,
        "page_size=50&trigger_data=%7B%22kind%22%3A3%7D",
        300,
    )
    .await;

    let med = |f: fn(&Round) -> f64| median(&mut rounds.iter().map(f).collect::<Vec<_>>());
    let report = json!({
        "rounds": args.rounds,
        "triggers_per_round": args.triggers / args.concurrency * args.concurrency,
        "concurrency": args.concurrency,
        "trigger_acks_per_sec_median": med(|r| r.acks_per_sec),
        "trigger_ack_p50_ms_median": med(|r| r.ack_p50_ms),
        "trigger_ack_p99_ms_median": med(|r| r.ack_p99_ms),
        "trigger_to_item_per_sec_median": med(|r| r.items_per_sec),
        "fanout_1000_recipients_ms_median": median(&mut fanouts),
        "feed_read_2000_items_p50_ms": read_p50,
        "feed_read_2000_items_p99_ms": read_p99,
        "feed_read_tenant_filter_p50_ms": tenant_p50,
        "feed_read_tenant_filter_p99_ms": tenant_p99,
        "feed_read_trigger_data_filter_p50_ms": filtered_p50,
        "feed_read_trigger_data_filter_p99_ms": filtered_p99,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    std::fs::create_dir_all("bench-results").expect("bench-results dir");
    std::fs::write(
        "bench-results/load.json",
        serde_json::to_vec_pretty(&report).unwrap_or_default(),
    )
    .expect("write json");
    println!("wrote bench-results/load.json");
}
