use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::*;
use crate::testutil::{describe, mknod, tar_names};

const MARKER: &str = "CONTAINER-SHADOW-MARKER";

/// Raw tar entries (the tar crate's builder refuses hostile names).
#[derive(Default)]
struct RawTar(Vec<u8>);

impl RawTar {
    fn push(
        &mut self,
        name: &str,
        kind: tar::EntryType,
        data: &[u8],
        link: &str,
        mode: u32,
        owner: (u64, u64),
    ) -> &mut Self {
        let mut h = tar::Header::new_ustar();
        let u = h.as_ustar_mut().unwrap();
        u.name[..name.len()].copy_from_slice(name.as_bytes());
        u.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(owner.0);
        h.set_gid(owner.1);
        h.set_mtime(1_600_000_000);
        if kind == tar::EntryType::Char {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.0.extend_from_slice(h.as_bytes());
        self.0.extend_from_slice(data);
        self.0
            .extend(std::iter::repeat_n(0u8, (512 - data.len() % 512) % 512));
        self
    }
    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.push(name, tar::EntryType::Regular, data, "", 0o644, (1234, 5678))
    }
    fn dir(&mut self, name: &str) -> &mut Self {
        self.push(
            name,
            tar::EntryType::Directory,
            b"",
            "",
            0o750,
            (1234, 5678),
        )
    }
    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.push(
            name,
            tar::EntryType::Symlink,
            b"",
            target,
            0o777,
            (1234, 5678),
        )
    }
    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.push(name, tar::EntryType::Link, b"", target, 0o644, (1234, 5678))
    }
    fn bytes(&self) -> Vec<u8> {
        let mut v = self.0.clone();
        v.extend(std::iter::repeat_n(0u8, 1024));
        v
    }
}

/// A fake container rootfs next to a host directory it must never reach.
struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let host = tmp.path().join("host");
        for d in ["etc", "tmp", "bin", "real"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::create_dir_all(host.join("etc")).unwrap();
        fs::write(host.join("etc/shadow"), b"HOST-SECRET").unwrap();
        fs::write(host.join("secret"), b"HOST-SECRET").unwrap();
        fs::write(root.join("etc/shadow"), MARKER).unwrap();
        fs::set_permissions(root.join("etc/shadow"), fs::Permissions::from_mode(0o640)).unwrap();
        fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
        fs::hard_link(root.join("etc/hosts"), root.join("etc/hosts2")).unwrap();
        fs::write(root.join("bin/sh"), b"#!").unwrap();
        symlink("/etc/shadow", root.join("link-shadow")).unwrap();
        symlink(
            "../../../../../../../../etc/shadow",
            root.join("rel-escape"),
        )
        .unwrap();
        symlink("/etc", root.join("etc/dirlink")).unwrap();
        symlink("/nonexistent/x", root.join("broken")).unwrap();
        symlink("loop-b", root.join("loop-a")).unwrap();
        symlink("loop-a", root.join("loop-b")).unwrap();
        // Absolute host paths: inside the container they mean nothing.
        symlink(&host, root.join("hostdir")).unwrap();
        symlink(host.join("secret"), root.join("hostfile")).unwrap();
        Env { tmp }
    }
    fn root(&self) -> PathBuf {
        self.tmp.path().join("root")
    }
    fn host(&self) -> PathBuf {
        self.tmp.path().join("host")
    }
    /// The host side is untouched and nothing new appeared next to the root.
    fn host_untouched(&self) {
        let mut names: Vec<String> = fs::read_dir(self.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["host", "root"]);
        let mut host: Vec<String> = describe(&self.host()).into_keys().collect();
        host.sort();
        assert_eq!(host, ["etc", "etc/shadow", "secret"]);
        assert_eq!(
            fs::read(self.host().join("etc/shadow")).unwrap(),
            b"HOST-SECRET"
        );
        assert_eq!(
            fs::read_to_string(self.root().join("etc/shadow")).unwrap(),
            MARKER
        );
        assert_eq!(
            fs::metadata(self.root().join("etc/shadow"))
                .unwrap()
                .nlink(),
            1
        );
    }
    fn extract(&self, dest: &str, tar: &[u8]) -> Result<(), CopyError> {
        extract_into_root(&self.root(), dest, tar, &ExtractOptions::default())
    }
}

fn read_entries(tar: &[u8]) -> Vec<(String, tar::EntryType, String, Vec<u8>)> {
    let mut ar = tar::Archive::new(tar);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let kind = e.header().entry_type();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, kind, link, data)
        })
        .collect()
}

