//! What the engine holds on disk, and how to give it back: `system df`, `container prune`,
//! and berth's `system check`.

use crate::container::Status;
use crate::images::map_err;
use crate::{blocking, Daemon};
use berth_api::ApiError;
/// Bytes a tree occupies on disk, as `du` counts them (the image store's own measure).
use berth_image::disk_bytes_of as disk_bytes;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// `label=k`, `label=k=v`, `label!=…` and `until=` of Docker's prune filters.
pub(crate) fn prune_match(
    filters: &HashMap<String, Vec<String>>,
    labels: &HashMap<String, String>,
    created: chrono::DateTime<chrono::Utc>,
) -> Result<bool, ApiError> {
    for (k, vals) in filters {
        for v in vals {
            let ok = match k.as_str() {
                "label" | "label!" => {
                    let has = match v.split_once('=') {
                        Some((lk, lv)) => labels.get(lk).map(|x| x == lv).unwrap_or(false),
                        None => labels.contains_key(v.as_str()),
                    };
                    has == (k == "label")
                }
                "until" => {
                    let t = berth_api::types::parse_timestamp(v)?
                        .ok_or_else(|| ApiError::invalid(format!("invalid until: {v}")))?;
                    created.timestamp() < t as i64
                }
                other => {
                    return Err(ApiError::invalid(format!(
                        "invalid filter '{other}' for prune"
                    )))
                }
            };
            if !ok {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

impl Daemon {
    /// Unmount the scratch mounts a crashed daemon may have left (`layout::scratch_mount`).
    pub(crate) fn unmount_scratch(&self) {
        let dir = self.config.exec_root.join("mounts");
        let Ok(rd) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in rd.flatten() {
            let _ = berth_snapshot::unmount(&e.path());
            let _ = std::fs::remove_dir(e.path());
        }
    }

    /// `POST /containers/prune`: every container that is not running.
    pub async fn prune_containers(
        self: &Arc<Self>,
        filters: HashMap<String, Vec<String>>,
    ) -> Result<Value, ApiError> {
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        for c in self.all_containers() {
            let rec = c.record();
            if rec.state.status.is_live() || rec.state.status == Status::Removing {
                continue;
            }
            let labels = rec.config.labels.clone().unwrap_or_default();
            if !prune_match(&filters, &labels, rec.created)? {
                continue;
            }
            let dir = self.container_dir(&c.id);
            let size = blocking(move || Ok(disk_bytes(&dir.join("rw")))).await?;
            match self.remove_container(&c.id, false, false).await {
                Ok(()) => {
                    deleted.push(c.id.clone());
                    reclaimed += size;
                }
                Err(e) => tracing::warn!(id = %c.id, "prune: {e}"),
            }
        }
        Ok(json!({ "ContainersDeleted": deleted, "SpaceReclaimed": reclaimed }))
    }

    /// A container's writable layer as dockerd sizes it (its files' lengths), and that plus
    /// its image's size.
    pub fn container_size(&self, name: &str) -> Result<(i64, i64), ApiError> {
        let c = self.container(name)?;
        let rec = c.record();
        let rw = crate::fsutil::files_size(&self.container_dir(&rec.id).join("rw/upper"));
        let image = self.images.get(&rec.image_id).map(|i| i.size).unwrap_or(0);
        Ok((rw as i64, (rw + image) as i64))
    }

    /// `GET /system/df`. Sizes are what the files occupy on disk, as `du` counts them: the
    /// image store's content, layers and records (`LayersSize`), and each container's
    /// directory (its writable layer, and also its logs and records, which Docker leaves out).
    pub async fn disk_usage(self: &Arc<Self>) -> Result<Value, ApiError> {
        let images = self.images.clone();
        let du = blocking(move || images.disk_usage().map_err(map_err)).await?;
        // `list_images` already counts each image's containers.
        let list = self.list_images(true, None);
        let images_json: Vec<Value> = list
            .into_iter()
            .map(|mut i| {
                let id = i["Id"].as_str().unwrap_or_default().to_string();
                if let Some(u) = du.images.iter().find(|u| u.id.to_string() == id) {
                    i["SharedSize"] = json!(u.shared_size);
                    i["Size"] = json!(u.size);
                    i["VirtualSize"] = json!(u.size);
                }
                i
            })
            .collect();
        let opts = berth_api::types::ListOptions {
            all: true,
            ..Default::default()
        };
        let summaries = self.list_containers(&opts)?;
        let mut containers_json = Vec::new();
        for s in summaries {
            let id = s.id.clone().unwrap_or_default();
            let dir = self.container_dir(&id);
            let total = blocking(move || Ok(disk_bytes(&dir))).await?;
            let mut v = serde_json::to_value(&s).unwrap_or(Value::Null);
            v["SizeRw"] = json!(total);
            v["SizeRootFs"] = json!(total + image_size(&v, &images_json));
            containers_json.push(v);
        }
        let d = self.clone();
        let volumes_json = blocking(move || Ok(d.volumes_usage())).await?;
        Ok(json!({
            "LayersSize": du.layers_size,
            "Images": images_json,
            "Containers": containers_json,
            "Volumes": volumes_json,
            "BuildCache": [],
        }))
    }

    /// `POST /system/check`: the image store's report, plus containers whose layers are gone.
    pub async fn system_check(self: &Arc<Self>, repair: bool) -> Result<Value, ApiError> {
        let keep = self.container_layers();
        let images = self.images.clone();
        let report = blocking(move || images.check(&keep, repair).map_err(map_err)).await?;
        let mut v = serde_json::to_value(&report)
            .map_err(|e| ApiError::internal(format!("check report: {e}")))?;
        let mut broken = Vec::new();
        for c in self.all_containers() {
            let rec = c.record();
            for l in self.layer_dirs(&rec) {
                if !l.exists() {
                    broken.push(
                        json!({ "container": c.id, "missing_layer": l.display().to_string() }),
                    );
                }
            }
        }
        v["broken_containers"] = json!(broken);
        Ok(v)
    }
}

/// The size of the container's image, from the images listed (for `SizeRootFs`).
fn image_size(container: &Value, images: &[Value]) -> u64 {
    let id = container["ImageID"].as_str().unwrap_or_default();
    images
        .iter()
        .find(|i| i["Id"].as_str() == Some(id))
        .and_then(|i| i["Size"].as_u64())
        .unwrap_or(0)
}
