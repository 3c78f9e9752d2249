//! The dispatcher's bookkeeping: which runs it holds (queued per fair key, in a slice,
//! committing their last page, or waiting out a retry's backoff), so a run enqueued twice
//! is taken once, and what happens when a slice ends. No I/O: the run loop
//! (`run_loop`) drives it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::task::JoinSet;

use super::page::{ActiveRun, PageWrite};
use super::run_loop::slice;
use super::{Ctx, MAX_FINISHING, MAX_SLICES};
use crate::engine::fair::{FairKey, FairQueue, PageSizer};
use crate::engine::run_failure;
use crate::store::runs::QueuedRun;

/// A run between slices.
pub(super) enum Work {
    /// Not started yet (or restarting from its row after a failed attempt); `counted`
    /// when the row already counts this attempt (a run just inserted).
    Fresh { run_id: String, counted: bool },
    /// Started: its context, where its audience stands, and the page still committing.
    Started(Box<ActiveRun>),
}

impl Work {
    pub(super) fn run_id(&self) -> &str {
        match self {
            Work::Fresh { run_id, .. } => run_id,
            Work::Started(run) => &run.run_id,
        }
    }
}

/// What the dispatcher knows: queued work per key, and every run it holds (queued or in a
/// slice), so a run enqueued twice (a rescan racing a trigger) is taken once.
pub(super) struct Dispatch {
    pub(super) queue: FairQueue<Work>,
    pub(super) known: HashSet<String>,
    pub(super) slices: HashMap<tokio::task::Id, Held>,
    /// Last-page writes committing after their slice ended, by task.
    pub(super) finishing: HashMap<tokio::task::Id, Held>,
    /// Runs waiting out their backoff before their next attempt (still known).
    pub(super) retrying: JoinSet<(FairKey, Work)>,
    pub(super) pages: PageSizer,
}

/// A run a task holds: its key, id and the attempt it is in (0 while not yet counted).
pub(super) struct Held {
    pub(super) key: FairKey,
    pub(super) run_id: String,
    pub(super) attempt: u32,
}

impl Dispatch {
    /// Queues `run` unless it is already held; `counted` when its row already counts the
    /// attempt about to start.
    pub(super) fn admit(&mut self, run: QueuedRun, counted: bool) {
        if self.known.insert(run.id.clone()) {
            let key = FairKey::of(&run.workflow_key, run.tenant.as_deref());
            self.queue.push_back(
                key,
                Work::Fresh {
                    run_id: run.id,
                    counted,
                },
            );
        }
    }

    /// A failed attempt: its reason is stored, and the run is queued again after its
    /// backoff (still known meanwhile, so no rescan takes it twice). Nothing when the
    /// runner is stopping: the run stays queued for the next start.
    pub(super) fn retry(&mut self, ctx: &Arc<Ctx>, held: Held, reason: String) {
        tracing::error!(run = %held.run_id, attempt = held.attempt, error = %reason, "workflow run attempt failed");
        if ctx.stopping.load(Ordering::SeqCst) {
            self.known.remove(&held.run_id);
            return;
        }
        let ctx = ctx.clone();
        let wait = run_failure::backoff(ctx.retry_base, held.attempt.max(1));
        self.retrying.spawn(async move {
            run_failure::note_failure(&ctx.store, &held.run_id, &reason).await;
            tokio::time::sleep(wait).await;
            let work = Work::Fresh {
                run_id: held.run_id,
                counted: false,
            };
            (held.key, work)
        });
    }

