//! `docker pull`: an image's manifest, config and layers fetched from a registry (the
//! `oci-client` crate: the v2 protocol, its token and basic auth), then loaded by the image
//! store's archive loader from an OCI image layout streamed to it on the fly. The loader
//! verifies every digest, unpacks each layer as it arrives and stores nothing unless all of
//! it is right, as with `docker load`.

use std::sync::Arc;

use base64::Engine;
use berth_api::ApiError;
use berth_image::Reference;
use futures_util::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, RegistryOperation};
use serde_json::{json, Value};
use sha2::Digest as _;
use tokio::io::AsyncWriteExt;

use crate::Daemon;

/// Docker Hub's registry, for `docker.io` names.
const DOCKER_HUB: &str = "registry-1.docker.io";

/// The manifest types a pull accepts.
const ACCEPT: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The largest manifest accepted (docker's limit). oci-client reads a manifest whole before
/// it can be measured, so a hostile registry can make one pull read more than this.
const MAX_MANIFEST: usize = 4 << 20;

/// The largest image config read (docker's limit), checked while it streams.
const MAX_CONFIG: u64 = 8 << 20;

/// Credentials from a client's `X-Registry-Auth` header (base64url JSON, as docker sends it).
pub fn registry_auth(header: Option<&str>) -> RegistryAuth {
    let Some(h) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return RegistryAuth::Anonymous;
    };
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(h)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(h));
    let Ok(v) = raw.map(|r| serde_json::from_slice::<Value>(&r).unwrap_or(Value::Null)) else {
        return RegistryAuth::Anonymous;
    };
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    // (`identitytoken`, an OAuth2 refresh token some registries hand out at login, is not
    // used: oci-client has no refresh-token flow)
    match (s("username"), s("password"), s("registrytoken")) {
        (u, p, _) if !u.is_empty() => RegistryAuth::Basic(u, p),
        (_, _, t) if !t.is_empty() => RegistryAuth::Bearer(t),
        _ => RegistryAuth::Anonymous,
    }
}

/// Whether a registry host may be reached over plain HTTP: loopback, or listed in
/// daemon.json `insecure-registries` (as `host[:port]`, exactly, or by a CIDR holding its
/// address).
pub(crate) fn insecure(host: &str, listed: &[String]) -> bool {
    let name = host
        .rsplit_once(':')
        .filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if name == "localhost" {
        return true;
    }
    let ip = name.parse::<std::net::IpAddr>().ok();
    if ip.is_some_and(|ip| ip.is_loopback()) {
        return true;
    }
    listed.iter().any(|l| {
        l == host
            || match (l.parse::<ipnet::IpNet>(), ip) {
                (Ok(net), Some(ip)) => net.contains(&ip),
                _ => false,
            }
    })
}

/// A client that reaches `host` over HTTPS, or HTTP for `plain`.
fn client(host: &str, plain: bool) -> Client {
    Client::new(ClientConfig {
        protocol: if plain {
            ClientProtocol::HttpsExcept(vec![host.to_string()])
        } else {
            ClientProtocol::Https
        },
        connect_timeout: Some(std::time::Duration::from_secs(15)),
        // a registry that stops sending mid-layer ends the pull rather than hanging it
        read_timeout: Some(std::time::Duration::from_secs(120)),
        ..Default::default()
    })
}

/// The error a failed registry request becomes, in docker's words where it has some.
pub(crate) fn registry_error(what: &str, e: oci_client::errors::OciDistributionError) -> ApiError {
    use oci_client::errors::OciDistributionError as E;
    match &e {
        E::ImageManifestNotFoundError(_) => {
            ApiError::not_found(format!("manifest for {what} not found: manifest unknown"))
        }
        _ if is_auth_failure(&e) => ApiError::not_found(format!(
            "pull access denied for {what}, repository does not exist or may require 'docker login': {}",
            with_causes(&e)
        )),
        E::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|x| matches!(x.code, oci_client::errors::OciErrorCode::ManifestUnknown)) =>
        {
            ApiError::not_found(format!("manifest for {what} not found: manifest unknown"))
        }
        _ => ApiError::internal(format!("{what}: {}", with_causes(&e))),
    }
}

