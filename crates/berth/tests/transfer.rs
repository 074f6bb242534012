//! End-to-end: images and files in and out (save/load, export/import, commit, diff, cp), and
//! the store's accounting (prune, system df, system check).

mod common;
use common::Env;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The entry names of a tar file.
fn tar_names(path: &Path) -> BTreeSet<String> {
    let out = Command::new("tar").arg("-tf").arg(path).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", path.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").to_string())
        .collect()
}

fn file(env: &Env, name: &str) -> String {
    env.dir.path().join(name).display().to_string()
}

#[test]
fn save_and_load_docker_archive_round_trip() {
    let env = Env::new().with_busybox();
    env.berth(&["tag", "busybox", "other/bb:v2"]).ok();
    let out = file(&env, "bb.tar");
    env.berth(&["save", "-o", &out, "busybox", "other/bb:v2"])
        .ok();
    let names = tar_names(Path::new(&out));
    assert!(names.contains("manifest.json"), "{names:?}");
    assert!(names.contains("repositories"), "{names:?}");
    assert!(names.iter().any(|n| n.ends_with("/layer.tar")), "{names:?}");
    // One layer, written once for both tags.
    assert_eq!(
        names.iter().filter(|n| n.ends_with("/layer.tar")).count(),
        1
    );
    let manifest = Command::new("tar")
        .args(["-xOf", &out, "manifest.json"])
        .output()
        .unwrap();
    let m: serde_json::Value = serde_json::from_slice(&manifest.stdout).unwrap();
    let tags: BTreeSet<String> = m[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    assert!(
        tags.contains("busybox:latest") && tags.contains("other/bb:v2"),
        "{m}"
    );

    env.berth(&["rmi", "busybox", "other/bb:v2"]).ok();
    assert_eq!(env.berth(&["images", "-q"]).ok().trimmed(), "");
    let loaded = env.berth(&["load", "-i", &out]).ok().stdout;
    assert!(loaded.contains("Loaded image: busybox:latest"), "{loaded}");
    assert!(loaded.contains("Loaded image: other/bb:v2"), "{loaded}");
    assert_eq!(
        env.berth(&["run", "--rm", "other/bb:v2", "echo", "loaded"])
            .ok()
            .stdout,
        "loaded\n"
    );
    // To stdout and back through stdin.
    let stdout = env.cmd(&["save", "busybox"]).output().unwrap();
    assert!(stdout.status.success());
    env.berth(&["rmi", "-f", "busybox"]).ok();
    let l = env.berth_stdin(&["load"], &stdout.stdout).ok().stdout;
    assert!(l.contains("Loaded image: busybox:latest"), "{l}");
    env.berth(&["run", "--rm", "busybox", "true"]).ok();
}

#[test]
fn save_and_load_oci_archives_with_gzip_and_zstd() {
    let env = Env::new().with_busybox();
    for comp in ["gzip", "zstd", "none"] {
        let out = file(&env, &format!("oci-{comp}.tar"));
        env.berth(&[
            "save",
            "--format",
            "oci",
            "--compression",
            comp,
            "-o",
            &out,
            "busybox",
        ])
        .ok();
        let names = tar_names(Path::new(&out));
        assert!(names.contains("oci-layout"), "{names:?}");
        assert!(names.contains("index.json"), "{names:?}");
        assert!(names.iter().any(|n| n.starts_with("blobs/sha256/")));
        env.berth(&["rmi", "busybox"]).ok();
        let l = env.berth(&["load", "-i", &out]).ok().stdout;
        assert!(l.contains("busybox:latest"), "{comp}: {l}");
        assert_eq!(
            env.berth(&["run", "--rm", "busybox", "echo", comp])
                .ok()
                .stdout,
            format!("{comp}\n")
        );
    }
    let bad = env.berth(&["save", "--format", "zip", "busybox"]);
    assert_ne!(bad.code, 0);
}

#[test]
fn save_of_unknown_image_and_bad_archives_change_nothing() {
    let env = Env::new().with_busybox();
    let out = file(&env, "none.tar");
    let r = env.berth(&["save", "-o", &out, "nope"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Error response from daemon: No such image: nope"),
        "{r:?}"
    );
    assert!(!Path::new(&out).exists(), "a failed save leaves no file");

    // An archive whose layer does not match the config's diff id.
    let good = file(&env, "good.tar");
    env.berth(&["save", "-o", &good, "busybox"]).ok();
    let work = env.dir.path().join("tamper");
    std::fs::create_dir_all(&work).unwrap();
    assert!(Command::new("tar")
        .args(["-xf", &good, "-C"])
        .arg(&work)
        .status()
        .unwrap()
        .success());
    let layer = walk_find(&work, "layer.tar").unwrap();
    let mut data = std::fs::read(&layer).unwrap();
    // Change one byte of file content (well past the first headers).
    let i = data.len() / 2;
    data[i] ^= 0xff;
    std::fs::write(&layer, data).unwrap();
    let bad = file(&env, "bad.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&work)
        .args(["-cf", &bad, "."])
        .status()
        .unwrap()
        .success());
    let images_before = env.berth(&["images", "-aq"]).ok().stdout;
    env.berth(&["rmi", "busybox"]).ok();
    let r = env.berth(&["load", "-i", &bad]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(env.berth(&["images", "-aq"]).ok().trimmed().is_empty());
    check_clean(&env);
    // Not a tar at all.
    let r = env.berth_stdin(&["load"], b"this is not an archive");
    assert_eq!(r.code, 1, "{r:?}");
    check_clean(&env);
    // And the good one still loads.
    env.berth(&["load", "-i", &good]).ok();
    assert_eq!(env.berth(&["images", "-aq"]).ok().stdout, images_before);
}

fn walk_find(dir: &Path, name: &str) -> Option<std::path::PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = walk_find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().and_then(|n| n.to_str()) == Some(name) {
            return Some(p);
        }
    }
    None
}

/// `system check` finds nothing.
fn check_clean(env: &Env) {
    let r = env.berth(&["system", "check"]);
    assert_eq!(r.code, 0, "system check: {r:?}");
}

#[test]
fn load_refuses_hostile_layers() {
    let env = Env::new().with_busybox();
    // A docker archive by hand, whose layer writes through ../
    let dir = env.dir.path().join("hostile");
    std::fs::create_dir_all(&dir).unwrap();
    let layer = dir.join("layer.tar");
    {
        let f = std::fs::File::create(&layer).unwrap();
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        let data = b"pwned";
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        // tar::Builder refuses `..` in paths; write the name bytes directly.
        let name = b"../../../../../../tmp/berth-hostile-load";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
        b.finish().unwrap();
    }
    let diff_id = sha256_file(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{diff_id}")]},
        "history": [{"created_by": "hostile"}]
    });
    let cfg_bytes = serde_json::to_vec(&config).unwrap();
    let cfg_hex = sha256_bytes(&cfg_bytes);
    std::fs::create_dir_all(dir.join("l1")).unwrap();
    std::fs::rename(&layer, dir.join("l1/layer.tar")).unwrap();
    std::fs::write(dir.join(format!("{cfg_hex}.json")), &cfg_bytes).unwrap();
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&serde_json::json!([{
            "Config": format!("{cfg_hex}.json"),
            "RepoTags": ["hostile:latest"],
            "Layers": ["l1/layer.tar"]
        }]))
        .unwrap(),
    )
    .unwrap();
    let archive = file(&env, "hostile.tar");
    assert!(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .args([
            "-cf",
            &archive,
            "manifest.json",
            &format!("{cfg_hex}.json"),
            "l1"
        ])
        .status()
        .unwrap()
        .success());
    let _ = std::fs::remove_file("/tmp/berth-hostile-load");
    let r = env.berth(&["load", "-i", &archive]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!Path::new("/tmp/berth-hostile-load").exists());
    let imgs = env.berth(&["images"]).ok().stdout;
    assert!(!imgs.contains("hostile"), "{imgs}");
    check_clean(&env);
}

