//! End-to-end: the daemon itself — pid file, daemon.json, the socket's mode, state that
//! survives a daemon restart (exits while it was down, paused containers, `ps`), and the CLI
//! starting the daemon when nothing answers on the default socket.

mod common;
use common::{pid_alive, run_daemon_expecting_failure, Env};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::process::Command;
use std::time::{Duration, Instant};

fn read_pid(path: &std::path::Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Seconds since the epoch of an RFC 3339 time (via date(1); the tests have no chrono).
fn epoch(ts: &str) -> f64 {
    let o = Command::new("date")
        .args(["-u", "-d", ts, "+%s.%N"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a time: {ts:?}"))
}

fn now_epoch() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn pidfile_written_removed_on_sigterm_and_guards_a_second_daemon() {
    let mut env = Env::new();
    // The default pid file sits in the exec root and holds the daemon's pid.
    let default_pidfile = env.exec_root.join("berth.pid");
    assert_eq!(read_pid(&default_pidfile), Some(env.daemon_pid()));
    // SIGTERM: a clean exit (0) that removes the pid file and the socket.
    let st = env.stop_daemon().expect("the daemon was running");
    assert_eq!(st.code(), Some(0), "{st:?}\n{}", env.daemon_log());
    assert!(
        !default_pidfile.exists(),
        "the pid file is left after SIGTERM"
    );
    assert!(!env.sock.exists(), "the socket is left after SIGTERM");

    // --pidfile puts it elsewhere.
    let pidfile = env.dir.path().join("elsewhere").join("my.pid");
    let pidfile_s = pidfile.to_str().unwrap().to_string();
    env.start_daemon_with(None, &["--pidfile", &pidfile_s]);
    assert_eq!(read_pid(&pidfile), Some(env.daemon_pid()));
    assert!(!default_pidfile.exists());

    // A second daemon on the same pid file refuses to start, and leaves the first alone.
    let other = env.dir.path().join("o");
    let o = run_daemon_expecting_failure(
        &[
            "--data-root",
            other.join("data").to_str().unwrap(),
            "--exec-root",
            other.join("r").to_str().unwrap(),
            "--config-file",
            other.join("none.json").to_str().unwrap(),
            "--pidfile",
            &pidfile_s,
        ],
        20,
    );
    assert_eq!(o.code, 1, "the second daemon did not refuse: {o:?}");
    assert!(
        o.stderr.contains(&format!(
            "pid file found, ensure berth is not running or delete {pidfile_s}"
        )),
        "{o:?}"
    );
    assert!(!other.join("r").join("berth.sock").exists());
    assert_eq!(read_pid(&pidfile), Some(env.daemon_pid()));
    assert_eq!(env.berth(&["version"]).code, 0);

    // A second daemon on the same exec root (its default pid file) refuses as well.
    env.stop_daemon();
    assert!(!pidfile.exists(), "--pidfile is left after SIGTERM");
    env.start_daemon();
    let o = run_daemon_expecting_failure(
        &[
            "--data-root",
            other.join("data").to_str().unwrap(),
            "--exec-root",
            env.exec_root.to_str().unwrap(),
            "--config-file",
            other.join("none.json").to_str().unwrap(),
        ],
        20,
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("pid file found"), "{o:?}");
    assert_eq!(
        env.berth(&["version"]).code,
        0,
        "the first daemon was disturbed"
    );

    // A stale pid file (its process is gone) does not keep the daemon from starting.
    env.kill_daemon();
    assert!(
        default_pidfile.exists(),
        "SIGKILL cannot remove the pid file"
    );
    std::fs::write(&default_pidfile, "999999\n").unwrap();
    env.start_daemon();
    assert_eq!(read_pid(&default_pidfile), Some(env.daemon_pid()));
}

#[test]
fn socket_is_mode_0660() {
    let env = Env::new();
    let md = std::fs::metadata(&env.sock).unwrap();
    assert!(md.file_type().is_socket());
    assert_eq!(
        md.permissions().mode() & 0o7777,
        0o660,
        "socket mode {:o}",
        md.permissions().mode()
    );
}

#[test]
fn cli_follows_berth_host_not_docker_host() {
    let env = Env::new();
    let run = |vars: &[(&str, &str)]| {
        let mut c = Command::new(common::BERTH);
        c.env_remove("BERTH_HOST").env_remove("DOCKER_HOST");
        for (k, v) in vars {
            c.env(k, v);
        }
        let o = c
            .args(["info", "--format", "{{.DockerRootDir}}"])
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).trim().to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let root = env
        .berth(&["info", "--format", "{{.DockerRootDir}}"])
        .stdout;
    let root = root.trim();
    assert!(!root.is_empty());
    // BERTH_HOST is followed; DOCKER_HOST (the docker CLI's, maybe another engine's) is not.
    let dead = format!("unix://{}/nobody.sock", env.dir.path().display());
    let (code, out, err) = run(&[("DOCKER_HOST", &dead), ("BERTH_HOST", &env.host())]);
    assert_eq!((code, out.as_str()), (Some(0), root), "{err}");
    // An explicit host that answers nothing is an error, and starts no daemon there.
    let (code, _, err) = run(&[("DOCKER_HOST", &env.host()), ("BERTH_HOST", &dead)]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("Cannot connect to the berth daemon at"),
        "{err}"
    );
    assert!(!env.dir.path().join("nobody.sock").exists());
}

#[test]
fn daemon_json_log_opts_rotate_logs() {
    let mut env = Env::new().with_busybox();
    env.stop_daemon();
    let cfg = env.dir.path().join("daemon.json");
    std::fs::write(
        &cfg,
        r#"{
  "log-opts": { "max-size": "1k", "max-file": "2" },
  "insecure-registries": ["reg.example:5000", "10.9.1.0/16"],
  "registry-mirrors": ["https://mirror.example"]
}
"#,
    )
    .unwrap();
    env.start_daemon_with(Some(&cfg), &[]);
    // `info` shows the registry settings, as docker shows them
    let info = env.berth(&["info"]).ok().stdout;
    assert!(
        info.contains(
            " Insecure Registries:\n  reg.example:5000\n  10.9.0.0/16\n  127.0.0.0/8\n Registry Mirrors:\n  https://mirror.example/\n"
        ),
        "{info}"
    );
    // The options rotate the json-file log: 2 files of at most 1 KiB keep only the end.
    let id = env
        .berth(&[
            "run",
            "--name",
            "chatty",
            "busybox",
            "sh",
            "-c",
            "i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo line-$i; done",
        ])
        .ok();
    assert_eq!(
        id.stdout.lines().count(),
        500,
        "the attached run shows everything"
    );
    let logs = env.berth(&["logs", "chatty"]).ok().stdout;
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.last(), Some(&"line-500"), "{logs}");
    assert!(
        lines.len() < 100 && !lines.contains(&"line-1"),
        "max-size 1k / max-file 2 kept {} lines",
        lines.len()
    );
    // consecutive lines, nothing lost within what is kept
    let first: usize = lines[0].trim_start_matches("line-").parse().unwrap();
    let expected: Vec<String> = (first..=500).map(|i| format!("line-{i}")).collect();
    assert_eq!(lines, expected);
    // The daemon's defaults are the container's log options, as `docker inspect` shows them.
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{json .HostConfig.LogConfig}}",
            "chatty",
        ])
        .ok();
    // (Key order is checked by templates.rs; here, the content.)
    let v: serde_json::Value = serde_json::from_str(o.trimmed()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"Type": "json-file", "Config": {"max-file": "2", "max-size": "1k"}}),
        "the daemon's log-opts are not in the container's LogConfig"
    );
}