/// An error and its causes, `a: b: c` (reqwest's own message leaves out why a request
/// failed: "connection refused" is a cause).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// One registry, chosen and authenticated for a repository.
pub(crate) struct Remote {
    pub(crate) client: Client,
    pub(crate) reference: oci_client::Reference,
    auth: RegistryAuth,
    /// The bearer token the registry gave for the operation, if it gave one.
    token: Option<String>,
    /// Reached over plain HTTP (an insecure registry whose HTTPS failed).
    pub(crate) plain: bool,
}

impl Remote {
    /// Reach `host` for `repo` (HTTPS; a registry that may be insecure falls back to HTTP
    /// when HTTPS fails, as docker does), authenticated for `op`.
    pub(crate) async fn connect(
        host: &str,
        repo: &str,
        tag_or_digest: &TagOrDigest,
        auth: &RegistryAuth,
        plain_ok: bool,
        op: RegistryOperation,
    ) -> Result<Remote, ApiError> {
        let reference = match tag_or_digest {
            TagOrDigest::Tag(t) => {
                oci_client::Reference::with_tag(host.to_string(), repo.to_string(), t.clone())
            }
            TagOrDigest::Digest(d) => {
                oci_client::Reference::with_digest(host.to_string(), repo.to_string(), d.clone())
            }
        };
        let c = client(host, false);
        let first = c.auth(&reference, auth, op).await;
        match first {
            Ok(token) => Ok(Remote {
                client: c,
                reference,
                auth: auth.clone(),
                token,
                plain: false,
            }),
            Err(e) if plain_ok && !is_auth_failure(&e) => {
                let c = client(host, true);
                match c.auth(&reference, auth, op).await {
                    Ok(token) => Ok(Remote {
                        client: c,
                        reference,
                        auth: auth.clone(),
                        token,
                        plain: true,
                    }),
                    Err(e2) => Err(registry_error(&format!("{host}/{repo}"), e2)),
                }
            }
            // a registry that answered in plain HTTP: docker's words for it (and its cure,
            // daemon.json's insecure-registries, is what users search for)
            Err(e) if with_causes(&e).contains("InvalidContentType") => {
                Err(ApiError::internal(format!(
                    "Get \"https://{host}/v2/\": http: server gave HTTP response to HTTPS client"
                )))
            }
            Err(e) => Err(registry_error(&format!("{host}/{repo}"), e)),
        }
    }
}

impl Remote {
    /// `GET /v2/<repo>/manifests/<reference>`, read as it comes and refused past
    /// `MAX_MANIFEST` (oci-client's pull reads a manifest whole before anything can check its
    /// size, so a hostile registry could fill the daemon's memory): its bytes and digest,
    /// checked against the one the registry gives.
    async fn manifest(
        &self,
        reference: &str,
        accept: &[&str],
        what: &str,
    ) -> Result<(bytes::Bytes, String), ApiError> {
        let http = crate::login::http_client()?;
        let scheme = if self.plain { "http" } else { "https" };
        let url = format!(
            "{scheme}://{}/v2/{}/manifests/{reference}",
            self.reference.registry(),
            self.reference.repository()
        );
        let request = |basic: bool| {
            let req = http
                .get(&url)
                .header(reqwest::header::ACCEPT, accept.join(", "));
            match (&self.token, &self.auth) {
                (Some(t), _) | (None, RegistryAuth::Bearer(t)) => req.bearer_auth(t),
                (None, RegistryAuth::Basic(u, p)) if basic => req.basic_auth(u, Some(p)),
                _ => req,
            }
        };
        let failed = |e: reqwest::Error| ApiError::internal(format!("{what}: {}", with_causes(&e)));
        let mut resp = request(false).send().await.map_err(failed)?;
        // credentials go only where the registry asks for them, as docker sends them
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED
            && crate::login::Challenge::of(&resp).is("basic")
            && matches!(self.auth, RegistryAuth::Basic(..))
        {
            resp = request(true).send().await.map_err(failed)?;
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        use crate::login::BodyError;
        let body = crate::login::body_within(resp, MAX_MANIFEST)
            .await
            .map_err(|e| match e {
                BodyError::TooBig => ApiError::internal(format!(
                    "manifest for {what}: over the {MAX_MANIFEST} bytes accepted"
                )),
                BodyError::Failed(e) => failed(e),
            })?;
        if !status.is_success() {
            return Err(manifest_error(what, status, &body));
        }
        let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&body)));
        if let Some(given) = headers
            .get("Docker-Content-Digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| d.starts_with("sha256:"))
        {
            if given != actual {
                return Err(ApiError::internal(format!(
                    "manifest verification failed for digest {given}"
                )));
            }
        }
        Ok((body.into(), actual))
    }
}

