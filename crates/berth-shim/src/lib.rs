//! berth-shim: the per-container supervisor (`berth shim --dir <dir>`).
//!
//! See [`berth_runtime::shim`] for the protocol. The shim is single-threaded: one `poll` loop
//! over its control socket, the clients' connections, the container's stdio and a self-pipe
//! woken by `SIGCHLD`.

pub mod logger;
pub mod runtime;

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use berth_runtime::shim::{self as proto, FrameKind, Request, Response, ShimConfig, State, Status};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use logger::JsonLog;
use runtime::{Builtin, External, ProcStdio, Runtime};

/// How long output is drained after a process exits before giving up on its pipes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// A client that falls this far behind is disconnected.
const MAX_CLIENT_BACKLOG: usize = 16 << 20;
const READ_CHUNK: usize = 32 * 1024;

macro_rules! log {
    ($($t:tt)*) => {{
        // One write per line (stderr is unbuffered: `eprintln!` writes each piece).
        let line = format!("{} {}\n", logger::now_rfc3339(), format_args!($($t)*));
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }};
}

/// Run the shim for the container whose directory is `dir`. Returns the exit code of the
/// process that called it (the daemon-facing parent returns as soon as the shim has detached).
pub fn main(dir: &Path) -> i32 {
    let started = Instant::now();
    let Some((dir, cfg)) = load(dir) else {
        return 1;
    };
    match detach(&dir) {
        Ok(false) => return 0,
        Ok(true) => {}
        Err(e) => {
            ready_line(&Response::err(format!("detach: {e:#}")));
            return 1;
        }
    }
    serve(&dir, cfg, started)
}

/// The shim's directory, canonical, and its configuration; `None` (the error sent as the
/// ready line) if either cannot be had.
fn load(dir: &Path) -> Option<(PathBuf, ShimConfig)> {
    let dir = match dir.canonicalize() {
        Ok(d) => d,
        Err(e) => {
            ready_line(&Response::err(format!(
                "shim directory {}: {e}",
                dir.display()
            )));
            return None;
        }
    };
    match fs::read(dir.join(proto::CONFIG_FILE))
        .map_err(anyhow::Error::from)
        .and_then(|b| serde_json::from_slice(&b).map_err(anyhow::Error::from))
    {
        Ok(c) => Some((dir, c)),
        Err(e) => {
            ready_line(&Response::err(format!("read {}: {e}", proto::CONFIG_FILE)));
            None
        }
    }
}

/// The detached shim: create the container, send the ready line, serve until the end.
fn serve(dir: &Path, cfg: ShimConfig, started: Instant) -> i32 {
    // Stdout is still the daemon's pipe.
    let code = match Shim::setup(dir, cfg, started) {
        Ok(mut shim) => {
            let r = shim.run();
            if let Err(e) = &r {
                log!("shim loop failed: {e:#}");
            }
            i32::from(r.is_err())
        }
        Err(e) => {
            log!("setup failed: {e:#}");
            ready_line(&Response::err(format!("{e:#}")));
            1
        }
    };
    // SAFETY: we are the forked shim; exit without running the caller's atexit handlers or
    // destructors belonging to the parent's state.
    unsafe { libc::_exit(code) }
}

/// `berth shim --spare`: a shim started ahead of time. It reads one line on its stdin, the
/// directory of the container to run, and goes on as `berth shim --dir <dir>`; end of input
/// (the daemon went away without using it) ends it. The daemon keeps one ready, so that a
/// start does not wait for the shim's exec and loading.
///
/// With `announce` (`--announce-netns`), it first writes on its stdout where the daemon can
/// open the network namespace it made ahead, `netns <pid> <fd>` (`netns -` if it made none):
/// a container with a namespace of its own gets that one (with the builtin runtime), and the
/// daemon plugs its networks in while this shim creates the container.
pub fn spare(announce: bool) -> i32 {
    // Detach first, while no start waits: the daemon reaps the process it started at once and
    // talks to the detached shim through the pipes it inherited.
    match detach_early() {
        Ok(false) => return 0,
        Ok(true) => {}
        Err(_) => return 1,
    }
    runtime::premake_netns();
    if announce {
        let line = match runtime::premade_netns_fd() {
            Some(fd) => format!("netns {} {fd}\n", std::process::id()),
            None => "netns -\n".to_string(),
        };
        // The daemon reads this line first, the ready line later.
        let mut out = io::stdout().lock();
        if out
            .write_all(line.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            return 1;
        }
    }
    runtime::warm_cgroup_mounts();
    let Some(line) = read_stdin_line() else {
        return 0;
    };
    let started = Instant::now();
    let dir = PathBuf::from(std::ffi::OsString::from_vec(line));
    // Stderr was the daemon's /dev/null until now, stdin the line just read.
    stdio_to_log(&dir);
    let Some((dir, cfg)) = load(&dir) else {
        return 1;
    };
    serve(&dir, cfg, started)
}

/// The one line a spare reads on its stdin, without its newline; `None` at end of input or on
/// an error. Unbuffered (std's stdin would keep an 8 KiB buffer for the shim's whole life): the
/// daemon writes the line with one write to a pipe, so it comes in one read or very few.
fn read_stdin_line() -> Option<Vec<u8>> {
    let mut line = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        // SAFETY: read(2) into a buffer that lives for the call.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        }
        let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
        line.extend_from_slice(&buf[..n]);
        if let Some(end) = line.iter().position(|&b| b == b'\n') {
            line.truncate(end);
            return Some(line);
        }
    }
}

