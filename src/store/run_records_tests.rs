//! Unit tests for `store::run_records` over both sources at once: stored recipient runs
//! and records derived from the messages of plain deliveries, interleaved in write order.

use chrono::TimeZone;
use serde_json::json;

use super::*;
use crate::clock::Clock;
use crate::store::Db;
use crate::store::messages::{self, NewMessage};
use crate::store::runs::{self, NewRun};

const T0: &str = "2026-03-01T00:00:00.000000Z";

fn user(id: &str) -> RecipientRef {
    RecipientRef::User(id.into())
}

fn project(id: &str) -> RecipientRef {
    RecipientRef::Object {
        id: id.into(),
        collection: "projects".into(),
    }
}

fn clock() -> Clock {
    Clock::manual(chrono::Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap())
}

/// Moves the clock one second on (every write below happens at its own second).
fn tick(clock: &Clock) {
    clock.advance(chrono::Duration::seconds(1));
}

fn run(db: &Db<'_>, id: &str, workflow: &str, tenant: Option<&str>) {
    runs::insert_run(
        db,
        &NewRun {
            id: id.into(),
            workflow_key: workflow.into(),
            request: json!({"actor": "boss", "recipients": []}),
            cancellation_key: Some(format!("ck-{id}")),
            tenant: tenant.map(str::to_owned),
        },
    )
    .expect("run");
}

fn stored(db: &Db<'_>, run: &str, r: RecipientRef, status: &str, events: Value) -> String {
    runs::ensure_recipient_run(db, run, &r, status, &events).expect("recipient run")
}

/// A plain delivery as the runner writes it: messages only, under the deterministic id.
fn plain(db: &Db<'_>, run_id: &str, r: RecipientRef, steps: &[&str]) -> String {
    let facts = runs::run_facts(db, run_id).expect("facts");
    let rr = runs::recipient_run_id(run_id, &facts, &r);
    let channel = crate::store::channels::ensure(db, "in-app").expect("channel");
    for step in steps {
        let message = NewMessage {
            id: format!("m-{run_id}-{}-{step}", r.id()),
            channel_id: channel.id.clone(),
            recipient: r.clone(),
            tenant: facts.tenant.clone(),
            workflow_key: facts.workflow_key.clone(),
            workflow_version_id: "v".into(),
            workflow_categories: vec![],
            workflow_run_id: run_id.into(),
            workflow_recipient_run_id: rr.clone(),
            step_ref: (*step).into(),
            actors: vec![],
            data: json!({}).into(),
            blocks: json!([]).into(),
            inserted_at: db.now(),
            batch: None,
            expires_at: (*step == "expiring").then(|| "2027-01-01T00:00:00.000000Z".into()),
            pinned_at: None,
        };
        messages::insert(db, &message)
            .expect("insert")
            .expect("new");
    }
    rr
}

/// Six recipient runs, oldest first: stored r1/u1, derived r1/u2, stored r2/bad (an
/// error), derived r2/u1 (two messages), stored r2/u3 (paused), derived r1/p1 (object).
fn seed(db: &Db<'_>, clock: &Clock) {
    run(db, "r1", "wf-a", Some("t1"));
    run(db, "r2", "wf-b", None);
    let ok = json!([{"event": "message_created", "status": "ok"}]);
    tick(clock);
    stored(db, "r1", user("u1"), "completed", ok.clone());
    tick(clock);
    plain(db, "r1", user("u2"), &["in_app"]);
    tick(clock);
    stored(
        db,
        "r2",
        user("bad"),
        "failed",
        json!([{"event": "step_failed", "status": "error"}]),
    );
    tick(clock);
    plain(db, "r2", user("u1"), &["in_app", "expiring"]);
    tick(clock);
    stored(db, "r2", user("u3"), "paused", json!([]));
    tick(clock);
    plain(db, "r1", project("p1"), &["in_app"]);
}

fn names(records: &[RunRecord]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{}/{}", r.workflow_run_id, r.recipient.id()))
        .collect()
}

fn all(db: &Db<'_>, q: RunListQuery) -> Vec<String> {
    let page = list(db, &RunListQuery { page_size: 50, ..q }).expect("list");
    assert!(!page.has_older && !page.has_newer);
    names(&page.records)
}

