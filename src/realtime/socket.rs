//! `GET /ws/v1/websocket`: authenticates the upgrade, then hands the socket to a session.
//!
//! Credentials come from the query string as Phoenix sends them (`api_key`, `user_token`,
//! `vsn`; null params arrive as empty `&&` segments, which are skipped), or from the
//! `Authorization` / `X-Knock-User-Token` headers for non-browser clients. Bad
//! credentials answer HTTP 403 before upgrading (Phoenix's `connect/3` refusal, spec
//! §2.4), with Knock's error body saying why.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use actix_web::FromRequest;

use super::inbound::Inbound;
use super::overflow_close::CloseAfterOverflow;
use super::session::{self, SessionContext};
use crate::auth::Caller;
use crate::auth::extract::authenticate;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws/v1/websocket", web::get().to(websocket));
}

/// The socket params this server reads.
#[derive(Debug, Default, PartialEq)]
struct SocketParams {
    api_key: Option<String>,
    user_token: Option<String>,
    vsn: Option<String>,
}

impl SocketParams {
    /// Parses a query string, tolerating empty segments and empty values.
    fn parse(query: &str) -> SocketParams {
        let mut params = SocketParams::default();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if value.is_empty() {
                continue;
            }
            let slot = match key.as_ref() {
                "api_key" => &mut params.api_key,
                "user_token" => &mut params.user_token,
                "vsn" => &mut params.vsn,
                _ => continue,
            };
            *slot = Some(value.into_owned());
        }
        params
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A refused upgrade: always 403 (what the Phoenix client expects), Knock's error body.
fn refuse(error: &ApiError) -> HttpResponse {
    HttpResponse::build(StatusCode::FORBIDDEN).json(json!({
        "code": error.code(),
        "message": error.to_string(),
        "status": 403,
        "type": "authentication_error",
    }))
}

async fn websocket(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    if state.hub.is_shutting_down() {
        return Err(ApiError::Unavailable.into());
    }
    let params = SocketParams::parse(req.query_string());
    if let Some(vsn) = &params.vsn
        && !vsn.starts_with("2.")
    {
        return Err(ApiError::invalid(
            "vsn",
            format!("serializer version `{vsn}` is not supported; use 2.0.0"),
        )
        .into());
    }
    let bearer = header(&req, "authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    let Some(key) = params.api_key.as_deref().or(bearer) else {
        return Ok(refuse(&ApiError::AuthenticationRequired));
    };
    let token = params
        .user_token
        .as_deref()
        .or_else(|| header(&req, "x-knock-user-token"));
    let caller = match authenticate(&state, key, token) {
        Ok(caller) => caller,
        Err(e) => return Ok(refuse(&e)),
    };
    let user = match &caller {
        Caller::User(claims) => Some(claims.user_id.as_str()),
        _ => None,
    };
    // Behind a trusted proxy, the client it forwards for (`--trusted-proxies`).
    let address = crate::proxies::client_ip(req.head(), &state.settings.trusted_proxies);
    let slot = match state.sockets.acquire(user, address) {
        Ok(slot) => slot,
        Err(why) => {
            return Err(ApiError::TooManyRequests(format!("Too many sockets: {why}.")).into());
        }
    };
    // actix-ws buffers whatever arrives before checking frame sizes; the guard inside
    // `Inbound` stops an oversized frame at its header (see `frame_guard`), and the
    // session reads a few chunks ahead of actix-ws through it, so the client's end of
    // the connection is seen even while frames it sent before leaving are still queued
    // (they are then dropped).
    let (inbound, mut guarded) = Inbound::new(body.into_inner(), session::MAX_FRAME_BYTES);
    let body = web::Payload::from_request(&req, &mut guarded).await?;
    let (response, session, stream) = actix_ws::handle(&req, body)?;
    // After a refused frame's 1009 close, the connection ends at once (`overflow_close`).
    let overflow = inbound.overflow_flag();
    let response = response.map_body(|_, body| CloseAfterOverflow::wrap(body, overflow));
    let ctx = SessionContext {
        state: state.clone(),
        caller,
        inbound,
        _slot: slot,
    };
    actix_web::rt::spawn(session::run(session, stream, ctx));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_segments_and_null_params_are_skipped() {
        let p = SocketParams::parse("&api_key=pk_x&&vsn=2.0.0&user_token=");
        assert_eq!(
            p,
            SocketParams {
                api_key: Some("pk_x".into()),
                user_token: None,
                vsn: Some("2.0.0".into()),
            }
        );
        assert_eq!(SocketParams::parse(""), SocketParams::default());
        assert_eq!(
            SocketParams::parse("user_token=a.b%2Bc&api_key=pk").user_token,
            Some("a.b+c".into())
        );
    }
}