#[test]
fn path_parsing_follows_moby() {
    let p = CtrPath::parse("etc/../etc/hosts");
    assert_eq!(p.comps, [b"etc".to_vec(), b"hosts".to_vec()]);
    assert!(!p.asserts_dir);
    assert_eq!(p.base, "hosts");
    let p = CtrPath::parse("/etc/");
    assert!(p.asserts_dir);
    assert_eq!(p.base, "etc");
    let p = CtrPath::parse("/etc/.");
    assert!(p.asserts_dir);
    assert_eq!(p.base, ".");
    let p = CtrPath::parse("../../..");
    assert!(p.comps.is_empty());
    assert_eq!(p.base, "/");
    assert_eq!(CtrPath::parse("").base, "/");
    assert_eq!(CtrPath::parse(".").base, ".");
}

#[test]
fn rfc3339() {
    let t = |s: u64, n: u32| rfc3339_nano(UNIX_EPOCH + Duration::new(s, n));
    assert_eq!(t(0, 0), "1970-01-01T00:00:00Z");
    assert_eq!(t(1_600_000_000, 0), "2020-09-13T12:26:40Z");
    assert_eq!(t(1_600_000_000, 120_000_000), "2020-09-13T12:26:40.12Z");
    assert_eq!(t(951_782_400, 1), "2000-02-29T00:00:00.000000001Z");
    assert_eq!(
        rfc3339_nano(UNIX_EPOCH - Duration::from_secs(1)),
        "1969-12-31T23:59:59Z"
    );
}

#[test]
fn header_json() {
    let s = PathStat {
        name: "hosts".into(),
        size: 21,
        mode: 0o644,
        mtime: UNIX_EPOCH + Duration::new(1_600_000_000, 5),
        link_target: String::new(),
    };
    assert_eq!(
        s.to_header_json(),
        r#"{"name":"hosts","size":21,"mode":420,"mtime":"2020-09-13T12:26:40.000000005Z","linkTarget":""}"#
    );
    assert!(!s.is_dir());
}

#[test]
fn stat_resolves_inside_the_root() {
    let env = Env::new();
    let root = env.root();
    let s = stat_in_root(&root, "/etc/hosts").unwrap();
    assert_eq!((s.name.as_str(), s.size, s.mode), ("hosts", 20, 0o644));
    assert_eq!(s.link_target, "");

    // The symlink itself, its target resolved in the container.
    let s = stat_in_root(&root, "/link-shadow").unwrap();
    assert_eq!(s.name, "link-shadow");
    assert_eq!(s.mode, MODE_SYMLINK | 0o777);
    assert_eq!(s.link_target, "/etc/shadow");
    assert_eq!(
        stat_in_root(&root, "rel-escape").unwrap().link_target,
        "/etc/shadow"
    );
    assert_eq!(
        stat_in_root(&root, "/broken").unwrap().link_target,
        "/nonexistent/x"
    );
    assert_eq!(
        stat_in_root(&root, "/etc/dirlink").unwrap().link_target,
        "/etc"
    );
    assert_eq!(
        stat_in_root(&root, "/hostfile").unwrap().link_target,
        env.host().join("secret").display().to_string(),
        "resolved lexically: the host path doesn't exist in the container"
    );
    assert!(stat_in_root(&root, "/loop-a").unwrap_err().kind() == CopyErrorKind::Other);

    // Parents are followed inside the root.
    let s = stat_in_root(&root, "/etc/dirlink/shadow").unwrap();
    assert_eq!(
        (s.name.as_str(), s.size, s.mode),
        ("shadow", MARKER.len() as i64, 0o640)
    );
    // Trailing "/" or "/." follows the last component and asserts a directory.
    let s = stat_in_root(&root, "/etc/dirlink/").unwrap();
    assert_eq!((s.name.as_str(), s.mode & MODE_DIR != 0), ("dirlink", true));
    assert_eq!(stat_in_root(&root, "/etc/.").unwrap().name, ".");
    assert_eq!(stat_in_root(&root, "/").unwrap().name, "/");
    assert!(stat_in_root(&root, "/etc").unwrap().is_dir());
    assert_eq!(
        stat_in_root(&root, "/etc/hosts/").unwrap_err().kind(),
        CopyErrorKind::Other,
        "ENOTDIR, as moby"
    );

    // Host paths are never reached.
    for p in [
        "/hostdir/secret",
        "/hostdir/",
        "/hostfile/",
        "/nope",
        "/etc/nope/x",
    ] {
        let e = stat_in_root(&root, p).unwrap_err();
        assert!(e.is_not_found(), "{p}: {e}");
    }
    assert!(matches!(
        stat_in_root(&env.tmp.path().join("none"), "/"),
        Err(CopyError::Root { .. })
    ));
}

