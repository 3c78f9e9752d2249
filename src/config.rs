//! `Settings`: everything the server can be told, from flags or `TIDINGS_*` env vars
//! (clap reads both; nothing else in the crate reads the environment).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

use clap::Args;

use crate::model::retention::RetentionRule;

/// Largest request body accepted anywhere (Knock's trigger `data` limit is 10 MB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// A non-zero constant (every limit is on; a zero limit would refuse everything).
const fn rate(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// Default of `--trigger-rate-per-key`.
pub const DEFAULT_TRIGGER_RATE_PER_KEY: NonZeroU32 = rate(5_000);
/// Default of `--item-rate-per-key`.
pub const DEFAULT_ITEM_RATE_PER_KEY: NonZeroU32 = rate(5_000_000);
/// Default of `--trigger-rate-per-tenant` (Knock's tier 5: 1,000 requests/s).
pub const DEFAULT_TRIGGER_RATE_PER_TENANT: NonZeroU32 = rate(1_000);
/// Default of `--item-rate-per-tenant` (tier 5 × 1,000 recipients per trigger).
pub const DEFAULT_ITEM_RATE_PER_TENANT: NonZeroU32 = rate(1_000_000);
/// Default of `--max-queued-runs` (as many as the runner's in-memory queue holds).
pub const DEFAULT_MAX_QUEUED_RUNS: NonZeroU32 = rate(10_000);
/// Default of `--max-queued-items`: about a minute of the writer's committed items at the
/// reference machine's rate, and what 1,000 full 1,000-recipient triggers hold.
pub const DEFAULT_MAX_QUEUED_ITEMS: NonZeroU32 = rate(1_000_000);
/// The shortest a PostgreSQL session may sit idle in a transaction before the server ends
/// it ([`Settings::idle_in_transaction_limit`]).
pub const MIN_IDLE_IN_TRANSACTION: std::time::Duration = std::time::Duration::from_secs(10);

/// Server settings. `Application::build` takes this, so tests build it directly.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on. Port 0 picks a free port.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    pub addr: SocketAddr,

    /// SQLite database file (created if missing).
    #[arg(global = true, long, env = "TIDINGS_DB", default_value = "tidings.db")]
    pub db: PathBuf,

    /// PostgreSQL instead of the SQLite file: `postgres://user:password@host:5432/database`
    /// (libpq's URL form; PostgreSQL 15 or newer). Unset: the SQLite file `--db`.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_DATABASE_URL",
        hide_env_values = true,
        value_parser = parse_database_url
    )]
    pub database_url: Option<String>,

    /// PostgreSQL connections for reads (each node; the writer holds one more). A burst of
    /// reads beyond it waits for a free connection.
    #[arg(global = true, long, env = "TIDINGS_DATABASE_POOL_SIZE", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub database_pool_size: u16,

    /// CA certificates (PEM) to trust, beside the system's, for a TLS connection to
    /// PostgreSQL (`sslmode=require` or `verify-full` in `--database-url`; the server's
    /// certificate and host name are always verified).
    #[arg(global = true, long, env = "TIDINGS_DATABASE_CA_FILE")]
    pub database_ca_file: Option<PathBuf>,

    /// Directory of workflow definitions in knock-cli's layout (`<key>/workflow.json`).
    /// A missing directory is fine: workflows can be upserted over HTTP.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_WORKFLOWS",
        default_value = "workflows"
    )]
    pub workflows: PathBuf,

    /// Secret API key (`sk_…`). Generated and stored on first start when unset.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_SECRET_KEY",
        hide_env_values = true
    )]
    pub secret_key: Option<String>,

    /// Public API key (`pk_…`). Generated and stored on first start when unset.
    #[arg(global = true, long, env = "TIDINGS_PUBLIC_KEY")]
    pub public_key: Option<String>,

    /// RSA public key (PEM, or base64 of the PEM) that verifies user tokens. When unset, a
    /// key pair is generated once and stored, and `tidings token` signs with it.
    #[arg(global = true, long, env = "TIDINGS_SIGNING_PUBLIC_KEY")]
    pub signing_public_key: Option<String>,

    /// Require a signed user token on every public-key request (Knock's enhanced security).
    #[arg(global = true, long, env = "TIDINGS_ENHANCED_SECURITY", default_value_t = true, action = clap::ArgAction::Set)]
    pub enhanced_security: bool,

    /// Largest accepted request body, in bytes.
    #[arg(global = true, long, env = "TIDINGS_MAX_BODY_BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// `full` makes every acknowledged write survive power loss; `normal` survives a process
    /// crash only, and is faster.
    #[arg(global = true, long, env = "TIDINGS_SYNCHRONOUS", default_value = "full", value_parser = ["full", "normal"])]
    pub synchronous: String,

    /// Largest the database file may grow, in bytes (unset: as large as the disk allows).
    /// Past it, writes answer 503 with `Retry-After`, as on a full disk.
    #[arg(global = true, long, env = "TIDINGS_MAX_DB_BYTES")]
    pub max_db_bytes: Option<u64>,

    /// HTTP worker threads (default: one per core).
    #[arg(global = true, long, env = "TIDINGS_WORKERS")]
    pub workers: Option<usize>,

    /// Seconds without any frame after which a WebSocket is closed.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_WS_IDLE_TIMEOUT_SECS",
        default_value_t = 60
    )]
    pub ws_idle_timeout_secs: u64,

    /// Topics one WebSocket may join at once.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_WS_MAX_TOPICS",
        default_value_t = 100
    )]
    pub ws_max_topics: usize,

    /// WebSockets one user (a user token's `sub`) may hold open at once.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_WS_MAX_PER_USER",
        default_value_t = 16
    )]
    pub ws_max_per_user: usize,

    /// WebSockets one source IP address may hold open at once.
    #[arg(
        global = true,
        long,
        env = "TIDINGS_WS_MAX_PER_ADDRESS",
        default_value_t = 256
    )]
    pub ws_max_per_address: usize,

    /// Pushes queued per WebSocket before a slow client is evicted.
    #[arg(global = true, long, env = "TIDINGS_WS_QUEUE", default_value_t = 256)]
    pub ws_queue: usize,

    /// Triggers per second the secret key may send (Tidings serves one environment with one
    /// secret key, so this is the environment-wide limit, as Knock scopes its limits). Past
    /// it a trigger answers 429 `rate_limited` with `Retry-After`. A client may send two
    /// seconds' worth at once. The default sits above what one node acknowledges (~3k/s on
    /// the reference machine), so it stops a runaway client, not normal traffic.
    #[arg(global = true, long, env = "TIDINGS_TRIGGER_RATE_PER_KEY", default_value_t = DEFAULT_TRIGGER_RATE_PER_KEY)]
    pub trigger_rate_per_key: NonZeroU32,

    /// Items (recipients listed in triggers, counted at accept) per second the secret key
    /// may send; same burst and answer as `--trigger-rate-per-key`.
    #[arg(global = true, long, env = "TIDINGS_ITEM_RATE_PER_KEY", default_value_t = DEFAULT_ITEM_RATE_PER_KEY)]
    pub item_rate_per_key: NonZeroU32,

    /// Triggers per second one tenant (the trigger's `tenant`) may receive; triggers without
    /// a tenant count only against the key. Default: Knock's tier-5 rate for triggers.
    #[arg(global = true, long, env = "TIDINGS_TRIGGER_RATE_PER_TENANT", default_value_t = DEFAULT_TRIGGER_RATE_PER_TENANT)]
    pub trigger_rate_per_tenant: NonZeroU32,

    /// Items per second one tenant may receive. Default: the tier-5 rate times Knock's
    /// 1,000-recipient trigger limit.
    #[arg(global = true, long, env = "TIDINGS_ITEM_RATE_PER_TENANT", default_value_t = DEFAULT_ITEM_RATE_PER_TENANT)]
    pub item_rate_per_tenant: NonZeroU32,

    /// Queued workflow runs (accepted, not yet fully run; durable in SQLite) past which new
    /// triggers answer 429 `rate_limited` with `Retry-After` until the runner catches up.
    /// Scheduled runs and resumed delays are never refused: they were acknowledged earlier.
    /// Fair between tenants: at the limit a tenant holding under a tenth of it is still
    /// admitted, up to twice the limit (`backpressure::backlog`).
    #[arg(global = true, long, env = "TIDINGS_MAX_QUEUED_RUNS", default_value_t = DEFAULT_MAX_QUEUED_RUNS)]
    pub max_queued_runs: NonZeroU32,

    /// Recipients of queued workflow runs (each run counts the recipients its trigger
    /// listed; an object counts once, its subscribers are not known at accept) past which
    /// new triggers answer 429 like `--max-queued-runs`: runs alone would let 10,000
    /// 1,000-recipient triggers queue ten million items.
    #[arg(global = true, long, env = "TIDINGS_MAX_QUEUED_ITEMS", default_value_t = DEFAULT_MAX_QUEUED_ITEMS)]
    pub max_queued_items: NonZeroU32,

    /// Serve `GET /metrics` (Prometheus text, no credentials) on the API port. Turn off
    /// where the port is public and no proxy hides the path.
    #[arg(global = true, long, env = "TIDINGS_METRICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub metrics: bool,

    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers name the client:
    /// comma-separated CIDR networks or addresses (`10.0.0.0/8,::1`). From such a peer the
    /// client is the right-most hop that is not a trusted proxy; from any other peer the
    /// headers are ignored. The client address is what the per-address socket cap counts
    /// and what the access log shows. Empty (default): no proxy is trusted.
    #[arg(global = true, long, env = "TIDINGS_TRUSTED_PROXIES", default_value = "",
          value_parser = crate::proxies::TrustedProxies::parse)]
    pub trusted_proxies: crate::proxies::TrustedProxies,

    /// Allowed CORS origins, comma-separated; `*` allows any origin.
    #[arg(global = true, long, env = "TIDINGS_CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,

    /// Log format on stderr: `text` for people, `json` (one object per line) for machines.
    #[arg(global = true, long, env = "TIDINGS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Which log events to keep (`tracing` filter syntax, e.g. `info` or `tidings=debug`).
    /// Default: `info` for `serve`, `warn` for the other commands (so `tidings token`
    /// prints the token, not the migrations it applied).
    #[arg(global = true, long = "log", env = "TIDINGS_LOG")]
    pub log_filter: Option<String>,

    /// Delete feed items older than this many days: `DAYS` for every channel and/or
    /// `CHANNEL_KEY=DAYS` per channel, comma-separated (`365,alerts=30`). Off when unset.
    #[arg(global = true, long, env = "TIDINGS_RETAIN_ITEMS_DAYS")]
    pub retain_items_days: Option<RetentionRule>,

    /// Delete archived feed items this many days after they were archived; same syntax as
    /// `--retain-items-days`. Off when unset.
    #[arg(global = true, long, env = "TIDINGS_RETAIN_ARCHIVED_DAYS")]
    pub retain_archived_days: Option<RetentionRule>,

    /// Delete finished workflow runs (and their per-recipient records) this many days after
    /// they finished. Feed items are not affected. Off when unset.
    #[arg(global = true, long, env = "TIDINGS_RETAIN_RUNS_DAYS", value_parser = crate::model::retention::parse_days)]
    pub retain_runs_days: Option<u32>,

    /// Recipients per fan-out page while other tenants have work: one write, and one turn
    /// of the runner's fair scheduling between tenants. Smaller pages let other tenants
    /// in sooner but cost more commits per item.
    #[arg(global = true, long, env = "TIDINGS_FANOUT_PAGE_SIZE", default_value_t = crate::engine::audience::PAGE_SIZE,
          value_parser = parse_page_size)]
    pub fanout_page_size: usize,

    /// Recipients per fan-out page once one tenant (or workflow without a tenant) has had
    /// the runner to itself for a second: fewer commits per item. Raised to
    /// `fanout_page_size` when smaller; equal to it turns the adaptation off.
    #[arg(global = true, long, env = "TIDINGS_FANOUT_SOLO_PAGE_SIZE", default_value_t = crate::engine::audience::SOLO_PAGE_SIZE,
          value_parser = parse_page_size)]
    pub fanout_solo_page_size: usize,

    /// Seconds between retention passes (the first runs at start).
    #[arg(
        global = true,
        long,
        env = "TIDINGS_RETENTION_INTERVAL_SECS",
        default_value_t = 3600
    )]
    pub retention_interval_secs: u64,

    /// The locale translations fall back to last (Knock's account default locale), and
    /// the one a recipient without `locale` reads.
    #[arg(long, env = "TIDINGS_DEFAULT_LOCALE", default_value = crate::engine::translations::DEFAULT_LOCALE,
          value_parser = parse_default_locale)]
    pub default_locale: String,

    /// Milliseconds between the runner's rescans for committed `queued` runs no runner task
    /// holds (a trigger whose request handler was dropped after the commit, a run whose
    /// retry is due). Each rescan reads at most 1,000 queued runs.
    #[arg(long, env = "TIDINGS_RUN_RESCAN_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub run_rescan_ms: u64,

    /// Milliseconds between folds of the badge counters (`store::fold`): how long a feed's
    /// newest items are counted live before the fold brings its counters up to date.
    /// Badges are exact either way; a longer interval only makes badge reads of busy feeds
    /// count a longer tail.
    #[arg(long, env = "TIDINGS_FOLD_INTERVAL_MS",
          default_value_t = crate::retention::fold::DEFAULT_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(10..=3_600_000))]
    pub fold_interval_ms: u64,

    /// Attempts at a workflow run (a failed write, a panic, a crash of the process) before
    /// it is marked `failed` with the reason; a committed page starts the count over.
    #[arg(long, env = "TIDINGS_RUN_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub run_attempts: u32,

    /// Milliseconds before a run's second attempt; each further one waits four times
    /// longer, at most 5 minutes.
    #[arg(long, env = "TIDINGS_RUN_RETRY_BASE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub run_retry_base_ms: u64,

    /// This node's name in logs, `/metrics` (`tidings_node_info`) and, with several nodes,
    /// as the owner of what it claims: 1–64 characters of `A-Z a-z 0-9 . _ -`. Default:
    /// `<hostname>-<pid>`, unique per process on one host.
    #[arg(global = true, long, env = "TIDINGS_NODE_ID", default_value_t = default_node_id(),
          value_parser = parse_node_id)]
    pub node_id: String,

    /// Several nodes on one PostgreSQL: how long (seconds) a node's claim on work (a run
    /// it completes, the cluster duties: timers, batches, schedules, fold, retention)
    /// lasts without renewal. A node renews three times per lease; a dead node's work
    /// resumes on another within about this long. Also how long (at least 10 s) a session
    /// of the node may sit idle inside a transaction before PostgreSQL ends it, so a
    /// frozen node's locks are freed as its leases lapse. Ignored on SQLite.
    #[arg(global = true, long, env = "TIDINGS_LEASE_SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_secs: u64,

    /// NATS server(s) that carry pushes between nodes: `nats://host:4222` (comma-separated
    /// for a NATS cluster). Unset: pushes reach only this node's own sockets.
    #[arg(global = true, long, env = "TIDINGS_NATS_URL", hide_env_values = true, value_parser = parse_nats_url)]
    pub nats_url: Option<String>,

    /// First token(s) of the NATS subjects this deployment uses, so several deployments
    /// (or tests) can share one NATS server without hearing each other.
    #[arg(global = true, long, env = "TIDINGS_NATS_SUBJECT_PREFIX", default_value = "tidings",
          value_parser = parse_subject_prefix)]
    pub nats_subject_prefix: String,

    /// Fault injection for tests (never set from the command line).
    #[arg(skip)]
    pub run_hooks: crate::engine::run_failure::RunHooks,

    /// Demo mode (`tidings serve --demo`): seeds demo data and serves `/demo/v1/*`, which
    /// mint tokens for demo identities. Set by the `serve` subcommand, not a global flag.
    #[arg(skip)]
    pub demo: bool,

    /// The engine's time source (delays, batch windows, schedules): the system clock,
    /// or a manual clock that tests advance.
    #[arg(skip)]
    pub clock: crate::clock::Clock,
}

