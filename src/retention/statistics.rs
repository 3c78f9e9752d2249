//! When PostgreSQL's planner statistics are refreshed (`store::statistics`): every
//! [`EVERY`] on the duties node of a PostgreSQL deployment (one node suffices: an ANALYZE
//! on any node re-plans the statements of every node). Not on SQLite, whose planner does
//! not cache plans by table size.

use std::time::Duration;

use tokio::sync::watch;

use crate::store::Store;

/// How often the hot tables' growth is checked (one cheap read of the cumulative
/// statistics); a table that doubled is analyzed within about this long.
pub const EVERY: Duration = Duration::from_secs(2);

pub(super) async fn run(store: Store, mut stop: watch::Receiver<bool>) {
    if !store.is_shared() {
        return;
    }
    let mut ticker = super::duty_ticker(EVERY);
    while super::next_duty_tick(&store, &mut ticker, &mut stop).await {
        match store.refresh_planner_statistics().await {
            Ok(tables) if !tables.is_empty() => {
                tracing::info!(
                    ?tables,
                    "analyzed tables that outgrew their planner statistics"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "refreshing planner statistics failed; retrying"),
        }
    }
}
