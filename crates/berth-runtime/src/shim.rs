//! The protocol between the daemon and a container's shim.
//!
//! The daemon starts a shim as `berth shim --dir <exec-root>/containers/<id>`. The shim reads
//! [`ShimConfig`] from `<dir>/shim.json`, detaches from the daemon (new session, double fork),
//! creates the container from the OCI bundle in `<dir>` (its process waits for `start`), listens
//! on `<dir>/shim.sock`, and then writes exactly one JSON line to its stdout: a [`Response`] with
//! `pid` set to the container's init pid, or with `error` set. From then on the shim is on its own:
//! the daemon may die and come back; it finds the shim again through `shim.sock`, and the
//! container's state through `state.json` ([`State`]), which the shim writes over itself at each
//! change, in place, padded with spaces to its previous length (never truncated nor replaced, so
//! no block of it is freed: on a disk mounted with `discard` that would be a synchronous discard
//! on every start and exit). Read it after the shim's answer to `wait`, or once the shim is gone.
//!
//! ## Requests
//!
//! A client connects to `shim.sock` and writes one [`Request`] as a JSON line. The shim answers
//! with one [`Response`] JSON line. For [`Request::Attach`] and [`Request::Exec`], once the
//! response says `ok`, the connection carries frames in both directions (see [`FrameKind`]):
//! the shim sends `Stdout`/`Stderr` frames (and `Exit` at the end of an exec, or when the
//! container exits), the client sends `Stdin` frames (an empty one closes stdin) and `Resize`.
//!
//! ## Frames
//!
//! An 8-byte header `[kind, 0, 0, 0, len as u32 big-endian]` and `len` bytes of payload: the same
//! shape as Docker's multiplexed attach stream, so stdout/stderr frames can be forwarded to a
//! Docker client unchanged when the container has no tty.
//!
//! After init exits, the shim records the exit in `state.json`, sends `Exit` to attached clients,
//! answers pending `wait`s, deletes the container from the runtime (cgroup included), unmounts
//! the rootfs given as `rootfs_mount`, and exits. A `wait` connection stays open until then: its
//! end of stream tells the client that the clean-up is over.

use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::path::PathBuf;

/// File names inside a shim's directory.
pub const CONFIG_FILE: &str = "shim.json";
pub const SOCKET_FILE: &str = "shim.sock";
pub const STATE_FILE: &str = "state.json";
pub const PID_FILE: &str = "shim.pid";
pub const SPEC_FILE: &str = "config.json";

/// What the shim needs to run one container. Written by the daemon as `shim.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ShimConfig {
    /// Container id.
    pub id: String,
    /// The OCI bundle directory (holds `config.json`); normally the shim's own directory.
    pub bundle: PathBuf,
    /// Path of an external OCI runtime binary (`runc`, `crun`, ...). `None`: libcontainer, built in.
    #[serde(default)]
    pub runtime: Option<PathBuf>,
    /// State directory for the runtime (libcontainer's root path, or `runc --root`).
    pub runtime_root: PathBuf,
    /// Where to write the container's output in Docker's json-file format. `None`: no logs.
    #[serde(default)]
    pub log_path: Option<PathBuf>,
    /// Rotate the log when it grows past this many bytes (0: never).
    #[serde(default)]
    pub log_max_size: u64,
    /// How many log files to keep when rotating (the live one included).
    #[serde(default)]
    pub log_max_files: u32,
    /// Give the container a pseudo-terminal.
    #[serde(default)]
    pub tty: bool,
    /// Keep the container's stdin open (a pipe, or the pty) for attach clients.
    #[serde(default)]
    pub open_stdin: bool,
    /// Close the container's stdin when the first attached client closes its stdin.
    #[serde(default)]
    pub stdin_once: bool,
    /// A mount point to unmount after the container exits (the overlay rootfs).
    #[serde(default)]
    pub rootfs_mount: Option<PathBuf>,
    /// A directory where the built-in runtime keeps seccomp profiles compiled to BPF, one file
    /// per profile (named by a digest of the profile, libseccomp's version, the binary and the
    /// boot), so that a profile is compiled once, not in every container's init. `None`:
    /// compile each time.
    #[serde(default)]
    pub seccomp_cache: Option<PathBuf>,
    /// The container's cgroup (the spec's `linux.cgroupsPath`), where the shim reads the
    /// OOM kills at the exit. `None`: the shim reads it from the spec.
    #[serde(default)]
    pub cgroups_path: Option<PathBuf>,
}

/// A unix socket path in `dir` that fits `sun_path` (108 bytes): `dir/name` itself when it is
/// short enough, else `/proc/<pid>/fd/<n>/name` through an `O_PATH` handle on `dir`, which
/// stays valid (for this process and for others) while this value lives.
#[derive(Debug)]
pub struct SocketPath {
    pub path: PathBuf,
    _dir: Option<std::fs::File>,
}

/// See [`SocketPath`].
pub fn socket_path(dir: &std::path::Path, name: &str) -> io::Result<SocketPath> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::io::AsRawFd;
    let full = dir.join(name);
    if full.as_os_str().len() < 100 {
        return Ok(SocketPath {
            path: full,
            _dir: None,
        });
    }
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)?;
    let path = PathBuf::from(format!(
        "/proc/{}/fd/{}/{name}",
        std::process::id(),
        d.as_raw_fd()
    ));
    Ok(SocketPath {
        path,
        _dir: Some(d),
    })
}

