//! Safe application of a layer tar onto a directory.
//!
//! Every parent directory is opened relative to the layer root with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV)`, and every
//! entry is created with `*at` syscalls relative to that parent, so nothing an
//! earlier entry created (symlinks in particular) can redirect a write outside
//! the layer.

use std::cell::Cell;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};

/// Default cap on the uncompressed size of a layer: 64 GiB.
pub const DEFAULT_MAX_LAYER_SIZE: u64 = 64 << 30;

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_META_PREFIX: &str = ".wh..wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Options for [`apply_layer`].
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Maximum number of uncompressed tar bytes read before giving up.
    pub max_size: u64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            max_size: DEFAULT_MAX_LAYER_SIZE,
        }
    }
}

/// What [`apply_layer`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Sum of the sizes of the regular files written (hardlinks counted once).
    pub size: u64,
    /// Number of tar entries applied.
    pub entries: u64,
    /// Uncompressed tar bytes consumed.
    pub bytes_read: u64,
}

/// Errors from [`apply_layer`].
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// `..` components or an absolute path.
    #[error("invalid tar entry {path:?}: path escapes the layer")]
    PathEscape { path: String },
    /// A parent directory of the entry is a symlink.
    #[error(
        "invalid tar entry {path:?}: parent {parent:?} is a symlink, refusing to write through it"
    )]
    SymlinkParent { path: String, parent: String },
    /// A parent of the entry exists and is not a directory.
    #[error("invalid tar entry {path:?}: parent {parent:?} is not a directory")]
    NotADirectory { path: String, parent: String },
    /// A hardlink pointing outside the layer.
    #[error("invalid tar entry {path:?}: hardlink target {target:?} escapes the layer")]
    HardlinkEscape { path: String, target: String },
    /// A hardlink whose target is not in the layer.
    #[error("invalid tar entry {path:?}: hardlink target {target:?} not found in the layer")]
    HardlinkMissing { path: String, target: String },
    /// Any other malformed entry.
    #[error("invalid tar entry {path:?}: {reason}")]
    Invalid { path: String, reason: String },
    /// The decompression-bomb cap was hit.
    #[error("layer exceeds the maximum uncompressed size of {limit} bytes")]
    TooLarge { limit: u64 },
    /// The tar stream could not be read or parsed.
    #[error("invalid tar archive: {}", tidy(.0))]
    Archive(#[source] io::Error),
    /// A filesystem operation failed.
    #[error("apply tar entry {path:?}: {op}: {source}")]
    Io {
        path: String,
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

type Result<T, E = ApplyError> = std::result::Result<T, E>;

/// Counts bytes and fails once more than `limit` bytes have been read.
struct LimitReader<R> {
    inner: R,
    read: u64,
    limit: u64,
    exceeded: Rc<Cell<bool>>,
    total: Rc<Cell<u64>>,
}

impl<R: Read> Read for LimitReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.total.set(self.read);
        if self.read > self.limit {
            self.exceeded.set(true);
            return Err(io::Error::other("layer size limit exceeded"));
        }
        Ok(n)
    }
}

/// The tar parser quotes the raw header bytes of a bad archive; a user is better served by
/// Go's plain wording than by a screenful of binary.
fn tidy(e: &io::Error) -> String {
    let m = e.to_string();
    if m.len() > 120 || m.chars().any(|c| c.is_control()) {
        "invalid tar header".into()
    } else {
        m
    }
}

/// Applies the plain tar stream `reader` onto `dest` (which must exist).
///
/// Entries with `..` components or absolute paths are refused, parents are
/// never followed through symlinks, hardlinks must point inside the layer,
/// OCI whiteouts become overlay whiteouts. Mode, ownership, mtime and xattrs
/// are preserved. The stream is read to its end.
pub fn apply_layer<R: Read>(reader: R, dest: &Path, opts: &ApplyOptions) -> Result<ApplyStats> {
    apply_recorded(reader, dest, opts, None)
}

/// [`apply_layer`], showing the stream to a tar-split recorder (whose tree is `dest`).
pub(crate) fn apply_recorded<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions,
    split: Option<crate::split::Shared>,
) -> Result<ApplyStats> {
    match split {
        Some(rec) => {
            let reader = crate::split::RecordingReader {
                inner: reader,
                rec: rec.clone(),
            };
            apply_limited(reader, dest, opts, Some(rec))
        }
        None => apply_limited(reader, dest, opts, None),
    }
}

