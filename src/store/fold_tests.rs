//! Unit tests for `store::fold` and the feed keys: badges equal a recount before and
//! after every fold, whatever happened to the messages on either side of the watermark.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::*;
use crate::model::engagement::EngagementChange;
use crate::model::{FeedFilters, RecipientRef, StatusFilter};
use crate::store::feeds::{FeedCounts, counts_by_query, counts_from_counters};
use crate::store::messages::{self, MessageRow, NewMessage};
use crate::store::{lifecycle, message_status, migrations};

const NOW: &str = "2026-03-01T00:00:00.000000Z";
const CHANNELS: [&str; 2] = ["chan", "other"];
const TENANTS: [Option<&str>; 3] = [Some("acme"), Some("globex"), None];

fn users() -> Vec<RecipientRef> {
    vec![
        RecipientRef::User("u1".into()),
        RecipientRef::User("u2".into()),
        RecipientRef::from_stored("object", "projects", "p1"),
    ]
}

fn new_message(
    i: usize,
    channel: &str,
    recipient: RecipientRef,
    tenant: Option<&str>,
) -> NewMessage {
    NewMessage {
        id: format!("m{i:04}"),
        channel_id: channel.into(),
        recipient,
        tenant: tenant.map(str::to_owned),
        workflow_key: "wf".into(),
        workflow_version_id: "v".into(),
        workflow_categories: vec![],
        workflow_run_id: format!("run{i}"),
        workflow_recipient_run_id: format!("rr{i}"),
        step_ref: "in_app".into(),
        actors: vec![],
        data: json!({"i": i}).into(),
        blocks: json!([]).into(),
        inserted_at: "2026-01-01T00:00:00.000000Z".into(),
        batch: None,
        expires_at: None,
        pinned_at: None,
    }
}

/// The badge scopes a feed is read with: every tenant rule, and each status.
fn scopes() -> Vec<FeedFilters> {
    let mut out = Vec::new();
    for tenant in [None, Some("acme")] {
        for has_tenant in [None, Some(true), Some(false)] {
            for status in [StatusFilter::All, StatusFilter::Read] {
                out.push(FeedFilters {
                    tenant: tenant.map(str::to_owned),
                    has_tenant,
                    status,
                    ..Default::default()
                });
            }
        }
    }
    out
}

/// Every feed's O(1) counts equal its recount, in every scope; and the stored badges of
/// every (feed, tenant) equal a recount by SQL.
fn assert_exact(db: &Db<'_>, context: &str) {
    for channel in CHANNELS {
        for user in users() {
            for filters in scopes() {
                let fast =
                    counts_from_counters(db, channel, &user, &filters, None, NOW).expect("fast");
                let slow = counts_by_query(db, channel, &user, &filters, None, NOW).expect("slow");
                assert_eq!(fast, slow, "{context}: {channel} {user:?} {filters:?}");
            }
        }
    }
}

