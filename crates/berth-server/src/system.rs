//! `/_ping`, `/version`, `/info`.

use crate::backend::SystemBackend;
use crate::query::{flag, Query};
use axum::extract::{Query as Q, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;

pub fn routes<B: SystemBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version::<B>))
        .route("/info", get(info::<B>))
        .route("/system/df", get(df::<B>))
        .route("/system/check", post(check::<B>))
        .route("/auth", post(auth::<B>))
        .route("/events", get(events::<B>))
}

/// `GET /events`: JSON lines, streamed until `until` (or the client leaves).
async fn events<B: SystemBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> crate::Result<impl IntoResponse> {
    let ts =
        |k: &str| berth_api::types::parse_timestamp(q.get(k).map(|s| s.as_str()).unwrap_or(""));
    let (since, until) = (ts("since")?, ts("until")?);
    let filters = crate::query::filters(&q)?;
    Ok(crate::stream::body_from(
        "application/json",
        move |w| async move {
            if let Err(e) = d.write_events(since, until, filters, w).await {
                tracing::warn!("events: {e}");
            }
        },
    ))
}

async fn df<B: SystemBackend>(State(d): State<Arc<B>>) -> crate::Result<impl IntoResponse> {
    Ok(Json(d.disk_usage().await?))
}

/// berth's own: `POST /system/check?repair=1`.
async fn check<B: SystemBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> crate::Result<impl IntoResponse> {
    Ok(Json(d.system_check(flag(&q, "repair")).await?))
}

/// `POST /auth`: `{"username", "password", "serveraddress"}` checked against the registry.
async fn auth<B: SystemBackend>(
    State(d): State<Arc<B>>,
    body: axum::body::Bytes,
) -> crate::Result<impl IntoResponse> {
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        crate::Error(berth_api::ApiError::invalid(format!(
            "invalid JSON in the login request: {e}"
        )))
    })?;
    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_string();
    d.login(&s("serveraddress"), &s("username"), &s("password"))
        .await?;
    Ok(Json(
        serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}),
    ))
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
