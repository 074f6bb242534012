//! `POST /build` (the classic builder: a tar context in, Docker's JSON progress stream out)
//! and `POST /build/prune`.

use crate::backend::BuildBackend;
use crate::query::{flag, Query};
use crate::stream::body_reader;
use crate::{Error, Result};
use axum::body::Body;
use axum::extract::{Query as Q, Request, State};
use axum::http::{header, Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use berth_api::types::BuildRequest;
use berth_api::ApiError;
use std::collections::BTreeMap;
use std::sync::Arc;

pub fn routes<B: BuildBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/build", post(build::<B>))
        .route("/build/prune", post(prune::<B>))
}

/// Every non-empty value of a query parameter that may repeat (`t`).
fn repeated(query: &str, key: &str) -> Vec<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.into_owned())
        .collect()
}

fn json_map<V: serde::de::DeserializeOwned>(q: &Query, key: &str) -> Result<BTreeMap<String, V>> {
    match q.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(s) => serde_json::from_str(s)
            .map_err(|e| Error(ApiError::invalid(format!("invalid {key} parameter: {e}")))),
    }
}

/// The request's options, as dockerd reads them.
fn request(q: &Query, raw: &str) -> Result<BuildRequest> {
    Ok(BuildRequest {
        tags: repeated(raw, "t"),
        dockerfile: q.get("dockerfile").cloned().unwrap_or_default(),
        build_args: json_map(q, "buildargs")?,
        labels: json_map(q, "labels")?,
        target: q.get("target").cloned().unwrap_or_default(),
        no_cache: flag(q, "nocache"),
        pull: flag(q, "pull"),
        quiet: flag(q, "q"),
        network: q.get("networkmode").cloned().unwrap_or_default(),
        platform: q.get("platform").cloned().unwrap_or_default(),
        remote: q.get("remote").cloned().unwrap_or_default(),
    })
}

fn line(v: &serde_json::Value) -> bytes::Bytes {
    bytes::Bytes::from(v.to_string() + "\r\n")
}

async fn build<B: BuildBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
    req: Request,
) -> Result<Response<Body>> {
    let raw = req.uri().query().unwrap_or("").to_string();
    let opts = request(&q, &raw)?;
    let body = body_reader(req.into_body());
    progress_response(move |tx| async move { d.build(opts, body, tx).await }).await
}

/// Runs `work` with a channel of Docker's JSON messages and answers with them as they come.
/// Errors before the first message become an HTTP error (as dockerd's, before its output is
/// flushed); after it, they are one more message in the stream itself.
pub(crate) async fn progress_response<F, Fut>(work: F) -> Result<Response<Body>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<serde_json::Value>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), ApiError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<serde_json::Value>(256);
    let task = tokio::spawn(work(tx));
    // The work holds the only sender: no first message means it has ended, and how it ended
    // is the request's answer.
    let (first, pending) = match rx.recv().await {
        Some(ev) => (Some(ev), Some(Ending::Task(task))),
        None => {
            task.await
                .map_err(|e| Error(ApiError::internal(e.to_string())))??;
            (None, None)
        }
    };
    let stream = async_stream(first, rx, pending);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// The task behind a stream of messages, waited for once its messages are out.
enum Ending {
    Task(tokio::task::JoinHandle<std::result::Result<(), ApiError>>),
}

/// The rest of the messages, as body chunks; an error the work returns late is one more.
fn async_stream(
    first: Option<serde_json::Value>,
    rx: tokio::sync::mpsc::Receiver<serde_json::Value>,
    task: Option<Ending>,
) -> impl futures_util::Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold(
        (first, rx, task),
        |(mut first, mut rx, mut task)| async move {
            if let Some(v) = first.take() {
                return Some((Ok(line(&v)), (None, rx, task)));
            }
            if let Some(v) = rx.recv().await {
                return Some((Ok(line(&v)), (None, rx, task)));
            }
            // (a task that panicked ends the stream with an error too)
            let ended = match task.take()? {
                Ending::Task(t) => Some(
                    t.await
                        .unwrap_or_else(|e| Err(ApiError::internal(e.to_string()))),
                ),
            };
            match ended {
                Some(Err(e)) => {
                    let v = serde_json::json!({
                        "errorDetail": {"message": e.message},
                        "error": e.message,
                    });
                    Some((Ok(line(&v)), (None, rx, None)))
                }
                _ => None,
            }
        },
    )
}

async fn prune<B: BuildBackend>(State(d): State<Arc<B>>) -> impl IntoResponse {
    // The entries are small records; the images they point to are pruned with the images.
    let deleted = d.prune_build_cache();
    Json(serde_json::json!({ "CachesDeleted": deleted, "SpaceReclaimed": 0 }))
}
