//! Run records (`GET /v1/workflow_recipient_runs`): a recipient run's status and the list
//! query's filters, parsed from the query string (spec §1.4 encodings).
//!
//! Filters are ANDed: `workflow`, `recipient` (a user id, or `recipient[id]` +
//! `recipient[collection]` for an object), `tenant`, `status` (any of; `status[]=a&status[]=b`
//! or `status=a`), `has_errors`, and `starting_at`/`ending_at` (inclusive bounds on when the
//! recipient run started).

use serde_json::Value;

use super::feed::{MAX_PAGE_SIZE, TimeRange};
use super::feed_params::{ParamError, fold_query, normalize_time, paging, string_list, text};
use super::ids::{CollectionName, EntityId};
use super::recipient::RecipientRef;

/// A recipient run's state. Knock's five, plus `failed` (a step failed and the run halted;
/// Knock reports that as `completed` with errors, we say it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Processing,
    Paused,
    Completed,
    Cancelled,
    Failed,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Processing,
        RunStatus::Paused,
        RunStatus::Completed,
        RunStatus::Cancelled,
        RunStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Processing => "processing",
            RunStatus::Paused => "paused",
            RunStatus::Completed => "completed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }
}

/// The filters and paging of a run-record list.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RunListQuery {
    pub workflow: Option<String>,
    pub recipient: Option<RecipientRef>,
    pub tenant: Option<String>,
    /// Any of these; empty = every status.
    pub statuses: Vec<RunStatus>,
    pub has_errors: Option<bool>,
    /// `gte` from `starting_at`, `lte` from `ending_at`.
    pub started: TimeRange,
    pub page_size: u32,
    pub after: Option<i64>,
    pub before: Option<i64>,
}

impl RunListQuery {
    /// Parses the list's query string; the error names the offending field (the HTTP layer
    /// turns it into a Knock-shaped 422).
    pub fn from_query(pairs: &[(String, String)]) -> Result<Self, ParamError> {
        let map = fold_query(pairs);
        let mut q = RunListQuery {
            workflow: text(&map, "workflow")?,
            page_size: MAX_PAGE_SIZE,
            ..Default::default()
        };
        if let Some(raw) = text(&map, "tenant")? {
            EntityId::parse(&raw).map_err(|m| ParamError::new("tenant", m))?;
            q.tenant = Some(raw);
        }
        q.recipient = recipient(
            text(&map, "recipient")?,
            text(&map, "recipient.id")?,
            text(&map, "recipient.collection")?,
        )?;
        for raw in string_list(map.get("status"), "status", RunStatus::ALL.len())? {
            let status = RunStatus::parse(&raw).ok_or_else(|| {
                let all: Vec<_> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                ParamError::new("status", format!("must be one of {}", all.join(", ")))
            })?;
            if !q.statuses.contains(&status) {
                q.statuses.push(status);
            }
        }
        if let Some(raw) = text(&map, "has_errors")? {
            q.has_errors = Some(match raw.as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(ParamError::new("has_errors", "must be true or false")),
            });
        }
        for (field, slot) in [
            ("starting_at", &mut q.started.gte),
            ("ending_at", &mut q.started.lte),
        ] {
            if let Some(raw) = text(&map, field)? {
                *slot = Some(
                    normalize_time(&raw)
                        .ok_or_else(|| ParamError::new(field, "must be an ISO-8601 datetime"))?,
                );
            }
        }
        paging(&map, &mut q.page_size, &mut q.after, &mut q.before)?;
        Ok(q)
    }
}

/// `recipient=<user id>`, `recipient[id]=..&recipient[collection]=..`, or a JSON reference
/// (`recipient={"id":..,"collection":..}`, what a client that JSON-encodes objects sends).
fn recipient(
    plain: Option<String>,
    id: Option<String>,
    collection: Option<String>,
) -> Result<Option<RecipientRef>, ParamError> {
    let bad = |m: String| ParamError::new("recipient", m);
    match (plain, id, collection) {
        (None, None, None) => Ok(None),
        (Some(raw), None, None) => {
            if raw.trim_start().starts_with('{')
                && let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&raw)
            {
                return RecipientRef::parse(&v).map(Some).map_err(bad);
            }
            let id = EntityId::parse(&raw).map_err(bad)?;
            Ok(Some(RecipientRef::User(id.into_string())))
        }
        (None, Some(id), None) => Ok(Some(RecipientRef::User(
            EntityId::parse(&id).map_err(bad)?.into_string(),
        ))),
        (None, Some(id), Some(collection)) => Ok(Some(RecipientRef::Object {
            id: EntityId::parse(&id).map_err(bad)?.into_string(),
            collection: CollectionName::parse(&collection)
                .map_err(bad)?
                .as_str()
                .to_owned(),
        })),
        _ => Err(bad(
            "must be a user id, or an object reference with `id` and `collection`".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<RunListQuery, ParamError> {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        RunListQuery::from_query(&pairs)
    }

    #[test]
    fn filters_parse_from_both_array_encodings_and_nested_references() {
        let q = parse("workflow=wf&tenant=t1&status[]=paused&status[]=failed&recipient[id]=p1&recipient[collection]=projects&starting_at=2026-01-01T00:00:00Z&has_errors=true&page_size=5")
            .expect("valid");
        assert_eq!(q.workflow.as_deref(), Some("wf"));
        assert_eq!(q.tenant.as_deref(), Some("t1"));
        assert_eq!(q.statuses, vec![RunStatus::Paused, RunStatus::Failed]);
        assert_eq!(
            q.recipient,
            Some(RecipientRef::Object {
                id: "p1".into(),
                collection: "projects".into()
            })
        );
        assert_eq!(
            q.started.gte.as_deref(),
            Some("2026-01-01T00:00:00.000000Z")
        );
        assert_eq!(q.has_errors, Some(true));
        assert_eq!(q.page_size, 5);
        let q = parse("status=completed&recipient=u1").expect("valid");
        assert_eq!(q.statuses, vec![RunStatus::Completed]);
        assert_eq!(q.recipient, Some(RecipientRef::User("u1".into())));
        let q = parse(r#"recipient={"id":"o","collection":"c"}"#).expect("valid");
        assert_eq!(
            q.recipient,
            Some(RecipientRef::Object {
                id: "o".into(),
                collection: "c".into()
            })
        );
    }

    #[test]
    fn bad_values_name_their_field() {
        for (query, field) in [
            ("status=done", "status"),
            ("starting_at=yesterday", "starting_at"),
            ("ending_at=1", "ending_at"),
            ("recipient[collection]=c", "recipient"),
            ("recipient=a%2Fb", "recipient"),
            ("has_errors=maybe", "has_errors"),
            ("page_size=0", "page_size"),
            ("after=nope", "after"),
            ("tenant=a%23b", "tenant"),
        ] {
            assert_eq!(
                parse(query).err().map(|e| e.field),
                Some(field.to_owned()),
                "{query}"
            );
        }
    }
}
