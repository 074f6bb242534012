//! Health checks (starting → healthy → unhealthy, the first probe at once, `ps` and
//! `inspect`) and the event stream (`events --since/--until/--filter`, Docker's JSON).

mod common;
use common::Env;
use serde_json::Value;
use std::time::{Duration, Instant};

fn field(env: &Env, name: &str, f: &str) -> String {
    env.berth(&["inspect", "-f", f, name])
        .ok()
        .trimmed()
        .to_string()
}

/// A field that may not be there yet (`State.Health` before the first start): empty then.
fn maybe(env: &Env, name: &str, f: &str) -> String {
    env.berth(&["inspect", "-f", f, name]).trimmed().to_string()
}

fn wait_for(env: &Env, what: &str, secs: u64, mut f: impl FnMut(&Env) -> bool) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f(env) {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_goes_from_starting_to_healthy_to_unhealthy() {
    let env = Env::new().with_busybox();
    let t0 = Instant::now();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "cat /tmp/ok",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--health-timeout",
        "2s",
        "busybox",
        "sh",
        "-c",
        "touch /tmp/ok; sleep 300",
    ])
    .ok();
    // The first probe runs at once: healthy well before a whole interval (1 s) passed twice.
    wait_for(&env, "healthy", 10, |env| {
        maybe(env, "hc", "{{.State.Health.Status}}") == "healthy"
    });
    assert!(
        t0.elapsed() < Duration::from_millis(1900),
        "{:?}",
        t0.elapsed()
    );
    let ps = env.berth(&["ps", "--format", "{{.Status}}"]).ok().stdout;
    assert!(ps.contains("(healthy)"), "{ps}");
    // Failing probes: unhealthy after 2 in a row, with their output in the log.
    env.berth(&["exec", "hc", "rm", "/tmp/ok"]).ok();
    wait_for(&env, "unhealthy", 10, |env| {
        maybe(env, "hc", "{{.State.Health.Status}}") == "unhealthy"
    });
    let h: Value =
        serde_json::from_str(&field(env_ref(&env), "hc", "{{json .State.Health}}")).unwrap();
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    let log = h["Log"].as_array().unwrap();
    assert!(log.len() <= 5 && !log.is_empty(), "{h}");
    let last = log.last().unwrap();
    assert_eq!(last["ExitCode"], 1, "{h}");
    assert!(
        last["Output"].as_str().unwrap().contains("No such file"),
        "{h}"
    );
    let ps = env.berth(&["ps", "--format", "{{.Status}}"]).ok().stdout;
    assert!(ps.contains("(unhealthy)"), "{ps}");
    // Healthy again, and the image's HEALTHCHECK applies without flags; --no-healthcheck
    // turns it off.
    env.berth(&["exec", "hc", "touch", "/tmp/ok"]).ok();
    wait_for(&env, "healthy again", 10, |env| {
        maybe(env, "hc", "{{.State.Health.Status}}") == "healthy"
    });
    let ctx = env.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nHEALTHCHECK --interval=1s CMD true\nCMD [\"sleep\", \"300\"]\n",
    )
    .unwrap();
    env.berth(&["build", "-q", "-t", "checked", ctx.to_str().unwrap()])
        .ok();
    env.berth(&["run", "-d", "--name", "img", "checked"]).ok();
    wait_for(&env, "image check healthy", 10, |env| {
        maybe(env, "img", "{{.State.Health.Status}}") == "healthy"
    });
    env.berth(&["run", "-d", "--name", "off", "--no-healthcheck", "checked"])
        .ok();
    std::thread::sleep(Duration::from_millis(300));
    assert!(!field(&env, "off", "{{json .State}}").contains("Health"));
    env.berth(&["rm", "-f", "hc", "img", "off"]).ok();
}

fn env_ref(e: &Env) -> &Env {
    e
}

#[test]
fn events_stream_since_until_and_filters() {
    let env = Env::new().with_busybox();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let start = now() - 1;
    env.berth(&["run", "--name", "ev", "busybox", "true"]).ok();
    env.berth(&["network", "create", "evnet"]).ok();
    env.berth(&["volume", "create", "evvol"]).ok();
    env.berth(&["rm", "ev"]).ok();
    env.berth(&["tag", "busybox", "evtag:1"]).ok();
    env.berth(&["rmi", "evtag:1"]).ok();
    // a running container joins and leaves a network
    env.berth(&["run", "-d", "--name", "evrun", "busybox", "sleep", "100"])
        .ok();
    env.berth(&["network", "connect", "evnet", "evrun"]).ok();
    env.berth(&["network", "disconnect", "evnet", "evrun"]).ok();
    env.berth(&["rm", "-f", "evrun"]).ok();
    let until = now() + 1;
    let o = env
        .berth(&[
            "events",
            "--since",
            &start.to_string(),
            "--until",
            &until.to_string(),
            "--format",
            "{{json .}}",
        ])
        .ok();
    let evs: Vec<Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<String> = evs
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["Type"].as_str().unwrap(),
                e["Action"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "container create",
        "container attach",
        "network connect",
        "container start",
        "network disconnect",
        "container die",
        "container destroy",
        "network create",
        "volume create",
        "image tag",
        "image untag",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} not in {actions:?}"
        );
    }
    // in docker's order: the network joined before the start, left after the death
    let at = |a: &str| actions.iter().position(|x| x == a).unwrap();
    assert!(at("network connect") < at("container start"), "{actions:?}");
    assert!(
        at("container die") < at("network disconnect"),
        "{actions:?}"
    );
    let connect = evs.iter().find(|e| e["Action"] == "connect").unwrap();
    assert_eq!(connect["Actor"]["Attributes"]["name"], "bridge");
    for action in ["connect", "disconnect"] {
        assert!(
            evs.iter()
                .any(|e| e["Action"] == action && e["Actor"]["Attributes"]["name"] == "evnet"),
            "{action} evnet not in {actions:?}"
        );
    }
    let die = evs.iter().find(|e| e["Action"] == "die").unwrap();
    assert_eq!(die["Actor"]["Attributes"]["name"], "ev");
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "0");
    assert_eq!(die["Actor"]["Attributes"]["image"], "busybox");
    // Filters.
    let o = env
        .berth(&[
            "events",
            "--since",
            &start.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            "type=network",
        ])
        .ok();
    assert!(
        o.stdout.contains("network create")
            && o.stdout
                .lines()
                .all(|l| l.split_whitespace().nth(1) == Some("network")),
        "{o:?}"
    );
    // Live: a follower sees what happens after it started.
    let mut follower = common::Streaming::spawn({
        let mut c = env.cmd(&[
            "events",
            "--filter",
            "event=start",
            "--format",
            "{{.Actor.Attributes.name}}",
        ]);
        c.stdout(std::process::Stdio::piped());
        c
    });
    std::thread::sleep(Duration::from_millis(300));
    env.berth(&["run", "--rm", "--name", "live1", "busybox", "true"])
        .ok();
    assert!(follower.wait_line(10, |l| l.trim() == "live1").is_some());
    // The docker CLI reads the same stream.
    if let Some(o) = env.docker(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=ev",
    ]) {
        assert_eq!(o.code, 0, "{o:?}");
        assert!(o.stdout.contains("container die"), "{o:?}");
    }
    env.berth(&["network", "rm", "evnet"]).ok();
    env.berth(&["volume", "rm", "evvol"]).ok();
}