fn sha256_file(p: &Path) -> String {
    sha256_bytes(&std::fs::read(p).unwrap())
}

fn sha256_bytes(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

#[test]
fn export_then_import_makes_a_one_layer_image() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "echo exported > /marker && rm /bin/vi",
    ])
    .ok();
    let out = file(&env, "c1.tar");
    env.berth(&["export", "-o", &out, "c1"]).ok();
    let names = tar_names(Path::new(&out));
    assert!(
        names.contains("marker"),
        "{:?}",
        names.iter().take(5).collect::<Vec<_>>()
    );
    assert!(names.contains("bin/busybox"));
    assert!(!names.contains("bin/vi"), "a deleted file is not exported");
    // Export to stdout, import from stdin with a change and a message.
    let o = env.cmd(&["export", "c1"]).output().unwrap();
    assert!(o.status.success());
    let id = env
        .berth_stdin(
            &[
                "import",
                "-c",
                "CMD [\"cat\", \"/marker\"]",
                "-m",
                "flat",
                "-",
                "flat:1",
            ],
            &o.stdout,
        )
        .ok()
        .trimmed()
        .to_string();
    assert!(id.starts_with("sha256:"));
    assert_eq!(
        env.berth(&["run", "--rm", "flat:1"]).ok().stdout,
        "exported\n"
    );
    let layers = env
        .berth(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", "flat:1"])
        .ok();
    assert_eq!(layers.trimmed(), "1");
    // A running container exports too.
    env.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "30"])
        .ok();
    let o = env.cmd(&["export", "live"]).output().unwrap();
    assert!(o.status.success());
    assert!(o.stdout.len() > 100_000);
    let r = env.berth(&["export", "nope"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such container: nope"), "{r:?}");
}

#[test]
fn commit_adds_one_layer_with_the_changes() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "--name",
        "c1",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data && echo hi > /data/new && echo x >> /etc/passwd && rm /bin/vi && rm -r /home",
    ])
    .ok();
    let diff = env.berth(&["diff", "c1"]).ok().stdout;
    for line in [
        "A /data",
        "A /data/new",
        "C /etc",
        "C /etc/passwd",
        "C /bin",
        "D /bin/vi",
        "D /home",
    ] {
        assert!(
            diff.lines().any(|l| l == line),
            "missing {line:?} in\n{diff}"
        );
    }
    let id = env
        .berth(&[
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
            "committed:v1",
        ])
        .ok()
        .trimmed()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    let fmt = env
        .berth(&[
            "image",
            "inspect",
            "-f",
            "{{.Author}}|{{.Comment}}|{{len .RootFS.Layers}}|{{.Parent}}",
            "committed:v1",
        ])
        .ok();
    let base = env
        .berth(&["image", "inspect", "-f", "{{.Id}}", "busybox"])
        .ok();
    assert_eq!(
        fmt.trimmed(),
        format!("Jane <jane@example.com>|my message|2|{}", base.trimmed())
    );
    let hist = env.berth(&["history", "committed:v1"]).ok().stdout;
    let first = hist.lines().nth(1).unwrap();
    assert!(first.contains("my message"), "{hist}");
    assert!(!first.contains(" 0B "), "the new layer has a size: {hist}");
    assert_eq!(
        env.berth(&["run", "--rm", "committed:v1"]).ok().stdout,
        "hi\n"
    );
    let r = env
        .berth(&[
            "run",
            "--rm",
            "committed:v1",
            "sh",
            "-c",
            "echo $COMMITTED; test -e /bin/vi || echo novi; test -e /home || echo nohome; tail -1 /etc/passwd",
        ])
        .ok();
    assert_eq!(r.stdout, "yes\nnovi\nnohome\nx\n");
    // A running container, with and without pausing.
    env.berth(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo live > /l; sleep 30",
    ])
    .ok();
    env.eventually("the file written", || {
        env.berth(&["exec", "live", "cat", "/l"]).stdout == "live\n"
    });
    env.berth(&["commit", "live", "live:1"]).ok();
    env.berth(&["commit", "--pause=false", "live", "live:2"])
        .ok();
    assert_eq!(
        env.berth(&["inspect", "-f", "{{.State.Status}}", "live"])
            .ok()
            .trimmed(),
        "running"
    );
    for t in ["live:1", "live:2"] {
        assert_eq!(
            env.berth(&["run", "--rm", t, "cat", "/l"]).ok().stdout,
            "live\n"
        );
    }
    let r = env.berth(&["commit", "nope"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such container: nope"), "{r:?}");
}

#[test]
fn cp_both_ways_with_running_and_stopped_containers() {
    let env = Env::new().with_busybox();
    let local = env.dir.path().join("local");
    std::fs::create_dir_all(local.join("tree/sub")).unwrap();
    std::fs::write(local.join("tree/a.txt"), "A").unwrap();
    std::fs::write(local.join("tree/sub/b.txt"), "B").unwrap();
    std::fs::write(local.join("one.txt"), "one").unwrap();
    env.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "60"])
        .ok();
    env.berth(&["create", "--name", "stopped", "busybox", "true"])
        .ok();
    for c in ["live", "stopped"] {
        // file into a directory, and under a new name
        env.berth(&[
            "cp",
            &local.join("one.txt").display().to_string(),
            &format!("{c}:/tmp/"),
        ])
        .ok();
        env.berth(&[
            "cp",
            &local.join("one.txt").display().to_string(),
            &format!("{c}:/tmp/renamed"),
        ])
        .ok();
        // a directory, and a directory's contents
        env.berth(&[
            "cp",
            &local.join("tree").display().to_string(),
            &format!("{c}:/tmp/"),
        ])
        .ok();
        env.berth(&[
            "cp",
            &format!("{}/.", local.join("tree").display()),
            &format!("{c}:/root"),
        ])
        .ok();
        // and back out
        let back = env.dir.path().join(format!("back-{c}"));
        std::fs::create_dir_all(&back).unwrap();
        env.berth(&["cp", &format!("{c}:/tmp/tree"), &back.display().to_string()])
            .ok();
        assert_eq!(
            std::fs::read_to_string(back.join("tree/sub/b.txt")).unwrap(),
            "B"
        );
        env.berth(&[
            "cp",
            &format!("{c}:/tmp/renamed"),
            &back.join("r.txt").display().to_string(),
        ])
        .ok();
        assert_eq!(std::fs::read_to_string(back.join("r.txt")).unwrap(), "one");
        env.berth(&[
            "cp",
            &format!("{c}:/root/sub/b.txt"),
            &back.display().to_string(),
        ])
        .ok();
        assert_eq!(std::fs::read_to_string(back.join("b.txt")).unwrap(), "B");
        // a tar stream out on stdout
        let o = env
            .cmd(&["cp", &format!("{c}:/tmp/one.txt"), "-"])
            .output()
            .unwrap();
        assert!(o.status.success());
        let mut ar = tar::Archive::new(&o.stdout[..]);
        let names: Vec<String> = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, vec!["one.txt"]);
    }
    assert_eq!(
        env.berth(&[
            "exec",
            "live",
            "cat",
            "/tmp/one.txt",
            "/tmp/renamed",
            "/tmp/tree/a.txt",
            "/root/a.txt"
        ])
        .ok()
        .stdout,
        "oneoneAA"
    );
    // A tar on stdin.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o600);
    h.set_uid(1234);
    h.set_gid(4321);
    h.set_cksum();
    b.append_data(&mut h, "fromstdin", &b"hello"[..]).unwrap();
    let data = b.into_inner().unwrap();
    env.berth_stdin(&["cp", "-", "live:/tmp"], &data).ok();
    assert_eq!(
        env.berth(&["exec", "live", "stat", "-c", "%u:%g %a", "/tmp/fromstdin"])
            .ok()
            .trimmed(),
        "1234:4321 600"
    );
    // -a: the container's user owns the copies.
    env.berth(&[
        "run", "-d", "--name", "alice", "-u", "alice", "busybox", "sleep", "60",
    ])
    .ok();
    let r = env.berth(&[
        "cp",
        "-a",
        &local.join("one.txt").display().to_string(),
        "alice:/tmp/a",
    ]);
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        env.berth(&["exec", "alice", "stat", "-c", "%u:%g", "/tmp/a"])
            .ok()
            .trimmed(),
        "1000:1000"
    );
    // Errors.
    let r = env.berth(&["cp", "live:/nope", "/tmp/x"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("Could not find the file /nope in container live"),
        "{r:?}"
    );
    let r = env.berth(&["cp", "nope:/etc", "/tmp/x"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("No such container: nope"), "{r:?}");
    let r = env.berth(&["cp", "/tmp", "/tmp"]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr
            .contains("must specify at least one container source"),
        "{r:?}"
    );
}

#[test]
fn cp_follow_link_copies_the_target() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "--name",
        "cc",
        "busybox",
        "sh",
        "-c",
        "echo real > /real && ln -s /real /link",
    ])
    .ok();
    let d = env.dir.path().join("L");
    std::fs::create_dir_all(&d).unwrap();
    env.berth(&["cp", "cc:/link", &d.join("nofollow").display().to_string()])
        .ok();
    assert!(std::fs::symlink_metadata(d.join("nofollow"))
        .unwrap()
        .file_type()
        .is_symlink());
    env.berth(&[
        "cp",
        "-L",
        "cc:/link",
        &d.join("follow").display().to_string(),
    ])
    .ok();
    assert_eq!(std::fs::read_to_string(d.join("follow")).unwrap(), "real\n");
}