/// A registry's refusal of a manifest, in docker's words: its error code as docker shows one
/// (`manifest unknown: …`), after what docker says of it.
fn manifest_error(what: &str, status: reqwest::StatusCode, body: &[u8]) -> ApiError {
    let first = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("errors")?.as_array()?.first().cloned());
    let s = |k: &str| {
        first
            .as_ref()
            .and_then(|e| e.get(k)?.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let (code, message) = (s("code"), s("message"));
    let cause = if code.is_empty() {
        status.to_string()
    } else {
        format!("{}: {message}", code.to_lowercase().replace('_', " "))
    };
    // the name without its tag or digest
    let name = match what.split_once('@') {
        Some((n, _)) => n,
        None => match what.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => n,
            _ => what,
        },
    };
    match (status.as_u16(), code.as_str()) {
        (401 | 403, _) | (_, "UNAUTHORIZED" | "DENIED") => ApiError::not_found(format!(
            "pull access denied for {name}, repository does not exist or may require 'docker login': {cause}"
        )),
        (_, "NAME_UNKNOWN") => ApiError::not_found(format!("repository {name} not found: {cause}")),
        (404, _) | (_, "MANIFEST_UNKNOWN") => {
            ApiError::not_found(format!("manifest for {what} not found: {cause}"))
        }
        _ => ApiError::internal(cause),
    }
}

/// A registry's refusal of the credentials (or of their absence).
pub(crate) fn is_auth_failure(e: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    use oci_client::errors::OciErrorCode as C;
    match e {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => true,
        E::ServerError { code, .. } => *code == 401 || *code == 403,
        E::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|x| matches!(x.code, C::Unauthorized | C::Denied)),
        _ => false,
    }
}

pub(crate) enum TagOrDigest {
    Tag(String),
    Digest(String),
}

/// What an index or a manifest holds, as far as a pull needs it.
#[derive(serde::Deserialize)]
struct Manifest {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
}

#[derive(serde::Deserialize, Clone)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(serde::Deserialize, Clone)]
struct Platform {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
}

fn is_index(m: &Manifest) -> bool {
    m.manifests.is_some()
        || m.media_type
            .as_deref()
            .is_some_and(|t| ACCEPT[..2].contains(&t))
}

/// The digest a descriptor names, checked to be a sha256 (the only kind the store keeps).
fn sha256_hex(d: &str) -> Result<&str, ApiError> {
    d.strip_prefix("sha256:")
        .filter(|h| berth_content::is_sha256_hex(h))
        .ok_or_else(|| ApiError::internal(format!("unsupported digest {d:?}")))
}

/// A tar header for a regular file of `size` bytes at `path`.
fn tar_header(path: &str, size: u64) -> Result<[u8; 512], ApiError> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)
        .map_err(|e| ApiError::internal(format!("tar path {path}: {e}")))?;
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(*h.as_bytes())
}