#[test]
fn bad_daemon_json_is_refused() {
    let mut env = Env::new();
    // Bad JSON: the daemon refuses to start and says which file and why.
    env.stop_daemon();
    let bad = env.dir.path().join("bad.json");
    std::fs::write(&bad, "{\"log-opts\": {\"max-size\": \"1k\",}\n").unwrap();
    let o = run_daemon_expecting_failure(
        &[
            "--data-root",
            env.data_root.to_str().unwrap(),
            "--exec-root",
            env.exec_root.to_str().unwrap(),
            "--config-file",
            bad.to_str().unwrap(),
        ],
        20,
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(
        o.stderr.contains(&format!(
            "unable to configure the berth daemon with file {}",
            bad.display()
        )),
        "{o:?}"
    );
    assert!(!env.sock.exists(), "a refused daemon left a socket");
    assert!(
        !env.exec_root.join("berth.pid").exists(),
        "a refused daemon left a pid file"
    );
    // A bad value in good JSON is refused too.
    std::fs::write(&bad, r#"{"log-opts": {"max-size": "lots"}}"#).unwrap();
    let o = run_daemon_expecting_failure(
        &[
            "--data-root",
            env.data_root.to_str().unwrap(),
            "--exec-root",
            env.exec_root.to_str().unwrap(),
            "--config-file",
            bad.to_str().unwrap(),
        ],
        20,
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("lots"), "{o:?}");
    env.start_daemon();
}

/// kill -9 the daemon, let a container exit while nothing supervises it but its shim, start
/// the daemon again: the container shows as exited with its code, and its logs.
#[test]
fn container_exiting_while_daemon_is_down() {
    let mut env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "leaver",
        "busybox",
        "sh",
        "-c",
        "trap 'echo after; exit 5' USR1; echo before; while true; do sleep 0.1; done",
    ])
    .ok();
    env.berth(&["run", "-d", "--name", "stayer", "busybox", "sleep", "1000"])
        .ok();
    env.eventually("before", || {
        env.berth(&["logs", "leaver"]).stdout == "before\n"
    });
    let pid: i32 = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "leaver"])
        .ok()
        .trimmed()
        .parse()
        .unwrap();
    env.kill_daemon();
    // No panics while the daemon is down (Drop needs it to clean up).
    // SAFETY: kill(2) with a valid signal on the container's pid.
    unsafe {
        libc::kill(pid, libc::SIGUSR1);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let exited_by = now_epoch();
    let gone = !pid_alive(pid);
    std::thread::sleep(Duration::from_millis(1500));
    env.start_daemon();
    assert!(gone, "the container did not exit on SIGUSR1");

    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{.State.Status}} {{.State.Running}} {{.State.ExitCode}} {{.State.Pid}}",
            "leaver",
        ])
        .ok();
    assert_eq!(o.trimmed(), "exited false 5 0");
    let ps = env
        .berth(&[
            "ps",
            "-a",
            "--filter",
            "name=leaver",
            "--format",
            "{{.Status}}",
        ])
        .ok();
    assert!(ps.trimmed().starts_with("Exited (5) "), "{ps:?}");
    assert_eq!(
        env.berth(&["ps", "-q", "--filter", "name=leaver"])
            .ok()
            .trimmed(),
        ""
    );
    // When it finished is when it exited, not when the daemon came back.
    let finished = env
        .berth(&["inspect", "--format", "{{.State.FinishedAt}}", "leaver"])
        .ok();
    let f = epoch(finished.trimmed());
    assert!(
        f <= exited_by + 0.5 && f > exited_by - 30.0,
        "FinishedAt {} but it exited by {exited_by}",
        finished.trimmed()
    );
    assert_eq!(
        env.berth(&["logs", "leaver"]).ok().stdout,
        "before\nafter\n"
    );
    assert_eq!(env.berth(&["wait", "leaver"]).ok().trimmed(), "5");
    // The other one is still running and usable.
    assert_eq!(
        env.berth(&["exec", "stayer", "echo", "alive"]).ok().stdout,
        "alive\n"
    );
    // And the exited one starts again.
    env.berth(&["start", "leaver"]).ok();
    env.eventually("second run", || {
        env.berth(&["logs", "leaver"]).stdout == "before\nafter\nbefore\n"
    });
    env.berth(&["kill", "-s", "USR1", "leaver"]).ok();
    assert_eq!(env.berth(&["wait", "leaver"]).ok().trimmed(), "5");
    env.berth(&["rm", "-f", "stayer", "leaver"]).ok();
    assert!(
        common::leftovers(&env).is_empty(),
        "{:?}",
        common::leftovers(&env)
    );
}