/// CVE-2018-15664: a symlink in the container that points at /etc/shadow must resolve inside
/// the container's root, whatever the container does meanwhile.
#[test]
fn cp_resolves_symlinks_inside_the_container() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "-d",
        "--name",
        "evil",
        "busybox",
        "sh",
        "-c",
        "echo container-shadow > /etc/shadow; ln -s /etc/shadow /leak; ln -s ../../../../../etc /up; \
         while true; do rm -rf /swapdir; ln -sfn / /swapdir; rm -f /swapdir; mkdir -p /swapdir; done",
    ])
    .ok();
    env.eventually("the links", || {
        env.berth(&["exec", "evil", "test", "-L", "/up"]).code == 0
    });
    let host_shadow = std::fs::read_to_string("/etc/shadow").unwrap_or_default();
    let d = env.dir.path().join("cve");
    std::fs::create_dir_all(&d).unwrap();
    env.berth(&[
        "cp",
        "-L",
        "evil:/leak",
        &d.join("shadow").display().to_string(),
    ])
    .ok();
    let got = std::fs::read_to_string(d.join("shadow")).unwrap();
    assert_eq!(got, "container-shadow\n");
    env.berth(&[
        "cp",
        "evil:/up/shadow",
        &d.join("shadow2").display().to_string(),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(d.join("shadow2")).unwrap(),
        "container-shadow\n"
    );
    if !host_shadow.is_empty() {
        assert_ne!(got, host_shadow);
    }
    // Writing through the links lands inside the container too.
    let f = d.join("payload");
    std::fs::write(&f, "payload").unwrap();
    let marker = format!("berth-cve-{}", std::process::id());
    let hostile_dest = format!("evil:/up/{marker}");
    let _ = env.berth(&["cp", &f.display().to_string(), &hostile_dest]);
    assert!(
        !Path::new("/etc").join(&marker).exists(),
        "wrote into the host's /etc"
    );
    // Racing a symlink swap never escapes either (the container flips /swapdir).
    for i in 0..30 {
        let _ = env.berth(&[
            "cp",
            &f.display().to_string(),
            &format!("evil:/swapdir/race{i}"),
        ]);
        assert!(
            !Path::new(&format!("/race{i}")).exists(),
            "escaped to the host's /"
        );
    }
}

