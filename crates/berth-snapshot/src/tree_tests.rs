use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::process::Command;

use super::*;
use crate::testutil::{describe, lchown, mknod, set_mtime, tar_names};
use crate::{apply_layer, ApplyOptions};

/// A tree with one of everything.
fn sample(root: &Path) {
    fs::create_dir_all(root.join("etc/deep/er")).unwrap();
    fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/deep/er/f"), vec![7u8; 200_000]).unwrap();
    fs::set_permissions(root.join("etc/deep"), fs::Permissions::from_mode(0o2750)).unwrap();
    lchown(&root.join("etc/deep"), 12, 34);
    fs::write(root.join("suid"), b"x").unwrap();
    fs::set_permissions(root.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    lchown(&root.join("suid"), 1000, 3_000_000);
    fs::create_dir(root.join("tmp")).unwrap();
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    // A symlink out of the tree: must be archived as a link, not followed.
    symlink("/etc/shadow", root.join("shadow-link")).unwrap();
    symlink("../../passwd", root.join("etc/deep/rel")).unwrap();
    fs::hard_link(root.join("etc/passwd"), root.join("hard")).unwrap();
    mknod(&root.join("fifo"), libc::S_IFIFO, 0o640, 0);
    mknod(
        &root.join("null"),
        libc::S_IFCHR,
        0o666,
        libc::makedev(1, 3),
    );
    mknod(
        &root.join("blk"),
        libc::S_IFBLK,
        0o660,
        libc::makedev(7, 200),
    );
    let _sock = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    xattr::set(root.join("etc/passwd"), "user.test", b"hello").unwrap();
    xattr::set(root.join("etc"), "user.dir", b"d").unwrap();
    let long = "n".repeat(120);
    fs::write(root.join(&long), b"long").unwrap();
    symlink("t".repeat(150), root.join("long-target")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    for p in ["etc/passwd", "suid", "shadow-link", "fifo", "null", "empty"] {
        set_mtime(&root.join(p), 1_500_000_000);
    }
}

#[test]
fn export_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    sample(&src);
    let mut out = Vec::new();
    let n = write_tree(&src, &mut out).unwrap();
    assert_eq!(n as usize, out.len());
    let names = tar_names(&out);
    assert!(names.contains(&"etc/".to_string()), "{names:?}");
    assert!(names.contains(&"etc/passwd".to_string()));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("./") || n.starts_with('/')));
    assert!(!names.contains(&"sock".to_string()), "sockets are skipped");
    // Sorted depth-first.
    let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
    assert!(
        pos("blk") < pos("empty")
            && pos("etc/") < pos("etc/deep/")
            && pos("etc/deep/er/f") < pos("etc/passwd")
    );
    // The second name of the hardlinked file is a tar hardlink.
    let mut ar = tar::Archive::new(&out[..]);
    let link = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path_bytes().as_ref() == b"hard")
        .unwrap();
    assert_eq!(link.header().entry_type(), tar::EntryType::Link);
    assert_eq!(link.link_name_bytes().unwrap().as_ref(), b"etc/passwd");

    let dst = tmp.path().join("dst");
    fs::create_dir(&dst).unwrap();
    apply_layer(&out[..], &dst, &ApplyOptions::default()).unwrap();
    let mut want = describe(&src);
    want.remove("sock");
    assert_eq!(describe(&dst), want);
    // Same inode for the hardlink pair.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs::metadata(dst.join("hard")).unwrap().ino(),
        fs::metadata(dst.join("etc/passwd")).unwrap().ino()
    );
}

#[test]
fn gnu_tar_reads_the_export() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    sample(&src);
    let tarfile = tmp.path().join("out.tar");
    write_tree(&src, fs::File::create(&tarfile).unwrap()).unwrap();
    let dst = tmp.path().join("gnu");
    fs::create_dir(&dst).unwrap();
    let st = Command::new("tar")
        .args([
            "-x",
            "--xattrs",
            "--xattrs-include=user.*",
            "-p",
            "--same-owner",
            "-f",
        ])
        .arg(&tarfile)
        .arg("-C")
        .arg(&dst)
        .status()
        .unwrap();
    assert!(st.success());
    let mut want = describe(&src);
    want.remove("sock");
    assert_eq!(describe(&dst), want);
}

#[test]
fn missing_root_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = write_tree(&tmp.path().join("nope"), Vec::new()).unwrap_err();
    assert!(matches!(err, TreeError::Root { .. }), "{err}");
    // A symlink as the root is refused too (never followed).
    symlink(tmp.path(), tmp.path().join("l")).unwrap();
    assert!(write_tree(&tmp.path().join("l"), Vec::new()).is_err());
}

#[test]
fn empty_tree_is_just_the_end_marker() {
    let tmp = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    assert_eq!(write_tree(tmp.path(), &mut out).unwrap(), 1024);
    assert!(out.iter().all(|b| *b == 0));
}

/// `BERTH_BENCH_TREE=<dir> BERTH_BENCH_OUT=<file> cargo test --release -p berth-snapshot
/// bench_write_tree -- --ignored --nocapture`: times an export of a real tree,
/// to compare with `tar -cf <file> -C <dir> .`.
#[test]
#[ignore]
fn bench_write_tree() {
    let (Some(dir), Some(out)) = (
        std::env::var_os("BERTH_BENCH_TREE"),
        std::env::var_os("BERTH_BENCH_OUT"),
    ) else {
        return;
    };
    let start = std::time::Instant::now();
    let n = write_tree(Path::new(&dir), fs::File::create(out).unwrap()).unwrap();
    eprintln!("write_tree: {n} bytes in {:?}", start.elapsed());
}

#[test]
fn quiescent_walk_writes_the_same_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir(&root).unwrap();
    sample(&root);
    let mut a = Vec::new();
    let mut b = Vec::new();
    write_tree(&root, &mut a).unwrap();
    write_tree_quiescent(&root, &mut b).unwrap();
    assert!(a.len() > 200_000);
    assert_eq!(a, b);
}
