//! Volumes and mounts (issue 6): named, anonymous and image `VOLUME`s, binds, `--mount`,
//! `--tmpfs`, `--volumes-from`, copy-up, local driver options, `volume` commands, `rm -v`;
//! data that outlives containers and daemons; bad input.

mod common;
use common::Env;
use serde_json::Value;

fn json(env: &Env, args: &[&str]) -> Value {
    let o = env.berth(args).ok();
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.stdout))
}

fn mounted(p: &std::path::Path) -> bool {
    let want = p.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

#[test]
fn named_volumes_keep_data_across_containers_and_daemons() {
    let mut env = Env::new().with_busybox();
    assert_eq!(
        env.berth(&["volume", "create", "--label", "app=db", "dbdata"])
            .ok()
            .trimmed(),
        "dbdata"
    );
    let v = json(&env, &["volume", "inspect", "dbdata"]);
    assert_eq!(v[0]["Driver"], "local");
    assert_eq!(v[0]["Labels"]["app"], "db");
    let mountpoint = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert!(
        mountpoint.ends_with("/volumes/dbdata/_data"),
        "{mountpoint}"
    );
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "dbdata:/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/f")).unwrap(),
        "kept\n"
    );
    let df = env.berth(&["system", "df", "-v"]).ok().stdout;
    let line = df
        .lines()
        .find(|l| l.starts_with("dbdata"))
        .unwrap_or_default();
    assert!(line.contains(" 0 ") && line.ends_with("5B"), "{df}");
    // A daemon killed and started again; a new container sees the data.
    env.kill_daemon();
    env.start_daemon();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "dbdata:/data:ro",
            "busybox",
            "cat",
            "/data/f",
        ])
        .ok();
    assert_eq!(o.stdout, "kept\n");
    // Read-only: writes are refused.
    let o = env.berth(&[
        "run",
        "--rm",
        "-v",
        "dbdata:/data:ro",
        "busybox",
        "touch",
        "/data/x",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    // In use (even by a stopped container): not removable.
    env.berth(&[
        "create",
        "--name",
        "holder",
        "-v",
        "dbdata:/data",
        "busybox",
        "true",
    ])
    .ok();
    let o = env.berth(&["volume", "rm", "dbdata"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("volume is in use"), "{o:?}");
    let ls = env.berth(&["volume", "ls"]).ok().stdout;
    assert!(ls.contains("DRIVER") && ls.contains("dbdata"), "{ls}");
    let ls = env
        .berth(&["volume", "ls", "-q", "--filter", "label=app=db"])
        .ok();
    assert_eq!(ls.trimmed(), "dbdata");
    let holder = json(&env, &["inspect", "holder"]);
    let m = &holder[0]["Mounts"][0];
    assert_eq!(m["Type"], "volume");
    assert_eq!(m["Name"], "dbdata");
    assert_eq!(m["Destination"], "/data");
    assert_eq!(m["Source"], mountpoint.as_str());
    env.berth(&["rm", "holder"]).ok();
    assert_eq!(
        env.berth(&["volume", "rm", "dbdata"]).ok().trimmed(),
        "dbdata"
    );
    assert!(!std::path::Path::new(&mountpoint).exists());
    let o = env.berth(&["volume", "inspect", "dbdata"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.stderr.contains("No such volume: dbdata"), "{o:?}");
}

#[test]
fn anonymous_and_image_volumes_copy_up_and_go_with_rm_v() {
    let env = Env::new().with_busybox();
    let ctx = env.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN mkdir -p /seed && echo seeded > /seed/f && chown 7:8 /seed/f\nVOLUME /seed\n",
    )
    .unwrap();
    env.berth(&["build", "-q", "-t", "seeded", ctx.to_str().unwrap()])
        .ok();
    // The image's VOLUME: an anonymous volume, filled with what the image has there.
    env.berth(&[
        "run",
        "--name",
        "a1",
        "seeded",
        "sh",
        "-c",
        "cat /seed/f; stat -c %u:%g /seed/f",
    ])
    .ok();
    let o = env.berth(&["logs", "a1"]).ok();
    assert_eq!(o.stdout, "seeded\n7:8\n");
    let mounts = json(&env, &["inspect", "a1"])[0]["Mounts"].clone();
    let anon = mounts[0]["Name"].as_str().unwrap().to_string();
    assert_eq!(anon.len(), 64, "{mounts}");
    assert!(env
        .berth(&["volume", "ls", "-q"])
        .ok()
        .stdout
        .contains(&anon));
    // A new named volume over it is filled too; one with data is left as it is; nocopy
    // leaves it empty.
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "fresh:/seed",
            "seeded",
            "cat",
            "/seed/f",
        ])
        .ok();
    assert_eq!(o.stdout, "seeded\n");
    env.berth(&[
        "run",
        "--rm",
        "-v",
        "fresh:/seed",
        "seeded",
        "sh",
        "-c",
        "echo mine > /seed/f",
    ])
    .ok();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "fresh:/seed",
            "seeded",
            "cat",
            "/seed/f",
        ])
        .ok();
    assert_eq!(o.stdout, "mine\n");
    let o = env
        .berth(&[
            "run",
            "--rm",
            "-v",
            "empty:/seed:nocopy",
            "seeded",
            "ls",
            "-A",
            "/seed",
        ])
        .ok();
    assert_eq!(o.stdout, "");
    // --rm takes its anonymous volumes with it (Docker's), and a build's RUN steps on an
    // image with a VOLUME leave none behind.
    let vols_before = env.berth(&["volume", "ls", "-q"]).ok().stdout;
    env.berth(&["run", "--rm", "-v", "/tmpvol", "seeded", "true"])
        .ok();
    let ctx2 = env.dir.path().join("ctx2");
    std::fs::create_dir_all(&ctx2).unwrap();
    std::fs::write(
        ctx2.join("Dockerfile"),
        "FROM seeded\nRUN echo step > /step\n",
    )
    .unwrap();
    env.berth(&["build", "-q", "-t", "seeded2", ctx2.to_str().unwrap()])
        .ok();
    assert_eq!(env.berth(&["volume", "ls", "-q"]).ok().stdout, vols_before);
    // -v /path: anonymous too.
    env.berth(&[
        "create", "--name", "a2", "-v", "/scratch", "busybox", "true",
    ])
    .ok();
    let anon2 = json(&env, &["inspect", "a2"])[0]["Mounts"][0]["Name"]
        .as_str()
        .unwrap()
        .to_string();
    // rm -v takes the anonymous volumes, never named ones; plain rm leaves them.
    env.berth(&["rm", "-v", "a1"]).ok();
    env.berth(&["rm", "a2"]).ok();
    let ls = env.berth(&["volume", "ls", "-q"]).ok().stdout;
    assert!(!ls.contains(&anon), "{ls}");
    assert!(
        ls.contains(&anon2) && ls.contains("fresh") && ls.contains("empty"),
        "{ls}"
    );
    // prune takes every volume no container uses.
    env.berth(&[
        "create", "--name", "keep", "-v", "fresh:/x", "busybox", "true",
    ])
    .ok();
    let o = env.berth(&["volume", "prune", "-f"]).ok();
    assert!(o.stdout.contains("Deleted Volumes:"), "{o:?}");
    assert!(
        o.stdout.contains(&anon2) && o.stdout.contains("empty"),
        "{o:?}"
    );
    assert!(o.stdout.contains("Total reclaimed space:"), "{o:?}");
    assert_eq!(env.berth(&["volume", "ls", "-q"]).ok().trimmed(), "fresh");
    env.berth(&["rm", "keep"]).ok();
}

