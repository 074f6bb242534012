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
    started: std::time::Instant,
}

/// A shim handed a container's bundle, whose ready line is still to come
/// ([`Shims::hand`], [`Handed::ready`]).
pub struct Handed {
    stdout: BufReader<tokio::process::ChildStdout>,
    /// A first line that was not an announcement (a shim that failed before it could make
    /// one writes its error as its ready line): the ready line.
    pending: Option<String>,
    dir: PathBuf,
    /// The network namespace the shim made ahead and announced (opened through /proc), which
    /// a container with a namespace of its own joins (with the builtin runtime; an external
    /// one makes its own): its networks can be plugged in while the shim creates it. Checked
    /// against the init's once it is ready.
    pub netns: Option<std::os::fd::OwnedFd>,
}

/// What a spare's first line said.
enum Announced {
    /// The namespace it made, opened (`netns <pid> <fd>`).
    Netns(std::os::fd::OwnedFd),
    /// None to take: `netns -`, a namespace that cannot be opened, or no line in time.
    Nothing,
    /// Another line: the shim's ready line (an error before it could announce).
    Other(String),
}

/// Read a spare's first line, `netns <pid> <fd>` (or `netns -`), and open that namespace.
/// A spare writes it within milliseconds of its exec, so one that has waited in the slot
/// for a while (`settled`) and has not is not waited for (a shim binary that does not
/// announce, `shim_exe` set to an older berth); a fresh one is given two seconds. A late
/// announcement is skipped by [`Handed::ready`].
async fn announced_netns(
    stdout: &mut BufReader<tokio::process::ChildStdout>,
    settled: bool,
) -> Announced {
    let mut line = String::new();
    let wait = if settled {
        std::time::Duration::from_millis(1)
    } else {
        std::time::Duration::from_secs(2)
    };
    // (cancel-safe enough: the line comes in one write of a few bytes to a pipe, whole)
    match tokio::time::timeout(wait, stdout.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        Ok(_) => return Announced::Nothing,
        Err(_) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| {
                tracing::warn!("a spare shim did not announce its network namespace in time")
            });
            return Announced::Nothing;
        }
    }
    let Some(rest) = line.strip_prefix("netns ") else {
        return Announced::Other(line);
    };
    let mut words = rest.split_whitespace();
    let (Some(Ok(pid)), Some(Ok(fd))) = (
        words.next().map(str::parse::<u32>),
        words.next().map(str::parse::<u32>),
    ) else {
        return Announced::Nothing;
    };
    let Ok(f) = std::fs::File::open(format!("/proc/{pid}/fd/{fd}")) else {
        return Announced::Nothing;
    };
    // Only a network namespace is taken (a recycled pid or descriptor would be another file).
    // SAFETY: ioctl NS_GET_NSTYPE on a descriptor this function owns; no memory is passed.
    let kind = unsafe { libc::ioctl(f.as_raw_fd(), NS_GET_NSTYPE) };
    if kind == libc::CLONE_NEWNET {
        Announced::Netns(f.into())
    } else {
        Announced::Nothing
    }
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
                started: std::time::Instant::now(),
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
            let settled = c.started.elapsed() > std::time::Duration::from_millis(500);
            let (netns, pending) = match announced_netns(&mut c.stdout, settled).await {
                Announced::Netns(ns) => (Some(ns), None),
                Announced::Nothing => (None, None),
                Announced::Other(l) => (None, Some(l)),
            };
            if pending.is_some() || c.stdin.write_all(&line).await.is_ok() {
                handed = Some(Handed {
                    stdout: c.stdout,
                    pending,
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
        if let Some(line) = self.pending.take() {
            return parse_ready(&line);
        }
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
        parse_ready(&line)
    }
}

fn parse_ready(line: &str) -> Result<Response, ApiError> {
    serde_json::from_str(line.trim())
        .map_err(|e| ApiError::internal(format!("bad ready line from shim: {e}: {line}")))
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
