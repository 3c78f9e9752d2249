//! One socket's life: an actorless actix-ws loop (DESIGN.md "Realtime").
//!
//! One task per socket (`actix_web::rt::spawn`: the message stream is not `Send`) runs one
//! `select!` over the client's frames, its bounded push queue, an idle deadline, eviction
//! and shutdown. Invariants:
//! - Every write to the client also races eviction, shutdown and the idle deadline, so a
//!   client that stops reading cannot wedge its task.
//! - The loop always ends with a close frame carrying a reason (best effort, bounded).
//! - Frames the server cannot understand get an error reply (or a close); never a panic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::web;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use bytestring::ByteString;
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until, timeout};

use super::frames::{Frame, PHOENIX_TOPIC};
use super::hub::{PushQueue, Registration};
use super::joins;
use crate::auth::Caller;
use crate::state::AppState;

/// Largest frame accepted from a client; join params are small.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Malformed frames tolerated before the socket is closed.
const MAX_BAD_FRAMES: u32 = 16;
/// Longest a token's `exp` keeps a socket open (ten years: effectively "no limit").
const MAX_TOKEN_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// How long the final close frame may take to leave.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Everything a session needs besides its socket.
pub struct SessionContext {
    pub state: web::Data<AppState>,
    pub caller: Caller,
    /// Set once the client's side of the connection has ended: frames it sent before
    /// leaving (joins) are dropped rather than processed for a socket that is gone.
    pub client_gone: Arc<AtomicBool>,
    /// This socket's place under the per-user and per-address caps, held until it ends.
    pub _slot: super::socket_limits::SocketSlot,
}

/// Why the loop stopped.
pub(super) enum Stop {
    /// The client closed or vanished; echo its reason if any.
    Client(Option<CloseReason>),
    /// The server ends the socket with this reason.
    Server(CloseCode, &'static str),
}

/// What the loop waits on besides the client stream; shared by writes.
struct Signals {
    registration: Registration,
    shutdown: watch::Receiver<bool>,
    deadline: Instant,
    idle: Duration,
    token_expiry: Option<Instant>,
}

impl Signals {
    /// Resolves when the socket must end for a reason other than the client.
    async fn stop(&mut self) -> Stop {
        let expiry = self.token_expiry;
        tokio::select! {
            _ = self.shutdown.wait_for(|down| *down) => {
                Stop::Server(CloseCode::Away, "server shutting down")
            }
            () = self.registration.evicted() => {
                Stop::Server(CloseCode::Again, "too slow: push queue overflowed")
            }
            () = sleep_until(self.deadline) => Stop::Server(CloseCode::Normal, "heartbeat timeout"),
            () = async move {
                match expiry {
                    Some(at) => sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Stop::Server(CloseCode::Policy, "user token expired"),
        }
    }
}

/// The connection's writer: every write races the stop signals.
pub(super) struct Out<'a> {
    session: &'a mut actix_ws::Session,
    signals: &'a mut Signals,
}

impl Out<'_> {
    pub(super) async fn text_raw(&mut self, text: ByteString) -> Result<(), Stop> {
        tokio::select! {
            sent = self.session.text(text) => sent.map_err(|_| Stop::Client(None)),
            stop = self.signals.stop() => Err(stop),
        }
    }

    pub(super) async fn frame(&mut self, frame: Frame) -> Result<(), Stop> {
        self.text_raw(frame.to_text()).await
    }

