//! One socket's life: an actorless actix-ws loop (DESIGN.md "Realtime").
//!
//! One task per socket (`actix_web::rt::spawn`: the message stream is not `Send`) runs one
//! `select!` over the client's frames and the hub's wake-ups: a queued push, or a reason
//! to stop (eviction, shutdown, the idle timeout, the token's expiry; the hub's sweeper
//! watches the deadlines, so the task holds no timer). While it works on a client's frame
//! it also reads ahead of actix-ws, so a client that queued frames and left is noticed
//! (`inbound`). An idle socket's task is as small as that `select!` (its rare branches
//! are boxed; `a_sockets_task_stays_small` holds it there). Invariants:
//! - Every write to the client also races the hub's stop reasons, so a client that stops
//!   reading cannot wedge its task.
//! - The loop always ends with a close frame carrying a reason (best effort, bounded).
//! - Frames the server cannot understand get an error reply (or a close); never a panic.

use std::time::Duration;

use actix_web::web;
use actix_ws::{AggregatedMessage, CloseCode, CloseReason};
use bytestring::ByteString;
use futures_util::StreamExt;
use serde_json::json;
use tokio::time::timeout;

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

fn hub_stop(stopped: Stopped) -> Stop {
    match stopped {
        Stopped::Shutdown => Stop::Server(CloseCode::Away, "server shutting down"),
        Stopped::Evicted => Stop::Server(CloseCode::Again, "too slow: push queue overflowed"),
        Stopped::Idle => Stop::Server(CloseCode::Normal, "heartbeat timeout"),
        Stopped::TokenExpired => Stop::Server(CloseCode::Policy, "user token expired"),
    }
}

/// The connection's writer: every write races the stop signals.
pub(super) struct Out<'a> {
    session: &'a mut actix_ws::Session,
    registration: &'a mut Registration,
}

impl Out<'_> {
    pub(super) async fn text_raw(&mut self, text: ByteString) -> Result<(), Stop> {
        tokio::select! {
            sent = self.session.text(text) => sent.map_err(|_| Stop::Client(None)),
            stopped = self.registration.stopped() => Err(hub_stop(stopped)),
        }
    }

    pub(super) async fn frame(&mut self, frame: Frame) -> Result<(), Stop> {
        self.text_raw(frame.to_text()).await
    }

    pub(super) fn registration(&mut self) -> &mut Registration {
        self.registration
    }
}

/// Everything the loop keeps while the socket is open.
struct Live {
    session: actix_ws::Session,
    stream: actix_ws::AggregatedMessageStream,
    ctx: SessionContext,
    registration: Registration,
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
    let expires_in = match &ctx.caller {
        Caller::User(claims) => Some(expires_in(claims.expires_at)),
        _ => None,
    };
    let registration = ctx.state.hub.register(idle_timeout(&ctx), expires_in);
    let stream = stream
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    let mut live = Live {
        session,
        stream,
        ctx,
        registration,
        bad_frames: 0,
    };
    async move {
        let stop = loop {
            let event = tokio::select! {
                wake = live.registration.next() => match wake {
                    Wake::Push(text) => Ok(Event::Push(text)),
                    Wake::Stop(stopped) => Err(hub_stop(stopped)),
                },
                incoming = live.stream.next() => Ok(Event::Client(incoming)),
            };
            let result = match event {
                Err(stop) => Err(stop),
                Ok(Event::Push(text)) => {
                    let mut out = Out {
                        session: &mut live.session,
                        registration: &mut live.registration,
                    };
                    // Boxed, like every branch below: a task is as large as its largest
                    // state, and this loop spends its life idle in the `select!` above.
                    Box::pin(out.text_raw(text)).await
                }
                Ok(Event::Client(None)) => Err(Stop::Client(None)),
                Ok(Event::Client(Some(Err(e)))) => Err(protocol_stop(&e)),
                Ok(Event::Client(Some(Ok(message)))) => {
                    live.registration.touch(idle_timeout(&live.ctx));
                    let mut out = Out {
                        session: &mut live.session,
                        registration: &mut live.registration,
                    };
                    let frame = client_frame(&live.ctx, &mut out, message, &mut live.bad_frames);
                    Box::pin(frame).await
                }
            };
            if let Err(stop) = result {
                break stop;
            }
        };
        Box::pin(finish(live.session, live.registration, stop)).await;
    }
}

/// How long a silent client keeps its socket.
fn idle_timeout(ctx: &SessionContext) -> Duration {
    Duration::from_secs(ctx.state.settings.ws_idle_timeout_secs.max(1))
}

enum Event {
    Push(ByteString),
    Client(Option<Result<AggregatedMessage, actix_ws::ProtocolError>>),
}

/// How long until a token with this `exp` (Unix seconds) expires. JWT expiry is real time
/// shared with the token's signer, so it is read from the system clock (see
/// `clock::unix_now`), not the server's injectable clock.
fn expires_in(exp: u64) -> Duration {
    let now_unix = crate::clock::unix_now();
    // Capped, so an absurd `exp` is simply "not in this socket's life".
    Duration::from_secs(exp.saturating_sub(now_unix).min(MAX_TOKEN_LIFETIME_SECS))
}

fn protocol_stop(e: &actix_ws::ProtocolError) -> Stop {
    if super::frame_guard::is_overflow(e) {
        Stop::Server(CloseCode::Size, "frame too large")
    } else {
        Stop::Server(CloseCode::Protocol, "websocket protocol error")
    }
}

async fn finish(session: actix_ws::Session, registration: Registration, stop: Stop) {
    // Unregister first, so nothing more is queued for a socket that is going away.
    drop(registration);
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
                stopped = out.registration.stopped() => Err(hub_stop(stopped)),
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

    /// Every idle socket holds one task, which tokio allocates in 128-byte steps: the
    /// future plus ~100 bytes of header and trailer. Up to 512 bytes of future is a
    /// 640-byte task, what a bare actix-ws echo server's task costs. Was 1,016 bytes (a
    /// 1,152-byte task) before issue 10 item 4.
    #[test]
    fn a_sockets_task_stays_small() {
        let size = future_size(run);
        assert!(size <= 512, "the session future grew to {size} bytes");
    }
}
