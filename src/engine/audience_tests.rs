//! The audience expansion over an in-memory subscription graph: pages, cursors, depth 2,
//! the actor rule and the per-trigger limit, without a database.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{Audience, AudienceCursor, DirectRecipients, RecipientTarget, Stage};
use crate::model::RecipientRef;
use crate::model::stored_trigger::StoredRecipient;
use crate::store::StoreResult;
use crate::store::ops::{AudienceReads, Subscriber};
use crate::store::recipients::subscriptions::ObjectKey;

/// Subscriptions as (object) -> subscribers in position order; positions are global.
#[derive(Default)]
struct Graph {
    subscribers: HashMap<(String, String), Vec<Subscriber>>,
    next_position: i64,
}

fn user(id: &str) -> RecipientRef {
    RecipientRef::User(id.into())
}

fn object(collection: &str, id: &str) -> RecipientRef {
    RecipientRef::Object {
        id: id.into(),
        collection: collection.into(),
    }
}

impl Graph {
    fn subscribe(&mut self, to: &RecipientRef, who: RecipientRef) {
        self.next_position += 1;
        let key = (to.collection().to_owned(), to.id().to_owned());
        self.subscribers.entry(key).or_default().push(Subscriber {
            position: self.next_position,
            recipient: who,
            properties: None,
        });
    }

    fn of(&self, o: &ObjectKey) -> &[Subscriber] {
        self.subscribers
            .get(&(o.collection.clone(), o.id.clone()))
            .map_or(&[], Vec::as_slice)
    }
}

impl AudienceReads for Graph {
    fn subscribers_page(
        &self,
        object: &ObjectKey,
        after: i64,
        limit: usize,
    ) -> StoreResult<Vec<Subscriber>> {
        Ok(self
            .of(object)
            .iter()
            .filter(|s| s.position > after)
            .take(limit)
            .cloned()
            .collect())
    }

    fn next_object_subscriber(
        &self,
        parent: &ObjectKey,
        after: i64,
    ) -> StoreResult<Option<(i64, ObjectKey)>> {
        Ok(self
            .of(parent)
            .iter()
            .filter(|s| s.position > after)
            .find_map(|s| match &s.recipient {
                RecipientRef::Object { id, collection } => {
                    Some((s.position, ObjectKey::new(collection, id)))
                }
                RecipientRef::User(_) => None,
            }))
    }

    fn recipient(&self, r: &RecipientRef) -> StoreResult<Option<Value>> {
        Ok(Some(
            json!({"id": r.id(), "properties": {"title": "Apollo"}}),
        ))
    }
}

fn direct(refs: &[RecipientRef]) -> DirectRecipients {
    DirectRecipients::new(
        refs.iter()
            .map(|r| StoredRecipient {
                reference: r.clone(),
                trigger_data: None,
            })
            .collect(),
    )
}

/// Every target of the expansion, page by page of `limit`, with the pages' sizes.
fn expand_all(
    graph: &Graph,
    audience: &Audience<'_>,
    limit: usize,
) -> (Vec<RecipientRef>, Vec<usize>) {
    let (targets, pages, _) = expand_targets(graph, audience, limit);
    (targets.into_iter().map(|t| t.reference).collect(), pages)
}

/// [`expand_all`] with the targets whole and the cursor it ended at.
fn expand_targets(
    graph: &Graph,
    audience: &Audience<'_>,
    limit: usize,
) -> (Vec<RecipientTarget>, Vec<usize>, AudienceCursor) {
    let mut cursor = AudienceCursor::default();
    let (mut all, mut pages) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let (page, next) = audience
            .next_page(graph, &cursor, limit)
            .expect("in-memory reads");
        assert!(page.len() <= limit);
        pages.push(page.len());
        all.extend(page);
        // The cursor round-trips through its stored JSON, as the runner persists it.
        let stored = serde_json::to_string(&next).expect("serializes");
        cursor = serde_json::from_str(&stored).expect("reads back");
        if cursor.is_done() {
            return (all, pages, cursor);
        }
    }
    panic!("the expansion did not end");
}

