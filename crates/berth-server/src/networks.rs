//! `/networks`: list, inspect, create, remove, prune, connect, disconnect.

use crate::backend::NetworkBackend;
use crate::query::{filters, Query};
use axum::extract::{Path, Query as Q, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

pub fn routes<B: NetworkBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/networks", get(list::<B>))
        .route("/networks/create", post(create::<B>))
        .route("/networks/prune", post(prune::<B>))
        .route("/networks/{id}", get(inspect::<B>).delete(remove::<B>))
        .route("/networks/{id}/connect", post(connect::<B>))
        .route("/networks/{id}/disconnect", post(disconnect::<B>))
}

/// A JSON body; an empty one is `{}` (as dockerd reads it).
fn body_json(body: &[u8]) -> crate::Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body)
        .map_err(|e| berth_api::ApiError::invalid(format!("invalid JSON: {e}")).into())
}

async fn list<B: NetworkBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> crate::Result<impl IntoResponse> {
    Ok(Json(d.list_networks(&filters(&q)?)?))
}

async fn inspect<B: NetworkBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> crate::Result<impl IntoResponse> {
    Ok(Json(d.inspect_network(&id)?))
}

async fn create<B: NetworkBackend>(
    State(d): State<Arc<B>>,
    body: axum::body::Bytes,
) -> crate::Result<impl IntoResponse> {
    let v = d.create_network(body_json(&body)?).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

async fn remove<B: NetworkBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> crate::Result<impl IntoResponse> {
    d.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune<B: NetworkBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> crate::Result<impl IntoResponse> {
    let deleted = d.prune_networks(&filters(&q)?).await?;
    Ok(Json(serde_json::json!({ "NetworksDeleted": deleted })))
}

async fn connect<B: NetworkBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> crate::Result<impl IntoResponse> {
    d.connect_network(&id, body_json(&body)?).await?;
    Ok(StatusCode::OK)
}

async fn disconnect<B: NetworkBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> crate::Result<impl IntoResponse> {
    d.disconnect_network(&id, body_json(&body)?).await?;
    Ok(StatusCode::OK)
}
