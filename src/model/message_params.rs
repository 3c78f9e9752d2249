//! Parsing the messages API's inputs (spec §6.4): the list filters of `GET /v1/messages`
//! and `GET /v1/users/{id}/messages`, and the scope body of
//! `POST /v1/channels/{channel}/messages/bulk/{action}`.

use serde_json::{Map, Value};

use super::engagement::{EngagementChange, EngagementStatus};
use super::feed::{ArchivedFilter, MAX_PAGE_SIZE, TimeRange};
use super::feed_params::{
    MAX_FILTER_VALUES, ParamError, categories, fold_query, normalize_time, paging, string_list,
    text, time_range, trigger_data,
};
use super::recipient::RecipientRef;

/// Most `message_ids` a list filter may name (spec §9).
pub const MAX_MESSAGE_IDS: usize = 50;
/// Recipients a bulk message update may name (Knock caps bulk lists at 1,000).
pub const MAX_BULK_RECIPIENTS: usize = 1000;

/// Knock's delivery statuses; an in-app message is always `delivered`.
const DELIVERY_STATUSES: [&str; 7] = [
    "queued",
    "sent",
    "delivered",
    "delivery_attempted",
    "undelivered",
    "not_sent",
    "bounced",
];

fn delivery_status(raw: &str, field: &str) -> Result<String, ParamError> {
    if DELIVERY_STATUSES.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(ParamError::new(
            field,
            format!("must be one of {}", DELIVERY_STATUSES.join(", ")),
        ))
    }
}

/// Filters and paging of a message list. Every filter narrows (they are ANDed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageListQuery {
    /// A channel UUID or key, resolved by the handler.
    pub channel: Option<String>,
    /// Exact tenant match.
    pub tenant: Option<String>,
    /// Any-of; a list without `delivered` matches nothing.
    pub delivery_statuses: Vec<String>,
    /// All-of: a message must be in every listed state.
    pub engagement: Vec<EngagementStatus>,
    pub message_ids: Vec<String>,
    pub workflow_categories: Vec<String>,
    pub source: Option<String>,
    pub workflow_run_id: Option<String>,
    pub workflow_recipient_run_id: Option<String>,
    pub trigger_data: Option<Map<String, Value>>,
    pub inserted_at: TimeRange,
    pub page_size: u32,
    pub after: Option<i64>,
    pub before: Option<i64>,
}

impl MessageListQuery {
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        let map = fold_query(pairs);
        let mut q = MessageListQuery {
            channel: text(&map, "channel_id")?,
            tenant: text(&map, "tenant")?,
            source: text(&map, "source")?,
            workflow_run_id: text(&map, "workflow_run_id")?,
            workflow_recipient_run_id: text(&map, "workflow_recipient_run_id")?,
            workflow_categories: categories(map.get("workflow_categories"))?,
            trigger_data: trigger_data(map.get("trigger_data"))?,
            inserted_at: time_range(&map)?,
            message_ids: string_list(map.get("message_ids"), "message_ids", MAX_MESSAGE_IDS)?,
            page_size: MAX_PAGE_SIZE,
            ..Default::default()
        };
        if q.message_ids.len() > MAX_MESSAGE_IDS {
            return Err(ParamError::new(
                "message_ids",
                format!("may name at most {MAX_MESSAGE_IDS} messages"),
            ));
        }
        for raw in string_list(map.get("status"), "status", MAX_FILTER_VALUES)? {
            q.delivery_statuses.push(delivery_status(&raw, "status")?);
        }
        for raw in string_list(
            map.get("engagement_status"),
            "engagement_status",
            MAX_FILTER_VALUES,
        )? {
            q.engagement.push(EngagementStatus::parse(&raw).ok_or_else(|| {
                ParamError::new(
                    "engagement_status",
                    "must be one of seen, unseen, read, unread, archived, unarchived, interacted, link_clicked",
                )
            })?);
        }
        paging(&map, &mut q.page_size, &mut q.after, &mut q.before)?;
        Ok(q)
    }

    /// Whether the delivery-status filter can match an in-app message at all.
    pub fn delivery_matches(&self) -> bool {
        self.delivery_statuses.is_empty() || self.delivery_statuses.iter().any(|s| s == "delivered")
    }
}

