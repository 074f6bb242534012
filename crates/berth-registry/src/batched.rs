//! Connections that, while a large body streams in, wake the registry once per batch of
//! data rather than once per segment.
//!
//! A client pushing a layer writes it ~32 KiB at a time, and the registry, faster than its
//! clients, would wake, read that piece and sleep again: ~10,000 wake-ups for a 300 MB push,
//! the largest part of the registry's CPU after the sha256 it must compute. Once a single read
//! returns 16 KiB or more, the socket's `SO_RCVLOWAT` is raised, so the kernel signals it
//! readable only when a batch is queued (or at the end of the stream, or when the receive
//! window or memory runs short). Two things lower the mark again:
//! - a response: the server writing means a request is complete, and the client's next
//!   request (say, the `PUT` that follows an upload's `PATCH`) must not wait under the mark;
//! - a short timer, for a body whose last bytes stay under the mark with nothing more to come
//!   (they wait [`TAIL_WAIT`], plus up to a millisecond of tokio's timer). Lowering the mark
//!   signals the socket at once if anything is queued.
//!
//! A sender too slow to fill the mark before the timer would pay that wait on every batch, so
//! after [`MAX_MISSES`] timers in a row the mark stays down until the next response.
//!
//! Plain HTTP only: rustls reads at most a record (~16 KiB) at a time, so behind TLS the mark
//! would hardly ever be raised.

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
/// Timers in a row (no batch reaching the mark between them) after which the mark stays down
/// until the next response.
const MAX_MISSES: u8 = 3;

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
    /// Timers that lowered the mark since a batch last reached it, or since the last
    /// response.
    misses: u8,
    tail_wait: Duration,
    /// While raised and waiting: when to lower it.
    tail: Option<Pin<Box<Sleep>>>,
}

impl BatchedStream {
    pub fn new(inner: TcpStream) -> Self {
        Self::with_tail_wait(inner, TAIL_WAIT)
    }

    fn with_tail_wait(inner: TcpStream, tail_wait: Duration) -> Self {
        BatchedStream {
            inner,
            raised: false,
            unsupported: false,
            misses: 0,
            tail_wait,
            tail: None,
        }
    }

    fn raise(&mut self) {
        match set_low_water(self.inner.as_raw_fd(), LOW_WATER) {
            Ok(()) => self.raised = true,
            Err(e) => {
                tracing::debug!("raising SO_RCVLOWAT: {e}");
                self.unsupported = true;
            }
        }
    }

    /// Lower the mark. If that fails the connection cannot go on: a read under the raised
    /// mark could wait forever.
    fn lower(&mut self) -> io::Result<()> {
        self.tail = None;
        set_low_water(self.inner.as_raw_fd(), 1).inspect_err(|_| self.unsupported = true)?;
        self.raised = false;
        Ok(())
    }

