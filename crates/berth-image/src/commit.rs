//! `docker commit`: a container's changes become a new image on top of its
//! image (moby `image.NewChildImage`).

use std::io::Read;

use berth_content::Digest;
use berth_snapshot::chain_id;
use chrono::Utc;
use serde_json::Value;

use crate::config::{
    ContainerConfig, Descriptor, History, Manifest, MEDIA_TYPE_CONFIG, MEDIA_TYPE_LAYER,
    MEDIA_TYPE_MANIFEST,
};
use crate::error::ImageError;
use crate::import::{ImportResult, PendingGuard};
use crate::load::read_head;
use crate::reference::Reference;
use crate::store::{ImageRecord, ImageStore, Loaded, Result};

/// An empty tar archive (its end-of-archive blocks): the layer of a commit that changed nothing.
const EMPTY_TAR: &[u8] = &[0u8; 1024];

/// What [`ImageStore::commit`] needs to know about the container.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The container's image id (the new image's parent); `None` for a build step
    /// on `scratch`.
    pub parent: Option<Digest>,
    /// `repo[:tag]` to tag the new image with.
    pub reference: Option<String>,
    /// `--author`.
    pub author: String,
    /// `--message`.
    pub comment: String,
    /// The container's config after applying the `--change` instructions.
    pub config: ContainerConfig,
    /// The container's id (recorded as the config's `container`; empty: none).
    pub container_id: String,
    /// The container's command line, for the history entry.
    pub created_by: String,
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// Parses a tag for a new image (no digest; `latest` by default).
pub(crate) fn parse_new_tag(reference: Option<&str>) -> Result<Option<Reference>> {
    match reference.map(str::trim) {
        Some(r) if !r.is_empty() => {
            let parsed = Reference::parse(r)?;
            if parsed.digest().is_some() {
                return Err(ImageError::InvalidArgument(
                    "refusing to create a tag with a digest reference".into(),
                ));
            }
            Ok(Some(parsed.with_default_tag()))
        }
        _ => Ok(None),
    }
}

/// The config a build on `scratch` starts from.
fn scratch_config() -> crate::config::ImageConfig {
    crate::config::ImageConfig {
        architecture: "amd64".into(),
        os: "linux".into(),
        ..Default::default()
    }
}

impl ImageStore {
    /// Creates an image from a container: the parent's layers plus `layer`
    /// (a plain tar of the container's changes, OCI whiteouts), with the
    /// parent's config updated from `req`. As in moby, an empty diff adds no
    /// layer, only a history entry marked `empty_layer`. On failure nothing
    /// is left behind.
    pub fn commit<R: Read>(&self, req: CommitRequest, layer: R) -> Result<ImportResult> {
        self.commit_with(req, true, move |store| {
            let mut layer = layer;
            let mut head = Vec::with_capacity(512);
            read_head(&mut layer, &mut head, 512).map_err(ImageError::io("read layer"))?;
            store
                .unpack_entry(&head, layer)?
                .map_err(|reason| ImageError::InvalidArgument(format!("commit layer: {reason}")))
        })
    }

    /// Like [`ImageStore::commit`], with the layer given as a directory in overlay's
    /// upper format that becomes the new snapshot as it is (renamed: it must be on the
    /// store's filesystem, and it is gone afterwards, unless it is empty). Only the layer blob is written
    /// from it, so the files are not copied again (a build step's layer).
    ///
    /// The image's config and manifest are not fsynced (a build's intermediate image: see
    /// `ContentStore::put_all_deferred`), nor the layer's files: [`ImageStore::sync_deferred`]
    /// makes them durable, which the build does before it reports its image.
    pub fn commit_dir(&self, req: CommitRequest, dir: &std::path::Path) -> Result<ImportResult> {
        self.commit_with(req, false, |store| {
            // Nothing changed (`RUN true`): an empty layer, which is neither stored nor
            // snapshotted (see `commit_with`); the directory is left as it is.
            let nothing = std::fs::read_dir(dir)
                .map(|mut rd| rd.next().is_none())
                .unwrap_or(false);
            if nothing {
                let empty = crate::load::LayerEntry {
                    entries: 0,
                    raw_digest: Digest::of(EMPTY_TAR),
                    raw_size: EMPTY_TAR.len() as u64,
                    diff_id: Digest::of(EMPTY_TAR),
                    diff_size: EMPTY_TAR.len() as u64,
                    size: 0,
                    pending: None,
                    committed: None,
                };
                return Ok(empty);
            }
            let pending = store.snapshots.prepare()?;
            pending.adopt(dir)?;
            let (stats, diff_id) = pending
                .write_split()
                .map_err(|e| ImageError::InvalidArgument(format!("commit layer: {e}")))?;
            // Its files (and tar-split) are unsynced until the next `sync_layers`.
            store
                .layers_deferred
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(crate::load::LayerEntry {
                entries: stats.entries,
                raw_digest: diff_id.clone(),
                raw_size: stats.size,
                diff_id,
                diff_size: stats.size,
                size: stats.file_bytes,
                pending: Some(pending),
                committed: None,
            })
        })
    }

