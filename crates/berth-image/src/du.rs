//! Disk usage as `du` counts it: allocated blocks (`st_blocks * 512`) of
//! every inode (files, directories, symlinks), each inode once.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Inodes already counted, shared across walks so hardlinks between trees
/// are counted once.
#[derive(Debug, Default)]
pub(crate) struct DiskWalker {
    seen: HashSet<(u64, u64)>,
}

impl DiskWalker {
    /// Bytes allocated under `path` (0 if it does not exist). Entries that
    /// vanish during the walk are skipped.
    pub(crate) fn walk(&mut self, path: &Path) -> io::Result<u64> {
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut total = 0;
        if self.seen.insert((md.dev(), md.ino())) {
            total += md.blocks() * 512;
        }
        if md.is_dir() {
            let entries = match fs::read_dir(path) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(total),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                total += self.walk(&entry.path())?;
            }
        }
        Ok(total)
    }
}

/// `du`-style bytes of one tree.
pub(crate) fn disk_bytes(path: &Path) -> u64 {
    DiskWalker::default().walk(path).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_blocks_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        fs::write(p.join("a"), vec![1u8; 10_000]).unwrap();
        fs::hard_link(p.join("a"), p.join("b")).unwrap();
        std::os::unix::fs::symlink("a", p.join("l")).unwrap();
        // A sparse file allocates (almost) nothing.
        let f = fs::File::create(p.join("sparse")).unwrap();
        f.set_len(100 << 20).unwrap();
        let total = disk_bytes(p);
        let out = std::process::Command::new("du")
            .arg("-s")
            .arg("-B1")
            .arg(p)
            .output()
            .unwrap();
        let du: u64 = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(total, du);
        assert!(total < 1 << 20);
        assert_eq!(disk_bytes(&p.join("missing")), 0);
    }
}