fn status(env: &Env, name: &str) -> String {
    env.berth(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Paused}}",
        name,
    ])
    .ok()
    .trimmed()
    .to_string()
}

#[test]
fn paused_container_stays_paused_across_daemon_restarts() {
    let mut env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "frozen",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.1; done",
    ])
    .ok();
    env.berth(&["pause", "frozen"]).ok();
    assert_eq!(status(&env, "frozen"), "paused true");
    let pid: i32 = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "frozen"])
        .ok()
        .trimmed()
        .parse()
        .unwrap();
    let count = || std::fs::read_to_string(format!("/proc/{pid}/root/tmp/count")).unwrap();
    for how in ["SIGKILL", "SIGTERM"] {
        if how == "SIGKILL" {
            env.kill_and_restart_daemon();
        } else {
            env.stop_daemon();
            env.start_daemon();
        }
        assert_eq!(
            status(&env, "frozen"),
            "paused true",
            "after a {how} restart"
        );
        let ps = env
            .berth(&["ps", "--filter", "name=frozen", "--format", "{{.Status}}"])
            .ok();
        assert!(ps.trimmed().ends_with("(Paused)"), "{how}: {ps:?}");
        // Really frozen: the counter does not move.
        let c1 = count();
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(count(), c1, "{how}: the paused container ran");
        let o = env.berth(&["exec", "frozen", "true"]);
        assert_ne!(o.code, 0, "{o:?}");
        assert!(
            o.stderr
                .contains("is paused, unpause the container before exec"),
            "{o:?}"
        );
    }
    env.berth(&["unpause", "frozen"]).ok();
    assert_eq!(status(&env, "frozen"), "running false");
    let c1 = count();
    env.eventually("the counter to move", || count() != c1);
    assert_eq!(
        env.berth(&["exec", "frozen", "echo", "thawed"]).ok().stdout,
        "thawed\n"
    );
}

