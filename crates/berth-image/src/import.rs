//! `docker import`: a tar (optionally compressed) becomes a one-layer image.

use std::io::{self, Read};

use berth_content::Digest;
use berth_snapshot::{decompress, ApplyOptions};
use chrono::Utc;

use crate::changes::apply_changes;
use crate::config::{
    ContainerConfig, Descriptor, History, ImageConfig, Manifest, RootFs, MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_LAYER, MEDIA_TYPE_MANIFEST,
};
use crate::error::ImageError;
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore, Loaded, Result};

/// Options of [`ImageStore::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `repo[:tag]` to tag the new image with.
    pub reference: Option<String>,
    /// Dockerfile instructions (`--change`).
    pub changes: Vec<String>,
    /// The history comment (`--message`).
    pub message: Option<String>,
    /// Where the tar came from (`-`, a file or a URL), for the default comment.
    pub source: String,
}

/// The result of an import.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportResult {
    /// The new image's id.
    pub id: Digest,
    /// The familiar reference it was tagged with, if any.
    pub reference: Option<String>,
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

impl ImageStore {
    /// Sets the decompression-bomb cap used by [`ImageStore::import`].
    pub fn set_apply_options(&mut self, opts: ApplyOptions) {
        self.apply_opts = opts;
    }

    /// Imports a tar stream (gzip, zstd or plain) as a new single-layer image.
    /// On failure nothing is left behind.
    pub fn import<R: Read + Send>(&self, reader: R, opts: &ImportOptions) -> Result<ImportResult> {
        let _busy = crate::store::BusyGuard::new(self);
        let reference = match opts.reference.as_deref().map(str::trim) {
            Some(r) if !r.is_empty() => {
                let parsed = Reference::parse(r)?;
                if parsed.digest().is_some() {
                    return Err(ImageError::InvalidArgument(
                        "refusing to create a tag with a digest reference".into(),
                    ));
                }
                Some(parsed.with_default_tag())
            }
            _ => None,
        };
        let mut container_config = ContainerConfig::default();
        apply_changes(&mut container_config, &opts.changes)?;

        // Unpack, keeping the stream as a tar-split, while another thread hashes it.
        let stream = decompress(reader)?;
        let mut pipe =
            crate::load::HashPipe::new().map_err(ImageError::io("start layer hasher"))?;
        let pending = self.snapshots.prepare()?;
        let (applied, failed) = {
            let mut tee = crate::load::Tee {
                inner: stream,
                pipe: &mut pipe,
                failed: false,
            };
            let r = pending.apply_split(&mut tee, &self.apply_opts);
            (r, tee.failed)
        };
        let stats = match (applied, failed) {
            (_, true) => {
                let e = pipe
                    .finish()
                    .err()
                    .unwrap_or_else(|| io::Error::other("layer hasher stopped"));
                return Err(ImageError::io("hash layer")(e));
            }
            (Err(e), false) => return Err(e.into()),
            (Ok(s), false) => s,
        };
        let (diff_id, blob_size) = pipe.finish().map_err(ImageError::io("hash layer"))?;
        let blob_digest = diff_id.clone();

        // From here on the layer is protected from concurrent GC.
        let guard = PendingGuard::new(self, vec![diff_id.clone()]);
        let snapshot = pending.commit(None, &diff_id, stats.size)?;

        let now = Utc::now();
        let comment = opts
            .message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("Imported from {}", opts.source));
        let config = ImageConfig {
            created: Some(now),
            architecture: host_arch().into(),
            os: "linux".into(),
            comment: Some(comment.clone()),
            config: Some(container_config),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![diff_id.clone()],
            },
            history: vec![History {
                created: Some(now),
                comment: Some(comment),
                ..Default::default()
            }],
            ..Default::default()
        };
        let raw_config = serde_json::to_vec(&config)
            .map_err(|e| ImageError::InvalidArgument(format!("serialize image config: {e}")))?;
        let id = self.content.put(&raw_config)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            config: Descriptor {
                media_type: MEDIA_TYPE_CONFIG.into(),
                digest: id.clone(),
                size: raw_config.len() as u64,
            },
            layers: vec![Descriptor {
                media_type: MEDIA_TYPE_LAYER.into(),
                digest: blob_digest.clone(),
                size: blob_size,
            }],
        };
        let raw_manifest = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::InvalidArgument(format!("serialize image manifest: {e}")))?;
        let manifest_digest = self.content.put(&raw_manifest)?;

        let loaded = Loaded {
            record: ImageRecord {
                manifest: manifest_digest.clone(),
                parent: None,
                created: now,
                broken: None,
            },
            raw_config,
            config,
            chain_ids: vec![snapshot.chain_id.clone()],
            layer_blobs: vec![blob_digest],
            layer_sizes: vec![snapshot.size],
        };
        let mut state = self.lock();
        let previous_image = state.images.insert(id.clone(), loaded);
        let previous_ref = reference
            .as_ref()
            .map(|r| (r.familiar(), state.refs.insert(r.familiar(), id.clone())));
        if let Err(e) = self.persist(&state) {
            // Roll back memory; the guard then removes unreferenced files.
            match previous_image {
                Some(p) => state.images.insert(id.clone(), p),
                None => state.images.remove(&id),
            };
            if let Some((r, prev)) = previous_ref {
                match prev {
                    Some(p) => state.refs.insert(r, p),
                    None => state.refs.remove(&r),
                };
            }
            drop(state);
            guard.extra_blobs(vec![id, manifest_digest]);
            return Err(e);
        }
        drop(state);
        guard.success();
        Ok(ImportResult {
            id,
            reference: reference.map(|r| r.familiar()),
        })
    }
}

