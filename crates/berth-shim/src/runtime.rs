//! The OCI runtimes the shim can drive: libcontainer, built in, or an external binary (runc).

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, LinuxSeccomp, Spec};

/// Errors from a runtime; the message is what a Docker client should see.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{0}")]
    Failed(String),
    #[error("failed to run {bin}: {source}")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no container")]
    NoContainer,
}

/// How a process's stdio is connected.
pub enum ProcStdio {
    /// Its own file descriptors (pipes, `/dev/null` opened read-write).
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
    /// A pseudo-terminal whose master is sent to this unix socket.
    Console(PathBuf),
}

/// One container in an OCI runtime.
pub trait Runtime {
    /// Create the container from the bundle; its process waits for [`Runtime::start`].
    /// Returns init's pid. On failure, nothing is left in the runtime.
    fn create(&mut self, stdio: ProcStdio) -> Result<i32, RuntimeError>;
    fn start(&mut self) -> Result<(), RuntimeError>;
    /// Signal init.
    fn kill(&mut self, signal: i32) -> Result<(), RuntimeError>;
    fn pause(&mut self) -> Result<(), RuntimeError>;
    fn resume(&mut self) -> Result<(), RuntimeError>;
    /// Start another process (described by an OCI process JSON file) in the container;
    /// returns its pid.
    fn exec(&mut self, process_json: &Path, stdio: ProcStdio) -> Result<i32, RuntimeError>;
    /// Remove the container from the runtime (its cgroup included), killing what is left.
    fn delete(&mut self) -> Result<(), RuntimeError>;
    /// Work that creating the container left for later, off the start's path: called once
    /// the container runs and the shim is idle, and before an exec.
    fn settle(&mut self) -> Result<(), RuntimeError> {
        Ok(())
    }
}

/// Turn a runtime's error into Docker's wording where we can.
pub fn docker_message(raw: &str) -> String {
    // `exec: "x": executable file not found in $PATH` (runc) or youki's variants.
    if let Some(i) = raw.find("exec: \"") {
        let rest = &raw[i..];
        let end = rest
            .find("in $PATH")
            .map(|e| e + "in $PATH".len())
            .or_else(|| rest.find(": no such file or directory").map(|e| e + 27))
            .or_else(|| rest.find(": permission denied").map(|e| e + 19))
            .unwrap_or(rest.len());
        return rest[..end].trim_end().to_string();
    }
    for marker in [
        "executable not found",
        "executable file not found",
        "not found in $PATH",
    ] {
        if raw.contains(marker) {
            if let Some(name) = quoted(raw) {
                return format!("exec: \"{name}\": executable file not found in $PATH");
            }
        }
    }
    raw.trim().to_string()
}

fn quoted(s: &str) -> Option<String> {
    let a = s.find(['"', '\''])?;
    let q = s[a..].chars().next()?;
    let b = s[a + 1..].find(q)?;
    Some(s[a + 1..a + 1 + b].to_string())
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// libcontainer 0.7 builds an exec's spec without the container's seccomp profile; this
/// executor loads the profile in the exec'd process, right before it runs the command, as
/// Docker's runtimes do for every process of a container.
#[derive(Clone)]
struct SeccompThenExec {
    profile: Option<oci_spec::runtime::LinuxSeccomp>,
}

impl libcontainer::workload::Executor for SeccompThenExec {
    fn exec(&self, spec: &Spec) -> Result<(), libcontainer::workload::ExecutorError> {
        if let Some(p) = &self.profile {
            // Loading a filter without CAP_SYS_ADMIN needs no_new_privs; libcontainer sets it
            // for execs already, this makes sure of it.
            // SAFETY: prctl with integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            libcontainer::seccomp::initialize_seccomp(p).map_err(|e| {
                libcontainer::workload::ExecutorError::Other(format!("seccomp: {e}"))
            })?;
        }
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), libcontainer::workload::ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

/// A network namespace made ahead by a spare shim while it waits (see [`premake_netns`]).
static PREMADE_NETNS: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// Make, while this spare shim waits for its container, the network namespace that a
/// container with a namespace of its own (`--network none`, the default bridge, a user
/// network) gets: creating one costs about half a millisecond of kernel work, off the start's
/// path this way. An error leaves the work to the start.
pub fn premake_netns() {
    if let Ok(ns) = new_netns() {
        *PREMADE_NETNS.lock().unwrap_or_else(|e| e.into_inner()) = Some(ns);
    }
}

