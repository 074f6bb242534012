//! The blob store itself.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tempfile::NamedTempFile;

use crate::digest::{is_sha256_hex, Digest};

/// Errors from the content store.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    /// No blob with this digest.
    #[error("blob {0} not found")]
    NotFound(Digest),
    /// The written content does not match the expected digest.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl ContentError {
    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ContentError {
        let context = context.into();
        move |source| ContentError::Io { context, source }
    }

    /// Whether this is a "blob not found" error.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ContentError::NotFound(_))
    }
}

type Result<T, E = ContentError> = std::result::Result<T, E>;

/// A content-addressable store of sha256 blobs.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    blobs: PathBuf,
    ingest: PathBuf,
    /// Blobs stored by [`ContentStore::put_all_deferred`] and not fsynced yet.
    deferred: std::sync::Arc<std::sync::Mutex<Vec<Digest>>>,
    /// Held through a whole [`ContentStore::sync_deferred`], so that a second caller returns
    /// only once the blobs the first took are durable.
    syncing: std::sync::Arc<std::sync::Mutex<()>>,
}

impl ContentStore {
    /// Opens (creating if needed) the store rooted at `root` (`<data-root>/content`).
    /// Leftover ingest files from an earlier crash are removed.
    pub fn open(root: &Path) -> Result<Self> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        for dir in [&blobs, &ingest] {
            fs::create_dir_all(dir)
                .map_err(ContentError::io(format!("create {}", dir.display())))?;
        }
        let entries = fs::read_dir(&ingest)
            .map_err(ContentError::io(format!("read {}", ingest.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if let Err(err) = fs::remove_file(&path) {
                tracing::warn!("removing stale ingest file {}: {err}", path.display());
            }
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
            blobs,
            ingest,
            deferred: Default::default(),
            syncing: Default::default(),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Starts writing a new blob. Nothing is visible until [`BlobWriter::commit`];
    /// dropping the writer discards the data.
    pub fn writer(&self) -> Result<BlobWriter> {
        let file = tempfile::Builder::new()
            .prefix("ingest-")
            .tempfile_in(&self.ingest)
            .map_err(ContentError::io(format!(
                "create ingest file in {}",
                self.ingest.display()
            )))?;
        Ok(BlobWriter {
            file,
            buf: Vec::with_capacity(WRITE_BUF),
            hasher: Sha256::new(),
            size: 0,
            blobs: self.blobs.clone(),
        })
    }

    /// Stores `data` and returns its digest.
    pub fn put(&self, data: &[u8]) -> Result<Digest> {
        let digest = Digest::of(data);
        if self.exists(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(data)
            .map_err(ContentError::io("write ingest file"))?;
        let (d, _) = w.commit(Some(&digest))?;
        Ok(d)
    }

    /// Stores several blobs as [`ContentStore::put`] does, their fsyncs issued at once (one
    /// journal commit instead of one each, on ext4 and xfs) and one fsync of the blob
    /// directory for all of them (an image's config and manifest).
    pub fn put_all(&self, blobs: &[&[u8]]) -> Result<Vec<Digest>> {
        self.put_all_with(blobs, true)
    }

    /// [`ContentStore::put_all`] without any fsync: the blobs are durable only after
    /// [`ContentStore::sync_deferred`] (a build's intermediate images, synced when the build
    /// ends). Until then a power loss may lose them, and whatever names them is then broken
    /// (which `check` finds, and a build's cache does not use); a blob found damaged that
    /// way (its size is wrong) is written again by the next put.
    pub fn put_all_deferred(&self, blobs: &[&[u8]]) -> Result<Vec<Digest>> {
        self.put_all_with(blobs, false)
    }

    /// How many blobs [`ContentStore::put_all_deferred`] stored that are not fsynced yet.
    pub fn deferred_len(&self) -> usize {
        self.deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// fsyncs the blobs [`ContentStore::put_all_deferred`] stored (all at once) and the blob
    /// directory.
    pub fn sync_deferred(&self) -> Result<()> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        let pending = std::mem::take(&mut *self.deferred.lock().unwrap_or_else(|p| p.into_inner()));
        if pending.is_empty() {
            return Ok(());
        }
        let r = self.sync_blobs(&pending);
        if r.is_err() {
            // Still owed: the next sync tries them again.
            self.deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(pending);
        }
        r
    }

    fn sync_blobs(&self, digests: &[Digest]) -> Result<()> {
        let mut files = Vec::new();
        for d in digests {
            match File::open(self.path(d)) {
                Ok(f) => files.push(f),
                // Removed since (an rmi): nothing to make durable.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.map_err(d, "open", e)),
            }
            // A few hundred at a time at most: descriptors are finite.
            if files.len() >= 256 {
                let refs: Vec<&File> = files.iter().collect();
                sync_files(&refs).map_err(ContentError::io("fsync deferred blobs"))?;
                files.clear();
            }
        }
        let refs: Vec<&File> = files.iter().collect();
        sync_files(&refs).map_err(ContentError::io("fsync deferred blobs"))?;
        sync_dir(&self.blobs)
    }

    fn put_all_with(&self, blobs: &[&[u8]], durable: bool) -> Result<Vec<Digest>> {
        let mut digests = Vec::with_capacity(blobs.len());
        let mut writers = Vec::new();
        for data in blobs {
            let digest = Digest::of(data);
            // A blob whose size is wrong (cut short by a power loss before it was synced) is
            // written again.
            let stored = fs::metadata(self.path(&digest))
                .is_ok_and(|m| m.is_file() && m.len() == data.len() as u64);
            if !stored && !writers.iter().any(|(_, d)| *d == digest) {
                let mut w = self.writer()?;
                w.write_all(data)
                    .and_then(|()| w.flush())
                    .map_err(ContentError::io("write ingest file"))?;
                writers.push((w, digest.clone()));
            }
            digests.push(digest);
        }
        if durable {
            let files: Vec<&File> = writers.iter().map(|(w, _)| w.file.as_file()).collect();
            sync_files(&files).map_err(ContentError::io("fsync ingest file"))?;
        }
        let mut renamed = Vec::new();
        for (w, digest) in writers {
            if w.commit_synced(&digest)? {
                renamed.push(digest);
            }
        }
        if durable {
            // A blob stored before without its fsync is durable from now on too.
            let owed = {
                let deferred = self.deferred.lock().unwrap_or_else(|p| p.into_inner());
                digests.iter().any(|d| deferred.contains(d))
            };
            if owed {
                self.sync_deferred()?;
            }
        }
        if !renamed.is_empty() {
            if durable {
                sync_dir(&self.blobs)?;
            } else {
                self.deferred
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(renamed);
            }
        }
        Ok(digests)
    }

    /// The path of a blob (which may not exist).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether the blob exists.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Reads a whole blob.
    pub fn get(&self, digest: &Digest) -> Result<Vec<u8>> {
        fs::read(self.path(digest)).map_err(|e| self.map_err(digest, "read", e))
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        File::open(self.path(digest)).map_err(|e| self.map_err(digest, "open", e))
    }

    /// The size of a blob in bytes.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        fs::metadata(self.path(digest))
            .map(|m| m.len())
            .map_err(|e| self.map_err(digest, "stat", e))
    }

    /// Deletes a blob. Deleting a missing blob is not an error.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        match fs::remove_file(self.path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.map_err(digest, "delete", e)),
        }
    }

    /// All blobs in the store, sorted.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let entries = fs::read_dir(&self.blobs)
            .map_err(ContentError::io(format!("read {}", self.blobs.display())))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(ContentError::io(format!("read {}", self.blobs.display())))?;
            let name = entry.file_name();
            if let Some(name) = name.to_str() {
                if is_sha256_hex(name) {
                    if let Ok(d) = Digest::from_hex(name) {
                        out.push(d);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn map_err(&self, digest: &Digest, what: &str, e: io::Error) -> ContentError {
        if e.kind() == io::ErrorKind::NotFound {
            ContentError::NotFound(digest.clone())
        } else {
            ContentError::Io {
                context: format!("{what} blob {digest}"),
                source: e,
            }
        }
    }
}

/// Writes a blob into `ingest/`, hashing as it goes. Dropping it without
/// committing removes the temporary file.
#[derive(Debug)]
pub struct BlobWriter {
    file: NamedTempFile,
    /// Writes are gathered into large ones (callers often write a tar header at a time).
    buf: Vec<u8>,
    hasher: Sha256,
    size: u64,
    blobs: PathBuf,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest of what has been written so far.
    pub fn digest(&self) -> Digest {
        Digest::from_sha256(self.hasher.clone().finalize().as_slice())
    }

    /// Flushes and fsyncs the data, verifies it against `expected` (if given),
    /// and atomically moves it to `blobs/sha256/<hex>`. Returns the digest and size.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let blobs = self.blobs.clone();
        let (digest, size, renamed) = self.commit_unsynced_dir(expected)?;
        if renamed {
            sync_dir(&blobs)?;
        }
        Ok((digest, size))
    }

    /// [`BlobWriter::commit`] without the fsync of the blob directory, which the caller
    /// owes when the third value (a blob was moved into it) is true.
    fn commit_unsynced_dir(mut self, expected: Option<&Digest>) -> Result<(Digest, u64, bool)> {
        let actual = self.digest();
        if let Some(expected) = expected {
            if *expected != actual {
                return Err(ContentError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        let target = self.blobs.join(actual.hex());
        if target.is_file() {
            // Same content already stored; the temp file is removed on drop.
            return Ok((actual, self.size, false));
        }
        self.flush()
            .map_err(ContentError::io("flush ingest file"))?;
        self.file
            .as_file()
            .sync_all()
            .map_err(ContentError::io("fsync ingest file"))?;
        self.file.persist(&target).map_err(|e| ContentError::Io {
            context: format!("rename ingest file to {}", target.display()),
            source: e.error,
        })?;
        Ok((actual, self.size, true))
    }
}

impl BlobWriter {
    /// Moves a blob whose data the caller flushed (and fsynced, unless deferred) into place
    /// under `digest` (which it must be), replacing a damaged one. Returns whether it was
    /// moved (the directory's fsync is owed).
    fn commit_synced(self, digest: &Digest) -> Result<bool> {
        let target = self.blobs.join(digest.hex());
        if fs::metadata(&target).is_ok_and(|m| m.is_file() && m.len() == self.size) {
            return Ok(false);
        }
        self.file.persist(&target).map_err(|e| ContentError::Io {
            context: format!("rename ingest file to {}", target.display()),
            source: e.error,
        })?;
        Ok(true)
    }
}

/// fsyncs `files`, at once: on up to 8 threads (this one and 7 more), each taking a share.
fn sync_files(files: &[&File]) -> io::Result<()> {
    const THREADS: usize = 8;
    let sync_all = |part: &[&File]| part.iter().try_for_each(|f| f.sync_all());
    if files.len() <= 1 {
        return sync_all(files);
    }
    let per = files.len().div_ceil(files.len().min(THREADS));
    let mut parts = files.chunks(per);
    let first = parts.next().unwrap_or_default();
    std::thread::scope(|s| {
        let others: Vec<_> = parts
            .map(|part| {
                let h = std::thread::Builder::new()
                    .name("berth-fsync".into())
                    .spawn_scoped(s, move || sync_all(part));
                (part, h)
            })
            .collect();
        let mut r = sync_all(first);
        for (part, h) in others {
            let joined = match h {
                Ok(h) => h
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other("fsync thread panicked"))),
                // No thread to be had: do it here.
                Err(_) => sync_all(part),
            };
            r = r.and(joined);
        }
        r
    })
}

/// The size of a blob writer's buffer.
const WRITE_BUF: usize = 1 << 20;

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.buf.len() + buf.len() > WRITE_BUF {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        if buf.len() >= WRITE_BUF {
            self.file.write_all(buf)?;
        } else {
            self.buf.extend_from_slice(buf);
        }
        self.hasher.update(buf);
        self.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.file.flush()
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ContentError::io(format!("fsync {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(&dir.path().join("content")).unwrap();
        (dir, store)
    }

    #[test]
    fn deferred_blobs_are_synced_later_and_damaged_ones_written_again() {
        let (_d, s) = store();
        let ds = s.put_all_deferred(&[b"config", b"manifest"]).unwrap();
        assert_eq!(s.get(&ds[0]).unwrap(), b"config");
        assert_eq!(s.deferred.lock().unwrap().len(), 2);
        s.sync_deferred().unwrap();
        assert!(s.deferred.lock().unwrap().is_empty());
        // A deferred blob cut short (as a power loss may leave it) is written again, by a
        // deferred put or a durable one; a durable put of a deferred blob syncs it.
        let d = s.put_all_deferred(&[b"intermediate"]).unwrap().remove(0);
        std::fs::write(s.path(&d), b"").unwrap();
        s.put_all_deferred(&[b"intermediate"]).unwrap();
        assert_eq!(s.get(&d).unwrap(), b"intermediate");
        std::fs::write(s.path(&d), b"inter").unwrap();
        s.put_all(&[b"intermediate"]).unwrap();
        assert_eq!(s.get(&d).unwrap(), b"intermediate");
        assert!(s.deferred.lock().unwrap().is_empty());
        // Nothing left in ingest.
        assert_eq!(
            std::fs::read_dir(s.root().join("ingest")).unwrap().count(),
            0
        );
    }

    #[test]
    fn put_get_delete() {
        let (_d, s) = store();
        let d = s.put(b"hello").unwrap();
        assert_eq!(d, Digest::of(b"hello"));
        assert!(s.exists(&d));
        assert_eq!(s.get(&d).unwrap(), b"hello");
        assert_eq!(s.size(&d).unwrap(), 5);
        assert_eq!(s.path(&d), s.root().join("blobs/sha256").join(d.hex()));
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut s.open_blob(&d).unwrap(), &mut buf).unwrap();
        assert_eq!(buf, "hello");
        // idempotent put
        assert_eq!(s.put(b"hello").unwrap(), d);
        assert_eq!(s.list().unwrap(), vec![d.clone()]);
        s.delete(&d).unwrap();
        s.delete(&d).unwrap();
        assert!(!s.exists(&d));
        assert!(s.get(&d).unwrap_err().is_not_found());
        assert!(s.open_blob(&d).unwrap_err().is_not_found());
        assert!(s.size(&d).unwrap_err().is_not_found());
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn put_all_stores_each_once() {
        let (_d, s) = store();
        let first = s.put(b"config").unwrap();
        let ds = s.put_all(&[b"config", b"manifest", b"manifest"]).unwrap();
        assert_eq!(
            ds,
            vec![first, Digest::of(b"manifest"), Digest::of(b"manifest")]
        );
        assert_eq!(s.get(&ds[1]).unwrap(), b"manifest");
        // Nothing left in the ingest directory.
        assert_eq!(
            std::fs::read_dir(s.root().join("ingest")).unwrap().count(),
            0
        );
    }

    #[test]
    fn writer_streams_and_verifies() {
        let (_d, s) = store();
        let mut w = s.writer().unwrap();
        w.write_all(b"abc").unwrap();
        w.write_all(b"def").unwrap();
        assert_eq!(w.size(), 6);
        let (d, n) = w.commit(Some(&Digest::of(b"abcdef"))).unwrap();
        assert_eq!((d.clone(), n), (Digest::of(b"abcdef"), 6));
        assert_eq!(s.get(&d).unwrap(), b"abcdef");

        let mut w = s.writer().unwrap();
        w.write_all(b"xyz").unwrap();
        let err = w.commit(Some(&Digest::of(b"other"))).unwrap_err();
        assert!(matches!(err, ContentError::DigestMismatch { .. }));
        assert!(err
            .to_string()
            .starts_with("blob digest mismatch: expected sha256:"));
        assert!(!s.exists(&Digest::of(b"xyz")));
        // ingest is clean after a failed commit and after a dropped writer
        let mut w = s.writer().unwrap();
        w.write_all(b"dropped").unwrap();
        drop(w);
        assert_eq!(fs::read_dir(s.root().join("ingest")).unwrap().count(), 0);
        assert_eq!(s.list().unwrap(), vec![d]);
    }

    #[test]
    fn open_cleans_ingest() {
        let (dir, s) = store();
        fs::write(s.root().join("ingest/leftover"), b"x").unwrap();
        let s2 = ContentStore::open(&dir.path().join("content")).unwrap();
        assert_eq!(fs::read_dir(s2.root().join("ingest")).unwrap().count(), 0);
    }

    #[test]
    fn list_ignores_junk() {
        let (_d, s) = store();
        fs::write(s.root().join("blobs/sha256/not-a-digest"), b"x").unwrap();
        assert!(s.list().unwrap().is_empty());
    }
}
