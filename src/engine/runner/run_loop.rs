//! The runner's loop: admits new and rescanned runs into the dispatcher, starts slices
//! while slots are free, and handles each slice's end (next page, done, retry, last page
//! committing) until shutdown, when it lets submitted writes commit and be published.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::dispatch::{Dispatch, Ended, Finishing, SliceEnd, Work};
use super::open::start_run;
use super::page::{PageEnd, PageWrite, settle};
use super::{Ctx, MAX_SLICES_PER_KEY, QUEUE_DEPTH};
use crate::engine::fair::{FairQueue, PageSizer};
use crate::engine::run_failure;

pub(super) async fn run_loop(
    ctx: Arc<Ctx>,
    mut rx: mpsc::Receiver<(String, bool)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut dispatch = Dispatch {
        queue: FairQueue::new(MAX_SLICES_PER_KEY),
        known: HashSet::new(),
        slices: HashMap::new(),
        finishing: HashMap::new(),
        retrying: JoinSet::new(),
        pages: PageSizer::new(ctx.page_size, ctx.solo_page_size),
    };
    let mut tasks: JoinSet<SliceEnd> = JoinSet::new();
    let mut finishing: JoinSet<Option<String>> = JoinSet::new();
    let mut rescan = tokio::time::interval(ctx.rescan_every);
    rescan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Where the rescan goes on (a rowid of the queued index; 0 = from the start).
    let mut rescan_after = 0;
    // Several nodes (PostgreSQL): the leases on held runs are renewed three times per
    // lease, so a live node keeps them with margin; never fires on SQLite.
    let lease_every = ctx.store.node().map_or(Duration::from_secs(3600), |n| {
        (n.lease / 3).max(Duration::from_millis(100))
    });
    let shared = ctx.store.is_shared();
    let mut renew = tokio::time::interval(lease_every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A rescan that stopped at a full page goes on as soon as the dispatcher holds
        // less than half its depth (a backlog resumes at full speed, in bounded steps).
        if rescan_after > 0 && dispatch.known.len() < QUEUE_DEPTH / 2 {
            ctx.rescan.store(true, Ordering::SeqCst);
        }
        if ctx.rescan.swap(false, Ordering::SeqCst) {
            // Runs already sent are admitted first, as just inserted: a rescan taking
            // them would count an attempt (one write each) they have not begun.
            while let Ok(first) = rx.try_recv() {
                admit_new(&ctx, &mut dispatch, &mut rx, first).await;
            }
            rescan_after = rescan_page(&ctx, &mut dispatch, rescan_after).await;
        }
        dispatch.fill(&ctx, &mut tasks);
        tokio::select! {
            _ = stop.changed() => break,
            msg = rx.recv() => match msg {
                Some(first) => admit_new(&ctx, &mut dispatch, &mut rx, first).await,
                None => break,
            },
            Some(ended) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let last = match ended {
                    Ok((id, end)) => dispatch.ended(id, end),
                    Err(e) => {
                        // A panic ends this run's attempt only: it is retried (and given up
                        // once its attempts are used up); every other run goes on.
                        let id = e.id();
                        let end = SliceEnd::Failed { attempt: 0, reason: run_failure::panic_reason(e) };
                        dispatch.ended(id, end)
                    }
                };
                ctx.running.store(dispatch.slices.len(), Ordering::Relaxed);
                match last {
                    Ended::Nothing => {}
                    Ended::Retry(held, reason) => dispatch.retry(&ctx, held, reason),
                    Ended::Finishing(Finishing { key, run_id, attempt, write }) => {
                        let task = finish_run(run_id.clone(), write);
                        let handle = finishing.spawn(task);
                        dispatch.track_finishing(handle.id(), key, run_id, attempt);
                    }
                }
            }
            Some(finished) = finishing.join_next_with_id(), if !finishing.is_empty() => {
                let retry = match finished {
                    Ok((id, failure)) => dispatch.finished(id, failure),
                    Err(e) => {
                        let id = e.id();
                        dispatch.finished(id, Some(run_failure::panic_reason(e)))
                    }
                };
                if let Some((held, reason)) = retry {
                    dispatch.retry(&ctx, held, reason);
                }
            }
            Some(due) = dispatch.retrying.join_next(), if !dispatch.retrying.is_empty() => {
                if let Ok((key, work)) = due {
                    dispatch.queue.push_back(key, work);
                }
            }
            _ = rescan.tick() => ctx.rescan.store(true, Ordering::SeqCst),
            _ = renew.tick(), if shared => renew_leases(&ctx, &dispatch).await,
        }
    }
    // Runs waiting out a backoff stay queued for the next start.
    dispatch.retrying.abort_all();
    // Slices see `stopping` and end after the write in progress; parked runs' submitted
    // writes commit and are published. Their runs stay queued for the next start.
    while let Some(ended) = tasks.join_next_with_id().await {
        match ended {
            Ok((_, SliceEnd::Again(Work::Started(run)))) => settle(run.writing).await,
            Ok((_, SliceEnd::Finishing { write, .. })) => settle(Some(write)).await,
            _ => {}
        }
    }
    while finishing.join_next().await.is_some() {}
    for work in dispatch.queue.drain() {
        if let Work::Started(run) = work {
            settle(run.writing).await;
        }
    }
    // The runs left queued are handed back: another node's next rescan takes them
    // without waiting for this node's leases to lapse.
    if shared && let Err(e) = ctx.store.release_run_leases().await {
        tracing::warn!(error = %e, "could not hand back run leases; they lapse by themselves");
    }
}