/// One chunk folded: the fold called until its watermark moves. On PostgreSQL a call may
/// find a number unsettled because another test's write transaction was open anywhere on
/// the server (transaction ids are server-wide); the next call, once it ended, goes on.
fn fold(db: &Db<'_>, limit: i64) -> StoreResult<Progress> {
    let mut horizon = Horizon::default();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let before = progress(db)?;
        let after = super::fold(db, limit, &mut horizon)?;
        if after.folded_through != before.folded_through
            || before.unfolded() == 0
            || std::time::Instant::now() > deadline
        {
            return Ok(after);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

fn badge(db: &Db<'_>, channel: &str, user: &RecipientRef) -> FeedCounts {
    counts_from_counters(db, channel, user, &FeedFilters::default(), None, NOW).expect("counts")
}

/// (total, unread, unseen) summed over every counter row: what the fold has counted.
fn counter_sums(db: &Db<'_>) -> (i64, i64, i64) {
    db.0.query_row(
        "SELECT coalesce(sum(total), 0), coalesce(sum(unread), 0), coalesce(sum(unseen), 0) FROM feed_counters",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .expect("sums")
}

fn get(db: &Db<'_>, id: &str) -> MessageRow {
    messages::get(db, id).expect("get").expect("exists")
}

fn read(db: &Db<'_>, id: &str) {
    message_status::set_one(db, id, &EngagementChange::Read, NOW).expect("read");
}

/// 30 messages over two channels, three recipients and three tenants.
fn seed(db: &Db<'_>) {
    for i in 0..30 {
        let m = new_message(
            i,
            CHANNELS[i % 2],
            users()[i % 3].clone(),
            TENANTS[i / 3 % 3],
        );
        messages::insert(db, &m).expect("insert").expect("new");
    }
}

#[test]
fn badges_equal_a_recount_before_and_after_each_fold() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        assert_eq!(
            counter_sums(&db),
            (0, 0, 0),
            "an insert leaves the counters alone"
        );
        assert_exact(&db, "all in the tail");
        let before = badge(&db, "chan", &users()[0]);
        let mut chunks = 0;
        while fold(&db, 7).expect("fold").unfolded() > 0 {
            chunks += 1;
            assert_exact(&db, &format!("after chunk {chunks}"));
        }
        assert_eq!(chunks, 4, "30 messages in chunks of 7");
        assert_eq!(counter_sums(&db), (30, 30, 30));
        assert_eq!(badge(&db, "chan", &users()[0]), before);
        assert_eq!(progress(&db).expect("progress").unfolded(), 0);
        // Nothing left: a fold is a no-op.
        assert_eq!(fold(&db, 7).expect("fold").folded_through, 30);
        assert_eq!(counter_sums(&db), (30, 30, 30));
    }
}

#[test]
fn a_status_change_moves_the_counters_below_the_watermark_and_only_there() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        fold(&db, 15).expect("fold");
        let folded = get(&db, "m0000");
        let tail = get(&db, "m0018");
        assert!(folded.seq <= 15 && tail.seq > 15);
        assert_eq!(folded.channel_id, tail.channel_id);
        assert_eq!(folded.recipient, tail.recipient);
        let badge_before = badge(&db, "chan", &folded.recipient);
        read(&db, &folded.id);
        assert_eq!(
            counter_sums(&db),
            (15, 14, 15),
            "the folded item left `unread`"
        );
        read(&db, &tail.id);
        assert_eq!(
            counter_sums(&db),
            (15, 14, 15),
            "the tail item is counted live"
        );
        let badge_after = badge(&db, "chan", &folded.recipient);
        assert_eq!(badge_after.unread_count, badge_before.unread_count - 2);
        assert_eq!(badge_after.total_count, badge_before.total_count);
        assert_exact(&db, "after the reads");
        fold(&db, 100).expect("fold");
        assert_eq!(counter_sums(&db), (30, 28, 30));
        assert_eq!(badge(&db, "chan", &folded.recipient), badge_after);
        assert_exact(&db, "after the fold");
    }
}

#[test]
fn archived_snoozed_and_expired_items_count_nowhere_on_either_side() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        // Expiries: m0001 (folded) and m0025 (tail) past at NOW; m0003 in the future.
        db.0.execute_batch(
            "UPDATE messages SET expires_at = '2026-02-01T00:00:00.000000Z' WHERE id IN ('m0001', 'm0025');
             UPDATE messages SET expires_at = '2026-04-01T00:00:00.000000Z' WHERE id = 'm0003';",
        )
        .expect("expiries");
        fold(&db, 12).expect("fold");
        assert_exact(&db, "expiries pending");
        for id in ["m0002", "m0020"] {
            message_status::set_one(&db, id, &EngagementChange::Archived, NOW).expect("archive");
        }
        for id in ["m0004", "m0022"] {
            lifecycle::snooze(&db, id, "2026-02-15T00:00:00.000000Z", NOW).expect("snooze");
        }
        assert_exact(&db, "archived and snoozed");
        assert_eq!(
            lifecycle::expire_due(&db, NOW, 10).expect("expire").len(),
            2
        );
        assert_exact(&db, "expiries applied");
        fold(&db, 10).expect("fold");
        assert_exact(&db, "folded further");
        // A folded snoozed item wakes at the head of its feed (the tail): counted once.
        let woken = lifecycle::wake(&db, "m0004", None, NOW)
            .expect("wake")
            .expect("woke");
        assert!(woken.seq > progress(&db).expect("progress").folded_through);
        assert_exact(&db, "woken");
        fold(&db, 100).expect("fold");
        assert_exact(&db, "woken and folded");
        message_status::set_one(&db, "m0002", &EngagementChange::Unarchived, NOW)
            .expect("unarchive");
        assert_exact(&db, "unarchived");
        // Deleting items on both sides, and purging applied expiries.
        let gone = [get(&db, "m0005"), get(&db, "m0029")];
        for m in &gone {
            message_status::delete(&db, m).expect("delete");
        }
        lifecycle::purge_expired(&db, "2026-03-01T00:00:00.000000Z", 10).expect("purge");
        assert_exact(&db, "deleted");
    }
}

