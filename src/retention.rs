//! Retention: a background task that deletes what the operator chose not to keep — feed
//! items older than N days, archived items archived more than M days ago (per channel or
//! for all), and finished workflow runs older than R days (off unless configured) — and
//! the server's own housekeeping (always on, see [`housekeeping`]) — and, on a timer of
//! its own, the fold of the feeds' badge counters ([`fold`]) and, on PostgreSQL, the
//! refresh of the hot tables' planner statistics ([`statistics`]).
//!
//! Invariants:
//! - Deletes run in batches of at most [`BATCH`] rows, each its own writer command in the
//!   writer's bulk lane (weighing [`BATCH`] items), so a backlog of millions never holds
//!   the writer for more than one batch, nor a trigger's acknowledgement behind it.
//! - A row goes only when its timestamp is strictly older than `now - days`: never an
//!   item newer than the limit. `now` is a parameter of [`run_pass`], so tests move time
//!   instead of sleeping.
//! - Counters stay exact: every message delete goes through `store::retention`, which
//!   takes the item's contribution out of `feed_counters` in the same transaction.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::Settings;
use crate::model::channel::Channel;
use crate::model::retention::RetentionRule;
use crate::store::retention::{Age, Channels};
use crate::store::{Expiry, Store, StoreResult};

pub mod fold;
pub mod housekeeping;
pub mod statistics;

/// Most rows one writer command deletes.
pub const BATCH: usize = 500;

/// What to delete, from the settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetentionPolicy {
    /// Feed items, by creation time.
    pub items: Option<RetentionRule>,
    /// Archived feed items, by archive time.
    pub archived: Option<RetentionRule>,
    /// Finished workflow runs (and their recipient runs), by last update.
    pub runs_days: Option<u32>,
}

impl RetentionPolicy {
    pub fn from_settings(settings: &Settings) -> Self {
        RetentionPolicy {
            items: settings.retain_items_days.clone(),
            archived: settings.retain_archived_days.clone(),
            runs_days: settings.retain_runs_days,
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.items.is_some() || self.archived.is_some() || self.runs_days.is_some()
    }
}

/// What one pass deleted, and how long its slowest batch held the writer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PassReport {
    pub items: usize,
    pub archived: usize,
    pub runs: usize,
    /// Housekeeping: idempotency keys past the replay window.
    pub idempotency_keys: usize,
    /// Housekeeping: throttle windows that closed.
    pub gates: usize,
    /// Housekeeping: bulk operations past their days.
    pub bulk_operations: usize,
    /// Housekeeping: cancellations no queued run needs.
    pub cancellations: usize,
    pub batches: usize,
    pub slowest_batch: Duration,
}

/// One pass as of `now`: deletes every expired row the policy names, then the
/// housekeeping rows, batch by batch. `stop` (when given) is checked between batches.
pub async fn run_pass(
    store: &Store,
    policy: &RetentionPolicy,
    now: DateTime<Utc>,
    stop: Option<&watch::Receiver<bool>>,
) -> StoreResult<PassReport> {
    let mut report = PassReport::default();
    let stopped = || stop.is_some_and(|s| *s.borrow());
    let rules = [
        (Age::Inserted, &policy.items),
        (Age::Archived, &policy.archived),
    ];
    if rules.iter().any(|(_, rule)| rule.is_some()) {
        let known = store.channels().await?;
        for (age, rule) in rules {
            let Some(rule) = rule else { continue };
            for (channels, days) in scopes(rule, &known) {
                let cutoff = cutoff(now, days);
                let expiry = Expiry::Messages {
                    age,
                    channels,
                    cutoff,
                };
                let n = housekeeping::drain(store, &stopped, &mut report, expiry).await?;
                match age {
                    Age::Inserted => report.items += n,
                    Age::Archived => report.archived += n,
                }
                if stopped() {
                    return Ok(report);
                }
            }
        }
    }
    if let Some(days) = policy.runs_days {
        let cutoff = cutoff(now, days);
        let expiry = Expiry::Runs { cutoff };
        report.runs += housekeeping::drain(store, &stopped, &mut report, expiry).await?;
    }
    housekeeping::run(store, now, &stopped, &mut report).await?;
    Ok(report)
}