fn apply_limited<R: Read>(
    reader: R,
    dest: &Path,
    opts: &ApplyOptions,
    split: Option<crate::split::Shared>,
) -> Result<ApplyStats> {
    let exceeded = Rc::new(Cell::new(false));
    let total = Rc::new(Cell::new(0));
    let limited = LimitReader {
        inner: reader,
        read: 0,
        limit: opts.max_size,
        exceeded: exceeded.clone(),
        total: total.clone(),
    };
    let root = open_dir_at(None, dest.as_os_str()).map_err(|e| ApplyError::Io {
        path: dest.display().to_string(),
        op: "open layer directory",
        source: e,
    })?;
    let mut applier = Applier {
        root,
        parent_cache: None,
        dir_times: Vec::new(),
        stats: ApplyStats::default(),
        split,
    };
    let result = applier.run(limited);
    let result = match result {
        Err(_) if exceeded.get() => Err(ApplyError::TooLarge {
            limit: opts.max_size,
        }),
        other => other,
    };
    result?;
    applier.stats.bytes_read = total.get();
    Ok(applier.stats)
}

struct Applier {
    root: File,
    parent_cache: Option<(Vec<OsString>, File)>,
    dir_times: Vec<(Vec<OsString>, i64)>,
    stats: ApplyStats,
    /// The tar-split recorder, when the layer's stream is kept as an index.
    split: Option<crate::split::Shared>,
}

pub(crate) struct EntryMeta {
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    pub(crate) xattrs: Vec<(OsString, Vec<u8>)>,
}

