//! End-to-end interoperability with Docker itself: archives made by a real dockerd (20.10)
//! load and run in berth and the other way round (save/load in Docker and OCI format,
//! export/import), and the real docker CLIs (28 in PATH, 20.10 at /usr/bin/docker) drive
//! berth's transfer features (save/load, export, commit, diff, cp, prunes, system df), with
//! their output compared to what the same CLI prints against dockerd.
//!
//! Each test is skipped, with a note, where dockerd (or the docker CLI) is not installed.

mod common;
use common::{docker_cli, Dockerd, Env, Out, DOCKER_20};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// Start a private dockerd, or end the test (passing) when there is none.
macro_rules! dockerd {
    () => {
        match Dockerd::start() {
            Some(d) => d,
            None => return,
        }
    };
}

/// End the test (passing) when the docker CLI is not installed.
macro_rules! need_docker_cli {
    () => {
        if !docker_cli() {
            return;
        }
    };
}

/// The docker CLIs to drive berth with: the one in PATH (28) and Docker 20.10's, if present.
fn clis() -> Vec<&'static str> {
    let mut v = vec!["docker"];
    if Path::new(DOCKER_20).exists() {
        v.push(DOCKER_20);
    } else {
        eprintln!("note: {DOCKER_20} is not installed; only the docker CLI in PATH is tested");
    }
    v
}

fn file(env: &Env, name: &str) -> String {
    env.dir.path().join(name).display().to_string()
}

/// The entry names of a tar file.
fn tar_names(path: &Path) -> BTreeSet<String> {
    let out = Command::new("tar").arg("-tf").arg(path).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

/// The entry names of an in-memory tar stream.
fn tar_stream_names(data: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(data);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

/// The script that makes the second layer of the test images: a file added, one deleted.
const LAYER2: &str = "echo two > /layer2 && rm /bin/vi";
/// What a container of such an image prints for `sh -c CHECK`.
const CHECK: &str = "cat /layer2; test -e /bin/vi || echo novi";

fn inspect(out: Out) -> String {
    out.ok().trimmed().to_string()
}

/// Stop both daemons; nothing of theirs is left behind: no mount below their directories, no
/// process naming them, no cgroup of theirs.
fn finish(env: Env, d: Option<Dockerd>) {
    let mut dirs = vec![env.dir.path().display().to_string()];
    let mut cgroups = vec![env.cgroup_parent.clone()];
    if let Some(d) = &d {
        dirs.push(d.dir.path().display().to_string());
        cgroups.push(d.cgroup_parent.clone());
    }
    drop(env);
    drop(d);
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for dir in &dirs {
        let m: Vec<&str> = mi
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(4)
                    .is_some_and(|p| p.starts_with(dir.as_str()))
            })
            .collect();
        assert!(m.is_empty(), "left mounted: {m:?}");
        let p = common::pids_mentioning(dir);
        assert!(p.is_empty(), "left running: {p:?}");
    }
    for name in &cgroups {
        let c = common::cgroups_named(name);
        assert!(c.is_empty(), "left cgroups: {c:?}");
    }
}

