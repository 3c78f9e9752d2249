//! Workflows: definitions (`PUT`/`GET /v1/workflows[/{key}]`, management-API shapes),
//! `POST /v1/workflows/{key}/trigger` (spec §3.1, §3.3) and `POST .../cancel` (§3.2).
//! All secret-key only.

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

/// Most recipients one cancel may list (as many as one trigger may have).
const MAX_CANCEL_RECIPIENTS: usize = 1_000;

use super::common::RequestIdValue;
use crate::auth::ServerKey;
use crate::engine::UpsertError;
use crate::engine::accept::{Accepted, IDEMPOTENCY_HEADER};
use crate::error::ApiError;
use crate::model::RecipientRef;
use crate::model::trigger::MAX_RECIPIENTS;
use crate::model::workflow::parse_key;
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/workflows", web::get().to(list))
        .route("/v1/workflows/{key}", web::get().to(get))
        .route("/v1/workflows/{key}", web::put().to(upsert))
        .route("/v1/workflows/{key}/trigger", web::post().to(trigger))
        .route("/v1/workflows/{key}/cancel", web::post().to(cancel));
}

/// Largest page of `GET /v1/workflows`.
const MAX_PAGE_SIZE: usize = 100;

#[derive(Deserialize)]
struct ListQuery {
    page_size: Option<usize>,
    after: Option<String>,
}

async fn list(
    _: ServerKey,
    state: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page_size = query.page_size.unwrap_or(50);
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(ApiError::invalid(
            "page_size",
            format!("must be between 1 and {MAX_PAGE_SIZE}"),
        ));
    }
    // The cursor is the last key of the previous page: keys are unique and sorted.
    let all = state.engine.registry().list();
    let rest: Vec<_> = all
        .iter()
        .filter(|w| {
            query
                .after
                .as_deref()
                .is_none_or(|a| w.def.key.as_str() > a)
        })
        .collect();
    let page: Vec<Value> = rest.iter().take(page_size).map(|w| w.to_wire()).collect();
    let after = (rest.len() > page_size)
        .then(|| rest.get(page_size - 1).map(|w| w.def.key.clone()))
        .flatten();
    Ok(HttpResponse::Ok().json(json!({
        "entries": page,
        // Only forward paging (`after`) is offered, so there is never a `before` cursor.
        "page_info": {"__typename": "PageInfo", "after": after, "before": null, "page_size": page_size},
    })))
}

fn path_key(raw: &str) -> Result<String, ApiError> {
    parse_key(raw).map_err(|m| ApiError::invalid("key", m))
}

async fn get(
    _: ServerKey,
    state: web::Data<AppState>,
    key: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let workflow = state
        .engine
        .registry()
        .get(&key)
        .ok_or_else(|| ApiError::WorkflowMissing(key.into_inner()))?;
    Ok(HttpResponse::Ok().json(workflow.to_wire()))
}

/// `PUT /v1/workflows/{key}` with `{"workflow": {...}}`: validates, compiles, stores and
/// makes the new version live for the next trigger. Answers `{"workflow": Workflow}`.
async fn upsert(
    _: ServerKey,
    state: web::Data<AppState>,
    key: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = path_key(&key)?;
    let body = body.into_inner();
    let definition = match body.get("workflow") {
        Some(w @ Value::Object(_)) => w,
        Some(_) => return Err(ApiError::invalid("workflow", "must be an object")),
        None => {
            return Err(ApiError::invalid(
                "workflow",
                "is required: send `{\"workflow\": {...}}`",
            ));
        }
    };
    let workflow = state
        .engine
        .registry()
        .upsert(&key, definition, "workflow")
        .await
        .map_err(|e| match e {
            UpsertError::Invalid(errors) => ApiError::invalid_fields(errors),
            UpsertError::Store(e) => e.into(),
        })?;
    Ok(HttpResponse::Ok().json(json!({"workflow": workflow.to_wire()})))
}

