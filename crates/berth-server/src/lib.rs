//! The Docker Engine API over HTTP: routing, version negotiation, errors, hijacked streams.
//!
//! Each resource has its module; handlers parse the request into typed calls on
//! [`berth_daemon::Daemon`], and [`ApiError`]s become responses in one place ([`error_response`]).

pub mod backend;
mod build;
mod containers;
mod exec;
mod images;
mod networks;
mod query;
mod stream;
mod system;
mod volumes;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, Response, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Router;
pub use backend::Backend;
use berth_api::{ApiError, ErrorKind};
use std::sync::Arc;

/// An error as a response: Docker's `{"message": …}` with the kind's status.
pub struct Error(pub ApiError);

impl From<ApiError> for Error {
    fn from(e: ApiError) -> Self {
        Error(e)
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> axum::response::Response {
        error_response(&self.0)
    }
}

/// The one mapping from errors to HTTP responses.
pub fn error_response(e: &ApiError) -> axum::response::Response {
    let status = StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if e.kind == ErrorKind::NotModified {
        return status.into_response();
    }
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        e.body() + "\n",
    )
        .into_response()
}

type Result<T> = std::result::Result<T, Error>;

/// The API's routes, without the version prefix.
pub fn router<B: Backend>(backend: Arc<B>) -> Router {
    Router::new()
        .merge(system::routes::<B>())
        .merge(containers::routes::<B>())
        .merge(exec::routes::<B>())
        .merge(images::routes::<B>())
        .merge(build::routes::<B>())
        .merge(networks::routes::<B>())
        .merge(volumes::routes::<B>())
        .fallback(|uri: Uri| async move {
            Error(ApiError::not_found(format!(
                "page not found: {}",
                uri.path()
            )))
        })
        .with_state(backend)
        .layer(axum::middleware::map_response(add_headers))
}

async fn add_headers(mut r: axum::response::Response) -> axum::response::Response {
    let h = r.headers_mut();
    h.insert(
        "Api-Version",
        HeaderValue::from_static(berth_api::API_VERSION),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&format!("Berth/{} (linux)", berth_api::VERSION)) {
        h.insert(header::SERVER, v);
    }
    r
}

/// Strip `/v1.xx` from the path, refusing versions berth does not serve.
fn strip_version(mut req: Request<Body>) -> std::result::Result<Request<Body>, ApiError> {
    let path = req.uri().path();
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok(req);
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return Ok(req),
    };
    let Some(v) = berth_api::parse_version(ver) else {
        return Ok(req);
    };
    if Some(v) > berth_api::parse_version(berth_api::API_VERSION) {
        return Err(ApiError::invalid(format!(
            "client version {ver} is too new. Maximum supported API version is {}",
            berth_api::API_VERSION
        )));
    }
    if Some(v) < berth_api::parse_version(berth_api::MIN_API_VERSION) {
        return Err(ApiError::invalid(format!(
            "client version {ver} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            berth_api::MIN_API_VERSION
        )));
    }
    let new = match req.uri().query() {
        Some(q) => format!("{tail}?{q}"),
        None => tail.to_string(),
    };
    if let Ok(u) = new.parse::<Uri>() {
        *req.uri_mut() = u;
    }
    Ok(req)
}

/// Serve the API on unix sockets until the process is told to stop.
pub async fn serve<B: Backend>(
    backend: Arc<B>,
    listeners: Vec<tokio::net::UnixListener>,
) -> std::io::Result<()> {
    let svc = router(backend);
    let mut tasks = Vec::new();
    for l in listeners {
        let svc = svc.clone();
        tasks.push(tokio::spawn(async move {
            let app = tower::service_fn(move |req: Request<Body>| {
                let mut svc = svc.clone();
                async move {
                    match strip_version(req) {
                        Ok(req) => tower::Service::call(&mut svc, req).await,
                        Err(e) => Ok(error_response(&e)),
                    }
                }
            });
            axum::serve(l, axum::ServiceExt::<Request<Body>>::into_make_service(app)).await
        }));
    }
    for t in tasks {
        t.await.map_err(std::io::Error::other)??;
    }
    Ok(())
}

/// An empty response with a status.
fn status(code: StatusCode) -> Response<Body> {
    code.into_response()
}
