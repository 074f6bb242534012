//! The registry's logic, written once against [`Driver`]: blobs, uploads, manifests, tags,
//! the catalog and referrers. HTTP lives in [`crate::http`]; this module sees typed requests.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::digest::{Algorithm, Digest, Hasher};
use crate::error::{Code, RegistryError, Result};
use crate::paths;
use crate::storage::{ByteStream, Driver};

/// A blob link older than this is rewritten when a client asks for the blob (so that the
/// garbage collector, whose grace period must be longer, sees it as in use).
pub const TOUCH_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// What the registry allows.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Deleting manifests and blobs (distribution's `storage.delete.enabled`).
    pub delete_enabled: bool,
    /// Refuse every write (maintenance mode).
    pub readonly: bool,
}

/// A registry over one storage driver.
pub struct Registry<D> {
    driver: D,
    opts: Options,
    /// The running sha256 of uploads whose chunks passed through this process: upload id →
    /// (bytes hashed, state). A chunk that lands on another replica just drops the entry; the
    /// digest is then computed by reading the chunks back at the end.
    hashing: Mutex<HashMap<String, (u64, Hasher)>>,
    /// Manifests, tags and revisions seen recently.
    pub(crate) cache: crate::cache::Cache,
}

pub(crate) fn blob_unknown(d: &Digest) -> RegistryError {
    RegistryError::new(Code::BlobUnknown, format!("blob {d} is unknown"))
}

fn upload_unknown() -> RegistryError {
    RegistryError::new(Code::BlobUploadUnknown, "upload unknown")
}

pub(crate) fn manifest_unknown(r: impl std::fmt::Display) -> RegistryError {
    RegistryError::new(Code::ManifestUnknown, format!("manifest unknown: {r}"))
}

pub(crate) fn io_err(e: io::Error) -> RegistryError {
    RegistryError::storage(e)
}

