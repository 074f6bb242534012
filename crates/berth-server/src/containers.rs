//! `/containers/...`

use crate::backend::{ContainerBackend, ExecBackend};
use crate::query::{filters, flag, int, size, Query};
use crate::stream::{body_from, body_from_producer, body_reader, hijack, MULTIPLEXED, RAW};
use crate::{status, Error, Result};
use axum::body::Body;
use axum::extract::{Path, Query as Q, Request, State};
use axum::http::{Response, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_api::models::{ContainerCreateBody, ContainerCreateResponse, ExecConfig};
use berth_api::types::{
    parse_timestamp, AttachOptions, CommitRequest, CopyToOptions, ListOptions, LogOptions,
    WaitCondition,
};
use berth_api::ApiError;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

pub fn routes<B: ContainerBackend + ExecBackend>() -> Router<Arc<B>> {
    Router::new()
        .route("/containers/json", get(list::<B>))
        .route("/containers/create", post(create::<B>))
        .route("/containers/{id}/json", get(inspect::<B>))
        .route("/containers/{id}/top", get(top::<B>))
        .route("/containers/{id}/logs", get(logs::<B>))
        .route("/containers/{id}/stats", get(stats::<B>))
        .route("/containers/{id}/update", post(update::<B>))
        .route("/containers/{id}/start", post(start::<B>))
        .route("/containers/{id}/stop", post(stop::<B>))
        .route("/containers/{id}/restart", post(restart::<B>))
        .route("/containers/{id}/kill", post(kill::<B>))
        .route("/containers/{id}/pause", post(pause::<B>))
        .route("/containers/{id}/unpause", post(unpause::<B>))
        .route("/containers/{id}/rename", post(rename::<B>))
        .route("/containers/{id}/resize", post(resize::<B>))
        .route("/containers/{id}/wait", post(wait::<B>))
        .route("/containers/{id}/attach", post(attach::<B>))
        .route("/containers/{id}/exec", post(exec_create::<B>))
        .route("/containers/{id}", delete(remove::<B>))
        .route("/containers/{id}/export", get(export::<B>))
        .route("/containers/{id}/changes", get(changes::<B>))
        .route(
            "/containers/{id}/archive",
            get(archive_get::<B>)
                .head(archive_head::<B>)
                .put(archive_put::<B>),
        )
        .route("/containers/prune", post(prune::<B>))
        .route("/commit", post(commit::<B>))
}

/// The header `docker cp` reads the stat of a path from.
const PATH_STAT: &str = "X-Docker-Container-Path-Stat";

async fn export<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<Response<Body>> {
    let producer = d.export_container(&id).await?;
    Ok(body_from_producer("application/x-tar", vec![], producer))
}

async fn changes<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    Ok(Json(d.container_changes(&id).await?))
}

fn archive_path_param(q: &Query) -> Result<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.clone()),
        _ => Err(Error(ApiError::invalid("path parameter is required"))),
    }
}

async fn archive_head<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<Response<Body>> {
    let path = archive_path_param(&q)?;
    let stat = d.stat_path(&id, &path).await?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(PATH_STAT, stat)
        .body(Body::empty())
        .unwrap_or_default())
}

async fn archive_get<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<Response<Body>> {
    let path = archive_path_param(&q)?;
    let (stat, producer) = d.archive_path(&id, &path).await?;
    Ok(body_from_producer(
        "application/x-tar",
        vec![(PATH_STAT, stat)],
        producer,
    ))
}

async fn archive_put<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
    req: Request,
) -> Result<impl IntoResponse> {
    let opts = CopyToOptions {
        path: archive_path_param(&q)?,
        no_overwrite_dir_non_dir: flag(&q, "noOverwriteDirNonDir"),
        copy_uid_gid: flag(&q, "copyUIDGID"),
    };
    d.extract_archive(&id, opts, body_reader(req.into_body()))
        .await?;
    Ok(status(StatusCode::OK))
}

async fn prune<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    Ok(Json(d.prune_containers(filters(&q)?).await?))
}

