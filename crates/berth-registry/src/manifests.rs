//! Manifests, tags, the catalog and referrers: the registry's logic past blobs.

use bytes::Bytes;
use serde_json::Value;

use crate::digest::{Algorithm, Digest};
use crate::error::{Code, RegistryError, Result};
use crate::names::Reference;
use crate::paths;
use crate::registry::{io_err, manifest_unknown, parse_link, Registry};
use crate::storage::Driver;

/// The media types of manifests the registry stores and serves.
pub mod media {
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
}

/// The largest manifest accepted (the spec asks registries to take at least 4 MiB).
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

/// A descriptor in a manifest or index, as far as the registry checks it.
fn descriptor_digest(v: &Value, what: &str) -> Result<Digest> {
    let invalid = |m: String| RegistryError::new(Code::ManifestInvalid, m);
    let d = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what}: descriptor without a digest")))?;
    if !v.get("size").is_some_and(Value::is_u64) {
        return Err(invalid(format!("{what}: descriptor without a size")));
    }
    if !v.get("mediaType").is_some_and(Value::is_string) {
        return Err(invalid(format!("{what}: descriptor without a mediaType")));
    }
    Digest::parse(d).map_err(|e| invalid(format!("{what}: {e}")))
}

/// A parsed manifest: what must exist before it is accepted, and its subject.
struct ManifestInfo {
    media_type: String,
    blobs: Vec<Digest>,
    manifests: Vec<Digest>,
    subject: Option<Digest>,
}

fn inspect_manifest(content_type: &str, body: &[u8]) -> Result<ManifestInfo> {
    let invalid = |m: &str| RegistryError::new(Code::ManifestInvalid, m.to_string());
    let v: Value = serde_json::from_slice(body).map_err(|e| invalid(&format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| invalid("not a JSON object"))?;
    if obj.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let body_type = obj.get("mediaType").and_then(Value::as_str);
    if let Some(bt) = body_type {
        if !ct.is_empty() && bt != ct {
            return Err(invalid(&format!(
                "mediaType {bt} does not match Content-Type {ct}"
            )));
        }
    }
    let media_type = match (body_type, ct) {
        (Some(bt), _) => bt.to_string(),
        (None, ct) if !ct.is_empty() => ct.to_string(),
        // neither: an OCI manifest or index tells itself apart by its fields
        (None, _) if obj.contains_key("manifests") => media::OCI_INDEX.to_string(),
        (None, _) => media::OCI_MANIFEST.to_string(),
    };
    let mut info = ManifestInfo {
        media_type,
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject: None,
    };
    let is_index = matches!(
        info.media_type.as_str(),
        media::OCI_INDEX | media::DOCKER_LIST
    );
    let is_manifest = matches!(
        info.media_type.as_str(),
        media::OCI_MANIFEST | media::DOCKER_MANIFEST
    );
    if !is_index && !is_manifest {
        return Err(invalid(&format!(
            "unsupported manifest media type {:?}",
            info.media_type
        )));
    }
    if is_index {
        let list = obj
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an index needs a manifests list"))?;
        for m in list {
            info.manifests.push(descriptor_digest(m, "manifests")?);
        }
    } else {
        let config = obj
            .get("config")
            .ok_or_else(|| invalid("a manifest needs a config"))?;
        info.blobs.push(descriptor_digest(config, "config")?);
        let layers = obj
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("a manifest needs a layers list"))?;
        for l in layers {
            let d = descriptor_digest(l, "layers")?;
            // foreign layers (with urls) live elsewhere
            let foreign = l
                .get("urls")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if !foreign {
                info.blobs.push(d);
            }
        }
    }
    if let Some(s) = obj.get("subject") {
        info.subject = Some(descriptor_digest(s, "subject")?);
    }
    Ok(info)
}

/// A stored manifest as served.
pub struct Manifest {
    pub digest: Digest,
    pub media_type: String,
    pub body: Bytes,
}

/// The most entries one page of tags or of the catalog holds, whatever `n` asks for (a huge
/// `n` must not make the registry list everything in one go: CVE-2023-2253).
pub const MAX_PAGE: usize = 1000;

/// A page of a sorted list: the entries after `last`, at most `n` (capped at [`MAX_PAGE`]),
/// and whether more follow.
fn page(all: Vec<String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let n = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let mut rest = all
        .into_iter()
        .filter(|t| last.is_none_or(|l| t.as_str() > l));
    let out: Vec<String> = rest.by_ref().take(n).collect();
    let more = rest.next().is_some();
    (out, more)
}

