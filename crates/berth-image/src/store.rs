//! The image store: records, references, lookups, history.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use berth_content::{ContentStore, Digest};
use berth_snapshot::{chain_id, ApplyOptions, SnapshotStore};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{ImageConfig, Manifest};
use crate::error::ImageError;
use crate::reference::Reference;

pub(crate) type Result<T, E = ImageError> = std::result::Result<T, E>;

const IMAGES_FILE: &str = "images.json";
/// A hard link to `images.json` as last written durably: what `open` falls back to when a
/// write that was not fsynced ([`ImageStore::persist_deferred`]) was lost to a power failure
/// and left `images.json` empty or torn.
const DURABLE_IMAGES_FILE: &str = "images.json.durable";
const REFERENCES_FILE: &str = "references.json";

/// What `images.json` stores per image.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub manifest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
    pub created: DateTime<Utc>,
    /// Why the image is unusable, when [`ImageStore::check`] found it broken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken: Option<String>,
}

/// An image loaded in memory.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub record: ImageRecord,
    pub raw_config: Vec<u8>,
    pub config: ImageConfig,
    pub chain_ids: Vec<Digest>,
    pub layer_blobs: Vec<Digest>,
    pub layer_sizes: Vec<u64>,
}

impl Loaded {
    pub fn size(&self) -> u64 {
        self.layer_sizes.iter().sum()
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub images: BTreeMap<Digest, Loaded>,
    /// Familiar `repo:tag` (or `repo@digest`) → image id.
    pub refs: BTreeMap<String, Digest>,
    /// Layers (chain ids / blob digests) of imports in flight, protected from GC.
    pub pending: HashMap<Digest, usize>,
    /// Operations in flight that may own temp dirs (snapshot `tmp-*`,
    /// content ingest files): `check` leaves temp files alone meanwhile.
    pub busy: usize,
}

impl State {
    pub fn tags_of(&self, id: &Digest) -> Vec<String> {
        self.refs
            .iter()
            .filter(|(r, i)| *i == id && !r.contains('@'))
            .map(|(r, _)| r.clone())
            .collect()
    }

    pub fn digests_of(&self, id: &Digest) -> Vec<String> {
        self.refs
            .iter()
            .filter(|(r, i)| *i == id && r.contains('@'))
            .map(|(r, _)| r.clone())
            .collect()
    }
}

/// Counts an operation in flight (see [`State::busy`]) until dropped.
pub(crate) struct BusyGuard<'a>(&'a ImageStore);

impl<'a> BusyGuard<'a> {
    pub(crate) fn new(store: &'a ImageStore) -> Self {
        store.lock().busy += 1;
        BusyGuard(store)
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.busy = s.busy.saturating_sub(1);
    }
}

/// An image as returned by [`ImageStore::get`].
#[derive(Debug, Clone)]
pub struct Image {
    /// `sha256:` digest of the config blob.
    pub id: Digest,
    /// Familiar `repo:tag` references.
    pub repo_tags: Vec<String>,
    /// Familiar `repo@sha256:…` references.
    pub repo_digests: Vec<String>,
    /// The parent image, if known.
    pub parent: Option<Digest>,
    /// The manifest blob's digest.
    pub manifest_digest: Digest,
    /// The parsed config.
    pub config: ImageConfig,
    /// The config blob exactly as stored.
    pub raw_config: Vec<u8>,
    /// Creation time (from the config, else when it was stored).
    pub created: DateTime<Utc>,
    /// Sum of the layers' sizes.
    pub size: u64,
    /// Chain ids, bottom-most layer first.
    pub chain_ids: Vec<Digest>,
    /// Set when [`ImageStore::check`] found the image broken (missing or
    /// corrupt content): it can be inspected and removed, not run.
    pub broken: Option<String>,
}

/// An entry of [`ImageStore::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSummary {
    pub id: Digest,
    pub parent_id: Option<Digest>,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    /// Unix seconds.
    pub created: i64,
    pub size: u64,
    pub labels: BTreeMap<String, String>,
}

/// An entry of [`ImageStore::history`], newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryItem {
    /// The image id for the top entry, `<missing>` otherwise.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    pub created_by: String,
    pub tags: Vec<String>,
    pub size: u64,
    pub comment: String,
}

