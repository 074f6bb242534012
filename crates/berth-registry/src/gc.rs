//! Garbage collection, safe while the registry serves pushes and pulls.
//!
//! **Mark**: per repository, the manifests to keep (all of them, or with `delete_untagged`
//! the tagged ones and what they lead to: an index's manifests, the referrers of a kept
//! manifest), and every blob they name. Untagged manifests older than the grace period are
//! deleted. A recent blob link keeps its blob too (a push may be about to use it).
//!
//! **Sweep**: a blob that nothing marked and that is older than the grace period is moved to
//! `_trash/`, then every repository is checked again: if a link to it was written (or
//! touched) since the grace period began, or a manifest revision of it appeared, the bytes
//! are put back; otherwise they are deleted.
//!
//! The other half of the protocol is on the writers' side: whoever links a blob (an upload's
//! end, a mount, a manifest naming it, a client asking for it) writes or touches the link
//! *first* and checks the bytes *after*, taking them back from the trash if needed
//! ([`Registry::ensure_data`]). So either the collector's second look sees the fresh link and
//! keeps the blob, or the writer sees the bytes gone and refuses (or, at the end of an
//! upload, writes them again). The collector deletes trashed bytes only after renaming them
//! once more (`.gone`), so a writer that took them back in between wins. No manifest is
//! ever accepted whose blobs are gone.
//!
//! A collection that dies half-way leaves blobs in the trash; the next one puts them back
//! before it marks.

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::digest::Digest;
use crate::error::Result;
use crate::paths;
use crate::registry::{io_err, parse_link, Registry};
use crate::storage::Driver;

/// How to collect.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Report what would go, change nothing.
    pub dry_run: bool,
    /// Also delete manifests no tag leads to.
    pub delete_untagged: bool,
    /// Nothing written more recently than this is collected. Must exceed
    /// [`crate::registry::TOUCH_AFTER`] for pulls to protect what they found.
    pub grace: Duration,
    /// Uploads begun longer ago than this are abandoned.
    pub upload_ttl: Duration,
    /// Wait this long between marking and sweeping: a window for tests to push into.
    pub pause_after_mark: Duration,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            grace: Duration::from_secs(3600),
            upload_ttl: Duration::from_secs(7 * 24 * 3600),
            pause_after_mark: Duration::ZERO,
        }
    }
}

/// What a collection did (or, dry, would do).
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub blobs_marked: usize,
    /// `repo@digest`
    pub manifests_deleted: Vec<String>,
    pub blobs_deleted: Vec<String>,
    pub bytes_freed: u64,
    pub uploads_removed: usize,
    /// Blobs found in use by a push while being removed, and put back.
    pub blobs_rescued: usize,
}

fn is_recent(t: SystemTime, cutoff: SystemTime) -> bool {
    t >= cutoff
}

