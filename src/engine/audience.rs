//! A run's audience, expanded page by page (spec §4.3 fan-out): first the trigger's own
//! recipients, then the subscribers of each object among them (depth 1), then the
//! subscribers of each object that follows one of those objects (depth 2:
//! object → object → user). Deeper subscribers are not reached.
//!
//! Invariants:
//! - Bounded memory: a page holds at most `limit` targets, and where the expansion stands
//!   is an [`AudienceCursor`] small enough to persist with every page (the runner stores it
//!   in the same transaction as the page's items, so a restart resumes after the last
//!   committed page and never re-walks it).
//! - Deduplication across the whole trigger: a direct recipient listed twice is reached
//!   once, at its first place ([`DirectRecipients`]), so a direct target can never have
//!   been reached earlier in its run and costs the store no lookup. A subscriber may
//!   repeat a direct recipient or another subscriber, so the store drops a subscriber
//!   that already has a recipient run (or message) in this run before it is walked
//!   ([`crate::store::runs::without_recipient_runs`]). Within a page, the first
//!   occurrence wins. Direct recipients come first, so a user listed directly and also
//!   subscribed gets the direct run (without `recipient.subscription`). Behind all of
//!   it, the unique keys (run, recipient) and (recipient run, step) keep writes
//!   exactly-once.
//! - The actor is never one of the subscribers reached (Knock's rule); as a direct
//!   recipient it is kept, as Knock does.
//! - Cycles cannot loop: the expansion is bounded by depth, not by following edges.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::RecipientRef;
use crate::model::stored_trigger::StoredRecipient;
use crate::store::StoreResult;
use crate::store::ops::{AudienceReads, Subscriber};
use crate::store::recipients::minimal;
use crate::store::recipients::subscriptions::ObjectKey;

/// Targets per page while other tenants (or workflows) have work: one page is one write
/// of recipient runs and messages, and one turn of the runner's fair scheduling. Small
/// enough that a page's write is short (a trigger acknowledgement may wait for one; issue
/// 10 item 2: at 500 another tenant's ack p50 was ~140 ms while a fan-out drained, at 100
/// ~15 ms, at the same items/s — BENCHMARKS.md).
pub const PAGE_SIZE: usize = 100;
/// Targets per page while one tenant has had the runner to itself for a second
/// (`fair::PageSizer`): fewer, larger transactions cost the writer less per item
/// (BENCHMARKS.md "Fan-out page size").
pub const SOLO_PAGE_SIZE: usize = 500;
/// Most targets one trigger expands to (direct recipients and subscribers at both depths,
/// counted before deduplication). Beyond it the expansion stops, the run completes with
/// what it reached and a warning names the run (README "Limits").
pub const MAX_AUDIENCE: u64 = 1_000_000;

/// One recipient to walk, and how it was reached.
#[derive(Debug, Clone, PartialEq)]
pub struct RecipientTarget {
    pub reference: RecipientRef,
    /// `$trigger_data` of a direct recipient (merged over `data` for it alone).
    pub trigger_data: Option<Map<String, Value>>,
    /// For a subscriber (always, and only for one): the subscription's properties plus
    /// `object` (the followed object's template view) — `recipient.subscription` in
    /// templates and conditions.
    pub subscription: Option<Value>,
}

impl RecipientTarget {
    /// Whether this target may have been reached on an earlier page of its run, so the
    /// store must look before it is walked: a subscriber may (it can also be a direct
    /// recipient, or follow two objects); a direct target cannot, because repeats in the
    /// direct list are dropped at their later places ([`DirectRecipients`]) and a restart
    /// resumes after the last committed page (its cursor is written with it).
    pub fn may_repeat_an_earlier_page(&self) -> bool {
        self.subscription.is_some()
    }
}

/// A trigger's own recipients in order, and which of them repeat an earlier one.
///
/// Why: triggers are deduplicated when accepted (`model::trigger`), but a stored request
/// is read back as stored; marking repeats once per run keeps "a direct target was never
/// reached before" true without a lookup per page.
#[derive(Debug, Default)]
pub struct DirectRecipients {
    list: Vec<StoredRecipient>,
    /// `repeats[i]`: `list[i]` names the same recipient as an earlier entry.
    repeats: Vec<bool>,
}

impl DirectRecipients {
    pub fn new(list: Vec<StoredRecipient>) -> Self {
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        let repeats = list.iter().map(|r| !seen.insert(&r.reference)).collect();
        Self { list, repeats }
    }

    /// The recipients as listed, repeats included.
    pub fn as_slice(&self) -> &[StoredRecipient] {
        &self.list
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn get(&self, index: usize) -> Option<&StoredRecipient> {
        self.list.get(index)
    }
}

/// Where the expansion of one run stands. Persisted as JSON with the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudienceCursor {
    pub stage: Stage,
    /// Direct: next recipient index. Subscribers/Nested: index of the direct object.
    pub index: usize,
    /// Position within the current subscriber list (subscription rowid; 0 = start).
    pub position: i64,
    /// Nested stage: the depth-1 object being expanded, as (its subscription row, key).
    pub hub: Option<(i64, String, String)>,
    /// Nested stage: the last depth-1 subscription row already expanded.
    pub hub_after: i64,
    /// Targets produced so far (for [`MAX_AUDIENCE`]).
    #[serde(default)]
    pub reached: u64,
    /// Whether the expansion stopped at [`MAX_AUDIENCE`].
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    #[default]
    Direct,
    Subscribers,
    Nested,
    Done,
}

impl AudienceCursor {
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }
}

/// The trigger's side of the expansion: its recipients (in order) and its actor.
pub struct Audience<'a> {
    pub direct: &'a DirectRecipients,
    pub actor: Option<&'a RecipientRef>,
}

