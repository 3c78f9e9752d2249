//! Realtime benchmark: notify→push latency. Starts the real server in-process on a temp
//! database, joins `--sockets` WebSocket clients (Phoenix v2 frames, as the browser
//! client sends them) to one user's feed, then triggers `--pushes` workflows one after
//! another and measures, for each, the time from sending the trigger request until every
//! socket has received its `new-message` push. Reports median, p95 and p99 in ms, and
//! writes `bench-results/realtime.json`.
//!
//! Run: `cargo bench --bench realtime` (optionally `-- --pushes 300 --sockets 1`).

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tidings::{Application, Settings};
use tokio_tungstenite::tungstenite::Message;

const SECRET: &str = "sk_bench";
const PUBLIC: &str = "pk_bench";

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Args {
    pushes: usize,
    sockets: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        pushes: 300,
        sockets: 1,
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv.windows(2) {
        match (pair[0].as_str(), pair[1].parse().ok()) {
            ("--pushes", Some(v)) => args.pushes = v,
            ("--sockets", Some(v)) => args.sockets = v,
            _ => {}
        }
    }
    args
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn next_push(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("socket ok");
        if let Message::Text(text) = msg {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            if frame[3] == "new-message" {
                return frame;
            }
        }
    }
}

#[tokio::main]
async fn main() {
    let args = parse_args();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::for_database(dir.path().join("bench.db"));
    settings.workflows = dir.path().join("no-workflows");
    settings.secret_key = Some(SECRET.into());
    settings.public_key = Some(PUBLIC.into());
    settings.enhanced_security = false;
    let app = Application::build(settings).await.expect("server starts");
    let port = app.port();
    let base = format!("http://127.0.0.1:{port}");
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::new();
    let workflow = json!({"workflow": {"name": "Bench", "steps": [{
        "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
        "template": {"markdown_body": "**{{ actor.name }}** commented on {{ data.page }}"}
    }]}});
    let res = client
        .put(format!("{base}/v1/workflows/bench"))
        .bearer_auth(SECRET)
        .json(&workflow)
        .send()
        .await
        .expect("upsert");
    assert!(res.status().is_success(), "workflow upsert failed");

    let url = format!("ws://127.0.0.1:{port}/ws/v1/websocket?api_key={PUBLIC}&&vsn=2.0.0");
    let topic = "feeds:in-app-feed:bench-user";
    let mut sockets = Vec::new();
    for i in 0..args.sockets {
        let (mut socket, _) = tokio_tungstenite::connect_async(&url)
            .await
            .expect("connect");
        let join =
            json!(["1", "1", topic, "phx_join", {format!("client_{i}"): {"archived": "exclude"}}]);
        socket
            .send(Message::text(join.to_string()))
            .await
            .expect("join");
        next_push(&mut socket).await; // the counts pushed after every join
        sockets.push(socket);
    }

    let mut latencies = Vec::with_capacity(args.pushes);
    for n in 0..args.pushes {
        let body = json!({"recipients": ["bench-user"], "actor": {"id": "bench-actor", "name": "Bench"},
                          "data": {"page": format!("p{n}")}});
        let started = Instant::now();
        let res = client
            .post(format!("{base}/v1/workflows/bench/trigger"))
            .bearer_auth(SECRET)
            .json(&body)
            .send()
            .await
            .expect("trigger");
        assert_eq!(res.status(), 200, "trigger failed");
        for socket in &mut sockets {
            let frame = next_push(socket).await;
            assert_eq!(
                frame[4]["metadata"]["total_count"],
                n + 1,
                "one push per item"
            );
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let report = json!({
        "pushes": args.pushes,
        "sockets_on_feed": args.sockets,
        "notify_to_push_ms_p50": percentile(&latencies, 0.5),
        "notify_to_push_ms_p95": percentile(&latencies, 0.95),
        "notify_to_push_ms_p99": percentile(&latencies, 0.99),
        "notify_to_push_ms_max": percentile(&latencies, 1.0),
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(out.join("realtime.json"), report.to_string());
    }
}