/// Zeroes that pad a tar entry of `size` bytes to its block.
fn tar_padding(size: u64) -> &'static [u8] {
    const ZEROES: [u8; 512] = [0; 512];
    let rem = (size % 512) as usize;
    if rem == 0 {
        &[]
    } else {
        &ZEROES[..512 - rem]
    }
}

impl Daemon {
    /// `POST /images/create?fromImage=…&tag=…`: the progress messages of docker's JSON stream.
    pub async fn pull_image(
        self: &Arc<Self>,
        image: &str,
        tag: Option<&str>,
        auth: RegistryAuth,
        progress: Progress,
    ) -> Result<(), ApiError> {
        let full = match tag.filter(|t| !t.is_empty()) {
            Some(t) if t.starts_with("sha256:") => format!("{image}@{t}"),
            Some(t) => format!("{image}:{t}"),
            None => image.to_string(),
        };
        let r = Reference::parse(&full)
            .map_err(|e| ApiError::invalid(format!("invalid reference format: {e}")))?;
        let r = if r.digest().is_none() && r.tag().is_none() {
            r.with_default_tag()
        } else {
            r
        };
        let (tag_or_digest, shown) = match (r.digest(), r.tag()) {
            (Some(d), _) => (TagOrDigest::Digest(d.to_string()), d.to_string()),
            (None, Some(t)) => (TagOrDigest::Tag(t.to_string()), t.to_string()),
            (None, None) => unreachable!("a default tag was added"),
        };
        let name = r.name();
        let familiar = r.familiar_name();
        // Docker Hub's names go to its mirrors first, then to the Hub itself.
        let mut hosts: Vec<(String, bool, bool)> = Vec::new();
        if r.domain() == "docker.io" {
            for m in &self.config.registry_mirrors {
                let plain = m.starts_with("http://");
                let host = m
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
                    .trim_end_matches('/')
                    .to_string();
                hosts.push((host, plain, true));
            }
            hosts.push((DOCKER_HUB.to_string(), false, false));
        } else {
            let plain = insecure(r.domain(), &self.config.insecure_registries);
            hosts.push((r.domain().to_string(), plain, false));
        }
        let mut last_err = None;
        for (host, plain, is_mirror) in hosts {
            let remote = match Remote::connect(
                &host,
                r.path(),
                &tag_or_digest,
                &auth,
                plain,
                RegistryOperation::Pull,
            )
            .await
            {
                Ok(remote) => remote,
                Err(e) if is_mirror => {
                    last_err = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            match self
                .pull_from(&remote, &r, &shown, &familiar, &progress)
                .await
            {
                Ok(()) => return Ok(()),
                // a mirror that lacks the image or fails: the next one, then the Hub
                Err(e) if is_mirror => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| ApiError::internal(format!("no registry for {name}"))))
    }

    async fn pull_from(
        self: &Arc<Self>,
        remote: &Remote,
        r: &Reference,
        shown: &str,
        familiar: &str,
        progress: &Progress,
    ) -> Result<(), ApiError> {
        let what = if shown.starts_with("sha256:") {
            format!("{familiar}@{shown}")
        } else {
            format!("{familiar}:{shown}")
        };
        let top_ref = remote
            .reference
            .digest()
            .or(remote.reference.tag())
            .unwrap_or("latest")
            .to_string();
        let (top, top_digest) = remote.manifest(&top_ref, &ACCEPT, &what).await?;
        check_manifest(&top, &top_digest, r)?;
        // From here on errors come in the stream, after this first message.
        progress
            .send(json!({"status": format!("Pulling from {}", r.path()), "id": shown}))
            .await;
        let parsed: Manifest = serde_json::from_slice(&top)
            .map_err(|e| ApiError::internal(format!("manifest {top_digest}: {e}")))?;
        let mut blobs_json: Vec<(String, bytes::Bytes)> = vec![(top_digest.clone(), top.clone())];
        // (what index.json will say the top manifest is)
        let top_media_type = parsed.media_type.clone().unwrap_or_else(|| {
            if parsed.manifests.is_some() {
                ACCEPT[0]
            } else {
                ACCEPT[2]
            }
            .to_string()
        });
        let manifest = if is_index(&parsed) {
            let arch = berth_image::host_arch();
            let list = parsed.manifests.unwrap_or_default();
            let pick = list
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == "linux" && p.architecture == arch)
                })
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no matching manifest for linux/{arch} in the manifest list entries"
                    ))
                })?;
            let (child, child_digest) = remote.manifest(&pick.digest, &ACCEPT[2..], &what).await?;
            if child_digest != pick.digest {
                return Err(ApiError::internal(format!(
                    "manifest {} has digest {child_digest}",
                    pick.digest
                )));
            }
            check_size(&child)?;
            blobs_json.push((child_digest, child.clone()));
            serde_json::from_slice::<Manifest>(&child)
                .map_err(|e| ApiError::internal(format!("manifest {}: {e}", pick.digest)))?
        } else {
            parsed
        };
        let config = manifest
            .config
            .clone()
            .ok_or_else(|| ApiError::internal("the image manifest has no config"))?;
        let layers = manifest.layers.clone().unwrap_or_default();
        // An image the store has already: tag it, fetch nothing more.
        let id = format!("sha256:{}", sha256_hex(&config.digest)?);
        let reference = r.to_string();
        let repo_digest = format!("{}@{top_digest}", r.name());
        if let Ok(existing) = self.images.get(&id) {
            // Nothing to fetch. As docker says it: up to date if the name already meant this
            // image, downloaded if it now does.
            let named = if r.tag().is_some() {
                &reference
            } else {
                &repo_digest
            };
            let current = self.images.get(named).is_ok_and(|i| i.id.to_string() == id);
            if r.tag().is_some() {
                self.images
                    .tag(&existing.id.to_string(), &reference)
                    .map_err(crate::images::map_err)?;
            }
            self.images
                .add_repo_digest(&id, &repo_digest)
                .map_err(crate::images::map_err)?;
            let status = if current {
                format!("Status: Image is up to date for {}", r.familiar())
            } else {
                format!("Status: Downloaded newer image for {}", r.familiar())
            };
            let mut msgs: Vec<Value> = layers
                .iter()
                .map(|l| {
                    json!({"status": "Already exists", "progressDetail": {}, "id": short_id(&l.digest)})
                })
                .collect();
            if current {
                msgs.clear();
            }
            msgs.push(json!({"status": format!("Digest: {top_digest}")}));
            msgs.push(json!({ "status": status }));
            for m in msgs {
                progress.send(m).await;
            }
            // (the layers were not fetched, so nothing says the manifest's are this image's:
            // they are not recorded)
            return Ok(());
        }
        // The config (small, and capped while it streams), then the layers streamed into the
        // loader.
        if config.size > MAX_CONFIG {
            return Err(ApiError::internal(format!(
                "the image config is {} bytes, over the {MAX_CONFIG} bytes accepted",
                config.size
            )));
        }
        let mut cfg = Vec::with_capacity(config.size as usize);
        let mut s = remote
            .client
            .pull_blob_stream(&remote.reference, config.digest.as_str())
            .await
            .map_err(|e| registry_error(&what, e))?;
        while let Some(chunk) = s.try_next().await.map_err(|e| {
            ApiError::internal(format!("config {}: {}", config.digest, with_causes(&e)))
        })? {
            if (cfg.len() + chunk.len()) as u64 > config.size {
                return Err(ApiError::internal(format!(
                    "config {}: more than its {} bytes",
                    config.digest, config.size
                )));
            }
            cfg.extend_from_slice(&chunk);
        }
        blobs_json.push((config.digest.clone(), cfg.into()));

        // The name the loader tags the image with: only a pull by tag names one (the loader
        // would tag a bare name `latest`).
        let mut desc = json!({
            "mediaType": top_media_type,
            "digest": top_digest,
            "size": top.len(),
        });
        if let Some(t) = r.tag() {
            desc["annotations"] =
                json!({ "io.containerd.image.name": format!("{}:{t}", r.name()) });
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [desc],
        });
        let index = serde_json::to_vec(&index).map_err(|e| ApiError::internal(e.to_string()))?;

        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        // The loader and what goes with a loaded image (its digest in the repository, the
        // record of its layers, the event) run on a thread of their own, which a cancelled
        // pull does not stop: the image comes with all of that, or not at all. A pull
        // cancelled before the archive's end ends the loader's input early, which `Whole`
        // makes an error, so nothing is stored.
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = {
            let (d, done) = (self.clone(), done.clone());
            let (id, repo_digest, reference) = (id.clone(), repo_digest.clone(), reference.clone());
            let (layers, registry, repository) = (
                layers.clone(),
                remote.reference.registry().to_string(),
                remote.reference.repository().to_string(),
            );
            tokio::task::spawn_blocking(move || {
                let reader = Whole {
                    inner: tokio_util::io::SyncIoBridge::new(rx),
                    done,
                };
                let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
                let loaded = d.images.load(&mut reader)?;
                d.images.add_repo_digest(&id, &repo_digest)?;
                d.record_pulled(&id, &layers, &registry, &repository);
                if !loaded.is_empty() {
                    d.event("image", "pull", &reference, &[("name", reference.clone())]);
                }
                Ok::<_, berth_image::ImageError>(loaded)
            })
        };
        // Writes to the pipe fail when the loader has stopped reading (it failed): its own
        // error is the one to tell, so these are kept apart from the registry's.
        let pipe_broke = std::sync::atomic::AtomicBool::new(false);
        let feed = async {
            let io = |e: std::io::Error| {
                pipe_broke.store(true, std::sync::atomic::Ordering::Relaxed);
                ApiError::internal(format!("pull: {e}"))
            };
            let mut small: Vec<(String, &[u8])> = vec![
                ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
                ("index.json".into(), &index),
            ];
            for (digest, data) in &blobs_json {
                small.push((format!("blobs/sha256/{}", sha256_hex(digest)?), data));
            }
            for (path, data) in small {
                tx.write_all(&tar_header(&path, data.len() as u64)?)
                    .await
                    .map_err(io)?;
                tx.write_all(data).await.map_err(io)?;
                tx.write_all(tar_padding(data.len() as u64))
                    .await
                    .map_err(io)?;
            }
            for l in &layers {
                progress
                    .send(json!({"status": "Pulling fs layer", "progressDetail": {}, "id": short_id(&l.digest)}))
                    .await;
            }
            for l in &layers {
                let path = format!("blobs/sha256/{}", sha256_hex(&l.digest)?);
                tx.write_all(&tar_header(&path, l.size)?)
                    .await
                    .map_err(io)?;
                let mut s = remote
                    .client
                    .pull_blob_stream(&remote.reference, l.digest.as_str())
                    .await
                    .map_err(|e| registry_error(&what, e))?;
                let mut n = 0u64;
                let mut shown = Shown::new();
                while let Some(chunk) = s
                    .try_next()
                    .await
                    .map_err(|e| ApiError::internal(format!("layer {}: {e}", l.digest)))?
                {
                    n += chunk.len() as u64;
                    if n > l.size {
                        return Err(ApiError::internal(format!(
                            "layer {}: more than its {} bytes",
                            l.digest, l.size
                        )));
                    }
                    tx.write_all(&chunk).await.map_err(io)?;
                    if let Some(m) = shown.progress("Downloading", &l.digest, n, l.size) {
                        progress.send(m).await;
                    }
                }
                if n != l.size {
                    return Err(ApiError::internal(format!(
                        "layer {}: {n} bytes, not {}",
                        l.digest, l.size
                    )));
                }
                tx.write_all(tar_padding(l.size)).await.map_err(io)?;
                for status in ["Download complete", "Pull complete"] {
                    progress
                        .send(json!({"status": status, "progressDetail": {}, "id": short_id(&l.digest)}))
                        .await;
                }
            }
            tx.write_all(&[0u8; 1024]).await.map_err(io)?;
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            tx.shutdown().await.map_err(io)?;
            Ok::<(), ApiError>(())
        };
        let fed = feed.await;
        // The loader sees the end of its stream either way: a feed that stopped early drops
        // the pipe's writer here, and the loader, finding the archive cut short, stores
        // nothing.
        drop(tx);
        let loaded = load.await.map_err(|e| ApiError::internal(e.to_string()))?;
        match (fed, loaded) {
            (Err(e), _) if !pipe_broke.load(std::sync::atomic::Ordering::Relaxed) => return Err(e),
            (_, Err(e)) => return Err(crate::images::map_err(e)),
            (Err(e), Ok(_)) => return Err(e),
            (Ok(()), Ok(_)) => {}
        }
        progress
            .send(json!({"status": format!("Digest: {top_digest}")}))
            .await;
        progress
            .send(json!({"status": format!("Status: Downloaded newer image for {}", r.familiar())}))
            .await;
        Ok(())
    }
}

