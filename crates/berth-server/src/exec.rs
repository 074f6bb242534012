//! `/exec/...`

use crate::backend::ExecBackend;
use crate::query::{size, Query};
use crate::stream::{hijack, MULTIPLEXED, RAW};
use crate::{status, Result};
use axum::body::Body;
use axum::extract::{Path, Query as Q, Request, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_api::models::ExecStartConfig;
use berth_api::ApiError;
use std::sync::Arc;

pub fn routes<B: ExecBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/exec/{id}/start", post(start::<B>))
        .route("/exec/{id}/resize", post(resize::<B>))
        .route("/exec/{id}/json", get(inspect::<B>))
}

async fn start<B: ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    req: Request,
) -> Result<Response<Body>> {
    let exec_tty = d.exec_tty(&id)?;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let cfg: ExecStartConfig = if bytes.is_empty() {
        ExecStartConfig::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("invalid JSON: {e}")))?
    };
    let console = cfg
        .console_size
        .as_ref()
        .filter(|s| s.len() == 2 && s[0] > 0)
        .map(|s| (s[0] as u16, s[1] as u16));
    if cfg.detach.unwrap_or(false) {
        d.start_exec(&id, None, console).await?;
        return Ok(status(StatusCode::OK));
    }
    let tty = exec_tty || cfg.tty.unwrap_or(false);
    let mut req = Request::from_parts(parts, Body::empty());
    Ok(hijack(
        &mut req,
        if tty { RAW } else { MULTIPLEXED },
        move |io| async move {
            if let Err(err) = d.start_exec(&id, Some(io), console).await {
                tracing::warn!("exec: {err}");
            }
        },
    ))
}

async fn resize<B: ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    let (h, w) = size(&q)?;
    d.resize_exec(&id, h, w).await?;
    Ok(status(StatusCode::CREATED))
}

async fn inspect<B: ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    Ok(Json(d.inspect_exec(&id)?))
}
