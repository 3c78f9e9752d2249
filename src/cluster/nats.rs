//! The NATS transport behind the engine's [`FeedBus`]: local sockets first, then NATS.
//!
//! - `publish`/`republish`/`publish_counts` hand the announcement to the local hub at
//!   once, then offer it to a bounded queue ([`QUEUE`] announcements) drained by one
//!   publisher task; a full queue drops the announcement for the other nodes (counted in
//!   `tidings_bus_dropped_total`), never blocks the engine.
//! - One subscriber task per node hands what other nodes announce to the local hub,
//!   which pushes exactly what a local publish would (counts from the shared store).
//! - Reconnects are the client's own (unbounded, with its back-off); the subscription is
//!   renewed by the client on reconnect. What was announced while a node was cut off is
//!   lost for its sockets' pushes, not for its clients: the feed is in the database, a
//!   socket that rejoins reads everything committed (the catch-up of its join), and on
//!   reconnecting the node pushes current counts to every socket it kept
//!   ([`Hub::refresh_all`]), so those refetch too. The other way round, a node that
//!   dropped announcements (its queue overflowed, NATS refused them) sends a `Refresh`
//!   once connected, and every node refreshes its sockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use futures_util::StreamExt;
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::sync::mpsc;

use super::wire::{self, Body, Envelope};
use crate::engine::bus::{FeedBus, FeedRef};
use crate::model::message::MessageRow;
use crate::realtime::Hub;

/// Announcements waiting for the publisher task; past it they are dropped for the other
/// nodes (this node's sockets already had them).
pub const QUEUE: usize = 4096;

/// How often the publisher, idle, checks whether a loss still needs announcing.
const REFRESH_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// What the transport needs from the settings.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// `nats://…`, comma-separated for several servers.
    pub urls: String,
    /// This node's `--node-id`, in every announcement and in the NATS connection name.
    pub node_id: String,
    /// `--nats-subject-prefix`: the subject is `<prefix>.feeds`.
    pub subject_prefix: String,
}

/// The series this transport moves (registered by `crate::metrics`).
#[derive(Clone)]
pub struct BusCounters {
    /// Announcements published to NATS.
    pub sent: IntCounter,
    /// Announcements received from other nodes and handed to the local hub.
    pub received: IntCounter,
    /// Announcements lost, by reason: `queue_full`, `publish_failed`, `undecodable`.
    pub dropped: IntCounterVec,
    /// 1 while connected to NATS, else 0.
    pub connected: IntGauge,
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("NATS URL `{url}`: {source}")]
    Url { url: String, source: std::io::Error },
    #[error("connecting to NATS: {0}")]
    Connect(#[from] async_nats::ConnectError),
    #[error("subscribing to NATS subject {subject}: {source}")]
    Subscribe {
        subject: String,
        source: async_nats::SubscribeError,
    },
}

/// The live NATS connection, for `/health`.
pub struct Connection {
    client: async_nats::Client,
    /// Set once the server confirmed the subscription (a flush after it returned), so
    /// "connected" means this node hears the others. The client renews it on reconnect.
    subscribed: AtomicBool,
}

impl Connection {
    /// Whether the client is connected now and subscribed (it reconnects by itself when
    /// not).
    pub fn is_connected(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
            && self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Flushes until the server answered once, then marks the subscription live.
    async fn confirm_subscribed(self: Arc<Self>) {
        while self.client.flush().await.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        self.subscribed.store(true, Ordering::Relaxed);
    }
}

/// One announcement on its way to the publisher task.
enum Outgoing {
    Items(Vec<MessageRow>),
    Counts(Vec<FeedRef>),
}

/// The bus with `--nats-url`: the local hub, plus NATS for the other nodes.
pub struct NatsBus {
    local: Hub,
    queue: mpsc::Sender<Outgoing>,
    connection: Arc<Connection>,
    dropped: IntCounterVec,
    /// Set when an announcement was dropped; the next (re)connect asks every node to
    /// refresh its sockets, so nothing dropped stays unseen.
    lost: Arc<AtomicBool>,
}

/// This process among all that share the subject (random, so two nodes given the same
/// `--node-id` by mistake still hear each other).
fn instance_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    rand::random::<u64>() ^ NEXT.fetch_add(1, Ordering::Relaxed)
}