/// The berth CLI against dockerd 20.10, whose newest API (1.41) is older than berth's: a
/// command's first request goes without a `/_ping`, with berth's own version; dockerd's
/// "client version ... is too new" makes the CLI send it again with 1.41, and what it does
/// is done once. Other errors come through as they are.
#[test]
fn berth_cli_negotiates_down_to_dockerd() {
    let d = dockerd!();
    let env = Env::new();
    d.import_busybox(&env.busybox_tar());
    let berth = |args: &[&str]| {
        Out::from(
            Command::new(common::BERTH)
                .arg("-H")
                .arg(d.host())
                .args(args)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap(),
        )
    };
    // GET first (images), then a POST with a JSON body (create) as a command's first request.
    let ids = berth(&["images", "-q", "busybox"]).ok().stdout;
    assert_eq!(ids.trim(), inspect(d.docker(&["images", "-q", "busybox"])));
    let id = inspect(berth(&[
        "create",
        "--name",
        "negotiated",
        "busybox",
        "true",
    ]));
    assert_eq!(
        inspect(d.docker(&["ps", "-aq", "--no-trunc", "-f", "name=negotiated"])),
        id
    );
    // Created once: a second create with the name is refused by dockerd, in its words.
    let o = berth(&["create", "--name", "negotiated", "busybox", "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("is already in use"), "{}", o.stderr);
    let o = berth(&["inspect", "no-such-thing-here"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("No such object"), "{}", o.stderr);
    assert!(!o.stderr.contains("too new"), "{}", o.stderr);
    berth(&["rm", "negotiated"]).ok();
    assert_eq!(inspect(d.docker(&["ps", "-aq"])), "");
    finish(env, Some(d));
}

#[test]
fn docker_save_archive_loads_into_berth() {
    let d = dockerd!();
    let env = Env::new();
    d.import_busybox(&env.busybox_tar());
    d.docker(&["run", "--name", "c1", "busybox", "sh", "-c", LAYER2])
        .ok();
    d.docker(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/layer2\"]",
        "c1",
        "multi:1",
    ])
    .ok();
    d.docker(&["tag", "multi:1", "other/multi:2"]).ok();
    let archive = file(&env, "docker-save.tar");
    d.docker20(&["save", "-o", &archive, "multi:1", "other/multi:2"])
        .ok();

    let l = env.berth(&["load", "-i", &archive]).ok().stdout;
    assert!(l.contains("Loaded image: multi:1"), "{l}");
    assert!(l.contains("Loaded image: other/multi:2"), "{l}");
    // The same image: same id (the config's digest), same layers.
    for f in ["{{.Id}}", "{{json .RootFS.Layers}}", "{{json .Config.Cmd}}"] {
        assert_eq!(
            inspect(env.berth(&["image", "inspect", "-f", f, "other/multi:2"])),
            inspect(d.docker(&["image", "inspect", "-f", f, "multi:1"])),
            "{f}"
        );
    }
    assert_eq!(
        inspect(env.berth(&[
            "image",
            "inspect",
            "-f",
            "{{len .RootFS.Layers}}",
            "multi:1"
        ])),
        "2"
    );
    assert_eq!(env.berth(&["run", "--rm", "multi:1"]).ok().stdout, "two\n");
    assert_eq!(
        env.berth(&["run", "--rm", "other/multi:2", "sh", "-c", CHECK])
            .ok()
            .stdout,
        "two\nnovi\n"
    );
    // The busybox image on its own, streamed: docker 20.10's save | berth load.
    let o = d
        .cmd_with(DOCKER_20, &["save", "busybox"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let l = env.berth_stdin(&["load"], &o.stdout).ok().stdout;
    assert!(l.contains("Loaded image: busybox:latest"), "{l}");
    env.berth(&["run", "--rm", "busybox", "echo", "ok"]).ok();
    assert_eq!(env.berth(&["system", "check"]).code, 0);
    finish(env, Some(d));
}

#[test]
fn berth_save_archive_loads_into_dockerd() {
    let d = dockerd!();
    let env = Env::new().with_busybox();
    env.berth(&["run", "--name", "c1", "busybox", "sh", "-c", LAYER2])
        .ok();
    env.berth(&[
        "commit",
        "-c",
        "CMD [\"cat\", \"/layer2\"]",
        "c1",
        "multi:1",
    ])
    .ok();
    env.berth(&["tag", "multi:1", "other/multi:2"]).ok();
    let berth_id = inspect(env.berth(&["image", "inspect", "-f", "{{.Id}}", "multi:1"]));

    // Docker format.
    let archive = file(&env, "berth-save.tar");
    env.berth(&["save", "-o", &archive, "multi:1", "other/multi:2"])
        .ok();
    let l = d.docker20(&["load", "-i", &archive]).ok().stdout;
    assert!(l.contains("Loaded image: multi:1"), "{l}");
    assert!(l.contains("Loaded image: other/multi:2"), "{l}");
    assert_eq!(
        inspect(d.docker(&["image", "inspect", "-f", "{{.Id}}", "other/multi:2"])),
        berth_id
    );
    assert_eq!(
        d.docker(&["run", "--rm", "multi:1"]).ok().stdout,
        "two\n",
        "{}",
        d.log()
    );
    assert_eq!(
        d.docker(&["run", "--rm", "other/multi:2", "sh", "-c", CHECK])
            .ok()
            .stdout,
        "two\nnovi\n"
    );

    // OCI format: Docker 20.10 has no OCI layout loader, but berth's OCI archives carry a
    // Docker manifest.json too, so `docker load` takes them.
    for comp in [None, Some("gzip"), Some("none")] {
        d.docker(&["rmi", "-f", "multi:1", "other/multi:2"]).ok();
        assert_eq!(d.docker(&["images", "-q", "multi"]).ok().trimmed(), "");
        let name = format!("berth-oci-{}.tar", comp.unwrap_or("default"));
        let archive = file(&env, &name);
        let mut args = vec!["save", "--format", "oci", "-o", &archive];
        if let Some(c) = comp {
            args.extend(["--compression", c]);
        }
        args.push("multi:1");
        env.berth(&args).ok();
        let names = tar_names(Path::new(&archive));
        assert!(
            names.contains("oci-layout") && names.contains("index.json"),
            "{names:?}"
        );
        assert!(names.contains("manifest.json"), "{comp:?}: {names:?}");
        let l = d.docker20(&["load", "-i", &archive]);
        assert_eq!(l.code, 0, "{comp:?}: {l:?}");
        assert!(l.stdout.contains("Loaded image: multi:1"), "{l:?}");
        assert_eq!(
            inspect(d.docker(&["image", "inspect", "-f", "{{.Id}}", "multi:1"])),
            berth_id,
            "{comp:?}"
        );
        assert_eq!(
            d.docker(&["run", "--rm", "multi:1", "sh", "-c", CHECK])
                .ok()
                .stdout,
            "two\nnovi\n",
            "{comp:?}"
        );
    }
    finish(env, Some(d));
}

#[test]
fn export_and_import_between_dockerd_and_berth() {
    let d = dockerd!();
    let env = Env::new().with_busybox();
    d.import_busybox(&env.busybox_tar());
    let script = |who: &str| format!("echo {who} > /marker && rm /bin/vi");

    // docker export -> berth import
    d.docker(&[
        "run",
        "--name",
        "ex",
        "busybox",
        "sh",
        "-c",
        &script("docker"),
    ])
    .ok();
    let dexp = file(&env, "docker-export.tar");
    d.docker(&["export", "-o", &dexp, "ex"]).ok();
    env.berth(&[
        "import",
        "-c",
        "CMD [\"cat\", \"/marker\"]",
        &dexp,
        "fromdocker:1",
    ])
    .ok();
    assert_eq!(
        env.berth(&["run", "--rm", "fromdocker:1"]).ok().stdout,
        "docker\n"
    );
    assert_eq!(
        env.berth(&[
            "run",
            "--rm",
            "fromdocker:1",
            "sh",
            "-c",
            "test -e /bin/vi || echo novi"
        ])
        .ok()
        .stdout,
        "novi\n"
    );
    // streamed: docker export | berth import -
    let o = d.cmd_with("docker", &["export", "ex"]).output().unwrap();
    assert!(o.status.success());
    env.berth_stdin(&["import", "-", "fromdocker:2"], &o.stdout)
        .ok();
    assert_eq!(
        env.berth(&["run", "--rm", "fromdocker:2", "cat", "/marker"])
            .ok()
            .stdout,
        "docker\n"
    );

    // berth export -> docker import
    env.berth(&[
        "run",
        "--name",
        "ex",
        "busybox",
        "sh",
        "-c",
        &script("berth"),
    ])
    .ok();
    let bexp = file(&env, "berth-export.tar");
    env.berth(&["export", "-o", &bexp, "ex"]).ok();
    d.docker20(&[
        "import",
        "-c",
        "CMD [\"cat\", \"/marker\"]",
        &bexp,
        "fromberth:1",
    ])
    .ok();
    assert_eq!(
        d.docker(&["run", "--rm", "fromberth:1"]).ok().stdout,
        "berth\n"
    );
    assert_eq!(
        d.docker(&[
            "run",
            "--rm",
            "fromberth:1",
            "sh",
            "-c",
            "test -e /bin/vi || echo novi"
        ])
        .ok()
        .stdout,
        "novi\n"
    );
    // streamed: berth export | docker import -
    let o = env.cmd(&["export", "ex"]).output().unwrap();
    assert!(o.status.success());
    d.docker_stdin(&["import", "-", "fromberth:2"], &o.stdout)
        .ok();
    assert_eq!(
        d.docker(&["run", "--rm", "fromberth:2", "cat", "/marker"])
            .ok()
            .stdout,
        "berth\n"
    );
    // Both exports hold the same file names, except what only Docker adds.
    let a = tar_names(Path::new(&dexp));
    let b = tar_names(Path::new(&bexp));
    let only_docker: BTreeSet<_> = a.difference(&b).collect();
    let only_berth: BTreeSet<_> = b.difference(&a).collect();
    assert!(
        only_berth.is_empty(),
        "only in berth's export: {only_berth:?}"
    );
    assert!(
        only_docker
            .iter()
            .all(|n| n.starts_with(".dockerenv") || n.starts_with("etc/") || n.starts_with("dev/")),
        "only in docker's export: {only_docker:?}"
    );
    finish(env, Some(d));
}

#[test]
fn docker_cli_save_and_load_against_berth() {
    need_docker_cli!();
    let env = Env::new().with_busybox();
    env.berth(&["run", "--name", "c1", "busybox", "sh", "-c", LAYER2])
        .ok();
    env.berth(&["commit", "c1", "multi:1"]).ok();
    env.berth(&["tag", "multi:1", "other/multi:2"]).ok();
    for (i, cli) in clis().into_iter().enumerate() {
        let archive = file(&env, &format!("cli-save-{i}.tar"));
        let o = env.docker_at(cli, &["save", "-o", &archive, "multi:1", "other/multi:2"]);
        assert_eq!(o.code, 0, "{cli}: {o:?}");
        let names = tar_names(Path::new(&archive));
        assert!(names.contains("manifest.json"), "{names:?}");
        env.docker_at(cli, &["rmi", "multi:1", "other/multi:2"])
            .ok();
        let l = env.docker_at(cli, &["load", "-i", &archive]).ok();
        assert!(
            l.stdout.contains("Loaded image: multi:1")
                && l.stdout.contains("Loaded image: other/multi:2"),
            "{cli}: {l:?}"
        );
        assert_eq!(
            env.docker_at(cli, &["run", "--rm", "other/multi:2", "sh", "-c", CHECK])
                .ok()
                .stdout,
            "two\nnovi\n"
        );
        // To stdout and back through stdin; -q prints nothing but the names.
        let o = env.docker_cmd(cli, &["save", "multi:1"]).output().unwrap();
        assert!(o.status.success(), "{cli}: {o:?}");
        assert!(tar_stream_names(&o.stdout).contains(&"manifest.json".to_string()));
        env.docker_at(cli, &["rmi", "multi:1"]).ok();
        let l = env.docker_at_stdin(cli, &["load", "-q"], &o.stdout).ok();
        assert_eq!(l.stdout, "Loaded image: multi:1\n", "{cli}: {l:?}");
        // Errors as docker prints them.
        let r = env.docker_at(cli, &["save", "-o", &file(&env, "x.tar"), "nope"]);
        assert_eq!(r.code, 1, "{cli}: {r:?}");
        assert!(r.stderr.contains("No such image: nope"), "{cli}: {r:?}");
        let r = env.docker_at_stdin(cli, &["load"], b"not a tar");
        assert_eq!(r.code, 1, "{cli}: {r:?}");
    }
    finish(env, None);
}

/// The script both engines run before `diff` and `commit`.
const CHANGES: &str =
    "mkdir -p /data && echo hi > /data/new && echo x >> /etc/passwd && rm /bin/vi && rm -r /home";

/// The same container on both engines: `c1`, exited after `CHANGES`, with the default network
/// (so each engine gave it /etc/hosts, /etc/hostname and /etc/resolv.conf).
fn changed_containers() -> Option<(Env, Dockerd)> {
    if !docker_cli() {
        return None;
    }
    let d = Dockerd::start()?;
    let env = Env::new().with_busybox();
    d.import_busybox(&env.busybox_tar());
    d.docker(&["run", "--name", "c1", "busybox", "sh", "-c", CHANGES])
        .ok();
    env.berth(&["run", "--name", "c1", "busybox", "sh", "-c", CHANGES])
        .ok();
    Some((env, d))
}

#[test]
fn docker_cli_diff_matches_dockerd() {
    let Some((env, d)) = changed_containers() else {
        return;
    };
    // The same lines (dockerd prints them in its directory walk's order: compare sets).
    let lines = |s: &str| -> BTreeSet<String> { s.lines().map(String::from).collect() };
    let want = d.docker(&["diff", "c1"]).ok().stdout;
    let mut bad = Vec::new();
    for cli in clis() {
        let got = env.docker_at(cli, &["diff", "c1"]).ok().stdout;
        if lines(&got) != lines(&want) {
            bad.push(format!(
                "{cli} diff: berth printed\n{got}dockerd printed\n{want}"
            ));
        }
    }
    // Also through a running container, and one that changed nothing.
    for args in [
        vec![
            "run",
            "-d",
            "--name",
            "r1",
            "busybox",
            "sh",
            "-c",
            "echo x > /tmp/x; sleep 120",
        ],
        vec!["run", "--name", "n1", "busybox", "true"],
    ] {
        d.docker(&args).ok();
        env.berth(&args).ok();
    }
    env.eventually("/tmp/x", || {
        env.berth(&["exec", "r1", "cat", "/tmp/x"]).stdout == "x\n"
    });
    for c in ["r1", "n1"] {
        let want = d.docker(&["diff", c]).ok().stdout;
        let got = env.docker_at("docker", &["diff", c]).ok().stdout;
        if lines(&got) != lines(&want) {
            bad.push(format!(
                "diff {c}: berth printed\n{got}dockerd printed\n{want}"
            ));
        }
    }
    finish(env, Some(d));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The file names in the top layer of `image` in a `docker save` archive made by `save`.
fn top_layer_names(save: Command, dir: &Path) -> BTreeSet<String> {
    let archive = dir.join("top-layer.tar");
    let mut save = save;
    let o = save.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    std::fs::write(&archive, &o.stdout).unwrap();
    let m = Command::new("tar")
        .arg("-xOf")
        .arg(&archive)
        .arg("manifest.json")
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&m.stdout).unwrap();
    let layers = m[0]["Layers"].as_array().unwrap();
    let top = layers.last().unwrap().as_str().unwrap();
    let x = dir.join("top");
    let _ = std::fs::remove_dir_all(&x);
    std::fs::create_dir_all(&x).unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&x)
        .arg(top)
        .status()
        .unwrap();
    assert!(st.success());
    let names = tar_names(&x.join(top));
    let _ = std::fs::remove_dir_all(&x);
    let _ = std::fs::remove_file(&archive);
    names
        .into_iter()
        .map(|n| n.trim_end_matches('/').to_string())
        .filter(|n| !n.is_empty() && n != ".")
        .collect()
}

#[test]
fn committed_layer_matches_dockerd() {
    let Some((env, d)) = changed_containers() else {
        return;
    };
    d.docker(&["commit", "c1", "committed:1"]).ok();
    env.berth(&["commit", "c1", "committed:1"]).ok();
    let want = top_layer_names(
        d.cmd_with("docker", &["save", "committed:1"]),
        env.dir.path(),
    );
    let got = top_layer_names(env.cmd(&["save", "committed:1"]), env.dir.path());
    // What runs in the committed image: no /etc/hosts of the committed container's.
    let r = env
        .berth(&[
            "run",
            "--rm",
            "--network",
            "none",
            "committed:1",
            "cat",
            "/etc/hosts",
        ])
        .ok()
        .stdout;
    finish(env, Some(d));
    assert_eq!(got, want, "the committed layer: berth's vs dockerd's");
    assert!(!r.contains("c1"), "{r}");
}

#[test]
fn docker_cli_commit_export_against_berth_and_dockerd() {
    let Some((env, d)) = changed_containers() else {
        return;
    };
    // commit with a message, an author and changes.
    let args = |tag: &'static str| {
        vec![
            "commit",
            "-m",
            "my message",
            "-a",
            "Jane <jane@example.com>",
            "-c",
            "ENV COMMITTED=yes",
            "-c",
            "CMD [\"cat\", \"/data/new\"]",
            "c1",
            tag,
        ]
    };
    let fmt = "{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}|{{json .Config.Env}}|{{len .RootFS.Layers}}|{{.Parent}}|{{.Architecture}}/{{.Os}}";
    let id = d.docker(&args("committed:d")).ok();
    assert!(id.trimmed().starts_with("sha256:"));
    let want = inspect(d.docker(&["image", "inspect", "-f", fmt, "committed:d"]));
    let mut bad = Vec::new();
    // The container's own config, which commit starts from.
    let cfmt = "{{json .Config.Env}}|{{json .Config.Cmd}}|{{json .Config.Entrypoint}}";
    let (gc, wc) = (
        inspect(env.docker_at("docker", &["inspect", "-f", cfmt, "c1"])),
        inspect(d.docker(&["inspect", "-f", cfmt, "c1"])),
    );
    if gc != wc {
        bad.push(format!("container config: berth {gc}\n  dockerd {wc}"));
    }
    for (i, cli) in clis().into_iter().enumerate() {
        let tag: &'static str = ["committed:a", "committed:b"][i];
        let o = env.docker_at(cli, &args(tag));
        if o.code != 0 {
            bad.push(format!("{cli} commit failed: {o:?}"));
            continue;
        }
        assert!(o.trimmed().starts_with("sha256:"), "{cli}: {o:?}");
        let got = inspect(env.docker_at(cli, &["image", "inspect", "-f", fmt, tag]));
        // The parent is each engine's own busybox image id: compare the rest.
        let strip = |s: &str| {
            let f: Vec<String> = s.split('|').map(String::from).collect();
            (f[..5].join("|"), f[6..].join("|"))
        };
        if strip(&got) != strip(&want) {
            bad.push(format!(
                "{cli} commit: berth's image {got}\n  dockerd's {want}"
            ));
        }
        assert_eq!(
            env.docker_at(cli, &["run", "--rm", tag]).ok().stdout,
            "hi\n"
        );
        assert_eq!(
            env.docker_at(
                cli,
                &[
                    "run",
                    "--rm",
                    tag,
                    "sh",
                    "-c",
                    "echo $COMMITTED; test -e /home || echo nohome"
                ]
            )
            .ok()
            .stdout,
            "yes\nnohome\n"
        );
        let h = env.docker_at(cli, &["history", tag]).ok().stdout;
        assert!(
            h.lines().nth(1).unwrap_or("").contains("my message"),
            "{cli}: {h}"
        );
    }
    // export -o, with the CLI's own file handling.
    let out = file(&env, "cli-export.tar");
    env.docker_at("docker", &["export", "-o", &out, "c1"]).ok();
    let names = tar_names(Path::new(&out));
    assert!(names.contains("data/new") && names.contains("bin/busybox"));
    assert!(!names.contains("bin/vi") && !names.contains("home"));
    let r = env.docker_at("docker", &["export", "-o", &file(&env, "n.tar"), "nope"]);
    let w = d.docker(&["export", "-o", &file(&env, "n2.tar"), "nope"]);
    assert_eq!((r.code, r.stderr.trim()), (w.code, w.stderr.trim()));
    finish(env, Some(d));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn docker_cli_cp_against_berth() {
    need_docker_cli!();
    let env = Env::new();
    must(&env, env.berth(&["import", &env.busybox_tar(), "busybox"]));
    let local = env.dir.path().join("local");
    std::fs::create_dir_all(local.join("tree/sub")).unwrap();
    std::fs::write(local.join("tree/a.txt"), "A").unwrap();
    std::fs::write(local.join("tree/sub/b.txt"), "B").unwrap();
    std::fs::write(local.join("one.txt"), "one").unwrap();
    let one = local.join("one.txt").display().to_string();
    let tree = local.join("tree").display().to_string();
    must(
        &env,
        env.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "120"]),
    );
    must(
        &env,
        env.berth(&["create", "--name", "stopped", "busybox", "true"]),
    );
    for (i, cli) in clis().into_iter().enumerate() {
        for c in ["live", "stopped"] {
            let dst = format!("/tmp/cli{i}");
            must(&env, env.berth(&["cp", &one, &format!("{c}:/tmp/")]));
            must(
                &env,
                env.docker_at(cli, &["cp", &tree, &format!("{c}:{dst}")]),
            );
            must(
                &env,
                env.docker_at(cli, &["cp", &one, &format!("{c}:{dst}/renamed")]),
            );
            env.docker_at(
                cli,
                &["cp", &format!("{tree}/."), &format!("{c}:{dst}/sub")],
            )
            .ok();
            // and back out
            let back = env.dir.path().join(format!("back-{i}-{c}"));
            std::fs::create_dir_all(&back).unwrap();
            let backs = back.display().to_string();
            must(
                &env,
                env.docker_at(cli, &["cp", &format!("{c}:{dst}"), &backs]),
            );
            let got = back.join(format!("cli{i}"));
            assert_eq!(std::fs::read_to_string(got.join("a.txt")).unwrap(), "A");
            assert_eq!(std::fs::read_to_string(got.join("sub/b.txt")).unwrap(), "B");
            assert_eq!(std::fs::read_to_string(got.join("sub/a.txt")).unwrap(), "A");
            assert_eq!(std::fs::read_to_string(got.join("renamed")).unwrap(), "one");
            env.docker_at(
                cli,
                &["cp", &format!("{c}:/tmp/one.txt"), &format!("{backs}/x")],
            )
            .ok();
            assert_eq!(std::fs::read_to_string(back.join("x")).unwrap(), "one");
            // A tar stream out...
            let o = env
                .docker_cmd(cli, &["cp", &format!("{c}:{dst}/sub"), "-"])
                .output()
                .unwrap();
            assert!(o.status.success(), "{cli}: {o:?}");
            let names: BTreeSet<String> = tar_stream_names(&o.stdout)
                .into_iter()
                .map(|n| n.trim_end_matches('/').to_string())
                .collect();
            assert_eq!(
                names,
                ["sub", "sub/a.txt", "sub/b.txt", "sub/sub", "sub/sub/b.txt"]
                    .into_iter()
                    .map(String::from)
                    .collect(),
                "{cli}"
            );
            // ...and one in, from stdin.
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(5);
            h.set_mode(0o640);
            h.set_uid(1234);
            h.set_gid(4321);
            h.set_cksum();
            b.append_data(&mut h, "fromstdin", &b"hello"[..]).unwrap();
            let data = b.into_inner().unwrap();
            must(
                &env,
                env.docker_at_stdin(cli, &["cp", "-", &format!("{c}:{dst}")], &data),
            );
            let o = env
                .docker_cmd(cli, &["cp", &format!("{c}:{dst}/fromstdin"), "-"])
                .output()
                .unwrap();
            let mut ar = tar::Archive::new(&o.stdout[..]);
            let mut e = ar.entries().unwrap().next().unwrap().unwrap();
            assert_eq!(
                (
                    e.header().uid().unwrap(),
                    e.header().gid().unwrap(),
                    e.header().mode().unwrap() & 0o7777
                ),
                (1234, 4321, 0o640),
                "{cli}"
            );
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            assert_eq!(s, "hello");
        }
    }
    assert_eq!(
        env.berth(&[
            "exec",
            "live",
            "cat",
            "/tmp/cli0/renamed",
            "/tmp/cli0/sub/a.txt"
        ])
        .ok()
        .stdout,
        "oneA"
    );
    finish(env, None);
}

#[test]
fn docker_cli_cp_errors_match_dockerd() {
    need_docker_cli!();
    let d = dockerd!();
    let env = Env::new().with_busybox();
    d.import_busybox(&env.busybox_tar());
    d.docker(&["run", "-d", "--name", "live", "busybox", "sleep", "120"])
        .ok();
    env.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "120"])
        .ok();
    let x = file(&env, "x");
    let one = file(&env, "one");
    std::fs::write(&one, "1").unwrap();
    let mut bad = Vec::new();
    for cli in clis() {
        for args in [
            vec!["cp", "live:/nope", &x],
            vec!["cp", "nope:/etc", &x],
            vec!["cp", &one, "live:/nope/deeper/"],
        ] {
            let want = run(d.cmd_with(cli, &args));
            let got = env.docker_at(cli, &args);
            // The docker CLI's own log lines (`time=… level=error msg="Can't add file … to
            // tar: … closed pipe"`) come from a goroutine it races with its own error path,
            // whichever daemon it talks to: they are not the daemon's answer.
            let (g, w) = (cli_message(&got.stderr), cli_message(&want.stderr));
            if (got.code, &g) != (want.code, &w) {
                bad.push(format!(
                    "{cli} {args:?}: berth: {} {g:?}\n  dockerd: {} {w:?}",
                    got.code, want.code
                ));
            }
        }
        // A file named as a directory: an error (the wording names dockerd's own paths).
        let args = ["cp", "live:/etc/passwd/", &x];
        let want = run(d.cmd_with(cli, &args));
        let got = env.docker_at(cli, &args);
        assert_eq!((got.code, want.code), (1, 1), "{got:?}\n{want:?}");
        assert!(
            got.stderr.starts_with("Error response from daemon: "),
            "{got:?}"
        );
        assert!(!Path::new(&x).exists());
        // The success message of Docker 28's cp ("Successfully copied ...") on stderr.
        let args = ["cp", &one, "live:/tmp/one"];
        let want = run(d.cmd_with(cli, &args));
        let got = env.docker_at(cli, &args).ok();
        assert_eq!(got.stdout, want.stdout, "{cli}");
        assert_eq!(
            got.stderr.split(' ').next(),
            want.stderr.split(' ').next(),
            "{cli}"
        );
    }
    finish(env, Some(d));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// A docker CLI's stderr without its logrus lines (`time="…" level=…`).
