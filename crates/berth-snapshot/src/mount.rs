//! Overlay mounts and container read-write layers.

use std::fs::{self, File};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Errors from mounting and rw-layer management.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// A path can't be expressed in overlay mount options.
    #[error("cannot use {path:?} in an overlay mount: paths must not contain ',', ':' or '\\'")]
    BadPath { path: String },
    /// Too many layers to fit the mount options into one page.
    #[error("too many layers for an overlay mount: {layers} lower directories need {len} bytes of mount options, the limit is {limit}")]
    TooManyLayers {
        layers: usize,
        len: usize,
        limit: usize,
    },
    /// mount(2) failed.
    #[error("mount overlay on {target}: {source} (options: {options})")]
    Mount {
        target: String,
        options: String,
        #[source]
        source: Errno,
    },
    /// umount2(2) failed.
    #[error("unmount {target}: {source}")]
    Unmount {
        target: String,
        #[source]
        source: Errno,
    },
    /// Any other I/O error, with context.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> MountError {
    let context = context.into();
    move |source| MountError::Io { context, source }
}

/// The kernel copies at most one page of mount data.
fn options_limit() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if page > 0 {
        page as usize - 1
    } else {
        4095
    }
}

fn check_path(p: &Path) -> Result<String, MountError> {
    let s = p.to_str().ok_or_else(|| MountError::BadPath {
        path: p.display().to_string(),
    })?;
    if s.contains([',', ':', '\\']) {
        return Err(MountError::BadPath {
            path: s.to_string(),
        });
    }
    Ok(s.to_string())
}

/// Mounts an overlay at `target` with `lowers` (top-most first), `upper` and `work`.
///
/// With zero lowers an empty directory next to `work` (`<work>/../empty`) is
/// used as the lowerdir. If the option string would exceed one page, the
/// lowers are passed as `/proc/self/fd/N` paths of descriptors held open
/// during the mount; if even that is too long, [`MountError::TooManyLayers`].
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), MountError> {
    mount_overlay_inner(lowers, upper, work, target, options_limit(), false)
}

/// [`mount_overlay`] with overlayfs's `volatile` option where the kernel has it (5.10+):
/// nothing is synced to the upper directory's file system, not even at the unmount, which
/// then takes microseconds instead of a sync of the whole file system. For a writable layer
/// that no crash needs (a build step's, committed and synced by the build). Overlayfs leaves a marker in `work` that refuses the next mount, meant for one
/// after a crash; it is removed here first, so a caller must only mount again a layer whose
/// previous mount ended cleanly.
pub fn mount_overlay_volatile(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), MountError> {
    let _ = fs::remove_dir_all(work.join("work").join("incompat"));
    match mount_overlay_inner(lowers, upper, work, target, options_limit(), true) {
        // A kernel without the option.
        Err(MountError::Mount {
            source: Errno::EINVAL,
            ..
        }) => mount_overlay(lowers, upper, work, target),
        r => r,
    }
}

fn mount_overlay_inner(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    limit: usize,
    volatile: bool,
) -> Result<(), MountError> {
    let mut lowers: Vec<PathBuf> = lowers.to_vec();
    if lowers.is_empty() {
        let empty = work
            .parent()
            .map(|p| p.join("empty"))
            .unwrap_or_else(|| PathBuf::from("/var/empty"));
        fs::create_dir_all(&empty).map_err(io_err(format!("create {}", empty.display())))?;
        lowers.push(empty);
    }
    let upper_s = check_path(upper)?;
    let work_s = check_path(work)?;
    let lower_strs = lowers
        .iter()
        .map(|p| check_path(p))
        .collect::<Result<Vec<_>, _>>()?;
    let build = |lowers: &[String]| {
        format!(
            "lowerdir={},upperdir={upper_s},workdir={work_s}{}",
            lowers.join(":"),
            if volatile { ",volatile" } else { "" }
        )
    };
    let mut options = build(&lower_strs);
    // Keep the descriptors alive until mount(2) has resolved the paths.
    let mut _held: Vec<File> = Vec::new();
    if options.len() > limit {
        let mut fd_paths = Vec::with_capacity(lowers.len());
        for p in &lowers {
            let f = File::open(p).map_err(io_err(format!("open lower dir {}", p.display())))?;
            fd_paths.push(format!("/proc/self/fd/{}", f.as_raw_fd()));
            _held.push(f);
        }
        options = build(&fd_paths);
        if options.len() > limit {
            return Err(MountError::TooManyLayers {
                layers: lowers.len(),
                len: options.len(),
                limit,
            });
        }
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|source| MountError::Mount {
        target: target.display().to_string(),
        options,
        source,
    })
}

/// Lazily unmounts `target` (MNT_DETACH). Not being mounted is not an error.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(source) => Err(MountError::Unmount {
            target: target.display().to_string(),
            source,
        }),
    }
}