impl NatsBus {
    /// Connects (in the background if NATS is down now: the node serves its own sockets
    /// meanwhile), subscribes to `<prefix>.feeds` and starts the publisher and subscriber
    /// tasks. Call inside the tokio runtime.
    pub async fn start(
        config: NatsConfig,
        local: Hub,
        counters: BusCounters,
    ) -> Result<NatsBus, NatsError> {
        let mut addrs = Vec::new();
        for url in config.urls.split(',').map(str::trim) {
            let addr = url
                .parse::<async_nats::ServerAddr>()
                .map_err(|source| NatsError::Url {
                    url: url.to_owned(),
                    source,
                })?;
            addrs.push(addr);
        }
        let subject = format!("{}.feeds", config.subject_prefix);
        let node = config.node_id.clone();
        let gauge = counters.connected.clone();
        let refresh = local.downgrade();
        // Set by a disconnect; the next connect refreshes this node's sockets.
        let cut_off = Arc::new(AtomicBool::new(false));
        let lost = Arc::new(AtomicBool::new(false));
        let (queue, outgoing) = mpsc::channel(QUEUE);
        let client = async_nats::ConnectOptions::new()
            .name(format!("tidings {}", config.node_id))
            // A node's own announcements are delivered locally already.
            .no_echo()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                let (gauge, node) = (gauge.clone(), node.clone());
                let (refresh, cut_off) = (refresh.clone(), cut_off.clone());
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            gauge.set(1);
                            tracing::info!(node = %node, "NATS connected: pushes reach every node");
                            // Announcements made while cut off never reached this node:
                            // its sockets get current counts and refetch.
                            if cut_off.swap(false, Ordering::SeqCst)
                                && let Some(hub) = refresh.upgrade()
                            {
                                hub.refresh_all();
                            }
                        }
                        async_nats::Event::Disconnected => {
                            gauge.set(0);
                            cut_off.store(true, Ordering::SeqCst);
                            tracing::warn!(
                                node = %node,
                                "NATS disconnected: pushes reach this node's sockets only until it \
                                 reconnects (clients catch up when they rejoin)"
                            );
                        }
                        other => tracing::info!(node = %node, event = %other, "NATS event"),
                    }
                }
            })
            .connect(addrs)
            .await?;
        let subscription =
            client
                .subscribe(subject.clone())
                .await
                .map_err(|source| NatsError::Subscribe {
                    subject: subject.clone(),
                    source,
                })?;
        let instance = instance_id();
        tokio::spawn(publisher(
            outgoing,
            client.clone(),
            subject,
            Sender {
                node: config.node_id,
                instance,
            },
            counters.clone(),
            lost.clone(),
        ));
        // A weak handle: the task ends with the hub (or the subscription).
        tokio::spawn(subscriber(
            subscription,
            local.downgrade(),
            instance,
            counters.clone(),
        ));
        let connection = Arc::new(Connection {
            client,
            subscribed: AtomicBool::new(false),
        });
        tokio::spawn(connection.clone().confirm_subscribed());
        Ok(NatsBus {
            local,
            queue,
            connection,
            dropped: counters.dropped,
            lost,
        })
    }

    /// The connection, for `/health`.
    pub fn connection(&self) -> Arc<Connection> {
        self.connection.clone()
    }

    fn offer(&self, outgoing: Outgoing) {
        if self.queue.try_send(outgoing).is_err() {
            self.dropped.with_label_values(&["queue_full"]).inc();
            self.lost.store(true, Ordering::SeqCst);
        }
    }
}

impl FeedBus for NatsBus {
    fn publish(&self, messages: &[MessageRow]) {
        self.local.publish(messages);
        if !messages.is_empty() {
            self.offer(Outgoing::Items(messages.to_vec()));
        }
    }

