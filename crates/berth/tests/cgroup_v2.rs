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
