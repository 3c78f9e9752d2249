//! Parsing feed filters from the wire: the HTTP query string (§1.4: `key[]=a`, `key=a`,
//! `inserted_at.gte` and `inserted_at[gte]`, `trigger_data` as a JSON string) and socket
//! join params (§7.2: same keys, typed JSON values, `trigger_data` as an object).
//!
//! Both paths fold into one JSON map and go through [`filters_from_map`], so the socket and
//! the HTTP feed can never disagree on what a filter means. Empty or null values count as
//! absent (the clients omit nulls; hand-written URLs often carry `tenant=`).

use serde_json::{Map, Value};

use super::feed::{
    ArchivedFilter, FeedFilters, FeedMode, FeedQuery, MAX_PAGE_SIZE, StatusFilter, TimeRange,
    decode_cursor,
};
use super::ids::EntityId;
use crate::clock;

/// Longest `trigger_data` string value compared (Knock truncates to 256).
pub const TRIGGER_DATA_MAX_STRING: usize = 256;
/// Keys a `trigger_data` filter may match (each is a clause of the query).
pub const MAX_TRIGGER_DATA_KEYS: usize = 50;
/// Values a filter list (`tenants`, `workflows`, `workflow_categories`, statuses) may hold.
pub const MAX_FILTER_VALUES: usize = 100;

const RANGE_OPS: [&str; 4] = ["gt", "gte", "lt", "lte"];

/// A filter key and why its value was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    pub field: String,
    pub message: String,
}

