//! The session-link state machine: what the hub knows about one socket, shared by the
//! socket's task (which waits on it), the publisher (which queues pushes on it) and the
//! sweeper (which stops it past a deadline).
//!
//! A link leaves `RUNNING` once, for one reason (evicted, shut down, idle, token
//! expired, or gone when the session ends itself); every change wakes the session.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use bytestring::ByteString;
use futures_util::task::AtomicWaker;

/// Why the hub stopped a session (see [`Registration::stopped`](super::Registration::stopped)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Its push queue overflowed: the client was not reading.
    Evicted,
    /// The server is shutting down.
    Shutdown,
    /// The client sent nothing for the idle timeout.
    Idle,
    /// The user token the socket connected with has expired.
    TokenExpired,
}

/// What the hub wakes a session for (see [`Registration::next`](super::Registration::next)).
#[derive(Debug)]
pub enum Wake {
    /// A push for the client, ready to send.
    Push(ByteString),
    /// The session must close, for this reason.
    Stop(Stopped),
}

const RUNNING: u8 = 0;
const EVICTED: u8 = 1;
pub(super) const SHUTDOWN: u8 = 2;
/// The session ended; pushes are dropped.
const GONE: u8 = 3;
const IDLE: u8 = 4;
const TOKEN_EXPIRED: u8 = 5;

/// What the hub knows about one socket.
pub(super) struct SessionLink {
    pub(super) id: u64,
    /// Pushes not yet taken by the session, at most the hub's `queue`. Locked only to
    /// push or pop; released (no allocation) whenever it empties.
    pub(super) pending: std::sync::Mutex<VecDeque<ByteString>>,
    /// `RUNNING`, or why not (`EVICTED`, `SHUTDOWN`, `IDLE`, `TOKEN_EXPIRED`, `GONE`);
    /// leaves `RUNNING` once.
    state: AtomicU8,
    /// When the client has been silent too long, in milliseconds after the hub's start;
    /// moved on by every frame from the client ([`Registration::touch`](super::Registration::touch)).
    pub(super) idle_at: AtomicU64,
    /// When the socket's user token expires, in the same clock (`u64::MAX`: never).
    pub(super) expires_at: AtomicU64,
    /// The session's task, woken when a push was queued or it must stop. The session
    /// registers before it looks at the queue and the state, so nothing set after its
    /// look goes unnoticed. (Kept here rather than as a `Notified` in the session's
    /// future: an idle task is then 128 bytes smaller, issue 10 item 4.)
    pub(super) wake: AtomicWaker,
}

impl SessionLink {
    pub(super) fn stop(&self, why: u8) -> bool {
        let stopped = self
            .state
            .compare_exchange(RUNNING, why, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if stopped {
            self.wake.wake();
        }
        stopped
    }

    /// Stops the session if `now` is past one of its deadlines (the token's first).
    pub(super) fn check_deadlines(&self, now: u64) {
        if self.expires_at.load(Ordering::Relaxed) <= now {
            self.stop(TOKEN_EXPIRED);
        } else if self.idle_at.load(Ordering::Relaxed) <= now {
            self.stop(IDLE);
        }
    }

    pub(super) fn stopped(&self) -> Option<Stopped> {
        match self.state.load(Ordering::SeqCst) {
            EVICTED => Some(Stopped::Evicted),
            SHUTDOWN => Some(Stopped::Shutdown),
            IDLE => Some(Stopped::Idle),
            TOKEN_EXPIRED => Some(Stopped::TokenExpired),
            // GONE is set only by the session itself, on its way out.
            _ => None,
        }
    }

    pub(super) fn pop(&self) -> Option<ByteString> {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let text = pending.pop_front();
        if pending.is_empty() && pending.capacity() > 0 {
            // An idle socket holds no queue memory.
            *pending = VecDeque::new();
        }
        text
    }
}

/// What queuing one push on a link came to (see [`SessionLink::offer`]).
pub(super) enum Offered {
    /// Queued; the session was woken.
    Queued,
    /// The queue was full and this push evicted the session.
    Evicted,
    /// Not delivered: the session was already stopped or gone, or another push just
    /// evicted it.
    Dropped,
}

impl SessionLink {
    /// A running link with an empty queue and the given deadlines.
    pub(super) fn new(id: u64, idle_at: u64, expires_at: u64) -> Self {
        SessionLink {
            id,
            pending: std::sync::Mutex::new(VecDeque::new()),
            state: AtomicU8::new(RUNNING),
            idle_at: AtomicU64::new(idle_at),
            expires_at: AtomicU64::new(expires_at),
            wake: AtomicWaker::new(),
        }
    }

    /// Queues `text` without waiting, at most `queue` deep; a push past that evicts.
    pub(super) fn offer(&self, text: ByteString, queue: usize) -> Offered {
        let queued = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            // Under the lock, so a session that is going away (`GONE`) gets nothing more.
            if self.state.load(Ordering::SeqCst) != RUNNING {
                None
            } else if pending.len() >= queue {
                Some(false)
            } else {
                pending.push_back(text);
                Some(true)
            }
        };
        match queued {
            Some(true) => {
                self.wake.wake();
                Offered::Queued
            }
            // Full: this push evicts the session (unless another push just did).
            Some(false) if self.stop(EVICTED) => Offered::Evicted,
            Some(false) | None => Offered::Dropped,
        }
    }

    /// The session ends: nothing more is queued, and the queue's memory goes.
    pub(super) fn close(&self) {
        self.state.store(GONE, Ordering::SeqCst);
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) = VecDeque::new();
    }
}