/// A fan-out page size: 1 to 5,000 recipients.
fn parse_default_locale(s: &str) -> Result<String, String> {
    crate::model::translations::parse_locale(s).map_err(|e| format!("`{s}` {}", e.message))
}

/// A PostgreSQL URL, checked for its scheme here so a typo fails at start, not at connect.
fn parse_database_url(s: &str) -> Result<String, String> {
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        Ok(s.to_owned())
    } else {
        Err(
            "a PostgreSQL URL starts with `postgres://` (the SQLite file is set with `--db`)"
                .into(),
        )
    }
}

/// Longest node id: it is a log field and a metric label.
pub const MAX_NODE_ID: usize = 64;

/// `<hostname>-<pid>`, with characters a node id may not hold made `-` and the host
/// shortened so the whole fits [`MAX_NODE_ID`].
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "tidings".into());
    let pid = std::process::id().to_string();
    let host: String = host
        .chars()
        .map(|c| if node_id_char(c) { c } else { '-' })
        .take(MAX_NODE_ID - pid.len() - 1)
        .collect();
    format!("{host}-{pid}")
}

fn node_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')
}

/// A node id: 1–[`MAX_NODE_ID`] characters of `A-Z a-z 0-9 . _ -` (safe in a log line,
/// a Prometheus label and a NATS header).
pub fn parse_node_id(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > MAX_NODE_ID || !s.chars().all(node_id_char) {
        return Err(format!(
            "a node id is 1 to {MAX_NODE_ID} characters of A-Z, a-z, 0-9, `.`, `_` and `-`"
        ));
    }
    Ok(s.to_owned())
}