/// The loader's input: the pipe the pull feeds, whose end is an error unless the feed wrote
/// the archive to its end (a cancelled pull drops the pipe's writer at any point, even
/// between two entries, where a tar reader would take the end for the archive's).
struct Whole<R> {
    inner: R,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl<R: std::io::Read> std::io::Read for Whole<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() && !self.done.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the pull was cut short",
            ));
        }
        Ok(n)
    }
}

impl Daemon {
    /// Records that image `id`'s layers are, compressed, the manifest's `layers` in the
    /// repository pulled from (what a push of it reuses).
    fn record_pulled(&self, id: &str, layers: &[Descriptor], registry: &str, repository: &str) {
        let Ok(img) = self.images.get(id) else {
            return;
        };
        let diffs = &img.config.rootfs.diff_ids;
        if diffs.len() != layers.len() {
            return;
        }
        let found = diffs
            .iter()
            .zip(layers)
            .filter_map(|(d, l)| {
                Some((
                    d.to_string(),
                    crate::distribution::Source {
                        digest: l.digest.clone(),
                        media_type: l.media_type.clone()?,
                        size: l.size,
                        registry: registry.to_string(),
                        repository: repository.to_string(),
                    },
                ))
            })
            .collect();
        self.record_layers(found);
    }
}

/// The 12 hex digits docker shows of a layer's digest.
pub(crate) fn short_id(digest: &str) -> &str {
    let hex = digest.trim_start_matches("sha256:");
    hex.get(..12).unwrap_or(hex)
}

