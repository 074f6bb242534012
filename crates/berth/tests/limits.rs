//! Resource limits and security options (issue 6), enforced for real: an OOM kill, a fork
//! bomb held at --pids-limit, --cpus holding a busy loop near its share, ulimits, shm size,
//! sysctls, devices, no-new-privileges, a seccomp profile, read-only roots; bad input.
//! These drive the docker CLI (every flag of docker 20.10) against berth; the berth CLI's
//! flags are the same.

mod common;
use common::Env;
use std::time::{Duration, Instant};

fn docker(env: &Env, args: &[&str]) -> common::Out {
    env.docker(args).expect("the docker CLI")
}

fn field(env: &Env, name: &str, f: &str) -> String {
    env.berth(&["inspect", "-f", f, name])
        .ok()
        .trimmed()
        .to_string()
}

#[test]
fn memory_limit_oom_kills_with_137() {
    let env = Env::new().with_busybox();
    if !common::docker_cli() {
        return;
    }
    let o = docker(
        &env,
        &[
            "run",
            "--name",
            "hog",
            "-m",
            "16m",
            "--memory-swap",
            "16m",
            "busybox",
            "sh",
            "-c",
            "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        ],
    );
    assert_eq!(o.code, 137, "{o:?}");
    assert_eq!(
        field(&env, "hog", "{{.State.OOMKilled}} {{.State.ExitCode}}"),
        "true 137"
    );
    assert_eq!(
        field(&env, "hog", "{{.HostConfig.Memory}}"),
        (16 << 20).to_string()
    );
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let env = Env::new().with_busybox();
    if !common::docker_cli() {
        return;
    }
    let o = docker(
        &env,
        &[
            "run", "--rm", "--pids-limit", "10", "busybox", "sh", "-c",
            "i=0; while [ $i -lt 40 ]; do (sleep 5 &) 2>/dev/null; i=$((i+1)); done; set -- /proc/[0-9]*; echo $#",
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let n: u32 = o.stdout.trim().parse().unwrap();
    assert!(n <= 10, "{n} processes under --pids-limit 10");
}

#[test]
fn cpus_holds_a_busy_loop_near_its_share() {
    let env = Env::new().with_busybox();
    if !common::docker_cli() {
        return;
    }
    let o = docker(
        &env,
        &[
            "run",
            "-d",
            "--name",
            "spin",
            "--cpus",
            "0.5",
            "busybox",
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let pid: i32 = field(&env, "spin", "{{.State.Pid}}").parse().unwrap();
    let ticks = |pid: i32| -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let f: Vec<&str> = s.rsplit(')').next().unwrap().split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    let (t0, c0) = (Instant::now(), ticks(pid));
    std::thread::sleep(Duration::from_secs(3));
    let (dt, dc) = (t0.elapsed().as_secs_f64(), ticks(pid) - c0);
    let hz = 100.0;
    let share = dc as f64 / hz / dt;
    assert!(
        (0.3..=0.65).contains(&share),
        "used {:.0}% of a CPU",
        share * 100.0
    );
    env.berth(&["rm", "-f", "spin"]).ok();
}

#[test]
fn ulimits_shm_sysctls_devices_and_privileges() {
    let env = Env::new().with_busybox();
    if !common::docker_cli() {
        return;
    }
    let profile = env.dir.path().join("seccomp.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86","SCMP_ARCH_X32"]}],
           "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","comment":"no mkdir"}]}"#,
    )
    .unwrap();
    let o = docker(
        &env,
        &[
            "run", "--rm", "--ulimit", "nofile=123:456", "--shm-size", "16m",
            "--sysctl", "net.ipv4.ip_unprivileged_port_start=99",
            "--device", "/dev/null:/dev/mynull",
            "--security-opt", "no-new-privileges",
            "busybox", "sh", "-c",
            "ulimit -n; ulimit -Hn; df -k /dev/shm | tail -1; cat /proc/sys/net/ipv4/ip_unprivileged_port_start; echo x > /dev/mynull && echo dev-ok; grep NoNewPrivs /proc/self/status",
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "123", "{o:?}");
    assert_eq!(lines[1], "456", "{o:?}");
    assert!(lines[2].contains("16384"), "{o:?}");
    assert_eq!(lines[3], "99", "{o:?}");
    assert_eq!(lines[4], "dev-ok", "{o:?}");
    assert!(lines[5].ends_with('1'), "{o:?}");
    let o = docker(
        &env,
        &[
            "run",
            "--rm",
            "--security-opt",
            &format!("seccomp={}", profile.display()),
            "busybox",
            "mkdir",
            "/x",
        ],
    );
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("Operation not permitted"), "{o:?}");
    let o = docker(
        &env,
        &[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "mkdir",
            "/x",
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let o = docker(
        &env,
        &["run", "--rm", "--read-only", "busybox", "touch", "/x"],
    );
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("Read-only file system"), "{o:?}");
}

