//! Resolving Docker's `--user` forms against the container's own `/etc/passwd` and
//! `/etc/group`.
//!
//! The files are opened with `openat2(RESOLVE_IN_ROOT)`, so symlinks (absolute or with `..`)
//! are resolved as if the rootfs were `/` and can never lead out of it.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd};
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};

/// The ids a container process runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The home directory in the user's passwd entry; empty when it has none (runc then
    /// gives `HOME=/`, see [`ResolvedUser::home_env`]).
    pub home: String,
}

impl ResolvedUser {
    /// The `HOME` a process gets when its environment has none, as runc gives it: the home
    /// directory of the user's passwd entry, else `/`. (Set in the spec, so that the runtime
    /// never looks the user up itself: libcontainer would ask glibc's NSS inside the
    /// container, which the image's nsswitch.conf could point at modules of its own.)
    pub fn home_env(&self) -> String {
        if self.home.is_empty() {
            "HOME=/".to_string()
        } else {
            format!("HOME={}", self.home)
        }
    }
}

/// Errors from [`resolve`]; the messages are Docker's.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("uids and gids must be in range 0-2147483647")]
    OutOfRange,
    #[error("invalid user: {0:?}")]
    Invalid(String),
    #[error("failed to open {path} in the container's rootfs: {source}")]
    Open {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("failed to read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Open `rel` (like `etc/passwd`) inside `rootfs`, never leaving it. `Ok(None)` when absent.
fn open_in_root(rootfs: &Path, rel: &str) -> Result<Option<File>, UserError> {
    let open_err = |source| UserError::Open {
        path: rel.to_string(),
        source,
    };
    let root = File::open(rootfs).map_err(open_err)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(root.as_raw_fd(), rel, how) {
        // SAFETY: openat2 just returned this descriptor and nothing else owns it.
        Ok(fd) => Ok(Some(unsafe { File::from_raw_fd(fd) })),
        Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(open_err(io::Error::from(e))),
    }
}

fn read_lines(rootfs: &Path, rel: &str) -> Result<Vec<Vec<String>>, UserError> {
    let Some(f) = open_in_root(rootfs, rel)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(|source| UserError::Read {
            path: rel.to_string(),
            source,
        })?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        out.push(line.split(':').map(str::to_string).collect());
    }
    Ok(out)
}

fn passwd(rootfs: &Path) -> Result<Vec<PasswdEntry>, UserError> {
    Ok(read_lines(rootfs, "etc/passwd")?
        .into_iter()
        .filter_map(|f| {
            Some(PasswdEntry {
                name: f.first()?.clone(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).cloned().unwrap_or_default(),
            })
        })
        .collect())
}

fn groups(rootfs: &Path) -> Result<Vec<GroupEntry>, UserError> {
    Ok(read_lines(rootfs, "etc/group")?
        .into_iter()
        .filter_map(|f| {
            Some(GroupEntry {
                name: f.first()?.clone(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect())
}

fn parse_id(s: &str) -> Result<Option<u32>, UserError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    match s.parse::<u64>() {
        Ok(v) if v <= i32::MAX as u64 => Ok(Some(v as u32)),
        _ => Err(UserError::OutOfRange),
    }
}

/// Resolve a `--user` value (`name`, `uid`, `name:group`, `uid:gid`, `uid:group`...; empty
/// means root) against the files in `rootfs`.
pub fn resolve(rootfs: &Path, user: &str) -> Result<ResolvedUser, UserError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if g.is_some_and(|g| g.contains(':')) {
        return Err(UserError::Invalid(user.to_string()));
    }
    let u = if u.is_empty() { "0" } else { u };
    let uid_num = parse_id(u)?;
    let entries = passwd(rootfs)?;
    let entry = entries.iter().find(|e| match uid_num {
        Some(n) => e.uid == n,
        None => e.name == u,
    });
    let home = entry.map(|e| e.home.clone()).unwrap_or_default();
    let (uid, mut gid, name) = match (entry, uid_num) {
        (Some(e), _) => (e.uid, e.gid, Some(e.name.clone())),
        (None, Some(n)) => (n, 0, None),
        (None, None) => return Err(UserError::UnknownUser(u.to_string())),
    };

    let need_groups = name.is_some() || g.is_some_and(|g| parse_id(g).ok().flatten().is_none());
    let group_entries = if need_groups {
        groups(rootfs)?
    } else {
        Vec::new()
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match parse_id(g)? {
            Some(n) => n,
            None => group_entries
                .iter()
                .find(|e| e.name == g)
                .map(|e| e.gid)
                .ok_or_else(|| UserError::UnknownGroup(g.to_string()))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        for e in &group_entries {
            if e.members.iter().any(|m| m == name) && !additional_gids.contains(&e.gid) {
                additional_gids.push(e.gid);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n\
             # comment\n\
             daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
             alice:x:1000:1000:Alice:/home/alice:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:alice,bob\nalice:x:1000:\naudio:x:29:bob, alice\n",
        )
        .unwrap();
        d
    }

    fn r(root: &Path, u: &str) -> ResolvedUser {
        resolve(root, u).unwrap()
    }

    #[test]
    fn forms() {
        let d = rootfs();
        let p = d.path();
        assert_eq!(
            r(p, ""),
            ResolvedUser {
                home: "/root".into(),
                ..Default::default()
            }
        );
        assert_eq!(
            r(p, "alice"),
            ResolvedUser {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![10, 29],
                home: "/home/alice".into(),
            }
        );
        assert_eq!(r(p, "alice").home_env(), "HOME=/home/alice");
        assert_eq!(r(p, "1000").gid, 1000);
        assert_eq!(r(p, "1000").additional_gids, vec![10, 29]);
        assert_eq!(r(p, "alice:wheel").gid, 10);
        assert_eq!(r(p, "alice:55").gid, 55);
        assert_eq!(
            r(p, "4242:4343"),
            ResolvedUser {
                uid: 4242,
                gid: 4343,
                additional_gids: vec![],
                home: String::new(),
            }
        );
        // No passwd entry: runc's HOME.
        assert_eq!(r(p, "4242").home_env(), "HOME=/");
        assert_eq!(r(p, "4242").gid, 0);
        assert_eq!(r(p, "4242:audio").gid, 29);
        assert_eq!(r(p, "daemon").uid, 1);
    }

    #[test]
    fn errors() {
        let d = rootfs();
        assert_eq!(
            resolve(d.path(), "foo").unwrap_err().to_string(),
            "unable to find user foo: no matching entries in passwd file"
        );
        assert_eq!(
            resolve(d.path(), "alice:nogroup").unwrap_err().to_string(),
            "unable to find group nogroup: no matching entries in group file"
        );
        assert!(matches!(
            resolve(d.path(), "99999999999"),
            Err(UserError::OutOfRange)
        ));
    }

    #[test]
    fn missing_files() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(r(d.path(), "123").uid, 123);
        assert!(resolve(d.path(), "alice").is_err());
    }

    #[test]
    fn symlinks_stay_inside_rootfs() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(
            outside.path().join("passwd"),
            "evil:x:6666:6666::/:/bin/sh\n",
        )
        .unwrap();
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("etc")).unwrap();
        // An absolute symlink pointing at a host file, and a relative one climbing out.
        std::os::unix::fs::symlink(outside.path().join("passwd"), d.path().join("etc/passwd"))
            .unwrap();
        assert!(resolve(d.path(), "evil").is_err());
        fs::remove_file(d.path().join("etc/passwd")).unwrap();
        let up = format!(
            "../../../../../../..{}",
            outside.path().join("passwd").display()
        );
        std::os::unix::fs::symlink(&up, d.path().join("etc/passwd")).unwrap();
        assert!(resolve(d.path(), "evil").is_err());
        // A symlink inside the rootfs is followed within it.
        fs::remove_file(d.path().join("etc/passwd")).unwrap();
        fs::write(d.path().join("etc/real"), "bob:x:7:8::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/real", d.path().join("etc/passwd")).unwrap();
        assert_eq!(r(d.path(), "bob").uid, 7);
    }
}