/// NATS server URLs, comma-separated, each `nats://…`; checked here so a typo fails at
/// start, not at the first reconnect.
fn parse_nats_url(s: &str) -> Result<String, String> {
    let ok = !s.trim().is_empty()
        && s.split(',').all(|u| {
            let u = u.trim();
            u.strip_prefix("nats://")
                .is_some_and(|rest| !rest.is_empty())
        });
    if ok {
        Ok(s.to_owned())
    } else {
        Err(
            "a NATS URL starts with `nats://` (e.g. `nats://127.0.0.1:4222`; several are \
             comma-separated)"
                .into(),
        )
    }
}

/// A NATS subject prefix: dot-separated tokens of `A-Z a-z 0-9 _ -` (no wildcards, no
/// empty token), at most 64 characters.
fn parse_subject_prefix(s: &str) -> Result<String, String> {
    let token_ok = |t: &str| {
        !t.is_empty()
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    };
    if s.len() <= 64 && s.split('.').all(token_ok) {
        Ok(s.to_owned())
    } else {
        Err("a NATS subject prefix is dot-separated tokens of A-Z, a-z, 0-9, `_` and `-`".into())
    }
}

fn parse_page_size(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=5000).contains(&n) => Ok(n),
        _ => Err(format!("`{s}` is not a page size from 1 to 5000")),
    }
}