#[test]
fn direct_recipients_come_first_then_subscribers_then_depth_two() {
    let project = object("projects", "p1");
    let team = object("teams", "t1");
    let mut g = Graph::default();
    g.subscribe(&project, user("s1"));
    g.subscribe(&project, team.clone());
    g.subscribe(&project, user("s2"));
    g.subscribe(&team, user("m1"));
    g.subscribe(&team, user("m2"));
    let list = direct(&[user("u1"), project.clone()]);
    let audience = Audience {
        direct: &list,
        actor: None,
    };
    let (all, _) = expand_all(&g, &audience, 2);
    assert_eq!(
        all,
        [
            user("u1"),
            project,
            user("s1"),
            team,
            user("s2"),
            user("m1"),
            user("m2")
        ]
    );
}

#[test]
fn the_actor_is_never_reached_as_a_subscriber_but_stays_a_direct_recipient() {
    let project = object("projects", "p1");
    let mut g = Graph::default();
    g.subscribe(&project, user("al"));
    g.subscribe(&project, user("s1"));
    let list = direct(&[user("al"), project.clone()]);
    let audience = Audience {
        direct: &list,
        actor: Some(&list.as_slice()[0].reference),
    };
    let (all, _) = expand_all(&g, &audience, 10);
    assert_eq!(all, [user("al"), project, user("s1")]);
}

#[test]
fn a_subscriber_sees_the_followed_object_with_its_properties_at_the_top_level() {
    let project = object("projects", "p1");
    let mut g = Graph::default();
    g.subscribe(&project, user("s1"));
    let list = direct(&[project]);
    let audience = Audience {
        direct: &list,
        actor: None,
    };
    let at = AudienceCursor {
        stage: Stage::Subscribers,
        ..AudienceCursor::default()
    };
    let (page, _) = audience.next_page(&g, &at, 10).expect("reads");
    let scope = page[0].subscription.as_ref().expect("a subscription scope");
    assert_eq!(scope["object"]["title"], "Apollo");
    assert_eq!(scope["object"]["id"], "p1");
}

#[test]
fn pages_never_exceed_their_limit_and_a_long_subscriber_list_is_cut_by_position() {
    let project = object("projects", "p1");
    let mut g = Graph::default();
    for i in 0..7 {
        g.subscribe(&project, user(&format!("s{i}")));
    }
    let list = direct(&[project]);
    let audience = Audience {
        direct: &list,
        actor: None,
    };
    let (all, pages) = expand_all(&g, &audience, 3);
    assert_eq!(all.len(), 8);
    assert!(pages.iter().all(|n| *n <= 3), "{pages:?}");
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 8, "no target twice");
}

#[test]
fn the_expansion_stops_at_the_audience_limit_and_says_so() {
    let list = direct(&[user("u1"), user("u2"), user("u3")]);
    let audience = Audience {
        direct: &list,
        actor: None,
    };
    let near_limit = AudienceCursor {
        reached: super::MAX_AUDIENCE - 2,
        ..AudienceCursor::default()
    };
    let (page, next) = audience
        .next_page(&Graph::default(), &near_limit, 10)
        .expect("reads");
    assert_eq!(page.len(), 2);
    assert!(next.is_done() && next.truncated);
}

#[test]
fn a_direct_recipient_listed_twice_is_reached_once_at_its_first_place() {
    let project = object("projects", "p1");
    let mut g = Graph::default();
    g.subscribe(&project, user("u1"));
    g.subscribe(&project, user("s1"));
    let list = direct(&[
        user("u1"),
        user("u2"),
        project.clone(),
        user("u1"),
        user("u3"),
        user("u2"),
    ]);
    let audience = Audience {
        direct: &list,
        actor: None,
    };
    // Pages of two: the repeats fall on later pages than their first places.
    let (targets, _, cursor) = expand_targets(&g, &audience, 2);
    let all: Vec<RecipientRef> = targets.iter().map(|t| t.reference.clone()).collect();
    // u1 comes back as a subscriber: that is the store's to drop (it looks it up).
    assert_eq!(
        all,
        [
            user("u1"),
            user("u2"),
            project,
            user("u3"),
            user("u1"),
            user("s1")
        ]
    );
    // Direct targets need no lookup; subscribers do.
    let looked_up: Vec<&RecipientRef> = targets
        .iter()
        .filter(|t| t.may_repeat_an_earlier_page())
        .map(|t| &t.reference)
        .collect();
    assert_eq!(looked_up, [&user("u1"), &user("s1")]);
    // The repeats count toward the per-trigger limit, as every listed recipient does.
    assert_eq!(cursor.reached, 8);
}
