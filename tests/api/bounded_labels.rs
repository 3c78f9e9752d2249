//! Bounded metric labels (issue 17 item 3): a client chooses the HTTP method and the path,
//! so neither becomes a label. Methods outside GET/POST/PUT/PATCH/DELETE/HEAD/OPTIONS are
//! `other`, routes are route patterns, and nothing is recorded when metrics are off.

use futures_util::StreamExt;
use reqwest::Method;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::process::Launch;

/// `n` requests, each with its own `len`-character method, to `path`, 16 at a time.
async fn odd_methods(client: &reqwest::Client, url: &str, n: usize, len: usize) {
    futures_util::stream::iter(0..n)
        .for_each_concurrent(16, |i| {
            let method = format!("{:X<len$}", format!("M{i}"));
            let method = Method::from_bytes(method.as_bytes()).expect("a method token");
            let request = client.request(method, url);
            async move {
                let res = request.send().await.expect("an answer");
                assert!(res.status().is_client_error(), "{}", res.status());
            }
        })
        .await;
}

fn http_series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("tidings_http_request"))
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    let res = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("scrape");
    assert_eq!(res.status(), 200);
    res.text().await.expect("text")
}

#[tokio::test]
async fn unknown_methods_share_one_label_and_unmatched_paths_one_route() {
    let app = spawn_app().await;
    odd_methods(&app.client, &app.url("/v1/users/u1"), 200, 64).await;
    for path in ["/nope/1", "/nope/2", "/v1/users/u1/no/such/route"] {
        let res = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404);
    }
    let text = scrape(&app).await;
    let series = http_series(&text);
    for line in &series {
        let method = line
            .split("method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("a method label: {line}"));
        assert!(
            [
                "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"
            ]
            .contains(&method),
            "{line}"
        );
        assert!(!line.contains("/nope/"), "a raw path as a route: {line}");
    }
    assert!(
        text.contains("tidings_http_requests_total{method=\"other\",route=\"/v1/users/{user_id}\""),
        "{text}"
    );
    assert!(
        text.contains(
            "tidings_http_requests_total{method=\"GET\",route=\"(unmatched)\",status=\"404\"} 3"
        ),
        "{text}"
    );
    assert!(
        text.len() < 64 * 1024,
        "/metrics grew to {} bytes",
        text.len()
    );
}

#[tokio::test]
async fn nothing_is_recorded_when_metrics_are_off() {
    let app = spawn_app_with(|s| s.metrics = false).await;
    odd_methods(&app.client, &app.url("/v1/users/u1"), 20, 64).await;
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let snapshot = tidings::metrics::Snapshot {
        queued_runs: 0,
        queued_items: 0,
        running_runs: 0,
        runner_lag_seconds: 0.0,
        hub: tidings::realtime::HubStats::default(),
        wal_bytes: 0,
        failed_runs: 0,
        unfolded_items: 0,
    };
    let text = app.state.metrics.render(&snapshot).expect("render");
    let recorded: Vec<&str> = http_series(&text)
        .into_iter()
        .filter(|l| !l.starts_with('#'))
        .collect();
    assert!(recorded.is_empty(), "{recorded:#?}");
}

/// The reproduction, smaller: 4,000 requests without credentials, each with its
/// own 4,000-character method, grew the binary by ~140 MB (35 KB each, never freed).
#[tokio::test]
async fn distinct_long_methods_do_not_grow_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), &["serve", "--db", "t.db"])
        .test_keys()
        .env("TIDINGS_LOG", "error")
        .serve()
        .await;
    let client = reqwest::Client::new();
    let url = server.url("/v1/users/u1");
    // Warm up: connection pools, worker buffers.
    odd_methods(&client, &url, 200, 4000).await;
    let before = server.rss_kib();
    odd_methods(&client, &url, 4000, 4000).await;
    let after = server.rss_kib();
    let text = client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.len() < 64 * 1024,
        "/metrics grew to {} bytes",
        text.len()
    );
    assert!(
        after.saturating_sub(before) < 24 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    server.stop().await;
}
