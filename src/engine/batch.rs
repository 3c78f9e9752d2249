//! The batch step's rules, pure (no I/O): a batch's identity, where its window closes,
//! and what a closed batch shows to templates and to the feed (Knock §3.5).
//!
//! The walk turns a batch step into a [`BatchJoin`]; `engine::batch_join` writes it in
//! the recipient run's page write; `engine::batch_close` closes due batches and walks
//! the continuing run with a [`ClosedBatch`].

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use crate::model::RecipientRef;
use crate::model::workflow::{BatchOrder, BatchStep, Duration, WindowType};
use crate::store::batches::ActivityRow;

/// Knock renders at most this many unique `actors`.
pub const MAX_ACTORS: usize = 10;
/// Merged batch `data` keeps strings up to this many characters (Knock).
pub const MAX_MERGED_STRING: usize = 256;

/// The identity of a batch: one open batch per (workflow, step, recipient, tenant, key).
pub fn identity(
    workflow: &str,
    step_ref: &str,
    recipient: &RecipientRef,
    tenant: Option<&str>,
    key: &str,
) -> String {
    format!(
        "{workflow}\u{1f}{step_ref}\u{1f}{}:{}:{}\u{1f}{}\u{1f}{key}",
        recipient.kind(),
        recipient.collection(),
        recipient.id(),
        tenant.unwrap_or_default()
    )
}

/// The longest a sliding window without `batch_window_extension_limit` stays open: the
/// longest duration a workflow may name.
const DEFAULT_EXTENSION_DAYS: u32 = crate::model::workflow::MAX_DAYS as u32;

/// A batch's window as resolved when a trigger reaches the step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Where the window closes if this trigger opens the batch.
    pub closes_at: DateTime<Utc>,
    /// Sliding windows: the latest close if this trigger opens the batch.
    pub extend_until: Option<DateTime<Utc>>,
    /// Sliding windows: the close this trigger asks for when it joins an open batch.
    pub slide_to: Option<DateTime<Utc>>,
}

/// The window of a batch step reached at `now`. `dynamic` is the close resolved from
/// `batch_until_field_path`, when it resolved; `None` = no usable window (the step is
/// skipped, as Knock skips an invalid dynamic value).
pub fn window(
    step: &BatchStep,
    now: DateTime<Utc>,
    dynamic: Option<DateTime<Utc>>,
) -> Option<Window> {
    let closes_at = dynamic.or_else(|| step.window.map(|w| w.after(now)))?;
    let closes_at = closes_at.max(now);
    match (step.window_type, step.window) {
        (WindowType::Sliding, Some(w)) => {
            let limit = step.extension_limit.unwrap_or(Duration {
                unit: crate::model::workflow::Unit::Days,
                value: DEFAULT_EXTENSION_DAYS,
            });
            Some(Window {
                closes_at,
                extend_until: Some(limit.after(now)),
                slide_to: Some(w.after(now)),
            })
        }
        _ => Some(Window {
            closes_at,
            extend_until: None,
            slide_to: None,
        }),
    }
}

/// The close of an open batch after an activity is appended: a sliding window moves to
/// `slide_to` but never past `extend_until` (already past = closes at once); a full
/// batch (`max_items`) closes at once.
pub fn close_after_append(
    current: DateTime<Utc>,
    slide_to: Option<DateTime<Utc>>,
    extend_until: Option<DateTime<Utc>>,
    live: u64,
    max_items: Option<u32>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut closes = current;
    if let Some(to) = slide_to {
        closes = closes.max(to);
    }
    if let Some(limit) = extend_until {
        closes = closes.min(limit.max(now));
    }
    if max_items.is_some_and(|m| live >= u64::from(m)) {
        closes = now;
    }
    closes
}

/// `{render_limit, order}` as stored with a batch.
pub fn settings(step: &BatchStep) -> Value {
    json!({"render_limit": step.render_limit,
           "order": if step.order == BatchOrder::Desc { "desc" } else { "asc" }})
}

/// A closed batch as the continuing run sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedBatch {
    pub batch_id: String,
    /// The merged, flat `data` of the rendered activities (later ones win).
    pub data: Arc<Value>,
    /// Up to [`MAX_ACTORS`] unique actors, in order of first activity.
    pub actors: Vec<RecipientRef>,
    /// Template variables: `activities`, `total_activities`, `actors`, `total_actors`.
    pub scope: Map<String, Value>,
    /// What the message stores: `{activities, total_activities, total_actors}`.
    pub message: Arc<Value>,
}

impl ClosedBatch {
    /// The form stored in a paused run's resume state (a later delay keeps the batch).
    pub fn to_value(&self) -> Value {
        json!({"batch_id": self.batch_id, "data": *self.data, "actors": self.actors,
               "scope": self.scope, "message": *self.message})
    }

    pub fn from_value(v: &Value) -> Option<ClosedBatch> {
        Some(ClosedBatch {
            batch_id: v["batch_id"].as_str()?.to_owned(),
            data: Arc::new(v["data"].clone()),
            actors: serde_json::from_value(v["actors"].clone()).ok()?,
            scope: v["scope"].as_object()?.clone(),
            message: Arc::new(v["message"].clone()),
        })
    }
}

