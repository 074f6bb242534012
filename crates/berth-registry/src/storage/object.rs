//! The object-store driver: each key is an object in an S3 bucket or an Azure Blob Storage
//! container (through the `object_store` crate), under an optional root prefix.
//!
//! Both give the trait's guarantees by themselves: a PUT, a completed multipart upload (S3)
//! or committed block list (Azure), and S3's server-side copy each appear whole or not at all,
//! and reads and listings are strongly consistent, so several registry processes over one
//! bucket see the same content. (Azure's server-side copy may finish after it answers, so
//! over Azure a rename streams the object into a new write instead.)
//!
//! Streams never sit whole in memory: a write buffers up to [`PART_SIZE`] bytes and sends them
//! with one PUT; a larger one becomes a multipart upload of `PART_SIZE` parts, at most
//! [`PARTS_IN_FLIGHT`] of them sent at a time, and is aborted when the stream fails (or the
//! write is dropped), so that nothing is stored. Reads are ranged GETs streamed as they arrive.

use std::io;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use super::{check_key, ByteStream, Driver, Meta};

/// The size of one part of a multipart upload, and the most a write buffers before it starts
/// one (S3 wants parts of at least 5 MiB, and at most 10,000 of them: blobs up to 100 GiB).
pub const PART_SIZE: usize = 10 << 20;

/// Parts of one write sent at the same time.
pub const PARTS_IN_FLIGHT: usize = 4;

/// The largest object S3 copies in one request; a larger one is renamed by streaming it.
const COPY_LIMIT: u64 = 5 << 30;

/// Objects in a bucket (or whatever `object_store` store it is given), keys under `root`.
#[derive(Clone, Debug)]
pub struct ObjectDriver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    /// The key prefix, without slashes at either end; empty for the bucket's top.
    root: String,
    /// What to call the store in errors: `s3://bucket/root`.
    name: String,
    /// Renames by a server-side copy up to this size (S3's copy is atomic; Azure's may
    /// still be running when it answers, so there renames stream the object instead).
    copy_limit: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `object_store`'s error as an `io::Error`: a missing object is `NotFound`.
fn io_error(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::InvalidPath { .. } => io::ErrorKind::InvalidInput,
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, e)
}

fn is_not_found(e: &object_store::Error) -> bool {
    matches!(e, object_store::Error::NotFound { .. })
}

fn meta(m: &ObjectMeta) -> Meta {
    let t = m.last_modified;
    let modified = u64::try_from(t.timestamp())
        .map(|s| UNIX_EPOCH + Duration::new(s, t.timestamp_subsec_nanos()))
        .unwrap_or(UNIX_EPOCH);
    Meta {
        size: m.size,
        modified,
    }
}

impl ObjectDriver {
    /// Keys under `root` (slashes at its ends are ignored) in `store`; `name` says which store
    /// in error messages.
    pub fn new(store: Arc<dyn ObjectStore>, root: Option<&str>, name: &str) -> io::Result<Self> {
        Self::with_copy_limit(store, root, name, COPY_LIMIT)
    }

    fn with_copy_limit(
        store: Arc<dyn ObjectStore>,
        root: Option<&str>,
        name: &str,
        copy_limit: u64,
    ) -> io::Result<Self> {
        let root = root.unwrap_or("").trim_matches('/').to_string();
        if !root.is_empty() {
            check_key(&root).map_err(|_| invalid(format!("bad storage root {root:?}")))?;
        }
        Ok(ObjectDriver {
            inner: Arc::new(Inner {
                store,
                root,
                name: name.to_string(),
                copy_limit,
            }),
        })
    }

