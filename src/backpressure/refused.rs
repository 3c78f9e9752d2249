//! Why a trigger was refused, in the terms the client and `/metrics` need: which limit,
//! and when retrying can help. `error.rs` maps it to Knock's 429 `rate_limited`.

/// The limit that refused a trigger (the `reason` label of
/// `tidings_triggers_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    KeyTriggers,
    KeyItems,
    TenantTriggers,
    TenantItems,
    /// Queued runs (`--max-queued-runs`).
    Backlog,
    /// Recipients of queued runs (`--max-queued-items`).
    BacklogItems,
}

impl Reason {
    /// Every reason, so metrics can show each series from the start.
    pub const ALL: [Reason; 6] = [
        Reason::KeyTriggers,
        Reason::KeyItems,
        Reason::TenantTriggers,
        Reason::TenantItems,
        Reason::Backlog,
        Reason::BacklogItems,
    ];

    /// The stable label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Reason::KeyTriggers => "key_trigger_rate",
            Reason::KeyItems => "key_item_rate",
            Reason::TenantTriggers => "tenant_trigger_rate",
            Reason::TenantItems => "tenant_item_rate",
            Reason::Backlog => "backlog",
            Reason::BacklogItems => "backlog_items",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Reason::KeyTriggers => "triggers for this API key (--trigger-rate-per-key)",
            Reason::KeyItems => "recipients for this API key (--item-rate-per-key)",
            Reason::TenantTriggers => "triggers for this tenant (--trigger-rate-per-tenant)",
            Reason::TenantItems => "recipients for this tenant (--item-rate-per-tenant)",
            Reason::Backlog => "queued workflow runs (--max-queued-runs)",
            Reason::BacklogItems => "recipients of queued workflow runs (--max-queued-items)",
        }
    }
}

/// A trigger refused before anything was stored.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// Over a rate; retrying after `retry_after_secs` succeeds if the client slows down.
    #[error("Rate limited: too many {}; retry after {retry_after_secs} s.", reason.what())]
    Rate {
        reason: Reason,
        retry_after_secs: u64,
    },
    /// One trigger carries more items than the limit's whole burst: no wait helps.
    #[error("Rate limited: this trigger's {items} recipients exceed the burst of {burst} {}; split it into smaller triggers.", reason.what())]
    OverBurst {
        reason: Reason,
        items: u32,
        burst: u32,
    },
    /// Too much accepted work waits for the runner (`reason`: which count).
    #[error("Rate limited: the backlog holds {queued} {}, at or past the limit of {limit}; retry after {retry_after_secs} s.", reason.what())]
    Backlog {
        reason: Reason,
        queued: u64,
        limit: u32,
        retry_after_secs: u64,
    },
}

impl Refused {
    /// Which limit refused.
    pub fn reason(&self) -> Reason {
        match self {
            Refused::Rate { reason, .. }
            | Refused::OverBurst { reason, .. }
            | Refused::Backlog { reason, .. } => *reason,
        }
    }

    /// Seconds after which a retry can succeed (`Retry-After`), or `None` when no retry of
    /// the same request can.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refused::Rate {
                retry_after_secs, ..
            }
            | Refused::Backlog {
                retry_after_secs, ..
            } => Some((*retry_after_secs).max(1)),
            Refused::OverBurst { .. } => None,
        }
    }
}
