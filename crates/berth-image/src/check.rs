//! `check`: verifies the store (blob digests, image content, snapshot chains),
//! reports orphans and corruption, and optionally repairs.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read};

use berth_content::{is_sha256_hex, Digest};
use berth_snapshot::{chain_id, SnapshotError};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::config::Manifest;
use crate::error::ImageError;
use crate::store::{ImageStore, Result};
use crate::tario::COPY_BUF;

/// What a [`Finding`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A blob no image (nor container layer) needs.
    OrphanBlob,
    /// A snapshot no image (nor container) needs.
    OrphanSnapshot,
    /// A blob whose content does not match its digest.
    CorruptBlob,
    /// A blob an image needs is missing.
    MissingBlob,
    /// A snapshot with bad metadata, a wrong chain id or a missing parent.
    CorruptSnapshot,
    /// A snapshot an image needs is missing.
    MissingSnapshot,
    /// An image that cannot be used (see the detail).
    BrokenImage,
    /// A leftover temp dir or ingest file of an interrupted operation.
    TempLeftover,
}

/// One problem found by [`ImageStore::check`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// The digest, chain id, image id or path concerned.
    pub object: String,
    /// What is wrong.
    pub detail: String,
    /// Whether repair fixed it (removed, or marked the image broken).
    pub repaired: bool,
}

/// The result of [`ImageStore::check`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    pub blobs_checked: usize,
    pub snapshots_checked: usize,
    pub images_checked: usize,
    pub findings: Vec<Finding>,
}

impl CheckReport {
    /// Whether nothing but orphans and leftovers (which GC removes) was found.
    pub fn is_consistent(&self) -> bool {
        self.findings.iter().all(|f| {
            matches!(
                f.kind,
                FindingKind::OrphanBlob | FindingKind::OrphanSnapshot | FindingKind::TempLeftover
            )
        })
    }
}

fn hash_file(path: &std::path::Path) -> io::Result<Digest> {
    hash_reader(&mut File::open(path)?)
}

fn hash_reader(f: &mut dyn Read) -> io::Result<Digest> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; COPY_BUF];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Digest::from_sha256(h.finalize().as_slice()))
}

impl ImageStore {
    /// Verifies every blob's sha256, every image's manifest, config, layer
    /// blobs and snapshots (diff ids and parent chain), and every snapshot's
    /// parent; reports orphans (`keep_snapshots`, the chain ids containers use,
    /// and their ancestors are not orphans) and leftovers of interrupted
    /// operations. With `repair`, removes orphans, leftovers and corrupt
    /// blobs/snapshots no healthy image needs, and marks broken images (they
    /// stay inspectable and removable; [`crate::Image::broken`] says why).
    pub fn check(&self, keep_snapshots: &[Digest], repair: bool) -> Result<CheckReport> {
        let mut state = self.lock();
        let mut report = CheckReport::default();
        let push = |report: &mut CheckReport, kind, object: String, detail: String| {
            report.findings.push(Finding {
                kind,
                object,
                detail,
                repaired: false,
            });
            report.findings.len() - 1
        };

        // Leftovers of interrupted operations (only when nothing is in flight).
        let mut temps = Vec::new();
        if state.busy == 0 {
            let ingest = self.content.root().join("ingest");
            for dir in [&ingest, &self.snapshots.root().to_path_buf()] {
                let Ok(entries) = fs::read_dir(dir) else {
                    continue;
                };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    if *dir == ingest || name.starts_with("tmp-") || name.starts_with("rm-") {
                        let i = push(
                            &mut report,
                            FindingKind::TempLeftover,
                            e.path().display().to_string(),
                            "left by an interrupted operation".into(),
                        );
                        temps.push((i, e.path()));
                    }
                }
            }
        }

        // Blobs: content matches name.
        let blobs = self.content.list()?;
        let mut corrupt_blobs = HashSet::new();
        for b in &blobs {
            report.blobs_checked += 1;
            match hash_file(&self.content.path(b)) {
                Ok(d) if d == *b => {}
                Ok(d) => {
                    push(
                        &mut report,
                        FindingKind::CorruptBlob,
                        b.to_string(),
                        format!("content hashes to {d}"),
                    );
                    corrupt_blobs.insert(b.clone());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    push(
                        &mut report,
                        FindingKind::CorruptBlob,
                        b.to_string(),
                        format!("unreadable: {e}"),
                    );
                    corrupt_blobs.insert(b.clone());
                }
            }
        }
        let blob_set: HashSet<&Digest> = blobs.iter().collect();