/// Which messages of a channel a bulk update touches. Absent fields do not narrow;
/// `tenants` follows the feed's tenant rule (items with no tenant are included unless
/// `has_tenant` is true), so "mark all as read" from a tenant feed clears what it shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BulkScope {
    /// `None` = every recipient in the channel. `user_ids` and `recipient_ids` combine.
    pub recipients: Option<Vec<RecipientRef>>,
    pub engagement: Vec<EngagementStatus>,
    /// `false` when a `delivery_status` other than `delivered` was asked for.
    pub delivery_matches: bool,
    pub archived: ArchivedFilter,
    pub has_tenant: Option<bool>,
    pub tenants: Vec<String>,
    pub workflows: Vec<String>,
    pub trigger_data: Option<Map<String, Value>>,
    /// `newer_than` → `gt`, `older_than` → `lt`.
    pub inserted_at: TimeRange,
}

impl BulkScope {
    pub fn from_body(body: &Value) -> Result<Self, ParamError> {
        let Some(map) = body.as_object() else {
            return Err(ParamError::new("body", "must be a JSON object"));
        };
        // The caps come first: nothing is parsed, copied or compared for an oversized list.
        let recipients = recipients(map)?;
        let mut scope = BulkScope {
            archived: ArchivedFilter::Include,
            delivery_matches: true,
            tenants: string_list(map.get("tenants"), "tenants", MAX_FILTER_VALUES)?,
            workflows: string_list(map.get("workflows"), "workflows", MAX_FILTER_VALUES)?,
            trigger_data: trigger_data(map.get("trigger_data"))?,
            ..Default::default()
        };
        scope.recipients = recipients;
        if let Some(raw) = text(map, "archived")? {
            scope.archived = ArchivedFilter::parse(&raw).ok_or_else(|| {
                ParamError::new("archived", "must be one of exclude, include, only")
            })?;
        }
        if let Some(raw) = text(map, "has_tenant")? {
            scope.has_tenant = Some(match raw.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(ParamError::new("has_tenant", "must be true or false")),
            });
        }
        for raw in string_list(
            map.get("engagement_status"),
            "engagement_status",
            MAX_FILTER_VALUES,
        )? {
            // The browser client sends its feed status; `all` means no filter.
            if raw == "all" {
                continue;
            }
            scope.engagement.push(EngagementStatus::parse(&raw).ok_or_else(|| {
                ParamError::new(
                    "engagement_status",
                    "must be one of seen, unseen, read, unread, archived, unarchived, interacted, link_clicked",
                )
            })?);
        }
        if let Some(raw) = text(map, "delivery_status")? {
            scope.delivery_matches = delivery_status(&raw, "delivery_status")? == "delivered";
        }
        for (field, slot) in [
            ("newer_than", &mut scope.inserted_at.gt),
            ("older_than", &mut scope.inserted_at.lt),
        ] {
            if let Some(raw) = text(map, field)? {
                *slot = Some(
                    normalize_time(&raw)
                        .ok_or_else(|| ParamError::new(field, "must be an ISO-8601 datetime"))?,
                );
            }
        }
        Ok(scope)
    }
}

