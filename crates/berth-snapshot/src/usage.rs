//! Disk usage of a directory tree.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Errors from [`dir_size`].
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// Walking the tree failed.
    #[error("measure {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
}

/// Sum of the sizes of the regular files under `path` (each inode counted
/// once; symlinks are not followed). A missing `path` has size 0.
pub fn dir_size(path: &Path) -> Result<u64, UsageError> {
    let mut seen = HashSet::new();
    let mut total = 0;
    match fs::symlink_metadata(path) {
        Ok(_) => walk(path, &mut seen, &mut total)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(source) => {
            return Err(UsageError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    }
    Ok(total)
}

fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>, total: &mut u64) -> Result<(), UsageError> {
    let err = |source| UsageError::Io {
        path: path.display().to_string(),
        source,
    };
    let md = fs::symlink_metadata(path).map_err(err)?;
    if md.is_file() {
        if seen.insert((md.dev(), md.ino())) {
            *total += md.len();
        }
    } else if md.is_dir() {
        for entry in fs::read_dir(path).map_err(err)? {
            let entry = entry.map_err(err)?;
            walk(&entry.path(), seen, total)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_regular_files_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::create_dir_all(p.join("a/b")).unwrap();
        fs::write(p.join("a/f"), vec![0u8; 100]).unwrap();
        fs::write(p.join("a/b/g"), vec![0u8; 50]).unwrap();
        fs::hard_link(p.join("a/f"), p.join("a/b/f2")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", p.join("a/sl")).unwrap();
        assert_eq!(dir_size(p).unwrap(), 150);
        assert_eq!(dir_size(&p.join("missing")).unwrap(), 0);
        assert_eq!(dir_size(&p.join("a/f")).unwrap(), 100);
    }
}
