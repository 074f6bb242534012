//! The daemon's side of the shim protocol (see `berth_runtime::shim`).

use berth_api::ApiError;
use berth_runtime::shim::{self, FrameKind, Request, Response};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// The shims the daemon starts. One is kept started ahead (`berth shim --spare`, detached at
/// once and waiting on its stdin for a container's directory), so that a container's start
/// does not wait for the exec of the berth binary, its loading and its detaching; it is
/// replaced in the background once used. A spare ends by itself when the daemon goes away
/// (its stdin closes).
pub struct Shims {
    exe: PathBuf,
    spare: std::sync::Mutex<Option<Spare>>,
}

/// A started spare: the pipes to the detached shim (the process the daemon started, which
/// only detaches it, is reaped in the background).
struct Spare {
    stdin: tokio::process::ChildStdin,
    stdout: BufReader<tokio::process::ChildStdout>,
}

/// A shim handed a container's bundle, whose ready line is still to come
/// ([`Shims::hand`], [`Handed::ready`]).
pub struct Handed {
    stdout: BufReader<tokio::process::ChildStdout>,
    dir: PathBuf,
    /// The network namespace the shim made ahead and announced (opened through /proc), which
    /// a container with a namespace of its own joins: its networks can be plugged in while
    /// the shim creates it. Checked against the init's once it is ready.
    pub netns: Option<std::os::fd::OwnedFd>,
}

/// Read a spare's first line, `netns <pid> <fd>` (or `netns -`), and open that namespace.
/// `None` when it made none or the line is not that (it is then not read again: a spare
/// announces before it reads its directory, so the ready line cannot be taken for it).
async fn announced_netns(
    stdout: &mut BufReader<tokio::process::ChildStdout>,
) -> Option<std::os::fd::OwnedFd> {
    let mut line = String::new();
    // A spare announces within milliseconds of its exec; one that does not is not waited for
    // long (its ready line then ends the wait for it as usual).
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        stdout.read_line(&mut line),
    )
    .await;
    if !matches!(read, Ok(Ok(n)) if n > 0) {
        return None;
    }
    let mut words = line.split_whitespace();
    if words.next() != Some("netns") {
        return None;
    }
    let pid: u32 = words.next()?.parse().ok()?;
    let fd: u32 = words.next()?.parse().ok()?;
    let path = format!("/proc/{pid}/fd/{fd}");
    let f = std::fs::File::open(&path).ok()?;
    // Only a network namespace is taken (a recycled pid or descriptor would be another file).
    // SAFETY: ioctl NS_GET_NSTYPE on a descriptor this function owns; no memory is passed.
    let kind = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE) };
    (kind == libc::CLONE_NEWNET).then(|| f.into())
}

/// `NS_GET_NSTYPE` (linux/nsfs.h): the namespace type of an nsfs descriptor.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// glibc's malloc settings for a shim (`GLIBC_TUNABLES`, after any the daemon was given): no
/// per-thread cache of freed blocks. A shim is single-threaded and allocates little once its
/// container runs, but the cache would keep up to seven freed blocks of each size that
/// creating the container used, scattered over the heap, so that the memory release after the
/// start (`malloc_trim`) could not give their pages back: ~40 KiB more of private memory per
/// shim, for the container's whole life. The container's processes do not inherit it: the
/// runtime gives them the spec's environment.
fn shim_tunables() -> std::ffi::OsString {
    let mut t = std::env::var_os("GLIBC_TUNABLES").unwrap_or_default();
    if !t.is_empty() {
        t.push(":");
    }
    t.push("glibc.malloc.tcache_count=0");
    t
}

impl Shims {
    pub fn new(exe: &Path) -> Shims {
        Shims {
            exe: exe.to_path_buf(),
            spare: std::sync::Mutex::new(None),
        }
    }

    /// Start a spare (from within the runtime: its first process is reaped by a task).
    fn start_spare(&self) -> std::io::Result<Spare> {
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("shim")
            .arg("--spare")
            .arg("--announce-netns")
            .env("GLIBC_TUNABLES", shim_tunables())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(false)
            .spawn()?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        match (stdin, stdout) {
            (Some(stdin), Some(stdout)) => Ok(Spare {
                stdin,
                stdout: BufReader::new(stdout),
            }),
            _ => Err(std::io::Error::other("shim has no stdin or stdout")),
        }
    }

    /// Start a spare shim if none is waiting (in the background: call from a task).
    pub fn refill(&self) {
        let mut slot = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            match self.start_spare() {
                Ok(c) => *slot = Some(c),
                Err(e) => tracing::warn!("cannot start a spare shim: {e}"),
            }
        }
    }

    /// Hand the bundle `dir` to a shim (the spare, else a new one), taking the network
    /// namespace it announced. Its ready line is read by [`Handed::ready`].
    pub async fn hand(self: &std::sync::Arc<Self>, dir: &Path) -> Result<Handed, ApiError> {
        let mut line = dir.as_os_str().as_encoded_bytes().to_vec();
        line.push(b'\n');
        let spare = self.spare.lock().unwrap_or_else(|e| e.into_inner()).take();
        // The spare, else (or if it died before it could be handed the directory: its stdin
        // has no reader) a new one.
        let mut handed = None;
        for candidate in [spare, None] {
            let mut c = match candidate {
                Some(c) => c,
                None => self
                    .start_spare()
                    .map_err(|e| ApiError::internal(format!("cannot start shim: {e}")))?,
            };
            // Its announcement comes before it reads the directory: taken first.
            let netns = announced_netns(&mut c.stdout).await;
            if c.stdin.write_all(&line).await.is_ok() {
                handed = Some(Handed {
                    stdout: c.stdout,
                    dir: dir.to_path_buf(),
                    netns,
                });
                break;
            }
        }
        // Another spare for the next start (also after one died or could not be started).
        let me = self.clone();
        tokio::spawn(async move { me.refill() });
        handed.ok_or_else(|| ApiError::internal("cannot start shim"))
    }
}

