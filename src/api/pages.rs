//! The demo pages in `static/`: `/` shows a user's live feed, `/admin` an object feed for
//! tenant admins. Embedded in the binary so `cargo run` serves them from anywhere. Only the
//! public key and the default channel id are filled in: both are public by design.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};

use crate::error::ApiError;
use crate::startup::AppState;
use crate::store::channels::{self, DEFAULT_CHANNEL_KEY};

const INDEX_HTML: &str = include_str!("../../static/index.html");
const ADMIN_HTML: &str = include_str!("../../static/admin.html");
const FEED_JS: &str = include_str!("../../static/feed.js");
const STYLE_CSS: &str = include_str!("../../static/style.css");

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/admin", web::get().to(admin))
        .route("/static/feed.js", web::get().to(feed_js))
        .route("/static/style.css", web::get().to(style_css));
}

async fn index(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    page(&state, INDEX_HTML).await
}

async fn admin(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    page(&state, ADMIN_HTML).await
}

async fn page(state: &AppState, template: &'static str) -> Result<HttpResponse, ApiError> {
    let channel = state
        .store
        .read(|db| channels::find(db, DEFAULT_CHANNEL_KEY))
        .await?
        .ok_or_else(|| ApiError::ChannelInvalid(DEFAULT_CHANNEL_KEY.into()))?;
    let html = template
        .replace("{{PUBLIC_KEY}}", &state.keys.public_key)
        .replace("{{CHANNEL_ID}}", &channel.id);
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .body(html))
}

async fn feed_js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(FEED_JS)
}

async fn style_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE_CSS)
}
