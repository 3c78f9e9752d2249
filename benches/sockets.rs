//! Socket memory benchmark: server RSS per idle joined socket, Tidings beside a bare
//! actix-ws server, in the same run.
//!
//! Each server runs in its own child process (this binary re-run with `--serve tidings`
//! or `--serve bare`), so the clients' memory is not counted. The parent reads the
//! child's `VmRSS` from `/proc/<pid>/status`, connects `--sockets` WebSocket clients,
//! each sending one Phoenix join and waiting for the answer (Tidings: every socket joins
//! its own user's feed, with the payload the official browser client sends: a ref of
//! its own and the default feed options, and gets the reply and the counts push; bare: an echo server
//! returns the frame), lets the server settle, and reads `VmRSS` again. Per socket =
//! (after − before) / sockets. Each round starts fresh processes; reports the medians
//! and writes `bench-results/sockets.json`.
//!
//! Needs one file descriptor per socket on each side: the bench checks `ulimit -n`
//! (raise it with `ulimit -n 30000` for 10,000 sockets).
//!
//! Run: `cargo bench --bench sockets` (tiny default: 1,000 sockets, 3 rounds, seconds), or
//! `cargo bench --bench sockets -- --sockets 10000 --rounds 3`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};

#[path = "support/bare_ws.rs"]
mod bare_ws;
use bare_ws::{serve_bare, wait_for_stdin_close};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const PUBLIC: &str = "pk_bench";
/// Sockets connecting at once.
const CONNECT_CONCURRENCY: usize = 64;
/// Wait after the last join before reading RSS (late frees, lazily grown buffers).
const SETTLE: Duration = Duration::from_secs(2);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Args {
    sockets: usize,
    rounds: usize,
    serve: Option<String>,
}

fn parse_args() -> Args {
    let mut args = Args {
        sockets: 1000,
        rounds: 3,
        serve: None,
    };
    let argv: Vec<String> = std::env::args().collect();
    for pair in argv.windows(2) {
        match pair[0].as_str() {
            "--sockets" => args.sockets = pair[1].parse().unwrap_or(args.sockets),
            "--rounds" => args.rounds = pair[1].parse().unwrap_or(args.rounds),
            "--serve" => args.serve = Some(pair[1].clone()),
            _ => {}
        }
    }
    args
}

// ---- the servers (child processes) ----------------------------------------------------

