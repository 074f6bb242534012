//! `docker cp`, server side: stat, archive and extract paths of a container
//! filesystem (`HEAD`/`GET`/`PUT /containers/{id}/archive`).
//!
//! Every path is resolved inside `root` (the container's mounted rootfs),
//! never on the host: with `openat2(RESOLVE_IN_ROOT)`, so a symlink in the
//! container pointing at `/etc/shadow` means the container's `/etc/shadow`
//! (and `..` can't climb out). Everything is then done through the
//! descriptors obtained, never by re-resolving a path string (CVE-2018-15664),
//! and nothing from the container is loaded or executed: no NSS lookups, no
//! chroot (CVE-2019-14271).
//!
//! Path semantics follow moby (`daemon/archive_unix.go`,
//! `daemon/containerfs_linux.go`, `go-archive`): the path is cleaned
//! lexically as `filepath.Join("/", path)`, every component but the last is
//! followed, the last is not (a symlink is reported and archived as itself),
//! unless the path ends in `/` or `/.`, which follows it and asserts a
//! directory.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, AtFlags, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fstatat, futimens, mkdirat, mknodat, utimensat, FileStat, Mode, SFlag, UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::apply::{read_meta, remove_all_at, EntryMeta};
use crate::fsutil::{self, owned, OVERLAY_XATTR_PREFIX};
use crate::tarw::{Flavor, WalkError, Walker};

/// Docker's `PathStat` (`X-Docker-Container-Path-Stat`) of a path in a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// The base name of the path as given (`hosts` for `/etc/hosts`, `.`
    /// for `/etc/.`, `/` for `/`).
    pub name: String,
    /// Size in bytes (of the link itself for a symlink).
    pub size: i64,
    /// Go `os.FileMode` bits: permissions | ModeDir (1<<31) | ModeSymlink
    /// (1<<27) | ModeDevice (1<<26) | ModeNamedPipe (1<<25) | ModeSocket
    /// (1<<24) | ModeSetuid (1<<23) | ModeSetgid (1<<22) | ModeCharDevice
    /// (1<<21) | ModeSticky (1<<20).
    pub mode: u32,
    /// Modification time.
    pub mtime: SystemTime,
    /// For a symlink: its target fully resolved inside the container, as an
    /// absolute container path (as far as it exists); empty otherwise.
    pub link_target: String,
}

/// Go's `os.ModeDir`.
pub const MODE_DIR: u32 = 1 << 31;
/// Go's `os.ModeSymlink`.
pub const MODE_SYMLINK: u32 = 1 << 27;

#[derive(serde::Serialize)]
struct PathStatJson<'a> {
    name: &'a str,
    size: i64,
    mode: u32,
    mtime: String,
    #[serde(rename = "linkTarget")]
    link_target: &'a str,
}

impl PathStat {
    /// Docker's JSON: `{"name":..,"size":..,"mode":..,"mtime":"<RFC 3339
    /// nano, UTC>","linkTarget":..}` (the header carries it base64-encoded).
    pub fn to_header_json(&self) -> String {
        let j = PathStatJson {
            name: &self.name,
            size: self.size,
            mode: self.mode,
            mtime: rfc3339_nano(self.mtime),
            link_target: &self.link_target,
        };
        serde_json::to_string(&j).unwrap_or_default()
    }

    /// Whether the path is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }
}

/// Formats like Go's `time.RFC3339Nano` in UTC: trailing zeros of the
/// fraction trimmed, no fraction at all for whole seconds.
fn rfc3339_nano(t: SystemTime) -> String {
    let (secs, nanos) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
        Err(e) => {
            let d = e.duration();
            let mut s = -(d.as_secs() as i64);
            let mut n = d.subsec_nanos();
            if n > 0 {
                s -= 1;
                n = 1_000_000_000 - n;
            }
            (s, n)
        }
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Options for [`extract_into_root`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// Refuse to replace an existing directory with a non-directory and vice
    /// versa (the API's `noOverwriteDirNonDir`).
    pub no_overwrite_dir_non_dir: bool,
    /// Force this owner on everything extracted (`docker cp -a`: the
    /// container user's uid/gid, resolved by the caller). `None` keeps the
    /// owners recorded in the archive, as Docker does.
    pub chown: Option<(u32, u32)>,
}

/// How a [`CopyError`] maps to the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyErrorKind {
    /// HTTP 404: "Could not find the file %s in container %s".
    NotFound,
    /// HTTP 400: a bad path or archive.
    InvalidArgument,
    /// HTTP 500.
    Other,
}

