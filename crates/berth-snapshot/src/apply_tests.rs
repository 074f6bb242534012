use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use super::*;

/// Builds tar entries with raw names (the tar crate's builder refuses `..`).
struct TarBuilder {
    out: Vec<u8>,
}

impl TarBuilder {
    fn new() -> Self {
        TarBuilder { out: Vec::new() }
    }

    fn header(name: &str, kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let bytes = name.as_bytes();
        assert!(bytes.len() < 100);
        h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.out.extend_from_slice(h.as_bytes());
        self.out.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.out.extend(std::iter::repeat_n(0u8, pad));
        self
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let h = Self::header(name, tar::EntryType::Regular, data.len() as u64, 0o644);
        self.push(h, data)
    }

    fn dir(&mut self, name: &str) -> &mut Self {
        let h = Self::header(name, tar::EntryType::Directory, 0, 0o755);
        self.push(h, &[])
    }

    fn link(&mut self, kind: tar::EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(name, kind, 0, 0o777);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        self.push(h, &[])
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Symlink, name, target)
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        self.link(tar::EntryType::Link, name, target)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.out);
        out.extend(std::iter::repeat_n(0u8, 1024));
        out
    }
}

struct Env {
    tmp: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("layer")).unwrap();
        fs::create_dir(tmp.path().join("outside")).unwrap();
        Env { tmp }
    }
    fn layer(&self) -> PathBuf {
        self.tmp.path().join("layer")
    }
    fn outside(&self) -> PathBuf {
        self.tmp.path().join("outside")
    }
    fn apply(&self, tar: &[u8]) -> Result<ApplyStats> {
        apply_layer(tar, &self.layer(), &ApplyOptions::default())
    }
    fn outside_is_empty(&self) -> bool {
        fs::read_dir(self.outside()).unwrap().count() == 0
            && fs::read_dir(self.tmp.path()).unwrap().count() == 2
    }
}

