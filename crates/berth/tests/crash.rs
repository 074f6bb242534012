//! Crash safety of the store: `kill -9` of the daemon at random moments of `load`, `import`,
//! `commit` and `rmi`, 50 times. Each time the daemon must come back, `system check` must find
//! nothing broken, and every image `images` lists must be whole.

mod common;
use common::Env;
use std::process::Stdio;
use std::time::Duration;

/// Every listed image inspects, and its layers are all there (`system check` is clean).
fn assert_consistent(env: &Env, round: usize, op: &str) {
    let r = env.berth(&["system", "check"]);
    assert_eq!(
        r.code,
        0,
        "round {round} ({op}): system check after a kill -9: {r:#?}\n{}",
        env.daemon_log()
    );
    let ids = env.berth(&["images", "-aq", "--no-trunc"]).ok().stdout;
    for id in ids.lines().filter(|l| !l.is_empty()) {
        env.berth(&["image", "inspect", id]).ok();
        env.berth(&["history", id]).ok();
    }
}

#[test]
fn kill_9_during_load_import_commit_and_rmi() {
    let mut env = Env::new().with_busybox();
    // Material big enough that each operation takes a while.
    env.berth(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3 4 5 6; do dd if=/dev/urandom of=/f$i bs=1M count=8 2>/dev/null; done",
    ])
    .ok();
    env.berth(&["commit", "src", "fat:base"]).ok();
    let archive = env.dir.path().join("fat.tar").display().to_string();
    env.berth(&["save", "-o", &archive, "fat:base"]).ok();
    let export = env.dir.path().join("src.tar").display().to_string();
    env.berth(&["export", "-o", &export, "src"]).ok();
    let ops = ["load", "import", "commit", "rmi"];
    for round in 0..50 {
        let op = ops[round % ops.len()];
        // Start from a known state for the operation.
        match op {
            "load" => {
                let _ = env.berth(&["rmi", "-f", "fat:base"]);
            }
            "rmi" if env.berth(&["image", "inspect", "fat:base"]).code != 0 => {
                env.berth(&["load", "-i", &archive]).ok();
            }
            _ => {}
        }
        let args: Vec<String> = match op {
            "load" => vec!["load".into(), "-i".into(), archive.clone()],
            "import" => vec!["import".into(), export.clone(), format!("imp:{round}")],
            "commit" => vec!["commit".into(), "src".into(), format!("com:{round}")],
            _ => vec!["rmi".into(), "-f".into(), "fat:base".into()],
        };
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = env
            .cmd(&argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = rand::random::<u64>() % 400;
        std::thread::sleep(Duration::from_millis(delay));
        env.kill_daemon();
        let _ = child.wait();
        env.start_daemon();
        assert_consistent(&env, round, op);
    }
    // Whatever survived still runs.
    let ids = env.berth(&["images", "-q"]).ok().stdout;
    for id in ids.lines().take(3) {
        env.berth(&["run", "--rm", id, "true"]).ok();
    }
}