/// Errors from [`stat_in_root`], [`archive_from_root`] and [`extract_into_root`].
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    /// The path doesn't exist in the container.
    #[error("no such file or directory: {path}")]
    NotFound {
        /// The path as given.
        path: String,
    },
    /// A bad request: the destination is not a directory, or the archive
    /// holds something we refuse (escaping names or links, device nodes...).
    #[error("{message}")]
    InvalidArgument {
        /// What is wrong.
        message: String,
    },
    /// The container's root can't be opened.
    #[error("open container root {path}: {source}")]
    Root {
        /// The root directory.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A filesystem operation failed.
    #[error("{op} {path:?}: {source}")]
    Io {
        /// The path (in the container, or the archive entry).
        path: String,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl CopyError {
    /// How the error maps to the API.
    pub fn kind(&self) -> CopyErrorKind {
        match self {
            CopyError::NotFound { .. } => CopyErrorKind::NotFound,
            CopyError::InvalidArgument { .. } => CopyErrorKind::InvalidArgument,
            CopyError::Root { .. } | CopyError::Io { .. } => CopyErrorKind::Other,
        }
    }

    /// Whether this is [`CopyErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind() == CopyErrorKind::NotFound
    }

    /// Whether this is [`CopyErrorKind::InvalidArgument`] (HTTP 400).
    pub fn is_invalid(&self) -> bool {
        self.kind() == CopyErrorKind::InvalidArgument
    }

    /// Same as [`CopyError::is_invalid`].
    pub fn is_invalid_argument(&self) -> bool {
        self.is_invalid()
    }
}

fn invalid(message: impl Into<String>) -> CopyError {
    CopyError::InvalidArgument {
        message: message.into(),
    }
}

fn errno_err(path: &str, op: &'static str, e: Errno) -> CopyError {
    CopyError::Io {
        path: path.to_string(),
        op,
        source: io::Error::from(e),
    }
}

impl From<WalkError> for CopyError {
    fn from(e: WalkError) -> Self {
        CopyError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

/// A path of the API, cleaned like `filepath.Join("/", path)` with moby's
/// `PreserveTrailingDotOrSeparator`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CtrPath {
    /// Cleaned components (no `.`, `..` or empty ones).
    comps: Vec<Vec<u8>>,
    /// Ends in `/` or `/.` (or is `.`): the last component is followed and
    /// must be a directory.
    asserts_dir: bool,
    /// `filepath.Base` of the preserved path.
    base: String,
}

impl CtrPath {
    fn parse(path: &str) -> CtrPath {
        let mut comps: Vec<Vec<u8>> = Vec::new();
        for c in path.as_bytes().split(|b| *b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    comps.pop();
                }
                c => comps.push(c.to_vec()),
            }
        }
        let current_dir = path == "." || path.ends_with("/.");
        let asserts_dir = current_dir || path.ends_with('/');
        let base = if current_dir {
            ".".to_string()
        } else {
            match comps.last() {
                Some(c) => String::from_utf8_lossy(c).into_owned(),
                None => "/".to_string(),
            }
        };
        CtrPath {
            comps,
            asserts_dir,
            base,
        }
    }

    fn rel(comps: &[Vec<u8>]) -> PathBuf {
        if comps.is_empty() {
            return PathBuf::from(".");
        }
        let mut p = Vec::new();
        for (i, c) in comps.iter().enumerate() {
            if i > 0 {
                p.push(b'/');
            }
            p.extend_from_slice(c);
        }
        PathBuf::from(OsString::from_vec(p))
    }
}