/// How log lines are written (see `crate::logging`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Settings {
    /// Defaults for a server on a random loopback port using `db`; what tests start from.
    pub fn for_database(db: PathBuf) -> Self {
        Settings {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            db,
            database_url: None,
            database_pool_size: 16,
            database_ca_file: None,
            workflows: PathBuf::from("workflows"),
            secret_key: None,
            public_key: None,
            signing_public_key: None,
            enhanced_security: true,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            synchronous: "full".into(),
            max_db_bytes: None,
            workers: None,
            ws_idle_timeout_secs: 60,
            ws_max_topics: 100,
            ws_max_per_user: 16,
            ws_max_per_address: 256,
            ws_queue: 256,
            trigger_rate_per_key: DEFAULT_TRIGGER_RATE_PER_KEY,
            item_rate_per_key: DEFAULT_ITEM_RATE_PER_KEY,
            trigger_rate_per_tenant: DEFAULT_TRIGGER_RATE_PER_TENANT,
            item_rate_per_tenant: DEFAULT_ITEM_RATE_PER_TENANT,
            max_queued_runs: DEFAULT_MAX_QUEUED_RUNS,
            max_queued_items: DEFAULT_MAX_QUEUED_ITEMS,
            metrics: true,
            trusted_proxies: crate::proxies::TrustedProxies::default(),
            cors_origins: "*".into(),
            log_format: LogFormat::Text,
            log_filter: None,
            retain_items_days: None,
            retain_archived_days: None,
            retain_runs_days: None,
            retention_interval_secs: 3600,
            default_locale: crate::engine::translations::DEFAULT_LOCALE.into(),
            run_rescan_ms: 5000,
            fold_interval_ms: crate::retention::fold::DEFAULT_INTERVAL_MS,
            run_attempts: 5,
            run_retry_base_ms: 1000,
            run_hooks: crate::engine::run_failure::RunHooks::default(),
            fanout_page_size: crate::engine::audience::PAGE_SIZE,
            fanout_solo_page_size: crate::engine::audience::SOLO_PAGE_SIZE,
            node_id: default_node_id(),
            lease_secs: 15,
            nats_url: None,
            nats_subject_prefix: "tidings".into(),
            demo: false,
            clock: crate::clock::Clock::system(),
        }
    }

    /// What the runner takes from these settings.
    pub fn runner_options(&self) -> crate::engine::run_failure::RunnerOptions {
        crate::engine::run_failure::RunnerOptions {
            page_size: self.fanout_page_size,
            solo_page_size: self.fanout_solo_page_size,
            rescan_every: std::time::Duration::from_millis(self.run_rescan_ms),
            max_attempts: self.run_attempts,
            retry_base: std::time::Duration::from_millis(self.run_retry_base_ms),
            hooks: self.run_hooks.clone(),
        }
    }

    pub fn synchronous_full(&self) -> bool {
        self.synchronous != "normal"
    }

    /// How long this node's PostgreSQL sessions may sit idle inside a transaction before
    /// the server ends them: the lease (a frozen node's row locks are freed about when
    /// its leases lapse and another node takes its work), but never under
    /// [`MIN_IDLE_IN_TRANSACTION`], so a short test lease cannot end a busy writer's
    /// transaction between two statements.
    pub fn idle_in_transaction_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.lease_secs).max(MIN_IDLE_IN_TRANSACTION)
    }

    /// Opens the configured store: PostgreSQL when `--database-url` is set, else the
    /// SQLite file. Blocking (it connects and migrates): call it before serving.
    pub fn open_store(&self) -> crate::store::StoreResult<crate::store::Store> {
        match &self.database_url {
            Some(url) => {
                if self.max_db_bytes.is_some() {
                    return Err(crate::store::StoreError::Invalid {
                        field: "max_db_bytes".into(),
                        message: "caps the SQLite file only; on PostgreSQL, size the database \
                                  (or its tablespace) there"
                            .into(),
                    });
                }
                crate::store::Store::open_postgres(
                    &crate::store::sql::PgConfig {
                        url: url.clone(),
                        pool_size: usize::from(self.database_pool_size),
                        synchronous_commit: self.synchronous_full(),
                        ca_file: self.database_ca_file.clone(),
                        idle_in_transaction: Some(self.idle_in_transaction_limit()),
                    },
                    self.clock.clone(),
                )
                .map(|store| {
                    store.with_node(
                        self.node_id.clone(),
                        std::time::Duration::from_secs(self.lease_secs),
                    )
                })
            }
            None => crate::store::Store::open_limited(
                &self.db,
                self.synchronous_full(),
                self.max_db_bytes,
                self.clock.clone(),
            ),
        }
    }

    /// [`Settings::open_store`] on the blocking pool: connecting to PostgreSQL blocks, and
    /// its client must not run inside the async runtime's threads.
    pub async fn open_store_blocking(&self) -> crate::store::StoreResult<crate::store::Store> {
        let settings = self.clone();
        tokio::task::spawn_blocking(move || settings.open_store())
            .await
            .map_err(|e| crate::store::StoreError::Blocking(e.to_string()))?
    }

    /// Where the data lives, for the start banner and errors: the SQLite path, or the
    /// PostgreSQL URL without its password.
    pub fn database_label(&self) -> String {
        match &self.database_url {
            Some(url) => redact_password(url),
            None => self.db.display().to_string(),
        }
    }
}

