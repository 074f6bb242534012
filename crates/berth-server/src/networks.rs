//! `GET /networks`, `GET /networks/{id}` (the built-in networks; `/networks/prune` is in
//! `system`).

use crate::backend::NetworkBackend;
use crate::query::{filters, Query};
use axum::extract::{Path, Query as Q, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn routes<B: NetworkBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/networks", get(list::<B>))
        .route("/networks/{id}", get(inspect::<B>))
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
