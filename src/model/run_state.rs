//! The states of a workflow run and of a recipient run, as the engine decides them.
//! Stored as text; [`WorkflowRunStatus::as_str`] / [`RecipientRunStatus::as_str`] and
//! their `parse` are the one place that text is written and read.

/// Where a workflow run (one accepted trigger) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowRunStatus {
    /// Accepted; the runner has pages of its audience left to write.
    Queued,
    /// Its last page committed.
    Completed,
    /// Given up (attempts used up, workflow gone, stored request corrupt).
    Failed,
}

impl WorkflowRunStatus {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            WorkflowRunStatus::Queued => "queued",
            WorkflowRunStatus::Completed => "completed",
            WorkflowRunStatus::Failed => "failed",
        }
    }

    /// The stored text back; `None` for text no version wrote.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Queued, Self::Completed, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

/// Where one recipient's walk through a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientRunStatus {
    /// Waiting on a delay's timer or a batch's close.
    Paused,
    Completed,
    /// A `cancel` with the run's cancellation key stopped it while paused.
    Cancelled,
    /// A step failed (or the walk panicked, or the run was given up).
    Failed,
}

impl RecipientRunStatus {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            RecipientRunStatus::Paused => "paused",
            RecipientRunStatus::Completed => "completed",
            RecipientRunStatus::Cancelled => "cancelled",
            RecipientRunStatus::Failed => "failed",
        }
    }

    /// The stored text back; `None` for text no version wrote.
    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Paused, Self::Completed, Self::Cancelled, Self::Failed]
            .into_iter()
            .find(|s| s.as_str() == raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_unknown_text_is_none() {
        for s in [
            WorkflowRunStatus::Queued,
            WorkflowRunStatus::Completed,
            WorkflowRunStatus::Failed,
        ] {
            assert_eq!(WorkflowRunStatus::parse(s.as_str()), Some(s));
        }
        for s in [
            RecipientRunStatus::Paused,
            RecipientRunStatus::Completed,
            RecipientRunStatus::Cancelled,
            RecipientRunStatus::Failed,
        ] {
            assert_eq!(RecipientRunStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(WorkflowRunStatus::parse("paused"), None);
        assert_eq!(RecipientRunStatus::parse("queued"), None);
    }
}
