//! Tidings' side of a round: the real server in-process on a fresh database, driven over
//! loopback HTTP like a client would. Measures feed items committed per second from the
//! first trigger sent until the last item is readable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::{Application, Settings};

use crate::support::{Api, SECRET, postgres_cpu_seconds};

/// Recipients per trigger (the figure) and per `bulk/identify` call.
pub const RECIPIENTS: usize = 1000;
/// Distinct users at most; bigger runs give each user several items.
pub const USER_POOL: usize = 100_000;

/// `--ids scattered`: recipient ids in no key order (see [`recipient`]).
static SCATTERED_IDS: AtomicBool = AtomicBool::new(false);

/// Names recipients in no key order from now on (`--ids scattered`).
pub fn scatter_ids() {
    SCATTERED_IDS.store(true, Ordering::Relaxed);
}

/// Whether [`scatter_ids`] was called (for the report).
pub fn ids_scattered() -> bool {
    SCATTERED_IDS.load(Ordering::Relaxed)
}

/// The name of recipient `i` of trigger `t` (shared with the raw baseline's rows).
///
/// By default a trigger's 1,000 recipients are `u{block}-{i}`: neighbours in every index
/// keyed by recipient, so a page's inserts land on a few adjacent b-tree pages. With
/// `--ids scattered` each id starts with a hash of (block, i) instead, as random user ids
/// would: each insert into a recipient-keyed index lands on its own page.
pub fn recipient(trigger: usize, i: usize) -> String {
    let block = trigger % (USER_POOL / RECIPIENTS);
    if ids_scattered() {
        format!(
            "{:016x}-u{block}-{i}",
            splitmix64((block * RECIPIENTS + i) as u64)
        )
    } else {
        format!("u{block}-{i}")
    }
}

/// A fixed bijective mix of 64 bits (SplitMix64's finalizer), for scattered ids.
fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Trigger data of ~300 B, stored once per run.
pub fn trigger_body(trigger: usize) -> Value {
    let recipients: Vec<String> = (0..RECIPIENTS).map(|i| recipient(trigger, i)).collect();
    json!({"recipients": recipients, "actor": {"id": "bench-actor", "name": "Ada"},
           "data": {"page": "Quarterly report", "url": "https://example.com/docs/q3",
                    "comment": "x".repeat(220)}})
}

/// The body of the workflow's one in-app step: by default it greets the recipient by
/// name, so it is rendered per recipient; `--template shared` drops the greeting, so the
/// whole step reads only `actor` and `data` and is rendered once per run (most
/// notification templates read no recipient field).
pub fn markdown_body(shared: bool) -> &'static str {
    match shared {
        false => "Hi {{ recipient.name }}: **{{ actor.name }}** commented on {{ data.page }}",
        true => "**{{ actor.name }}** commented on {{ data.page }}",
    }
}

/// The workflow: one in-app feed step whose rendered blocks are ~200 B.
pub fn workflow(shared: bool) -> Value {
    json!({"workflow": {"name": "Throughput", "steps": [{
        "ref": "in_app_feed_1", "type": "channel", "channel_key": "in-app-feed", "channel_type": "in_app_feed",
        "template": {"markdown_body": markdown_body(shared),
                     "action_url": "{{ data.url }}"}}]}})
}

/// CPU seconds this process has used so far (user + system, all threads), from
/// `/proc/self/stat` (clock ticks of 10 ms); `None` where that file does not exist.
/// Unlike a sum over `/proc/self/task/*`, it keeps the time of threads that have exited
/// (a store shut down between two readings).
pub fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesized command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// What one Tidings round measured.
pub struct Measured {
    /// Items committed per second.
    pub rate: f64,
    /// CPU of the whole process (every thread: server and this driver's HTTP client)
    /// per item, in µs, from the first trigger until the last item was read back.
    pub cpu_us_per_item: Option<f64>,
    /// On PostgreSQL: the CPU of every `postgres` process per item, in µs, over the same
    /// interval (the server's share, which `cpu_us_per_item` does not see).
    pub pg_cpu_us_per_item: Option<f64>,
}

/// Starts a server on a fresh database in `dir`, identifies the users, sends `triggers`
/// triggers of [`RECIPIENTS`] concurrently and returns items committed per second.
/// `page_size` fixes the server's fan-out pages at that size (both `fanout_page_size` and
/// `fanout_solo_page_size`: no adaptation). `database_url`: PostgreSQL (an empty
/// database) instead of a SQLite file in `dir`.
pub async fn items_per_sec(
    dir: &Path,
    database_url: Option<&str>,
    triggers: usize,
    page_size: Option<usize>,
    shared_template: bool,
) -> Result<Measured, String> {
    let mut settings = Settings::for_database(dir.join("tidings.db"));
    settings.database_url = database_url.map(str::to_owned);
    settings.workflows = dir.join("no-workflows");
    settings.secret_key = Some(SECRET.into());
    settings.log_filter = Some("warn".into());
    // The whole load is sent at once, and at `--triggers 1000` its million items are
    // exactly the default `--max-queued-items`: the backlog gate's estimate (which may run
    // a few triggers ahead) could refuse the last trigger. This measures throughput, not
    // backpressure (tests/api/backpressure.rs does).
    settings.max_queued_items = std::num::NonZeroU32::MAX;
    if let Some(size) = page_size {
        settings.fanout_page_size = size;
        settings.fanout_solo_page_size = size;
    }
    let app = Application::build(settings)
        .await
        .map_err(|e| format!("server start: {e}"))?;
    let api = Api::new(app.port());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    api.try_call(
        reqwest::Method::PUT,
        "/v1/workflows/bench",
        &workflow(shared_template),
    )
    .await?;
    let blocks = triggers.min(USER_POOL / RECIPIENTS);
    for t in 0..blocks {
        let users: Vec<Value> = (0..RECIPIENTS)
            .map(|i| json!({"id": recipient(t, i), "name": format!("User {i}")}))
            .collect();
        api.try_call(
            reqwest::Method::POST,
            "/v1/users/bulk/identify",
            &json!({"users": users}),
        )
        .await?;
    }
    let bodies: Vec<Value> = (0..triggers).map(trigger_body).collect();
    let cpu_before = process_cpu_seconds();
    let pg_before = database_url.and_then(|_| postgres_cpu_seconds());
    let started = Instant::now();
    let sent = bodies
        .iter()
        .map(|body| api.try_call(reqwest::Method::POST, "/v1/workflows/bench/trigger", body));
    for result in futures_util::future::join_all(sent).await {
        result?;
    }
    // Each run writes its recipients in order, so a block's last user holds one item per
    // trigger sent to that block exactly when all those runs have committed.
    let deadline = started + Duration::from_secs(3600);
    for t in 0..blocks {
        let expected = (t..triggers).step_by(blocks).count() as u64;
        let last = recipient(t, RECIPIENTS - 1);
        while api.try_feed_total(&last).await? < expected {
            if Instant::now() > deadline {
                return Err(format!("{last} never got its {expected} items"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let items = (triggers * RECIPIENTS) as f64;
    let rate = items / started.elapsed().as_secs_f64();
    let cpu_us_per_item = match (cpu_before, process_cpu_seconds()) {
        (Some(before), Some(after)) => Some((after - before) * 1e6 / items),
        _ => None,
    };
    let pg_cpu_us_per_item = pg_before
        .zip(postgres_cpu_seconds())
        .map(|(before, after)| (after - before) * 1e6 / items);
    handle.stop(true).await;
    let _ = server.await;
    Ok(Measured {
        rate,
        cpu_us_per_item,
        pg_cpu_us_per_item,
    })
}