/// The image store under a data root.
#[derive(Debug)]
pub struct ImageStore {
    pub(crate) content: ContentStore,
    pub(crate) snapshots: SnapshotStore,
    pub(crate) dir: PathBuf,
    pub(crate) state: Mutex<State>,
    pub(crate) apply_opts: ApplyOptions,
    /// `references.json` as last written (by `persist`), so that an unchanged one is not
    /// written again (a commit or import without a tag changes only `images.json`).
    persisted_refs: Mutex<Option<Vec<u8>>>,
    /// `images.json` was written without an fsync since it was last written durably
    /// ([`ImageStore::persist_deferred`]; [`ImageStore::sync_deferred`] settles it).
    index_deferred: std::sync::atomic::AtomicBool,
    /// [`ImageStore::commit_dir`] adopted a layer directory whose files nothing synced (a
    /// build step's, from a volatile overlay): [`ImageStore::sync_deferred`] syncs the
    /// snapshots' file system once.
    pub(crate) layers_deferred: std::sync::atomic::AtomicBool,
}

impl ImageStore {
    /// Opens (creating if needed) `<data_root>/{content,snapshots,images}` and
    /// loads the image records.
    pub fn open(data_root: &Path) -> Result<Self> {
        let content = ContentStore::open(&data_root.join("content"))?;
        let snapshots = SnapshotStore::open(&data_root.join("snapshots"))?;
        let dir = data_root.join("images");
        fs::create_dir_all(&dir).map_err(ImageError::io(format!("create {}", dir.display())))?;
        let records: BTreeMap<Digest, ImageRecord> = match read_json(&dir.join(IMAGES_FILE)) {
            Err(e @ ImageError::Corrupt { .. }) if dir.join(DURABLE_IMAGES_FILE).exists() => {
                let r = read_json(&dir.join(DURABLE_IMAGES_FILE)).map_err(|_| e)?;
                tracing::warn!(
                    "{}: unreadable; using its last durable copy",
                    dir.join(IMAGES_FILE).display()
                );
                r
            }
            r => r?,
        };
        let refs: BTreeMap<String, Digest> = read_json(&dir.join(REFERENCES_FILE))?;
        let store = ImageStore {
            content,
            snapshots,
            dir,
            state: Mutex::new(State::default()),
            apply_opts: ApplyOptions::default(),
            persisted_refs: Mutex::new(None),
            index_deferred: std::sync::atomic::AtomicBool::new(false),
            layers_deferred: std::sync::atomic::AtomicBool::new(false),
        };
        let mut state = State::default();
        for (id, record) in records {
            let loaded = store.load_lenient(&id, record);
            if let Some(reason) = &loaded.record.broken {
                tracing::warn!("image {id} is broken: {reason}");
            }
            state.images.insert(id, loaded);
        }
        state.refs = refs
            .into_iter()
            .filter(|(r, id)| {
                let ok = state.images.contains_key(id);
                if !ok {
                    tracing::warn!("dropping reference {r} to missing image {id}");
                }
                ok
            })
            .collect();
        *store.lock() = state;
        Ok(store)
    }

    /// The content store.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// The snapshot store.
    pub fn snapshots(&self) -> &SnapshotStore {
        &self.snapshots
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes durable the configs and manifests that [`ImageStore::commit_dir`] stored without
    /// an fsync (a build calls it before it reports its image).
    pub fn sync_deferred(&self) -> Result<()> {
        self.sync_layers()?;
        self.content.sync_deferred()?;
        if self
            .index_deferred
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            let state = self.lock();
            self.persist(&state)?;
        }
        Ok(())
    }

