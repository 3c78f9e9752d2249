//! One page of a run's fan-out, pipelined: the next page is read (audience, then the
//! recipients' entities and preferences) and walked while the previous page's write
//! commits; each page's write stores its recipient runs, messages, waits and the run's
//! audience cursor (+ `completed` on the last page) in ONE transaction, and its messages
//! are published only after that commit.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::Ctx;
use crate::engine::audience::{self, Audience, AudienceCursor, DirectRecipients, RecipientTarget};
use crate::engine::preference_check;
use crate::engine::waits;
use crate::engine::walk::{
    RecipientContext, RecipientPlan, RunContext, StepPosition, walk_isolated,
};
use crate::model::RecipientRef;
use crate::store::StoreError;
use crate::store::ops::PageCursor;

/// A started run between its slices.
pub(super) struct ActiveRun {
    pub(super) run_id: String,
    pub(super) attempt: u32,
    pub(super) run_ctx: Arc<RunContext>,
    pub(super) page: Arc<PageInputs>,
    /// Where the next page starts.
    pub(super) cursor: AudienceCursor,
    /// The stored cursor's text where the next page starts (`None` before the first
    /// page): what the next page's write compares and moves (the page's fencing token).
    pub(super) stored_cursor: Option<String>,
    /// The previous page's write, still committing.
    pub(super) writing: Option<PageWrite>,
}

impl ActiveRun {
    /// One page: the run while pages remain, its last page's write (still committing)
    /// once there are none, or `Stopped` when the runner is stopping (the run then stays
    /// queued at its last committed page).
    ///
    /// Pipelined: a page is read and walked while the previous page's write commits. Its
    /// recipients are excluded from the page being read (they may not be committed yet),
    /// and writes stay in page order, so the stored cursor only moves forward.
    pub(super) async fn next_page(
        mut self: Box<Self>,
        ctx: &Ctx,
        page_size: usize,
    ) -> Result<PageEnd, StoreError> {
        let exclude = self.writing.as_ref().map(|w| w.recipients.clone());
        let loaded = load_page(ctx, &self.page, &self.cursor, exclude, page_size).await;
        let (contexts, next) = match loaded {
            Ok(page) => page,
            Err(e) => return Err(finish_then(self.writing, e).await),
        };
        let walked = self.run_ctx.clone();
        let plans = tokio::task::spawn_blocking(move || {
            contexts
                .iter()
                .map(|r| walk_isolated(&walked, r, &StepPosition::start()))
                .collect::<Vec<RecipientPlan>>()
        })
        .await;
        let plans = match plans {
            Ok(plans) => plans,
            Err(e) => {
                let error = StoreError::Blocking(e.to_string());
                return Err(finish_then(self.writing, error).await);
            }
        };
        if let Some(previous) = self.writing.take()
            && !previous.finish().await?
        {
            // Another runner wrote that page (or the run ended): the run is not ours.
            return Ok(PageEnd::Stopped);
        }
        if ctx.stopping.load(Ordering::SeqCst) {
            // Stays queued at the last committed page; the next start finishes it.
            return Ok(PageEnd::Stopped);
        }
        let done = next.is_done();
        if next.truncated && done {
            tracing::warn!(run = %self.run_id, limit = audience::MAX_AUDIENCE,
                "fan-out stopped at the per-trigger audience limit; the rest were not notified");
        }
        let to = serde_json::to_string(&next)?;
        let from = self.stored_cursor.replace(to.clone());
        let cursor = PageCursor {
            from,
            to,
            last: done,
        };
        let write = PageWrite::start(ctx, &self.run_id, self.run_ctx.started_ms, plans, cursor);
        if done {
            return Ok(PageEnd::Last(write));
        }
        self.writing = Some(write);
        self.cursor = next;
        Ok(PageEnd::More(self))
    }
}

/// Where a run stands after one of its pages.
pub(super) enum PageEnd {
    /// Pages remain.
    More(Box<ActiveRun>),
    /// The run's last page, committing.
    Last(PageWrite),
    /// The runner is stopping (or the run no longer runs).
    Stopped,
}

/// One page's write, committing in the background: recipient runs, messages, waits and
/// the audience cursor (+ `completed` on the last page). Its messages are published as
/// soon as it committed, even while its run waits for its next slice.
pub(super) struct PageWrite {
    /// `Ok(false)`: nothing written, the page was not this runner's any more.
    pub(super) task: tokio::task::JoinHandle<Result<bool, StoreError>>,
    pub(super) recipients: Arc<HashSet<RecipientRef>>,
}