    fn republish(&self, messages: &[MessageRow]) {
        // Pushed like new items, on every node.
        self.publish(messages);
    }

    fn publish_counts(&self, feeds: &[FeedRef]) {
        self.local.publish_counts(feeds);
        if !feeds.is_empty() {
            self.offer(Outgoing::Counts(feeds.to_vec()));
        }
    }
}

/// Who announces.
struct Sender {
    node: String,
    instance: u64,
}

impl Sender {
    /// `messages` as one NATS message of at most `max_payload` bytes: the items, or, when
    /// they are too large (huge trigger data), their feeds as counts-changed. The other
    /// nodes then push fresh counts on every ref of those feeds, as a folded feed does
    /// locally, and their clients refetch.
    fn encode_items(
        &self,
        messages: &[MessageRow],
        max_payload: usize,
    ) -> Result<Vec<u8>, serde_json::Error> {
        match self.encode(wire::items(messages)) {
            Ok(bytes) if bytes.len() > max_payload => self.encode(Body::Counts {
                feeds: wire::feeds_of(messages),
            }),
            other => other,
        }
    }

    fn encode(&self, body: Body) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&Envelope {
            node: self.node.clone(),
            instance: self.instance,
            body,
        })
    }
}

/// Encodes and publishes each announcement in order; ends when the bus is dropped. After
/// a drop (`lost`), once connected, it first asks every node to refresh its sockets.
async fn publisher(
    mut outgoing: mpsc::Receiver<Outgoing>,
    client: async_nats::Client,
    subject: String,
    sender: Sender,
    counters: BusCounters,
    lost: Arc<AtomicBool>,
) {
    loop {
        // Wakes at least every `REFRESH_CHECK` to see whether a loss is still unannounced.
        let next = match tokio::time::timeout(REFRESH_CHECK, outgoing.recv()).await {
            Ok(Some(next)) => Some(next),
            Ok(None) => return,
            Err(_) => None,
        };
        if lost.load(Ordering::SeqCst)
            && client.connection_state() == async_nats::connection::State::Connected
        {
            announce_loss(&client, &subject, &sender, &counters, &lost).await;
        }
        let Some(next) = next else { continue };
        let encoded = match next {
            Outgoing::Items(messages) => sender.encode_items(&messages, client.max_payload()),
            Outgoing::Counts(feeds) => sender.encode(Body::Counts { feeds }),
        };
        let bytes = match encoded {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::error!(error = %e, "NATS: encoding an announcement failed");
                counters
                    .dropped
                    .with_label_values(&["publish_failed"])
                    .inc();
                lost.store(true, Ordering::SeqCst);
                continue;
            }
        };
        match client.publish(subject.clone(), bytes.into()).await {
            Ok(()) => counters.sent.inc(),
            Err(e) => {
                tracing::warn!(error = %e, "NATS: publishing an announcement failed");
                counters
                    .dropped
                    .with_label_values(&["publish_failed"])
                    .inc();
                lost.store(true, Ordering::SeqCst);
            }
        }
    }
}

/// Asks every other node to refresh its sockets (what this node dropped never reached
/// them); clears `lost` once NATS took the request.
async fn announce_loss(
    client: &async_nats::Client,
    subject: &str,
    sender: &Sender,
    counters: &BusCounters,
    lost: &AtomicBool,
) {
    let Ok(bytes) = sender.encode(Body::Refresh) else {
        return;
    };
    lost.store(false, Ordering::SeqCst);
    match client.publish(subject.to_owned(), bytes.into()).await {
        Ok(()) => {
            counters.sent.inc();
            tracing::info!(
                "NATS: announcements were dropped; asked every node to refresh its sockets"
            );
        }
        Err(_) => lost.store(true, Ordering::SeqCst),
    }
}

