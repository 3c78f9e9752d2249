//! The client's bytes, shared between actix-ws (which decodes them into frames) and the
//! session (which looks a few chunks ahead for the client's end).
//!
//! A client may queue many frames and leave (issue 8, item 9): actix-ws decodes what it
//! has read into a queue and hands those frames out without reading further, so the end
//! of the connection would only be seen after every queued join was processed for a
//! socket that is gone. The session therefore reads ahead of actix-ws, into a small
//! buffer, whenever it takes a frame and while it works on one; at the end of the
//! client's side it marks the client gone and drops what is still queued. This happens
//! inside the session's own task (one task per socket), not in a reader task of its own.
//!
//! Invariants:
//! - Bytes reach actix-ws in the order they arrived: the buffered chunks first, then the
//!   connection.
//! - At most [`READ_AHEAD_CHUNKS`] chunks (each at most one read) wait in the buffer;
//!   the connection's own backpressure bounds the rest.
//! - Everything passes the [`FrameGuard`] first, so an oversized frame still ends the
//!   stream at its header.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

use super::frame_guard::FrameGuard;
use super::overflow_close::OverflowFlag;

/// Chunks read ahead of actix-ws, at most.
pub const READ_AHEAD_CHUNKS: usize = 8;

type Chunk = Result<Bytes, PayloadError>;

/// The session's handle on the client's bytes (see the module docs).
pub struct Inbound {
    shared: Rc<RefCell<ReadAhead>>,
}

struct ReadAhead {
    guard: FrameGuard<Payload>,
    ahead: VecDeque<Chunk>,
    /// The guard returned its last item: nothing more is read.
    ended: bool,
    /// The client's side ended (EOF or a read error, not an oversized frame).
    gone: bool,
    /// Set when the guard refused an oversized frame (the response body then ends the
    /// connection, `overflow_close`).
    overflow: OverflowFlag,
}

impl ReadAhead {
    /// Reads from the guard into the buffer until it waits, ends or the buffer is full.
    fn fill(&mut self, cx: &mut Context<'_>) {
        while !self.ended && self.ahead.len() < READ_AHEAD_CHUNKS {
            match Pin::new(&mut self.guard).poll_next(cx) {
                Poll::Ready(item) => {
                    if let Some(item) = self.note(item) {
                        self.ahead.push_back(item);
                    }
                }
                Poll::Pending => return,
            }
        }
    }

    /// Records the end of the stream, and the client's end, in what the guard returned.
    fn note(&mut self, item: Option<Chunk>) -> Option<Chunk> {
        match &item {
            None => (self.ended, self.gone) = (true, true),
            Some(Err(PayloadError::Overflow)) => {
                self.ended = true;
                self.overflow.set();
            }
            Some(Err(_)) => (self.ended, self.gone) = (true, true),
            Some(Ok(_)) => {}
        }
        item
    }
}

impl Inbound {
    /// Wraps the upgraded connection's payload: the session's handle, and the payload to
    /// give actix-ws.
    pub fn new(payload: Payload, max_frame: usize) -> (Inbound, Payload) {
        let shared = Rc::new(RefCell::new(ReadAhead {
            guard: FrameGuard::new(payload, max_frame),
            ahead: VecDeque::new(),
            ended: false,
            gone: false,
            overflow: OverflowFlag::default(),
        }));
        let stream = ToActixWs {
            shared: shared.clone(),
        };
        let boxed: Pin<Box<dyn Stream<Item = Chunk>>> = Box::pin(stream);
        (Inbound { shared }, Payload::from(boxed))
    }

    /// Set once the guard refused a frame over the cap.
    pub fn overflow_flag(&self) -> OverflowFlag {
        self.shared.borrow().overflow.clone()
    }

    /// Whether the client's side of the connection has ended.
    pub fn client_gone(&self) -> bool {
        self.shared.borrow().gone
    }

