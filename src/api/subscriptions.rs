//! Subscriptions (spec §4.3): add, remove and list an object's subscribers, list what a
//! user or object follows, and the bulk add/delete variants. Secret key only.
//!
//! Every call is one write (or one read): a bad subscriber anywhere in the body (unknown,
//! the object itself, a cycle) is a 422 naming its field and nothing of the call is stored.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use super::raw_input::query_pairs;
use super::recipient_input::{list_query, method_not_allowed, path_collection, path_id};
use crate::auth::ServerKey;
use crate::error::{ApiError, FieldError};
use crate::model::RecipientRef;
use crate::model::entities::Subscription;
use crate::model::entities::{Listed, ObjectKey};
use crate::model::subscription::{SubscribeRequest, parse_bulk, parse_references};
use crate::state::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/v1/objects/{collection}/bulk/subscriptions/add")
            .route(web::post().to(bulk_add))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/objects/{collection}/bulk/subscriptions/delete")
            .route(web::post().to(bulk_delete))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/objects/{collection}/{id}/subscriptions")
            .route(web::get().to(list_for_object))
            .route(web::post().to(add))
            .route(web::delete().to(remove))
            .default_service(web::to(method_not_allowed)),
    )
    .service(
        web::resource("/v1/users/{user_id}/subscriptions")
            .route(web::get().to(list_for_user))
            .default_service(web::to(method_not_allowed)),
    );
}

fn object_path(path: web::Path<(String, String)>) -> Result<ObjectKey, ApiError> {
    let (collection, id) = path.into_inner();
    let collection = path_collection(&collection)?;
    let id = path_id("id", &id)?;
    Ok(ObjectKey::new(collection.as_str(), id.as_str()))
}

async fn add(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let object = object_path(path)?;
    let request = SubscribeRequest::parse(&body, "").map_err(ApiError::invalid_fields)?;
    let added = state.store.subscribe(object, request).await?;
    Ok(HttpResponse::Ok().json(wire_all(added)))
}

async fn remove(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String)>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let object = object_path(path)?;
    let refs = parse_references(&body, "").map_err(ApiError::invalid_fields)?;
    let removed = state.store.unsubscribe(object, refs).await?;
    Ok(HttpResponse::Ok().json(wire_all(removed)))
}

fn wire_all(subscriptions: Vec<Subscription>) -> Vec<Value> {
    subscriptions
        .into_iter()
        .map(Subscription::into_wire)
        .collect()
}

/// `mode=object` (default): the object's subscribers, optionally only `recipients[]`;
/// `mode=recipient`: the objects it follows, optionally only `objects[]`.
async fn list_for_object(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<(String, String)>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let object = object_path(path)?;
    let query = list_query(&req, &["mode"])?;
    let pairs = query_pairs(&req);
    let mode = query
        .filters
        .iter()
        .rev()
        .find(|(k, _)| k == "mode")
        .map(|(_, v)| v.as_str());
    let listed = match mode {
        None | Some("object") => Listed::SubscribersOf(object, recipient_filter(&pairs)?),
        Some("recipient") => {
            let me = RecipientRef::Object {
                id: object.id,
                collection: object.collection,
            };
            Listed::FollowedBy(me, object_filter(&pairs)?)
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "mode",
                format!("must be `object` or `recipient`, got `{other}`"),
            ));
        }
    };
    respond_list(&state, listed, query.page, query.include_preferences).await
}

async fn list_for_user(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let user = path_id("user_id", &path)?;
    let query = list_query(&req, &[])?;
    let only = object_filter(&query_pairs(&req))?;
    let listed = Listed::FollowedBy(RecipientRef::User(user.into_string()), only);
    respond_list(&state, listed, query.page, query.include_preferences).await
}

async fn respond_list(
    state: &AppState,
    listed: Listed,
    page: crate::model::PageQuery,
    include_preferences: bool,
) -> Result<HttpResponse, ApiError> {
    let result = state
        .store
        .subscriptions(listed, page, include_preferences)
        .await?;
    Ok(HttpResponse::Ok().json(
        result
            .map(Subscription::into_wire)
            .into_wire(page.page_size),
    ))
}

