//! `Application::build(settings)`: opens the store, loads keys and workflows, starts the
//! engine and binds the HTTP server. `main` and the integration tests both use it, so
//! tests exercise exactly what ships.

use std::net::TcpListener;
use std::time::Duration;

use actix_web::{App, HttpServer, dev::Server, web};

use crate::auth::Keys;
use crate::cluster::BusStatus;
use crate::cluster::nats::{NatsBus, NatsConfig};
use crate::config::Settings;
use crate::engine::Engine;
use crate::engine::bus::SharedBus;
use crate::realtime::Hub;
use crate::retention::{Retention, RetentionPolicy};
use crate::state::AppState;
use crate::{api, realtime};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("opening the database {path}: {source}")]
    Store {
        path: String,
        source: crate::store::StoreError,
    },
    #[error(transparent)]
    Keys(#[from] crate::auth::keys::KeyError),
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    #[error(transparent)]
    Demo(#[from] crate::demo::DemoError),
    #[error(transparent)]
    Nats(#[from] crate::cluster::nats::NatsError),
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A built, bound, not yet running server.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
    signals: Option<ShutdownSignals>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        if settings.demo
            && let Err(refused) = crate::demo::check_keys(&settings)
        {
            tracing::error!("refusing demo mode: {refused}");
            return Err(refused.into());
        }
        let store = settings
            .open_store_blocking()
            .await
            .map_err(|source| StartupError::Store {
                path: settings.database_label(),
                source,
            })?;
        if settings.demo
            && let Err(refused) = crate::demo::check_database(&store).await
        {
            tracing::error!("refusing demo mode: {refused}");
            store.shutdown().await;
            return Err(refused.into());
        }
        let mut keys = Keys::load(
            &store,
            settings.secret_key.clone(),
            settings.public_key.clone(),
            settings.signing_public_key.clone(),
        )
        .await?;
        if settings.demo {
            keys = keys.with_demo_key(&store).await?;
        }
        let hub = Hub::new(store.clone(), settings.ws_queue, settings.clock.clone());
        let metrics = crate::metrics::Metrics::new(store.writer_metrics())?;
        metrics.set_node_id(&settings.node_id)?;
        let (bus_status, transport) = start_bus(&settings, &hub, &metrics).await?;
        let bus = crate::metrics::CountingBus::new(transport, metrics.items_committed());
        let engine = Engine::start(
            store.clone(),
            std::sync::Arc::new(bus),
            &settings.workflows,
            settings.clock.clone(),
            settings.runner_options(),
        )
        .await?;
        engine
            .registry()
            .translations()
            .set_default_locale(&settings.default_locale)
            .await
            .map_err(crate::engine::EngineError::from)?;
        if settings.demo {
            crate::demo::prepare(&store, &engine).await?;
            tracing::warn!(
                "demo mode: /demo/v1/* mints user tokens for demo identities without credentials; \
                 never expose this server"
            );
        }
        let listener = TcpListener::bind(settings.addr).map_err(|source| StartupError::Bind {
            addr: settings.addr.to_string(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.addr.to_string(),
                source,
            })?
            .port();
        let retention = Retention::spawn(
            store.clone(),
            RetentionPolicy::from_settings(&settings),
            Duration::from_secs(settings.retention_interval_secs),
            Duration::from_millis(settings.fold_interval_ms),
            settings.clock.clone(),
        );
        let backpressure = crate::backpressure::Backpressure::new(
            &settings,
            store.clone(),
            settings.clock.clone(),
        );
        let state = web::Data::new(AppState {
            backpressure,
            metrics,
            settings: settings.clone(),
            retention,
            store,
            keys,
            engine,
            hub,
            bus: bus_status,
            sockets: crate::realtime::SocketLimits::new(
                settings.ws_max_per_user,
                settings.ws_max_per_address,
            ),
        });
        let server = build_server(listener, state.clone(), &settings).map_err(|source| {
            StartupError::Bind {
                addr: settings.addr.to_string(),
                source,
            }
        })?;
        Ok(Application {
            port,
            server,
            state,
            signals: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The state, for printing keys at start and for the shutdown sequence.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the server gracefully (what SIGTERM does).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Installs the SIGTERM/SIGINT listeners now, before the caller announces the address,
    /// so a signal that arrives the moment the server is reachable already stops it
    /// gracefully (sockets closed with 1001, writer drained) instead of killing the process.
    /// In-process embedders (tests, benches) skip this and stop through [`Self::handle`].
    pub fn handle_signals(&mut self) -> std::io::Result<()> {
        self.signals = Some(ShutdownSignals::install()?);
        Ok(())
    }

    /// Serves until stopped (SIGTERM/SIGINT or `handle().stop(true)`), then closes sockets
    /// and drains the writer so every acknowledged write is committed.
    pub async fn run_until_stopped(mut self) -> std::io::Result<()> {
        let state = self.state.clone();
        let signals = self
            .signals
            .take()
            .map(|s| tokio::spawn(stop_on_signal(s, state.hub.clone(), self.server.handle())));
        let result = self.server.await;
        if let Some(signals) = signals {
            signals.abort();
        }
        state.hub.shutdown();
        state.retention.shutdown().await;
        state.engine.shutdown().await;
        state.store.shutdown().await;
        result
    }
}

/// The bus the engine announces committed items on: NATS with `--nats-url` (this node's
/// sockets first, then the other nodes'), else this node's hub alone.
async fn start_bus(
    settings: &Settings,
    hub: &Hub,
    metrics: &crate::metrics::Metrics,
) -> Result<(BusStatus, SharedBus), StartupError> {
    let Some(urls) = &settings.nats_url else {
        if settings.database_url.is_some() {
            tracing::info!(
                node = %settings.node_id,
                "no --nats-url: this node runs alone; pushes reach only its own sockets \
                 (set --nats-url on every node to run several on this database)"
            );
        }
        return Ok((BusStatus::Local, std::sync::Arc::new(hub.clone())));
    };
    let nats = NatsBus::start(
        NatsConfig {
            urls: urls.clone(),
            node_id: settings.node_id.clone(),
            subject_prefix: settings.nats_subject_prefix.clone(),
        },
        hub.clone(),
        metrics.bus_counters(),
    )
    .await?;
    tracing::info!(
        node = %settings.node_id,
        subject = %format!("{}.feeds", settings.nats_subject_prefix),
        "pushes fan out between nodes through NATS"
    );
    Ok((
        BusStatus::Nats(nats.connection()),
        std::sync::Arc::new(nats),
    ))
}

fn build_server(
    listener: TcpListener,
    state: web::Data<AppState>,
    settings: &Settings,
) -> std::io::Result<Server> {
    let max_body = settings.max_body_bytes;
    let cors_origins = settings.cors_origins.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(api::json_config(max_body))
            .app_data(api::payload_config(max_body))
            .app_data(api::query_config())
            .app_data(api::path_config())
            .wrap(api::cors(&cors_origins))
            .wrap(actix_web::middleware::from_fn(api::access_log))
            .wrap(api::request_id())
            .configure(api::configure)
            .configure(realtime::configure)
            .default_service(web::to(api::fallback))
    })
    .listen(listener)?
    // SIGTERM/SIGINT are handled by `stop_on_signal`, which closes sockets first.
    .disable_signals()
    .shutdown_timeout(10)
    .client_request_timeout(Duration::from_secs(30));
    if let Some(workers) = settings.workers {
        server = server.workers(workers.max(1));
    }
    Ok(server.run())
}

/// On SIGTERM or SIGINT: close every socket with 1001 (so long-lived sockets do not hold
/// the graceful stop open), then stop the server gracefully.
async fn stop_on_signal(
    mut signals: ShutdownSignals,
    hub: crate::realtime::Hub,
    server: actix_web::dev::ServerHandle,
) {
    signals.recv().await;
    tracing::info!("signal received: closing sockets and stopping");
    hub.shutdown();
    server.stop(true).await;
}

/// The process's SIGTERM and SIGINT listeners, registered when created.
#[cfg(unix)]
struct ShutdownSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}

/// Ctrl-C only, where there are no Unix signals.
#[cfg(not(unix))]
struct ShutdownSignals;

#[cfg(not(unix))]
impl ShutdownSignals {
    fn install() -> std::io::Result<Self> {
        Ok(ShutdownSignals)
    }

    async fn recv(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}