async fn commit<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
    req: Request,
) -> Result<impl IntoResponse> {
    let changes = crate::images::changes(req.uri().query().unwrap_or(""));
    let body = axum::body::to_bytes(req.into_body(), 16 << 20)
        .await
        .map_err(|e| Error(ApiError::invalid(format!("read body: {e}"))))?;
    let config: Option<berth_api::models::ContainerConfig> =
        if body.trim_ascii().is_empty() || body.trim_ascii() == b"null" {
            None
        } else {
            Some(json_body(&body)?)
        };
    let repo = q.get("repo").cloned().unwrap_or_default();
    let tag = q.get("tag").cloned().unwrap_or_default();
    let reference = match (repo.is_empty(), tag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(repo),
        (false, false) => Some(format!("{repo}:{tag}")),
    };
    let req = CommitRequest {
        container: q.get("container").cloned().unwrap_or_default(),
        reference,
        comment: q.get("comment").cloned().unwrap_or_default(),
        author: q.get("author").cloned().unwrap_or_default(),
        // Docker pauses unless told `pause=0`/`false`.
        pause: !matches!(
            q.get("pause").map(|s| s.as_str()),
            Some("0") | Some("false") | Some("False") | Some("FALSE")
        ),
        changes,
        config,
    };
    let id = d.commit_container(req).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))))
}

fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    if bytes.is_empty() {
        return serde_json::from_slice(b"{}").map_err(|e| Error(ApiError::invalid(e.to_string())));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| Error(ApiError::invalid(format!("invalid JSON: {e}"))))
}

async fn list<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    let mut limit: Option<i64> = int(&q, "limit")?;
    if flag(&q, "latest") && limit.is_none() {
        limit = Some(1);
    }
    let opts = ListOptions {
        all: flag(&q, "all"),
        limit: limit.filter(|n| *n > 0).map(|n| n as usize),
        filters: filters(&q)?,
    };
    let mut list = d.list_containers(&opts)?;
    if flag(&q, "size") {
        for c in &mut list {
            if let Ok((rw, root)) = d.container_size(c.id.as_deref().unwrap_or("")).await {
                c.size_rw = Some(rw);
                c.size_root_fs = Some(root);
            }
        }
    }
    Ok(Json(list))
}

async fn create<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Q(q): Q<Query>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse> {
    let mut body_json: ContainerCreateBody = json_body(&body)?;
    // Before API 1.44 the MAC was `Config.MacAddress`, a field the current model has not:
    // it goes into the endpoint's settings, where clients of 1.44 and later put it.
    if let Ok(raw) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(mac) = raw["MacAddress"].as_str().filter(|m| !m.is_empty()) {
            let mode = body_json
                .host_config
                .as_ref()
                .and_then(|h| h.network_mode.clone())
                .filter(|m| !m.is_empty() && m != "default")
                .unwrap_or_else(|| "bridge".into());
            let eps = body_json
                .networking_config
                .get_or_insert_with(Default::default)
                .endpoints_config
                .get_or_insert_with(Default::default);
            let ep = eps.entry(mode).or_default();
            if ep.mac_address.as_deref().unwrap_or("").is_empty() {
                ep.mac_address = Some(mac.to_string());
            }
        }
    }
    let body = body_json;
    let id = d.create_container(q.get("name").cloned(), body).await?;
    Ok((
        StatusCode::CREATED,
        Json(ContainerCreateResponse {
            id,
            warnings: vec![],
        }),
    ))
}

async fn inspect<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    let mut v = serde_json::to_value(d.inspect_container(&id)?)
        .map_err(|e| Error(ApiError::internal(e.to_string())))?;
    berth_api::zero::fill_container(&mut v);
    if flag(&q, "size") {
        let (rw, root) = d.container_size(&id).await?;
        v["SizeRw"] = rw.into();
        v["SizeRootFs"] = root.into();
    }
    Ok(Json(v))
}

async fn top<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    let ps_args = q.get("ps_args").map(String::as_str);
    Ok(Json(d.top(&id, ps_args).await?))
}

async fn stats<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    // Docker streams unless told not to; one-shot is the same as no stream here.
    let stream = q.get("stream").is_none_or(|_| flag(&q, "stream")) && !flag(&q, "one-shot");
    d.inspect_container(&id)?;
    Ok(body_from("application/json", move |w| async move {
        if let Err(e) = d.write_stats(&id, stream, w).await {
            tracing::warn!("stats: {e}");
        }
    }))
}