/// Where a pull or a push tells its progress: docker's JSON messages, to the client as they
/// come. (A client that hangs up cancels the work: the server drops it.)
pub struct Progress(pub tokio::sync::mpsc::Sender<Value>);

impl Progress {
    pub async fn send(&self, v: Value) {
        let _ = self.0.send(v).await;
    }
}

/// How often a transfer's progress is told, as dockerd's progress reader does.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// When a transfer's progress was last told.
pub(crate) struct Shown(std::time::Instant);

impl Shown {
    pub(crate) fn new() -> Shown {
        Shown(std::time::Instant::now())
    }

    /// Docker's progress message for `current` of `total` bytes of `digest`'s blob, if the
    /// last one was long enough ago (or this is the last).
    pub(crate) fn progress(
        &mut self,
        status: &str,
        digest: &str,
        current: u64,
        total: u64,
    ) -> Option<Value> {
        if current < total && self.0.elapsed() < PROGRESS_EVERY {
            return None;
        }
        self.0 = std::time::Instant::now();
        Some(json!({
            "status": status,
            "progressDetail": {"current": current, "total": total},
            "progress": berth_api::units::progress_string(current, total, 200),
            "id": short_id(digest),
        }))
    }
}

fn check_size(b: &[u8]) -> Result<(), ApiError> {
    if b.len() > MAX_MANIFEST {
        return Err(ApiError::internal(format!(
            "a manifest of {} bytes is over the {MAX_MANIFEST} bytes accepted",
            b.len()
        )));
    }
    Ok(())
}