#[test]
fn tenants_keep_their_own_counter_rows() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        fold(&db, 100).expect("fold");
        let rows: Vec<(String, i64)> =
            db.0.prepare(
                "SELECT c.tenant, c.total FROM feed_counters c JOIN feeds f ON f.id = c.feed \
                 WHERE f.channel_id = 'chan' AND f.recipient_id = 'u1' ORDER BY 1",
            )
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        // u1 on chan: m0000 (acme), m0006 (none), m0012 (globex), m0018 (acme), m0024 (none).
        assert_eq!(
            rows,
            [("".into(), 2), ("acme".into(), 2), ("globex".into(), 1)]
        );
        let acme = FeedFilters {
            tenant: Some("acme".into()),
            has_tenant: Some(true),
            ..Default::default()
        };
        let u1 = &users()[0];
        let counts = counts_from_counters(&db, "chan", u1, &acme, None, NOW).expect("acme");
        assert_eq!(counts.total_count, 2);
        let restricted = counts_from_counters(
            &db,
            "chan",
            u1,
            &FeedFilters::default(),
            Some(&["globex".to_owned()]),
            NOW,
        )
        .expect("restricted");
        assert_eq!(restricted.total_count, 1);
    }
}

/// Random inserts, engagement changes, lifecycle changes, deletes and folds of random
/// sizes: after every step every feed's O(1) counts equal the recount.
#[test]
fn random_histories_keep_every_badge_equal_to_a_recount() {
    for seed_value in 0..8u64 {
        let mut rng = StdRng::seed_from_u64(seed_value);
        for test_db in crate::store::test_engines::engines() {
            eprintln!("engine: {}", test_db.engine);
            let conn = &test_db.conn;
            let db = Db::on(conn);
            let mut next = 0usize;
            let mut ids: Vec<String> = Vec::new();
            for step in 0..160 {
                let pick = |rng: &mut StdRng, ids: &[String]| -> Option<String> {
                    (!ids.is_empty()).then(|| ids[rng.gen_range(0..ids.len())].clone())
                };
                match rng.gen_range(0..100) {
                    0..=34 => {
                        let mut m = new_message(
                            next,
                            CHANNELS[rng.gen_range(0..2)],
                            users()[rng.gen_range(0..3)].clone(),
                            TENANTS[rng.gen_range(0..3)],
                        );
                        if rng.gen_bool(0.15) {
                            m.expires_at = Some(
                                ["2026-02-01T00:00:00.000000Z", "2026-04-01T00:00:00.000000Z"]
                                    [rng.gen_range(0..2)]
                                .into(),
                            );
                        }
                        next += 1;
                        messages::insert(&db, &m).expect("insert");
                        ids.push(m.id);
                    }
                    35..=59 => {
                        if let Some(id) = pick(&mut rng, &ids) {
                            let changes = [
                                EngagementChange::Read,
                                EngagementChange::Unread,
                                EngagementChange::Seen,
                                EngagementChange::Unseen,
                                EngagementChange::Archived,
                                EngagementChange::Unarchived,
                            ];
                            let change = &changes[rng.gen_range(0..changes.len())];
                            message_status::set_one(&db, &id, change, NOW).expect("status");
                        }
                    }
                    60..=67 => {
                        if let Some(id) = pick(&mut rng, &ids) {
                            lifecycle::snooze(&db, &id, "2026-02-20T00:00:00.000000Z", NOW)
                                .expect("snooze");
                        }
                    }
                    68..=74 => {
                        if let Some(id) = pick(&mut rng, &ids) {
                            lifecycle::wake(&db, &id, None, NOW).expect("wake");
                        }
                    }
                    75..=79 => {
                        lifecycle::expire_due(&db, NOW, rng.gen_range(1..4)).expect("expire");
                    }
                    80..=84 => {
                        if let Some(id) = pick(&mut rng, &ids) {
                            if let Some(m) = messages::get(&db, &id).expect("get") {
                                message_status::delete(&db, &m).expect("delete");
                            }
                            ids.retain(|i| *i != id);
                        }
                    }
                    _ => {
                        fold(&db, rng.gen_range(1..12)).expect("fold");
                    }
                }
                assert_exact(&db, &format!("seed {seed_value}, step {step}"));
            }
            let (_, unread, _) = counter_sums(&db);
            assert!(unread >= 0, "seed {seed_value}: no counter below zero");
        }
    }
}