/// One bounded pass of the rescan: the next page of queued runs after `after`, those no
/// task holds admitted (their attempt is counted when they start). Returns where the next
/// pass starts: after this page when it was full, else from the start again (0).
async fn rescan_page(ctx: &Ctx, dispatch: &mut Dispatch, after: i64) -> i64 {
    // On a shared database the page is claimed (leased to this node) in the same write,
    // so a run is taken by one node only; on SQLite it is read.
    match ctx
        .store
        .claim_queued_runs(after, run_failure::RESCAN_PAGE)
        .await
    {
        Ok((page, next)) => {
            let before = dispatch.known.len();
            for (_, run) in page {
                dispatch.admit(run, false);
            }
            let admitted = dispatch.known.len() - before;
            if admitted > 0 {
                tracing::info!(
                    count = admitted,
                    "picked up queued workflow runs no task held"
                );
            }
            next
        }
        Err(e) => {
            // From the start at the next tick (not at once: a failing read must not spin).
            tracing::error!(error = %e, "could not scan queued runs");
            0
        }
    }
}

/// Renews this node's leases on every run it holds (a shared database only). A run
/// another node holds a live lease on is one this node was too slow to renew (stalled
/// past its lease): both may now work on it, and the unique keys on recipient runs and
/// messages keep its items exactly once; said in the log.
async fn renew_leases(ctx: &Ctx, dispatch: &Dispatch) {
    let held: Vec<String> = dispatch.known.iter().cloned().collect();
    match ctx.store.renew_run_leases(held).await {
        Ok(lost) if !lost.is_empty() => tracing::warn!(
            count = lost.len(),
            "another node took over runs this node held (its lease lapsed)"
        ),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "could not renew run leases"),
    }
}

