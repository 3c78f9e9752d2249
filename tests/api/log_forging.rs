//! Logs and keys (issue 17 item 3), on the real binary in the default text format: no
//! client-chosen value forges a line or a field, request ids outside `[A-Za-z0-9._-]{1,128}`
//! are replaced, a token `sub` with control characters is refused, and the secret key is
//! printed only when it is generated, once.

use serde_json::json;

use crate::helpers::{PUBLIC_KEY, SECRET_KEY, sign_claims, user_token};
use crate::process::Launch;

const FORGED_TIME: &str = "2030-01-01T00:00:00.000000Z";

#[tokio::test]
async fn text_logs_escape_values_and_refuse_forging_ids_and_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let server = Launch::new(dir.path(), &["serve", "--db", "t.db"])
        .test_keys()
        .env("TIDINGS_LOG", "info")
        .serve()
        .await;
    let client = reqwest::Client::new();

    // A request id with spaces and key=value pairs is replaced; a tidy one is kept.
    let forged_id = "abc status=500 forged_field=1";
    let res = client
        .get(server.url("/v1/users/u1"))
        .bearer_auth(SECRET_KEY)
        .header("x-request-id", forged_id)
        .send()
        .await
        .unwrap();
    let echoed = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(echoed, forged_id);
    assert!(echoed.len() == 36 && !echoed.contains(' '), "{echoed}");
    let long = "a".repeat(129);
    for (sent, kept) in [("req.ok-1_A", true), (long.as_str(), false), ("é", false)] {
        let res = client
            .get(server.url("/health"))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        let echoed = res.headers()["x-request-id"].to_str().unwrap();
        assert_eq!(echoed == sent, kept, "{sent} -> {echoed}");
    }

    // A signed token whose `sub` holds a newline and an ANSI escape: refused like a bad token.
    let sub = format!("mallory\n{FORGED_TIME}  INFO tidings::http: request status=200\u{1b}[2J");
    let token = sign_claims(json!({"sub": sub, "iat": crate::helpers::now(),
                                   "exp": crate::helpers::now() + 600}));
    let res = client
        .get(server.url("/v1/users/mallory/feeds/in-app-feed"))
        .bearer_auth(PUBLIC_KEY)
        .header("x-knock-user-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_user_token", "{body}");
    assert_eq!(body["status"], 401);
    assert!(
        body["type"].is_string() && body["message"].is_string(),
        "{body}"
    );

    // A grant URI with spaces is logged as one quoted value (it grants nothing, and as an
    // unparsed grant it still restricts the token).
    let grant = "https://api.knock.app/v1/tenants/acme forged_grant=1";
    let token = user_token("u1", json!({ grant: {"slack/channels_read": {}} }));
    let res = client
        .get(server.url("/v1/users/u1/feeds/in-app-feed"))
        .bearer_auth(PUBLIC_KEY)
        .header("x-knock-user-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    let (ok, stdout, stderr) = server.stop().await;
    assert!(ok, "{stderr}");
    // Every record names its node, last (issue 20: merged logs of several nodes).
    let nodes: std::collections::BTreeSet<&str> = stderr
        .lines()
        .filter(|line| line.contains(" tidings"))
        .map(|line| {
            line.rsplit_once(" node=")
                .map(|(_, node)| node)
                .unwrap_or_else(|| panic!("a record without its node: {line:?}"))
        })
        .collect();
    assert_eq!(nodes.len(), 1, "one node wrote these: {nodes:?}");
    assert!(
        nodes.iter().all(|n| !n.is_empty() && !n.contains(' ')),
        "{nodes:?}"
    );
    for line in stderr.lines() {
        assert!(!line.contains('\u{1b}'), "a raw escape: {line:?}");
        assert!(!line.starts_with(FORGED_TIME), "a forged record: {line:?}");
        assert!(
            !line.contains("forged_field"),
            "the forged request id: {line:?}"
        );
        assert!(
            !line.contains(&format!("grant={grant}")),
            "an unquoted grant: {line:?}"
        );
    }
    assert!(
        stderr.contains(&format!("grant=\"{grant}\"")),
        "the grant, quoted: {stderr}"
    );
    assert!(stderr.contains("request_id=req.ok-1_A"), "{stderr}");
    assert!(!stdout.contains(SECRET_KEY) && !stderr.contains(SECRET_KEY));
}

#[tokio::test]
async fn a_generated_secret_key_is_printed_once_and_a_configured_one_never() {
    let dir = tempfile::tempdir().unwrap();
    let first = Launch::new(dir.path(), &["serve", "--db", "g.db"])
        .serve()
        .await;
    let (_, first_out, first_err) = first.stop().await;
    let (_, keys, _) = Launch::new(dir.path(), &["keys", "--db", "g.db"])
        .output()
        .await;
    let secret = keys
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .expect("`tidings keys` prints it")
        .to_owned();
    assert!(
        first_out.contains(&secret),
        "shown when generated: {first_out}"
    );
    assert!(!first_err.contains(&secret), "{first_err}");
    let second = Launch::new(dir.path(), &["serve", "--db", "g.db"])
        .serve()
        .await;
    let (_, out, err) = second.stop().await;
    assert!(
        !out.contains(&secret) && !err.contains(&secret),
        "{out}\n{err}"
    );
    assert!(out.contains("Tidings listening"), "{out}");

    // From a vault: never printed, whatever the log level.
    let vault = "sk_from_the_vault_3b9e1";
    let server = Launch::new(dir.path(), &["serve", "--db", "v.db"])
        .env("TIDINGS_SECRET_KEY", vault)
        .env("TIDINGS_LOG", "debug")
        .serve()
        .await;
    let (_, out, err) = server.stop().await;
    assert!(!out.contains(vault) && !err.contains(vault), "{out}\n{err}");
}