#[test]
fn a_page_resolves_its_feeds_at_once_and_reads_create_none() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        if test_db.engine != "sqlite" {
            continue; // a test of SQLite's query plan
        }
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let feeds = |db: &Db<'_>| -> i64 {
            db.0.query_row("SELECT count(*) FROM feeds", [], |r| r.get(0))
                .expect("count")
        };
        // A read of an unknown feed is an empty feed, and creates nothing.
        let none = badge(&db, "chan", &users()[0]);
        assert_eq!(none, FeedCounts::default());
        let page = crate::store::feeds::page(
            &db,
            "chan",
            &users()[0],
            &FeedFilters::default(),
            None,
            crate::store::feeds::PageBounds {
                page_size: 10,
                ..Default::default()
            },
            NOW,
        )
        .expect("page");
        assert!(page.items.is_empty());
        assert_eq!(feeds(&db), 0);
        // One existing feed, then a page naming it, two new feeds, and one of them twice.
        messages::insert(&db, &new_message(0, "chan", users()[0].clone(), None)).expect("insert");
        let mut page: Vec<_> = [
            (1, "chan", 0),
            (2, "chan", 2),
            (3, "other", 0),
            (4, "chan", 2),
        ]
        .into_iter()
        .map(|(i, channel, user)| {
            new_message(i, channel, users()[user].clone(), Some("acme"))
                .prepare()
                .expect("prepare")
        })
        .collect();
        messages::resolve_feeds(&db, page.iter_mut()).expect("resolve");
        for p in page {
            messages::insert_prepared(&db, p)
                .expect("insert")
                .expect("new");
        }
        assert_eq!(feeds(&db), 3);
        let keyed: Vec<(String, i64)> = db
            .0
            .prepare(
                "SELECT m.id, count(*) FROM messages m JOIN feeds f ON f.id = m.feed \
                 AND f.channel_id = m.channel_id AND f.recipient_kind = m.recipient_kind \
                 AND f.recipient_collection = m.recipient_collection AND f.recipient_id = m.recipient_id \
                 GROUP BY m.id ORDER BY m.id",
            )
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            keyed,
            (0..5).map(|i| (format!("m{i:04}"), 1)).collect::<Vec<_>>(),
            "every message carries its own feed's key"
        );
        assert_eq!(badge(&db, "chan", &users()[2]).total_count, 2);
    }
}

fn plan(db: &Db<'_>, sql: &str, params: &[crate::store::sql::Value]) -> String {
    let mut stmt =
        db.0.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("plan");
    let rows = stmt
        .query_map(crate::store::sql::params_from_iter(params.iter()), |r| {
            r.get::<_, String>(3)
        })
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("plan rows");
    rows.join(" / ")
}

/// The hot reads go through the integer key: the page is a range on `messages_feed` in
/// `seq` order (no sort), the tail a range on it past the watermark.
#[test]
fn feed_reads_use_the_integer_key() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        if test_db.engine != "sqlite" {
            continue; // a test of SQLite's query plan
        }
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        let mut w = crate::store::feed_sql::Where::default();
        crate::store::feed_sql::feed(&mut w, "chan", &users()[0]);
        let page = format!(
            "SELECT seq FROM messages WHERE {} AND archived_at IS NULL ORDER BY seq DESC LIMIT 50",
            w.sql()
        );
        let p = plan(&db, &page, &w.params);
        assert!(p.contains("USING INDEX messages_feed (feed=?)"), "{p}");
        assert!(!p.contains("TEMP B-TREE"), "{p}");
        let tail = format!(
            "SELECT count(*) FROM messages WHERE {} AND seq > (SELECT folded_through FROM feed_fold)",
            w.sql()
        );
        let p = plan(&db, &tail, &w.params);
        assert!(p.contains("messages_feed (feed=? AND seq>?)"), "{p}");
        let lookup = plan(
            &db,
            crate::store::feed_keys::LOOKUP_SQL,
            &[crate::store::sql::Value::Text(
                r#"[["chan", "user", "", "u1"]]"#.into(),
            )],
        );
        assert!(
            lookup.contains("SCAN j") && lookup.contains("SEARCH f USING COVERING INDEX sqlite_autoindex_feeds_1 (channel_id=? AND recipient_kind=? AND recipient_collection=? AND recipient_id=?)"),
            "{lookup}"
        );
    }
}

