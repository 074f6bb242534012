//! Snapshots: unpacked layers on disk, identified by chain id.
//!
//! ```text
//! <root>/<chain-id-hex>/fs              the unpacked layer
//! <root>/<chain-id-hex>/snapshot.json   { parent, diff_id, size }
//! <root>/<chain-id-hex>/tar-split.*      the layer's tar stream as headers + references to
//!                                        the files of fs/ (see split.rs), when it has one
//! <root>/tmp-*                          snapshots being created (removed on open)
//! <root>/rm-*                           snapshots being removed (removed on open)
//! ```

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use berth_content::{is_sha256_hex, Digest};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::apply::{apply_layer, apply_recorded, ApplyError, ApplyOptions, ApplyStats};
use crate::diff::{write_layer_split, DiffError, LayerStats};
use crate::split::{LayerReader, Recorder};

const TMP_PREFIX: &str = "tmp-";
const RM_PREFIX: &str = "rm-";
const META_FILE: &str = "snapshot.json";

/// Errors from the snapshot store.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No snapshot with this chain id.
    #[error("snapshot {0} not found")]
    NotFound(Digest),
    /// The layer could not be applied.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The layer's content does not match the expected diff id.
    #[error("layer diff id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    /// snapshot.json is unreadable.
    #[error("corrupt snapshot metadata {path}: {source}")]
    Corrupt {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    /// An I/O error, with context.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> SnapshotError {
    let context = context.into();
    move |source| SnapshotError::Io { context, source }
}

type Result<T, E = SnapshotError> = std::result::Result<T, E>;

/// The OCI chain id: `chain(L0) = diffid(L0)`,
/// `chain(Ln) = sha256(chain(Ln-1) + " " + diffid(Ln))`.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct SnapshotMeta {
    parent: Option<Digest>,
    diff_id: Digest,
    size: u64,
}

/// A committed snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The chain id identifying the snapshot.
    pub chain_id: Digest,
    /// The parent snapshot's chain id.
    pub parent: Option<Digest>,
    /// The diff id (digest of the uncompressed layer tar).
    pub diff_id: Digest,
    /// Sum of the layer's regular file sizes.
    pub size: u64,
    /// The unpacked layer directory (an overlay lowerdir).
    pub fs: PathBuf,
}

/// The store of unpacked layers under `<data-root>/snapshots`.
#[derive(Debug, Clone)]
pub struct SnapshotStore {
    root: PathBuf,
}

