//! Issue 8, the authorization items: grants compare exactly (item 3), `nbf` (item 7),
//! invalid UTF-8 in paths and control characters in channel ids (item 9).

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{as_browser, comment};
use crate::helpers::{PUBLIC_KEY, assert_error, json_of, now, sign_claims, spawn_app, user_token};

/// A feed read as u1 with a token holding only `grants`; the status.
async fn feed_status(app: &crate::helpers::TestApp, path: &str, grants: Value) -> u16 {
    as_browser(app, Method::GET, path, "u1", grants)
        .send()
        .await
        .expect("feed request")
        .status()
        .as_u16()
}

#[tokio::test]
async fn grants_that_only_resemble_a_tenant_or_object_grant_nothing() {
    let app = spawn_app().await;
    comment(&app, json!(["u1"]), json!({}), Some("acme")).await;
    comment(&app, json!(["u1"]), json!({}), None).await;
    app.wait_for_feed("u1", "", 2).await;
    let tenant_feed = "/v1/users/u1/feeds/in-app-feed?tenant=acme";
    let whole_feed = "/v1/users/u1/feeds/in-app-feed";
    let object_feed = "/v1/objects/projects/p1/feeds/in-app-feed";
    let grant = |path: &str| json!({ format!("https://api.knock.app/v1/{path}"): {"user/feed_read": [{}]} });

    // The exact grants work, so a refusal below is the colliding spelling's doing.
    assert_eq!(
        feed_status(&app, tenant_feed, grant("tenants/acme")).await,
        200
    );
    assert_eq!(
        feed_status(&app, tenant_feed, grant("objects/$tenants/acme")).await,
        200
    );
    assert_eq!(
        feed_status(&app, object_feed, grant("objects/projects/p1")).await,
        200
    );

    for tenant in [
        "acme?x", "acme=", "acme&", "ac%6De", "acme%20", "acme/", "acme#x",
    ] {
        for form in ["tenants", "objects/$tenants"] {
            let g = grant(&format!("{form}/{tenant}"));
            assert_eq!(
                feed_status(&app, tenant_feed, g.clone()).await,
                403,
                "{form}/{tenant}"
            );
            // Nor does the grant that did not parse leave the token unrestricted.
            assert_eq!(
                feed_status(&app, whole_feed, g).await,
                403,
                "{form}/{tenant}"
            );
        }
    }
    // `ac%2Fme` used to be no tenant grant at all, so the token read everything.
    let g = grant("tenants/ac%2Fme");
    assert_eq!(feed_status(&app, whole_feed, g.clone()).await, 403);
    assert_eq!(feed_status(&app, tenant_feed, g).await, 403);

    for object in ["p1?x", "p1=", "p%31", "p1/", "p1%20"] {
        let g = grant(&format!("objects/projects/{object}"));
        assert_eq!(feed_status(&app, object_feed, g).await, 403, "{object}");
    }
}

#[tokio::test]
async fn tenant_and_object_ids_outside_the_safe_characters_are_refused_at_identify() {
    let app = spawn_app().await;
    for path in [
        "/v1/tenants/acme=",
        "/v1/tenants/ac%20me",
        "/v1/tenants/acme&x",
        "/v1/objects/projects/p1=",
        "/v1/objects/projects/p%2531",
    ] {
        let res = app
            .put(path, json!({"name": "x"}))
            .send()
            .await
            .expect("put");
        let body = assert_error(res, 422, "invalid_params").await;
        assert!(
            body["message"]
                .as_str()
                .unwrap_or_default()
                .contains("may only contain"),
            "{path}: {body}"
        );
    }
    let (status, body) = app
        .post_json(
            "/v1/workflows/new-comment/trigger",
            json!({"recipients": ["u1"], "tenant": "acme=", "data": {}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .post_json(
            "/v1/workflows/new-comment/trigger",
            json!({"recipients": [{"id": "p 1", "collection": "projects"}], "data": {}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = app
        .post_json(
            "/v1/objects/projects/bulk/set",
            json!({"objects": [{"id": "p1="}, {"id": "p1"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("may only contain"), "{body}");
    // Users keep Knock's broader ids (emails and the like).
    app.identify("a+b@example.com", json!({"name": "A"})).await;
}

#[tokio::test]
async fn a_user_token_is_refused_until_its_nbf() {
    let app = spawn_app().await;
    let path = "/v1/users/u1/feeds/in-app-feed";
    let token =
        |nbf: u64| sign_claims(json!({"sub": "u1", "iat": now(), "nbf": nbf, "exp": now() + 7200}));
    let send = |token: String| {
        app.client
            .get(app.url(path))
            .bearer_auth(PUBLIC_KEY)
            .header("x-knock-user-token", token)
            .send()
    };
    let res = send(token(now() + 3600)).await.expect("request");
    let body = assert_error(res, 401, "invalid_user_token").await;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Immature"),
        "{body}"
    );
    // Within the documented 5 s leeway, and any time after, the token is fine.
    assert_eq!(send(token(now() + 2)).await.expect("request").status(), 200);
    assert_eq!(
        send(token(now() - 60)).await.expect("request").status(),
        200
    );
    assert_eq!(
        send(user_token("u1", Value::Null))
            .await
            .expect("request")
            .status(),
        200
    );
}

#[tokio::test]
async fn a_path_with_percent_escapes_that_are_not_utf8_is_a_400() {
    let app = spawn_app().await;
    for path in ["/v1/users/%ff%fe", "/v1/users/a%C0", "/v1/tenants/%ff"] {
        let res = app
            .put(path, json!({"name": "x"}))
            .send()
            .await
            .expect("put");
        assert_error(res, 400, "invalid_path").await;
    }
    // Nothing was stored under the replacement character either.
    let (status, _) = app.get_json("/v1/users/%EF%BF%BD").await;
    assert_eq!(status, 404);
    // Valid UTF-8 escapes still work.
    app.put_ok("/v1/users/%C3%A9", json!({"name": "e"})).await;
    let (status, body) = app.get_json("/v1/users/%C3%A9").await;
    assert_eq!((status, body["id"].as_str()), (200, Some("é")));
}

#[tokio::test]
async fn a_channel_data_channel_id_with_a_control_character_is_refused() {
    let app = spawn_app().await;
    app.identify("u1", json!({})).await;
    for channel in ["a%00b", "a%0Ab", "%7F"] {
        let path = format!("/v1/users/u1/channel_data/{channel}");
        let res = app
            .put(&path, json!({"data": {"tokens": ["t"]}}))
            .send()
            .await
            .expect("put");
        assert_error(res, 422, "invalid_params").await;
    }
    let (status, body) = json_of(
        app.put(
            "/v1/users/u1/channel_data/in-app-feed",
            json!({"data": {"tokens": ["t"]}}),
        )
        .send()
        .await
        .expect("put"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}