#[test]
fn stored_and_derived_records_list_together_newest_first_under_every_filter() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let clock = clock();
        let db = Db(conn, &clock, None);
        seed(&db, &clock);
        let stored_rows: i64 = conn
            .query_row("SELECT count(*) FROM workflow_recipient_runs", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(stored_rows, 3, "plain deliveries store no row");
        let q = RunListQuery::default;
        assert_eq!(
            all(&db, q()),
            ["r1/p1", "r2/u3", "r2/u1", "r2/bad", "r1/u2", "r1/u1"]
        );
        let cases: Vec<(RunListQuery, Vec<&str>)> = vec![
            (
                RunListQuery {
                    workflow: Some("wf-a".into()),
                    ..q()
                },
                vec!["r1/p1", "r1/u2", "r1/u1"],
            ),
            (
                RunListQuery {
                    tenant: Some("t1".into()),
                    ..q()
                },
                vec!["r1/p1", "r1/u2", "r1/u1"],
            ),
            (
                RunListQuery {
                    recipient: Some(user("u1")),
                    ..q()
                },
                vec!["r2/u1", "r1/u1"],
            ),
            (
                RunListQuery {
                    recipient: Some(project("p1")),
                    ..q()
                },
                vec!["r1/p1"],
            ),
            (
                RunListQuery {
                    recipient: Some(user("p1")),
                    ..q()
                },
                vec![],
            ),
            (
                RunListQuery {
                    statuses: vec![RunStatus::Paused],
                    ..q()
                },
                vec!["r2/u3"],
            ),
            (
                RunListQuery {
                    statuses: vec![RunStatus::Completed],
                    ..q()
                },
                vec!["r1/p1", "r2/u1", "r1/u2", "r1/u1"],
            ),
            (
                RunListQuery {
                    statuses: vec![RunStatus::Failed, RunStatus::Completed],
                    workflow: Some("wf-b".into()),
                    ..q()
                },
                vec!["r2/u1", "r2/bad"],
            ),
            (
                RunListQuery {
                    has_errors: Some(true),
                    ..q()
                },
                vec!["r2/bad"],
            ),
            (
                RunListQuery {
                    has_errors: Some(false),
                    ..q()
                },
                vec!["r1/p1", "r2/u3", "r2/u1", "r1/u2", "r1/u1"],
            ),
            (
                // Seconds 2..=4: derived r1/u2, stored r2/bad, derived r2/u1.
                RunListQuery {
                    started: crate::model::feed::TimeRange {
                        gte: Some("2026-03-01T00:00:02.000000Z".into()),
                        lte: Some("2026-03-01T00:00:04.000000Z".into()),
                        ..Default::default()
                    },
                    ..q()
                },
                vec!["r2/u1", "r2/bad", "r1/u2"],
            ),
            (
                RunListQuery {
                    recipient: Some(user("u1")),
                    workflow: Some("wf-b".into()),
                    ..q()
                },
                vec!["r2/u1"],
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(all(&db, query.clone()), expected, "{query:?}");
        }
    }
}

#[test]
fn a_derived_record_reads_like_a_stored_one() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let clock = clock();
        let db = Db(conn, &clock, None);
        seed(&db, &clock);
        let page = list(
            &db,
            &RunListQuery {
                recipient: Some(user("u1")),
                workflow: Some("wf-b".into()),
                page_size: 5,
                ..Default::default()
            },
        )
        .expect("list");
        let listed = &page.records[0];
        let got = get(&db, &listed.id).expect("get").expect("found");
        assert_eq!(&got, listed, "list and get agree");
        assert_eq!(got.status, "completed");
        assert_eq!(got.workflow_key, "wf-b");
        assert_eq!(got.tenant, None);
        assert_eq!(got.actor, Some(json!("boss")));
        assert_eq!(got.cancellation_key.as_deref(), Some("ck-r2"));
        assert_eq!(got.schedule_id, None);
        assert_eq!(got.inserted_at, "2026-03-01T00:00:04.000000Z");
        assert_eq!(got.updated_at, got.inserted_at);
        assert_eq!(
            got.events,
            json!([
                message_created("m-r2-u1-in_app", "in_app", None),
                message_created(
                    "m-r2-u1-expiring",
                    "expiring",
                    Some("2027-01-01T00:00:00.000000Z")
                ),
            ])
        );
        assert_eq!(
            got.events[1]["data"]["expires_at"],
            "2027-01-01T00:00:00.000000Z"
        );
        let tenant = get(
            &db,
            &runs::recipient_run_id(
                "r1",
                &runs::run_facts(&db, "r1").expect("facts"),
                &project("p1"),
            ),
        )
        .expect("get")
        .expect("derived");
        assert_eq!(tenant.tenant.as_deref(), Some("t1"));
        assert_eq!(tenant.recipient, project("p1"));
        // A stored row answers from its row; an unknown id is none.
        let bad = get(
            &db,
            &runs::recipient_run_id(
                "r2",
                &runs::run_facts(&db, "r2").expect("facts"),
                &user("bad"),
            ),
        )
        .expect("get")
        .expect("stored");
        assert_eq!(bad.status, "failed");
        assert_eq!(get(&db, "nope").expect("get"), None);
    }
}

