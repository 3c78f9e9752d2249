//! Unit tests for `store::schedules`: the payload rows of migration 0016.

use serde_json::json;

use super::*;
use crate::store::migrations;

fn insert_legacy(db: &Db<'_>, id: &str, data: Option<&str>) {
    db.0.execute(
        "INSERT INTO schedules(id, workflow_key, recipient_kind, recipient_id, data, repeats, \
         next_occurrence_at, inserted_at, updated_at) \
         VALUES (?1, 'w', 'user', ?1, ?2, '[]', '2030-01-01T00:00:00.000000Z', 't', 't')",
        params![id, data],
    )
    .expect("legacy row");
}

fn payloads(db: &Db<'_>) -> i64 {
    db.0.query_row("SELECT COUNT(*) FROM schedule_payloads", [], |r| r.get(0))
        .expect("count")
}

#[test]
fn rows_stored_before_payloads_keep_their_data_shared_once_per_value() {
    let (mut conn, upgrade) = migrations::in_memory_before("0016_bounds");
    insert_legacy(&Db::on(&conn), "s1", Some(r#"{"a":1}"#));
    insert_legacy(&Db::on(&conn), "s2", Some(r#"{"a":1}"#));
    insert_legacy(&Db::on(&conn), "s3", Some(r#"{"b":2}"#));
    insert_legacy(&Db::on(&conn), "s4", None);
    upgrade(&mut conn);
    let db = Db::on(&conn);
    assert_eq!(payloads(&db), 2, "one payload per distinct value");
    let get = |id: &str| get(&db, id).expect("get").expect("row").schedule;
    let (s1, s2, s3, s4) = (get("s1"), get("s2"), get("s3"), get("s4"));
    assert_eq!(s1.data.as_deref(), Some(&json!({"a": 1})));
    assert_eq!(s1.payload_id, s2.payload_id);
    assert_eq!(s3.data.as_deref(), Some(&json!({"b": 2})));
    assert_eq!((s4.data, s4.payload_id), (None, None));
    let due = due(&db, "2031-01-01T00:00:00.000000Z", 10).expect("due");
    assert_eq!(due.len(), 4, "the firing path reads them too");
    assert!(Arc::ptr_eq(
        due[0].schedule.data.as_ref().expect("data"),
        due[1].schedule.data.as_ref().expect("data")
    ));
    // A payload goes with the last schedule that refers to it, deleted or replaced.
    assert!(delete(&db, "s1").expect("delete"));
    assert_eq!(payloads(&db), 2);
    assert!(delete(&db, "s2").expect("delete"));
    assert_eq!(payloads(&db), 1);
    let mut s3 = s3;
    s3.data = None;
    s3.payload_id = None;
    put(&db, &s3, "t").expect("replace");
    assert_eq!(payloads(&db), 0);
}

#[test]
fn a_list_page_stops_at_its_data_budget_but_holds_at_least_one() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let big = put_payload(&db, &json!({"blob": "x".repeat(1000)})).expect("payload");
        for id in ["s1", "s2", "s3"] {
            insert_legacy(&db, id, None);
            db.0.execute(
                "UPDATE schedules SET payload_id = ?2 WHERE id = ?1",
                params![id, big],
            )
            .expect("refer");
        }
        let q = PageQuery {
            page_size: 50,
            ..PageQuery::default()
        };
        let page = list(&db, &ScheduleFilter::default(), &q, 2500).expect("list");
        assert_eq!(page.entries.len(), 2);
        assert!(page.after.is_some());
        let page = list(&db, &ScheduleFilter::default(), &q, 10).expect("list");
        assert_eq!(page.entries.len(), 1, "at least one, whatever it weighs");
    }
}
