//! Keyset pagination over a table's `rowid` (insertion order, stable under upserts), shared
//! by the user, object and tenant lists.

use crate::store::sql::{ToValue, params_from_iter};

use crate::model::{Page, PageQuery};
use crate::store::{Db, StoreResult};

/// What to list: `columns` must start with `rowid`; `filter` is a SQL condition over the
/// numbered parameters `?1`…`?n` given in `params`, in order (use `1=1` for none).
pub(super) struct Listing<'a> {
    pub table: &'static str,
    pub columns: &'static str,
    pub filter: &'static str,
    pub params: Vec<&'a dyn ToValue>,
}

/// The row of a recipient listing with columns `rowid, id, properties, updated_at`.
pub(super) fn recipient_row(
    r: &crate::store::sql::Row<'_>,
) -> crate::store::sql::Result<(i64, (String, String, String))> {
    Ok((r.get(0)?, (r.get(1)?, r.get(2)?, r.get(3)?)))
}

/// Fetches one page in ascending `rowid` order. `after` pages forward, `before` backward
/// (the page right before that position), both together bound a window.
pub(super) fn fetch<R>(
    db: &Db<'_>,
    listing: &Listing<'_>,
    q: &PageQuery,
    row: impl Fn(&crate::store::sql::Row<'_>) -> crate::store::sql::Result<(i64, R)>,
) -> StoreResult<Page<R>> {
    let backward = q.before.is_some() && q.after.is_none();
    let n = listing.params.len();
    let sql = format!(
        "SELECT {} FROM {} WHERE ({}) AND rowid > ?{} AND rowid < ?{} ORDER BY rowid {} LIMIT ?{}",
        listing.columns,
        listing.table,
        listing.filter,
        n + 1,
        n + 2,
        if backward { "DESC" } else { "ASC" },
        n + 3,
    );
    let lo = q.after.unwrap_or(i64::MIN);
    let hi = q.before.unwrap_or(i64::MAX);
    let limit = i64::from(q.page_size);
    let mut params = listing.params.clone();
    params.extend([&lo as &dyn ToValue, &hi, &limit]);
    let mut stmt = db.0.prepare_cached(&sql)?;
    let mut rows: Vec<(i64, R)> = stmt
        .query_map(params_from_iter(params.iter()), row)?
        .collect::<Result<_, _>>()?;
    if backward {
        rows.reverse();
    }
    let (first, last) = match (rows.first(), rows.last()) {
        (Some(f), Some(l)) => (f.0, l.0),
        _ => {
            return Ok(Page {
                entries: Vec::new(),
                after: None,
                before: None,
            });
        }
    };
    let has_before = exists(db, listing, "<", first)?;
    let has_after = exists(db, listing, ">", last)?;
    Ok(Page {
        entries: rows.into_iter().map(|(_, r)| r).collect(),
        after: has_after.then_some(last),
        before: has_before.then_some(first),
    })
}

fn exists(db: &Db<'_>, listing: &Listing<'_>, op: &str, pos: i64) -> StoreResult<bool> {
    let sql = format!(
        "SELECT EXISTS(SELECT 1 FROM {} WHERE ({}) AND rowid {op} ?{})",
        listing.table,
        listing.filter,
        listing.params.len() + 1,
    );
    let mut params = listing.params.clone();
    params.push(&pos);
    Ok(db
        .0
        .prepare_cached(&sql)?
        .query_row(params_from_iter(params.iter()), |r| r.get(0))?)
}
