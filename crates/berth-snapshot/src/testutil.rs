//! Helpers shared by the tests of diff, export and copy.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Everything we expect an archive round trip to keep about one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Seconds; not compared for directories and symlinks when `None`.
    pub mtime: Option<i64>,
    /// Symlink target, or a digest and length of the file contents.
    pub data: String,
    pub rdev: u64,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Describes the tree under `root` (not including `root`), keyed by relative path.
pub(crate) fn describe(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let md = fs::symlink_metadata(&p).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_file() {
            'f'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            's'
        };
        let data = match kind {
            'f' => {
                use sha2::Digest;
                let bytes = fs::read(&p).unwrap();
                let d = sha2::Sha256::digest(&bytes);
                format!("{} bytes {:x}", bytes.len(), d)
            }
            'l' => fs::read_link(&p).unwrap().to_string_lossy().into_owned(),
            _ => String::new(),
        };
        let mut xattrs: Vec<(String, Vec<u8>)> = xattr::list(&p)
            .map(|names| {
                names
                    .filter(|n| !n.as_bytes().starts_with(b"trusted.overlay."))
                    .map(|n| {
                        let v = xattr::get(&p, &n).unwrap().unwrap_or_default();
                        (n.to_string_lossy().into_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        xattrs.sort();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        out.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: (kind != 'd').then_some(md.mtime()),
                data,
                rdev: md.rdev(),
                xattrs,
            },
        );
        if kind == 'd' {
            walk(root, &p, out);
        }
    }
}

/// mknod for tests.
pub(crate) fn mknod(path: &Path, kind: libc::mode_t, mode: u32, dev: libc::dev_t) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: c is a valid NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), kind | mode, dev) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// lchown for tests.
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// Sets the mtime of `path` without following a symlink.
pub(crate) fn set_mtime(path: &Path, secs: i64) {
    let ts = nix::sys::time::TimeSpec::new(secs, 0);
    nix::sys::stat::utimensat(
        None,
        path,
        &ts,
        &ts,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .unwrap();
}

/// The entry names of a tar stream, in order.
pub(crate) fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut ar = tar::Archive::new(bytes);
    ar.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

/// An overlay mount that is unmounted when dropped (even when a test panics).
pub(crate) struct Overlay {
    pub merged: PathBuf,
    pub upper: PathBuf,
    pub lowers: Vec<PathBuf>,
}

impl Overlay {
    /// Mounts `lowers` (top-most first) with a fresh upper dir, all under `dir`.
    pub(crate) fn mount(dir: &Path, lowers: Vec<PathBuf>) -> Overlay {
        let (upper, work) = crate::create_rw(&dir.join("rw")).unwrap();
        let merged = dir.join("merged");
        fs::create_dir_all(&merged).unwrap();
        crate::mount_overlay(&lowers, &upper, &work, &merged).unwrap();
        Overlay {
            merged,
            upper,
            lowers,
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = crate::unmount(&self.merged);
    }
}
