//! `tidings workflows validate|push` through the real binary.

use std::path::Path;

use serde_json::json;

use crate::helpers::{SECRET_KEY, spawn_app};

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

async fn tidings(args: Vec<String>) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tidings"))
        .env("TIDINGS_LOG", "warn")
        .env_remove("TIDINGS_PUSH_KEY")
        .args(args)
        .output()
        .await
        .expect("the tidings binary runs")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

const GOOD: &str = r#"{"name":"Pushed","steps":[{"ref":"s1","type":"channel","channel_key":"in-app-feed",
    "template":{"markdown_body@":"s1/body.md"}}]}"#;

#[tokio::test]
async fn validate_accepts_the_shipped_workflows() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows");
    let out = tidings(args(&["workflows", "validate", dir.to_str().unwrap()])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok new-comment"), "{stdout}");
}

#[tokio::test]
async fn validate_prints_every_problem_with_its_file_and_field_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("fine/workflow.json"), GOOD);
    write(&root.join("fine/s1/body.md"), "Hello");
    write(&root.join("not-json/workflow.json"), "{\"name\": ");
    write(
        &root.join("bad-fields/workflow.json"),
        r#"{"name":"B","trigger_data_json_schema":{"type":12},
            "steps":[{"ref":"s1","type":"channel","channel_key":"in-app-feed",
                      "template":{"markdown_body":"{% if %}"}}]}"#,
    );
    write(
        &root.join("bad-step/workflow.json"),
        r#"{"name":"S","steps":[{"ref":"s2","type":"sms","channel_key":"in-app-feed"}]}"#,
    );
    write(
        &root.join("bad-ref/workflow.json"),
        r#"{"name":"R","steps":[{"ref":"s1","type":"channel","channel_key":"in-app-feed",
            "template":{"markdown_body@":"missing.md"}}]}"#,
    );
    let out = tidings(args(&["workflows", "validate", root.to_str().unwrap()])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let line_for = |folder: &str, text: &str| {
        stderr
            .lines()
            .any(|l| l.contains(&format!("{folder}/workflow.json")) && l.contains(text))
    };
    assert!(line_for("not-json", "not valid JSON"), "{stderr}");
    assert!(
        line_for("bad-fields", "`steps[0].template.markdown_body`"),
        "{stderr}"
    );
    assert!(
        line_for("bad-fields", "`trigger_data_json_schema`"),
        "{stderr}"
    );
    assert!(line_for("bad-step", "`steps[0].type`"), "{stderr}");
    assert!(
        line_for("bad-ref", "steps[0].template.markdown_body@"),
        "{stderr}"
    );
    assert!(!stderr.contains("fine/workflow.json"), "{stderr}");

    let missing = tidings(args(&["workflows", "validate", "/nonexistent/dir"])).await;
    assert_eq!(missing.status.code(), Some(1));
}

#[tokio::test]
async fn push_upserts_each_workflow_and_refuses_bad_keys_and_broken_dirs() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(&root.join("pushed-one/workflow.json"), GOOD);
    write(
        &root.join("pushed-one/s1/body.md"),
        "Hello **{{ data.name }}**",
    );
    write(&root.join("pushed-two/workflow.json"), GOOD);
    write(&root.join("pushed-two/s1/body.md"), "Two");
    let dir_arg = root.to_str().unwrap();

    let forged = tidings(args(&[
        "workflows",
        "push",
        dir_arg,
        "--url",
        &app.address,
        "--key",
        "sk_forged",
    ]))
    .await;
    assert_eq!(forged.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&forged.stderr).contains("401"));
    assert_eq!(app.get_json("/v1/workflows/pushed-one").await.0, 404);

    let out = tidings(args(&[
        "workflows",
        "push",
        dir_arg,
        "--url",
        &app.address,
        "--key",
        SECRET_KEY,
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, wf) = app.get_json("/v1/workflows/pushed-one").await;
    assert_eq!(status, 200, "{wf}");
    assert_eq!(
        wf["steps"][0]["template"]["markdown_body"], "Hello **{{ data.name }}**",
        "references were resolved before the push: {wf}"
    );
    assert_eq!(app.get_json("/v1/workflows/pushed-two").await.0, 200);
    app.trigger(
        "pushed-one",
        json!({"recipients": ["u1"], "data": {"name": "Ada"}}),
    )
    .await;
    let feed = app.wait_for_feed("u1", "", 1).await;
    assert!(
        feed["entries"][0]["blocks"].to_string().contains("Ada"),
        "{feed}"
    );

    // One broken workflow: nothing is pushed, not even the valid ones.
    write(&root.join("pushed-three/workflow.json"), GOOD);
    write(&root.join("pushed-three/s1/body.md"), "Three");
    write(&root.join("pushed-bad/workflow.json"), "[]");
    let out = tidings(args(&[
        "workflows",
        "push",
        dir_arg,
        "--url",
        &app.address,
        "--key",
        SECRET_KEY,
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pushed-bad/workflow.json"));
    assert_eq!(app.get_json("/v1/workflows/pushed-three").await.0, 404);
}

/// A `knock workflow pull` directory with a batch step (settings as knock-cli writes them,
/// the digest body in its own file) validates; a bad window in another file is reported
/// with its file and field.
#[tokio::test]
async fn validate_accepts_a_knock_cli_batch_workflow_and_names_a_bad_window() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        &root.join("comment-digest/workflow.json"),
        r#"{"name":"Comment digest","categories":["collaboration"],"steps":[
            {"ref":"batch_1","type":"batch","name":"Batch","description":null,
             "settings":{"batch_key":"data.page_id","batch_order":"asc",
                         "batch_window":{"unit":"minutes","value":5},"batch_window_type":"sliding",
                         "batch_window_extension_limit":{"unit":"hours","value":1},
                         "batch_items_max_limit":100,"batch_execution_mode":"flush_leading",
                         "workflow_version_mode":"latest"}},
            {"ref":"in_app_feed_1","type":"channel","channel_key":"in-app-feed","channel_type":"in_app_feed",
             "template":{"markdown_body@":"in_app_feed_1/markdown_body.md"}}]}"#,
    );
    write(
        &root.join("comment-digest/in_app_feed_1/markdown_body.md"),
        "{{ total_activities }} comments by {{ actors[0].name }}",
    );
    let out = tidings(args(&["workflows", "validate", root.to_str().unwrap()])).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok comment-digest"));

    write(
        &root.join("bad-batch/workflow.json"),
        r#"{"name":"B","steps":[{"ref":"b","type":"batch",
            "settings":{"batch_window":{"unit":"minutes","value":0}}}]}"#,
    );
    let out = tidings(args(&["workflows", "validate", root.to_str().unwrap()])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("bad-batch/workflow.json")
            && l.contains("`steps[0].settings.batch_window`")),
        "{stderr}"
    );
}