#[test]
fn archive_reads_the_containers_files() {
    let env = Env::new();
    let root = env.root();
    let mut out = Vec::new();
    let s = archive_from_root(&root, "/link-shadow", &mut out).unwrap();
    assert_eq!(s.link_target, "/etc/shadow");
    let e = read_entries(&out);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].0.as_str(), e[0].1, e[0].2.as_str()),
        ("link-shadow", tar::EntryType::Symlink, "/etc/shadow")
    );

    for path in ["/etc/dirlink/shadow", "/rel-escape/", "etc/shadow"] {
        let mut out = Vec::new();
        match archive_from_root(&root, path, &mut out) {
            Ok(_) => {
                let e = read_entries(&out);
                assert_eq!(e.len(), 1, "{path}");
                assert_eq!(e[0].0, "shadow");
                assert_eq!(e[0].3, MARKER.as_bytes(), "{path}");
            }
            // A symlink to a file with a trailing slash: ENOTDIR, as lstat("link/").
            Err(err) => assert!(path.ends_with('/') && err.kind() == CopyErrorKind::Other),
        }
    }

    // A directory, recursively, under its base name.
    let mut out = Vec::new();
    let s = archive_from_root(&root, "/etc", &mut out).unwrap();
    assert!(s.is_dir());
    let e = read_entries(&out);
    let names: Vec<&str> = e.iter().map(|x| x.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "etc/",
            "etc/dirlink",
            "etc/hosts",
            "etc/hosts2",
            "etc/shadow"
        ]
    );
    assert_eq!(e[1].1, tar::EntryType::Symlink);
    assert_eq!(
        (e[3].1, e[3].2.as_str()),
        (tar::EntryType::Link, "etc/hosts")
    );
    assert_eq!(e[4].3, MARKER.as_bytes());

    // "/." contents, rebased on ".", following a symlinked directory.
    let mut out = Vec::new();
    archive_from_root(&root, "/etc/dirlink/.", &mut out).unwrap();
    assert_eq!(
        tar_names(&out),
        ["./", "./dirlink", "./hosts", "./hosts2", "./shadow"]
    );
    let mut out = Vec::new();
    archive_from_root(&root, "/etc/dirlink/", &mut out).unwrap();
    assert_eq!(tar_names(&out)[0], "dirlink/");

    // Host paths are never archived.
    for p in ["/hostdir/secret", "/hostdir/.", "/hostfile/", "/nope"] {
        let e = archive_from_root(&root, p, Vec::new()).unwrap_err();
        assert!(e.is_not_found(), "{p}: {e}");
    }
    // The root archive: everything under "./", host links as links.
    let mut out = Vec::new();
    archive_from_root(&root, "/", &mut out).unwrap();
    let all = read_entries(&out);
    assert_eq!(all[0].0, "./");
    assert!(all.iter().all(|e| !e.3.starts_with(b"HOST-SECRET")));
    env.host_untouched();
}

#[test]
fn archive_then_extract_round_trips() {
    let env = Env::new();
    let root = env.root();
    fs::create_dir_all(root.join("data/sub")).unwrap();
    fs::write(root.join("data/sub/f"), vec![1u8; 70_000]).unwrap();
    fs::set_permissions(root.join("data/sub/f"), fs::Permissions::from_mode(0o4711)).unwrap();
    std::os::unix::fs::lchown(root.join("data/sub"), Some(42), Some(43)).unwrap();
    symlink("../sub/f", root.join("data/l")).unwrap();
    fs::hard_link(root.join("data/sub/f"), root.join("data/sub/g")).unwrap();
    mknod(&root.join("data/fifo"), libc::S_IFIFO, 0o644, 0);
    let mut out = Vec::new();
    archive_from_root(&root, "/data", &mut out).unwrap();
    env.extract("/tmp", &out).unwrap();
    assert_eq!(
        describe(&root.join("tmp/data")),
        describe(&root.join("data"))
    );
    assert_eq!(
        fs::metadata(root.join("tmp/data/sub/f")).unwrap().ino(),
        fs::metadata(root.join("tmp/data/sub/g")).unwrap().ino()
    );
    // Into an existing directory again: merged and replaced, not duplicated.
    env.extract("/tmp", &out).unwrap();
    assert_eq!(
        describe(&root.join("tmp/data")),
        describe(&root.join("data"))
    );
    env.host_untouched();
}