/// `user_ids` and `recipient_ids` together, at most [`MAX_BULK_RECIPIENTS`] entries,
/// deduplicated in linear time.
fn recipients(map: &Map<String, Value>) -> Result<Option<Vec<RecipientRef>>, ParamError> {
    let given: usize = ["user_ids", "recipient_ids"]
        .iter()
        .filter_map(|f| map.get(*f).and_then(Value::as_array))
        .map(Vec::len)
        .sum();
    if given > MAX_BULK_RECIPIENTS {
        return Err(ParamError::new(
            "user_ids",
            format!(
                "`user_ids` and `recipient_ids` may name at most {MAX_BULK_RECIPIENTS} recipients together, got {given}"
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut out: Option<Vec<RecipientRef>> = None;
    for field in ["user_ids", "recipient_ids"] {
        let items = match map.get(field) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(items)) => items,
            Some(_) => return Err(ParamError::new(field, "must be a list of recipient ids")),
        };
        let list = out.get_or_insert_with(Vec::new);
        for item in items {
            if item.is_null() {
                continue;
            }
            let r = RecipientRef::parse(item).map_err(|m| ParamError::new(field, m))?;
            if seen.insert(r.clone()) {
                list.push(r);
            }
        }
    }
    Ok(out)
}

/// The `message_ids` of `GET /v1/messages/batch/content`: required, 1 to
/// [`MAX_MESSAGE_IDS`] ids (`message_ids[]=a&message_ids[]=b`, as the SDKs send them), duplicates
/// answered once, in the order first named.
pub fn content_message_ids(pairs: &[(String, String)]) -> Result<Vec<String>, ParamError> {
    let map = fold_query(pairs);
    let ids = string_list(map.get("message_ids"), "message_ids", MAX_MESSAGE_IDS)?;
    if ids.is_empty() {
        return Err(ParamError::new(
            "message_ids",
            "is required: name 1 to 50 messages",
        ));
    }
    let mut unique: Vec<String> = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

/// What a bulk channel update does to each matching message.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkAction {
    Change(EngagementChange),
    Delete,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(s: &str) -> Vec<(String, String)> {
        url::form_urlencoded::parse(s.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    #[test]
    fn list_query_reads_arrays_and_rejects_too_many_ids() {
        let query = MessageListQuery::from_query(&q(
            "engagement_status[]=unread&status[]=delivered&message_ids[]=a&message_ids[]=b&channel_id=in-app-feed",
        ))
        .expect("parses");
        assert_eq!(query.engagement, vec![EngagementStatus::Unread]);
        assert_eq!(query.message_ids, vec!["a", "b"]);
        assert!(query.delivery_matches());
        let many = (0..51)
            .map(|i| format!("message_ids[]=m{i}"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(MessageListQuery::from_query(&q(&many)).is_err());
        assert!(MessageListQuery::from_query(&q("status[]=lost")).is_err());
        assert!(MessageListQuery::from_query(&q("engagement_status=nope")).is_err());
    }

    #[test]
    fn bulk_scope_accepts_both_id_fields_and_the_browser_body() {
        let scope = BulkScope::from_body(&json!({
            "user_ids": ["u1"], "recipient_ids": ["u2", {"id": "p1", "collection": "projects"}],
            "engagement_status": "unread", "archived": "exclude", "has_tenant": true,
            "tenants": [null, "acme"], "trigger_data": "{\"k\":\"v\"}",
            "newer_than": "2026-01-01T00:00:00Z"
        }))
        .expect("parses");
        assert_eq!(scope.recipients.as_ref().map(Vec::len), Some(3));
        assert_eq!(scope.tenants, vec!["acme"]);
        assert_eq!(scope.archived, ArchivedFilter::Exclude);
        assert!(scope.inserted_at.gt.is_some());
        let empty = BulkScope::from_body(&json!({})).expect("parses");
        assert_eq!(empty.recipients, None);
        assert_eq!(empty.archived, ArchivedFilter::Include);
        assert!(BulkScope::from_body(&json!({"user_ids": "u1"})).is_err());
        assert!(BulkScope::from_body(&json!({"archived": "maybe"})).is_err());
        assert!(BulkScope::from_body(&json!({"older_than": "soon"})).is_err());
        assert!(BulkScope::from_body(&json!([])).is_err());
    }
}