impl<D: Driver> Registry<D> {
    /// Digests under a `<alg>/<hex>` directory.
    async fn digests_under(&self, dir: &str) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in self.driver().list(dir).await.map_err(io_err)? {
            for hex in self
                .driver()
                .list(&format!("{dir}/{alg}"))
                .await
                .map_err(io_err)?
            {
                if let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    async fn manifest_json(&self, d: &Digest) -> Option<Value> {
        let b = self.driver().get(&paths::blob_data(d)).await.ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Put back whatever a collection left in the trash.
    async fn restore_trash(&self) -> Result<()> {
        for d in self.digests_under(paths::trash_root()).await? {
            if let Err(e) = self
                .driver()
                .rename(&paths::trash(&d), &paths::blob_data(&d))
                .await
            {
                tracing::warn!("gc: cannot restore {d} from the trash: {e}");
            }
        }
        Ok(())
    }

    /// Whether anything links `d` since `cutoff`, or a manifest revision of it exists.
    async fn freshly_used(&self, repos: &[String], d: &Digest, cutoff: SystemTime) -> Result<bool> {
        for r in repos {
            if let Some(m) = self
                .driver()
                .stat(&paths::layer_link(r, d))
                .await
                .map_err(io_err)?
            {
                if is_recent(m.modified, cutoff) {
                    return Ok(true);
                }
            }
            if self.exists(&paths::revision_link(r, d)).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Collect garbage; see the module's documentation.
    pub async fn gc(&self, o: &GcOptions) -> Result<GcReport> {
        let cutoff = SystemTime::now() - o.grace;
        let mut report = GcReport::default();
        if !o.dry_run {
            self.restore_trash().await?;
        }
        let repos = self.repositories().await?;
        let mut marked: HashSet<Digest> = HashSet::new();

        // ---- mark, and delete untagged manifests
        for repo in &repos {
            let revisions: BTreeSet<Digest> = self
                .digests_under(&paths::revisions_dir(repo))
                .await?
                .into_iter()
                .collect();
            let mut keep: HashSet<Digest> = if o.delete_untagged {
                let mut roots = Vec::new();
                for t in self
                    .driver()
                    .list(&paths::tags_dir(repo))
                    .await
                    .map_err(io_err)?
                {
                    if let Ok(b) = self.driver().get(&paths::tag_link(repo, &t)).await {
                        if let Ok(d) = parse_link(&b) {
                            roots.push(d);
                        }
                    }
                }
                self.closure(repo, roots).await?
            } else {
                revisions.iter().cloned().collect()
            };
            let unkept: Vec<Digest> = revisions
                .iter()
                .filter(|d| !keep.contains(*d))
                .cloned()
                .collect();
            for d in &unkept {
                let link = paths::revision_link(repo, d);
                let recent = match self.driver().stat(&link).await.map_err(io_err)? {
                    Some(m) => is_recent(m.modified, cutoff),
                    None => continue,
                };
                if recent {
                    keep.insert(d.clone());
                    continue;
                }
                report.manifests_deleted.push(format!("{repo}@{d}"));
                if !o.dry_run {
                    self.delete_revision(repo, d, &mut keep).await?;
                }
            }
            for d in &keep {
                marked.insert(d.clone());
                if let Some(v) = self.manifest_json(d).await {
                    if let Some(c) = v.pointer("/config/digest").and_then(Value::as_str) {
                        marked.extend(Digest::parse(c).ok());
                    }
                    for l in v["layers"].as_array().into_iter().flatten() {
                        marked.extend(l["digest"].as_str().and_then(|s| Digest::parse(s).ok()));
                    }
                }
            }
        }

        if !o.pause_after_mark.is_zero() {
            tokio::time::sleep(o.pause_after_mark).await;
        }

        // ---- a recent blob link keeps its blob (a push may be about to name it). Links are
        // never removed: one whose blob is gone answers 404 and is rewritten by the next
        // upload of that blob, and removing it could race with a push that just touched it.
        for repo in &repos {
            for d in self.digests_under(&paths::layers_dir(repo)).await? {
                if marked.contains(&d) {
                    continue;
                }
                if let Some(m) = self
                    .driver()
                    .stat(&paths::layer_link(repo, &d))
                    .await
                    .map_err(io_err)?
                {
                    if is_recent(m.modified, cutoff) {
                        marked.insert(d);
                    }
                }
            }
        }
        report.blobs_marked = marked.len();

        // ---- sweep
        let root = paths::blobs_root();
        for alg in self.driver().list(root).await.map_err(io_err)? {
            for xx in self
                .driver()
                .list(&format!("{root}/{alg}"))
                .await
                .map_err(io_err)?
            {
                for hex in self
                    .driver()
                    .list(&format!("{root}/{alg}/{xx}"))
                    .await
                    .map_err(io_err)?
                {
                    let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) else {
                        continue;
                    };
                    if marked.contains(&d) {
                        continue;
                    }
                    let data = paths::blob_data(&d);
                    let Some(meta) = self.driver().stat(&data).await.map_err(io_err)? else {
                        continue;
                    };
                    if is_recent(meta.modified, cutoff) {
                        continue;
                    }
                    if o.dry_run {
                        report.blobs_deleted.push(d.to_string());
                        report.bytes_freed += meta.size;
                        continue;
                    }
                    let trash = paths::trash(&d);
                    match self.driver().rename(&data, &trash).await {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io_err(e)),
                    }
                    if self.freshly_used(&repos, &d, cutoff).await? {
                        report.blobs_rescued += 1;
                        match self.driver().rename(&trash, &data).await {
                            Ok(()) => {}
                            // a writer took it back already
                            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                            Err(e) => return Err(io_err(e)),
                        }
                        continue;
                    }
                    // claim it for good: a writer that took it back meanwhile wins
                    let gone = format!("{trash}.gone");
                    match self.driver().rename(&trash, &gone).await {
                        Ok(()) => {
                            self.driver().delete(&gone).await.map_err(io_err)?;
                            report.blobs_deleted.push(d.to_string());
                            report.bytes_freed += meta.size;
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            report.blobs_rescued += 1;
                        }
                        Err(e) => return Err(io_err(e)),
                    }
                }
            }
        }

        // ---- abandoned uploads
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        for repo in &repos {
            for id in self
                .driver()
                .list(&paths::uploads_dir(repo))
                .await
                .map_err(io_err)?
            {
                let started = self
                    .driver()
                    .get(&paths::upload_started(repo, &id))
                    .await
                    .ok()
                    .and_then(|b| std::str::from_utf8(&b).ok()?.trim().parse::<u64>().ok());
                if started.is_some_and(|t| now.saturating_sub(t) > o.upload_ttl.as_secs()) {
                    report.uploads_removed += 1;
                    if !o.dry_run {
                        self.driver()
                            .delete(&paths::upload_dir(repo, &id))
                            .await
                            .map_err(io_err)?;
                    }
                }
            }
        }
        Ok(report)
    }

    /// The manifests `roots` lead to in a repository: themselves, an index's manifests, and
    /// the referrers of each.
    async fn closure(&self, repo: &str, roots: Vec<Digest>) -> Result<HashSet<Digest>> {
        let mut keep = HashSet::new();
        let mut todo = roots;
        while let Some(d) = todo.pop() {
            if !keep.insert(d.clone()) {
                continue;
            }
            if let Some(v) = self.manifest_json(&d).await {
                for m in v["manifests"].as_array().into_iter().flatten() {
                    todo.extend(m["digest"].as_str().and_then(|s| Digest::parse(s).ok()));
                }
            }
            todo.extend(self.digests_under(&paths::referrers_dir(repo, &d)).await?);
        }
        Ok(keep)
    }

    /// Delete an untagged manifest revision; if a push tags it meanwhile, put it back.
    async fn delete_revision(
        &self,
        repo: &str,
        d: &Digest,
        keep: &mut HashSet<Digest>,
    ) -> Result<()> {
        let kind = self.driver().get(&paths::revision_type(repo, d)).await.ok();
        let subject = self
            .manifest_json(d)
            .await
            .and_then(|v| Digest::parse(v.pointer("/subject/digest")?.as_str()?).ok());
        self.driver()
            .delete(&paths::revision_dir(repo, d))
            .await
            .map_err(io_err)?;
        if let Some(s) = &subject {
            let link = paths::referrer_link(repo, s, d);
            self.driver()
                .delete(link.trim_end_matches("/link"))
                .await
                .map_err(io_err)?;
        }
        for t in self
            .driver()
            .list(&paths::tags_dir(repo))
            .await
            .map_err(io_err)?
        {
            let tagged = self
                .driver()
                .get(&paths::tag_link(repo, &t))
                .await
                .ok()
                .and_then(|b| parse_link(&b).ok());
            if tagged.as_ref() == Some(d) {
                if let Some(k) = kind {
                    self.driver()
                        .put(&paths::revision_type(repo, d), k)
                        .await
                        .map_err(io_err)?;
                }
                self.driver()
                    .put(&paths::revision_link(repo, d), Bytes::from(d.to_string()))
                    .await
                    .map_err(io_err)?;
                keep.insert(d.clone());
                break;
            }
        }
        Ok(())
    }
}
