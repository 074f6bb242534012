//! `docker load`: Docker archives (`manifest.json`) and OCI image layouts
//! (`index.json`), read in one pass.
//!
//! Entries come in any order. Small JSON entries are kept in memory; every
//! other regular file is unpacked as it streams by into a pending snapshot
//! (a layer's unpacked content does not depend on its parent), which keeps
//! the uncompressed tar as its tar-split (no blob: the snapshot's files are
//! the layer's content), while another thread hashes it. Once the archive has been read, the manifests say which entries
//! are layers of which image; everything is verified before anything is
//! committed, and the image records are written last.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Cursor, Read};
use std::sync::mpsc;
use std::thread;

use berth_content::Digest;
use berth_snapshot::{chain_id, decompress, detect_compression, Compression, PendingSnapshot};
use chrono::Utc;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::config::{Descriptor, ImageConfig, Manifest, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST};
use crate::error::ImageError;
use crate::import::{host_arch, PendingGuard};
use crate::reference::Reference;
use crate::save::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::store::{ImageRecord, ImageStore, Result};
use crate::tario::{normalize, COPY_BUF};

/// Largest JSON entry (manifest, index, config) kept in memory.
pub const MAX_JSON_SIZE: u64 = 16 << 20;
/// Total memory for buffered JSON entries.
const MAX_JSON_TOTAL: u64 = 256 << 20;
/// Most entries unpacked as layers in one archive.
const MAX_LAYER_ENTRIES: usize = 4096;
/// Symlink hops followed when resolving an archive path.
const MAX_LINK_HOPS: usize = 16;
/// Nesting of OCI indexes followed.
const MAX_INDEX_DEPTH: usize = 4;

/// An image [`ImageStore::load`] stored or re-tagged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// The image id.
    pub id: Digest,
    /// The familiar `repo:tag` it was tagged with (one entry per tag), or
    /// `None` for an untagged image ("Loaded image ID: …").
    pub reference: Option<String>,
}

fn bad(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(msg.into())
}

/// An archive entry, as classified while streaming.
enum Item {
    /// Small JSON kept in memory.
    Json(Vec<u8>),
    /// Unpacked as a layer.
    Layer(Box<LayerEntry>),
    /// Not usable as a layer (the reason is reported if a manifest needs it).
    NotLayer(String),
}

pub(crate) struct LayerEntry {
    /// Tar entries in the layer.
    pub(crate) entries: u64,
    /// Digest and size of the entry's bytes as stored in the archive.
    pub(crate) raw_digest: Digest,
    pub(crate) raw_size: u64,
    /// Digest of the uncompressed tar.
    pub(crate) diff_id: Digest,
    /// Length of the uncompressed tar.
    pub(crate) diff_size: u64,
    /// Size of the unpacked files.
    pub(crate) size: u64,
    /// The unpacked layer (with the tar-split that gives the uncompressed tar back), until
    /// committed under its chain id.
    pub(crate) pending: Option<PendingSnapshot>,
    /// The chain id it was committed under.
    pub(crate) committed: Option<Digest>,
}

#[derive(Debug, Deserialize)]
struct DockerManifestItem {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
    #[serde(rename = "Parent", default)]
    parent: Option<String>,
}

#[derive(Debug, Deserialize)]
struct OciDescriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    platform: Option<OciPlatform>,
}

#[derive(Debug, Deserialize)]
struct OciPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

#[derive(Debug, Deserialize)]
struct OciIndexOrManifest {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<OciDescriptor>>,
    #[serde(default)]
    config: Option<OciDescriptor>,
    #[serde(default)]
    layers: Option<Vec<OciDescriptor>>,
}

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const LAYER_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
];

/// What one image of the archive becomes.
struct Plan {
    id: Digest,
    raw_config: Vec<u8>,
    config: ImageConfig,
    /// Resolved archive paths of the layers, bottom first.
    layers: Vec<String>,
    refs: Vec<Reference>,
    parent: Option<Digest>,
}

/// Everything read from the archive.
struct Archive {
    items: HashMap<String, Item>,
    /// Symlinks and hardlinks: path → target path.
    links: HashMap<String, String>,
}

