//! Extractors that authenticate a request before the handler runs.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::token::{self, UserClaims};
use crate::error::ApiError;
use crate::state::AppState;

/// Proof that the request carries the secret key. Secret-only endpoints take this.
#[derive(Debug, Clone, Copy)]
pub struct ServerKey;

/// Who is calling an endpoint that browsers may also use.
#[derive(Debug, Clone, PartialEq)]
pub enum Caller {
    /// The secret key: full access.
    Server,
    /// Public key plus a verified user token.
    User(UserClaims),
    /// Public key without a token (only when enhanced security is off): trusted for the
    /// user named in the path, as Knock does.
    Public,
}

fn bearer(req: &HttpRequest) -> Result<&str, ApiError> {
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(ApiError::AuthenticationRequired)?;
    let value = header.to_str().map_err(|_| ApiError::ApiKeyMissing)?;
    let key = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(ApiError::ApiKeyMissing)?
        .trim();
    if key.is_empty() {
        return Err(ApiError::AuthenticationRequired);
    }
    Ok(key)
}

fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))
}

/// Decides who a (key, optional user token) pair is. Shared by HTTP and the socket.
pub fn authenticate(
    state: &AppState,
    key: &str,
    user_token: Option<&str>,
) -> Result<Caller, ApiError> {
    if constant_time_eq(key, &state.keys.secret_key) {
        return Ok(Caller::Server);
    }
    if !constant_time_eq(key, &state.keys.public_key) {
        return Err(ApiError::ApiKeyMissing);
    }
    match user_token.filter(|t| !t.is_empty()) {
        Some(jwt) => token::verify(jwt, &state.keys.signing_key)
            .or_else(|why| match &state.keys.demo {
                // Only a server in demo mode holds the demo key (`Keys::with_demo_key`).
                Some(demo) => token::verify(jwt, &demo.verifying_key).map_err(|_| why),
                None => Err(why),
            })
            .map(Caller::User)
            .map_err(ApiError::InvalidUserToken),
        None if state.settings.enhanced_security => Err(ApiError::MissingUserToken),
        None => Ok(Caller::Public),
    }
}

/// Compares secrets without leaking, through timing, how much of a guess was right.
fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl FromRequest for ServerKey {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let state = state(req)?;
            let key = bearer(req)?;
            if constant_time_eq(key, &state.keys.secret_key) {
                Ok(ServerKey)
            } else if constant_time_eq(key, &state.keys.public_key) {
                Err(ApiError::IncorrectTokenType)
            } else {
                Err(ApiError::ApiKeyMissing)
            }
        })())
    }
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready((|| {
            let state = state(req)?;
            let key = bearer(req)?;
            let user_token = req
                .headers()
                .get("x-knock-user-token")
                .and_then(|v| v.to_str().ok());
            authenticate(state, key, user_token)
        })())
    }
}