    fn commit_with(
        &self,
        req: CommitRequest,
        durable: bool,
        layer: impl FnOnce(&Self) -> Result<crate::load::LayerEntry>,
    ) -> Result<ImportResult> {
        let _busy = crate::store::BusyGuard::new(self);
        let reference = parse_new_tag(req.reference.as_deref())?;
        let parent = match &req.parent {
            Some(p) => {
                let state = self.lock();
                let parent = state
                    .images
                    .get(p)
                    .cloned()
                    .ok_or_else(|| ImageError::NotFound(p.to_string()))?;
                if let Some(reason) = &parent.record.broken {
                    return Err(ImageError::Conflict(format!(
                        "image {} is broken ({reason}): cannot commit on top of it",
                        p.short()
                    )));
                }
                Some(parent)
            }
            None => None,
        };
        let (parent_config, parent_layers, top) = match &parent {
            Some(p) => (
                p.config.clone(),
                self.layer_descriptors(p)?,
                p.chain_ids.last().cloned(),
            ),
            None => (scratch_config(), Vec::new(), None),
        };

        let mut entry = layer(self)?;
        let empty = entry.entries == 0;
        let diff_id = entry.diff_id.clone();
        let diff_size = entry.diff_size;
        let chain = chain_id(top.as_ref(), &diff_id);
        let guard = PendingGuard::new(
            self,
            if empty {
                Vec::new()
            } else {
                vec![diff_id.clone(), chain.clone()]
            },
        );
        if !empty {
            if let Some(p) = entry.pending.take() {
                p.commit(top.as_ref(), &diff_id, entry.size)?;
            }
        }
        drop(entry);

        let now = Utc::now();
        let mut config = parent_config;
        config.config = Some(req.config.clone());
        config.author = non_empty(&req.author);
        config.comment = non_empty(&req.comment);
        config.created = Some(now);
        if req.container_id.is_empty() {
            config.extra.remove("container");
        } else {
            config
                .extra
                .insert("container".into(), Value::String(req.container_id.clone()));
        }
        config.extra.insert(
            "container_config".into(),
            serde_json::to_value(&req.config).unwrap_or(Value::Null),
        );
        config.extra.remove("docker_version");
        if !empty {
            config.rootfs.diff_ids.push(diff_id.clone());
        }
        config.history.push(History {
            created: Some(now),
            created_by: non_empty(&req.created_by),
            author: non_empty(&req.author),
            comment: non_empty(&req.comment),
            empty_layer: empty,
        });
        let raw_config = serde_json::to_vec(&config)
            .map_err(|e| ImageError::InvalidArgument(format!("serialize image config: {e}")))?;
        let id = Digest::of(&raw_config);
        let mut layers = parent_layers;
        if !empty {
            layers.push(Descriptor {
                media_type: MEDIA_TYPE_LAYER.into(),
                digest: diff_id.clone(),
                size: diff_size,
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            config: Descriptor {
                media_type: MEDIA_TYPE_CONFIG.into(),
                digest: id.clone(),
                size: raw_config.len() as u64,
            },
            layers,
        };
        let raw_manifest = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::InvalidArgument(format!("serialize image manifest: {e}")))?;
        let manifest_digest = Digest::of(&raw_manifest);
        if durable {
            self.content.put_all(&[&raw_config, &raw_manifest])?;
        } else {
            self.content
                .put_all_deferred(&[&raw_config, &raw_manifest])?;
        }
        let record = ImageRecord {
            manifest: manifest_digest.clone(),
            parent: req.parent.clone(),
            created: now,
            broken: None,
        };
        let loaded = match self.load_image(&id, record) {
            Ok(l) => l,
            Err(e) => {
                guard.extra_blobs(vec![id, manifest_digest]);
                return Err(e);
            }
        };
        // A deferred commit without a tag changes images.json alone: written without an
        // fsync, as its blobs (`sync_deferred` settles both).
        let deferred = !durable && reference.is_none();
        if let Err(e) = self.insert_image(&id, loaded, reference.as_ref(), deferred) {
            guard.extra_blobs(vec![id, manifest_digest]);
            return Err(e);
        }
        guard.success();
        Ok(ImportResult {
            id,
            reference: reference.map(|r| r.familiar()),
        })
    }

    /// Adds (or replaces) an image record and its tag, persisting both;
    /// memory is rolled back if persisting fails. Without an fsync if `deferred`
    /// ([`ImageStore::persist_deferred`]).
    fn insert_image(
        &self,
        id: &Digest,
        loaded: Loaded,
        reference: Option<&Reference>,
        deferred: bool,
    ) -> Result<()> {
        let mut state = self.lock();
        let previous_image = state.images.insert(id.clone(), loaded);
        let previous_ref =
            reference.map(|r| (r.familiar(), state.refs.insert(r.familiar(), id.clone())));
        let persisted = if deferred {
            self.persist_deferred(&state)
        } else {
            self.persist(&state)
        };
        if let Err(e) = persisted {
            match previous_image {
                Some(p) => state.images.insert(id.clone(), p),
                None => state.images.remove(id),
            };
            if let Some((r, prev)) = previous_ref {
                match prev {
                    Some(p) => state.refs.insert(r, p),
                    None => state.refs.remove(&r),
                };
            }
            return Err(e);
        }
        Ok(())
    }
}
