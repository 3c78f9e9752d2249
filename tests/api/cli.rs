//! The `tidings token` and `tidings keys` commands against a real database: a dev token
//! printed by the CLI is accepted by a server on the same database.

use std::process::Command;

use serde_json::json;

use crate::helpers::{PUBLIC_KEY, spawn_app_with};

fn tidings(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .envs(crate::engine::database_env(db))
        .env_remove("TIDINGS_SIGNING_PUBLIC_KEY")
        .args(args)
        .output()
        .expect("the tidings binary runs")
}

#[tokio::test]
async fn a_cli_dev_token_is_accepted_by_the_server_on_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dev.db");
    let out = tidings(
        &db,
        &[
            "token",
            "u1",
            "--grant",
            "tenant:acme",
            "--grant",
            "user",
            "--ttl",
            "600",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let keys = tidings(&db, &["keys"]);
    let keys = String::from_utf8(keys.stdout).unwrap();
    assert!(keys.contains("-----BEGIN PUBLIC KEY-----"));
    assert!(
        !keys.contains("PRIVATE KEY"),
        "keys never prints the private key"
    );

    let db_for_app = db.clone();
    let app = spawn_app_with(move |s| {
        crate::engine::point_at(s, db_for_app);
        s.signing_public_key = None;
    })
    .await;
    let res = app
        .client
        .get(app.url("/v1/users/u1/feeds/in-app-feed?tenant=acme"))
        .bearer_auth(PUBLIC_KEY)
        .header("x-knock-user-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .client
        .get(app.url("/v1/users/u2/feeds/in-app-feed"))
        .bearer_auth(PUBLIC_KEY)
        .header("x-knock-user-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "the token is for u1 only");
    let mut ws = app
        .ws_connect_query(&format!(
            "user_token={token}&api_key={PUBLIC_KEY}&&vsn=2.0.0"
        ))
        .await
        .expect("the CLI token opens a socket");
    let channel = app.channel_id().await;
    ws.join_ok(
        &format!("feeds:{channel}:u1"),
        json!({"client_a": {"tenant": "acme"}}),
    )
    .await;
}

#[test]
fn token_refuses_clearly_when_the_signing_key_is_configured_externally() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dev.db");
    let public = std::fs::read_to_string(crate::helpers::fixture("signing_key.pub.pem")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .envs(crate::engine::database_env(&db))
        .env("TIDINGS_SIGNING_PUBLIC_KEY", public)
        .args(["token", "u1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TIDINGS_SIGNING_PUBLIC_KEY"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn token_rejects_malformed_grants_and_user_ids() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("dev.db");
    for args in [
        vec!["token", "u1", "--grant", "object:projects"],
        vec!["token", "a/b"],
    ] {
        let out = tidings(&db, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
}

#[tokio::test]
async fn a_base64_encoded_signing_public_key_verifies_tokens() {
    use base64::Engine;
    let pem = std::fs::read_to_string(crate::helpers::fixture("signing_key.pub.pem")).unwrap();
    let encoded = base64::engine::general_purpose::STANDARD.encode(pem);
    let app = spawn_app_with(move |s| s.signing_public_key = Some(encoded)).await;
    let res = app
        .as_user(reqwest::Method::GET, "/v1/users/u1/feeds/in-app-feed", "u1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
