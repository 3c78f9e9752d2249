//! `ApiError`: every failure the API can answer, mapped to HTTP in exactly one place and
//! written in Knock's error body `{code, message, status, type}` (plus `errors` on 422).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::store::StoreError;

/// Validation errors are the model's; re-exported for the handlers that build them.
pub use crate::model::field_error::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("No API key was sent. Pass `Authorization: Bearer <key>`.")]
    AuthenticationRequired,
    #[error("The API key is not valid.")]
    ApiKeyMissing,
    #[error("This endpoint needs the secret key; a public key cannot call it.")]
    IncorrectTokenType,
    #[error("Enhanced security is on: send a signed user token in `X-Knock-User-Token`.")]
    MissingUserToken,
    #[error("The user token is not valid: {0}")]
    InvalidUserToken(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    BadPath(String),
    #[error("The request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("{message}")]
    InvalidParams {
        message: String,
        errors: Vec<FieldError>,
    },
    #[error("The request body is larger than the {limit}-byte limit.")]
    PayloadTooLarge { limit: usize },
    #[error("{0} was not found.")]
    NotFound(String),
    #[error("The workflow `{0}` does not exist.")]
    WorkflowMissing(String),
    #[error("The channel `{0}` does not exist.")]
    ChannelInvalid(String),
    #[error("The actor `{0}` has never been identified.")]
    ActorMissing(String),
    #[error("{0}")]
    IdempotencyMismatch(String),
    #[error("No route matches {0}.")]
    RouteMissing(String),
    #[error("Method {0} is not allowed on this path.")]
    MethodNotAllowed(String),
    #[error("Tidings does not implement {0}.")]
    Unsupported(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooManyRequests(String),
    /// A trigger refused by backpressure; answers `Retry-After` when waiting helps.
    #[error(transparent)]
    RateLimited(#[from] crate::backpressure::Refused),
    #[error("The server is shutting down or overloaded; retry.")]
    Unavailable,
    /// The storage failed (disk full, I/O error): nothing was stored; the SDKs retry a
    /// 503. The cause is logged, never answered.
    #[error("The server could not store this request right now; retry later.")]
    StorageFailed(String),
    #[error("Internal error.")]
    Internal(String),
}

impl ApiError {
    /// Convenience for the common single-field 422.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        ApiError::InvalidParams {
            message: format!("`{field}`: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// A 422 carrying several field errors.
    pub fn invalid_fields(errors: Vec<FieldError>) -> Self {
        let message = errors
            .iter()
            .map(|e| format!("`{}`: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; ");
        ApiError::InvalidParams { message, errors }
    }

    /// Knock's machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::AuthenticationRequired => "authentication_required",
            ApiError::ApiKeyMissing => "api_key_missing",
            ApiError::IncorrectTokenType => "incorrect_token_type",
            ApiError::MissingUserToken => "missing_user_token",
            ApiError::InvalidUserToken(_) => "invalid_user_token",
            ApiError::Forbidden(_) => "authorization",
            ApiError::BadPath(_) => "invalid_path",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::InvalidParams { .. } => "invalid_params",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::NotFound(_) => "resource_missing",
            ApiError::WorkflowMissing(_) => "workflow_missing",
            ApiError::ChannelInvalid(_) => "channel_invalid",
            ApiError::ActorMissing(_) => "actor_missing",
            ApiError::IdempotencyMismatch(_) => "idempotency_key_reused",
            ApiError::RouteMissing(_) => "route_missing",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Unsupported(_) => "not_supported",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooManyRequests(_) | ApiError::RateLimited(_) => "rate_limited",
            ApiError::Unavailable | ApiError::StorageFailed(_) => "unavailable",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn error_type(&self) -> &'static str {
        match self.status_code().as_u16() {
            401 | 403 => "authentication_error",
            500.. => "api_error",
            _ => "invalid_request_error",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::AuthenticationRequired
            | ApiError::ApiKeyMissing
            | ApiError::MissingUserToken
            | ApiError::InvalidUserToken(_) => StatusCode::UNAUTHORIZED,
            ApiError::IncorrectTokenType | ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::BadPath(_) | ApiError::InvalidJson(_) | ApiError::IdempotencyMismatch(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::InvalidParams { .. } | ApiError::ActorMissing(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::NotFound(_)
            | ApiError::WorkflowMissing(_)
            | ApiError::ChannelInvalid(_)
            | ApiError::RouteMissing(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unsupported(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooManyRequests(_) | ApiError::RateLimited(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Unavailable | ApiError::StorageFailed(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            match self {
                ApiError::Internal(cause) => tracing::error!(cause = %cause, "request failed"),
                ApiError::StorageFailed(cause) => {
                    tracing::error!(cause = %cause, "storage failed; answered 503")
                }
                other => tracing::warn!(error = %other, "request answered with {status}"),
            }
        }
        let mut body = serde_json::json!({
            "code": self.code(),
            "message": self.to_string(),
            "status": status.as_u16(),
            "type": self.error_type(),
        });
        if let ApiError::InvalidParams { errors, .. } = self {
            body["errors"] = serde_json::to_value(errors).unwrap_or_default();
        }
        let mut response = HttpResponse::build(status);
        if matches!(self, ApiError::Unsupported(_)) {
            // Retrying cannot help; tell the node SDK not to.
            response.insert_header(("x-should-retry", "false"));
        }
        if let ApiError::RateLimited(refused) = self {
            // Both official SDKs wait `Retry-After` seconds before retrying a 429.
            match refused.retry_after_secs() {
                Some(secs) => response.insert_header(("retry-after", secs.to_string())),
                None => response.insert_header(("x-should-retry", "false")),
            };
        }
        if matches!(self, ApiError::Unavailable | ApiError::StorageFailed(_)) {
            response.insert_header(("retry-after", "1"));
        }
        response.json(body)
    }
}

impl From<crate::model::feed_params::ParamError> for ApiError {
    fn from(e: crate::model::feed_params::ParamError) -> Self {
        ApiError::invalid(e.field, e.message)
    }
}

impl From<crate::engine::refusal::Refusal> for ApiError {
    fn from(r: crate::engine::refusal::Refusal) -> Self {
        use crate::engine::refusal::Refusal;
        match r {
            Refusal::WorkflowMissing(key) => ApiError::WorkflowMissing(key),
            Refusal::Invalid(errors) => ApiError::invalid_fields(errors),
            Refusal::IdempotencyMismatch(message) => ApiError::IdempotencyMismatch(message),
            Refusal::ActorMissing(id) => ApiError::ActorMissing(id),
            Refusal::NotFound(what) => ApiError::NotFound(what),
            Refusal::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_storage_failure() {
            return ApiError::StorageFailed(e.to_string());
        }
        match e {
            StoreError::NotFound => ApiError::NotFound("The resource".into()),
            StoreError::Missing(what) => ApiError::NotFound(what),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid { field, message } => ApiError::invalid(field, message),
            StoreError::WriterGone => ApiError::Unavailable,
            other => ApiError::Internal(other.to_string()),
        }
    }
}