/// A database written by the schema before 0020 (text-keyed counters, exact) upgrades in
/// place: every badge equals its recount, the watermark is at the newest message, and
/// new messages after it are counted.
#[test]
fn an_old_database_upgrades_with_its_badges_equal() {
    let (mut conn, upgrade) = migrations::in_memory_before("0020_feeds");
    let mut sql = String::new();
    for i in 0..30usize {
        let (kind, collection, id) = match i % 3 {
            0 => ("user", "", "u1"),
            1 => ("user", "", "u2"),
            _ => ("object", "projects", "p1"),
        };
        let tenant = TENANTS[i / 3 % 3].map_or("NULL".to_owned(), |t| format!("'{t}'"));
        let read = if i % 4 == 0 {
            "'2026-01-02T00:00:00.000000Z'"
        } else {
            "NULL"
        };
        let archived = if i % 7 == 0 {
            "'2026-01-02T00:00:00.000000Z'"
        } else {
            "NULL"
        };
        sql.push_str(&format!(
            "INSERT INTO messages(id, channel_id, recipient_kind, recipient_collection, recipient_id, tenant, \
             workflow_key, workflow_version_id, workflow_run_id, workflow_recipient_run_id, step_ref, \
             inserted_at, updated_at, read_at, archived_at) VALUES ('m{i:04}', '{}', '{kind}', '{collection}', \
             '{id}', {tenant}, 'wf', 'v', 'run{i}', 'rr{i}', 's', 'a', 'a', {read}, {archived});",
            CHANNELS[i % 2]
        ));
    }
    // The old counters, exact as the old code kept them; plus a row whose items are gone.
    sql.push_str(
        "INSERT INTO feed_counters(channel_id, recipient_kind, recipient_collection, recipient_id, tenant, total, unread, unseen) \
         SELECT channel_id, recipient_kind, recipient_collection, recipient_id, coalesce(tenant, ''), \
         sum(archived_at IS NULL), sum(archived_at IS NULL AND read_at IS NULL), sum(archived_at IS NULL AND seen_at IS NULL) \
         FROM messages GROUP BY 1, 2, 3, 4, 5; \
         INSERT INTO feed_counters(channel_id, recipient_kind, recipient_collection, recipient_id, tenant) \
         VALUES ('chan', 'object', 'projects', 'gone', 'acme');",
    );
    conn.execute_batch(&sql).expect("old rows");
    upgrade(&mut conn);
    let db = Db::on(&conn);
    assert_eq!(
        progress(&db).expect("progress"),
        Progress {
            folded_through: 30,
            newest: 30
        }
    );
    assert_exact(&db, "upgraded");
    let total: i64 =
        db.0.query_row("SELECT sum(total) FROM feed_counters", [], |r| r.get(0))
            .expect("sum");
    assert_eq!(total, 30 - 5, "the old counters, re-keyed (5 archived)");
    let gone: i64 = db
        .0
        .query_row(
            "SELECT count(*) FROM feed_counters c JOIN feeds f ON f.id = c.feed WHERE f.recipient_id = 'gone'",
            [],
            |r| r.get(0),
        )
        .expect("gone");
    assert_eq!(gone, 1, "a counter row without items keeps its feed");
    let unkeyed: i64 =
        db.0.query_row(
            "SELECT count(*) FROM messages WHERE feed IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("keys");
    assert_eq!(unkeyed, 0);
    // Changes after the upgrade: a folded item read, a new item in the tail.
    read(&db, "m0001");
    messages::insert(&db, &new_message(100, "chan", users()[0].clone(), None)).expect("insert");
    assert_exact(&db, "after the upgrade");
    fold(&db, 100).expect("fold");
    assert_exact(&db, "folded after the upgrade");
}

/// The objects of a tenant: an object with items in the tenant is listed whether its
/// items are still in the tail or folded into a counter row.
#[test]
fn an_object_is_of_a_tenant_from_its_tail_and_its_counters() {
    use crate::model::PageQuery;
    use crate::store::recipients;
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        for id in ["p1", "p2"] {
            recipients::upsert_object(&db, "projects", id, &Default::default()).expect("object");
        }
        let object = |id: &str| RecipientRef::from_stored("object", "projects", id);
        messages::insert(&db, &new_message(0, "chan", object("p1"), Some("acme"))).expect("insert");
        messages::insert(&db, &new_message(1, "chan", object("p2"), Some("globex")))
            .expect("insert");
        let listed = |db: &Db<'_>, tenant: &str| -> Vec<String> {
            recipients::list_tenant_objects(db, tenant, None, &PageQuery::default(), false)
                .expect("list")
                .entries
                .iter()
                .map(|o| match &o.key {
                    crate::model::entities::EntityKey::Object { id, .. } => id.clone(),
                    _ => String::new(),
                })
                .collect()
        };
        assert_eq!(listed(&db, "acme"), ["p1"], "from the tail");
        fold(&db, 100).expect("fold");
        assert_eq!(listed(&db, "acme"), ["p1"], "from the counters");
        assert_eq!(listed(&db, "globex"), ["p2"]);
        assert!(listed(&db, "initech").is_empty());
    }
}

