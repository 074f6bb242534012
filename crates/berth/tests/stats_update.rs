//! `stats` read from the cgroup and `update` of a running container's limits and policy.

mod common;
use common::Env;

fn field(env: &Env, name: &str, f: &str) -> String {
    env.berth(&["inspect", "-f", f, name])
        .ok()
        .trimmed()
        .to_string()
}

/// The container's memory cgroup file `f` (v1 memory hierarchy, or v2).
fn memory_file(env: &Env, id: &str, v1: &str, v2: &str) -> String {
    let parent = &env.cgroup_parent;
    for p in [
        format!("/sys/fs/cgroup/memory/{parent}/{id}/{v1}"),
        format!("/sys/fs/cgroup/{parent}/{id}/{v2}"),
    ] {
        if let Ok(s) = std::fs::read_to_string(&p) {
            return s.trim().to_string();
        }
    }
    panic!("no memory cgroup file for {id}");
}

#[test]
fn stats_show_usage_and_limits_and_update_changes_them_live() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "st",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "sleep 300 & sleep 300 & wait",
    ])
    .ok();
    let o = env.berth(&["stats", "--no-stream", "st"]).ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("CONTAINER ID") && lines[0].contains("MEM USAGE / LIMIT"),
        "{o:?}"
    );
    assert!(
        lines[1].contains("st") && lines[1].contains("/ 64MiB"),
        "{o:?}"
    );
    // PIDS: sh and two sleeps.
    assert!(lines[1].trim_end().ends_with('3'), "{o:?}");
    let o = env
        .berth(&[
            "stats",
            "--no-stream",
            "--format",
            "{{.Name}} {{.PIDs}} {{.MemPerc}}",
            "st",
        ])
        .ok();
    assert!(o.stdout.starts_with("st 3 "), "{o:?}");

    let id = field(&env, "st", "{{.Id}}");
    env.berth(&[
        "update",
        "--memory",
        "96m",
        "--memory-swap",
        "192m",
        "--pids-limit",
        "20",
        "--restart",
        "on-failure:2",
        "st",
    ])
    .ok();
    assert_eq!(
        memory_file(&env, &id, "memory.limit_in_bytes", "memory.max"),
        (96 << 20).to_string()
    );
    assert_eq!(
        field(
            &env,
            "st",
            "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}"
        ),
        format!("{} 20 on-failure", 96 << 20)
    );
    let o = env.berth(&["stats", "--no-stream", "st"]).ok();
    assert!(o.stdout.contains("/ 96MiB"), "{o:?}");
    // Bad values change nothing.
    let o = env.berth(&["update", "--memory", "1m", "st"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("Minimum memory limit"), "{o:?}");
    assert_eq!(
        memory_file(&env, &id, "memory.limit_in_bytes", "memory.max"),
        (96 << 20).to_string()
    );
    // The docker CLI reads the same stats.
    if let Some(o) = env.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "st",
    ]) {
        assert_eq!(o.code, 0, "{o:?}");
        assert_eq!(o.stdout.trim(), "st 3", "{o:?}");
    }
    env.berth(&["rm", "-f", "st"]).ok();
}
