//! The official Python SDK (`knockapi`), unchanged, against the test server: identify,
//! tenants, trigger with a tenant, list the feed, mark read, opt out through preferences,
//! and Knock's errors as the SDK's exception classes (`tests/py/knockapi_sdk.py`).
//!
//! Needs `tests/py/.venv` with `tests/py/requirements.txt` installed (`scripts/test` does
//! that). Missing it is a failure, not a skip.

use std::path::Path;

use crate::helpers::spawn_app;

#[tokio::test]
async fn the_official_python_sdk_identifies_triggers_reads_marks_and_opts_out() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let python = py.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Knock Python SDK is not installed: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt`"
    );
    let app = spawn_app().await;
    app.run_sdk_script(python, py.join("knockapi_sdk.py"), "python sdk: ok")
        .await;
}

#[tokio::test]
async fn the_official_python_sdk_manages_subscriptions() {
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py");
    let python = py.join(".venv/bin/python");
    assert!(
        python.is_file(),
        "the Knock Python SDK is not installed: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt`"
    );
    let app = spawn_app().await;
    app.run_sdk_script(
        python,
        py.join("subscriptions_sdk.py"),
        "python subscriptions sdk: ok",
    )
    .await;
}