#[test]
fn a_run_of_plain_messages_is_written_in_page_order_and_replays_are_left_out() {
    // Outside a transaction (PostgreSQL writes with `ON CONFLICT DO NOTHING` at once), and
    // as the writer does, inside its transaction (PostgreSQL: a COPY of the page first,
    // which meets the replays, is rolled back to its savepoint and falls back).
    for writer in [false, true] {
        for test_db in crate::store::test_engines::engines() {
            plain_messages_in_page_order_without_replays(&test_db, writer);
        }
    }
}

fn plain_messages_in_page_order_without_replays(
    test_db: &crate::store::test_engines::TestDb,
    writer: bool,
) {
    {
        let engine = test_db.engine;
        let clock = crate::clock::Clock::system();
        let cache = crate::store::feed_key_cache::FeedKeyCache::new();
        let db = Db(&test_db.conn, &clock, writer.then_some(&cache));
        if writer {
            test_db.conn.execute_batch("BEGIN").expect("begin");
        }
        let user = users()[0].clone();
        // Written before: its (recipient run, step) makes the page's replay a conflict.
        messages::insert(&db, &new_message(0, "chan", user.clone(), None)).expect("insert");
        let mut page: Vec<NewMessage> = (1..=26)
            .map(|i| new_message(i, "chan", users()[i % 3].clone(), TENANTS[i % 3]))
            .collect();
        // A replay of message 0 under a new id, and a second message with message 3's id
        // in the same statement: neither is stored or returned.
        let mut replay = new_message(0, "chan", user.clone(), None);
        replay.id = "replay".into();
        page.insert(10, replay);
        let mut twin = new_message(3, "other", user, None);
        twin.workflow_recipient_run_id = "rr-twin".into();
        page.insert(4, twin);
        // 28 messages: after the COPY's rollback, statements of 20, 5, 1, 1 and 1 rows on
        // PostgreSQL.
        let mut prepared: Vec<_> = page
            .into_iter()
            .map(|m| m.prepare().expect("prepare"))
            .collect();
        messages::resolve_feeds(&db, prepared.iter_mut()).expect("resolve");
        let mut rows = Vec::new();
        messages::insert_page(&db, prepared, &mut rows).expect("insert page");
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        let expected: Vec<String> = (1..=26).map(|i| format!("m{i:04}")).collect();
        assert_eq!(ids, expected, "{engine}: the new messages, in page order");
        assert!(
            rows.windows(2).all(|w| w[0].seq < w[1].seq),
            "{engine}: sequence numbers follow the page"
        );
        for row in &rows {
            let stored = messages::get(&db, &row.id).expect("get").expect("stored");
            assert_eq!(stored.seq, row.seq, "{engine}: {}", row.id);
            assert_eq!(stored.recipient, row.recipient, "{engine}: {}", row.id);
            assert_eq!(stored.tenant, row.tenant, "{engine}: {}", row.id);
        }
        let stored: i64 =
            db.0.query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
                .expect("count");
        assert_eq!(stored, 27, "{engine}: message 0 and the page's 26");
        if writer {
            test_db.conn.execute_batch("COMMIT").expect("commit");
        }
    }
}

