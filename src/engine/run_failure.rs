//! What the runner does when an attempt at a run fails, and how it is told about runs
//! it would otherwise never see (issue 17, items 1 and 2).
//!
//! - Every attempt is counted on the run row before it starts (the accepting transaction
//!   counts the first, `runs::begin_attempt` the others), so an attempt that crashes the
//!   process still counts, and a run is attempted at most [`RunnerOptions::max_attempts`]
//!   times since it last committed a page.
//! - A failed attempt (a store error, a panic) is retried after a backoff that grows
//!   fourfold per attempt from [`RunnerOptions::retry_base`] up to [`MAX_BACKOFF`]; its
//!   error is stored first, so the reason survives a restart.
//! - Once the attempts are used up the run ends `failed` with the reason, and each direct
//!   recipient not reached yet gets a `failed` recipient run with a `run_failed` event, so
//!   run records show it (`status=failed`, `has_errors=true`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::model::RecipientRef;
use crate::store::{Store, StoreError};

/// The longest pause between two attempts at a run.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Queued runs one rescan reads at most (one bounded read through the queued index).
pub const RESCAN_PAGE: usize = 1000;

/// How the runner rescans, retries and pages, from `Settings`.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Recipients per page while other tenants have work (`--fanout-page-size`).
    pub page_size: usize,
    /// Recipients per page while one tenant has the runner alone.
    pub solo_page_size: usize,
    /// How often committed `queued` runs no runner task holds are looked for
    /// (`--run-rescan-ms`).
    pub rescan_every: Duration,
    /// Attempts at a run before it is marked `failed` (`--run-attempts`).
    pub max_attempts: u32,
    /// The pause after a run's first failed attempt (`--run-retry-base-ms`).
    pub retry_base: Duration,
    /// Fault injection for tests.
    pub hooks: RunHooks,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            page_size: super::audience::PAGE_SIZE,
            solo_page_size: super::audience::SOLO_PAGE_SIZE,
            rescan_every: Duration::from_secs(5),
            max_attempts: 5,
            retry_base: Duration::from_secs(1),
            hooks: RunHooks::default(),
        }
    }
}

/// Test hooks (never set by the CLI): each makes one failure the runner must survive
/// happen on demand.
#[derive(Debug, Clone, Default)]
pub struct RunHooks {
    /// Commit accepted triggers without handing them to the runner, as when the request
    /// handler is dropped right after the commit (a client reset, the shutdown timeout).
    pub skip_enqueue: bool,
    /// Every attempt at a run of this workflow panics in its slice.
    pub panic_workflow: Option<String>,
    /// Walking the recipient with this id panics (inside a page's walks).
    pub panic_recipient: Option<String>,
}

/// The environment variable that makes a debug build abort the process when it starts
/// an attempt at a run of the named workflow (the crash-loop test). Ignored by release
/// builds.
pub const ABORT_WORKFLOW_ENV: &str = "TIDINGS_TEST_ABORT_WORKFLOW";

/// The workflow whose runs abort the process, in a debug build with
/// [`ABORT_WORKFLOW_ENV`] set.
pub fn abort_workflow() -> Option<String> {
    if cfg!(debug_assertions) {
        std::env::var(ABORT_WORKFLOW_ENV)
            .ok()
            .filter(|w| !w.is_empty())
    } else {
        None
    }
}

/// The pause after failed attempt number `attempt` (1 for the first).
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 4u32.saturating_pow(attempt.saturating_sub(1));
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

/// Why a run whose attempts are used up failed.
pub fn exhausted_reason(max_attempts: u32, last: Option<&str>) -> String {
    match last {
        Some(last) => format!("gave up after {max_attempts} attempts; the last failed: {last}"),
        None => format!(
            "gave up after {max_attempts} attempts; none finished (the server stopped or \
             crashed during each)"
        ),
    }
}

/// A panic's message, for the failure reason.
pub fn panic_reason(e: tokio::task::JoinError) -> String {
    if !e.is_panic() {
        return format!("the run's task ended: {e}");
    }
    let message = match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_owned()),
        Err(_) => "no message".to_owned(),
    };
    format!("the run panicked: {message}")
}

/// Stores why an attempt failed (best effort: when the store itself fails, the next
/// attempt fails the same way and says so).
pub async fn note_failure(store: &Store, run_id: &str, reason: &str) {
    if let Err(e) = store.note_run_failure(run_id, reason).await {
        tracing::warn!(run = %run_id, error = %e, "could not store why a run attempt failed");
    }
}

/// Runs the runner gave up on since start (`/metrics`).
#[derive(Debug, Default)]
pub struct FailedRuns(AtomicU64);

impl FailedRuns {
    pub fn total(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Ends a still-queued run `failed` with `reason`, with a `failed` recipient run for each
/// of `recipients` the run has not reached yet (one write).
pub async fn give_up(
    store: &Store,
    failed: &Arc<FailedRuns>,
    run_id: &str,
    reason: &str,
    recipients: Vec<RecipientRef>,
) -> Result<(), StoreError> {
    tracing::error!(run = %run_id, reason, "workflow run failed");
    let events = json!([{"event": "run_failed", "status": "error",
                         "data": {"reason": reason}}]);
    let ended = store
        .give_up_run(run_id, reason, recipients, events)
        .await?;
    if ended {
        failed.0.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_fourfold_up_to_the_cap() {
        let base = Duration::from_secs(1);
        let waits: Vec<u64> = (1..=6).map(|a| backoff(base, a).as_secs()).collect();
        assert_eq!(waits, [1, 4, 16, 64, 256, 300]);
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