fn cli_message(stderr: &str) -> String {
    stderr
        .lines()
        .filter(|l| !l.starts_with("time=\""))
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_string()
}

/// Panics with the output and the daemon's log unless the command succeeded.
fn must(env: &Env, o: Out) -> Out {
    assert_eq!(
        o.code,
        0,
        "command failed: {o:#?}\ndaemon log:\n{}",
        env.daemon_log()
    );
    o
}

fn run(mut c: Command) -> Out {
    let o = c.output().unwrap();
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// The shape of a prune or df output: ids, sizes and counts blanked, duplicates dropped.
fn shape(s: &str) -> BTreeSet<String> {
    s.lines()
        .map(|l| {
            let l = l.trim_end();
            if let Some(i) = l.find(':') {
                let (k, v) = l.split_at(i);
                if !v[1..].trim().is_empty() || k.contains(' ') && k.starts_with("Total") {
                    return format!("{k}: _");
                }
                return l.to_string();
            }
            if l.len() == 64 && l.chars().all(|c| c.is_ascii_hexdigit()) {
                return "<id>".to_string();
            }
            l.split_whitespace()
                .filter(|w| w.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The same objects on both engines: busybox, a committed image, an exited container, a
/// running one, and an unused second image.
fn populate(run: &dyn Fn(&[&str]) -> Out, tar: &str) {
    run(&["run", "--name", "exited", "busybox", "sh", "-c", LAYER2]).ok();
    run(&["commit", "exited", "committed:1"]).ok();
    run(&[
        "run",
        "-d",
        "--name",
        "running",
        "committed:1",
        "sleep",
        "120",
    ])
    .ok();
    run(&["import", tar, "unused:1"]).ok();
}

#[test]
fn docker_cli_prune_and_df_against_berth_and_dockerd() {
    need_docker_cli!();
    let d = dockerd!();
    let env = Env::new().with_busybox();
    let tar = env.busybox_tar();
    d.import_busybox(&tar);
    let on_d = |a: &[&str]| d.docker(a);
    let on_b = |a: &[&str]| env.docker_at("docker", a);
    populate(&on_d, &tar);
    populate(&on_b, &tar);

    // system df: same table header and rows; -v: same sections and column headers.
    let want = on_d(&["system", "df"]).ok().stdout;
    let got = on_b(&["system", "df"]).ok().stdout;
    let first = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    assert_eq!(got.lines().next(), want.lines().next(), "{got}\nvs\n{want}");
    assert_eq!(first(&got), first(&want), "{got}\nvs\n{want}");
    // Images: 3 total, 2 active; containers: 2 total, 1 active.
    for s in [&got, &want] {
        let counts = |row: &str| -> (String, String) {
            let l = s.lines().find(|l| l.starts_with(row)).unwrap();
            let w: Vec<&str> = l.split_whitespace().collect();
            (w[1].to_string(), w[2].to_string())
        };
        assert_eq!(counts("Images"), ("3".into(), "2".into()), "{s}");
        assert_eq!(counts("Containers"), ("2".into(), "1".into()), "{s}");
    }
    let want = on_d(&["system", "df", "-v"]).ok().stdout;
    let got = on_b(&["system", "df", "-v"]).ok().stdout;
    let headers = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| {
                l.ends_with(':')
                    || l.starts_with("REPOSITORY")
                    || l.starts_with("CONTAINER ID")
                    || l.starts_with("VOLUME NAME")
                    || l.starts_with("CACHE ID")
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    assert_eq!(headers(&got), headers(&want), "{got}\nvs\n{want}");
    assert!(got.contains("committed") && got.contains("unused"), "{got}");

    // container prune: the exited one goes.
    let want = on_d(&["container", "prune", "-f"]).ok().stdout;
    let got = on_b(&["container", "prune", "-f"]).ok().stdout;
    assert_eq!(shape(&got), shape(&want), "{got}\nvs\n{want}");
    assert!(got.starts_with("Deleted Containers:\n"), "{got}");
    assert_eq!(
        on_b(&["ps", "-a", "--format", "{{.Names}}"]).ok().trimmed(),
        "running"
    );
    // image prune -a: unused:1 goes; busybox (the parent of the one in use) stays.
    let want = on_d(&["image", "prune", "-a", "-f"]).ok().stdout;
    let got = on_b(&["image", "prune", "-a", "-f"]).ok().stdout;
    assert!(got.contains("untagged: unused:1"), "{got}");
    assert!(want.contains("untagged: unused:1"), "{want}");
    assert_eq!(shape(&got), shape(&want), "{got}\nvs\n{want}");
    // Docker untags every image without a container, parents included (the parent image
    // itself stays, untagged, for its child).
    let imgs = |r: Out| -> BTreeSet<String> { r.ok().stdout.lines().map(String::from).collect() };
    let (b_imgs, d_imgs) = (
        imgs(on_b(&["images", "--format", "{{.Repository}}"])),
        imgs(on_d(&["images", "--format", "{{.Repository}}"])),
    );
    let mut bad = Vec::new();
    if b_imgs != d_imgs {
        bad.push(format!(
            "after image prune -a, berth has {b_imgs:?}, dockerd {d_imgs:?}\nberth printed\n{got}dockerd printed\n{want}"
        ));
    }
    // system prune -a: with the running one gone, nothing is left.
    on_d(&["rm", "-f", "running"]).ok();
    on_b(&["rm", "-f", "running"]).ok();
    let want = on_d(&["system", "prune", "-a", "-f"]).ok().stdout;
    let got = on_b(&["system", "prune", "-a", "-f"]);
    assert_eq!(got.code, 0, "{got:?}");
    let got = got.stdout;
    assert!(got.contains("Total reclaimed space:"), "{got}");
    assert_eq!(shape(&got), shape(&want), "{got}\nvs\n{want}");
    assert_eq!(on_b(&["images", "-aq"]).ok().trimmed(), "");
    assert_eq!(on_d(&["images", "-aq"]).ok().trimmed(), "");
    // And with nothing to prune, the same message.
    let want = on_d(&["container", "prune", "-f"]).ok().stdout;
    let got = on_b(&["container", "prune", "-f"]).ok().stdout;
    assert_eq!(got, want);
    let want = on_d(&["image", "prune", "-f"]).ok().stdout;
    let got = on_b(&["image", "prune", "-f"]).ok().stdout;
    assert_eq!(got, want);
    assert_eq!(env.berth(&["system", "check"]).code, 0);
    finish(env, Some(d));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