#[test]
fn a_page_in_the_writer_reads_back_column_for_column_as_it_was_given() {
    // PostgreSQL writes a page of 20 or more in the writer's transaction by COPY with
    // explicit sequence numbers: every column must land where the INSERT put it.
    for test_db in crate::store::test_engines::engines() {
        let engine = test_db.engine;
        let clock = crate::clock::Clock::system();
        let cache = crate::store::feed_key_cache::FeedKeyCache::new();
        let db = Db(&test_db.conn, &clock, Some(&cache));
        test_db.conn.execute_batch("BEGIN").expect("begin");
        let page: Vec<NewMessage> = (1..=24)
            .map(|i| {
                let mut m = new_message(i, "chan", users()[i % 3].clone(), TENANTS[i % 3]);
                m.workflow_categories = vec![format!("cat{i}"), "all".into()];
                m.actors = vec![RecipientRef::User(format!("actor{i}"))];
                m.blocks = json!([{"type": "markdown", "name": "body", "content": format!("c{i}"),
                                   "rendered": format!("<p>r{i}</p>")}])
                .into();
                m.inserted_at = format!("2026-01-01T00:00:{i:02}.000000Z");
                if i % 2 == 0 {
                    m.batch = Some(std::sync::Arc::new(json!({"activities": [i]})));
                }
                if i % 4 == 0 {
                    m.expires_at = Some(format!("2027-01-01T00:00:{i:02}.000000Z"));
                }
                if i % 5 == 0 {
                    m.pinned_at = Some(m.inserted_at.clone());
                }
                m
            })
            .collect();
        let mut prepared: Vec<_> = page
            .iter()
            .cloned()
            .map(|m| m.prepare().expect("prepare"))
            .collect();
        messages::resolve_feeds(&db, prepared.iter_mut()).expect("resolve");
        let mut rows = Vec::new();
        messages::insert_page(&db, prepared, &mut rows).expect("insert page");
        test_db.conn.execute_batch("COMMIT").expect("commit");
        assert_eq!(rows.len(), page.len(), "{engine}");
        assert!(rows.windows(2).all(|w| w[0].seq < w[1].seq), "{engine}");
        for (given, row) in page.iter().zip(&rows) {
            let stored = messages::get(&db, &given.id).expect("get").expect("stored");
            let what = format!("{engine}: {}", given.id);
            assert_eq!(stored.seq, row.seq, "{what}");
            assert_eq!(stored.channel_id, given.channel_id, "{what}");
            assert_eq!(stored.recipient, given.recipient, "{what}");
            assert_eq!(stored.tenant, given.tenant, "{what}");
            assert_eq!(stored.workflow_key, given.workflow_key, "{what}");
            assert_eq!(
                stored.workflow_version_id, given.workflow_version_id,
                "{what}"
            );
            assert_eq!(
                stored.workflow_categories, given.workflow_categories,
                "{what}"
            );
            assert_eq!(stored.workflow_run_id, given.workflow_run_id, "{what}");
            assert_eq!(
                stored.workflow_recipient_run_id, given.workflow_recipient_run_id,
                "{what}"
            );
            assert_eq!(stored.step_ref, given.step_ref, "{what}");
            assert_eq!(stored.actors, given.actors, "{what}");
            assert_eq!(*stored.data, **given.data.value(), "{what}");
            assert_eq!(stored.blocks.value(), given.blocks.value(), "{what}");
            assert_eq!(stored.metadata, json!({}), "{what}");
            assert_eq!(stored.inserted_at, given.inserted_at, "{what}");
            assert_eq!(stored.updated_at, given.inserted_at, "{what}");
            assert_eq!(stored.batch.as_deref(), given.batch.as_deref(), "{what}");
            assert_eq!(stored.expires_at, given.expires_at, "{what}");
            assert_eq!(stored.pinned_at, given.pinned_at, "{what}");
            assert!(
                stored.seen_at.is_none() && stored.read_at.is_none() && !stored.expired,
                "{what}"
            );
        }
        // Badges count the page like any other (the fold reads the rows it wrote).
        fold(&db, 1000).expect("fold");
        let badges: i64 =
            db.0.query_row("SELECT sum(total) FROM feed_counters", [], |r| r.get(0))
                .expect("badges");
        assert_eq!(badges, 24, "{engine}");
    }
}