/// The descriptor of the namespace [`premake_netns`] made, if any (for the daemon, which
/// opens it through /proc while this spare waits).
pub fn premade_netns_fd() -> Option<i32> {
    PREMADE_NETNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .map(|fd| fd.as_raw_fd())
}

/// The namespace [`premake_netns`] made, if any: a container that does not take it lets it go.
fn take_premade_netns() -> Option<OwnedFd> {
    PREMADE_NETNS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
}

/// Read, while this spare shim waits, what libcgroups looks up on every start in this mount
/// namespace: the cgroup v1 mounts (vendored libcgroups caches them per mount namespace, see
/// third_party/libcgroups/BERTH.md); the processes the runtime forks inherit the cache. On a
/// host without cgroup v1 the list is empty and nothing is looked up in it.
pub fn warm_cgroup_mounts() {
    let _ = libcgroups::v1::util::list_subsystem_mount_points();
}

/// A new network namespace with its loopback up (as Docker gives every container, also with
/// `--network none`), held by the returned descriptor. The calling process stays in its own
/// namespace: it must be single-threaded (the shim is), as `unshare` moves the thread.
// (Only the network namespace changes here. A change of this process's mount namespace
// outside libcontainer would have to call `libcgroups::common::mount_namespace_changed()`: the
// cgroup v1 mounts are cached per process, see third_party/libcgroups/BERTH.md.)
pub fn new_netns() -> io::Result<OwnedFd> {
    let home = File::open("/proc/thread-self/ns/net")?;
    // SAFETY: unshare(2) with a namespace flag; no memory is passed.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let made = loopback_up().and_then(|()| File::open("/proc/thread-self/ns/net"));
    // SAFETY: setns(2) on a namespace descriptor this function opened.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        // A shim left in the new namespace would give host-network containers the wrong one.
        eprintln!(
            "cannot return to the host's network namespace: {}",
            io::Error::last_os_error()
        );
        // SAFETY: leave at once; nothing of this process may go on.
        unsafe { libc::_exit(1) }
    }
    made.map(OwnedFd::from)
}

/// Set `lo` up in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: socket(2) with constant arguments; the descriptor is owned at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the `ifreq` passed, which lives here.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) != 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// libcontainer, in process.
pub struct Builtin {
    id: String,
    root: PathBuf,
    bundle: PathBuf,
    /// The spec as libcontainer must see it (see [`Builtin::new`]).
    patched_bundle: PathBuf,
    /// Where compiled seccomp profiles are kept (`ShimConfig::seccomp_cache`).
    seccomp_cache: Option<PathBuf>,
    container: Option<Container>,
    /// The new network namespace the container joins, held for the shim's life: the saved
    /// spec names it as `/proc/<shim>/fd/<n>`, and libcontainer reads that spec again (and
    /// may check the path) at each exec.
    netns: Option<OwnedFd>,
    /// The spec libcontainer created the container from (handed over in memory), until it
    /// is written to `patched_bundle` for execs ([`Runtime::settle`]).
    unsaved: Option<Spec>,
}

impl Builtin {
    /// `scratch` is a directory the shim owns, where the spec libcontainer reads is written:
    /// the bundle's `config.json` with an absolute root path and `MASKED_EQ` seccomp
    /// arguments swapped (libcontainer 0.7 reads `value`/`valueTwo` the other way round from
    /// runc and Docker).
    pub fn new(
        id: &str,
        root: &Path,
        bundle: &Path,
        scratch: &Path,
        seccomp_cache: Option<&Path>,
    ) -> Self {
        Builtin {
            id: id.to_string(),
            root: root.to_path_buf(),
            bundle: bundle.to_path_buf(),
            patched_bundle: scratch.to_path_buf(),
            seccomp_cache: seccomp_cache.map(Path::to_path_buf),
            container: None,
            netns: None,
            unsaved: None,
        }
    }

