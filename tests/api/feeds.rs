//! `GET /v1/users/{id}/feeds/{channel}`: wire shape in both modes, the channel by UUID or
//! key, and every filter with the counts that follow it.

use serde_json::{Value, json};

use crate::feed_support::{
    assert_counts_exact, channel_id, comment, entries, feed, ids, invite, seed,
};
use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn rich_feed_items_carry_every_field_with_full_actor_objects() {
    let app = spawn_app().await;
    comment(
        &app,
        json!(["ada"]),
        json!({"meta": {"deep": true}, "tags": ["a"]}),
        None,
    )
    .await;
    let body = app.wait_for_feed("ada", "", 1).await;
    assert_eq!(body["vars"], json!({}));
    assert_eq!(
        body["meta"],
        json!({"__typename": "FeedMetadata", "total_count": 1, "unread_count": 1, "unseen_count": 1})
    );
    assert_eq!(
        body["page_info"],
        json!({"__typename": "PageInfo", "after": null, "before": null, "page_size": 50, "total_count": 1})
    );
    let item = &entries(&body)[0];
    assert_eq!(item["__typename"], "FeedItem");
    assert!(item["__cursor"].as_str().is_some_and(|c| !c.is_empty()));
    assert_eq!(item["id"].as_str().map(str::len), Some(27));
    assert_eq!(item["actors"][0]["__typename"], "User");
    assert_eq!(item["actors"][0]["id"], "grace");
    assert_eq!(item["actors"][0]["name"], "Grace Hopper");
    assert_eq!(item["total_actors"], 1);
    assert_eq!(item["total_activities"], 1);
    assert_eq!(item["activities"][0]["__typename"], "Activity");
    assert_eq!(item["activities"][0]["recipient"]["id"], "ada");
    assert_eq!(item["activities"][0]["actor"]["id"], "grace");
    assert_eq!(
        item["data"]["meta"],
        json!({"deep": true}),
        "rich keeps nested data"
    );
    assert_eq!(item["blocks"][0]["name"], "body");
    for field in [
        "read_at",
        "seen_at",
        "archived_at",
        "interacted_at",
        "link_clicked_at",
        "clicked_at",
        "tenant",
    ] {
        assert!(item[field].is_null(), "{field} should be null: {item}");
    }
    assert!(
        item["inserted_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert!(item["updated_at"].is_string());
    assert_eq!(item["source"]["__typename"], "NotificationSource");
    assert_eq!(item["source"]["key"], "new-comment");
    assert_eq!(item["source"]["categories"], json!(["collaboration"]));
    assert!(item["source"]["version_id"].is_string());
    assert!(item.get("channel_id").is_none() && item.get("recipient").is_none());
}

#[tokio::test]
async fn compact_mode_drops_activities_and_nested_data() {
    let app = spawn_app().await;
    comment(
        &app,
        json!(["ada"]),
        json!({"meta": {"deep": true}, "tags": ["a"]}),
        None,
    )
    .await;
    app.wait_for_feed("ada", "", 1).await;
    let body = feed(&app, "ada", "mode=compact").await;
    let item = &entries(&body)[0];
    assert!(item.get("activities").is_none() && item.get("total_activities").is_none());
    assert!(item["data"].get("meta").is_none() && item["data"].get("tags").is_none());
    assert_eq!(item["data"]["page_title"], "Launch plan");
    assert_eq!(item["actors"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn an_unknown_user_has_an_empty_feed_not_a_404() {
    let app = spawn_app().await;
    let body = feed(&app, "never-identified", "").await;
    assert_eq!(body["entries"], json!([]));
    assert_eq!(body["meta"]["total_count"], 0);
    assert_eq!(body["meta"]["unread_count"], 0);
    assert_eq!(body["page_info"]["after"], Value::Null);
}

#[tokio::test]
async fn the_channel_may_be_given_by_uuid_or_key_and_an_unknown_one_is_404() {
    let app = spawn_app().await;
    comment(&app, json!(["ada"]), json!({}), None).await;
    let body = app.wait_for_feed("ada", "", 1).await;
    let id = ids(&body)[0].clone();
    let channel = channel_id(&app, &id).await;
    let by_uuid: Value = app
        .get_json(&format!("/v1/users/ada/feeds/{channel}"))
        .await
        .1;
    assert_eq!(ids(&by_uuid), vec![id]);
    let res = app
        .get("/v1/users/ada/feeds/no-such-channel")
        .send()
        .await
        .expect("feed");
    assert_error(res, 404, "channel_invalid").await;
}

#[tokio::test]
async fn tenant_matches_its_items_and_no_tenant_items_unless_has_tenant() {
    let app = spawn_app().await;
    comment(&app, json!(["ada"]), json!({"n": 1}), Some("acme")).await;
    comment(&app, json!(["ada"]), json!({"n": 2}), Some("globex")).await;
    comment(&app, json!(["ada"]), json!({"n": 3}), None).await;
    app.wait_for_feed("ada", "", 3).await;
    // Independent triggers may commit in either order, so compare the tenants as sets
    // (sorted by their JSON text), not by feed position.
    let tenants = |body: &Value| -> Vec<Value> {
        let mut found: Vec<Value> = entries(body).iter().map(|e| e["tenant"].clone()).collect();
        found.sort_by_key(|t| t.to_string());
        found
    };
    let acme = feed(&app, "ada", "tenant=acme").await;
    assert_eq!(tenants(&acme), vec![json!("acme"), Value::Null]);
    assert_eq!(acme["meta"]["total_count"], 2);
    assert_eq!(acme["meta"]["unread_count"], 2);
    let strict = feed(&app, "ada", "tenant=acme&has_tenant=true").await;
    assert_eq!(tenants(&strict), vec![json!("acme")]);
    assert_eq!(strict["meta"]["unseen_count"], 1);
    let any = feed(&app, "ada", "has_tenant=true").await;
    assert_eq!(tenants(&any), vec![json!("acme"), json!("globex")]);
    let none = feed(&app, "ada", "has_tenant=false").await;
    assert_eq!(tenants(&none), vec![Value::Null]);
    assert_eq!(none["meta"]["total_count"], 1);
    let all = feed(&app, "ada", "").await;
    assert_eq!(all["meta"]["total_count"], 3);
}

#[tokio::test]
async fn source_categories_and_trigger_data_narrow_entries_and_counts() {
    let app = spawn_app().await;
    comment(&app, json!(["ada"]), json!({"page_id": "p1", "n": 1}), None).await;
    comment(&app, json!(["ada"]), json!({"page_id": "p2", "n": 2}), None).await;
    invite(&app, "ada", None).await;
    app.wait_for_feed("ada", "", 3).await;
    let count = |body: &Value| (entries(body).len(), body["meta"]["total_count"].clone());
    let invites = feed(&app, "ada", "source=project-invite").await;
    assert_eq!(count(&invites), (1, json!(1)));
    assert_eq!(invites["meta"]["unread_count"], 1);
    assert_eq!(
        count(&feed(&app, "ada", "workflow_categories[]=invites").await),
        (1, json!(1))
    );
    assert_eq!(
        count(&feed(&app, "ada", "workflow_categories=collaboration").await),
        (3, json!(3))
    );
    assert_eq!(
        count(
            &feed(
                &app,
                "ada",
                "workflow_categories[]=nope&workflow_categories[]=invites"
            )
            .await
        ),
        (1, json!(1))
    );
    let p1 = feed(&app, "ada", "trigger_data=%7B%22page_id%22%3A%22p1%22%7D").await;
    assert_eq!(count(&p1), (1, json!(1)));
    assert_eq!(entries(&p1)[0]["data"]["page_id"], "p1");
    let typed = feed(
        &app,
        "ada",
        "trigger_data=%7B%22n%22%3A2%2C%22page_id%22%3A%22p2%22%7D",
    )
    .await;
    assert_eq!(count(&typed), (1, json!(1)));
    let miss = feed(&app, "ada", "trigger_data=%7B%22n%22%3A%222%22%7D").await;
    assert_eq!(
        count(&miss),
        (0, json!(0)),
        "a string does not equal a number"
    );
    assert_eq!(
        count(&feed(&app, "ada", "source=nothing").await),
        (0, json!(0))
    );
}

#[tokio::test]
async fn inserted_at_filters_work_in_both_encodings() {
    let app = spawn_app().await;
    comment(&app, json!(["ada"]), json!({"n": 1}), None).await;
    let first = app.wait_for_feed("ada", "", 1).await;
    let t1 = entries(&first)[0]["inserted_at"]
        .as_str()
        .expect("time")
        .to_owned();
    comment(&app, json!(["ada"]), json!({"n": 2}), None).await;
    let both = app.wait_for_feed("ada", "", 2).await;
    let t2 = entries(&both)[0]["inserted_at"]
        .as_str()
        .expect("time")
        .to_owned();
    assert!(t2 > t1);
    let enc = |t: &str| t.replace(':', "%3A");
    for query in [
        format!("inserted_at.gt={}", enc(&t1)),
        format!("inserted_at[gt]={}", enc(&t1)),
        format!("inserted_at.gte={}", enc(&t2)),
        format!("inserted_at[gte]={}", enc(&t2)),
    ] {
        let body = feed(&app, "ada", &query).await;
        assert_eq!(entries(&body).len(), 1, "{query}");
        assert_eq!(entries(&body)[0]["inserted_at"], json!(t2), "{query}");
        assert_eq!(body["meta"]["total_count"], 1, "{query}");
    }
    for query in [
        format!("inserted_at.lt={}", enc(&t2)),
        format!("inserted_at[lte]={}", enc(&t1)),
    ] {
        let body = feed(&app, "ada", &query).await;
        assert_eq!(entries(&body).len(), 1, "{query}");
        assert_eq!(entries(&body)[0]["inserted_at"], json!(t1), "{query}");
    }
}

#[tokio::test]
async fn status_and_archived_filter_entries_while_badges_ignore_status() {
    let app = spawn_app().await;
    let body = seed(&app, "ada", 4).await;
    let ids = ids(&body);
    for (id, status) in [(&ids[0], "read"), (&ids[1], "seen"), (&ids[2], "archived")] {
        let res = app
            .put(&format!("/v1/messages/{id}/{status}"), json!({}))
            .send()
            .await
            .expect("put");
        assert_eq!(res.status(), 200);
    }
    let expect = |query: &str, want: Vec<&String>| {
        let query = query.to_owned();
        let want: Vec<String> = want.into_iter().cloned().collect();
        let app = &app;
        async move {
            let body = feed(app, "ada", &query).await;
            assert_eq!(crate::feed_support::ids(&body), want, "{query}");
            assert_eq!(body["meta"]["total_count"], want.len(), "{query}");
            body
        }
    };
    let unread = expect("status=unread", vec![&ids[1], &ids[3]]).await;
    assert_eq!(unread["meta"]["unread_count"], 2);
    assert_eq!(
        unread["meta"]["unseen_count"], 2,
        "badges follow the scope, not status"
    );
    expect("status=read", vec![&ids[0]]).await;
    expect("status=seen", vec![&ids[1]]).await;
    expect("status=unseen", vec![&ids[0], &ids[3]]).await;
    expect("status=all", vec![&ids[0], &ids[1], &ids[3]]).await;
    let only = expect("archived=only", vec![&ids[2]]).await;
    assert_eq!(only["meta"]["unread_count"], 1);
    expect("archived=include", vec![&ids[0], &ids[1], &ids[2], &ids[3]]).await;
    expect(
        "archived=include&status=unread",
        vec![&ids[1], &ids[2], &ids[3]],
    )
    .await;
    assert_counts_exact(&app, "ada").await;
}
