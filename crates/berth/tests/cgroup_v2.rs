//! End-to-end: a daemon that sees a pure cgroup v2 host (its own mount namespace, where
//! `/sys/fs/cgroup` is the unified hierarchy). The hybrid host of the other tests exercises the
//! v1 paths; this one exercises v2: cgroups per container under the parent, the v2 freezer,
//! and their removal.

mod common;
use common::Env;

#[test]
fn containers_run_pause_and_clean_up_on_cgroup_v2() {
    let env = Env::with_cgroup_v2().with_busybox();
    let info = env.berth(&["info"]).ok().stdout;
    assert!(info.contains("Cgroup Version: 2"), "{info}");
    let o = env
        .berth(&["run", "--rm", "busybox", "cat", "/proc/self/cgroup"])
        .ok();
    // Its own cgroup namespace: the unified entry is the namespace's root. (The kernel still
    // lists the host's v1 hierarchies here: they exist, whatever this namespace mounts.)
    assert!(o.stdout.lines().any(|l| l == "0::/"), "{}", o.stdout);
    env.berth(&["run", "-d", "--name", "v2box", "busybox", "sleep", "1000"])
        .ok();
    // The container's cgroup, as the host sees the unified hierarchy.
    let id = env.berth(&["inspect", "--format", "{{.Id}}", "v2box"]).ok();
    let host_cg = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .iter()
        .map(|root| {
            std::path::Path::new(root)
                .join(&env.cgroup_parent)
                .join(id.trimmed())
        })
        .find(|p| p.exists())
        .expect("the container's cgroup exists in the unified hierarchy");
    let procs = std::fs::read_to_string(host_cg.join("cgroup.procs")).unwrap();
    let pid = env
        .berth(&["inspect", "--format", "{{.State.Pid}}", "v2box"])
        .ok();
    assert!(procs.lines().any(|l| l == pid.trimmed()), "{procs}");
    env.berth(&["pause", "v2box"]).ok();
    let frozen = std::fs::read_to_string(host_cg.join("cgroup.freeze")).unwrap();
    assert_eq!(frozen.trim(), "1");
    env.berth(&["unpause", "v2box"]).ok();
    assert_eq!(
        env.berth(&["exec", "v2box", "echo", "thawed"]).ok().stdout,
        "thawed\n"
    );
    env.berth(&["rm", "-f", "v2box"]).ok();
    env.eventually("the cgroup to go", || !host_cg.exists());
}

/// Limits on the v2 path: what the unified hierarchy offers is used (its files are written),
/// and a limit whose controller the hierarchy lacks (here the v1 hierarchies hold them) is
/// refused at start with the reason, never silently dropped.
#[test]
fn limits_on_cgroup_v2() {
    let env = Env::with_cgroup_v2().with_busybox();
    let controllers = std::fs::read_to_string("/sys/fs/cgroup/unified/cgroup.controllers")
        .or_else(|_| std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers"))
        .unwrap_or_default();
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    let o = env.berth(&[
        "run",
        "--rm",
        "-m",
        "32m",
        "--pids-limit",
        "20",
        "busybox",
        "cat",
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/pids.max",
    ]);
    if has("memory") && has("pids") {
        assert_eq!(o.code, 0, "{o:?}");
        assert_eq!(o.stdout, format!("{}\n20\n", 32 << 20));
    } else {
        assert_ne!(o.code, 0, "{o:?}");
        assert!(
            o.stderr.to_lowercase().contains("memory") || o.stderr.to_lowercase().contains("pids"),
            "{o:?}"
        );
        assert_eq!(env.berth(&["ps", "-aq"]).ok().trimmed(), "");
    }
    // Without limits, stats still read the unified hierarchy (cpu.stat is always there).
    env.berth(&["run", "-d", "--name", "v2s", "busybox", "sleep", "300"])
        .ok();
    let o = env
        .berth(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.CPUPerc}}",
            "v2s",
        ])
        .ok();
    assert!(o.stdout.starts_with("v2s "), "{o:?}");
    env.berth(&["rm", "-f", "v2s"]).ok();
}
