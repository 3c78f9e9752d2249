//! The real `tidings` binary launched like an operator would: chosen arguments (settings
//! before or after the subcommand), environment, umask, and every line it writes to stdout
//! and stderr kept for the test to read. For the process-level checks of issue 17 (logs,
//! printed keys, file modes, RSS).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

use crate::crash::free_port;
use crate::helpers::{PUBLIC_KEY, SECRET_KEY, fixture};

/// Lines a stream wrote, shared with the task that reads them.
pub type Lines = Arc<Mutex<Vec<String>>>;

/// How to launch the binary.
pub struct Launch {
    args: Vec<String>,
    env: Vec<(String, String)>,
    test_keys: bool,
    umask: Option<&'static str>,
    dir: PathBuf,
}

impl Launch {
    /// `tidings ARGS` in `dir` (the working directory), with no `TIDINGS_*` variable set
    /// but `TIDINGS_WORKFLOWS` (the repo's workflows).
    pub fn new(dir: &Path, args: &[&str]) -> Launch {
        Launch {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env: vec![(
                "TIDINGS_WORKFLOWS".into(),
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("workflows")
                    .display()
                    .to_string(),
            )],
            test_keys: false,
            umask: None,
            dir: dir.to_path_buf(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Configures the test suite's fixed keys (as production would from a vault).
    pub fn test_keys(mut self) -> Launch {
        self.test_keys = true;
        self
    }

    /// Runs the binary under this umask (through `sh`, as a service manager would).
    pub fn umask(mut self, umask: &'static str) -> Launch {
        self.umask = Some(umask);
        self
    }

    fn command(&self) -> tokio::process::Command {
        let bin = env!("CARGO_BIN_EXE_tidings");
        let mut command = match self.umask {
            Some(mask) => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-c")
                    .arg(format!("umask {mask} && exec \"$0\" \"$@\""))
                    .arg(bin);
                c
            }
            None => tokio::process::Command::new(bin),
        };
        command.args(&self.args).current_dir(&self.dir);
        for (key, _) in std::env::vars() {
            if key.starts_with("TIDINGS_") {
                command.env_remove(key);
            }
        }
        if self.test_keys {
            command
                .env("TIDINGS_SECRET_KEY", SECRET_KEY)
                .env("TIDINGS_PUBLIC_KEY", PUBLIC_KEY)
                .env(
                    "TIDINGS_SIGNING_PUBLIC_KEY",
                    std::fs::read_to_string(fixture("signing_key.pub.pem")).expect("key"),
                );
        }
        if crate::engine::is_postgres() {
            // The run's PostgreSQL stands in for the SQLite file in `dir` (the same
            // schema on every launch in `dir`, so restarts find their data).
            command.env("TIDINGS_DATABASE_URL", crate::engine::url_for(&self.dir));
            command.env("TIDINGS_DATABASE_POOL_SIZE", "3");
            // Short leases, and one node name per database, so a restart takes its
            // runs back at once and a takeover test waits seconds, not the default.
            command.env("TIDINGS_LEASE_SECS", "2");
            command.env("TIDINGS_NODE_ID", crate::engine::schema_for(&self.dir));
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command
    }

    /// Runs a command to its end; (exit success, stdout, stderr).
    pub async fn output(self) -> (bool, String, String) {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command().output())
            .await
            .expect("the command ends")
            .expect("the binary runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Starts a server on a free port (passed as `TIDINGS_ADDR` unless the arguments name
    /// one) and waits until `/health` answers.
    pub async fn serve(self) -> Proc {
        let port = free_port();
        self.serve_on(port).await
    }

    /// As [`Self::serve`], on `port` (which the arguments may also name).
    pub async fn serve_on(self, port: u16) -> Proc {
        let proc = self.spawn(port);
        proc.wait_healthy().await;
        proc
    }

    /// Starts the process without waiting for anything.
    pub fn spawn(self, port: u16) -> Proc {
        let mut command = self.command();
        if !self.args.iter().any(|a| a == "--addr") {
            command.env("TIDINGS_ADDR", format!("127.0.0.1:{port}"));
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the tidings binary");
        let stdout = Lines::default();
        let stderr = Lines::default();
        let readers = vec![
            collect(child.stdout.take().expect("stdout"), stdout.clone()),
            collect(child.stderr.take().expect("stderr"), stderr.clone()),
        ];
        Proc {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            stdout,
            stderr,
            readers,
        }
    }
}

fn collect(
    stream: impl AsyncRead + Unpin + Send + 'static,
    sink: Lines,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().expect("lines").push(line);
        }
    })
}

/// A running binary; killed when dropped.
pub struct Proc {
    child: tokio::process::Child,
    pub port: u16,
    pub base: String,
    pub stdout: Lines,
    pub stderr: Lines,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Proc {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = client.get(self.url("/health")).send().await
                && res.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the binary did not become healthy; stderr: {:#?}",
                self.stderr.lock().expect("lines")
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the process to exit by itself; its success and everything it wrote.
    pub async fn exit(mut self) -> (bool, String, String) {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the process exits")
            .expect("wait");
        self.drain(status.success()).await
    }

    /// SIGTERM, then waits for the graceful exit; its success and everything it wrote.
    pub async fn stop(mut self) -> (bool, String, String) {
        let pid = self.pid().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the server stops on SIGTERM")
            .expect("wait");
        self.drain(status.success()).await
    }

    async fn drain(mut self, success: bool) -> (bool, String, String) {
        for reader in self.readers.drain(..) {
            let _ = reader.await;
        }
        let join = |l: &Lines| l.lock().expect("lines").join("\n");
        (success, join(&self.stdout), join(&self.stderr))
    }

    /// Resident memory now, in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}
