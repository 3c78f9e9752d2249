//! Browser authentication on the socket (spec §2.2–§2.4): the upgrade and each join.

use serde_json::{Value, json};

use crate::helpers::{
    PUBLIC_KEY, SECRET_KEY, fixture, now, sign_claims, spawn_app, spawn_app_with, user_token,
};
use crate::ws::Item;

fn signed_with(pem_file: &str, claims: Value) -> String {
    let pem = std::fs::read_to_string(fixture(pem_file)).expect("fixture key");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA key");
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .expect("signed")
}

#[tokio::test]
async fn upgrades_with_bad_credentials_are_refused_with_403_and_a_code() {
    let app = spawn_app().await;
    let valid = json!({"sub": "u1", "iat": now(), "exp": now() + 600});
    let expired = sign_claims(json!({"sub": "u1", "iat": now() - 7200, "exp": now() - 3600}));
    let forged = signed_with("other_key.pem", valid.clone());
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &valid,
        &jsonwebtoken::EncodingKey::from_secret(b"pk_test_public"),
    )
    .unwrap();
    let no_sub = sign_claims(json!({"iat": now(), "exp": now() + 600}));
    let no_exp = sign_claims(json!({"sub": "u1", "iat": now()}));
    for (query, code) in [
        ("vsn=2.0.0".to_owned(), "authentication_required"),
        (
            "api_key=pk_wrong&user_token=x&vsn=2.0.0".to_owned(),
            "api_key_missing",
        ),
        (
            format!("&api_key={PUBLIC_KEY}&&vsn=2.0.0"),
            "missing_user_token",
        ),
        (
            format!("user_token={expired}&api_key={PUBLIC_KEY}"),
            "invalid_user_token",
        ),
        (
            format!("user_token={forged}&api_key={PUBLIC_KEY}"),
            "invalid_user_token",
        ),
        (
            format!("user_token={hs256}&api_key={PUBLIC_KEY}"),
            "invalid_user_token",
        ),
        (
            format!("user_token={no_sub}&api_key={PUBLIC_KEY}"),
            "invalid_user_token",
        ),
        (
            format!("user_token={no_exp}&api_key={PUBLIC_KEY}"),
            "invalid_user_token",
        ),
        (
            format!("user_token=not.a.jwt&api_key={PUBLIC_KEY}"),
            "invalid_user_token",
        ),
    ] {
        let refused = app.ws_connect_query(&query).await;
        let Err((status, body)) = refused else {
            panic!("{query} was accepted")
        };
        assert_eq!(status, 403, "{query}");
        assert_eq!(body["code"], code, "{query}: {body}");
        assert_eq!(body["status"], 403);
    }
}

#[tokio::test]
async fn the_upgrade_tolerates_phoenix_empty_segments_and_the_secret_key() {
    let app = spawn_app().await;
    let token = user_token("u1", json!(null));
    assert!(
        app.ws_connect_query(&format!(
            "&&user_token={token}&&api_key={PUBLIC_KEY}&&vsn=2.0.0&"
        ))
        .await
        .is_ok()
    );
    let mut server = app
        .ws_connect_query(&format!("api_key={SECRET_KEY}&vsn=2.0.0"))
        .await
        .expect("secret key may connect");
    let channel = app.channel_id().await;
    server
        .join_ok(&format!("feeds:{channel}:anyone"), json!({}))
        .await;
    server
        .join_ok(&format!("object_feeds:{channel}:projects:p1"), json!({}))
        .await;
}