#[test]
fn binds_mounts_tmpfs_and_volumes_from() {
    let env = Env::new().with_busybox();
    let host = env.dir.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from-host\n").unwrap();
    let h = host.to_str().unwrap();
    // -v host:path, both ways; :ro refuses writes.
    env.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{h}:/h"),
        "busybox",
        "sh",
        "-c",
        "cat /h/in > /h/out",
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(host.join("out")).unwrap(),
        "from-host\n"
    );
    let o = env.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{h}:/h:ro"),
        "busybox",
        "touch",
        "/h/x",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    // -v makes a missing source; --mount refuses it.
    let made = env.dir.path().join("made/here");
    env.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/m", made.display()),
        "busybox",
        "true",
    ])
    .ok();
    assert!(made.is_dir());
    let missing = env.dir.path().join("missing");
    let o = env.berth(&[
        "run",
        "--rm",
        "--mount",
        &format!("type=bind,source={},target=/m", missing.display()),
        "busybox",
        "true",
    ]);
    assert_eq!(o.code, 125, "{o:?}");
    assert!(
        o.stderr.contains("bind source path does not exist"),
        "{o:?}"
    );
    assert!(!missing.exists());
    // --mount of each type; --tmpfs.
    let o = env
        .berth(&[
            "run", "--rm",
            "--mount", &format!("type=bind,src={h},dst=/b,readonly"),
            "--mount", "type=volume,src=mvol,dst=/v",
            "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m",
            "--tmpfs", "/run2:size=2m",
            "busybox", "sh", "-c",
            "cat /b/in; touch /b/x 2>/dev/null || echo ro; echo v > /v/f; grep -E ' /(t|run2) ' /proc/mounts",
        ])
        .ok();
    assert!(o.stdout.contains("from-host\nro\n"), "{o:?}");
    assert!(
        o.stdout.contains("tmpfs /t tmpfs") && o.stdout.contains("size=1024k"),
        "{o:?}"
    );
    assert!(
        o.stdout.contains("tmpfs /run2 tmpfs") && o.stdout.contains("size=2048k"),
        "{o:?}"
    );
    // --volumes-from: the same volumes, read-only when asked.
    env.berth(&[
        "create",
        "--name",
        "src",
        "-v",
        "shared:/shared",
        "busybox",
        "true",
    ])
    .ok();
    env.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo s > /shared/f",
    ])
    .ok();
    let o = env
        .berth(&[
            "run",
            "--rm",
            "--volumes-from",
            "src:ro",
            "busybox",
            "cat",
            "/shared/f",
        ])
        .ok();
    assert_eq!(o.stdout, "s\n");
    let o = env.berth(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "touch",
        "/shared/g",
    ]);
    assert_ne!(o.code, 0, "{o:?}");
    env.berth(&["rm", "src"]).ok();
}

