//! Private files (issue 17 item 4): under the usual umask 022, the real binary creates the
//! database, its WAL and SHM, and a backup 0600 — they hold the secret key and the token
//! signing key. (A backup is written as `<file>.partial` and renamed, so the backup's mode
//! is the `.partial`'s.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;

use crate::helpers::SECRET_KEY;
use crate::process::Launch;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn database_wal_shm_and_backup_are_created_owner_only_under_umask_022() {
    if crate::engine::is_postgres() {
        return; // the SQLite file's modes; PostgreSQL's files are the server's
    }
    let dir = tempfile::tempdir().unwrap();
    // Generated keys: the database then holds the secret key and the private signing key.
    let server = Launch::new(dir.path(), &["serve", "--db", "t.db"])
        .umask("022")
        .serve()
        .await;
    let (_, keys, _) = Launch::new(dir.path(), &["keys", "--db", "t.db"])
        .umask("022")
        .output()
        .await;
    let secret = keys
        .lines()
        .find_map(|l| l.strip_prefix("secret key: "))
        .expect("the secret key")
        .to_owned();
    assert_ne!(secret, SECRET_KEY);
    let res = reqwest::Client::new()
        .post(server.url("/v1/workflows/new-comment/trigger"))
        .bearer_auth(&secret)
        .json(&json!({"recipients": ["u1"], "data": {"comment_preview": "hi", "page_url": "https://x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    for file in ["t.db", "t.db-wal", "t.db-shm"] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }
    let (ok, _, stderr) = Launch::new(dir.path(), &["backup", "copy.db", "--db", "t.db"])
        .umask("022")
        .output()
        .await;
    assert!(ok, "{stderr}");
    assert_eq!(mode(&dir.path().join("copy.db")), 0o600, "the backup");
    assert!(!dir.path().join("copy.db.partial").exists());
    let (ok, _, stderr) = server.stop().await;
    assert!(ok, "{stderr}");
    // A server started on the backup (a restore) keeps it private, WAL included.
    let restored = Launch::new(dir.path(), &["serve", "--db", "copy.db"])
        .umask("022")
        .serve()
        .await;
    for file in ["copy.db", "copy.db-wal", "copy.db-shm"] {
        assert_eq!(mode(&dir.path().join(file)), 0o600, "{file}");
    }
    restored.stop().await;
}
