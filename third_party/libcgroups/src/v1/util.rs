use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};
use procfs::ProcError;
use procfs::process::MountInfo;

use super::ControllerType;
use super::controller_type::CONTROLLERS;

#[derive(thiserror::Error, Debug)]
pub enum V1MountPointError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("failed to get mountinfo: {0}")]
    MountInfo(ProcError),
    #[error("could not find mountpoint for {subsystem}")]
    NotFound { subsystem: ControllerType },
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),
}

// berth: the cgroup v1 mounts, read once per mount namespace of the process. Upstream opens a
// new procfs handle and parses the whole mountinfo for every subsystem looked up: a dozen times
// when the intermediate process creates the cgroups and as many again when the init mounts
// them, ~1.5-2 ms of a container's start on a v1 host (see third_party/libcgroups/BERTH.md).
//
// The namespace is checked (a `statx` of /proc/self/ns/mnt, through procfs) once per process:
// the cache remembers which process checked it last, and libcontainer's `unshare`/`setns` of a
// mount namespace calls `mount_namespace_changed`, after which the next lookup checks again.
// The intermediate process looked its namespace up a dozen times per start, ~8% of its CPU.
static CGROUP_MOUNTS: std::sync::Mutex<Option<CachedMounts>> = std::sync::Mutex::new(None);

struct CachedMounts {
    /// The inode of the mount namespace they were read in.
    ns: u64,
    /// The process that last checked that it is still in that namespace (0: none since a
    /// change of namespace).
    checked_by: u32,
    mounts: Vec<MountInfo>,
}

/// This process may have moved to another mount namespace: the next lookup checks which one
/// it is in before it takes the cached mounts.
pub fn mount_namespace_changed() {
    if let Some(c) = CGROUP_MOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_mut()
    {
        c.checked_by = 0;
    }
}

/// The inode of this process's mount namespace (0 if unknown: then nothing is cached).
fn mount_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).unwrap_or(0)
}

fn read_cgroup_mounts() -> Result<Vec<MountInfo>, V1MountPointError> {
    let reader = BufReader::new(ProcfsHandle::new()?.open(
        ProcfsBase::ProcSelf,
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);

    reader
        .lines()
        .map(|lr| {
            lr.map_err(V1MountPointError::Io)
                .and_then(|line| MountInfo::from_line(&line).map_err(V1MountPointError::MountInfo))
        })
        .try_fold(Vec::new(), |mut mounts, r| {
            r.map(|m| {
                if m.fs_type == "cgroup" {
                    mounts.push(m);
                }
                mounts
            })
        })
}

/// berth: the cgroup mounts of mountinfo, in its order, from the cache when this mount
/// namespace's were read already.
fn cgroup_mounts() -> Result<Vec<MountInfo>, V1MountPointError> {
    let pid = std::process::id();
    if let Some(c) = CGROUP_MOUNTS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
    {
        if c.checked_by == pid {
            return Ok(c.mounts.clone());
        }
    }
    let ns = mount_ns();
    if ns != 0 {
        let mut cache = CGROUP_MOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_mut() {
            if c.ns == ns {
                c.checked_by = pid;
                return Ok(c.mounts.clone());
            }
        }
    }
    let mounts = read_cgroup_mounts()?;
    if ns != 0 {
        *CGROUP_MOUNTS.lock().unwrap_or_else(|e| e.into_inner()) = Some(CachedMounts {
            ns,
            checked_by: pid,
            mounts: mounts.clone(),
        });
    }
    Ok(mounts)
}

/// List all cgroup v1 subsystem mount points on the system. This can include unsupported
/// subsystems, comounted controllers and named hierarchies.
pub fn list_subsystem_mount_points() -> Result<Vec<PathBuf>, V1MountPointError> {
    Ok(cgroup_mounts()?.into_iter().map(|m| m.mount_point).collect())
}

/// List the mount points of all currently supported cgroup subsystems.
pub fn list_supported_mount_points() -> Result<HashMap<ControllerType, PathBuf>, V1MountPointError>
{
    let mut mount_paths = HashMap::with_capacity(CONTROLLERS.len());

    for controller in CONTROLLERS {
        if let Ok(mount_point) = get_subsystem_mount_point(controller) {
            mount_paths.insert(controller.to_owned(), mount_point);
        }
    }

    Ok(mount_paths)
}

pub fn get_subsystem_mount_point(subsystem: &ControllerType) -> Result<PathBuf, V1MountPointError> {
    let subsystem_name = subsystem.to_string();
    cgroup_mounts()?
        .into_iter()
        .map(Ok::<MountInfo, V1MountPointError>)
        .find_map(|r| match r {
            Err(e) => Some(Err(e)),
            Ok(m) if m.fs_type == "cgroup" => {
                // Some systems mount net_prio and net_cls in the same directory
                // other systems mount them in their own directories. This
                // should handle both cases.
                let ok = match subsystem_name.as_str() {
                    "net_cls" => ["net_cls,net_prio", "net_prio,net_cls", "net_cls"]
                        .iter()
                        .any(|s| m.mount_point.ends_with(s)),
                    "net_prio" => ["net_cls,net_prio", "net_prio,net_cls", "net_prio"]
                        .iter()
                        .any(|s| m.mount_point.ends_with(s)),
                    "cpu" => ["cpu,cpuacct", "cpu"]
                        .iter()
                        .any(|s| m.mount_point.ends_with(s)),
                    "cpuacct" => ["cpu,cpuacct", "cpuacct"]
                        .iter()
                        .any(|s| m.mount_point.ends_with(s)),
                    _ => m.mount_point.ends_with(&subsystem_name),
                };
                if ok { Some(Ok(m.mount_point)) } else { None }
            }
            Ok(_) => None,
        })
        .transpose()?
        .ok_or(V1MountPointError::NotFound {
            subsystem: *subsystem,
        })
}