/// Double fork and setsid: `Ok(false)` in the original process once the intermediate child
/// is gone, `Ok(true)` in the detached one, which keeps the daemon's pipes as stdin and
/// stdout (a spare detaches so before it has a directory; `detach` then redirects stdio).
fn detach_early() -> nix::Result<bool> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: the caller is single-threaded (the shim is), so the child may run arbitrary
    // code after fork.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            let _ = waitpid(child, None);
            return Ok(false);
        }
        ForkResult::Child => {}
    }
    let _ = setsid();
    // SAFETY: still single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Parent { .. }) => {
            // SAFETY: leave without running anything of the parent's.
            unsafe { libc::_exit(0) }
        }
        Ok(ForkResult::Child) => Ok(true),
        Err(e) => {
            ready_line(&Response::err(format!("fork: {e}")));
            // SAFETY: as above.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Write the one ready line to stdout, then point stdout at /dev/null so the daemon sees EOF.
fn ready_line(r: &Response) {
    let mut line = serde_json::to_vec(r).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    line.push(b'\n');
    let mut out = io::stdout().lock();
    let _ = out.write_all(&line);
    let _ = out.flush();
    drop(out);
    if let Ok(null) = OpenOptions::new().read(true).write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 1, which this process owns; `null` stays valid for the call.
        unsafe { libc::dup2(null.as_raw_fd(), 1) };
    }
}

/// Double fork and setsid. `Ok(false)` in the original process (after the intermediate child
/// is gone), `Ok(true)` in the shim. The shim's stdin is /dev/null, its stderr `shim.log`.
fn detach(dir: &Path) -> anyhow::Result<bool> {
    let detached = detach_early().context("fork")?;
    if detached {
        stdio_to_log(dir);
    }
    Ok(detached)
}

/// The shim's stdin becomes /dev/null and its stderr `shim.log` in `dir` (stdout stays the
/// daemon's pipe until the ready line).
fn stdio_to_log(dir: &Path) {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"));
    let null = OpenOptions::new().read(true).open("/dev/null");
    if let (Ok(log), Ok(null)) = (log, null) {
        // SAFETY: dup2 onto our own stdio descriptors; both sources are open files.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(log.as_raw_fd(), 2);
        }
    }
}

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigchld(_: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        let b = 1u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a local byte.
        unsafe { libc::write(fd, &b as *const u8 as *const libc::c_void, 1) };
    }
}

extern "C" fn on_sigpipe(_: libc::c_int) {}

/// SIGCHLD wakes the loop through a pipe. Handlers (not SIG_IGN, not a blocked mask) are
/// used so that the container's processes, which inherit the mask and ignored signals but not
/// handlers, start with default signal state.
fn install_signals() -> anyhow::Result<File> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
        .context("pipe")?;
    SIGNAL_PIPE.store(w.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(w);
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let chld = SigAction::new(
        SigHandler::Handler(on_sigchld),
        SaFlags::SA_RESTART | SaFlags::SA_NOCLDSTOP,
        SigSet::empty(),
    );
    let pipe = SigAction::new(
        SigHandler::Handler(on_sigpipe),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handlers only call async-signal-safe functions.
    unsafe {
        sigaction(Signal::SIGCHLD, &chld).context("sigaction")?;
        sigaction(Signal::SIGPIPE, &pipe).context("sigaction")?;
    }
    Ok(File::from(r))
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let fl = fcntl(fd, FcntlArg::F_GETFL)?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

fn pipe() -> io::Result<(File, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((File::from(r), w))
}

fn dev_null_rw() -> io::Result<OwnedFd> {
    Ok(OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/null")?
        .into())
}

/// Receive the pty master a runtime sends over the console socket.
fn recv_console(listener: &UnixListener) -> anyhow::Result<File> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let (conn, _) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(anyhow!("console socket: {e}")),
        }
    };
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .context("recvmsg on console socket")?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                for &other in &fds[1..] {
                    // SAFETY: descriptors received with SCM_RIGHTS are ours to close.
                    drop(unsafe { OwnedFd::from_raw_fd(other) });
                }
                // SAFETY: as above; this one is kept as the master.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
        }
    }
    Err(anyhow!("no pty master received on the console socket"))
}