impl Archive {
    fn resolve(&self, path: &str) -> Result<String> {
        let mut p =
            normalize(path).ok_or_else(|| bad(format!("path {path:?} escapes the archive")))?;
        for _ in 0..MAX_LINK_HOPS {
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => return Ok(p),
            }
        }
        Err(bad(format!(
            "too many levels of symbolic links at {path:?}"
        )))
    }

    fn json(&self, path: &str, what: &str) -> Result<(String, &[u8])> {
        let p = self.resolve(path)?;
        match self.items.get(&p) {
            Some(Item::Json(d)) => Ok((p, d)),
            Some(_) => Err(bad(format!("{what} {path} is not a JSON document"))),
            None => Err(bad(format!("{what} {path} not found in the archive"))),
        }
    }

    /// An OCI blob by descriptor, with its digest and size verified.
    fn oci_blob(&self, desc: &OciDescriptor, what: &str) -> Result<&[u8]> {
        let path = format!("blobs/sha256/{}", desc.digest.hex());
        let (_, data) = self.json(&path, what)?;
        check_blob(
            what,
            &desc.digest,
            desc.size,
            &Digest::of(data),
            data.len() as u64,
        )?;
        Ok(data)
    }
}

fn check_blob(what: &str, want: &Digest, want_size: u64, got: &Digest, size: u64) -> Result<()> {
    if want != got {
        return Err(bad(format!(
            "{what} digest mismatch: expected {want}, got {got}"
        )));
    }
    if want_size != size {
        return Err(bad(format!(
            "{what} {want} size mismatch: expected {want_size} bytes, got {size}"
        )));
    }
    Ok(())
}

fn parse_json<'a, T: Deserialize<'a>>(data: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| bad(format!("{what}: {e}")))
}

/// Counts (and, for compressed entries, hashes) the raw entry bytes.
struct RawCounter<R> {
    inner: R,
    hasher: Option<Sha256>,
    size: u64,
}

impl<R: Read> Read for RawCounter<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.size += n as u64;
        Ok(n)
    }
}

/// Hashes a stream on another thread, in large chunks, so hashing overlaps with unpacking.
pub(crate) struct HashPipe {
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    recycled: mpsc::Receiver<Vec<u8>>,
    handle: Option<thread::JoinHandle<(Digest, u64)>>,
    buf: Vec<u8>,
}

impl HashPipe {
    pub(crate) fn new() -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(4);
        let (back_tx, recycled) = mpsc::sync_channel::<Vec<u8>>(8);
        let handle = thread::Builder::new()
            .name("berth-layer-hash".into())
            .spawn(move || {
                let mut hasher = Sha256::new();
                let mut n = 0u64;
                for chunk in rx {
                    hasher.update(&chunk);
                    n += chunk.len() as u64;
                    let _ = back_tx.try_send(chunk);
                }
                (Digest::from_sha256(hasher.finalize().as_slice()), n)
            })?;
        Ok(HashPipe {
            tx: Some(tx),
            recycled,
            handle: Some(handle),
            buf: Vec::with_capacity(COPY_BUF),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        let next = self
            .recycled
            .try_recv()
            .map(|mut b| {
                b.clear();
                b
            })
            .unwrap_or_else(|_| Vec::with_capacity(COPY_BUF));
        let chunk = std::mem::replace(&mut self.buf, next);
        match self.tx.as_ref().map(|tx| tx.send(chunk).is_ok()) {
            Some(true) => Ok(()),
            _ => Err(io::Error::other("layer hasher stopped")),
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= COPY_BUF {
            self.send()?;
        }
        Ok(())
    }

    /// The digest and length of everything written.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => Ok(r),
            _ => Err(io::Error::other("layer hasher panicked")),
        }
    }
}

impl Drop for HashPipe {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Copies what is read into a [`HashPipe`].
pub(crate) struct Tee<'a, R> {
    pub(crate) inner: R,
    pub(crate) pipe: &'a mut HashPipe,
    pub(crate) failed: bool,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.pipe.write(&buf[..n]) {
            self.failed = true;
            return Err(e);
        }
        Ok(n)
    }
}

