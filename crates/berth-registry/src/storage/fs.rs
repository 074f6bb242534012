//! The filesystem driver: each key is a file under the root directory.
//!
//! Writes go to a hidden temporary file next to the target (`.<name>.tmp-<random>`), which is
//! renamed over it once complete, so a reader or a crash never sees half an object. Listings
//! skip those hidden names.

use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;

use super::{check_key, ByteStream, Driver, Meta};

/// The size of the chunks a blob is read in, and how many are read ahead of the client.
const READ_CHUNK: usize = 1 << 20;
const READ_AHEAD: usize = 4;
/// Objects at least this large (from the offset) are mapped rather than read, and handed out
/// in slices of MAP_CHUNK.
const MAP_AT_LEAST: u64 = 4 << 20;
const MAP_CHUNK: usize = 4 << 20;

/// Files under `root`.
#[derive(Clone, Debug)]
pub struct FsDriver {
    root: PathBuf,
}

impl FsDriver {
    pub fn new(root: impl Into<PathBuf>) -> io::Result<FsDriver> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(FsDriver { root })
    }

    fn path(&self, key: &str) -> io::Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("x");
    path.with_file_name(format!(".{name}.tmp-{:016x}", rand::random::<u64>()))
}

async fn make_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) => tokio::fs::create_dir_all(p).await,
        None => Ok(()),
    }
}

/// How much of a stream is gathered before it is written.
const WRITE_BATCH: usize = 1 << 20;

