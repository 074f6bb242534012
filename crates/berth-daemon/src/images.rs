//! Images as the API shows them; the daemon's side of the image store.

use crate::{blocking, Daemon};
use berth_api::models::ContainerConfig;
pub use berth_api::types::ImportRequest;
use berth_api::types::{Producer, SaveRequest};
use berth_api::{ApiError, ErrorKind};
use berth_image::{Image, ImageError};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

/// The one mapping of image-store errors onto the API's taxonomy.
pub fn map_err(e: ImageError) -> ApiError {
    let kind = match e.kind() {
        berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
        berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
        berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
        berth_image::ErrorKind::Internal => ErrorKind::Internal,
    };
    ApiError::new(kind, e.to_string())
}

/// The image's runtime defaults in the API's container-config shape.
pub fn image_container_config(image: &Image) -> ContainerConfig {
    image
        .config
        .config
        .as_ref()
        .and_then(|c| serde_json::to_value(c).ok())
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default()
}

const GO_ZERO: &str = "0001-01-01T00:00:00Z";

/// Request bodies are read through a buffer this large: each read from the HTTP side is a
/// hand-off between threads, so few large ones beat many small ones.
pub const BODY_BUF: usize = 1 << 20;

/// Read a request body to its end, so that an answer (an error above all) never races the
/// client still sending: it then sees the daemon's message, not a broken pipe.
pub fn drain(r: &mut dyn Read) {
    let _ = std::io::copy(r, &mut std::io::sink());
}