/// Opens `path` (relative) under `dir` as if `dir` were `/`.
fn open_in_root(dir: &File, path: &Path, flags: OFlag) -> Result<File, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    loop {
        match openat2(dir.as_raw_fd(), path, how) {
            // The kernel asks for a retry when a rename raced the lookup.
            Err(Errno::EAGAIN) => continue,
            r => return r.map(owned),
        }
    }
}

/// The resolved target of an API path.
struct Target {
    /// `O_PATH` descriptor of the entry itself.
    fd: File,
    st: FileStat,
    /// Its parent directory and name there, unless the path was followed to the end.
    at: Option<(File, OsString)>,
}

fn not_found_or(path: &str, op: &'static str, e: Errno) -> CopyError {
    match e {
        Errno::ENOENT => CopyError::NotFound {
            path: path.to_string(),
        },
        e => errno_err(path, op, e),
    }
}

fn resolve(root: &File, path: &str, p: &CtrPath) -> Result<Target, CopyError> {
    if p.asserts_dir || p.comps.is_empty() {
        let fd = open_in_root(
            root,
            &CtrPath::rel(&p.comps),
            OFlag::O_PATH | OFlag::O_DIRECTORY,
        )
        .map_err(|e| not_found_or(path, "resolve", e))?;
        let st = fsutil::stat_fd(&fd).map_err(|e| errno_err(path, "stat", e))?;
        return Ok(Target { fd, st, at: None });
    }
    let (last, parent) = p
        .comps
        .split_last()
        .ok_or_else(|| invalid(format!("invalid path {path:?}")))?;
    let pfd = open_in_root(
        root,
        &CtrPath::rel(parent),
        OFlag::O_PATH | OFlag::O_DIRECTORY,
    )
    .map_err(|e| not_found_or(path, "resolve", e))?;
    let name = OsString::from_vec(last.clone());
    let fd = fsutil::open_path_at(&pfd, &name).map_err(|e| not_found_or(path, "open", e))?;
    let st = fsutil::stat_fd(&fd).map_err(|e| errno_err(path, "stat", e))?;
    Ok(Target {
        fd,
        st,
        at: Some((pfd, name)),
    })
}

fn open_root_dir(root: &Path) -> Result<File, CopyError> {
    fsutil::open_root(root).map_err(|source| CopyError::Root {
        path: root.display().to_string(),
        source,
    })
}

/// Like moby's `symlink.FollowSymlinkInScope(path, "/")`: follows every
/// symlink of `comps` inside the root, for as long as the path exists, and
/// returns the absolute container path reached. Only reads links.
fn follow_in_root(root: &File, comps: &[Vec<u8>]) -> Result<String, Errno> {
    const MAX_LINKS: usize = 255;
    let mut stack: Vec<(Vec<u8>, File)> = Vec::new();
    let mut todo: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
    let mut lexical: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                stack.pop();
                continue;
            }
            _ => {}
        }
        let dir = stack.last().map(|(_, f)| f).unwrap_or(root);
        let fd = match fsutil::open_path_at(dir, OsStr::from_bytes(&c)) {
            Ok(fd) => fd,
            Err(Errno::ENOENT | Errno::ENOTDIR) => {
                // Doesn't exist (further): the rest is taken as written.
                lexical.push(c);
                for c in todo.drain(..) {
                    match c.as_slice() {
                        b"" | b"." => {}
                        b".." => {
                            if lexical.pop().is_none() {
                                stack.pop();
                            }
                        }
                        _ => lexical.push(c),
                    }
                }
                break;
            }
            Err(e) => return Err(e),
        };
        let st = fsutil::stat_fd(&fd)?;
        if fsutil::fmt(&st) == libc::S_IFLNK {
            links += 1;
            if links > MAX_LINKS {
                return Err(Errno::ELOOP);
            }
            let target = fsutil::readlink_fd(&fd)?;
            if target.starts_with(b"/") {
                stack.clear();
            }
            for part in target.split(|b| *b == b'/').rev() {
                todo.push_front(part.to_vec());
            }
            continue;
        }
        stack.push((c, fd));
    }
    let mut out = Vec::new();
    for c in stack.iter().map(|(c, _)| c).chain(lexical.iter()) {
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn path_stat(root: &File, path: &str, p: &CtrPath, t: &Target) -> Result<PathStat, CopyError> {
    let link_target = if fsutil::fmt(&t.st) == libc::S_IFLNK {
        follow_in_root(root, &p.comps).map_err(|e| errno_err(path, "resolve symlink", e))?
    } else {
        String::new()
    };
    let mtime = if t.st.st_mtime >= 0 {
        UNIX_EPOCH + Duration::new(t.st.st_mtime as u64, t.st.st_mtime_nsec as u32)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.st.st_mtime.unsigned_abs())
            + Duration::from_nanos(t.st.st_mtime_nsec as u64)
    };
    Ok(PathStat {
        name: p.base.clone(),
        size: t.st.st_size,
        mode: fsutil::go_file_mode(t.st.st_mode),
        mtime,
        link_target,
    })
}

