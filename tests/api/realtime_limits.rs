//! Socket robustness: topic cap, frame size, idle timeout, slow-client eviction,
//! shutdown. Waits are on observable events with deadlines, never bare sleeps.

use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use crate::helpers::{PUBLIC_KEY, spawn_app, spawn_app_with, user_token};
use crate::ws::{Item, WsClient};

#[tokio::test]
async fn topics_per_socket_are_capped() {
    let app = spawn_app_with(|s| s.ws_max_topics = 2).await;
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect("u1").await;
    ws.join_ok(&format!("feeds:{channel}:u1"), json!({})).await;
    ws.join_ok("feeds:in-app-feed:u1", json!({})).await;
    let (_, reply) = ws.join(&format!("feeds:{channel}:u1:x"), json!({})).await;
    assert_eq!(reply["status"], "error");
    assert!(
        reply["response"]["reason"]
            .as_str()
            .unwrap()
            .contains("too many topics")
    );
    // Re-joining a topic already held is not a new topic.
    ws.join_ok(&format!("feeds:{channel}:u1"), json!({"client_a": {}}))
        .await;
}

#[tokio::test]
async fn an_oversize_frame_closes_the_socket_with_1009() {
    let app = spawn_app().await;
    let mut ws = app.ws_connect("u1").await;
    let big = "x".repeat(200 * 1024);
    ws.send_text(&format!(
        r#"[null,"1","phoenix","heartbeat",{{"pad":"{big}"}}]"#
    ))
    .await;
    let (close, _) = ws.closed().await;
    assert_eq!(u16::from(close.expect("close frame").code), 1009);
}

#[tokio::test]
async fn a_silent_socket_is_closed_after_the_idle_timeout_and_heartbeats_keep_it_open() {
    let app = spawn_app_with(|s| s.ws_idle_timeout_secs = 2).await;
    let mut quiet = app.ws_connect("u1").await;
    let mut chatty = app.ws_connect("u1").await;
    let started = Instant::now();
    // The chatty socket heartbeats from the start, ten times per timeout, and stays up
    // for longer than the timeout while the quiet one is closed.
    let heartbeats = async {
        let until = Instant::now() + Duration::from_millis(3000);
        while Instant::now() < until {
            let r = chatty.push(None, "phoenix", "heartbeat", json!({})).await;
            assert_eq!(chatty.reply_to(&r).await["status"], "ok");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let ((close, _), ()) = tokio::join!(quiet.closed(), heartbeats);
    let close = close.expect("close frame");
    assert_eq!(u16::from(close.code), 1000);
    assert_eq!(close.reason.as_str(), "heartbeat timeout");
    assert!(started.elapsed() >= Duration::from_millis(1900));
}

/// A socket whose kernel receive buffer is tiny, so the server's writes back up quickly
/// once the test stops reading it.
async fn stalled_client(app: &crate::helpers::TestApp) -> WsClient {
    let token = user_token("u1", json!(null));
    let url = app.ws_url(&format!(
        "user_token={token}&api_key={PUBLIC_KEY}&vsn=2.0.0"
    ));
    let socket = tokio::net::TcpSocket::new_v4().expect("stalled client socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("stalled client socket");
    let stream = socket
        .connect(
            format!("127.0.0.1:{}", app.port)
                .parse()
                .expect("stalled client socket"),
        )
        .await
        .expect("stalled client socket");
    let (ws, _) =
        tokio_tungstenite::client_async(url, tokio_tungstenite::MaybeTlsStream::Plain(stream))
            .await
            .expect("stalled client socket");
    WsClient::new(ws)
}

#[tokio::test]
async fn a_stalled_client_is_evicted_while_another_on_the_same_feed_gets_every_push() {
    let app = spawn_app_with(|s| s.ws_queue = 4).await;
    let channel = app.channel_id().await;
    let topic = format!("feeds:{channel}:u1");
    // Many refs make each push large, so the stalled socket's buffers fill fast.
    let refs: Map<String, Value> = (0..60)
        .map(|i| (format!("client_{i:03}_padding_padding_padding"), json!({})))
        .collect();
    let mut stalled = stalled_client(&app).await;
    stalled.join_ok(&topic, Value::Object(refs.clone())).await;
    let mut healthy = app.ws_connect("u1").await;
    healthy.join_ok(&topic, Value::Object(refs)).await;

    let mut delivered = 0;
    while app.state.hub.stats().evictions == 0 {
        assert!(delivered < 2000, "the stalled client was never evicted");
        app.deliver(Item::for_user("u1")).await;
        delivered += 1;
        let frame = healthy.next_event("new-message").await;
        assert_eq!(
            frame[4]["data"]["client_000_padding_padding_padding"]["metadata"]["total_count"],
            delivered,
            "the healthy client gets every push, in order"
        );
    }
    // After the eviction the healthy client still gets pushes.
    app.deliver(Item::for_user("u1")).await;
    let frame = healthy.next_event("new-message").await;
    assert_eq!(
        frame[4]["data"]["client_000_padding_padding_padding"]["metadata"]["total_count"],
        delivered + 1
    );
    assert_eq!(app.state.hub.stats().evictions, 1);
    // The stalled client, reading at last, finds fewer pushes than were sent, then a close.
    let (close, pushes) = stalled.closed().await;
    assert!(pushes.len() < delivered as usize + 1);
    if let Some(close) = close {
        assert_eq!(u16::from(close.code), 1013);
    }
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001_and_refuses_new_ones() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect("u1").await;
    ws.join_ok(&format!("feeds:{channel}:u1"), json!({})).await;
    app.state.hub.shutdown();
    let (close, _) = ws.closed().await;
    let close = close.expect("close frame");
    assert_eq!(u16::from(close.code), 1001);
    let token = user_token("u1", json!(null));
    let refused = app
        .ws_connect_query(&format!("user_token={token}&api_key={PUBLIC_KEY}"))
        .await;
    assert!(matches!(refused, Err((503, _))));
}

#[tokio::test]
async fn sigterm_closes_sockets_with_1001_and_the_process_exits() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .env("TIDINGS_ADDR", "127.0.0.1:0")
        .envs(crate::engine::database_env(dir.path().join("t.db")))
        .env("TIDINGS_WORKFLOWS", dir.path().join("none"))
        .env("TIDINGS_ENHANCED_SECURITY", "false")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut port, mut public_key) = (None, None);
    while port.is_none() || public_key.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("server prints its address and keys")
            .unwrap()
            .expect("server still running");
        if let Some(rest) = line.strip_prefix("Tidings listening on http://") {
            port = rest.rsplit(':').next().map(str::to_owned);
        }
        if let Some(key) = line.trim().strip_prefix("public key: ") {
            public_key = Some(key.to_owned());
        }
    }
    let url = format!(
        "ws://127.0.0.1:{}/ws/v1/websocket?api_key={}&vsn=2.0.0",
        port.unwrap(),
        public_key.unwrap()
    );
    let (socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let mut ws = WsClient::new(socket);
    let r = ws.push(None, "phoenix", "heartbeat", json!({})).await;
    assert_eq!(ws.reply_to(&r).await["status"], "ok");
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let (close, _) = ws.closed().await;
    assert_eq!(u16::from(close.expect("close frame").code), 1001);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the process exits promptly")
        .unwrap();
    assert!(status.success(), "exit status {status:?}");
}