    /// The spec as libcontainer must see it, and its seccomp profile.
    fn prepare_bundle(&mut self) -> Result<(Spec, Option<LinuxSeccomp>), RuntimeError> {
        let failed = |e: &dyn std::error::Error| RuntimeError::Failed(chain(e));
        let mut spec =
            Spec::load(self.bundle.join(berth_runtime::shim::SPEC_FILE)).map_err(|e| failed(&e))?;
        if let Some(mut root) = spec.root().clone() {
            if root.path().is_relative() {
                root.set_path(self.bundle.join(root.path()));
                spec.set_root(Some(root));
            }
        }
        let mut profile = None;
        if let Some(mut linux) = spec.linux().clone() {
            if let Some(mut sc) = linux.seccomp().clone() {
                berth_runtime::seccomp::swap_masked_eq(&mut sc);
                profile = Some(sc.clone());
                linux.set_seccomp(Some(sc));
                spec.set_linux(Some(linux));
            }
        }
        self.give_netns(&mut spec);
        fs::create_dir_all(&self.patched_bundle).map_err(|source| RuntimeError::Io {
            what: "create bundle".into(),
            source,
        })?;
        Ok((spec, profile))
    }

    /// Write the spec libcontainer was given to the bundle it knows, where an exec reads it.
    fn save_spec(&mut self) -> Result<(), RuntimeError> {
        if let Some(spec) = &self.unsaved {
            spec.save(self.patched_bundle.join(berth_runtime::shim::SPEC_FILE))
                .map_err(|e| RuntimeError::Failed(chain(&e)))?;
            // Kept until it is written: a failed write is tried again at the next exec.
            self.unsaved = None;
        }
        Ok(())
    }

    /// A container that gets a network namespace of its own joins one made by this shim
    /// (ahead of time by a spare, else now), whose loopback is up as in Docker's containers;
    /// libcontainer would leave it down. Not with a user namespace, whose root could not join a
    /// namespace of the host's. Where making it fails, libcontainer makes one.
    fn give_netns(&mut self, spec: &mut Spec) {
        // Taken at once: a container that does not use it (host network, another container's,
        // a user namespace) drops it on the way out.
        let premade = take_premade_netns();
        let Some(mut linux) = spec.linux().clone() else {
            return;
        };
        let Some(mut namespaces) = linux.namespaces().clone() else {
            return;
        };
        if namespaces
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::User)
        {
            return;
        }
        let Some(net) = namespaces
            .iter_mut()
            .find(|n| n.typ() == LinuxNamespaceType::Network && n.path().is_none())
        else {
            return;
        };
        let Some(fd) = premade.or_else(|| new_netns().ok()) else {
            return;
        };
        net.set_path(Some(
            format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd()).into(),
        ));
        self.netns = Some(fd);
        linux.set_namespaces(Some(namespaces));
        spec.set_linux(Some(linux));
    }

    fn builder(&self, stdio: ProcStdio) -> Result<ContainerBuilder, RuntimeError> {
        let mut b = ContainerBuilder::new(self.id.clone(), SyscallType::default())
            .with_root_path(&self.root)
            .map_err(|e| RuntimeError::Failed(chain(&e)))?;
        match stdio {
            ProcStdio::Fds {
                stdin,
                stdout,
                stderr,
            } => {
                b = b.with_stdin(stdin).with_stdout(stdout).with_stderr(stderr);
            }
            ProcStdio::Console(p) => b = b.with_console_socket(Some(p)),
        }
        Ok(b)
    }

    fn container(&mut self) -> Result<&mut Container, RuntimeError> {
        self.container.as_mut().ok_or(RuntimeError::NoContainer)
    }
}

fn lc_err(e: libcontainer::error::LibcontainerError) -> RuntimeError {
    RuntimeError::Failed(docker_message(&chain(&e)))
}

/// Hand libcontainer the BPF of `profile` so that the container's init installs it instead of
/// compiling the profile with libseccomp (milliseconds of CPU for Docker's default): from
/// `cache` when an earlier shim compiled it, else compiled here and kept there. Where any of
/// this fails, libcontainer compiles the profile itself, as without a cache.
fn precompile_seccomp(cache: &Path, profile: &LinuxSeccomp) {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let Ok(json) = serde_json::to_vec(profile) else {
        return;
    };
    // The program depends on the profile, on libseccomp (a shared library, upgradable without
    // a reboot while the cache, on a tmpfs, stays) and on this binary's translation of the
    // profile: all three name the file, with the boot's id.
    let lib = libseccomp::ScmpVersion::current()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
        .unwrap_or_default();
    let exe = fs::metadata("/proc/self/exe")
        .map(|m| format!("{}:{}:{}:{}", m.dev(), m.ino(), m.size(), m.mtime()))
        .unwrap_or_default();
    // And the boot: an exec root on a disk outlives a reboot, perhaps into another kernel.
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(lib.as_bytes());
    h.update([0]);
    h.update(exe.as_bytes());
    h.update([0]);
    h.update(boot.trim().as_bytes());
    h.update([0]);
    h.update(&json);
    let name: String = h
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let file = cache.join(format!("{name}.bpf"));
    let bpf = match fs::read(&file) {
        Ok(b) => b,
        Err(_) => {
            let Ok(b) = libcontainer::seccomp::compile_bpf(profile) else {
                return;
            };
            let tmp = cache.join(format!(".{name}.{}", std::process::id()));
            let kept = fs::create_dir_all(cache)
                .and_then(|_| fs::write(&tmp, &b))
                .and_then(|_| fs::rename(&tmp, &file));
            if kept.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            b
        }
    };
    libcontainer::seccomp::use_precompiled(profile, bpf);
}

