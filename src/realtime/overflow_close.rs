//! Ends the connection itself once a frame over the cap was refused.
//!
//! The [`FrameGuard`](super::frame_guard) stops reading at an oversized frame's header and
//! the session closes the socket with 1009. But the connection still belongs to actix-http,
//! whose dispatcher, once the response ends with request bytes unread, "lingers": it keeps
//! reading and discarding the client's bytes until the client-disconnect timeout (1 s) —
//! about 2 GB at loopback speed for a frame declaring 2^62 bytes (issue 17 item 9).
//!
//! This body wraps the socket's response stream. After the guard has tripped and the
//! session's last frame (the 1009 close) has been handed to the dispatcher, it yields once
//! more (so the dispatcher flushes the close to the kernel), then fails: the dispatcher
//! drops a connection whose body failed at once, without lingering.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Bytes;

/// Set by the guard when it refused a frame; read by the response body.
#[derive(Clone, Default)]
pub struct OverflowFlag(Rc<Cell<bool>>);

impl OverflowFlag {
    pub fn set(&self) {
        self.0.set(true);
    }

    pub fn is_set(&self) -> bool {
        self.0.get()
    }
}

/// The connection was ended after a frame over the cap (the body's error).
#[derive(Debug, thiserror::Error)]
#[error("the client sent a frame over the cap; connection ended after the 1009 close")]
pub struct FrameTooLarge;

/// The socket's response body; see the module docs.
pub struct CloseAfterOverflow {
    inner: BoxBody,
    flag: OverflowFlag,
    flushed: bool,
}

impl CloseAfterOverflow {
    pub fn wrap(inner: BoxBody, flag: OverflowFlag) -> BoxBody {
        BoxBody::new(CloseAfterOverflow {
            inner,
            flag,
            flushed: false,
        })
    }
}

impl MessageBody for CloseAfterOverflow {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(None) if this.flag.is_set() => {
                if this.flushed {
                    return Poll::Ready(Some(Err(Box::new(FrameTooLarge))));
                }
                // One more turn: the dispatcher writes out what it holds (the close frame)
                // when the body waits, then polls again.
                this.flushed = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn the_body_fails_after_its_last_frame_only_when_the_guard_tripped() {
        let flag = OverflowFlag::default();
        let mut body = CloseAfterOverflow::wrap(BoxBody::new("close"), flag.clone());
        let chunk = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert_eq!(chunk.and_then(Result::ok), Some(Bytes::from("close")));
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert!(end.is_none(), "no overflow: the body just ends");

        let mut body = CloseAfterOverflow::wrap(BoxBody::new("close"), flag.clone());
        flag.set();
        let chunk = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert!(chunk.is_some_and(|c| c.is_ok()));
        let end = std::future::poll_fn(|cx| Pin::new(&mut body).poll_next(cx)).await;
        assert!(end.is_some_and(|e| e.is_err()), "the connection is ended");
    }
}
