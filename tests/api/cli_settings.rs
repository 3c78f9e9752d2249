//! Settings on either side of the subcommand (issue 17 item 14), and commands other than
//! `serve` that print what they were asked for, not the migrations they applied.

use crate::crash::free_port;
use crate::process::Launch;

#[tokio::test]
async fn settings_after_serve_are_accepted_and_used() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = Launch::new(
        dir.path(),
        &[
            "serve",
            "--addr",
            &addr,
            "--db",
            "after.db",
            "--metrics",
            "false",
        ],
    )
    .test_keys()
    .serve_on(port)
    .await;
    let res = reqwest::get(server.url("/metrics")).await.unwrap();
    assert_eq!(
        res.status(),
        404,
        "--metrics false after `serve` is applied"
    );
    let (ok, _, stderr) = server.stop().await;
    assert!(ok, "{stderr}");
    // On PostgreSQL the run's database URL stands in for the file.
    if !crate::engine::is_postgres() {
        assert!(dir.path().join("after.db").is_file(), "--db after `serve`");
    }
}

#[tokio::test]
async fn settings_before_serve_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = Launch::new(dir.path(), &["--addr", &addr, "--db", "before.db", "serve"])
        .test_keys()
        .serve_on(port)
        .await;
    let (ok, _, stderr) = server.stop().await;
    assert!(ok, "{stderr}");
    // On PostgreSQL the run's database URL stands in for the file.
    if !crate::engine::is_postgres() {
        assert!(dir.path().join("before.db").is_file());
    }
}

#[tokio::test]
async fn token_and_keys_print_their_answer_without_migration_logs() {
    let dir = tempfile::tempdir().unwrap();
    // `--db` after the subcommand, on a fresh database (every migration applies).
    let (ok, stdout, stderr) = Launch::new(dir.path(), &["token", "u1", "--db", "cli.db"])
        .output()
        .await;
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim().split('.').count(), 3, "a JWT: {stdout}");
    assert!(
        !stderr.contains("migration") && !stderr.contains("INFO"),
        "no INFO lines from `token`: {stderr}"
    );
    // On PostgreSQL the run's database URL stands in for the file.
    if !crate::engine::is_postgres() {
        assert!(dir.path().join("cli.db").is_file());
    }
    let (ok, stdout, stderr) = Launch::new(dir.path(), &["--db", "cli.db", "keys"])
        .output()
        .await;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("public key: pk_"), "{stdout}");
    assert!(!stderr.contains("INFO"), "{stderr}");
    // An explicit filter still shows them.
    let (ok, _, stderr) = Launch::new(dir.path(), &["keys", "--db", "other.db", "--log", "info"])
        .output()
        .await;
    assert!(ok, "{stderr}");
    // On PostgreSQL the directory's schema was migrated by the first command already.
    if !crate::engine::is_postgres() {
        assert!(stderr.contains("applying migration"), "{stderr}");
    }
}

#[tokio::test]
async fn a_fold_interval_out_of_range_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    for value in ["5", "3600001", "soon"] {
        let (ok, stdout, stderr) = Launch::new(
            dir.path(),
            &["serve", "--fold-interval-ms", value, "--db", "f.db"],
        )
        .test_keys()
        .output()
        .await;
        assert!(!ok, "--fold-interval-ms {value} must be refused");
        assert!(stderr.contains("--fold-interval-ms"), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert!(!dir.path().join("f.db").exists(), "nothing was created");
    }
}
