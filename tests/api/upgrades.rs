//! Upgrades through the real binary: a newer binary migrates an older database in one
//! transaction and logs each step; an older binary refuses a newer database.

use std::process::Command;

use rusqlite::Connection;

fn tidings(db: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tidings"))
        .envs(crate::engine::database_env(db))
        .env("TIDINGS_ADDR", "127.0.0.1:0")
        .env("TIDINGS_LOG", "info")
        .env_remove("TIDINGS_LOG_FORMAT")
        .env_remove("TIDINGS_SIGNING_PUBLIC_KEY")
        .args(args)
        .output()
        .expect("the tidings binary runs")
}

fn user_version(db: &std::path::Path) -> i64 {
    Connection::open(db)
        .expect("open")
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version")
}

#[test]
fn a_newer_binary_applies_pending_migrations_and_logs_them() {
    if crate::engine::is_postgres() {
        return; // SQLite's file migrations (PostgreSQL's are store::pg's, tested there)
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    {
        // A database as the first release left it: schema version 1 with a user in it.
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch(include_str!("../../src/store/migrations/0001_init.sql"))
            .unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO users (id, properties, inserted_at, updated_at) \
             VALUES ('u1', '{\"name\":\"Old\"}', '2026-01-01T00:00:00.000000Z', '2026-01-01T00:00:00.000000Z')",
            [],
        )
        .unwrap();
    }
    let out = tidings(&db, &["keys"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("0002_channel_data") && stderr.contains("applying migration"),
        "each applied migration is logged: {stderr}"
    );
    assert!(stderr.contains("database schema upgraded"), "{stderr}");
    assert_eq!(user_version(&db), tidings::store::SCHEMA_VERSION);
    let name: String = Connection::open(&db)
        .unwrap()
        .query_row("SELECT properties FROM users WHERE id = 'u1'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(name.contains("Old"), "existing rows survive the upgrade");

    // Up to date: a second start applies nothing.
    let again = tidings(&db, &["keys"]);
    assert!(again.status.success());
    assert!(
        !String::from_utf8_lossy(&again.stderr).contains("applying migration"),
        "nothing is pending on the second start"
    );
}

#[test]
fn an_older_binary_refuses_a_newer_database_clearly() {
    if crate::engine::is_postgres() {
        return; // a SQLite file's user_version
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("new.db");
    let created = tidings(&db, &["keys"]);
    assert!(created.status.success());
    let newer = tidings::store::SCHEMA_VERSION + 1;
    Connection::open(&db)
        .unwrap()
        .pragma_update(None, "user_version", newer)
        .unwrap();
    for args in [&["serve"][..], &["keys"][..]] {
        let out = tidings(&db, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail: {stderr}");
        assert!(
            stderr.contains(&format!("schema is version {newer}"))
                && stderr.contains("newer than this binary"),
            "the refusal says why: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "nothing is served or printed: {:?}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert_eq!(user_version(&db), newer, "the newer database is untouched");
}
