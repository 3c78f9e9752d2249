//! Knock endpoints Tidings does not implement. Each answers `501 not_supported` in Knock's
//! error shape with `x-should-retry: false`, so an SDK call fails fast and clearly instead
//! of hitting a bare 404 or, worse, a silent success. Registered first, so generic patterns
//! (`/v1/messages/{id}/{status}`) cannot swallow them; none overlaps a real endpoint.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;

/// (path pattern, what it is), from Knock's published OpenAPI document.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("/v1/audiences/{key}/members", "audiences"),
    ("/v1/users/{user_id}/guides/{tail:.*}", "in-app guides"),
    (
        "/v1/providers/{tail:.*}",
        "Slack and Microsoft Teams providers",
    ),
    (
        "/v1/integrations/{tail:.*}",
        "Census and Hightouch integrations",
    ),
    (
        "/v1/users/{user_id}/preference_center/{tail:.*}",
        "the hosted preference center",
    ),
    (
        "/v1/messages/{message_id}/delivery_logs",
        "delivery logs (in-app messages have no provider)",
    ),
    ("/v1/notify/cancel", "the legacy notify API"),
];

pub fn routes(cfg: &mut web::ServiceConfig) {
    for (path, feature) in UNSUPPORTED {
        let feature: &'static str = feature;
        cfg.route(
            path,
            web::to(move |_req: HttpRequest| async move {
                Err::<HttpResponse, ApiError>(ApiError::Unsupported(feature.to_owned()))
            }),
        );
    }
}