impl Handed {
    /// Wait for the shim's ready line. Returns the ready response (with init's pid) or the
    /// shim's error.
    pub async fn ready(mut self) -> Result<Response, ApiError> {
        let mut line = String::new();
        let n = loop {
            line.clear();
            let n = self
                .stdout
                .read_line(&mut line)
                .await
                .map_err(|e| ApiError::internal(format!("cannot read from shim: {e}")))?;
            // (an announcement that came after `hand` stopped waiting for it)
            if !line.starts_with("netns ") {
                break n;
            }
        };
        if n == 0 {
            let log = std::fs::read_to_string(self.dir.join("shim.log")).unwrap_or_default();
            let last = log.lines().last().unwrap_or("shim exited without a word");
            return Err(ApiError::internal(format!("failed to start shim: {last}")));
        }
        let resp: Response = serde_json::from_str(line.trim())
            .map_err(|e| ApiError::internal(format!("bad ready line from shim: {e}: {line}")))?;
        Ok(resp)
    }
}

/// A connection on which a request was sent and its response read.
pub struct Conn {
    pub reader: BufReader<OwnedReadHalf>,
    pub writer: OwnedWriteHalf,
}

/// Connect, send `req`, read the response line. The connection stays open for frames.
pub async fn open(dir: &Path, req: &Request) -> Result<(Response, Conn), ApiError> {
    response(send(dir, req).await?).await
}

/// Connect and send `req`, without waiting for the answer (read it with `response`): the
/// shim takes requests in the order their connections arrive.
pub async fn send(dir: &Path, req: &Request) -> Result<Conn, ApiError> {
    let short = shim::socket_path(dir, shim::SOCKET_FILE)
        .map_err(|e| ApiError::internal(format!("cannot reach the container's shim: {e}")))?;
    let stream = UnixStream::connect(&short.path)
        .await
        .map_err(|e| ApiError::internal(format!("cannot reach the container's shim: {e}")))?;
    let (r, mut w) = stream.into_split();
    let mut line = serde_json::to_vec(req).map_err(|e| ApiError::internal(e.to_string()))?;
    line.push(b'\n');
    w.write_all(&line)
        .await
        .map_err(|e| ApiError::internal(format!("shim: {e}")))?;
    Ok(Conn {
        reader: BufReader::new(r),
        writer: w,
    })
}

/// Read the response line of a request sent with `send`.
pub async fn response(conn: Conn) -> Result<(Response, Conn), ApiError> {
    let Conn {
        mut reader,
        writer: w,
    } = conn;
    let mut resp = String::new();
    let n = reader
        .read_line(&mut resp)
        .await
        .map_err(|e| ApiError::internal(format!("shim: {e}")))?;
    if n == 0 {
        return Err(ApiError::internal("shim closed the connection"));
    }
    let resp: Response = serde_json::from_str(resp.trim())
        .map_err(|e| ApiError::internal(format!("bad answer from shim: {e}")))?;
    Ok((resp, Conn { reader, writer: w }))
}

/// Wait for the shim to close a connection (it exits once the container is gone from the
/// runtime and its rootfs unmounted), at most `limit`; whatever it still sends is dropped.
/// `false` if it was still open then.
pub async fn closed(mut conn: Conn, limit: std::time::Duration) -> bool {
    let mut sink = tokio::io::sink();
    tokio::time::timeout(limit, tokio::io::copy(&mut conn.reader, &mut sink))
        .await
        .is_ok()
}

/// Waits (at most `limit`) for the shim process `pid` to be gone (or a zombie). True if it
/// is; true at once for no pid.
pub async fn exited(pid: i32, limit: std::time::Duration) -> bool {
    if pid <= 0 {
        return true;
    }
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// The end of a shim that did not finish its clean-up in time: SIGKILL, then wait (at most
/// five seconds) for the process to be gone, so that it cannot touch a next run of its
/// container (same id, same cgroup, same rootfs path).
pub async fn kill_shim(pid: i32) {
    if pid <= 0 {
        return;
    }
    // SAFETY: kill(2) with integer arguments.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty() || stat.contains(") Z") {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// One request, one answer; an answer with `ok: false` becomes an error.
pub async fn call(dir: &Path, req: &Request) -> Result<Response, ApiError> {
    let (resp, _) = open(dir, req).await?;
    if resp.ok {
        Ok(resp)
    } else {
        Err(ApiError::internal(
            resp.error.unwrap_or_else(|| "shim error".into()),
        ))
    }
}

/// Read one frame. `Ok(None)` at end of stream.
pub async fn read_frame(
    r: &mut (impl AsyncReadExt + Unpin),
) -> std::io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = shim::parse_header(&h)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    Ok(Some((kind, buf)))
}

/// Write one frame.
pub async fn write_frame(
    w: &mut (impl AsyncWriteExt + Unpin),
    kind: FrameKind,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8 + payload.len());
    buf.extend_from_slice(&shim::frame_header(kind, payload.len()));
    buf.extend_from_slice(payload);
    w.write_all(&buf).await
}

/// Read `state.json`, if the shim wrote one.
pub fn read_state(dir: &Path) -> Option<shim::State> {
    let data = std::fs::read(dir.join(shim::STATE_FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}
