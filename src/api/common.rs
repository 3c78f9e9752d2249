//! Cross-cutting HTTP pieces: extractor error handlers that answer in Knock's error shape,
//! CORS, request ids, and the fallback for unknown routes.

use actix_web::dev::{Service, ServiceResponse, Transform};
use actix_web::error::{JsonPayloadError, PayloadError, QueryPayloadError};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::future::LocalBoxFuture;

use crate::error::ApiError;

/// JSON bodies: size limit, any content type, and serde errors as 400/422 in Knock's shape.
pub fn json_config(limit: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(limit)
        .content_type_required(false)
        .error_handler(move |err, _req| json_error(err, limit).into())
}

/// Raw bodies (`web::Bytes`) get the same limit.
pub fn payload_config(limit: usize) -> web::PayloadConfig {
    web::PayloadConfig::new(limit)
}

pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        let message = match &err {
            QueryPayloadError::Deserialize(e) => e.to_string(),
            other => other.to_string(),
        };
        ApiError::invalid("query", message).into()
    })
}

pub fn path_config() -> web::PathConfig {
    web::PathConfig::default()
        .error_handler(|err, _req| ApiError::invalid("path", err.to_string()).into())
}

/// Maps a JSON extractor failure to the error a client can act on.
pub fn json_error(err: JsonPayloadError, limit: usize) -> ApiError {
    match err {
        JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
            ApiError::PayloadTooLarge { limit }
        }
        JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::PayloadTooLarge { limit },
        JsonPayloadError::Deserialize(e) if e.is_data() => ApiError::invalid("body", e.to_string()),
        JsonPayloadError::Deserialize(e) => ApiError::InvalidJson(e.to_string()),
        other => ApiError::InvalidJson(other.to_string()),
    }
}

/// Unknown paths and wrong methods, in Knock's error shape.
pub async fn fallback(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteMissing(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

/// CORS for the browser client (spec §1.5).
pub fn cors(origins: &str) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(vec!["GET", "POST", "PUT", "DELETE", "OPTIONS"])
        .allowed_headers(vec![
            "authorization",
            "content-type",
            "accept",
            "x-knock-user-token",
            "x-knock-client",
            "x-knock-branch",
            "idempotency-key",
        ])
        .expose_headers(vec!["retry-after", "x-request-id"])
        .max_age(3600);
    if origins.trim() == "*" {
        cors = cors.allow_any_origin().send_wildcard();
    } else {
        for origin in origins.split(',').map(str::trim).filter(|o| !o.is_empty()) {
            cors = cors.allowed_origin(origin);
        }
    }
    cors
}

/// Middleware that gives every response an `x-request-id` (and reuses the client's).
pub fn request_id() -> RequestId {
    RequestId
}

pub struct RequestId;

/// Percent-escapes in a path must decode to UTF-8: decoding `%ff%fe` lossily would map
/// different byte strings onto one id (U+FFFD). Checked before routing, so no handler
/// ever sees such a path.
fn check_path(path: &str) -> Result<(), ApiError> {
    if !path.contains('%') {
        return Ok(());
    }
    percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .map(drop)
        .map_err(|_| ApiError::BadPath("The path holds percent-escapes that are not UTF-8.".into()))
}

/// A client's `x-request-id` is reused only when it is 1 to 128 of `[A-Za-z0-9._-]`:
/// it is echoed in headers and written to every log line of the request, so it must not
/// carry spaces, `key=value` pairs or control characters. Anything else is replaced by a
/// generated id.
pub fn is_valid_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The id of the current request, for handlers that echo it (idempotent replays).
#[derive(Clone, Debug)]
pub struct RequestIdValue(pub String);

impl<S, B> Transform<S, actix_web::dev::ServiceRequest> for RequestId
where
    S: Service<
            actix_web::dev::ServiceRequest,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestIdService<S>;
    type InitError = ();
    type Future = std::future::Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        std::future::ready(Ok(RequestIdService { service }))
    }
}

pub struct RequestIdService<S> {
    service: S,
}

impl<S, B> Service<actix_web::dev::ServiceRequest> for RequestIdService<S>
where
    S: Service<
            actix_web::dev::ServiceRequest,
            Response = ServiceResponse<B>,
            Error = actix_web::Error,
        > + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: actix_web::dev::ServiceRequest) -> Self::Future {
        use actix_web::HttpMessage;
        if let Err(e) = check_path(req.path()) {
            return Box::pin(std::future::ready(Err(e.into())));
        }
        let id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| is_valid_request_id(v))
            .map(str::to_owned)
            .unwrap_or_else(crate::ids::uuid);
        req.extensions_mut().insert(RequestIdValue(id.clone()));
        let fut = self.service.call(req);
        Box::pin(async move {
            let mut res = fut.await?;
            if let Ok(value) = HeaderValue::from_str(&id) {
                res.headers_mut()
                    .insert(HeaderName::from_static("x-request-id"), value);
            }
            Ok(res)
        })
    }
}