/// Every page size, forward with `after` from the first page and back with `before` from
/// the last: no gaps, no repeats, and `has_older`/`has_newer` exactly right.
#[test]
fn pages_walk_both_ways_across_both_sources_with_exact_flags() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let clock = clock();
        let db = Db(conn, &clock, None);
        seed(&db, &clock);
        for filter in [
            RunListQuery::default(),
            RunListQuery {
                has_errors: Some(false),
                ..Default::default()
            },
            RunListQuery {
                workflow: Some("wf-a".into()),
                ..Default::default()
            },
        ] {
            let everything = all(&db, filter.clone());
            for size in 1..=everything.len() as u32 {
                let q = RunListQuery {
                    page_size: size,
                    ..filter.clone()
                };
                let mut forward = Vec::new();
                let mut page = list(&db, &q).expect("first");
                assert!(!page.has_newer);
                let mut pages = vec![page.clone()];
                while page.has_older {
                    let after = page.records.last().map(|r| r.seq);
                    page = list(&db, &RunListQuery { after, ..q.clone() }).expect("next");
                    assert!(page.has_newer, "size {size}");
                    pages.push(page.clone());
                }
                for p in &pages {
                    forward.extend(names(&p.records));
                }
                assert_eq!(forward, everything, "forward, size {size}, {filter:?}");
                // Back from the last page.
                let mut back = names(&page.records);
                while page.has_newer {
                    let before = page.records.first().map(|r| r.seq);
                    page = list(
                        &db,
                        &RunListQuery {
                            before,
                            ..q.clone()
                        },
                    )
                    .expect("previous");
                    assert!(page.has_older, "size {size}");
                    let mut earlier = names(&page.records);
                    earlier.extend(back);
                    back = earlier;
                }
                assert_eq!(back, everything, "backward, size {size}, {filter:?}");
            }
        }
    }
}

/// Positions follow the write order: a stored row written after a message sorts after
/// it, rows written before this scheme (small rowids) sort before everything new, and a
/// cursor made of an old row's rowid still pages from that row.
#[test]
fn positions_follow_write_order_and_old_rowids_stay_first() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let clock = clock();
        let db = Db(conn, &clock, None);
        run(&db, "old", "wf", None);
        // Rows as the previous version wrote them: its own rowids, messages under them.
        for (rowid, u) in [(1, "o1"), (2, "o2")] {
            conn.execute(
                "INSERT INTO workflow_recipient_runs(rowid, id, workflow_run_id, recipient_kind, \
                 recipient_id, status, events, inserted_at, updated_at, workflow_key) \
                 VALUES (?1, ?2, 'old', 'user', ?3, 'completed', '[]', ?4, ?4, 'wf')",
                crate::store::sql::params![rowid, format!("old-{u}"), u, T0],
            )
            .expect("old row");
        }
        seed(&db, &clock);
        let first = stored(&db, "r1", user("late"), "completed", json!([]));
        let page = list(
            &db,
            &RunListQuery {
                page_size: 50,
                ..Default::default()
            },
        )
        .expect("list");
        assert_eq!(
            names(&page.records),
            [
                "r1/late", "r1/p1", "r2/u3", "r2/u1", "r2/bad", "r1/u2", "r1/u1", "old/o2",
                "old/o1"
            ]
        );
        assert_eq!(page.records[0].id, first);
        let positions: Vec<i64> = page.records.iter().map(|r| r.seq).collect();
        assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
        assert_eq!(&positions[7..], [2, 1]);
        let from_old = list(
            &db,
            &RunListQuery {
                after: Some(2),
                page_size: 50,
                ..Default::default()
            },
        )
        .expect("old cursor");
        assert_eq!(names(&from_old.records), ["old/o1"]);
        assert!(from_old.has_newer && !from_old.has_older);
    }
}

