//! Shaving the kernel's wait off a container's cgroup attach.
//!
//! Moving a task into a cgroup takes the kernel's global `cgroup_threadgroup_rwsem` for
//! writing, and the first writer after a quiet spell waits for a full RCU grace period (about
//! 20 ms on this kind of host) before it gets it. Writers that arrive while that grace period
//! runs, or shortly after it, share it. So at the beginning of a start the daemon writes its
//! own pid into the cgroup it already belongs to (a migration that moves nothing): the grace
//! period then runs while the bundle is prepared and the shim starts, and the runtime's own
//! attach, moments later, waits for what is left of it instead of a whole one.

use std::path::PathBuf;

/// The daemon's own `cgroup.procs` file: in its unified-hierarchy cgroup on a v2 host, or in
/// the first controller hierarchy it belongs to on a v1 or hybrid host.
fn own_procs_file() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let base = if ctrls.is_empty() {
            if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
                PathBuf::from("/sys/fs/cgroup")
            } else {
                continue;
            }
        } else {
            // `name=systemd` and comma-joined controllers are mounted under their own names.
            let first = ctrls.split(',').next()?.trim_start_matches("name=");
            PathBuf::from("/sys/fs/cgroup").join(first)
        };
        let f = base.join(path.trim_start_matches('/')).join("cgroup.procs");
        if f.exists() {
            return Some(f);
        }
    }
    None
}

/// Start the grace period in the background; never blocks the caller, never fails it.
pub fn prime_migration_lock() {
    static FILE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let Some(file) = FILE.get_or_init(own_procs_file).clone() else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::fs::write(&file, std::process::id().to_string());
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_our_own_cgroup() {
        if let Some(f) = super::own_procs_file() {
            let procs = std::fs::read_to_string(&f).unwrap();
            let me = std::process::id().to_string();
            assert!(procs.lines().any(|l| l == me), "{} lacks {me}", f.display());
        }
    }
}