/// CVE-2019-14271: the daemon never loads a library from the container (docker-tar loaded
/// the container's libnss). A container with booby-trapped NSS libraries and an
/// nsswitch.conf that names them: cp works, keeps numeric owners, and the daemon's memory
/// maps name nothing from the container.
#[test]
fn cp_never_loads_the_containers_libraries() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "run",
        "--name",
        "nss",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /lib/x86_64-linux-gnu /lib64 && \
         for l in /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/libnss_files.so.2 /lib64/libnss_files.so.2; do echo garbage > $l; done && \
         printf 'passwd: files evil\\ngroup: files evil\\n' > /etc/nsswitch.conf && \
         echo data > /owned && chown 1000:1000 /owned",
    ])
    .ok();
    let d = env.dir.path().join("nss");
    std::fs::create_dir_all(&d).unwrap();
    let o = env.cmd(&["cp", "nss:/owned", "-"]).output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let e = ar.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(e.header().uid().unwrap(), 1000);
    assert_eq!(e.header().gid().unwrap(), 1000);
    env.berth(&["cp", &d.display().to_string(), "nss:/tmp/"])
        .ok();
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", env.daemon_pid())).unwrap();
    let data_root = env.data_root.display().to_string();
    let exec_root = env.exec_root.display().to_string();
    for l in maps.lines() {
        assert!(
            !l.contains(&data_root) && !l.contains(&exec_root) && !l.contains("libnss_files"),
            "the daemon mapped {l}"
        );
    }
}

