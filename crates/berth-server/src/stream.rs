//! Hijacked connections (attach, exec) and streamed bodies (logs, wait, import progress).

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use berth_api::types::Stream;
use berth_api::ApiError;
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

/// A streamed body written by blocking work: `produce` runs on a blocking thread and writes
/// into large chunks that flow to the client; if it fails, the body ends with an error so
/// that the transfer is visibly cut short.
pub fn body_from_producer(
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    produce: berth_api::types::Producer,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    tokio::task::spawn_blocking(move || {
        let mut w = ChunkWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(CHUNK),
        };
        let r = produce(&mut w).and_then(|()| {
            std::io::Write::flush(&mut w).map_err(|e| berth_api::ApiError::internal(e.to_string()))
        });
        if let Err(e) = r {
            tracing::warn!("streamed response failed: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.message)));
        }
    });
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type);
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(Body::from_stream(tokio_stream_from(rx)))
        .unwrap_or_default()
}

const CHUNK: usize = 512 * 1024;

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Buffers writes into chunks and sends them to the response body.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(bytes::Bytes::from(chunk)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl std::io::Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + data.len() > CHUNK {
            self.send()?;
        }
        if data.len() >= CHUNK {
            self.tx
                .blocking_send(Ok(bytes::Bytes::copy_from_slice(data)))
                .map_err(|_| {
                    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
                })?;
        } else {
            self.buf.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// A request body as a blocking reader (for the image store and the archive extractor).
pub fn body_reader(body: Body) -> Box<dyn std::io::Read + Send> {
    use futures_util::TryStreamExt;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    Box::new(tokio_util::io::SyncIoBridge::new(
        tokio_util::io::StreamReader::new(stream),
    ))
}

/// One message of Docker's JSON stream, as a body chunk.
fn line(v: &serde_json::Value) -> bytes::Bytes {
    bytes::Bytes::from(v.to_string() + "\r\n")
}

/// What becomes of the work when its client hangs up before it ends.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnHangup {
    /// It goes on (a build, whose steps run containers that must be ended in order).
    Finish,
    /// It is cancelled, as dockerd cancels a pull or a push whose client has gone: its
    /// future is dropped at its next await, which the work must allow.
    Cancel,
}

/// Runs `work` with a channel of Docker's JSON messages and answers with them as they come.
/// Errors before the first message become an HTTP error (as dockerd's, before its output is
/// flushed); after it, they are one more message in the stream itself.
pub(crate) async fn progress_response<F, Fut>(
    on_hangup: OnHangup,
    work: F,
) -> crate::Result<Response<Body>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<serde_json::Value>) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<(), ApiError>> + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<serde_json::Value>(256);
    let mut task = Work {
        handle: tokio::spawn(work(tx)),
        on_hangup,
    };
    // The work holds the only sender: no first message means it has ended, and how it ended
    // is the request's answer.
    let (first, pending) = match rx.recv().await {
        Some(ev) => (Some(ev), Some(Ending::Task(task))),
        None => {
            (&mut task.handle)
                .await
                .map_err(|e| crate::Error(ApiError::internal(e.to_string())))??;
            (None, None)
        }
    };
    let stream = async_stream(first, rx, pending);
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(stream))
        .unwrap_or_default())
}

/// The task behind a stream of messages, waited for once its messages are out.
enum Ending {
    Task(Work),
}

/// The work's task; dropped before it ended (the client hung up, and the response with
/// it), it is aborted if it is to be cancelled.
struct Work {
    handle: tokio::task::JoinHandle<std::result::Result<(), ApiError>>,
    on_hangup: OnHangup,
}

impl Drop for Work {
    fn drop(&mut self) {
        if self.on_hangup == OnHangup::Cancel && !self.handle.is_finished() {
            tracing::info!("the client hung up: cancelling its request");
            self.handle.abort();
        }
    }
}

/// The rest of the messages, as body chunks; an error the work returns late is one more.
fn async_stream(
    first: Option<serde_json::Value>,
    rx: tokio::sync::mpsc::Receiver<serde_json::Value>,
    task: Option<Ending>,
) -> impl futures_util::Stream<Item = std::result::Result<bytes::Bytes, std::io::Error>> {
    futures_util::stream::unfold(
        (first, rx, task),
        |(mut first, mut rx, mut task)| async move {
            if let Some(v) = first.take() {
                return Some((Ok(line(&v)), (None, rx, task)));
            }
            if let Some(v) = rx.recv().await {
                return Some((Ok(line(&v)), (None, rx, task)));
            }
            // (a task that panicked ends the stream with an error too)
            let ended = match task.take()? {
                Ending::Task(mut t) => Some(
                    (&mut t.handle)
                        .await
                        .unwrap_or_else(|e| Err(ApiError::internal(e.to_string()))),
                ),
            };
            match ended {
                Some(Err(e)) => {
                    let v = serde_json::json!({
                        "errorDetail": {"message": e.message},
                        "error": e.message,
                    });
                    Some((Ok(line(&v)), (None, rx, None)))
                }
                _ => None,
            }
        },
    )
}