    /// An S3 bucket. `endpoint` is an S3-compatible server's URL (`http://` is allowed for
    /// it), addressed path-style (`<endpoint>/<bucket>/<key>`); without one, AWS in `region`
    /// (default `us-east-1`), addressed virtual-hosted style unless the bucket's name has a
    /// dot. Without keys, the credentials come from the environment (`AWS_ACCESS_KEY_ID`, …,
    /// web identity, instance metadata).
    pub fn s3(
        bucket: &str,
        region: Option<&str>,
        endpoint: Option<&str>,
        access_key: Option<&str>,
        secret_key: Option<&str>,
        root: Option<&str>,
    ) -> io::Result<Self> {
        if bucket.is_empty() {
            return Err(invalid("the s3 bucket name is empty".into()));
        }
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(region.filter(|r| !r.is_empty()).unwrap_or("us-east-1"))
            // Fail a request within seconds when the server is away, not minutes.
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            });
        match endpoint.filter(|e| !e.is_empty()) {
            Some(e) => {
                let e = e.trim_end_matches('/');
                let http = e.starts_with("http://");
                if !http && !e.starts_with("https://") {
                    return Err(invalid(format!(
                        "the s3 endpoint {e:?} must start with http:// or https://"
                    )));
                }
                b = b
                    .with_endpoint(e)
                    .with_allow_http(http)
                    .with_virtual_hosted_style_request(false);
            }
            None => b = b.with_virtual_hosted_style_request(!bucket.contains('.')),
        }
        match (access_key, secret_key) {
            (Some(a), Some(s)) => b = b.with_access_key_id(a).with_secret_access_key(s),
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "the s3 access key and secret key go together: give both or neither".into(),
                ))
            }
        }
        let store = b
            .build()
            .map_err(|e| invalid(format!("s3 bucket {bucket:?}: {e}")))?;
        let name = match root.map(|r| r.trim_matches('/')).filter(|r| !r.is_empty()) {
            Some(r) => format!("s3://{bucket}/{r}"),
            None => format!("s3://{bucket}"),
        };
        Self::new(Arc::new(store), root, &name)
    }

    /// An Azure Blob Storage container. `endpoint` is the account's URL when it is not
    /// `https://<account>.blob.core.windows.net` (Azurite, the emulator, is
    /// `http://127.0.0.1:10000/<account>`; `http://` is allowed for it). Without a key, the
    /// credentials come from the environment (`AZURE_STORAGE_ACCESS_KEY`, a client secret,
    /// workload or managed identity, …).
    pub fn azure(
        account: &str,
        container: &str,
        key: Option<&str>,
        endpoint: Option<&str>,
        root: Option<&str>,
    ) -> io::Result<Self> {
        if account.is_empty() || container.is_empty() {
            return Err(invalid(
                "the azure account and container names must not be empty".into(),
            ));
        }
        let mut b = MicrosoftAzureBuilder::from_env()
            .with_account(account)
            .with_container_name(container)
            .with_retry(RetryConfig {
                max_retries: 4,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            });
        if let Some(e) = endpoint.filter(|e| !e.is_empty()) {
            let e = e.trim_end_matches('/');
            let http = e.starts_with("http://");
            if !http && !e.starts_with("https://") {
                return Err(invalid(format!(
                    "the azure endpoint {e:?} must start with http:// or https://"
                )));
            }
            b = b.with_endpoint(e.to_string()).with_allow_http(http);
        }
        if let Some(k) = key.filter(|k| !k.is_empty()) {
            b = b.with_access_key(k);
        }
        let store = b
            .build()
            .map_err(|e| invalid(format!("azure container {container:?}: {e}")))?;
        let name = match root.map(|r| r.trim_matches('/')).filter(|r| !r.is_empty()) {
            Some(r) => format!("azure://{account}/{container}/{r}"),
            None => format!("azure://{account}/{container}"),
        };
        // Azure's Copy Blob may answer 202 with the copy still pending, and object_store
        // does not wait for it: a rename that deleted the source then could lose it.
        Self::with_copy_limit(Arc::new(store), root, &name, 0)
    }

    /// Reach the store once (a listing of the root), so that a missing bucket, a wrong
    /// endpoint or bad credentials are told at start-up rather than at the first request.
    pub async fn check(&self) -> io::Result<()> {
        let root = (!self.inner.root.is_empty()).then(|| Path::from(self.inner.root.as_str()));
        self.inner
            .store
            .list_with_delimiter(root.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| io::Error::other(format!("cannot use {}: {e}", self.inner.name)))
    }

    fn path(&self, key: &str) -> io::Result<Path> {
        check_key(key)?;
        let full = if self.inner.root.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.inner.root)
        };
        Path::parse(&full).map_err(|e| invalid(format!("bad storage key {key:?}: {e}")))
    }

    fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }
}

/// A write in progress: aborted in the background if dropped before it is finished, so that a
/// cancelled request leaves no multipart upload behind.
struct Pending(Option<BufWriter>);

impl Pending {
    fn writer(&mut self) -> &mut BufWriter {
        self.0.as_mut().expect("a pending write")
    }

    async fn abort(mut self) {
        if let Some(mut w) = self.0.take() {
            if let Err(e) = w.abort().await {
                tracing::warn!("aborting a multipart upload: {e}");
            }
        }
    }

    fn into_writer(mut self) -> BufWriter {
        self.0.take().expect("a pending write")
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut w) = self.0.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = w.abort().await {
                        tracing::warn!("aborting a multipart upload: {e}");
                    }
                });
            }
        }
    }
}

