//! Unit tests for `store::feeds`: both count paths agree, and SQL agrees with
//! `FeedFilters::matches`.

use serde_json::json;

use super::*;
use crate::model::{ArchivedFilter, FeedFilters, StatusFilter, TimeRange};
use crate::store::Db;
use crate::store::messages::{self, NewMessage};

/// The clock's reading for every read in these tests.
const NOW: &str = "2026-03-01T00:00:00.000000Z";

fn user() -> RecipientRef {
    RecipientRef::User("u1".into())
}

fn new_message(i: usize, tenant: Option<&str>) -> NewMessage {
    NewMessage {
        id: format!("msg{i:03}"),
        channel_id: "chan".into(),
        recipient: user(),
        tenant: tenant.map(str::to_owned),
        workflow_key: if i.is_multiple_of(2) { "even" } else { "odd" }.into(),
        workflow_version_id: "v".into(),
        workflow_categories: vec![format!("cat{}", i % 3)],
        workflow_run_id: format!("run{i}"),
        workflow_recipient_run_id: format!("rr{i}"),
        step_ref: "in_app".into(),
        actors: vec![],
        data:
            json!({"i": i, "kind": if i.is_multiple_of(4) { "a" } else { "b" }, "nested": {"x": 1}})
                .into(),
        blocks: json!([]).into(),
        inserted_at: format!("2026-01-01T00:00:{:02}.000000Z", i),
        batch: None,
        // Every eighth item (from the second) expired before NOW, one expires after it.
        expires_at: match i {
            _ if i % 8 == 1 => Some(format!("2026-02-{:02}T00:00:00.000000Z", 10 + i)),
            22 => Some("2026-04-01T00:00:00.000000Z".into()),
            _ => None,
        },
        pinned_at: (i % 4 == 2).then(|| "2026-01-02T00:00:00.000000Z".into()),
    }
}

/// 24 messages over tenants acme/globex/none, with a mix of read, seen and archived.
fn seed(db: &Db<'_>) -> Vec<MessageRow> {
    let tenants = [Some("acme"), Some("globex"), None];
    let mut rows = Vec::new();
    for i in 0..24 {
        let row = messages::insert(db, &new_message(i, tenants[i % 3]))
            .expect("insert")
            .expect("new");
        let mut after = row.clone();
        let ts = Some("2026-02-01T00:00:00.000000Z".to_owned());
        if i.is_multiple_of(2) {
            after.seen_at = ts.clone();
        }
        if i.is_multiple_of(5) {
            after.read_at = ts.clone();
        }
        if i.is_multiple_of(7) {
            after.archived_at = ts.clone();
        }
        messages::update_engagement(db, &row, &after).expect("update");
        if i % 6 == 3 {
            crate::store::lifecycle::snooze(db, &row.id, "2026-05-01T00:00:00.000000Z", NOW)
                .expect("snooze");
        }
    }
    // The first expiry is applied (counters moved); the others are past but pending,
    // as between an expiry and its due-source firing.
    let applied =
        crate::store::lifecycle::expire_due(db, "2026-02-11T00:00:00.000000Z", 10).expect("expire");
    assert_eq!(applied.len(), 1);
    for i in 0..24 {
        let id = format!("msg{i:03}");
        rows.push(messages::get(db, &id).expect("get").expect("exists"));
    }
    rows
}

fn counter_scopes() -> Vec<(FeedFilters, Option<Vec<String>>)> {
    let mut out = Vec::new();
    for tenant in [None, Some("acme"), Some("nobody")] {
        for has_tenant in [None, Some(true), Some(false)] {
            for status in [
                StatusFilter::All,
                StatusFilter::Unread,
                StatusFilter::Read,
                StatusFilter::Unseen,
                StatusFilter::Seen,
            ] {
                for restriction in [
                    None,
                    Some(vec!["acme".to_owned()]),
                    Some(vec!["acme".to_owned(), String::new()]),
                ] {
                    let f = FeedFilters {
                        tenant: tenant.map(str::to_owned),
                        has_tenant,
                        status,
                        ..Default::default()
                    };
                    out.push((f, restriction));
                }
            }
        }
    }
    out
}

#[test]
fn counter_path_and_count_path_agree_for_every_common_scope() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let rows = seed(&db);
        for (filters, restriction) in counter_scopes() {
            assert!(filters.counter_scope());
            let r = restriction.as_deref();
            let fast = counts_from_counters(&db, "chan", &user(), &filters, r, NOW).expect("fast");
            let slow = counts_by_query(&db, "chan", &user(), &filters, r, NOW).expect("slow");
            assert_eq!(fast, slow, "{filters:?} {restriction:?}");
            // And both agree with the Rust rule applied row by row.
            let allowed = |t: &Option<String>| {
                r.is_none_or(|list| list.iter().any(|a| a == t.as_deref().unwrap_or("")))
            };
            let expected_total = rows
                .iter()
                .filter(|m| filters.matches(m, NOW) && allowed(&m.tenant))
                .count() as i64;
            assert_eq!(
                fast.total_count, expected_total,
                "{filters:?} {restriction:?}"
            );
            assert_eq!(
                counts(&db, "chan", &user(), &filters, r, NOW).expect("counts"),
                fast
            );
        }
    }
}

