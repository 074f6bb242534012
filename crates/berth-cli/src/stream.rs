//! Attach/exec/logs stream plumbing: demultiplexing, raw terminal, stdin, resize.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Which output a demultiplexed frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    Stdin,
    Stdout,
    Stderr,
}

/// Splits docker's multiplexed stream (8-byte headers: stream, 0, 0, 0, big-endian size).
#[derive(Default)]
pub struct Demuxer {
    buf: Vec<u8>,
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns the complete frames found so far.
    pub fn push(&mut self, data: &[u8]) -> Vec<(StdStream, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 8 {
                break;
            }
            let size =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if self.buf.len() < 8 + size {
                break;
            }
            let stream = match self.buf[0] {
                0 => StdStream::Stdin,
                2 => StdStream::Stderr,
                _ => StdStream::Stdout,
            };
            let payload = self.buf[8..8 + size].to_vec();
            self.buf.drain(..8 + size);
            out.push((stream, payload));
        }
        out
    }
}

fn write_out(stream: StdStream, data: &[u8]) {
    if stream == StdStream::Stderr {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(data);
        let _ = e.flush();
    } else {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(data);
        let _ = o.flush();
    }
}

/// Copy a (possibly multiplexed) output stream to our stdout/stderr until EOF.
pub async fn copy_output<R: AsyncRead + Unpin>(mut r: R, tty: bool) -> std::io::Result<()> {
    let mut demux = Demuxer::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = r.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if tty {
            write_out(StdStream::Stdout, &buf[..n]);
        } else {
            for (s, p) in demux.push(&buf[..n]) {
                write_out(s, &p);
            }
        }
    }
}

/// Parse docker's `--detach-keys` ("ctrl-p,ctrl-q", "a", "ctrl-@").
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b] if b.is_ascii_lowercase() => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(format!("Unknown character: '{k}'")),
            };
            out.push(b);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(format!("Unknown character: '{k}'"));
        }
    }
    Ok(out)
}

/// Puts a terminal in raw mode and restores it when dropped.
pub struct RawGuard {
    orig: nix::sys::termios::Termios,
}

impl RawGuard {
    pub fn new() -> Option<RawGuard> {
        use nix::sys::termios::*;
        let fd = stdin_fd();
        let orig = tcgetattr(fd).ok()?;
        let mut raw = orig.clone();
        cfmakeraw(&mut raw);
        // Keep output post-processing so that "\n" still returns the carriage.
        raw.output_flags |= OutputFlags::OPOST;
        tcsetattr(fd, SetArg::TCSANOW, &raw).ok()?;
        Some(RawGuard { orig })
    }
}

impl Drop for RawGuard {
    fn drop(&mut self) {
        let _ = nix::sys::termios::tcsetattr(
            stdin_fd(),
            nix::sys::termios::SetArg::TCSANOW,
            &self.orig,
        );
    }
}

fn stdin_fd() -> BorrowedFd<'static> {
    // SAFETY: fd 0 stays open for the life of the process.
    unsafe { BorrowedFd::borrow_raw(0) }
}

pub fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// The terminal size of stdout (or stdin), as (height, width).
pub fn term_size() -> Option<(u16, u16)> {
    [1, 0].into_iter().find_map(term_size_of)
}

/// The size of the terminal `fd` is, as (height, width).
pub fn term_size_of(fd: i32) -> Option<(u16, u16)> {
    // SAFETY: winsize is plain old data; all-zero is a valid value.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the struct we own.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        return Some((ws.ws_row, ws.ws_col));
    }
    None
}

/// Read our stdin on a plain thread (it must not hold up runtime shutdown).
pub fn stdin_channel() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
    std::thread::spawn(move || {
        let _ = stdin_fd().as_fd();
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

/// Tracks whether the detach sequence was typed.
pub struct DetachWatch {
    keys: Vec<u8>,
    matched: usize,
    pub seen: Arc<AtomicBool>,
}

impl DetachWatch {
    pub fn new(keys: Vec<u8>) -> Self {
        DetachWatch {
            keys,
            matched: 0,
            seen: Arc::new(AtomicBool::new(false)),
        }
    }
    pub fn feed(&mut self, data: &[u8]) {
        if self.keys.is_empty() {
            return;
        }
        for &b in data {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.seen.store(true, Ordering::SeqCst);
                    self.matched = 0;
                }
            } else {
                self.matched = usize::from(b == self.keys[0]);
            }
        }
    }
}

/// Forward stdin to the connection; closes the write side at EOF unless `tty`.
pub async fn forward_stdin<W: AsyncWrite + Unpin>(mut w: W, tty: bool, mut watch: DetachWatch) {
    let mut rx = stdin_channel();
    while let Some(chunk) = rx.recv().await {
        watch.feed(&chunk);
        if w.write_all(&chunk).await.is_err() {
            return;
        }
        let _ = w.flush().await;
    }
    if !tty {
        let _ = w.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(t: u8, p: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 0, 0, 0];
        v.extend_from_slice(&(p.len() as u32).to_be_bytes());
        v.extend_from_slice(p);
        v
    }

    #[test]
    fn demux_split_frames() {
        let mut data = frame(1, b"hello\n");
        data.extend(frame(2, b"oops\n"));
        let mut d = Demuxer::new();
        assert!(d.push(&data[..5]).is_empty());
        let got = d.push(&data[5..]);
        assert_eq!(
            got,
            vec![
                (StdStream::Stdout, b"hello\n".to_vec()),
                (StdStream::Stderr, b"oops\n".to_vec())
            ]
        );
        assert!(d.push(&frame(1, b"")).iter().all(|(_, p)| p.is_empty()));
    }

    #[test]
    fn detach_keys() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(parse_detach_keys("a,ctrl-@").unwrap(), vec![b'a', 0]);
        assert!(parse_detach_keys("ctrl-foo").is_err());
        let mut w = DetachWatch::new(vec![16, 17]);
        w.feed(b"ab\x10");
        assert!(!w.seen.load(Ordering::SeqCst));
        w.feed(b"\x11");
        assert!(w.seen.load(Ordering::SeqCst));
    }
}