#[test]
fn extract_keeps_or_forces_owners() {
    let env = Env::new();
    let root = env.root();
    let mut t = RawTar::default();
    t.dir("d/")
        .file("d/f", b"hello")
        .symlink("d/l", "/etc/shadow")
        .hardlink("d/h", "d/f");
    t.push("d/p", tar::EntryType::Fifo, b"", "", 0o640, (1234, 5678));
    t.file("implied/deep/f", b"i");
    env.extract("/tmp", &t.bytes()).unwrap();
    let md = fs::symlink_metadata(root.join("tmp/d/f")).unwrap();
    assert_eq!(
        (md.uid(), md.gid(), md.mode() & 0o7777),
        (1234, 5678, 0o644)
    );
    assert_eq!(fs::read(root.join("tmp/d/f")).unwrap(), b"hello");
    assert_eq!(md.mtime(), 1_600_000_000);
    let md = fs::symlink_metadata(root.join("tmp/d")).unwrap();
    assert_eq!(
        (md.uid(), md.mode() & 0o7777, md.mtime()),
        (1234, 0o750, 1_600_000_000)
    );
    assert_eq!(
        fs::read_link(root.join("tmp/d/l")).unwrap(),
        Path::new("/etc/shadow")
    );
    assert_eq!(
        fs::symlink_metadata(root.join("tmp/d/l")).unwrap().uid(),
        1234
    );
    assert_eq!(
        fs::metadata(root.join("tmp/d/h")).unwrap().ino(),
        fs::metadata(root.join("tmp/d/f")).unwrap().ino()
    );
    let md = fs::symlink_metadata(root.join("tmp/d/p")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&md.file_type()));
    assert_eq!((md.uid(), md.mode() & 0o7777), (1234, 0o640));
    let md = fs::metadata(root.join("tmp/implied/deep")).unwrap();
    assert_eq!((md.uid(), md.mode() & 0o7777), (0, 0o755));

    let opts = ExtractOptions {
        chown: Some((7, 8)),
        ..Default::default()
    };
    extract_into_root(&root, "/bin", &t.bytes()[..], &opts).unwrap();
    for p in [
        "bin/d",
        "bin/d/f",
        "bin/d/l",
        "bin/d/p",
        "bin/implied/deep/f",
    ] {
        let md = fs::symlink_metadata(root.join(p)).unwrap();
        assert_eq!((md.uid(), md.gid()), (7, 8), "{p}");
    }
    env.host_untouched();
}

#[test]
fn extract_destination_checks() {
    let env = Env::new();
    let root = env.root();
    let t = RawTar::default().file("f", b"x").bytes();
    assert!(env.extract("/nope", &t).unwrap_err().is_not_found());
    assert!(
        env.extract("/hostdir", &t).unwrap_err().is_not_found(),
        "host path"
    );
    let e = env.extract("/etc/hosts", &t).unwrap_err();
    assert!(e.is_invalid_argument());
    assert_eq!(e.to_string(), "extraction point is not a directory");
    // A symlink to a directory is followed, inside the root.
    env.extract("/etc/dirlink", &t).unwrap();
    assert_eq!(fs::read(root.join("etc/f")).unwrap(), b"x");
    // ".." is lexical, like filepath.Join: this is /etc/tmp, not /tmp.
    assert!(env
        .extract("/etc/dirlink/../tmp/", &t)
        .unwrap_err()
        .is_not_found());
    env.extract("/etc/dirlink/../../tmp/", &t).unwrap();
    assert!(root.join("tmp/f").exists());
    env.host_untouched();
}