fn set_winsize(master: &File, height: u16, width: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize struct that lives for the call.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The stdio of a process seen from the shim.
#[derive(Default)]
struct Io {
    /// stdout, or the pty master.
    out: Option<File>,
    err: Option<File>,
    /// Where stdin bytes go (the pipe, or a dup of the pty master).
    stdin: Option<File>,
    stdin_pending: Vec<u8>,
    stdin_close_after: bool,
    /// The pty master, for resizes.
    tty: Option<File>,
}

impl Io {
    fn outputs_done(&self) -> bool {
        self.out.is_none() && self.err.is_none()
    }

    fn queue_stdin(&mut self, data: &[u8]) {
        if self.stdin.is_some() {
            self.stdin_pending.extend_from_slice(data);
            self.flush_stdin();
        }
    }

    fn close_stdin(&mut self) {
        if self.tty.is_some() {
            // A pty has no separate stdin to close: send EOF (^D) to the line discipline.
            self.queue_stdin(&[4]);
        } else {
            self.stdin_close_after = true;
            self.flush_stdin();
        }
    }

    fn flush_stdin(&mut self) {
        if let Some(f) = self.stdin.as_mut() {
            while !self.stdin_pending.is_empty() {
                match f.write(&self.stdin_pending) {
                    Ok(n) => {
                        self.stdin_pending.drain(..n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        self.stdin_pending.clear();
                        self.stdin = None;
                        return;
                    }
                }
            }
            if self.stdin_close_after {
                self.stdin = None;
            }
        }
    }
}

/// Set up a process's stdio: pipes or a console socket.
struct PreparedIo {
    io: Io,
    stdio: ProcStdio,
    console: Option<(UnixListener, PathBuf, proto::SocketPath)>,
}

fn prepare_io(
    dir: &Path,
    tty: bool,
    open_stdin: bool,
    sock_name: &str,
) -> anyhow::Result<PreparedIo> {
    if tty {
        let path = dir.join(sock_name);
        let _ = fs::remove_file(&path);
        let short = proto::socket_path(dir, sock_name)?;
        let listener = UnixListener::bind(&short.path)
            .with_context(|| format!("bind console socket {}", path.display()))?;
        return Ok(PreparedIo {
            io: Io::default(),
            stdio: ProcStdio::Console(short.path.clone()),
            console: Some((listener, path, short)),
        });
    }
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_w, stdin_r) = if open_stdin {
        let (r, w) = pipe()?;
        (Some(File::from(w)), OwnedFd::from(r))
    } else {
        (None, dev_null_rw()?)
    };
    for f in [&out_r, &err_r] {
        set_nonblocking(f.as_raw_fd())?;
    }
    if let Some(w) = &stdin_w {
        set_nonblocking(w.as_raw_fd())?;
    }
    Ok(PreparedIo {
        io: Io {
            out: Some(out_r),
            err: Some(err_r),
            stdin: stdin_w,
            ..Default::default()
        },
        stdio: ProcStdio::Fds {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        },
        console: None,
    })
}

/// After the runtime created the process: collect the pty master if there is one.
fn finish_io(
    p: &mut Option<(UnixListener, PathBuf, proto::SocketPath)>,
    io: &mut Io,
    want_stdin: bool,
) -> anyhow::Result<()> {
    if let Some((listener, path, _short)) = p.take() {
        let r = recv_console(&listener);
        let _ = fs::remove_file(&path);
        let master = r?;
        set_nonblocking(master.as_raw_fd())?;
        if want_stdin {
            io.stdin = Some(master.try_clone()?);
        }
        io.tty = Some(master.try_clone()?);
        io.out = Some(master);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// Waiting for the request line.
    Request,
    /// Waiting for init to exit.
    Waiting,
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Exec(u64),
    /// Response queued; close once written.
    Closing,
}

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    mode: Mode,
    eof: bool,
    dead: bool,
}

impl Client {
    fn send(&mut self, data: &[u8]) {
        if self.dead {
            return;
        }
        self.outbuf.extend_from_slice(data);
        if self.outbuf.len() > MAX_CLIENT_BACKLOG {
            self.dead = true;
            return;
        }
        self.flush();
    }

    fn respond(&mut self, r: &Response) {
        let mut line = serde_json::to_vec(r).unwrap_or_default();
        line.push(b'\n');
        self.send(&line);
    }

    fn frame(&mut self, kind: FrameKind, payload: &[u8]) {
        for chunk in payload.chunks(proto::MAX_FRAME).chain(
            // An empty payload is still one frame.
            std::iter::once(&[][..]).filter(|_| payload.is_empty()),
        ) {
            let h = proto::frame_header(kind, chunk.len());
            self.send(&h);
            self.send(chunk);
        }
    }

    fn flush(&mut self) {
        while !self.outbuf.is_empty() && !self.dead {
            match (&self.stream).write(&self.outbuf) {
                Ok(0) => self.dead = true,
                Ok(n) => {
                    self.outbuf.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.dead = true,
            }
        }
        if self.outbuf.is_empty() && self.mode == Mode::Closing {
            self.dead = true;
        }
    }

    /// Write what is left, waiting up to `timeout` (at exit).
    fn flush_blocking(&mut self, timeout: Duration) {
        if self.dead || self.outbuf.is_empty() {
            return;
        }
        let _ = self.stream.set_nonblocking(false);
        let _ = self.stream.set_write_timeout(Some(timeout));
        let _ = (&self.stream).write_all(&self.outbuf);
        self.outbuf.clear();
    }
}

struct ExecProc {
    pid: i32,
    client: u64,
    io: Io,
    exit: Option<i32>,
    deadline: Option<Instant>,
    process_file: PathBuf,
}

struct Shim {
    dir: PathBuf,
    cfg: ShimConfig,
    runtime: Box<dyn Runtime>,
    state: State,
    sigpipe: File,
    listener: UnixListener,
    init: Io,
    log: Option<JsonLog>,
    clients: BTreeMap<u64, Client>,
    next_id: u64,
    execs: BTreeMap<u64, ExecProc>,
    /// Set when init has been reaped: drain output until then.
    init_exit: Option<(i32, Instant)>,
    /// Exit statuses reaped for pids not yet known (an exec that exited before we saw its pid).
    early_exits: BTreeMap<i32, i32>,
    stdin_claimed: bool,
    /// Where the kernel counts the container's OOM kills (`oom_files`), found once the
    /// container is created, read when it exits.
    oom_files: Vec<PathBuf>,
    /// The container's mount namespace, held from its creation to the shim's clean-up: when
    /// the container's last process exits, the kernel then does not tear the namespace down
    /// (unmount all of the container's mounts and wait for an RCU grace period) on the exit's
    /// path, before the shim learns of the exit, but when this is closed, after the exit has
    /// been reported.
    mount_ns: Option<File>,
    /// Set by a start: when to finish what creating the container left (`Runtime::settle`)
    /// and give back the memory it used, unless the container has exited by then (a short
    /// one then exits without the shim spending time on either).
    settle_at: Option<Instant>,
}

/// How long after its start a container's shim settles (see `Shim::settle_at`).
const SETTLE_DELAY: Duration = Duration::from_millis(20);

fn exit_code(ws: WaitStatus) -> Option<(i32, i32)> {
    match ws {
        WaitStatus::Exited(pid, code) => Some((pid.as_raw(), code)),
        WaitStatus::Signaled(pid, sig, _) => Some((pid.as_raw(), 128 + sig as i32)),
        _ => None,
    }
}

fn failure_exit_code(msg: &str) -> i32 {
    if msg.contains("not found") || msg.contains("no such file") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        128
    }
}

impl Shim {
    /// Boxed, and never inlined into `serve`: the shim's loop runs under `serve`'s frame for
    /// the container's whole life, so what creating the container needed on the stack belongs
    /// in frames that end before the loop (the memory release gives those pages back).
    #[inline(never)]
    fn setup(dir: &Path, cfg: ShimConfig, started: Instant) -> anyhow::Result<Box<Shim>> {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            return Err(io::Error::last_os_error()).context("PR_SET_CHILD_SUBREAPER");
        }
        std::env::set_current_dir(dir).context("chdir")?;
        let pid = std::process::id() as i32;
        fs::write(dir.join(proto::PID_FILE), pid.to_string()).context("write shim.pid")?;
        let sigpipe = install_signals()?;

        let runtime: Box<dyn Runtime> = match &cfg.runtime {
            Some(bin) => Box::new(External::new(
                bin,
                &cfg.runtime_root,
                &cfg.id,
                &cfg.bundle,
                dir,
            )),
            None => Box::new(Builtin::new(
                &cfg.id,
                &cfg.runtime_root,
                &cfg.bundle,
                &dir.join("libcontainer-bundle"),
                cfg.seccomp_cache.as_deref(),
            )),
        };
        let sock = dir.join(proto::SOCKET_FILE);
        let _ = fs::remove_file(&sock);
        let listener = UnixListener::bind(&proto::socket_path(dir, proto::SOCKET_FILE)?.path)
            .context("bind shim.sock")?;
        listener.set_nonblocking(true)?;
        let log = match &cfg.log_path {
            Some(p) => Some(
                JsonLog::open(p, cfg.log_max_size, cfg.log_max_files)
                    .with_context(|| format!("open log {}", p.display()))?,
            ),
            None => None,
        };
        let mut shim = Box::new(Shim {
            dir: dir.to_path_buf(),
            state: State {
                id: cfg.id.clone(),
                shim_pid: pid,
                status: Status::Created,
                ..Default::default()
            },
            cfg,
            runtime,
            sigpipe,
            listener,
            init: Io::default(),
            log,
            clients: BTreeMap::new(),
            next_id: 1,
            execs: BTreeMap::new(),
            init_exit: None,
            early_exits: BTreeMap::new(),
            stdin_claimed: false,
            oom_files: Vec::new(),
            mount_ns: None,
            settle_at: None,
        });
        if let Err(e) = shim.create(started) {
            let msg = format!("{e:#}");
            shim.state.status = Status::Stopped;
            shim.state.exit_code = Some(failure_exit_code(&msg));
            shim.state.finished_at = Some(logger::now_rfc3339());
            shim.state.error = Some(msg.clone());
            let _ = shim.write_state();
            let _ = shim.runtime.delete();
            shim.reap();
            shim.unmount_rootfs();
            let _ = fs::remove_file(&sock);
            return Err(anyhow!(msg));
        }
        Ok(shim)
    }

    /// `started`: when this shim's `main` began, for the log's timings.
    fn create(&mut self, started: Instant) -> anyhow::Result<()> {
        let mut p = prepare_io(&self.dir, self.cfg.tty, self.cfg.open_stdin, "console.sock")?;
        let before = started.elapsed();
        let t = Instant::now();
        let pid = self.runtime.create(p.stdio).map_err(|e| anyhow!("{e}"))?;
        let in_runtime = t.elapsed();
        finish_io(&mut p.console, &mut p.io, self.cfg.open_stdin)?;
        self.init = p.io;
        self.state.pid = pid;
        self.mount_ns = File::open(format!("/proc/{pid}/ns/mnt")).ok();
        self.write_state()?;
        ready_line(&Response {
            ok: true,
            pid: Some(pid),
            ..Default::default()
        });
        self.oom_files = oom_files(&self.cfg);
        log!(
            "created container {} with init pid {pid}: {:.2?} to set up, {:.2?} in the runtime, \
             ready {:.2?} after the shim's start",
            self.cfg.id,
            before,
            in_runtime,
            started.elapsed()
        );
        Ok(())
    }

    fn write_state(&self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut data = serde_json::to_vec(&self.state).map_err(io::Error::other)?;
        // Written over the previous state, in place, and padded with spaces (JSON's whitespace)
        // to its length: the file is never truncated nor replaced, so no data block is ever
        // freed. Where the exec root is a disk file system mounted with `discard`, each freed
        // block was a synchronous discard (~0.15-0.5 ms) on the container's start and exit.
        // No fsync: the state lives under the exec root (a tmpfs by default) and is read by the
        // daemon of this boot, after the shim has answered the `wait` that follows this write.
        let f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(self.dir.join(proto::STATE_FILE))?;
        let old = f.metadata()?.len() as usize;
        if data.len() < old {
            data.resize(old, b' ');
        }
        f.write_all_at(&data, 0)
    }

    fn unmount_rootfs(&self) {
        if let Some(m) = &self.cfg.rootfs_mount {
            if let Err(e) = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH) {
                if e != nix::errno::Errno::EINVAL && e != nix::errno::Errno::ENOENT {
                    log!("unmount {}: {e}", m.display());
                }
            }
        }
    }

    fn run(&mut self) -> anyhow::Result<()> {
        loop {
            self.poll_once()?;
            self.reap();
            self.check_execs();
            if self.settle_at.is_some_and(|t| Instant::now() >= t) {
                self.settle_at = None;
                if self.init_exit.is_none() {
                    if let Err(e) = self.runtime.settle() {
                        log!("settle: {e}");
                    }
                    release_spare_memory();
                }
            }
            if let Some((code, deadline)) = self.init_exit {
                let execs_done = self.execs.is_empty();
                if (self.init.outputs_done() && execs_done) || Instant::now() >= deadline {
                    self.finish(code);
                    return Ok(());
                }
            }
            self.clients.retain(|_, c| !c.dead);
        }
    }

    fn poll_once(&mut self) -> anyhow::Result<()> {
        #[derive(Clone, Copy)]
        enum Tok {
            Sig,
            Listen,
            Client(u64),
            InitOut,
            InitErr,
            InitStdin,
            ExecOut(u64),
            ExecErr(u64),
            ExecStdin(u64),
        }
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut toks: Vec<Tok> = Vec::new();
        let mut add = |fd: RawFd, ev: libc::c_short, t: Tok| {
            fds.push(libc::pollfd {
                fd,
                events: ev,
                revents: 0,
            });
            toks.push(t);
        };
        add(self.sigpipe.as_raw_fd(), libc::POLLIN, Tok::Sig);
        if self.init_exit.is_none() {
            add(self.listener.as_raw_fd(), libc::POLLIN, Tok::Listen);
        }
        for (id, c) in &self.clients {
            let mut ev = 0;
            if !c.eof {
                ev |= libc::POLLIN;
            }
            if !c.outbuf.is_empty() {
                ev |= libc::POLLOUT;
            }
            add(c.stream.as_raw_fd(), ev, Tok::Client(*id));
        }
        if let Some(f) = &self.init.out {
            add(f.as_raw_fd(), libc::POLLIN, Tok::InitOut);
        }
        if let Some(f) = &self.init.err {
            add(f.as_raw_fd(), libc::POLLIN, Tok::InitErr);
        }
        if let (Some(f), false) = (&self.init.stdin, self.init.stdin_pending.is_empty()) {
            add(f.as_raw_fd(), libc::POLLOUT, Tok::InitStdin);
        }
        for (k, e) in &self.execs {
            if let Some(f) = &e.io.out {
                add(f.as_raw_fd(), libc::POLLIN, Tok::ExecOut(*k));
            }
            if let Some(f) = &e.io.err {
                add(f.as_raw_fd(), libc::POLLIN, Tok::ExecErr(*k));
            }
            if let (Some(f), false) = (&e.io.stdin, e.io.stdin_pending.is_empty()) {
                add(f.as_raw_fd(), libc::POLLOUT, Tok::ExecStdin(*k));
            }
        }
        let draining = self.init_exit.is_some() || self.execs.values().any(|e| e.exit.is_some());
        let mut timeout = if draining { 50 } else { 1000 };
        if let Some(t) = self.settle_at {
            let left = t.saturating_duration_since(Instant::now());
            timeout = timeout.min(left.as_millis() as libc::c_int + 1);
        }
        // SAFETY: `fds` is a valid array of pollfd of the given length for the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                return Ok(());
            }
            return Err(e).context("poll");
        }
        for (pfd, tok) in fds.iter().zip(toks) {
            if pfd.revents == 0 {
                continue;
            }
            match tok {
                Tok::Sig => {
                    let mut b = [0u8; 64];
                    while matches!((&self.sigpipe).read(&mut b), Ok(n) if n > 0) {}
                }
                Tok::Listen => self.accept(),
                Tok::Client(id) => self.client_event(id, pfd.revents),
                Tok::InitOut => self.read_init(false),
                Tok::InitErr => self.read_init(true),
                Tok::InitStdin => self.init.flush_stdin(),
                Tok::ExecOut(k) => self.read_exec(k, false),
                Tok::ExecErr(k) => self.read_exec(k, true),
                Tok::ExecStdin(k) => {
                    if let Some(e) = self.execs.get_mut(&k) {
                        e.io.flush_stdin();
                    }
                }
            }
        }
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(true);
                    let id = self.next_id;
                    self.next_id += 1;
                    self.clients.insert(
                        id,
                        Client {
                            stream,
                            inbuf: Vec::new(),
                            outbuf: Vec::new(),
                            mode: Mode::Request,
                            eof: false,
                            dead: false,
                        },
                    );
                }
                Err(_) => return,
            }
        }
    }

    /// Read from a stdio descriptor: `Some(data)`, or `None` at EOF/EIO (the fd is dropped),
    /// or an empty vec when nothing is ready.
    fn read_fd(slot: &mut Option<File>) -> Vec<u8> {
        let Some(f) = slot.as_mut() else {
            return Vec::new();
        };
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    *slot = None;
                    return Vec::new();
                }
                Ok(n) => {
                    buf.truncate(n);
                    return buf;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Vec::new(),
                Err(_) => {
                    // EIO: the pty's slave side is closed.
                    *slot = None;
                    return Vec::new();
                }
            }
        }
    }

    fn read_init(&mut self, stderr: bool) {
        let data = if stderr {
            Self::read_fd(&mut self.init.err)
        } else {
            Self::read_fd(&mut self.init.out)
        };
        if data.is_empty() {
            return;
        }
        let stream = if stderr { "stderr" } else { "stdout" };
        if let Some(l) = self.log.as_mut() {
            if let Err(e) = l.write(stream, &data) {
                log!("log write: {e}");
            }
        }
        let kind = if stderr {
            FrameKind::Stderr
        } else {
            FrameKind::Stdout
        };
        for c in self.clients.values_mut() {
            if let Mode::Attach {
                stdout, stderr: se, ..
            } = c.mode
            {
                if (stderr && se) || (!stderr && stdout) {
                    c.frame(kind, &data);
                }
            }
        }
    }

    fn read_exec(&mut self, k: u64, stderr: bool) {
        let Some(e) = self.execs.get_mut(&k) else {
            return;
        };
        let data = if stderr {
            Self::read_fd(&mut e.io.err)
        } else {
            Self::read_fd(&mut e.io.out)
        };
        if data.is_empty() {
            return;
        }
        let client = e.client;
        if let Some(c) = self.clients.get_mut(&client) {
            c.frame(
                if stderr {
                    FrameKind::Stderr
                } else {
                    FrameKind::Stdout
                },
                &data,
            );
        }
    }

    fn client_event(&mut self, id: u64, revents: libc::c_short) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        if revents & libc::POLLOUT != 0 {
            c.flush();
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 && !c.eof {
            // Clients send small requests and stdin: a small buffer, read in a loop, keeps
            // the shim's stack (resident for the container's life) small.
            let mut buf = [0u8; 4096];
            loop {
                match (&c.stream).read(&mut buf) {
                    Ok(0) => {
                        c.eof = true;
                        break;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        c.eof = true;
                        break;
                    }
                }
                if c.inbuf.len() > 2 * proto::MAX_FRAME {
                    break;
                }
            }
        }
        self.process_input(id);
    }

    fn process_input(&mut self, id: u64) {
        loop {
            let Some(c) = self.clients.get_mut(&id) else {
                return;
            };
            match c.mode {
                Mode::Request => {
                    let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
                        if c.eof {
                            c.dead = true;
                        }
                        return;
                    };
                    let line: Vec<u8> = c.inbuf.drain(..=nl).collect();
                    match serde_json::from_slice::<Request>(&line) {
                        Ok(req) => self.handle(id, req),
                        Err(e) => {
                            c.mode = Mode::Closing;
                            c.respond(&Response::err(format!("bad request: {e}")));
                        }
                    }
                }
                Mode::Attach { stdin, .. } => {
                    let frames = Self::take_frames(c);
                    let eof = c.eof;
                    for (kind, payload) in frames {
                        self.client_frame(None, stdin, kind, &payload);
                    }
                    if eof {
                        // Only an explicit empty Stdin frame closes stdin: a client that
                        // detached (ctrl-p ctrl-q) just goes away, and the process keeps it.
                        if let Some(c) = self.clients.get_mut(&id) {
                            c.dead = true;
                        }
                    }
                    return;
                }
                Mode::Exec(k) => {
                    let frames = Self::take_frames(c);
                    let eof = c.eof;
                    for (kind, payload) in frames {
                        self.client_frame(Some(k), true, kind, &payload);
                    }
                    if eof {
                        // The client is gone: close the process's stdin; keep running it.
                        if let Some(e) = self.execs.get_mut(&k) {
                            if e.io.tty.is_none() {
                                e.io.close_stdin();
                            }
                        }
                    }
                    return;
                }
                Mode::Waiting | Mode::Closing => {
                    c.inbuf.clear();
                    if c.eof && c.mode == Mode::Waiting {
                        c.dead = true;
                    }
                    return;
                }
            }
        }
    }

    fn take_frames(c: &mut Client) -> Vec<(FrameKind, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            if c.inbuf.len() < 8 {
                break;
            }
            let mut h = [0u8; 8];
            h.copy_from_slice(&c.inbuf[..8]);
            match proto::parse_header(&h) {
                Ok((kind, len)) => {
                    if c.inbuf.len() < 8 + len {
                        break;
                    }
                    let payload = c.inbuf[8..8 + len].to_vec();
                    c.inbuf.drain(..8 + len);
                    out.push((kind, payload));
                }
                Err(_) => {
                    c.dead = true;
                    c.inbuf.clear();
                    break;
                }
            }
        }
        out
    }

    fn client_frame(&mut self, exec: Option<u64>, stdin_ok: bool, kind: FrameKind, p: &[u8]) {
        let stdin_once = self.cfg.stdin_once;
        let io = match exec {
            Some(k) => match self.execs.get_mut(&k) {
                Some(e) => &mut e.io,
                None => return,
            },
            None => &mut self.init,
        };
        match kind {
            FrameKind::Stdin if stdin_ok => {
                if p.is_empty() {
                    // As dockerd: a client's end of input closes an exec's stdin, and the
                    // init's with `StdinOnce` unless it has a terminal (a client that
                    // detaches, or goes away, leaves a shell on a terminal running).
                    if exec.is_some() || (stdin_once && io.tty.is_none()) {
                        io.close_stdin();
                    }
                } else {
                    io.queue_stdin(p);
                }
            }
            FrameKind::Resize => {
                if let (Some((h, w)), Some(t)) = (proto::parse_resize(p), io.tty.as_ref()) {
                    let _ = set_winsize(t, h, w);
                }
            }
            _ => {}
        }
    }

    fn handle(&mut self, id: u64, req: Request) {
        let resp = match req {
            Request::Start => self.start(),
            Request::State => Response {
                ok: true,
                state: Some(self.state.clone()),
                ..Default::default()
            },
            Request::Wait => {
                if let Some(code) = self
                    .state
                    .exit_code
                    .filter(|_| self.state.status == Status::Stopped)
                {
                    Response {
                        ok: true,
                        exit_code: Some(code),
                        ..Default::default()
                    }
                } else {
                    if let Some(c) = self.clients.get_mut(&id) {
                        c.mode = Mode::Waiting;
                    }
                    return;
                }
            }
            Request::Kill { signal } => match self.runtime.kill(signal) {
                Ok(()) => Response::ok(),
                Err(e) => Response::err(e.to_string()),
            },
            Request::Pause => self.pause(true),
            Request::Resume => self.pause(false),
            Request::Resize { height, width } => match self.init.tty.as_ref() {
                Some(t) => match set_winsize(t, height, width) {
                    Ok(()) => Response::ok(),
                    Err(e) => Response::err(format!("resize: {e}")),
                },
                None => Response::err("the container has no tty"),
            },
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => {
                let stdin = stdin && self.init.stdin.is_some();
                if stdin {
                    self.stdin_claimed = true;
                }
                if let Some(c) = self.clients.get_mut(&id) {
                    c.mode = Mode::Attach {
                        stdin,
                        stdout,
                        stderr,
                    };
                    c.respond(&Response::ok());
                }
                // Frames may already be buffered behind the request line.
                self.process_input(id);
                return;
            }
            Request::Exec {
                exec_id,
                process,
                stdin,
            } => match self.exec(id, &exec_id, process, stdin) {
                Ok(pid) => {
                    if let Some(c) = self.clients.get_mut(&id) {
                        c.respond(&Response {
                            ok: true,
                            pid: Some(pid),
                            ..Default::default()
                        });
                    }
                    self.process_input(id);
                    return;
                }
                Err(e) => Response::err(e),
            },
        };
        if let Some(c) = self.clients.get_mut(&id) {
            c.mode = Mode::Closing;
            c.respond(&resp);
        }
    }

    fn start(&mut self) -> Response {
        if self.state.status != Status::Created {
            return Response::err(format!("container {} is not in created state", self.cfg.id));
        }
        match self.runtime.start() {
            Ok(()) => {
                self.state.status = Status::Running;
                self.state.started_at = Some(logger::now_rfc3339());
                if let Err(e) = self.write_state() {
                    log!("write state: {e}");
                }
                // The shim now only relays stdio and waits, for as long as the container
                // runs: it gives back what creating it used, a little later.
                self.settle_at = Some(Instant::now() + SETTLE_DELAY);
                Response {
                    ok: true,
                    pid: Some(self.state.pid),
                    ..Default::default()
                }
            }
            Err(e) => Response::err(e.to_string()),
        }
    }

    fn pause(&mut self, pause: bool) -> Response {
        let (want, to) = if pause {
            (Status::Running, Status::Paused)
        } else {
            (Status::Paused, Status::Running)
        };
        if self.state.status != want {
            return Response::err(format!(
                "container {} is not {}",
                self.cfg.id,
                if pause { "running" } else { "paused" }
            ));
        }
        let r = if pause {
            self.runtime.pause()
        } else {
            self.runtime.resume()
        };
        match r {
            Ok(()) => {
                self.state.status = to;
                let _ = self.write_state();
                Response::ok()
            }
            Err(e) => Response::err(e.to_string()),
        }
    }

    fn exec(
        &mut self,
        client: u64,
        exec_id: &str,
        mut process: oci_spec::runtime::Process,
        stdin: bool,
    ) -> Result<i32, String> {
        if self.state.status != Status::Running || self.init_exit.is_some() {
            return Err(format!("container {} is not running", self.cfg.id));
        }
        if exec_id.is_empty()
            || !exec_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(format!("invalid exec id {exec_id:?}"));
        }
        // The process inherits what the daemon left out from init's spec, never more.
        if let Ok(spec) = oci_spec::runtime::Spec::load(self.cfg.bundle.join(proto::SPEC_FILE)) {
            if let Some(init) = spec.process() {
                if process.capabilities().is_none() {
                    process.set_capabilities(init.capabilities().clone());
                }
                if process.no_new_privileges().is_none() {
                    process.set_no_new_privileges(init.no_new_privileges());
                }
                if process.apparmor_profile().is_none() {
                    process.set_apparmor_profile(init.apparmor_profile().clone());
                }
            }
        }
        let tty = process.terminal().unwrap_or(false);
        let file = self.dir.join(format!("exec-{exec_id}.json"));
        fs::write(
            &file,
            serde_json::to_vec(&process).map_err(|e| e.to_string())?,
        )
        .map_err(|e| format!("write {}: {e}", file.display()))?;
        // Socket paths are limited to 108 bytes: a short name, unique within this shim.
        let sock = format!("e{}.sock", self.next_id);
        let mut p = prepare_io(&self.dir, tty, stdin, &sock).map_err(|e| format!("{e:#}"))?;
        let r = self.runtime.exec(&file, p.stdio);
        let pid = match r {
            Ok(pid) => pid,
            Err(e) => {
                let _ = fs::remove_file(&file);
                if let Some((_, path, _)) = p.console.take() {
                    let _ = fs::remove_file(path);
                }
                return Err(e.to_string());
            }
        };
        finish_io(&mut p.console, &mut p.io, stdin).map_err(|e| format!("{e:#}"))?;
        let key = self.next_id;
        self.next_id += 1;
        let early = self.early_exits.remove(&pid);
        self.execs.insert(
            key,
            ExecProc {
                pid,
                client,
                io: p.io,
                exit: early,
                deadline: early.map(|_| Instant::now() + DRAIN_TIMEOUT),
                process_file: file,
            },
        );
        if let Some(c) = self.clients.get_mut(&client) {
            c.mode = Mode::Exec(key);
        }
        Ok(pid)
    }

    /// Reap every exited child; record init's and execs' exits.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(ws) => {
                    let Some((pid, code)) = exit_code(ws) else {
                        continue;
                    };
                    if pid == self.state.pid && self.init_exit.is_none() && self.state.pid > 0 {
                        log!("init {pid} exited with {code}");
                        self.init_exit = Some((code, Instant::now() + DRAIN_TIMEOUT));
                        // Nobody will write to init's stdin any more.
                        self.init.stdin = None;
                    } else if let Some(e) = self.execs.values_mut().find(|e| e.pid == pid) {
                        e.exit = Some(code);
                        e.deadline = Some(Instant::now() + DRAIN_TIMEOUT);
                    } else {
                        self.early_exits.insert(pid, code);
                        if self.early_exits.len() > 1024 {
                            self.early_exits.clear();
                        }
                    }
                }
            }
        }
    }

    /// Finish execs whose process exited and whose output is drained.
    fn check_execs(&mut self) {
        let now = Instant::now();
        let done: Vec<u64> = self
            .execs
            .iter()
            .filter(|(_, e)| {
                e.exit.is_some() && (e.io.outputs_done() || e.deadline.is_some_and(|d| now >= d))
            })
            .map(|(k, _)| *k)
            .collect();
        for k in done {
            let Some(e) = self.execs.remove(&k) else {
                continue;
            };
            let _ = fs::remove_file(&e.process_file);
            if let Some(c) = self.clients.get_mut(&e.client) {
                c.frame(FrameKind::Exit, &e.exit.unwrap_or(-1).to_be_bytes());
                c.mode = Mode::Closing;
                c.flush();
            }
        }
    }

    fn finish(&mut self, code: i32) {
        // Output still in the pipes, if any.
        for stderr in [false, true] {
            for _ in 0..64 {
                let before = self.init.outputs_done();
                self.read_init(stderr);
                if before
                    || (stderr && self.init.err.is_none())
                    || (!stderr && self.init.out.is_none())
                {
                    break;
                }
            }
        }
        if let Some(l) = self.log.as_mut() {
            let _ = l.flush();
        }
        self.state.status = Status::Stopped;
        self.state.exit_code = Some(code);
        self.state.finished_at = Some(logger::now_rfc3339());
        // Read before the runtime deletes the cgroup.
        self.state.oom_killed = oom_killed(&self.oom_files);
        if let Err(e) = self.write_state() {
            log!("write state: {e}");
        }
        // Execs still around died with init.
        self.reap();
        for e in std::mem::take(&mut self.execs).into_values() {
            let _ = fs::remove_file(&e.process_file);
            if let Some(c) = self.clients.get_mut(&e.client) {
                c.frame(FrameKind::Exit, &e.exit.unwrap_or(137).to_be_bytes());
            }
        }
        // Report the exit first, then clean up: `wait` clients keep their connection, which
        // ends when this process does, i.e. once the container is gone from the runtime and
        // its rootfs unmounted.
        for c in self.clients.values_mut() {
            match c.mode {
                Mode::Attach { .. } => c.frame(FrameKind::Exit, &code.to_be_bytes()),
                Mode::Waiting => c.respond(&Response {
                    ok: true,
                    exit_code: Some(code),
                    ..Default::default()
                }),
                _ => {}
            }
            c.flush_blocking(Duration::from_secs(2));
        }
        let _ = fs::remove_file(self.dir.join(proto::SOCKET_FILE));
        // Connections made since the init's exit (no longer accepted) end now, not when this
        // process does: their clients read the exit from the state file instead of waiting
        // for the clean-up below.
        while let Ok((stream, _)) = self.listener.accept() {
            drop(stream);
        }
        if let Err(e) = self.runtime.delete() {
            log!("delete container: {e}");
        }
        self.reap();
        // The container's mounts go (they hold the rootfs), then the rootfs itself.
        self.mount_ns = None;
        self.unmount_rootfs();
        log!("container {} exited with {code}", self.cfg.id);
    }
}

