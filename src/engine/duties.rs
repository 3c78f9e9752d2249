//! Which node does the cluster-wide duties (several nodes on PostgreSQL): the one
//! holding the [`DUTIES`] lease, renewed three times per lease. The scheduler's
//! due-sources, the counter fold and retention run only there, so each delay fires once,
//! each batch closes once and each schedule occurrence triggers once; when that node dies
//! another takes the lease once it lapses (`--lease-secs`) and goes on from the rows.
//! On SQLite there is no task: the one process always holds the duties.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;
use crate::store::ops::leases::DUTIES;

/// Starts the lease task on a shared database; `None` on SQLite.
pub fn spawn(store: Store, mut stop: watch::Receiver<bool>) -> Option<tokio::task::JoinHandle<()>> {
    let every = (store.node()?.lease / 3).max(Duration::from_millis(100));
    Some(tokio::spawn(async move {
        loop {
            let held = match store.hold_lease(DUTIES).await {
                Ok(held) => held,
                Err(e) => {
                    // Unsure: stop doing the duties (another node may take them) rather
                    // than risk doing them twice.
                    tracing::warn!(error = %e, "could not renew the duties lease");
                    false
                }
            };
            if store.set_duties_held(held) {
                tracing::info!(
                    held,
                    "cluster duties (timers, batches, schedules, fold, retention) {}",
                    if held {
                        "taken by this node"
                    } else {
                        "left to another node"
                    }
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {
                    if (store.set_duties_held(false) || held)
                        && let Err(e) = store.release_lease(DUTIES).await
                    {
                        tracing::warn!(error = %e, "could not hand back the duties lease; it lapses by itself");
                    }
                    return;
                }
            }
        }
    }))
}
