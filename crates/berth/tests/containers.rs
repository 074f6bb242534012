//! End-to-end: containers through the berth CLI, against a real daemon.

mod common;
use common::{leftovers, Env};

#[test]
fn run_echo_and_exit_codes() {
    let env = Env::new().with_busybox();
    let o = env.berth(&["run", "--rm", "busybox", "echo", "hello"]).ok();
    assert_eq!(o.stdout, "hello\n");
    let o = env.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.code, 3, "{o:?}");
    let o = env.berth(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(o.code, 127, "{o:?}");
    assert!(o.stderr.contains("executable file not found"), "{o:?}");
    let o = env.berth(&["run", "--rm", "nosuchimage"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr
            .contains("Unable to find image 'nosuchimage:latest' locally"),
        "{o:?}"
    );
    // --rm left nothing.
    assert_eq!(env.berth(&["ps", "-aq"]).ok().trimmed(), "");
    assert!(leftovers(&env).is_empty(), "{:?}", leftovers(&env));
}

#[test]
fn run_options_env_workdir_user_hostname_entrypoint() {
    let env = Env::new().with_busybox();
    let envfile = env.dir.path().join("env.list");
    std::fs::write(&envfile, "# comment\nFROM_FILE=yes\n").unwrap();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-e",
            "A=1",
            "--env-file",
            envfile.to_str().unwrap(),
            "-w",
            "/tmp",
            "-u",
            "alice",
            "--hostname",
            "boxy",
            "busybox",
            "sh",
            "-c",
            "echo $A $FROM_FILE; pwd; id -u; id -g; hostname; cat /etc/hostname",
        ])
        .ok();
    assert_eq!(o.stdout, "1 yes\n/tmp\n1000\n1000\nboxy\nboxy\n");
    // /.dockerenv, by which software tells it runs in a container, as with docker
    let o = env
        .berth(&[
            "run",
            "--rm",
            "busybox",
            "stat",
            "-c",
            "%s %a",
            "/.dockerenv",
        ])
        .ok();
    assert_eq!(o.trimmed(), "0 755");
    // a working directory the image lacks is made, root's, as docker makes it
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-w",
            "/not/there/yet",
            "busybox",
            "sh",
            "-c",
            "pwd; stat -c '%u %a' .",
        ])
        .ok();
    assert_eq!(o.stdout, "/not/there/yet\n0 755\n");
    // and in a volume, where the container sees it
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "wdvol:/data",
            "-w",
            "/data/sub",
            "busybox",
            "pwd",
        ])
        .ok();
    assert_eq!(o.trimmed(), "/data/sub");
    let o = env
        .berth(&["run", "--rm", "-v", "wdvol:/data", "busybox", "ls", "/data"])
        .ok();
    assert_eq!(o.trimmed(), "sub");
    // inside the container's own tree: an image's symlink does not lead it out
    env.berth(&["run", "--name", "linker", "busybox", "ln", "-s", "/", "/up"])
        .ok();
    env.berth(&["commit", "linker", "linked"]).ok();
    let o = env
        .berth(&["run", "--rm", "-w", "/up/../escaped", "linked", "pwd"])
        .ok();
    assert_eq!(o.trimmed(), "/escaped");
    assert!(!std::path::Path::new("/escaped").exists());
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--entrypoint",
            "echo",
            "busybox",
            "from",
            "entrypoint",
        ])
        .ok();
    assert_eq!(o.stdout, "from entrypoint\n");
    let o = env
        .berth(&["run", "--rm", "-u", "1234:50", "busybox", "id"])
        .ok();
    assert!(o.stdout.starts_with("uid=1234 gid=50"), "{o:?}");
    let o = env.berth(&["run", "--rm", "-u", "nobodyhere", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nobodyhere"), "{o:?}");
}

/// A container's processes see Docker's environment: PATH, HOSTNAME (the container's hostname),
/// HOME from the runtime, the container's variables, an exec's on top; nothing of the engine's
/// own (the shim runs with malloc tunables in its environment).
#[test]
fn process_environment_is_dockers() {
    let env = Env::new().with_busybox();
    let names = |out: &str| {
        let mut v: Vec<String> = out
            .lines()
            .map(|l| l.split('=').next().unwrap_or("").to_string())
            .collect();
        v.sort();
        v
    };
    let o = env
        .berth(&["run", "--rm", "-e", "A=1", "busybox", "env"])
        .ok();
    assert_eq!(names(&o.stdout), ["A", "HOME", "HOSTNAME", "PATH"], "{o:?}");
    let id = env
        .berth(&[
            "run",
            "-d",
            "--hostname",
            "boxy",
            "-e",
            "A=1",
            "busybox",
            "sleep",
            "100",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    let o = env
        .berth(&["exec", "-e", "A=2", "-e", "B=3", &id, "env"])
        .ok();
    assert_eq!(
        names(&o.stdout),
        ["A", "B", "HOME", "HOSTNAME", "PATH"],
        "{o:?}"
    );
    for want in ["HOSTNAME=boxy", "A=2", "B=3", "HOME=/root"] {
        assert!(o.stdout.lines().any(|l| l == want), "{want}: {o:?}");
    }
    let o = env.berth(&["exec", &id, "hostname"]).ok();
    assert_eq!(o.stdout, "boxy\n");
    env.berth(&["rm", "-f", &id]).ok();
    // A user without a passwd entry: runc's HOME=/.
    let o = env
        .berth(&["run", "--rm", "-u", "4321", "busybox", "env"])
        .ok();
    assert!(o.stdout.lines().any(|l| l == "HOME=/"), "{o:?}");
    // On the host's network, the host's name (as Docker does), in the environment too.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "sh",
            "-c",
            "hostname; echo $HOSTNAME",
        ])
        .ok();
    assert_eq!(o.stdout, format!("{0}{0}", host), "{o:?}");
}

#[test]
fn detached_ps_logs_stop_rm() {
    let env = Env::new().with_busybox();
    let id = env
        .berth(&["run", "-d", "--name", "web", "-l", "tier=front", "busybox", "sh", "-c",
                 "echo started; echo oops >&2; trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done"])
        .ok()
        .trimmed()
        .to_string();
    assert_eq!(id.len(), 64);
    env.eventually("logs", || {
        env.berth(&["logs", "web"]).stdout.contains("started")
    });
    let ps = env.berth(&["ps"]).ok().stdout;
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id[..12]), "{row}");
    assert!(
        row.contains("busybox") && row.contains("Up ") && row.ends_with("web"),
        "{row}"
    );
    assert_eq!(env.berth(&["ps", "-q"]).ok().trimmed(), &id[..12]);
    assert_eq!(env.berth(&["ps", "-q", "--no-trunc"]).ok().trimmed(), id);
    let o = env
        .berth(&["ps", "-q", "--filter", "label=tier=front"])
        .ok();
    assert_eq!(o.trimmed(), &id[..12]);
    // logs: streams and --tail, -t
    let o = env.berth(&["logs", "web"]).ok();
    assert_eq!(o.stdout, "started\n");
    assert_eq!(o.stderr, "oops\n");
    let o = env.berth(&["logs", "-t", "--tail", "1", "web"]).ok();
    assert!(o.stderr.contains("Z oops"), "{o:?}");
    assert_eq!(o.stdout, "");
    // rm refuses a running container
    let o = env.berth(&["rm", "web"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("You cannot remove a running container"),
        "{o:?}"
    );
    // stop: SIGTERM runs the trap
    let o = env.berth(&["stop", "-t", "5", "web"]).ok();
    assert_eq!(o.trimmed(), "web");
    assert!(env.berth(&["logs", "web"]).stdout.contains("bye"));
    let ps = env.berth(&["ps", "-a"]).ok().stdout;
    assert!(ps.contains("Exited (0)"), "{ps}");
    assert_eq!(env.berth(&["ps", "-q"]).ok().trimmed(), "");
    env.berth(&["rm", "web"]).ok();
    let o = env.berth(&["rm", "web"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("No such container: web"), "{o:?}");
}

#[test]
fn stop_kills_after_timeout_and_kill_signals() {
    let env = Env::new().with_busybox();
    // sh as pid 1 ignores SIGTERM without a trap: stop must fall back to SIGKILL.
    env.berth(&[
        "run", "-d", "--name", "stubborn", "busybox", "sleep", "1000",
    ])
    .ok();
    let t = std::time::Instant::now();
    env.berth(&["stop", "-t", "1", "stubborn"]).ok();
    assert!(t.elapsed() < std::time::Duration::from_secs(8));
    let code = env
        .berth(&["inspect", "--format", "{{.State.ExitCode}}", "stubborn"])
        .ok();
    assert_eq!(code.trimmed(), "137");
    // Like Docker's, a container's init only gets the signals it handles.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "trapper",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 12' USR1; while true; do sleep 0.1; done",
    ])
    .ok();
    env.berth(&["kill", "-s", "USR1", "trapper"]).ok();
    let o = env.berth(&["wait", "trapper"]).ok();
    assert_eq!(o.trimmed(), "12");
    env.berth(&["start", "stubborn"]).ok();
    env.berth(&["kill", "stubborn"]).ok();
    assert_eq!(env.berth(&["wait", "stubborn"]).ok().trimmed(), "137");
    let o = env.berth(&["kill", "stubborn"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("is not running"), "{o:?}");
    // rm -f kills a running one
    env.berth(&["run", "-d", "--name", "victim", "busybox", "sleep", "1000"])
        .ok();
    env.berth(&["rm", "-f", "victim"]).ok();
    assert_eq!(
        env.berth(&["ps", "-aq", "--filter", "name=victim"])
            .ok()
            .trimmed(),
        ""
    );
}