    /// Reads ahead what has already arrived, without waiting; then says whether the
    /// client is gone.
    pub async fn look_ahead(&self) -> bool {
        std::future::poll_fn(|cx| {
            self.shared.borrow_mut().fill(cx);
            Poll::Ready(())
        })
        .await;
        self.client_gone()
    }

    /// Keeps reading ahead as bytes arrive; never completes. Raced against work on a
    /// frame, so the client's end is seen while that work waits.
    pub async fn keep_reading(&self) -> std::convert::Infallible {
        std::future::poll_fn(|cx| {
            self.shared.borrow_mut().fill(cx);
            Poll::Pending
        })
        .await
    }
}

/// What actix-ws reads: the buffered chunks, then the guarded connection.
struct ToActixWs {
    shared: Rc<RefCell<ReadAhead>>,
}

impl Stream for ToActixWs {
    type Item = Chunk;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        let mut read = self.shared.borrow_mut();
        if let Some(chunk) = read.ahead.pop_front() {
            if read.ahead.is_empty() {
                // An idle socket holds no read-ahead memory.
                read.ahead = VecDeque::new();
            }
            return Poll::Ready(Some(chunk));
        }
        if read.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut read.guard).poll_next(cx) {
            Poll::Ready(item) => Poll::Ready(read.note(item)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A masked client text frame.
    fn frame(text: &str) -> Bytes {
        let mut f = vec![0x81, 0x80 | text.len() as u8, 0, 0, 0, 0];
        f.extend_from_slice(text.as_bytes());
        Bytes::from(f)
    }

    fn payload(chunks: Vec<Chunk>) -> Payload {
        Payload::Stream {
            payload: Box::pin(futures_util::stream::iter(chunks)),
        }
    }

    #[tokio::test]
    async fn bytes_read_ahead_reach_actix_ws_in_order_and_the_end_marks_the_client_gone() {
        let chunks: Vec<Chunk> = (0..3).map(|i| Ok(frame(&format!("f{i}")))).collect();
        let (inbound, to_ws) = Inbound::new(payload(chunks), 1024);
        let Payload::Stream { payload: mut to_ws } = to_ws else {
            panic!("a stream payload")
        };
        assert_eq!(to_ws.next().await.expect("first").expect("ok"), frame("f0"));
        assert!(!inbound.client_gone());
        // Reads the rest and the end ahead of actix-ws.
        assert!(inbound.look_ahead().await, "the end was read ahead");
        assert_eq!(inbound.shared.borrow().ahead.len(), 2);
        assert_eq!(
            to_ws.next().await.expect("second").expect("ok"),
            frame("f1")
        );
        assert_eq!(to_ws.next().await.expect("third").expect("ok"), frame("f2"));
        assert!(to_ws.next().await.is_none());
        assert_eq!(inbound.shared.borrow().ahead.capacity(), 0);
    }

    #[tokio::test]
    async fn read_ahead_is_bounded_and_an_oversized_frame_is_not_the_client_leaving() {
        let chunks: Vec<Chunk> = (0..20).map(|i| Ok(frame(&format!("f{i}")))).collect();
        let (inbound, _to_ws) = Inbound::new(payload(chunks), 1024);
        assert!(!inbound.look_ahead().await);
        assert_eq!(inbound.shared.borrow().ahead.len(), READ_AHEAD_CHUNKS);

        let mut chunks: Vec<Chunk> = vec![Ok(frame("f0"))];
        let mut huge = vec![0x81, 0x80 | 127];
        huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
        chunks.push(Ok(Bytes::from(huge)));
        let (inbound, to_ws) = Inbound::new(payload(chunks), 1024);
        assert!(
            !inbound.look_ahead().await,
            "an overflow is not the client's end"
        );
        let Payload::Stream { payload: mut to_ws } = to_ws else {
            panic!("a stream payload")
        };
        assert!(to_ws.next().await.expect("first").is_ok());
        assert!(matches!(
            to_ws.next().await,
            Some(Err(PayloadError::Overflow))
        ));
        assert!(to_ws.next().await.is_none());
    }
}
