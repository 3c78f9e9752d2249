//! Unit tests for `store::lifecycle`: counters stay equal to a recount through snooze,
//! wake, expiry and purge, and each due item is claimed once.

use serde_json::json;

use super::*;
use crate::model::{FeedFilters, RecipientRef, StatusFilter};
use crate::store::feeds::{counts, counts_by_query, counts_from_counters};
use crate::store::messages::NewMessage;

const T0: &str = "2026-01-01T00:00:00.000000Z";

fn at(minutes: u32) -> String {
    format!(
        "2026-01-01T{:02}:{:02}:00.000000Z",
        minutes / 60,
        minutes % 60
    )
}

fn user() -> RecipientRef {
    RecipientRef::User("u".into())
}

fn insert(db: &Db<'_>, i: usize, expires_at: Option<String>) -> MessageRow {
    messages::insert(
        db,
        &NewMessage {
            id: format!("m{i}"),
            channel_id: "chan".into(),
            recipient: user(),
            tenant: None,
            workflow_key: "wf".into(),
            workflow_version_id: "v".into(),
            workflow_categories: vec![],
            workflow_run_id: format!("r{i}"),
            workflow_recipient_run_id: format!("rr{i}"),
            step_ref: "s".into(),
            actors: vec![],
            data: json!({}).into(),
            blocks: json!([]).into(),
            inserted_at: T0.into(),
            batch: None,
            expires_at,
            pinned_at: None,
        },
    )
    .expect("insert")
    .expect("new")
}

/// (total, unread) of the feed at `now`, after checking both count paths agree.
fn badge(db: &Db<'_>, now: &str) -> (i64, i64) {
    let f = FeedFilters::default();
    let fast = counts_from_counters(db, "chan", &user(), &f, None, now).expect("fast");
    let slow = counts_by_query(db, "chan", &user(), &f, None, now).expect("slow");
    assert_eq!(fast, slow, "at {now}");
    (fast.total_count, fast.unread_count)
}

#[test]
fn expiry_leaves_counts_at_its_instant_and_the_due_source_applies_it_once() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        insert(&db, 1, Some(at(10)));
        insert(&db, 2, None);
        assert_eq!(badge(&db, &at(9)), (2, 2));
        // Past the expiry but before the due-source ran: already gone from counts.
        assert_eq!(badge(&db, &at(10)), (1, 1));
        assert_eq!(next_expiry(&db).expect("next"), Some(at(10)));
        assert!(expire_due(&db, &at(9), 10).expect("early").is_empty());
        assert_eq!(expire_due(&db, &at(11), 10).expect("due").len(), 1);
        assert!(
            expire_due(&db, &at(11), 10).expect("again").is_empty(),
            "once"
        );
        assert_eq!(badge(&db, &at(11)), (1, 1));
        assert_eq!(next_expiry(&db).expect("next"), None);
        // Reading an expired item changes no counter.
        let m = messages::get(&db, "m1").expect("get").expect("kept");
        let mut read = m.clone();
        read.read_at = Some(at(12));
        messages::update_engagement(&db, &m, &read).expect("read");
        assert_eq!(badge(&db, &at(12)), (1, 1));
        // The purge deletes it after the grace period only.
        assert_eq!(next_expired(&db).expect("next"), Some(at(10)));
        assert_eq!(purge_expired(&db, &at(10), 10).expect("too early"), 0);
        assert_eq!(purge_expired(&db, &at(11), 10).expect("purge"), 1);
        assert!(messages::get(&db, "m1").expect("get").is_none());
        assert_eq!(badge(&db, &at(12)), (1, 1));
    }
}

