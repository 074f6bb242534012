//! `/_ping`, `/version`, `/info`.

use crate::backend::SystemBackend;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::sync::Arc;

pub fn routes<B: SystemBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version::<B>))
        .route("/info", get(info::<B>))
}

async fn ping() -> impl IntoResponse {
    (
        [
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "OK",
    )
}

async fn version<B: SystemBackend>(State(d): State<Arc<B>>) -> impl IntoResponse {
    Json(d.version())
}

async fn info<B: SystemBackend>(State(d): State<Arc<B>>) -> impl IntoResponse {
    Json(d.info().await)
}
