//! A feed item as stored: the one shape every read path returns and every view,
//! filter and engagement rule reads. Plain data; `store` fills it, nothing here does I/O.

use std::sync::Arc;

use serde_json::Value;

use super::RecipientRef;

/// A stored message row, as every read path sees it.
#[derive(Debug, Clone)]
pub struct MessageRow {
    pub seq: i64,
    pub id: String,
    pub channel_id: String,
    pub recipient: RecipientRef,
    pub tenant: Option<String>,
    pub workflow_key: String,
    pub workflow_version_id: String,
    pub workflow_categories: Vec<String>,
    pub workflow_run_id: String,
    pub workflow_recipient_run_id: String,
    pub step_ref: String,
    pub actors: Vec<RecipientRef>,
    /// Shared with every other message of the run that has the run's data.
    pub data: Arc<Value>,
    pub blocks: Value,
    pub metadata: Value,
    pub inserted_at: String,
    pub updated_at: String,
    pub seen_at: Option<String>,
    pub read_at: Option<String>,
    pub archived_at: Option<String>,
    pub interacted_at: Option<String>,
    pub link_clicked_at: Option<String>,
    /// Set on a message produced after a batch step: `{activities, total_activities,
    /// total_actors}` as the batch closed (activities capped at the render limit).
    pub batch: Option<Arc<Value>>,
}
