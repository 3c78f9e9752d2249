//! Demo mode cannot touch production (issue 17 item 5): `serve --demo` refuses a database
//! it did not create (a log line, a non-zero exit), and demo tokens are signed with a
//! demo-only key that the server does not trust outside demo mode. The README's first
//! command, `tidings serve --demo` in an empty directory, still gives a working demo.

use serde_json::{Value, json};

use crate::process::Launch;

async fn demo_token(base: &str, id: &str) -> String {
    let res = reqwest::Client::new()
        .post(format!("{base}/demo/v1/token"))
        .json(&json!({ "id": id }))
        .send()
        .await
        .expect("an answer");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("an answer");
    body["token"].as_str().expect("a token").to_owned()
}

/// `tidings keys` on `db`: (secret, public).
async fn keys(dir: &std::path::Path, db: &str) -> (String, String) {
    let (ok, out, err) = Launch::new(dir, &["keys", "--db", db]).output().await;
    assert!(ok, "{err}");
    let find = |prefix: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("{prefix} in {out}"))
            .to_owned()
    };
    (find("secret key: "), find("public key: "))
}

/// GET ada's feed with the public key and `token`: the status and body.
async fn feed(base: &str, public: &str, token: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{base}/v1/users/ada/feeds/in-app-feed"))
        .bearer_auth(public)
        .header("x-knock-user-token", token)
        .send()
        .await
        .expect("an answer");
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn demo_mode_refuses_a_database_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    // The README's default setup: generated keys stored in ./tidings.db.
    let production = Launch::new(dir.path(), &["serve"]).serve().await;
    let (ok, _, err) = production.stop().await;
    assert!(ok, "{err}");
    let refused = Launch::new(dir.path(), &["serve", "--demo"]).spawn(crate::crash::free_port());
    let (ok, _, stderr) = refused.exit().await;
    assert!(!ok, "serve --demo exits non-zero on a production database");
    assert!(
        stderr.contains("refusing demo mode") && stderr.contains("not created in demo mode"),
        "{stderr}"
    );
    // Nothing of the demo reached it: no demo workflow, no demo user.
    let server = Launch::new(dir.path(), &["serve"]).serve().await;
    let (secret, _) = keys(dir.path(), "tidings.db").await;
    let client = reqwest::Client::new();
    let res = client
        .get(server.url("/v1/users/ada"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "no demo user was seeded");
    let res = client
        .get(server.url("/v1/workflows/demo-comment"))
        .bearer_auth(&secret)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "no demo workflow was upserted");
    server.stop().await;
}

#[tokio::test]
async fn demo_tokens_work_only_in_demo_mode_and_the_first_command_still_works() {
    let dir = tempfile::tempdir().unwrap();
    // `tidings serve --demo` in an empty directory.
    let demo = Launch::new(dir.path(), &["serve", "--demo"]).serve().await;
    let (_, public) = keys(dir.path(), "tidings.db").await;
    let token = demo_token(&demo.base, "ada").await;
    let (status, body) = feed(&demo.base, &public, &token).await;
    assert_eq!(status, 200, "{body}");
    let (ok, _, err) = demo.stop().await;
    assert!(ok, "{err}");

    // Without --demo the demo key is not trusted: the 12 h token is worthless.
    let plain = Launch::new(dir.path(), &["serve"]).serve().await;
    let (status, body) = feed(&plain.base, &public, &token).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "invalid_user_token", "{body}");
    // The installation's own development key still works there (`tidings token`).
    let (ok, dev_token, err) = Launch::new(dir.path(), &["token", "ada"]).output().await;
    assert!(ok, "{err}");
    let (status, body) = feed(&plain.base, &public, dev_token.trim()).await;
    assert_eq!(status, 200, "{body}");
    plain.stop().await;

    // The database demo mode created is a demo database on later starts too.
    let again = Launch::new(dir.path(), &["serve", "--demo"]).serve().await;
    let (status, body) = feed(&again.base, &public, &token).await;
    assert_eq!(status, 200, "{body}");
    again.stop().await;
}