impl Runtime for Builtin {
    fn create(&mut self, stdio: ProcStdio) -> Result<i32, RuntimeError> {
        let (spec, profile) = self.prepare_bundle()?;
        if let (Some(cache), Some(p)) = (&self.seccomp_cache, &profile) {
            precompile_seccomp(cache, p);
        }
        let container = self
            .builder(stdio)?
            .validate_id()
            .map_err(lc_err)?
            .as_init(&self.patched_bundle)
            .with_spec(spec.clone())
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(lc_err)?;
        let pid = container.pid().map(|p| p.as_raw()).unwrap_or(0);
        self.container = Some(container);
        self.unsaved = Some(spec);
        Ok(pid)
    }

    fn start(&mut self) -> Result<(), RuntimeError> {
        self.container()?.start().map_err(lc_err)
    }

    fn kill(&mut self, signal: i32) -> Result<(), RuntimeError> {
        let pid = self.container()?.pid().ok_or(RuntimeError::NoContainer)?;
        let sig = Signal::try_from(signal)
            .map_err(|_| RuntimeError::Failed(format!("invalid signal: {signal}")))?;
        match kill(pid, sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::Failed(format!("failed to kill: {e}"))),
        }
    }

    fn pause(&mut self) -> Result<(), RuntimeError> {
        self.container()?.pause().map_err(lc_err)
    }

    fn resume(&mut self) -> Result<(), RuntimeError> {
        self.container()?.resume().map_err(lc_err)
    }

    fn exec(&mut self, process_json: &Path, stdio: ProcStdio) -> Result<i32, RuntimeError> {
        self.save_spec()?;
        let profile = Spec::load(self.patched_bundle.join(berth_runtime::shim::SPEC_FILE))
            .ok()
            .and_then(|s| s.linux().as_ref().and_then(|l| l.seccomp().clone()));
        let pid = self
            .builder(stdio)?
            .with_executor(SeccompThenExec { profile })
            .as_tenant()
            .with_detach(true)
            .with_process(Some(process_json))
            .build()
            .map_err(lc_err)?;
        Ok(pid.as_raw())
    }

    fn delete(&mut self) -> Result<(), RuntimeError> {
        let r = match self.container.as_mut() {
            Some(c) => c.delete(true).map_err(lc_err),
            None => Ok(()),
        };
        self.unsaved = None;
        let _ = fs::remove_dir_all(&self.patched_bundle);
        r
    }

    fn settle(&mut self) -> Result<(), RuntimeError> {
        self.save_spec()
    }
}

/// An OCI runtime binary with runc's command line.
pub struct External {
    bin: PathBuf,
    root: PathBuf,
    id: String,
    bundle: PathBuf,
    /// Where pid files, the runtime's log and exec files go.
    dir: PathBuf,
    pid: i32,
}