impl<D: Driver> Registry<D> {
    /// Whether a repository exists (holds anything).
    pub async fn repo_exists(&self, name: &str) -> Result<bool> {
        Ok(!self
            .driver()
            .list(&paths::repo(name))
            .await
            .map_err(io_err)?
            .is_empty())
    }

    async fn read_link(&self, key: &str) -> Result<Option<Digest>> {
        match self.driver().get(key).await {
            Ok(b) => parse_link(&b).map(Some).map_err(io_err),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(e)),
        }
    }

    /// The digest a reference names in a repository.
    pub async fn resolve(&self, name: &str, r: &Reference) -> Result<Digest> {
        let d = match r {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => match self.cache.tag(name, t) {
                Some(d) => d,
                None => {
                    let d = self
                        .read_link(&paths::tag_link(name, t))
                        .await?
                        .ok_or_else(|| manifest_unknown(t))?;
                    self.cache.set_tag(name, t, &d);
                    d
                }
            },
        };
        if !self.cache.revision(name, &d) {
            if !self.exists(&paths::revision_link(name, &d)).await? {
                return Err(manifest_unknown(&d));
            }
            self.cache.set_revision(name, &d);
        }
        Ok(d)
    }

    pub async fn get_manifest(&self, name: &str, r: &Reference) -> Result<Manifest> {
        let digest = self.resolve(name, r).await?;
        if let Some((media_type, body)) = self.cache.manifest(name, &digest) {
            return Ok(Manifest {
                digest,
                media_type,
                body,
            });
        }
        let body = match self.driver().get(&paths::blob_data(&digest)).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(manifest_unknown(&digest))
            }
            Err(e) => return Err(io_err(e)),
        };
        let media_type = match self
            .driver()
            .get(&paths::revision_type(name, &digest))
            .await
        {
            Ok(t) => String::from_utf8_lossy(&t).into_owned(),
            Err(_) => inspect_manifest("", &body)
                .map(|i| i.media_type)
                .unwrap_or_else(|_| media::OCI_MANIFEST.to_string()),
        };
        self.cache.set_manifest(name, &digest, &media_type, &body);
        Ok(Manifest {
            digest,
            media_type,
            body,
        })
    }

    /// Store a manifest under a tag or its digest. Returns its digest and its subject.
    pub async fn put_manifest(
        &self,
        name: &str,
        r: &Reference,
        content_type: &str,
        body: Bytes,
    ) -> Result<(Digest, Option<Digest>)> {
        self.store_manifest(name, r, content_type, body, true).await
    }

    /// Store a manifest; with `check_refs`, only when what it names is in the repository (a
    /// pull-through cache stores manifests before their blobs, which it fetches when asked).
    pub(crate) async fn store_manifest(
        &self,
        name: &str,
        r: &Reference,
        content_type: &str,
        body: Bytes,
        check_refs: bool,
    ) -> Result<(Digest, Option<Digest>)> {
        self.writable()?;
        if body.len() > MAX_MANIFEST_SIZE {
            return Err(RegistryError::new(
                Code::SizeInvalid,
                format!("manifests are limited to {MAX_MANIFEST_SIZE} bytes"),
            )
            .with_status(http::StatusCode::PAYLOAD_TOO_LARGE));
        }
        let digest = match r {
            Reference::Digest(d) => {
                let actual = Digest::of(d.algorithm(), &body);
                if &actual != d {
                    return Err(RegistryError::new(
                        Code::DigestInvalid,
                        format!("the manifest's digest is {actual}, not {d}"),
                    ));
                }
                actual
            }
            Reference::Tag(_) => Digest::of(Algorithm::Sha256, &body),
        };
        let info = inspect_manifest(content_type, &body)?;
        // Each thing the manifest needs: it must be in the repository; its link is rewritten
        // (so a concurrent garbage collection keeps it), then its bytes must still be there.
        let none = Vec::new();
        let (blobs, manifests) = if check_refs {
            (&info.blobs, &info.manifests)
        } else {
            (&none, &none)
        };
        for b in blobs {
            let missing = || {
                RegistryError::new(
                    Code::ManifestBlobUnknown,
                    format!("blob {b} is unknown to the repository"),
                )
            };
            if !self.exists(&paths::layer_link(name, b)).await? {
                return Err(missing());
            }
            self.link_blob(name, b).await?;
            if !self.ensure_data(b).await? {
                return Err(missing());
            }
        }
        for m in manifests {
            let missing = || {
                RegistryError::new(
                    Code::ManifestBlobUnknown,
                    format!("manifest {m} is unknown to the repository"),
                )
            };
            let link = paths::revision_link(name, m);
            if !self.exists(&link).await? {
                return Err(missing());
            }
            self.driver()
                .put(&link, Bytes::from(m.to_string()))
                .await
                .map_err(io_err)?;
            if !self.ensure_data(m).await? {
                return Err(missing());
            }
        }
        let data = paths::blob_data(&digest);
        let data_body = body.clone();
        if !self.ensure_data(&digest).await? {
            self.driver()
                .put(&data, body.clone())
                .await
                .map_err(io_err)?;
        }
        let d = self.driver();
        d.put(
            &paths::revision_type(name, &digest),
            Bytes::from(info.media_type.clone()),
        )
        .await
        .map_err(io_err)?;
        if let Some(s) = &info.subject {
            d.put(
                &paths::referrer_link(name, s, &digest),
                Bytes::from(digest.to_string()),
            )
            .await
            .map_err(io_err)?;
        }
        // the revision link last: the manifest exists once everything it needs does
        d.put(
            &paths::revision_link(name, &digest),
            Bytes::from(digest.to_string()),
        )
        .await
        .map_err(io_err)?;
        if let Reference::Tag(t) = r {
            d.put(&paths::tag_link(name, t), Bytes::from(digest.to_string()))
                .await
                .map_err(io_err)?;
            self.cache.set_tag(name, t, &digest);
        }
        // the type may differ from an earlier push of the same bytes
        self.cache
            .set_manifest(name, &digest, &info.media_type, &data_body);
        // a collection that moved the bytes away meanwhile saw the new revision link, and
        // puts them back; if it removed them just before, they are written again
        if !self.ensure_data(&digest).await? {
            d.put(&data, body).await.map_err(io_err)?;
        }
        Ok((digest, info.subject))
    }

    /// Delete a manifest (by digest: with every tag on it) or just a tag.
    pub async fn delete_manifest(&self, name: &str, r: &Reference) -> Result<()> {
        self.deletable()?;
        self.cache.forget_repo(name);
        let done = self.delete_manifest_now(name, r).await;
        // a request that looked while the deletion ran may have remembered it
        self.cache.forget_repo(name);
        done
    }

    async fn delete_manifest_now(&self, name: &str, r: &Reference) -> Result<()> {
        match r {
            Reference::Tag(t) => {
                if self.read_link(&paths::tag_link(name, t)).await?.is_none() {
                    return Err(manifest_unknown(t));
                }
                self.driver()
                    .delete(&paths::tag_dir(name, t))
                    .await
                    .map_err(io_err)
            }
            Reference::Digest(d) => {
                if !self.exists(&paths::revision_link(name, d)).await? {
                    return Err(manifest_unknown(d));
                }
                for t in self.all_tags(name).await? {
                    if self.read_link(&paths::tag_link(name, &t)).await?.as_ref() == Some(d) {
                        self.driver()
                            .delete(&paths::tag_dir(name, &t))
                            .await
                            .map_err(io_err)?;
                    }
                }
                if let Ok(body) = self.driver().get(&paths::blob_data(d)).await {
                    if let Ok(ManifestInfo {
                        subject: Some(s), ..
                    }) = inspect_manifest("", &body)
                    {
                        let link = paths::referrer_link(name, &s, d);
                        let dir = link.trim_end_matches("/link");
                        self.driver().delete(dir).await.map_err(io_err)?;
                    }
                }
                self.driver()
                    .delete(&paths::revision_dir(name, d))
                    .await
                    .map_err(io_err)
            }
        }
    }

    async fn all_tags(&self, name: &str) -> Result<Vec<String>> {
        self.driver()
            .list(&paths::tags_dir(name))
            .await
            .map_err(io_err)
    }

    /// A page of a repository's tags, and whether more follow.
    pub async fn tags(
        &self,
        name: &str,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<(Vec<String>, bool)> {
        if !self.repo_exists(name).await? {
            return Err(RegistryError::new(
                Code::NameUnknown,
                format!("repository name not known to registry: {name}"),
            ));
        }
        Ok(page(self.all_tags(name).await?, n, last))
    }

    /// A page of repository names, and whether more follow.
    pub async fn catalog(
        &self,
        n: Option<usize>,
        last: Option<&str>,
    ) -> Result<(Vec<String>, bool)> {
        Ok(page(self.repositories().await?, n, last))
    }

    /// Every repository name, sorted.
    pub async fn repositories(&self) -> Result<Vec<String>> {
        let mut found = Vec::new();
        let mut stack = vec![String::new()];
        while let Some(prefix) = stack.pop() {
            let dir = if prefix.is_empty() {
                paths::repos_root().to_string()
            } else {
                paths::repo(&prefix)
            };
            let children = self.driver().list(&dir).await.map_err(io_err)?;
            if children.iter().any(|c| c == "_manifests" || c == "_layers") {
                found.push(prefix.clone());
            }
            for c in children.into_iter().filter(|c| !c.starts_with('_')) {
                stack.push(if prefix.is_empty() {
                    c
                } else {
                    format!("{prefix}/{c}")
                });
            }
        }
        found.sort();
        Ok(found)
    }

    /// The v1 search API (`docker search` against a private registry): repositories whose
    /// name contains `q` (case-insensitive), `n` a page (at most 100), page `page` (from 1).
    pub async fn search(&self, q: &str, n: usize, page_no: usize) -> Result<Value> {
        let needle = q.to_ascii_lowercase();
        let hits: Vec<String> = self
            .repositories()
            .await?
            .into_iter()
            .filter(|r| r.contains(&needle))
            .collect();
        let n = n.clamp(1, 100);
        let page_no = page_no.max(1);
        let results: Vec<Value> = hits
            .iter()
            .skip((page_no - 1).saturating_mul(n))
            .take(n)
            .map(|name| {
                serde_json::json!({
                    "name": name,
                    "description": "",
                    "star_count": 0,
                    "is_official": false,
                    "is_automated": false,
                    "is_trusted": false,
                })
            })
            .collect();
        Ok(serde_json::json!({
            "query": q,
            "num_results": hits.len(),
            "num_pages": hits.len().div_ceil(n).max(1),
            "page": page_no,
            "page_size": n,
            "results": results,
        }))
    }

    /// The referrers of `subject` in a repository, as an OCI index; with `artifact_type`,
    /// only those of that type.
    pub async fn referrers(
        &self,
        name: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Value> {
        let dir = paths::referrers_dir(name, subject);
        let mut list = Vec::new();
        for alg in self.driver().list(&dir).await.map_err(io_err)? {
            for hex in self
                .driver()
                .list(&format!("{dir}/{alg}"))
                .await
                .map_err(io_err)?
            {
                let Ok(d) = Digest::parse(&format!("{alg}:{hex}")) else {
                    continue;
                };
                let Ok(m) = self.get_manifest(name, &Reference::Digest(d.clone())).await else {
                    continue;
                };
                let v: Value = serde_json::from_slice(&m.body).unwrap_or(Value::Null);
                let at = v
                    .get("artifactType")
                    .and_then(Value::as_str)
                    .or_else(|| v.pointer("/config/mediaType").and_then(Value::as_str));
                if artifact_type.is_some_and(|want| Some(want) != at) {
                    continue;
                }
                let mut desc = serde_json::json!({
                    "mediaType": m.media_type,
                    "digest": d.to_string(),
                    "size": m.body.len(),
                });
                if let Some(at) = at {
                    desc["artifactType"] = Value::from(at);
                }
                if let Some(a) = v.get("annotations").filter(|a| a.is_object()) {
                    desc["annotations"] = a.clone();
                }
                list.push(desc);
            }
        }
        Ok(serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media::OCI_INDEX,
            "manifests": list,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        let all: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
        assert_eq!(
            page(all.clone(), Some(2), None),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            page(all.clone(), Some(2), Some("b")),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(page(all.clone(), Some(0), None), (vec![], true));
        let many: Vec<String> = (0..5000).map(|i| format!("{i:05}")).collect();
        let (p, more) = page(many, Some(usize::MAX), None);
        assert_eq!((p.len(), more), (MAX_PAGE, true));
    }

    #[test]
    fn manifests_are_checked() {
        let d = Digest::of(Algorithm::Sha256, b"x").to_string();
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"a","digest":"{d}","size":1}},"layers":[]}}"#,
            media::OCI_MANIFEST
        );
        let i = inspect_manifest(media::OCI_MANIFEST, m.as_bytes()).unwrap();
        assert_eq!(i.blobs.len(), 1);
        assert!(
            inspect_manifest(media::OCI_INDEX, m.as_bytes()).is_err(),
            "type mismatch"
        );
        assert!(inspect_manifest("", b"{}").is_err());
        assert!(inspect_manifest("", b"not json").is_err());
        assert!(inspect_manifest("text/plain", br#"{"schemaVersion":2}"#).is_err());
    }
}