    /// Before the server writes: a response ends a request.
    fn before_write(&mut self) -> io::Result<()> {
        self.misses = 0;
        if self.raised {
            self.lower()?;
        }
        Ok(())
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
                // Woken under the raised mark before its timer: a batch reached the mark.
                if this.raised && this.tail.take().is_some() {
                    this.misses = 0;
                }
                let n = buf.filled().len() - before;
                if r.is_ok()
                    && n >= BULK_READ
                    && !this.raised
                    && !this.unsupported
                    && this.misses < MAX_MISSES
                {
                    this.raise();
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if this.raised {
                    let wait = this.tail_wait;
                    let tail = this
                        .tail
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(wait)));
                    if tail.as_mut().poll(cx).is_ready() {
                        this.misses = this.misses.saturating_add(1);
                        // The read above registered for the socket's signal, which lowering
                        // the mark sends if anything is queued.
                        if let Err(e) = this.lower() {
                            return Poll::Ready(Err(e));
                        }
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
        self.before_write()?;
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.before_write()?;
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

    const LIMIT: Duration = Duration::from_secs(5);

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

    /// The mark as raised: the kernel caps it at half of the largest receive buffer.
    fn raised_mark() -> i32 {
        let rmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_rmem").unwrap();
        let max: i32 = rmem.split_whitespace().nth(2).unwrap().parse().unwrap();
        LOW_WATER.min(max / 2)
    }

    async fn pair(tail_wait: Duration) -> (TcpStream, BatchedStream) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (s, _) = l.accept().await.unwrap();
        (c, BatchedStream::with_tail_wait(s, tail_wait))
    }

    /// Reads until `want` bytes have come, each read within `limit`; true if any single read
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

    /// Sends 48 KiB, which fit the initial receive window, so all of it is queued before the
    /// server reads, and reads it: the mark is raised.
    async fn raise(c: &mut TcpStream, s: &mut BatchedStream) {
        c.write_all(&[7u8; 48 << 10]).await.unwrap();
        assert!(read_exactly(s, 48 << 10, LIMIT).await);
    }

    #[tokio::test]
    async fn small_reads_leave_the_mark_alone() {
        let (mut c, mut s) = pair(TAIL_WAIT).await;
        for _ in 0..3 {
            c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .unwrap();
            assert!(!read_exactly(&mut s, 30, LIMIT).await);
            assert_eq!(low_water(&s), 1);
        }
    }

    #[tokio::test]
    async fn a_raised_mark_holds_data_back_until_a_batch_is_queued() {
        // (a timer that never fires in this test: only the mark wakes the reader)
        let (mut c, mut s) = pair(Duration::from_secs(600)).await;
        raise(&mut c, &mut s).await;
        assert_eq!(low_water(&s), raised_mark());
        c.write_all(&[1u8; 100]).await.unwrap();
        let mut buf = [0u8; 64];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf))
                .await
                .is_err(),
            "100 bytes under the mark were read"
        );
        // the rest of a batch: now the queue reaches the mark
        let rest = raised_mark() as usize;
        let writer = tokio::spawn(async move {
            c.write_all(&vec![2u8; rest]).await.unwrap();
            c
        });
        assert!(read_exactly(&mut s, 100 + rest, LIMIT).await);
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn a_tail_under_the_mark_comes_after_the_timer() {
        let (mut c, mut s) = pair(TAIL_WAIT).await;
        raise(&mut c, &mut s).await;
        assert_eq!(low_water(&s), raised_mark());
        // a tail far under the mark, with nothing after it: without the timer this read would
        // wait forever (see the test above)
        c.write_all(b"0\r\n\r\n").await.unwrap();
        assert!(!read_exactly(&mut s, 5, LIMIT).await);
        assert_eq!(low_water(&s), 1);
        // and the connection goes on as before
        raise(&mut c, &mut s).await;
        assert_eq!(low_water(&s), raised_mark());
    }

    #[tokio::test]
    async fn a_response_lowers_the_mark() {
        let (mut c, mut s) = pair(Duration::from_secs(600)).await;
        raise(&mut c, &mut s).await;
        assert_eq!(low_water(&s), raised_mark());
        s.write_all(b"HTTP/1.1 202 Accepted\r\n\r\n").await.unwrap();
        assert_eq!(low_water(&s), 1);
        let mut head = [0u8; 25];
        c.read_exact(&mut head).await.unwrap();
        // the client's next, small request is read although the timer would never fire
        c.write_all(b"PUT /x HTTP/1.1\r\n\r\n").await.unwrap();
        assert!(!read_exactly(&mut s, 19, LIMIT).await);
    }

    #[tokio::test]
    async fn the_end_of_the_stream_is_seen_under_the_mark() {
        let (mut c, mut s) = pair(Duration::from_secs(600)).await;
        raise(&mut c, &mut s).await;
        c.write_all(b"tail").await.unwrap();
        drop(c);
        assert!(!read_exactly(&mut s, 4, LIMIT).await);
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(LIMIT, s.read(&mut buf))
            .await
            .expect("the end of the stream waited past its limit")
            .unwrap();
        assert_eq!(n, 0);
    }

    #[tokio::test]
    async fn a_sender_that_keeps_missing_the_mark_stops_raising_it_until_a_response() {
        let (mut c, mut s) = pair(TAIL_WAIT).await;
        for _ in 0..MAX_MISSES {
            raise(&mut c, &mut s).await;
            assert_eq!(low_water(&s), raised_mark());
            c.write_all(b"slow").await.unwrap();
            read_exactly(&mut s, 4, LIMIT).await;
            assert_eq!(low_water(&s), 1);
        }
        c.write_all(&[7u8; 48 << 10]).await.unwrap();
        assert!(read_exactly(&mut s, 48 << 10, LIMIT).await);
        assert_eq!(low_water(&s), 1, "raised again after {MAX_MISSES} misses");
        s.write_all(b"HTTP/1.1 202 Accepted\r\n\r\n").await.unwrap();
        raise(&mut c, &mut s).await;
        assert_eq!(low_water(&s), raised_mark());
    }
}