impl Applier {
    fn run<R: Read>(&mut self, reader: R) -> Result<()> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(ApplyError::Archive)?;
        for entry in entries {
            let mut entry = entry.map_err(ApplyError::Archive)?;
            self.apply_entry(&mut entry)?;
            self.stats.entries += 1;
        }
        // Consume the padding after the end-of-archive marker so callers
        // hashing the stream see all of it.
        io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(ApplyError::Archive)?;
        // Directory mtimes last, deepest first, so creating children doesn't bump them.
        let times = std::mem::take(&mut self.dir_times);
        for (comps, mtime) in times.into_iter().rev() {
            let display = display_comps(&comps);
            let dir = if comps.is_empty() {
                self.root
                    .try_clone()
                    .map_err(io_err(&display, "open directory"))?
            } else {
                match open_beneath(&self.root, join_comps(&comps)) {
                    Ok(d) => d,
                    // Replaced by a later entry.
                    Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                    Err(e) => return Err(errno_err(&display, "open directory", e)),
                }
            };
            let ts = TimeSpec::new(mtime, 0);
            futimens(dir.as_raw_fd(), &ts, &ts).map_err(|e| errno_err(&display, "set mtime", e))?;
        }
        Ok(())
    }

    fn apply_entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let display = String::from_utf8_lossy(&raw_path).into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let comps = split_path(&raw_path).ok_or_else(|| ApplyError::PathEscape {
            path: display.clone(),
        })?;
        let meta = read_meta(entry, &display)?;

        let Some((name, parent_comps)) = comps.split_last() else {
            // The layer root itself ("./").
            if kind.is_dir() {
                let root = self
                    .root
                    .try_clone()
                    .map_err(io_err(&display, "open directory"))?;
                apply_fd_meta(&root, &meta, &display)?;
                self.dir_times.push((Vec::new(), meta.mtime));
                return Ok(());
            }
            return Err(ApplyError::Invalid {
                path: display,
                reason: "not a directory but names the layer root".into(),
            });
        };

        let name_str = name.to_string_lossy();
        if let Some(rest) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            let parent = self.open_parent(parent_comps, &display)?;
            if name_str == WHITEOUT_OPAQUE {
                set_fd_xattr(&parent, OPAQUE_XATTR, b"y")
                    .map_err(io_err(&display, "set opaque xattr"))?;
            } else if name_str.starts_with(WHITEOUT_META_PREFIX) {
                // Other AUFS metadata (.wh..wh.plnk, .wh..wh.aufs): ignored.
            } else {
                if rest.is_empty() || rest == "." || rest == ".." {
                    return Err(ApplyError::Invalid {
                        path: display,
                        reason: "invalid whiteout name".into(),
                    });
                }
                let target = OsStr::from_bytes(&name.as_bytes()[WHITEOUT_PREFIX.len()..]);
                if self.remove_existing(&parent, parent_comps, target, false, &display)? {
                    self.parent_cache = None;
                }
                mknodat(
                    Some(parent.as_raw_fd()),
                    target,
                    SFlag::S_IFCHR,
                    Mode::empty(),
                    nix::sys::stat::makedev(0, 0),
                )
                .map_err(|e| errno_err(&display, "create whiteout", e))?;
                fchownat(
                    Some(parent.as_raw_fd()),
                    target,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(|e| errno_err(&display, "chown whiteout", e))?;
            }
            return Ok(());
        }

        let parent = self.open_parent(parent_comps, &display)?;
        let pfd = parent.as_raw_fd();
        let name: &OsStr = name;
        match kind {
            tar::EntryType::Directory => {
                self.remove_existing(&parent, parent_comps, name, true, &display)?;
                match mkdirat(Some(pfd), name, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno_err(&display, "create directory", e)),
                }
                let dir =
                    open_dir_at(Some(&parent), name).map_err(io_err(&display, "open directory"))?;
                apply_fd_meta(&dir, &meta, &display)?;
                self.dir_times.push((comps.clone(), meta.mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                if self.remove_existing(&parent, parent_comps, name, false, &display)? {
                    self.parent_cache = None;
                }
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
                // SAFETY: `fd` was just returned by openat and is owned by nobody else.
                let mut file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
                let recorded = kind != tar::EntryType::GNUSparse;
                if let (Some(rec), true) = (&self.split, recorded) {
                    rec.borrow_mut()
                        .file_begins(&join_bytes(parent_comps, name), entry.size())
                        .map_err(io_err(&display, "record layer"))?;
                }
                let written = copy_entry(entry, &mut file, &display)?;
                if let (Some(rec), true) = (&self.split, recorded) {
                    rec.borrow_mut()
                        .file_ends()
                        .map_err(io_err(&display, "record layer"))?;
                }
                self.stats.size += written;
                apply_fd_meta(&file, &meta, &display)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| ApplyError::Invalid {
                        path: display.clone(),
                        reason: "symlink without a target".into(),
                    })?;
                if self.remove_existing(&parent, parent_comps, name, false, &display)? {
                    self.parent_cache = None;
                }
                symlinkat(OsStr::from_bytes(&target), Some(pfd), name)
                    .map_err(|e| errno_err(&display, "create symlink", e))?;
                apply_path_meta(&parent, name, &meta, false, &display)?;
            }
            tar::EntryType::Link => {
                let raw_target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let target_display = String::from_utf8_lossy(&raw_target).into_owned();
                let target = normalize_link_target(&raw_target).ok_or_else(|| {
                    ApplyError::HardlinkEscape {
                        path: display.clone(),
                        target: target_display.clone(),
                    }
                })?;
                let Some((tname, tparent)) = target.split_last() else {
                    return Err(ApplyError::Invalid {
                        path: display,
                        reason: "hardlink to the layer root".into(),
                    });
                };
                let tparent_dir = if tparent.is_empty() {
                    self.root
                        .try_clone()
                        .map_err(io_err(&display, "open directory"))?
                } else {
                    match open_beneath(&self.root, join_comps(tparent)) {
                        Ok(d) => d,
                        Err(Errno::ENOENT | Errno::ENOTDIR) => {
                            return Err(ApplyError::HardlinkMissing {
                                path: display,
                                target: target_display,
                            })
                        }
                        Err(Errno::ELOOP | Errno::EXDEV) => {
                            return Err(ApplyError::HardlinkEscape {
                                path: display,
                                target: target_display,
                            })
                        }
                        Err(e) => return Err(errno_err(&display, "open hardlink target", e)),
                    }
                };
                if tparent == parent_comps && tname == name {
                    // A link to itself: nothing to do.
                    return Ok(());
                }
                if self.remove_existing(&parent, parent_comps, name, false, &display)? {
                    self.parent_cache = None;
                }
                match linkat(
                    Some(tparent_dir.as_raw_fd()),
                    tname.as_os_str(),
                    Some(pfd),
                    name,
                    AtFlags::empty(),
                ) {
                    Ok(()) => {}
                    Err(Errno::ENOENT) => {
                        return Err(ApplyError::HardlinkMissing {
                            path: display,
                            target: target_display,
                        })
                    }
                    Err(e) => return Err(errno_err(&display, "create hardlink", e)),
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (sflag, dev) = match kind {
                    tar::EntryType::Fifo => (SFlag::S_IFIFO, 0),
                    _ => {
                        let major = entry_dev(entry.header().device_major(), &display)?;
                        let minor = entry_dev(entry.header().device_minor(), &display)?;
                        let flag = if kind == tar::EntryType::Char {
                            SFlag::S_IFCHR
                        } else {
                            SFlag::S_IFBLK
                        };
                        (flag, nix::sys::stat::makedev(major.into(), minor.into()))
                    }
                };
                if self.remove_existing(&parent, parent_comps, name, false, &display)? {
                    self.parent_cache = None;
                }
                mknodat(Some(pfd), name, sflag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| errno_err(&display, "create device node", e))?;
                apply_path_meta(&parent, name, &meta, true, &display)?;
            }
            other => {
                return Err(ApplyError::Invalid {
                    path: display,
                    reason: format!("unsupported entry type {other:?}"),
                })
            }
        }
        Ok(())
    }

    /// Opens (creating missing directories) the parent directory `comps`
    /// beneath the root without following any symlink.
    fn open_parent(&mut self, comps: &[OsString], display: &str) -> Result<File> {
        if let Some((cached, dir)) = &self.parent_cache {
            if cached.as_slice() == comps {
                return dir.try_clone().map_err(io_err(display, "open parent"));
            }
        }
        let dir = if comps.is_empty() {
            self.root
                .try_clone()
                .map_err(io_err(display, "open parent"))?
        } else {
            match open_beneath(&self.root, join_comps(comps)) {
                Ok(d) => d,
                Err(Errno::ENOENT) => self.create_parents(comps, display)?,
                Err(e) => return Err(self.parent_error(comps, display, e)),
            }
        };
        let copy = dir.try_clone().map_err(io_err(display, "open parent"))?;
        self.parent_cache = Some((comps.to_vec(), copy));
        Ok(dir)
    }

    fn create_parents(&self, comps: &[OsString], display: &str) -> Result<File> {
        let mut cur = self
            .root
            .try_clone()
            .map_err(io_err(display, "open parent"))?;
        for (i, comp) in comps.iter().enumerate() {
            match mkdirat(
                Some(cur.as_raw_fd()),
                comp.as_os_str(),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(errno_err(display, "create parent directory", e)),
            }
            cur = match open_beneath(&cur, comp.as_os_str()) {
                Ok(d) => d,
                Err(e) => return Err(self.parent_error(&comps[..=i], display, e)),
            };
        }
        Ok(cur)
    }

    fn parent_error(&self, comps: &[OsString], display: &str, e: Errno) -> ApplyError {
        let parent = display_comps(comps);
        match e {
            Errno::ELOOP | Errno::EXDEV => ApplyError::SymlinkParent {
                path: display.to_string(),
                parent,
            },
            Errno::ENOTDIR => ApplyError::NotADirectory {
                path: display.to_string(),
                parent,
            },
            e => errno_err(display, "open parent directory", e),
        }
    }
}

