//! Hijacked connections (attach, exec) and streamed bodies (logs, wait, import progress).

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use berth_api::types::Stream;
use futures_util::Future;
use hyper_util::rt::TokioIo;

pub const RAW: &str = "application/vnd.docker.raw-stream";
pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";

/// Take over the connection. A client that asked to upgrade (`Connection: Upgrade`,
/// `Upgrade: tcp`, as the docker CLI does) gets `101` and a raw duplex stream; any other gets
/// `200` and the output as a streamed body (without stdin).
pub fn hijack<F, Fut>(req: &mut Request<Body>, content_type: &'static str, run: F) -> Response<Body>
where
    F: FnOnce(Box<dyn Stream>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.eq_ignore_ascii_case("tcp"))
        .unwrap_or(false);
    if wants_upgrade {
        let upgrade = hyper::upgrade::on(req);
        tokio::spawn(async move {
            match upgrade.await {
                Ok(up) => run(Box::new(TokioIo::new(up))).await,
                Err(e) => tracing::warn!("upgrade failed: {e}"),
            }
        });
        return Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "Upgrade")
            .header(header::UPGRADE, "tcp")
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::empty())
            .unwrap_or_default();
    }
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(run(Box::new(ours)));
    let (r, _w) = tokio::io::split(theirs);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(r)))
        .unwrap_or_default()
}

/// A streamed body fed by `write`, which gets the writing end of a pipe.
pub fn body_from<F, Fut>(content_type: &'static str, write: F) -> Response<Body>
where
    F: FnOnce(tokio::io::DuplexStream) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (w, r) = tokio::io::duplex(64 * 1024);
    tokio::spawn(write(w));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(tokio_util::io::ReaderStream::new(r)))
        .unwrap_or_default()
}