#[tokio::test]
async fn a_token_for_one_user_cannot_join_another_users_topic() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let mut ws = app.ws_connect("u1").await;
    let (_, reply) = ws.join(&format!("feeds:{channel}:u2"), json!({})).await;
    assert_eq!(reply["status"], "error");
    assert!(
        reply["response"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("unauthorized")
    );
    // Nothing for u2 reaches u1's socket, while u1's own join still works.
    ws.join_ok(&format!("feeds:{channel}:u1"), json!({})).await;
    app.deliver(Item::for_user("u2")).await;
    app.deliver(Item::for_user("u1")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(frame[2], json!(format!("feeds:{channel}:u1")));
}

#[tokio::test]
async fn tenant_grants_limit_joins_and_pushes_to_granted_tenants() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let token = user_token(
        "u1",
        json!({"https://api.knock.app/v1/objects/$tenants/acme": {"user/feed_read": []}}),
    );
    let mut ws = app
        .ws_connect_query(&format!(
            "user_token={token}&api_key={PUBLIC_KEY}&vsn=2.0.0"
        ))
        .await
        .expect("socket accepted");
    let topic = format!("feeds:{channel}:u1");
    let (_, reply) = ws
        .join(&topic, json!({"client_x": {"tenant": "beta"}}))
        .await;
    assert_eq!(reply["status"], "error", "ungranted tenant");
    let (_, reply) = ws.join(&topic, json!({"client_x": {}})).await;
    assert_eq!(reply["status"], "error", "no tenant: needs a user grant");
    ws.join_ok(&topic, json!({"client_acme": {"tenant": "acme"}}))
        .await;
    // Items of other tenants and without a tenant are invisible to this token.
    app.deliver(Item::for_user("u1").tenant("beta")).await;
    app.deliver(Item::for_user("u1")).await;
    app.deliver(Item::for_user("u1").tenant("acme")).await;
    let frame = ws.next_event("new-message").await;
    assert_eq!(frame[4]["attn"], json!(["client_acme"]));
    assert_eq!(
        frame[4]["data"]["client_acme"]["metadata"],
        json!({"total_count": 1, "unread_count": 1, "unseen_count": 1})
    );
}

#[tokio::test]
async fn object_feeds_need_a_grant_on_the_object_or_its_tenant() {
    let app = spawn_app().await;
    let channel = app.channel_id().await;
    let topic = format!("object_feeds:{channel}:projects:p1");
    let mut plain = app.ws_connect("u1").await;
    let (_, reply) = plain.join(&topic, json!({})).await;
    assert_eq!(reply["status"], "error");

    let grant = user_token(
        "u1",
        json!({"https://api.knock.app/v1/objects/projects/p1": {"user/feed_read": [{}]}}),
    );
    let mut member = app
        .ws_connect_query(&format!("user_token={grant}&api_key={PUBLIC_KEY}"))
        .await
        .expect("socket accepted");
    member.join_ok(&topic, json!({"client_p": {}})).await;
    let (_, reply) = member
        .join(&format!("object_feeds:{channel}:projects:p2"), json!({}))
        .await;
    assert_eq!(reply["status"], "error", "grant is for p1 only");

    let admin = user_token(
        "admin",
        json!({"https://api.knock.app/v1/tenants/acme": {"feed/read": []}}),
    );
    let mut admin = app
        .ws_connect_query(&format!("user_token={admin}&api_key={PUBLIC_KEY}"))
        .await
        .expect("socket accepted");
    admin.join_ok(&topic, json!({"client_adm": {}})).await;

    let project = tidings::model::RecipientRef::Object {
        id: "p1".into(),
        collection: "projects".into(),
    };
    let mut item = Item::for_user("ignored");
    item.recipient = project.clone();
    app.deliver(item).await;
    let frame = member.next_event("new-message").await;
    assert_eq!(frame[2], json!(topic));
    assert_eq!(frame[4]["attn"], json!(["client_p"]));
    let mut item = Item::for_user("ignored").tenant("acme");
    item.recipient = project;
    app.deliver(item).await;
    // The tenant admin sees only the acme item (the first push it gets is for it).
    let frame = admin.next_event("new-message").await;
    assert_eq!(frame[4]["data"]["client_adm"]["metadata"]["total_count"], 1);
}

#[tokio::test]
async fn with_enhanced_security_off_a_public_key_alone_may_join_user_feeds() {
    let app = spawn_app_with(|s| s.enhanced_security = false).await;
    let channel = app.channel_id().await;
    let mut ws = app
        .ws_connect_query(&format!("api_key={PUBLIC_KEY}&&vsn=2.0.0"))
        .await
        .expect("no token needed");
    ws.join_ok(&format!("feeds:{channel}:u1"), json!({})).await;
    let (_, reply) = ws
        .join(&format!("object_feeds:{channel}:projects:p1"), json!({}))
        .await;
    assert_eq!(reply["status"], "error", "object feeds still need a grant");
}

#[tokio::test]
async fn a_socket_closes_when_its_user_token_expires() {
    let app = spawn_app().await;
    let token = sign_claims(json!({"sub": "u1", "iat": now(), "exp": now() + 1}));
    let mut ws = app
        .ws_connect_query(&format!("user_token={token}&api_key={PUBLIC_KEY}"))
        .await
        .expect("token still valid at connect");
    let (close, _) = ws.closed().await;
    let close = close.expect("close frame");
    assert_eq!(u16::from(close.code), 1008);
    assert!(close.reason.contains("expired"));
}