        // Snapshots: metadata, chain id, parent.
        let mut snaps = BTreeMap::new();
        let mut corrupt_snaps = Vec::new();
        // Snapshots whose layer stream is their tar-split (read back and hashed here).
        let mut split_snaps: HashSet<Digest> = HashSet::new();
        let root = self.snapshots.root().to_path_buf();
        let entries =
            fs::read_dir(&root).map_err(ImageError::io(format!("read {}", root.display())))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !is_sha256_hex(&name) {
                continue;
            }
            let Ok(id) = Digest::from_hex(&name) else {
                continue;
            };
            report.snapshots_checked += 1;
            match self.snapshots.get(&id) {
                Ok(s) => {
                    if chain_id(s.parent.as_ref(), &s.diff_id) != id {
                        corrupt_snaps.push((id.clone(), "chain id does not match its metadata"));
                    } else if !s.fs.is_dir() {
                        corrupt_snaps.push((id.clone(), "unpacked layer directory missing"));
                    } else {
                        match self.snapshots.layer_reader(&id) {
                            Ok(None) => {}
                            Ok(Some(mut r)) => {
                                split_snaps.insert(id.clone());
                                match hash_reader(&mut r) {
                                    Ok(d) if d == s.diff_id => {}
                                    Ok(_) => corrupt_snaps.push((
                                        id.clone(),
                                        "its files and tar-split no longer give its layer",
                                    )),
                                    Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                                        corrupt_snaps.push((
                                            id.clone(),
                                            "its files and tar-split do not read back",
                                        ))
                                    }
                                    // Not a verdict on the layer (EMFILE, EIO...): say so, and
                                    // let nothing be repaired on its account.
                                    Err(e) => {
                                        return Err(ImageError::io(format!(
                                            "read the layer of snapshot {id}"
                                        ))(e))
                                    }
                                }
                            }
                            Err(SnapshotError::Io { source, .. })
                                if !matches!(
                                    source.kind(),
                                    io::ErrorKind::InvalidData | io::ErrorKind::NotFound
                                ) =>
                            {
                                return Err(ImageError::io(format!(
                                    "open the layer of snapshot {id}"
                                ))(source))
                            }
                            Err(_) => corrupt_snaps.push((id.clone(), "tar-split unreadable")),
                        }
                    }
                    snaps.insert(id, s);
                }
                Err(SnapshotError::NotFound(_)) => {
                    corrupt_snaps.push((id, "snapshot.json missing (incomplete snapshot)"))
                }
                Err(_) => corrupt_snaps.push((id, "snapshot.json unreadable")),
            }
        }
        for (id, s) in &snaps {
            if let Some(p) = &s.parent {
                if !snaps.contains_key(p) {
                    corrupt_snaps.push((id.clone(), "parent snapshot missing"));
                }
            }
        }
        let corrupt_snap_ids: HashSet<Digest> =
            corrupt_snaps.iter().map(|(i, _)| i.clone()).collect();

        // Images.
        let mut needed_blobs: HashSet<Digest> = state.pending.keys().cloned().collect();
        let mut needed_snaps: HashSet<Digest> = state.pending.keys().cloned().collect();
        let mut healthy_needs: HashSet<Digest> = HashSet::new();
        let mut broken: Vec<(Digest, Option<String>)> = Vec::new();
        for (id, l) in &state.images {
            report.images_checked += 1;
            let mut problems: Vec<String> = Vec::new();
            let mut need_blob = |d: &Digest, what: &str, problems: &mut Vec<String>| {
                needed_blobs.insert(d.clone());
                if !blob_set.contains(d) {
                    problems.push(format!("{what} blob {d} missing"));
                    Some(FindingKind::MissingBlob)
                } else if corrupt_blobs.contains(d) {
                    problems.push(format!("{what} blob {d} corrupt"));
                    None
                } else {
                    None
                }
            };
            let mut missing = Vec::new();
            if let Some(k) = need_blob(id, "config", &mut problems) {
                missing.push((k, id.to_string()));
            }
            if let Some(k) = need_blob(&l.record.manifest, "manifest", &mut problems) {
                missing.push((k, l.record.manifest.to_string()));
            }
            if !problems.is_empty() {
            } else if serde_json::from_slice::<crate::config::ImageConfig>(
                &self.content.get(id).unwrap_or_default(),
            )
            .is_err()
            {
                problems.push("config does not parse".into());
            } else {
                match self
                    .content
                    .get(&l.record.manifest)
                    .ok()
                    .and_then(|m| serde_json::from_slice::<Manifest>(&m).ok())
                {
                    None => problems.push("manifest does not parse".into()),
                    Some(m) if m.config.digest != *id => {
                        problems.push("manifest names another config".into())
                    }
                    Some(m) if m.layers.len() != l.config.rootfs.diff_ids.len() => {
                        problems.push("manifest and config disagree on the layers".into())
                    }
                    Some(_) => {}
                }
            }
            for (i, d) in l.layer_blobs.iter().enumerate() {
                // Kept as the tar-split of the layer's snapshot (checked with the snapshots).
                let split = !blob_set.contains(d)
                    && l.config.rootfs.diff_ids.get(i) == Some(d)
                    && l.chain_ids.get(i).is_some_and(|c| split_snaps.contains(c));
                if split {
                    continue;
                }
                if let Some(k) = need_blob(d, &format!("layer {i}"), &mut problems) {
                    missing.push((k, d.to_string()));
                }
            }
            let mut parent: Option<Digest> = None;
            for (i, diff) in l.config.rootfs.diff_ids.iter().enumerate() {
                let c = chain_id(parent.as_ref(), diff);
                needed_snaps.insert(c.clone());
                match snaps.get(&c) {
                    None => {
                        problems.push(format!("layer {i} snapshot {c} missing"));
                        missing.push((FindingKind::MissingSnapshot, c.to_string()));
                    }
                    Some(_) if corrupt_snap_ids.contains(&c) => {
                        problems.push(format!("layer {i} snapshot {c} corrupt"))
                    }
                    Some(s) if s.diff_id != *diff || s.parent != parent => problems.push(format!(
                        "layer {i} snapshot {c} has the wrong diff id or parent"
                    )),
                    Some(_) => {}
                }
                parent = Some(c);
            }
            for (kind, object) in missing {
                push(
                    &mut report,
                    kind,
                    object,
                    format!("needed by image {}", id.short()),
                );
            }
            if problems.is_empty() {
                healthy_needs.insert(id.clone());
                healthy_needs.insert(l.record.manifest.clone());
                healthy_needs.extend(l.layer_blobs.iter().cloned());
                healthy_needs.extend(l.chain_ids.iter().cloned());
                if l.record.broken.is_some() {
                    // Healthy again (e.g. re-loaded content): clear the mark.
                    broken.push((id.clone(), None));
                }
            } else {
                let reason = problems.join("; ");
                let i = push(
                    &mut report,
                    FindingKind::BrokenImage,
                    id.to_string(),
                    reason.clone(),
                );
                let _ = i;
                broken.push((id.clone(), Some(reason)));
            }
        }

        // Containers' layers (and their ancestors, and their blobs) stay.
        let mut kept: HashSet<Digest> = HashSet::new();
        for k in keep_snapshots {
            let mut cur = Some(k.clone());
            while let Some(c) = cur.take() {
                if !kept.insert(c.clone()) {
                    break;
                }
                if let Some(s) = snaps.get(&c) {
                    needed_blobs.insert(s.diff_id.clone());
                    cur = s.parent.clone();
                }
            }
        }
        needed_snaps.extend(kept.iter().cloned());

        let mut orphan_blobs = Vec::new();
        for b in &blobs {
            if !needed_blobs.contains(b) {
                let i = push(
                    &mut report,
                    FindingKind::OrphanBlob,
                    b.to_string(),
                    "no image needs it".into(),
                );
                orphan_blobs.push((i, b.clone()));
            }
        }
        let mut orphan_snaps = Vec::new();
        for id in snaps.keys() {
            if !needed_snaps.contains(id) {
                let i = push(
                    &mut report,
                    FindingKind::OrphanSnapshot,
                    id.to_string(),
                    "no image or container needs it".into(),
                );
                orphan_snaps.push((i, id.clone()));
            }
        }
        let mut corrupt_snap_findings = Vec::new();
        for (id, why) in &corrupt_snaps {
            let i = push(
                &mut report,
                FindingKind::CorruptSnapshot,
                id.to_string(),
                why.to_string(),
            );
            corrupt_snap_findings.push((i, id.clone()));
        }

        if !repair {
            return Ok(report);
        }
        for (i, path) in temps {
            let r = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            report.findings[i].repaired = r.is_ok();
        }
        for (i, b) in orphan_blobs {
            report.findings[i].repaired = self.content.delete(&b).is_ok();
        }
        for (i, id) in orphan_snaps {
            report.findings[i].repaired = self.snapshots.remove(&id).is_ok();
        }
        // Corrupt blobs and snapshots that no healthy image (nor container) needs.
        let corrupt_blob_idx: Vec<usize> = report
            .findings
            .iter()
            .enumerate()
            .filter(|(_, f)| f.kind == FindingKind::CorruptBlob)
            .map(|(i, _)| i)
            .collect();
        for i in corrupt_blob_idx {
            let Ok(d) = Digest::parse(&report.findings[i].object) else {
                continue;
            };
            if !healthy_needs.contains(&d) {
                report.findings[i].repaired = self.content.delete(&d).is_ok();
            }
        }
        for (i, id) in corrupt_snap_findings {
            if !healthy_needs.contains(&id) && !kept.contains(&id) {
                report.findings[i].repaired = self.snapshots.remove(&id).is_ok();
            }
        }
        // Mark (or clear) broken images, then persist the records.
        let mut changed = false;
        for (id, reason) in &broken {
            if let Some(l) = state.images.get_mut(id) {
                if l.record.broken != *reason {
                    let record = {
                        let mut r = l.record.clone();
                        r.broken = reason.clone();
                        r
                    };
                    *l = self.load_lenient(id, record);
                    changed = true;
                }
            }
        }
        if changed {
            self.persist(&state)?;
        }
        for f in report.findings.iter_mut() {
            if f.kind == FindingKind::BrokenImage {
                f.repaired = state
                    .images
                    .get(&Digest::parse(&f.object).unwrap_or_else(|_| Digest::of(b"")))
                    .is_some_and(|l| l.record.broken.is_some());
            }
        }
        Ok(report)
    }
}