/// `postgres://user:secret@host/db` as `postgres://user:***@host/db`: URLs reach logs.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "(an unparsable PostgreSQL URL)".into(),
    }
}

#[cfg(test)]
mod database_url_tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_accepted() {
        assert!(parse_database_url("postgres://u@h/d").is_ok());
        assert!(parse_database_url("postgresql://u@h/d").is_ok());
        assert!(parse_database_url("mysql://u@h/d").is_err());
        assert!(parse_database_url("tidings.db").is_err());
    }

    #[test]
    fn node_ids_are_short_and_plain_and_the_default_is_one() {
        assert!(parse_node_id("web-1.eu_west").is_ok());
        assert!(parse_node_id("").is_err());
        assert!(parse_node_id(&"a".repeat(MAX_NODE_ID)).is_ok());
        assert!(parse_node_id(&"a".repeat(MAX_NODE_ID + 1)).is_err());
        assert!(parse_node_id("web 1").is_err());
        assert!(parse_node_id("web\n1").is_err());
        assert!(parse_node_id("nöde").is_err());
        let default = default_node_id();
        assert_eq!(parse_node_id(&default), Ok(default.clone()));
        assert!(
            default.ends_with(&format!("-{}", std::process::id())),
            "{default}"
        );
    }

    #[test]
    fn only_nats_urls_and_plain_subject_prefixes_are_accepted() {
        assert!(parse_nats_url("nats://127.0.0.1:4222").is_ok());
        assert!(parse_nats_url("nats://a:4222,nats://b:4222").is_ok());
        assert!(parse_nats_url("127.0.0.1:4222").is_err());
        assert!(parse_nats_url("nats://a:4222,b:4222").is_err());
        assert!(parse_nats_url("nats://").is_err());
        assert!(parse_nats_url("").is_err());
        assert!(parse_subject_prefix("tidings").is_ok());
        assert!(parse_subject_prefix("acme.prod-1").is_ok());
        assert!(parse_subject_prefix("a.*").is_err());
        assert!(parse_subject_prefix("a..b").is_err());
        assert!(parse_subject_prefix("").is_err());
        assert!(parse_subject_prefix("a b").is_err());
    }

    #[test]
    fn a_password_never_reaches_the_label() {
        let label = redact_password("postgres://app:hunter2@db.internal:5432/tidings");
        assert!(!label.contains("hunter2"), "{label}");
        assert!(label.contains("db.internal:5432/tidings"), "{label}");
    }
}
