//! Translations (issue 21 item 4), one row per (tenant, locale, namespace); `''` stands
//! for no tenant and no namespace in the key.

use crate::store::sql::{OptionalExtension, params};

use super::{Db, StoreResult};
use crate::model::translations::TranslationId;

pub use crate::model::translations::StoredTranslation;

const COLUMNS: &str = "tenant, locale_code, namespace, content, inserted_at, updated_at";

fn from_row(row: &crate::store::sql::Row<'_>) -> crate::store::sql::Result<StoredTranslation> {
    let some = |s: String| (!s.is_empty()).then_some(s);
    Ok(StoredTranslation {
        id: TranslationId {
            tenant: some(row.get(0)?),
            locale_code: row.get(1)?,
            namespace: some(row.get(2)?),
        },
        content: row.get(3)?,
        inserted_at: row.get(4)?,
        updated_at: row.get(5)?,
    })
}

fn key(id: &TranslationId) -> (&str, &str, &str) {
    (
        id.tenant.as_deref().unwrap_or(""),
        &id.locale_code,
        id.namespace.as_deref().unwrap_or(""),
    )
}

/// One translation.
pub fn get(db: &Db<'_>, id: &TranslationId) -> StoreResult<Option<StoredTranslation>> {
    let (tenant, locale, namespace) = key(id);
    Ok(db
        .0
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM translations WHERE tenant = ?1 AND locale_code = ?2 AND namespace = ?3"
        ))?
        .query_row(params![tenant, locale, namespace], from_row)
        .optional()?)
}

/// Translations matching the filters (each `None` = any; `Some("")` tenant or
/// namespace = none), by locale, then namespace, then tenant; at most `limit`.
pub fn list(
    db: &Db<'_>,
    locale: Option<&str>,
    namespace: Option<&str>,
    tenant: Option<&str>,
    limit: usize,
) -> StoreResult<Vec<StoredTranslation>> {
    let mut stmt = db.0.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM translations \
         WHERE (CAST(?1 AS TEXT) IS NULL OR locale_code = ?1) AND (CAST(?2 AS TEXT) IS NULL OR namespace = ?2) \
           AND (CAST(?3 AS TEXT) IS NULL OR tenant = ?3) \
         ORDER BY locale_code, namespace, tenant LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![
            locale,
            namespace,
            tenant,
            i64::try_from(limit).unwrap_or(i64::MAX)
        ],
        from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Every translation (for the render-time snapshot).
pub fn all(db: &Db<'_>) -> StoreResult<Vec<StoredTranslation>> {
    list(db, None, None, None, usize::MAX)
}

/// What changes whenever a translation is added or its content changes (their number and
/// the latest `updated_at`; translations are never deleted): how a node notices, with one
/// cheap read, that another node upserted one.
pub fn fingerprint(db: &Db<'_>) -> StoreResult<(i64, String)> {
    Ok(db
        .0
        .prepare_cached("SELECT COUNT(*), COALESCE(MAX(updated_at), '') FROM translations")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?)
}

/// Stores `content` as translation `id`; unchanged content keeps its timestamps.
pub fn upsert(db: &Db<'_>, id: &TranslationId, content: &str) -> StoreResult<StoredTranslation> {
    if let Some(existing) = get(db, id)?
        && existing.content == content
    {
        return Ok(existing);
    }
    let now = db.now();
    let (tenant, locale, namespace) = key(id);
    db.0.prepare_cached(
        "INSERT INTO translations (tenant, locale_code, namespace, content, inserted_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5) \
         ON CONFLICT (tenant, locale_code, namespace) DO UPDATE SET content = ?4, updated_at = ?5",
    )?
    .execute(params![tenant, locale, namespace, content, now])?;
    get(db, id)?.ok_or(super::StoreError::NotFound)
}