#[test]
fn ps_after_restart_shows_the_same_containers() {
    let mut env = Env::new().with_busybox();
    env.berth(&[
        "run", "-d", "--name", "up1", "-l", "k=v", "busybox", "sleep", "1000",
    ])
    .ok();
    env.berth(&["run", "--name", "done1", "busybox", "sh", "-c", "exit 3"]);
    env.berth(&["create", "--name", "new1", "busybox", "echo", "x"])
        .ok();
    env.berth(&["run", "-d", "--name", "paused1", "busybox", "sleep", "1000"])
        .ok();
    env.berth(&["pause", "paused1"]).ok();
    let fmt = "{{.ID}}|{{.Image}}|{{.Command}}|{{.Names}}|{{.State}}|{{.Labels}}";
    let before = env
        .berth(&["ps", "-a", "--no-trunc", "--format", fmt])
        .ok()
        .stdout;
    assert_eq!(before.lines().count(), 4, "{before}");
    let statuses = |env: &Env| -> Vec<String> {
        env.berth(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"])
            .ok()
            .stdout
            .lines()
            .map(|l| {
                // "Up 3 seconds" -> "Up", "Exited (3) 2 seconds ago" -> "Exited (3)"
                let mut w = l.split_whitespace();
                let name = w.next().unwrap_or("").to_string();
                let s = w.next().unwrap_or("").to_string();
                let extra = if s == "Exited" {
                    format!(" {}", w.next().unwrap_or(""))
                } else if l.ends_with("(Paused)") {
                    " (Paused)".to_string()
                } else {
                    String::new()
                };
                format!("{name} {s}{extra}")
            })
            .collect()
    };
    let mut st_before = statuses(&env);
    st_before.sort();
    assert_eq!(
        st_before,
        vec![
            "done1 Exited (3)",
            "new1 Created",
            "paused1 Up (Paused)",
            "up1 Up"
        ]
    );
    let running_before = env.berth(&["ps", "-q"]).ok().stdout;
    for how in ["SIGKILL", "SIGTERM"] {
        if how == "SIGKILL" {
            env.kill_and_restart_daemon();
        } else {
            env.stop_daemon();
            env.start_daemon();
        }
        let after = env
            .berth(&["ps", "-a", "--no-trunc", "--format", fmt])
            .ok()
            .stdout;
        assert_eq!(after, before, "after a {how} restart");
        let mut st = statuses(&env);
        st.sort();
        assert_eq!(st, st_before, "after a {how} restart");
        assert_eq!(env.berth(&["ps", "-q"]).ok().stdout, running_before);
    }
    // And they all still work.
    env.berth(&["start", "-a", "new1"]).ok();
    env.berth(&["unpause", "paused1"]).ok();
    env.berth(&["stop", "-t", "1", "up1", "paused1"]).ok();
}

/// Processes running `<BERTH> daemon` with no other argument (what the CLI starts).
fn autostarted_daemons() -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        if args.len() == 2 && args[0] == common::BERTH.as_bytes() && args[1] == b"daemon" {
            out.push(pid);
        }
    }
    out
}