/// Stats `path` inside the container rootfs `root` (`HEAD
/// /containers/{id}/archive`): every component but the last is resolved
/// inside the root; the last is not followed unless the path ends in `/` or
/// `/.`.
pub fn stat_in_root(root: &Path, path: &str) -> Result<PathStat, CopyError> {
    let rootfd = open_root_dir(root)?;
    let p = CtrPath::parse(path);
    let t = resolve(&rootfd, path, &p)?;
    path_stat(&rootfd, path, &p, &t)
}

/// Writes the tar `GET /containers/{id}/archive?path=` returns to `w` and
/// returns the stat of the path (for the `X-Docker-Container-Path-Stat`
/// header).
///
/// A file, symlink (not followed) or other non-directory is one entry named
/// by its base name (`/etc/hosts` → `hosts`). A directory is archived
/// recursively under its base name (`/etc` → `etc/`, `etc/passwd`...); a
/// path ending in `/.` is archived as `./`, `./passwd`... (moby's
/// `TarResourceRebaseOpts(".", ".")`), and so is `/` (moby would produce
/// absolute names there). Entries keep modes, owners, mtimes and
/// `security.capability` (the only xattr Docker copies); hardlinks inside the
/// archive become tar links; sockets are skipped. Everything is read through
/// descriptors opened inside the root, never by host path.
pub fn archive_from_root<W: Write>(root: &Path, path: &str, w: W) -> Result<PathStat, CopyError> {
    let rootfd = open_root_dir(root)?;
    let p = CtrPath::parse(path);
    let t = resolve(&rootfd, path, &p)?;
    let stat = path_stat(&rootfd, path, &p, &t)?;
    let mut walker = Walker::new(w, Flavor::Copy);
    let mut name: Vec<u8> = if fsutil::is_dir(&t.st) && (p.base == "." || p.base == "/") {
        b".".to_vec()
    } else {
        p.base.as_bytes().to_vec()
    };
    let at = t.at.as_ref().map(|(f, n)| (f, n.as_os_str()));
    walker.entry(at, &t.fd, &t.st, &mut name)?;
    walker.finish().map_err(|source| CopyError::Io {
        path: path.to_string(),
        op: "write archive",
        source,
    })?;
    Ok(stat)
}

