//! The pull-through cache (`proxy.remoteurl`): what a pull asks for and is not here is fetched
//! from the upstream registry, served as it streams in, and kept; this is how
//! `registry-mirrors` are served. Pushes are refused: the upstream is the source of truth.
//!
//! - A manifest by digest is fetched once (its digest checked), then served from here.
//! - A tag is asked of the upstream again when it was last checked more than [`TAG_TTL`]
//!   ago; when the upstream cannot be reached, the tag kept here is served.
//! - A blob streams to the client and into an upload at the same time; the upload becomes
//!   the blob only if its digest matches. A client that goes away leaves nothing.
//! - A tag list is the upstream's when it answers, the tags kept here otherwise.
//! - The upstream's auth: basic credentials, or the token flow (a `Bearer` challenge, a token
//!   from its realm for `repository:<name>:pull`, kept until it expires).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{header, HeaderValue, Method, StatusCode};

use crate::digest::Digest;
use crate::error::{Code, RegistryError, Result};
use crate::names::Reference;
use crate::storage::{ByteStream, Driver};

/// How long a tag fetched from the upstream is served before asking again.
pub const TAG_TTL: Duration = Duration::from_secs(30);

/// The manifest types asked of the upstream.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The upstream registry and how to talk to it.
pub struct Upstream {
    base: String,
    client: reqwest::Client,
    creds: Option<(String, String)>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    tags_checked: Mutex<HashMap<(String, String), Instant>>,
}

fn upstream_err(e: impl std::fmt::Display) -> RegistryError {
    RegistryError::new(Code::Unknown, format!("upstream: {e}")).with_status(StatusCode::BAD_GATEWAY)
}

/// An upstream answer's body, refused past `max` bytes as it comes (an upstream is not to be
/// trusted with the registry's memory).
async fn body_within(mut resp: reqwest::Response, max: usize) -> Result<Bytes, RegistryError> {
    let too_big = || upstream_err(format!("an answer over {max} bytes"));
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(upstream_err)? {
        if body.len() + chunk.len() > max {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// The largest token answer or tag list taken from an upstream.
const MAX_UPSTREAM_JSON: usize = 16 << 20;

/// `key="value"` pairs of a challenge.
fn challenge_params(h: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = h;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = &rest[eq + 1..];
        let (value, next) = match after.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            },
            None => match after.find(',') {
                Some(c) => (&after[..c], &after[c..]),
                None => (after, ""),
            },
        };
        out.insert(key, value.to_string());
        rest = next;
    }
    out
}

impl Upstream {
    pub fn new(
        url: &str,
        username: Option<&str>,
        password: Option<&str>,
    ) -> std::result::Result<Upstream, String> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("proxy.remoteurl {url:?} is not an http(s) URL"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Upstream {
            base,
            client,
            creds: username.map(|u| (u.to_string(), password.unwrap_or("").to_string())),
            tokens: Mutex::new(HashMap::new()),
            tags_checked: Mutex::new(HashMap::new()),
        })
    }

    fn cached_token(&self, scope: &str) -> Option<String> {
        let t = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        t.get(scope)
            .filter(|(_, until)| Instant::now() < *until)
            .map(|(tok, _)| tok.clone())
    }

    async fn fetch_token(&self, challenge: &str, scope: &str) -> Result<String> {
        let p = challenge_params(challenge);
        let realm = p
            .get("realm")
            .ok_or_else(|| upstream_err("a Bearer challenge without realm"))?;
        let mut params = vec![("scope", scope)];
        if let Some(s) = p.get("service") {
            params.push(("service", s.as_str()));
        }
        let url = reqwest::Url::parse_with_params(realm, &params).map_err(upstream_err)?;
        let mut req = self.client.get(url);
        if let Some((u, pw)) = &self.creds {
            req = req.basic_auth(u, Some(pw));
        }
        let resp = req.send().await.map_err(upstream_err)?;
        if !resp.status().is_success() {
            return Err(upstream_err(format!(
                "its token endpoint answered {}",
                resp.status()
            )));
        }
        let v: serde_json::Value =
            serde_json::from_slice(&body_within(resp, MAX_UPSTREAM_JSON).await?)
                .map_err(upstream_err)?;
        let tok = v["token"]
            .as_str()
            .or(v["access_token"].as_str())
            .ok_or_else(|| upstream_err("no token in the token endpoint's answer"))?
            .to_string();
        let ttl = v["expires_in"].as_u64().unwrap_or(60).max(10);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                scope.to_string(),
                (tok.clone(), Instant::now() + Duration::from_secs(ttl - 5)),
            );
        Ok(tok)
    }

    /// A request to the upstream for repository `repo`, answering its auth challenge once.
    async fn request(&self, method: Method, path: &str, repo: &str) -> Result<reqwest::Response> {
        let scope = format!("repository:{repo}:pull");
        let url = format!("{}{path}", self.base);
        let send = |auth: Option<String>| {
            let mut r = self
                .client
                .request(method.clone(), &url)
                .header(header::ACCEPT, ACCEPT);
            match (auth, &self.creds) {
                (Some(tok), _) => r = r.bearer_auth(tok),
                (None, Some((u, p))) => r = r.basic_auth(u, Some(p)),
                (None, None) => {}
            }
            r.send()
        };
        let resp = send(self.cached_token(&scope))
            .await
            .map_err(upstream_err)?;
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if challenge.to_ascii_lowercase().starts_with("bearer") {
            let tok = self
                .fetch_token(&challenge["bearer".len()..], &scope)
                .await?;
            return send(Some(tok)).await.map_err(upstream_err);
        }
        Ok(resp)
    }

    /// The upstream's tag list of a repository (its JSON, with `query`'s paging), or `None`
    /// when it cannot say.
    pub async fn tags(&self, name: &str, query: Option<&str>) -> Option<Bytes> {
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        let resp = self
            .request(Method::GET, &format!("/v2/{name}/tags/list{q}"), name)
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = body_within(resp, MAX_UPSTREAM_JSON).await.ok()?;
        // only a well-formed answer is passed on
        let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
        v.get("tags")?;
        Some(body)
    }

    fn tag_is_fresh(&self, name: &str, tag: &str) -> bool {
        self.tags_checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(name.to_string(), tag.to_string()))
            .is_some_and(|t| t.elapsed() < TAG_TTL)
    }

    fn tag_checked(&self, name: &str, tag: &str) {
        self.tags_checked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((name.to_string(), tag.to_string()), Instant::now());
    }
}

