//! End-to-end: images through the berth CLI.

mod common;
use common::Env;
use std::process::Command;

#[test]
fn import_from_file_stdin_and_url_with_changes() {
    let env = Env::new();
    let tar = env.busybox_tar();
    let id = env
        .berth(&[
            "import",
            "-c",
            "CMD [\"echo\", \"from-cmd\"]",
            "-c",
            "ENV GREETING=hi",
            "-m",
            "my import",
            &tar,
            "bb:1",
        ])
        .ok()
        .trimmed()
        .to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(
        env.berth(&["run", "--rm", "bb:1"]).ok().stdout,
        "from-cmd\n"
    );
    assert_eq!(
        env.berth(&["run", "--rm", "bb:1", "sh", "-c", "echo $GREETING"])
            .ok()
            .stdout,
        "hi\n"
    );
    let hist = env.berth(&["history", "bb:1"]).ok().stdout;
    assert!(hist.contains("my import"), "{hist}");
    // stdin
    let data = std::fs::read(&tar).unwrap();
    env.berth_stdin(&["import", "-", "bb:stdin"], &data).ok();
    // xz and bzip2, which docker reads too
    {
        use std::io::Write;
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 1);
        xz.write_all(&data).unwrap();
        env.berth_stdin(&["import", "-", "bb:xz"], &xz.finish().unwrap())
            .ok();
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data).unwrap();
        env.berth_stdin(&["import", "-", "bb:bz2"], &bz.finish().unwrap())
            .ok();
        for t in ["bb:xz", "bb:bz2"] {
            let o = env.berth(&["run", "--rm", t, "echo", "unpacked"]).ok();
            assert_eq!(o.trimmed(), "unpacked");
        }
    }
    // a URL, served inside the daemon's network namespace
    let port = 18000 + (rand::random::<u16>() % 1000);
    let dir = std::path::Path::new(&tar)
        .parent()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut server = env
        .in_daemon_netns(&[
            "python3",
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            &dir,
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let name = std::path::Path::new(&tar)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/{name}");
    let mut ok = false;
    for _ in 0..50 {
        if env.berth(&["import", &url, "bb:url"]).code == 0 {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(ok, "import from {url} failed");
    let images = env.berth(&["images"]).ok().stdout;
    let header = images.lines().next().unwrap();
    for col in ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"] {
        assert!(header.contains(col), "{header}");
    }
    for tag in ["1", "stdin", "url"] {
        assert!(
            images
                .lines()
                .any(|l| l.starts_with("bb ") && l.contains(&format!(" {tag} "))),
            "{images}"
        );
    }
}

#[test]
fn images_filters_quiet_tag_and_rmi() {
    let env = Env::new().with_busybox();
    let id = env
        .berth(&["images", "-q", "busybox"])
        .ok()
        .trimmed()
        .to_string();
    assert_eq!(id.len(), 12);
    let full = env
        .berth(&["images", "-q", "--no-trunc", "busybox"])
        .ok()
        .trimmed()
        .to_string();
    assert_eq!(full.len(), 71);
    assert!(full.starts_with("sha256:") && full[7..].starts_with(&id));
    env.berth(&["tag", "busybox", "mine/box"]).ok();
    let o = env.berth(&["images", "mine/box:latest"]).ok().stdout;
    assert!(o.contains("mine/box") && o.contains(&id), "{o}");
    // a name lists the rows of that name only, not the image's other names; patterns are
    // Go's path.Match, against the name and tag, then the name
    env.berth(&["tag", "busybox", "mine/box:v2"]).ok();
    env.berth(&["tag", "busybox", "ubuntu:14.04"]).ok();
    let repos = |args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = env
            .berth(args)
            .ok()
            .stdout
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                format!("{}:{}", f[0], f[1])
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        repos(&["images", "mine/box"]),
        ["mine/box:latest", "mine/box:v2"]
    );
    assert_eq!(repos(&["images", "mine/box:v2"]), ["mine/box:v2"]);
    assert_eq!(
        repos(&["images", "--filter", "reference=*/*"]),
        ["mine/box:latest", "mine/box:v2"]
    );
    // (`*` does not cross a `/`, as in docker)
    assert_eq!(
        repos(&["images", "--filter", "reference=*:latest"]),
        ["busybox:latest"]
    );
    assert_eq!(repos(&["images", "ubun*:1*"]), ["ubuntu:14.04"]);
    assert_eq!(repos(&["images", "nothing*"]), Vec::<String>::new());
    assert_eq!(
        env.berth(&["images", "-q", "mine/box"])
            .ok()
            .stdout
            .lines()
            .count(),
        2
    );
    env.berth(&["rmi", "mine/box:v2", "ubuntu:14.04"]).ok();
    let o = env
        .berth(&["image", "inspect", "--format", "{{.Id}}", "mine/box"])
        .ok();
    assert_eq!(o.trimmed(), full);
    // rmi of one tag untags only
    let o = env.berth(&["rmi", "mine/box"]).ok();
    assert_eq!(o.trimmed(), "Untagged: mine/box:latest");
    // used by a container: refused, then forced
    env.berth(&["create", "--name", "user", "busybox", "true"])
        .ok();
    let o = env.berth(&["rmi", "busybox"]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("conflict: unable to remove repository reference \"busybox\""),
        "{o:?}"
    );
    env.berth(&["rm", "user"]).ok();
    let o = env.berth(&["rmi", "busybox"]).ok();
    assert!(o.stdout.contains("Untagged: busybox:latest"), "{o:?}");
    assert!(o.stdout.contains(&format!("Deleted: {full}")), "{o:?}");
    assert_eq!(env.berth(&["images", "-q"]).ok().trimmed(), "");
    let o = env.berth(&["rmi", "busybox"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("No such image: busybox:latest"), "{o:?}");
    // the store holds no layer any more
    let snaps = std::fs::read_dir(env.data_root.join("snapshots"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(snaps, 0);
}

#[test]
fn hostile_tarball_is_refused_and_changes_nothing() {
    let env = Env::new();
    let dir = env.dir.path().join("evil");
    std::fs::create_dir_all(&dir).unwrap();
    let target = env.dir.path().join("escaped");
    // ../ entry, made with python's tarfile (tar(1) refuses to write one).
    let tar = env.dir.path().join("evil.tar");
    let script = format!(
        "import tarfile,io\nt=tarfile.open('{}','w')\ni=tarfile.TarInfo('../../../../{}')\nd=b'pwned'\ni.size=len(d)\nt.addfile(i,io.BytesIO(d))\nt.close()",
        tar.display(),
        target.display().to_string().trim_start_matches('/')
    );
    assert!(Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success());
    let o = env.berth(&["import", tar.to_str().unwrap(), "evil"]);
    assert_eq!(o.code, 1, "{o:?}");
    assert!(!o.stderr.is_empty());
    assert!(!target.exists());
    // symlink parent escape
    let tar2 = env.dir.path().join("evil2.tar");
    let script = format!(
        "import tarfile,io\nt=tarfile.open('{}','w')\nl=tarfile.TarInfo('link')\nl.type=tarfile.SYMTYPE\nl.linkname='{}'\nt.addfile(l)\ni=tarfile.TarInfo('link/file')\nd=b'pwned'\ni.size=len(d)\nt.addfile(i,io.BytesIO(d))\nt.close()",
        tar2.display(),
        dir.display()
    );
    assert!(Command::new("python3")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success());
    let _ = env.berth(&["import", tar2.to_str().unwrap(), "evil2"]);
    assert!(
        !dir.join("file").exists(),
        "a write escaped through a symlink"
    );
    // garbage
    let junk = env.dir.path().join("junk.tar");
    std::fs::write(&junk, b"this is not a tarball at all").unwrap();
    let o = env.berth(&["import", junk.to_str().unwrap(), "junk"]);
    assert_eq!(o.code, 1, "{o:?}");
    let o = env.berth(&["images", "-q"]).ok();
    assert!(o.trimmed().lines().count() <= 1, "{o:?}");
    assert!(!env.berth(&["images"]).ok().stdout.contains("evil "));
}

#[test]
fn version_and_info() {
    let env = Env::new().with_busybox();
    env.berth(&["run", "-d", "busybox", "sleep", "100"]).ok();
    env.berth(&["create", "busybox", "true"]).ok();
    let info = env.berth(&["info"]).ok().stdout;
    for s in [
        "Containers: 2",
        "Running: 1",
        "Stopped: 1",
        "Images: 1",
        "Storage Driver: overlay2",
        "Cgroup Version:",
    ] {
        assert!(info.contains(s), "info lacks {s}: {info}");
    }
    assert!(info.contains(env.data_root.to_str().unwrap()), "{info}");
    let v = env.berth(&["version"]).ok().stdout;
    assert!(v.contains("Server") && v.contains("API version"), "{v}");
}