/// With nothing answering on the default socket, the CLI (as root) starts `berth daemon`
/// itself. Run in private mount and network namespaces with empty /run, /var/lib and
/// /var/log, so that the host's are not touched.
#[test]
fn cli_starts_the_daemon_on_the_default_socket() {
    let before = autostarted_daemons();
    let script = r#"
set -u
mount -t tmpfs none /run && mount -t tmpfs none /var/lib && mount -t tmpfs none /var/log || exit 90
mkdir -p /var/lib/berth
B="$0"
if [ -e /run/berth/berth.sock ]; then echo "socket-before"; fi
"$B" version >/run/v.out 2>&1; echo "version-rc=$?"
cat /run/v.out
pid=$(cat /run/berth/berth.pid 2>/dev/null)
echo "daemon-pid=${pid:-none}"
if [ -n "$pid" ]; then
  echo "daemon-exe=$(readlink /proc/$pid/exe)"
  echo "daemon-cmd=$(tr '\0' ' ' </proc/$pid/cmdline)"
  [ -S /run/berth/berth.sock ] && echo "socket-after"
  "$B" info --format '{{.Containers}}' >/run/i.out 2>&1; echo "info-rc=$? containers=$(cat /run/i.out)"
  # kill -9 it: the stale socket and pid file must not keep the CLI from starting another
  kill -9 "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  "$B" version >/run/v2.out 2>&1; echo "second-version-rc=$?"
  pid2=$(cat /run/berth/berth.pid 2>/dev/null)
  echo "second-daemon-pid=${pid2:-none}"
  for p in $pid2; do
    kill "$p"
    i=0; while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
    kill -0 "$p" 2>/dev/null && { echo "second-daemon-ignored-sigterm"; kill -9 "$p"; }
  done
fi
# An explicit -H never starts a daemon.
"$B" -H unix:///run/nothing/here.sock version >/run/h.out 2>&1; echo "explicit-rc=$?"
cat /run/h.out
echo "--- /var/log/berth.log"
cat /var/log/berth.log 2>/dev/null
"#;
    let o = Command::new("timeout")
        .args(["-s", "KILL", "90"])
        .args([
            "unshare",
            "--mount",
            "--net",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
        ])
        .arg(common::BERTH)
        // The default socket is what is tested: no host from the environment.
        .env_remove("BERTH_HOST")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // Whatever happened, no daemon of ours outlives the test.
    for pid in autostarted_daemons() {
        if !before.contains(&pid) {
            // SAFETY: kill(2) on a berth daemon this test started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            eprintln!("killed a leftover autostarted daemon {pid}");
        }
    }
    let report = format!("{out}\nstderr: {}", String::from_utf8_lossy(&o.stderr));
    assert!(!out.contains("socket-before"), "{report}");
    assert!(out.contains("version-rc=0"), "{report}");
    assert!(
        out.contains("Server:") && out.contains("API version"),
        "{report}"
    );
    let pid_line = out
        .lines()
        .find(|l| l.starts_with("daemon-pid="))
        .unwrap_or("");
    assert!(
        pid_line
            .trim_start_matches("daemon-pid=")
            .parse::<i32>()
            .is_ok(),
        "no daemon pid file: {report}"
    );
    assert!(
        out.contains(&format!("daemon-exe={}", common::BERTH)),
        "{report}"
    );
    assert!(
        out.contains("daemon-cmd=") && out.contains(" daemon "),
        "{report}"
    );
    assert!(out.contains("socket-after"), "{report}");
    assert!(out.contains("info-rc=0 containers=0"), "{report}");
    assert!(out.contains("second-version-rc=0"), "{report}");
    assert!(!out.contains("second-daemon-pid=none"), "{report}");
    assert!(!out.contains("second-daemon-ignored-sigterm"), "{report}");
    assert!(out.contains("explicit-rc=1"), "{report}");
    assert!(
        out.contains(
            "Cannot connect to the berth daemon at unix:///run/nothing/here.sock. Is the berth daemon running?"
        ),
        "{report}"
    );
    assert!(o.status.success(), "{report}");
}

/// The daemon asks the kernel to favour cgroup migrations (cgroup2 `favordynmods`, Linux
/// 6.0+), keeping the hierarchy's other options, so a container's attach never waits for an
/// RCU grace period.
#[test]
fn daemon_sets_cgroup2_favordynmods() {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let major: u32 = release.split('.').next().unwrap().parse().unwrap();
    let cgroup2 = |info: &str| -> Option<String> {
        info.lines()
            .find(|l| {
                l.split(" - ")
                    .nth(1)
                    .is_some_and(|r| r.starts_with("cgroup2 "))
            })
            .map(str::to_string)
    };
    let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let Some(line) = cgroup2(&before) else {
        eprintln!("skipped: no cgroup2 hierarchy is mounted");
        return;
    };
    if major < 6 {
        eprintln!("skipped: kernel {release} has no favordynmods");
        return;
    }
    let opts = |l: &str| -> Vec<String> {
        let r = l.split(" - ").nth(1).unwrap();
        r.split_whitespace()
            .nth(2)
            .unwrap_or("")
            .split(',')
            .map(str::to_string)
            .collect()
    };
    let kept: Vec<String> = opts(&line)
        .into_iter()
        .filter(|o| o != "favordynmods")
        .collect();
    let env = Env::new().with_busybox();
    let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let now = opts(&cgroup2(&after).unwrap());
    assert!(now.iter().any(|o| o == "favordynmods"), "{now:?}");
    for o in &kept {
        assert!(now.contains(o), "option {o} lost: {now:?}");
    }
    // and containers with limits still start (tests/limits.rs proves the limits hold)
    env.berth(&["run", "--rm", "-m", "64m", "busybox", "true"])
        .ok();
}
