//! Opening a run for its first slice (or its next attempt): count the attempt, read the
//! run with its stored trigger and the entities its walks read, and give it up when it
//! cannot run (corrupt request, workflow gone, attempts used up).

use std::sync::Arc;

use super::Ctx;
use super::page::{ActiveRun, PageInputs};
use crate::engine::audience::{AudienceCursor, DirectRecipients};
use crate::engine::run_failure;
use crate::engine::walk::RunContext;
use crate::model::RecipientRef;
use crate::store::StoreError;

/// Opens a run from its row: `None` when it is no longer `queued` or cannot run at all
/// (then it is marked failed, as it is once its attempts are used up). An attempt the
/// row does not count yet (`counted` false) is counted first, in its own write.
pub(super) async fn start_run(
    ctx: &Ctx,
    run_id: &str,
    counted: bool,
) -> Result<Option<Box<ActiveRun>>, StoreError> {
    let (attempt, last_failure) = if counted {
        (1, None)
    } else {
        match ctx.store.begin_run_attempt(run_id).await? {
            Some(begun) => begun,
            None => return Ok(None),
        }
    };
    // One read: the run's row and, for a run that can run, the entities every walk of it
    // reads (for a one-recipient run, reads are a good part of its cost).
    let Some(run) = ctx.store.open_run(run_id).await? else {
        return Ok(None);
    };
    let workflow = ctx.registry.get_fresh(&run.workflow_key).await;
    let ((request, entities), workflow) = match (run.request, workflow) {
        (Ok(opened), Some(w)) => (opened, w),
        (Err(e), _) => {
            let why = format!("its stored request is corrupt: {e}");
            fail_run(ctx, run_id, &why, Vec::new()).await?;
            return Ok(None);
        }
        (Ok((r, _)), None) => {
            let direct = r.references().cloned().collect();
            fail_run(ctx, run_id, "its workflow no longer exists", direct).await?;
            return Ok(None);
        }
    };
    if attempt > ctx.max_attempts {
        let why = run_failure::exhausted_reason(ctx.max_attempts, last_failure.as_deref());
        let direct = request.references().cloned().collect();
        fail_run(ctx, run_id, &why, direct).await?;
        return Ok(None);
    }
    if ctx.hooks.panic_workflow.as_deref() == Some(run.workflow_key.as_str()) {
        panic!("test hook: runs of `{}` panic", run.workflow_key);
    }
    if ctx.abort_workflow.as_deref() == Some(run.workflow_key.as_str()) {
        tracing::error!(run = %run_id, attempt, "test hook: aborting the process");
        std::process::abort();
    }
    let mut run_ctx = RunContext::new(
        run_id.to_owned(),
        workflow,
        request.tenant.clone(),
        request.actor.clone(),
        request.data,
        entities.actor,
        entities.tenant,
    );
    run_ctx.clock = ctx.clock.clone();
    run_ctx.skip_delay = request.settings.skip_delay;
    run_ctx.translations = ctx.registry.translations().snapshot();
    run_ctx.panic_recipient = ctx.hooks.panic_recipient.clone();
    run_ctx.started_ms = run.started_ms;
    let (cursor, look_up_direct) = resume_point(run_id, run.audience_cursor.as_deref());
    let stored_cursor = run.audience_cursor;
    let page = Arc::new(PageInputs {
        run_id: run_id.to_owned(),
        direct: DirectRecipients::new(request.recipients),
        look_up_direct,
        actor: request.actor,
        tenant: request.tenant,
        tenant_default: entities.tenant_default,
    });
    Ok(Some(Box::new(ActiveRun {
        run_id: run_id.to_owned(),
        attempt,
        run_ctx: Arc::new(run_ctx),
        page,
        cursor,
        stored_cursor,
        writing: None,
    })))
}

/// Ends a run `failed` with `why` (see `run_failure::give_up`).
pub(super) async fn fail_run(
    ctx: &Ctx,
    run_id: &str,
    why: &str,
    direct: Vec<RecipientRef>,
) -> Result<(), StoreError> {
    run_failure::give_up(&ctx.store, &ctx.failed, run_id, why, direct).await
}

/// Where a run's audience resumes: after its last committed page, whose cursor is stored
/// with it (see `audience`); and whether direct recipients must be looked up before their
/// pages: a stored cursor that cannot be read starts the audience over, so they may have
/// been reached already.
fn resume_point(run_id: &str, stored: Option<&str>) -> (AudienceCursor, bool) {
    let Some(stored) = stored else {
        return (AudienceCursor::default(), false);
    };
    match serde_json::from_str::<AudienceCursor>(stored) {
        Ok(cursor) => (cursor, false),
        Err(e) => {
            tracing::warn!(run = %run_id, error = %e,
                "the run's stored audience cursor is unreadable; its audience starts over");
            (AudienceCursor::default(), true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::resume_point;
    use crate::engine::audience::{AudienceCursor, Stage};

    #[test]
    fn a_run_resumes_after_its_stored_cursor_and_an_unreadable_one_starts_over_looking_up() {
        assert_eq!(resume_point("r", None), (AudienceCursor::default(), false));
        let at = AudienceCursor {
            stage: Stage::Subscribers,
            index: 3,
            position: 42,
            reached: 503,
            ..AudienceCursor::default()
        };
        let stored = serde_json::to_string(&at).expect("serializes");
        assert_eq!(resume_point("r", Some(&stored)), (at, false));
        assert_eq!(
            resume_point("r", Some("{not json")),
            (AudienceCursor::default(), true)
        );
    }
}
