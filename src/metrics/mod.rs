//! `GET /metrics`: the server's Prometheus series, in one registry per server (so tests
//! that run several servers in one process see each its own).
//!
//! Events are counted where they happen (triggers in `api::workflows`, HTTP latency in the
//! access log, writer batches in `store`, committed items on the bus); states (queued and
//! running runs, runner lag, sockets, topics, push outcomes kept by the hub) are read when
//! scraped, so nothing is computed per request for a metric nobody reads.

mod bus;

use std::sync::Mutex;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

pub use bus::CountingBus;

use crate::backpressure::Reason;
use crate::realtime::HubStats;
use crate::store::WriterMetrics;

/// A metric definition was rejected by the registry (a duplicate or malformed name: a bug).
#[derive(Debug, thiserror::Error)]
#[error("registering metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// HTTP latency buckets, in seconds: from a cached read (~1 ms) to a slow bulk call.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// The methods the API serves keep their name as a label; any other (a client may send
/// any token as a method, e.g. 20,000 distinct long ones) is `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("other")
}

/// The values read from the rest of the server at scrape time.
pub struct Snapshot {
    pub queued_runs: u64,
    /// Recipients listed by the queued runs (what `--max-queued-items` bounds).
    pub queued_items: u64,
    pub running_runs: usize,
    /// Runs marked `failed` after their last attempt, since start.
    pub failed_runs: u64,
    /// Seconds since the oldest queued run was accepted (0 when none waits).
    pub runner_lag_seconds: f64,
    pub hub: HubStats,
    /// The WAL file's size after the last checkpoint.
    pub wal_bytes: u64,
    /// Messages (an upper bound: sequence numbers have gaps) past the badge counters'
    /// watermark, which every badge read counts live.
    pub unfolded_items: u64,
}

/// Every series of `/metrics`.
pub struct Metrics {
    registry: Registry,
    triggers_accepted: IntCounter,
    triggers_refused: IntCounterVec,
    items_committed: IntCounter,
    http_seconds: HistogramVec,
    http_requests: IntCounterVec,
    workflow_runs: IntGaugeVec,
    workflow_runs_failed: IntCounter,
    runner_lag: Gauge,
    queued_items: IntGauge,
    pushes: IntCounterVec,
    sockets: IntGauge,
    topics: IntGauge,
    wal_bytes: IntGauge,
    publish_queue: IntGauge,
    fold_lag: IntGauge,
    /// The NATS transport's series (`--nats-url`; zero on a node without it).
    bus: crate::cluster::nats::BusCounters,
    /// Scrapes copy the hub's totals into counters; one at a time, so each moves forward.
    scrape: Mutex<()>,
}

