//! Builds the `WHERE` clause for a feed view from [`FeedFilters`]: the SQL twin of
//! `FeedFilters::matches`. Kept in one place so listing, counting and bulk updates select
//! exactly the same messages.
//!
//! Statements are still `prepare_cached`: the text depends only on which filters are set
//! (not their values, which are bound), so the cache holds a handful of shapes.

use crate::store::sql::Value as SqlValue;
use serde_json::Value;

use crate::model::{ArchivedFilter, FeedFilters, RecipientRef, StatusFilter};

/// A clause under construction: SQL joined with `AND`, and its bound values in order.
#[derive(Debug, Default)]
pub(super) struct Where {
    parts: Vec<String>,
    pub(super) params: Vec<SqlValue>,
}

impl Where {
    pub(super) fn push(
        &mut self,
        sql: impl Into<String>,
        params: impl IntoIterator<Item = SqlValue>,
    ) {
        self.parts.push(sql.into());
        self.params.extend(params);
    }

    pub(super) fn sql(&self) -> String {
        if self.parts.is_empty() {
            "1=1".into()
        } else {
            self.parts.join(" AND ")
        }
    }
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// The four values naming a feed, bound in [`super::feed_keys::KEY_SQL`]'s order.
pub(super) fn feed_name(channel_id: &str, recipient: &RecipientRef) -> [SqlValue; 4] {
    [
        text(channel_id),
        text(recipient.kind()),
        text(recipient.collection()),
        text(recipient.id()),
    ]
}

/// One feed's rows of a table with a `feed` key column (`messages`, `feed_counters`): the
/// key looked up once by the statement (the `messages_feed` index prefix); an unknown feed
/// selects nothing.
pub(super) fn feed(w: &mut Where, channel_id: &str, recipient: &RecipientRef) {
    w.push(
        format!("feed = {}", super::feed_keys::KEY_SQL),
        feed_name(channel_id, recipient),
    );
}

/// The `tenant`/`has_tenant` rule and the caller's tenant restriction, over `column`
/// whose "no tenant" value is `''` (use `coalesce(tenant, '')` on messages).
/// In `restriction`, `""` stands for "items without a tenant are allowed".
pub(super) fn tenant(
    w: &mut Where,
    column: &str,
    filters: &FeedFilters,
    restriction: Option<&[String]>,
) {
    tenants(
        w,
        column,
        filters.tenant.as_slice(),
        filters.has_tenant,
        restriction,
    );
}

/// The tenant rule for a list of tenants (bulk updates take several): items with one of
/// them, plus items without a tenant unless `has_tenant` is set.
pub(super) fn tenants(
    w: &mut Where,
    column: &str,
    tenants: &[String],
    has_tenant: Option<bool>,
    restriction: Option<&[String]>,
) {
    match (has_tenant, tenants.is_empty()) {
        (Some(false), _) => w.push(format!("{column} = ''"), []),
        (Some(true), true) => w.push(format!("{column} <> ''"), []),
        (Some(true), false) => w.push(
            format!("{column} IN ({})", placeholders(tenants.len())),
            tenants.iter().map(|t| text(t)),
        ),
        (None, false) => w.push(
            format!("{column} IN ({}, '')", placeholders(tenants.len())),
            tenants.iter().map(|t| text(t)),
        ),
        (None, true) => {}
    }
    if let Some(allowed) = restriction {
        if allowed.is_empty() {
            w.push("1=0", []);
        } else {
            w.push(
                format!("{column} IN ({})", placeholders(allowed.len())),
                allowed.iter().map(|t| text(t)),
            );
        }
    }
}

/// Everything in the feed's scope except tenant, status and archived.
pub(super) fn content(w: &mut Where, filters: &FeedFilters) {
    if let Some(source) = &filters.source {
        w.push("workflow_key = ?", [text(source)]);
    }
    if !filters.workflow_categories.is_empty() {
        w.push(
            format!(
                "EXISTS (SELECT 1 FROM json_each(messages.workflow_categories) c WHERE c.value IN ({}))",
                placeholders(filters.workflow_categories.len())
            ),
            filters.workflow_categories.iter().map(|c| text(c)),
        );
    }
    if let Some(wanted) = &filters.trigger_data {
        trigger_data(w, wanted);
    }
    time_range(w, &filters.inserted_at);
}

/// `inserted_at` bounds (normalized timestamps compare lexically).
pub(super) fn time_range(w: &mut Where, range: &crate::model::TimeRange) {
    for (op, bound) in [
        (">", &range.gt),
        (">=", &range.gte),
        ("<", &range.lt),
        ("<=", &range.lte),
    ] {
        if let Some(bound) = bound {
            w.push(format!("inserted_at {op} ?"), [text(bound)]);
        }
    }
}

/// `trigger_data`: every key must match.
pub(super) fn trigger_data(w: &mut Where, wanted: &serde_json::Map<String, Value>) {
    for (key, value) in wanted {
        trigger_value(w, key, value);
    }
}

/// One `trigger_data` key: the top-level data value must equal `value` (a scalar).
///
/// An item sharing its run's data (`data = ''`) probes the run's scalars
/// (`workflow_run_data_values`, one short row per key): no JSON is parsed per item. An item
/// with data of its own (a recipient's `$trigger_data`) is read with `json_each`, which
/// exposes keys verbatim, so keys need no JSON-path quoting.
fn trigger_value(w: &mut Where, key: &str, value: &Value) {
    // (the condition on a stored scalar's type and value, its bound value)
    let (shared, own, bound): (&str, &str, Option<SqlValue>) = match value {
        Value::Null => ("v.type = 'null'", "d.type = 'null'", None),
        Value::Bool(true) => ("v.type = 'true'", "d.type = 'true'", None),
        Value::Bool(false) => ("v.type = 'false'", "d.type = 'false'", None),
        Value::String(s) => (
            "v.type = 'text' AND v.value = ?",
            "d.type = 'text' AND substr(d.atom, 1, 256) = ?",
            Some(text(s)),
        ),
        Value::Number(n) => (
            "v.type IN ('integer', 'real') AND v.value = ?",
            "d.type IN ('integer', 'real') AND d.atom = ?",
            Some(match n.as_i64() {
                Some(i) => SqlValue::Integer(i),
                None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
            }),
        ),
        // Parsing refuses nested values; should one get here, it matches nothing.
        Value::Array(_) | Value::Object(_) => return w.push("1=0", []),
    };
    let params = |bound: &Option<SqlValue>| std::iter::once(text(key)).chain(bound.clone());
    w.push(
        format!(
            "(CASE WHEN messages.data = '' THEN EXISTS (SELECT 1 FROM workflow_run_data_values v \
             WHERE v.run_id = messages.workflow_run_id AND v.key = ? AND {shared}) \
             ELSE EXISTS (SELECT 1 FROM json_each(messages.data) d WHERE d.key = ? AND {own}) END)"
        ),
        params(&bound).chain(params(&bound)),
    );
}

pub(super) fn archived(w: &mut Where, filter: ArchivedFilter) {
    match filter {
        ArchivedFilter::Exclude => w.push("archived_at IS NULL", []),
        ArchivedFilter::Include => {}
        ArchivedFilter::Only => w.push("archived_at IS NOT NULL", []),
    }
}

pub(super) fn status(w: &mut Where, filter: StatusFilter) {
    let sql = match filter {
        // Snoozed is a lifecycle state, selected in `lifecycle`.
        StatusFilter::All | StatusFilter::Snoozed => return,
        StatusFilter::Unread => "read_at IS NULL",
        StatusFilter::Read => "read_at IS NOT NULL",
        StatusFilter::Unseen => "seen_at IS NULL",
        StatusFilter::Seen => "seen_at IS NOT NULL",
    };
    w.push(sql, []);
}

/// Expiry, snooze and pin (the SQL twin of `FeedFilters::admits_lifecycle`): nothing
/// past its expiry at `now`; snoozed items only for `status=snoozed`, and only they.
pub(super) fn lifecycle(w: &mut Where, filters: &FeedFilters, now: &str) {
    w.push("(expires_at IS NULL OR expires_at > ?)", [text(now)]);
    if filters.status == StatusFilter::Snoozed {
        w.push("snoozed_until IS NOT NULL", []);
    } else {
        w.push("snoozed_until IS NULL", []);
    }
    match filters.pinned {
        Some(true) => w.push("pinned_at IS NOT NULL", []),
        Some(false) => w.push("pinned_at IS NULL", []),
        None => {}
    }
}

/// The whole view over `messages` at `now`: feed, tenant, content, lifecycle, archived
/// and (optionally) status.
pub(super) fn view(
    channel_id: &str,
    recipient: &RecipientRef,
    filters: &FeedFilters,
    restriction: Option<&[String]>,
    with_status: bool,
    now: &str,
) -> Where {
    let mut w = Where::default();
    feed(&mut w, channel_id, recipient);
    tenant(&mut w, "coalesce(tenant, '')", filters, restriction);
    content(&mut w, filters);
    lifecycle(&mut w, filters, now);
    archived(&mut w, filters.archived);
    if with_status {
        status(&mut w, filters.status);
    }
    w
}