impl SnapshotStore {
    /// Opens (creating if needed) the store and removes leftovers of
    /// interrupted creations and removals.
    pub fn open(root: &Path) -> Result<Self> {
        fs::create_dir_all(root).map_err(io_err(format!("create {}", root.display())))?;
        for entry in fs::read_dir(root).map_err(io_err(format!("read {}", root.display())))? {
            let entry = entry.map_err(io_err(format!("read {}", root.display())))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(TMP_PREFIX) || name.starts_with(RM_PREFIX) {
                if let Err(e) = fs::remove_dir_all(entry.path()) {
                    tracing::warn!(
                        "removing stale snapshot dir {}: {e}",
                        entry.path().display()
                    );
                }
            }
        }
        Ok(SnapshotStore {
            root: root.to_path_buf(),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of snapshot `chain_id`.
    pub fn dir(&self, chain_id: &Digest) -> PathBuf {
        self.root.join(chain_id.hex())
    }

    /// The unpacked layer directory of snapshot `chain_id`.
    pub fn fs_path(&self, chain_id: &Digest) -> PathBuf {
        self.dir(chain_id).join("fs")
    }

    /// The exact tar stream of snapshot `chain_id`'s layer, read back from its tar-split;
    /// `None` when the snapshot has none (its layer is stored as a blob).
    pub fn layer_reader(&self, chain_id: &Digest) -> Result<Option<LayerReader>> {
        let dir = self.dir(chain_id);
        if !crate::split::has_index(&dir) {
            if !self.exists(chain_id) {
                return Err(SnapshotError::NotFound(chain_id.clone()));
            }
            return Ok(None);
        }
        LayerReader::open(&dir)
            .map(Some)
            .map_err(io_err(format!("open the tar-split of snapshot {chain_id}")))
    }

    /// Whether a committed snapshot exists.
    pub fn exists(&self, chain_id: &Digest) -> bool {
        self.dir(chain_id).join(META_FILE).is_file()
    }

    /// Reads a snapshot's metadata.
    pub fn get(&self, chain_id: &Digest) -> Result<Snapshot> {
        let path = self.dir(chain_id).join(META_FILE);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SnapshotError::NotFound(chain_id.clone()))
            }
            Err(e) => return Err(io_err(format!("read {}", path.display()))(e)),
        };
        let meta: SnapshotMeta =
            serde_json::from_slice(&data).map_err(|source| SnapshotError::Corrupt {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Snapshot {
            chain_id: chain_id.clone(),
            parent: meta.parent,
            diff_id: meta.diff_id,
            size: meta.size,
            fs: self.fs_path(chain_id),
        })
    }

    /// All committed snapshots, sorted by chain id.
    pub fn list(&self) -> Result<Vec<Snapshot>> {
        let mut out = Vec::new();
        let entries =
            fs::read_dir(&self.root).map_err(io_err(format!("read {}", self.root.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("read {}", self.root.display())))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|n| is_sha256_hex(n)) else {
                continue;
            };
            let Ok(id) = Digest::from_hex(name) else {
                continue;
            };
            match self.get(&id) {
                Ok(s) => out.push(s),
                Err(SnapshotError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.chain_id.cmp(&b.chain_id));
        Ok(out)
    }

    /// Removes a snapshot (atomically renamed away first, so a crash never
    /// leaves a half-removed snapshot under its chain id). Removing a missing
    /// snapshot is not an error.
    pub fn remove(&self, chain_id: &Digest) -> Result<()> {
        let dir = self.dir(chain_id);
        let doomed = self
            .root
            .join(format!("{RM_PREFIX}{}-{}", chain_id.hex(), rand_suffix()));
        match fs::rename(&dir, &doomed) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_err(format!("remove snapshot {chain_id}"))(e)),
        }
        sync_dir(&self.root)?;
        fs::remove_dir_all(&doomed).map_err(io_err(format!("remove {}", doomed.display())))
    }

