//! Fan-out benchmark: items committed per second for ONE trigger to an object with N − 1
//! subscribers (N items with the object's own), beside the same N items made by N/1,000
//! triggers of 1,000 listed users.
//! Starts the real server in-process on a temp database; prints JSON and writes
//! `bench-results/fanout.json`. Medians over rounds (these 2-core machines are noisy).
//!
//! Run: `cargo bench --bench fanout` (tiny default: 2,000 subscribers, 3 rounds, ~2 s), or e.g.
//! `cargo bench --bench fanout -- --subscribers 10000 --rounds 3`.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::{Application, Settings};

#[path = "support/mod.rs"]
mod support;

use support::{Api, SECRET};

/// How often, and how long, a round polls for its last recipients' items.
const POLL: Duration = Duration::from_millis(5);
const WAIT: Duration = Duration::from_secs(600);

struct Args {
    rounds: usize,
    subscribers: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        rounds: 3,
        subscribers: 2000,
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv.windows(2) {
        let value = pair[1].parse().ok();
        match (pair[0].as_str(), value) {
            ("--rounds", Some(v)) => args.rounds = v,
            ("--subscribers", Some(v)) => args.subscribers = v,
            _ => {}
        }
    }
    args.subscribers = args.subscribers.max(1000) / 1000 * 1000;
    args
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn trigger_body(recipients: Value) -> Value {
    json!({"recipients": recipients, "actor": {"id": "bench-actor", "name": "Ada"},
           "data": {"page": "p", "url": "https://example.com"}})
}

/// One trigger to an object with `n - 1` subscribers, so `n` items with the object's own
/// (as the listed round makes; `n` subscribers would be one past the per-trigger audience
/// limit at `--subscribers 1000000`, and the bench would wait for the cut one forever):
/// items per second.
async fn object_round(api: &Api, round: usize, n: usize) -> f64 {
    let subscribers = n - 1;
    let object = format!("o{round}");
    api.call(
        reqwest::Method::PUT,
        &format!("/v1/objects/projects/{object}"),
        &json!({"name": object}),
    )
    .await;
    for start in (0..subscribers).step_by(10_000) {
        let groups: Vec<Value> = (start..(start + 10_000).min(subscribers))
            .collect::<Vec<_>>()
            .chunks(100)
            .map(|chunk| {
                let recipients: Vec<Value> = chunk
                    .iter()
                    .map(|i| json!({"id": format!("r{round}-s{i}")}))
                    .collect();
                json!({"id": object, "recipients": recipients})
            })
            .collect();
        api.call(
            reqwest::Method::POST,
            "/v1/objects/projects/bulk/subscriptions/add",
            &json!({"subscriptions": groups}),
        )
        .await;
    }
    let started = Instant::now();
    api.call(
        reqwest::Method::POST,
        "/v1/workflows/bench/trigger",
        &trigger_body(json!([{"id": object, "collection": "projects"}])),
    )
    .await;
    // Subscribers are expanded in subscription order: the last one is in the last page.
    let done = api
        .wait_for(&[format!("r{round}-s{}", subscribers - 1)], POLL, WAIT)
        .await;
    n as f64 / done.duration_since(started).as_secs_f64()
}

/// `n / 1000` concurrent triggers of 1,000 listed (identified) users: items per second.
async fn listed_round(api: &Api, round: usize, n: usize) -> f64 {
    let batches: Vec<Vec<String>> = (0..n / 1000)
        .map(|b| (0..1000).map(|i| format!("r{round}-l{b}-{i}")).collect())
        .collect();
    for users in &batches {
        let body: Vec<Value> = users.iter().map(|u| json!({"id": u})).collect();
        api.call(
            reqwest::Method::POST,
            "/v1/users/bulk/identify",
            &json!({"users": body}),
        )
        .await;
    }
    let bodies: Vec<Value> = batches
        .iter()
        .map(|users| trigger_body(json!(users)))
        .collect();
    let started = Instant::now();
    let triggers = bodies
        .iter()
        .map(|body| api.call(reqwest::Method::POST, "/v1/workflows/bench/trigger", body));
    futures_util::future::join_all(triggers).await;
    let lasts: Vec<String> = batches.iter().map(|b| b[999].clone()).collect();
    let done = api.wait_for(&lasts, POLL, WAIT).await;
    n as f64 / done.duration_since(started).as_secs_f64()
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_database(dir.path().join("bench.db"));
    settings.workflows = dir.path().join("no-workflows");
    settings.secret_key = Some(SECRET.into());
    let app = Application::build(settings).await.expect("server starts");
    let api = Api::new(app.port());
    tokio::spawn(app.run_until_stopped());
    api.call(
        reqwest::Method::PUT,
        "/v1/workflows/bench",
        &json!({"workflow": {"name": "Bench", "steps": [{
            "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
            "template": {"markdown_body": "**{{ actor.name }}** commented on {{ data.page }} ({{ recipient.subscription.object.name | default: \"direct\" }})",
                         "action_url": "{{ data.url }}"}}]}}),
    )
    .await;
    let (mut object, mut listed) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        object.push(object_round(&api, round, args.subscribers).await);
        listed.push(listed_round(&api, round, args.subscribers).await);
    }
    let report = json!({
        "rounds": args.rounds,
        "subscribers": args.subscribers,
        "one_trigger_to_object_items_per_sec_median": median(&mut object),
        "listed_triggers_of_1000_items_per_sec_median": median(&mut listed),
        "listed_triggers": args.subscribers / 1000,
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    std::fs::create_dir_all("bench-results").expect("bench-results dir");
    std::fs::write(
        "bench-results/fanout.json",
        serde_json::to_vec_pretty(&report).unwrap_or_default(),
    )
    .expect("write json");
    println!("wrote bench-results/fanout.json");
}
