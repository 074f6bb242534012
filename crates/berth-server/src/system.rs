//! `/_ping`, `/version`, `/info`.

use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
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

async fn version(State(d): State<AppState>) -> impl IntoResponse {
    Json(d.version())
}

async fn info(State(d): State<AppState>) -> impl IntoResponse {
    let d2 = d.clone();
    let v = tokio::task::spawn_blocking(move || d2.info())
        .await
        .unwrap_or_default();
    Json(v)
}