pub(crate) fn read_head<R: Read>(r: &mut R, head: &mut Vec<u8>, want: usize) -> io::Result<()> {
    head.resize(want, 0);
    let mut n = 0;
    while n < want {
        match r.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    Ok(())
}

fn looks_like_json(head: &[u8]) -> bool {
    head.iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[')
}

impl ImageStore {
    /// Unpacks one layer candidate (`head` already read from `rest`).
    /// `Ok(Err(reason))` when it is not a usable layer; `Err` on local
    /// failures (disk full...), which abort the load.
    pub(crate) fn unpack_entry<R: Read>(
        &self,
        head: &[u8],
        rest: R,
    ) -> Result<std::result::Result<LayerEntry, String>> {
        let compression = match detect_compression(head) {
            Ok(c) => c,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let mut raw = RawCounter {
            inner: Cursor::new(head).chain(rest),
            hasher: (compression != Compression::None).then(Sha256::new),
            size: 0,
        };
        let mut pipe = HashPipe::new().map_err(ImageError::io("start layer hasher"))?;
        let pending = self.snapshots.prepare()?;
        let applied = {
            let decoded: Box<dyn Read + '_> = match compression {
                Compression::None => Box::new(&mut raw),
                Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&mut raw)),
                Compression::Zstd => match zstd::stream::read::Decoder::new(&mut raw) {
                    Ok(d) => Box::new(d),
                    Err(e) => return Ok(Err(format!("zstd: {e}"))),
                },
                Compression::Xz => match berth_snapshot::xz_decoder(&mut raw) {
                    Ok(d) => Box::new(d),
                    Err(e) => return Ok(Err(format!("xz: {e}"))),
                },
                Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(&mut raw)),
            };
            let mut tee = Tee {
                inner: decoded,
                pipe: &mut pipe,
                failed: false,
            };
            let r = pending.apply_split(&mut tee, &self.apply_opts);
            (r, tee.failed)
        };
        let stats = match applied {
            (_, true) => {
                let e = pipe
                    .finish()
                    .err()
                    .unwrap_or_else(|| io::Error::other("layer hasher stopped"));
                return Err(ImageError::io("hash layer")(e));
            }
            (Err(e), false) => return Ok(Err(e.to_string())),
            (Ok(s), false) => s,
        };
        // Trailing bytes after the compressed stream still belong to the archive's entry.
        io::copy(&mut raw, &mut io::sink()).map_err(ImageError::io("read archive"))?;
        let (diff_id, diff_size) = pipe.finish().map_err(ImageError::io("hash layer"))?;
        let raw_digest = match raw.hasher.take() {
            Some(h) => Digest::from_sha256(h.finalize().as_slice()),
            None => diff_id.clone(),
        };
        Ok(Ok(LayerEntry {
            entries: stats.entries,
            raw_digest,
            raw_size: raw.size,
            diff_id,
            diff_size,
            size: stats.size,
            pending: Some(pending),
            committed: None,
        }))
    }

    /// Reads the whole archive, classifying and unpacking entries.
    fn read_archive<R: Read + Send>(&self, r: R) -> Result<Archive> {
        let stream = decompress(BufReader::with_capacity(COPY_BUF, r))?;
        let mut tar = tar::Archive::new(stream);
        let mut archive = Archive {
            items: HashMap::new(),
            links: HashMap::new(),
        };
        let mut json_total = 0u64;
        let mut layers = 0usize;
        let mut head = Vec::with_capacity(512);
        let entries = tar
            .entries()
            .map_err(|e| bad(format!("invalid tar header: {e}")))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad(format!("invalid tar header: {e}")))?;
            let raw_path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let Some(path) = normalize(&raw_path) else {
                continue;
            };
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name_bytes()
                    .map(|t| String::from_utf8_lossy(&t).into_owned())
                    .unwrap_or_default();
                let joined = if kind.is_symlink() && !target.starts_with('/') {
                    match path.rsplit_once('/') {
                        Some((dir, _)) => format!("{dir}/{target}"),
                        None => target,
                    }
                } else {
                    target
                };
                if let Some(t) = normalize(&joined) {
                    archive.links.insert(path, t);
                }
                continue;
            }
            if !kind.is_file() && kind != tar::EntryType::Continuous {
                continue;
            }
            let size = entry.size();
            read_head(&mut entry, &mut head, 512.min(size as usize))
                .map_err(|e| bad(format!("read {path}: {e}")))?;
            let item = if size <= MAX_JSON_SIZE && looks_like_json(&head) {
                json_total += size;
                if json_total > MAX_JSON_TOTAL {
                    return Err(bad("too much metadata in the archive"));
                }
                let mut data = Vec::with_capacity(size as usize);
                data.extend_from_slice(&head);
                entry
                    .read_to_end(&mut data)
                    .map_err(|e| bad(format!("read {path}: {e}")))?;
                Item::Json(data)
            } else if size == 0 || head.is_empty() {
                Item::NotLayer("empty file".into())
            } else {
                layers += 1;
                if layers > MAX_LAYER_ENTRIES {
                    return Err(bad(format!(
                        "more than {MAX_LAYER_ENTRIES} layer files in the archive"
                    )));
                }
                match self.unpack_entry(&head, &mut entry)? {
                    Ok(l) => Item::Layer(Box::new(l)),
                    Err(reason) => Item::NotLayer(reason),
                }
            };
            archive.links.remove(&path);
            archive.items.insert(path, item);
        }
        Ok(archive)
    }

    /// The layer entry at `path` (a JSON-looking small file is unpacked now).
    fn layer_at<'a>(&self, archive: &'a mut Archive, path: &str) -> Result<&'a mut LayerEntry> {
        if let Some(Item::Json(data)) = archive.items.get(path) {
            let data = data.clone();
            let item = match self.unpack_entry(&data, &[][..])? {
                Ok(l) => Item::Layer(Box::new(l)),
                Err(reason) => Item::NotLayer(reason),
            };
            archive.items.insert(path.to_string(), item);
        }
        match archive.items.get_mut(path) {
            Some(Item::Layer(l)) => Ok(l),
            Some(Item::NotLayer(reason)) => Err(bad(format!("layer {path}: {reason}"))),
            _ => Err(bad(format!("layer {path} not found in the archive"))),
        }
    }

    /// Loads the images of a `docker save` archive (Docker or OCI layout,
    /// optionally gzip/zstd compressed). Everything is verified before
    /// anything is stored; on failure nothing is left behind. An image that
    /// already exists is only (re)tagged.
    pub fn load<R: Read + Send>(&self, r: R) -> Result<Vec<LoadedImage>> {
        let _busy = crate::store::BusyGuard::new(self);
        let mut archive = self.read_archive(r)?;
        let has = |p: &str| archive.items.contains_key(p) || archive.links.contains_key(p);
        let (index, layout, manifest, repositories) = (
            has("index.json"),
            has("oci-layout"),
            has("manifest.json"),
            has("repositories"),
        );
        let mut plans = if index && (layout || !manifest) {
            self.plan_oci(&mut archive)?
        } else if manifest {
            self.plan_docker(&mut archive)?
        } else if repositories {
            return Err(bad(
                "legacy archive (a 'repositories' file without manifest.json) is not supported",
            ));
        } else {
            return Err(bad(
                "no manifest.json or index.json found: not a docker save archive",
            ));
        };
        // One plan per image, tags merged.
        let mut merged: Vec<Plan> = Vec::new();
        for p in plans.drain(..) {
            match merged.iter_mut().find(|m| m.id == p.id) {
                Some(m) => {
                    for r in p.refs {
                        if !m.refs.contains(&r) {
                            m.refs.push(r);
                        }
                    }
                }
                None => merged.push(p),
            }
        }
        self.commit_plans(&mut archive, merged)
    }

    fn check_config(&self, raw: &[u8], what: &str) -> Result<ImageConfig> {
        let config: ImageConfig = parse_json(raw, what)?;
        if !config.os.is_empty() && config.os != "linux" {
            return Err(bad(format!(
                "image operating system {:?} cannot be used on this platform",
                config.os
            )));
        }
        let non_empty = config.history.iter().filter(|h| !h.empty_layer).count();
        if non_empty > config.rootfs.diff_ids.len() {
            return Err(bad(format!(
                "{what}: too many non-empty layers in History section"
            )));
        }
        Ok(config)
    }

    fn plan_docker(&self, archive: &mut Archive) -> Result<Vec<Plan>> {
        let (_, raw) = archive.json("manifest.json", "manifest")?;
        let items: Vec<DockerManifestItem> = parse_json(raw, "manifest.json")?;
        let mut plans = Vec::new();
        for item in items {
            let (config_path, raw_config) = archive.json(&item.config, "config")?;
            let raw_config = raw_config.to_vec();
            let id = Digest::of(&raw_config);
            // `<hex>.json` or `blobs/sha256/<hex>` names the digest: check it.
            let stem = config_path.rsplit('/').next().unwrap_or_default();
            let stem = stem.strip_suffix(".json").unwrap_or(stem);
            if berth_content::is_sha256_hex(stem) && stem != id.hex() {
                return Err(bad(format!(
                    "config {} digest mismatch: its content is {id}",
                    item.config
                )));
            }
            let config = self.check_config(&raw_config, &item.config)?;
            if item.layers.len() != config.rootfs.diff_ids.len() {
                return Err(bad(format!(
                    "invalid manifest, layers length mismatch: expected {}, got {}",
                    item.layers.len(),
                    config.rootfs.diff_ids.len()
                )));
            }
            let mut layers = Vec::new();
            for (i, l) in item.layers.iter().enumerate() {
                let path = archive.resolve(l)?;
                let entry = self.layer_at(archive, &path)?;
                let expected = &config.rootfs.diff_ids[i];
                if *expected != entry.diff_id {
                    return Err(bad(format!(
                        "invalid diffID for layer {i}: expected \"{expected}\", got \"{}\"",
                        entry.diff_id
                    )));
                }
                if let Some(hex) = path.strip_prefix("blobs/sha256/") {
                    if hex != entry.raw_digest.hex() {
                        return Err(bad(format!(
                            "blob {path} digest mismatch: its content is {}",
                            entry.raw_digest
                        )));
                    }
                }
                layers.push(path);
            }
            let mut refs = Vec::new();
            for t in item.repo_tags.unwrap_or_default() {
                let r = Reference::parse(&t).map_err(|e| bad(format!("invalid tag {t:?}: {e}")))?;
                if r.tag().is_none() || r.digest().is_some() {
                    return Err(bad(format!("invalid tag {t:?}")));
                }
                refs.push(r);
            }
            let parent = item.parent.and_then(|p| Digest::parse(&p).ok());
            plans.push(Plan {
                id,
                raw_config,
                config,
                layers,
                refs,
                parent,
            });
        }
        Ok(plans)
    }

    fn plan_oci(&self, archive: &mut Archive) -> Result<Vec<Plan>> {
        let (_, raw) = archive.json("index.json", "index")?;
        let index: OciIndexOrManifest = parse_json(raw, "index.json")?;
        let Some(descs) = index.manifests else {
            return Err(bad("index.json has no manifests"));
        };
        let mut plans = Vec::new();
        let arch = host_arch();
        let mut skipped = 0;
        for desc in &descs {
            if let Some(p) = &desc.platform {
                if (!p.os.is_empty() && p.os != "linux")
                    || (!p.architecture.is_empty() && p.architecture != arch)
                {
                    skipped += 1;
                    continue;
                }
            }
            let manifest = self.oci_manifest(archive, desc, 0)?;
            let mut refs = Vec::new();
            let ann = desc.annotations.clone().unwrap_or_default();
            let name = ann.get(ANNOTATION_IMAGE_NAME).cloned().or_else(|| {
                ann.get(ANNOTATION_REF_NAME)
                    .filter(|n| n.contains([':', '/']))
                    .cloned()
            });
            if let Some(n) = name {
                let r = Reference::parse(&n)
                    .map_err(|e| bad(format!("invalid image name {n:?}: {e}")))?;
                if r.digest().is_none() {
                    refs.push(r.with_default_tag());
                }
            }
            plans.push(self.oci_plan(archive, &manifest, refs)?);
        }
        if plans.is_empty() && skipped > 0 {
            return Err(bad(format!(
                "no image for platform linux/{arch} in the archive"
            )));
        }
        Ok(plans)
    }

    /// Follows indexes down to an image manifest for linux/host arch.
    fn oci_manifest(
        &self,
        archive: &Archive,
        desc: &OciDescriptor,
        depth: usize,
    ) -> Result<OciIndexOrManifest> {
        if depth > MAX_INDEX_DEPTH {
            return Err(bad("image indexes nested too deeply"));
        }
        let raw = archive.oci_blob(desc, "manifest")?;
        let m: OciIndexOrManifest = parse_json(raw, &format!("manifest {}", desc.digest))?;
        let is_index = m
            .media_type
            .as_deref()
            .map(|t| INDEX_TYPES.contains(&t))
            .unwrap_or(m.manifests.is_some())
            || INDEX_TYPES.contains(&desc.media_type.as_str());
        if !is_index {
            if !desc.media_type.is_empty() && !MANIFEST_TYPES.contains(&desc.media_type.as_str()) {
                return Err(bad(format!(
                    "unsupported manifest media type {:?}",
                    desc.media_type
                )));
            }
            return Ok(m);
        }
        let arch = host_arch();
        let list = m.manifests.unwrap_or_default();
        let pick = list
            .iter()
            .find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .or_else(|| (list.len() == 1 && list[0].platform.is_none()).then(|| &list[0]))
            .ok_or_else(|| {
                bad(format!(
                    "no matching manifest for linux/{arch} in the manifest list entries"
                ))
            })?;
        self.oci_manifest(archive, pick, depth + 1)
    }

    fn oci_plan(
        &self,
        archive: &mut Archive,
        m: &OciIndexOrManifest,
        refs: Vec<Reference>,
    ) -> Result<Plan> {
        let config_desc = m
            .config
            .as_ref()
            .ok_or_else(|| bad("image manifest has no config"))?;
        let raw_config = archive.oci_blob(config_desc, "config")?.to_vec();
        let id = config_desc.digest.clone();
        let config = self.check_config(&raw_config, &format!("config {id}"))?;
        let descs = m.layers.as_deref().unwrap_or_default();
        if descs.len() != config.rootfs.diff_ids.len() {
            return Err(bad(format!(
                "invalid manifest, layers length mismatch: expected {}, got {}",
                descs.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (i, d) in descs.iter().enumerate() {
            if !LAYER_TYPES.contains(&d.media_type.as_str()) {
                return Err(bad(format!(
                    "unsupported layer media type {:?}",
                    d.media_type
                )));
            }
            let path = archive.resolve(&format!("blobs/sha256/{}", d.digest.hex()))?;
            let entry = self.layer_at(archive, &path)?;
            check_blob(
                "layer",
                &d.digest,
                d.size,
                &entry.raw_digest,
                entry.raw_size,
            )?;
            let expected = &config.rootfs.diff_ids[i];
            if *expected != entry.diff_id {
                return Err(bad(format!(
                    "invalid diffID for layer {i}: expected \"{expected}\", got \"{}\"",
                    entry.diff_id
                )));
            }
            layers.push(path);
        }
        Ok(Plan {
            id,
            raw_config,
            config,
            layers,
            refs,
            parent: None,
        })
    }

    /// Stores blobs, snapshots, configs and manifests, then the records.
    fn commit_plans(&self, archive: &mut Archive, plans: Vec<Plan>) -> Result<Vec<LoadedImage>> {
        // Protect everything we are about to create from a concurrent GC;
        // on failure the guard removes what no image needs.
        let mut protect = Vec::new();
        let mut chains: Vec<Vec<Digest>> = Vec::new();
        for p in &plans {
            let mut parent: Option<Digest> = None;
            let mut c = Vec::new();
            for d in &p.config.rootfs.diff_ids {
                let id = chain_id(parent.as_ref(), d);
                protect.push(d.clone());
                protect.push(id.clone());
                c.push(id.clone());
                parent = Some(id);
            }
            protect.push(p.id.clone());
            chains.push(c);
        }
        let guard = PendingGuard::new(self, protect);
        let mut manifests = Vec::new();
        for (p, chain) in plans.iter().zip(&chains) {
            let mut parent: Option<&Digest> = None;
            let mut descs = Vec::new();
            for ((path, diff), cid) in p.layers.iter().zip(&p.config.rootfs.diff_ids).zip(chain) {
                let entry = self.layer_at(archive, path)?;
                if !self.snapshots.exists(cid) {
                    match entry.pending.take() {
                        Some(pending) => {
                            pending.commit(parent, diff, entry.size)?;
                            entry.committed = Some(cid.clone());
                        }
                        None => {
                            // The same layer on another parent: unpacked again, from its
                            // stream as the first snapshot gives it back.
                            let (stream, _) = self.layer_stream(diff, entry.committed.as_ref())?;
                            let reader = BufReader::with_capacity(COPY_BUF, stream);
                            self.snapshots.create_from_tar(
                                parent,
                                Some(diff),
                                reader,
                                &self.apply_opts,
                            )?;
                        }
                    }
                } else if entry.committed.is_none() {
                    entry.committed = Some(cid.clone());
                }
                descs.push(Descriptor {
                    media_type: crate::config::MEDIA_TYPE_LAYER.into(),
                    digest: diff.clone(),
                    size: entry.diff_size,
                });
                parent = Some(cid);
            }
            self.content.put(&p.raw_config)?;
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(MEDIA_TYPE_MANIFEST.into()),
                config: Descriptor {
                    media_type: MEDIA_TYPE_CONFIG.into(),
                    digest: p.id.clone(),
                    size: p.raw_config.len() as u64,
                },
                layers: descs,
            };
            let raw = serde_json::to_vec(&manifest)
                .map_err(|e| ImageError::InvalidArgument(format!("serialize manifest: {e}")))?;
            manifests.push(self.content.put(&raw)?);
        }

        let now = Utc::now();
        let mut state = self.lock();
        let old_refs = state.refs.clone();
        let mut replaced = Vec::new();
        let mut out = Vec::new();
        let mut result = Ok(());
        for (p, manifest) in plans.iter().zip(&manifests) {
            let usable = state
                .images
                .get(&p.id)
                .is_some_and(|l| l.record.broken.is_none());
            if !usable {
                // Docker's manifest.json may name a parent image: keep the
                // link if that image is here and really is a prefix.
                let parent = p.parent.clone().filter(|pid| {
                    let pl = state.images.get(pid).map(|l| &l.config.rootfs.diff_ids);
                    let pl = pl.or_else(|| {
                        plans
                            .iter()
                            .find(|q| q.id == *pid)
                            .map(|q| &q.config.rootfs.diff_ids)
                    });
                    pl.is_some_and(|d| *pid != p.id && p.config.rootfs.diff_ids.starts_with(d))
                });
                let record = ImageRecord {
                    manifest: manifest.clone(),
                    parent,
                    created: now,
                    broken: None,
                };
                match self.load_image(&p.id, record) {
                    Ok(l) => replaced.push((p.id.clone(), state.images.insert(p.id.clone(), l))),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            for r in &p.refs {
                state.refs.insert(r.familiar(), p.id.clone());
                out.push(LoadedImage {
                    id: p.id.clone(),
                    reference: Some(r.familiar()),
                });
            }
            if p.refs.is_empty() {
                out.push(LoadedImage {
                    id: p.id.clone(),
                    reference: None,
                });
            }
        }
        let result = result.and_then(|_| self.persist(&state));
        if let Err(e) = result {
            state.refs = old_refs;
            for (id, prev) in replaced.into_iter().rev() {
                match prev {
                    Some(p) => state.images.insert(id, p),
                    None => state.images.remove(&id),
                };
            }
            drop(state);
            guard.extra_blobs(manifests);
            return Err(e);
        }
        drop(state);
        guard.success();
        Ok(out)
    }
}
