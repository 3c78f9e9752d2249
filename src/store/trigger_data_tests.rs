//! Unit tests for the `trigger_data` filter (`feed_sql::trigger_value`): items that share
//! their run's data (probed in `workflow_run_data_values`) and items with data of their own
//! (read with `json_each`) select exactly what `FeedFilters::matches` selects, for every
//! kind of scalar, and a run's nested values and long strings behave as Knock's filter does.

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::model::FeedFilters;
use crate::store::Db;
use crate::store::messages::{self, MessageData, NewMessage};
use crate::store::runs::{self, NewRun};

const NOW: &str = "2026-03-01T00:00:00.000000Z";

fn user() -> RecipientRef {
    RecipientRef::User("u1".into())
}

/// Run `i`'s data: every kind of scalar, a nested object and a 300-character string.
fn run_data(i: usize) -> Value {
    json!({"kind": if i.is_multiple_of(2) { "even" } else { "odd" }, "n": i, "ratio": i as f64 + 0.5,
           "flag": i.is_multiple_of(3), "nothing": null, "nested": {"kind": "even"},
           "long": format!("{}{i}", "x".repeat(300))})
}

/// Eight runs of one message each: even runs' messages share the run's data, odd ones
/// carry their own (the run's, with `kind` changed), as a `$trigger_data` recipient would.
fn seed(db: &Db<'_>) -> Vec<MessageRow> {
    (0..8)
        .map(|i| {
            let data = run_data(i);
            runs::insert_run(
                db,
                &NewRun {
                    id: format!("run{i}"),
                    workflow_key: "wf".into(),
                    request: json!({"recipients": ["u1"], "data": data}),
                    cancellation_key: None,
                    tenant: None,
                },
            )
            .expect("run");
            let message_data = if i.is_multiple_of(2) {
                MessageData::Run(Arc::new(data))
            } else {
                let mut own = data;
                own["kind"] = json!("own");
                MessageData::Own(Arc::new(own))
            };
            messages::insert(
                db,
                &NewMessage {
                    id: format!("msg{i}"),
                    channel_id: "chan".into(),
                    recipient: user(),
                    tenant: None,
                    workflow_key: "wf".into(),
                    workflow_version_id: "v".into(),
                    workflow_categories: vec![],
                    workflow_run_id: format!("run{i}"),
                    workflow_recipient_run_id: format!("rr{i}"),
                    step_ref: "in_app".into(),
                    actors: vec![],
                    data: message_data,
                    blocks: json!([]).into(),
                    inserted_at: format!("2026-01-01T00:00:{i:02}.000000Z"),
                    batch: None,
                    expires_at: None,
                    pinned_at: None,
                },
            )
            .expect("insert")
            .expect("new")
        })
        .collect()
}

#[test]
fn shared_and_own_data_select_what_matches_selects() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        let rows = seed(&db);
        let long = format!("{}{}", "x".repeat(300), 4);
        let cases = [
            json!({"kind": "even"}),
            json!({"kind": "own"}),
            json!({"kind": "odd"}),
            json!({"n": 4}),
            json!({"n": 4.0}),
            json!({"n": "4"}),
            json!({"ratio": 2.5}),
            json!({"flag": true}),
            json!({"flag": false}),
            json!({"nothing": null}),
            json!({"missing": null}),
            json!({"nested": "even"}),
            json!({"kind": "even", "n": 2}),
            json!({"kind": "even", "n": 3}),
            // A stored string is compared on its first 256 characters.
            json!({"long": "x".repeat(256)}),
            json!({"long": long}),
        ];
        for wanted in cases {
            let filters = FeedFilters {
                trigger_data: wanted.as_object().cloned(),
                ..Default::default()
            };
            super::tests::assert_sql_agrees_with_matches(&db, &rows, &filters, &wanted.to_string());
        }
        // The cases above are not vacuous: shared and own items both match some filters.
        let kind_even = FeedFilters {
            trigger_data: json!({"kind": "even"}).as_object().cloned(),
            ..Default::default()
        };
        assert_eq!(rows.iter().filter(|m| kind_even.matches(m, NOW)).count(), 4);
    }
}

#[test]
fn a_shared_item_is_filtered_without_reading_its_data() {
    for test_db in crate::store::test_engines::engines() {
        eprintln!("engine: {}", test_db.engine);
        let conn = &test_db.conn;
        let db = Db::on(conn);
        seed(&db);
        // Were the shared data read from `workflow_run_data`, this would change the answer.
        conn.execute(
            "UPDATE workflow_run_data SET data = '{\"kind\":\"gone\"}'",
            [],
        )
        .expect("update");
        let filters = FeedFilters {
            trigger_data: json!({"kind": "even"}).as_object().cloned(),
            ..Default::default()
        };
        let counts = counts(&db, "chan", &user(), &filters, None, NOW).expect("counts");
        assert_eq!(counts.total_count, 4);
    }
}
