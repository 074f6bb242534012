//! End-to-end: `run -it` on a real pseudo-terminal (driven by python's pty module): the
//! terminal size reaches the container, input echoes back, ctrl-p ctrl-q detaches and leaves
//! the container running.

mod common;
use common::Env;
use std::process::Command;

const DRIVER: &str = r#"
import os, pty, sys, time, fcntl, termios, struct, select
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 33, 111, 0, 0))
    os.execv(argv[0], argv)
out = b''
def read_until(token, timeout=15):
    global out
    end = time.time() + timeout
    while token not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return token in out
ok = read_until(b'# ')
os.write(fd, b'stty size; echo tty-$((40+2))\r')
ok = ok and read_until(b'tty-42')
os.write(fd, b'\x10\x11')
end = time.time() + 15
status = None
while time.time() < end:
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.waitstatus_to_exitcode(st)
        break
    try:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            out += os.read(fd, 4096)
    except OSError:
        pass
sys.stdout.write(repr(out) + "\n")
sys.stdout.write("prompt-ok=%s exit=%s\n" % (ok, status))
"#;

/// Run `argv` on a pty under DRIVER; assert the prompt came, the client detached with 0, and
/// the 33x111 terminal size reached the container.
fn drive_run_it(argv: &[&str]) {
    let o = Command::new("python3")
        .args(["-c", DRIVER])
        .args(argv)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("prompt-ok=True exit=0"),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("33 111"),
        "the terminal size did not reach the container: {out}"
    );
}

#[test]
fn run_it_resizes_echoes_and_detaches() {
    let env = Env::new().with_busybox();
    let host = env.host();
    drive_run_it(&[
        common::BERTH,
        "-H",
        &host,
        "run",
        "-it",
        "--name",
        "tty1",
        "busybox",
        "sh",
    ]);
    let st = env
        .berth(&[
            "inspect",
            "--format",
            "{{.State.Running}} {{.Config.Tty}}",
            "tty1",
        ])
        .ok();
    assert_eq!(st.trimmed(), "true true");
    // What was typed is in the log too.
    assert!(env.berth(&["logs", "tty1"]).ok().stdout.contains("tty-42"));
    // exec -t gets a terminal as well
    let o = env.berth(&["exec", "-t", "tty1", "tty"]).ok();
    assert!(o.stdout.contains("/dev/pts/"), "{o:?}");
    // -it with an input that is no terminal: docker's refusal, before anything is made
    let before = env.berth(&["ps", "-aq"]).ok().stdout;
    for args in [
        &["run", "-it", "busybox", "true"][..],
        &["exec", "-it", "tty1", "true"][..],
    ] {
        let o = env.berth(args);
        assert_eq!(o.code, 1, "{args:?}: {o:?}");
        assert_eq!(o.stderr.trim(), "the input device is not a TTY", "{o:?}");
    }
    assert_eq!(env.berth(&["ps", "-aq"]).ok().stdout, before);
}

#[test]
fn docker_cli_run_it_resizes_echoes_and_detaches() {
    if !common::docker_cli() {
        return;
    }
    let env = Env::new().with_busybox();
    let host = format!("DOCKER_HOST={}", env.host());
    let cfg = format!(
        "DOCKER_CONFIG={}",
        env.dir.path().join("docker-config").display()
    );
    drive_run_it(&[
        "/usr/bin/env",
        &host,
        &cfg,
        "docker",
        "run",
        "-it",
        "--name",
        "dtty",
        "busybox",
        "sh",
    ]);
    let st = env
        .berth(&["inspect", "--format", "{{.State.Running}}", "dtty"])
        .ok();
    assert_eq!(st.trimmed(), "true");
}

/// Runs `argv` on a pty (80x24) to the end; returns everything it wrote and its exit code.
fn on_pty(argv: &[&str]) -> (String, i32) {
    const PTY_RUN: &str = r#"
import os, pty, sys, select, fcntl, termios, struct, time
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 80, 0, 0))
    os.execv(argv[0], argv)
out = b''
end = time.time() + 120
status = None
while time.time() < end:
    try:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            out += os.read(fd, 65536)
    except OSError:
        pass
    p, st = os.waitpid(pid, os.WNOHANG)
    if p:
        status = os.waitstatus_to_exitcode(st)
        try:
            while True:
                r, _, _ = select.select([fd], [], [], 0.1)
                if not r:
                    break
                out += os.read(fd, 65536)
        except OSError:
            pass
        break
sys.stdout.write(out.decode('utf-8', 'replace'))
sys.stdout.write("\nexit=%s\n" % status)
"#;
    let o = Command::new("python3")
        .args(["-c", PTY_RUN])
        .args(argv)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let code = out
        .rsplit("exit=")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(-1);
    (out, code)
}

#[test]
fn build_on_a_terminal_shows_the_live_display() {
    let env = Env::new().with_busybox();
    let host = env.host();
    let dir = env.dir.path().join("ttyctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN echo from-the-run-step\nCMD [\"sh\"]\n",
    )
    .unwrap();
    let ctx = dir.to_str().unwrap();
    let (out, code) = on_pty(&[common::BERTH, "-H", &host, "build", "-t", "tt", ctx]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("[+] Building"), "{out}");
    assert!(out.contains("FINISHED"), "{out}");
    assert!(out.contains("[2/3] RUN echo from-the-run-step"), "{out}");
    assert!(out.contains("[3/3] CMD [\"sh\"]"), "{out}");
    // Not the classic lines: those are for --progress=plain and pipes.
    assert!(!out.contains("Step 2/3 :"), "{out}");
    // A rebuild shows its steps as cached.
    let (out, code) = on_pty(&[common::BERTH, "-H", &host, "build", "-t", "tt", ctx]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("CACHED [2/3] RUN echo from-the-run-step"),
        "{out}"
    );
    // A failing step ends the display with the error and the step's exit code.
    std::fs::write(dir.join("Dockerfile"), "FROM busybox\nRUN exit 3\n").unwrap();
    let (out, code) = on_pty(&[common::BERTH, "-H", &host, "build", ctx]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("ERROR [2/2] RUN exit 3"), "{out}");
    assert!(out.contains("returned a non-zero code: 3"), "{out}");
}
