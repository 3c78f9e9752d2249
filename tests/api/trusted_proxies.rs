//! Behind a proxy (issue 17 item 7): from a trusted proxy the client is the right-most
//! untrusted hop of `X-Forwarded-For` / `Forwarded`, for the per-address socket cap and the
//! logs; from any other peer those headers are ignored.

use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderName;

use crate::helpers::{PUBLIC_KEY, SECRET_KEY, TestApp, spawn_app_with, user_token};
use crate::process::Launch;
use crate::ws::Socket;

/// Opens a socket for `user` with extra headers; `Err(status)` when refused.
async fn socket_with(app: &TestApp, user: &str, headers: &[(&str, &str)]) -> Result<Socket, u16> {
    let token = user_token(user, Value::Null);
    let mut request = app
        .ws_url(&format!(
            "user_token={token}&api_key={PUBLIC_KEY}&vsn=2.0.0"
        ))
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("header name");
        request
            .headers_mut()
            .append(name, value.parse().expect("header value"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => Err(res.status().as_u16()),
        Err(e) => panic!("socket connect failed: {e}"),
    }
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_socket_cap() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = tidings::proxies::TrustedProxies::parse("127.0.0.0/8").unwrap();
        s.ws_max_per_address = 2;
    })
    .await;
    let a = [("x-forwarded-for", "203.0.113.5")];
    let _a1 = socket_with(&app, "u1", &a).await.expect("first of A");
    let _a2 = socket_with(&app, "u2", &a).await.expect("second of A");
    assert_eq!(
        socket_with(&app, "u3", &a).await.err(),
        Some(429),
        "A is at its cap"
    );
    // What a client writes itself sits left of what the proxy appended: still client A.
    let spoofed = [("x-forwarded-for", "198.51.100.77, 203.0.113.5")];
    assert_eq!(socket_with(&app, "u3", &spoofed).await.err(), Some(429));
    // Other clients behind the same proxy are not affected.
    let _b = socket_with(&app, "u4", &[("x-forwarded-for", "203.0.113.6")])
        .await
        .expect("client B");
    let _c = socket_with(
        &app,
        "u5",
        &[("forwarded", "for=\"[2001:db8::7]:4711\";proto=https")],
    )
    .await
    .expect("client C, from Forwarded");
    let _d = socket_with(
        &app,
        "u6",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "203.0.113.8"),
        ],
    )
    .await
    .expect("client D, the last header line's hop");
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_peer_are_ignored() {
    let app = spawn_app_with(|s| {
        s.trusted_proxies = tidings::proxies::TrustedProxies::parse("10.0.0.0/8").unwrap();
        s.ws_max_per_address = 2;
    })
    .await;
    let _first = socket_with(&app, "u1", &[("x-forwarded-for", "203.0.113.1")])
        .await
        .expect("first");
    let _second = socket_with(&app, "u2", &[("forwarded", "for=203.0.113.2")])
        .await
        .expect("second");
    // All three come from 127.0.0.1, whatever they claim.
    assert_eq!(
        socket_with(&app, "u3", &[("x-forwarded-for", "203.0.113.3")])
            .await
            .err(),
        Some(429)
    );
}

#[tokio::test]
async fn the_access_log_names_the_forwarded_client_only_behind_a_trusted_proxy() {
    for (trusted, expected) in [("127.0.0.1", "203.0.113.9"), ("10.0.0.0/8", "127.0.0.1")] {
        let dir = tempfile::tempdir().unwrap();
        let server = Launch::new(
            dir.path(),
            &["serve", "--db", "t.db", "--trusted-proxies", trusted],
        )
        .test_keys()
        .env("TIDINGS_LOG_FORMAT", "json")
        .serve()
        .await;
        let res = reqwest::Client::new()
            .get(server.url("/v1/users/u1"))
            .bearer_auth(SECRET_KEY)
            .header("x-request-id", "behind-proxy-1")
            .header("x-forwarded-for", "6.6.6.6, 203.0.113.9")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        let (ok, _, stderr) = server.stop().await;
        assert!(ok, "{stderr}");
        let line = stderr
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["request_id"] == "behind-proxy-1" && v["message"] == "request")
            .unwrap_or_else(|| panic!("the request's line: {stderr}"));
        assert_eq!(
            line["client"],
            json!(expected),
            "trusting {trusted}: {line}"
        );
    }
}
