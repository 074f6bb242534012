//! Where each layer was pulled from or pushed to, compressed: docker's distribution
//! metadata. The store keeps layers uncompressed, so the registry's blob is not kept, only
//! its descriptor and the repositories that hold it. A push asks those first: a layer the
//! target repository has is not sent again, one that another repository of the same
//! registry has is mounted from it, and only the others are compressed and sent. So a pulled
//! image pushed elsewhere keeps its layers' digests, and a second push compresses nothing.
//!
//! It is a cache: losing it (it is written without an fsync) only costs a compression.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// How many places are kept per layer (the latest first).
const PER_LAYER: usize = 8;

/// A compressed form of a layer, and a repository that has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The compressed blob's descriptor.
    pub digest: String,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    /// The registry's host (`registry-1.docker.io` for Docker Hub) and the repository's path
    /// in it.
    pub registry: String,
    pub repository: String,
}

/// The layer media types a push may name again, as the OCI type its manifest says (a blob
/// is the same bytes whichever manifest names it); None for the others (foreign layers).
pub fn reusable_media_type(t: &str) -> Option<&'static str> {
    match t {
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            Some(berth_image::MEDIA_TYPE_LAYER_GZIP)
        }
        "application/vnd.oci.image.layer.v1.tar+zstd" => Some(berth_image::MEDIA_TYPE_LAYER_ZSTD),
        "application/vnd.oci.image.layer.v1.tar" => Some(berth_image::MEDIA_TYPE_LAYER),
        _ => None,
    }
}

/// diff id → the places its compressed forms are known to be, kept in one JSON file.
#[derive(Debug)]
pub struct Distribution {
    path: PathBuf,
    layers: Mutex<BTreeMap<String, Vec<Source>>>,
}

impl Distribution {
    /// Reads `path`; a missing or unreadable file is an empty record (it is a cache).
    pub fn open(path: &Path) -> Distribution {
        let layers = match std::fs::read(path) {
            Ok(raw) => serde_json::from_slice(&raw).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}; starting it afresh", path.display());
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Distribution {
            path: path.to_path_buf(),
            layers: Mutex::new(layers),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Source>>> {
        self.layers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where layer `diff_id` is known to be, the latest first.
    pub fn sources(&self, diff_id: &str) -> Vec<Source> {
        self.lock().get(diff_id).cloned().unwrap_or_default()
    }

    /// Records that each layer (diff id) is at its source, forgets the layers not in `live`
    /// (the diff ids of the images there are, which it gives once the record is locked, so
    /// that a pull recording its new image meanwhile waits and is not forgotten), and writes
    /// the file if that changed it. Sources of media types a push could not name again are
    /// not kept.
    pub fn record(
        &self,
        found: Vec<(String, Source)>,
        live: impl FnOnce() -> std::collections::HashSet<String>,
    ) -> std::io::Result<()> {
        let mut layers = self.lock();
        let before = layers.clone();
        for (diff_id, s) in found {
            if reusable_media_type(&s.media_type).is_none() {
                continue;
            }
            let list = layers.entry(diff_id).or_default();
            list.retain(|o| {
                (&o.digest, &o.registry, &o.repository) != (&s.digest, &s.registry, &s.repository)
            });
            list.insert(0, s);
            list.truncate(PER_LAYER);
        }
        let live = live();
        layers.retain(|d, _| live.contains(d));
        if *layers == before {
            return Ok(());
        }
        self.write(&layers)
    }

    fn write(&self, layers: &BTreeMap<String, Vec<Source>>) -> std::io::Result<()> {
        let raw = serde_json::to_vec(layers).map_err(std::io::Error::other)?;
        crate::fsutil::write_replace(&self.path, &raw)
    }
}

impl crate::Daemon {
    /// Records where a pull found, or a push put, an image's layers, and forgets the layers
    /// no image has any more (on a blocking thread). A failure is only logged: the record is
    /// a cache.
    pub(crate) async fn remember_layers(self: &std::sync::Arc<Self>, found: Vec<(String, Source)>) {
        let d = self.clone();
        let _ = crate::blocking(move || {
            d.record_layers(found);
            Ok(())
        })
        .await;
    }

    /// The same, here and now.
    pub(crate) fn record_layers(&self, found: Vec<(String, Source)>) {
        let live = || {
            self.images
                .list(true)
                .iter()
                .filter_map(|i| self.images.get(&i.id.to_string()).ok())
                .flat_map(|i| {
                    i.config
                        .rootfs
                        .diff_ids
                        .iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        if let Err(e) = self.distribution.record(found, live) {
            tracing::warn!("the layers' distribution record: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(digest: &str, repo: &str, media: &str) -> Source {
        Source {
            digest: digest.into(),
            media_type: media.into(),
            size: 1,
            registry: "r:5000".into(),
            repository: repo.into(),
        }
    }

    #[test]
    fn keeps_the_latest_first_once_each_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("distribution.json");
        let d = Distribution::open(&path);
        let gz = "application/vnd.docker.image.rootfs.diff.tar.gzip";
        let all = || ["sha256:a", "sha256:b"].map(String::from).into();
        d.record(
            vec![
                ("sha256:a".into(), src("sha256:1", "x", gz)),
                ("sha256:a".into(), src("sha256:1", "y", gz)),
                ("sha256:a".into(), src("sha256:1", "x", gz)),
                // a foreign layer cannot be named by a push: not kept
                (
                    "sha256:b".into(),
                    src(
                        "sha256:2",
                        "x",
                        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                    ),
                ),
            ],
            all,
        )
        .unwrap();
        let repos = |d: &Distribution| -> Vec<String> {
            d.sources("sha256:a")
                .into_iter()
                .map(|s| s.repository)
                .collect()
        };
        assert_eq!(repos(&d), ["x", "y"]);
        assert!(d.sources("sha256:b").is_empty());
        let again = Distribution::open(&path);
        assert_eq!(repos(&again), ["x", "y"]);
        for i in 0..20 {
            again
                .record(
                    vec![("sha256:a".into(), src("sha256:1", &format!("r{i}"), gz))],
                    all,
                )
                .unwrap();
        }
        let r = repos(&again);
        assert_eq!(r.len(), PER_LAYER);
        assert_eq!(r[0], "r19");
        // a layer no image has any more is forgotten, on disk too
        let modified = || std::fs::metadata(&path).unwrap().modified().unwrap();
        again
            .record(vec![], || ["sha256:b".to_string()].into())
            .unwrap();
        assert!(Distribution::open(&path).sources("sha256:a").is_empty());
        // and a record that changes nothing is not written again
        let before = modified();
        std::thread::sleep(std::time::Duration::from_millis(20));
        again
            .record(vec![], || ["sha256:b".to_string()].into())
            .unwrap();
        assert_eq!(modified(), before);
        // a torn file is a fresh start, not an error
        std::fs::write(&path, b"{\"sha256:a\": [").unwrap();
        assert!(Distribution::open(&path).sources("sha256:a").is_empty());
    }

    #[test]
    fn docker_gzip_layers_are_named_as_oci_ones() {
        assert_eq!(
            reusable_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some("application/vnd.oci.image.layer.v1.tar+gzip")
        );
        assert_eq!(
            reusable_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some("application/vnd.oci.image.layer.v1.tar+zstd")
        );
        assert_eq!(
            reusable_media_type("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"),
            None
        );
    }
}