/// The files where the kernel counts the OOM kills of the container's memory cgroup
/// (`memory.events` on a v2 host, `memory.oom_control` in the v1 memory hierarchy), from the
/// spec's `cgroupsPath` (given in the shim's configuration, else read from the spec).
fn oom_files(cfg: &ShimConfig) -> Vec<PathBuf> {
    let path = match &cfg.cgroups_path {
        Some(p) => p.clone(),
        None => {
            let Ok(spec) = oci_spec::runtime::Spec::load(cfg.bundle.join(proto::SPEC_FILE)) else {
                return Vec::new();
            };
            let Some(p) = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()) else {
                return Vec::new();
            };
            p
        }
    };
    let rel = path.to_string_lossy().trim_start_matches('/').to_string();
    let root = std::path::Path::new("/sys/fs/cgroup");
    vec![
        root.join(&rel).join("memory.events"),
        root.join("memory").join(&rel).join("memory.oom_control"),
    ]
}

/// Whether the kernel's OOM killer killed a process of the container: the `oom_kill` count
/// in one of `files` ([`oom_files`]).
fn oom_killed(files: &[PathBuf]) -> bool {
    files.iter().any(|f| {
        fs::read_to_string(f).is_ok_and(|text| {
            text.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    })
}

/// Return to the kernel the memory the container's creation used and the shim no longer
/// needs: the heap's free pages (`malloc_trim`), the main stack's pages below what it uses now
/// (the runtime's create ran deep; those pages would stay resident, private to each shim, for
/// the container's whole life), and the pages and page tables of its read-only file mappings.
fn release_spare_memory() {
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
    let here = 0u8;
    let sp = std::ptr::addr_of!(here) as usize;
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let dontneed = |(lo, hi): (usize, usize)| {
        // SAFETY: callers pass a range whose pages hold nothing that is needed (see below).
        unsafe {
            libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED);
        }
    };
    // The read-only file mappings (the binary's code and constants, the libraries'): their
    // page tables (a page per 2 MiB of a large binary that creating a container touched all
    // over) are freed with the mappings where the kernel reclaims empty page tables
    // (CONFIG_PT_RECLAIM); the few pages the loop uses fault back in. Only mappings without a
    // private copy of any page, in memory or swapped out (smaps' `Anonymous: 0` and `Swap: 0`):
    // the loader's relocated read-only data must stay.
    // The current block's mapping if it is a candidate, and whether it has private pages.
    let mut block: Option<((usize, usize), bool)> = None;
    let mut stack_lo = None;
    for l in smaps.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        let Some(first) = f.first() else {
            continue;
        };
        if first.ends_with(':') {
            // An attribute of the current block.
            if (*first == "Anonymous:" || *first == "Swap:") && f.get(1) != Some(&"0") {
                if let Some((_, private)) = block.as_mut() {
                    *private = true;
                }
            }
            continue;
        }
        // A new block's header: the previous one is complete.
        if let Some((range, false)) = block.take() {
            dontneed(range);
        }
        let Some(range) = first.split_once('-').and_then(|(lo, hi)| {
            Some((
                usize::from_str_radix(lo, 16).ok()?,
                usize::from_str_radix(hi, 16).ok()?,
            ))
        }) else {
            continue;
        };
        if f.get(5) == Some(&"[stack]") {
            stack_lo = Some(range.0);
        } else if f.len() >= 6 && (f[1] == "r-xp" || f[1] == "r--p") && f[5].starts_with('/') {
            block = Some((range, false));
        }
    }
    if let Some((range, false)) = block {
        dontneed(range);
    }
    // The stack well below the current frame (the callees of this function, signal frames):
    // no live frame is there; pages touched again are fresh zero pages.
    let hi = sp.saturating_sub(16 * 1024) & !(4096 - 1);
    if let Some(lo) = stack_lo.filter(|&lo| hi > lo) {
        dontneed((lo, hi));
    }
}
