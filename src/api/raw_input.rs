//! Reading raw request input for handlers that cannot use actix's typed extractors:
//! query strings with both `a[]=x` and `a.b=x` encodings (spec §1.4), and optional JSON
//! bodies (status `PUT`s may come with no body at all).
//!
//! Errors answer in Knock's shape: oversize → 413, malformed JSON → 400.

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// The decoded `(key, value)` pairs of the query string, in order.
pub fn query_pairs(req: &HttpRequest) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Reads the body up to the configured limit; `None` when it is empty.
pub async fn optional_json(
    state: &AppState,
    mut payload: web::Payload,
) -> Result<Option<Value>, ApiError> {
    let limit = state.settings.max_body_bytes;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
            other => ApiError::InvalidJson(other.to_string()),
        })?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| ApiError::InvalidJson(e.to_string()))
}
