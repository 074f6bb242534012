//! Real containers driven through a real shim process.
//!
//! `<this test> shim --dir X` acts as the shim; without arguments the test cases run, each
//! spawning this executable as the shim. Needs root, cgroups and /bin/busybox.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_runtime::shim::{self, FrameKind, Request, Response, ShimConfig, Status};
use berth_runtime::spec::{self, SpecOptions};

struct Env {
    tmp: tempfile::TempDir,
    rootfs: PathBuf,
    cgroup_parent: String,
    runtime: Option<PathBuf>,
}

fn make_rootfs(root: &Path) {
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::create_dir_all(root.join("tmp")).unwrap();
    fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in [
        "sh", "echo", "cat", "sleep", "ls", "true", "false", "id", "tty", "stty", "ps", "head",
    ] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/group"), "root:x:0:\n").unwrap();
}

impl Env {
    fn new(runtime: Option<PathBuf>) -> Env {
        let tmp = tempfile::Builder::new()
            .prefix("bshim")
            .tempdir_in("/tmp")
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        make_rootfs(&rootfs);
        Env {
            cgroup_parent: format!("berth-test-{}", std::process::id()),
            rootfs,
            tmp,
            runtime,
        }
    }

    /// Prepare a container directory; returns it.
    fn container(&self, name: &str, args: &[&str], tty: bool, open_stdin: bool) -> PathBuf {
        let dir = self.tmp.path().join(name);
        fs::create_dir_all(&dir).unwrap();
        let opts = SpecOptions {
            id: name.to_string(),
            args: args.iter().map(|s| s.to_string()).collect(),
            hostname: name.to_string(),
            tty,
            rootfs: self.rootfs.clone(),
            cgroup_parent: self.cgroup_parent.clone(),
            ..Default::default()
        };
        let spec = spec::build(&opts).unwrap();
        spec.save(dir.join(shim::SPEC_FILE)).unwrap();
        let cfg = ShimConfig {
            id: name.to_string(),
            bundle: dir.clone(),
            runtime: self.runtime.clone(),
            runtime_root: self.tmp.path().join("runtime"),
            log_path: Some(dir.join(format!("{name}-json.log"))),
            log_max_size: 0,
            log_max_files: 1,
            tty,
            open_stdin,
            stdin_once: open_stdin,
            rootfs_mount: None,
            seccomp_cache: Some(self.tmp.path().join("seccomp")),
            // Read from the spec (the daemon passes it).
            cgroups_path: None,
        };
        fs::write(
            dir.join(shim::CONFIG_FILE),
            serde_json::to_vec(&cfg).unwrap(),
        )
        .unwrap();
        dir
    }

    fn cleanup(&self) {
        for h in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let p = h.path().join(&self.cgroup_parent);
            if p.is_dir() {
                for c in fs::read_dir(&p).unwrap().flatten() {
                    if c.path().is_dir() {
                        eprintln!("leftover cgroup {}", c.path().display());
                        // A failed case may leave its container running: kill what is inside,
                        // so the cgroup can go.
                        let procs =
                            fs::read_to_string(c.path().join("cgroup.procs")).unwrap_or_default();
                        for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                            let _ = nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            );
                        }
                        let deadline = Instant::now() + Duration::from_secs(5);
                        while fs::remove_dir(c.path()).is_err() && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                }
                fs::remove_dir(&p).unwrap_or_else(|e| panic!("rmdir {}: {e}", p.display()));
            }
        }
    }
}

/// Spawn the shim and read its ready line.
fn spawn(dir: &Path) -> Response {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("shim")
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut out)
        .unwrap();
    // The original process exits as soon as the shim has detached.
    assert!(child.wait().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut rest).unwrap();
    assert_eq!(rest, "", "the daemon's stderr must stay quiet");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("ready line {out:?}: {e}"))
}

