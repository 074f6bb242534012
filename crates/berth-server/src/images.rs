//! `/images/...`. Image names hold slashes, so the per-image routes are parsed by hand.

use crate::backend::ImageBackend;
use crate::query::{filters, flag, Query};
use crate::stream::{body_from_producer, body_reader};
use crate::{Error, Result};
use axum::body::Body;
use axum::extract::{Path, Query as Q, Request, State};
use axum::http::{header, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_api::types::{ImportRequest, SaveRequest};
use berth_api::ApiError;
use futures_util::TryStreamExt;
use std::sync::Arc;
use tokio_util::io::{StreamReader, SyncIoBridge};

pub fn routes<B: ImageBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/images/json", get(list::<B>))
        .route("/images/create", post(create::<B>))
        .route("/images/get", get(save::<B>))
        .route("/images/load", post(load::<B>))
        .route("/images/prune", post(prune::<B>))
        .route("/images/search", get(search::<B>))
        .route(
            "/images/{*rest}",
            get(get_image::<B>)
                .post(post_image::<B>)
                .delete(delete_image::<B>),
        )
}

async fn list<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    let f = filters(&q)?;
    let mut reference = f.get("reference").and_then(|v| v.first().cloned());
    if let Some(r) = q.get("filter").filter(|s| !s.is_empty()) {
        reference = Some(r.clone());
    }
    for k in f.keys() {
        if k != "reference" && k != "dangling" && k != "label" {
            return Err(Error(ApiError::invalid(format!("invalid filter '{k}'"))));
        }
    }
    let mut v = d.list_images(flag(&q, "all"), reference.as_deref());
    if let Some(dangling) = f.get("dangling").and_then(|v| v.first()) {
        let want = dangling == "true" || dangling == "1";
        v.retain(|i| {
            i["RepoTags"]
                .as_array()
                .map(|a| a.is_empty())
                .unwrap_or(true)
                == want
        });
    }
    if let Some(labels) = f.get("label") {
        v.retain(|i| {
            labels.iter().all(|l| match l.split_once('=') {
                Some((k, val)) => i["Labels"][k].as_str() == Some(val),
                None => !i["Labels"][l].is_null(),
            })
        });
    }
    Ok(Json(v))
}

/// One line of Docker's JSON progress stream.
fn progress(status: &str) -> String {
    serde_json::json!({ "status": status }).to_string() + "\r\n"
}

async fn create<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
    req: Request,
) -> Result<Response<Body>> {
    if let Some(image) = q.get("fromImage").filter(|s| !s.is_empty()) {
        let auth = req
            .headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let tag = q.get("tag").filter(|t| !t.is_empty()).cloned();
        let image = image.clone();
        return crate::stream::progress_response(
            crate::stream::OnHangup::Cancel,
            move |tx| async move { d.pull_image(image, tag, auth, tx).await },
        )
        .await;
    }
    let src = q
        .get("fromSrc")
        .cloned()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            Error(ApiError::invalid(
                "either fromSrc or fromImage must be given",
            ))
        })?;
    let repo = q.get("repo").cloned().unwrap_or_default();
    let tag = q.get("tag").cloned().unwrap_or_default();
    let reference = match (repo.is_empty(), tag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(repo),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let import = ImportRequest {
        reference,
        changes: changes(req.uri().query().unwrap_or("")),
        message: q.get("message").cloned().filter(|m| !m.is_empty()),
        source: src.clone(),
    };
    let reader: Box<dyn std::io::Read + Send> = if src == "-" {
        let stream = req
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other);
        Box::new(SyncIoBridge::new(StreamReader::new(stream)))
    } else {
        fetch(&src).await?
    };
    let id = d.import_image(reader, import).await?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(progress(&id)))
        .unwrap_or_default())
}

/// `changes` may repeat in the query string.
pub(crate) fn changes(query: &str) -> Vec<String> {
    repeated(query, "changes")
}

/// Every non-empty value of a query parameter that may repeat (`names`, `changes`).
fn repeated(query: &str, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.into_owned())
        .collect()
}

/// `GET /images/get?names=…` (and `/images/{name}/get`): Docker's archive, or with berth's
/// `format=oci` an OCI image layout (`compression=gzip|zstd|none`).
async fn save<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
    req: Request,
) -> Result<Response<Body>> {
    let names = repeated(req.uri().query().unwrap_or(""), "names");
    save_names(d, names, &q).await
}

async fn save_names<B: ImageBackend>(
    d: Arc<B>,
    names: Vec<String>,
    q: &Query,
) -> Result<Response<Body>> {
    if names.is_empty() {
        return Err(Error(ApiError::invalid("no image names given")));
    }
    let oci = match q.get("format").map(|s| s.as_str()) {
        None | Some("") | Some("docker") => false,
        Some("oci") => true,
        Some(f) => {
            return Err(Error(ApiError::invalid(format!(
                "unknown archive format {f:?}: use docker or oci"
            ))))
        }
    };
    let req = SaveRequest {
        names,
        oci,
        compression: q.get("compression").cloned().filter(|s| !s.is_empty()),
    };
    let producer = d.save_images(req).await?;
    Ok(body_from_producer("application/x-tar", vec![], producer))
}

/// `POST /images/load`: Docker's JSON message stream, one `stream` line per image.
/// (`quiet` only silences progress bars, which berth does not draw.)
async fn load<B: ImageBackend>(State(d): State<Arc<B>>, req: Request) -> Result<Response<Body>> {
    let lines = d.load_images(body_reader(req.into_body())).await?;
    let mut out = String::new();
    for l in lines {
        out += &(serde_json::json!({ "stream": format!("{l}\n") }).to_string() + "\r\n");
    }
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(out))
        .unwrap_or_default())
}