impl Driver for ObjectDriver {
    async fn get(&self, key: &str) -> io::Result<Bytes> {
        let path = self.path(key)?;
        let r = self.store().get(&path).await.map_err(io_error)?;
        r.bytes().await.map_err(io_error)
    }

    async fn put(&self, key: &str, data: Bytes) -> io::Result<()> {
        let path = self.path(key)?;
        self.store()
            .put(&path, PutPayload::from_bytes(data))
            .await
            .map(|_| ())
            .map_err(io_error)
    }

    async fn reader(&self, key: &str, offset: u64) -> io::Result<ByteStream> {
        let path = self.path(key)?;
        let opts = GetOptions {
            range: (offset > 0).then_some(GetRange::Offset(offset)),
            ..Default::default()
        };
        match self.store().get_opts(&path, opts).await {
            Ok(r) => Ok(Box::pin(r.into_stream().map_err(io_error))),
            Err(e) if offset > 0 && !is_not_found(&e) => {
                // S3 refuses a range that starts at or past the end; a file read there
                // yields nothing, and so does this driver.
                match self.store().head(&path).await {
                    Ok(m) if m.size <= offset => Ok(Box::pin(futures_util::stream::empty())),
                    _ => Err(io_error(e)),
                }
            }
            Err(e) => Err(io_error(e)),
        }
    }

