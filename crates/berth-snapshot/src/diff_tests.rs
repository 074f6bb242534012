use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

use super::*;
use crate::testutil::{describe, mknod, tar_names, Overlay};
use crate::{apply_layer, ApplyOptions};

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.to_string(),
        kind,
    }
}

fn render(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .map(|c| format!("{} {}", c.kind.letter(), c.path))
        .collect()
}

/// Two image layers: `bottom` with a small tree, `top` deleting `/gone`
/// (overlay whiteout) and making `/opq` opaque.
fn layers(tmp: &Path) -> Vec<PathBuf> {
    let bottom = tmp.join("bottom");
    let top = tmp.join("top");
    for d in [
        "etc",
        "bin",
        "dir/sub",
        "keep",
        "gone",
        "opq/old",
        "unchanged",
    ] {
        fs::create_dir_all(bottom.join(d)).unwrap();
    }
    fs::write(bottom.join("etc/passwd"), b"root:x:0:0\n").unwrap();
    fs::write(bottom.join("etc/hostname"), b"h\n").unwrap();
    fs::write(bottom.join("bin/sh"), b"#!sh").unwrap();
    fs::write(bottom.join("dir/a"), b"a").unwrap();
    fs::write(bottom.join("dir/sub/b"), b"b").unwrap();
    fs::write(bottom.join("keep/x"), b"x").unwrap();
    fs::write(bottom.join("gone/f"), b"f").unwrap();
    fs::write(bottom.join("opq/old/o"), b"o").unwrap();
    fs::write(bottom.join("unchanged/u"), b"u").unwrap();
    fs::write(bottom.join("file-then-dir"), b"f").unwrap();
    fs::create_dir_all(top.join("opq")).unwrap();
    fs::write(top.join("opq/new"), b"n").unwrap();
    xattr::set(top.join("opq"), "trusted.overlay.opaque", b"y").unwrap();
    mknod(&top.join("gone"), libc::S_IFCHR, 0, 0);
    fs::write(top.join("etc/top-file"), b"t").unwrap_or_else(|_| {
        fs::create_dir_all(top.join("etc")).unwrap();
        fs::write(top.join("etc/top-file"), b"t").unwrap();
    });
    vec![top, bottom]
}

#[test]
fn kinds_match_docker() {
    assert_eq!(ChangeKind::Modified.as_docker(), 0);
    assert_eq!(ChangeKind::Added.as_docker(), 1);
    assert_eq!(ChangeKind::Deleted.as_docker(), 2);
    assert_eq!(ChangeKind::Modified.letter(), 'C');
    assert_eq!(ChangeKind::Added.letter(), 'A');
    assert_eq!(ChangeKind::Deleted.letter(), 'D');
}