/// Counts `layers` as in flight (protected from GC) until the returned guard is dropped, for
/// a reader (`save`); the caller holds the state lock. Dropping it only uncounts them: what an
/// `rmi` left meanwhile because of it is an orphan for the next GC (`rmi` alone knows which
/// layers stopped containers still use).
pub(crate) fn protect<'a>(
    store: &'a ImageStore,
    state: &mut crate::store::State,
    layers: Vec<Digest>,
) -> Protected<'a> {
    count(state, &layers);
    Protected { store, layers }
}

/// Counts `layers` as in flight.
fn count(state: &mut crate::store::State, layers: &[Digest]) {
    for l in layers {
        *state.pending.entry(l.clone()).or_default() += 1;
    }
}

/// Counts `layers` as in flight no more.
fn uncount(state: &mut crate::store::State, layers: &[Digest]) {
    for l in layers {
        if let Some(n) = state.pending.get_mut(l) {
            *n -= 1;
            if *n == 0 {
                state.pending.remove(l);
            }
        }
    }
}

/// See [`protect`].
pub(crate) struct Protected<'a> {
    store: &'a ImageStore,
    layers: Vec<Digest>,
}

impl Drop for Protected<'_> {
    fn drop(&mut self) {
        uncount(&mut self.store.lock(), &self.layers);
    }
}

/// Registers layers as in-flight; on drop without success, removes whatever
/// no image needs.
pub(crate) struct PendingGuard<'a> {
    store: &'a ImageStore,
    layers: Vec<Digest>,
    blobs: Vec<Digest>,
    ok: bool,
}

impl<'a> PendingGuard<'a> {
    pub(crate) fn new(store: &'a ImageStore, layers: Vec<Digest>) -> Self {
        count(&mut store.lock(), &layers);
        PendingGuard {
            store,
            layers,
            blobs: Vec::new(),
            ok: false,
        }
    }

    pub(crate) fn extra_blobs(mut self, blobs: Vec<Digest>) {
        self.blobs = blobs;
    }

    pub(crate) fn success(mut self) {
        self.ok = true;
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.store.lock();
        uncount(&mut state, &self.layers);
        if self.ok {
            return;
        }
        let mut blobs = self.layers.clone();
        blobs.extend(self.blobs.iter().cloned());
        if let Err(e) = self.store.gc_unneeded(&state, &self.layers, &blobs) {
            tracing::warn!("cleaning up after a failed import: {e}");
        }
    }
}