/// Run blocking file work on tokio's blocking threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// Write all of `chunks` to `f` with vectored writes; gives the file back.
fn write_all_vectored(mut f: std::fs::File, chunks: Vec<Bytes>) -> io::Result<std::fs::File> {
    use std::io::{IoSlice, Write};
    let mut slices: Vec<IoSlice> = chunks.iter().map(|c| IoSlice::new(c)).collect();
    let mut rest = &mut slices[..];
    while rest.iter().any(|s| !s.is_empty()) {
        match f.write_vectored(rest) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(f)
}

fn not_found_is_none<T>(r: io::Result<T>) -> io::Result<Option<T>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Driver for FsDriver {
    async fn get(&self, key: &str) -> io::Result<Bytes> {
        Ok(Bytes::from(tokio::fs::read(self.path(key)?).await?))
    }

    async fn put(&self, key: &str, data: Bytes) -> io::Result<()> {
        // A directory removed under us (a collection deleting a link's directory while it is
        // rewritten) is made again: small objects are simply written once more.
        let mut tries = 0;
        loop {
            match self.write_stream(key, super::once(data.clone())).await {
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 3 => tries += 1,
                r => return r.map(|_| ()),
            }
        }
    }

    async fn reader(&self, key: &str, offset: u64) -> io::Result<ByteStream> {
        use std::io::{Read, Seek};
        let path = self.path(key)?;
        let (mut f, len) = blocking(move || {
            let f = std::fs::File::open(path)?;
            let len = f.metadata()?.len();
            Ok((f, len))
        })
        .await?;
        if len.saturating_sub(offset) >= MAP_AT_LEAST {
            // Large objects are mapped, and the socket is written straight from the page
            // cache: one copy fewer than reading them.
            // SAFETY: objects are written to a temporary file and renamed into place; nothing
            // writes to or truncates a file under its final name, and removing one keeps its
            // pages while they are mapped, so the mapping stays valid and unchanged.
            let map = unsafe { memmap2::MmapOptions::new().offset(offset).map(&f)? };
            let _ = map.advise(memmap2::Advice::Sequential);
            let all = Bytes::from_owner(map);
            let n = all.len();
            let chunks = (0..n)
                .step_by(MAP_CHUNK)
                .map(move |s| Ok(all.slice(s..(s + MAP_CHUNK).min(n))));
            return Ok(Box::pin(futures_util::stream::iter(chunks)));
        }
        if offset > 0 {
            f.seek(io::SeekFrom::Start(offset))?;
        }
        // A thread reads ahead (up to READ_AHEAD chunks) while the client takes what it read:
        // the disk and the socket work at the same time.
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(READ_AHEAD);
        tokio::task::spawn_blocking(move || loop {
            let mut buf = Vec::with_capacity(READ_CHUNK);
            match (&mut f).take(READ_CHUNK as u64).read_to_end(&mut buf) {
                Ok(0) => break,
                Ok(_) => {
                    if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|c| (c, rx)) },
        )))
    }

    async fn write_stream(&self, key: &str, mut data: ByteStream) -> io::Result<u64> {
        let path = self.path(key)?;
        make_parent(&path).await?;
        let tmp = temp_beside(&path);
        let result = async {
            let t = tmp.clone();
            let mut f = blocking(move || std::fs::File::create(t)).await?;
            // The stream's chunks (the socket's reads: ~256 KiB while a body streams in, see
            // batched.rs) are gathered, not copied, and written WRITE_BATCH at a time with one
            // vectored write on a blocking thread: no copy in user space, one hand-off a batch.
            let mut batch: Vec<Bytes> = Vec::new();
            let mut pending = 0usize;
            let mut n = 0u64;
            while let Some(chunk) = data.next().await {
                let chunk = chunk?;
                if chunk.is_empty() {
                    // (an HTTP/2 body may end with an empty DATA frame)
                    continue;
                }
                n += chunk.len() as u64;
                pending += chunk.len();
                batch.push(chunk);
                if pending >= WRITE_BATCH {
                    let b = std::mem::take(&mut batch);
                    pending = 0;
                    f = blocking(move || write_all_vectored(f, b)).await?;
                }
            }
            if !batch.is_empty() {
                f = blocking(move || write_all_vectored(f, batch)).await?;
            }
            drop(f);
            tokio::fs::rename(&tmp, &path).await?;
            Ok(n)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    async fn stat(&self, key: &str) -> io::Result<Option<Meta>> {
        let md = not_found_is_none(tokio::fs::metadata(self.path(key)?).await)?;
        Ok(md.filter(|m| m.is_file()).map(|m| Meta {
            size: m.len(),
            modified: m.modified().unwrap_or(std::time::UNIX_EPOCH),
        }))
    }

    async fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let Some(mut rd) = not_found_is_none(tokio::fs::read_dir(self.path(dir)?).await)? else {
            return Ok(Vec::new());
        };
        let mut names = Vec::new();
        while let Some(e) = rd.next_entry().await? {
            if let Some(n) = e.file_name().to_str() {
                if !n.starts_with('.') {
                    names.push(n.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        let path = self.path(key)?;
        let Some(md) = not_found_is_none(tokio::fs::symlink_metadata(&path).await)? else {
            return Ok(());
        };
        if !md.is_dir() {
            return not_found_is_none(tokio::fs::remove_file(&path).await).map(|_| ());
        }
        // a writer may add a file while the tree goes: try again
        let mut tries = 0;
        loop {
            match not_found_is_none(tokio::fs::remove_dir_all(&path).await) {
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::debug!("removing {}: {e}; again", path.display());
                }
                r => return r.map(|_| ()),
            }
        }
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (self.path(from)?, self.path(to)?);
        make_parent(&to).await?;
        tokio::fs::rename(from, to).await
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn passes_the_driver_suite() {
        let dir = tempfile::tempdir().unwrap();
        let d = super::FsDriver::new(dir.path().join("root")).unwrap();
        super::super::suite(&d).await;
        // nothing hidden is left behind by the failed write
        let mut left = Vec::new();
        for e in walk(dir.path()) {
            left.push(e);
        }
        assert!(left.iter().all(|p| !p.contains(".tmp-")), "{left:?}");
    }

    #[tokio::test]
    async fn large_objects_are_read_whole_and_from_any_offset() {
        use super::super::{collect, once, Driver};
        let dir = tempfile::tempdir().unwrap();
        let d = super::FsDriver::new(dir.path()).unwrap();
        let data: Vec<u8> = (0..10_000_003u32).map(|i| (i % 251) as u8).collect();
        d.put("big", bytes::Bytes::from(data.clone()))
            .await
            .unwrap();
        let all = collect(d.reader("big", 0).await.unwrap()).await.unwrap();
        assert!(all == data);
        for off in [1u64, 4097, 5_000_001, 9_999_999] {
            let tail = collect(d.reader("big", off).await.unwrap()).await.unwrap();
            assert!(tail[..] == data[off as usize..], "offset {off}");
        }
        // the object is replaced under its name while a reader holds the old one
        let old = d.reader("big", 0).await.unwrap();
        d.write_stream("big", once(bytes::Bytes::from(vec![1u8; 5 << 20])))
            .await
            .unwrap();
        assert!(collect(old).await.unwrap() == data);
    }

    fn walk(p: &std::path::Path) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                out.push(e.path().display().to_string());
                out.extend(walk(&e.path()));
            }
        }
        out
    }
}