/// Extracts the plain tar stream `r` into the directory `dest` of the
/// container rootfs `root` (`PUT /containers/{id}/archive?path=`).
///
/// `dest` is resolved inside the root with every symlink followed (the last
/// one too); it must exist ([`CopyError::NotFound`]) and be a directory
/// (else [`CopyErrorKind::InvalidArgument`], "extraction point is not a
/// directory"). Entry names are cleaned like moby's, but stricter: an
/// absolute name is refused (moby strips the `/`), as is `..` that would climb
/// out of `dest`. Parent directories are resolved inside the
/// container root and must stay inside `dest`: writing through a symlink
/// that leads out of `dest` (one from the archive or one already in the
/// container) is refused, as are hardlinks to targets outside `dest`, and
/// device nodes (character or block). An existing entry is replaced (a
/// directory by a directory is merged), never written through; with
/// `no_overwrite_dir_non_dir`, replacing a directory by a non-directory or
/// the reverse is an error as in moby. Owners come from the archive unless
/// `opts.chown` forces one; modes, mtimes and xattrs (except
/// `trusted.overlay.*`, best effort) are applied. Missing parent directories
/// are created 0755, owned by root.
pub fn extract_into_root<R: Read>(
    root: &Path,
    dest: &str,
    r: R,
    opts: &ExtractOptions,
) -> Result<(), CopyError> {
    let rootfd = open_root_dir(root)?;
    let dp = CtrPath::parse(dest);
    let dest_rel = CtrPath::rel(&dp.comps);
    let destfd = open_in_root(&rootfd, &dest_rel, OFlag::O_PATH)
        .map_err(|e| not_found_or(dest, "resolve", e))?;
    let dst = fsutil::stat_fd(&destfd).map_err(|e| errno_err(dest, "stat", e))?;
    if !fsutil::is_dir(&dst) {
        return Err(invalid("extraction point is not a directory"));
    }
    let destdir = fsutil::reopen_dir(&destfd).map_err(|e| errno_err(dest, "open", e))?;
    let root_st = fsutil::stat_fd(&rootfd).map_err(|e| errno_err("/", "stat", e))?;
    let mut x = Extractor {
        root: rootfd,
        root_id: (root_st.st_dev, root_st.st_ino),
        dest: destdir,
        dest_id: (dst.st_dev, dst.st_ino),
        dest_rel,
        dest_display: dest.to_string(),
        opts: opts.clone(),
        dirs: Vec::new(),
        parent_cache: None,
    };
    let mut archive = tar::Archive::new(r);
    let entries = archive.entries().map_err(bad_archive)?;
    for entry in entries {
        let mut entry = entry.map_err(bad_archive)?;
        x.entry(&mut entry)?;
    }
    x.finish_dirs();
    Ok(())
}

fn bad_archive(e: io::Error) -> CopyError {
    let m = e.to_string();
    let m = if m.len() > 120 || m.chars().any(|c| c.is_control()) {
        "invalid tar header".to_string()
    } else {
        m
    };
    invalid(format!("invalid tar archive: {m}"))
}

/// Cleans a tar name: `.` and empty components dropped, `..` applied
/// lexically; `None` if it is absolute or climbs out.
fn clean_entry_name(raw: &[u8]) -> Option<Vec<OsString>> {
    if raw.first() == Some(&b'/') {
        return None;
    }
    crate::apply::normalize_link_target(raw)
}

struct Extractor {
    root: File,
    root_id: (u64, u64),
    dest: File,
    dest_id: (u64, u64),
    dest_rel: PathBuf,
    dest_display: String,
    opts: ExtractOptions,
    /// Directories extracted, for their mtimes at the end.
    dirs: Vec<(Vec<OsString>, i64)>,
    parent_cache: Option<(Vec<OsString>, File)>,
}

fn is_symlink_errno(e: Errno) -> bool {
    matches!(e, Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR)
}