#[test]
fn applies_a_normal_layer() {
    let env = Env::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o750);
    h.set_uid(1000);
    h.set_gid(1001);
    h.set_mtime(1_500_000_000);
    h.set_size(0);
    b.append_data(&mut h, "etc/", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o4755);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_400_000_000);
    h.set_size(5);
    b.append_data(&mut h, "etc/hello", &b"hello"[..]).unwrap();
    // A file in a directory with no entry of its own.
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o600);
    h.set_size(3);
    b.append_data(&mut h, "usr/lib/deep/x", &b"abc"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mtime(1_300_000_000);
    b.append_link(&mut h, "etc/link", "/nowhere/at/all")
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(&mut h, "etc/hard", "etc/hello").unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Fifo);
    h.set_mode(0o640);
    h.set_size(0);
    b.append_data(&mut h, "fifo", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Char);
    h.set_mode(0o666);
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_size(0);
    b.append_data(&mut h, "null", &[][..]).unwrap();
    // xattr through a pax header
    b.append_pax_extensions([("SCHILY.xattr.user.test", &b"value"[..])])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_mode(0o644);
    h.set_size(1);
    b.append_data(&mut h, "withxattr", &b"x"[..]).unwrap();
    // whiteouts
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o600);
    b.append_data(&mut h, "etc/.wh.removed", &[][..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o600);
    b.append_data(&mut h, "usr/.wh..wh..opq", &[][..]).unwrap();
    let tar = b.into_inner().unwrap();

    let stats = env.apply(&tar).unwrap();
    assert_eq!(stats.size, 5 + 3 + 1);
    assert_eq!(stats.bytes_read, tar.len() as u64);
    let l = env.layer();

    let md = fs::metadata(l.join("etc")).unwrap();
    assert!(md.is_dir());
    assert_eq!(md.permissions().mode() & 0o7777, 0o750);
    assert_eq!((md.uid(), md.gid()), (1000, 1001));
    assert_eq!(md.mtime(), 1_500_000_000, "directory mtime restored last");

    let md = fs::metadata(l.join("etc/hello")).unwrap();
    assert_eq!(fs::read(l.join("etc/hello")).unwrap(), b"hello");
    assert_eq!(md.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!(md.mtime(), 1_400_000_000);
    assert_eq!(md.nlink(), 2);
    assert_eq!(fs::metadata(l.join("etc/hard")).unwrap().ino(), md.ino());

    assert_eq!(fs::read(l.join("usr/lib/deep/x")).unwrap(), b"abc");
    let link = fs::symlink_metadata(l.join("etc/link")).unwrap();
    assert!(link.file_type().is_symlink());
    assert_eq!(link.mtime(), 1_300_000_000);
    assert_eq!(
        fs::read_link(l.join("etc/link")).unwrap(),
        Path::new("/nowhere/at/all")
    );
    let fifo = fs::metadata(l.join("fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.permissions().mode() & 0o7777, 0o640);
    let null = fs::metadata(l.join("null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(
        xattr::get(l.join("withxattr"), "user.test")
            .unwrap()
            .as_deref(),
        Some(&b"value"[..])
    );
    let wh = fs::symlink_metadata(l.join("etc/removed")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!l.join("etc/.wh.removed").exists());
    assert_eq!(
        xattr::get(l.join("usr"), "trusted.overlay.opaque")
            .unwrap()
            .as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l.join("usr/.wh..wh..opq").exists());
}

#[test]
fn refuses_dotdot() {
    let env = Env::new();
    let tar = TarBuilder::new().file("../x", b"pwned").finish();
    let err = env.apply(&tar).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid tar entry \"../x\": path escapes the layer"
    );
    let tar = TarBuilder::new()
        .dir("a/")
        .file("a/../../outside/x", b"pwned")
        .finish();
    let err = env.apply(&tar).unwrap_err();
    assert!(matches!(err, ApplyError::PathEscape { .. }), "{err}");
    assert!(env.outside_is_empty());
}

#[test]
fn refuses_absolute_paths() {
    let env = Env::new();
    let target = env.outside().join("abs");
    let name = target.to_str().unwrap().to_string();
    let tar = TarBuilder::new().file(&name, b"pwned").finish();
    let err = env.apply(&tar).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid tar entry {name:?}: path escapes the layer")
    );
    assert!(env.outside_is_empty());
    assert!(!target.exists());
}

#[test]
fn refuses_writing_through_symlinked_parent() {
    let env = Env::new();
    let outside = env.outside();
    let tar = TarBuilder::new()
        .symlink("link", outside.to_str().unwrap())
        .file("link/file", b"pwned")
        .finish();
    let err = env.apply(&tar).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid tar entry \"link/file\": parent \"link\" is a symlink, refusing to write through it"
    );
    assert!(env.outside_is_empty());

    // relative symlink climbing out, nested, and a directory created through it
    let env = Env::new();
    let tar = TarBuilder::new()
        .dir("a/")
        .symlink("a/up", "../../outside")
        .dir("a/up/newdir/")
        .finish();
    let err = env.apply(&tar).unwrap_err();
    assert!(matches!(err, ApplyError::SymlinkParent { .. }), "{err}");
    assert!(env.outside_is_empty());

    // whiteouts and opaque markers through a symlink are refused too
    let env = Env::new();
    let tar = TarBuilder::new()
        .symlink("l", env.outside().to_str().unwrap())
        .file("l/.wh..wh..opq", b"")
        .finish();
    assert!(matches!(
        env.apply(&tar).unwrap_err(),
        ApplyError::SymlinkParent { .. }
    ));
    assert!(xattr::get(env.outside(), "trusted.overlay.opaque")
        .unwrap()
        .is_none());
}

#[test]
fn file_replacing_symlink_does_not_follow_it() {
    let env = Env::new();
    let victim = env.outside().join("victim");
    let tar = TarBuilder::new()
        .symlink("x", victim.to_str().unwrap())
        .file("x", b"data")
        .finish();
    env.apply(&tar).unwrap();
    assert!(!victim.exists());
    assert!(env.outside_is_empty());
    let md = fs::symlink_metadata(env.layer().join("x")).unwrap();
    assert!(md.is_file());
}

#[test]
fn refuses_escaping_hardlinks() {
    let env = Env::new();
    let tar = TarBuilder::new()
        .hardlink("passwd", "../../etc/passwd")
        .finish();
    let err = env.apply(&tar).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid tar entry \"passwd\": hardlink target \"../../etc/passwd\" escapes the layer"
    );
    assert!(!env.layer().join("passwd").exists());

    // through a symlinked directory
    let env = Env::new();
    fs::write(env.outside().join("secret"), b"s").unwrap();
    let tar = TarBuilder::new()
        .symlink("evil", env.outside().to_str().unwrap())
        .hardlink("stolen", "evil/secret")
        .finish();
    let err = env.apply(&tar).unwrap_err();
    assert!(matches!(err, ApplyError::HardlinkEscape { .. }), "{err}");
    assert!(!env.layer().join("stolen").exists());
    assert_eq!(
        fs::metadata(env.outside().join("secret")).unwrap().nlink(),
        1
    );

    // to a symlink that points outside: links the symlink itself, not its target
    let env = Env::new();
    fs::write(env.outside().join("secret"), b"s").unwrap();
    let tar = TarBuilder::new()
        .symlink("sl", env.outside().join("secret").to_str().unwrap())
        .hardlink("hl", "sl")
        .finish();
    env.apply(&tar).unwrap();
    assert!(fs::symlink_metadata(env.layer().join("hl"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::metadata(env.outside().join("secret")).unwrap().nlink(),
        1
    );

    // missing target
    let env = Env::new();
    let tar = TarBuilder::new().hardlink("a", "nope").finish();
    assert!(matches!(
        env.apply(&tar).unwrap_err(),
        ApplyError::HardlinkMissing { .. }
    ));
}

#[test]
fn decompression_bomb_cap() {
    let env = Env::new();
    let data = vec![0u8; 1 << 20];
    let tar = TarBuilder::new().file("big", &data).finish();
    let err = apply_layer(
        &tar[..],
        &env.layer(),
        &ApplyOptions {
            max_size: 64 * 1024,
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "layer exceeds the maximum uncompressed size of 65536 bytes"
    );
}

#[test]
fn later_entries_replace_earlier_ones() {
    let env = Env::new();
    let tar = TarBuilder::new()
        .file("a", b"file")
        .dir("a/")
        .file("a/inner", b"x")
        .dir("b/")
        .file("b/child", b"y")
        .file("b", b"now a file")
        .dir("a/")
        .finish();
    env.apply(&tar).unwrap();
    assert_eq!(fs::read(env.layer().join("a/inner")).unwrap(), b"x");
    assert_eq!(fs::read(env.layer().join("b")).unwrap(), b"now a file");
}

#[test]
fn garbage_is_an_archive_error() {
    let env = Env::new();
    let junk = vec![0x41u8; 2048];
    let err = env.apply(&junk).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid tar archive: "),
        "{err}"
    );
    // truncated data
    let mut tar = TarBuilder::new().file("f", &[1u8; 4096]).finish();
    tar.truncate(1024);
    let err = env.apply(&tar).unwrap_err();
    assert!(
        err.to_string().starts_with("invalid tar archive: "),
        "{err}"
    );
}
