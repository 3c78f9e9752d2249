//! One socket's life: an actorless actix-ws loop (DESIGN.md "Realtime").
//!
//! One task per socket (`actix_web::rt::spawn`: the message stream is not `Send`) runs one
//! `select!` over the client's frames, the hub's wake-ups (a queued push, eviction,
//! shutdown) and one deadline timer (the idle timeout or the token's expiry, whichever
//! comes first). While it works on a client's frame it also reads ahead of actix-ws, so
//! a client that queued frames and left is noticed (`inbound`). An idle socket's task is
//! as small as that `select!` (its rare branches are boxed). Invariants:
//! - Every write to the client also races eviction, shutdown and the idle deadline, so a
//!   client that stops reading cannot wedge its task.
//! - The loop always ends with a close frame carrying a reason (best effort, bounded).
//! - Frames the server cannot understand get an error reply (or a close); never a panic.

use std::time::Duration;

use actix_web::web;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use bytestring::ByteString;
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::{Instant, sleep_until, timeout};

use super::frames::{Frame, PHOENIX_TOPIC};
use super::hub::{Registration, Stopped, Wake};
use super::inbound::Inbound;
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
    /// The client's bytes, read ahead of actix-ws: once the client's side has ended,
    /// frames it sent before leaving (joins) are dropped rather than processed.
    pub inbound: Inbound,
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
    /// When a silent client is closed ("heartbeat timeout"); moved on by every frame.
    idle_deadline: Instant,
    token_expiry: Option<Instant>,
}

impl Signals {
    /// The one deadline to wait for: the idle timeout or the token's expiry.
    fn deadline(&self) -> Instant {
        match self.token_expiry {
            Some(at) => at.min(self.idle_deadline),
            None => self.idle_deadline,
        }
    }

    /// What the deadline meant once it passed (worked out then, not kept while waiting).
    fn expired(&self) -> Stop {
        match self.token_expiry {
            Some(at) if at <= self.idle_deadline => {
                Stop::Server(CloseCode::Policy, "user token expired")
            }
            _ => Stop::Server(CloseCode::Normal, "heartbeat timeout"),
        }
    }

    /// What the idle loop waits for besides the client: a push, or a reason to stop.
    async fn next(&mut self) -> Result<ByteString, Stop> {
        tokio::select! {
            wake = self.registration.next() => match wake {
                Wake::Push(text) => Ok(text),
                Wake::Stop(stopped) => Err(hub_stop(stopped)),
            },
            () = sleep_until(self.deadline()) => Err(self.expired()),
        }
    }

    /// Resolves when the socket must end for a reason other than the client.
    async fn stop(&mut self) -> Stop {
        tokio::select! {
            stopped = self.registration.stopped() => hub_stop(stopped),
            () = sleep_until(self.deadline()) => self.expired(),
        }
    }
}

fn hub_stop(stopped: Stopped) -> Stop {
    match stopped {
        Stopped::Shutdown => Stop::Server(CloseCode::Away, "server shutting down"),
        Stopped::Evicted => Stop::Server(CloseCode::Again, "too slow: push queue overflowed"),
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

/// Everything the loop keeps while the socket is open.
struct Live {
    session: actix_ws::Session,
    stream: actix_ws::AggregatedMessageStream,
    ctx: SessionContext,
    signals: Signals,
    bad_frames: u32,
}

/// Runs the socket until it ends, then closes it with a reason.
///
/// Not an `async fn`: an `async fn` keeps its arguments and the locals moved out of them
/// side by side for the task's whole life. Here the state is built first and the loop
/// uses it in place, so an idle socket's task holds each piece once.
pub fn run(
    session: actix_ws::Session,
    stream: actix_ws::MessageStream,
    ctx: SessionContext,
) -> impl std::future::Future<Output = ()> {
    let token_expiry = match &ctx.caller {
        Caller::User(claims) => Some(expiry_instant(claims.expires_at)),
        _ => None,
    };
    let signals = Signals {
        registration: ctx.state.hub.register(),
        idle_deadline: idle_deadline(&ctx),
        token_expiry,
    };
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let mut live = Live {
        session,
        stream,
        ctx,
        signals,
        bad_frames: 0,
    };
    async move {
        let stop = loop {
            let event = tokio::select! {
                pushed = live.signals.next() => pushed.map(Event::Push),
                incoming = live.stream.next() => Ok(Event::Client(incoming)),
            };
            let result = match event {
                Err(stop) => Err(stop),
                Ok(Event::Push(text)) => {
                    let mut out = Out {
                        session: &mut live.session,
                        signals: &mut live.signals,
                    };
                    // Boxed, like every branch below: a task is as large as its largest
                    // state, and this loop spends its life idle in the `select!` above.
                    Box::pin(out.text_raw(text)).await
                }
                Ok(Event::Client(None)) => Err(Stop::Client(None)),
                Ok(Event::Client(Some(Err(e)))) => Err(protocol_stop(&e)),
                Ok(Event::Client(Some(Ok(message)))) => {
                    live.signals.idle_deadline = idle_deadline(&live.ctx);
                    let mut out = Out {
                        session: &mut live.session,
                        signals: &mut live.signals,
                    };
                    let frame = client_frame(&live.ctx, &mut out, message, &mut live.bad_frames);
                    Box::pin(frame).await
                }
            };
            if let Err(stop) = result {
                break stop;
            }
        };
        Box::pin(finish(live.session, live.signals, stop)).await;
    }
}

/// When a socket that stays silent from now on is closed.
fn idle_deadline(ctx: &SessionContext) -> Instant {
    Instant::now() + Duration::from_secs(ctx.state.settings.ws_idle_timeout_secs.max(1))
}

enum Event {
    Push(ByteString),
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

async fn finish(session: actix_ws::Session, signals: Signals, stop: Stop) {
    // Unregister first, so nothing more is queued for a socket that is going away.
    drop(signals);
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

/// One frame from the client, unless the client has already left (then its queued frames
/// are dropped). Reads ahead of actix-ws while the frame is handled.
async fn client_frame(
    ctx: &SessionContext,
    out: &mut Out<'_>,
    message: AggregatedMessage,
    bad_frames: &mut u32,
) -> Result<(), Stop> {
    if ctx.inbound.look_ahead().await {
        return Err(Stop::Client(None));
    }
    tokio::select! {
        handled = client_message(ctx, out, message, bad_frames) => handled,
        never = ctx.inbound.keep_reading() => match never {},
    }
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
#[cfg(test)]
mod tests {
    use super::*;

    fn future_size<A, B, C, F: std::future::Future>(_: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every idle socket holds one task: tokio allocates it in 128-byte steps (the
    /// future plus ~112 bytes of header and trailer), so 640 bytes of future is a
    /// 768-byte task. Was 1,016 bytes (a 1,152-byte task) before issue 10 item 4.
    #[test]
    fn a_sockets_task_stays_small() {
        let size = future_size(run);
        assert!(size <= 640, "the session future grew to {size} bytes");
    }
}