/// Splits a tar path into normal components. `None` if it is absolute or has `..`.
fn split_path(raw: &[u8]) -> Option<Vec<OsString>> {
    if raw.starts_with(b"/") {
        return None;
    }
    let mut out = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Some(out)
}

/// Lexically resolves a hardlink target (or any tar name) relative to the layer root:
/// `.` and empty components dropped, `..` applied. `None` if it climbs above the root.
pub(crate) fn normalize_link_target(raw: &[u8]) -> Option<Vec<OsString>> {
    let mut out: Vec<OsString> = Vec::new();
    for comp in raw.split(|b| *b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(OsString::from_vec(c.to_vec())),
        }
    }
    Some(out)
}

fn join_comps(comps: &[OsString]) -> PathBuf {
    comps.iter().collect()
}

fn display_comps(comps: &[OsString]) -> String {
    join_comps(comps).to_string_lossy().into_owned()
}

fn io_err(path: &str, op: &'static str) -> impl FnOnce(io::Error) -> ApplyError {
    let path = path.to_string();
    move |source| ApplyError::Io { path, op, source }
}

fn errno_err(path: &str, op: &'static str, e: Errno) -> ApplyError {
    ApplyError::Io {
        path: path.to_string(),
        op,
        source: io::Error::from(e),
    }
}

