//! Edge parsing shared by the user, object and tenant endpoints: path ids, identify/set
//! bodies, list query strings, and the 1,000-item bulk limit. Everything here turns wire
//! input into `model` types or a precise `ApiError`.

use actix_web::HttpRequest;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};
use crate::model::properties::{PropertyError, RecipientKind};
use crate::model::{CollectionName, EntityId, PageQuery, RecipientProperties};

/// Most items one bulk call may carry (spec §9).
pub const MAX_BULK_ITEMS: usize = 1000;

/// A path id (`{id}`, `{user_id}`) that must follow the id rules of spec §1.2.
pub fn path_id(field: &str, raw: &str) -> Result<EntityId, ApiError> {
    EntityId::parse(raw).map_err(|m| ApiError::invalid(field, m))
}

/// A tenant or object id being identified: also restricted to URL-safe characters
/// ([`EntityId::parse_safe`]), so grants can name it exactly.
pub fn path_safe_id(field: &str, raw: &str) -> Result<EntityId, ApiError> {
    EntityId::parse_safe(raw).map_err(|m| ApiError::invalid(field, m))
}

pub fn path_collection(raw: &str) -> Result<CollectionName, ApiError> {
    CollectionName::parse(raw).map_err(|m| ApiError::invalid("collection", m))
}

fn field_errors(errors: Vec<PropertyError>) -> ApiError {
    ApiError::invalid_fields(
        errors
            .into_iter()
            .map(|e| FieldError::new(e.field, e.message))
            .collect(),
    )
}

/// An identify/set body: must be a JSON object whose fields parse for `kind`.
pub fn properties(kind: RecipientKind, body: Value) -> Result<RecipientProperties, ApiError> {
    let Value::Object(map) = body else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    RecipientProperties::parse(kind, map).map_err(field_errors)
}

/// Why one bulk item was not applied, for `error_items`.
pub fn describe(errors: &[PropertyError]) -> String {
    errors
        .iter()
        .map(|e| format!("`{}`: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Splits one bulk item into its id and its properties, or says why it cannot be applied.
/// The error carries the best id we can report (the raw value when it is not a valid id).
pub fn bulk_item(
    kind: RecipientKind,
    mut item: Map<String, Value>,
) -> Result<(EntityId, RecipientProperties), (String, String)> {
    let id = match item.remove("id") {
        Some(Value::String(s)) => {
            let parsed = match kind {
                RecipientKind::User => EntityId::parse(&s),
                RecipientKind::Object | RecipientKind::Tenant => EntityId::parse_safe(&s),
            };
            parsed.map_err(|m| (s, format!("`id` {m}")))?
        }
        Some(other) => return Err((other.to_string(), "`id` must be a string".into())),
        None => return Err((String::new(), "`id` is required".into())),
    };
    let props = RecipientProperties::parse(kind, item)
        .map_err(|errors| (id.as_str().to_owned(), describe(&errors)))?;
    Ok((id, props))
}

/// Refuses bulk calls over the item limit.
pub fn check_bulk_len(field: &str, len: usize) -> Result<(), ApiError> {
    if len > MAX_BULK_ITEMS {
        return Err(ApiError::invalid(
            field,
            format!("must hold at most {MAX_BULK_ITEMS} items, got {len}"),
        ));
    }
    Ok(())
}

/// A list endpoint's query: paging, `include[]`, and the named filters it accepts.
#[derive(Debug, Default)]
pub struct ListQuery {
    pub page: PageQuery,
    pub include_preferences: bool,
    pub filters: Vec<(String, String)>,
}

/// Parses `after`, `before`, `page_size`, `include[]` (also `include=` and
/// `include[0]=`) and keeps the `filters` named. Other keys are ignored (SDKs add their own).
pub fn list_query(req: &HttpRequest, filters: &[&str]) -> Result<ListQuery, ApiError> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(req.query_string().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let get = |name: &str| {
        pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let page = PageQuery::parse(get("after"), get("before"), get("page_size"))
        .map_err(|e| ApiError::invalid(e.field, e.message))?;
    let mut include_preferences = false;
    for (key, value) in &pairs {
        let is_include = key == "include" || (key.starts_with("include[") && key.ends_with(']'));
        if !is_include {
            continue;
        }
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item {
                "preferences" => include_preferences = true,
                other => {
                    return Err(ApiError::invalid(
                        "include",
                        format!("`{other}` cannot be included; only `preferences`"),
                    ));
                }
            }
        }
    }
    let filters = pairs
        .iter()
        .filter(|(k, v)| filters.contains(&k.as_str()) && !v.is_empty())
        .cloned()
        .collect();
    Ok(ListQuery {
        page,
        include_preferences,
        filters,
    })
}

/// Answers a wrong method on a known path in Knock's error shape.
pub async fn method_not_allowed(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}

/// An identify/set body where an empty request body means `{}`: the SDKs send `{}` for
/// a bare identify, but a hand-written `PUT` with no body should not be a JSON error.
/// Anything non-empty goes through the normal JSON extractor (limits, 400/413/422).
pub struct IdentifyBody(pub Value);

impl actix_web::FromRequest for IdentifyBody {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
        let headers = req.headers();
        let declared_empty = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        let no_body =
            !headers.contains_key(CONTENT_LENGTH) && !headers.contains_key(TRANSFER_ENCODING);
        if declared_empty || no_body {
            return Box::pin(std::future::ready(Ok(IdentifyBody(Value::Object(
                Map::new(),
            )))));
        }
        let json = actix_web::web::Json::<Value>::from_request(req, payload);
        Box::pin(async move { json.await.map(|j| IdentifyBody(j.into_inner())) })
    }
}
