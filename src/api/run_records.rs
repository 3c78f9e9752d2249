//! Run records (secret key only): `GET /v1/workflow_recipient_runs` (filters in
//! `model::run_records`, `{items, page_info}` envelope, newest first) and
//! `GET /v1/workflow_recipient_runs/{id}` with the ordered events — what an operator reads
//! to answer "why didn't Alice get this?".
//!
//! Shapes follow Knock's `WorkflowRecipientRun`/`WorkflowRecipientRunDetail`. A stored
//! event is `{event, status, step_ref?, step_type?, data, inserted_at?, id?, attempt?}`; the
//! view fills what the engine left out (`inserted_at` = `data.at`, else the recipient
//! run's, `attempt` = 1,
//! `id` = `<recipient run id>.<index>`, stable across reads).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::raw_input::query_pairs;
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::feed::encode_cursor;
use crate::model::run_records::RunListQuery;
use crate::state::AppState;
use crate::store::run_records::RunRecord;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/workflow_recipient_runs", web::get().to(list))
        .route("/v1/workflow_recipient_runs/{id}", web::get().to(get_one));
}

async fn list(
    req: HttpRequest,
    _key: ServerKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let query = RunListQuery::from_query(&query_pairs(&req))?;
    let page_size = query.page_size;
    let page = state.store.run_records(query).await?;
    let after = page
        .records
        .last()
        .filter(|_| page.has_older)
        .map(|r| encode_cursor(r.seq));
    let before = page
        .records
        .first()
        .filter(|_| page.has_newer)
        .map(|r| encode_cursor(r.seq));
    let items: Vec<Value> = page.records.iter().map(summary).collect();
    Ok(HttpResponse::Ok().json(json!({
        "items": items,
        "page_info": {
            "__typename": "PageInfo",
            "after": after,
            "before": before,
            "page_size": page_size,
        },
    })))
}

async fn get_one(
    path: web::Path<String>,
    _key: ServerKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let record = state
        .store
        .run_record(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("The workflow recipient run `{id}`")))?;
    let mut body = summary(&record);
    body["events"] = Value::Array(events(&record));
    Ok(HttpResponse::Ok().json(body))
}

/// When an event happened: its own `inserted_at`, else the `data.at` the engine records on
/// later events (resumed, cancelled), else the recipient run's start.
fn field_at(e: &Value, started: &str) -> Value {
    match &e["data"]["at"] {
        Value::String(at) => json!(at),
        _ => json!(started),
    }
}

fn is_error(event: &Value) -> bool {
    event["status"] == "error"
}

/// Knock's `WorkflowRecipientRun`.
fn summary(r: &RunRecord) -> Value {
    let error_count = r
        .events
        .as_array()
        .map_or(0, |events| events.iter().filter(|e| is_error(e)).count());
    let trigger_source = match &r.schedule_id {
        Some(schedule_id) => json!({"type": "schedule", "schedule_id": schedule_id,
                                    "cancellation_key": r.cancellation_key}),
        None => json!({"type": "api", "cancellation_key": r.cancellation_key}),
    };
    json!({
        "__typename": "WorkflowRecipientRun",
        "id": r.id,
        "workflow_run_id": r.workflow_run_id,
        "workflow": r.workflow_key,
        "status": r.status,
        "recipient": r.recipient.to_wire(),
        "actor": r.actor,
        "tenant": r.tenant,
        "error_count": error_count,
        "trigger_source": trigger_source,
        "inserted_at": r.inserted_at,
        "updated_at": r.updated_at,
    })
}

/// Knock's `WorkflowRecipientRunEvent`s, in the order they happened.
fn events(r: &RunRecord) -> Vec<Value> {
    let Some(stored) = r.events.as_array() else {
        return Vec::new();
    };
    stored
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let field = |k: &str, default: Value| match e.get(k) {
                None | Some(Value::Null) => default,
                Some(v) => v.clone(),
            };
            json!({
                "__typename": "WorkflowRecipientRunEvent",
                "id": field("id", json!(format!("{}.{i}", r.id))),
                "event": field("event", json!("unknown")),
                "status": if is_error(e) { "error" } else { "ok" },
                "step_ref": field("step_ref", Value::Null),
                "step_type": field("step_type", Value::Null),
                "attempt": field("attempt", json!(1)),
                "data": field("data", json!({})),
                "inserted_at": field("inserted_at", field_at(e, &r.inserted_at)),
            })
        })
        .collect()
}
