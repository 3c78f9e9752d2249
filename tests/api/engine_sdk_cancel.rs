//! The official SDKs' cancel (`@knocklabs/node` `workflows.cancel`, python `knockapi`
//! `workflows.cancel`), unchanged, against paused runs: each returns without error and
//! cancels exactly the recipient it names.
//!
//! Needs `npm ci --prefix tests/js` and the `tests/py/.venv` (scripts/test does both).

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::db;
use crate::engine_delay::{app_with_manual_clock, in_app, upsert, wait_recipient_statuses};
use crate::helpers::{TestApp, installed_node_sdk};

/// Pauses `sdk-c1` and `sdk-c2` in a day-long delay under `sdk-cancel-key`.
async fn paused_pair(app: &TestApp) -> String {
    upsert(
        app,
        "sdk-cancel",
        json!([{"ref": "wait", "type": "delay", "settings": {"delay_for": {"unit": "days", "value": 1}}},
               in_app("msg", "hi")]),
    )
    .await;
    let run = app
        .trigger(
            "sdk-cancel",
            json!({"recipients": ["sdk-c1", "sdk-c2"], "cancellation_key": "sdk-cancel-key"}),
        )
        .await;
    wait_recipient_statuses(app, &run, 2, &["paused"]).await;
    run
}

fn statuses(app: &TestApp, run: &str) -> Vec<(String, String)> {
    db::recipient_runs(&app.db_path, run)
        .into_iter()
        .map(|(id, status, _)| (id, status))
        .collect()
}

#[tokio::test]
async fn the_official_node_sdk_cancels_one_paused_recipient() {
    let js = installed_node_sdk();
    let (app, _clock) = app_with_manual_clock().await;
    let run = paused_pair(&app).await;
    app.run_sdk_script(
        PathBuf::from("node"),
        js.join("cancel_sdk.mjs"),
        "node sdk cancel: ok",
    )
    .await;
    assert_eq!(
        statuses(&app, &run),
        [
            ("sdk-c1".to_owned(), "cancelled".to_owned()),
            ("sdk-c2".to_owned(), "paused".to_owned())
        ]
    );
}

#[tokio::test]
async fn the_official_python_sdk_cancels_one_paused_recipient() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let python = py.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Knock Python SDK is not installed: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt`"
    );
    let (app, _clock) = app_with_manual_clock().await;
    let run = paused_pair(&app).await;
    app.run_sdk_script(python, py.join("cancel_sdk.py"), "python sdk cancel: ok")
        .await;
    assert_eq!(
        statuses(&app, &run),
        [
            ("sdk-c1".to_owned(), "paused".to_owned()),
            ("sdk-c2".to_owned(), "cancelled".to_owned())
        ]
    );
}