#[test]
fn create_start_attach_restart_rename() {
    let env = Env::new().with_busybox();
    let id = env
        .berth(&[
            "create",
            "--name",
            "c1",
            "busybox",
            "sh",
            "-c",
            "echo run-$((RANDOM%1000))",
        ])
        .ok()
        .trimmed()
        .to_string();
    assert_eq!(id.len(), 64);
    let ps = env.berth(&["ps", "-a"]).ok().stdout;
    assert!(ps.contains("Created"), "{ps}");
    let o = env.berth(&["start", "-a", "c1"]).ok();
    assert!(o.stdout.starts_with("run-"), "{o:?}");
    env.berth(&["restart", "c1"]).ok();
    env.berth(&["wait", "c1"]).ok();
    let logs = env.berth(&["logs", "c1"]).ok().stdout;
    assert_eq!(logs.lines().count(), 2, "{logs}");
    env.berth(&["rename", "c1", "c2"]).ok();
    assert!(env.berth(&["inspect", "c2"]).code == 0);
    assert_eq!(env.berth(&["inspect", "--type", "container", "c1"]).code, 1);
    // a taken name
    let o = env.berth(&["create", "--name", "c2", "busybox", "true"]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(o.stderr.contains("is already in use by container"), "{o:?}");
    // random names look like docker's
    env.berth(&["create", "busybox", "true"]).ok();
    let names = env
        .berth(&["ps", "-a", "--format", "{{.Names}}"])
        .ok()
        .stdout;
    assert!(
        names.lines().any(|n| n != "c2" && n.contains('_')),
        "{names}"
    );
}

#[test]
fn stdin_is_forwarded_with_i() {
    let env = Env::new().with_busybox();
    let o = env.berth_stdin(
        &["run", "--rm", "-i", "busybox", "sh", "-c", "tr a-z A-Z"],
        b"shout\n",
    );
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "SHOUT\n");
}

