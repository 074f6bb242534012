//! Shaving the kernel's wait off a container's cgroup attach.
//!
//! Moving a task into a cgroup takes the kernel's global `cgroup_threadgroup_rwsem` for
//! writing, and the first writer after a quiet spell waits for a full RCU grace period (about
//! 20 ms on this kind of host) before it gets it. Writers that arrive while that grace period
//! runs, or shortly after it, share it. So at the beginning of a start the daemon writes its
//! own pid into the cgroup it already belongs to (a migration that moves nothing): the grace
//! period then runs while the bundle is prepared and the shim starts, and the runtime's own
//! attach, moments later, waits for what is left of it instead of a whole one.
//!
//! Better still, where the kernel offers it (Linux 6.0 and later), the daemon asks it to
//! favour dynamic cgroup changes: the cgroup2 superblock's `favordynmods` option (see
//! [`favor_dynmods`]). Migrations then never wait for a grace period (a v1 attach here went
//! from about 5 ms, with outliers at 13 ms, to 0.24 ms), at the price of a slightly slower
//! fork and exit for every process on the host. Turned off by daemon.json
//! `"cgroup-favordynmods": false`.

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

/// Whether the host's cgroup2 hierarchy favours dynamic changes: then no grace period needs
/// priming.
static FAVORED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Start the grace period in the background; never blocks the caller, never fails it.
pub fn prime_migration_lock() {
    if FAVORED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    static FILE: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let Some(file) = FILE.get_or_init(own_procs_file).clone() else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::fs::write(&file, std::process::id().to_string());
    });
}

/// The cgroup2 mount of this mount namespace and its superblock options, from
/// `/proc/self/mountinfo` text.
fn cgroup2_mount(mountinfo: &str) -> Option<(PathBuf, Vec<String>)> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next()? != "cgroup2" {
            return None;
        }
        let super_opts = r.nth(1).unwrap_or("");
        let point = left.split_whitespace().nth(4)?;
        Some((
            PathBuf::from(point.replace("\\040", " ")),
            super_opts.split(',').map(str::to_string).collect(),
        ))
    })
}

/// Set `favordynmods` on the host's cgroup2 superblock, keeping its other options (a
/// reconfiguration starts from none). Returns whether anything changed; an error names why
/// not (no cgroup2 mount, a kernel without the option, not in the host's cgroup namespace).
pub fn favor_dynmods() -> Result<bool, String> {
    use rustix::mount::{fsconfig_reconfigure, fsconfig_set_flag, fsconfig_set_string};
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    let (point, opts) = cgroup2_mount(&info).ok_or("no cgroup2 hierarchy is mounted")?;
    if opts.iter().any(|o| o == "favordynmods") {
        FAVORED.store(true, std::sync::atomic::Ordering::Relaxed);
        return Ok(false);
    }
    let fs = rustix::mount::fspick(
        rustix::fs::CWD,
        &point,
        rustix::mount::FsPickFlags::FSPICK_CLOEXEC,
    )
    .map_err(|e| format!("fspick {}: {e}", point.display()))?;
    for o in opts
        .iter()
        .filter(|o| !matches!(o.as_str(), "" | "rw" | "ro"))
    {
        match o.split_once('=') {
            Some((k, v)) => fsconfig_set_string(&fs, k, v),
            None => fsconfig_set_flag(&fs, o.as_str()),
        }
        .map_err(|e| format!("{}: keeping option {o}: {e}", point.display()))?;
    }
    fsconfig_set_flag(&fs, "favordynmods")
        .and_then(|()| fsconfig_reconfigure(&fs))
        .map_err(|e| format!("{}: favordynmods: {e}", point.display()))?;
    let after = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| e.to_string())?;
    match cgroup2_mount(&after) {
        Some((_, o)) if o.iter().any(|o| o == "favordynmods") => {
            FAVORED.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(true)
        }
        _ => Err("the kernel kept the cgroup2 hierarchy without favordynmods".into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_cgroup2_mount() {
        let info = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                    35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                    41 31 0:38 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        let (p, o) = super::cgroup2_mount(info).unwrap();
        assert_eq!(p, std::path::Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(o, ["rw", "nsdelegate", "memory_recursiveprot"]);
        assert!(super::cgroup2_mount("31 23 0:28 / /x rw - tmpfs tmpfs rw\n").is_none());
    }

    #[test]
    fn finds_our_own_cgroup() {
        if let Some(f) = super::own_procs_file() {
            let procs = std::fs::read_to_string(&f).unwrap();
            let me = std::process::id().to_string();
            assert!(procs.lines().any(|l| l == me), "{} lacks {me}", f.display());
        }
    }
}