    pub(super) fn registration(&mut self) -> &mut Registration {
        &mut self.signals.registration
    }
}

/// Runs the socket until it ends, then closes it with a reason.
pub async fn run(
    mut session: actix_ws::Session,
    stream: actix_ws::MessageStream,
    ctx: SessionContext,
) {
    let settings = &ctx.state.settings;
    let hub = ctx.state.hub.clone();
    let (registration, mut queue) = hub.register();
    let idle = Duration::from_secs(settings.ws_idle_timeout_secs.max(1));
    let token_expiry = match &ctx.caller {
        Caller::User(claims) => Some(expiry_instant(claims.expires_at)),
        _ => None,
    };
    let mut signals = Signals {
        registration,
        shutdown: hub.shutdown_signal(),
        deadline: Instant::now() + idle,
        idle,
        token_expiry,
    };
    let mut stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let mut bad_frames = 0u32;
    let stop = loop {
        let event = tokio::select! {
            stop = signals.stop() => Err(stop),
            pushed = queue.next() => Ok(Event::Push(pushed)),
            incoming = stream.next() => Ok(Event::Client(incoming)),
        };
        let result = match event {
            Err(stop) => Err(stop),
            Ok(Event::Push(Some(text))) => {
                let mut out = Out {
                    session: &mut session,
                    signals: &mut signals,
                };
                // Boxed, like every branch below: a task is as large as its largest
                // state, and this loop spends its life idle in the `select!` above.
                Box::pin(out.text_raw(text)).await
            }
            Ok(Event::Push(None)) => Err(Stop::Server(CloseCode::Error, "hub gone")),
            Ok(Event::Client(None)) => Err(Stop::Client(None)),
            Ok(Event::Client(Some(Err(e)))) => Err(protocol_stop(&e)),
            Ok(Event::Client(Some(Ok(_)))) if ctx.client_gone.load(Ordering::Acquire) => {
                Err(Stop::Client(None))
            }
            Ok(Event::Client(Some(Ok(message)))) => {
                signals.deadline = Instant::now() + signals.idle;
                let mut out = Out {
                    session: &mut session,
                    signals: &mut signals,
                };
                Box::pin(client_message(&ctx, &mut out, message, &mut bad_frames)).await
            }
        };
        if let Err(stop) = result {
            break stop;
        }
    };
    Box::pin(finish(session, signals, queue, stop)).await;
}

enum Event {
    Push(Option<ByteString>),
    Client(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
}

fn expiry_instant(exp: u64) -> Instant {
    let now_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Capped so an absurd `exp` cannot overflow `Instant` arithmetic.
    let secs = exp.saturating_sub(now_unix).min(MAX_TOKEN_LIFETIME_SECS);
    Instant::now() + Duration::from_secs(secs)
}

fn protocol_stop(e: &actix_ws::ProtocolError) -> Stop {
    if super::frame_guard::is_overflow(e) {
        Stop::Server(CloseCode::Size, "frame too large")
    } else {
        Stop::Server(CloseCode::Protocol, "websocket protocol error")
    }
}

async fn finish(session: actix_ws::Session, signals: Signals, queue: PushQueue, stop: Stop) {
    // Unregister first, so nothing more is queued for a socket that is going away.
    drop(signals);
    drop(queue);
    let reason = match stop {
        Stop::Client(reason) => reason,
        Stop::Server(code, description) => {
            tracing::debug!(?code, description, "realtime: closing socket");
            Some(CloseReason {
                code,
                description: Some(description.to_owned()),
            })
        }
    };
    let _ = timeout(CLOSE_GRACE, session.close(reason)).await;
}

async fn client_message(
    ctx: &SessionContext,
    out: &mut Out<'_>,
    message: AggregatedMessage,
    bad_frames: &mut u32,
) -> Result<(), Stop> {
    match message {
        AggregatedMessage::Text(text) => match Frame::parse(&text) {
            Ok(frame) => handle_frame(ctx, out, frame).await,
            Err(e) => {
                *bad_frames += 1;
                if *bad_frames > MAX_BAD_FRAMES {
                    return Err(Stop::Server(
                        CloseCode::Invalid,
                        "too many malformed frames",
                    ));
                }
                match Frame::salvage(&text) {
                    Some((join_ref, msg_ref, topic)) => {
                        let reason = format!("malformed frame: {e}");
                        out.frame(Frame::reply_error(join_ref, msg_ref, &topic, &reason))
                            .await
                    }
                    None => Err(Stop::Server(
                        CloseCode::Invalid,
                        "malformed frame: expected a Phoenix v2 JSON array",
                    )),
                }
            }
        },
        AggregatedMessage::Binary(_) => Err(Stop::Server(
            CloseCode::Unsupported,
            "binary frames are not supported; use Phoenix v2 JSON text frames",
        )),
        AggregatedMessage::Ping(bytes) => {
            let sent = tokio::select! {
                sent = out.session.pong(&bytes) => sent.map_err(|_| Stop::Client(None)),
                stop = out.signals.stop() => Err(stop),
            };
            sent
        }
        AggregatedMessage::Pong(_) => Ok(()),
        AggregatedMessage::Close(reason) => Err(Stop::Client(reason)),
    }
}

async fn handle_frame(ctx: &SessionContext, out: &mut Out<'_>, frame: Frame) -> Result<(), Stop> {
    let Frame {
        join_ref,
        msg_ref,
        topic,
        event,
        payload,
    } = frame;
    match (topic.as_str(), event.as_str()) {
        (PHOENIX_TOPIC, "heartbeat") => {
            out.frame(Frame::reply_ok(join_ref, msg_ref, &topic, json!({})))
                .await
        }
        (_, "phx_join") => joins::join(ctx, out, join_ref, msg_ref, topic, payload).await,
        (_, "phx_leave") => {
            let was_joined = out.registration().leave(&topic);
            out.frame(Frame::reply_ok(
                join_ref.clone(),
                msg_ref,
                &topic,
                json!({}),
            ))
            .await?;
            if was_joined {
                out.frame(Frame::close(join_ref, &topic)).await?;
            }
            Ok(())
        }
        (_, _) if out.registration().is_joined(&topic) => {
            let reason = format!("unknown event `{event}`");
            out.frame(Frame::reply_error(join_ref, msg_ref, &topic, &reason))
                .await
        }
        _ => {
            out.frame(Frame::reply_error(
                join_ref,
                msg_ref,
                &topic,
                "unmatched topic",
            ))
            .await
        }
    }
}