    /// Starts slices while slots are free.
    pub(super) fn fill(&mut self, ctx: &Arc<Ctx>, tasks: &mut JoinSet<SliceEnd>) {
        while tasks.len() < MAX_SLICES && self.finishing.len() < MAX_FINISHING {
            let Some((key, work)) = self.queue.pop() else {
                return;
            };
            let run_id = work.run_id().to_owned();
            let attempt = match &work {
                Work::Fresh { counted, .. } => u32::from(*counted),
                Work::Started(run) => run.attempt,
            };
            let others = self.queue.others_than(&key);
            let page_size = self.pages.next(others, std::time::Instant::now());
            let handle = tasks.spawn(slice(ctx.clone(), work, page_size));
            self.slices.insert(
                handle.id(),
                Held {
                    key,
                    run_id,
                    attempt,
                },
            );
            ctx.running.store(self.slices.len(), Ordering::Relaxed);
        }
    }

    /// A slice ended: its run goes back to the front of its key's queue, is done, is
    /// retried after a failed attempt, or waits for its last page to commit (returned, for
    /// the caller to wait on and [`Dispatch::track_finishing`]; the slice's slot is free
    /// meanwhile).
    pub(super) fn ended(&mut self, id: tokio::task::Id, end: SliceEnd) -> Ended {
        let Some(mut held) = self.slices.remove(&id) else {
            return Ended::Nothing;
        };
        let key = held.key.clone();
        let last = match end {
            SliceEnd::Again(work) => {
                self.queue.push_front(key.clone(), work);
                Ended::Nothing
            }
            SliceEnd::Done => {
                self.known.remove(&held.run_id);
                Ended::Nothing
            }
            SliceEnd::Failed { attempt, reason } => {
                held.attempt = attempt.max(held.attempt);
                Ended::Retry(held, reason)
            }
            SliceEnd::Finishing { write, attempt } => Ended::Finishing(Finishing {
                key: key.clone(),
                run_id: held.run_id,
                attempt,
                write,
            }),
        };
        self.queue.done(&key);
        last
    }

    /// Notes the task waiting for a run's last page (the run stays known until then).
    pub(super) fn track_finishing(
        &mut self,
        id: tokio::task::Id,
        key: FairKey,
        run_id: String,
        attempt: u32,
    ) {
        self.finishing.insert(
            id,
            Held {
                key,
                run_id,
                attempt,
            },
        );
    }

    /// A last page's write ended: the run is done, or (its write failed, with `failure`)
    /// returned for [`Dispatch::retry`].
    pub(super) fn finished(
        &mut self,
        id: tokio::task::Id,
        failure: Option<String>,
    ) -> Option<(Held, String)> {
        let held = self.finishing.remove(&id)?;
        match failure {
            Some(reason) => Some((held, reason)),
            None => {
                self.known.remove(&held.run_id);
                None
            }
        }
    }
}

/// What the run loop does after a slice ended.
pub(super) enum Ended {
    Nothing,
    /// The attempt failed: retry it (see [`Dispatch::retry`]).
    Retry(Held, String),
    /// The run's last page is committing.
    Finishing(Finishing),
}

/// A run whose last page is committing, out of its slice.
pub(super) struct Finishing {
    pub(super) key: FairKey,
    pub(super) run_id: String,
    pub(super) attempt: u32,
    pub(super) write: PageWrite,
}

/// How a slice ended, for the dispatcher.
pub(super) enum SliceEnd {
    /// The run has more to do (or is to be retried): back to the front of its key's queue.
    Again(Work),
    /// The run completed, cannot run, was given up, or the runner is stopping.
    Done,
    /// The attempt failed (its number, 0 if not known): retried after a backoff.
    Failed { attempt: u32, reason: String },
    /// The run's last page is committing: the slice's slot is free, and the run is done
    /// (still known, so a rescan does not take it twice) once that commit is.
    Finishing { write: PageWrite, attempt: u32 },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::runner::MAX_SLICES_PER_KEY;

    fn dispatch() -> Dispatch {
        Dispatch {
            queue: FairQueue::new(MAX_SLICES_PER_KEY),
            known: HashSet::new(),
            slices: HashMap::new(),
            finishing: HashMap::new(),
            retrying: JoinSet::new(),
            pages: PageSizer::new(100, 500),
        }
    }

