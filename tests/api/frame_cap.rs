//! A frame over the cap ends the connection at once (issue 17 item 9): after the 1009
//! close the server stops taking the client's bytes, instead of reading and discarding
//! them for the client-disconnect timeout (a second: ~2 GB at loopback speed).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::binary::Binary;
use crate::hardening_sockets::{frame_header, raw_socket};

#[tokio::test]
async fn after_the_1009_close_the_connection_ends_and_accepts_no_more_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Binary::start(&dir.path().join("t.db"), &[]).await;
    let stream = raw_socket(server.port, "u1").await;
    let (mut read, mut write) = stream.into_split();
    // Everything the server sends until the connection ends (EOF or a reset).
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return seen,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    });
    // The attacker declares 2^62 bytes and streams as fast as the server takes them; the
    // loop ends when the server has ended the connection (a write fails).
    let writer = tokio::spawn(async move {
        let mut sent = 0u64;
        if write.write_all(&frame_header(1 << 62)).await.is_err() {
            return sent;
        }
        let chunk = vec![b'x'; 256 * 1024];
        while write.write_all(&chunk).await.is_ok() {
            sent += chunk.len() as u64;
        }
        sent
    });
    let sent = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the server ends the connection")
        .expect("writer");
    let seen = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the connection reaches its end")
        .expect("reader");
    eprintln!("accepted after the oversized header: {sent} bytes");
    // What the kernel buffers on both sides of a loopback connection is a few MB; reading
    // on after the close took ~1 s of loopback speed (hundreds of MB or more).
    assert!(
        sent < 32 * 1024 * 1024,
        "the server accepted {} MB after the header",
        sent / (1024 * 1024)
    );
    // The close frame (0x88) with code 1009 (0x03F1) arrived first.
    assert!(
        seen.windows(4)
            .any(|w| w[0] == 0x88 && w[2..4] == [0x03, 0xF1]),
        "a 1009 close: {seen:?}"
    );
}
