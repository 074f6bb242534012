//! Storage drivers: the one trait every backend implements, and the test suite every
//! implementation runs ([`suite`]).
//!
//! A driver stores opaque objects under `/`-separated keys (`blobs/sha256/ab/<hex>/data`,
//! see [`crate::paths`]). It knows nothing of the registry: the registry's logic is written
//! once, against this trait. Every write is atomic: a reader sees the old object, the new one
//! or none, never half of one, and a failed or abandoned write leaves nothing behind.

pub mod fs;
pub mod object;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::Stream;

/// Bytes streaming in or out of a driver.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What a driver knows of a stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub size: u64,
    pub modified: SystemTime,
}

/// A storage backend. Cloning one is cheap: clones share the same storage.
pub trait Driver: Clone + Send + Sync + 'static {
    /// The whole object (small ones: links, manifests). `NotFound` when absent.
    fn get(&self, key: &str) -> impl Future<Output = io::Result<Bytes>> + Send;

    /// Store `data` at `key`, atomically replacing what was there.
    fn put(&self, key: &str, data: Bytes) -> impl Future<Output = io::Result<()>> + Send;

    /// Stream the object from `offset` on. `NotFound` when absent.
    fn reader(&self, key: &str, offset: u64)
        -> impl Future<Output = io::Result<ByteStream>> + Send;

    /// Store a stream at `key`, atomically: when the stream fails, nothing is stored. Returns
    /// the number of bytes written.
    fn write_stream(
        &self,
        key: &str,
        data: ByteStream,
    ) -> impl Future<Output = io::Result<u64>> + Send;

    /// The object's size and time, or `None` when there is no object at `key`.
    fn stat(&self, key: &str) -> impl Future<Output = io::Result<Option<Meta>>> + Send;

    /// The names directly under the prefix `dir` (objects and deeper prefixes), sorted;
    /// empty when there are none.
    fn list(&self, dir: &str) -> impl Future<Output = io::Result<Vec<String>>> + Send;

    /// Remove the object at `key`, or everything under the prefix `key`. Absent is fine.
    fn delete(&self, key: &str) -> impl Future<Output = io::Result<()>> + Send;

    /// Move an object to another key, replacing what was there.
    fn rename(&self, from: &str, to: &str) -> impl Future<Output = io::Result<()>> + Send;
}

/// Refuse keys that could leave the driver's root: empty, absolute, `.` or `..` parts.
pub fn check_key(key: &str) -> io::Result<()> {
    if key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad storage key {key:?}"),
        ));
    }
    Ok(())
}

/// A stream of one chunk.
pub fn once(data: Bytes) -> ByteStream {
    Box::pin(futures_util::stream::iter([Ok(data)]))
}

/// Read a whole stream (tests and small objects).
pub async fn collect(mut s: ByteStream) -> io::Result<Vec<u8>> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c?);
    }
    Ok(out)
}

/// The test suite every driver passes: call it from each driver's tests with a fresh one.
#[cfg(test)]
pub async fn suite<D: Driver>(d: &D) {
    use futures_util::stream;

    // absent things
    assert_eq!(
        d.get("a/b").await.unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert!(d.stat("a/b").await.unwrap().is_none());
    assert!(d.list("a").await.unwrap().is_empty());
    d.delete("a/b").await.unwrap();
    assert!(d.get("../x").await.is_err() && d.put("/x", Bytes::new()).await.is_err());

    // put, get, replace, stat
    d.put("a/b/c", Bytes::from_static(b"one")).await.unwrap();
    assert_eq!(&d.get("a/b/c").await.unwrap()[..], b"one");
    d.put("a/b/c", Bytes::from_static(b"three")).await.unwrap();
    assert_eq!(&d.get("a/b/c").await.unwrap()[..], b"three");
    assert_eq!(d.stat("a/b/c").await.unwrap().unwrap().size, 5);

    // streams in and out, from an offset
    let chunks: Vec<io::Result<Bytes>> =
        (0..100u8).map(|i| Ok(Bytes::from(vec![i; 1000]))).collect();
    let n = d
        .write_stream("a/big", Box::pin(stream::iter(chunks)))
        .await
        .unwrap();
    assert_eq!(n, 100_000);
    let all = collect(d.reader("a/big", 0).await.unwrap()).await.unwrap();
    assert_eq!(all.len(), 100_000);
    assert_eq!(all[99_999], 99);
    let tail = collect(d.reader("a/big", 99_500).await.unwrap())
        .await
        .unwrap();
    assert_eq!(tail, vec![99u8; 500]);
    assert_eq!(
        d.reader("a/none", 0).await.err().unwrap().kind(),
        io::ErrorKind::NotFound
    );

    // empty chunks (an HTTP/2 body can end with an empty DATA frame) store nothing of theirs,
    // alone, between chunks, or right after more than a MiB
    d.put("a/empty", Bytes::new()).await.unwrap();
    assert_eq!(d.stat("a/empty").await.unwrap().unwrap().size, 0);
    let big = |b: u8| Ok(Bytes::from(vec![b; 600 << 10]));
    let with_empties: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::new()),
        big(1),
        Ok(Bytes::new()),
        big(2),
        Ok(Bytes::new()),
        big(3),
        Ok(Bytes::new()),
    ];
    let n = d
        .write_stream("a/gaps", Box::pin(stream::iter(with_empties)))
        .await
        .unwrap();
    assert_eq!(n, 3 * (600 << 10));
    let all = collect(d.reader("a/gaps", 0).await.unwrap()).await.unwrap();
    assert_eq!(all.len(), 3 * (600 << 10));
    assert_eq!((all[0], all[600 << 10], all[all.len() - 1]), (1, 2, 3));
    d.delete("a/empty").await.unwrap();
    d.delete("a/gaps").await.unwrap();

    // a failing stream stores nothing, and does not disturb the old object
    let failing: Vec<io::Result<Bytes>> = vec![
        Ok(Bytes::from_static(b"partial")),
        Err(io::Error::other("client went away")),
    ];
    assert!(d
        .write_stream("a/big", Box::pin(stream::iter(failing)))
        .await
        .is_err());
    assert_eq!(d.stat("a/big").await.unwrap().unwrap().size, 100_000);
    assert_eq!(d.list("a").await.unwrap(), ["b", "big"]);

    // listing, rename, delete of a prefix
    d.put("a/b/d", Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(d.list("a/b").await.unwrap(), ["c", "d"]);
    d.rename("a/b/d", "z/moved").await.unwrap();
    assert!(d.stat("a/b/d").await.unwrap().is_none());
    assert_eq!(&d.get("z/moved").await.unwrap()[..], b"x");
    d.rename("z/moved", "a/b/c").await.unwrap();
    assert_eq!(&d.get("a/b/c").await.unwrap()[..], b"x");
    d.delete("a").await.unwrap();
    assert!(d.list("a").await.unwrap().is_empty());
    assert!(d.stat("a/b/c").await.unwrap().is_none());
    assert!(d.stat("a/big").await.unwrap().is_none());
}