fn not_found(e: &RegistryError) -> bool {
    e.status() == StatusCode::NOT_FOUND
}

/// The upstream's answer as an error of ours.
fn upstream_status(s: reqwest::StatusCode, what: &str) -> RegistryError {
    match s.as_u16() {
        404 => RegistryError::new(
            if what == "blob" {
                Code::BlobUnknown
            } else {
                Code::ManifestUnknown
            },
            format!("{what} unknown here and upstream"),
        ),
        401 | 403 => RegistryError::new(
            Code::Denied,
            format!("the upstream refused the {what} ({s})"),
        ),
        _ => upstream_err(format!("{what}: {s}")),
    }
}

impl<D: Driver> crate::Registry<D> {
    /// A manifest, from here or from the upstream (then kept).
    pub async fn proxied_manifest(
        &self,
        up: &Upstream,
        name: &str,
        r: &Reference,
    ) -> Result<crate::manifests::Manifest> {
        let fresh_enough = match r {
            Reference::Digest(_) => true,
            Reference::Tag(t) => up.tag_is_fresh(name, t),
        };
        if fresh_enough {
            match self.get_manifest(name, r).await {
                Ok(m) => return Ok(m),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        let reference = match r {
            Reference::Tag(t) => t.clone(),
            Reference::Digest(d) => d.to_string(),
        };
        let fetched = up
            .request(
                Method::GET,
                &format!("/v2/{name}/manifests/{reference}"),
                name,
            )
            .await;
        let resp = match fetched {
            Ok(resp) if resp.status().is_success() => resp,
            // the upstream is away or says no: what is kept here still serves
            other => {
                if let Ok(m) = self.get_manifest(name, r).await {
                    return Ok(m);
                }
                return Err(match other {
                    Ok(resp) => upstream_status(resp.status(), "manifest"),
                    Err(e) => e,
                });
            }
        };
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = body_within(resp, crate::manifests::MAX_MANIFEST_SIZE).await?;
        self.store_manifest(name, r, &ct, body, false).await?;
        if let Reference::Tag(t) = r {
            up.tag_checked(name, t);
        }
        self.get_manifest(name, r).await
    }
}

/// A blob from the upstream, streamed to the client while it is kept here; or its headers
/// (HEAD).
pub async fn proxied_blob<D: Driver>(
    app: Arc<crate::http::App<D>>,
    name: &str,
    d: &Digest,
    method: &Method,
) -> Result<Response> {
    let up = app
        .upstream
        .as_ref()
        .ok_or_else(|| upstream_err("none configured"))?;
    let resp = up
        .request(method.clone(), &format!("/v2/{name}/blobs/{d}"), name)
        .await?;
    if !resp.status().is_success() {
        return Err(upstream_status(resp.status(), "blob"));
    }
    // the header, not the body's size (a HEAD has none)
    let len = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut out = Response::new(Body::empty());
    let h = out.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(n) = len {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    if let Ok(v) = HeaderValue::from_str(&d.to_string()) {
        h.insert("Docker-Content-Digest", v);
    }
    if *method == Method::HEAD {
        return Ok(out);
    }
    // tee: every chunk goes to the client and to an upload that becomes the blob if it is whole
    let uuid = app.reg.start_upload(name).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
    let keep: ByteStream = Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }));
    let (app2, name2, d2) = (app.clone(), name.to_string(), d.clone());
    tokio::spawn(async move {
        if let Err(e) = app2.reg.finish_upload(&name2, &uuid, &d2, len, keep).await {
            tracing::debug!("proxy: {name2}@{d2} not kept: {e}");
            let _ = app2.reg.cancel_upload(&name2, &uuid).await;
        }
    });
    let body = resp.bytes_stream().then(move |c| {
        let tx = tx.clone();
        async move {
            let c = c.map_err(std::io::Error::other);
            let copy = match &c {
                Ok(b) => Ok(b.clone()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            let _ = tx.send(copy).await;
            c
        }
    });
    *out.body_mut() = Body::from_stream(body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_challenges() {
        let p = super::challenge_params(
            r#" realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull""#,
        );
        assert_eq!(p["realm"], "https://auth.example/token");
        assert_eq!(p["service"], "registry.example");
        assert_eq!(p["scope"], "repository:a/b:pull");
    }
}