fn owned(fd: std::os::fd::RawFd) -> File {
    // SAFETY: callers pass a descriptor freshly returned by a successful open call,
    // which nothing else owns.
    File::from(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the directory `path` (relative to `dir`, or the cwd) without following a final symlink.
fn open_dir_at(dir: Option<&File>, path: &OsStr) -> io::Result<File> {
    let fd = openat(
        dir.map(|d| d.as_raw_fd()),
        path,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW,
        Mode::empty(),
    )?;
    Ok(owned(fd))
}

/// Opens directory `path` beneath `dir`, refusing symlinks anywhere in the path.
fn open_beneath(dir: &File, path: impl AsRef<Path>) -> Result<File, Errno> {
    let how = OpenHow::new()
        .flags(OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS
                | ResolveFlag::RESOLVE_NO_XDEV,
        );
    let fd = openat2(dir.as_raw_fd(), path.as_ref(), how)?;
    Ok(owned(fd))
}

/// `parent_comps` joined with `name`, as the tree-relative path bytes.
fn join_bytes(parent_comps: &[OsString], name: &OsStr) -> Vec<u8> {
    let mut out = Vec::new();
    for c in parent_comps {
        out.extend_from_slice(c.as_bytes());
        out.push(b'/');
    }
    out.extend_from_slice(name.as_bytes());
    out
}

impl Applier {
    /// Removes whatever is at `name` in `parent` (the directory `parent_comps`), unless it is
    /// a directory and `keep_dir` is set. Files the tar-split recorder refers to are moved
    /// aside first.
    fn remove_existing(
        &mut self,
        parent: &File,
        parent_comps: &[OsString],
        name: &OsStr,
        keep_dir: bool,
        display: &str,
    ) -> Result<bool> {
        let st = match fstatat(Some(parent.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::ENOENT) => return Ok(false),
            Err(e) => return Err(errno_err(display, "stat existing entry", e)),
        };
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(false);
        }
        if let Some(rec) = &self.split {
            // Kept aside, not deleted: the stream may refer to files there.
            rec.borrow_mut()
                .move_aside(parent, &join_bytes(parent_comps, name), name)
                .map_err(io_err(display, "record layer"))?;
            // A cached parent may have been the moved directory, or inside it.
            self.parent_cache = None;
            return Ok(true);
        }
        remove_existing_at(parent, name, is_dir, display)
    }
}

/// Removes `name` in `parent` (a directory tree when `is_dir`).
fn remove_existing_at(parent: &File, name: &OsStr, is_dir: bool, display: &str) -> Result<bool> {
    if is_dir {
        remove_all_at(parent, name)
            .map_err(|e| errno_err(display, "remove existing directory", e))?;
        Ok(true)
    } else {
        unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::NoRemoveDir)
            .map_err(|e| errno_err(display, "remove existing entry", e))?;
        Ok(false)
    }
}

/// Recursively removes directory `name` in `parent` without following symlinks.
pub(crate) fn remove_all_at(parent: &File, name: &OsStr) -> Result<(), Errno> {
    let dir = open_dir_at(Some(parent), name)
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?;
    let mut children = Vec::new();
    {
        let mut it = nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd())?)?;
        for ent in it.iter() {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." {
                children.push(OsString::from_vec(n.to_vec()));
            }
        }
    }
    for child in children {
        let st = fstatat(
            Some(dir.as_raw_fd()),
            child.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            remove_all_at(&dir, &child)?;
        } else {
            unlinkat(
                Some(dir.as_raw_fd()),
                child.as_os_str(),
                UnlinkatFlags::NoRemoveDir,
            )?;
        }
    }
    unlinkat(Some(parent.as_raw_fd()), name, UnlinkatFlags::RemoveDir)
}