/// `GET /images/search?term=&limit=&filters=`: `stars`, `is-official`, `is-automated`.
async fn search<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
    headers: axum::http::HeaderMap,
) -> Result<impl IntoResponse> {
    let term = q.get("term").cloned().unwrap_or_default();
    if term.is_empty() {
        return Err(Error(ApiError::invalid("a search term is required")));
    }
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => 25,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(Error(ApiError::invalid(format!(
                    "limit {l} is outside the range of [1, 100]"
                ))))
            }
        },
    };
    let f = filters(&q)?;
    let mut stars = 0u64;
    let (mut official, mut automated) = (None, None);
    for (k, vals) in &f {
        for v in vals {
            match k.as_str() {
                "stars" => {
                    stars = v.parse().map_err(|_| {
                        Error(ApiError::invalid(format!("invalid filter 'stars={v}'")))
                    })?
                }
                "is-official" | "is-automated" => {
                    // Go's ParseBool
                    let b = match v.as_str() {
                        "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                        "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                        _ => {
                            return Err(Error(ApiError::invalid(format!(
                                "invalid filter '{k}={v}'"
                            ))))
                        }
                    };
                    if k == "is-official" {
                        official = Some(b);
                    } else {
                        automated = Some(b);
                    }
                }
                _ => return Err(Error(ApiError::invalid(format!("invalid filter '{k}'")))),
            }
        }
    }
    let auth = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok());
    let mut results = d.search_images(&term, limit, auth).await?;
    results.retain(|r| {
        r["star_count"].as_u64().unwrap_or(0) >= stars
            && official.is_none_or(|o| r["is_official"].as_bool() == Some(o))
            && automated.is_none_or(|a| r["is_automated"].as_bool() == Some(a))
    });
    Ok(Json(results))
}

async fn prune<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    Ok(Json(d.prune_images(filters(&q)?).await?))
}

/// Download an import source over HTTP(S).
async fn fetch(url: &str) -> Result<Box<dyn std::io::Read + Send>> {
    let client = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| Error(ApiError::internal(e.to_string())))?;
    let resp = client.get(url).send().await.map_err(|e| {
        // (reqwest's own message leaves out why: "connection refused" is a cause)
        let mut why = e.to_string();
        let mut cur = std::error::Error::source(&e);
        while let Some(c) = cur {
            why = format!("{why}: {c}");
            cur = c.source();
        }
        Error(ApiError::invalid(format!("Get \"{url}\": {why}")))
    })?;
    if !resp.status().is_success() {
        return Err(Error(ApiError::invalid(format!(
            "Get \"{url}\": unexpected status {}",
            resp.status()
        ))));
    }
    let stream = resp.bytes_stream().map_err(std::io::Error::other);
    Ok(Box::new(SyncIoBridge::new(StreamReader::new(stream))))
}

/// Split `name/json`, `name/history`, `name/tag`, or a bare name.
fn split(rest: &str, ops: &[&str]) -> (String, Option<String>) {
    for op in ops {
        if let Some(name) = rest.strip_suffix(&format!("/{op}")) {
            return (name.to_string(), Some(op.to_string()));
        }
    }
    (rest.to_string(), None)
}

async fn get_image<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Path(rest): Path<String>,
    Q(q): Q<Query>,
) -> Result<Response<Body>> {
    match split(&rest, &["json", "history", "get"]) {
        (name, Some(op)) if op == "get" => save_names(d, vec![name], &q).await,
        (name, Some(op)) if op == "json" => {
            let mut v = d.inspect_image(&name)?;
            berth_api::zero::fill_image(&mut v);
            Ok(Json(v).into_response())
        }
        (name, Some(_)) => Ok(Json(d.image_history(&name)?).into_response()),
        (name, None) => Err(Error(ApiError::not_found(format!(
            "page not found: /images/{name}"
        )))),
    }
}

async fn post_image<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Path(rest): Path<String>,
    Q(q): Q<Query>,
    headers: axum::http::HeaderMap,
) -> Result<Response<Body>> {
    match split(&rest, &["tag", "push"]) {
        (name, Some(op)) if op == "tag" => {
            let repo = q.get("repo").cloned().unwrap_or_default();
            let tag = q.get("tag").cloned().unwrap_or_default();
            d.tag_image(&name, &repo, &tag)?;
            Ok(StatusCode::CREATED.into_response())
        }
        (name, Some(_)) => {
            let auth = headers
                .get("X-Registry-Auth")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let tag = q.get("tag").filter(|t| !t.is_empty()).cloned();
            crate::stream::progress_response(
                crate::stream::OnHangup::Cancel,
                move |tx| async move { d.push_image(name, tag, auth, tx).await },
            )
            .await
        }
        (name, None) => Err(Error(ApiError::not_found(format!(
            "page not found: /images/{name}"
        )))),
    }
}

async fn delete_image<B: ImageBackend>(
    State(d): State<Arc<B>>,
    Path(rest): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    Ok(Json(d.delete_image(&rest, flag(&q, "force")).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeated_changes_are_decoded() {
        let c = super::changes("changes=CMD+%5B%22sh%22%5D&x=1&changes=ENV%20A%3D1");
        assert_eq!(c, vec!["CMD [\"sh\"]".to_string(), "ENV A=1".to_string()]);
    }

    #[test]
    fn names_split_from_operations() {
        assert_eq!(
            super::split("a/b:1/json", &["json", "history"]),
            ("a/b:1".to_string(), Some("json".to_string()))
        );
        assert_eq!(
            super::split("busybox", &["tag"]),
            ("busybox".to_string(), None)
        );
    }
}
