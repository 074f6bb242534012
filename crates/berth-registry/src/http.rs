//! HTTP: the `/v2/` routes of the distribution spec, parsed at the edge into typed requests
//! for [`Registry`].
//!
//! Repository names hold slashes, so routes are not matched by a router's patterns but from
//! the end of the path: `…/manifests/<ref>`, `…/blobs/<digest>`, `…/blobs/uploads/[<id>]`,
//! `…/tags/list`, `…/referrers/<digest>`, and `_catalog`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};

use crate::auth::{Access, Authenticator, TokenIssuer};
use crate::digest::Digest;
use crate::error::{Code, RegistryError, Result};
use crate::manifests::MAX_MANIFEST_SIZE;
use crate::metrics::Metrics;
use crate::names::{valid_name, Reference};
use crate::registry::Registry;
use crate::storage::{ByteStream, Driver};

/// What a `/v2/…` path asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Base,
    Catalog,
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String),
    Upload(String, String),
    Referrers(String, String),
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = percent_decode(rest.strip_prefix('/')?);
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let rest = rest.strip_suffix('/').unwrap_or(&rest);
    let segs: Vec<&str> = rest.split('/').collect();
    let n = segs.len();
    let name = |k: usize| -> Option<String> { (n > k).then(|| segs[..n - k].join("/")) };
    match segs.as_slice() {
        [.., "tags", "list"] => Some(Route::Tags(name(2)?)),
        [.., "blobs", "uploads"] => Some(Route::Uploads(name(2)?)),
        [.., "blobs", "uploads", id] => Some(Route::Upload(name(3)?, id.to_string())),
        [.., "manifests", r] => Some(Route::Manifest(name(2)?, r.to_string())),
        [.., "blobs", d] => Some(Route::Blob(name(2)?, d.to_string())),
        [.., "referrers", d] => Some(Route::Referrers(name(2)?, d.to_string())),
        _ => None,
    }
}

fn query(req: &Request) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(&v.replace('+', " ")))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn q<'a>(qs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    qs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

fn check_name(name: &str) -> Result<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(RegistryError::new(
            Code::NameInvalid,
            format!("invalid repository name: {name:?}"),
        ))
    }
}

fn digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| RegistryError::new(Code::DigestInvalid, e.to_string()))
}

fn reference(s: &str) -> Result<Reference> {
    Reference::parse(s).map_err(|e| match e {
        crate::digest::DigestError::Format(_) if !s.contains(':') => {
            RegistryError::new(Code::ManifestInvalid, format!("invalid tag {s:?}"))
        }
        e => RegistryError::new(Code::DigestInvalid, e.to_string()),
    })
}