async fn update<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse> {
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Error(ApiError::invalid(format!("invalid JSON: {e}"))))?;
    Ok(Json(d.update_container(&id, v).await?))
}

async fn logs<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<Response<Body>> {
    let tty = d.logs_target(&id)?;
    let opts = LogOptions {
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        follow: flag(&q, "follow"),
        timestamps: flag(&q, "timestamps"),
        since: parse_timestamp(q.get("since").map(|s| s.as_str()).unwrap_or(""))?,
        until: parse_timestamp(q.get("until").map(|s| s.as_str()).unwrap_or(""))?,
        tail: match q.get("tail").map(|s| s.as_str()) {
            None | Some("") | Some("all") => None,
            Some(n) => Some(
                n.parse::<i64>()
                    .map_err(|_| Error(ApiError::invalid(format!("invalid value for tail: {n}"))))?
                    .max(0) as usize,
            ),
        },
    };
    if !opts.stdout && !opts.stderr {
        return Err(Error(ApiError::invalid(
            "Bad parameters: you must choose at least one stream",
        )));
    }
    Ok(body_from(
        if tty { RAW } else { MULTIPLEXED },
        move |w| async move {
            if let Err(e) = d.write_logs(&id, opts, w).await {
                tracing::warn!("logs: {e}");
            }
        },
    ))
}

async fn start<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    d.start_container(&id).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

fn timeout(q: &Query) -> Result<Option<i64>> {
    Ok(match int::<i64>(q, "t")? {
        Some(t) => Some(t),
        None => int(q, "timeout")?,
    })
}

async fn stop<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    d.stop_container(&id, timeout(&q)?).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn restart<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    d.restart_container(&id, timeout(&q)?).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn kill<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    d.kill_container(&id, q.get("signal").map(|s| s.as_str()))
        .await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn pause<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    d.pause_container(&id).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn unpause<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    d.unpause_container(&id).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn rename<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    let name = q.get("name").cloned().unwrap_or_default();
    d.rename_container(&id, &name).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

async fn resize<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    let (h, w) = size(&q)?;
    d.resize_container(&id, h, w).await?;
    Ok(status(StatusCode::OK))
}

async fn wait<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<Response<Body>> {
    let cond = WaitCondition::parse(q.get("condition").map(|s| s.as_str()))?;
    let fut = d.wait_container(&id, cond)?;
    Ok(body_from("application/json", move |mut w| async move {
        let body = match fut.await {
            Ok(code) => serde_json::json!({ "StatusCode": code, "Error": null }),
            Err(e) => serde_json::json!({ "StatusCode": -1, "Error": { "Message": e.message } }),
        };
        let _ = w.write_all(format!("{body}\n").as_bytes()).await;
        let _ = w.shutdown().await;
    }))
}

async fn attach<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
    mut req: Request,
) -> Result<Response<Body>> {
    let tty = d.attach_target(&id)?;
    let opts = AttachOptions {
        stdin: flag(&q, "stdin"),
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        stream: flag(&q, "stream"),
        logs: flag(&q, "logs"),
        detach_keys: q.get("detachKeys").cloned(),
    };
    if let Some(k) = &opts.detach_keys {
        if !k.is_empty() {
            berth_api::types::parse_detach_keys(k)?;
        }
    }
    Ok(hijack(
        &mut req,
        if tty { RAW } else { MULTIPLEXED },
        move |io| async move {
            if let Err(e) = d.attach(&id, opts, io).await {
                tracing::warn!("attach: {e}");
            }
        },
    ))
}

async fn exec_create<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse> {
    let cfg: ExecConfig = json_body(&body)?;
    let id = d.create_exec(&id, cfg)?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "Id": id }))))
}

async fn remove<B: ContainerBackend + ExecBackend>(
    State(d): State<Arc<B>>,
    Path(id): Path<String>,
    Q(q): Q<Query>,
) -> Result<impl IntoResponse> {
    d.remove_container(&id, flag(&q, "force"), flag(&q, "v"))
        .await?;
    Ok(status(StatusCode::NO_CONTENT))
}
