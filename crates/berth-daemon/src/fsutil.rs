//! Small file helpers.

use std::io::Write;
use std::path::Path;

/// Write a file atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_renamed(path, data, true)
}

/// Write a file atomically without waiting for the disk: temp file, rename. Readers and a
/// crash of any process see the old or the new content, never a torn one; only a power loss
/// may lose it. For what is rebuilt anyway: runtime files under the exec root (a tmpfs by
/// default, gone at reboot), the `/etc` files made again at each start, and container state
/// that the daemon reconciles at start-up.
pub fn write_replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_renamed(path, data, false)
}

fn write_renamed(path: &Path, data: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        rand::random::<u32>()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    if sync {
        f.sync_all()?;
    }
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The lengths of the files under `dir`, each inode once, directories not counted: moby's
/// `directory.Size`, by which dockerd sizes a container's writable layer (`SizeRw`: a fresh
/// container's is 0, where `du` counts the directory's blocks) and a volume.
pub fn files_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.path().symlink_metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(e.path());
            } else if m.len() > 0 && seen.insert(m.ino()) {
                total += m.len();
            }
        }
    }
    total
}

/// Whether `path` is a mount point (its device differs from its parent's, or the kernel
/// lists it in the mount table).
pub fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(m), Some(parent)) = (std::fs::symlink_metadata(path), path.parent()) else {
        return false;
    };
    let Ok(p) = std::fs::symlink_metadata(parent) else {
        return false;
    };
    if m.dev() != p.dev() {
        return true;
    }
    // An overlay on the same device (or a bind mount) shows in the mount table.
    let Some(target) = path.to_str() else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| t.lines().any(|l| l.split(' ').nth(4) == Some(target)))
        .unwrap_or(false)
}

/// A container's init layer (Docker's `-init` layer): the mount points the runtime needs
/// (`/proc`, `/sys`, `/dev`, and the files bind-mounted over `/etc/hostname`, `/etc/hosts`,
/// `/etc/resolv.conf`), so that creating them never lands in the writable layer, where `diff`
/// and `commit` would see them. It sits between the image's layers and the writable layer.
pub fn make_init_layer(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for d in ["dev/pts", "dev/shm", "proc", "sys", "etc"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    for d in ["", "dev", "dev/pts", "dev/shm", "proc", "sys", "etc"] {
        std::fs::set_permissions(dir.join(d), std::fs::Permissions::from_mode(0o755))?;
    }
    for f in [
        "etc/hostname",
        "etc/hosts",
        "etc/resolv.conf",
        "dev/console",
    ] {
        let f = std::fs::File::create(dir.join(f))?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    std::os::unix::fs::symlink("/proc/mounts", dir.join("etc/mtab"))?;
    make_dockerenv(dir)
}

/// `/.dockerenv`, the empty file by which software tells it runs in a container, as
/// docker's init layer has it.
pub fn make_dockerenv(init_layer: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let f = std::fs::File::create(init_layer.join(".dockerenv"))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o755))
}

/// Where new container directories are made: a few buckets that the filesystem placed apart
/// (ext4's top-of-hierarchy flag on their parent makes its Orlov allocator put each new
/// subdirectory in a group of its own choosing), a new directory made in the next one in
/// turn, then renamed into place. A file or directory made later inside it goes to the same
/// allocation group as it, so a container's files (its record, `/etc` files, log, writable
/// layer, the overlay's work files) land in one of several groups instead of all in one.
///
/// Why: ext4 without a journal does not reuse an inode deleted in the last minute or more
/// (`recently_deleted`): each new inode scans its group's bitmap past every such inode. A
/// container makes and deletes ~15 inodes; back-to-back containers all in one group made
/// each new inode there cost up to ~0.4 ms of CPU on the development machine (a whole
/// group's scan), ~6 ms per container. Spread over the buckets, each group sees a sixteenth
/// of that churn. Where the flag does not stick (filesystems other than ext4) or the rename
/// cannot be done (`containers/` on another filesystem), directories are made in place.
pub struct SpreadDirs {
    root: std::path::PathBuf,
    /// The buckets, once `prepare` has made them (none where they would not be spread).
    buckets: std::sync::OnceLock<Vec<std::path::PathBuf>>,
    next: std::sync::atomic::AtomicUsize,
    /// Set when a rename out of a bucket crossed filesystems: made in place from then on.
    off: std::sync::atomic::AtomicBool,
}

impl SpreadDirs {
    pub const BUCKETS: usize = 16;

    pub fn new(root: std::path::PathBuf) -> SpreadDirs {
        SpreadDirs {
            root,
            buckets: std::sync::OnceLock::new(),
            next: 0.into(),
            off: false.into(),
        }
    }