fn body_stream(body: Body) -> ByteStream {
    Box::pin(
        body.into_data_stream()
            .map_err(|e| std::io::Error::other(e.to_string())),
    )
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn hv(s: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(s.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `Range: 0-<last byte>` as distribution answers it (`0-0` for an empty upload).
fn range_header(offset: u64) -> HeaderValue {
    hv(format!("0-{}", offset.saturating_sub(1)))
}

fn upload_response(status: StatusCode, name: &str, uuid: &str, offset: u64) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        hv(format!("/v2/{name}/blobs/uploads/{uuid}")),
    );
    h.insert("Docker-Upload-UUID", hv(uuid));
    h.insert(header::RANGE, range_header(offset));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn blob_created(name: &str, d: &Digest) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::CREATED;
    let h = r.headers_mut();
    h.insert(header::LOCATION, hv(format!("/v2/{name}/blobs/{d}")));
    h.insert("Docker-Content-Digest", hv(d.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    r
}

fn status_only(s: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = s;
    r
}

fn unsupported_method() -> RegistryError {
    RegistryError::new(Code::Unsupported, "method not allowed")
}

/// `n` as a number; anything else is an invalid page size.
fn page_size(qs: &[(String, String)]) -> Result<Option<usize>> {
    match q(qs, "n") {
        None | Some("") => Ok(None),
        Some(n) => n
            .parse::<u64>()
            .map(|n| Some(n.min(usize::MAX as u64) as usize))
            .map_err(|_| {
                RegistryError::new(Code::PaginationNumberInvalid, format!("invalid n: {n:?}"))
            }),
    }
}

fn json_response(v: &serde_json::Value, content_type: &'static str) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A JSON body passed through as it came.
fn json_response_raw(body: bytes::Bytes) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// The `Link` header of a next page.
fn next_link(path: &str, n: Option<usize>, last: &str) -> HeaderValue {
    let n = n.map(|n| format!("n={n}&")).unwrap_or_default();
    hv(format!("<{path}?{n}last={last}>; rel=\"next\""))
}

/// What the router serves: the registry, who may use it, and its counters.
pub struct App<D> {
    pub reg: Registry<D>,
    pub auth: Option<Authenticator>,
    /// The built-in token endpoint (`/auth/token`), when configured.
    pub issuer: Option<TokenIssuer>,
    /// The upstream of a pull-through cache.
    pub upstream: Option<crate::proxy::Upstream>,
    pub metrics: Metrics,
}

impl<D: Driver> App<D> {
    pub fn new(
        reg: Registry<D>,
        auth: Option<Authenticator>,
        issuer: Option<TokenIssuer>,
    ) -> App<D> {
        App {
            reg,
            auth,
            issuer,
            upstream: None,
            metrics: Metrics::default(),
        }
    }
}

/// `/auth/token`: 404 unless the registry issues its own tokens.
async fn token<D: Driver>(State(app): State<Arc<App<D>>>, req: Request) -> Response {
    let Some(issuer) = &app.issuer else {
        return status_only(StatusCode::NOT_FOUND);
    };
    match issuer.answer(req.headers(), &query(&req)) {
        Ok(t) => json_response(&serde_json::json!(t), "application/json"),
        Err(e) => e.into_response(),
    }
}

/// The accesses a request needs (the token flow's scopes).
fn needs(r: &Route, method: &Method, qs: &[(String, String)]) -> Vec<Access> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    match r {
        Route::Base => Vec::new(),
        Route::Catalog => vec![Access::catalog()],
        Route::Tags(n) | Route::Referrers(n, _) => vec![Access::repo(n, &["pull"])],
        Route::Manifest(n, _) | Route::Blob(n, _) if read => vec![Access::repo(n, &["pull"])],
        Route::Manifest(n, _) | Route::Blob(n, _) if *method == Method::DELETE => {
            vec![Access::repo(n, &["delete"])]
        }
        Route::Manifest(n, _) | Route::Blob(n, _) | Route::Upload(n, _) => {
            vec![Access::repo(n, &["pull", "push"])]
        }
        Route::Uploads(n) => {
            let mut v = vec![Access::repo(n, &["pull", "push"])];
            if let (Some(_), Some(from)) = (q(qs, "mount"), q(qs, "from")) {
                v.push(Access::repo(from, &["pull"]));
            }
            v
        }
    }
}

/// Serve one request: authorize it, answer it, count it and log it.
pub async fn handle<D: Driver>(State(app): State<Arc<App<D>>>, req: Request) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    // (a request without a body, most of them, is not wrapped)
    let (req, read) = if axum::body::HttpBody::is_end_stream(req.body()) {
        (req, None)
    } else {
        let (parts, body) = req.into_parts();
        let (body, read) = crate::metrics::CountedBody::wrap(body);
        (Request::from_parts(parts, body), Some(read))
    };
    let resp = match route(&path) {
        None => status_only(StatusCode::NOT_FOUND),
        Some(r) => {
            let allowed = match &app.auth {
                Some(a) => a.authorize(req.headers(), &needs(&r, &method, &query(&req))),
                None => Ok(()),
            };
            let answer = match allowed {
                Ok(()) if app.upstream.is_some() => proxy_dispatch(app.clone(), r, req).await,
                Ok(()) => dispatch(&app.reg, r, req).await,
                Err(e) => Err(e),
            };
            match answer {
                Ok(resp) => resp,
                Err(e) => {
                    tracing::debug!("{method} {path}: {e}");
                    e.into_response()
                }
            }
        }
    };
    let status = resp.status().as_u16();
    let bytes_out = if method == Method::HEAD {
        0
    } else {
        content_length(resp.headers()).unwrap_or(0)
    };
    let took = start.elapsed();
    let bytes_in = read.map_or(0, |r| r.load(std::sync::atomic::Ordering::Relaxed));
    app.metrics
        .record(method.as_str(), status, took, bytes_in, bytes_out);
    tracing::info!(
        target: "berth_registry::access",
        method = %method,
        path = %path,
        status,
        micros = took.as_micros() as u64,
        bytes_in,
        bytes_out,
    );
    resp
}

/// `/v1/search?q=&n=&page=`: what `docker search` asks a private registry. Needs the
/// catalog scope when auth is on.
async fn search<D: Driver>(State(app): State<Arc<App<D>>>, req: Request) -> Response {
    if let Some(a) = &app.auth {
        if let Err(e) = a.authorize(req.headers(), &[Access::catalog()]) {
            return e.into_response();
        }
    }
    let qs = query(&req);
    let num = |k: &str, d: usize| -> std::result::Result<usize, RegistryError> {
        match q(&qs, k) {
            None | Some("") => Ok(d),
            Some(v) => v.parse().map_err(|_| {
                RegistryError::new(Code::PaginationNumberInvalid, format!("invalid {k}: {v:?}"))
            }),
        }
    };
    let (n, page_no) = match (num("n", 25), num("page", 1)) {
        (Ok(n), Ok(p)) => (n, p),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    match app.reg.search(q(&qs, "q").unwrap_or(""), n, page_no).await {
        Ok(v) => json_response(&v, "application/json"),
        Err(e) => e.into_response(),
    }
}

/// `/health`: 200 when the storage answers.
async fn health<D: Driver>(State(app): State<Arc<App<D>>>) -> Response {
    match app.reg.driver().list(crate::paths::repos_root()).await {
        Ok(_) => json_response(&serde_json::json!({"status": "ok"}), "application/json"),
        Err(e) => {
            let mut r = json_response(
                &serde_json::json!({"status": "unavailable", "storage": e.to_string()}),
                "application/json",
            );
            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            r
        }
    }
}

/// `/metrics`: Prometheus text.
async fn metrics<D: Driver>(State(app): State<Arc<App<D>>>) -> Response {
    let mut r = Response::new(Body::from(app.metrics.render()));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

/// A pull-through cache: pulls of what is not here go upstream; pushes are refused.
async fn proxy_dispatch<D: Driver>(app: Arc<App<D>>, r: Route, req: Request) -> Result<Response> {
    let method = req.method().clone();
    let read = matches!(method, Method::GET | Method::HEAD);
    let Some(up) = app.upstream.as_ref() else {
        return dispatch(&app.reg, r, req).await;
    };
    match r {
        Route::Manifest(name, text) if read => {
            check_name(&name)?;
            let r = reference(&text).map_err(|_| crate::registry::manifest_unknown(&text))?;
            let m = app.reg.proxied_manifest(up, &name, &r).await?;
            Ok(manifest_response(m, method == Method::HEAD))
        }
        Route::Blob(name, d) if read => {
            check_name(&name)?;
            let d = digest(&d)?;
            match app.reg.blob_size(&name, &d).await {
                Ok(_) => blob(&app.reg, &name, d, method, req.headers()).await,
                Err(e) if e.status() == StatusCode::NOT_FOUND => {
                    crate::proxy::proxied_blob(app.clone(), &name, &d, &method).await
                }
                Err(e) => Err(e),
            }
        }
        Route::Tags(name) if method == Method::GET => {
            check_name(&name)?;
            let query = req.uri().query().map(str::to_string);
            match up.tags(&name, query.as_deref()).await {
                Some(body) => Ok(json_response_raw(body)),
                // the upstream is away: the tags kept here
                None => dispatch(&app.reg, Route::Tags(name), req).await,
            }
        }
        Route::Base | Route::Catalog | Route::Tags(_) | Route::Referrers(..) => {
            dispatch(&app.reg, r, req).await
        }
        _ if read => dispatch(&app.reg, r, req).await,
        _ => Err(RegistryError::new(
            Code::Unsupported,
            "this registry is a pull-through cache: push to its upstream",
        )),
    }
}

fn manifest_response(m: crate::manifests::Manifest, head: bool) -> Response {
    let len = m.body.len();
    let mut resp = if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(m.body))
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, hv(&m.media_type));
    h.insert(header::CONTENT_LENGTH, hv(len.to_string()));
    h.insert("Docker-Content-Digest", hv(m.digest.to_string()));
    h.insert(header::ETAG, hv(format!("\"{}\"", m.digest)));
    resp
}

async fn dispatch<D: Driver>(reg: &Registry<D>, r: Route, req: Request) -> Result<Response> {
    let method = req.method().clone();
    let qs = query(&req);
    match r {
        Route::Base => Ok(json_response(&serde_json::json!({}), "application/json")),
        Route::Catalog => {
            if method != Method::GET {
                return Err(unsupported_method());
            }
            let n = page_size(&qs)?;
            let (repos, more) = reg.catalog(n, q(&qs, "last")).await?;
            let mut resp = json_response(
                &serde_json::json!({ "repositories": repos }),
                "application/json",
            );
            if let (true, Some(last)) = (more, repos.last()) {
                resp.headers_mut()
                    .insert(header::LINK, next_link("/v2/_catalog", n, last));
            }
            Ok(resp)
        }
        Route::Tags(name) => {
            check_name(&name)?;
            if method != Method::GET {
                return Err(unsupported_method());
            }
            let n = page_size(&qs)?;
            let (tags, more) = reg.tags(&name, n, q(&qs, "last")).await?;
            let mut resp = json_response(
                &serde_json::json!({ "name": name, "tags": tags }),
                "application/json",
            );
            if let (true, Some(last)) = (more, tags.last()) {
                resp.headers_mut().insert(
                    header::LINK,
                    next_link(&format!("/v2/{name}/tags/list"), n, last),
                );
            }
            Ok(resp)
        }
        Route::Manifest(name, r) => {
            check_name(&name)?;
            let r = match reference(&r) {
                Ok(r) => r,
                // nothing can be stored under a reference outside the grammar
                Err(_) if method != Method::PUT => {
                    return Err(crate::registry::manifest_unknown(&r));
                }
                Err(e) => return Err(e),
            };
            manifest(reg, &name, r, method, req).await
        }
        Route::Blob(name, d) => {
            check_name(&name)?;
            let d = digest(&d)?;
            blob(reg, &name, d, method, req.headers()).await
        }
        Route::Uploads(name) => {
            check_name(&name)?;
            if method != Method::POST {
                return Err(unsupported_method());
            }
            start_upload(reg, &name, &qs, req).await
        }
        Route::Upload(name, uuid) => {
            check_name(&name)?;
            upload(reg, &name, &uuid, &qs, method, req).await
        }
        Route::Referrers(name, d) => {
            check_name(&name)?;
            if method != Method::GET {
                return Err(unsupported_method());
            }
            let d = digest(&d)?;
            let at = q(&qs, "artifactType").filter(|a| !a.is_empty());
            let index = reg.referrers(&name, &d, at).await?;
            let mut resp = json_response(&index, crate::manifests::media::OCI_INDEX);
            if at.is_some() {
                resp.headers_mut().insert(
                    "OCI-Filters-Applied",
                    HeaderValue::from_static("artifactType"),
                );
            }
            Ok(resp)
        }
    }
}

async fn manifest<D: Driver>(
    reg: &Registry<D>,
    name: &str,
    r: Reference,
    method: Method,
    req: Request,
) -> Result<Response> {
    match method {
        Method::GET | Method::HEAD => {
            let m = reg.get_manifest(name, &r).await?;
            Ok(manifest_response(m, method == Method::HEAD))
        }
        Method::PUT => {
            let ct = req
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let body = axum::body::to_bytes(req.into_body(), MAX_MANIFEST_SIZE)
                .await
                .map_err(|_| {
                    RegistryError::new(
                        Code::SizeInvalid,
                        format!("manifests are limited to {MAX_MANIFEST_SIZE} bytes"),
                    )
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                })?;
            let (d, subject) = reg.put_manifest(name, &r, &ct, body).await?;
            let mut resp = status_only(StatusCode::CREATED);
            let h = resp.headers_mut();
            h.insert(header::LOCATION, hv(format!("/v2/{name}/manifests/{d}")));
            h.insert("Docker-Content-Digest", hv(d.to_string()));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
            if let Some(s) = subject {
                h.insert("OCI-Subject", hv(s.to_string()));
            }
            Ok(resp)
        }
        Method::DELETE => {
            reg.delete_manifest(name, &r).await?;
            Ok(status_only(StatusCode::ACCEPTED))
        }
        _ => Err(unsupported_method()),
    }
}

/// `bytes=<start>-[<end>]`: one range only.
fn parse_range(h: &HeaderMap, size: u64) -> Option<Result<(u64, u64)>> {
    let v = h.get(header::RANGE)?.to_str().ok()?;
    let bad = || RegistryError::new(Code::RangeInvalid, format!("unsatisfiable range {v:?}"));
    let spec = match v.strip_prefix("bytes=") {
        Some(s) if !s.contains(',') => s,
        _ => return Some(Err(bad())),
    };
    let (a, b) = spec.split_once('-')?;
    let r = match (a.parse::<u64>(), b) {
        (Ok(start), "") if start < size => Ok((start, size - 1)),
        (Ok(start), e) => match e.parse::<u64>() {
            Ok(end) if start <= end && start < size => Ok((start, end.min(size - 1))),
            _ => Err(bad()),
        },
        (Err(_), _) => match b.parse::<u64>() {
            // a suffix: the last b bytes
            Ok(k) if a.is_empty() && k > 0 && size > 0 => Ok((size.saturating_sub(k), size - 1)),
            _ => Err(bad()),
        },
    };
    Some(r)
}

async fn blob<D: Driver>(
    reg: &Registry<D>,
    name: &str,
    d: Digest,
    method: Method,
    headers: &HeaderMap,
) -> Result<Response> {
    match method {
        Method::GET | Method::HEAD => {
            let size = reg.blob_size(name, &d).await?;
            let range = parse_range(headers, size).transpose()?;
            let (status, start, len) = match range {
                Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
                None => (StatusCode::OK, 0, size),
            };
            let mut resp = if method == Method::HEAD {
                Response::new(Body::empty())
            } else {
                let s = reg.blob_reader(&d, start).await?;
                let s = take_bytes(s, len);
                Response::new(Body::from_stream(s))
            };
            *resp.status_mut() = status;
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            h.insert(header::CONTENT_LENGTH, hv(len.to_string()));
            h.insert("Docker-Content-Digest", hv(d.to_string()));
            h.insert(header::ETAG, hv(format!("\"{d}\"")));
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            if status == StatusCode::PARTIAL_CONTENT {
                h.insert(
                    header::CONTENT_RANGE,
                    hv(format!("bytes {start}-{}/{size}", start + len - 1)),
                );
            }
            Ok(resp)
        }
        Method::DELETE => {
            reg.delete_blob(name, &d).await?;
            Ok(status_only(StatusCode::ACCEPTED))
        }
        _ => Err(unsupported_method()),
    }
}

/// At most `len` bytes of a stream.
fn take_bytes(s: ByteStream, len: u64) -> ByteStream {
    Box::pin(s.scan(len, |left, chunk| {
        let out = match chunk {
            Ok(_) if *left == 0 => return std::future::ready(None),
            Ok(mut c) => {
                if c.len() as u64 > *left {
                    c.truncate(*left as usize);
                }
                *left -= c.len() as u64;
                Ok(c)
            }
            Err(e) => Err(e),
        };
        std::future::ready(Some(out))
    }))
}

async fn start_upload<D: Driver>(
    reg: &Registry<D>,
    name: &str,
    qs: &[(String, String)],
    req: Request,
) -> Result<Response> {
    if let Some(m) = q(qs, "mount") {
        let d = digest(m)?;
        if let Some(from) = q(qs, "from") {
            if reg.mount_blob(name, &d, from).await? {
                return Ok(blob_created(name, &d));
            }
        }
        // not mountable: an ordinary upload session instead
        let uuid = reg.start_upload(name).await?;
        return Ok(upload_response(StatusCode::ACCEPTED, name, &uuid, 0));
    }
    if let Some(dg) = q(qs, "digest") {
        // a monolithic upload: POST with the whole blob
        let d = digest(dg)?;
        let len = content_length(req.headers());
        let uuid = reg.start_upload(name).await?;
        let body = body_stream(req.into_body());
        if let Err(e) = reg.finish_upload(name, &uuid, &d, len, body).await {
            let _ = reg.cancel_upload(name, &uuid).await;
            return Err(e);
        }
        return Ok(blob_created(name, &d));
    }
    let uuid = reg.start_upload(name).await?;
    Ok(upload_response(StatusCode::ACCEPTED, name, &uuid, 0))
}

/// `Content-Range: <start>-<end>` of a PATCH (inclusive end), with the length it implies.
fn content_range(h: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(v) = h.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || RegistryError::new(Code::RangeInvalid, "invalid Content-Range");
    let s = v.to_str().map_err(|_| bad())?;
    let s = s.strip_prefix("bytes ").unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s);
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (a, b): (u64, u64) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b - a + 1)))
}