#[test]
fn bad_limits_are_refused_and_create_nothing() {
    let env = Env::new().with_busybox();
    // The daemon's checks (the berth CLI, as docker 20.10's, leaves them to it).
    for (args, msg) in [
        (
            vec!["run", "--rm", "-m", "1m", "busybox", "true"],
            "Minimum memory limit allowed is 6MB",
        ),
        (
            vec!["run", "--rm", "--cpus", "99", "busybox", "true"],
            "Range of CPUs is from",
        ),
        (
            vec!["run", "--rm", "--memory-swap", "1g", "busybox", "true"],
            "set the Memory limit",
        ),
        (
            vec!["run", "--rm", "--security-opt", "bogus", "busybox", "true"],
            "security-opt",
        ),
        (
            vec![
                "run",
                "--rm",
                "--sysctl",
                "vm.swappiness=1",
                "busybox",
                "true",
            ],
            "vm.swappiness",
        ),
        (
            vec![
                "run",
                "--rm",
                "--device",
                "/dev/nosuchdev",
                "busybox",
                "true",
            ],
            "/dev/nosuchdev",
        ),
        (
            vec!["run", "--rm", "--ulimit", "nofile=20:10", "busybox", "true"],
            "ulimit",
        ),
    ] {
        let o = env.berth(&args);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(msg), "{args:?}: {o:?}");
    }
    assert_eq!(env.berth(&["ps", "-aq"]).ok().trimmed(), "");
}

#[test]
fn berth_cli_limits_are_enforced_and_shown() {
    let env = Env::new().with_busybox();
    let o = env.berth(&[
        "run",
        "--name",
        "hog2",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "--pids-limit",
        "50",
        "--cpus",
        "1.5",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
    ]);
    assert_eq!(o.code, 137, "{o:?}");
    assert_eq!(
        field(&env, "hog2", "{{.State.OOMKilled}} {{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.NanoCpus}}"),
        format!("true {} 50 1500000000", 16 << 20)
    );
}

#[test]
fn init_reaps_zombies_forwards_signals_and_keeps_the_exit_code() {
    let env = Env::new().with_busybox();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--init",
            "busybox",
            "sh",
            "-c",
            "(sleep 0.2 &); sleep 1; ps -o pid,stat,comm",
        ])
        .ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.split_whitespace().next() == Some("1") && l.ends_with("init")),
        "{o:?}"
    );
    assert!(
        !lines.iter().any(|l| l
            .split_whitespace()
            .nth(1)
            .is_some_and(|s| s.starts_with('Z'))),
        "a zombie: {o:?}"
    );
    let o = env.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(o.code, 7, "{o:?}");
    // sleep as PID 1 would ignore SIGTERM until the timeout; under init it gets it.
    env.berth(&[
        "run", "-d", "--name", "sleeper", "--init", "busybox", "sleep", "300",
    ])
    .ok();
    let t0 = Instant::now();
    env.berth(&["stop", "sleeper"]).ok();
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(field(&env, "sleeper", "{{.State.ExitCode}}"), "143");
    env.berth(&["rm", "sleeper"]).ok();
}

#[test]
fn a_container_with_a_network_sysctl_takes_execs() {
    // libcontainer checks a network sysctl against the container's network namespace at each
    // exec too, through the spec the shim saved: the namespace it names must stay valid.
    let env = Env::new().with_busybox();
    let id = env
        .berth(&[
            "run",
            "-d",
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=99",
            "busybox",
            "sleep",
            "1000",
        ])
        .ok()
        .trimmed()
        .to_string();
    for _ in 0..3 {
        let o = env
            .berth(&[
                "exec",
                &id,
                "cat",
                "/proc/sys/net/ipv4/ip_unprivileged_port_start",
            ])
            .ok();
        assert_eq!(o.stdout, "99\n", "{o:?}");
    }
    env.berth(&["rm", "-f", &id]).ok();
}
