//! Schedules (secret key only): `POST`/`PUT`/`GET`/`DELETE /v1/schedules`,
//! `POST /v1/schedules/bulk/create`, `GET /v1/users/{id}/schedules` and
//! `GET /v1/objects/{collection}/{id}/schedules`, in Knock's shapes: create/update/delete
//! answer the affected `Schedule`s (an array), lists the `{entries, page_info}` envelope in
//! creation order, bulk create a completed `BulkOperation`.
//!
//! Parsing lives in `model::schedules`/`model::recurrence`, the rules of creation and
//! firing in `engine::schedules`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::raw_input::query_pairs;
use super::recipient_input::{method_not_allowed, path_collection, path_id};
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::entities::recipient_or_minimal;
use crate::model::schedules::{CreateSchedules, UpdateSchedules, parse_bulk, parse_delete};
use crate::model::{EntityId, Page, PageQuery, RecipientRef};
use crate::state::AppState;
use crate::store::schedules::{ScheduleFilter, ScheduleRow};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/schedules")
            .route(web::post().to(create))
            .route(web::put().to(update))
            .route(web::get().to(list))
            .route(web::delete().to(delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/schedules/bulk/create")
            .route(web::post().to(bulk_create))
            .default_service(web::to(method_not_allowed)),
    )
    .route(
        "/v1/users/{user_id}/schedules",
        web::get().to(list_for_user),
    )
    .route(
        "/v1/objects/{collection}/{id}/schedules",
        web::get().to(list_for_object),
    );
}

async fn create(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let request = CreateSchedules::parse(&body).map_err(ApiError::invalid_fields)?;
    let rows = state.engine.create_schedules(vec![request]).await?;
    answer(&state, rows).await
}

async fn update(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let request = UpdateSchedules::parse(&body).map_err(ApiError::invalid_fields)?;
    let rows = state.engine.update_schedules(request).await?;
    answer(&state, rows).await
}

async fn delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let ids = parse_delete(&body).map_err(ApiError::invalid_fields)?;
    let rows = state.engine.delete_schedules(ids).await?;
    answer(&state, rows).await
}

async fn bulk_create(
    state: web::Data<AppState>,
    _key: ServerKey,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let requests = parse_bulk(&body).map_err(ApiError::invalid_fields)?;
    let rows = state.engine.create_schedules(requests).await?;
    let applied = rows.len();
    let operation = state
        .store
        .record_bulk("schedules.bulk_create".to_owned(), applied)
        .await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}

