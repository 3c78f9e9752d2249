//! The real `tidings` binary as a child process, for tests that measure what only a
//! separate process shows (its RSS) or that restart it on the same database.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::crash::free_port;
use crate::helpers::{PUBLIC_KEY, SECRET_KEY, fixture};

/// A running binary; killed when dropped.
pub struct Binary {
    child: Child,
    pub port: u16,
    pub base: String,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    /// Starts the binary on `db` with the test keys plus `env`, and waits until healthy.
    pub async fn start(db: &Path, env: &[(&str, &str)]) -> Binary {
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tidings"));
        command
            .env("TIDINGS_ADDR", format!("127.0.0.1:{port}"))
            .envs(crate::engine::database_env(db))
            .env(
                "TIDINGS_WORKFLOWS",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("workflows"),
            )
            .env("TIDINGS_SECRET_KEY", SECRET_KEY)
            .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
            .env(
                "TIDINGS_SIGNING_PUBLIC_KEY",
                std::fs::read_to_string(fixture("signing_key.pub.pem")).expect("key"),
            )
            .env("TIDINGS_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            command.env(k, v);
        }
        let binary = Binary {
            child: command.spawn().expect("start the tidings binary"),
            port,
            base: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(res) = client.get(format!("{}/health", binary.base)).send().await
                && res.status() == 200
            {
                return binary;
            }
            assert!(
                Instant::now() < deadline,
                "the binary did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// Peak resident memory so far, in KiB (`VmHWM`).
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("/proc status of the binary");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("status field")
    }

    /// Stops the binary (SIGKILL) and waits for it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