    /// The layer descriptors of an image's manifest.
    pub(crate) fn layer_descriptors(&self, l: &Loaded) -> Result<Vec<crate::config::Descriptor>> {
        let raw = self.content.get(&l.record.manifest)?;
        let manifest: Manifest = serde_json::from_slice(&raw).map_err(|e| ImageError::Corrupt {
            path: self.content.path(&l.record.manifest).display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(manifest.layers)
    }

    /// The uncompressed tar stream of layer blob `blob` and its length: the blob itself
    /// when the content store has it, else read back from the tar-split of snapshot `chain`
    /// (a snapshot of that layer; layers made by this store are kept that way).
    pub(crate) fn layer_stream(
        &self,
        blob: &Digest,
        chain: Option<&Digest>,
    ) -> Result<(Box<dyn std::io::Read + Send>, u64)> {
        match self.content.open_blob(blob) {
            Ok(f) => {
                let size = f
                    .metadata()
                    .map_err(ImageError::io(format!("stat blob {blob}")))?
                    .len();
                return Ok((Box::new(f), size));
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        if let Some(c) = chain {
            if let Some(r) = self.snapshots.layer_reader(c)? {
                let n = r.len();
                return Ok((Box::new(r), n));
            }
        }
        Err(ImageError::NotFound(format!("layer blob {blob}")))
    }

    /// [`Self::layer_stream`] of an image's layer `i`.
    pub(crate) fn image_layer_stream(
        &self,
        l: &Loaded,
        i: usize,
    ) -> Result<(Box<dyn std::io::Read + Send>, u64)> {
        let blob = &l.layer_blobs[i];
        let chain = l
            .chain_ids
            .get(i)
            .filter(|_| l.config.rootfs.diff_ids.get(i) == Some(blob));
        self.layer_stream(blob, chain)
    }

    /// Builds the in-memory form of an image from its blobs and snapshots.
    pub(crate) fn load_image(&self, id: &Digest, record: ImageRecord) -> Result<Loaded> {
        let raw_config = self.content.get(id)?;
        let config: ImageConfig =
            serde_json::from_slice(&raw_config).map_err(|e| ImageError::Corrupt {
                path: self.content.path(id).display().to_string(),
                reason: e.to_string(),
            })?;
        let manifest_raw = self.content.get(&record.manifest)?;
        let manifest: Manifest =
            serde_json::from_slice(&manifest_raw).map_err(|e| ImageError::Corrupt {
                path: self.content.path(&record.manifest).display().to_string(),
                reason: e.to_string(),
            })?;
        let mut chain_ids = Vec::new();
        let mut layer_sizes = Vec::new();
        let mut parent: Option<Digest> = None;
        for diff in &config.rootfs.diff_ids {
            let id = chain_id(parent.as_ref(), diff);
            let snap = self.snapshots.get(&id)?;
            layer_sizes.push(snap.size);
            chain_ids.push(id.clone());
            parent = Some(id);
        }
        Ok(Loaded {
            record,
            raw_config,
            config,
            chain_ids,
            layer_blobs: manifest.layers.into_iter().map(|l| l.digest).collect(),
            layer_sizes,
        })
    }

    /// Like [`Self::load`], but an image whose content is missing or corrupt
    /// is kept (so it can still be inspected and removed) with what could be
    /// read, and marked broken.
    pub(crate) fn load_lenient(&self, id: &Digest, record: ImageRecord) -> Loaded {
        match self.load_image(id, record.clone()) {
            Ok(l) => l,
            Err(e) => {
                let raw_config = self.content.get(id).unwrap_or_default();
                let config: ImageConfig = serde_json::from_slice(&raw_config).unwrap_or_default();
                let mut chain_ids = Vec::new();
                let mut layer_sizes = Vec::new();
                let mut parent: Option<Digest> = None;
                for diff in &config.rootfs.diff_ids {
                    let c = chain_id(parent.as_ref(), diff);
                    layer_sizes.push(self.snapshots.get(&c).map(|s| s.size).unwrap_or(0));
                    chain_ids.push(c.clone());
                    parent = Some(c);
                }
                let layer_blobs = self
                    .content
                    .get(&record.manifest)
                    .ok()
                    .and_then(|m| serde_json::from_slice::<Manifest>(&m).ok())
                    .map(|m| m.layers.into_iter().map(|l| l.digest).collect())
                    .unwrap_or_else(|| config.rootfs.diff_ids.clone());
                let mut record = record;
                if record.broken.is_none() {
                    record.broken = Some(e.to_string());
                }
                Loaded {
                    record,
                    raw_config,
                    config,
                    chain_ids,
                    layer_blobs,
                    layer_sizes,
                }
            }
        }
    }

    /// Syncs the file system of the snapshots if [`ImageStore::commit_dir`] adopted layer
    /// directories whose files nothing synced (a build's steps, from volatile overlays).
    fn sync_layers(&self) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.layers_deferred.swap(false, SeqCst) {
            return Ok(());
        }
        let root = self.snapshots.root();
        let r = File::open(root)
            .and_then(|d| {
                nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&d))
                    .map_err(std::io::Error::from)
            })
            .map_err(ImageError::io(format!("sync {}", root.display())));
        if r.is_err() {
            self.layers_deferred.store(true, SeqCst);
        }
        r
    }

    /// Writes images.json and references.json atomically and durably (references.json only
    /// when it changed since this store last wrote it), and keeps a link to images.json as its
    /// last durable copy. The layers of the records it makes durable are synced first (a
    /// build's steps, whose files come from volatile overlays).
    pub(crate) fn persist(&self, state: &State) -> Result<()> {
        self.sync_layers()?;
        let records: BTreeMap<&Digest, &ImageRecord> =
            state.images.iter().map(|(id, l)| (id, &l.record)).collect();
        let images = self.dir.join(IMAGES_FILE);
        // The link is made before the directory's fsync, which makes both renames durable.
        write_renamed(&images, &json_bytes(&images, &records)?, true, || {
            let durable = self.dir.join(DURABLE_IMAGES_FILE);
            let tmp = self
                .dir
                .join(format!(".{DURABLE_IMAGES_FILE}.tmp{}", std::process::id()));
            let _ = fs::remove_file(&tmp);
            if let Err(e) = fs::hard_link(&images, &tmp).and_then(|()| fs::rename(&tmp, &durable)) {
                let _ = fs::remove_file(&tmp);
                // No copy rather than a stale one: deferred writes are then durable ones.
                let _ = fs::remove_file(&durable);
                tracing::warn!("cannot keep a durable copy of {}: {e}", images.display());
            }
        })?;
        self.index_deferred
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.persist_refs(state)
    }

    /// Like [`ImageStore::persist`] for a change of images.json alone (a build's intermediate
    /// image, no reference), without waiting for the disk: the file is replaced atomically,
    /// its durable copy stays as it was, and [`ImageStore::sync_deferred`] (or any durable
    /// write after) makes it durable. A power loss before that may only lose the records
    /// written so.
    pub(crate) fn persist_deferred(&self, state: &State) -> Result<()> {
        if !self.dir.join(DURABLE_IMAGES_FILE).exists() {
            // No durable copy to fall back on yet.
            return self.persist(state);
        }
        let records: BTreeMap<&Digest, &ImageRecord> =
            state.images.iter().map(|(id, l)| (id, &l.record)).collect();
        let path = self.dir.join(IMAGES_FILE);
        write_bytes_replace(&path, &json_bytes(&path, &records)?)?;
        self.index_deferred
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.persist_refs(state)
    }

    fn persist_refs(&self, state: &State) -> Result<()> {
        let path = self.dir.join(REFERENCES_FILE);
        let refs = json_bytes(&path, &state.refs)?;
        let mut last = self
            .persisted_refs
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.as_deref() != Some(refs.as_slice()) {
            write_bytes_atomic(&path, &refs)?;
            *last = Some(refs);
        }
        Ok(())
    }

    /// Resolves `name_or_id` (reference, full id with or without `sha256:`,
    /// or a unique id prefix) to an image id, and the reference if it was one.
    pub(crate) fn resolve(
        &self,
        state: &State,
        name_or_id: &str,
    ) -> Result<(Digest, Option<Reference>)> {
        let s = name_or_id.trim();
        let hex = s.strip_prefix("sha256:").unwrap_or(s);
        if berth_content::is_sha256_hex(hex) {
            let id = Digest::from_hex(hex).map_err(|_| ImageError::NotFound(s.to_string()))?;
            if state.images.contains_key(&id) {
                return Ok((id, None));
            }
            return Err(ImageError::NotFound(s.to_string()));
        }
        let parsed = Reference::parse(s);
        if let Ok(r) = &parsed {
            let tagged = r.clone().with_default_tag();
            if let Some(id) = state.refs.get(&tagged.familiar()) {
                return Ok((id.clone(), Some(tagged)));
            }
        }
        let is_prefix =
            !hex.is_empty() && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if is_prefix {
            let matches: Vec<&Digest> = state
                .images
                .keys()
                .filter(|id| id.hex().starts_with(hex))
                .collect();
            match matches.len() {
                0 => {}
                1 => return Ok((matches[0].clone(), None)),
                count => {
                    return Err(ImageError::Ambiguous {
                        prefix: s.to_string(),
                        count,
                    })
                }
            }
        }
        match parsed {
            Ok(r) => Err(ImageError::NotFound(r.with_default_tag().familiar())),
            Err(e) if !is_prefix => Err(e.into()),
            Err(_) => Err(ImageError::NotFound(s.to_string())),
        }
    }

    pub(crate) fn to_image(state: &State, id: &Digest, l: &Loaded) -> Image {
        Image {
            id: id.clone(),
            repo_tags: state.tags_of(id),
            repo_digests: state.digests_of(id),
            parent: l.record.parent.clone(),
            manifest_digest: l.record.manifest.clone(),
            config: l.config.clone(),
            raw_config: l.raw_config.clone(),
            created: l.config.created.unwrap_or(l.record.created),
            size: l.size(),
            chain_ids: l.chain_ids.clone(),
            broken: l.record.broken.clone(),
        }
    }

    /// Looks up an image by `repo[:tag]`, `repo@digest`, full id (with or
    /// without `sha256:`) or unique id prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Image> {
        let state = self.lock();
        let (id, _) = self.resolve(&state, name_or_id)?;
        let l = &state.images[&id];
        Ok(Self::to_image(&state, &id, l))
    }