fn connect(dir: &Path, req: &Request) -> (UnixStream, BufReader<UnixStream>, Response) {
    let mut s = UnixStream::connect(dir.join(shim::SOCKET_FILE)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut line = serde_json::to_vec(req).unwrap();
    line.push(b'\n');
    s.write_all(&line).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut resp = String::new();
    r.read_line(&mut resp).unwrap();
    let resp = serde_json::from_str(&resp).unwrap_or_else(|e| panic!("{resp:?}: {e}"));
    (s, r, resp)
}

/// Send `wait`; the answer comes when init exits.
fn wait_conn(dir: &Path) -> BufReader<UnixStream> {
    let mut s = UnixStream::connect(dir.join(shim::SOCKET_FILE)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"{\"op\":\"wait\"}\n").unwrap();
    BufReader::new(s)
}

fn wait_answer(mut r: BufReader<UnixStream>) -> i32 {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let w: Response = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
    assert!(w.ok, "{w:?}");
    w.exit_code.unwrap()
}

fn request(dir: &Path, req: &Request) -> Response {
    connect(dir, req).2
}

fn wait_gone(dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid: i32 = fs::read_to_string(dir.join(shim::PID_FILE))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    while Path::new(&format!("/proc/{pid}")).exists() {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.contains(") Z") {
            break;
        }
        assert!(Instant::now() < deadline, "shim {pid} did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!dir.join(shim::SOCKET_FILE).exists());
}

fn state(dir: &Path) -> shim::State {
    serde_json::from_slice(&fs::read(dir.join(shim::STATE_FILE)).unwrap()).unwrap()
}

fn run_to_exit(env: &Env, name: &str, args: &[&str]) -> (PathBuf, i32) {
    let dir = env.container(name, args, false, false);
    let ready = spawn(&dir);
    assert!(ready.ok, "{ready:?}");
    let r = wait_conn(&dir);
    let r2 = wait_conn(&dir);
    let start = request(&dir, &Request::Start);
    assert!(start.ok, "{start:?}");
    let code = wait_answer(r);
    assert_eq!(wait_answer(r2), code, "every waiter gets the exit code");
    wait_gone(&dir);
    (dir, code)
}

fn log_lines(dir: &Path, name: &str) -> Vec<serde_json::Value> {
    fs::read_to_string(dir.join(format!("{name}-json.log")))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Read frames until Exit; returns (stdout, stderr, exit code).
fn read_frames(r: &mut impl std::io::Read) -> (String, String, Option<i32>) {
    let (mut o, mut e) = (Vec::new(), Vec::new());
    while let Some((k, p)) = shim::read_frame(r).unwrap() {
        match k {
            FrameKind::Stdout => o.extend(p),
            FrameKind::Stderr => e.extend(p),
            FrameKind::Exit => {
                let code = i32::from_be_bytes(p[..4].try_into().unwrap());
                return (
                    String::from_utf8_lossy(&o).into(),
                    String::from_utf8_lossy(&e).into(),
                    Some(code),
                );
            }
            _ => {}
        }
    }
    (
        String::from_utf8_lossy(&o).into(),
        String::from_utf8_lossy(&e).into(),
        None,
    )
}

fn test_echo(env: &Env) {
    let (dir, code) = run_to_exit(env, "echo", &["/bin/echo", "hello"]);
    assert_eq!(code, 0);
    let lines = log_lines(&dir, "echo");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["log"], "hello\n");
    assert_eq!(lines[0]["stream"], "stdout");
    let st = state(&dir);
    assert_eq!(st.status, Status::Stopped);
    assert_eq!(st.exit_code, Some(0));
    assert!(st.finished_at.is_some() && st.started_at.is_some());
    assert!(
        !env.tmp.path().join("runtime/echo").exists(),
        "runtime state left"
    );
}

fn test_exit_code_and_stderr(env: &Env) {
    let (dir, code) = run_to_exit(
        env,
        "exit3",
        &[
            "/bin/sh",
            "-c",
            "echo out; echo err >&2; ls / | cat >/dev/null; exit 3",
        ],
    );
    assert_eq!(code, 3);
    let lines = log_lines(&dir, "exit3");
    assert!(
        lines
            .iter()
            .any(|l| l["log"] == "err\n" && l["stream"] == "stderr"),
        "{lines:?}"
    );
    assert!(lines
        .iter()
        .any(|l| l["log"] == "out\n" && l["stream"] == "stdout"));
}

fn test_kill(env: &Env) {
    // PID 1 of a pid namespace ignores signals it has no handler for, as in Docker.
    let dir = env.container(
        "kill",
        &["/bin/sh", "-c", "trap 'exit 143' TERM; sleep 1000 & wait"],
        false,
        false,
    );
    assert!(spawn(&dir).ok);
    assert!(request(&dir, &Request::Start).ok);
    let st = request(&dir, &Request::State).state.unwrap();
    assert_eq!(st.status, Status::Running);
    // Until sh has set its trap, SIGTERM is ignored: wait for the trap to show in the state of
    // init's signal handlers (SigCgt bit 15) before sending it. Init must be sh by then: before
    // its exec, runc's init (Go, which catches every signal) shows the same bit.
    let caught = |pid: i32| {
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap_or_default()
            .trim()
            == "sh"
            && fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix("SigCgt:"))
                .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
                .map(|m| m & (1 << 14) != 0)
                .unwrap_or(false)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !caught(st.pid) {
        assert!(Instant::now() < deadline, "the trap was never set");
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = wait_conn(&dir);
    assert!(request(&dir, &Request::Kill { signal: 15 }).ok);
    assert_eq!(wait_answer(r), 143);
    wait_gone(&dir);
    assert_eq!(state(&dir).exit_code, Some(143));
}

fn test_attach_and_stdin(env: &Env) {
    let dir = env.container("attach", &["/bin/sh", "-c", "cat; echo done"], false, true);
    assert!(spawn(&dir).ok);
    let (mut s, mut r, resp) = connect(
        &dir,
        &Request::Attach {
            stdin: true,
            stdout: true,
            stderr: true,
        },
    );
    assert!(resp.ok);
    assert!(request(&dir, &Request::Start).ok);
    shim::write_frame(&mut s, FrameKind::Stdin, b"ping\n").unwrap();
    shim::write_frame(&mut s, FrameKind::Stdin, b"").unwrap();
    let (out, _, code) = read_frames(&mut r);
    assert_eq!(out, "ping\ndone\n");
    assert_eq!(code, Some(0));
    wait_gone(&dir);
}

fn test_exec_and_pause(env: &Env) {
    let dir = env.container("exec", &["/bin/sleep", "1000"], false, false);
    assert!(spawn(&dir).ok);
    assert!(request(&dir, &Request::Start).ok);
    let process: oci_spec::runtime::Process = serde_json::from_value(serde_json::json!({
        "args": ["/bin/sh", "-c", "echo hi; echo oops >&2; exit 5"],
        "env": ["PATH=/bin"],
        "cwd": "/",
        "user": {"uid": 0, "gid": 0},
    }))
    .unwrap();
    let (_s, mut r, resp) = connect(
        &dir,
        &Request::Exec {
            exec_id: "e1".into(),
            process: process.clone(),
            stdin: false,
        },
    );
    assert!(resp.ok, "{resp:?}");
    assert!(resp.pid.unwrap() > 0);
    let (out, err, code) = read_frames(&mut r);
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("hi\n", "oops\n", Some(5))
    );

    // A missing command fails the exec request.
    let mut bad = process.clone();
    bad.set_args(Some(vec!["nosuchcmd".into()]));
    let resp = request(
        &dir,
        &Request::Exec {
            exec_id: "e2".into(),
            process: bad,
            stdin: false,
        },
    );
    assert!(!resp.ok);
    eprintln!("    exec error: {}", resp.error.unwrap());

    // Exec with a tty.
    let mut t = process.clone();
    t.set_args(Some(vec!["/bin/tty".into()]));
    t.set_terminal(Some(true));
    let (_s, mut r, resp) = connect(
        &dir,
        &Request::Exec {
            exec_id: "e3".into(),
            process: t,
            stdin: false,
        },
    );
    assert!(resp.ok, "{resp:?}");
    let (out, _, code) = read_frames(&mut r);
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    assert_eq!(code, Some(0));

    assert!(request(&dir, &Request::Pause).ok);
    assert_eq!(
        request(&dir, &Request::State).state.unwrap().status,
        Status::Paused
    );
    assert_eq!(state(&dir).status, Status::Paused);
    assert!(request(&dir, &Request::Resume).ok);
    assert_eq!(
        request(&dir, &Request::State).state.unwrap().status,
        Status::Running
    );
    let r = wait_conn(&dir);
    assert!(request(&dir, &Request::Kill { signal: 9 }).ok);
    assert_eq!(wait_answer(r), 137);
    wait_gone(&dir);
}

fn test_tty(env: &Env) {
    let dir = env.container(
        "tty",
        &["/bin/sh", "-c", "tty; stty size; read x; echo got $x"],
        true,
        true,
    );
    let ready = spawn(&dir);
    assert!(ready.ok, "{ready:?}");
    let (mut s, mut r, resp) = connect(
        &dir,
        &Request::Attach {
            stdin: true,
            stdout: true,
            stderr: true,
        },
    );
    assert!(resp.ok);
    assert!(
        request(
            &dir,
            &Request::Resize {
                height: 30,
                width: 100
            }
        )
        .ok
    );
    assert!(request(&dir, &Request::Start).ok);
    shim::write_frame(&mut s, FrameKind::Stdin, b"abc\n").unwrap();
    let (out, _, code) = read_frames(&mut r);
    assert!(out.contains("/dev/pts/0"), "{out:?}");
    assert!(out.contains("30 100"), "{out:?}");
    assert!(out.contains("got abc"), "{out:?}");
    assert_eq!(code, Some(0));
    wait_gone(&dir);
    let lines = log_lines(&dir, "tty");
    assert!(lines.iter().all(|l| l["stream"] == "stdout"));
}

fn test_missing_command(env: &Env) {
    let dir = env.container("missing", &["nosuchcmd"], false, false);
    let ready = spawn(&dir);
    assert!(!ready.ok);
    let err = ready.error.unwrap();
    eprintln!("    create error: {err}");
    assert!(err.contains("nosuchcmd"), "{err}");
    assert!(
        err.contains("not found") || err.contains("no such file"),
        "{err}"
    );
    wait_gone(&dir);
    assert!(
        !env.tmp.path().join("runtime/missing").exists(),
        "runtime state left"
    );
    let st = state(&dir);
    assert_eq!(st.status, Status::Stopped);
    assert!(st.error.is_some());
}

/// Runs every case against one runtime; returns (passed, failed).
fn run_suite(runtime: Option<PathBuf>) -> (usize, usize) {
    let label = match &runtime {
        Some(p) => format!("runtime {}", p.display()),
        None => "libcontainer".to_string(),
    };
    let env = Env::new(runtime);
    type Case = (&'static str, fn(&Env));
    let tests: &[Case] = &[
        ("echo", test_echo),
        ("exit_code_and_stderr", test_exit_code_and_stderr),
        ("kill", test_kill),
        ("attach_and_stdin", test_attach_and_stdin),
        ("exec_and_pause", test_exec_and_pause),
        ("tty", test_tty),
        ("missing_command", test_missing_command),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in tests {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&env)));
        match r {
            Ok(()) => {
                passed += 1;
                println!("test {label} {name} ... ok");
            }
            Err(_) => {
                failed += 1;
                println!("test {label} {name} ... FAILED");
                for d in fs::read_dir(env.tmp.path()).unwrap().flatten() {
                    let log = d.path().join("shim.log");
                    if d.file_name() == *name
                        || log.exists() && name.contains(&*d.file_name().to_string_lossy())
                    {
                        eprintln!("{}", fs::read_to_string(&log).unwrap_or_default());
                    }
                }
            }
        }
    }
    std::thread::sleep(Duration::from_millis(100));
    env.cleanup();
    (passed, failed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 4 && args[1] == "shim" && args[2] == "--dir" {
        std::process::exit(berth_shim::main(Path::new(&args[3])));
    }
    if !nix::unistd::geteuid().is_root() || !Path::new("/bin/busybox").exists() {
        println!("skipping shim tests: need root and /bin/busybox");
        return;
    }
    let filter = args.get(1).cloned();
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    let mut add = |(p, f): (usize, usize)| {
        passed += p;
        failed += f;
    };
    if filter.as_deref() != Some("runc") {
        add(run_suite(None));
    }
    match which("runc") {
        Some(runc) => add(run_suite(Some(runc))),
        None => println!("runc is not installed: skipping the external-runtime tests"),
    }
    // libtest's closing line, so that test runners count these cases.
    println!(
        "\ntest result: {}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        if failed == 0 { "ok" } else { "FAILED" },
        started.elapsed().as_secs_f64()
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

fn which(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(bin))
        .find(|p| p.is_file())
}