/// The digest a link file holds.
pub(crate) fn parse_link(b: &[u8]) -> io::Result<Digest> {
    let s = std::str::from_utf8(b).unwrap_or("").trim();
    Digest::parse(s).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

impl<D: Driver> Registry<D> {
    pub fn new(driver: D, opts: Options) -> Registry<D> {
        Registry {
            driver,
            opts,
            hashing: Mutex::new(HashMap::new()),
            cache: Default::default(),
        }
    }

    pub fn driver(&self) -> &D {
        &self.driver
    }

    pub fn options(&self) -> &Options {
        &self.opts
    }

    pub(crate) fn writable(&self) -> Result<()> {
        if self.opts.readonly {
            return Err(RegistryError::new(
                Code::Unsupported,
                "the registry is in read-only mode",
            ));
        }
        Ok(())
    }

    pub(crate) fn deletable(&self) -> Result<()> {
        self.writable()?;
        if !self.opts.delete_enabled {
            return Err(RegistryError::new(
                Code::Unsupported,
                "deletion is disabled",
            ));
        }
        Ok(())
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.driver.stat(key).await.map_err(io_err)?.is_some())
    }

    // ---- blobs ----

    /// The size of a blob the repository holds.
    ///
    /// A link older than [`TOUCH_AFTER`] is rewritten first: a client that finds the blob here
    /// may push a manifest using it next, and the garbage collector spares blobs whose links
    /// are recent (see [`crate::gc`]).
    pub async fn blob_size(&self, name: &str, d: &Digest) -> Result<u64> {
        let link = paths::layer_link(name, d);
        let Some(meta) = self.driver.stat(&link).await.map_err(io_err)? else {
            return Err(blob_unknown(d));
        };
        if !self.opts.readonly && meta.modified.elapsed().unwrap_or_default() > TOUCH_AFTER {
            self.link_blob(name, d).await?;
        }
        let data = paths::blob_data(d);
        if let Some(m) = self.driver.stat(&data).await.map_err(io_err)? {
            return Ok(m.size);
        }
        // not there: maybe in a collection's trash (see `ensure_data`)
        if !self.ensure_data(d).await? {
            return Err(blob_unknown(d));
        }
        match self.driver.stat(&data).await.map_err(io_err)? {
            Some(m) => Ok(m.size),
            None => Err(blob_unknown(d)),
        }
    }

    /// Whether a blob's bytes are there, taking them back from the garbage collector's trash
    /// if it is removing them (whoever calls this has just written or touched a link to the
    /// blob, so the collector will see that link and keep it too).
    pub(crate) async fn ensure_data(&self, d: &Digest) -> Result<bool> {
        let data = paths::blob_data(d);
        if self.exists(&data).await? {
            return Ok(true);
        }
        match self.driver.rename(&paths::trash(d), &data).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.exists(&data).await,
            Err(e) => Err(io_err(e)),
        }
    }

    /// Stream a blob from `offset`.
    pub async fn blob_reader(&self, d: &Digest, offset: u64) -> Result<ByteStream> {
        self.driver
            .reader(&paths::blob_data(d), offset)
            .await
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => blob_unknown(d),
                _ => io_err(e),
            })
    }

    /// Forget a blob in one repository (its bytes go when nothing links them: GC).
    pub async fn delete_blob(&self, name: &str, d: &Digest) -> Result<()> {
        self.deletable()?;
        let link = paths::layer_link(name, d);
        if !self.exists(&link).await? {
            return Err(blob_unknown(d));
        }
        let dir = link.trim_end_matches("/link");
        self.driver.delete(dir).await.map_err(io_err)
    }

    /// Link a blob another repository holds into `name`. False when `from` lacks it.
    pub async fn mount_blob(&self, name: &str, d: &Digest, from: &str) -> Result<bool> {
        self.writable()?;
        if from == name
            || !crate::names::valid_name(from)
            || !self.exists(&paths::layer_link(from, d)).await?
            || !self.exists(&paths::blob_data(d)).await?
        {
            return Ok(false);
        }
        // link first, then make sure the bytes are still there (see `ensure_data`)
        self.link_blob(name, d).await?;
        if !self.ensure_data(d).await? {
            let link = paths::layer_link(name, d);
            self.driver
                .delete(link.trim_end_matches("/link"))
                .await
                .map_err(io_err)?;
            return Ok(false);
        }
        Ok(true)
    }

    pub(crate) async fn link_blob(&self, name: &str, d: &Digest) -> Result<()> {
        self.driver
            .put(&paths::layer_link(name, d), Bytes::from(d.to_string()))
            .await
            .map_err(io_err)
    }

    // ---- uploads ----

    /// Begin an upload; returns its id.
    pub async fn start_upload(&self, name: &str) -> Result<String> {
        self.writable()?;
        let uuid = format!("{:032x}", rand::random::<u128>());
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        self.driver
            .put(
                &paths::upload_started(name, &uuid),
                Bytes::from(now.to_string()),
            )
            .await
            .map_err(io_err)?;
        Ok(uuid)
    }

    /// The chunks of an upload, in order, as (offset, size); an error when there is no such
    /// upload.
    async fn chunks(&self, name: &str, uuid: &str) -> Result<Vec<(u64, u64)>> {
        if uuid.is_empty()
            || uuid.len() > 64
            || !uuid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            || !self.exists(&paths::upload_started(name, uuid)).await?
        {
            return Err(upload_unknown());
        }
        let mut out = Vec::new();
        for c in self
            .driver
            .list(&paths::upload_chunks(name, uuid))
            .await
            .map_err(io_err)?
        {
            let Ok(off) = c.parse::<u64>() else { continue };
            let key = paths::upload_chunk(name, uuid, off);
            if let Some(m) = self.driver.stat(&key).await.map_err(io_err)? {
                out.push((off, m.size));
            }
        }
        Ok(out)
    }

    fn end_of(chunks: &[(u64, u64)]) -> u64 {
        chunks.last().map_or(0, |(o, s)| o + s)
    }

    /// How many bytes an upload holds.
    pub async fn upload_offset(&self, name: &str, uuid: &str) -> Result<u64> {
        Ok(Self::end_of(&self.chunks(name, uuid).await?))
    }

    /// Append a chunk. `start` is the Content-Range start when the client sent one (it must
    /// be the current end); `len` the declared length, which the body must match. Returns
    /// the new end.
    pub async fn append(
        &self,
        name: &str,
        uuid: &str,
        start: Option<u64>,
        len: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        self.writable()?;
        let end = Self::end_of(&self.chunks(name, uuid).await?);
        if len == Some(0) && start.is_none_or(|s| s == end) {
            return Ok(end); // nothing to add (the usual empty PUT that ends an upload)
        }
        if start.is_some_and(|s| s != end) {
            return Err(RegistryError::new(
                Code::RangeInvalid,
                format!("the upload holds {end} bytes; a chunk must start there"),
            ));
        }
        let hasher = {
            let mut h = self.hashing.lock().unwrap_or_else(|e| e.into_inner());
            match h.remove(uuid) {
                Some((n, state)) if n == end => Some(state),
                _ if end == 0 => Some(Hasher::new(Algorithm::Sha256)),
                _ => None,
            }
        };
        let seen = Arc::new(Mutex::new((0u64, hasher)));
        let s2 = seen.clone();
        let limit = len;
        let counted: ByteStream = Box::pin(body.map(move |chunk| {
            let chunk = chunk?;
            let mut st = s2.lock().unwrap_or_else(|e| e.into_inner());
            st.0 += chunk.len() as u64;
            if limit.is_some_and(|l| st.0 > l) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more bytes than declared",
                ));
            }
            if let Some(h) = st.1.as_mut() {
                h.update(&chunk);
            }
            Ok(chunk)
        }));
        let key = paths::upload_chunk(name, uuid, end);
        let written = self.driver.write_stream(&key, counted).await;
        let (n, hasher) = {
            let mut st = seen.lock().unwrap_or_else(|e| e.into_inner());
            (st.0, st.1.take())
        };
        match written {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(RegistryError::new(Code::SizeInvalid, e.to_string()))
            }
            Err(e) => return Err(RegistryError::new(Code::BlobUploadInvalid, e.to_string())),
            Ok(_) => {}
        }
        if len.is_some_and(|l| l != n) {
            self.driver.delete(&key).await.map_err(io_err)?;
            return Err(RegistryError::new(
                Code::SizeInvalid,
                format!("{n} bytes received, {} declared", len.unwrap_or(0)),
            ));
        }
        if n == 0 {
            // an empty chunk adds nothing; keep no empty file
            self.driver.delete(&key).await.map_err(io_err)?;
        }
        if let Some(h) = hasher {
            self.hashing
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(uuid.to_string(), (end + n, h));
        }
        Ok(end + n)
    }

    /// Finish an upload as blob `d`, after appending `body` (the last chunk, maybe empty).
    pub async fn finish_upload(
        &self,
        name: &str,
        uuid: &str,
        d: &Digest,
        len: Option<u64>,
        body: ByteStream,
    ) -> Result<()> {
        self.append(name, uuid, None, len, body).await?;
        let chunks = self.chunks(name, uuid).await?;
        let total = Self::end_of(&chunks);
        let cached = self
            .hashing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        let actual = match cached {
            Some((n, h)) if n == total && d.algorithm() == Algorithm::Sha256 => h.finish(),
            _ => {
                let mut h = Hasher::new(d.algorithm());
                let mut s = self.concat(name, uuid, &chunks);
                while let Some(c) = s.next().await {
                    h.update(&c.map_err(io_err)?);
                }
                h.finish()
            }
        };
        if &actual != d {
            self.cancel_upload(name, uuid).await?;
            return Err(RegistryError::new(
                Code::DigestInvalid,
                format!("the upload's digest is {actual}, not {d}"),
            ));
        }
        // The link first: from now on the garbage collector keeps the blob's bytes, if they
        // are there already (another push of the same blob); otherwise they come from here.
        self.link_blob(name, d).await?;
        let data = paths::blob_data(d);
        if !self.ensure_data(d).await? {
            match chunks.as_slice() {
                [(off, _)] => self
                    .driver
                    .rename(&paths::upload_chunk(name, uuid, *off), &data)
                    .await
                    .map_err(io_err)?,
                _ => {
                    let s = self.concat(name, uuid, &chunks);
                    self.driver.write_stream(&data, s).await.map_err(io_err)?;
                }
            }
        }
        self.driver
            .delete(&paths::upload_dir(name, uuid))
            .await
            .map_err(io_err)
    }

    /// The chunks of an upload as one stream.
    fn concat(&self, name: &str, uuid: &str, chunks: &[(u64, u64)]) -> ByteStream {
        let keys: Vec<String> = chunks
            .iter()
            .map(|(o, _)| paths::upload_chunk(name, uuid, *o))
            .collect();
        let driver = self.driver.clone();
        // Each chunk is opened only when the one before it is read out.
        Box::pin(
            futures_util::stream::iter(keys)
                .then(move |k| {
                    let d = driver.clone();
                    async move { d.reader(&k, 0).await }
                })
                .map(|r| match r {
                    Ok(s) => s,
                    Err(e) => Box::pin(futures_util::stream::iter([Err(e)])) as ByteStream,
                })
                .flatten(),
        )
    }

    /// Drop an upload and its chunks.
    pub async fn cancel_upload(&self, name: &str, uuid: &str) -> Result<()> {
        self.chunks(name, uuid).await?;
        self.hashing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(uuid);
        self.driver
            .delete(&paths::upload_dir(name, uuid))
            .await
            .map_err(io_err)
    }
}