/// Serves Tidings until stdin closes; prints `PORT <n>` once listening.
async fn serve_tidings(sockets: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = tidings::Settings::for_database(dir.path().join("bench.db"));
    settings.workflows = dir.path().join("no-workflows");
    settings.secret_key = Some("sk_bench".into());
    settings.public_key = Some(PUBLIC.into());
    settings.enhanced_security = false;
    settings.ws_max_per_address = sockets + CONNECT_CONCURRENCY + 16;
    settings.ws_idle_timeout_secs = 3600;
    settings.log_filter = Some("warn".into());
    let app = tidings::Application::build(settings)
        .await
        .expect("server starts");
    println!("PORT {}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    wait_for_stdin_close().await;
    handle.stop(false).await;
}

// ---- the driver (parent) --------------------------------------------------------------

/// A server child; dropping it closes its stdin and waits for it.
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(kind: &str, sockets: usize) -> Server {
        let exe = std::env::current_exe().expect("current exe");
        // `BENCH_SERVER_WRAPPER=heaptrack` profiles the servers' allocations (its RSS
        // figures then include the profiler's).
        let mut command = match std::env::var("BENCH_SERVER_WRAPPER") {
            Ok(wrapper) if !wrapper.is_empty() => {
                let mut c = Command::new(wrapper);
                c.arg(exe);
                c
            }
            _ => Command::new(exe),
        };
        let mut child = command
            .args(["--serve", kind, "--sockets", &sockets.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("server child starts");
        let stdout = child.stdout.take().expect("child stdout");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("child printed its port")
                .expect("child stdout");
            if let Some(port) = line.strip_prefix("PORT ") {
                break port.trim().parse().expect("a port number");
            }
        };
        // Keep draining, so a later line (a log) never meets a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Server { child, port }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Connects one socket and completes its join; returns it open.
async fn connect(port: u16, i: usize, tidings: bool) -> Socket {
    let url = format!("ws://127.0.0.1:{port}/ws/v1/websocket?api_key={PUBLIC}&&vsn=2.0.0");
    let (mut socket, _) = tokio_tungstenite::connect_async(&url)
        .await
        .expect("connect");
    let topic = format!("feeds:in-app-feed:u{i}");
    // The official browser client's join: its feed options under a ref of its own
    // (`client_` + a 21-character nanoid, new for every feed client).
    let reference = format!("client_{i:0>21}");
    let join = json!(["1", "1", topic, "phx_join",
                      { reference: {"archived": "exclude", "mode": "compact"} }]);
    socket
        .send(Message::text(join.to_string()))
        .await
        .expect("join");
    // Tidings answers with phx_reply then the counts (`new-message`); bare echoes once.
    let wanted = if tidings { "new-message" } else { "phx_join" };
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("an answer within 60 s")
            .expect("socket open")
            .expect("socket ok");
        if let Message::Text(text) = msg {
            let frame: Value = serde_json::from_str(text.as_str()).expect("JSON frame");
            if frame[3] == wanted {
                return socket;
            }
        }
    }
}

/// One fresh server: KiB of RSS per joined idle socket.
async fn measure(kind: &str, n: usize) -> (f64, u64, u64) {
    let server = Server::start(kind, n);
    let tidings = kind == "tidings";
    // Warm up: a burst of sockets in and out, as many at once as the measured ones, so
    // what a server sizes once (Tidings' pool of reader connections and their caches,
    // the runtime's queues) is in `before`, not counted per socket.
    let port = server.port;
    let warm: Vec<Socket> = futures_util::stream::iter(n..n + CONNECT_CONCURRENCY)
        .map(|i| connect(port, i, tidings))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    drop(warm);
    tokio::time::sleep(SETTLE).await;
    let before = server.rss_kib();
    let sockets: Vec<Socket> = futures_util::stream::iter(0..n)
        .map(|i| connect(port, i, tidings))
        .buffer_unordered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    tokio::time::sleep(SETTLE).await;
    let after = server.rss_kib();
    drop(sockets);
    drop(server);
    let per_socket = after.saturating_sub(before) as f64 * 1024.0 / n as f64 / 1000.0;
    (per_socket, before, after)
}

fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let args = parse_args();
    match args.serve.as_deref() {
        Some("tidings") => {
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            return runtime.block_on(serve_tidings(args.sockets));
        }
        Some("bare") => return actix_web::rt::System::new().block_on(serve_bare()),
        Some(other) => panic!("unknown server `{other}`"),
        None => {}
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    if let Some(limit) = open_files_limit()
        && limit < args.sockets as u64 + 256
    {
        eprintln!(
            "`ulimit -n` is {limit}: too low for {} sockets; raise it (e.g. `ulimit -n 30000`)",
            args.sockets
        );
        std::process::exit(2);
    }
    let (mut tidings, mut bare) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    for _ in 0..args.rounds {
        let t = runtime.block_on(measure("tidings", args.sockets));
        let b = runtime.block_on(measure("bare", args.sockets));
        rounds.push(
            json!({"tidings_kb_per_socket": t.0, "tidings_rss_kib_before_after": [t.1, t.2],
                           "bare_kb_per_socket": b.0, "bare_rss_kib_before_after": [b.1, b.2]}),
        );
        tidings.push(t.0);
        bare.push(b.0);
    }
    let (t, b) = (median(&mut tidings), median(&mut bare));
    let report = json!({
        "sockets": args.sockets,
        "rounds": rounds,
        "tidings_kb_per_socket_median": (t * 10.0).round() / 10.0,
        "bare_actix_ws_kb_per_socket_median": (b * 10.0).round() / 10.0,
        "ratio": if b > 0.0 { json!((t / b * 100.0).round() / 100.0) } else { Value::Null },
    });
    println!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench-results");
    if std::fs::create_dir_all(&out).is_ok() {
        let _ = std::fs::write(out.join("sockets.json"), report.to_string());
    }
}
