//! Connections that, while a large body streams in, wake the registry once per batch of
//! data rather than once per segment.
//!
//! A client pushing a layer writes it ~32 KiB at a time, and the registry, faster than its
//! clients, would wake, read that piece and sleep again: ~10,000 wake-ups for a 300 MB push,
//! the largest part of the registry's CPU after the sha256 it must compute. Once a read returns
//! a large amount, the socket's `SO_RCVLOWAT` is raised, so the kernel signals it readable only
//! when a batch is queued. Two things lower the mark again:
//! - a response: the server writing means a request is complete, and the client's next
//!   request (say, the `PUT` that follows an upload's `PATCH`) must not wait under the mark;
//! - a short timer, for a body whose last bytes stay under the mark with nothing more to come.
//!   Lowering the mark signals the socket at once if anything is queued.
//!
//! Small requests never raise the mark.

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// A read at least this large means a body is streaming in (hyper's read buffer starts at
/// 8 KiB and grows only while reads fill it).
const BULK_READ: usize = 16 << 10;
/// The low-water mark while a body streams in: ~1 ms of a push on loopback.
const LOW_WATER: i32 = 256 << 10;
/// How long a read may wait under the mark before the mark is lowered.
const TAIL_WAIT: Duration = Duration::from_millis(2);

/// A TCP listener whose connections are [`BatchedStream`]s.
pub struct BatchedListener(pub TcpListener);

impl axum::serve::Listener for BatchedListener {
    type Io = BatchedStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (s, a) = axum::serve::Listener::accept(&mut self.0).await;
        (BatchedStream::new(s), a)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

/// A TCP stream that raises its receive low-water mark while large reads come in.
pub struct BatchedStream {
    inner: TcpStream,
    /// The mark is raised.
    raised: bool,
    /// Raising it failed once: not tried again.
    unsupported: bool,
    /// While raised and waiting: when to lower it.
    tail: Option<Pin<Box<Sleep>>>,
}

impl BatchedStream {
    pub fn new(inner: TcpStream) -> Self {
        BatchedStream {
            inner,
            raised: false,
            unsupported: false,
            tail: None,
        }
    }

    fn raise(&mut self) {
        if set_low_water(self.inner.as_raw_fd(), LOW_WATER).is_ok() {
            self.raised = true;
        } else {
            self.unsupported = true;
        }
    }

    fn lower(&mut self) {
        self.tail = None;
        self.raised = false;
        if let Err(e) = set_low_water(self.inner.as_raw_fd(), 1) {
            // The mark stays high: the timer is the only thing that would end a wait under
            // it, so stop raising it on this connection.
            tracing::debug!("lowering SO_RCVLOWAT: {e}");
            self.unsupported = true;
        }
    }
}

fn set_low_water(fd: RawFd, bytes: i32) -> io::Result<()> {
    // SAFETY: an int option on a socket the caller owns, passed by pointer and size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&bytes as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl AsyncRead for BatchedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.tail = None;
                let n = buf.filled().len() - before;
                if r.is_ok() && n >= BULK_READ && !this.raised && !this.unsupported {
                    this.raise();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if this.raised {
                    let tail = this
                        .tail
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(TAIL_WAIT)));
                    if tail.as_mut().poll(cx).is_ready() {
                        // The read above registered for the socket's signal, which lowering
                        // the mark sends if anything is queued.
                        this.lower();
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for BatchedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.raised {
            self.lower();
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.raised {
            self.lower();
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn low_water(s: &BatchedStream) -> i32 {
        let mut v: i32 = 0;
        let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
        // SAFETY: an int option read into a local of the size passed.
        let r = unsafe {
            libc::getsockopt(
                s.inner.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&mut v as *mut i32).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "getsockopt: {}", io::Error::last_os_error());
        v
    }

    async fn pair() -> (TcpStream, BatchedStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, BatchedStream::new(s))
    }

    /// Reads until `want` bytes have come, each within `limit`; true if any single read
    /// returned at least BULK_READ bytes.
    async fn read_exactly(s: &mut BatchedStream, want: usize, limit: Duration) -> bool {
        let mut buf = vec![0u8; 64 << 10];
        let (mut got, mut bulk) = (0, false);
        while got < want {
            let n = tokio::time::timeout(limit, s.read(&mut buf))
                .await
                .expect("a read waited past its limit")
                .unwrap();
            assert!(n > 0, "end of stream after {got} of {want} bytes");
            bulk |= n >= BULK_READ;
            got += n;
        }
        assert_eq!(got, want);
        bulk
    }

    #[tokio::test]
    async fn small_reads_leave_the_mark_alone() {
        let (mut c, mut s) = pair().await;
        for _ in 0..3 {
            c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            assert!(!read_exactly(&mut s, 30, Duration::from_secs(5)).await);
            assert_eq!(low_water(&s), 1);
        }
    }

    #[tokio::test]
    async fn a_bulk_read_raises_the_mark_and_a_tail_under_it_still_comes() {
        let (mut c, mut s) = pair().await;
        // 48 KiB fit the initial receive window: all of it is queued before the first read.
        c.write_all(&[7u8; 48 << 10]).await.unwrap();
        assert!(read_exactly(&mut s, 48 << 10, Duration::from_secs(5)).await);
        assert_eq!(low_water(&s), LOW_WATER);
        // A tail far under the mark, with nothing after it: the timer lowers the mark and
        // the read gets it (without the timer this read would wait forever).
        c.write_all(b"0\r\n\r\n").await.unwrap();
        assert!(!read_exactly(&mut s, 5, Duration::from_secs(5)).await);
        assert_eq!(low_water(&s), 1);
        // and the connection goes on as before
        c.write_all(&[1u8; 48 << 10]).await.unwrap();
        assert!(read_exactly(&mut s, 48 << 10, Duration::from_secs(5)).await);
        assert_eq!(low_water(&s), LOW_WATER);
    }

    #[tokio::test]
    async fn a_response_lowers_the_mark() {
        let (mut c, mut s) = pair().await;
        c.write_all(&[7u8; 48 << 10]).await.unwrap();
        assert!(read_exactly(&mut s, 48 << 10, Duration::from_secs(5)).await);
        assert_eq!(low_water(&s), LOW_WATER);
        s.write_all(b"HTTP/1.1 202 Accepted\r\n\r\n").await.unwrap();
        assert_eq!(low_water(&s), 1);
        let mut head = [0u8; 25];
        c.read_exact(&mut head).await.unwrap();
        // With the mark at 1 the client's next, small request signals the socket by itself.
        c.write_all(b"PUT /x HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(!read_exactly(&mut s, 19, Duration::from_secs(5)).await);
    }

    #[tokio::test]
    async fn the_end_of_the_stream_is_seen_under_the_mark() {
        let (mut c, mut s) = pair().await;
        c.write_all(&[7u8; 48 << 10]).await.unwrap();
        assert!(read_exactly(&mut s, 48 << 10, Duration::from_secs(5)).await);
        c.write_all(b"tail").await.unwrap();
        drop(c);
        assert!(!read_exactly(&mut s, 4, Duration::from_secs(5)).await);
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the end of the stream waited past its limit")
            .unwrap();
        assert_eq!(n, 0);
    }
}