impl Metrics {
    /// Builds the registry, including the store's writer histograms.
    pub fn new(writer: &WriterMetrics) -> Result<Self, MetricsError> {
        let registry = Registry::new();
        let triggers_accepted = IntCounter::new(
            "tidings_triggers_accepted_total",
            "Triggers acknowledged (their run committed), idempotent replays excluded.",
        )?;
        let triggers_refused = IntCounterVec::new(
            Opts::new(
                "tidings_triggers_refused_total",
                "Triggers answered 429 by backpressure, by the limit that refused them.",
            ),
            &["reason"],
        )?;
        let items_committed = IntCounter::new(
            "tidings_items_committed_total",
            "Feed items (messages) committed and announced to the realtime bus.",
        )?;
        let http_seconds = HistogramVec::new(
            HistogramOpts::new(
                "tidings_http_request_duration_seconds",
                "HTTP request latency by route pattern (not raw path) and method.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["method", "route"],
        )?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "tidings_http_requests_total",
                "HTTP requests by route pattern, method and status.",
            ),
            &["method", "route", "status"],
        )?;
        let workflow_runs = IntGaugeVec::new(
            Opts::new(
                "tidings_workflow_runs",
                "Workflow runs by state: `queued` (accepted, durable, not finished; sampled \
                 at most every 100 ms) and `running` (being processed now).",
            ),
            &["state"],
        )?;
        let workflow_runs_failed = IntCounter::new(
            "tidings_workflow_runs_failed_total",
            "Workflow runs marked `failed` after their last attempt (failed writes, panics, \
             crashes; `--run-attempts`) or because they cannot run; the reason is in run records.",
        )?;
        let runner_lag = Gauge::new(
            "tidings_runner_lag_seconds",
            "Age of the oldest queued workflow run (0 when none waits); a run stays queued \
             until its whole fan-out committed.",
        )?;
        let pushes = IntCounterVec::new(
            Opts::new(
                "tidings_pushes_total",
                "Realtime pushes by outcome: `sent` (queued to a socket), `dropped` (socket \
                 gone or already evicted, or counting failed), `evicted` (a full queue \
                 evicted the socket).",
            ),
            &["outcome"],
        )?;
        let sockets = IntGauge::new("tidings_sockets", "Open realtime sockets.")?;
        let topics = IntGauge::new(
            "tidings_joined_topics",
            "Topics joined across all open sockets.",
        )?;
        registry.register(Box::new(triggers_accepted.clone()))?;
        registry.register(Box::new(triggers_refused.clone()))?;
        registry.register(Box::new(items_committed.clone()))?;
        registry.register(Box::new(http_seconds.clone()))?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(workflow_runs.clone()))?;
        registry.register(Box::new(workflow_runs_failed.clone()))?;
        registry.register(Box::new(runner_lag.clone()))?;
        let queued_items = IntGauge::new(
            "tidings_queued_items",
            "Recipients listed by the queued workflow runs (an object counts once; sampled \
             at most every 100 ms); triggers answer 429 at `--max-queued-items`.",
        )?;
        registry.register(Box::new(queued_items.clone()))?;
        let wal_bytes = IntGauge::new(
            "tidings_wal_bytes",
            "Size of the SQLite WAL file after the last checkpoint (sampled every 100 ms); \
             checkpoints escalate past 64 MiB.",
        )?;
        let publish_queue = IntGauge::new(
            "tidings_realtime_publish_queue",
            "Committed feed items waiting for the realtime publisher (bounded; past the \
             bound a feed's items fold into one push with fresh counts).",
        )?;
        let fold_lag = IntGauge::new(
            "tidings_feed_fold_lag_items",
            "Feed items past the badge counters' watermark (an upper bound), which badge \
             reads count live; it grows and stays up only while the fold cannot run (on \
             PostgreSQL: a long write transaction anywhere on the server).",
        )?;
        registry.register(Box::new(wal_bytes.clone()))?;
        registry.register(Box::new(publish_queue.clone()))?;
        registry.register(Box::new(fold_lag.clone()))?;
        registry.register(Box::new(pushes.clone()))?;
        registry.register(Box::new(sockets.clone()))?;
        registry.register(Box::new(topics.clone()))?;
        let bus = crate::cluster::nats::BusCounters {
            sent: IntCounter::new(
                "tidings_bus_sent_total",
                "Announcements of committed items (or changed counts) published to NATS for \
                 the other nodes (`--nats-url`).",
            )?,
            received: IntCounter::new(
                "tidings_bus_received_total",
                "Announcements received from other nodes through NATS and handed to this \
                 node's sockets.",
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "tidings_bus_dropped_total",
                    "Announcements the other nodes did not get, by reason: `queue_full` (the \
                     publisher queue was full), `publish_failed`, `undecodable` (received). \
                     Their clients catch up when they rejoin.",
                ),
                &["reason"],
            )?,
            connected: IntGauge::new(
                "tidings_bus_connected",
                "1 while connected to NATS (`--nats-url`), else 0.",
            )?,
        };
        registry.register(Box::new(bus.sent.clone()))?;
        registry.register(Box::new(bus.received.clone()))?;
        registry.register(Box::new(bus.dropped.clone()))?;
        registry.register(Box::new(bus.connected.clone()))?;
        for reason in ["queue_full", "publish_failed", "undecodable"] {
            bus.dropped.with_label_values(&[reason]);
        }
        registry.register(Box::new(writer.batch_size.clone()))?;
        registry.register(Box::new(writer.commit_seconds.clone()))?;
        // Every labelled series exists from the start, so a dashboard sees 0, not nothing.
        for reason in Reason::ALL {
            triggers_refused.with_label_values(&[reason.label()]);
        }
        for outcome in ["sent", "dropped", "evicted"] {
            pushes.with_label_values(&[outcome]);
        }
        Ok(Metrics {
            registry,
            triggers_accepted,
            triggers_refused,
            items_committed,
            http_seconds,
            http_requests,
            workflow_runs,
            workflow_runs_failed,
            runner_lag,
            queued_items,
            pushes,
            sockets,
            topics,
            wal_bytes,
            publish_queue,
            fold_lag,
            bus,
            scrape: Mutex::new(()),
        })
    }

    /// A trigger was acknowledged with a new run.
    pub fn trigger_accepted(&self) {
        self.triggers_accepted.inc();
    }

    /// A trigger was refused by backpressure.
    pub fn trigger_refused(&self, reason: Reason) {
        self.triggers_refused
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// One HTTP request finished. `route` must be a route pattern (or one fixed label
    /// for unmatched paths) and the method is folded into [`method_label`]'s fixed set:
    /// a label is a series kept forever, so none may come from what a client chooses.
    pub fn http_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.http_seconds
            .with_label_values(&[method, route])
            .observe(seconds);
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
    }

    /// The series the NATS transport moves.
    pub fn bus_counters(&self) -> crate::cluster::nats::BusCounters {
        self.bus.clone()
    }

    /// Adds `tidings_node_info{node_id="…"} 1`, so every series of a scrape can be
    /// joined to the node that served it. Called once, at start.
    pub fn set_node_id(&self, node_id: &str) -> Result<(), MetricsError> {
        let info = IntGauge::with_opts(
            Opts::new(
                "tidings_node_info",
                "Always 1; `node_id` is this node's `--node-id`.",
            )
            .const_label("node_id", node_id),
        )?;
        info.set(1);
        self.registry.register(Box::new(info))?;
        Ok(())
    }

    /// The counter [`CountingBus`] adds committed items to.
    pub fn items_committed(&self) -> IntCounter {
        self.items_committed.clone()
    }

    /// The text exposition of every series, after copying in `snapshot`.
    pub fn render(&self, snapshot: &Snapshot) -> Result<String, MetricsError> {
        {
            let _one = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
            self.workflow_runs
                .with_label_values(&["queued"])
                .set(i64::try_from(snapshot.queued_runs).unwrap_or(i64::MAX));
            self.workflow_runs
                .with_label_values(&["running"])
                .set(i64::try_from(snapshot.running_runs).unwrap_or(i64::MAX));
            self.workflow_runs_failed.inc_by(
                snapshot
                    .failed_runs
                    .saturating_sub(self.workflow_runs_failed.get()),
            );
            self.runner_lag.set(snapshot.runner_lag_seconds);
            self.queued_items
                .set(i64::try_from(snapshot.queued_items).unwrap_or(i64::MAX));
            self.sockets
                .set(i64::try_from(snapshot.hub.sessions).unwrap_or(i64::MAX));
            self.topics
                .set(i64::try_from(snapshot.hub.topics).unwrap_or(i64::MAX));
            self.wal_bytes
                .set(i64::try_from(snapshot.wal_bytes).unwrap_or(i64::MAX));
            self.publish_queue
                .set(i64::try_from(snapshot.hub.publish_queue).unwrap_or(i64::MAX));
            self.fold_lag
                .set(i64::try_from(snapshot.unfolded_items).unwrap_or(i64::MAX));
            for (outcome, total) in [
                ("sent", snapshot.hub.pushes),
                ("dropped", snapshot.hub.dropped),
                ("evicted", snapshot.hub.evictions),
            ] {
                let counter = self.pushes.with_label_values(&[outcome]);
                counter.inc_by(total.saturating_sub(counter.get()));
            }
        }
        let mut text = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut text)?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
    }

    #[test]
    fn methods_outside_the_served_set_share_one_label() {
        assert_eq!(method_label("PATCH"), "PATCH");
        assert_eq!(method_label("patch"), "other");
        assert_eq!(method_label(&"X".repeat(4000)), "other");
        assert_eq!(method_label("PROPFIND"), "other");
    }

    #[test]
    fn a_render_shows_every_family_and_copies_the_hub_totals_forward() {
        let metrics = Metrics::new(&WriterMetrics::new()).expect("metrics");
        metrics.trigger_accepted();
        metrics.trigger_refused(Reason::Backlog);
        metrics.http_request("POST", "/v1/workflows/{key}/trigger", 200, 0.002);
        let mut snapshot = Snapshot {
            queued_runs: 3,
            running_runs: 1,
            failed_runs: 0,
            runner_lag_seconds: 0.5,
            queued_items: 7,
            hub: HubStats {
                sessions: 2,
                topics: 5,
                pushes: 7,
                ..HubStats::default()
            },
            wal_bytes: 4096,
            unfolded_items: 12,
        };
        let text = metrics.render(&snapshot).expect("render");
        assert_eq!(value(&text, "tidings_triggers_accepted_total"), Some(1.0));
        assert_eq!(
            value(&text, "tidings_triggers_refused_total{reason=\"backlog\"}"),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                "tidings_triggers_refused_total{reason=\"key_trigger_rate\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "tidings_workflow_runs{state=\"queued\"}"),
            Some(3.0)
        );
        assert_eq!(value(&text, "tidings_queued_items"), Some(7.0));
        assert_eq!(
            value(
                &text,
                "tidings_triggers_refused_total{reason=\"backlog_items\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(&text, "tidings_pushes_total{outcome=\"sent\"}"),
            Some(7.0)
        );
        assert_eq!(value(&text, "tidings_joined_topics"), Some(5.0));
        assert_eq!(value(&text, "tidings_feed_fold_lag_items"), Some(12.0));
        assert!(text.contains(
            "tidings_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/workflows/{key}/trigger\"} 1"
        ), "{text}");
        assert!(text.contains("# TYPE tidings_writer_commit_seconds histogram"));
        assert_eq!(
            value(&text, "tidings_bus_dropped_total{reason=\"queue_full\"}"),
            Some(0.0)
        );
        metrics.set_node_id("web-1").expect("node id");
        let text = metrics.render(&snapshot).expect("render");
        assert_eq!(
            value(&text, "tidings_node_info{node_id=\"web-1\"}"),
            Some(1.0)
        );
        snapshot.hub.pushes = 9;
        let text = metrics.render(&snapshot).expect("render");
        assert_eq!(
            value(&text, "tidings_pushes_total{outcome=\"sent\"}"),
            Some(9.0)
        );
    }
}