/// The container's state, as the shim records it in `state.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct State {
    pub id: String,
    /// Host pid of the container's init (0 before creation).
    pub pid: i32,
    /// Pid of the shim itself.
    pub shim_pid: i32,
    pub status: Status,
    /// Set once init has exited: its exit code (128+signal when killed by a signal).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// RFC 3339 times.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub finished_at: Option<String>,
    /// Init was killed by the OOM killer.
    #[serde(default)]
    pub oom_killed: bool,
    /// Why the container failed to start, if it did.
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Stopped,
}

/// One request on `shim.sock`, a JSON line.
// `Exec` carries a whole OCI process; requests are short-lived, so the size is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Start the created container's process.
    Start,
    /// The current [`State`].
    State,
    /// Answer when init has exited, with its exit code.
    Wait,
    /// Send a signal to init.
    Kill { signal: i32 },
    /// Freeze every process of the container.
    Pause,
    /// Thaw it.
    Resume,
    /// Resize init's terminal.
    Resize { height: u16, width: u16 },
    /// Attach to init's stdio; the connection then carries frames.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
    /// Run another process in the container; the connection then carries its stdio as frames,
    /// and ends with an `Exit` frame.
    Exec {
        exec_id: String,
        /// The OCI process to run (args, env, cwd, user, terminal, capabilities...).
        process: oci_spec::runtime::Process,
        /// Whether the client will send stdin.
        #[serde(default)]
        stdin: bool,
    },
}

/// The answer to a [`Request`], a JSON line.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Init's pid (ready line, `start`) or the exec process's pid (`exec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    /// For `wait`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// For `state`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<State>,
}

impl Response {
    pub fn ok() -> Self {
        Response {
            ok: true,
            ..Default::default()
        }
    }
    pub fn err(msg: impl Into<String>) -> Self {
        Response {
            ok: false,
            error: Some(msg.into()),
            ..Default::default()
        }
    }
}

/// The kind byte of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// client → shim: bytes for the process's stdin; an empty payload closes it.
    Stdin = 0,
    /// shim → client.
    Stdout = 1,
    /// shim → client.
    Stderr = 2,
    /// shim → client: the process exited; payload is its exit code, i32 big-endian.
    Exit = 3,
    /// client → shim: payload is height then width, u16 big-endian each.
    Resize = 4,
}

impl FrameKind {
    pub fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            0 => FrameKind::Stdin,
            1 => FrameKind::Stdout,
            2 => FrameKind::Stderr,
            3 => FrameKind::Exit,
            4 => FrameKind::Resize,
            _ => return None,
        })
    }
}

/// The largest payload a frame may carry.
pub const MAX_FRAME: usize = 1 << 20;

/// Encode a frame header.
pub fn frame_header(kind: FrameKind, len: usize) -> [u8; 8] {
    let l = (len as u32).to_be_bytes();
    [kind as u8, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

/// Decode a frame header into its kind and payload length.
pub fn parse_header(h: &[u8; 8]) -> io::Result<(FrameKind, usize)> {
    let kind = FrameKind::from_u8(h[0]).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad frame kind {}", h[0]),
        )
    })?;
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame too large: {len} bytes"),
        ));
    }
    Ok((kind, len))
}

/// Write one frame (blocking).
pub fn write_frame(w: &mut impl Write, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
    w.write_all(&frame_header(kind, payload.len()))?;
    w.write_all(payload)
}

/// Read one frame (blocking). `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(FrameKind, Vec<u8>)>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let (kind, len) = parse_header(&h)?;
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf)?;
    Ok(Some((kind, buf)))
}

/// Payload of a `Resize` frame.
pub fn resize_payload(height: u16, width: u16) -> [u8; 4] {
    let h = height.to_be_bytes();
    let w = width.to_be_bytes();
    [h[0], h[1], w[0], w[1]]
}

/// Decode a `Resize` payload into (height, width).
pub fn parse_resize(p: &[u8]) -> Option<(u16, u16)> {
    if p.len() != 4 {
        return None;
    }
    Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_frame(&mut buf, FrameKind::Stdout, b"hello").unwrap();
        write_frame(&mut buf, FrameKind::Exit, &7i32.to_be_bytes()).unwrap();
        let mut r = &buf[..];
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((FrameKind::Stdout, b"hello".to_vec()))
        );
        assert_eq!(
            read_frame(&mut r).unwrap(),
            Some((FrameKind::Exit, 7i32.to_be_bytes().to_vec()))
        );
        assert_eq!(read_frame(&mut r).unwrap(), None);
    }

    #[test]
    fn long_socket_paths_are_shortened() {
        let base = tempfile_dir();
        let deep = base.join("d".repeat(120));
        std::fs::create_dir_all(&deep).unwrap();
        let p = socket_path(&deep, "x.sock").unwrap();
        assert!(p.path.as_os_str().len() < 100);
        let l = std::os::unix::net::UnixListener::bind(&p.path).unwrap();
        assert!(deep.join("x.sock").exists());
        let q = socket_path(&deep, "x.sock").unwrap();
        std::os::unix::net::UnixStream::connect(&q.path).unwrap();
        drop(l);
        let short = socket_path(&base, "y.sock").unwrap();
        assert_eq!(short.path, base.join("y.sock"));
        std::fs::remove_dir_all(&base).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("berth-sock-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn bad_kind_is_refused() {
        let mut r: &[u8] = &[9, 0, 0, 0, 0, 0, 0, 0];
        assert!(read_frame(&mut r).is_err());
    }

    #[test]
    fn requests_are_tagged() {
        let j = serde_json::to_string(&Request::Kill { signal: 15 }).unwrap();
        assert_eq!(j, r#"{"op":"kill","signal":15}"#);
        let r: Request = serde_json::from_str(r#"{"op":"attach","stdout":true}"#).unwrap();
        assert_eq!(
            r,
            Request::Attach {
                stdin: false,
                stdout: true,
                stderr: false
            }
        );
    }
}