fn object_key(r: &RecipientRef) -> Option<ObjectKey> {
    match r {
        RecipientRef::Object { id, collection } => Some(ObjectKey::new(collection, id)),
        RecipientRef::User(_) => None,
    }
}

/// `recipient.subscription` for a subscriber of `object` (`object_view` already loaded).
fn subscription_scope(properties: Option<Map<String, Value>>, object_view: &Value) -> Value {
    let mut scope = properties.unwrap_or_default();
    scope.insert("object".into(), object_view.clone());
    Value::Object(scope)
}

/// The template view of an object: its wire shape with properties also at the top level.
fn object_view<R: AudienceReads + ?Sized>(reads: &R, object: &ObjectKey) -> StoreResult<Value> {
    let r = RecipientRef::Object {
        id: object.id.clone(),
        collection: object.collection.clone(),
    };
    let found = reads.recipient(&r)?.unwrap_or_else(|| minimal(&r));
    let Value::Object(mut map) = found else {
        return Ok(found);
    };
    if let Some(Value::Object(props)) = map.get("properties").cloned() {
        for (k, v) in props {
            map.entry(k).or_insert(v);
        }
    }
    Ok(Value::Object(map))
}

impl Audience<'_> {
    /// The next page after `cursor`: up to `limit` targets (possibly fewer, possibly
    /// none, even before the end) and the cursor to continue from.
    pub fn next_page<R: AudienceReads + ?Sized>(
        &self,
        reads: &R,
        cursor: &AudienceCursor,
        limit: usize,
    ) -> StoreResult<(Vec<RecipientTarget>, AudienceCursor)> {
        let mut c = cursor.clone();
        let mut out: Vec<RecipientTarget> = Vec::new();
        // Direct repeats passed over (counted toward the limit like every target).
        let mut repeats_skipped: u64 = 0;
        let budget = MAX_AUDIENCE.saturating_sub(c.reached);
        let limit = limit.min(usize::try_from(budget).unwrap_or(usize::MAX));
        while out.len() < limit && !c.is_done() {
            let room = limit - out.len();
            match c.stage {
                Stage::Direct => {
                    let end = (c.index + room).min(self.direct.len());
                    for index in c.index.min(end)..end {
                        let direct = &self.direct.list[index];
                        if self.direct.repeats[index] {
                            repeats_skipped += 1;
                            continue;
                        }
                        out.push(RecipientTarget {
                            reference: direct.reference.clone(),
                            trigger_data: direct.trigger_data.clone(),
                            subscription: None,
                        });
                    }
                    c.index = end;
                    if end >= self.direct.len() {
                        c = AudienceCursor {
                            stage: Stage::Subscribers,
                            reached: c.reached,
                            ..AudienceCursor::default()
                        };
                    }
                }
                Stage::Subscribers => {
                    let Some(object) = self.direct_object(&mut c, Stage::Nested) else {
                        continue;
                    };
                    let rows = reads.subscribers_page(&object, c.position, room)?;
                    self.push_subscribers(reads, &object, &rows, &mut out)?;
                    match rows.last() {
                        Some(last) if rows.len() == room => c.position = last.position,
                        _ => {
                            c.index += 1;
                            c.position = 0;
                        }
                    }
                }
                Stage::Nested => {
                    let Some(parent) = self.direct_object(&mut c, Stage::Done) else {
                        continue;
                    };
                    let hub = match &c.hub {
                        Some((_, collection, id)) => ObjectKey::new(collection, id),
                        None => match reads.next_object_subscriber(&parent, c.hub_after)? {
                            Some((row, hub)) => {
                                c.hub = Some((row, hub.collection.clone(), hub.id.clone()));
                                c.position = 0;
                                hub
                            }
                            None => {
                                c.index += 1;
                                c.hub_after = 0;
                                c.position = 0;
                                continue;
                            }
                        },
                    };
                    let rows = reads.subscribers_page(&hub, c.position, room)?;
                    self.push_subscribers(reads, &hub, &rows, &mut out)?;
                    match rows.last() {
                        Some(last) if rows.len() == room => c.position = last.position,
                        _ => {
                            c.hub_after = c.hub.take().map_or(c.hub_after, |(row, _, _)| row);
                            c.position = 0;
                        }
                    }
                }
                Stage::Done => {}
            }
        }
        c.reached += out.len() as u64 + repeats_skipped;
        if c.reached >= MAX_AUDIENCE && !c.is_done() {
            c.stage = Stage::Done;
            c.truncated = true;
        }
        Ok((out, c))
    }

    /// The direct recipient at `c.index` when it is an object; skips users, and moves the
    /// cursor to `next` (from its start) past the last recipient.
    fn direct_object(&self, c: &mut AudienceCursor, next: Stage) -> Option<ObjectKey> {
        match self.direct.get(c.index) {
            None => {
                *c = AudienceCursor {
                    stage: next,
                    reached: c.reached,
                    ..AudienceCursor::default()
                };
                None
            }
            Some(direct) => match object_key(&direct.reference) {
                Some(object) => Some(object),
                None => {
                    c.index += 1;
                    c.position = 0;
                    None
                }
            },
        }
    }

    fn push_subscribers<R: AudienceReads + ?Sized>(
        &self,
        reads: &R,
        object: &ObjectKey,
        rows: &[Subscriber],
        out: &mut Vec<RecipientTarget>,
    ) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let view = object_view(reads, object)?;
        for row in rows {
            if self.actor == Some(&row.recipient) {
                continue;
            }
            out.push(RecipientTarget {
                reference: row.recipient.clone(),
                trigger_data: None,
                subscription: Some(subscription_scope(row.properties.clone(), &view)),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "audience_tests.rs"]
mod tests;