#[test]
fn exec_top_pause_inspect_nsenter() {
    let env = Env::new().with_busybox();
    env.berth(&["run", "-d", "--name", "box", "busybox", "sleep", "1000"])
        .ok();
    let o = env.berth(&["exec", "box", "echo", "in", "box"]).ok();
    assert_eq!(o.stdout, "in box\n");
    let o = env
        .berth(&[
            "exec",
            "-u",
            "alice",
            "-w",
            "/tmp",
            "-e",
            "X=42",
            "box",
            "sh",
            "-c",
            "id -u; pwd; echo $X",
        ])
        .ok();
    assert_eq!(o.stdout, "1000\n/tmp\n42\n");
    let o = env.berth(&["exec", "box", "sh", "-c", "exit 7"]);
    assert_eq!(o.code, 7);
    // an exec that cannot start: docker's message, on the (multiplexed) stream, and its code
    let o = env.berth(&["exec", "-u", "nosuch", "box", "id"]);
    assert_eq!(o.code, 126, "{o:?}");
    assert!(
        o.stdout
            .contains("unable to find user nosuch: no matching entries in passwd file"),
        "{o:?}"
    );
    let o = env.berth(&["exec", "box", "nosuchcmd"]);
    assert_eq!(o.code, 127, "{o:?}");
    assert!(
        o.stdout.contains("OCI runtime exec failed") && o.stdout.contains("nosuchcmd"),
        "{o:?}"
    );
    let o = env.berth_stdin(&["exec", "-i", "box", "cat"], b"piped\n");
    assert_eq!(o.stdout, "piped\n");
    env.berth(&[
        "exec",
        "-d",
        "box",
        "sh",
        "-c",
        "sleep 1 && touch /tmp/detached",
    ])
    .ok();
    env.eventually("detached exec", || {
        env.berth(&["exec", "box", "ls", "/tmp/detached"]).code == 0
    });
    // top
    let o = env.berth(&["top", "box"]).ok();
    assert!(o.stdout.lines().next().unwrap().contains("PID"), "{o:?}");
    assert!(o.stdout.contains("sleep 1000"), "{o:?}");
    // sizes: what the container wrote (nothing yet: 0B, as docker says), and with its image
    let o = env
        .berth(&["ps", "-s", "--format", "{{.Size}}", "-f", "name=box"])
        .ok();
    assert!(o.trimmed().starts_with("0B (virtual "), "{o:?}");
    env.berth(&[
        "exec",
        "box",
        "dd",
        "if=/dev/zero",
        "of=/tmp/fill",
        "bs=1024",
        "count=100",
    ])
    .ok();
    let o = env
        .berth(&["ps", "-s", "--format", "{{.Size}}", "-f", "name=box"])
        .ok();
    assert!(o.trimmed().starts_with("102kB (virtual "), "{o:?}");
    let o = env
        .berth(&[
            "inspect",
            "--size",
            "--format",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "box",
        ])
        .ok();
    let n: Vec<i64> = o.trimmed().split(' ').map(|x| x.parse().unwrap()).collect();
    assert!(n[0] == 100 * 1024 && n[1] > n[0], "{o:?}");
    // with ps's own options, its columns, cut to the container's processes
    let o = env.berth(&["top", "box", "aux"]).ok();
    let mut lines = o.stdout.lines();
    let head: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&head[..4], ["USER", "PID", "%CPU", "%MEM"], "{o:?}");
    let rows: Vec<&str> = lines.collect();
    assert!(rows.iter().any(|l| l.ends_with("sleep 1000")), "{o:?}");
    assert!(!o.stdout.contains("berth daemon"), "{o:?}");
    // threads' lines (`-`) go with their process; a column renamed PID must be the pid
    let o = env
        .berth(&["top", "box", "-e", "-m", "-o", "pid,comm"])
        .ok();
    assert!(o.stdout.contains("sleep"), "{o:?}");
    assert!(
        o.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["-", "-"]),
        "{o:?}"
    );
    let o = env.berth(&["top", "box", "-o", "ppid=PID,comm"]);
    assert!(
        o.code != 0 && o.stderr.contains("specifying \"ppid=PID\" is not allowed"),
        "{o:?}"
    );
    let o = env.berth(&["top", "box", "-o", "pid,comm"]).ok();
    let cols: Vec<Vec<&str>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(cols[0], ["PID", "COMMAND"], "{o:?}");
    assert!(cols[1..].iter().all(|r| r.len() == 2), "{o:?}");
    assert!(cols[1..].iter().any(|r| r[1] == "sleep"), "{o:?}");
    // pause / unpause
    env.berth(&["pause", "box"]).ok();
    let st = env
        .berth(&["inspect", "--format", "{{.State.Status}}", "box"])
        .ok();
    assert_eq!(st.trimmed(), "paused");
    assert!(env.berth(&["ps"]).ok().stdout.contains("(Paused)"));
    env.berth(&["unpause", "box"]).ok();
    assert_eq!(env.berth(&["exec", "box", "true"]).code, 0);
    // inspect --format and nsenter through the host pid
    let pid = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "box"])
        .ok();
    let pid = pid.trimmed().to_string();
    assert!(pid.parse::<i32>().unwrap() > 1);
    let o = std::process::Command::new("nsenter")
        .args([
            "--target",
            &pid,
            "--mount",
            "--uts",
            "--ipc",
            "--net",
            "--pid",
            "--",
            "/bin/busybox",
            "hostname",
        ])
        .output()
        .unwrap();
    let hostname = env
        .berth(&["inspect", "--format", "{{.Config.Hostname}}", "box"])
        .ok();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        hostname.trimmed()
    );
    let o = env
        .berth(&[
            "inspect",
            "--format",
            "{{.Name}} {{json .Config.Cmd}}",
            "box",
        ])
        .ok();
    assert_eq!(o.trimmed(), r#"/box ["sleep","1000"]"#);
    let o = env.berth(&["inspect", "--format", "{{.Nope", "box"]);
    assert_ne!(o.code, 0);
    // the fields dockerd always writes are there, unset or not, as Go's zero values
    let fields = "{{.Config.User}}|{{.Config.WorkingDir}}|{{json .Config.Entrypoint}}|{{json .HostConfig.Binds}}|{{.HostConfig.Privileged}}";
    let o = env.berth(&["inspect", "--format", fields, "box"]).ok();
    assert_eq!(o.trimmed(), "||null|null|false");
    let o = env
        .berth(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Cmd}}|{{.ContainerConfig.User}}|{{.Container}}",
            "busybox",
        ])
        .ok();
    assert!(o.trimmed().ends_with("||"), "{o:?}");
    // the docker CLI, which reads them into its own types, prints them as it would
    if let Some(o) = env.docker(&["inspect", "--format", fields, "box"]) {
        assert_eq!(o.ok().trimmed(), "||null|null|false");
    }
}