/// Several PostgreSQL writers: the fold never passes a sequence number an open
/// transaction holds (its insert would commit below the watermark and be counted
/// nowhere), never waits for that transaction, and folds the number once it commits.
#[test]
fn the_fold_passes_no_number_an_open_write_transaction_holds() {
    for test_db in crate::store::test_engines::engines() {
        // SQLite has one writer, and the fold runs inside its transaction.
        let Some(other) = test_db.connect_again() else {
            continue;
        };
        let db = Db::on(&test_db.conn);
        seed(&db);
        let clock = crate::clock::Clock::system();
        let cache = crate::store::feed_key_cache::FeedKeyCache::new();
        // Another node's writer takes number 31 and stays open; this node then commits 32.
        let other_writer = Db(&other, &clock, Some(&cache));
        other.begin().expect("begin");
        let held = messages::insert(
            &other_writer,
            &new_message(30, "chan", users()[0].clone(), None),
        )
        .expect("insert")
        .expect("new");
        assert_eq!(held.seq, 31);
        messages::insert(&db, &new_message(31, "chan", users()[1].clone(), None))
            .expect("insert")
            .expect("new");
        let mut horizon = Horizon::default();
        let fold_once =
            |horizon: &mut Horizon| fold_in_own_transaction(&db, 100, horizon).expect("fold");
        for call in 0..3 {
            let progress = fold_once(&mut horizon);
            assert!(
                progress.folded_through < held.seq,
                "call {call}: folded through {} past the open transaction's {}",
                progress.folded_through,
                held.seq
            );
            assert_exact(&db, &format!("open transaction, call {call}"));
        }
        other.execute_batch("COMMIT").expect("commit");
        // Settled once it committed (and whatever other tests had open ended).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while fold_once(&mut horizon).unfolded() > 0 {
            assert!(std::time::Instant::now() < deadline, "never folded");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(
            counter_sums(&db),
            (32, 32, 32),
            "both late numbers are counted once"
        );
        assert_exact(&db, "after the commit");
    }
}

/// Several PostgreSQL writers: a status change holds the fold off until it commits (the
/// fold does not queue in front of later ones), and after several misses the fold waits
/// briefly, giving up with a lock timeout that leaves everything as it was.
#[test]
fn a_status_change_in_flight_holds_the_fold_off_without_queueing_it() {
    for test_db in crate::store::test_engines::engines() {
        let Some(other) = test_db.connect_again() else {
            continue;
        };
        let db = Db::on(&test_db.conn);
        seed(&db);
        fold(&db, 15).expect("fold");
        for i in 30..35 {
            messages::insert(&db, &new_message(i, "chan", users()[i % 3].clone(), None))
                .expect("insert");
        }
        // Another node reads a folded item and has not committed yet.
        other.execute_batch("BEGIN").expect("begin");
        read(&Db::on(&other), "m0000");
        let mut horizon = Horizon::default();
        for call in 0..TRIES_BEFORE_WAITING {
            let progress = fold_in_own_transaction(&db, 100, &mut horizon).expect("fold");
            assert_eq!(progress.folded_through, 15, "call {call}: held off");
        }
        match fold_in_own_transaction(&db, 100, &mut horizon) {
            Err(crate::store::StoreError::Sql(e)) => assert!(e.is_lock_timeout(), "{e}"),
            other => panic!("expected a lock timeout after waiting, got {other:?}"),
        }
        assert_eq!(progress(&db).expect("progress").folded_through, 15);
        other.execute_batch("COMMIT").expect("commit");
        assert_eq!(fold(&db, 100).expect("fold").folded_through, 35);
        assert_eq!(counter_sums(&db), (35, 34, 35), "the read is counted once");
        assert_exact(&db, "after the status change committed");
    }
}