#[test]
fn a_snoozed_item_counts_nowhere_and_wakes_unread_at_the_head_once() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let first = insert(&db, 1, None);
        insert(&db, 2, None);
        let mut read = first.clone();
        read.read_at = Some(at(1));
        read.seen_at = Some(at(1));
        messages::update_engagement(&db, &first, &read).expect("read");
        assert_eq!(badge(&db, &at(2)), (2, 1));
        snooze(&db, "m2", &at(60), &at(2))
            .expect("snooze")
            .expect("known");
        assert_eq!(badge(&db, &at(2)), (1, 0));
        let snoozed = FeedFilters {
            status: StatusFilter::Snoozed,
            ..Default::default()
        };
        let c = counts(&db, "chan", &user(), &snoozed, None, &at(2)).expect("snoozed");
        assert_eq!((c.total_count, c.unread_count), (1, 0));
        // Snoozing the read item too, then waking it: unread again, newest of all.
        snooze(&db, "m1", &at(30), &at(2))
            .expect("snooze")
            .expect("known");
        assert_eq!(badge(&db, &at(2)), (0, 0));
        assert_eq!(next_wake(&db).expect("next"), Some(at(30)));
        let due = due_wakes(&db, &at(45), 10).expect("due");
        assert_eq!(due, [("m1".to_owned(), at(30))]);
        // A wake for a snooze time that was moved meanwhile claims nothing.
        assert!(
            wake(&db, "m1", Some(&at(29)), &at(45))
                .expect("stale")
                .is_none()
        );
        let woke = wake(&db, "m1", Some(&at(30)), &at(45))
            .expect("wake")
            .expect("woke");
        assert!(woke.read_at.is_none() && woke.seen_at.is_none());
        assert!(woke.seq > 2, "a new cursor above every other");
        assert_eq!(woke.inserted_at, at(45));
        assert!(
            wake(&db, "m1", Some(&at(30)), &at(45))
                .expect("again")
                .is_none(),
            "once"
        );
        assert_eq!(badge(&db, &at(45)), (1, 1));
        // A later insert takes a sequence above the woken item's.
        let next = insert(&db, 3, None);
        assert!(next.seq > woke.seq);
        assert_eq!(
            messages::get(&db, "m1").expect("get").expect("kept").seq,
            woke.seq
        );
    }
}

#[test]
fn pinning_moves_no_count_and_keeps_the_first_pin_time() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        insert(&db, 1, None);
        let pinned = set_pinned(&db, "m1", Some(&at(1)), &at(1))
            .expect("pin")
            .expect("known");
        assert_eq!(pinned.pinned_at, Some(at(1)));
        let again = set_pinned(&db, "m1", Some(&at(5)), &at(5))
            .expect("pin")
            .expect("known");
        assert_eq!(again.pinned_at, Some(at(1)));
        assert_eq!(badge(&db, &at(5)), (1, 1));
        let unpinned = set_pinned(&db, "m1", None, &at(6))
            .expect("unpin")
            .expect("known");
        assert_eq!(unpinned.pinned_at, None);
        assert!(
            set_pinned(&db, "nope", None, &at(6))
                .expect("unknown")
                .is_none()
        );
    }
}

/// Several nodes: a wake on one node while another node's insert is still uncommitted.
/// The woken item's new `seq` comes from the sequence, so it can neither take the number
/// the open insert holds (a maximum over committed rows would, and then wait on that
/// insert's key and fail when it commits) nor wait for it.
#[test]
fn a_wake_beside_another_nodes_open_insert_takes_a_number_of_its_own_without_waiting() {
    for test_db in crate::store::test_engines::engines() {
        // Needs a second connection: PostgreSQL only.
        let Some(other_node) = test_db.connect_again() else {
            continue;
        };
        let db = Db::on(&test_db.conn);
        insert(&db, 1, None);
        snooze(&db, "m1", &at(30), &at(2))
            .expect("snooze")
            .expect("known");
        // A wait on the open insert fails this test within seconds rather than hanging it.
        test_db
            .conn
            .execute_batch("SET lock_timeout = '5s'")
            .expect("lock timeout");
        other_node.begin().expect("begin");
        let open = insert(&Db::on(&other_node), 2, None);
        let woke = wake(&db, "m1", Some(&at(30)), &at(45))
            .expect("the wake neither waits nor conflicts")
            .expect("woke");
        other_node
            .execute_batch("COMMIT")
            .expect("commit the insert");
        assert_ne!(woke.seq, open.seq);
        let stored = |id: &str| messages::get(&db, id).expect("get").expect("kept").seq;
        assert_eq!((stored("m1"), stored("m2")), (woke.seq, open.seq));
        assert_eq!(badge(&db, &at(45)), (2, 2));
    }
}