#[test]
fn isolation_matches_docker_defaults() {
    let env = Env::new().with_busybox();
    let o = env
        .berth(&["run", "--rm", "busybox", "sh", "-c",
                 "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; echo pid1=$(cat /proc/1/comm); ls /sys/firmware 2>&1 | wc -l; touch /sys/x 2>&1; ip link 2>/dev/null | grep -c '^[0-9]'; ls /dev | tr '\\n' ' '"])
        .ok();
    let out = o.stdout;
    // Docker's default capability set is 0x00000000a80425fb.
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("pid1=sh"), "{out}");
    assert!(out.contains("Read-only file system"), "{out}");
    for d in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
    ] {
        assert!(out.contains(d), "/dev lacks {d}: {out}");
    }
    // A syscall Docker's profile refuses.
    let o = env.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "mount -t tmpfs none /mnt",
    ]);
    assert_ne!(o.code, 0);
}

#[test]
fn auto_removed_containers_that_exit_while_the_daemon_is_away_are_removed() {
    let mut env = Env::new().with_busybox();
    env.berth(&[
        "run", "-d", "--rm", "--name", "brief", "busybox", "sleep", "1",
    ])
    .ok();
    let edited = env
        .berth(&[
            "run", "-d", "--rm", "--name", "edited", "busybox", "sleep", "1000",
        ])
        .ok()
        .trimmed()
        .to_string();
    let pid: i32 = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "edited"])
        .ok()
        .trimmed()
        .parse()
        .unwrap();
    // Never started: an auto-remove container stays until it has run.
    env.berth(&["create", "--rm", "--name", "waiting", "busybox", "true"])
        .ok();
    env.kill_daemon();
    // `brief` exits while no daemon runs; `edited` is made to look like a container whose
    // exit the daemon recorded before a crash cut its removal short.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let record = env
        .data_root
        .join("containers")
        .join(&edited)
        .join("config.v2.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    v["state"]["status"] = "exited".into();
    v["state"]["pid"] = 0.into();
    std::fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    env.start_daemon();
    env.eventually("the auto-removed containers are removed", || {
        env.berth(&["ps", "-a", "--format", "{{.Names}}"])
            .ok()
            .stdout
            == "waiting\n"
    });
    assert!(!env.data_root.join("containers").join(&edited).exists());
}