async fn upload<D: Driver>(
    reg: &Registry<D>,
    name: &str,
    uuid: &str,
    qs: &[(String, String)],
    method: Method,
    req: Request,
) -> Result<Response> {
    match method {
        Method::GET => {
            let off = reg.upload_offset(name, uuid).await?;
            let mut r = upload_response(StatusCode::NO_CONTENT, name, uuid, off);
            r.headers_mut().remove(header::CONTENT_LENGTH);
            Ok(r)
        }
        Method::PATCH => {
            let cr = content_range(req.headers())?;
            let len = content_length(req.headers());
            if let (Some((_, want)), Some(len)) = (cr, len) {
                if want != len {
                    return Err(RegistryError::new(
                        Code::RangeInvalid,
                        "Content-Range and Content-Length disagree",
                    ));
                }
            }
            let body = body_stream(req.into_body());
            let end = reg
                .append(name, uuid, cr.map(|c| c.0), len.or(cr.map(|c| c.1)), body)
                .await?;
            Ok(upload_response(StatusCode::ACCEPTED, name, uuid, end))
        }
        Method::PUT => {
            let d = digest(q(qs, "digest").ok_or_else(|| {
                RegistryError::new(Code::DigestInvalid, "the digest parameter is required")
            })?)?;
            let len = content_length(req.headers());
            let body = body_stream(req.into_body());
            reg.finish_upload(name, uuid, &d, len, body).await?;
            Ok(blob_created(name, &d))
        }
        Method::DELETE => {
            reg.cancel_upload(name, uuid).await?;
            Ok(status_only(StatusCode::NO_CONTENT))
        }
        _ => Err(unsupported_method()),
    }
}