impl PassReport {
    fn record_batch(&mut self, took: Duration) {
        self.batches += 1;
        self.slowest_batch = self.slowest_batch.max(took);
    }
}

async fn timed<T>(f: impl Future<Output = StoreResult<T>>) -> StoreResult<(T, Duration)> {
    let started = Instant::now();
    let value = f.await?;
    Ok((value, started.elapsed()))
}

/// The channel scopes of a rule: each listed channel on its own, then every other channel
/// under the default. A listed key no channel has yet is skipped (it may appear later).
fn scopes(rule: &RetentionRule, known: &[Channel]) -> Vec<(Channels, u32)> {
    let mut listed = Vec::new();
    let mut out = Vec::new();
    for (key, days) in &rule.channels {
        if let Some(channel) = known.iter().find(|c| &c.key == key) {
            listed.push(channel.id.clone());
            out.push((Channels::Only(channel.id.clone()), *days));
        } else {
            tracing::debug!(channel = %key, "retention: no such channel yet");
        }
    }
    if let Some(days) = rule.default {
        out.push((Channels::AllExcept(listed), days));
    }
    out
}

/// `now - days`, in the stored timestamp form (so string order is time order).
pub fn cutoff(now: DateTime<Utc>, days: u32) -> String {
    crate::clock::format(now - chrono::Duration::days(i64::from(days)))
}

/// The running task; dropped or shut down with the server.
pub struct Retention {
    stop: watch::Sender<bool>,
    /// The passes, the fold and the statistics refresh; taken (and awaited) at shutdown.
    tasks: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Retention {
    /// Starts the task: a pass at start, then one every `every`. Always on, for the
    /// housekeeping; the policy adds what the operator chose not to keep. The fold runs
    /// beside it, every `fold_every` (`--fold-interval-ms`).
    pub fn spawn(
        store: Store,
        policy: RetentionPolicy,
        every: Duration,
        fold_every: Duration,
        clock: crate::clock::Clock,
    ) -> Retention {
        let (stop, stop_rx) = watch::channel(false);
        let fold = tokio::spawn(fold::run(store.clone(), fold_every, stop_rx.clone()));
        let statistics = tokio::spawn(statistics::run(store.clone(), stop_rx.clone()));
        let task = tokio::spawn(run(
            store,
            policy,
            every.max(Duration::from_secs(1)),
            clock,
            stop_rx,
        ));
        Retention {
            stop,
            tasks: tokio::sync::Mutex::new(vec![task, fold, statistics]),
        }
    }

    /// Stops between batches and waits for the task, so nothing writes after the store
    /// shuts down.
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// A ticker for a housekeeping task: a pass that runs long delays the next tick rather
/// than bunching the missed ones.
pub(crate) fn duty_ticker(every: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Waits for the next tick at which this node holds the cluster duties (always, on
/// SQLite): with several nodes, one node (the duties node) keeps house for all. `false`
/// once the task is told to stop.
pub(crate) async fn next_duty_tick(
    store: &Store,
    ticker: &mut tokio::time::Interval,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => return false,
        }
        if store.holds_duties() {
            return true;
        }
    }
}

async fn run(
    store: Store,
    policy: RetentionPolicy,
    every: Duration,
    clock: crate::clock::Clock,
    mut stop: watch::Receiver<bool>,
) {
    if policy.is_enabled() {
        tracing::info!(?policy, every_secs = every.as_secs(), "retention enabled");
    }
    let mut ticker = duty_ticker(every);
    while next_duty_tick(&store, &mut ticker, &mut stop).await {
        let started = Instant::now();
        match run_pass(&store, &policy, clock.now_utc(), Some(&stop)).await {
            Ok(r) => tracing::info!(
                items = r.items,
                archived = r.archived,
                runs = r.runs,
                idempotency_keys = r.idempotency_keys,
                gates = r.gates,
                bulk_operations = r.bulk_operations,
                cancellations = r.cancellations,
                batches = r.batches,
                slowest_batch_ms = r.slowest_batch.as_secs_f64() * 1000.0,
                took_ms = started.elapsed().as_secs_f64() * 1000.0,
                "retention pass done"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "retention pass failed; retrying at the next interval")
            }
        }
        if *stop.borrow() {
            return;
        }
    }
}
