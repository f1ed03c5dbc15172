//! [`Admitted`]: a connection's stream, holding its [`Permit`] and ending the connection when
//! its first request head (HTTP/1.1) or connection preface (HTTP/2) has not arrived in time.
//!
//! Both end with a blank line: a request head with its empty line (RFC 9112 section 2.1), the
//! preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` with the second of its two. So the bytes read are
//! scanned until then, and only then; after it the wrapper only passes bytes through, and the
//! server's own timeouts (keepalive pings, request deadline) take over.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tonic::transport::server::Connected;

use super::Permit;

/// A connection's stream, counted open while it lives.
pub struct Admitted<IO> {
    io: IO,
    _permit: Permit,
    /// Until the first request head or preface is complete.
    pending: Option<Pending>,
}

struct Pending {
    due: Pin<Box<Sleep>>,
    head: HeadScan,
    timed_out: Option<IntCounter>,
}

impl<IO> Admitted<IO> {
    pub(super) fn new(io: IO, permit: Permit, due: Instant, timed_out: IntCounter) -> Self {
        Self {
            io,
            _permit: permit,
            pending: Some(Pending {
                due: Box::pin(tokio::time::sleep_until(due)),
                head: HeadScan::default(),
                timed_out: Some(timed_out),
            }),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Admitted<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // The server reads while it waits for the first request, so polling the deadline here
        // is enough to wake it when the deadline passes.
        if let Some(pending) = &mut this.pending
            && pending.due.as_mut().poll(cx).is_ready()
        {
            if let Some(counter) = pending.timed_out.take() {
                counter.inc();
                tracing::debug!("closing a connection without a first request in time");
            }
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "no complete request head or HTTP/2 preface within limits.first_request_timeout_secs",
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(pending)) = (&read, &mut this.pending)
            && pending.head.feed(&buf.filled()[before..])
        {
            this.pending = None;
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Admitted<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The connection facts (peer address, TLS certificates) are the wrapped stream's.
impl<IO: Connected> Connected for Admitted<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// Where the scan is in the current line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Nothing but line ends yet (empty lines before a request line are ignored, RFC 9112
    /// section 2.2, so they do not count as its end).
    #[default]
    Start,
    /// Inside a line.
    Text,
    /// Just after a line feed.
    AfterLf,
    /// After a line feed and a carriage return.
    AfterLfCr,
}

/// Finds the end of the first request head or of the HTTP/2 preface in the bytes as they come.
/// A bare LF ends a line as CRLF does (hyper accepts both).
#[derive(Debug, Default)]
struct HeadScan {
    line: Line,
    /// The first bytes after any leading line ends: `PRI ` is the HTTP/2 preface.
    start: [u8; 4],
    started: usize,
    blank_lines: u8,
}

impl HeadScan {
    /// Takes the next bytes; true once the head (or preface) is complete.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            self.line = match (self.line, byte) {
                (Line::Start, b'\r' | b'\n') => Line::Start,
                (Line::AfterLf | Line::AfterLfCr, b'\n') => {
                    self.blank_lines += 1;
                    let needed = if &self.start == b"PRI " { 2 } else { 1 };
                    if self.blank_lines >= needed {
                        return true;
                    }
                    Line::Text
                }
                (_, b'\n') => Line::AfterLf,
                (Line::AfterLf, b'\r') => Line::AfterLfCr,
                _ => Line::Text,
            };
            if self.line == Line::Text && self.started < self.start.len() {
                self.start[self.started] = byte;
                self.started += 1;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete_after(chunks: &[&[u8]]) -> Option<usize> {
        let mut scan = HeadScan::default();
        chunks.iter().position(|chunk| scan.feed(chunk))
    }

    #[test]
    fn a_request_head_ends_with_its_blank_line() {
        assert_eq!(
            complete_after(&[b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"]),
            Some(0)
        );
        assert_eq!(
            complete_after(&[b"GET / HTTP/1.1\r\nHo", b"st: a\r\n\r", b"\n"]),
            Some(2)
        );
        assert_eq!(complete_after(&[b"GET / HTTP/1.1\nHost: a\n\n"]), Some(0));
        assert_eq!(complete_after(&[b"GET / HTTP/1.1\r\nHost: a\r\n"]), None);
        assert_eq!(complete_after(&[b"\r\n\r\n\n\n"]), None);
        assert_eq!(
            complete_after(&[b"\r\n", b"GET / HTTP/1.1\r\n\r\n"]),
            Some(1)
        );
    }

    #[test]
    fn the_http2_preface_ends_with_its_second_blank_line() {
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert_eq!(complete_after(&[preface]), Some(0));
        assert_eq!(complete_after(&[&preface[..18]]), None);
        assert_eq!(complete_after(&[&preface[..18], &preface[18..]]), Some(1));
        assert_eq!(complete_after(&[&preface[..23]]), None);
    }
}
