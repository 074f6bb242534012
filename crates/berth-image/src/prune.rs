//! `image prune` and `system df` for the image store.

use std::collections::{HashMap, HashSet};

use berth_content::Digest;

use crate::delete::DeleteItem;
use crate::du::{disk_bytes, DiskWalker};
use crate::error::ImageError;
use crate::store::{ImageStore, Result};

/// The result of [`ImageStore::prune`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Docker's `ImagesDeleted` lines, in order.
    pub deleted: Vec<DeleteItem>,
    /// Bytes freed on disk (blocks, as `du` counts them).
    pub space_reclaimed: u64,
}

/// Disk usage of one image (see [`ImageStore::disk_usage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUsage {
    pub id: Digest,
    /// Sum of its layers' sizes.
    pub size: u64,
    /// Bytes of its layers that other images use too.
    pub shared_size: u64,
    /// `size - shared_size`.
    pub unique_size: u64,
}

/// The result of [`ImageStore::disk_usage`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Per image, in [`ImageStore::list`] order.
    pub images: Vec<ImageUsage>,
    /// Bytes the whole image store occupies on disk (content blobs,
    /// snapshots, records), counted like `du`: allocated blocks, each inode once.
    pub layers_size: u64,
}

impl ImageStore {
    /// Removes unused images, like `docker image prune`: without `all`, the
    /// dangling ones (untagged and not the parent of another image); with
    /// `all`, every image no container uses (`in_use`, by image id) is
    /// untagged, and deleted unless another image is its child. Repeats
    /// until nothing more qualifies (a removed image's untagged parent goes
    /// too), then removes every layer and blob no image needs except the
    /// snapshots in `keep_snapshots` (containers' layers).
    pub fn prune(
        &self,
        all: bool,
        in_use: &HashSet<Digest>,
        keep_snapshots: &[Digest],
    ) -> Result<PruneReport> {
        let before = self.store_bytes();
        let mut report = PruneReport::default();
        let mut state = self.lock();
        if all {
            // Docker untags every image no container uses, parents included: a parent that
            // still has children stays, untagged, until they go.
            let untag: Vec<(String, Digest)> = state
                .refs
                .iter()
                .filter(|(_, id)| !in_use.contains(*id))
                .map(|(r, id)| (r.clone(), id.clone()))
                .collect();
            if !untag.is_empty() {
                for (r, _) in &untag {
                    state.refs.remove(r);
                }
                if let Err(e) = self.persist(&state) {
                    for (r, id) in untag {
                        state.refs.insert(r, id);
                    }
                    return Err(e);
                }
                report
                    .deleted
                    .extend(untag.into_iter().map(|(r, _)| DeleteItem::Untagged(r)));
            }
        }
        loop {
            let parents: HashSet<Digest> = state
                .images
                .values()
                .filter_map(|l| l.record.parent.clone())
                .collect();
            let victims: Vec<Digest> = state
                .images
                .keys()
                .filter(|id| !in_use.contains(*id) && !parents.contains(*id))
                .filter(|id| all || state.tags_of(id).is_empty())
                .cloned()
                .collect();
            if victims.is_empty() {
                break;
            }
            for id in victims {
                let refs: Vec<String> = state
                    .refs
                    .iter()
                    .filter(|(_, i)| **i == id)
                    .map(|(r, _)| r.clone())
                    .collect();
                for r in &refs {
                    state.refs.remove(r);
                }
                let Some(loaded) = state.images.remove(&id) else {
                    continue;
                };
                if let Err(e) = self.persist(&state) {
                    state.images.insert(id.clone(), loaded);
                    for r in refs {
                        state.refs.insert(r, id.clone());
                    }
                    return Err(e);
                }
                report
                    .deleted
                    .extend(refs.into_iter().map(DeleteItem::Untagged));
                report.deleted.push(DeleteItem::Deleted(id.to_string()));
                let keep: HashSet<&Digest> = keep_snapshots.iter().collect();
                let layers: Vec<Digest> = loaded
                    .chain_ids
                    .iter()
                    .filter(|c| !keep.contains(c))
                    .cloned()
                    .collect();
                let mut blobs = vec![id.clone(), loaded.record.manifest.clone()];
                blobs.extend(loaded.layer_blobs.iter().cloned());
                let kept_diffs = self.kept_diff_ids(keep_snapshots);
                blobs.retain(|b| !kept_diffs.contains(b));
                let removed = self.gc_unneeded(&state, &layers, &blobs)?;
                report.deleted.extend(
                    removed
                        .into_iter()
                        .rev()
                        .map(|d| DeleteItem::Deleted(d.to_string())),
                );
            }
        }
        drop(state);
        self.prune_unused(keep_snapshots)?;
        report.space_reclaimed = before.saturating_sub(self.store_bytes());
        Ok(report)
    }

    fn kept_diff_ids(&self, keep: &[Digest]) -> HashSet<Digest> {
        keep.iter()
            .filter_map(|c| self.snapshots.get(c).ok())
            .map(|s| s.diff_id)
            .collect()
    }

    /// `du` bytes of the content store, snapshots and records.
    fn store_bytes(&self) -> u64 {
        let mut w = DiskWalker::default();
        [
            self.content.root().to_path_buf(),
            self.snapshots.root().to_path_buf(),
            self.dir.clone(),
        ]
        .iter()
        .map(|p| w.walk(p).unwrap_or(0))
        .sum()
    }

    /// Per-image sizes (shared and unique layer bytes) and the true on-disk
    /// size of the image store (`du` of its content, snapshots and records).
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let summaries = self.list(true);
        let (per_image, layer_users) = {
            let state = self.lock();
            let mut users: HashMap<Digest, usize> = HashMap::new();
            for l in state.images.values() {
                for c in l.chain_ids.iter().collect::<HashSet<_>>() {
                    *users.entry(c.clone()).or_default() += 1;
                }
            }
            let per: HashMap<Digest, Vec<(Digest, u64)>> = state
                .images
                .iter()
                .map(|(id, l)| {
                    (
                        id.clone(),
                        l.chain_ids
                            .iter()
                            .cloned()
                            .zip(l.layer_sizes.iter().copied())
                            .collect(),
                    )
                })
                .collect();
            (per, users)
        };
        let mut images = Vec::new();
        for s in summaries {
            let Some(layers) = per_image.get(&s.id) else {
                continue;
            };
            let size: u64 = layers.iter().map(|(_, n)| n).sum();
            let shared_size: u64 = layers
                .iter()
                .filter(|(c, _)| layer_users.get(c).copied().unwrap_or(0) > 1)
                .map(|(_, n)| n)
                .sum();
            images.push(ImageUsage {
                id: s.id,
                size,
                shared_size,
                unique_size: size - shared_size,
            });
        }
        let mut w = DiskWalker::default();
        let mut layers_size = 0;
        for p in [
            self.content.root().to_path_buf(),
            self.snapshots.root().to_path_buf(),
            self.dir.clone(),
        ] {
            layers_size += w
                .walk(&p)
                .map_err(ImageError::io(format!("measure {}", p.display())))?;
        }
        Ok(DiskUsage {
            images,
            layers_size,
        })
    }
}

/// `du`-style bytes of a path (for callers measuring other trees the same way).
pub fn disk_bytes_of(path: &std::path::Path) -> u64 {
    disk_bytes(path)
}