    /// The uncompressed tar of layer `index` (bottom-most first) of an image, byte for byte
    /// the stream its diff id names, and its length: the layer blob, or the layer read back
    /// from its snapshot's tar-split.
    pub fn layer_tar(
        &self,
        name_or_id: &str,
        index: usize,
    ) -> Result<(Box<dyn std::io::Read + Send>, u64)> {
        let state = self.lock();
        let (id, _) = self.resolve(&state, name_or_id)?;
        let l = &state.images[&id];
        if index >= l.layer_blobs.len() {
            return Err(ImageError::NotFound(format!(
                "layer {index} of image {}",
                id.short()
            )));
        }
        self.image_layer_stream(l, index)
    }

    /// All images, newest first. Without `all`, untagged images that are the
    /// parent of another image (intermediate images) are hidden.
    pub fn list(&self, all: bool) -> Vec<ImageSummary> {
        let state = self.lock();
        let parents: std::collections::HashSet<&Digest> = state
            .images
            .values()
            .filter_map(|l| l.record.parent.as_ref())
            .collect();
        let mut out: Vec<(DateTime<Utc>, ImageSummary)> = state
            .images
            .iter()
            .map(|(id, l)| {
                let created = l.config.created.unwrap_or(l.record.created);
                let summary = ImageSummary {
                    id: id.clone(),
                    parent_id: l.record.parent.clone(),
                    repo_tags: state.tags_of(id),
                    repo_digests: state.digests_of(id),
                    created: created.timestamp(),
                    size: l.size(),
                    labels: l
                        .config
                        .config
                        .as_ref()
                        .and_then(|c| c.labels.clone())
                        .unwrap_or_default(),
                };
                (created, summary)
            })
            .filter(|(_, s)| all || !s.repo_tags.is_empty() || !parents.contains(&s.id))
            .collect();
        out.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        out.into_iter().map(|(_, s)| s).collect()
    }

