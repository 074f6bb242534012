//! `docker push` with `oci-client`: each layer the registry has already, or can mount from
//! another of its repositories, is named again (distribution.rs keeps where the layers were
//! pulled from and pushed to); the others are compressed with gzip and sent; then the config
//! and an OCI manifest.

use std::collections::HashMap;
use std::sync::Arc;

use berth_api::ApiError;
use berth_image::{Descriptor, Digest, Reference};
use futures_util::TryStreamExt;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use serde_json::json;

use crate::distribution::{reusable_media_type, Source};
use crate::login::Challenge;
use crate::pull::{insecure, registry_error, short_id, Progress, Remote, Shown, TagOrDigest};
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
        let mut distinct: Vec<&Digest> = Vec::new();
        for d in &diff_ids {
            if !distinct.contains(&d) {
                distinct.push(d);
            }
        }
        for d in &distinct {
            progress
                .send(json!({"status": "Preparing", "progressDetail": {}, "id": short_id(&d.to_string())}))
                .await;
        }

        // The layers the registry has, or can mount, in a compressed form a pull or a push
        // left on record; the others are compressed (in parallel) and sent. Each is recorded
        // as soon as the repository has it, so that a push that fails later is not all to do
        // again.
        let mut found: HashMap<&Digest, Descriptor> = HashMap::new();
        for d in &distinct {
            if let Some(desc) = self
                .layer_in_registry(&remote, &auth, &host, &repo, d, &progress)
                .await
            {
                self.remember_pushed(d, &desc, &host, &repo).await;
                found.insert(d, desc);
            }
        }
        let missing: Vec<Digest> = distinct
            .iter()
            .filter(|d| !found.contains_key(*d))
            .map(|d| (*d).clone())
            .collect();
        let compressed = if missing.is_empty() {
            HashMap::new()
        } else {
            let dir = crate::layout::push_tmp(&self.config.data_root);
            let (images, id, wanted) = (self.images.clone(), id.clone(), missing.clone());
            blocking(move || {
                std::fs::create_dir_all(&dir)
                    .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
                images
                    .compress_layers_of(&id, &wanted, berth_image::LayerCompression::Gzip, &dir)
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
            let short = short_id(&diff_str);
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
                // (told as it is read: a message that finds the queue full is skipped)
                let (tx, total, mut sent, mut shown) =
                    (progress.0.clone(), c.size, 0u64, Shown::new());
                let id = diff_str.clone();
                let stream = tokio_util::io::ReaderStream::with_capacity(
                    tokio::fs::File::from_std(file),
                    1 << 20,
                )
                .inspect_ok(move |b| {
                    sent += b.len() as u64;
                    if let Some(m) = shown.progress("Pushing", &id, sent, total) {
                        let _ = tx.try_send(m);
                    }
                })
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
            self.remember_pushed(diff, &desc, &host, &repo).await;
            found.insert(diff, desc);
        }
        drop(compressed);
        let layers = diff_ids
            .iter()
            .map(|d| {
                found
                    .get(d)
                    .cloned()
                    .ok_or_else(|| ApiError::internal(format!("layer {d} was not pushed")))
            })
            .collect::<Result<Vec<Descriptor>, ApiError>>()?;

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
            layers,
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

    /// Records that the registry's repository `repo` has layer `diff` as `desc`.
    async fn remember_pushed(
        self: &Arc<Self>,
        diff: &Digest,
        desc: &Descriptor,
        host: &str,
        repo: &str,
    ) {
        let s = Source {
            digest: desc.digest.to_string(),
            media_type: desc.media_type.clone(),
            size: desc.size,
            registry: host.to_string(),
            repository: repo.to_string(),
        };
        self.remember_layers(vec![(diff.to_string(), s)]).await;
    }

    /// A compressed form of layer `diff` that the registry has in `repo`, or that it
    /// mounted there from another of its repositories: the digests a pull or a push left on
    /// record, asked of the target repository first (a digest is the same blob in any
    /// registry), then mounted from the repositories of the same registry known to have
    /// them. At most docker's 5 checks and 3 mounts.
    async fn layer_in_registry(
        &self,
        remote: &Remote,
        auth: &RegistryAuth,
        host: &str,
        repo: &str,
        diff: &Digest,
        progress: &Progress,
    ) -> Option<Descriptor> {
        let id = diff.to_string();
        let mut sources = self.distribution.sources(&id);
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
            if asked.len() == MAX_CHECKS {
                break;
            }
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
                    .send(json!({"status": "Layer already exists", "progressDetail": {}, "id": short_id(&id)}))
                    .await;
                return Some(d);
            }
        }
        let mounts = sources
            .iter()
            .filter(|s| s.registry == host && s.repository != repo)
            .take(MAX_MOUNTS);
        for s in mounts {
            let Some(d) = desc(s) else { continue };
            if mount_blob(remote, auth, repo, &s.repository, &s.digest).await {
                progress
                    .send(json!({"status": format!("Mounted from {}", s.repository), "progressDetail": {}, "id": short_id(&id)}))
                    .await;
                return Some(d);
            }
        }
        None
    }
}