/// Hands other nodes' announcements to the local hub; ends with the hub.
async fn subscriber(
    mut subscription: async_nats::Subscriber,
    hub: crate::realtime::WeakHub,
    instance: u64,
    counters: BusCounters,
) {
    while let Some(message) = subscription.next().await {
        let Some(hub) = hub.upgrade() else { return };
        match receive(&hub, &message.payload, instance) {
            Ok(true) => counters.received.inc(),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, "NATS: ignoring an announcement");
                counters.dropped.with_label_values(&["undecodable"]).inc();
            }
        }
    }
}

/// Publishes one received announcement on the local hub; false when it was this
/// process's own.
fn receive(hub: &Hub, payload: &[u8], instance: u64) -> Result<bool, wire::WireError> {
    let envelope: Envelope = serde_json::from_slice(payload)?;
    if envelope.instance == instance {
        return Ok(false);
    }
    match envelope.body {
        Body::Items { data, items } => hub.publish(&wire::rows(&data, items)?),
        Body::Counts { feeds } => hub.publish_counts(&feeds),
        Body::Refresh => {
            tracing::info!(node = %envelope.node, "NATS: a node lost announcements; refreshing sockets");
            hub.refresh_all();
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::Clock;
    use crate::model::RecipientRef;
    use crate::realtime::hub::Wake;
    use crate::store::Store;

    fn envelope(instance: u64, body: Body) -> Vec<u8> {
        serde_json::to_vec(&Envelope {
            node: "other".into(),
            instance,
            body,
        })
        .expect("encode")
    }

    #[tokio::test]
    async fn a_refresh_from_another_node_pushes_counts_to_every_socket_and_own_ones_are_skipped() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Store::open(&dir.path().join("nats.db"), false).expect("store");
        let hub = Hub::new(store, 8, Clock::system());
        let params = hub
            .join_params(&serde_json::json!({"client_a": {}}))
            .expect("params");
        let mut session = hub.register(Duration::from_secs(60), None);
        let feed = ("c1".to_owned(), RecipientRef::User("u1".into()));
        session.join("feeds:c1:u1", feed, None, params, None);

        assert!(!receive(&hub, &envelope(7, Body::Refresh), 7).expect("own"));
        assert!(receive(&hub, &envelope(8, Body::Refresh), 7).expect("another's"));
        let wake = tokio::time::timeout(Duration::from_secs(5), session.next())
            .await
            .expect("a push");
        let Wake::Push(text) = wake else {
            panic!("a push expected, got {wake:?}");
        };
        assert!(text.contains("new-message"), "{text}");
        assert!(text.contains("client_a"), "{text}");
        assert!(receive(&hub, b"{not json", 7).is_err());
    }

    #[test]
    fn items_too_large_for_one_nats_message_travel_as_their_feeds_counts() {
        let row = |n: i64, data: serde_json::Value| {
            let item = wire::Item {
                id: format!("m{n}"),
                seq: n,
                channel: "c1".into(),
                recipient: RecipientRef::User(format!("u{n}")),
                tenant: None,
                workflow: "w".into(),
                categories: Vec::new(),
                data: 0,
                inserted_at: String::new(),
                pinned_at: None,
            };
            wire::rows(&[wire::Shared(Arc::new(data))], vec![item])
                .expect("row")
                .remove(0)
        };
        let sender = Sender {
            node: "a".into(),
            instance: 1,
        };
        let small = [row(1, serde_json::json!({"n": 1}))];
        let bytes = sender.encode_items(&small, 1024).expect("encode");
        let back: Envelope = serde_json::from_slice(&bytes).expect("decode");
        assert!(matches!(back.body, Body::Items { .. }));
        let big = [
            row(2, serde_json::json!({"blob": "x".repeat(4096)})),
            row(3, serde_json::json!({"blob": "y".repeat(4096)})),
        ];
        let bytes = sender.encode_items(&big, 1024).expect("encode");
        assert!(bytes.len() <= 1024);
        let back: Envelope = serde_json::from_slice(&bytes).expect("decode");
        let Body::Counts { feeds } = back.body else {
            panic!("counts expected");
        };
        assert_eq!(feeds.len(), 2);
    }
}