impl ParamError {
    pub(super) fn new(field: &str, message: impl Into<String>) -> Self {
        ParamError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

impl FeedFilters {
    /// Parses a feed request's decoded query pairs into a [`FeedQuery`].
    pub fn from_query(pairs: &[(String, String)]) -> Result<FeedQuery, ParamError> {
        let map = fold_query(pairs);
        let filters = filters_from_map(&map)?;
        let mut query = FeedQuery {
            filters,
            ..FeedQuery::default()
        };
        paging(
            &map,
            &mut query.page_size,
            &mut query.after,
            &mut query.before,
        )?;
        if let Some(raw) = text(&map, "mode")? {
            query.mode = match raw.as_str() {
                "compact" => FeedMode::Compact,
                "rich" => FeedMode::Rich,
                _ => return Err(ParamError::new("mode", "must be `compact` or `rich`")),
            };
        }
        if let Some(raw) = text(&map, "exclude")? {
            query.exclude = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
        }
        Ok(query)
    }

    /// Parses one client ref's socket join params. Unknown keys (`page_size`, `mode`,
    /// `__experimentalCrossBrowserUpdates`, …) are ignored.
    pub fn from_socket_params(params: &Value) -> Result<FeedFilters, String> {
        let Some(map) = params.as_object() else {
            return Err("join params must be an object".into());
        };
        let mut map = map.clone();
        // The node-style nested range (`inserted_at: {gte}`) folds into the dotted keys.
        if let Some(Value::Object(range)) = map.remove("inserted_at") {
            for (op, v) in range {
                map.insert(format!("inserted_at.{op}"), v);
            }
        }
        filters_from_map(&map).map_err(|e| format!("`{}` {}", e.field, e.message))
    }
}

/// Folds query pairs into a map: `k[]`/`k[n]` collect into arrays, `k[sub]` becomes `k.sub`.
/// Later scalars win over earlier ones.
pub(super) fn fold_query(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut map = Map::new();
    for (key, value) in pairs {
        let (base, sub) = match key.split_once('[') {
            Some((base, rest)) => (base, rest.strip_suffix(']').unwrap_or(rest)),
            None => (key.as_str(), ""),
        };
        let is_index = sub.is_empty() || sub.chars().all(|c| c.is_ascii_digit());
        if key.contains('[') && is_index {
            let entry = map
                .entry(base.to_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if !entry.is_array() {
                *entry = Value::Array(vec![entry.take()]);
            }
            if let Value::Array(items) = entry {
                items.push(Value::String(value.clone()));
            }
        } else if key.contains('[') && base == "trigger_data" {
            // `trigger_data[k]=v`: collected as an object of strings.
            let entry = map
                .entry("trigger_data".to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(obj) = entry {
                obj.insert(sub.to_owned(), Value::String(value.clone()));
            }
        } else if key.contains('[') {
            map.insert(format!("{base}.{sub}"), Value::String(value.clone()));
        } else {
            map.insert(key.clone(), Value::String(value.clone()));
        }
    }
    map
}

/// A scalar parameter as text; absent when missing, null or empty.
pub(super) fn text(map: &Map<String, Value>, field: &str) -> Result<Option<String>, ParamError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Array(items)) => match items.last() {
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            None => Ok(None),
            _ => Err(ParamError::new(field, "must be a single value")),
        },
        Some(Value::Object(_)) => Err(ParamError::new(field, "must be a single value")),
    }
}

/// `page_size`, `after` and `before`, the paging both the feed and the messages list
/// accept; absent keys leave the defaults in place.
pub(super) fn paging(
    map: &Map<String, Value>,
    page_size: &mut u32,
    after: &mut Option<i64>,
    before: &mut Option<i64>,
) -> Result<(), ParamError> {
    if let Some(raw) = text(map, "page_size")? {
        *page_size = raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .ok_or_else(|| {
                ParamError::new(
                    "page_size",
                    format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
                )
            })?;
    }
    for (field, slot) in [("after", after), ("before", before)] {
        if let Some(raw) = text(map, field)? {
            *slot = Some(
                decode_cursor(&raw)
                    .ok_or_else(|| ParamError::new(field, "is not a cursor this server issued"))?,
            );
        }
    }
    Ok(())
}

/// The filter keys, from a folded map (HTTP) or join params (socket).
pub fn filters_from_map(map: &Map<String, Value>) -> Result<FeedFilters, ParamError> {
    let mut f = FeedFilters::default();
    if let Some(raw) = text(map, "status")? {
        f.status = StatusFilter::parse(&raw).ok_or_else(|| {
            ParamError::new(
                "status",
                "must be one of unread, read, unseen, seen, snoozed, all",
            )
        })?;
    }
    if let Some(raw) = text(map, "archived")? {
        f.archived = ArchivedFilter::parse(&raw)
            .ok_or_else(|| ParamError::new("archived", "must be one of exclude, include, only"))?;
    }
    if let Some(raw) = text(map, "tenant")? {
        EntityId::parse(&raw).map_err(|m| ParamError::new("tenant", m))?;
        f.tenant = Some(raw);
    }
    if let Some(raw) = text(map, "has_tenant")? {
        f.has_tenant = Some(match raw.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(ParamError::new("has_tenant", "must be true or false")),
        });
    }
    f.source = text(map, "source")?;
    f.workflow_categories = categories(map.get("workflow_categories"))?;
    f.trigger_data = trigger_data(map.get("trigger_data"))?;
    f.inserted_at = time_range(map)?;
    if let Some(raw) = text(map, "pinned")? {
        f.pinned = Some(match raw.as_str() {
            "true" => true,
            "false" => false,
            _ => return Err(ParamError::new("pinned", "must be true or false")),
        });
    }
    Ok(f)
}

pub(super) fn categories(value: Option<&Value>) -> Result<Vec<String>, ParamError> {
    string_list(value, "workflow_categories", MAX_FILTER_VALUES)
}

/// A list of strings from `k[]=a&k[]=b`, `k=a`, or a JSON array; empty strings and nulls
/// are skipped (the browser client serializes `[undefined]` as `[null]`).
/// At most `max` items (checked before anything is copied).
pub(super) fn string_list(
    value: Option<&Value>,
    field: &str,
    max: usize,
) -> Result<Vec<String>, ParamError> {
    let items = match value {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) if items.len() > max => {
            return Err(ParamError::new(
                field,
                format!("may hold at most {max} values, got {}", items.len()),
            ));
        }
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(ParamError::new(field, "must be a list of strings")),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Value::Null => {}
            Value::String(s) if s.is_empty() => {}
            Value::String(s) => out.push(s),
            _ => return Err(ParamError::new(field, "must be a list of strings")),
        }
    }
    Ok(out)
}

