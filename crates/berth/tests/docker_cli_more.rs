//! End-to-end: more of the real docker CLI against berth — stdin, exec -i, logs -f, wait,
//! kill -s, restart, create + start -a, inspect --format, images -q, rmi -f.
//! Each test is skipped, with a note, where the docker CLI is not installed.

mod common;
use common::{leftovers, Env, Out};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

macro_rules! docker {
    ($env:expr, $($arg:expr),+) => {
        match $env.docker(&[$($arg),+]) {
            Some(o) => o,
            None => return,
        }
    };
}

/// The docker CLI with bytes on stdin.
fn docker_stdin(env: &Env, args: &[&str], input: &[u8]) -> Out {
    use std::io::Write;
    let mut child = Command::new("docker")
        .env("DOCKER_HOST", env.host())
        .env("DOCKER_CONFIG", env.dir.path().join("docker-config"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    let _ = w.join();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn docker_run_i_and_exec_i_forward_stdin() {
    let env = Env::new().with_busybox();
    if !common::docker_cli() {
        return;
    }
    let o = docker_stdin(
        &env,
        &["run", "-i", "--rm", "busybox", "tr", "a-z", "A-Z"],
        b"shout\nagain\n",
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "SHOUT\nAGAIN\n");
    // stdin EOF reaches the container (cat ends) and the exit code comes back.
    let o = docker_stdin(
        &env,
        &["run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; exit 6"],
        b"1\n2\n3\n",
    );
    assert_eq!(o.code, 6, "{o:?}");
    assert_eq!(o.stdout.trim(), "3");
    // Without -i, the container's stdin is empty.
    let o = docker_stdin(&env, &["run", "--rm", "busybox", "wc", "-c"], b"ignored");
    assert_eq!((o.code, o.stdout.trim()), (0, "0"), "{o:?}");

    docker!(env, "run", "-d", "--name", "box", "busybox", "sleep", "1000").ok();
    let o = docker_stdin(&env, &["exec", "-i", "box", "cat"], b"piped\nlines\n");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "piped\nlines\n");
    let o = docker_stdin(
        &env,
        &[
            "exec",
            "-i",
            "box",
            "sh",
            "-c",
            "read x; echo got-$x >&2; exit 2",
        ],
        b"it\n",
    );
    assert_eq!(o.code, 2, "{o:?}");
    assert_eq!(o.stderr, "got-it\n");
    docker!(env, "rm", "-f", "box").ok();
}

#[test]
fn docker_logs_follow_and_wait() {
    let env = Env::new().with_busybox();
    let o = docker!(
        env,
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 1; echo two >&2; sleep 1; echo three; exit 7"
    );
    assert_eq!(o.code, 0, "{o:?}");
    let t = Instant::now();
    let o = docker!(env, "logs", "-f", "talker");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "one\nthree\n");
    assert_eq!(o.stderr, "two\n");
    assert!(t.elapsed() >= Duration::from_millis(1500), "did not follow");
    let o = docker!(env, "wait", "talker").ok();
    assert_eq!(o.stdout, "7\n");
    // wait on several prints one code per line, in order
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "w2",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 2"
    )
    .ok();
    let o = docker!(env, "wait", "w2", "talker").ok();
    assert_eq!(o.stdout, "2\n7\n");
    let o = docker!(env, "wait", "nosuch");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("No such container: nosuch"), "{o:?}");
    // --tail and --timestamps through the docker CLI
    let o = docker!(env, "logs", "--tail", "1", "talker").ok();
    assert_eq!(o.stdout, "three\n");
    let o = docker!(env, "logs", "--tail", "0", "talker").ok();
    assert_eq!((o.stdout.as_str(), o.stderr.as_str()), ("", ""));
    let o = docker!(env, "logs", "--since", "2999-01-01T00:00:00Z", "talker").ok();
    assert_eq!(o.stdout, "");
}