/// Give the buffers of a large operation (an import streams whole layers) back to the
/// system, so the idle daemon stays small.
pub fn release_memory() {
    // SAFETY: malloc_trim only walks glibc's own heaps; no pointers are involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

impl Daemon {
    /// `POST /images/create?fromSrc=…`: a one-layer image from a tar stream.
    pub async fn import_image(
        self: &Arc<Self>,
        reader: Box<dyn Read + Send>,
        req: ImportRequest,
    ) -> Result<String, ApiError> {
        let images = self.images.clone();
        let d = self.clone();
        blocking(move || {
            let opts = berth_image::ImportOptions {
                reference: req.reference,
                changes: req.changes,
                message: req.message,
                source: req.source,
            };
            let mut reader = std::io::BufReader::with_capacity(BODY_BUF, reader);
            let r = images
                .import(&mut reader, &opts)
                .map(|r| r.id.to_string())
                .map_err(map_err);
            drain(&mut reader);
            release_memory();
            if let Ok(id) = &r {
                d.event("image", "import", id, &[]);
            }
            r
        })
        .await
    }

    /// `GET /images/json`.
    pub fn list_images(&self, all: bool, reference: Option<&str>) -> Vec<Value> {
        let counts = self.all_containers();
        self.images
            .list(all)
            .into_iter()
            .filter_map(|mut s| {
                // as dockerd: an image is listed under the names the pattern matches only
                if let Some(r) = reference {
                    s.repo_tags.retain(|t| reference_matches(r, t));
                    s.repo_digests.retain(|t| reference_matches(r, t));
                    if s.repo_tags.is_empty() && s.repo_digests.is_empty() {
                        return None;
                    }
                }
                Some(s)
            })
            .map(|s| {
                let id = s.id.to_string();
                let used = counts.iter().filter(|c| c.record().image_id == id).count();
                json!({
                    "Id": id,
                    "ParentId": s.parent_id.map(|p| p.to_string()).unwrap_or_default(),
                    "RepoTags": s.repo_tags,
                    "RepoDigests": s.repo_digests,
                    "Created": s.created,
                    "Size": s.size,
                    "VirtualSize": s.size,
                    "SharedSize": -1,
                    "Labels": s.labels,
                    "Containers": used,
                })
            })
            .collect()
    }

    /// `GET /images/{name}/json`.
    pub fn inspect_image(&self, name: &str) -> Result<Value, ApiError> {
        let img = self.images.get(name).map_err(map_err)?;
        let cfg = &img.config;
        let config: Value = cfg
            .config
            .as_ref()
            .and_then(|c| serde_json::to_value(c).ok())
            .unwrap_or(Value::Null);
        let lowers: Vec<String> = self
            .images
            .lower_dirs(&img)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut driver = serde_json::Map::new();
        if let Some((top, rest)) = lowers.split_first() {
            driver.insert("UpperDir".into(), json!(top));
            if !rest.is_empty() {
                driver.insert("LowerDir".into(), json!(rest.join(":")));
            }
        }
        Ok(json!({
            "Id": img.id.to_string(),
            "RepoTags": img.repo_tags,
            "RepoDigests": img.repo_digests,
            "Parent": img.parent.map(|p| p.to_string()).unwrap_or_default(),
            "Comment": cfg.comment.clone().unwrap_or_default(),
            "Created": img.created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "DockerVersion": "",
            "Author": cfg.author.clone().unwrap_or_default(),
            "Config": config,
            "Architecture": cfg.architecture,
            "Os": cfg.os,
            "Size": img.size,
            "VirtualSize": img.size,
            "GraphDriver": { "Name": "overlay2", "Data": driver },
            "RootFS": {
                "Type": cfg.rootfs.kind,
                "Layers": cfg.rootfs.diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            },
            "Metadata": { "LastTagTime": GO_ZERO },
        }))
    }

    /// `GET /images/{name}/history`.
    pub fn image_history(&self, name: &str) -> Result<Value, ApiError> {
        let items = self.images.history(name).map_err(map_err)?;
        Ok(Value::Array(
            items
                .into_iter()
                .map(|h| {
                    json!({
                        "Id": h.id,
                        "Created": h.created,
                        "CreatedBy": h.created_by,
                        "Tags": if h.tags.is_empty() { Value::Null } else { json!(h.tags) },
                        "Size": h.size,
                        "Comment": h.comment,
                    })
                })
                .collect(),
        ))
    }

    /// `POST /images/{name}/tag?repo=…&tag=…`.
    pub fn tag_image(&self, name: &str, repo: &str, tag: &str) -> Result<(), ApiError> {
        if repo.is_empty() {
            return Err(ApiError::invalid(
                "repository name must have at least one component",
            ));
        }
        let target = if tag.is_empty() {
            repo.to_string()
        } else {
            format!("{repo}:{tag}")
        };
        self.images.tag(name, &target).map_err(map_err)?;
        let id = self
            .images
            .get(&target)
            .map(|i| i.id.to_string())
            .unwrap_or_default();
        self.event("image", "tag", &id, &[("name", target)]);
        Ok(())
    }

    /// `DELETE /images/{name}`.
    pub async fn delete_image(
        self: &Arc<Self>,
        name: &str,
        force: bool,
    ) -> Result<Value, ApiError> {
        let d = self.clone();
        let name = name.to_string();
        blocking(move || {
            let users = |id: &str| d.image_users(id);
            let items = d.images.delete(&name, force, &users).map_err(map_err)?;
            for i in &items {
                match i {
                    berth_image::DeleteItem::Untagged(r) => {
                        d.event("image", "untag", r, &[("name", r.clone())])
                    }
                    berth_image::DeleteItem::Deleted(id) => {
                        d.event("image", "delete", &id.to_string(), &[])
                    }
                }
            }
            Ok(Value::Array(delete_items_json(items)))
        })
        .await
    }
}

fn delete_items_json(items: Vec<berth_image::DeleteItem>) -> Vec<Value> {
    items
        .into_iter()
        .map(|i| match i {
            berth_image::DeleteItem::Untagged(r) => json!({ "Untagged": r }),
            berth_image::DeleteItem::Deleted(id) => json!({ "Deleted": id.to_string() }),
        })
        .collect()
}

impl Daemon {
    /// `GET /images/get`: checks every name first (Docker's 404 for an unknown one), then
    /// gives the writer of the archive.
    pub async fn save_images(self: &Arc<Self>, req: SaveRequest) -> Result<Producer, ApiError> {
        for n in &req.names {
            self.images.get(n).map_err(map_err)?;
        }
        let compression = match req.compression.as_deref() {
            None | Some("gzip") => berth_image::LayerCompression::Gzip,
            Some("zstd") => berth_image::LayerCompression::Zstd,
            Some("none") => berth_image::LayerCompression::None,
            Some(other) => {
                return Err(ApiError::invalid(format!(
                    "unknown compression {other:?}: use gzip, zstd or none"
                )))
            }
        };
        let format = if req.oci {
            berth_image::ArchiveFormat::Oci
        } else {
            berth_image::ArchiveFormat::Docker
        };
        let images = self.images.clone();
        Ok(Box::new(move |w| {
            let r = images
                .save(&req.names, format, compression, w)
                .map_err(map_err);
            release_memory();
            r
        }))
    }

    /// `POST /images/load`: Docker's `Loaded image: …` lines.
    pub async fn load_images(
        self: &Arc<Self>,
        reader: Box<dyn Read + Send>,
    ) -> Result<Vec<String>, ApiError> {
        let images = self.images.clone();
        let d = self.clone();
        blocking(move || {
            let mut reader = std::io::BufReader::with_capacity(BODY_BUF, reader);
            let r = images.load(&mut reader).map_err(map_err);
            drain(&mut reader);
            release_memory();
            let loaded = r?;
            for l in &loaded {
                let name = l.reference.clone().unwrap_or_else(|| l.id.to_string());
                d.event("image", "load", &l.id.to_string(), &[("name", name)]);
            }
            Ok(loaded
                .into_iter()
                .map(|l| match l.reference {
                    Some(r) => format!("Loaded image: {r}"),
                    None => format!("Loaded image ID: {}", l.id),
                })
                .collect())
        })
        .await
    }

    /// `POST /images/prune`: dangling images, or with `dangling=false` every image no
    /// container uses.
    pub async fn prune_images(
        self: &Arc<Self>,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Value, ApiError> {
        let mut all = false;
        for (k, v) in &filters {
            match k.as_str() {
                "dangling" => {
                    all = v.iter().any(|x| x == "false" || x == "0");
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "invalid filter '{k}' for image prune"
                    )))
                }
            }
        }
        let containers = self.all_containers();
        let in_use: HashSet<berth_content::Digest> = containers
            .iter()
            .filter_map(|c| berth_content::Digest::parse(&c.record().image_id).ok())
            .collect();
        let keep = self.container_layers();
        let images = self.images.clone();
        blocking(move || {
            let report = images.prune(all, &in_use, &keep).map_err(map_err)?;
            Ok(json!({
                "ImagesDeleted": delete_items_json(report.deleted),
                "SpaceReclaimed": report.space_reclaimed,
            }))
        })
        .await
    }
}

