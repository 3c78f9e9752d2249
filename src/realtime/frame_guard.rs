//! The socket's inbound bytes, watched before actix-ws buffers them.
//!
//! actix-http's WebSocket codec checks its `max_size` only once a whole frame is in its
//! buffer, and actix-ws reads everything the connection delivers into that buffer. A
//! client that declares a 2^62-byte frame and keeps streaming therefore grows the buffer
//! without bound (issue 8, item 1). This stream sits between the connection and actix-ws
//! and follows the frame boundaries: as soon as a frame header declares a payload larger
//! than the cap, it ends the stream with `PayloadError::Overflow` — nothing of that frame
//! past its header is ever handed on, so memory stays bounded by one frame. The session
//! closes such a socket with 1009.

use std::pin::Pin;
use std::task::{Context, Poll};

use actix_web::error::PayloadError;
use actix_web::web::Bytes;
use futures_util::Stream;

/// Longest frame header: 2 bytes, an 8-byte extended length, a 4-byte mask.
const MAX_HEADER: usize = 14;

/// Wraps the upgraded connection's payload; see the module docs.
pub struct FrameGuard<S> {
    inner: S,
    max_payload: u64,
    header: [u8; MAX_HEADER],
    header_len: usize,
    /// Payload bytes of the current frame still to pass before the next header.
    remaining: u64,
    done: bool,
}

impl<S> FrameGuard<S> {
    /// Guards `inner`, allowing frame payloads of at most `max_payload` bytes.
    pub fn new(inner: S, max_payload: usize) -> Self {
        FrameGuard {
            inner,
            max_payload: max_payload as u64,
            header: [0; MAX_HEADER],
            header_len: 0,
            remaining: 0,
            done: false,
        }
    }

    /// Follows frame boundaries through `chunk`; `Err` as soon as a header declares a
    /// payload over the cap.
    fn scan(&mut self, mut chunk: &[u8]) -> Result<(), ()> {
        while !chunk.is_empty() {
            if self.remaining > 0 {
                let skip = usize::try_from(self.remaining)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len());
                self.remaining -= skip as u64;
                chunk = &chunk[skip..];
                continue;
            }
            self.header[self.header_len] = chunk[0];
            self.header_len += 1;
            chunk = &chunk[1..];
            let header = &self.header[..self.header_len];
            if let Some((payload, full_header)) = declared(header) {
                if payload > self.max_payload {
                    return Err(());
                }
                if self.header_len == full_header {
                    self.remaining = payload;
                    self.header_len = 0;
                }
            }
        }
        Ok(())
    }
}

/// The payload length a (partial) frame header declares and the header's full length,
/// once enough of it has arrived to know the length.
fn declared(header: &[u8]) -> Option<(u64, usize)> {
    let second = *header.get(1)?;
    let masked = second & 0x80 != 0;
    let (payload, ext) = match second & 0x7F {
        126 => {
            let bytes: [u8; 2] = header.get(2..4)?.try_into().ok()?;
            (u64::from(u16::from_be_bytes(bytes)), 2)
        }
        127 => {
            let bytes: [u8; 8] = header.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 8)
        }
        len => (u64::from(len), 0),
    };
    Some((payload, 2 + ext + if masked { 4 } else { 0 }))
}

impl<S> Stream for FrameGuard<S>
where
    S: Stream<Item = Result<Bytes, PayloadError>> + Unpin,
{
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if this.scan(&bytes).is_err() {
                    // Nothing more is read from this connection.
                    this.done = true;
                    return Poll::Ready(Some(Err(PayloadError::Overflow)));
                }
                Poll::Ready(Some(Ok(bytes)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Whether a stream error is the guard's "frame too large".
pub fn is_overflow(e: &actix_ws::ProtocolError) -> bool {
    match e {
        actix_ws::ProtocolError::Overflow => true,
        actix_ws::ProtocolError::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<PayloadError>())
            .is_some_and(|p| matches!(p, PayloadError::Overflow)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> FrameGuard<()> {
        FrameGuard::new((), 64 * 1024)
    }

    /// A masked client frame header declaring `len` payload bytes.
    fn header(len: u64) -> Vec<u8> {
        let mut h = vec![0x81];
        if len < 126 {
            h.push(0x80 | len as u8);
        } else if len <= u64::from(u16::MAX) {
            h.push(0x80 | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            h.push(0x80 | 127);
            h.extend_from_slice(&len.to_be_bytes());
        }
        h.extend_from_slice(&[1, 2, 3, 4]);
        h
    }

    #[test]
    fn frames_within_the_cap_pass_split_anywhere() {
        let mut g = guard();
        let mut bytes = header(5);
        bytes.extend_from_slice(b"hello");
        bytes.extend(header(64 * 1024));
        bytes.extend(vec![0; 64 * 1024]);
        bytes.extend(header(0));
        for piece in bytes.chunks(3) {
            assert!(g.scan(piece).is_ok());
        }
        assert_eq!((g.remaining, g.header_len), (0, 0));
    }

    #[test]
    fn a_header_declaring_more_than_the_cap_fails_before_its_mask_arrives() {
        let mut g = guard();
        let h = header(1 << 62);
        assert!(g.scan(&h[..10]).is_err());
        let mut g = guard();
        let mut bytes = header(3);
        bytes.extend_from_slice(b"abc");
        bytes.extend(header(64 * 1024 + 1));
        assert!(g.scan(&bytes).is_err());
    }
}