#[test]
fn cp_refuses_devices_and_escapes() {
    let env = Env::new().with_busybox();
    env.berth(&["run", "-d", "--name", "cc", "busybox", "sleep", "60"])
        .ok();
    // A character device.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(1).unwrap();
    h.set_device_minor(1).unwrap();
    h.set_mode(0o666);
    h.set_size(0);
    h.set_path("mem").unwrap();
    h.set_cksum();
    b.append(&h, std::io::empty()).unwrap();
    let r = env.berth_stdin(&["cp", "-", "cc:/tmp"], &b.into_inner().unwrap());
    assert_eq!(r.code, 1, "{r:?}");
    assert_ne!(env.berth(&["exec", "cc", "test", "-e", "/tmp/mem"]).code, 0);
    // ../ out of the destination.
    let marker = format!("berth-cp-escape-{}", std::process::id());
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    let name = format!("../../../../../../../../tmp/{marker}");
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_cksum();
    b.append(&h, &b"x"[..]).unwrap();
    let r = env.berth_stdin(&["cp", "-", "cc:/tmp"], &b.into_inner().unwrap());
    assert_eq!(r.code, 1, "{r:?}");
    assert!(!Path::new("/tmp").join(&marker).exists());
    // A symlink in the archive, then a file written through it.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "esc", "/../../../../../tmp").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, format!("esc/{marker}"), &b"x"[..])
        .unwrap();
    let _ = env.berth_stdin(&["cp", "-", "cc:/tmp"], &b.into_inner().unwrap());
    assert!(!Path::new("/tmp").join(&marker).exists());
}