impl External {
    pub fn new(bin: &Path, root: &Path, id: &str, bundle: &Path, dir: &Path) -> Self {
        External {
            bin: bin.to_path_buf(),
            root: root.to_path_buf(),
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            dir: dir.to_path_buf(),
            pid: 0,
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("runtime.log")
    }

    /// The last error the runtime logged (runc's `--log-format json`).
    fn last_error(&self) -> Option<String> {
        let text = fs::read_to_string(self.log_path()).ok()?;
        text.lines().rev().find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            if v.get("level")?.as_str()? == "error" {
                Some(v.get("msg")?.as_str()?.to_string())
            } else {
                None
            }
        })
    }

    fn run(&self, args: &[&str], stdio: Option<ProcStdio>) -> Result<(), RuntimeError> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(self.log_path())
            .arg("--log-format")
            .arg("json")
            .args(args);
        match stdio {
            Some(ProcStdio::Fds {
                stdin,
                stdout,
                stderr,
            }) => {
                cmd.stdin(stdin).stdout(stdout).stderr(stderr);
            }
            _ => {
                cmd.stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        let status = cmd.status().map_err(|source| RuntimeError::Spawn {
            bin: self.bin.display().to_string(),
            source,
        })?;
        if status.success() {
            Ok(())
        } else {
            let msg = self
                .last_error()
                .unwrap_or_else(|| format!("{} {} failed: {status}", self.bin.display(), args[0]));
            Err(RuntimeError::Failed(docker_message(&msg)))
        }
    }

    fn read_pid(path: &Path) -> Result<i32, RuntimeError> {
        let s = fs::read_to_string(path).map_err(|source| RuntimeError::Io {
            what: format!("read {}", path.display()),
            source,
        })?;
        let _ = fs::remove_file(path);
        s.trim()
            .parse()
            .map_err(|_| RuntimeError::Failed(format!("bad pid file {}", path.display())))
    }
}

impl Runtime for External {
    fn create(&mut self, stdio: ProcStdio) -> Result<i32, RuntimeError> {
        // The runtime makes its container's namespaces itself.
        drop(take_premade_netns());
        let pid_file = self.dir.join("init.pid");
        let pid_s = pid_file.to_string_lossy().to_string();
        let bundle = self.bundle.to_string_lossy().to_string();
        let mut args = vec!["create", "--bundle", &bundle, "--pid-file", &pid_s];
        let console;
        if let ProcStdio::Console(p) = &stdio {
            console = p.to_string_lossy().to_string();
            args.push("--console-socket");
            args.push(&console);
        }
        args.push(&self.id);
        if let Err(e) = self.run(&args, Some(stdio)) {
            let _ = self.run(&["delete", "-f", &self.id], None);
            return Err(e);
        }
        self.pid = Self::read_pid(&pid_file)?;
        Ok(self.pid)
    }

    fn start(&mut self) -> Result<(), RuntimeError> {
        self.run(&["start", &self.id], None)
    }

    fn kill(&mut self, signal: i32) -> Result<(), RuntimeError> {
        // Signal init directly: `runc kill` refuses stopped containers and needs no more.
        let sig = Signal::try_from(signal)
            .map_err(|_| RuntimeError::Failed(format!("invalid signal: {signal}")))?;
        match kill(Pid::from_raw(self.pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(RuntimeError::Failed(format!("failed to kill: {e}"))),
        }
    }

    fn pause(&mut self) -> Result<(), RuntimeError> {
        self.run(&["pause", &self.id], None)
    }

    fn resume(&mut self) -> Result<(), RuntimeError> {
        self.run(&["resume", &self.id], None)
    }

    fn exec(&mut self, process_json: &Path, stdio: ProcStdio) -> Result<i32, RuntimeError> {
        let pid_file = process_json.with_extension("pid");
        let pid_s = pid_file.to_string_lossy().to_string();
        let proc_s = process_json.to_string_lossy().to_string();
        let mut args = vec![
            "exec",
            "--process",
            &proc_s,
            "--detach",
            "--pid-file",
            &pid_s,
        ];
        let console;
        if let ProcStdio::Console(p) = &stdio {
            console = p.to_string_lossy().to_string();
            args.push("--console-socket");
            args.push(&console);
        }
        args.push(&self.id);
        self.run(&args, Some(stdio))?;
        Self::read_pid(&pid_file)
    }

    fn delete(&mut self) -> Result<(), RuntimeError> {
        let r = self.run(&["delete", "-f", &self.id], None);
        let _ = fs::remove_file(self.log_path());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::docker_message;

    #[test]
    fn docker_wording() {
        assert_eq!(
            docker_message("runc create failed: unable to start container process: exec: \"nosuchcmd\": executable file not found in $PATH"),
            "exec: \"nosuchcmd\": executable file not found in $PATH"
        );
        assert_eq!(
            docker_message("failed to create container: exec process failed with error error in executing process : executable 'nosuchcmd' not found in $PATH"),
            "exec: \"nosuchcmd\": executable file not found in $PATH"
        );
        assert_eq!(docker_message("something else "), "something else");
    }
}
