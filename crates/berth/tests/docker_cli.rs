//! End-to-end: the real docker CLI (Debian's docker.io) against berth's Engine API.
//! Each test is skipped, with a note, where the docker CLI is not installed.

mod common;
use common::Env;

macro_rules! docker {
    ($env:expr, $($arg:expr),+) => {
        match $env.docker(&[$($arg),+]) {
            Some(o) => o,
            None => return,
        }
    };
}

#[test]
fn docker_cli_images() {
    let env = Env::new();
    let tar = env.busybox_tar();
    let o = docker!(env, "import", "-c", "CMD [\"sh\"]", &tar, "busybox");
    assert_eq!(o.code, 0, "{o:?}");
    assert!(o.stdout.trim().starts_with("sha256:"), "{o:?}");
    let o = docker!(env, "images").ok();
    assert!(
        o.stdout.contains("REPOSITORY") && o.stdout.contains("busybox"),
        "{o:?}"
    );
    docker!(env, "tag", "busybox", "other:1").ok();
    let o = docker!(env, "image", "inspect", "--format", "{{.Id}}", "other:1").ok();
    assert!(o.stdout.starts_with("sha256:"));
    let o = docker!(env, "history", "busybox").ok();
    assert!(o.stdout.contains("IMAGE"), "{o:?}");
    let o = docker!(env, "rmi", "other:1").ok();
    assert!(o.stdout.contains("Untagged: other:1"), "{o:?}");
    let o = docker!(env, "rmi", "nothere");
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("No such image"), "{o:?}");
}

#[test]
fn docker_cli_containers() {
    let env = Env::new().with_busybox();
    let o = docker!(env, "run", "--rm", "busybox", "echo", "hello");
    assert_eq!(o.code, 0, "{o:?}");
    assert_eq!(o.stdout, "hello\n");
    let o = docker!(env, "run", "--rm", "busybox", "sh", "-c", "exit 4");
    assert_eq!(o.code, 4, "{o:?}");
    let o = docker!(
        env,
        "run",
        "-d",
        "--name",
        "d1",
        "busybox",
        "sh",
        "-c",
        "echo up; sleep 1000"
    );
    assert_eq!(o.code, 0, "{o:?}");
    env.eventually("logs", || {
        env.docker(&["logs", "d1"])
            .map(|o| o.stdout.contains("up"))
            .unwrap_or(false)
    });
    let o = docker!(env, "ps").ok();
    assert!(o.stdout.contains("d1") && o.stdout.contains("Up "), "{o:?}");
    let o = docker!(env, "exec", "d1", "sh", "-c", "echo exec-ok; exit 3");
    assert_eq!(o.code, 3, "{o:?}");
    assert_eq!(o.stdout, "exec-ok\n");
    let o = docker!(
        env,
        "inspect",
        "--format",
        "{{.State.Running}} {{.Name}}",
        "d1"
    )
    .ok();
    assert_eq!(o.stdout.trim(), "true /d1");
    let o = docker!(env, "top", "d1").ok();
    assert!(o.stdout.contains("sleep 1000"), "{o:?}");
    docker!(env, "pause", "d1").ok();
    docker!(env, "unpause", "d1").ok();
    docker!(env, "rename", "d1", "d2").ok();
    docker!(env, "stop", "-t", "1", "d2").ok();
    let o = docker!(env, "ps", "-a").ok();
    assert!(o.stdout.contains("Exited (137)"), "{o:?}");
    docker!(env, "rm", "d2").ok();
    let o = docker!(env, "rm", "d2");
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("No such container: d2"), "{o:?}");
    let o = docker!(env, "info").ok();
    assert!(o.stdout.contains("Storage Driver: overlay2"), "{o:?}");
    let o = docker!(env, "version").ok();
    assert!(o.stdout.contains("Server"), "{o:?}");
}
