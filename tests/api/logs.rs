//! Logs for machines: the real binary with `TIDINGS_LOG_FORMAT=json` writes only JSON
//! lines, each request's line carries its id, route, status, latency, tenant and workflow,
//! and no line holds a secret key, a user token or a request body.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::helpers::{fixture, user_token};

const SECRET: &str = "sk_test_log_secret_4f1c9";
const PUBLIC: &str = "pk_test_log_public";
const BODY_MARK: &str = "BODY-MARK-7d3a";

/// Collects every line of `stream` into `sink`; sends the port once the server logs it.
fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    sink: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    port: Option<tokio::sync::oneshot::Sender<u16>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut port = port;
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["message"] == "Tidings listening"
                && let Some(p) = v["address"]
                    .as_str()
                    .and_then(|a| a.rsplit(':').next())
                    .and_then(|p| p.parse().ok())
                && let Some(tx) = port.take()
            {
                let _ = tx.send(p);
            }
            sink.lock().expect("lock").push(line);
        }
    })
}

#[tokio::test]
async fn json_log_lines_parse_carry_request_facts_and_hold_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let public_pem = std::fs::read_to_string(fixture("signing_key.pub.pem")).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .env("TIDINGS_ADDR", "127.0.0.1:0")
        .envs(crate::engine::database_env(dir.path().join("t.db")))
        .env(
            "TIDINGS_WORKFLOWS",
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows"),
        )
        .env("TIDINGS_SECRET_KEY", SECRET)
        .env("TIDINGS_PUBLIC_KEY", PUBLIC)
        .env("TIDINGS_SIGNING_PUBLIC_KEY", public_pem)
        .env("TIDINGS_LOG_FORMAT", "json")
        .env("TIDINGS_NODE_ID", "logs-node-1")
        // Everything, dependencies included: a secret at any level is a failure.
        .env("TIDINGS_LOG", "trace,mio=info,tokio=info,runtime=info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (port_tx, port_rx) = tokio::sync::oneshot::channel();
    let out = collect(child.stdout.take().unwrap(), lines.clone(), None);
    let err = collect(child.stderr.take().unwrap(), lines.clone(), Some(port_tx));
    let port = tokio::time::timeout(Duration::from_secs(30), port_rx)
        .await
        .expect("the server logs its address")
        .expect("port");
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let token = user_token("u1", json!(null));

    // A trigger carrying a body, for a tenant.
    let res = client
        .post(format!("{base}/v1/workflows/new-comment/trigger"))
        .bearer_auth(SECRET)
        .header("x-request-id", "req-trigger-1")
        .json(&json!({"recipients": ["u1"], "tenant": "acme",
                      "data": {"comment_preview": BODY_MARK, "page_url": "https://x/p"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A browser read with a user token, filtered by tenant.
    let res = client
        .get(format!("{base}/v1/users/u1/feeds/in-app-feed?tenant=acme"))
        .bearer_auth(PUBLIC)
        .header("x-knock-user-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The socket carries the token in its query string.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!(
        "ws://127.0.0.1:{port}/ws/v1/websocket?api_key={PUBLIC}&user_token={token}&vsn=2.0.0"
    ))
    .await
    .expect("socket opens");
    ws.close(None).await.ok();
    // Malformed JSON, a forged key, a body the server refuses, an identify with a body.
    let res = client
        .post(format!("{base}/v1/workflows/new-comment/trigger"))
        .bearer_auth(SECRET)
        .header("content-type", "application/json")
        .body(format!("{{\"recipients\": [\"{BODY_MARK}\""))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = client
        .get(format!("{base}/v1/users/u1"))
        .bearer_auth("sk_forged_secret_99x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .put(format!("{base}/v1/users/{BODY_MARK}"))
        .bearer_auth(SECRET)
        .json(&json!({"name": BODY_MARK, "email": 12}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = client
        .put(format!("{base}/v1/users/u2"))
        .bearer_auth(SECRET)
        .json(&json!({"name": BODY_MARK}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
    out.await.unwrap();
    err.await.unwrap();

    let lines = lines.lock().unwrap().clone();
    assert!(lines.len() > 5, "{lines:#?}");
    let mut events = Vec::new();
    for line in &lines {
        let v: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
        assert!(v.is_object(), "{line}");
        assert_eq!(
            v["node_id"], "logs-node-1",
            "every line names its node: {line}"
        );
        for secret in [SECRET, "sk_forged_secret_99x", token.as_str(), BODY_MARK] {
            assert!(
                !line.contains(secret),
                "a log line leaks `{secret}`: {line}"
            );
        }
        // The token's signature alone is secret enough to check for.
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !line.contains(signature),
            "a log line leaks the token: {line}"
        );
        events.push(v);
    }
    let requests: Vec<&Value> = events
        .iter()
        .filter(|v| v["message"] == "request" && v["target"] == "tidings::http")
        .collect();
    let trigger = requests
        .iter()
        .find(|v| v["request_id"] == "req-trigger-1")
        .unwrap_or_else(|| panic!("the trigger's line: {requests:#?}"));
    assert_eq!(trigger["route"], "/v1/workflows/{key}/trigger");
    assert_eq!(trigger["method"], "POST");
    assert_eq!(trigger["status"], 200);
    assert_eq!(trigger["tenant"], "acme");
    assert_eq!(trigger["workflow"], "new-comment");
    assert!(trigger["latency_ms"].as_f64().is_some(), "{trigger}");
    let feed = requests
        .iter()
        .find(|v| {
            v["route"] == "/v1/users/{user_id}/feeds/{id}"
                || v["route"].as_str().is_some_and(|r| r.contains("/feeds/"))
        })
        .unwrap_or_else(|| panic!("the feed read's line: {requests:#?}"));
    assert_eq!(feed["tenant"], "acme");
    assert_eq!(feed["status"], 200);
    for status in [400, 401, 422] {
        assert!(
            requests.iter().any(|v| v["status"] == status
                && v["request_id"].as_str().is_some_and(|id| !id.is_empty())),
            "a {status} line with a request id: {requests:#?}"
        );
    }
    assert!(
        requests
            .iter()
            .any(|v| v["route"].as_str().is_some_and(|r| r.starts_with("/ws"))),
        "the socket upgrade is logged by route only: {requests:#?}"
    );
}
