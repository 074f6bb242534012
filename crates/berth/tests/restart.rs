//! Restart policies (issue 6): `always` brings a container back, also after a daemon kill;
//! `on-failure:N` gives up after N restarts; `unless-stopped` and `stop`; Docker's backoff.

mod common;
use common::Env;
use std::time::{Duration, Instant};

fn field(env: &Env, name: &str, f: &str) -> String {
    env.berth(&["inspect", "-f", f, name])
        .ok()
        .trimmed()
        .to_string()
}

fn wait_for(env: &Env, what: &str, secs: u64, mut f: impl FnMut(&Env) -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f(env) {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn on_failure_gives_up_after_its_count() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:3",
        "busybox",
        "sh",
        "-c",
        "echo try; exit 3",
    ])
    .ok();
    // 100 + 200 + 400 ms of backoff, then it stays exited.
    wait_for(&env, "3 restarts", 20, |env| {
        field(env, "flaky", "{{.RestartCount}} {{.State.Status}}") == "3 exited"
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        field(
            &env,
            "flaky",
            "{{.RestartCount}} {{.State.Status}} {{.State.ExitCode}}"
        ),
        "3 exited 3"
    );
    let logs = env.berth(&["logs", "flaky"]).ok().stdout;
    assert_eq!(logs.matches("try").count(), 4, "{logs}");
    assert_eq!(
        field(
            &env,
            "flaky",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:3"
    );
    // A success is not restarted by on-failure.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "ok",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ])
    .ok();
    wait_for(&env, "ok to exit", 10, |env| {
        field(env, "ok", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(field(&env, "ok", "{{.RestartCount}}"), "0");
}

#[test]
fn always_comes_back_until_stopped_and_after_a_daemon_kill() {
    let mut env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "svc",
        "--restart",
        "always",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    let pid1 = field(&env, "svc", "{{.State.Pid}}");
    // Its process dies: it is started again.
    let o = std::process::Command::new("kill")
        .args(["-9", &pid1])
        .status()
        .unwrap();
    assert!(o.success());
    wait_for(&env, "a new pid", 10, |env| {
        let p = field(env, "svc", "{{.State.Pid}}");
        p != pid1 && p != "0" && field(env, "svc", "{{.State.Running}}") == "true"
    });
    assert_eq!(field(&env, "svc", "{{.RestartCount}}"), "1");
    // The daemon is killed, and the container dies while it is away: the new daemon brings it
    // back.
    let pid2 = field(&env, "svc", "{{.State.Pid}}");
    env.kill_daemon();
    std::process::Command::new("kill")
        .args(["-9", &pid2])
        .status()
        .unwrap();
    env.start_daemon();
    wait_for(&env, "svc running again", 10, |env| {
        field(env, "svc", "{{.State.Running}}") == "true"
            && field(env, "svc", "{{.State.Pid}}") != pid2
    });
    // stop: it stays stopped; a daemon restart brings an `always` one back, not an
    // `unless-stopped` one.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "us",
        "--restart",
        "unless-stopped",
        "busybox",
        "sleep",
        "300",
    ])
    .ok();
    env.berth(&["stop", "-t", "0", "svc", "us"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(field(&env, "svc", "{{.State.Status}}"), "exited");
    assert_eq!(field(&env, "us", "{{.State.Status}}"), "exited");
    env.stop_daemon();
    env.start_daemon();
    wait_for(&env, "svc back at daemon start", 10, |env| {
        field(env, "svc", "{{.State.Running}}") == "true"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(field(&env, "us", "{{.State.Status}}"), "exited");
    // --rm and a restart policy do not go together.
    let o = env.berth(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("Conflicting options"), "{o:?}");
    env.berth(&["rm", "-f", "svc", "us"]).ok();
}

#[test]
fn backoff_doubles_and_rm_cancels_a_pending_restart() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "crash",
        "--restart",
        "always",
        "busybox",
        "false",
    ])
    .ok();
    // Restarts come at 100, 200, 400, 800 ms…: after ~2 s, about 4, surely not 20.
    std::thread::sleep(Duration::from_millis(2200));
    let n: i64 = field(&env, "crash", "{{.RestartCount}}").parse().unwrap();
    assert!((3..=6).contains(&n), "{n} restarts");
    let ps = env
        .berth(&["ps", "-a", "--format", "{{.Status}}"])
        .ok()
        .stdout;
    assert!(
        ps.contains("Restarting") || ps.contains("Exited") || ps.contains("Up"),
        "{ps}"
    );
    env.berth(&["rm", "-f", "crash"]).ok();
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(env.berth(&["ps", "-aq"]).ok().trimmed(), "");
}
