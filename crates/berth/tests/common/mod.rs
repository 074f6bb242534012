//! The end-to-end harness: every test gets its own daemon, data root, exec root, cgroup parent
//! and network namespace, and leaves nothing behind (containers, mounts, cgroups, processes).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod registry;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A daemon of the test's own.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub data_root: PathBuf,
    pub exec_root: PathBuf,
    pub sock: PathBuf,
    pub cgroup_parent: String,
    daemon: Option<Child>,
    /// A process that holds the test's network namespace, so that a restarted daemon comes
    /// back in the namespace its containers' veths and its bridge are in (as on a host).
    netns: Option<Child>,
    /// Run the daemon where `/sys/fs/cgroup` is a pure cgroup v2 hierarchy (a private mount
    /// namespace), to test the v2 paths on a v1 or hybrid host.
    cgroup_v2: bool,
}

/// Command output, decoded.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
    /// Panics with the whole output unless the command succeeded.
    pub fn ok(self) -> Out {
        assert_eq!(self.code, 0, "command failed: {self:#?}");
        self
    }
    pub fn trimmed(&self) -> &str {
        self.stdout.trim()
    }
}

/// A busybox rootfs tarball (Debian's static busybox plus its applet links), made in `dir`.
pub fn make_busybox_tar(dir: &Path) -> PathBuf {
    let tar = dir.join("busybox.tar");
    if tar.exists() {
        return tar;
    }
    let root = dir.join("busybox-rootfs");
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev", "home"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))
        .expect("busybox-static must be installed (apt-get install busybox-static)");
    for applet in busybox_applets() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\nalice:x:1000:\nstaff:x:50:alice\n",
    )
    .unwrap();
    let st = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    let _ = std::fs::remove_dir_all(&root);
    tar
}

fn busybox_applets() -> &'static [String] {
    static LIST: OnceLock<Vec<String>> = OnceLock::new();
    LIST.get_or_init(|| {
        let out = Command::new("/bin/busybox").arg("--list").output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect()
    })
}

impl Env {
    /// Start a daemon in a new network namespace; wait until it answers.
    pub fn new() -> Env {
        Env::build(false)
    }

    /// A daemon that sees a pure cgroup v2 host: `/sys/fs/cgroup` is the unified hierarchy,
    /// mounted in a private mount namespace of its own.
    pub fn with_cgroup_v2() -> Env {
        Env::build(true)
    }

    fn build(cgroup_v2: bool) -> Env {
        // Short paths: a shim socket lives at <exec-root>/containers/<64-hex-id>/shim.sock, and unix
        // socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("b-")
            .tempdir_in("/tmp")
            .unwrap();
        let data_root = dir.path().join("data");
        let exec_root = dir.path().join("r");
        let sock = exec_root.join("berth.sock");
        let cgroup_parent = format!("berth-test-{:08x}", rand::random::<u32>());
        let mut env = Env {
            dir,
            data_root,
            exec_root,
            sock,
            cgroup_parent,
            daemon: None,
            netns: None,
            cgroup_v2,
        };
        env.spawn_daemon();
        env
    }

    /// Start `berth daemon` on this env's roots, in the test's network namespace (made on the
    /// first start, loopback up; a restarted daemon comes back in it), and wait until it
    /// answers.
    fn spawn_daemon(&mut self) {
        self.start_daemon_with(None, &[]);
    }

    /// The daemon's pid (it runs in its own network namespace).
    pub fn daemon_pid(&self) -> i32 {
        self.daemon.as_ref().map(|d| d.id() as i32).unwrap_or(0)
    }