#[test]
fn local_driver_options_mount_while_used() {
    let env = Env::new().with_busybox();
    env.berth(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m,mode=0750",
        "ram",
    ])
    .ok();
    let v = json(&env, &["volume", "inspect", "ram"]);
    assert_eq!(v[0]["Options"]["type"], "tmpfs");
    let data = std::path::PathBuf::from(v[0]["Mountpoint"].as_str().unwrap());
    env.berth(&[
        "run", "-d", "--name", "r1", "-v", "ram:/ram", "busybox", "sleep", "300",
    ])
    .ok();
    assert!(mounted(&data));
    let o = env
        .berth(&["exec", "r1", "grep", " /ram ", "/proc/mounts"])
        .ok();
    assert!(
        o.stdout.contains("tmpfs") && o.stdout.contains("size=1024k"),
        "{o:?}"
    );
    env.berth(&["rm", "-f", "r1"]).ok();
    env.eventually("the volume is unmounted", || !mounted(&data));
    env.berth(&["volume", "rm", "ram"]).ok();
}

#[test]
fn bad_volume_input_is_refused_and_changes_nothing() {
    let env = Env::new().with_busybox();
    let before = env.berth(&["volume", "ls", "-q"]).ok().stdout;
    for (args, msg) in [
        (
            vec!["volume", "create", "bad$name"],
            "includes invalid characters",
        ),
        (
            vec!["volume", "create", "-d", "nfs9", "v1"],
            "plugin \"nfs9\" not found",
        ),
        (
            vec!["volume", "create", "-o", "bogus=1", "v2"],
            "invalid option key",
        ),
        (
            vec!["volume", "rm", "nosuchvol"],
            "No such volume: nosuchvol",
        ),
        (
            vec!["run", "--rm", "-v", "v3:/d:bogus", "busybox", "true"],
            "invalid mode: bogus",
        ),
        (
            vec!["run", "--rm", "-v", "v4:rel", "busybox", "true"],
            "mount path must be absolute",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=foo,dst=/x",
                "busybox",
                "true",
            ],
            "foo",
        ),
        (
            vec![
                "run", "--rm", "-v", "v5:/d", "-v", "v6:/d", "busybox", "true",
            ],
            "Duplicate mount point",
        ),
        (
            vec![
                "run",
                "--rm",
                "--volumes-from",
                "nosuchc",
                "busybox",
                "true",
            ],
            "No such container",
        ),
    ] {
        let o = env.berth(&args);
        assert_ne!(o.code, 0, "{args:?}: {o:?}");
        assert!(o.stderr.contains(msg), "{args:?}: {o:?}");
    }
    assert_eq!(env.berth(&["volume", "ls", "-q"]).ok().stdout, before);
    assert_eq!(env.berth(&["ps", "-aq"]).ok().trimmed(), "");
}

#[test]
fn docker_cli_drives_volumes() {
    let env = Env::new().with_busybox();
    let Some(o) = env.docker(&["volume", "create", "dv"]) else {
        return;
    };
    assert_eq!(o.code, 0, "{o:?}");
    let o = env
        .docker(&[
            "run",
            "--rm",
            "-v",
            "dv:/d",
            "busybox",
            "sh",
            "-c",
            "echo hi > /d/f",
        ])
        .unwrap();
    assert_eq!(o.code, 0, "{o:?}");
    let o = env
        .docker(&[
            "run",
            "--rm",
            "--mount",
            "src=dv,dst=/d",
            "busybox",
            "cat",
            "/d/f",
        ])
        .unwrap();
    assert_eq!(o.stdout, "hi\n", "{o:?}");
    let o = env
        .docker(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .unwrap();
    assert!(o.stdout.contains("dv local"), "{o:?}");
    let o = env
        .docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", "dv"])
        .unwrap();
    assert!(o.stdout.trim().ends_with("/volumes/dv/_data"), "{o:?}");
    let o = env.docker(&["volume", "rm", "dv"]).unwrap();
    assert_eq!(o.code, 0, "{o:?}");
}