impl Extractor {
    /// Whether directory `dir` is `dest` or below it (walking `..` up to the root).
    fn beneath_dest(&self, dir: &File) -> Result<bool, Errno> {
        let mut cur = dir.try_clone().map_err(|_| Errno::EBADF)?;
        for _ in 0..4096 {
            let st = fsutil::stat_fd(&cur)?;
            let id = (st.st_dev, st.st_ino);
            if id == self.dest_id {
                return Ok(true);
            }
            if id == self.root_id {
                return Ok(false);
            }
            let up = owned(openat(
                Some(cur.as_raw_fd()),
                "..",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?);
            let ust = fsutil::stat_fd(&up)?;
            if (ust.st_dev, ust.st_ino) == id {
                // The host's `/`: not below the container root at all.
                return Ok(false);
            }
            cur = up;
        }
        Ok(false)
    }

    /// Opens the existing directory `comps` below `dest`. Plain directories
    /// are walked with `O_NOFOLLOW`; a symlink on the way is resolved inside
    /// the container root, and the directory reached must still be below
    /// `dest`. `Ok(None)` if a component doesn't exist.
    fn open_dir(&self, comps: &[OsString], display: &str) -> Result<Option<File>, CopyError> {
        let how = OpenHow::new()
            .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC)
            .resolve(
                ResolveFlag::RESOLVE_BENEATH
                    | ResolveFlag::RESOLVE_NO_SYMLINKS
                    | ResolveFlag::RESOLVE_NO_MAGICLINKS,
            );
        if comps.is_empty() {
            return self
                .dest
                .try_clone()
                .map(Some)
                .map_err(|source| CopyError::Io {
                    path: display.to_string(),
                    op: "open destination",
                    source,
                });
        }
        let rel: PathBuf = comps.iter().collect();
        match openat2(self.dest.as_raw_fd(), &rel, how) {
            Ok(fd) => return Ok(Some(owned(fd))),
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::EAGAIN) => {}
            Err(e) if is_symlink_errno(e) => {}
            Err(e) => return Err(errno_err(display, "open parent directory", e)),
        }
        // Through a symlink (or not a directory): resolve inside the root.
        let full = self.dest_rel.join(&rel);
        let dir = match open_in_root(&self.root, &full, OFlag::O_DIRECTORY | OFlag::O_RDONLY) {
            Ok(d) => d,
            Err(Errno::ENOENT) => return Ok(None),
            Err(Errno::ENOTDIR) => {
                return Err(invalid(format!(
                    "invalid tar entry {display:?}: parent {:?} is not a directory",
                    rel.display()
                )))
            }
            Err(e) => return Err(errno_err(display, "open parent directory", e)),
        };
        match self.beneath_dest(&dir) {
            Ok(true) => Ok(Some(dir)),
            Ok(false) => Err(invalid(format!(
                "invalid tar entry {display:?}: {:?} resolves outside the destination directory {:?}",
                rel.display(),
                self.dest_display
            ))),
            Err(e) => Err(errno_err(display, "check parent directory", e)),
        }
    }

    /// Opens the parent directory `comps`, creating missing directories.
    fn parent(&mut self, comps: &[OsString], display: &str) -> Result<File, CopyError> {
        if let Some((c, f)) = &self.parent_cache {
            if c.as_slice() == comps {
                return f.try_clone().map_err(|source| CopyError::Io {
                    path: display.to_string(),
                    op: "open parent directory",
                    source,
                });
            }
        }
        let dir = match self.open_dir(comps, display)? {
            Some(d) => d,
            None => {
                // Create what is missing, one component at a time.
                let mut cur = self.dest.try_clone().map_err(|source| CopyError::Io {
                    path: display.to_string(),
                    op: "open destination",
                    source,
                })?;
                for i in 0..comps.len() {
                    match self.open_dir(&comps[..=i], display)? {
                        Some(d) => cur = d,
                        None => {
                            match mkdirat(
                                Some(cur.as_raw_fd()),
                                comps[i].as_os_str(),
                                Mode::from_bits_truncate(0o755),
                            ) {
                                Ok(()) | Err(Errno::EEXIST) => {}
                                Err(e) => {
                                    return Err(errno_err(display, "create parent directory", e))
                                }
                            }
                            let fd = openat(
                                Some(cur.as_raw_fd()),
                                comps[i].as_os_str(),
                                OFlag::O_DIRECTORY
                                    | OFlag::O_RDONLY
                                    | OFlag::O_NOFOLLOW
                                    | OFlag::O_CLOEXEC,
                                Mode::empty(),
                            )
                            .map_err(|e| match e {
                                Errno::ENOTDIR | Errno::ELOOP => invalid(format!(
                                    "invalid tar entry {display:?}: parent {:?} is not a directory \
                                     inside the destination (a dangling symlink?)",
                                    comps[..=i].iter().collect::<PathBuf>().display()
                                )),
                                e => errno_err(display, "open parent directory", e),
                            })?;
                            let d = owned(fd);
                            // The mode must not depend on the umask.
                            fchmod(d.as_raw_fd(), Mode::from_bits_truncate(0o755))
                                .map_err(|e| errno_err(display, "chmod parent directory", e))?;
                            cur = d;
                        }
                    }
                }
                cur
            }
        };
        if let Ok(copy) = dir.try_clone() {
            self.parent_cache = Some((comps.to_vec(), copy));
        }
        Ok(dir)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), CopyError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let raw = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw).into_owned();
        let comps = clean_entry_name(&raw).ok_or_else(|| {
            invalid(format!(
                "invalid tar entry {display:?}: absolute, or escapes the destination"
            ))
        })?;
        let Some((name, parent_comps)) = comps.split_last() else {
            // The destination itself ("." or "/"): nothing to create.
            return Ok(());
        };
        match kind {
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(invalid(format!(
                    "invalid tar entry {display:?}: refusing to create a device node"
                )))
            }
            tar::EntryType::Directory
            | tar::EntryType::Regular
            | tar::EntryType::Continuous
            | tar::EntryType::Symlink
            | tar::EntryType::Link
            | tar::EntryType::Fifo => {}
            other => {
                return Err(invalid(format!(
                    "invalid tar entry {display:?}: unsupported entry type {other:?}"
                )))
            }
        }
        let mut meta = read_meta(entry, &display).map_err(|e| invalid(e.to_string()))?;
        if let Some((uid, gid)) = self.opts.chown {
            meta.uid = uid;
            meta.gid = gid;
        }
        let is_dir = kind == tar::EntryType::Directory;
        let parent = self.parent(parent_comps, &display)?;
        let pfd = parent.as_raw_fd();
        let name = name.as_os_str();

        // What is there now.
        match fstatat(Some(pfd), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let exists_dir = fsutil::is_dir(&st);
                if self.opts.no_overwrite_dir_non_dir && exists_dir != is_dir {
                    // moby's wording, with the cleaned entry name.
                    let clean: PathBuf = comps.iter().collect();
                    return Err(invalid(if exists_dir {
                        format!(
                            "cannot overwrite directory {:?} with non-directory {:?}",
                            clean.display().to_string(),
                            self.dest_display
                        )
                    } else {
                        format!(
                            "cannot overwrite non-directory {:?} with directory {:?}",
                            clean.display().to_string(),
                            self.dest_display
                        )
                    }));
                }
                if exists_dir && !is_dir {
                    remove_all_at(&parent, name)
                        .map_err(|e| errno_err(&display, "remove existing directory", e))?;
                    self.parent_cache = None;
                } else if !exists_dir {
                    unlinkat(Some(pfd), name, UnlinkatFlags::NoRemoveDir)
                        .map_err(|e| errno_err(&display, "remove existing entry", e))?;
                }
            }
            Err(Errno::ENOENT) => {}
            Err(e) => return Err(errno_err(&display, "stat existing entry", e)),
        }

        match kind {
            tar::EntryType::Directory => {
                match mkdirat(Some(pfd), name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno_err(&display, "create directory", e)),
                }
                let fd = openat(
                    Some(pfd),
                    name,
                    OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno_err(&display, "open directory", e))?;
                let dir = owned(fd);
                fd_meta(&dir, &meta, &display)?;
                self.dirs.push((comps.clone(), meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = openat(
                    Some(pfd),
                    name,
                    OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_WRONLY
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| errno_err(&display, "create file", e))?;
                let mut file = owned(fd);
                copy_data(entry, &mut file, &display)?;
                fd_meta(&file, &meta, &display)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| {
                        invalid(format!(
                            "invalid tar entry {display:?}: symlink without a target"
                        ))
                    })?;
                symlinkat(OsStr::from_bytes(&target), Some(pfd), name)
                    .map_err(|e| errno_err(&display, "create symlink", e))?;
                fchownat(
                    Some(pfd),
                    name,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| errno_err(&display, "chown", e))?;
                let ts = TimeSpec::new(meta.mtime, 0);
                utimensat(Some(pfd), name, &ts, &ts, UtimensatFlags::NoFollowSymlink)
                    .map_err(|e| errno_err(&display, "set mtime", e))?;
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let tdisplay = String::from_utf8_lossy(&raw_target).into_owned();
                let escape = || {
                    invalid(format!(
                        "invalid tar entry {display:?}: hardlink target {tdisplay:?} escapes the destination"
                    ))
                };
                let target = clean_entry_name(&raw_target).ok_or_else(escape)?;
                let (tname, tparent) = target.split_last().ok_or_else(escape)?;
                let tdir = match self.open_dir(tparent, &display) {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        return Err(invalid(format!(
                            "invalid tar entry {display:?}: hardlink target {tdisplay:?} not found"
                        )))
                    }
                    Err(CopyError::InvalidArgument { .. }) => return Err(escape()),
                    Err(e) => return Err(e),
                };
                match linkat(
                    Some(tdir.as_raw_fd()),
                    tname.as_os_str(),
                    Some(pfd),
                    name,
                    AtFlags::empty(),
                ) {
                    Ok(()) => {}
                    Err(Errno::ENOENT) => {
                        return Err(invalid(format!(
                            "invalid tar entry {display:?}: hardlink target {tdisplay:?} not found"
                        )))
                    }
                    Err(e) => return Err(errno_err(&display, "create hardlink", e)),
                }
            }
            tar::EntryType::Fifo => {
                mknodat(
                    Some(pfd),
                    name,
                    SFlag::S_IFIFO,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(|e| errno_err(&display, "create fifo", e))?;
                let fd = openat(
                    Some(pfd),
                    name,
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno_err(&display, "open fifo", e))?;
                let f = owned(fd);
                let st = fsutil::stat_fd(&f).map_err(|e| errno_err(&display, "stat", e))?;
                if fsutil::fmt(&st) != libc::S_IFIFO {
                    return Err(errno_err(&display, "open fifo", Errno::EINVAL));
                }
                fchownat(
                    Some(pfd),
                    name,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| errno_err(&display, "chown", e))?;
                // chmod through the O_PATH descriptor's magic link: the fifo itself.
                nix::sys::stat::fchmodat(
                    None,
                    &fsutil::proc_fd_path(&f),
                    Mode::from_bits_truncate(meta.mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| errno_err(&display, "chmod", e))?;
                let ts = TimeSpec::new(meta.mtime, 0);
                utimensat(Some(pfd), name, &ts, &ts, UtimensatFlags::NoFollowSymlink)
                    .map_err(|e| errno_err(&display, "set mtime", e))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Directory mtimes last, deepest first, so creating children doesn't bump them.
    fn finish_dirs(&mut self) {
        let dirs = std::mem::take(&mut self.dirs);
        for (comps, mtime) in dirs.into_iter().rev() {
            if let Ok(Some(d)) = self.open_dir(&comps, "") {
                let ts = TimeSpec::new(mtime, 0);
                let _ = futimens(d.as_raw_fd(), &ts, &ts);
            }
        }
    }
}

fn copy_data<R: Read>(r: &mut R, f: &mut File, display: &str) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(bad_archive(e)),
        };
        f.write_all(&buf[..n]).map_err(|source| CopyError::Io {
            path: display.to_string(),
            op: "write file",
            source,
        })?;
    }
}

/// chown, chmod (after chown, which clears setuid bits), xattrs (best
/// effort, never overlay's own), mtime.
fn fd_meta(f: &File, meta: &EntryMeta, display: &str) -> Result<(), CopyError> {
    let fd = f.as_raw_fd();
    fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(|e| errno_err(display, "chown", e))?;
    fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(|e| errno_err(display, "chmod", e))?;
    for (k, v) in &meta.xattrs {
        if k.as_bytes().starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        use xattr::FileExt;
        if let Err(e) = f.set_xattr(k, v) {
            if !matches!(e.raw_os_error(), Some(libc::EPERM | libc::ENOTSUP)) {
                return Err(CopyError::Io {
                    path: display.to_string(),
                    op: "set xattr",
                    source: e,
                });
            }
        }
    }
    let ts = TimeSpec::new(meta.mtime, 0);
    futimens(fd, &ts, &ts).map_err(|e| errno_err(display, "set mtime", e))
}

#[cfg(test)]
#[path = "copy_tests.rs"]
mod tests;
