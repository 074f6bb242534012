//! Logs that never fill the disk: per-container `--log-opt max-size/max-file`, the `local`
//! driver's bounded default, `none`, and bad log options.

mod common;
use common::Env;

fn log_bytes(env: &Env, name: &str) -> u64 {
    let id = env
        .berth(&["inspect", "-f", "{{.Id}}", name])
        .ok()
        .trimmed()
        .to_string();
    let dir = env.data_root.join("containers").join(&id);
    std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("-json.log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn log_files_stay_within_their_bounds() {
    let env = Env::new().with_busybox();
    // ~200 KB of output, at most 2 files of 4 KiB kept.
    env.berth(&[
        "run", "--name", "chatty", "--log-opt", "max-size=4k", "--log-opt", "max-file=2",
        "busybox", "sh", "-c", "i=0; while [ $i -lt 4000 ]; do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done",
    ])
    .ok();
    let bytes = log_bytes(&env, "chatty");
    assert!(bytes <= 2 * 4096 + 1024, "{bytes} bytes of logs kept");
    let logs = env.berth(&["logs", "--tail", "1", "chatty"]).ok().stdout;
    assert!(logs.starts_with("line-3999-"), "{logs}");
    // `local`: bounded by default, readable by logs.
    env.berth(&[
        "run",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "busybox",
        "echo",
        "hello-local",
    ])
    .ok();
    assert_eq!(env.berth(&["logs", "loc"]).ok().stdout, "hello-local\n");
    let cfg = env
        .berth(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", "loc"])
        .ok()
        .stdout;
    assert!(
        cfg.contains("\"max-size\":\"20m\"") && cfg.contains("\"max-file\":\"5\""),
        "{cfg}"
    );
    // `none`: nothing kept, and logs says so.
    env.berth(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "x",
    ])
    .ok();
    let o = env.berth(&["logs", "quiet"]);
    assert_ne!(o.code, 0, "{o:?}");
    assert!(o.stderr.contains("does not support reading"), "{o:?}");
    // Bad drivers and options are refused.
    for (args, msg) in [
        (
            vec!["run", "--rm", "--log-driver", "syslogx", "busybox", "true"],
            "no log driver named 'syslogx'",
        ),
        (
            vec![
                "run",
                "--rm",
                "--log-opt",
                "max-size=lots",
                "busybox",
                "true",
            ],
            "invalid size",
        ),
        (
            vec!["run", "--rm", "--log-opt", "max-file=0", "busybox", "true"],
            "max-file",
        ),
        (
            vec!["run", "--rm", "--log-opt", "colour=blue", "busybox", "true"],
            "unknown log opt",
        ),
    ] {
        let o = env.berth(&args);
        assert_eq!(o.code, 125, "{args:?}: {o:?}");
        assert!(o.stderr.contains(msg), "{args:?}: {o:?}");
    }
}
