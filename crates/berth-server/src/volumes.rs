//! `/volumes`: list, create, inspect, remove, prune.

use crate::backend::VolumeBackend;
use crate::query::{filters, flag, Query};
use axum::extract::{Path, Query as Q, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

pub fn routes<B: VolumeBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/volumes", get(list::<B>))
        .route("/volumes/create", post(create::<B>))
        .route("/volumes/prune", post(prune::<B>))
        .route("/volumes/{name}", get(inspect::<B>).delete(remove::<B>))
}

async fn list<B: VolumeBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> crate::Result<impl IntoResponse> {
    Ok(Json(d.list_volumes(&filters(&q)?)?))
}

async fn inspect<B: VolumeBackend>(
    State(d): State<Arc<B>>,
    Path(name): Path<String>,
) -> crate::Result<impl IntoResponse> {
    Ok(Json(d.inspect_volume(&name)?))
}

async fn create<B: VolumeBackend>(
    State(d): State<Arc<B>>,
    body: axum::body::Bytes,
) -> crate::Result<impl IntoResponse> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| berth_api::ApiError::invalid(format!("invalid JSON: {e}")))?
    };
    Ok((StatusCode::CREATED, Json(d.create_volume(v).await?)))
}

async fn remove<B: VolumeBackend>(
    State(d): State<Arc<B>>,
    Path(name): Path<String>,
    Q(q): Q<Query>,
) -> crate::Result<impl IntoResponse> {
    d.remove_volume(&name, flag(&q, "force")).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune<B: VolumeBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> crate::Result<impl IntoResponse> {
    Ok(Json(d.prune_volumes(filters(&q)?).await?))
}