pub(super) fn trigger_data(
    value: Option<&Value>,
) -> Result<Option<Map<String, Value>>, ParamError> {
    let field = "trigger_data";
    let object = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(o)) => o,
            Ok(Value::Null) => return Ok(None),
            Ok(_) => return Err(ParamError::new(field, "must be a JSON object")),
            Err(e) => return Err(ParamError::new(field, format!("is not valid JSON: {e}"))),
        },
        Some(Value::Object(o)) if o.len() > MAX_TRIGGER_DATA_KEYS => {
            return Err(too_many_keys(o.len()));
        }
        Some(Value::Object(o)) => o.clone(),
        Some(_) => return Err(ParamError::new(field, "must be a JSON object")),
    };
    if object.len() > MAX_TRIGGER_DATA_KEYS {
        return Err(too_many_keys(object.len()));
    }
    let mut flat = Map::new();
    for (key, value) in object {
        let value = match value {
            Value::Object(_) | Value::Array(_) => {
                return Err(ParamError::new(
                    field,
                    format!("`{key}` is nested; only top-level scalar values can be matched"),
                ));
            }
            Value::String(s) if s.chars().count() > TRIGGER_DATA_MAX_STRING => {
                Value::String(s.chars().take(TRIGGER_DATA_MAX_STRING).collect())
            }
            other => other,
        };
        flat.insert(key, value);
    }
    Ok((!flat.is_empty()).then_some(flat))
}

fn too_many_keys(given: usize) -> ParamError {
    ParamError::new(
        "trigger_data",
        format!("may match at most {MAX_TRIGGER_DATA_KEYS} keys, got {given}"),
    )
}

pub(super) fn time_range(map: &Map<String, Value>) -> Result<TimeRange, ParamError> {
    let mut range = TimeRange::default();
    for op in RANGE_OPS {
        let field = format!("inserted_at.{op}");
        let Some(raw) = text(map, &field)? else {
            continue;
        };
        let normalized = normalize_time(&raw)
            .ok_or_else(|| ParamError::new(&field, "must be an ISO-8601 datetime"))?;
        let slot = match op {
            "gt" => &mut range.gt,
            "gte" => &mut range.gte,
            "lt" => &mut range.lt,
            _ => &mut range.lte,
        };
        *slot = Some(normalized);
    }
    Ok(range)
}