#[test]
fn docker_kill_signal_and_restart() {
    let env = Env::new().with_busybox();
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "trapper",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 12' USR1; echo started; while true; do sleep 0.1; done"
    )
    .ok();
    env.eventually("started", || {
        env.berth(&["logs", "trapper"]).stdout.contains("started")
    });
    let o = docker!(env, "kill", "-s", "USR1", "trapper").ok();
    assert_eq!(o.stdout, "trapper\n");
    assert_eq!(docker!(env, "wait", "trapper").ok().stdout, "12\n");
    let o = docker!(env, "logs", "trapper").ok();
    assert_eq!(o.stdout, "started\ngot-usr1\n");
    // SIGUSR1 and a number are accepted too.
    docker!(env, "start", "trapper").ok();
    env.eventually("started twice", || {
        env.berth(&["logs", "trapper"])
            .stdout
            .matches("started")
            .count()
            == 2
    });
    docker!(env, "kill", "--signal", "SIGUSR1", "trapper").ok();
    assert_eq!(docker!(env, "wait", "trapper").ok().stdout, "12\n");
    docker!(env, "start", "trapper").ok();
    env.eventually("started three times", || {
        env.berth(&["logs", "trapper"])
            .stdout
            .matches("started")
            .count()
            == 3
    });
    docker!(env, "kill", "-s", "10", "trapper").ok();
    assert_eq!(docker!(env, "wait", "trapper").ok().stdout, "12\n");
    let o = docker!(env, "kill", "-s", "NOSUCHSIG", "trapper");
    assert_ne!(o.code, 0, "{o:?}");
    let o = docker!(env, "kill", "trapper");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("is not running"), "{o:?}");

    // restart: a new process, the same container, running again.
    docker!(
        env,
        "run",
        "-d",
        "--name",
        "again",
        "busybox",
        "sh",
        "-c",
        "echo boot; trap 'exit 0' TERM; while true; do sleep 0.1; done"
    )
    .ok();
    let pid1 = docker!(env, "inspect", "--format", "{{.State.Pid}}", "again").ok();
    let o = docker!(env, "restart", "-t", "5", "again").ok();
    assert_eq!(o.stdout, "again\n");
    let o = docker!(
        env,
        "inspect",
        "--format",
        "{{.State.Running}} {{.State.Pid}}",
        "again"
    )
    .ok();
    let (running, pid2) = o.stdout.trim().split_once(' ').unwrap();
    assert_eq!(running, "true");
    assert_ne!(pid2, pid1.stdout.trim());
    env.eventually("two boots", || {
        env.berth(&["logs", "again"]).stdout == "boot\nboot\n"
    });
    // restart of a stopped container starts it
    docker!(env, "stop", "again").ok();
    docker!(env, "restart", "again").ok();
    let o = docker!(env, "inspect", "--format", "{{.State.Running}}", "again").ok();
    assert_eq!(o.stdout, "true\n");
    docker!(env, "rm", "-f", "again", "trapper").ok();
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn docker_create_start_attach_inspect_pid() {
    let env = Env::new().with_busybox();
    let o = docker!(
        env,
        "create",
        "--name",
        "later",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3"
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout.trim().len(), 64, "{o:?}");
    let o = docker!(
        env,
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Pid}}",
        "later"
    )
    .ok();
    assert_eq!(o.stdout, "created 0\n");
    let o = docker!(env, "start", "-a", "later");
    assert_eq!(o.code, 3, "{o:?}");
    assert_eq!(o.stdout, "out\n");
    assert_eq!(o.stderr, "err\n");
    let o = docker!(
        env,
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Pid}} {{.State.ExitCode}}",
        "later"
    )
    .ok();
    assert_eq!(o.stdout, "exited 0 3\n");
    // start -a -i with stdin
    docker!(env, "create", "-i", "--name", "upper", "busybox", "tr", "a-z", "A-Z").ok();
    let o = docker_stdin(&env, &["start", "-a", "-i", "upper"], b"quiet\n");
    assert_eq!((o.code, o.stdout.as_str()), (0, "QUIET\n"), "{o:?}");

    // inspect --format '{{.State.Pid}}' of a running one: the host pid of its init.
    docker!(env, "run", "-d", "--name", "live", "busybox", "sleep", "1000").ok();
    let o = docker!(env, "inspect", "--format", "{{.State.Pid}}", "live").ok();
    let pid: i32 = o.stdout.trim().parse().unwrap();
    assert!(pid > 1);
    assert_eq!(
        env.berth(&["inspect", "--format", "{{.State.Pid}}", "live"])
            .ok()
            .stdout,
        o.stdout
    );
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, b"sleep\x001000\x00");
    docker!(env, "rm", "-f", "live").ok();
    assert!(!common::pid_alive(pid));
}

#[test]
fn docker_images_q_and_rmi_f_with_stopped_container() {
    let env = Env::new().with_busybox();
    let o = docker!(env, "images", "-q");
    assert_eq!(o.code, 0, "{o:?}");
    let short = o.stdout.trim().to_string();
    assert_eq!(short.len(), 12, "{o:?}");
    assert!(short.chars().all(|c| c.is_ascii_hexdigit()), "{o:?}");
    assert_eq!(env.berth(&["images", "-q"]).ok().trimmed(), short);
    let full = docker!(env, "images", "-q", "--no-trunc").ok();
    assert_eq!(
        full.stdout.trim(),
        format!("sha256:{}", &full.stdout.trim()[7..])
    );
    assert!(full.stdout.trim()[7..].starts_with(&short));
    // Two tags of one image: a line per tag, as Docker prints them
    docker!(env, "tag", "busybox", "second:tag").ok();
    let o = docker!(env, "images", "-q").ok();
    assert_eq!(
        o.stdout.lines().count(),
        2,
        "docker images -q prints a line per tag: {o:?}"
    );
    docker!(env, "rmi", "second:tag").ok();

    docker!(env, "run", "--name", "user", "busybox", "true").ok();
    // Without -f: a conflict.
    let o = docker!(env, "rmi", "busybox");
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("must force"), "{o:?}");
    // With -f: untagged and deleted, although a stopped container uses it.
    let o = docker!(env, "rmi", "-f", "busybox");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.contains("Untagged: busybox:latest"), "{o:?}");
    assert!(
        o.stdout
            .contains(&format!("Deleted: {}", full.stdout.trim())),
        "{o:?}"
    );
    assert_eq!(docker!(env, "images", "-q").ok().stdout, "");
    // The container is still there, shown with its image's id.
    let o = docker!(
        env,
        "ps",
        "-a",
        "--format",
        "{{.Names}} {{.Image}} {{.Status}}"
    )
    .ok();
    assert!(
        o.stdout.starts_with(&format!("user {short} Exited (0)")),
        "{o:?}"
    );
    docker!(env, "rm", "user").ok();
    assert_eq!(docker!(env, "ps", "-aq").ok().stdout, "");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}
