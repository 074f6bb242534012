//! End-to-end: the Docker SDK for Python (docker-py) against berth's Engine API.
//! Skipped, with a note, where the `docker` Python package is not installed.

mod common;
use common::Env;
use std::process::Command;

const SCRIPT: &str = r#"
import sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
assert c.ping()
print("version", c.version()["ApiVersion"])
print("images", [t for i in c.images.list() for t in i.tags])
print("run", c.containers.run("busybox", ["echo", "hi from docker-py"], remove=True).decode().strip())
ct = c.containers.run("busybox", ["sh", "-c", "echo started; sleep 100"], detach=True, name="py1")
ct.reload()
print("status", ct.status, ct.attrs["State"]["Pid"] > 0)
r = ct.exec_run(["sh", "-c", "echo exec; exit 3"])
print("exec", r.exit_code, r.output.decode().strip())
print("list", [x.name for x in c.containers.list()])
ct.stop(timeout=1)
ct.reload()
print("stopped", ct.status, ct.attrs["State"]["ExitCode"])
print("logs", ct.logs().decode().strip())
ct.remove()
try:
    c.containers.get("py1")
    print("still there")
except docker.errors.NotFound as e:
    print("gone", e.response.status_code)
"#;

/// Runs `script` with docker-py against a fresh daemon that has busybox; its output, or
/// `None` (with a note) where the docker Python package is not installed.
fn run_script(script: &str) -> Option<String> {
    let has = Command::new("python3")
        .args(["-c", "import docker"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has {
        eprintln!("note: the docker Python package is not installed; docker-py checks are skipped");
        return None;
    }
    let env = Env::new().with_busybox();
    let o = Command::new("python3")
        .args(["-c", script, &env.host()])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    Some(out)
}

#[test]
fn docker_py_drives_berth() {
    let Some(out) = run_script(SCRIPT) else {
        return;
    };
    let expect = [
        "images ['busybox:latest']",
        "run hi from docker-py",
        "status running True",
        "exec 3 exec",
        "list ['py1']",
        "stopped exited 137",
        "logs started",
        "gone 404",
    ];
    for e in expect {
        assert!(out.lines().any(|l| l == e), "missing {e:?} in:\n{out}");
    }
}

const BUILD_SCRIPT: &str = r#"
import io, sys, docker
c = docker.DockerClient(base_url=sys.argv[1])
df = b'FROM busybox\nARG WHO=nobody\nRUN echo "built for $WHO" > /who\nCMD ["cat", "/who"]\n'
img, logs = c.images.build(fileobj=io.BytesIO(df), tag="pybuilt:1", buildargs={"WHO": "py"})
print("tags", img.tags)
print("steps", sum(1 for l in logs if "stream" in l and l["stream"].startswith("Step ")))
print("run", c.containers.run("pybuilt:1", remove=True).decode().strip())
img2, logs = c.images.build(fileobj=io.BytesIO(df), tag="pybuilt:1", buildargs={"WHO": "py"})
print("same", img2.id == img.id, sum(1 for l in logs if "Using cache" in l.get("stream", "")))
try:
    c.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 4\n"))
    print("no error")
except docker.errors.BuildError as e:
    print("error", e.msg)
"#;

#[test]
fn docker_py_builds_images() {
    let Some(out) = run_script(BUILD_SCRIPT) else {
        return;
    };
    for want in [
        "tags ['pybuilt:1']",
        "steps 4",
        "run built for py",
        "same True 3",
        "error The command '/bin/sh -c exit 4' returned a non-zero code: 4",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}