/// `docker images busybox` / `busybox:1.36`: match on the repository, and the tag if given.
/// docker's `reference.FamiliarMatch`: the pattern (Go's `path.Match`: `*` and `?` do not
/// cross `/`) against the familiar reference (`ubuntu:14.04`, `name@sha256:…`), then against
/// its name alone.
fn reference_matches(pattern: &str, reference: &str) -> bool {
    let m = |s: &str| berth_builder::dockerignore::match_name(pattern, s).unwrap_or(false);
    let name = match reference.split_once('@') {
        Some((n, _)) => n,
        None => match reference.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => n,
            _ => reference,
        },
    };
    m(reference) || m(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reference_filter() {
        assert!(super::reference_matches("busybox", "busybox:latest"));
        assert!(super::reference_matches("busybox", "busybox:1"));
        assert!(super::reference_matches("busybox:1", "busybox:1"));
        assert!(!super::reference_matches("busybox:2", "busybox:1"));
        assert!(!super::reference_matches("busy", "busybox:1"));
        assert!(super::reference_matches(
            "localhost:5000/a",
            "localhost:5000/a:t"
        ));
        // Go's path.Match wildcards
        assert!(super::reference_matches("ubuntu:*", "ubuntu:14.04"));
        assert!(super::reference_matches("ubuntu:1*", "ubuntu:14.04"));
        assert!(!super::reference_matches("ubuntu:1*", "ubuntu:latest"));
        assert!(super::reference_matches("ubun*", "ubuntu:14.04"));
        assert!(super::reference_matches("*/*", "ouruser/ubuntu:v1"));
        assert!(!super::reference_matches("*/*", "ubuntu:v1"));
        assert!(!super::reference_matches("*", "ouruser/ubuntu:v1"));
        assert!(super::reference_matches("*:latest", "busybox:latest"));
        assert!(super::reference_matches("busybox", "busybox@sha256:abc"));
    }
}