#[test]
fn prune_and_disk_accounting() {
    let env = Env::new().with_busybox();
    // A second image with a big layer, so the accounting is measured on real bytes.
    env.berth(&[
        "run",
        "--name",
        "big",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/urandom of=/blob bs=1M count=20 2>/dev/null",
    ])
    .ok();
    env.berth(&["commit", "big", "big:1"]).ok();
    env.berth(&["run", "--name", "exited", "busybox", "true"])
        .ok();
    env.berth(&["run", "-d", "--name", "running", "big:1", "sleep", "60"])
        .ok();
    let df = env.berth(&["system", "df"]).ok().stdout;
    let lines: Vec<&str> = df.lines().collect();
    assert!(lines[0].starts_with("TYPE"), "{df}");
    assert!(
        lines[1].starts_with("Images") && lines[2].starts_with("Containers"),
        "{df}"
    );
    // The total matches du of the data root within 2%.
    let total = df_total(&env);
    let du = du_bytes(&env.data_root);
    let diff = (total as f64 - du as f64).abs() / du as f64;
    assert!(diff < 0.02, "system df says {total}, du says {du}");
    let verbose = env.berth(&["system", "df", "-v"]).ok().stdout;
    assert!(verbose.contains("Images space usage:"), "{verbose}");
    assert!(verbose.contains("big"), "{verbose}");

    // container prune removes the stopped ones only.
    let out = env.berth(&["container", "prune", "-f"]).ok().stdout;
    assert!(out.contains("Deleted Containers:"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    let ps = env
        .berth(&["ps", "-a", "--format", "{{.Names}}"])
        .ok()
        .stdout;
    assert_eq!(ps.trim(), "running");
    // image prune (dangling) keeps tagged images; -a keeps the one in use and its parent,
    // and deletes an unused one.
    env.berth(&["tag", "busybox", "spare:1"]).ok();
    env.berth(&["image", "prune", "-f"]).ok();
    assert!(!env
        .berth(&["images", "-q", "spare"])
        .ok()
        .trimmed()
        .is_empty());
    env.berth_stdin(
        &["import", "-", "unused:1"],
        &std::fs::read(env.busybox_tar()).unwrap(),
    )
    .ok();
    env.berth(&["run", "--rm", "unused:1", "sh", "-c", "true"])
        .ok();
    // As Docker: every image no container uses is untagged; busybox stays (untagged) as
    // the parent of big:1, which a container uses.
    let out = env.berth(&["image", "prune", "-a", "-f"]).ok().stdout;
    for l in [
        "untagged: unused:1",
        "untagged: busybox:latest",
        "untagged: spare:1",
        "deleted: sha256:",
    ] {
        assert!(out.contains(l), "{l}: {out}");
    }
    let imgs = env
        .berth(&["images", "--format", "{{.Repository}}"])
        .ok()
        .stdout;
    assert_eq!(imgs.trim(), "big");
    assert_eq!(env.berth(&["images", "-aq"]).ok().stdout.lines().count(), 2);
    // system prune -a with nothing running leaves no layer, blob or snapshot behind.
    env.berth(&["rm", "-f", "running"]).ok();
    let out = env.berth(&["system", "prune", "-a", "-f"]).ok().stdout;
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(env.berth(&["images", "-aq"]).ok().trimmed(), "");
    for sub in ["content/blobs/sha256", "snapshots"] {
        let d = env.data_root.join(sub);
        let left: Vec<_> = std::fs::read_dir(&d)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{sub} still holds {left:?}");
    }
    check_clean(&env);
}

/// The sum of the SIZE column of `system df`, in bytes, from the API's numbers.
fn df_total(env: &Env) -> u64 {
    let body = env_get(env, "/system/df");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let mut total = v["LayersSize"].as_u64().unwrap();
    for c in v["Containers"].as_array().unwrap() {
        total += c["SizeRw"].as_u64().unwrap_or(0);
    }
    total
}

/// GET over the daemon's socket without curl.
fn env_get(env: &Env, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&env.sock).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let i = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    buf[i + 4..].to_vec()
}

fn du_bytes(p: &Path) -> u64 {
    let o = Command::new("du")
        .args(["-s", "-B1"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn system_check_finds_and_repairs() {
    let env = Env::new().with_busybox();
    check_clean(&env);
    // An orphan blob and an orphan snapshot directory.
    let blobs = env.data_root.join("content/blobs/sha256");
    let orphan = b"nobody needs me";
    std::fs::write(blobs.join(sha256_bytes(orphan)), orphan).unwrap();
    let r = env.berth(&["system", "check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("orphan"), "{r:?}");
    let r = env.berth(&["system", "check", "--repair"]);
    assert!(r.stdout.contains("repaired"), "{r:?}");
    check_clean(&env);
    assert!(!blobs.join(sha256_bytes(orphan)).exists());
    // A corrupt layer (a byte of a file in its snapshot flipped: the layer is the snapshot's
    // files and tar-split): found, and the image is marked broken by --repair.
    let id = env
        .berth(&[
            "image",
            "inspect",
            "-f",
            "{{index .RootFS.Layers 0}}",
            "busybox",
        ])
        .ok()
        .trimmed()
        .to_string();
    // The bottom layer's chain id is its diff id.
    let file = env
        .data_root
        .join("snapshots")
        .join(id.trim_start_matches("sha256:"))
        .join("fs/bin/busybox");
    let mut data = std::fs::read(&file).unwrap();
    let i = data.len() / 2;
    data[i] ^= 0xff;
    std::fs::write(&file, data).unwrap();
    let r = env.berth(&["system", "check"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stdout.contains("corrupt"), "{r:?}");
    env.berth(&["system", "check", "--repair"]);
    let r = env.berth(&["run", "--rm", "busybox", "true"]);
    assert_ne!(r.code, 0, "a broken image must not run: {r:?}");
    assert!(r.stderr.contains("broken"), "{r:?}");
    // Loading it again heals it.
    env.berth(&["rmi", "-f", "busybox"]).ok();
    let tar = env.busybox_tar();
    env.berth(&["import", &tar, "busybox"]).ok();
    env.berth(&["run", "--rm", "busybox", "true"]).ok();
}

/// A decompression bomb: daemon.json's `max-layer-size` caps what a layer may unpack to, in
/// import and load alike; nothing of the refused image is left.
#[test]
fn layer_size_cap_stops_decompression_bombs() {
    let mut env = Env::new().with_busybox();
    use std::io::Read;
    // A 64 MiB file of zeros, gzipped to a few dozen KiB.
    let bomb = env.dir.path().join("bomb.tar.gz");
    {
        let f = std::fs::File::create(&bomb).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::best());
        let mut b = tar::Builder::new(gz);
        let mut h = tar::Header::new_gnu();
        h.set_size(64 << 20);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "zeros", std::io::repeat(0).take(64 << 20))
            .unwrap();
        b.into_inner().unwrap().finish().unwrap();
    }
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20);
    // The same bytes as a layer of a saved image.
    let saved = file(&env, "bomb-image.tar");
    env.berth(&["import", &bomb.display().to_string(), "bomb:ok"])
        .ok();
    env.berth(&["save", "-o", &saved, "bomb:ok"]).ok();
    env.berth(&["rmi", "bomb:ok"]).ok();

    env.stop_daemon();
    let cfg = env.dir.path().join("capped.json");
    std::fs::write(&cfg, r#"{"max-layer-size": "8m"}"#).unwrap();
    env.start_daemon_with(Some(&cfg), &[]);
    let before = env.berth(&["images", "-aq"]).ok().stdout;
    let r = env.berth(&["import", &bomb.display().to_string(), "bomb:1"]);
    assert_eq!(r.code, 1, "{r:?}");
    let r = env.berth(&["load", "-i", &saved]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(env.berth(&["images", "-aq"]).ok().stdout, before);
    check_clean(&env);
    // A bad value is refused at start.
    let bad = env.dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"max-layer-size": "lots"}"#).unwrap();
    let scratch = env.dir.path().join("scratch");
    let out = common::run_daemon_expecting_failure(
        &[
            "--config-file",
            &bad.display().to_string(),
            "--data-root",
            &scratch.join("d").display().to_string(),
            "--exec-root",
            &scratch.join("r").display().to_string(),
        ],
        10,
    );
    assert_ne!(out.code, 0, "{out:?}");
}