/// The router: `/v2/…` (with distribution's version header on every answer), `/v1/search`,
/// `/auth/token`, `/health`, `/metrics`.
pub fn router<D: Driver>(app: Arc<App<D>>) -> axum::Router {
    axum::Router::new()
        .route("/health", axum::routing::get(health::<D>))
        .route("/metrics", axum::routing::get(metrics::<D>))
        .route("/auth/token", axum::routing::get(token::<D>))
        .route("/v1/search", axum::routing::get(search::<D>))
        .fallback(handle::<D>)
        .with_state(app)
        .layer(axum::middleware::map_response(
            |mut r: Response| async move {
                r.headers_mut().insert(
                    "Docker-Distribution-API-Version",
                    HeaderValue::from_static("registry/2.0"),
                );
                r
            },
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/v2/"), Some(Route::Base));
        assert_eq!(route("/v2"), Some(Route::Base));
        assert_eq!(route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(route("/v2/a/b/tags/list"), Some(Route::Tags("a/b".into())));
        assert_eq!(
            route("/v2/a/manifests/blobs/manifests/v1"),
            Some(Route::Manifest("a/manifests/blobs".into(), "v1".into()))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/"),
            Some(Route::Uploads("a".into()))
        );
        assert_eq!(
            route("/v2/a/blobs/uploads/abc"),
            Some(Route::Upload("a".into(), "abc".into()))
        );
        assert_eq!(
            route("/v2/x/blobs/sha256%3Aab"),
            Some(Route::Blob("x".into(), "sha256:ab".into()))
        );
        assert_eq!(route("/v2/manifests/v1"), None);
        assert_eq!(route("/v3/a/manifests/v1"), None);
    }

    #[test]
    fn ranges() {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static("bytes=2-"));
        assert_eq!(parse_range(&h, 10).unwrap().unwrap(), (2, 9));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=-3"));
        assert_eq!(parse_range(&h, 10).unwrap().unwrap(), (7, 9));
        h.insert(header::RANGE, HeaderValue::from_static("bytes=20-30"));
        assert!(parse_range(&h, 10).unwrap().is_err());
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_RANGE, HeaderValue::from_static("0-99"));
        assert_eq!(content_range(&h).unwrap(), Some((0, 100)));
        h.insert(header::CONTENT_RANGE, HeaderValue::from_static("9-1"));
        assert!(content_range(&h).is_err());
    }
}
