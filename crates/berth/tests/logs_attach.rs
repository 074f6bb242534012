//! End-to-end: `logs` (follow, since, tail 0, the `none` driver) and `attach` (new output,
//! stdin of a `run -d -i` container, detaching with ctrl-p ctrl-q on a terminal).

mod common;
use common::{Env, Streaming};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `logs -f` prints what is already there, then what comes, and ends (0) when the container
/// exits, whatever the container's exit code.
#[test]
fn logs_follow_streams_and_ends_at_exit() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "fol",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two; echo err-two >&2; sleep 1; echo three; exit 3",
    ])
    .ok();
    let t = Instant::now();
    let o = env.berth(&["logs", "-f", "fol"]);
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "one\ntwo\nthree\n", "{o:?}");
    assert_eq!(o.stderr, "err-two\n", "{o:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "logs -f returned before the container wrote everything"
    );
    assert_eq!(
        env.berth(&["inspect", "--format", "{{.State.ExitCode}}", "fol"])
            .ok()
            .trimmed(),
        "3"
    );
    // On a container that has exited, -f returns at once with the whole log.
    let t = Instant::now();
    let o = env.berth(&["logs", "-f", "fol"]).ok();
    assert_eq!(o.stdout, "one\ntwo\nthree\n");
    assert!(t.elapsed() < Duration::from_secs(5));
}

/// A follower sees lines as they are written, and stops when the container is killed.
#[test]
fn logs_follow_sees_new_lines_then_ends_on_kill() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.2; done",
    ])
    .ok();
    let mut f = Streaming::spawn(env.cmd(&["logs", "-f", "ticker"]));
    assert!(
        f.wait_line(15, |l| l == "tick-1").is_some(),
        "no first line: {:?}",
        f.seen
    );
    assert!(
        f.wait_line(15, |l| l == "tick-8").is_some(),
        "the follower did not see new lines: {:?}",
        f.seen
    );
    // In order, nothing lost or doubled.
    let expected: Vec<String> = (1..=8).map(|i| format!("tick-{i}")).collect();
    assert_eq!(f.seen, expected);
    env.berth(&["kill", "ticker"]).ok();
    let code = f.wait_exit(10);
    assert_eq!(
        code,
        Some(0),
        "logs -f did not end with the container: {:?}",
        f.seen
    );
    // `--tail 0 -f` on a stopped container prints nothing and returns.
    let o = env.berth(&["logs", "--tail", "0", "-f", "ticker"]).ok();
    assert_eq!(o.stdout, "");
}

#[test]
fn logs_tail_zero_prints_nothing() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "--name",
        "t0",
        "busybox",
        "sh",
        "-c",
        "echo a; echo b; echo c >&2",
    ])
    .ok();
    let o = env.berth(&["logs", "--tail", "0", "t0"]).ok();
    assert_eq!(o.stdout, "", "{o:?}");
    assert_eq!(o.stderr, "", "{o:?}");
    let o = env.berth(&["logs", "-n", "0", "t0"]).ok();
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("", ""));
    // and the whole log is still there
    let o = env.berth(&["logs", "t0"]).ok();
    assert_eq!(o.stdout, "a\nb\n");
    assert_eq!(o.stderr, "c\n");
}