/// The plans a page runs: each source read through an index in position order, no table
/// scan and no sort of all messages, for no filter, a workflow and a recipient.
#[test]
fn derived_pages_read_messages_in_position_order_through_an_index() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        if test_db.engine != "sqlite" {
            continue; // a test of SQLite's query plan
        }
        let conn = &test_db.conn;
        let clock = clock();
        let db = Db(conn, &clock, None);
        seed(&db, &clock);
        for q in [
            RunListQuery::default(),
            RunListQuery {
                workflow: Some("wf-a".into()),
                ..Default::default()
            },
            RunListQuery {
                recipient: Some(user("u1")),
                ..Default::default()
            },
        ] {
            let derived = Derived::of(&db, &q).expect("scope").expect("derived");
            let mut w = Where::default();
            if let Some(feed) = derived.feeds.as_ref().and_then(|f| f.first()) {
                w.push(feed.sql(), feed.params.iter().cloned());
            }
            w.push("seq > ?", [SqlValue::Integer(0)]);
            w.push(derived.scope.sql(), derived.scope.params.iter().cloned());
            let sql = format!(
                "EXPLAIN QUERY PLAN SELECT seq, workflow_recipient_run_id FROM messages WHERE {} \
                 ORDER BY seq DESC LIMIT 51",
                w.sql()
            );
            let mut stmt = conn.prepare(&sql).expect("plan");
            let plan: Vec<String> = stmt
                .query_map(params_from_iter(w.params.iter()), |r| r.get(3))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("plan");
            let plan = plan.join("\n");
            assert!(!plan.contains("TEMP B-TREE"), "{q:?}\n{plan}");
            assert!(
                !plan.contains("SCAN messages\n") && !plan.ends_with("SCAN messages"),
                "{q:?}\n{plan}"
            );
            if q.recipient.is_some() {
                assert!(plan.contains("messages_feed"), "{q:?}\n{plan}");
            } else {
                assert!(plan.contains("INTEGER PRIMARY KEY"), "{q:?}\n{plan}");
            }
        }
    }
}

/// A workflow filter past its scan budget reads the workflow's runs' messages
/// (`messages_run`, found through `workflow_runs_workflow`), not every message.
#[test]
fn a_rare_workflow_is_read_through_its_runs() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        if test_db.engine != "sqlite" {
            continue; // a test of SQLite's query plan
        }
        let conn = &test_db.conn;
        let clock = clock();
        let db = Db(conn, &clock, None);
        seed(&db, &clock);
        let sql = "EXPLAIN QUERY PLAN SELECT seq, workflow_recipient_run_id FROM messages \
             WHERE workflow_run_id IN (SELECT id FROM workflow_runs WHERE workflow_key = 'wf-a') \
             AND seq > 0 AND seq <= 10 AND workflow_key = 'wf-a' ORDER BY seq DESC LIMIT 51";
        let mut stmt = conn.prepare(sql).expect("plan");
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get(3))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("plan");
        let plan = plan.join("\n");
        assert!(plan.contains("messages_run"), "{plan}");
        assert!(plan.contains("workflow_runs_workflow"), "{plan}");
    }
}

#[test]
fn a_message_created_event_is_recognised_in_place_exactly_as_built() {
    for expires in [None, Some("2027-01-01T00:00:00.000000Z")] {
        let event = message_created("m1", "in_app", expires);
        assert!(is_message_created(&event, "m1", "in_app", expires));
        assert!(!is_message_created(&event, "m2", "in_app", expires));
        assert!(!is_message_created(&event, "m1", "other", expires));
        let other_expiry = match expires {
            Some(_) => None,
            None => Some("2027-01-01T00:00:00.000000Z"),
        };
        assert!(!is_message_created(&event, "m1", "in_app", other_expiry));
        // Any other field or value: not the event a derived record shows.
        for (path, value) in [
            ("/status", json!("error")),
            ("/event", json!("message_sent")),
            ("/step_type", json!("batch")),
            ("/data/message_id", json!(1)),
        ] {
            let mut changed = event.clone();
            if let Some(slot) = changed.pointer_mut(path) {
                *slot = value;
            }
            assert_ne!(changed, event, "{path}");
            assert!(
                !is_message_created(&changed, "m1", "in_app", expires),
                "{path}"
            );
        }
        let mut extra = event.clone();
        extra["data"]["keys"] = json!([]);
        assert!(!is_message_created(&extra, "m1", "in_app", expires));
        let mut extra = event.clone();
        extra["note"] = json!("x");
        assert!(!is_message_created(&extra, "m1", "in_app", expires));
    }
    assert!(!is_message_created(&json!([]), "m1", "in_app", None));
    assert!(!is_message_created(
        &json!({"data": 1}),
        "m1",
        "in_app",
        None
    ));
}