    async fn write_stream(&self, key: &str, mut data: ByteStream) -> io::Result<u64> {
        let path = self.path(key)?;
        let w = BufWriter::with_capacity(self.store().clone(), path, PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let mut pending = Pending(Some(w));
        let mut n = 0u64;
        while let Some(chunk) = data.next().await {
            let sent = match chunk {
                Ok(c) => {
                    n += c.len() as u64;
                    pending.writer().put(c).await.map_err(io_error)
                }
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                pending.abort().await;
                return Err(e);
            }
        }
        // One PUT of what is buffered, or the multipart upload's completion (which aborts the
        // upload itself when it fails).
        let mut w = pending.into_writer();
        tokio::io::AsyncWriteExt::shutdown(&mut w).await?;
        Ok(n)
    }

    async fn stat(&self, key: &str) -> io::Result<Option<Meta>> {
        let path = self.path(key)?;
        match self.store().head(&path).await {
            Ok(m) => Ok(Some(meta(&m))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    async fn list(&self, dir: &str) -> io::Result<Vec<String>> {
        let prefix = self.path(dir)?;
        // object_store follows the continuation tokens: every page, not only the first 1000
        let l = self
            .store()
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(io_error)?;
        let objects = l
            .objects
            .iter()
            .map(|o| &o.location)
            // a "directory marker" object some tools leave at the prefix itself
            .filter(|p| **p != prefix);
        let mut names: Vec<String> = l
            .common_prefixes
            .iter()
            .chain(objects)
            .filter_map(|p| p.filename().map(str::to_string))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    async fn delete(&self, key: &str) -> io::Result<()> {
        let path = self.path(key)?;
        // everything under the prefix (deleted in batches as the listing pages in), then the
        // object at the key itself
        let under = self
            .store()
            .list(Some(&path))
            .map_ok(|m| m.location)
            .boxed();
        let mut deleted = self.store().delete_stream(under);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(io_error(e)),
            }
        }
        match self.store().delete(&path).await {
            Err(e) if !is_not_found(&e) => Err(io_error(e)),
            _ => Ok(()),
        }
    }

    async fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (src, dst) = (self.path(from)?, self.path(to)?);
        let m = self.store().head(&src).await.map_err(io_error)?;
        if m.size <= self.inner.copy_limit && self.inner.copy_limit > 0 {
            self.store().copy(&src, &dst).await.map_err(io_error)?;
        } else {
            let s = self.reader(from, 0).await?;
            self.write_stream(to, s).await?;
        }
        match self.store().delete(&src).await {
            Err(e) if !is_not_found(&e) => Err(io_error(e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::testing::{
        AzureServer, S3Server, ACCESS_KEY, AZURITE_ACCOUNT, AZURITE_KEY, SECRET_KEY,
    };
    use crate::storage::{collect, suite};

    fn driver(s3: &S3Server, bucket: &str, root: Option<&str>) -> ObjectDriver {
        s3.create_bucket(bucket);
        ObjectDriver::s3(
            bucket,
            None,
            Some(&s3.endpoint()),
            Some(ACCESS_KEY),
            Some(SECRET_KEY),
            root,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn passes_the_driver_suite() {
        let s3 = S3Server::start();
        let d = driver(&s3, "suite", Some("/registry/root/"));
        d.check().await.unwrap();
        // an object beside the root is neither listed nor deleted
        let bare = ObjectDriver::s3(
            "suite",
            None,
            Some(&s3.endpoint()),
            Some(ACCESS_KEY),
            Some(SECRET_KEY),
            None,
        )
        .unwrap();
        bare.put("registry/rootless", Bytes::from_static(b"x"))
            .await
            .unwrap();
        suite(&d).await;
        // everything went under the root, and nothing is left but the object outside it:
        // no half-written object, no open multipart upload
        assert_eq!(s3.keys("suite"), ["registry/rootless"]);
        assert!(s3.open_uploads("suite").is_empty());
    }

    /// Bytes that differ from part to part, so that a misplaced part shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn chunks_of(data: &[u8], size: usize) -> Vec<io::Result<Bytes>> {
        data.chunks(size)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect()
    }

    #[tokio::test]
    async fn large_streams_go_up_in_parts_and_a_failure_stores_nothing() {
        let s3 = S3Server::start();
        let d = driver(&s3, "big", None);
        // 2.5 parts, sent as a client would: in small pieces
        let data = pattern(PART_SIZE * 5 / 2);
        let s = futures_util::stream::iter(chunks_of(&data, 64 << 10));
        let n = d.write_stream("blobs/big", Box::pin(s)).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d.stat("blobs/big").await.unwrap().unwrap().size, n);
        let back = collect(d.reader("blobs/big", 0).await.unwrap())
            .await
            .unwrap();
        assert!(back == data, "the object read back differs");
        let off = PART_SIZE as u64 + 12_345;
        let tail = collect(d.reader("blobs/big", off).await.unwrap())
            .await
            .unwrap();
        assert!(tail == data[off as usize..], "the tail read back differs");
        // at and past the end: nothing, as from a file
        assert!(collect(d.reader("blobs/big", n).await.unwrap())
            .await
            .unwrap()
            .is_empty());

        // a stream that fails after a multipart upload began: nothing stored, the upload
        // aborted, the old object intact
        let mut failing = chunks_of(&data[..PART_SIZE * 3 / 2], 1 << 20);
        failing.push(Err(io::Error::other("client went away")));
        let e = d
            .write_stream("blobs/big", Box::pin(futures_util::stream::iter(failing)))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "client went away");
        assert_eq!(d.stat("blobs/big").await.unwrap().unwrap().size, n);
        assert!(s3.open_uploads("big").is_empty(), "an upload was left open");

        // a write dropped midway (a request cancelled) aborts its upload too
        let stalled = futures_util::stream::iter(chunks_of(&data[..PART_SIZE * 3 / 2], 1 << 20))
            .chain(futures_util::stream::pending());
        let mut w = Box::pin(d.write_stream("blobs/dropped", Box::pin(stalled)));
        let r = tokio::time::timeout(Duration::from_secs(5), &mut w).await;
        assert!(r.is_err(), "the write finished without its stream's end");
        assert_eq!(s3.open_uploads("big"), ["blobs/dropped"]);
        drop(w);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !s3.open_uploads("big").is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the dropped write's upload was not aborted"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(d.stat("blobs/dropped").await.unwrap().is_none());

        // a server-side rename of a multipart object
        d.rename("blobs/big", "blobs/moved").await.unwrap();
        assert!(d.stat("blobs/big").await.unwrap().is_none());
        let back = collect(d.reader("blobs/moved", 0).await.unwrap())
            .await
            .unwrap();
        assert!(back == data, "the renamed object differs");
        d.delete("blobs").await.unwrap();
        assert!(s3.keys("big").is_empty());
    }

    #[tokio::test]
    async fn listings_and_deletions_go_past_one_page() {
        let s3 = S3Server::start();
        let d = driver(&s3, "pages", Some("r"));
        // S3 pages hold 1000 keys: 1000 objects and 20 prefixes, listed whole
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("dir/{i:04}"))
            .chain((0..20).map(|i| format!("dir/sub{i:02}/x")))
            .collect();
        futures_util::stream::iter(keys.iter())
            .map(|k| d.put(k, Bytes::from_static(b"x")))
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .unwrap();
        let names = d.list("dir").await.unwrap();
        assert_eq!(names.len(), 1020);
        assert_eq!(names[0], "0000");
        assert_eq!(names[999], "0999");
        assert_eq!(names[1000], "sub00");
        assert_eq!(names[1019], "sub19");
        // a key that only shares the text of the prefix is not under it
        d.put("dirt", Bytes::from_static(b"y")).await.unwrap();
        d.delete("dir").await.unwrap();
        assert!(d.list("dir").await.unwrap().is_empty());
        assert_eq!(s3.keys("pages"), ["r/dirt"]);
    }

    fn azure_driver(az: &AzureServer, container: &str, root: Option<&str>) -> ObjectDriver {
        ObjectDriver::azure(
            AZURITE_ACCOUNT,
            container,
            Some(AZURITE_KEY),
            Some(&az.endpoint()),
            root,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn azure_passes_the_driver_suite_and_streams_large_blobs_in_blocks() {
        let az = AzureServer::start();
        az.create_container("suite");
        let d = azure_driver(&az, "suite", Some("/registry/root/"));
        d.check().await.unwrap();
        // an object beside the root is neither listed nor deleted
        azure_driver(&az, "suite", None)
            .put("registry/rootless", Bytes::from_static(b"x"))
            .await
            .unwrap();
        suite(&d).await;
        assert_eq!(az.blobs("suite"), ["registry/rootless"]);

        // 2.5 parts (blocks), sent as a client would: in small pieces
        let data = pattern(PART_SIZE * 5 / 2);
        let s = futures_util::stream::iter(chunks_of(&data, 64 << 10));
        let n = d.write_stream("blobs/big", Box::pin(s)).await.unwrap();
        assert_eq!(n, data.len() as u64);
        assert_eq!(d.stat("blobs/big").await.unwrap().unwrap().size, n);
        let off = PART_SIZE as u64 + 12_345;
        let tail = collect(d.reader("blobs/big", off).await.unwrap())
            .await
            .unwrap();
        assert!(tail == data[off as usize..], "the tail read back differs");
        // a stream that fails after its first blocks went up: nothing stored (uncommitted
        // blocks are no blob), the old object intact
        let mut failing = chunks_of(&data[..PART_SIZE * 3 / 2], 1 << 20);
        failing.push(Err(io::Error::other("client went away")));
        let e = d
            .write_stream("blobs/big", Box::pin(futures_util::stream::iter(failing)))
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "client went away");
        assert_eq!(d.stat("blobs/big").await.unwrap().unwrap().size, n);
        // a rename of it (streamed: Azure's server-side copy may answer before it is done)
        d.rename("blobs/big", "blobs/moved").await.unwrap();
        assert!(d.stat("blobs/big").await.unwrap().is_none());
        let back = collect(d.reader("blobs/moved", 0).await.unwrap())
            .await
            .unwrap();
        assert!(back == data, "the renamed object differs");
        d.delete("blobs").await.unwrap();
        assert_eq!(az.blobs("suite"), ["registry/rootless"]);

        // a container that is not there, and settings that cannot work
        let e = azure_driver(&az, "absent", Some("root"))
            .check()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot use azure://devstoreaccount1/absent/root"),
            "{e}"
        );
        let e = ObjectDriver::azure("a", "c", None, Some("ftp://x"), None).unwrap_err();
        assert!(e.to_string().contains("must start with http"), "{e}");
        let e = ObjectDriver::azure("a", "", None, None, None).unwrap_err();
        assert!(e.to_string().contains("must not be empty"), "{e}");
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2
        let mac = crate::storage::testing::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[tokio::test]
    async fn bad_settings_and_a_missing_bucket_are_told() {
        let s3 = ObjectDriver::s3;
        let e = s3("b", None, Some("ftp://x"), None, None, None).unwrap_err();
        assert!(e.to_string().contains("must start with http"), "{e}");
        let e = s3("b", None, None, Some("key"), None, None).unwrap_err();
        assert!(e.to_string().contains("give both or neither"), "{e}");
        let e = s3("b", None, None, None, None, Some("a/../b")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let e = s3("", None, None, None, None, None).unwrap_err();
        assert!(e.to_string().contains("bucket name is empty"), "{e}");

        let server = S3Server::start();
        let d = ObjectDriver::s3(
            "absent",
            Some("eu-west-1"),
            Some(&server.endpoint()),
            Some(ACCESS_KEY),
            Some(SECRET_KEY),
            Some("root"),
        )
        .unwrap();
        let e = d.check().await.unwrap_err().to_string();
        assert!(e.contains("cannot use s3://absent/root"), "{e}");
        // a server that is not there: told within the retries' bound
        drop(server);
        let t = std::time::Instant::now();
        let e = d.check().await.unwrap_err().to_string();
        assert!(e.contains("cannot use s3://absent/root"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(40));
    }
}