/// RFC 3339, also with a space for the `T` (Python's `str(datetime)`, which its SDK puts
/// in query strings); a datetime without offset (a naive Python datetime) or a bare date
/// is taken as UTC.
pub(super) fn normalize_time(raw: &str) -> Option<String> {
    let raw = match raw.as_bytes().get(10) {
        Some(b' ') => format!("{}T{}", &raw[..10], &raw[11..]),
        _ => raw.to_owned(),
    };
    let raw = raw.as_str();
    clock::normalize(raw)
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|t| clock::format(t.and_utc()))
        })
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| clock::format(t.and_utc()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::feed::encode_cursor;
    use serde_json::json;

    fn q(s: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(s.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    fn field_of(e: ParamError) -> String {
        e.field
    }

    #[test]
    fn defaults_are_rich_fifty_and_archived_excluded() {
        let query = FeedFilters::from_query(&[]).expect("empty query parses");
        assert_eq!(query, FeedQuery::default());
        assert_eq!(query.filters.archived, ArchivedFilter::Exclude);
        assert_eq!(query.mode, FeedMode::Rich);
    }

    #[test]
    fn both_array_and_both_range_encodings_are_accepted() {
        let a = FeedFilters::from_query(&q(
            "workflow_categories[]=a&workflow_categories[]=b&inserted_at.gte=2026-01-01T00:00:00Z&inserted_at[lt]=2026-02-01T01:00:00%2B01:00",
        ))
        .expect("parses");
        assert_eq!(a.filters.workflow_categories, vec!["a", "b"]);
        assert_eq!(
            a.filters.inserted_at.gte.as_deref(),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(
            a.filters.inserted_at.lt.as_deref(),
            Some("2026-02-01T00:00:00.000000Z")
        );
        let b = FeedFilters::from_query(&q(
            "workflow_categories=a&inserted_at.gt=2026-01-01T10:00:00&inserted_at.lte=2026-01-02&inserted_at.lt=2026-01-03+01:00:00%2B01:00&inserted_at.gte=2026-01-01+00:00:00",
        ))
        .expect("parses");
        assert_eq!(b.filters.workflow_categories, vec!["a"]);
        assert_eq!(
            b.filters.inserted_at.gt.as_deref(),
            Some("2026-01-01T10:00:00.000000Z"),
            "naive datetimes are UTC"
        );
        assert_eq!(
            b.filters.inserted_at.lte.as_deref(),
            Some("2026-01-02T00:00:00.000000Z")
        );
        assert_eq!(
            b.filters.inserted_at.lt.as_deref(),
            Some("2026-01-03T00:00:00.000000Z"),
            "python's str(datetime) with an offset"
        );
        assert_eq!(
            b.filters.inserted_at.gte.as_deref(),
            Some("2026-01-01T00:00:00.000000Z")
        );
    }

    #[test]
    fn every_scalar_filter_parses() {
        let c = encode_cursor(7);
        let query = FeedFilters::from_query(&q(&format!(
            "page_size=10&after={c}&status=unread&archived=include&tenant=acme&has_tenant=true&source=new-comment&mode=compact&trigger_data=%7B%22p%22%3A%22x%22%7D"
        )))
        .expect("parses");
        assert_eq!(query.page_size, 10);
        assert_eq!(query.after, Some(7));
        assert_eq!(query.mode, FeedMode::Compact);
        let f = &query.filters;
        assert_eq!(f.status, StatusFilter::Unread);
        assert_eq!(f.archived, ArchivedFilter::Include);
        assert_eq!(f.tenant.as_deref(), Some("acme"));
        assert_eq!(f.has_tenant, Some(true));
        assert_eq!(f.source.as_deref(), Some("new-comment"));
        assert_eq!(f.trigger_data, json!({"p": "x"}).as_object().cloned());
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        for (query, field) in [
            ("page_size=0", "page_size"),
            ("page_size=51", "page_size"),
            ("page_size=x", "page_size"),
            ("status=bogus", "status"),
            ("archived=no", "archived"),
            ("has_tenant=maybe", "has_tenant"),
            ("mode=fancy", "mode"),
            ("after=garbage", "after"),
            ("before=garbage", "before"),
            ("inserted_at.gte=yesterday", "inserted_at.gte"),
            ("inserted_at[lt]=nope", "inserted_at.lt"),
            (
                "trigger_data=%7B%22a%22%3A%7B%22b%22%3A1%7D%7D",
                "trigger_data",
            ),
            ("trigger_data=%5B1%5D", "trigger_data"),
            ("trigger_data=%7Bbroken", "trigger_data"),
            ("tenant=a%2Fb", "tenant"),
        ] {
            let err = FeedFilters::from_query(&q(query)).expect_err(query);
            assert_eq!(field_of(err), field, "{query}");
        }
    }

    #[test]
    fn socket_params_take_typed_values_and_ignore_unknown_keys() {
        let f = FeedFilters::from_socket_params(&json!({
            "archived": "exclude", "mode": "compact", "tenant": "acme", "has_tenant": true,
            "source": "new-comment", "status": "unread", "workflow_categories": ["collab"],
            "trigger_data": {"pageId": "p1"}, "inserted_at.gte": "2026-01-01T00:00:00Z",
            "page_size": 20, "__experimentalCrossBrowserUpdates": true
        }))
        .expect("parses");
        assert_eq!(f.has_tenant, Some(true));
        assert_eq!(f.status, StatusFilter::Unread);
        assert_eq!(f.workflow_categories, vec!["collab"]);
        assert_eq!(f.trigger_data, json!({"pageId": "p1"}).as_object().cloned());
        assert!(f.inserted_at.gte.is_some());
        assert!(FeedFilters::from_socket_params(&json!({"trigger_data": {"a": [1]}})).is_err());
        assert!(FeedFilters::from_socket_params(&json!("x")).is_err());
        let nested = FeedFilters::from_socket_params(
            &json!({"inserted_at": {"lt": "2026-01-01T00:00:00Z"}}),
        )
        .expect("parses");
        assert!(nested.inserted_at.lt.is_some());
    }
}