/// The manifest's size, and its digest against the one asked for.
fn check_manifest(b: &[u8], digest: &str, r: &Reference) -> Result<(), ApiError> {
    check_size(b)?;
    let actual = format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)));
    if let Some(want) = r.digest() {
        if want.to_string() != actual {
            return Err(ApiError::internal(format!(
                "manifest verification failed for digest {want}"
            )));
        }
    }
    if digest.starts_with("sha256:") && digest != actual {
        return Err(ApiError::internal(format!(
            "manifest verification failed for digest {digest}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_listed_registries_may_be_plain_http() {
        let listed = vec![
            "reg.example:5000".to_string(),
            "10.1.0.0/16".to_string(),
            "other.example".to_string(),
        ];
        for h in [
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
            "reg.example:5000",
            "10.1.2.3:443",
        ] {
            assert!(insecure(h, &listed), "{h}");
        }
        for h in [
            "reg.example:5001",
            "10.2.0.1:5000",
            "example.com",
            "other.example:5000",
        ] {
            assert!(!insecure(h, &listed), "{h}");
        }
    }

    #[test]
    fn registry_auth_reads_docker_headers() {
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE.encode(s);
        assert!(matches!(registry_auth(None), RegistryAuth::Anonymous));
        assert!(matches!(
            registry_auth(Some(&b64(r#"{"username":"u","password":"p"}"#))),
            RegistryAuth::Basic(u, p) if u == "u" && p == "p"
        ));
        assert!(matches!(
            registry_auth(Some(&b64(r#"{"registrytoken":"t"}"#))),
            RegistryAuth::Bearer(t) if t == "t"
        ));
        // a refresh token is not a bearer token
        assert!(matches!(
            registry_auth(Some(&b64(r#"{"identitytoken":"t"}"#))),
            RegistryAuth::Anonymous
        ));
        assert!(matches!(
            registry_auth(Some("%%%")),
            RegistryAuth::Anonymous
        ));
    }

    #[test]
    fn registry_refusals_read_as_dockers() {
        let err = |status: u16, body: &str, what: &str| {
            super::manifest_error(
                what,
                reqwest::StatusCode::from_u16(status).unwrap(),
                body.as_bytes(),
            )
            .message
        };
        assert_eq!(
            err(
                404,
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
                "r:5000/a:1"
            ),
            "manifest for r:5000/a:1 not found: manifest unknown: manifest unknown"
        );
        assert_eq!(
            err(
                404,
                r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
                "r:5000/a:1"
            ),
            "repository r:5000/a not found: name unknown: repository name not known to registry"
        );
        assert_eq!(
            err(401, r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#, "a@sha256:00"),
            "pull access denied for a, repository does not exist or may require 'docker login': unauthorized: authentication required"
        );
        assert_eq!(
            err(
                429,
                r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#,
                "a:1"
            ),
            "toomanyrequests: You have reached your pull rate limit."
        );
        assert_eq!(err(500, "oops", "a:1"), "500 Internal Server Error");
    }

    #[test]
    fn tar_entries_are_whole_blocks() {
        let h = tar_header("blobs/sha256/ab", 700).unwrap();
        let header = tar::Header::from_byte_slice(&h);
        assert_eq!(header.size().unwrap(), 700);
        assert_eq!(700 + tar_padding(700).len(), 1024);
        assert!(tar_padding(1024).is_empty());
    }
}
