//! Runs workflows: holds the workflow registry, accepts triggers durably, then walks
//! each recipient through the steps on the runner task. Speaks no HTTP.
//!
//! Invariant: a trigger is acknowledged only after its run row committed; the runner
//! finishes every committed run exactly once, including after a crash (see `runner`).

pub mod accept;
pub mod audience;
pub mod batch;
pub mod batch_close;
pub mod batch_join;
pub mod bus;
mod duties;
pub mod fair;
pub mod lifecycle;
pub mod loader;
pub mod plan;
pub mod preference_check;
pub mod refusal;
pub mod registry;
pub mod run_failure;
pub mod runner;
pub mod scheduler;
pub mod schedules;
pub mod scope;
pub mod templates;
pub mod translations;
pub mod validate;
pub mod waits;
pub mod walk;

use std::path::Path;
use std::sync::Arc;

use crate::clock::Clock;
use crate::store::Store;

pub use registry::{CompiledWorkflow, Registry, UpsertError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("loading workflows: {0}")]
    Load(#[from] loader::LoadError),
    #[error("loading translations: {0}")]
    Translations(#[from] translations::TranslationLoadError),
    #[error("loading workflows: {path}: invalid definition: {details}")]
    Definition { path: String, details: String },
}

/// The workflow engine handle held in `AppState`.
pub struct Engine {
    store: Store,
    registry: Arc<Registry>,
    runner: Arc<runner::Runner>,
    scheduler: scheduler::Scheduler,
    lifecycle: Arc<lifecycle::Lifecycle>,
    hooks: run_failure::RunHooks,
    /// Several nodes: the duties lease task, stopped (and the lease handed back) last.
    duties: (
        tokio::sync::watch::Sender<bool>,
        tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    ),
}

impl Engine {
    /// Loads stored workflows, then the directory (which wins and is persisted, so a
    /// restart can run queued runs even of workflows later removed from disk).
    /// `runner` holds the fan-out page sizes (recipients per runner slice), the rescan
    /// period and the retry policy (see `run_failure::RunnerOptions`).
    pub async fn start(
        store: Store,
        bus: bus::SharedBus,
        workflows_dir: &Path,
        clock: Clock,
        runner: run_failure::RunnerOptions,
    ) -> Result<Engine, EngineError> {
        let registry = Arc::new(Registry::new(store.clone()));
        registry.load_stored().await?;
        // knock-cli keeps `translations/` beside `workflows/`.
        let translations_dir = workflows_dir
            .parent()
            .unwrap_or(Path::new(""))
            .join("translations");
        registry.translations().load(&translations_dir).await?;
        for file in loader::read_dir(workflows_dir)? {
            match registry.upsert(&file.key, &file.body, "").await {
                Ok(w) => {
                    tracing::info!(workflow = %w.def.key, version = %w.stored.version_id, "workflow loaded")
                }
                Err(UpsertError::Invalid(errors)) => {
                    return Err(EngineError::Definition {
                        path: file.path.display().to_string(),
                        details: errors
                            .iter()
                            .map(|e| format!("`{}` {}", e.field, e.message))
                            .collect::<Vec<_>>()
                            .join("; "),
                    });
                }
                Err(UpsertError::Store(e)) => return Err(e.into()),
            }
        }
        // Several nodes: a workflow upserted on another node is live here within this.
        registry.follow_other_nodes(std::time::Duration::from_secs(1));
        let (scheduler, _task) = scheduler::Scheduler::spawn(clock.clone());
        scheduler.gate_on(store.clone());
        let (duties_stop, duties_rx) = tokio::sync::watch::channel(false);
        let duties_task = duties::spawn(store.clone(), duties_rx);
        let bus: bus::SharedBus = Arc::new(lifecycle::ExpiryAwareBus {
            inner: bus,
            scheduler: scheduler.clone(),
        });
        let lifecycle = lifecycle::Lifecycle::start(store.clone(), bus.clone(), scheduler.clone());
        let waits = Arc::new(waits::Waits {
            store: store.clone(),
            bus: bus.clone(),
            registry: registry.clone(),
            clock,
        });
        scheduler.register(Arc::new(waits::ResumeSource(waits.clone())));
        scheduler.register(Arc::new(batch_close::BatchSource(waits)));
        let hooks = runner.hooks.clone();
        let runner = Arc::new(runner::Runner::spawn(
            store.clone(),
            bus,
            registry.clone(),
            scheduler.clone(),
            runner,
        ));
        scheduler.register(Arc::new(schedules::ScheduleSource {
            store: store.clone(),
            runner: runner.clone(),
        }));
        Ok(Engine {
            store,
            registry,
            runner,
            scheduler,
            lifecycle,
            hooks,
            duties: (duties_stop, tokio::sync::Mutex::new(duties_task)),
        })
    }

    /// Expiry, snooze and pin (see `lifecycle`).
    pub fn lifecycle(&self) -> &lifecycle::Lifecycle {
        &self.lifecycle
    }

    /// The workflow registry (definitions by key).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Accepts a trigger durably (see `accept`) and hands a new run to the runner.
    pub async fn trigger(
        &self,
        key: &str,
        body: &serde_json::Value,
        idempotency_key: Option<&str>,
        request_id: &str,
    ) -> Result<accept::Accepted, refusal::Refusal> {
        let accepted = accept::accept(
            &self.store,
            &self.registry,
            key,
            body,
            idempotency_key,
            request_id,
        )
        .await?;
        match &accepted {
            accept::Accepted::New { .. } if self.hooks.skip_enqueue => {}
            accept::Accepted::New { run_id } => self.runner.enqueue(run_id.clone()),
            // A replay of a run still queued (its first request's handler may have been
            // dropped after the commit) is handed over again; the runner ignores it when
            // it holds it already or the run has finished.
            accept::Accepted::Replayed { run_id, .. } => {
                self.runner.enqueue_existing(run_id.clone())
            }
        }
        Ok(accepted)
    }

    /// Workflow runs the runner is processing right now (`/metrics`: `state="running"`).
    pub fn running_runs(&self) -> usize {
        self.runner.running()
    }

    /// Runs marked `failed` after their last attempt since start (`/metrics`).
    pub fn failed_runs(&self) -> u64 {
        self.runner.failed_total()
    }

    /// The scheduler: register more due-sources here (see `scheduler::DueSource`).
    pub fn scheduler(&self) -> &scheduler::Scheduler {
        &self.scheduler
    }

    /// Cancels the paused recipient runs of `key` triggered with `cancellation_key`
    /// (only those of `recipients` when given), and remembers the cancel for runs not
    /// paused yet; returns how many paused runs were cancelled now.
    pub async fn cancel(
        &self,
        key: &str,
        cancellation_key: &str,
        recipients: Option<Vec<crate::model::RecipientRef>>,
    ) -> Result<usize, crate::store::StoreError> {
        waits::cancel(
            &self.store,
            &self.scheduler,
            key,
            cancellation_key,
            recipients,
        )
        .await
    }

    /// Stops taking runs and lets the ones writing finish; queued runs resume at start,
    /// and pending timers fire after the next start.
    pub async fn shutdown(&self) {
        self.scheduler.stop();
        self.runner.shutdown().await;
        let _ = self.duties.0.send(true);
        if let Some(task) = self.duties.1.lock().await.take() {
            let _ = task.await;
        }
    }
}
