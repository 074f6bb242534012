//! What the registry remembers between requests: manifests (immutable for a digest), and for
//! at most [`FRESH`] which tag names which digest and which revisions exist. Local writes
//! update it at once; another replica's writes are seen within [`FRESH`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::digest::Digest;

/// How long a tag's digest or a revision's existence is trusted without looking again.
pub const FRESH: Duration = Duration::from_secs(1);

/// The most manifest bytes kept.
const BUDGET: usize = 32 << 20;

#[derive(Default)]
struct Inner {
    manifests: HashMap<(String, Digest), (String, Bytes)>,
    bytes: usize,
    tags: HashMap<(String, String), (Digest, Instant)>,
    revisions: HashMap<(String, Digest), Instant>,
}

#[derive(Default)]
pub struct Cache(Mutex<Inner>);

impl Cache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn tag(&self, name: &str, tag: &str) -> Option<Digest> {
        let i = self.inner();
        let (d, t) = i.tags.get(&(name.to_string(), tag.to_string()))?;
        (t.elapsed() < FRESH).then(|| d.clone())
    }

    pub fn set_tag(&self, name: &str, tag: &str, d: &Digest) {
        let mut i = self.inner();
        if i.tags.len() > 100_000 {
            i.tags.clear();
        }
        i.tags.insert(
            (name.to_string(), tag.to_string()),
            (d.clone(), Instant::now()),
        );
    }

    pub fn revision(&self, name: &str, d: &Digest) -> bool {
        let i = self.inner();
        i.revisions
            .get(&(name.to_string(), d.clone()))
            .is_some_and(|t| t.elapsed() < FRESH)
    }

    pub fn set_revision(&self, name: &str, d: &Digest) {
        let mut i = self.inner();
        if i.revisions.len() > 100_000 {
            i.revisions.clear();
        }
        i.revisions
            .insert((name.to_string(), d.clone()), Instant::now());
    }

    pub fn manifest(&self, name: &str, d: &Digest) -> Option<(String, Bytes)> {
        self.inner()
            .manifests
            .get(&(name.to_string(), d.clone()))
            .cloned()
    }

    pub fn set_manifest(&self, name: &str, d: &Digest, media_type: &str, body: &Bytes) {
        let mut i = self.inner();
        if body.len() > BUDGET / 16 {
            return;
        }
        if i.bytes + body.len() > BUDGET {
            i.manifests.clear();
            i.bytes = 0;
        }
        i.bytes += body.len();
        i.manifests.insert(
            (name.to_string(), d.clone()),
            (media_type.to_string(), body.clone()),
        );
    }

    /// Forget every tag and revision of a repository (a deletion).
    pub fn forget_repo(&self, name: &str) {
        let mut i = self.inner();
        i.tags.retain(|(n, _), _| n != name);
        i.revisions.retain(|(n, _), _| n != name);
    }
}