#[test]
fn overlay_changes_and_layer_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let lowers = layers(tmp.path());
    let ov = Overlay::mount(tmp.path(), lowers.clone());
    let m = &ov.merged;
    // The lower view as mounted.
    assert!(!m.join("gone").exists());
    assert!(!m.join("opq/old").exists());
    assert!(m.join("opq/new").exists());
    assert!(changes(&ov.upper, &ov.lowers).unwrap().is_empty());

    fs::write(m.join("etc/newfile"), b"new").unwrap(); // A, C /etc
    fs::write(m.join("etc/passwd"), b"root:x:0:0\nu:x:1:1\n").unwrap(); // C
    fs::remove_file(m.join("bin/sh")).unwrap(); // D, C /bin
    fs::remove_dir_all(m.join("dir")).unwrap(); // rm -rf then recreate: opaque
    fs::create_dir(m.join("dir")).unwrap();
    fs::write(m.join("dir/new"), b"n").unwrap();
    fs::create_dir_all(m.join("new/deep")).unwrap();
    fs::write(m.join("new/deep/f"), b"f").unwrap();
    fs::create_dir(m.join("gone")).unwrap(); // hidden below by a whiteout: added
    fs::set_permissions(m.join("keep"), fs::Permissions::from_mode(0o700)).unwrap(); // C
    fs::write(m.join("unchanged/tmp"), b"t").unwrap(); // created and removed: no change
    fs::remove_file(m.join("unchanged/tmp")).unwrap();
    fs::remove_file(m.join("file-then-dir")).unwrap();
    fs::create_dir(m.join("file-then-dir")).unwrap();
    fs::write(m.join("file-then-dir/in"), b"i").unwrap();
    symlink("/etc/passwd", m.join("etc/link")).unwrap();
    fs::hard_link(m.join("etc/newfile"), m.join("etc/newlink")).unwrap();
    mknod(&m.join("fifo"), libc::S_IFIFO, 0o600, 0);
    fs::remove_file(m.join("etc/top-file")).unwrap(); // from the top layer

    let got = changes(&ov.upper, &ov.lowers).unwrap();
    let want = vec![
        change("/bin", ChangeKind::Modified),
        change("/bin/sh", ChangeKind::Deleted),
        change("/dir", ChangeKind::Modified),
        change("/dir/a", ChangeKind::Deleted),
        change("/dir/new", ChangeKind::Added),
        change("/dir/sub", ChangeKind::Deleted),
        change("/etc", ChangeKind::Modified),
        change("/etc/link", ChangeKind::Added),
        change("/etc/newfile", ChangeKind::Added),
        change("/etc/newlink", ChangeKind::Added),
        change("/etc/passwd", ChangeKind::Modified),
        change("/etc/top-file", ChangeKind::Deleted),
        change("/fifo", ChangeKind::Added),
        change("/file-then-dir", ChangeKind::Modified),
        change("/file-then-dir/in", ChangeKind::Added),
        change("/gone", ChangeKind::Added),
        change("/keep", ChangeKind::Modified),
        change("/new", ChangeKind::Added),
        change("/new/deep", ChangeKind::Added),
        change("/new/deep/f", ChangeKind::Added),
    ];
    assert_eq!(render(&got), render(&want));

    // The layer tar.
    let mut tar = Vec::new();
    let stats = write_layer(&ov.upper, &mut tar).unwrap();
    assert_eq!(stats.size as usize, tar.len());
    let names = tar_names(&tar);
    for n in [
        "bin/",
        "bin/.wh.sh",
        "dir/",
        "dir/.wh..wh..opq",
        "dir/new",
        "etc/",
        "etc/.wh.top-file",
        "etc/link",
        "etc/newfile",
        "etc/newlink",
        "file-then-dir/",
        "new/deep/f",
    ] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    assert_eq!(stats.entries as usize, names.len());
    assert!(!names
        .iter()
        .any(|n| n.starts_with("./") || n.starts_with('/')));
    // Sorted by the names in the upper dir (a whiteout sorts as the name it hides,
    // like Docker's change-path order), opaque markers right after their directory.
    let key = |n: &String| n.replace(".wh..wh..opq", "").replace(".wh.", "");
    let mut sorted = names.clone();
    sorted.sort_by_key(key);
    assert_eq!(names, sorted, "deterministic sorted order");
    // No overlay xattrs leak into the layer.
    let mut ar = tar::Archive::new(&tar[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                assert!(!x
                    .unwrap()
                    .key_bytes()
                    .starts_with(b"SCHILY.xattr.trusted.overlay"));
            }
        }
    }
    // A second run gives the same bytes.
    let mut again = Vec::new();
    write_layer(&ov.upper, &mut again).unwrap();
    assert_eq!(tar, again);

    // Applying the layer recreates the upper directory.
    let applied = tmp.path().join("applied");
    fs::create_dir(&applied).unwrap();
    apply_layer(&tar[..], &applied, &ApplyOptions::default()).unwrap();
    let strip = |mut d: std::collections::BTreeMap<String, crate::testutil::Node>| {
        for n in d.values_mut() {
            if n.kind == 'c' && n.rdev == 0 {
                // apply_layer doesn't restore whiteout mtimes.
                n.mtime = None;
            }
        }
        d
    };
    assert_eq!(strip(describe(&applied)), strip(describe(&ov.upper)));
    assert_eq!(
        xattr::get(applied.join("dir"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert_eq!(
        fs::metadata(applied.join("etc/newfile")).unwrap().ino(),
        fs::metadata(applied.join("etc/newlink")).unwrap().ino()
    );
    // The applied layer, stacked on the same lowers, has the same changes.
    assert_eq!(render(&changes(&applied, &lowers).unwrap()), render(&want));
}

#[test]
fn no_lowers_means_everything_is_added() {
    let tmp = tempfile::tempdir().unwrap();
    fs::create_dir_all(tmp.path().join("a/b")).unwrap();
    fs::write(tmp.path().join("a/b/c"), b"c").unwrap();
    mknod(&tmp.path().join("wh"), libc::S_IFCHR, 0, 0);
    let got = changes(tmp.path(), &[]).unwrap();
    assert_eq!(render(&got), ["A /a", "A /a/b", "A /a/b/c"]);
}

#[test]
fn symlinked_upper_dirs_are_not_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let upper = tmp.path().join("upper");
    fs::create_dir(&upper).unwrap();
    // A container-made symlink to a host directory must not be walked.
    symlink("/etc", upper.join("escape")).unwrap();
    let got = changes(&upper, &[]).unwrap();
    assert_eq!(render(&got), ["A /escape"]);
    let mut tar = Vec::new();
    write_layer(&upper, &mut tar).unwrap();
    assert_eq!(tar_names(&tar), ["escape"]);
    // And the upper dir itself must be a directory, not a symlink.
    assert!(matches!(
        changes(&upper.join("escape"), &[]),
        Err(DiffError::Open { .. })
    ));
}