#[test]
fn sql_selects_exactly_what_matches_accepts_for_uncommon_filters() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let rows = seed(&db);
        let views = [
            FeedFilters {
                archived: ArchivedFilter::Include,
                ..Default::default()
            },
            FeedFilters {
                archived: ArchivedFilter::Only,
                status: StatusFilter::Unread,
                ..Default::default()
            },
            FeedFilters {
                source: Some("even".into()),
                ..Default::default()
            },
            FeedFilters {
                status: StatusFilter::Snoozed,
                ..Default::default()
            },
            FeedFilters {
                pinned: Some(true),
                ..Default::default()
            },
            FeedFilters {
                pinned: Some(false),
                tenant: Some("acme".into()),
                ..Default::default()
            },
            FeedFilters {
                workflow_categories: vec!["cat1".into(), "cat2".into()],
                ..Default::default()
            },
            FeedFilters {
                trigger_data: json!({"kind": "a"}).as_object().cloned(),
                ..Default::default()
            },
            FeedFilters {
                trigger_data: json!({"i": 8.0, "kind": "a"}).as_object().cloned(),
                ..Default::default()
            },
            FeedFilters {
                trigger_data: json!({"missing": null}).as_object().cloned(),
                ..Default::default()
            },
            FeedFilters {
                inserted_at: TimeRange {
                    gte: Some("2026-01-01T00:00:05.000000Z".into()),
                    lt: Some("2026-01-01T00:00:15.000000Z".into()),
                    ..Default::default()
                },
                tenant: Some("acme".into()),
                ..Default::default()
            },
        ];
        for filters in views {
            assert_sql_agrees_with_matches(&db, &rows, &filters, &format!("{filters:?}"));
        }
    }
}

/// The SQL view of `filters` on u1's `chan` feed (its first page of 50 and its
/// `total_count`) selects exactly the `rows` that `FeedFilters::matches` selects, newest
/// first. `label` names the case in a failure.
pub(super) fn assert_sql_agrees_with_matches(
    db: &Db<'_>,
    rows: &[MessageRow],
    filters: &FeedFilters,
    label: &str,
) {
    let expected: Vec<&str> = rows
        .iter()
        .rev()
        .filter(|m| filters.matches(m, NOW))
        .map(|m| m.id.as_str())
        .collect();
    let counts = counts(db, "chan", &user(), filters, None, NOW).expect("counts");
    assert_eq!(counts.total_count, expected.len() as i64, "{label}");
    let page = page(
        db,
        "chan",
        &user(),
        filters,
        None,
        PageBounds {
            page_size: 50,
            ..Default::default()
        },
        NOW,
    )
    .expect("page");
    let got: Vec<&str> = page.items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(got, expected, "{label}");
}

#[test]
fn paging_after_and_before_walks_the_feed_without_gaps_or_duplicates() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let rows = seed(&db);
        let filters = FeedFilters {
            archived: ArchivedFilter::Include,
            ..Default::default()
        };
        let mut seen = Vec::new();
        let mut bounds = PageBounds {
            page_size: 5,
            ..Default::default()
        };
        let mut first_page_newer = None;
        loop {
            let p = page(&db, "chan", &user(), &filters, None, bounds, NOW).expect("page");
            if first_page_newer.is_none() {
                first_page_newer = Some(p.has_newer);
            } else {
                assert!(p.has_newer, "later pages have newer items");
            }
            seen.extend(p.items.iter().map(|m| m.seq));
            match p.items.last() {
                Some(last) if p.has_older => bounds.after = Some(last.seq),
                _ => break,
            }
        }
        assert_eq!(first_page_newer, Some(false));
        let all: Vec<i64> = rows
            .iter()
            .rev()
            .filter(|m| filters.matches(m, NOW))
            .map(|m| m.seq)
            .collect();
        assert_eq!(seen, all);
        // Walking back up with `before` from the oldest item returns the same items.
        let mut up = Vec::new();
        let mut before = *all.last().expect("rows");
        loop {
            let bounds = PageBounds {
                page_size: 5,
                after: None,
                before: Some(before),
            };
            let p = page(&db, "chan", &user(), &filters, None, bounds, NOW).expect("page");
            assert!(p.has_older);
            let seqs: Vec<i64> = p.items.iter().map(|m| m.seq).collect();
            assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first");
            up.splice(0..0, seqs);
            match p.items.first() {
                Some(first) if p.has_newer => before = first.seq,
                _ => break,
            }
        }
        assert_eq!(up, all[..all.len() - 1]);
    }
}
