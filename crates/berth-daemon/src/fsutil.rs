//! Small file helpers.

use std::io::Write;
use std::path::Path;

/// Write a file atomically: temp file in the same directory, fsync, rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        rand::random::<u32>()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
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