    fn queued(id: &str) -> QueuedRun {
        QueuedRun {
            id: id.into(),
            workflow_key: "w".into(),
            tenant: None,
        }
    }

    /// Takes the next queued run into a (pretend) slice, as `fill` does; returns its id.
    fn start_slice(d: &mut Dispatch, ids: &mut JoinSet<()>) -> (tokio::task::Id, Work) {
        let (key, work) = d.queue.pop().expect("a queued run");
        let id = ids.spawn(async {}).id();
        let held = Held {
            key,
            run_id: work.run_id().to_owned(),
            attempt: 1,
        };
        d.slices.insert(id, held);
        (id, work)
    }

    /// Queues `run`, takes it into a slice and ends the slice on its last page's write, as
    /// the run loop does; returns the id of the task waiting for that write.
    fn last_page_committing(d: &mut Dispatch, ids: &mut JoinSet<()>, run: &str) -> tokio::task::Id {
        d.admit(queued(run), true);
        let (slice, _) = start_slice(d, ids);
        let write = PageWrite {
            task: tokio::spawn(async { Ok(true) }),
            recipients: Arc::default(),
        };
        let end = SliceEnd::Finishing { write, attempt: 1 };
        let Ended::Finishing(last) = d.ended(slice, end) else {
            panic!("the last page is committing");
        };
        assert_eq!(last.run_id, run);
        let waiting = ids.spawn(async {}).id();
        d.track_finishing(waiting, last.key, last.run_id, 1);
        waiting
    }

    #[tokio::test]
    async fn a_run_whose_last_page_is_committing_is_not_taken_again_until_it_committed() {
        let mut d = dispatch();
        let mut ids = JoinSet::new();
        let waiting = last_page_committing(&mut d, &mut ids, "r1");

        // The row still says `queued` until the commit: a rescan lists it, and must not
        // queue it a second time (its page would be walked and written twice).
        d.admit(queued("r1"), false);
        assert!(
            d.queue.is_empty(),
            "taken twice while its last page commits"
        );
        // Its slot is free meanwhile: another run of the same key starts.
        d.admit(queued("r2"), false);
        assert_eq!(start_slice(&mut d, &mut ids).1.run_id(), "r2");

        assert!(d.finished(waiting, None).is_none());
        assert!(!d.known.contains("r1"), "forgotten once committed");
    }

    #[tokio::test]
    async fn a_run_whose_last_commit_failed_is_retried_and_stays_held_meanwhile() {
        let mut d = dispatch();
        let mut ids = JoinSet::new();
        let waiting = last_page_committing(&mut d, &mut ids, "r1");

        let (held, reason) = d
            .finished(waiting, Some("commit failed: disk full".into()))
            .expect("retried");
        assert_eq!((held.run_id.as_str(), held.attempt), ("r1", 1));
        assert_eq!(reason, "commit failed: disk full");
        assert!(
            d.known.contains("r1"),
            "a rescan must not take it meanwhile"
        );
        d.admit(queued("r1"), false);
        assert!(d.queue.is_empty());
    }

    #[tokio::test]
    async fn a_failed_slice_frees_its_slot_and_keeps_its_run_held_for_the_retry() {
        let mut d = dispatch();
        let mut ids = JoinSet::new();
        d.admit(queued("r1"), true);
        let (slice, _) = start_slice(&mut d, &mut ids);
        let end = SliceEnd::Failed {
            attempt: 3,
            reason: "the run panicked: boom".into(),
        };
        let Ended::Retry(held, reason) = d.ended(slice, end) else {
            panic!("a failed attempt is retried");
        };
        assert_eq!((held.run_id.as_str(), held.attempt), ("r1", 3));
        assert_eq!(reason, "the run panicked: boom");
        assert!(d.slices.is_empty());
        assert!(d.known.contains("r1"));
    }
}