/// `data` merged over the activities in trigger order: later keys win, nested objects and
/// arrays are dropped, strings are cut to [`MAX_MERGED_STRING`] characters.
pub fn merged_data<'a>(chronological: impl Iterator<Item = &'a Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for data in chronological {
        let Some(map) = data.as_object() else {
            continue;
        };
        for (k, v) in map {
            match v {
                Value::Object(_) | Value::Array(_) => {}
                Value::String(s) if s.chars().count() > MAX_MERGED_STRING => {
                    out.insert(
                        k.clone(),
                        Value::String(s.chars().take(MAX_MERGED_STRING).collect()),
                    );
                }
                v => {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
    }
    out
}

/// Builds what a closed batch shows. `rendered` are the activities in render order
/// (`batch_order`), `people` the stored actors and recipient by reference, `recipient`
/// the batch's recipient as templates see it.
pub fn close(
    batch_id: &str,
    rendered: &[ActivityRow],
    total_activities: i64,
    actors: Vec<RecipientRef>,
    total_actors: i64,
    people: &HashMap<RecipientRef, Value>,
    recipient: &Value,
) -> ClosedBatch {
    let person = |r: &RecipientRef| {
        people
            .get(r)
            .cloned()
            .unwrap_or_else(|| crate::store::recipients::minimal(r))
    };
    let mut chronological: Vec<&ActivityRow> = rendered.iter().collect();
    chronological.sort_by_key(|a| a.seq);
    let data = merged_data(chronological.iter().map(|a| &a.data));
    let template_activities: Vec<Value> = rendered
        .iter()
        .map(|a| {
            let mut v = a.data.as_object().cloned().unwrap_or_default();
            v.insert("id".into(), json!(a.id));
            v.insert("inserted_at".into(), json!(a.inserted_at));
            v.insert("timestamp".into(), json!(a.inserted_at));
            v.insert(
                "actor".into(),
                a.actor.as_ref().map(person).unwrap_or(Value::Null),
            );
            v.insert("recipient".into(), recipient.clone());
            v.insert("data".into(), a.data.clone());
            Value::Object(v)
        })
        .collect();
    let message_activities: Vec<Value> = rendered
        .iter()
        .map(|a| {
            json!({"id": a.id, "inserted_at": a.inserted_at,
                   "actor": a.actor.as_ref().map(person), "data": a.data})
        })
        .collect();
    let actor_values: Vec<Value> = actors.iter().map(person).collect();
    let mut scope = Map::new();
    scope.insert("activities".into(), Value::Array(template_activities));
    scope.insert("total_activities".into(), json!(total_activities));
    scope.insert("actors".into(), Value::Array(actor_values));
    scope.insert("total_actors".into(), json!(total_actors));
    ClosedBatch {
        batch_id: batch_id.to_owned(),
        data: Arc::new(Value::Object(data)),
        actors,
        scope,
        message: Arc::new(json!({"activities": message_activities,
                                 "total_activities": total_activities,
                                 "total_actors": total_actors})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        crate::clock::parse(s).expect("time")
    }

    #[test]
    fn merged_data_is_flat_later_wins_and_cuts_long_strings() {
        let long = "x".repeat(300);
        let a = json!({"a": 1, "b": "first", "nested": {"x": 1}, "list": [1]});
        let b = json!({"b": "second", "c": long});
        let m = merged_data([&a, &b].into_iter());
        assert_eq!(m["a"], 1);
        assert_eq!(m["b"], "second");
        assert!(m.get("nested").is_none() && m.get("list").is_none());
        assert_eq!(
            m["c"].as_str().map(|s| s.chars().count()),
            Some(MAX_MERGED_STRING)
        );
    }

    #[test]
    fn a_sliding_window_moves_with_each_activity_up_to_its_limit() {
        let now = t("2026-03-01T09:10:00Z");
        let current = t("2026-03-01T09:12:00Z");
        let limit = t("2026-03-01T09:30:00Z");
        let to = t("2026-03-01T09:15:00Z");
        assert_eq!(
            close_after_append(current, Some(to), Some(limit), 2, None, now),
            to
        );
        let far = t("2026-03-01T10:00:00Z");
        assert_eq!(
            close_after_append(current, Some(far), Some(limit), 2, None, now),
            limit
        );
        // The limit already elapsed: closes at once.
        let late = t("2026-03-01T09:40:00Z");
        assert_eq!(
            close_after_append(current, Some(late), Some(limit), 2, None, late),
            late
        );
        // Fixed windows do not move; a full batch closes now.
        assert_eq!(
            close_after_append(current, None, None, 2, None, now),
            current
        );
        assert_eq!(
            close_after_append(current, None, None, 3, Some(3), now),
            now
        );
    }

    #[test]
    fn a_closed_batch_renders_in_order_and_counts_every_activity() {
        let row = |seq: i64, actor: &str, n: i64| ActivityRow {
            seq,
            recipient_run: format!("rr{seq}"),
            id: format!("a{seq}"),
            actor: Some(RecipientRef::User(actor.into())),
            data: json!({"n": n}),
            inserted_at: format!("2026-03-01T09:0{seq}:00.000000Z"),
        };
        // desc: newest first, but data still merges in trigger order (newest wins).
        let rendered = vec![row(3, "bo", 3), row(2, "al", 2)];
        let people = HashMap::from([(
            RecipientRef::User("al".into()),
            json!({"id": "al", "name": "Al"}),
        )]);
        let closed = close(
            "b1",
            &rendered,
            5,
            vec![
                RecipientRef::User("al".into()),
                RecipientRef::User("bo".into()),
            ],
            2,
            &people,
            &json!({"id": "r"}),
        );
        assert_eq!(closed.data["n"], 3);
        assert_eq!(closed.scope["total_activities"], 5);
        assert_eq!(closed.scope["activities"][0]["n"], 3);
        assert_eq!(closed.scope["activities"][1]["actor"]["name"], "Al");
        assert_eq!(closed.scope["actors"][1]["id"], "bo");
        assert_eq!(closed.message["activities"][0]["data"], json!({"n": 3}));
        assert_eq!(ClosedBatch::from_value(&closed.to_value()), Some(closed));
    }
}