/// `POST /v1/workflows/{key}/trigger`: 200 `{workflow_run_id}` once the run committed.
async fn trigger(
    _: ServerKey,
    req: HttpRequest,
    state: web::Data<AppState>,
    key: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = key.into_inner();
    let body = body.into_inner();
    let tenant = body
        .get("tenant")
        .and_then(|t| t.as_str().or(t["id"].as_str()));
    if let Some(tenant) = tenant {
        super::note_tenant(&req, tenant);
    }
    // Before anything is parsed or stored: a refused trigger leaves no trace. Items are
    // the listed recipients; a list that can never be valid (not a list, or longer than
    // the 1,000-recipient limit) counts none, so it is answered 422, not 429, below.
    let items = body["recipients"]
        .as_array()
        .filter(|r| r.len() <= MAX_RECIPIENTS)
        .map_or(0, |r| u32::try_from(r.len()).unwrap_or(u32::MAX));
    if let Err(refused) = state.backpressure.admit(tenant, items).await {
        state.metrics.trigger_refused(refused.reason());
        return Err(refused.into());
    }
    let idempotency_key = match req.headers().get(IDEMPOTENCY_HEADER) {
        None => None,
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))?
                .to_owned(),
        ),
    };
    let request_id = req
        .extensions()
        .get::<RequestIdValue>()
        .map(|r| r.0.clone())
        .unwrap_or_else(crate::ids::uuid);
    let accepted = state
        .engine
        .trigger(&key, &body, idempotency_key.as_deref(), &request_id)
        .await?;
    if let Accepted::New { .. } = accepted {
        state.backpressure.accepted(tenant, items);
        state.metrics.trigger_accepted();
    }
    let mut response = HttpResponse::Ok();
    match &accepted {
        Accepted::New { .. } => {}
        Accepted::Replayed {
            original_request_id,
            ..
        } => {
            response.insert_header(("idempotent-replayed", "true"));
            response.insert_header(("original-x-request-id", original_request_id.as_str()));
        }
    }
    Ok(response.json(json!({"workflow_run_id": accepted.run_id()})))
}

/// `POST /v1/workflows/{key}/cancel` (spec §3.2): cancels the recipient runs triggered
/// with `cancellation_key` (at or before this cancel), for every recipient or only the
/// listed ones (at most 1,000): paused ones now, ones not paused yet when they pause (see
/// `store::cancellations`). A run that already finished is not touched. Answers 204 once
/// the cancel committed, so a user's "task done, cancel the reminder" always holds.
async fn cancel(
    _: ServerKey,
    state: web::Data<AppState>,
    key: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let key = key.into_inner();
    let body = body.into_inner();
    let mut errors = Vec::new();
    let mut cancellation_key = String::new();
    let mut recipients = None;
    match body.get("cancellation_key") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 255 => cancellation_key = k.clone(),
        _ => errors.push(crate::error::FieldError::new(
            "cancellation_key",
            "is required: a string of 1 to 255 characters",
        )),
    }
    match body.get("recipients") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) if list.len() > MAX_CANCEL_RECIPIENTS => {
            errors.push(crate::error::FieldError::new(
                "recipients",
                format!("may list at most {MAX_CANCEL_RECIPIENTS} recipients"),
            ))
        }
        Some(Value::Array(list)) => {
            let mut parsed = Vec::with_capacity(list.len());
            for (i, r) in list.iter().enumerate() {
                match RecipientRef::parse(r) {
                    Ok(r) => parsed.push(r),
                    Err(m) => {
                        errors.push(crate::error::FieldError::new(format!("recipients[{i}]"), m))
                    }
                }
            }
            recipients = Some(parsed);
        }
        Some(_) => errors.push(crate::error::FieldError::new(
            "recipients",
            "must be an array of recipient references",
        )),
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid_fields(errors));
    }
    if state.engine.registry().get(&key).is_none() {
        return Err(ApiError::WorkflowMissing(key));
    }
    state
        .engine
        .cancel(&key, &cancellation_key, recipients)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