#[test]
fn daemon_kill_keeps_containers_running() {
    let mut env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 2; echo after; exit 5",
    ])
    .ok();
    env.berth(&["run", "-d", "--name", "steady", "busybox", "sleep", "1000"])
        .ok();
    let pid_before = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "steady"])
        .ok()
        .stdout;
    env.kill_and_restart_daemon();
    let pid_after = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "steady"])
        .ok()
        .stdout;
    assert_eq!(pid_before, pid_after);
    assert_eq!(
        env.berth(&["exec", "steady", "echo", "alive"]).ok().stdout,
        "alive\n"
    );
    // the one that exits while no daemon... or after the restart: its exit code is found
    let o = env.berth(&["wait", "survivor"]).ok();
    assert_eq!(o.trimmed(), "5");
    let logs = env.berth(&["logs", "survivor"]).ok().stdout;
    assert_eq!(logs, "before\nafter\n");
    env.berth(&["stop", "-t", "1", "steady"]).ok();
}

#[test]
fn exec_gets_the_containers_capabilities_and_seccomp() {
    let env = Env::new().with_busybox();
    env.berth(&["run", "-d", "--name", "iso", "busybox", "sleep", "1000"])
        .ok();
    let o = env
        .berth(&[
            "exec",
            "iso",
            "grep",
            "-E",
            "^(CapEff|CapBnd|Seccomp):",
            "/proc/self/status",
        ])
        .ok();
    assert!(o.stdout.contains("CapEff:\t00000000a80425fb"), "{o:?}");
    assert!(o.stdout.contains("CapBnd:\t00000000a80425fb"), "{o:?}");
    assert!(o.stdout.contains("Seccomp:\t2"), "{o:?}");
}