    /// Make the buckets (once per data root: ~0.4 ms each where the allocator spreads them;
    /// random names, as ext4 starts its search for a group at the name's hash) and empty
    /// them of what a crash left between a directory's making and its rename. Without the
    /// flag (not ext4), nothing is made and directories are made in place.
    pub fn prepare(&self) {
        use rustix::fs::{ioctl_getflags, ioctl_setflags, IFlags};
        if std::fs::create_dir_all(&self.root).is_err() {
            return;
        }
        let Ok(dir) = std::fs::File::open(&self.root) else {
            return;
        };
        let spread = ioctl_getflags(&dir).is_ok_and(|f| {
            f.contains(IFlags::TOPDIR)
                || (ioctl_setflags(&dir, f | IFlags::TOPDIR).is_ok()
                    && ioctl_getflags(&dir).is_ok_and(|f| f.contains(IFlags::TOPDIR)))
        });
        if !spread {
            return;
        }
        let mut buckets: Vec<std::path::PathBuf> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        // Only empty directories: nothing is written in one before its rename, and a
        // non-empty one (a power loss that kept an old name) may be a container's.
        for b in &buckets {
            for e in std::fs::read_dir(b).into_iter().flatten().flatten() {
                if let Err(err) = std::fs::remove_dir(e.path()) {
                    tracing::warn!("{}: left in place: {err}", e.path().display());
                }
            }
        }
        while buckets.len() < Self::BUCKETS {
            let b = self.root.join(format!("{:08x}", rand::random::<u32>()));
            if std::fs::create_dir(&b).is_err() {
                return;
            }
            buckets.push(b);
        }
        let _ = self.buckets.set(buckets);
    }

    /// Make the directory `dest` (whose parent exists, on the same filesystem as the
    /// buckets): in the next bucket, then renamed to `dest`; in place where that cannot be.
    pub fn create_dir(&self, dest: &Path) -> std::io::Result<()> {
        use std::sync::atomic::Ordering;
        let on = !self.off.load(Ordering::Relaxed);
        if let (Some(buckets), Some(name), true) = (self.buckets.get(), dest.file_name(), on) {
            let k = self.next.fetch_add(1, Ordering::Relaxed);
            let made = buckets[k % buckets.len()].join(name);
            if std::fs::create_dir(&made).is_ok() {
                // (not over an existing empty directory, as a rename would)
                let renamed = rustix::fs::renameat_with(
                    rustix::fs::CWD,
                    &made,
                    rustix::fs::CWD,
                    dest,
                    rustix::fs::RenameFlags::NOREPLACE,
                );
                match renamed {
                    Ok(()) => return Ok(()),
                    Err(rustix::io::Errno::XDEV) => self.off.store(true, Ordering::Relaxed),
                    Err(_) => {}
                }
                let _ = std::fs::remove_dir(&made);
            }
        }
        std::fs::create_dir(dest)
    }
}

#[cfg(test)]
mod spread_tests {
    use super::SpreadDirs;

    #[test]
    fn directories_are_made_in_place_or_through_a_bucket_and_leftovers_go() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("spread");
        let s = SpreadDirs::new(root.clone());
        // Before `prepare` (or where it could not spread), in place.
        s.create_dir(&t.path().join("a")).unwrap();
        assert!(t.path().join("a").is_dir());
        s.prepare();
        let Some(buckets) = s.buckets.get().cloned() else {
            // Not an ext4 here (no top-of-hierarchy flag): no buckets were made.
            assert_eq!(std::fs::read_dir(&root).map_or(0, |r| r.count()), 0);
            return;
        };
        assert_eq!(buckets.len(), SpreadDirs::BUCKETS);
        assert!(buckets
            .iter()
            .all(|b| b.is_dir() && b.parent() == Some(&*root)));
        for i in 0..20 {
            let d = t.path().join(format!("c{i}"));
            s.create_dir(&d).unwrap();
            assert!(d.is_dir());
        }
        // Nothing is left in the buckets; an existing name is an error, as create_dir's.
        for b in &buckets {
            assert_eq!(std::fs::read_dir(b).unwrap().count(), 0);
        }
        assert!(s.create_dir(&t.path().join("c0")).is_err());
        // What a crash left in a bucket (an empty directory) goes at the next `prepare`, which
        // keeps the buckets; a directory with something in it is left alone.
        std::fs::create_dir_all(buckets[3].join("leftover")).unwrap();
        std::fs::create_dir_all(buckets[4].join("full/x")).unwrap();
        let again = SpreadDirs::new(root.clone());
        again.prepare();
        assert!(!buckets[3].join("leftover").exists());
        assert!(buckets[4].join("full/x").is_dir());
        let mut kept = again.buckets.get().unwrap().clone();
        kept.sort();
        let mut before = buckets.clone();
        before.sort();
        assert_eq!(kept, before);
    }
}
