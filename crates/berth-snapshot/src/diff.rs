//! Container filesystem changes (`docker diff`) and layer tars (`docker
//! commit`) from an overlayfs upper directory.
//!
//! The upper directory is walked through directory descriptors (nothing in
//! it is followed, even if the container changes it meanwhile). The lower
//! directories are image layers as [`apply_layer`](crate::apply_layer)
//! writes them: overlay whiteouts (character devices 0/0) and opaque
//! directories (`trusted.overlay.opaque=y`) are honoured when deciding what
//! existed below. `redirect_dir` and `metacopy` are not used by our mounts;
//! their xattrs are ignored.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, FileStat};

use crate::fsutil;
use crate::tarw::{Flavor, WalkError, Walker};

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// The kind of a change, as in Docker's `ContainerChangeResponseItem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The path existed below and was changed (`C`).
    Modified,
    /// The path did not exist below (`A`).
    Added,
    /// The path existed below and was removed (`D`).
    Deleted,
}

impl ChangeKind {
    /// Docker's numeric `Kind`: 0 modified, 1 added, 2 deleted.
    pub fn as_docker(&self) -> u8 {
        match self {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }

    /// The letter `docker diff` prints: `C`, `A` or `D`.
    pub fn letter(&self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path inside the container, e.g. `/etc/passwd` (non-UTF-8
    /// bytes are replaced by U+FFFD).
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// What [`write_layer`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStats {
    /// Bytes of tar written (the uncompressed layer size).
    pub size: u64,
    /// Number of tar entries (PAX extension headers not counted).
    pub entries: u64,
    /// Bytes of regular files' content (hardlinks counted once): what
    /// [`apply_layer`](crate::apply_layer) reports as the layer's size.
    pub file_bytes: u64,
}

/// Errors from [`changes`] and [`write_layer`].
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A directory given by the caller can't be opened.
    #[error("open {path}: {source}")]
    Open {
        /// The directory.
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading an entry (or writing the tar) failed.
    #[error("diff {path:?}: {op}: {source}")]
    Io {
        /// The entry, relative to the upper directory.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl From<WalkError> for DiffError {
    fn from(e: WalkError) -> Self {
        DiffError::Io {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

fn io_err<'a>(path: &'a Path, op: &'static str) -> impl FnOnce(Errno) -> DiffError + 'a {
    move |e| DiffError::Io {
        path: path.display().to_string(),
        op,
        source: io::Error::from(e),
    }
}

/// The changes of the overlay upper directory `upper` relative to its lower
/// directories `lowers` (top-most first, as in overlay's `lowerdir=`),
/// sorted by path.
///
/// - a whiteout is `Deleted` (if the path existed below);
/// - an entry that exists below is `Modified`, one that doesn't is `Added`
///   (with everything under an added directory);
/// - an opaque directory is `Modified` if it existed below (else `Added`),
///   and whatever existed below it and is not in the upper directory is
///   `Deleted`, as `docker diff` reports after `rm -rf dir; mkdir dir`;
/// - a directory copied up from below is `Modified` when anything under it
///   changed or its mode or owner differs from the one below (Docker lists
///   the parents of changes: `touch /etc/x` gives `C /etc`, `A /etc/x`).
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, DiffError> {
    let open_err = |source| DiffError::Open {
        path: upper.display().to_string(),
        source,
    };
    let rootfd = fsutil::open_root(upper).map_err(open_err)?;
    let root = fsutil::reopen_dir(&rootfd).map_err(|e| open_err(io::Error::from(e)))?;
    let mut walk = DiffWalk {
        lowers,
        out: Vec::new(),
    };
    let all: Vec<usize> = (0..lowers.len()).collect();
    let mut rel = PathBuf::new();
    walk.dir(&root, &mut rel, &all, false)?;
    let mut out = walk.out;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

/// What the lower layers have at one path.
struct Lower {
    st: FileStat,
    /// For a directory: the layers (indices, top-most first) whose directory
    /// at this path is merged into the view.
    layers: Vec<usize>,
}

struct DiffWalk<'a> {
    lowers: &'a [PathBuf],
    out: Vec<Change>,
}

fn container_path(rel: &Path) -> String {
    let mut s = String::with_capacity(rel.as_os_str().len() + 1);
    s.push('/');
    s.push_str(&rel.to_string_lossy());
    s
}

fn lstat(p: &Path) -> Result<Option<FileStat>, Errno> {
    match fstatat(None, p, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(e) => Err(e),
    }
}

fn lower_opaque(p: &Path) -> bool {
    xattr::get(p, OPAQUE_XATTR).ok().flatten().as_deref() == Some(b"y")
}

impl DiffWalk<'_> {
    /// What the merged lower view holds at `rel`, looking only at `layers`
    /// (the layers merged into its parent directory).
    fn lookup(&self, rel: &Path, layers: &[usize]) -> Result<Option<Lower>, DiffError> {
        let mut found: Option<Lower> = None;
        for &i in layers {
            let p = self.lowers[i].join(rel);
            let Some(st) = lstat(&p).map_err(io_err(rel, "stat lower"))? else {
                continue;
            };
            if fsutil::is_whiteout(&st) {
                break;
            }
            if !fsutil::is_dir(&st) {
                if found.is_none() {
                    found = Some(Lower {
                        st,
                        layers: Vec::new(),
                    });
                }
                // A non-directory hides everything below it.
                break;
            }
            match &mut found {
                None => {
                    found = Some(Lower {
                        st,
                        layers: vec![i],
                    })
                }
                Some(l) if fsutil::is_dir(&l.st) => l.layers.push(i),
                Some(_) => break,
            }
            if lower_opaque(&p) {
                break;
            }
        }
        Ok(found)
    }

    /// The names visible below in the directory `rel` merged from `layers`.
    fn lower_names(&self, rel: &Path, layers: &[usize]) -> Result<Vec<OsString>, DiffError> {
        let mut seen: HashSet<OsString> = HashSet::new();
        let mut visible = Vec::new();
        for &i in layers {
            let p = self.lowers[i].join(rel);
            let rd = match std::fs::read_dir(&p) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(DiffError::Io {
                        path: p.display().to_string(),
                        op: "read lower directory",
                        source,
                    })
                }
            };
            for ent in rd {
                let ent = ent.map_err(|source| DiffError::Io {
                    path: p.display().to_string(),
                    op: "read lower directory",
                    source,
                })?;
                let name = ent.file_name();
                if !seen.insert(name.clone()) {
                    continue;
                }
                let st = lstat(&ent.path()).map_err(io_err(rel, "stat lower"))?;
                if st.is_some_and(|st| !fsutil::is_whiteout(&st)) {
                    visible.push(name);
                }
            }
        }
        Ok(visible)
    }

    fn push(&mut self, rel: &Path, kind: ChangeKind) {
        self.out.push(Change {
            path: container_path(rel),
            kind,
        });
    }

    /// Walks the upper directory `dir` at `rel`, whose lower counterpart is
    /// merged from `layers` (empty: nothing below). In an `opaque` directory
    /// nothing from below shows through, so lower names missing from the
    /// upper directory are deletions.
    fn dir(
        &mut self,
        dir: &File,
        rel: &mut PathBuf,
        layers: &[usize],
        opaque: bool,
    ) -> Result<(), DiffError> {
        let names = fsutil::list_dir(dir).map_err(io_err(rel, "read directory"))?;
        let mut present: HashSet<&OsStr> = HashSet::new();
        for name in &names {
            present.insert(name.as_os_str());
            rel.push(name);
            let r = self.child(dir, name, rel, layers, opaque);
            rel.pop();
            r?;
        }
        if opaque && !layers.is_empty() {
            for name in self.lower_names(rel, layers)? {
                if !present.contains(name.as_os_str()) {
                    rel.push(&name);
                    self.push(rel, ChangeKind::Deleted);
                    rel.pop();
                }
            }
        }
        Ok(())
    }

    fn child(
        &mut self,
        parent: &File,
        name: &OsStr,
        rel: &mut PathBuf,
        layers: &[usize],
        opaque_parent: bool,
    ) -> Result<(), DiffError> {
        let pathfd = match fsutil::open_path_at(parent, name) {
            Ok(f) => f,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(io_err(rel, "open")(e)),
        };
        let st = fsutil::stat_fd(&pathfd).map_err(io_err(rel, "stat"))?;
        let below = if layers.is_empty() {
            None
        } else {
            self.lookup(rel, layers)?
        };
        if fsutil::is_whiteout(&st) {
            if below.is_some() {
                self.push(rel, ChangeKind::Deleted);
            }
            return Ok(());
        }
        if !fsutil::is_dir(&st) {
            let kind = if below.is_some() {
                ChangeKind::Modified
            } else {
                ChangeKind::Added
            };
            self.push(rel, kind);
            return Ok(());
        }
        let dir = match fsutil::reopen_dir(&pathfd) {
            Ok(d) => d,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(io_err(rel, "open directory")(e)),
        };
        let opaque =
            opaque_parent || fsutil::get_fd_xattr(&dir, OPAQUE_XATTR).as_deref() == Some(b"y");
        match below {
            None => {
                self.push(rel, ChangeKind::Added);
                self.dir(&dir, rel, &[], false)
            }
            Some(l) if !fsutil::is_dir(&l.st) => {
                // A file replaced by a directory: everything in it is new.
                self.push(rel, ChangeKind::Modified);
                self.dir(&dir, rel, &[], false)
            }
            Some(l) => {
                let before = self.out.len();
                self.dir(&dir, rel, &l.layers, opaque)?;
                let meta_changed = st.st_mode != l.st.st_mode
                    || st.st_uid != l.st.st_uid
                    || st.st_gid != l.st.st_gid;
                if opaque || meta_changed || self.out.len() > before {
                    self.push(rel, ChangeKind::Modified);
                }
                Ok(())
            }
        }
    }
}

/// Writes the upper directory `upper` to `w` as a plain (uncompressed) OCI
/// layer tar: overlay whiteouts become empty `.wh.<name>` files, an opaque
/// directory is followed by a `<dir>/.wh..wh..opq` entry, and everything else
/// is archived like [`write_tree`](crate::write_tree) does (modes, owners,
/// mtimes, xattrs except `trusted.overlay.*`, hardlinks within the layer as
/// tar links, fifos and device nodes kept, sockets skipped). Entries are named
/// like Docker's (`etc/`, `etc/x`), in sorted order.
///
/// [`apply_layer`](crate::apply_layer) turns the result back into the same
/// upper directory.
pub fn write_layer<W: Write>(upper: &Path, w: W) -> Result<LayerStats, DiffError> {
    let open_err = |source| DiffError::Open {
        path: upper.display().to_string(),
        source,
    };
    let rootfd = fsutil::open_root(upper).map_err(open_err)?;
    let root = fsutil::reopen_dir(&rootfd).map_err(|e| open_err(io::Error::from(e)))?;
    let mut walker = Walker::new(w, Flavor::Layer);
    let mut name = Vec::with_capacity(256);
    walker.dir_contents(&root, &mut name)?;
    let entries = walker.entries;
    let file_bytes = walker.file_bytes;
    let size = walker.finish().map_err(|source| DiffError::Io {
        path: String::new(),
        op: "finish layer",
        source,
    })?;
    Ok(LayerStats {
        size,
        entries,
        file_bytes,
    })
}

/// [`write_layer`] of a snapshot's own tree, recording its tar-split (see `split.rs`) instead
/// of writing the stream anywhere. Returns the stats and the stream's digest.
pub(crate) fn write_layer_split(
    tree: &Path,
    rec: crate::split::Shared,
) -> Result<(LayerStats, berth_content::Digest), DiffError> {
    let open_err = |source| DiffError::Open {
        path: tree.display().to_string(),
        source,
    };
    let rootfd = fsutil::open_root(tree).map_err(open_err)?;
    let root = fsutil::reopen_dir(&rootfd).map_err(|e| open_err(io::Error::from(e)))?;
    let w = crate::split::RecordingWriter {
        rec: rec.clone(),
        hasher: sha2::Sha256::default(),
    };
    let mut walker = Walker::new(w, Flavor::Layer);
    walker.set_split(rec);
    walker.set_quiescent(true);
    let mut name = Vec::with_capacity(256);
    walker.dir_contents(&root, &mut name)?;
    let entries = walker.entries;
    let file_bytes = walker.file_bytes;
    let (size, w) = walker
        .finish_with_writer()
        .map_err(|source| DiffError::Io {
            path: String::new(),
            op: "finish layer",
            source,
        })?;
    let digest = berth_content::Digest::from_sha256(sha2::Digest::finalize(w.hasher).as_slice());
    Ok((
        LayerStats {
            size,
            entries,
            file_bytes,
        },
        digest,
    ))
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