/// Creates a container's writable layer in `dir`: returns `(dir/upper, dir/work)`.
pub fn create_rw(dir: &Path) -> Result<(PathBuf, PathBuf), MountError> {
    let upper = dir.join("upper");
    let work = dir.join("work");
    for d in [&upper, &work] {
        fs::create_dir_all(d).map_err(io_err(format!("create {}", d.display())))?;
    }
    Ok((upper, work))
}

/// Removes a container's writable layer directory. A missing one is not an error.
pub fn remove_rw(dir: &Path) -> Result<(), MountError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("remove {}", dir.display()))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = unmount(&self.0);
        }
    }

    fn setup(n: usize) -> (tempfile::TempDir, Vec<PathBuf>, PathBuf, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let mut lowers = Vec::new();
        for i in 0..n {
            let l = tmp.path().join(format!("lower{i}"));
            fs::create_dir(&l).unwrap();
            fs::write(l.join(format!("f{i}")), format!("{i}")).unwrap();
            fs::write(l.join("shared"), format!("{i}")).unwrap();
            lowers.push(l);
        }
        let (upper, work) = create_rw(&tmp.path().join("rw")).unwrap();
        let target = tmp.path().join("merged");
        fs::create_dir(&target).unwrap();
        (tmp, lowers, upper, work, target)
    }

    #[test]
    fn overlay_mount_and_unmount() {
        let (tmp, lowers, upper, work, target) = setup(2);
        mount_overlay(&lowers, &upper, &work, &target).unwrap();
        let guard = Mounted(target.clone());
        assert_eq!(fs::read_to_string(target.join("f0")).unwrap(), "0");
        assert_eq!(fs::read_to_string(target.join("f1")).unwrap(), "1");
        // top-most first
        assert_eq!(fs::read_to_string(target.join("shared")).unwrap(), "0");
        fs::write(target.join("new"), b"x").unwrap();
        assert!(upper.join("new").exists());
        drop(guard);
        assert!(!target.join("f0").exists());
        // unmounting again is fine
        unmount(&target).unwrap();
        unmount(&tmp.path().join("does-not-exist")).unwrap();
        remove_rw(&tmp.path().join("rw")).unwrap();
        remove_rw(&tmp.path().join("rw")).unwrap();
        assert!(!upper.exists());
    }

    #[test]
    fn a_volatile_overlay_mounts_again_after_a_clean_unmount() {
        let (_tmp, lowers, upper, work, target) = setup(2);
        for round in 0..2 {
            mount_overlay_volatile(&lowers, &upper, &work, &target).unwrap();
            let guard = Mounted(target.clone());
            let opts = fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .find(|l| l.split(' ').nth(4) == Some(target.to_str().unwrap()))
                .map(str::to_string)
                .unwrap();
            assert!(opts.contains("volatile"), "{opts}");
            fs::write(target.join(format!("r{round}")), b"x").unwrap();
            assert_eq!(fs::read_to_string(target.join("f1")).unwrap(), "1");
            drop(guard);
            // Overlayfs's marker, which would refuse the next mount.
            assert!(work.join("work/incompat/volatile").exists());
        }
        assert!(upper.join("r0").exists() && upper.join("r1").exists());
    }

    #[test]
    fn zero_layers() {
        let (_tmp, _lowers, upper, work, target) = setup(0);
        mount_overlay(&[], &upper, &work, &target).unwrap();
        let _guard = Mounted(target.clone());
        fs::write(target.join("a"), b"x").unwrap();
        assert_eq!(fs::read(upper.join("a")).unwrap(), b"x");
    }

    #[test]
    fn long_option_strings_use_fd_paths() {
        let (_tmp, lowers, upper, work, target) = setup(3);
        // Force the fallback with an artificially small limit.
        let joined = lowers
            .iter()
            .map(|p| p.to_str().unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let full = format!(
            "lowerdir={joined},upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        mount_overlay_inner(&lowers, &upper, &work, &target, full.len() - 1, false).unwrap();
        let _guard = Mounted(target.clone());
        assert_eq!(fs::read_to_string(target.join("shared")).unwrap(), "0");
        assert_eq!(fs::read_to_string(target.join("f2")).unwrap(), "2");
        drop(_guard);
        let err = mount_overlay_inner(&lowers, &upper, &work, &target, 10, false).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("too many layers for an overlay mount"));
    }

    #[test]
    fn rejects_bad_paths() {
        let err = mount_overlay(
            &[PathBuf::from("/a:b")],
            Path::new("/u"),
            Path::new("/w"),
            Path::new("/t"),
        )
        .unwrap_err();
        assert!(matches!(err, MountError::BadPath { .. }));
    }
}