impl PageWrite {
    /// Starts the write of `plans`, moving the run's stored cursor as `cursor` says.
    fn start(
        ctx: &Ctx,
        run_id: &str,
        started_ms: i64,
        plans: Vec<RecipientPlan>,
        cursor: PageCursor,
    ) -> PageWrite {
        // A batch join can open a batch even when the run goes on (`flush_leading`).
        let paused = plans
            .iter()
            .any(|p| p.wait.is_some() || !p.batches.is_empty());
        let recipients = Arc::new(plans.iter().map(|p| p.reference.clone()).collect());
        let run_id = run_id.to_owned();
        let store = ctx.store.clone();
        let bus = ctx.bus.clone();
        let scheduler = ctx.scheduler.clone();
        let now = ctx.clock.now();
        // A page of a few recipients weighs little: it commits in the writer's quick lane.
        let weight = plans.len();
        let task = tokio::spawn(async move {
            // Serialized here, not on the writer thread (see `waits::PreparedPlan`).
            let plans = plans
                .into_iter()
                .map(|plan| waits::prepare(plan, &run_id, started_ms))
                .collect::<Result<Vec<_>, _>>()?;
            let written = store
                .write_run_page(
                    weight,
                    run_id.clone(),
                    plans,
                    cursor,
                    move |checks, run, plan| waits::decide_new(checks, run, plan, &now),
                )
                .await?;
            let Some(inserted) = written else {
                tracing::info!(run = %run_id,
                    "a page was already written by another runner, or the run ended; this runner leaves the run");
                return Ok(false);
            };
            bus.publish(&inserted);
            if paused {
                scheduler.wake();
            }
            Ok(true)
        });
        PageWrite { task, recipients }
    }

    /// Waits for the commit (and the push that follows it): whether the page was this
    /// runner's to write (`false`: another runner had written it, nothing was written).
    pub(super) async fn finish(self) -> Result<bool, StoreError> {
        self.task
            .await
            .map_err(|e| StoreError::Blocking(e.to_string()))?
    }
}

/// Lets a write in progress finish (so nothing runs behind a retry) and returns `error`.
async fn finish_then(writing: Option<PageWrite>, error: StoreError) -> StoreError {
    settle(writing).await;
    error
}

/// Waits for a write in progress, if any (its messages are then published).
pub(super) async fn settle(writing: Option<PageWrite>) {
    if let Some(write) = writing
        && let Err(e) = write.finish().await
    {
        tracing::warn!(error = %e, "a fan-out page write failed");
    }
}

/// What every page of one run needs besides the cursor.
pub(super) struct PageInputs {
    pub(super) run_id: String,
    pub(super) direct: DirectRecipients,
    /// Look direct recipients up too before walking them (the run's audience started over
    /// because its stored cursor was unreadable, so they may have been reached).
    pub(super) look_up_direct: bool,
    pub(super) actor: Option<RecipientRef>,
    pub(super) tenant: Option<String>,
    pub(super) tenant_default: Option<Value>,
}

/// The next page of the audience, minus recipients this run already reached (committed,
/// or in the page being written), loaded (entity + effective preferences) for walking:
/// one read expands the audience, one loads the page's recipients.
async fn load_page(
    ctx: &Ctx,
    inputs: &Arc<PageInputs>,
    cursor: &AudienceCursor,
    writing: Option<Arc<HashSet<RecipientRef>>>,
    page_size: usize,
) -> Result<(Vec<RecipientContext>, AudienceCursor), StoreError> {
    let expanding = inputs.clone();
    let at = cursor.clone();
    let (mut targets, next) = ctx
        .store
        .expand_audience(move |reads| {
            let audience = Audience {
                direct: &expanding.direct,
                actor: expanding.actor.as_ref(),
            };
            audience.next_page(reads, &at, page_size)
        })
        .await?;
    if let Some(writing) = writing {
        targets.retain(|t| !writing.contains(&t.reference));
    }
    let may_repeat: fn(&RecipientTarget) -> bool = if inputs.look_up_direct {
        |_| true
    } else {
        RecipientTarget::may_repeat_an_earlier_page
    };
    let loaded = ctx
        .store
        .load_walk_inputs(
            &inputs.run_id,
            targets,
            target_ref,
            may_repeat,
            inputs.tenant.clone(),
        )
        .await?;
    let contexts = loaded
        .into_iter()
        .map(|l| RecipientContext {
            preferences: preference_check::effective(
                inputs.tenant.as_deref(),
                inputs.tenant_default.as_ref(),
                l.default_set,
                l.tenant_set,
            ),
            entity: l.entity,
            reference: l.item.reference,
            trigger_data: l.item.trigger_data,
            subscription: l.item.subscription,
            batch: None,
        })
        .collect();
    Ok((contexts, next))
}

fn target_ref(target: &RecipientTarget) -> &RecipientRef {
    &target.reference
}
