//! `docker export`: a whole container filesystem as a tar stream.

use std::io::{self, Write};
use std::path::Path;

use crate::fsutil;
use crate::tarw::{Flavor, WalkError, Walker};

/// Errors from [`write_tree`].
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The root directory can't be opened.
    #[error("export {path}: {source}")]
    Root {
        /// The root given to [`write_tree`].
        path: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Reading an entry or writing the archive failed.
    #[error("export {path:?}: {op}: {source}")]
    Entry {
        /// The entry's name in the archive.
        path: String,
        /// What was being done.
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl From<WalkError> for TreeError {
    fn from(e: WalkError) -> Self {
        TreeError::Entry {
            path: e.path,
            op: e.op,
            source: e.source,
        }
    }
}

/// Writes everything under `root` (a mounted container rootfs) to `w` as a
/// plain tar stream, the way `docker export` does; returns the number of tar
/// bytes written.
///
/// Entries are named relative to `root` without a leading `./` (`bin/`,
/// `bin/sh`), in bytewise sorted depth-first order; the root itself has no
/// entry. Symlinks are never followed (they are archived as symlinks), modes,
/// owners, mtimes (seconds) and xattrs (except overlayfs' own
/// `trusted.overlay.*`) are kept, files with several links in the tree become
/// tar hardlinks to the first name, fifos and device nodes are archived as
/// such, sockets are skipped. Entries that vanish during the walk are skipped.
pub fn write_tree<W: Write>(root: &Path, w: W) -> Result<u64, TreeError> {
    write_tree_as(root, w, false)
}

/// [`write_tree`] of a tree that nothing changes during the walk (the root of a container
/// that is not running, walked under its lock): each regular file is opened once, directly
/// in its already-open parent without following a symlink, instead of an `O_PATH` open and
/// a reopen. Not for a running container's root: a process there could swap a device node
/// in between the directory listing and the open.
pub fn write_tree_quiescent<W: Write>(root: &Path, w: W) -> Result<u64, TreeError> {
    write_tree_as(root, w, true)
}

fn write_tree_as<W: Write>(root: &Path, w: W, quiescent: bool) -> Result<u64, TreeError> {
    let root_err = |source| TreeError::Root {
        path: root.display().to_string(),
        source,
    };
    let rootfd = fsutil::open_root(root).map_err(root_err)?;
    let dir = fsutil::reopen_dir(&rootfd).map_err(|e| root_err(io::Error::from(e)))?;
    let mut walker = Walker::new(w, Flavor::Export);
    walker.set_quiescent(quiescent);
    let mut name = Vec::with_capacity(256);
    walker.dir_contents(&dir, &mut name)?;
    walker.finish().map_err(|source| TreeError::Entry {
        path: String::new(),
        op: "finish archive",
        source,
    })
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
