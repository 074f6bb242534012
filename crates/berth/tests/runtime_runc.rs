//! End-to-end: containers on an external OCI runtime (`--runtime runc`), as with Docker's
//! default runtime. Skipped, with a note, where /usr/sbin/runc is not installed.

mod common;
use common::{leftovers, Env};

fn have_runc() -> bool {
    if std::path::Path::new("/usr/sbin/runc").exists() {
        return true;
    }
    eprintln!("note: /usr/sbin/runc is not installed; the --runtime runc tests are skipped");
    false
}

#[test]
fn runc_run_exit_codes_exec_stop() {
    if !have_runc() {
        return;
    }
    let env = Env::new().with_busybox();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "busybox",
            "echo",
            "hello",
        ])
        .ok();
    assert_eq!(o.stdout, "hello\n");
    // runc makes the network namespace itself: the daemon plugs the bridge in once the
    // init exists (not in the spare shim's namespace, which runc does not join).
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0; ip route",
        ])
        .ok();
    assert!(o.stdout.contains("inet 172.17."), "{o:?}");
    assert!(o.stdout.contains("default via 172.17.0.1"), "{o:?}");
    let o = env.berth(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.code, 3, "{o:?}");
    assert_eq!(o.stdout, "out\n");
    assert_eq!(o.stderr, "err\n");
    // stdin
    let o = env.berth_stdin(
        &[
            "run",
            "--rm",
            "-i",
            "--runtime",
            "runc",
            "busybox",
            "tr",
            "a-z",
            "A-Z",
        ],
        b"loud\n",
    );
    assert_eq!((o.code, o.stdout.as_str()), (0, "LOUD\n"), "{o:?}");

    // A detached one: inspect, exec, pause, stop.
    env.berth(&[
        "run",
        "-d",
        "--runtime",
        "runc",
        "--name",
        "rc",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
    ])
    .ok();
    env.eventually("ready", || {
        env.berth(&["logs", "rc"]).stdout.contains("ready")
    });
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{.HostConfig.Runtime}} {{.State.Status}}",
            "rc",
        ])
        .ok();
    assert_eq!(o.trimmed(), "runc running");
    let pid = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "rc"])
        .ok()
        .trimmed()
        .parse::<i32>()
        .unwrap();
    assert!(pid > 1);
    assert!(common::pid_alive(pid));
    let o = env.berth(&["exec", "rc", "sh", "-c", "echo in-$(hostname); exit 4"]);
    assert_eq!(o.code, 4, "{o:?}");
    let hostname = env
        .berth(&["inspect", "--format", "{{.Config.Hostname}}", "rc"])
        .ok();
    assert_eq!(o.stdout, format!("in-{}\n", hostname.trimmed()));
    let o = env.berth_stdin(&["exec", "-i", "rc", "cat"], b"through-exec\n");
    assert_eq!(o.stdout, "through-exec\n", "{o:?}");
    let o = env.berth(&["exec", "rc", "nosuchcommand"]);
    assert_eq!(o.code, 127, "{o:?}");
    env.berth(&["pause", "rc"]).ok();
    assert_eq!(
        env.berth(&["inspect", "--format", "{{.State.Status}}", "rc"])
            .ok()
            .trimmed(),
        "paused"
    );
    env.berth(&["unpause", "rc"]).ok();
    let o = env.berth(&["stop", "-t", "5", "rc"]).ok();
    assert_eq!(o.trimmed(), "rc");
    assert!(env.berth(&["logs", "rc"]).ok().stdout.contains("got-term"));
    let ps = env.berth(&["ps", "-a", "--filter", "name=rc"]).ok().stdout;
    assert!(ps.contains("Exited (0)"), "{ps}");
    assert!(!common::pid_alive(pid));
    // It starts again on runc.
    env.berth(&["start", "rc"]).ok();
    env.berth(&["stop", "-t", "1", "rc"]).ok();
    env.berth(&["rm", "rc"]).ok();
    // A pid 1 without a trap is killed after the timeout: 137.
    env.berth(&[
        "run",
        "-d",
        "--runtime",
        "runc",
        "--name",
        "sleeper",
        "busybox",
        "sleep",
        "1000",
    ])
    .ok();
    env.berth(&["stop", "-t", "1", "sleeper"]).ok();
    assert_eq!(
        env.berth(&["inspect", "--format", "{{.State.ExitCode}}", "sleeper"])
            .ok()
            .trimmed(),
        "137"
    );
    env.berth(&["rm", "sleeper"]).ok();
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
    // An unknown runtime is refused at create, as Docker does.
    let o = env.berth(&[
        "run",
        "--rm",
        "--runtime",
        "nosuchruntime",
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr
            .contains("unknown or invalid runtime name: nosuchruntime"),
        "{o:?}"
    );
}
