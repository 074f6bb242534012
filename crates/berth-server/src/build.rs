//! `POST /build` (the classic builder: a tar context in, Docker's JSON progress stream out)
//! and `POST /build/prune`.

use crate::backend::BuildBackend;
use crate::query::{flag, Query};
use crate::stream::body_reader;
use crate::{Error, Result};
use axum::body::Body;
use axum::extract::{Query as Q, Request, State};
use axum::http::Response;
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

async fn build<B: BuildBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
    req: Request,
) -> Result<Response<Body>> {
    let raw = req.uri().query().unwrap_or("").to_string();
    let opts = request(&q, &raw)?;
    let body = body_reader(req.into_body());
    crate::stream::progress_response(crate::stream::OnHangup::Finish, move |tx| async move {
        d.build(opts, body, tx).await
    })
    .await
}

async fn prune<B: BuildBackend>(State(d): State<Arc<B>>) -> impl IntoResponse {
    // The entries are small records; the images they point to are pruned with the images.
    let deleted = d.prune_build_cache();
    Json(serde_json::json!({ "CachesDeleted": deleted, "SpaceReclaimed": 0 }))
}