    /// Starts a new snapshot in a temporary directory inside the store.
    /// Dropping the returned value without committing removes it.
    pub fn prepare(&self) -> Result<PendingSnapshot> {
        let tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempdir_in(&self.root)
            .map_err(io_err(format!(
                "create temp dir in {}",
                self.root.display()
            )))?;
        let fs_dir = tmp.path().join("fs");
        fs::create_dir(&fs_dir).map_err(io_err(format!("create {}", fs_dir.display())))?;
        fs::set_permissions(&fs_dir, fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("chmod {}", fs_dir.display())))?;
        Ok(PendingSnapshot {
            tmp,
            fs: fs_dir,
            root: self.root.clone(),
        })
    }

    /// Unpacks the plain tar `reader` as a snapshot on top of `parent`,
    /// computing its diff id (verified against `expected_diff_id` if given).
    /// If the snapshot already exists, the existing one is returned.
    pub fn create_from_tar<R: Read>(
        &self,
        parent: Option<&Digest>,
        expected_diff_id: Option<&Digest>,
        reader: R,
        opts: &ApplyOptions,
    ) -> Result<Snapshot> {
        let pending = self.prepare()?;
        let mut hashing = HashingReader {
            inner: reader,
            hasher: Sha256::new(),
        };
        let stats = pending.apply_split(&mut hashing, opts)?;
        io::copy(&mut hashing, &mut io::sink()).map_err(ApplyError::Archive)?;
        let diff_id = Digest::from_sha256(hashing.hasher.finalize().as_slice());
        if let Some(expected) = expected_diff_id {
            if *expected != diff_id {
                return Err(SnapshotError::DiffIdMismatch {
                    expected: expected.clone(),
                    actual: diff_id,
                });
            }
        }
        pending.commit(parent, &diff_id, stats.size)
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A snapshot being created. Removed on drop unless committed.
#[derive(Debug)]
pub struct PendingSnapshot {
    tmp: tempfile::TempDir,
    fs: PathBuf,
    root: PathBuf,
}

impl PendingSnapshot {
    /// The directory to unpack into.
    pub fn fs_path(&self) -> &Path {
        &self.fs
    }

    /// Makes the directory `dir` this snapshot's tree, by renaming it (it must be on the
    /// store's filesystem: an overlay upper directory, whose whiteouts are already in the
    /// snapshots' format).
    pub fn adopt(&self, dir: &Path) -> Result<()> {
        fs::remove_dir(&self.fs).map_err(io_err(format!("remove {}", self.fs.display())))?;
        fs::rename(dir, &self.fs).map_err(io_err(format!(
            "move {} to {}",
            dir.display(),
            self.fs.display()
        )))
    }

    /// Applies a plain tar stream into [`Self::fs_path`].
    pub fn apply<R: Read>(&self, reader: R, opts: &ApplyOptions) -> Result<ApplyStats> {
        Ok(apply_layer(reader, &self.fs, opts)?)
    }

    /// Applies a plain tar stream into [`Self::fs_path`] and keeps the stream as a tar-split
    /// (headers and padding, file contents referenced in the tree), so that
    /// [`SnapshotStore::layer_reader`] gives it back byte for byte and no blob is needed.
    /// Every byte up to the stream's end is read.
    pub fn apply_split<R: Read>(&self, reader: R, opts: &ApplyOptions) -> Result<ApplyStats> {
        let rec = Recorder::new(self.tmp.path()).map_err(io_err("start the layer's tar-split"))?;
        let stats = apply_recorded(reader, &self.fs, opts, Some(rec.clone()))?;
        let len = Recorder::finish(rec).map_err(io_err("write the layer's tar-split"))?;
        debug_assert_eq!(len, stats.bytes_read);
        Ok(stats)
    }

    /// Writes the tar stream of this snapshot's tree (as `write_layer` does) as a tar-split
    /// only, nothing else: for a tree adopted from an overlay upper directory. Returns the
    /// stats and the stream's digest (the diff id).
    pub fn write_split(&self) -> Result<(LayerStats, Digest), DiffError> {
        let rec = Recorder::new(self.tmp.path()).map_err(|source| DiffError::Io {
            path: self.tmp.path().display().to_string(),
            op: "start the layer's tar-split",
            source,
        })?;
        let r = write_layer_split(&self.fs, rec.clone())?;
        Recorder::finish(rec).map_err(|source| DiffError::Io {
            path: self.tmp.path().display().to_string(),
            op: "write the layer's tar-split",
            source,
        })?;
        Ok(r)
    }

    /// Writes the metadata and renames the snapshot into place under
    /// `chain_id(parent, diff_id)`. If that snapshot already exists, this
    /// one is discarded and the existing one returned.
    pub fn commit(self, parent: Option<&Digest>, diff_id: &Digest, size: u64) -> Result<Snapshot> {
        let id = chain_id(parent, diff_id);
        let meta = SnapshotMeta {
            parent: parent.cloned(),
            diff_id: diff_id.clone(),
            size,
        };
        let meta_path = self.tmp.path().join(META_FILE);
        let data = serde_json::to_vec(&meta).map_err(|source| SnapshotError::Corrupt {
            path: meta_path.display().to_string(),
            source,
        })?;
        fs::write(&meta_path, data).map_err(io_err(format!("write {}", meta_path.display())))?;
        File::open(&meta_path)
            .and_then(|f| f.sync_all())
            .map_err(io_err(format!("fsync {}", meta_path.display())))?;
        let store = SnapshotStore {
            root: self.root.clone(),
        };
        let target = store.dir(&id);
        if store.exists(&id) {
            return store.get(&id);
        }
        fs::set_permissions(self.tmp.path(), fs::Permissions::from_mode(0o755))
            .map_err(io_err(format!("chmod {}", self.tmp.path().display())))?;
        match fs::rename(self.tmp.path(), &target) {
            Ok(()) => {}
            // Lost a race with an identical snapshot: keep the other one.
            Err(e) if store.exists(&id) => {
                tracing::debug!("snapshot {id} appeared concurrently: {e}");
                return store.get(&id);
            }
            Err(e) => return Err(io_err(format!("rename snapshot into {}", target.display()))(e)),
        }
        // The directory now lives under its final name; don't let TempDir delete it.
        let _ = self.tmp.keep();
        sync_dir(&self.root)?;
        Ok(Snapshot {
            chain_id: id.clone(),
            parent: meta.parent,
            diff_id: meta.diff_id,
            size,
            fs: store.fs_path(&id),
        })
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("fsync {}", dir.display())))
}

