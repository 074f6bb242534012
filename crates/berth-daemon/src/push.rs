//! `docker push` with `oci-client`: each layer the registry has already, or can mount from
//! another of its repositories, is named again (distribution.rs keeps where the layers were
//! pulled from and pushed to); the others are compressed with gzip and sent; then the config
//! and an OCI manifest.

use std::sync::Arc;

use berth_api::ApiError;
use berth_image::{Descriptor, Digest, Reference};
use futures_util::TryStreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use serde_json::json;

use crate::distribution::{reusable_media_type, Source};
use crate::pull::{insecure, registry_error, Progress, Remote, TagOrDigest};
use crate::{blocking, Daemon};

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

        let img = self.images.get(&local).map_err(crate::images::map_err)?;
        let id = img.id.to_string();
        let repo = r.path().to_string();
        let what = r.familiar();
        let diff_ids = img.config.rootfs.diff_ids.clone();

        // The layers the registry has, or can mount, in a compressed form a pull or a push
        // left on record; the others are compressed (in parallel) and sent.
        let mut layers: Vec<Option<Descriptor>> = Vec::with_capacity(diff_ids.len());
        for (i, diff) in diff_ids.iter().enumerate() {
            let known = match diff_ids[..i].iter().position(|d| d == diff) {
                Some(j) => layers[j].clone(),
                None => {
                    self.layer_in_registry(&remote, &host, &repo, diff, &progress)
                        .await
                }
            };
            layers.push(known);
        }
        let mut missing: Vec<Digest> = Vec::new();
        for (diff, known) in diff_ids.iter().zip(&layers) {
            if known.is_none() && !missing.contains(diff) {
                missing.push(diff.clone());
            }
        }
        for diff in &missing {
            progress
                .send(json!({"status": "Preparing", "progressDetail": {}, "id": crate::pull::short_id(&diff.to_string())}))
                .await;
        }
        let compressed = if missing.is_empty() {
            Default::default()
        } else {
            let (images, id, wanted) = (self.images.clone(), id.clone(), missing.clone());
            blocking(move || {
                images
                    .compress_layers_of(&id, &wanted, berth_image::LayerCompression::Gzip)
                    .map_err(crate::images::map_err)
            })
            .await?
        };
        for diff in &missing {
            let c = compressed
                .get(diff)
                .ok_or_else(|| ApiError::internal(format!("layer {diff} was not compressed")))?;
            let digest = c.digest.to_string();
            // (docker names a layer by its diff id in a push's messages)
            let diff_str = diff.to_string();
            let short = crate::pull::short_id(&diff_str);
            // (a registry that refuses the check gets the blob anyway)
            let exists = remote
                .client
                .blob_exists(&remote.reference, &digest)
                .await
                .unwrap_or(false);
            if exists {
                progress
                    .send(json!({"status": "Layer already exists", "progressDetail": {}, "id": short}))
                    .await;
            } else {
                let file = c
                    .file
                    .reopen()
                    .map_err(|e| ApiError::internal(format!("compressed layer: {e}")))?;
                let stream = tokio_util::io::ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    1 << 20,
                )
                .map_err(oci_client::errors::OciDistributionError::IoError);
                remote
                    .client
                    .push_blob_stream(&remote.reference, stream, &digest)
                    .await
                    .map_err(|e| push_error(&what, e))?;
                progress
                    .send(json!({"status": "Pushed", "progressDetail": {}, "id": short}))
                    .await;
            }
            let desc = Descriptor {
                media_type: berth_image::MEDIA_TYPE_LAYER_GZIP.into(),
                digest: c.digest.clone(),
                size: c.size,
            };
            for (d, known) in diff_ids.iter().zip(layers.iter_mut()) {
                if d == diff {
                    *known = Some(desc.clone());
                }
            }
        }
        let layers: Vec<Descriptor> = layers.into_iter().flatten().collect();

        // The config, as the store keeps it (its digest is the image's id), then the manifest.
        let exists = remote
            .client
            .blob_exists(&remote.reference, &id)
            .await
            .unwrap_or(false);
        if !exists {
            remote
                .client
                .push_blob(&remote.reference, img.raw_config.clone(), &id)
                .await
                .map_err(|e| push_error(&what, e))?;
        }
        let manifest = berth_image::Manifest {
            schema_version: 2,
            media_type: Some(berth_image::MEDIA_TYPE_MANIFEST.into()),
            config: Descriptor {
                media_type: berth_image::MEDIA_TYPE_CONFIG.into(),
                digest: img.id.clone(),
                size: img.raw_config.len() as u64,
            },
            layers: layers.clone(),
        };
        let manifest_raw = serde_json::to_vec(&manifest)
            .map_err(|e| ApiError::internal(format!("manifest: {e}")))?;
        let mdigest = Digest::of(&manifest_raw).to_string();
        let content_type = berth_image::MEDIA_TYPE_MANIFEST
            .parse()
            .map_err(|_| ApiError::internal("bad media type"))?;
        remote
            .client
            .push_manifest_raw(&remote.reference, manifest_raw.clone(), content_type)
            .await
            .map_err(|e| push_error(&what, e))?;
        self.remember_layers(
            diff_ids
                .iter()
                .zip(&layers)
                .map(|(diff, l)| {
                    (
                        diff.to_string(),
                        Source {
                            digest: l.digest.to_string(),
                            media_type: l.media_type.clone(),
                            size: l.size,
                            registry: host.clone(),
                            repository: repo.clone(),
                        },
                    )
                })
                .collect(),
        )
        .await;
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

    /// A compressed form of layer `diff` that the registry has in `repo`, or that it could
    /// mount there from another of its repositories: the digests a pull or a push left on
    /// record, asked of the target repository first (a digest is the same blob in any
    /// registry), then mounted from the repositories of the same registry known to have them.
    async fn layer_in_registry(
        &self,
        remote: &Remote,
        host: &str,
        repo: &str,
        diff: &Digest,
        progress: &Progress,
    ) -> Option<Descriptor> {
        let mut sources = self.distribution.sources(&diff.to_string());
        // this repository's first, then this registry's, then other registries' (each
        // group the latest first)
        sources.sort_by_key(|s| (s.registry != host, s.repository != repo));
        let desc = |s: &Source| -> Option<Descriptor> {
            Some(Descriptor {
                media_type: reusable_media_type(&s.media_type)?.into(),
                digest: s.digest.parse().ok()?,
                size: s.size,
            })
        };
        let mut asked: Vec<&str> = Vec::new();
        for s in &sources {
            let Some(d) = desc(s) else { continue };
            if asked.contains(&s.digest.as_str()) {
                continue;
            }
            asked.push(&s.digest);
            if remote
                .client
                .blob_exists(&remote.reference, &s.digest)
                .await
                .unwrap_or(false)
            {
                progress
                    .send(json!({"status": "Layer already exists", "progressDetail": {}, "id": crate::pull::short_id(&diff.to_string())}))
                    .await;
                return Some(d);
            }
        }
        for s in sources
            .iter()
            .filter(|s| s.registry == host && s.repository != repo)
        {
            let Some(d) = desc(s) else { continue };
            let from = oci_client::Reference::with_digest(
                host.to_string(),
                s.repository.clone(),
                s.digest.clone(),
            );
            // (a registry that does not let this client read `from` starts an upload
            // instead, which fails the mount: the layer is then sent)
            if remote
                .client
                .mount_blob(&remote.reference, &from, &s.digest)
                .await
                .is_ok()
            {
                progress
                    .send(json!({"status": format!("Mounted from {}", s.repository), "progressDetail": {}, "id": crate::pull::short_id(&diff.to_string())}))
                    .await;
                return Some(d);
            }
        }
        None
    }
}
