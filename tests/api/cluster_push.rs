//! Issue 20: several nodes on one PostgreSQL and one NATS. A socket on node B hears,
//! live and with the right counts, of items a trigger committed on node A: a user feed,
//! an object feed and a tenant-scoped feed. PostgreSQL runs only (one SQLite file is
//! one node); NATS at `TIDINGS_TEST_NATS_URL` (default `nats://127.0.0.1:4222`, which
//! `scripts/test` starts), each test on subjects of its own.
//!
//! Only immediate in-app deliveries: the node that accepts a trigger runs them itself
//! (timers need the leases of issue 20 item 1 before two nodes may share them).

use serde_json::{Value, json};

use crate::helpers::{PUBLIC_KEY, SECRET_KEY, user_token};
use crate::process::{Launch, Proc};
use crate::ws::WsClient;

/// The NATS server the suite's nodes share.
pub fn nats_url() -> String {
    std::env::var("TIDINGS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A subject prefix no other test (or run) uses.
pub fn subject_prefix() -> String {
    format!("t{}_{:x}", std::process::id(), rand_u64())
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_nanos()));
    h.finish()
}

fn counts(total: i64, unread: i64, unseen: i64) -> Value {
    json!({"total_count": total, "unread_count": unread, "unseen_count": unseen})
}

/// A node of the cluster: the binary on the test's schema, NATS at `nats`, `prefix`.
pub async fn node(dir: &std::path::Path, id: &str, nats: &str, prefix: &str) -> Proc {
    let node = Launch::new(dir, &["serve"])
        .test_keys()
        .env("TIDINGS_NODE_ID", id)
        .env("TIDINGS_NATS_URL", nats)
        .env("TIDINGS_NATS_SUBJECT_PREFIX", prefix)
        .serve()
        .await;
    wait_bus(&node, "connected").await;
    node
}