fn rand_suffix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{t}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn chain_ids() {
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        assert_eq!(chain_id(None, &a), a);
        let expected = Digest::of(format!("{a} {b}").as_bytes());
        assert_eq!(chain_id(Some(&a), &b), expected);
    }

    #[test]
    fn create_get_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
        let tar = tar_with(&[("hello", b"world"), ("d/x", b"12")]);
        let diff = Digest::of(&tar);
        let s = store
            .create_from_tar(None, Some(&diff), &tar[..], &ApplyOptions::default())
            .unwrap();
        assert_eq!(s.chain_id, diff);
        assert_eq!(s.size, 7);
        assert_eq!(fs::read(s.fs.join("hello")).unwrap(), b"world");
        assert!(store.exists(&diff));
        assert_eq!(store.get(&diff).unwrap(), s);
        assert_eq!(store.list().unwrap(), vec![s.clone()]);

        // child snapshot
        let tar2 = tar_with(&[("more", b"!")]);
        let s2 = store
            .create_from_tar(Some(&diff), None, &tar2[..], &ApplyOptions::default())
            .unwrap();
        assert_eq!(s2.chain_id, chain_id(Some(&diff), &Digest::of(&tar2)));
        assert_eq!(s2.parent.as_ref(), Some(&diff));
        assert_eq!(store.list().unwrap().len(), 2);

        // same content again: existing snapshot returned
        let again = store
            .create_from_tar(None, None, &tar[..], &ApplyOptions::default())
            .unwrap();
        assert_eq!(again, s);

        store.remove(&diff).unwrap();
        store.remove(&diff).unwrap();
        assert!(!store.exists(&diff));
        assert!(matches!(store.get(&diff), Err(SnapshotError::NotFound(_))));
        store.remove(&s2.chain_id).unwrap();
        assert_eq!(fs::read_dir(store.root()).unwrap().count(), 0);
    }

    #[test]
    fn failures_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(&dir.path().join("snapshots")).unwrap();
        let tar = tar_with(&[("hello", b"world")]);
        let err = store
            .create_from_tar(
                None,
                Some(&Digest::of(b"x")),
                &tar[..],
                &ApplyOptions::default(),
            )
            .unwrap_err();
        assert!(
            err.to_string().starts_with("layer diff id mismatch"),
            "{err}"
        );
        let junk = vec![7u8; 1024];
        assert!(store
            .create_from_tar(None, None, &junk[..], &ApplyOptions::default())
            .is_err());
        assert_eq!(fs::read_dir(store.root()).unwrap().count(), 0);
    }

    #[test]
    fn open_cleans_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("snapshots");
        let store = SnapshotStore::open(&root).unwrap();
        let pending = store.prepare().unwrap();
        fs::write(pending.fs_path().join("f"), b"x").unwrap();
        std::mem::forget(pending); // simulate a crash
        fs::create_dir_all(root.join("rm-abc/fs")).unwrap();
        assert_eq!(fs::read_dir(&root).unwrap().count(), 2);
        SnapshotStore::open(&root).unwrap();
        assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    }
}
