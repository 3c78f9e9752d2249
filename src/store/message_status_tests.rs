//! Unit tests for `store::message_status`: counters stay equal to a recount after every
//! kind of write.

use serde_json::json;

use super::*;
use crate::model::engagement::EngagementChange;
use crate::model::message_params::BulkScope;
use crate::model::{ArchivedFilter, FeedFilters, RecipientRef};
use crate::store::feeds::{counts_by_query, counts_from_counters};
use crate::store::messages::NewMessage;

const NOW: &str = "2026-03-01T00:00:00.000000Z";

fn seed(db: &Db<'_>) {
    let tenants = [Some("acme"), None, Some("globex")];
    for i in 0..18 {
        let user = format!("u{}", i % 2);
        messages::insert(
            db,
            &NewMessage {
                id: format!("m{i:02}"),
                channel_id: "chan".into(),
                recipient: RecipientRef::User(user),
                tenant: tenants[i % 3].map(str::to_owned),
                workflow_key: "wf".into(),
                workflow_version_id: "v".into(),
                workflow_categories: vec![],
                workflow_run_id: format!("r{i}"),
                workflow_recipient_run_id: format!("rr{i}"),
                step_ref: "s".into(),
                actors: vec![],
                data: json!({"i": i}).into(),
                blocks: json!([]).into(),
                inserted_at: format!("2026-01-01T00:00:{i:02}.000000Z"),
                batch: None,
                expires_at: None,
                pinned_at: None,
            },
        )
        .expect("insert");
    }
}

/// Counter rows equal a recount for both users under every tenant scope.
fn assert_no_drift(db: &Db<'_>) {
    for user in ["u0", "u1"] {
        let r = RecipientRef::User(user.into());
        for tenant in [None, Some("acme")] {
            for has_tenant in [None, Some(true), Some(false)] {
                let f = FeedFilters {
                    tenant: tenant.map(str::to_owned),
                    has_tenant,
                    ..Default::default()
                };
                let fast = counts_from_counters(db, "chan", &r, &f, None, NOW).expect("fast");
                let slow = counts_by_query(db, "chan", &r, &f, None, NOW).expect("slow");
                assert_eq!(fast, slow, "{user} {f:?}");
            }
        }
    }
}

#[test]
fn counters_match_a_recount_after_single_batch_and_bulk_writes() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        let now = "2026-02-01T00:00:00.000000Z";
        set_one(&db, "m00", &EngagementChange::Read, now).expect("read");
        set_one(&db, "m02", &EngagementChange::Archived, now).expect("archive");
        set_one(&db, "m02", &EngagementChange::Archived, now).expect("archive again");
        set_one(&db, "m04", &EngagementChange::Interacted(None), now).expect("interacted");
        assert_no_drift(&db);
        let ids: Vec<String> = ["m01", "m03", "missing", "m01"].map(String::from).to_vec();
        let done = set_many(&db, &ids, &EngagementChange::Seen, now).expect("batch");
        assert_eq!(done.len(), 2);
        assert_no_drift(&db);
        set_one(&db, "m02", &EngagementChange::Unarchived, now).expect("unarchive");
        set_one(&db, "m00", &EngagementChange::Unread, now).expect("unread");
        assert_no_drift(&db);

        let mut scope =
            BulkScope::from_body(&json!({"user_ids": ["u0"], "tenants": ["acme"]})).expect("scope");
        let read = BulkAction::Change(EngagementChange::Read);
        let n = bulk(&db, "chan", &scope, None, &read, now).expect("bulk read");
        assert!(n > 0);
        assert_eq!(
            bulk(&db, "chan", &scope, None, &read, now).expect("again"),
            0
        );
        assert_no_drift(&db);
        let u0 = RecipientRef::User("u0".into());
        let view = FeedFilters {
            tenant: Some("acme".into()),
            ..Default::default()
        };
        let counts = counts_from_counters(&db, "chan", &u0, &view, None, NOW).expect("counts");
        assert_eq!(counts.unread_count, 0, "bulk read clears the tenant view");

        scope.archived = ArchivedFilter::Include;
        let archive = BulkAction::Change(EngagementChange::Archived);
        bulk(&db, "chan", &scope, None, &archive, now).expect("bulk archive");
        assert_no_drift(&db);
        let everyone = BulkScope::from_body(&json!({})).expect("scope");
        let deleted = bulk(&db, "chan", &everyone, None, &BulkAction::Delete, now).expect("delete");
        assert_eq!(deleted, 18);
        assert_no_drift(&db);
        let zero = counts_from_counters(&db, "chan", &u0, &FeedFilters::default(), None, NOW)
            .expect("zero");
        assert_eq!(zero, Default::default());
    }
}

#[test]
fn bulk_respects_the_tenant_restriction() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        let scope = BulkScope::from_body(&json!({"user_ids": ["u0", "u1"]})).expect("scope");
        let restriction = vec!["acme".to_owned()];
        let n = bulk(
            &db,
            "chan",
            &scope,
            Some(&restriction),
            &BulkAction::Change(EngagementChange::Seen),
            "2026-02-01T00:00:00.000000Z",
        )
        .expect("bulk");
        assert_eq!(n, 6, "only the six acme messages");
        assert_no_drift(&db);
    }
}