/// `workflow` (required on `/v1/schedules`), `tenant`, `recipients` (`recipients[]=u1`, or
/// `recipients[0][id]=p&recipients[0][collection]=c` as the node SDK sends objects).
fn filter(pairs: &[(String, String)], workflow_required: bool) -> Result<ScheduleFilter, ApiError> {
    let mut f = ScheduleFilter::default();
    let mut objects: std::collections::BTreeMap<String, (Option<String>, Option<String>)> =
        Default::default();
    for (key, value) in pairs {
        if value.is_empty() {
            continue;
        }
        match key.as_str() {
            "workflow" => f.workflow = Some(value.clone()),
            "tenant" => {
                EntityId::parse(value).map_err(|m| ApiError::invalid("tenant", m))?;
                f.tenant = Some(value.clone());
            }
            "recipients[]" | "recipients" => {
                let id = EntityId::parse(value).map_err(|m| ApiError::invalid("recipients", m))?;
                f.recipients.push(RecipientRef::User(id.into_string()));
            }
            k if k.starts_with("recipients[") => {
                let rest = &k["recipients[".len()..];
                let (index, field) = rest
                    .split_once("][")
                    .map(|(i, f)| (i, f.trim_end_matches(']')))
                    .ok_or_else(|| {
                        ApiError::invalid("recipients", "is not a recipient reference")
                    })?;
                let slot = objects.entry(index.to_owned()).or_default();
                match field {
                    "id" => slot.0 = Some(value.clone()),
                    "collection" => slot.1 = Some(value.clone()),
                    _ => {
                        return Err(ApiError::invalid(
                            "recipients",
                            "references take `id` and `collection`",
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    for (_, (id, collection)) in objects {
        let reference = RecipientRef::parse(&json!({"id": id, "collection": collection}))
            .map_err(|m| ApiError::invalid("recipients", m))?;
        f.recipients.push(reference);
    }
    if f.recipients.len() > crate::model::schedules::MAX_RECIPIENTS {
        return Err(ApiError::invalid(
            "recipients",
            format!(
                "may name at most {} recipients",
                crate::model::schedules::MAX_RECIPIENTS
            ),
        ));
    }
    if workflow_required && f.workflow.is_none() {
        return Err(ApiError::invalid("workflow", "is required"));
    }
    Ok(f)
}

fn page_query(pairs: &[(String, String)]) -> Result<PageQuery, ApiError> {
    let get = |k: &str| {
        pairs
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    PageQuery::parse(get("after"), get("before"), get("page_size"))
        .map_err(|e| ApiError::invalid(e.field, e.message))
}

async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    _key: ServerKey,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(&req);
    let f = filter(&pairs, true)?;
    list_page(&state, f, page_query(&pairs)?).await
}

async fn list_for_user(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    _key: ServerKey,
) -> Result<HttpResponse, ApiError> {
    let user = path_id("user_id", &path.into_inner())?;
    let pairs = query_pairs(&req);
    let mut f = filter(&pairs, false)?;
    f.recipients = vec![RecipientRef::User(user.into_string())];
    list_page(&state, f, page_query(&pairs)?).await
}

async fn list_for_object(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
    _key: ServerKey,
) -> Result<HttpResponse, ApiError> {
    let (collection, id) = path.into_inner();
    let reference = RecipientRef::Object {
        collection: path_collection(&collection)?.as_str().to_owned(),
        id: path_id("id", &id)?.into_string(),
    };
    let pairs = query_pairs(&req);
    let mut f = filter(&pairs, false)?;
    f.recipients = vec![reference];
    list_page(&state, f, page_query(&pairs)?).await
}

async fn list_page(
    state: &AppState,
    f: ScheduleFilter,
    q: PageQuery,
) -> Result<HttpResponse, ApiError> {
    let page = state.engine.list_schedules(f, q).await?;
    let entries = views(state, page.entries).await?;
    Ok(HttpResponse::Ok().json(
        Page {
            entries,
            after: page.after,
            before: page.before,
        }
        .into_wire(q.page_size),
    ))
}

async fn answer(state: &AppState, rows: Vec<ScheduleRow>) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(views(state, rows).await?))
}

/// Knock's `Schedule`s, with the full recipient and actor (minimal when not identified).
async fn views(state: &AppState, rows: Vec<ScheduleRow>) -> Result<Vec<Value>, ApiError> {
    // Every schedule's recipient, then its actor when it has one, looked up in one read.
    let refs: Vec<RecipientRef> = rows
        .iter()
        .flat_map(|row| std::iter::once(&row.schedule.recipient).chain(&row.schedule.actor))
        .cloned()
        .collect();
    let mut found = state.store.recipients(refs.clone()).await?.into_iter();
    let mut refs = refs.iter();
    let mut next = || -> Result<Value, ApiError> {
        match (refs.next(), found.next()) {
            (Some(r), Some(entity)) => Ok(recipient_or_minimal(r, entity)),
            _ => Err(ApiError::Internal(
                "a schedule's recipients were not all read".into(),
            )),
        }
    };
    rows.iter()
        .map(|row| {
            let s = &row.schedule;
            let recipient = next()?;
            let actor = match &s.actor {
                Some(_) => Some(next()?),
                None => None,
            };
            Ok(json!({
                "__typename": "Schedule",
                "id": s.id,
                "workflow": s.workflow_key,
                "recipient": recipient,
                "actor": actor,
                "tenant": s.tenant,
                "data": s.data.as_deref(),
                "repeats": s.repeats,
                "scheduled_at": s.scheduled_at,
                "ending_at": s.ending_at,
                "next_occurrence_at": s.next_occurrence_at,
                "last_occurrence_at": row.last_occurrence_at,
                "inserted_at": s.inserted_at,
                "updated_at": row.updated_at,
            }))
        })
        .collect()
}
