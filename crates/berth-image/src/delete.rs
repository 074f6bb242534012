//! `docker rmi` semantics and layer garbage collection.

use std::collections::HashSet;

use berth_content::Digest;

use crate::error::ImageError;
use crate::store::{ImageStore, Result, State};
use crate::Reference;

/// One line of `docker rmi` output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteItem {
    /// `Untagged: busybox:latest`
    Untagged(String),
    /// `Deleted: sha256:…` (the image, then each removed layer's chain id)
    Deleted(String),
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

fn cannot(id: &Digest, force_msg: &str, message: String) -> ImageError {
    ImageError::Conflict(format!(
        "conflict: unable to delete {} ({force_msg}) - {message}",
        id.short()
    ))
}

impl ImageStore {
    /// Deletes (or untags) an image with Docker's semantics. `users(image_id)`
    /// returns the containers using the image as `(container id, running)`.
    pub fn delete(
        &self,
        name_or_id: &str,
        force: bool,
        users: &dyn Fn(&str) -> Vec<(String, bool)>,
    ) -> Result<Vec<DeleteItem>> {
        // Ask about containers without holding our lock (no lock-order issues).
        let (id, _) = {
            let state = self.lock();
            self.resolve(&state, name_or_id)?
        };
        let containers = users(&id.to_string());
        // Untagged parents go with the image (moby's prune of the parent chain), unless a
        // container uses them: ask about those now, outside our lock.
        let ancestors_in_use: HashSet<Digest> = {
            let ancestors = {
                let state = self.lock();
                let mut out = Vec::new();
                let mut cur = state.images.get(&id).and_then(|l| l.record.parent.clone());
                while let Some(p) = cur {
                    if out.contains(&p) {
                        break;
                    }
                    cur = state.images.get(&p).and_then(|l| l.record.parent.clone());
                    out.push(p);
                }
                out
            };
            ancestors
                .into_iter()
                .filter(|a| !users(&a.to_string()).is_empty())
                .collect()
        };
        let running = containers.iter().find(|(_, r)| *r);
        let stopped = containers.iter().find(|(_, r)| !*r);

        let mut state = self.lock();
        let (id2, by_ref) = self.resolve(&state, name_or_id)?;
        if id2 != id {
            return Err(ImageError::Conflict(format!(
                "conflict: image {name_or_id} changed while being deleted, try again"
            )));
        }
        let all_refs: Vec<String> = state
            .refs
            .iter()
            .filter(|(_, i)| **i == id)
            .map(|(r, _)| r.clone())
            .collect();
        let children = state
            .images
            .values()
            .any(|l| l.record.parent.as_ref() == Some(&id));
        let mut items = Vec::new();

        // Hard conflicts that would block the final deletion.
        let hard_conflict = || {
            if children {
                return Some(cannot(
                    &id,
                    "cannot be forced",
                    "image has dependent child images".into(),
                ));
            }
            running.map(|(c, _)| {
                cannot(
                    &id,
                    "cannot be forced",
                    format!("image is being used by running container {}", short(c)),
                )
            })
        };

        if let Some(r) = by_ref {
            // Untagging a repository's last tag takes its digest references (RepoDigests)
            // with it, as docker does; the image goes when no reference is left.
            let mut going = vec![r.familiar()];
            if r.digest().is_none() {
                let same_repo =
                    |x: &String| Reference::parse(x).ok().filter(|p| p.name() == r.name());
                let other_tag = all_refs
                    .iter()
                    .filter(|x| **x != r.familiar())
                    .filter_map(same_repo)
                    .any(|p| p.digest().is_none());
                if !other_tag {
                    going.extend(
                        all_refs
                            .iter()
                            .filter(|x| same_repo(x).is_some_and(|p| p.digest().is_some()))
                            .cloned(),
                    );
                }
            }
            if !force && all_refs.len() == going.len() {
                if let Some((c, _)) = containers.first() {
                    return Err(ImageError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name_or_id}\" (must force) - container {} is using its referenced image {}",
                        short(c),
                        id.short()
                    )));
                }
            }
            if all_refs.len() > going.len() {
                for g in &going {
                    state.refs.remove(g);
                }
                self.persist(&state)?;
                return Ok(going.into_iter().map(DeleteItem::Untagged).collect());
            }
            // Removing the last reference deletes the image: check first so a
            // refusal leaves the tag in place.
            if let Some(e) = hard_conflict() {
                return Err(e);
            }
        } else {
            if let Some(e) = hard_conflict() {
                return Err(e);
            }
            // One reference, as docker counts them: one repository, and at most one tag in
            // it (its digest references do not count).
            let repositories: HashSet<String> = all_refs
                .iter()
                .map(|x| Reference::parse(x).map_or_else(|_| x.clone(), |p| p.name()))
                .collect();
            let tags = all_refs.iter().filter(|x| !x.contains('@')).count();
            if !force {
                if repositories.len() > 1 || tags > 1 {
                    return Err(cannot(
                        &id,
                        "must be forced",
                        "image is referenced in multiple repositories".into(),
                    ));
                }
                if let Some((c, _)) = stopped {
                    return Err(cannot(
                        &id,
                        "must be forced",
                        format!("image is being used by stopped container {}", short(c)),
                    ));
                }
            }
        }

        for r in &all_refs {
            state.refs.remove(r);
            items.push(DeleteItem::Untagged(r.clone()));
        }
        let Some(loaded) = state.images.remove(&id) else {
            return Err(ImageError::NotFound(name_or_id.to_string()));
        };
        let mut removed_images = vec![(id.clone(), loaded)];
        let mut cur = removed_images[0].1.record.parent.clone();
        while let Some(p) = cur.take() {
            let referenced = state.refs.values().any(|i| *i == p);
            let has_children = state
                .images
                .values()
                .any(|l| l.record.parent.as_ref() == Some(&p));
            if referenced || has_children || ancestors_in_use.contains(&p) {
                break;
            }
            let Some(pl) = state.images.remove(&p) else {
                break;
            };
            cur = pl.record.parent.clone();
            removed_images.push((p, pl));
        }
        self.persist(&state)?;

        let mut blobs = Vec::new();
        let mut layers = Vec::new();
        for (rid, l) in &removed_images {
            items.push(DeleteItem::Deleted(rid.to_string()));
            blobs.push(rid.clone());
            blobs.push(l.record.manifest.clone());
            // Containers (stopped, force-deleted image) still need the layers.
            if containers.is_empty() {
                blobs.extend(l.layer_blobs.iter().cloned());
                for c in &l.chain_ids {
                    if !layers.contains(c) {
                        layers.push(c.clone());
                    }
                }
            }
        }
        let removed = self.gc_unneeded(&state, &layers, &blobs)?;
        // Docker lists removed layers top-most first.
        items.extend(
            removed
                .into_iter()
                .rev()
                .map(|d| DeleteItem::Deleted(d.to_string())),
        );
        Ok(items)
    }

    /// Removes snapshots in `layers` and blobs in `blobs` that no image (nor
    /// an import in flight) needs. Returns the removed snapshots' chain ids.
    pub(crate) fn gc_unneeded(
        &self,
        state: &State,
        layers: &[Digest],
        blobs: &[Digest],
    ) -> Result<Vec<Digest>> {
        let mut needed_layers: HashSet<&Digest> = state.pending.keys().collect();
        let mut needed_blobs: HashSet<&Digest> = state.pending.keys().collect();
        for (id, l) in &state.images {
            needed_layers.extend(l.chain_ids.iter());
            needed_blobs.insert(id);
            needed_blobs.insert(&l.record.manifest);
            needed_blobs.extend(l.layer_blobs.iter());
        }
        let mut removed = Vec::new();
        for c in layers {
            if !needed_layers.contains(c) && self.snapshots.exists(c) {
                self.snapshots.remove(c)?;
                removed.push(c.clone());
            }
        }
        for b in blobs {
            if !needed_blobs.contains(b) {
                self.content.delete(b)?;
            }
        }
        Ok(removed)
    }

    /// Removes every snapshot and blob that no image needs, except the
    /// snapshots in `keep` (chain ids still used by containers, e.g. of
    /// force-deleted images). Returns the removed chain ids. Call it at
    /// startup to clean up after crashes.
    pub fn prune_unused(&self, keep: &[Digest]) -> Result<Vec<Digest>> {
        let state = self.lock();
        let keep: HashSet<&Digest> = keep.iter().collect();
        let layers: Vec<Digest> = self
            .snapshots
            .list()?
            .into_iter()
            .map(|s| s.chain_id)
            .filter(|c| !keep.contains(c))
            .collect();
        let mut blobs = self.content.list()?;
        // Keep the layer blobs of kept snapshots.
        let kept_diffs: HashSet<Digest> = keep
            .iter()
            .filter_map(|c| self.snapshots.get(c).ok())
            .map(|s| s.diff_id)
            .collect();
        blobs.retain(|b| !kept_diffs.contains(b));
        self.gc_unneeded(&state, &layers, &blobs)
    }
}
