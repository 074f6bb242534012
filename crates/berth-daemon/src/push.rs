//! `docker push`: an image written by the store's own `save` as an OCI layout with gzip
//! layers (so its blobs' digests are known before they are sent), then its blobs and its
//! manifest uploaded with `oci-client`. Blobs the registry has already are not sent again.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_api::ApiError;
use berth_image::Reference;
use futures_util::TryStreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use serde_json::{json, Value};

use crate::pull::{insecure, registry_error, Progress, Remote, TagOrDigest};
use crate::{blocking, Daemon};

/// A temporary directory under the data root, removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn read_json(path: &Path) -> Result<Value, ApiError> {
    let raw =
        std::fs::read(path).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
    serde_json::from_slice(&raw).map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))
}

fn blob_path(dir: &Path, digest: &str) -> Result<PathBuf, ApiError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| berth_content::is_sha256_hex(h))
        .ok_or_else(|| ApiError::internal(format!("unsupported digest {digest:?}")))?;
    Ok(dir.join("blobs/sha256").join(hex))
}

/// A failed upload, in docker's words when the registry refused it.
fn push_error(what: &str, e: oci_client::errors::OciDistributionError) -> ApiError {
    if crate::pull::is_auth_failure(&e) {
        return ApiError::internal("denied: requested access to the resource is denied");
    }
    registry_error(what, e)
}

impl Daemon {
    /// `POST /images/{name}/push?tag=…`: the progress messages of docker's JSON stream.
    pub async fn push_image(
        self: &Arc<Self>,
        name: &str,
        tag: Option<&str>,
        auth: RegistryAuth,
        progress: Progress,
    ) -> Result<(), ApiError> {
        let full = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{name}:{t}"),
            None => name.to_string(),
        };
        let r = Reference::parse(&full)
            .map_err(|e| ApiError::invalid(format!("invalid reference format: {e}")))?;
        let r = if r.tag().is_none() {
            r.with_default_tag()
        } else {
            r
        };
        let Some(tag) = r.tag().map(str::to_string) else {
            return Err(ApiError::invalid("a digest cannot be pushed to"));
        };
        let local = r.to_string();
        if self.images.get(&local).is_err() {
            return Err(ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                r.familiar_name()
            )));
        }
        let host = if r.domain() == "docker.io" {
            "registry-1.docker.io".to_string()
        } else {
            r.domain().to_string()
        };
        // From here on errors come in the stream, after this first message.
        progress
            .send(json!({
                "status": format!("The push refers to repository [{}]", r.name()),
            }))
            .await;
        let plain = insecure(&host, &self.config.insecure_registries);
        let remote = Remote::connect(
            &host,
            r.path(),
            &TagOrDigest::Tag(tag.clone()),
            &auth,
            plain,
            RegistryOperation::Push,
        )
        .await?;

        // The image as an OCI layout: gzip layers, their digests in its manifest.
        let dir = TempDir(
            crate::layout::push_tmp(&self.config.data_root)
                .join(format!("{:016x}", rand::random::<u64>())),
        );
        let (images, d) = (self.images.clone(), dir.0.clone());
        let names = vec![local.clone()];
        blocking(move || {
            std::fs::create_dir_all(&d)
                .map_err(|e| ApiError::internal(format!("{}: {e}", d.display())))?;
            let (rd, wr) = std::io::pipe().map_err(|e| ApiError::internal(format!("pipe: {e}")))?;
            let unpack_dir = d.clone();
            let unpack = std::thread::spawn(move || tar::Archive::new(rd).unpack(&unpack_dir));
            let saved = images.save(
                &names,
                berth_image::ArchiveFormat::Oci,
                berth_image::LayerCompression::Gzip,
                wr,
            );
            let unpacked = unpack
                .join()
                .map_err(|_| ApiError::internal("unpacking the layout panicked"))?;
            saved.map_err(crate::images::map_err)?;
            unpacked.map_err(|e| ApiError::internal(format!("unpacking the layout: {e}")))
        })
        .await?;
        let index = read_json(&dir.0.join("index.json"))?;
        let mdesc = index["manifests"]
            .get(0)
            .ok_or_else(|| ApiError::internal("the saved layout has no manifest"))?;
        let mdigest = mdesc["digest"].as_str().unwrap_or_default().to_string();
        let mpath = blob_path(&dir.0, &mdigest)?;
        let manifest_raw = std::fs::read(&mpath)
            .map_err(|e| ApiError::internal(format!("{}: {e}", mpath.display())))?;
        let manifest: Value = serde_json::from_slice(&manifest_raw)
            .map_err(|e| ApiError::internal(format!("manifest: {e}")))?;
        let media_type = manifest["mediaType"]
            .as_str()
            .unwrap_or("application/vnd.oci.image.manifest.v1+json")
            .to_string();

        let what = r.familiar();
        let mut blobs: Vec<(String, bool)> = manifest["layers"]
            .as_array()
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| l["digest"].as_str())
                    .map(|d| (d.to_string(), true))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(c) = manifest["config"]["digest"].as_str() {
            blobs.push((c.to_string(), false));
        }
        for (digest, is_layer) in &blobs {
            let short = crate::pull::short_id(digest);
            // (a registry that refuses the check gets the blob anyway)
            let exists = remote
                .client
                .blob_exists(&remote.reference, digest)
                .await
                .unwrap_or(false);
            if exists {
                if *is_layer {
                    progress
                        .send(json!({"status": "Layer already exists", "progressDetail": {}, "id": short}))
                        .await;
                }
                continue;
            }
            if *is_layer {
                progress
                    .send(json!({"status": "Preparing", "progressDetail": {}, "id": short}))
                    .await;
            }
            let path = blob_path(&dir.0, digest)?;
            let file = tokio::fs::File::open(&path)
                .await
                .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
            let stream = tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)
                .map_err(oci_client::errors::OciDistributionError::IoError);
            remote
                .client
                .push_blob_stream(&remote.reference, stream, digest)
                .await
                .map_err(|e| push_error(&what, e))?;
            if *is_layer {
                progress
                    .send(json!({"status": "Pushed", "progressDetail": {}, "id": short}))
                    .await;
            }
        }
        let content_type = media_type
            .parse()
            .map_err(|_| ApiError::internal(format!("bad media type {media_type:?}")))?;
        remote
            .client
            .push_manifest_raw(&remote.reference, manifest_raw.clone(), content_type)
            .await
            .map_err(|e| push_error(&what, e))?;
        progress
            .send(json!({
                "status": format!("{tag}: digest: {mdigest} size: {}", manifest_raw.len()),
            }))
            .await;
        // as after a pull, the image knows its digest in that repository
        let _ = self
            .images
            .add_repo_digest(&local, &format!("{}@{mdigest}", r.name()));
        self.event("image", "push", &local, &[("name", local.clone())]);
        Ok(())
    }
}
