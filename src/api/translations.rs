//! Translations, as Knock's management API serves them (secret key): `GET
//! /v1/translations`, `GET`/`PUT /v1/translations/{locale_code}`, with `namespace` and
//! `tenant` query parameters. Only the `json` format; Knock's `environment` and
//! `branch` are accepted and ignored (one environment per server).

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use super::raw_input::query_pairs;
use crate::auth::ServerKey;
use crate::error::ApiError;
use crate::model::translations::StoredTranslation;
use crate::model::translations::{
    TranslationError, TranslationId, parse_content, parse_locale, parse_namespace, parse_tenant,
};
use crate::state::AppState;
use crate::store::TranslationFilter;

/// Most translations one list answers (`limit`, default 50).
pub const MAX_LIST: usize = 1000;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/translations", web::get().to(list))
        .route("/v1/translations/{locale_code}", web::get().to(get_one))
        .route("/v1/translations/{locale_code}", web::put().to(upsert));
}

fn invalid(e: TranslationError) -> ApiError {
    ApiError::invalid(e.field, e.message)
}

/// The query's `name`, once; a repeated or empty value is refused.
fn query_value<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ApiError> {
    let mut values = pairs
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::invalid(name, "may be given once"));
    }
    match first {
        Some("") => Err(ApiError::invalid(name, "must not be empty")),
        other => Ok(other),
    }
}

/// Only `json` content is served and stored.
fn check_format(format: Option<&str>, field: &str) -> Result<(), ApiError> {
    match format {
        None | Some("json") => Ok(()),
        Some(_) => Err(ApiError::invalid(
            field,
            "must be `json` (Tidings stores translations as JSON only)",
        )),
    }
}

/// Which translation the path and query name.
fn translation_id(locale: &str, pairs: &[(String, String)]) -> Result<TranslationId, ApiError> {
    Ok(TranslationId {
        locale_code: parse_locale(locale).map_err(invalid)?,
        namespace: query_value(pairs, "namespace")?
            .map(parse_namespace)
            .transpose()
            .map_err(invalid)?,
        tenant: query_value(pairs, "tenant")?
            .map(parse_tenant)
            .transpose()
            .map_err(invalid)?,
    })
}

/// Knock's `Translation`.
fn view(t: &StoredTranslation) -> Value {
    let mut v = json!({
        "content": t.content,
        "format": "json",
        "inserted_at": t.inserted_at,
        "locale_code": t.id.locale_code,
        "namespace": t.id.namespace.as_deref().unwrap_or(""),
        "updated_at": t.updated_at,
    });
    if let Some(tenant) = &t.id.tenant {
        v["tenant"] = json!(tenant);
    }
    v
}

async fn list(
    _: ServerKey,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(&req);
    check_format(query_value(&pairs, "format")?, "format")?;
    let locale = query_value(&pairs, "locale_code")?
        .map(parse_locale)
        .transpose()
        .map_err(invalid)?;
    let namespace = query_value(&pairs, "namespace")?
        .map(parse_namespace)
        .transpose()
        .map_err(invalid)?;
    let tenant = query_value(&pairs, "tenant")?
        .map(parse_tenant)
        .transpose()
        .map_err(invalid)?;
    let limit = match query_value(&pairs, "limit")? {
        None => 50,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIST).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "limit",
                    format!("must be a whole number from 1 to {MAX_LIST}"),
                )
            })?,
    };
    let filter = TranslationFilter {
        locale,
        namespace,
        tenant,
    };
    let rows = state.store.translations(filter, limit).await?;
    Ok(HttpResponse::Ok().json(json!({
        "entries": rows.iter().map(view).collect::<Vec<_>>(),
        "page_info": {"__typename": "PageInfo", "after": null, "before": null, "page_size": limit},
    })))
}

async fn get_one(
    _: ServerKey,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(&req);
    check_format(query_value(&pairs, "format")?, "format")?;
    let id = translation_id(&path.into_inner(), &pairs)?;
    let row = state
        .store
        .translation(id.clone())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("The translation `{}`", id.locale_code)))?;
    Ok(HttpResponse::Ok().json(json!({"translation": view(&row)})))
}

async fn upsert(
    _: ServerKey,
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(&req);
    check_format(query_value(&pairs, "format")?, "format")?;
    let id = translation_id(&path.into_inner(), &pairs)?;
    let body = body.into_inner();
    let Some(translation) = body.get("translation").filter(|t| t.is_object()) else {
        return Err(ApiError::invalid(
            "translation",
            "is required: an object with `content`",
        ));
    };
    check_format(
        match translation.get("format") {
            None | Some(Value::Null) => None,
            Some(Value::String(f)) => Some(f.as_str()),
            Some(_) => Some(""),
        },
        "translation.format",
    )?;
    let Some(content) = translation.get("content").and_then(Value::as_str) else {
        return Err(ApiError::invalid(
            "translation.content",
            "is required: the JSON text of an object of keys to strings",
        ));
    };
    parse_content(content).map_err(invalid)?;
    let row = state
        .engine
        .registry()
        .translations()
        .upsert(id, content.to_owned())
        .await?;
    Ok(HttpResponse::Ok().json(json!({"translation": view(&row)})))
}