/// `--since` with an RFC 3339 timestamp and with a relative duration.
#[test]
fn logs_since_timestamp_and_relative() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "since",
        "busybox",
        "sh",
        "-c",
        "echo early; sleep 2; echo late; sleep 1000",
    ])
    .ok();
    env.eventually("early", || {
        env.berth(&["logs", "since"]).stdout.contains("early")
    });
    // A point in time after "early" and before "late" (written 2 s after "early").
    std::thread::sleep(Duration::from_millis(300));
    let d = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%S.%NZ"])
        .output()
        .unwrap();
    let between = String::from_utf8_lossy(&d.stdout).trim().to_string();
    let o = env.berth(&["logs", "--since", &between, "since"]).ok();
    assert_eq!(o.stdout, "", "nothing was written after {between}: {o:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.berth(&["logs", "since"]).stdout.contains("late") {
        assert!(Instant::now() < deadline, "late never came");
        std::thread::sleep(Duration::from_millis(50));
    }
    let o = env.berth(&["logs", "--since", &between, "since"]).ok();
    assert_eq!(o.stdout, "late\n", "since {between}");
    // A unix timestamp works too (Docker accepts seconds[.nanoseconds]).
    let o = env.berth(&["logs", "--since", "1", "since"]).ok();
    assert_eq!(o.stdout, "early\nlate\n");
    // Since a point in the future: nothing.
    let o = env
        .berth(&["logs", "--since", "2999-01-01T00:00:00Z", "since"])
        .ok();
    assert_eq!(o.stdout, "");
    // A bad value is refused by the CLI, as Docker's does.
    let o = env.berth(&["logs", "--since", "yesterday-ish", "since"]);
    assert_ne!(o.code, 0, "{o:?}");

    // Relative: a ticker writing every 0.3 s; `--since 2s` shows only the last few lines.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "rel",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo tick-$i; sleep 0.3; done",
    ])
    .ok();
    env.eventually("15 ticks", || {
        env.berth(&["logs", "rel"]).stdout.contains("tick-15\n")
    });
    let all = env.berth(&["logs", "rel"]).ok().stdout;
    let recent = env.berth(&["logs", "--since", "2s", "rel"]).ok().stdout;
    let n = recent.lines().count();
    assert!(
        (1..=10).contains(&n),
        "--since 2s showed {n} lines of {}: {recent}",
        all.lines().count()
    );
    assert!(
        !recent.lines().any(|l| l == "tick-1" || l == "tick-2"),
        "{recent}"
    );
    // what it shows is the tail of the log
    assert!(all.ends_with(&recent) || all.contains(&recent), "{recent}");
    let o = env.berth(&["logs", "--since", "1s", "rel"]).ok().stdout;
    assert!(o.lines().count() <= 6, "--since 1s: {o}");
    assert!(!o.lines().any(|l| l == "tick-1"), "{o}");
}

/// A container with `--log-driver none` has no logs to read (the berth CLI has no
/// `--log-driver` flag, so the docker CLI creates it; skipped without docker).
#[test]
fn logs_of_log_driver_none_is_an_error() {
    let env = Env::new().with_busybox();
    let Some(o) = env.docker(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ]) else {
        return;
    };
    assert_eq!(o.code, 0, "{o:?}");
    // The attached run still shows the output: it is the log that is not kept.
    assert_eq!(o.stdout, "hi\n");
    let o = env.docker(&["logs", "quiet"]).unwrap();
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains(
            "Error response from daemon: configured logging driver does not support reading"
        ),
        "{o:?}"
    );
    let o = env.berth(&["logs", "quiet"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr
            .contains("configured logging driver does not support reading"),
        "{o:?}"
    );
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{.HostConfig.LogConfig.Type}}",
            "quiet",
        ])
        .ok();
    assert_eq!(o.trimmed(), "none");
}

/// `attach` to a running container shows the output written from then on, and ends with
/// the container's exit code when it exits.
#[test]
fn attach_sees_new_output_and_returns_exit_code() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "out",
        "busybox",
        "sh",
        "-c",
        "echo first; i=0; while [ ! -e /tmp/stop ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done; echo bye; exit 9",
    ])
    .ok();
    env.eventually("ticks", || {
        env.berth(&["logs", "out"]).stdout.contains("tick-3\n")
    });
    let mut a = Streaming::spawn(env.cmd(&["attach", "out"]));
    let l = a.wait_line(15, |l| l.starts_with("tick-"));
    assert!(l.is_some(), "attach saw no output: {:?}", a.seen);
    // Only new output: not the first lines written before the attach.
    assert!(
        !a.seen.iter().any(|l| l == "first" || l == "tick-1"),
        "attach replayed old output: {:?}",
        a.seen
    );
    let first: u32 = a.seen[0].trim_start_matches("tick-").parse().unwrap();
    let want = format!("tick-{}", first + 5);
    assert!(
        a.wait_line(15, |l| l == want).is_some(),
        "attach stopped streaming: {:?}",
        a.seen
    );
    env.berth(&["exec", "out", "touch", "/tmp/stop"]).ok();
    let code = a.wait_exit(15);
    let err = a.stderr();
    assert_eq!(
        code,
        Some(9),
        "attach should end with the container's exit code: {:?} {err}",
        a.seen
    );
    assert_eq!(a.seen.last().map(String::as_str), Some("bye"));
}