/// Keys `id` and every other id already waiting by their run rows (one read), and queues
/// those still `queued`.
async fn admit_new(
    ctx: &Ctx,
    dispatch: &mut Dispatch,
    rx: &mut mpsc::Receiver<(String, bool)>,
    first: (String, bool),
) {
    let mut sent = vec![first];
    while sent.len() < 512 {
        match rx.try_recv() {
            Ok(next) => sent.push(next),
            Err(_) => break,
        }
    }
    sent.retain(|(id, _)| !dispatch.known.contains(id));
    if sent.is_empty() {
        return;
    }
    let counted: HashMap<String, bool> = sent.iter().cloned().collect();
    // Runs this node just inserted are leased to it with their insert: a read finds
    // them. Others (a replayed request's run) are claimed first on a shared database.
    let (fresh, other): (Vec<_>, Vec<_>) = sent.into_iter().partition(|(_, counted)| *counted);
    let fresh: Vec<String> = fresh.into_iter().map(|(id, _)| id).collect();
    let other: Vec<String> = other.into_iter().map(|(id, _)| id).collect();
    let found = async {
        let mut queued = if fresh.is_empty() {
            Vec::new()
        } else {
            ctx.store.queued_runs_among(fresh).await?
        };
        if !other.is_empty() {
            queued.extend(ctx.store.claim_queued_among(other).await?);
        }
        Ok::<_, crate::store::StoreError>(queued)
    };
    match found.await {
        Ok(queued) => queued.into_iter().for_each(|run| {
            let counted = counted.get(&run.id).copied().unwrap_or(false);
            dispatch.admit(run, counted);
        }),
        Err(e) => {
            tracing::error!(error = %e, "could not read new runs; rescanning");
            ctx.rescan.store(true, Ordering::SeqCst);
        }
    }
}

/// One slice: opens the run if it is fresh, then one page of at most `page_size`
/// recipients.
pub(super) async fn slice(ctx: Arc<Ctx>, work: Work, page_size: usize) -> SliceEnd {
    if ctx.stopping.load(Ordering::SeqCst) {
        return SliceEnd::Again(work);
    }
    let (outcome, attempt) = match work {
        Work::Fresh { run_id, counted } => match start_run(&ctx, &run_id, counted).await {
            Ok(Some(run)) => {
                let attempt = run.attempt;
                (run.next_page(&ctx, page_size).await, attempt)
            }
            Ok(None) => (Ok(PageEnd::Stopped), 0),
            Err(e) => (Err(e), 0),
        },
        Work::Started(run) => {
            let attempt = run.attempt;
            (run.next_page(&ctx, page_size).await, attempt)
        }
    };
    match outcome {
        Ok(PageEnd::More(run)) => SliceEnd::Again(Work::Started(run)),
        Ok(PageEnd::Stopped) => SliceEnd::Done,
        Ok(PageEnd::Last(write)) => SliceEnd::Finishing { write, attempt },
        Err(e) if ctx.stopping.load(Ordering::SeqCst) => {
            tracing::warn!(error = %e, "a workflow run attempt ended while stopping; it stays queued");
            SliceEnd::Done
        }
        Err(e) => SliceEnd::Failed {
            attempt,
            reason: e.to_string(),
        },
    }
}

/// Waits for a run's last page to commit; on failure, why (the run is then retried).
async fn finish_run(run_id: String, write: PageWrite) -> Option<String> {
    match write.finish().await {
        // Not written (`false`): the run was finished by another runner.
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(run = %run_id, error = %e, "a run's last page did not commit");
            Some(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::finish_run;
    use crate::engine::runner::page::PageWrite;
    use crate::store::StoreError;

    fn last_page(outcome: Result<bool, StoreError>) -> PageWrite {
        PageWrite {
            task: tokio::spawn(async move { outcome }),
            recipients: Arc::default(),
        }
    }

    /// A run's last page refused because another runner had written it is not a failed
    /// attempt (the run is done, elsewhere); a page that did not commit is, with its why.
    #[tokio::test]
    async fn a_last_page_written_elsewhere_ends_the_run_without_a_failure() {
        assert_eq!(finish_run("r".into(), last_page(Ok(true))).await, None);
        assert_eq!(finish_run("r".into(), last_page(Ok(false))).await, None);
        let failed = finish_run("r".into(), last_page(Err(StoreError::WriterGone))).await;
        assert_eq!(failed.as_deref(), Some("the writer thread has stopped"));
    }
}