    /// Run a host command inside the daemon's network namespace (also while it is down).
    pub fn in_daemon_netns(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns_path())).args(args);
        c
    }

    /// `/proc/<pid>/ns/net` of the test's network namespace, made on first use (loopback up).
    fn netns_path(&self) -> String {
        let pid = self.netns.as_ref().expect("the test's namespace").id();
        format!("/proc/{pid}/ns/net")
    }

    fn ensure_netns(&mut self) {
        if self.netns.is_some() {
            return;
        }
        use std::io::BufRead;
        let mut holder = Command::new("unshare")
            .args([
                "--net",
                "--",
                "sh",
                "-c",
                "ip link set lo up && echo ready && exec sleep infinity",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("make a network namespace");
        let mut line = String::new();
        std::io::BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the namespace holder failed");
        self.netns = Some(holder);
    }

    /// Wait for the socket to answer `_ping`.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.sock.exists() && self.berth(&["version"]).code == 0 {
                return;
            }
            if let Some(d) = self.daemon.as_mut() {
                if let Ok(Some(st)) = d.try_wait() {
                    panic!("daemon exited with {st}: {}", self.daemon_log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not come up: {}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// A berth CLI command against this daemon.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("-H").arg(self.host()).args(args);
        c.stdin(Stdio::null());
        c
    }

    pub fn berth(&self, args: &[&str]) -> Out {
        let mut o = Out::from(self.cmd(args).output().unwrap());
        if o.stderr.contains("Cannot connect to the berth daemon") {
            // Say why: is the daemon gone, or not answering?
            let pid = self.daemon_pid();
            let state = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("State:"))
                        .map(String::from)
                })
                .unwrap_or_else(|| "gone".into());
            o.stderr.push_str(&format!(
                "[harness] daemon pid {pid}: {state}; socket exists: {}\n[daemon log]\n{}",
                self.sock.exists(),
                self.daemon_log()
            ));
        }
        o
    }

    /// Run with bytes on stdin.
    pub fn berth_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        use std::io::Write;
        let mut c = self.cmd(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let o = child.wait_with_output().unwrap();
        let _ = w.join();
        Out::from(o)
    }

    /// The real docker CLI against this daemon, when it is installed.
    pub fn docker(&self, args: &[&str]) -> Option<Out> {
        if !docker_cli() {
            return None;
        }
        let o = Command::new("docker")
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Some(Out::from(o))
    }

    /// A busybox rootfs tarball in this env's directory (removed with it).
    pub fn busybox_tar(&self) -> String {
        make_busybox_tar(self.dir.path()).display().to_string()
    }

    /// Import the busybox rootfs as `busybox:latest`.
    pub fn with_busybox(self) -> Env {
        let tar = self.busybox_tar();
        self.berth(&["import", &tar, "busybox"]).ok();
        self
    }

    /// Kill the daemon with SIGKILL (containers keep running) and start a new one on the same roots.
    pub fn kill_and_restart_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
        self.spawn_daemon();
    }

    /// Poll until `f` holds (at most 10 s).
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub fn docker_cli() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let ok = Command::new("docker")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!(
                "note: the docker CLI is not installed; docker compatibility checks are skipped"
            );
        }
        ok
    })
}

impl Drop for Env {
    fn drop(&mut self) {
        // Remove every container, then stop the daemon.
        if self.daemon.is_some() {
            let ids = self.berth(&["ps", "-aq"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.berth(&["rm", "-f", id]);
            }
        }
        if let Some(mut d) = self.daemon.take() {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(d.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = d.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = d.kill();
            let _ = d.wait();
        }
        if let Some(mut n) = self.netns.take() {
            let _ = n.kill();
            let _ = n.wait();
        }
        // Anything still mounted below our directory (a failed test) goes.
        let root = self.dir.path().to_string_lossy().into_owned();
        if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
            let mut points: Vec<&str> = mi
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|p| p.starts_with(&root))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let c = std::ffi::CString::new(p).unwrap();
                // SAFETY: a valid C string; MNT_DETACH on a path under our temp dir.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
        // The cgroup parent in every hierarchy.
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            let mut dirs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path().join(&self.cgroup_parent))
                .collect();
            dirs.push(Path::new("/sys/fs/cgroup").join(&self.cgroup_parent));
            for d in dirs {
                if d.exists() {
                    if let Ok(children) = std::fs::read_dir(&d) {
                        for c in children.flatten() {
                            if c.path().is_dir() {
                                let _ = std::fs::remove_dir(c.path());
                            }
                        }
                    }
                    let _ = std::fs::remove_dir(&d);
                }
            }
        }
    }
}

