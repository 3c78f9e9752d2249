//! Issue 8, sockets: an oversized frame is stopped at its header and sockets are capped
//! per user and per source address (item 1); joins queued by a client that has left are
//! dropped (item 9).

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::binary::Binary;
use crate::helpers::{PUBLIC_KEY, SECRET_KEY, spawn_app, spawn_app_with, user_token};

/// Opens a socket by hand (so the test can write raw frame bytes) and returns the stream
/// once the server answered 101.
pub(crate) async fn raw_socket(port: u16, user: &str) -> TcpStream {
    let token = user_token(user, Value::Null);
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let request = format!(
        "GET /ws/v1/websocket?user_token={token}&api_key={PUBLIC_KEY}&vsn=2.0.0 HTTP/1.1\r\n\
         Host: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("handshake");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream
            .read_exact(&mut byte)
            .await
            .expect("handshake answer");
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    stream
}

/// A masked client text frame header declaring `len` payload bytes (mask = 0).
pub(crate) fn frame_header(len: u64) -> Vec<u8> {
    let mut h = vec![0x81, 0x80 | 127];
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0]);
    h
}

/// A masked (all-zero mask) client text frame.
fn text_frame(text: &str) -> Vec<u8> {
    let mut f = frame_header(text.len() as u64);
    f.extend_from_slice(text.as_bytes());
    f
}

/// Reads server frames until a close frame; returns its code. `None` when none came
/// within 10 s (the server is still waiting for the rest of the frame).
async fn close_code(stream: &mut TcpStream) -> Option<u16> {
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            // Frames from the server are unmasked; parse as many as are complete.
            while buf.len() >= 2 {
                let (len, at) = match buf[1] & 0x7F {
                    126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
                    127 if buf.len() >= 10 => (
                        usize::try_from(u64::from_be_bytes(buf[2..10].try_into().ok()?)).ok()?,
                        10,
                    ),
                    126 | 127 => break,
                    n => (usize::from(n), 2),
                };
                if buf.len() < at + len {
                    break;
                }
                if buf[0] & 0x0F == 0x8 {
                    return Some(u16::from_be_bytes([buf[at], buf[at + 1]]));
                }
                buf.drain(..at + len);
            }
            let n = stream.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn a_frame_declaring_2_pow_62_bytes_is_closed_at_its_header_and_rss_stays_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Binary::start(&dir.path().join("t.db"), &[]).await;
    let before = server.rss_kib();
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut stream = raw_socket(server.port, "u1").await;
        stream
            .write_all(&frame_header(1 << 62))
            .await
            .expect("header");
        stream.write_all(&[b'x'; 1024]).await.expect("first bytes");
        assert_eq!(
            close_code(&mut stream).await,
            Some(1009),
            "closed at the header"
        );
        sockets.push(stream);
    }
    // The attacker keeps streaming: the server has stopped reading, so none of it is
    // buffered (writes fail once the server has closed the connection).
    let chunk = vec![b'x'; 64 * 1024];
    for stream in &mut sockets {
        for _ in 0..512 {
            if stream.write_all(&chunk).await.is_err() {
                break;
            }
        }
    }
    let after = server.rss_kib();
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}

#[tokio::test]
async fn frames_within_the_cap_still_work_after_the_guard() {
    let app = spawn_app().await;
    let mut stream = raw_socket(app.port, "u1").await;
    let pad = "x".repeat(60 * 1024);
    let heartbeat = format!(r#"[null,"1","phoenix","heartbeat",{{"pad":"{pad}"}}]"#);
    // Sent in small pieces, so frame headers straddle reads.
    let bytes = [
        text_frame(&heartbeat),
        text_frame(r#"[null,"2","phoenix","heartbeat",{}]"#),
    ]
    .concat();
    for piece in bytes.chunks(7_001) {
        stream.write_all(piece).await.expect("frame");
    }
    let mut seen = String::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains(r#""2","phoenix","phx_reply""#) {
        assert!(
            Instant::now() < deadline,
            "no reply to the second heartbeat: {seen}"
        );
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk))
            .await
            .expect("reply in time")
            .expect("read");
        assert!(n > 0, "socket closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
    assert!(seen.contains(r#""1","phoenix","phx_reply""#), "{seen}");
}

#[tokio::test]
async fn sockets_are_capped_per_user_token_and_per_source_address() {
    let app = spawn_app_with(|s| {
        s.ws_max_per_user = 2;
        s.ws_max_per_address = 3;
    })
    .await;
    let first = app.ws_connect("u1").await;
    let _second = app.ws_connect("u1").await;
    let token = user_token("u1", Value::Null);
    let query = format!("user_token={token}&api_key={PUBLIC_KEY}&vsn=2.0.0");
    let (status, body) = app
        .ws_connect_query(&query)
        .await
        .err()
        .expect("third refused");
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    // Another user from the same address fits once; then the address is full.
    let _other = app.ws_connect("u2").await;
    let (status, _) = app
        .ws_connect_query(&format!("api_key={SECRET_KEY}&vsn=2.0.0"))
        .await
        .err()
        .expect("fourth from the address refused");
    assert_eq!(status, 429);
    // A closed socket gives its place back.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match app.ws_connect_query(&query).await {
            Ok(_) => break,
            Err((429, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("socket not accepted after one closed: {other:?}"),
        }
    }
}

#[tokio::test]
async fn joins_queued_by_a_client_that_has_left_are_dropped() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let topic = format!("feeds:{channel}:u1");
    let mut stream = raw_socket(app.port, "u1").await;
    const JOINS: u64 = 2000;
    let burst: Vec<u8> = (0..JOINS)
        .flat_map(|i| {
            text_frame(
                &serde_json::json!([i.to_string(), i.to_string(), topic, "phx_join", {}])
                    .to_string(),
            )
        })
        .collect();
    stream.write_all(&burst).await.expect("burst");
    // The client leaves (ends its side) without reading a reply: its replies still fit
    // the kernel buffers, so only noticing the end stops the server working for it.
    stream.shutdown().await.expect("half-close");
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.state.hub.stats().sessions > 0 {
        assert!(Instant::now() < deadline, "the session never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let joins = app.state.hub.stats().joins;
    eprintln!("joins processed for a gone client: {joins} of {JOINS}");
    assert!(
        joins < JOINS / 2,
        "{joins} of {JOINS} queued joins were processed"
    );
    drop(stream);
}