    /// The image's unpacked layers, top-most first (overlay lowerdir order).
    pub fn lower_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .chain_ids
            .iter()
            .rev()
            .map(|c| self.snapshots.fs_path(c))
            .collect()
    }

    /// Tags `source` as `target` (`latest` if no tag); an existing tag moves.
    pub fn tag(&self, source: &str, target: &str) -> Result<()> {
        let target_ref = Reference::parse(target)?;
        if target_ref.digest().is_some() {
            return Err(ImageError::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let target_ref = target_ref.with_default_tag();
        let mut state = self.lock();
        let (id, _) = self.resolve(&state, source)?;
        if state.refs.get(&target_ref.familiar()) == Some(&id) {
            // Already so: nothing to write (a cached rebuild tags its image again).
            return Ok(());
        }
        let old = state.refs.insert(target_ref.familiar(), id.clone());
        if let Err(e) = self.persist(&state) {
            match old {
                Some(o) => state.refs.insert(target_ref.familiar(), o),
                None => state.refs.remove(&target_ref.familiar()),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Records `reference` (`name@sha256:…`, the digest of the image's manifest in a
    /// registry: docker's RepoDigests) for the image `name_or_id`.
    pub fn add_repo_digest(&self, name_or_id: &str, reference: &str) -> Result<()> {
        let r = Reference::parse(reference)?;
        if r.digest().is_none() {
            return Err(ImageError::InvalidArgument(format!(
                "{reference}: a repository digest needs a digest"
            )));
        }
        let key = r.familiar();
        let mut state = self.lock();
        let (id, _) = self.resolve(&state, name_or_id)?;
        if state.refs.get(&key) == Some(&id) {
            return Ok(());
        }
        let old = state.refs.insert(key.clone(), id);
        if let Err(e) = self.persist(&state) {
            match old {
                Some(o) => state.refs.insert(key, o),
                None => state.refs.remove(&key),
            };
            return Err(e);
        }
        Ok(())
    }

    /// Docker's `image history`, newest first.
    pub fn history(&self, name_or_id: &str) -> Result<Vec<HistoryItem>> {
        let state = self.lock();
        let (id, _) = self.resolve(&state, name_or_id)?;
        let l = &state.images[&id];
        let mut items = Vec::new();
        let mut layer = 0;
        for h in &l.config.history {
            let mut size = 0;
            if !h.empty_layer {
                size = l.layer_sizes.get(layer).copied().unwrap_or(0);
                layer += 1;
            }
            items.push(HistoryItem {
                id: "<missing>".into(),
                created: h.created.map(|c| c.timestamp()).unwrap_or(0),
                created_by: h.created_by.clone().unwrap_or_default(),
                tags: Vec::new(),
                size,
                comment: h.comment.clone().unwrap_or_default(),
            });
        }
        items.reverse();
        // Fill in ids and tags along the parent chain.
        let mut cur = Some(id);
        for item in items.iter_mut() {
            let Some(cid) = cur.take() else { break };
            item.id = cid.to_string();
            item.tags = state.tags_of(&cid);
            cur = state
                .images
                .get(&cid)
                .and_then(|l| l.record.parent.clone())
                .filter(|p| state.images.contains_key(p));
        }
        Ok(items)
    }
}

fn read_json<T: serde::de::DeserializeOwned + Default>(path: &Path) -> Result<T> {
    match fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| ImageError::Corrupt {
            path: path.display().to_string(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(ImageError::io(format!("read {}", path.display()))(e)),
    }
}

fn json_bytes<T: Serialize>(path: &Path, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(value).map_err(|e| ImageError::Corrupt {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Write to a temp file and rename it over `path`, without an fsync.
fn write_bytes_replace(path: &Path, data: &[u8]) -> Result<()> {
    write_renamed(path, data, false, || {})
}

/// Write to a temp file, fsync, rename over `path`, fsync the directory.
fn write_bytes_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_renamed(path, data, true, || {})
}

/// Write `data` to a temp file beside `path` and rename it over `path`; `durable`: fsync the
/// file before the rename and the directory after it, `then` running in between.
fn write_renamed(path: &Path, data: &[u8], durable: bool, then: impl FnOnce()) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(ImageError::io(format!(
        "create temp file in {}",
        dir.display()
    )))?;
    tmp.write_all(data)
        .and_then(|_| {
            if durable {
                tmp.as_file().sync_all()
            } else {
                Ok(())
            }
        })
        .map_err(ImageError::io(format!("write {}", path.display())))?;
    tmp.persist(path)
        .map_err(|e| ImageError::io(format!("rename into {}", path.display()))(e.error))?;
    then();
    if !durable {
        return Ok(());
    }
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io(format!("fsync {}", dir.display())))
}