#[test]
fn network_modes_none_host_and_container() {
    let env = Env::new().with_busybox();
    // An interface only the daemon's (the "host's") namespace has.
    let st = env
        .in_daemon_netns(&["ip", "link", "add", "berthdummy0", "type", "bridge"])
        .status()
        .unwrap();
    assert!(st.success());
    let ifaces = |net: &str| {
        env.berth(&[
            "run",
            "--rm",
            "--network",
            net,
            "busybox",
            "ls",
            "/sys/class/net",
        ])
        .ok()
        .stdout
    };
    assert_eq!(ifaces("none"), "lo\n");
    assert!(ifaces("host").contains("berthdummy0"), "{}", ifaces("host"));
    // The host's resolv.conf as it is (loopback resolvers included), as Docker gives it.
    let rc = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "host",
            "busybox",
            "cat",
            "/etc/resolv.conf",
        ])
        .ok()
        .stdout;
    assert_eq!(rc, std::fs::read_to_string("/etc/resolv.conf").unwrap());
    assert!(!ifaces("default").contains("berthdummy0"));
    // container:<name> shares the other container's namespace.
    env.berth(&[
        "run", "-d", "--name", "netowner", "busybox", "sleep", "1000",
    ])
    .ok();
    let ns = |args: &[&str]| env.berth(args).ok().stdout;
    let owner = ns(&["exec", "netowner", "readlink", "/proc/self/ns/net"]);
    let joined = ns(&[
        "run",
        "--rm",
        "--network",
        "container:netowner",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(owner, joined);
    let other = ns(&["run", "--rm", "busybox", "readlink", "/proc/self/ns/net"]);
    assert_ne!(owner, other);
    let mode = env
        .berth(&[
            "inspect",
            "--format",
            "{{.HostConfig.NetworkMode}}",
            "netowner",
        ])
        .ok();
    assert_eq!(mode.trimmed(), "default");
    // Bad input (found at start, as dockerd does): a network that does not exist, a
    // container that does not run.
    let o = env.berth(&["run", "--rm", "--network", "nonet", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("network nonet not found"), "{o:?}");
    // As dockerd does, a --rm container that failed to start is removed.
    let ps = env.berth(&["ps", "-a", "--format", "{{.Names}}"]).ok();
    assert_eq!(ps.trimmed(), "netowner", "{ps:?}");
    env.berth(&["create", "--name", "idle", "busybox", "true"])
        .ok();
    let o = env.berth(&[
        "run",
        "--rm",
        "--network",
        "container:idle",
        "busybox",
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("non running container"), "{o:?}");
    env.berth(&["rm", "-f", "netowner"]).ok();
}