/// Waits until `/health` reports NATS `state` (the node subscribed once connected).
pub async fn wait_bus(node: &Proc, state: &str) {
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let health: Value = client
            .get(node.url("/health"))
            .send()
            .await
            .expect("health")
            .json()
            .await
            .expect("health JSON");
        if health["nats"] == state {
            assert_eq!(health["bus"], "nats", "{health}");
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "NATS never {state} on {}: {health}",
            node.base
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A socket on `node`: a user's (with their token) or the server's (secret key).
pub async fn socket(node: &Proc, user: Option<&str>) -> WsClient {
    let query = match user {
        Some(user) => format!(
            "user_token={}&api_key={PUBLIC_KEY}&vsn=2.0.0",
            user_token(user, json!(null))
        ),
        None => format!("api_key={SECRET_KEY}&vsn=2.0.0"),
    };
    let url = format!("ws://127.0.0.1:{}/ws/v1/websocket?{query}", node.port);
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("socket upgrade accepted");
    WsClient::new(socket)
}

/// Triggers `new-comment` on `node` with `body`; the run id.
pub async fn trigger(node: &Proc, body: Value) -> String {
    let res = reqwest::Client::new()
        .post(node.url("/v1/workflows/new-comment/trigger"))
        .bearer_auth(SECRET_KEY)
        .json(&body)
        .send()
        .await
        .expect("trigger");
    let status = res.status();
    let body: Value = res.json().await.expect("trigger JSON");
    assert_eq!(status, 200, "{body}");
    body["workflow_run_id"].as_str().expect("run id").to_owned()
}

async fn metric(node: &Proc, series: &str) -> Option<f64> {
    let text = reqwest::get(node.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn a_socket_on_node_b_hears_of_items_triggered_on_node_a_with_counts() {
    if !crate::engine::is_postgres() {
        return; // One SQLite file is one node.
    }
    let dir = tempfile::tempdir().expect("dir");
    let (nats, prefix) = (nats_url(), subject_prefix());
    let a = node(dir.path(), "node-a", &nats, &prefix).await;
    let b = node(dir.path(), "node-b", &nats, &prefix).await;

    // A user feed, an object feed and a tenant-scoped feed, joined on B.
    let mut user = socket(&b, Some("u1")).await;
    let (_, joined) = user
        .join_ok("feeds:in-app-feed:u1", json!({"client_feed": {}}))
        .await;
    assert_eq!(joined["data"]["client_feed"]["metadata"], counts(0, 0, 0));
    let mut server = socket(&b, None).await;
    server
        .join_ok("object_feeds:in-app-feed:projects:p1", json!({}))
        .await;
    let mut tenant = socket(&b, Some("u2")).await;
    tenant
        .join_ok(
            "feeds:in-app-feed:u2",
            json!({"client_all": {}, "client_acme": {"tenant": "acme", "has_tenant": true}}),
        )
        .await;
    // And u1 on A too: a node's own sockets hear once, from its own hub.
    let mut local = socket(&a, Some("u1")).await;
    local
        .join_ok("feeds:in-app-feed:u1", json!({"client_feed": {}}))
        .await;

    for n in 1..=2 {
        trigger(&a, json!({"recipients": ["u1"], "data": {"n": n}})).await;
        let push = user.next_event("new-message").await;
        assert_eq!(push[2], "feeds:in-app-feed:u1");
        assert_eq!(push[4]["data"]["client_feed"]["metadata"], counts(n, n, n));
        assert_eq!(push[4]["attn"], json!(["client_feed"]));
        let push = local.next_event("new-message").await;
        assert_eq!(push[4]["data"]["client_feed"]["metadata"], counts(n, n, n));
    }

    trigger(
        &a,
        json!({"recipients": [{"id": "p1", "collection": "projects"}], "data": {}}),
    )
    .await;
    let push = server.next_event("new-message").await;
    assert_eq!(push[2], "object_feeds:in-app-feed:projects:p1");
    assert_eq!(push[4]["metadata"], counts(1, 1, 1));

    trigger(
        &a,
        json!({"recipients": ["u2"], "tenant": "acme", "data": {}}),
    )
    .await;
    let push = tenant.next_event("new-message").await;
    let mut attn: Vec<String> = serde_json::from_value(push[4]["attn"].clone()).expect("attn");
    attn.sort();
    assert_eq!(attn, ["client_acme", "client_all"]);
    assert_eq!(push[4]["data"]["client_acme"]["metadata"], counts(1, 1, 1));
    trigger(
        &a,
        json!({"recipients": ["u2"], "tenant": "beta", "data": {}}),
    )
    .await;
    let push = tenant.next_event("new-message").await;
    assert_eq!(
        push[4]["attn"],
        json!(["client_all"]),
        "another tenant's item: not for the acme ref"
    );
    assert_eq!(push[4]["data"]["client_all"]["metadata"], counts(2, 2, 2));
    assert_eq!(push[4]["data"]["client_acme"]["metadata"], counts(1, 1, 1));

    // Each node names itself, and only B received announcements (A's own are local).
    assert_eq!(
        metric(&a, "tidings_node_info{node_id=\"node-a\"}").await,
        Some(1.0)
    );
    assert_eq!(metric(&a, "tidings_bus_received_total").await, Some(0.0));
    assert!(metric(&b, "tidings_bus_received_total").await >= Some(5.0));
    assert!(metric(&a, "tidings_bus_sent_total").await >= Some(5.0));
}

/// A NATS server of the test's own (the shared one must not be restarted under other
/// tests), on `port`; killed when dropped.
struct PrivateNats {
    child: tokio::process::Child,
    port: u16,
}

impl PrivateNats {
    async fn start(port: u16) -> PrivateNats {
        let child = tokio::process::Command::new("/usr/sbin/nats-server")
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start /usr/sbin/nats-server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server never listened"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        PrivateNats { child, port }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn kill(mut self) -> u16 {
        self.child.kill().await.expect("kill nats-server");
        self.port
    }
}

/// The next push on `ws` whose total count is at least `total`; earlier ones skipped.
async fn push_with_total(ws: &mut WsClient, total: i64) -> Value {
    loop {
        let push = ws.next_event("new-message").await;
        let seen = push[4]["metadata"]["total_count"].as_i64().expect("count");
        if seen >= total {
            return push;
        }
    }
}

#[tokio::test]
async fn nats_restarted_during_a_trigger_stream_loses_no_item_for_a_socket_that_rejoins() {
    if !crate::engine::is_postgres() {
        return; // One SQLite file is one node.
    }
    let dir = tempfile::tempdir().expect("dir");
    let nats = PrivateNats::start(crate::crash::free_port()).await;
    let prefix = subject_prefix();
    let a = node(dir.path(), "node-a", &nats.url(), &prefix).await;
    let b = node(dir.path(), "node-b", &nats.url(), &prefix).await;
    let mut ws = socket(&b, Some("u1")).await;
    ws.join_ok("feeds:in-app-feed:u1", json!({})).await;

    // A stream of triggers on A, one every 100 ms, until told to stop.
    let triggered = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let (base, triggered, stop) = (a.base.clone(), triggered.clone(), stop.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) && n < 40 {
                n += 1;
                let res = client
                    .post(format!("{base}/v1/workflows/new-comment/trigger"))
                    .bearer_auth(SECRET_KEY)
                    .json(&json!({"recipients": ["u1"], "data": {"n": n}}))
                    .send()
                    .await
                    .expect("trigger");
                assert_eq!(res.status(), 200);
                triggered.store(n, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            n
        })
    };
    let now = |t: &std::sync::atomic::AtomicI64| t.load(std::sync::atomic::Ordering::SeqCst);
    let wait_for = |t: std::sync::Arc<std::sync::atomic::AtomicI64>, at_least: i64| async move {
        while t.load(std::sync::atomic::Ordering::SeqCst) < at_least {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };

    // Pushes flow, then NATS dies mid-stream.
    push_with_total(&mut ws, 3).await;
    let port = nats.kill().await;
    wait_bus(&b, "disconnected").await;
    wait_for(triggered.clone(), now(&triggered) + 2).await;
    // Back on the same port: both nodes reconnect by themselves.
    let nats = PrivateNats::start(port).await;
    wait_bus(&a, "connected").await;
    wait_bus(&b, "connected").await;
    wait_for(triggered.clone(), now(&triggered) + 2).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let total = stream.await.expect("stream");
    assert!(total < 40, "the stream ran out before NATS came back");

    // The socket that stayed hears the later pushes, with counts of every item.
    let push = push_with_total(&mut ws, total).await;
    assert_eq!(push[4]["metadata"]["total_count"], json!(total));

    // A socket that rejoins on B: its join's counts and its refetch have every item.
    let mut rejoined = socket(&b, Some("u1")).await;
    let (_, counts) = rejoined.join_ok("feeds:in-app-feed:u1", json!({})).await;
    assert_eq!(counts["metadata"]["total_count"], json!(total));
    let feed: Value = reqwest::Client::new()
        .get(b.url("/v1/users/u1/feeds/in-app-feed?page_size=50"))
        .bearer_auth(PUBLIC_KEY)
        .header("x-knock-user-token", user_token("u1", json!(null)))
        .send()
        .await
        .expect("feed")
        .json()
        .await
        .expect("feed JSON");
    let mut ns: Vec<i64> = feed["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["data"]["n"].as_i64().expect("n"))
        .collect();
    ns.sort_unstable();
    assert_eq!(ns, (1..=total).collect::<Vec<_>>(), "{feed}");
    drop(nats);
}

#[tokio::test]
async fn a_node_without_nats_reports_a_local_bus_and_on_postgres_says_it_runs_alone() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Launch::new(dir.path(), &["serve"])
        .test_keys()
        .env("TIDINGS_NODE_ID", "solo-1")
        .serve()
        .await;
    let health: Value = reqwest::get(node.url("/health"))
        .await
        .expect("health")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        health,
        json!({"status": "ok", "node_id": "solo-1", "bus": "local"})
    );
    assert_eq!(
        metric(&node, "tidings_node_info{node_id=\"solo-1\"}").await,
        Some(1.0)
    );
    let (_, stdout, stderr) = node.stop().await;
    assert!(stdout.contains("node id:    solo-1"), "{stdout}");
    assert_eq!(
        stderr.contains("this node runs alone"),
        crate::engine::is_postgres(),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_node_ids_and_nats_urls_are_refused_at_start_with_a_reason() {
    let dir = tempfile::tempdir().expect("dir");
    for (args, says) in [
        (vec!["serve", "--nats-url", "127.0.0.1:4222"], "nats://"),
        (vec!["serve", "--node-id", "web 1"], "node id"),
        (
            vec!["serve", "--nats-subject-prefix", "a.*"],
            "subject prefix",
        ),
    ] {
        let (ok, _, stderr) = Launch::new(dir.path(), &args).output().await;
        assert!(!ok, "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_node_whose_nats_is_down_starts_serves_and_says_so() {
    // Nothing listens on this port: the node starts anyway, degraded.
    let port = crate::crash::free_port();
    let dir = tempfile::tempdir().expect("dir");
    let node = Launch::new(dir.path(), &["serve"])
        .test_keys()
        .env("TIDINGS_NATS_URL", &format!("nats://127.0.0.1:{port}"))
        .env("TIDINGS_NATS_SUBJECT_PREFIX", &subject_prefix())
        .serve()
        .await;
    let res = reqwest::get(node.url("/health")).await.expect("health");
    assert_eq!(res.status(), 200);
    let health: Value = res.json().await.expect("JSON");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["nats"], "disconnected", "{health}");
    assert_eq!(metric(&node, "tidings_bus_connected").await, Some(0.0));
    // Its own sockets still get pushes.
    let mut ws = socket(&node, Some("u1")).await;
    ws.join_ok("feeds:in-app-feed:u1", json!({})).await;
    trigger(&node, json!({"recipients": ["u1"], "data": {}})).await;
    let push = ws.next_event("new-message").await;
    assert_eq!(push[4]["metadata"], counts(1, 1, 1));
}

/// The official browser client (`tests/browser/run.mjs`, `@knocklabs/client` in headless
/// Chromium) on node C receives live the items triggered on node A.
#[tokio::test]
async fn the_official_browser_client_on_node_c_receives_items_triggered_on_node_a() {
    if !crate::engine::is_postgres() {
        return; // One SQLite file is one node.
    }
    let (dir_js, chromium) =
        crate::browser::browser_tooling(&["@knocklabs/client", "playwright-core", "esbuild"]);
    let dir = tempfile::tempdir().expect("dir");
    let (nats, prefix) = (nats_url(), subject_prefix());
    let a = node(dir.path(), "node-a", &nats, &prefix).await;
    let _b = node(dir.path(), "node-b", &nats, &prefix).await;
    let c = node(dir.path(), "node-c", &nats, &prefix).await;
    let run = tokio::process::Command::new("node")
        .arg("run.mjs")
        .current_dir(&dir_js)
        .env("TIDINGS_URL", &c.base)
        .env("TIDINGS_TRIGGER_URL", &a.base)
        .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
        .env("TIDINGS_SECRET_KEY", SECRET_KEY)
        .env("TIDINGS_USER_ID", "e2e-user")
        .env("TIDINGS_USER_TOKEN", user_token("e2e-user", json!(null)))
        .env("TIDINGS_CHANNEL_ID", "in-app-feed")
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("the browser run finishes within 2 minutes")
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("browser e2e passed"),
        "run.mjs failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    assert!(metric(&c, "tidings_bus_received_total").await >= Some(1.0));
}