/// `attach` to a `run -d -i` container forwards the client's stdin to the container.
#[test]
fn attach_forwards_stdin_to_interactive_container() {
    let env = Env::new().with_busybox();
    env.berth(&["run", "-d", "-i", "--name", "cat", "busybox", "cat"])
        .ok();
    // Keep the client's stdin open: the container echoes each line back.
    let mut cmd = env.cmd(&["attach", "cat"]);
    cmd.stdin(Stdio::piped());
    let mut a = Streaming::spawn(cmd);
    let mut stdin = a.child.stdin.take().unwrap();
    use std::io::Write;
    stdin.write_all(b"hi\n").unwrap();
    stdin.flush().unwrap();
    assert!(
        a.wait_line(15, |l| l == "hi").is_some(),
        "stdin did not reach cat (or its output did not come back): {:?}",
        a.seen
    );
    stdin.write_all(b"second line\n").unwrap();
    assert!(
        a.wait_line(15, |l| l == "second line").is_some(),
        "{:?}",
        a.seen
    );
    // What went in is in the log.
    assert_eq!(env.berth(&["logs", "cat"]).ok().stdout, "hi\nsecond line\n");
    env.berth(&["kill", "cat"]).ok();
    assert_eq!(a.wait_exit(15), Some(137), "{:?}", a.seen);
    drop(stdin);

    // The pipe form: `printf 'hi\n' | berth attach c`. Closing the client's stdin does not
    // close the container's (it was not started with stdin-once), so cat keeps running and
    // gets the line.
    env.berth(&["run", "-d", "-i", "--name", "cat2", "busybox", "cat"])
        .ok();
    let mut cmd = env.cmd(&["attach", "cat2"]);
    cmd.stdin(Stdio::piped());
    let mut a = Streaming::spawn(cmd);
    {
        let mut stdin = a.child.stdin.take().unwrap();
        stdin.write_all(b"piped\n").unwrap();
    }
    env.eventually("the piped line in the log", || {
        env.berth(&["logs", "cat2"]).stdout == "piped\n"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        env.berth(&["inspect", "--format", "{{.State.Running}}", "cat2"])
            .ok()
            .trimmed(),
        "true",
        "closing the attach's stdin must not stop the container"
    );
    env.berth(&["kill", "cat2"]).ok();
    assert_eq!(a.wait_exit(15), Some(137), "{:?}", a.seen);
}

/// Drive `<cli> attach <name>` on a pseudo-terminal: type a command, wait for its output,
/// press ctrl-p ctrl-q; print the output, and the client's exit status.
const ATTACH_DRIVER: &str = r#"
import os, pty, sys, time, select
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
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
time.sleep(1.0)
os.write(fd, b'echo attached-$((40+2))\r')
ok = read_until(b'attached-42')
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
if status is None:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
# What the client wrote just before exiting may still sit in the pty: read it all.
while True:
    try:
        r, _, _ = select.select([fd], [], [], 0.2)
        if not r:
            break
        data = os.read(fd, 4096)
        if not data:
            break
        out += data
    except OSError:
        break
sys.stdout.write(repr(out) + "\n")
sys.stdout.write("output-ok=%s exit=%s\n" % (ok, status))
"#;

#[test]
fn attach_detach_keys_leave_container_running() {
    let env = Env::new().with_busybox();
    env.berth(&["run", "-d", "-i", "-t", "--name", "shell", "busybox", "sh"])
        .ok();
    // The docker CLI (where installed) against berth: the server side of the detach.
    let host = env.host();
    if common::docker_cli() {
        let o = Command::new("python3")
            .args(["-c", ATTACH_DRIVER, "docker", "attach", "shell"])
            .env("DOCKER_HOST", &host)
            .env("DOCKER_CONFIG", env.dir.path().join("docker-config"))
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("output-ok=True exit=1"),
            "docker attach: {out}"
        );
        assert!(out.contains("read escape sequence"), "docker attach: {out}");
        let st = env
            .berth(&["inspect", "--format", "{{.State.Status}}", "shell"])
            .ok();
        assert_eq!(st.trimmed(), "running");
    }
    // And berth's own CLI, twice (a detached container can be attached again).
    for round in 0..2 {
        let o = Command::new("python3")
            .args([
                "-c",
                ATTACH_DRIVER,
                common::BERTH,
                "-H",
                &host,
                "attach",
                "shell",
            ])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(
            out.contains("output-ok=True"),
            "round {round}: {out}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(!out.contains("exit=None"), "attach did not detach: {out}");
        let st = env
            .berth(&["inspect", "--format", "{{.State.Status}}", "shell"])
            .ok();
        assert_eq!(st.trimmed(), "running", "round {round}");
        // Docker's CLI reports the detach as "read escape sequence" and exits 1 from
        // `attach` (only `run -it` turns the detach into 0): berth's must match.
        assert!(out.contains("exit=1"), "round {round}: {out}");
        assert!(out.contains("read escape sequence"), "round {round}: {out}");
    }
    assert!(env
        .berth(&["logs", "shell"])
        .ok()
        .stdout
        .contains("attached-42"));
}
