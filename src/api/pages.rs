//! Tidings' own pages (`static/`): `/` is a user's inbox, `/admin` a tenant admin's view
//! of object feeds. Plain HTML, CSS and JavaScript modules embedded in the binary (no
//! build step), so `cargo run` serves them from anywhere and a host app can import
//! `/static/inbox.js` and `/static/inbox.css` from its Tidings server.
//!
//! Only public facts are filled into the pages: the public key, the default channel id
//! and whether demo mode is on. The pages carry a Content-Security-Policy that allows
//! scripts from this server only, so nothing in item data can ever run (item HTML is
//! sanitized on the server as well).

use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::error::ApiError;
use crate::model::channel::DEFAULT_CHANNEL_KEY;
use crate::state::AppState;

const INDEX_HTML: &str = include_str!("../../static/index.html");
const ADMIN_HTML: &str = include_str!("../../static/admin.html");

/// The static assets: path under `/static/`, content type, body.
const ASSETS: &[(&str, &str, &str)] = &[
    ("tidings.js", JS, include_str!("../../static/tidings.js")),
    ("inbox.js", JS, include_str!("../../static/inbox.js")),
    ("app.js", JS, include_str!("../../static/app.js")),
    ("admin.js", JS, include_str!("../../static/admin.js")),
    ("page.js", JS, include_str!("../../static/page.js")),
    ("inbox.css", CSS, include_str!("../../static/inbox.css")),
    ("style.css", CSS, include_str!("../../static/style.css")),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../static/icon.svg"),
    ),
];
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Scripts, styles and sockets from this server only; images may come from https (actor
/// avatars, images in item bodies).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' https: data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'self'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(index))
        .route("/admin", web::get().to(admin))
        .route("/favicon.ico", web::get().to(favicon))
        .route("/static/{name}", web::get().to(asset));
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
        .channel(DEFAULT_CHANNEL_KEY.to_owned())
        .await?
        .ok_or_else(|| ApiError::ChannelInvalid(DEFAULT_CHANNEL_KEY.into()))?;
    let config = json!({
        "publicKey": state.keys.public_key,
        "channelId": channel.id,
        "demo": state.settings.demo,
    });
    // JSON inside a <script type="application/json"> block: `<` is escaped so no value can
    // close the block.
    let config = config.to_string().replace('<', "\\u003c");
    let html = template.replace("{{CONFIG}}", &config);
    Ok(HttpResponse::Ok()
        .content_type(ContentType::html())
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(html))
}

async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(file, _, _)| *file == name.as_str())
        .ok_or_else(|| ApiError::RouteMissing(format!("GET /static/{name}")))?;
    Ok(HttpResponse::Ok()
        .content_type(*content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-content-type-options", "nosniff"))
        .body(*body))
}

async fn favicon() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/static/icon.svg"))
        .finish()
}
