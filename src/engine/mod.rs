//! Runs workflows: accepts triggers durably, then walks each recipient through the steps.
//! Speaks no HTTP.

use std::path::Path;

use crate::realtime::Hub;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The workflow engine handle held in `AppState`.
pub struct Engine {
    #[allow(dead_code)]
    store: Store,
    #[allow(dead_code)]
    hub: Hub,
}

impl Engine {
    pub async fn start(
        store: Store,
        hub: Hub,
        _workflows_dir: &Path,
    ) -> Result<Engine, EngineError> {
        Ok(Engine { store, hub })
    }

    pub async fn shutdown(&self) {}
}