#[test]
fn extract_refuses_hostile_archives() {
    let env = Env::new();
    let root = env.root();
    // Symlinks already in the container, under the destination.
    symlink("/etc", root.join("tmp/evil")).unwrap();
    symlink(env.host(), root.join("tmp/hostevil")).unwrap();
    symlink("../../../..", root.join("tmp/up")).unwrap();
    symlink("/tmp/inner-real", root.join("tmp/inner")).unwrap();
    fs::create_dir(root.join("tmp/inner-real")).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot", RawTar::default().file("../escape", b"x").bytes()),
        (
            "dotdot-deep",
            RawTar::default().file("a/../../escape", b"x").bytes(),
        ),
        (
            "dotdot-root",
            RawTar::default().file("/../../escape", b"x").bytes(),
        ),
        (
            "archive symlink then write through it",
            RawTar::default()
                .symlink("l", "/")
                .file("l/pwned", b"x")
                .bytes(),
        ),
        (
            "archive relative symlink then write through it",
            RawTar::default()
                .symlink("l2", "../../../../..")
                .file("l2/etc/pwned", b"x")
                .bytes(),
        ),
        (
            "container symlink to /etc",
            RawTar::default().file("evil/shadow", b"x").bytes(),
        ),
        (
            "container symlink to a host dir",
            RawTar::default().file("hostevil/secret", b"x").bytes(),
        ),
        (
            "container symlink upwards",
            RawTar::default().file("up/pwned", b"x").bytes(),
        ),
        (
            "hardlink ..",
            RawTar::default().hardlink("h", "../etc/shadow").bytes(),
        ),
        (
            "hardlink through container symlink",
            RawTar::default().hardlink("h", "evil/shadow").bytes(),
        ),
        (
            "absolute name",
            RawTar::default().file("/tmp/pwned", b"x").bytes(),
        ),
        (
            "hardlink absolute",
            RawTar::default().hardlink("h", "/etc/shadow").bytes(),
        ),
        (
            "device node",
            RawTar::default()
                .push("null", tar::EntryType::Char, b"", "", 0o666, (0, 0))
                .bytes(),
        ),
        (
            "block device",
            RawTar::default()
                .push("sda", tar::EntryType::Block, b"", "", 0o666, (0, 0))
                .bytes(),
        ),
    ];
    for (what, tar) in cases {
        let e = env.extract("/tmp", &tar).unwrap_err();
        assert!(e.is_invalid_argument(), "{what}: {e}");
        if what.contains("device") {
            assert!(
                e.to_string().contains("refusing to create a device node"),
                "{e}"
            );
        }
        env.host_untouched();
        assert!(
            !root.join("pwned").exists() && !root.join("etc/pwned").exists(),
            "{what}"
        );
        assert!(!root.join("tmp/h").exists(), "{what}");
    }
    // An absolute hardlink target means the destination's own path ("/etc/shadow"
    // → dest/etc/shadow), which doesn't exist there.
    assert!(!root.join("tmp/etc").exists());

    // A symlink staying inside the destination is fine.
    env.extract("/tmp", &RawTar::default().file("inner/ok", b"ok").bytes())
        .unwrap();
    assert_eq!(fs::read(root.join("tmp/inner-real/ok")).unwrap(), b"ok");
    // With the destination at "/", absolute container symlinks are inside it.
    env.extract("/", &RawTar::default().file("tmp/evil/new", b"n").bytes())
        .unwrap();
    assert_eq!(fs::read(root.join("etc/new")).unwrap(), b"n");
    // A final symlink is replaced, never written through.
    symlink("/etc/shadow", root.join("tmp/victim")).unwrap();
    env.extract("/tmp", &RawTar::default().file("victim", b"new").bytes())
        .unwrap();
    assert_eq!(fs::read(root.join("tmp/victim")).unwrap(), b"new");
    env.host_untouched();
    // Garbage is an invalid argument too.
    assert!(env
        .extract("/tmp", &[1u8; 1024][..])
        .unwrap_err()
        .is_invalid_argument());
}

#[test]
fn no_overwrite_dir_non_dir() {
    let env = Env::new();
    let root = env.root();
    fs::create_dir(root.join("tmp/x")).unwrap();
    fs::write(root.join("tmp/y"), b"y").unwrap();
    let opts = ExtractOptions {
        no_overwrite_dir_non_dir: true,
        chown: None,
    };
    let t = RawTar::default().file("x", b"file").bytes();
    let e = extract_into_root(&root, "/tmp", &t[..], &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"cannot overwrite directory "x" with non-directory "/tmp""#
    );
    let t2 = RawTar::default().dir("y/").bytes();
    let e = extract_into_root(&root, "/tmp", &t2[..], &opts).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"cannot overwrite non-directory "y" with directory "/tmp""#
    );
    assert!(root.join("tmp/x").is_dir() && root.join("tmp/y").is_file());
    // Without the option both are replaced.
    env.extract("/tmp", &t).unwrap();
    env.extract("/tmp", &t2).unwrap();
    assert!(root.join("tmp/x").is_file() && root.join("tmp/y").is_dir());
}
