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
