//! The database's files are private: the database holds the secret API key and the
//! private half of the token signing key, so every file Tidings creates for it — the
//! database, its `-wal` and `-shm`, a backup and the backup's `.partial` — is mode 0600
//! whatever the umask.
//!
//! SQLite creates `-wal`, `-shm` and `-journal` with the permissions of the database file
//! itself (its unix VFS copies them), so creating the main file 0600 before SQLite opens it
//! is enough for all of them.

use std::path::Path;

/// Creates `path` as an empty file readable and writable by its owner only, unless it
/// already exists. Returns whether it was created here. Paths SQLite does not map to a
/// file (`:memory:`, `file:` URIs) are left to SQLite.
pub fn create_private(path: &Path) -> std::io::Result<bool> {
    let text = path.to_string_lossy();
    if text.is_empty() || text == ":memory:" || text.starts_with("file:") {
        return Ok(false);
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            warn_if_shared(path);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// An existing database (created by an older version, or copied in) that other local
/// users can read is left as it is, but said once in the log.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the database (which holds the API keys) is readable by other users; \
                 `chmod 600` it and its -wal/-shm files"
            );
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_file_is_private_and_an_existing_one_is_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("t.db");
        assert!(create_private(&path).expect("create"));
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(&path, b"kept").expect("write");
        assert!(!create_private(&path).expect("exists"));
        assert_eq!(std::fs::read(&path).expect("read"), b"kept");
        assert!(!create_private(Path::new(":memory:")).expect("memory"));
    }
}