/// Collects a list-of-references query parameter in any of the encodings SDKs use:
/// `name[]=u1`, `name=u1`, `name[0]=u1`, `name[0][id]=p1&name[0][collection]=c`, and
/// `name[][id]=p1&name[][collection]=c` (a repeated key starts the next element).
fn reference_values(pairs: &[(String, String)], name: &str) -> Result<Vec<Value>, ApiError> {
    let mut indexed: std::collections::BTreeMap<usize, Value> = Default::default();
    let mut sequential: Vec<Value> = Vec::new();
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix(name) else {
            continue;
        };
        if rest.is_empty() || rest == "[]" {
            sequential.push(Value::String(value.clone()));
            continue;
        }
        let Some(rest) = rest.strip_prefix('[') else {
            continue;
        };
        let Some((index, tail)) = rest.split_once(']') else {
            return Err(ApiError::invalid(name, format!("cannot read `{key}`")));
        };
        let slot: &mut Value = if index.is_empty() {
            // `name[][field]`: a field already set on the last element starts a new one.
            let field = tail.trim_start_matches('[').trim_end_matches(']');
            let fresh = match sequential.last() {
                Some(Value::Object(m)) => m.contains_key(field),
                _ => true,
            };
            if fresh {
                sequential.push(Value::Object(Default::default()));
            }
            sequential.last_mut().expect("just ensured an element")
        } else {
            let i: usize = index
                .parse()
                .map_err(|_| ApiError::invalid(name, format!("cannot read `{key}`")))?;
            if i >= 1000 {
                return Err(ApiError::invalid(name, "may hold at most 1000 references"));
            }
            indexed.entry(i).or_insert(Value::Null)
        };
        if tail.is_empty() {
            *slot = Value::String(value.clone());
        } else {
            let field = tail
                .strip_prefix('[')
                .and_then(|t| t.strip_suffix(']'))
                .ok_or_else(|| ApiError::invalid(name, format!("cannot read `{key}`")))?;
            if !slot.is_object() {
                *slot = Value::Object(Default::default());
            }
            slot[field] = Value::String(value.clone());
        }
    }
    let all: Vec<Value> = sequential
        .into_iter()
        .chain(indexed.into_values())
        .collect();
    if all.len() > 1000 {
        return Err(ApiError::invalid(name, "may hold at most 1000 references"));
    }
    Ok(all)
}

fn parse_each(values: Vec<Value>, name: &str) -> Result<Vec<RecipientRef>, ApiError> {
    let mut errors = Vec::new();
    let mut refs = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match RecipientRef::parse(v) {
            Ok(r) => refs.push(r),
            Err(m) => errors.push(FieldError::new(format!("{name}[{i}]"), m)),
        }
    }
    if errors.is_empty() {
        Ok(refs)
    } else {
        Err(ApiError::invalid_fields(errors))
    }
}

/// `recipients[]`: user ids or `{id, collection}` references.
fn recipient_filter(pairs: &[(String, String)]) -> Result<Vec<RecipientRef>, ApiError> {
    parse_each(reference_values(pairs, "recipients")?, "recipients")
}

/// `objects[]`: `{id, collection}` references only.
fn object_filter(pairs: &[(String, String)]) -> Result<Vec<ObjectKey>, ApiError> {
    parse_each(reference_values(pairs, "objects")?, "objects")?
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            RecipientRef::Object { id, collection } => Ok(ObjectKey::new(collection, id)),
            RecipientRef::User(_) => Err(ApiError::invalid(
                format!("objects[{i}]"),
                "must be an `{id, collection}` object reference",
            )),
        })
        .collect()
}

async fn bulk_add(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let collection = path_collection(&path)?.as_str().to_owned();
    let groups = parse_bulk(&body, SubscribeRequest::parse, |r| r.subscribers.len())
        .map_err(ApiError::invalid_fields)?;
    let operation = state
        .store
        .bulk_subscribe("objects.bulk_add_subscriptions", collection, groups)
        .await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}

async fn bulk_delete(
    state: web::Data<AppState>,
    _key: ServerKey,
    path: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let collection = path_collection(&path)?.as_str().to_owned();
    let groups = parse_bulk(&body, parse_references, Vec::len).map_err(ApiError::invalid_fields)?;
    let operation = state
        .store
        .bulk_unsubscribe("objects.bulk_delete_subscriptions", collection, groups)
        .await?;
    Ok(HttpResponse::Ok().json(operation.to_wire()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pairs(q: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(q.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn reference_lists_read_every_sdk_encoding() {
        let got = reference_values(
            &pairs(
                "recipients[]=u1&recipients[1][id]=p1&recipients[1][collection]=c&recipients=u2",
            ),
            "recipients",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                json!("u1"),
                json!("u2"),
                json!({"id": "p1", "collection": "c"})
            ]
        );
        let got = reference_values(
            &pairs(
                "objects[][id]=a&objects[][collection]=c&objects[][id]=b&objects[][collection]=c",
            ),
            "objects",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                json!({"id": "a", "collection": "c"}),
                json!({"id": "b", "collection": "c"})
            ]
        );
        assert!(object_filter(&pairs("objects[]=u1")).is_err());
        assert!(reference_values(&pairs("objects[x]=1"), "objects").is_err());
    }
}
