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
    std::os::unix::fs::symlink("/proc/mounts", dir.join("etc/mtab"))
}