/// Leftovers of a test: mounts under its dir, cgroups under its parent.
pub fn leftovers(env: &Env) -> Vec<String> {
    let mut out = Vec::new();
    let root = env.dir.path().to_string_lossy().into_owned();
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        for l in mi.lines() {
            if let Some(p) = l.split(' ').nth(4) {
                if p.starts_with(&root) {
                    out.push(format!("mount {p}"));
                }
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for e in entries.flatten() {
            let d = e.path().join(&env.cgroup_parent);
            if let Ok(children) = std::fs::read_dir(&d) {
                for c in children.flatten() {
                    if c.path().is_dir() {
                        out.push(format!("cgroup {}", c.path().display()));
                    }
                }
            }
        }
    }
    out
}

// ---- Daemon control and process helpers for the daemon/lifecycle tests (appended). ----

impl Env {
    /// Stop the daemon with SIGTERM (as an init system would) and wait for it to exit (at most
    /// 10 s, then SIGKILL). Returns its exit status. Containers keep running.
    pub fn stop_daemon(&mut self) -> Option<std::process::ExitStatus> {
        let mut d = self.daemon.take()?;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(d.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = d.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = d.kill();
        d.wait().ok()
    }

    /// Kill the daemon with SIGKILL and leave it down (containers keep running); `start_daemon`
    /// brings it back. Don't panic while it is down: the cleanup in Drop needs a daemon.
    pub fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// Start the daemon again on the same roots (after `stop_daemon` or `kill_daemon`).
    pub fn start_daemon(&mut self) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        self.spawn_daemon();
    }

    /// Start the daemon on this env's roots with extra flags, and a daemon.json of our choice
    /// (instead of the harness's absent one). The daemon must not be running.
    pub fn start_daemon_with(&mut self, config_file: Option<&Path>, extra: &[&str]) {
        assert!(self.daemon.is_none(), "the daemon is already running");
        let default_cfg = self.dir.path().join("no-daemon.json");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .unwrap();
        self.ensure_netns();
        let mut d = Command::new("nsenter");
        d.arg(format!("--net={}", self.netns_path())).arg("--");
        if self.cgroup_v2 {
            d.args([
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                "mount -t cgroup2 none /sys/fs/cgroup && exec \"$0\" \"$@\"",
            ]);
        }
        let d = d
            .arg(BERTH)
            .arg("daemon")
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("--exec-root")
            .arg(&self.exec_root)
            .arg("--cgroup-parent")
            .arg(&self.cgroup_parent)
            .arg("--config-file")
            .arg(config_file.unwrap_or(&default_cfg))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the daemon");
        self.daemon = Some(d);
        self.wait_ready();
    }

    /// Whether a daemon of ours is running.
    pub fn daemon_running(&mut self) -> bool {
        match self.daemon.as_mut() {
            Some(d) => matches!(d.try_wait(), Ok(None)),
            None => false,
        }
    }
}

/// Run `berth daemon <args>` (in a new network namespace) that is expected to refuse to start:
/// killed after `secs` seconds if it is still running (then `code` is 124, as from timeout(1)).
pub fn run_daemon_expecting_failure(args: &[&str], secs: u32) -> Out {
    let o = Command::new("timeout")
        .arg("-s")
        .arg("KILL")
        .arg(secs.to_string())
        .args(["unshare", "--net", "--"])
        .arg(BERTH)
        .arg("daemon")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Out::from(o)
}

/// A child process whose stdout is read line by line on a thread, so tests can wait for a line
/// with a timeout. Killed (and reaped) on drop.
pub struct Streaming {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Streaming {
    pub fn spawn(mut cmd: Command) -> Streaming {
        use std::io::BufRead;
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                match l {
                    Ok(l) => {
                        if tx.send(l).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
        });
        Streaming {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Wait (at most `secs`) for a line satisfying `f`; every line read is kept in `seen`.
    pub fn wait_line(&mut self, secs: u64, f: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if f(&l) {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Wait (at most `secs`) for the process to exit; its code (-1 for a signal), or None.
    pub fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                // Collect what is left of stdout.
                while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(l);
                }
                return Some(st.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Everything on stderr (only after the process exited).
    pub fn stderr(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child process (a test's server) killed when the test ends, passed or failed.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether a process is alive (and not a zombie).
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            // The state follows the command's closing parenthesis.
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

// ---- A private Docker daemon (dockerd 20.10) for the interoperability tests (appended). ----

/// The docker CLI of the Docker 20.10 package, next to the newer one in PATH.
pub const DOCKER_20: &str = "/usr/bin/docker";

/// Where dockerd is, if it is installed.
pub fn dockerd_path() -> Option<PathBuf> {
    [
        "/usr/bin/dockerd",
        "/usr/sbin/dockerd",
        "/usr/local/bin/dockerd",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// A dockerd of the test's own: its data root, exec root (so its own containerd, whose state
/// and sockets live below the exec root), pidfile, socket, cgroup parent and containerd
/// namespace are in a temp dir of its own or named after it, in a new network namespace
/// without bridge or iptables rules. Drop removes its containers, stops it (and its
/// containerd and shims), and removes its mounts and cgroups.
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    pub sock: PathBuf,
    pub cgroup_parent: String,
    daemon: Option<Child>,
}

impl Dockerd {
    /// Start one and wait until it answers; None (with a note) when dockerd is not installed.
    pub fn start() -> Option<Dockerd> {
        Dockerd::start_with_config("{}")
    }

    /// The same with this daemon.json.
    pub fn start_with_config(daemon_json: &str) -> Option<Dockerd> {
        let Some(bin) = dockerd_path() else {
            eprintln!(
                "note: dockerd is not installed; the dockerd interoperability checks are skipped"
            );
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("b-d")
            .tempdir_in("/tmp")
            .unwrap();
        let sock = dir.path().join("docker.sock");
        let tag = format!("{:08x}", rand::random::<u32>());
        let cgroup_parent = format!("berth-test-dockerd-{tag}");
        let cfg = dir.path().join("daemon.json");
        std::fs::write(&cfg, daemon_json).unwrap();
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("unshare")
            .args(["--net", "--"])
            .arg(&bin)
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("r"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("--config-file")
            .arg(&cfg)
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .args(["--ip-forward=false", "--ip-masq=false"])
            .arg("--cgroup-parent")
            .arg(&cgroup_parent)
            .arg("--containerd-namespace")
            .arg(format!("berth-test-{tag}"))
            .arg("--containerd-plugins-namespace")
            .arg(format!("berth-test-{tag}-plugins"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut d = Dockerd {
            dir,
            sock,
            cgroup_parent,
            daemon: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if d.sock.exists() && ping(&d.sock) {
                break;
            }
            if let Some(c) = d.daemon.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("dockerd exited with {st}: {}", d.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not come up: {}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(d)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    pub fn pid(&self) -> i32 {
        self.daemon.as_ref().map(|d| d.id() as i32).unwrap_or(0)
    }

    /// A docker CLI command (`cli` is the binary) against this dockerd.
    pub fn cmd_with(&self, cli: &str, args: &[&str]) -> Command {
        docker_command(
            cli,
            &self.host(),
            &self.dir.path().join("docker-config"),
            args,
        )
    }

    /// The docker CLI in PATH (Docker 28) against this dockerd.
    pub fn docker(&self, args: &[&str]) -> Out {
        Out::from(self.cmd_with("docker", args).output().unwrap())
    }

    /// Docker 20.10's own CLI against this dockerd.
    pub fn docker20(&self, args: &[&str]) -> Out {
        Out::from(self.cmd_with(DOCKER_20, args).output().unwrap())
    }

    /// The docker CLI with bytes on stdin.
    pub fn docker_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        run_with_stdin(self.cmd_with("docker", args), input)
    }

    /// Import the busybox rootfs tarball at `tar` as `busybox:latest`.
    pub fn import_busybox(&self, tar: &str) {
        self.docker(&["import", "-c", "CMD [\"sh\"]", tar, "busybox"])
            .ok();
    }
}

/// A docker CLI command against `host`, with a config dir of its own.
pub fn docker_command(cli: &str, host: &str, config: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(cli);
    c.env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", config)
        .env_remove("DOCKER_CONTEXT")
        .env_remove("DOCKER_API_VERSION")
        .args(args)
        .stdin(Stdio::null());
    c
}

/// Run a command with bytes on its stdin; its output.
pub fn run_with_stdin(mut c: Command, input: &[u8]) -> Out {
    use std::io::Write;
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    let _ = w.join();
    Out::from(o)
}

/// Whether a Docker Engine API socket answers `GET /_ping` with 200.
fn ping(sock: &Path) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::os::unix::net::UnixStream::connect(sock) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: x\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.0 200") || buf.starts_with(b"HTTP/1.1 200")
}

/// Pids of processes whose command line mentions `needle`.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Ok(cl) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            if String::from_utf8_lossy(&cl).contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Pids of processes whose working directory's path mentions `needle` (a shim works in its
/// container's directory, named by the container's id), even once it has been deleted.
pub fn pids_in_dir_of(needle: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(cwd) = std::fs::read_link(format!("/proc/{pid}/cwd")) {
            if cwd.to_string_lossy().contains(needle) {
                out.push(pid);
            }
        }
    }
    out
}

/// Unmount (lazily, deepest first) everything mounted at or below `root`.
fn unmount_below(root: &str) {
    if let Ok(mi) = std::fs::read_to_string("/proc/self/mountinfo") {
        let mut points: Vec<&str> = mi
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        points.dedup();
        for p in points {
            let c = std::ffi::CString::new(p).unwrap();
            // SAFETY: a valid C string; MNT_DETACH on a path under our temp dir.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// Remove every cgroup directory named `name` (and what is below it) in every hierarchy,
/// wherever it sits (a v1 hierarchy may nest it below the test's own cgroup).
fn remove_cgroups_named(name: &str) {
    fn rm_tree(d: &Path) {
        if let Ok(children) = std::fs::read_dir(d) {
            for c in children.flatten() {
                if c.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    rm_tree(&c.path());
                }
            }
        }
        let _ = std::fs::remove_dir(d);
    }
    for d in cgroups_named(name) {
        rm_tree(&d);
    }
}

/// Cgroup directories named `name`, in every hierarchy (at most 4 levels down).
pub fn cgroups_named(name: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, name: &str, depth: u32, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if e.file_name().to_string_lossy() == name {
                out.push(e.path());
            } else if depth > 0 {
                walk(&e.path(), name, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 4, &mut out);
    out
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let root = self.dir.path().to_string_lossy().into_owned();
        if let Some(mut child) = self.daemon.take() {
            // Its containers first (dockerd would stop them anyway; rm also drops their layers).
            let ids = self.docker(&["ps", "-aq"]).stdout;
            for id in ids.split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        // Its containerd (and any shim) outlive it only if it died badly: they all name our dir.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = pids_mentioning(&root);
            if left.is_empty() {
                break;
            }
            let term = if Instant::now() < deadline {
                libc::SIGTERM
            } else {
                libc::SIGKILL
            };
            for pid in left {
                // SAFETY: kill(2) on a process of this dockerd's (its command line names our dir).
                unsafe {
                    libc::kill(pid, term);
                }
            }
            if term == libc::SIGKILL {
                std::thread::sleep(Duration::from_millis(200));
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        unmount_below(&root);
        remove_cgroups_named(&self.cgroup_parent);
    }
}

impl Env {
    /// A docker CLI command (`cli`: "docker" for the one in PATH, or `DOCKER_20`) against this
    /// berth daemon.
    pub fn docker_cmd(&self, cli: &str, args: &[&str]) -> Command {
        docker_command(
            cli,
            &self.host(),
            &self.dir.path().join("docker-config"),
            args,
        )
    }

    /// Run `cli` against this berth daemon (the caller checked that it is installed).
    pub fn docker_at(&self, cli: &str, args: &[&str]) -> Out {
        Out::from(self.docker_cmd(cli, args).output().unwrap())
    }

    /// Run `cli` against this berth daemon with bytes on stdin.
    pub fn docker_at_stdin(&self, cli: &str, args: &[&str], input: &[u8]) -> Out {
        run_with_stdin(self.docker_cmd(cli, args), input)
    }
}
