//! Feed cursors, request validation, access (user tokens, tenant grants, object grants),
//! feed settings and object feeds.

use reqwest::Method;
use serde_json::{Value, json};

use crate::feed_support::{as_browser, comment, entries, feed, ids, seed};
use crate::helpers::{PUBLIC_KEY, assert_error, assert_needs_a_valid_key, spawn_app};

#[tokio::test]
async fn after_and_before_cursors_walk_the_feed_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let all = ids(&seed(&app, "ada", 12).await);
    let mut walked = Vec::new();
    let mut query = "page_size=5".to_owned();
    let mut pages = 0;
    loop {
        let body = feed(&app, "ada", &query).await;
        pages += 1;
        assert_eq!(body["page_info"]["page_size"], 5);
        assert_eq!(body["meta"]["total_count"], 12);
        if pages == 1 {
            assert_eq!(
                body["page_info"]["before"],
                Value::Null,
                "nothing newer than page 1"
            );
        } else {
            assert_eq!(body["page_info"]["before"], entries(&body)[0]["__cursor"]);
        }
        walked.extend(ids(&body));
        match body["page_info"]["after"].as_str() {
            Some(after) => {
                assert_eq!(
                    Some(after),
                    entries(&body).last().and_then(|e| e["__cursor"].as_str())
                );
                query = format!("page_size=5&after={after}");
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(walked, all);

    // `before` returns the items immediately newer than the cursor, newest first.
    let oldest = feed(&app, "ada", "page_size=50").await;
    let oldest_cursor = entries(&oldest)[11]["__cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let newer = feed(&app, "ada", &format!("page_size=3&before={oldest_cursor}")).await;
    assert_eq!(ids(&newer), all[8..11].to_vec());
    assert!(
        newer["page_info"]["before"].is_string(),
        "still newer items above"
    );
    assert!(
        newer["page_info"]["after"].is_string(),
        "the cursor item is older"
    );
    let head = entries(&oldest)[0]["__cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let none = feed(&app, "ada", &format!("before={head}")).await;
    assert_eq!(none["entries"], json!([]), "nothing is newer than the head");
    assert_eq!(
        none["meta"]["total_count"], 12,
        "counts stay the feed's counts"
    );
}

#[tokio::test]
async fn a_realtime_before_refetch_returns_exactly_the_new_items() {
    let app = spawn_app().await;
    let first = seed(&app, "ada", 2).await;
    let head = entries(&first)[0]["__cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    comment(&app, json!(["ada"]), json!({"n": 9}), None).await;
    let now = app.wait_for_feed("ada", "", 3).await;
    let refetch = feed(&app, "ada", &format!("before={head}&mode=compact")).await;
    assert_eq!(ids(&refetch), vec![ids(&now)[0].clone()]);
    assert_eq!(refetch["meta"]["unread_count"], 3);
}

#[tokio::test]
async fn bad_query_values_are_422_naming_the_field() {
    let app = spawn_app().await;
    seed(&app, "ada", 1).await;
    for (query, field) in [
        ("page_size=0", "page_size"),
        ("page_size=51", "page_size"),
        ("page_size=ten", "page_size"),
        ("status=bogus", "status"),
        ("archived=sometimes", "archived"),
        ("has_tenant=yes", "has_tenant"),
        ("mode=fancy", "mode"),
        ("after=not-a-cursor", "after"),
        ("before=not-a-cursor", "before"),
        ("inserted_at.gte=yesterday", "inserted_at.gte"),
        ("inserted_at[lt]=2026-13-45", "inserted_at.lt"),
        (
            "trigger_data=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D",
            "trigger_data",
        ),
        ("trigger_data=not-json", "trigger_data"),
    ] {
        let res = app
            .get(&format!("/v1/users/ada/feeds/in-app-feed?{query}"))
            .send()
            .await
            .expect("feed");
        let body = assert_error(res, 422, "invalid_params").await;
        assert_eq!(body["errors"][0]["field"], field, "{query}: {body}");
    }
    assert_eq!(
        feed(&app, "ada", "").await["meta"]["total_count"],
        1,
        "data unchanged"
    );
}

#[tokio::test]
async fn exclude_drops_the_named_fields() {
    let app = spawn_app().await;
    seed(&app, "ada", 1).await;
    let body = feed(&app, "ada", "exclude=entries.archived_at,vars").await;
    assert!(body.get("vars").is_none());
    assert!(entries(&body)[0].get("archived_at").is_none());
    assert!(entries(&body)[0].get("read_at").is_some());
}

#[tokio::test]
async fn a_user_token_reads_its_own_feed_but_not_another_users() {
    let app = spawn_app().await;
    seed(&app, "ada", 1).await;
    let own = as_browser(
        &app,
        Method::GET,
        "/v1/users/ada/feeds/in-app-feed",
        "ada",
        json!(null),
    )
    .send()
    .await
    .expect("feed");
    assert_eq!(own.status(), 200);
    let own: Value = own.json().await.expect("JSON");
    assert_eq!(entries(&own).len(), 1);
    let other = as_browser(
        &app,
        Method::GET,
        "/v1/users/ada/feeds/in-app-feed",
        "bob",
        json!(null),
    )
    .send()
    .await
    .expect("feed");
    assert_error(other, 403, "authorization").await;
    let no_token = app
        .client
        .get(app.url("/v1/users/ada/feeds/in-app-feed"))
        .bearer_auth(PUBLIC_KEY)
        .send()
        .await
        .expect("feed");
    assert_error(no_token, 401, "missing_user_token").await;
    assert_needs_a_valid_key(&app, Method::GET, "/v1/users/ada/feeds/in-app-feed", None).await;
}

#[tokio::test]
async fn a_tenant_scoped_token_sees_only_its_tenants_items() {
    let app = spawn_app().await;
    comment(&app, json!(["ada"]), json!({}), Some("acme")).await;
    comment(&app, json!(["ada"]), json!({}), Some("globex")).await;
    comment(&app, json!(["ada"]), json!({}), None).await;
    app.wait_for_feed("ada", "", 3).await;
    let grants = json!({"https://api.knock.app/v1/objects/$tenants/acme": {"user/feed_read": {}}});
    let path = "/v1/users/ada/feeds/in-app-feed";
    let scoped = as_browser(
        &app,
        Method::GET,
        &format!("{path}?tenant=acme"),
        "ada",
        grants.clone(),
    )
    .send()
    .await
    .expect("feed");
    assert_eq!(scoped.status(), 200);
    let scoped: Value = scoped.json().await.expect("JSON");
    let tenants: Vec<Value> = entries(&scoped)
        .iter()
        .map(|e| e["tenant"].clone())
        .collect();
    assert_eq!(
        tenants,
        vec![json!("acme")],
        "no-tenant items need a grant on the user"
    );
    assert_eq!(scoped["meta"]["total_count"], 1);
    assert_eq!(scoped["meta"]["unread_count"], 1);
    let other = as_browser(
        &app,
        Method::GET,
        &format!("{path}?tenant=globex"),
        "ada",
        grants,
    )
    .send()
    .await
    .expect("feed");
    assert_error(other, 403, "authorization").await;
}

#[tokio::test]
async fn feed_settings_report_no_branding() {
    let app = spawn_app().await;
    let res = as_browser(
        &app,
        Method::GET,
        "/v1/users/ada/feeds/in-app-feed/settings",
        "ada",
        json!(null),
    )
    .send()
    .await
    .expect("settings");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("JSON");
    assert_eq!(body, json!({"features": {"branding_required": false}}));
    let missing = app
        .get("/v1/users/ada/feeds/nope/settings")
        .send()
        .await
        .expect("settings");
    assert_error(missing, 404, "channel_invalid").await;
    let other = as_browser(
        &app,
        Method::GET,
        "/v1/users/ada/feeds/in-app-feed/settings",
        "bob",
        json!(null),
    )
    .send()
    .await
    .expect("settings");
    assert_error(other, 403, "authorization").await;
}

#[tokio::test]
async fn object_feeds_list_the_objects_items_for_the_secret_key_and_granted_tokens() {
    let app = spawn_app().await;
    let project = json!({"id": "p1", "collection": "projects"});
    comment(&app, json!([project]), json!({}), Some("acme")).await;
    let path = "/v1/objects/projects/p1/feeds/in-app-feed";
    let body = app.poll_json(path, |body| !entries(body).is_empty()).await;
    assert_eq!(entries(&body).len(), 1, "{body}");
    assert_eq!(body["meta"]["unread_count"], 1);
    assert_eq!(
        entries(&body)[0]["activities"][0]["recipient"]["collection"],
        "projects"
    );
    let denied = as_browser(&app, Method::GET, path, "ada", json!(null))
        .send()
        .await
        .expect("feed");
    assert_error(denied, 403, "authorization").await;
    let granted = as_browser(
        &app,
        Method::GET,
        path,
        "ada",
        json!({"https://api.knock.app/v1/objects/projects/p1": {"user/feed_read": {}}}),
    )
    .send()
    .await
    .expect("feed");
    assert_eq!(granted.status(), 200);
    let admin = as_browser(
        &app,
        Method::GET,
        path,
        "ada",
        json!({"https://api.knock.app/v1/objects/$tenants/globex": {"user/feed_read": {}}}),
    )
    .send()
    .await
    .expect("feed");
    let admin: Value = admin.json().await.expect("JSON");
    assert_eq!(
        admin["entries"],
        json!([]),
        "a globex admin sees none of acme's items"
    );
    assert_eq!(admin["meta"]["total_count"], 0);
}
