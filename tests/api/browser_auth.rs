//! Browser credentials over HTTP (spec §1.5, §2.2–§2.3): public key + user token reach
//! only their own user's data, bad tokens are 401, and CORS answers preflights.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{PUBLIC_KEY, assert_error, fixture, now, sign_claims, spawn_app, user_token};
use crate::ws::Item;

fn as_token(
    app: &crate::helpers::TestApp,
    method: Method,
    path: &str,
    token: &str,
) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(PUBLIC_KEY)
        .header("x-knock-user-token", token)
}

async fn read_at(app: &crate::helpers::TestApp, id: &str) -> Value {
    let body: Value = app.get_json(&format!("/v1/messages/{id}")).await.1;
    body["read_at"].clone()
}

#[tokio::test]
async fn a_token_for_one_user_cannot_read_another_users_feed_or_mark_their_messages() {
    let app = spawn_app().await;
    let id = app.deliver(Item::for_user("u2")).await;
    let res = app
        .as_user(Method::GET, "/v1/users/u2/feeds/in-app-feed", "u1")
        .send()
        .await
        .unwrap();
    assert_error(res, 403, "authorization").await;
    let res = app
        .as_user(Method::PUT, &format!("/v1/messages/{id}/read"), "u1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .as_user(Method::POST, "/v1/messages/batch/read", "u1")
        .json(&json!({"message_ids": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .as_user(Method::GET, &format!("/v1/messages/{id}"), "u1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(read_at(&app, &id).await, Value::Null, "still unread");
    // Its owner may.
    let res = app
        .as_user(Method::PUT, &format!("/v1/messages/{id}/read"), "u2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(read_at(&app, &id).await.is_string());
}

#[tokio::test]
async fn expired_forged_and_wrong_algorithm_tokens_are_401_invalid_user_token() {
    let app = spawn_app().await;
    let claims = json!({"sub": "u1", "iat": now(), "exp": now() + 600});
    let expired = sign_claims(json!({"sub": "u1", "iat": now() - 7200, "exp": now() - 3600}));
    let other = std::fs::read_to_string(fixture("other_key.pem")).unwrap();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(other.as_bytes()).unwrap(),
    )
    .unwrap();
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(PUBLIC_KEY.as_bytes()),
    )
    .unwrap();
    for token in [expired, forged, hs256, "garbage".to_owned()] {
        let res = as_token(&app, Method::GET, "/v1/users/u1/feeds/in-app-feed", &token)
            .send()
            .await
            .unwrap();
        assert_error(res, 401, "invalid_user_token").await;
    }
    let res = app
        .client
        .get(app.url("/v1/users/u1/feeds/in-app-feed"))
        .bearer_auth(PUBLIC_KEY)
        .send()
        .await
        .unwrap();
    assert_error(res, 401, "missing_user_token").await;
}

#[tokio::test]
async fn explicit_grants_allow_only_the_named_feed_access() {
    let app = spawn_app().await;
    let id = app.deliver(Item::for_user("u1")).await;
    let token = sign_claims(json!({
        "sub": "u1", "iat": now(), "exp": now() + 600, "explicit_grants": true,
        "grants": {"https://api.knock.app/v1/users/u1": {"feed/read": [{}]}}
    }));
    let res = as_token(&app, Method::GET, "/v1/users/u1/feeds/in-app-feed", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = as_token(
        &app,
        Method::PUT,
        &format!("/v1/messages/{id}/read"),
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 403, "feed_read does not allow writes");
    assert_eq!(read_at(&app, &id).await, Value::Null);
    let res = as_token(&app, Method::GET, "/v1/users/u1", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no user/read grant");
}

#[tokio::test]
async fn tenant_grants_hide_other_tenants_items_from_the_http_feed() {
    let app = spawn_app().await;
    app.deliver(Item::for_user("u1").tenant("acme")).await;
    app.deliver(Item::for_user("u1").tenant("beta")).await;
    app.deliver(Item::for_user("u1")).await;
    let token = user_token(
        "u1",
        json!({"https://api.knock.app/v1/tenants/acme": {"user/feed_read": []}}),
    );
    let body: Value = as_token(
        &app,
        Method::GET,
        "/v1/users/u1/feeds/in-app-feed?tenant=acme",
        &token,
    )
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tenants: Vec<Value> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["tenant"].clone())
        .collect();
    assert_eq!(tenants, [json!("acme")]);
    assert_eq!(body["meta"]["total_count"], 1);
    let res = as_token(
        &app,
        Method::GET,
        "/v1/users/u1/feeds/in-app-feed?tenant=beta",
        &token,
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 403);
}

#[tokio::test]
async fn cors_preflights_from_a_browser_are_answered() {
    let app = spawn_app().await;
    let res = app
        .client
        .request(Method::OPTIONS, app.url("/v1/users/u1/feeds/in-app-feed"))
        .header("origin", "http://localhost:3000")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-knock-user-token,x-knock-client",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert!(h.contains_key("access-control-allow-origin"));
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    for name in ["authorization", "x-knock-user-token", "x-knock-client"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    let methods = h["access-control-allow-methods"].to_str().unwrap();
    for m in ["GET", "POST", "PUT", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    // Actual responses expose Retry-After to the client.
    let res = app
        .client
        .get(app.url("/health"))
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(exposed.contains("retry-after"));
}

#[tokio::test]
async fn a_public_key_with_a_valid_token_cannot_call_secret_only_endpoints() {
    let app = spawn_app().await;
    let token = user_token("u1", json!(null));
    for (method, path, body) in [
        (Method::GET, "/v1/users", Value::Null),
        (Method::GET, "/v1/messages", Value::Null),
        (Method::GET, "/v1/users/u1/messages", Value::Null),
        (Method::PUT, "/v1/tenants/t1", json!({"name": "T"})),
        (Method::PUT, "/v1/objects/projects/p1", json!({"name": "P"})),
        (
            Method::POST,
            "/v1/users/bulk/identify",
            json!({"users": [{"id": "u9"}]}),
        ),
    ] {
        let mut req = as_token(&app, method.clone(), path, &token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        assert_error(res, 403, "incorrect_token_type").await;
    }
    // Nothing was written by the refused calls.
    for path in ["/v1/tenants/t1", "/v1/objects/projects/p1", "/v1/users/u9"] {
        let res = app.get(path).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} must not exist");
    }
}

#[tokio::test]
async fn the_generated_private_signing_key_is_never_served() {
    let app = crate::helpers::spawn_app_with(|s| s.signing_public_key = None).await;
    assert!(
        app.state.keys.signing_private_pem.is_some(),
        "a dev key pair was generated"
    );
    for path in ["/", "/admin", "/health", "/static/inbox.js", "/v1/nope"] {
        let text = app.get(path).send().await.unwrap().text().await.unwrap();
        assert!(
            !text.contains("PRIVATE KEY"),
            "{path} leaks the private key"
        );
    }
}

#[tokio::test]
async fn explicit_grants_gate_preferences_and_channel_data_by_read_and_write() {
    let app = spawn_app().await;
    let token = sign_claims(json!({
        "sub": "u1", "iat": now(), "exp": now() + 600, "explicit_grants": true,
        "grants": {"https://api.knock.app/v1/users/u1": {
            "preferences/read": [], "channel_data/read": []
        }}
    }));
    let res = as_token(&app, Method::GET, "/v1/users/u1/preferences", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = as_token(
        &app,
        Method::PUT,
        "/v1/users/u1/preferences/default",
        &token,
    )
    .json(&json!({"channel_types": {"in_app_feed": false}}))
    .send()
    .await
    .unwrap();
    assert_eq!(res.status(), 403, "no preferences/write grant");
    let channel = app.channel_id().await;
    let path = format!("/v1/users/u1/channel_data/{channel}");
    let res = as_token(&app, Method::PUT, &path, &token)
        .json(&json!({"data": {"tokens": ["t"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no channel_data/write grant");
    // Nothing was stored by the refused writes.
    let res = app
        .get("/v1/users/u1/preferences/default")
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_ne!(body["channel_types"]["in_app_feed"], json!(false), "{body}");
}
