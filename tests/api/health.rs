use crate::helpers::{assert_error, spawn_app};

#[tokio::test]
async fn health_answers_200() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn unknown_routes_answer_404_in_knocks_error_shape() {
    let app = spawn_app().await;
    let res = app.get("/v1/nope").send().await.expect("request");
    assert_error(res, 404, "route_missing").await;
}

#[tokio::test]
async fn demo_page_is_served_with_the_public_key_and_channel_filled_in() {
    let app = spawn_app().await;
    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(html.contains(crate::helpers::PUBLIC_KEY));
    assert!(!html.contains("{{CONFIG}}"));
    assert!(
        !html.contains(crate::helpers::SECRET_KEY),
        "the secret key must never reach a page"
    );
    let js = app
        .client
        .get(app.url("/static/inbox.js"))
        .send()
        .await
        .expect("request");
    assert_eq!(js.status(), 200);
}
