//! What a walk produces, for the write to store: the [`RecipientPlan`] of one
//! recipient (status, events, messages), where it pauses ([`Wait`]), and the checkpoints
//! only the write transaction can decide ([`Gate`]s and [`BatchJoin`]s). Plain data:
//! `walk` builds it, `batch_join` decides its checkpoints, `waits` and the store write it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::batch::ClosedBatch;
use crate::model::RecipientRef;
use crate::model::run_state::RecipientRunStatus;
use crate::model::workflow::ExecutionMode;
use crate::store::messages::NewMessage;

/// Where a walk starts: the path to the next step to run (the index in the workflow's
/// steps; nested steps add the branch and the index inside it). Stored with a paused
/// recipient run as a JSON array.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct StepPosition(pub Vec<usize>);

impl StepPosition {
    /// The first step.
    pub fn start() -> StepPosition {
        StepPosition(Vec::new())
    }

    /// The position right after this one (at the same depth).
    pub fn next(&self) -> StepPosition {
        let mut path = self.0.clone();
        match path.last_mut() {
            Some(last) => *last += 1,
            None => path.push(1),
        }
        StepPosition(path)
    }

    /// Whether this is the first step (a walk that starts here enters the workflow).
    pub fn is_start(&self) -> bool {
        self.0.iter().all(|i| *i == 0)
    }
}

/// What the runner persists when a walk pauses: the timer or gate, and what the resume
/// needs (the walk continues after `paused_at`, whose step has `step_ref`).
#[derive(Debug, Clone, PartialEq)]
pub struct Wait {
    pub paused_at: StepPosition,
    pub step_ref: String,
    pub kind: WaitKind,
    /// Copied from the [`RecipientContext`] so the resume can rebuild it.
    pub trigger_data: Option<Map<String, Value>>,
    pub subscription: Option<Value>,
    pub batch: Option<Arc<ClosedBatch>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitKind {
    /// A delay: resume when the clock reads `until`.
    Until(DateTime<Utc>),
    /// A batch: resume (as the continuing run) when the batch closes.
    Batch,
}

impl Wait {
    /// The `resume` state stored on the paused recipient run.
    pub fn resume_state(&self) -> ResumeState {
        ResumeState {
            paused_at: self.paused_at.clone(),
            step_ref: self.step_ref.clone(),
            trigger_data: self.trigger_data.clone(),
            subscription: self.subscription.clone(),
            batch: self.batch.as_ref().map(|b| b.to_value()),
        }
    }
}

/// What a paused recipient run stores to be resumed (its `resume` column), written and
/// read by serde. Rows stored before this type (the same keys, written with `json!`) read
/// the same: absent optional keys and `null` are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeState {
    /// The step the run paused at; the resume runs on from the next one.
    pub paused_at: StepPosition,
    /// That step's `ref`: a resume whose workflow no longer has it there fails.
    #[serde(default)]
    pub step_ref: String,
    #[serde(default)]
    pub trigger_data: Option<Map<String, Value>>,
    #[serde(default)]
    pub subscription: Option<Value>,
    /// The closed batch the run carries (see `ClosedBatch::to_value`).
    #[serde(default)]
    pub batch: Option<Value>,
}

/// What one recipient's pass through the steps produced.
pub struct RecipientPlan {
    pub reference: RecipientRef,
    /// `Paused` exactly when `wait` is set.
    pub status: RecipientRunStatus,
    pub events: Vec<Value>,
    pub messages: Vec<NewMessage>,
    pub wait: Option<Wait>,
    /// Gates the write must pass, in walk order (throttles, `trigger_frequency`).
    pub gates: Vec<Gate>,
    /// Batches the write must open or join, in walk order (see `engine::batch_join`).
    pub batches: Vec<BatchJoin>,
}

/// A limit only the store can decide exactly (concurrent runs race for it): at most
/// `limit` passes per `key` until `closes_at` (none = forever), the window opening with
/// the first pass. When the gate is closed the write truncates the plan's events and
/// messages to what came before it, appends `blocked`, drops the wait, and the recipient
/// run ends `completed`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    pub key: String,
    pub limit: u32,
    pub closes_at: Option<DateTime<Utc>>,
    pub events_at: usize,
    pub messages_at: usize,
    pub blocked: Value,
}

/// What a walk asks the write to do at a batch step: open the recipient's batch or
/// append to the open one. Decided in the write (only it sees open batches exactly).
#[derive(Debug, Clone, PartialEq)]
pub struct BatchJoin {
    /// workflow, step, recipient, tenant and key value; one open batch per identity.
    pub identity: String,
    pub key_value: String,
    /// Where the window closes if this join opens the batch.
    pub closes_at: DateTime<Utc>,
    /// Sliding windows: the latest close if this join opens the batch.
    pub extend_until: Option<DateTime<Utc>>,
    /// Sliding windows: the close this activity asks for when it appends.
    pub slide_to: Option<DateTime<Utc>>,
    pub max_items: Option<u32>,
    /// Stored with the batch for its close (`{render_limit, order}`).
    pub settings: Value,
    pub activity_id: String,
    pub actor: Option<RecipientRef>,
    pub data: Arc<Value>,
    pub inserted_at: String,
    pub mode: ExecutionMode,
    /// Index of this step's `batched` event in the plan (the write fills in its data).
    pub event_index: usize,
    /// Plan lengths at this step: a `flush_leading` trigger that finds an open batch is
    /// cut back to them and pauses with `wait` instead of running on.
    pub messages_at: usize,
    pub gates_at: usize,
    pub wait: Wait,
}