pub(crate) fn read_meta<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    display: &str,
) -> Result<EntryMeta> {
    // Like Go's archive/tar, unparseable (e.g. empty) numeric fields read as 0.
    let header = entry.header();
    let mode = header.mode().unwrap_or(0) & 0o7777;
    let mut uid = header.uid().unwrap_or(0);
    let mut gid = header.gid().unwrap_or(0);
    let mut mtime = header.mtime().unwrap_or(0) as i64;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(ApplyError::Archive)? {
        for ext in exts {
            let ext = ext.map_err(ApplyError::Archive)?;
            let key = ext.key_bytes();
            let value = ext.value_bytes();
            if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                xattrs.push((OsString::from_vec(name.to_vec()), value.to_vec()));
            } else if key == b"uid" || key == b"gid" || key == b"mtime" {
                let text = String::from_utf8_lossy(value);
                let int_part = text.split('.').next().unwrap_or_default();
                let parsed: i64 = int_part.parse().map_err(|_| ApplyError::Invalid {
                    path: display.to_string(),
                    reason: format!("bad pax {} {text:?}", String::from_utf8_lossy(key)),
                })?;
                match key {
                    b"uid" => uid = parsed as u64,
                    b"gid" => gid = parsed as u64,
                    _ => mtime = parsed,
                }
            }
        }
    }
    let id = |v: u64, what: &str| {
        u32::try_from(v).map_err(|_| ApplyError::Invalid {
            path: display.to_string(),
            reason: format!("{what} {v} out of range"),
        })
    };
    Ok(EntryMeta {
        mode,
        uid: id(uid, "uid")?,
        gid: id(gid, "gid")?,
        mtime,
        xattrs,
    })
}

fn entry_dev(v: io::Result<Option<u32>>, display: &str) -> Result<u32> {
    v.map(|d| d.unwrap_or(0)).map_err(|e| ApplyError::Invalid {
        path: display.to_string(),
        reason: format!("bad device number: {e}"),
    })
}

fn copy_entry<R: Read>(entry: &mut R, file: &mut File, display: &str) -> Result<u64> {
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ApplyError::Archive(e)),
        };
        file.write_all(&buf[..n])
            .map_err(io_err(display, "write file"))?;
        total += n as u64;
    }
    Ok(total)
}

/// chown, chmod (after chown, which clears setuid bits), xattrs, mtime.
fn apply_fd_meta(file: &File, meta: &EntryMeta, display: &str) -> Result<()> {
    let fd = file.as_raw_fd();
    fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(|e| errno_err(display, "chown", e))?;
    fchmod(fd, Mode::from_bits_truncate(meta.mode)).map_err(|e| errno_err(display, "chmod", e))?;
    for (name, value) in &meta.xattrs {
        set_fd_xattr(file, name, value).map_err(io_err(display, "set xattr"))?;
    }
    let ts = TimeSpec::new(meta.mtime, 0);
    futimens(fd, &ts, &ts).map_err(|e| errno_err(display, "set mtime", e))
}

/// Metadata for entries that can't be opened (symlinks, device nodes, fifos).
fn apply_path_meta(
    parent: &File,
    name: &OsStr,
    meta: &EntryMeta,
    chmod: bool,
    display: &str,
) -> Result<()> {
    let pfd = parent.as_raw_fd();
    fchownat(
        Some(pfd),
        name,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| errno_err(display, "chown", e))?;
    if chmod {
        // The node was created by us just now; it is not a symlink.
        fchmodat(
            Some(pfd),
            name,
            Mode::from_bits_truncate(meta.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| errno_err(display, "chmod", e))?;
    }
    if !meta.xattrs.is_empty() {
        let path = Path::new("/proc/self/fd").join(pfd.to_string()).join(name);
        for (xname, value) in &meta.xattrs {
            xattr::set(&path, xname, value).map_err(io_err(display, "set xattr"))?;
        }
    }
    let ts = TimeSpec::new(meta.mtime, 0);
    utimensat(Some(pfd), name, &ts, &ts, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| errno_err(display, "set mtime", e))
}

fn set_fd_xattr(file: &File, name: impl AsRef<OsStr>, value: &[u8]) -> io::Result<()> {
    use xattr::FileExt;
    file.set_xattr(name, value)
}

#[cfg(test)]
#[path = "apply_tests.rs"]
mod tests;