/// How many recorded digests a push asks the registry about, and how many mounts it tries,
/// per layer (docker's numbers).
const MAX_CHECKS: usize = 5;
const MAX_MOUNTS: usize = 3;

/// `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<from>`: whether the registry mounted
/// the blob. (oci-client's own mount sends its token for the target repository alone, which a
/// token registry refuses for `from`: this asks for a token with both scopes, as docker does.)
/// A registry that will not mount starts an upload instead (202), which is cancelled.
async fn mount_blob(
    remote: &Remote,
    auth: &RegistryAuth,
    repo: &str,
    from: &str,
    digest: &str,
) -> bool {
    let Ok(http) = crate::login::http_client() else {
        return false;
    };
    let scheme = if remote.plain { "http" } else { "https" };
    let base = format!("{scheme}://{}", remote.reference.registry());
    let url = format!("{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}");
    let send = |authz: Option<&str>| {
        let mut req = http.post(&url).header(reqwest::header::CONTENT_LENGTH, "0");
        if let Some(a) = authz {
            req = req.header(reqwest::header::AUTHORIZATION, a);
        }
        req.send()
    };
    let Ok(mut resp) = send(None).await else {
        return false;
    };
    let mut authz = None;
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
        let challenge = Challenge::of(&resp);
        let scopes = [
            format!("repository:{repo}:pull,push"),
            format!("repository:{from}:pull"),
        ];
        authz = authorization(&http, &challenge, auth, &scopes).await;
        let Some(a) = authz.as_deref() else {
            return false;
        };
        let Ok(r) = send(Some(a)).await else {
            return false;
        };
        resp = r;
    }
    match resp.status() {
        reqwest::StatusCode::CREATED => true,
        reqwest::StatusCode::ACCEPTED => {
            // an upload it started instead: cancelled
            if let Some(loc) = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            {
                let loc = if loc.starts_with('/') {
                    format!("{base}{loc}")
                } else {
                    loc.to_string()
                };
                let mut req = http.delete(&loc);
                if let Some(a) = authz.as_deref() {
                    req = req.header(reqwest::header::AUTHORIZATION, a);
                }
                let _ = req.send().await;
            }
            false
        }
        _ => false,
    }
}

/// The `Authorization` a registry's challenge asks for: the basic credentials, or a token
/// from its bearer realm for `scopes` (got with the credentials, or without for an anonymous
/// client).
async fn authorization(
    http: &reqwest::Client,
    challenge: &Challenge,
    auth: &RegistryAuth,
    scopes: &[String],
) -> Option<String> {
    use base64::Engine;
    if challenge.is("basic") {
        return match auth {
            RegistryAuth::Basic(u, p) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )),
            _ => None,
        };
    }
    if !challenge.is("bearer") {
        return None;
    }
    if let RegistryAuth::Bearer(t) = auth {
        return Some(format!("Bearer {t}"));
    }
    let realm = challenge.get("realm")?;
    let mut q: Vec<(&str, String)> = Vec::new();
    if let Some(s) = challenge.get("service") {
        q.push(("service", s));
    }
    for s in scopes {
        q.push(("scope", s.clone()));
    }
    let mut req = http.get(&realm).query(&q);
    if let RegistryAuth::Basic(u, p) = auth {
        req = req.basic_auth(u, Some(p));
    }
    let resp = req.send().await.ok()?.error_for_status().ok()?;
    let body = crate::login::body_within(resp, crate::login::MAX_REGISTRY_JSON)
        .await
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    let token = v["token"].as_str().or_else(|| v["access_token"].as_str())?;
    Some(format!("Bearer {token}"))
}
