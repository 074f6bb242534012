//! A small Engine API client over a unix socket (hyper 1).
//!
//! bollard's typed models are used by the commands; the transport is our own so
//! that raw JSON (for `inspect`), streamed request bodies (`import`) and hijacked
//! connections (`attach`, `exec`) behave exactly like the docker CLI.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use crate::error::CliError;

/// The newest API version this client speaks.
pub const CLIENT_API_VERSION: &str = "1.45";
/// The default daemon address.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

pub type ReqBody = BoxBody<Bytes, std::io::Error>;

pub fn empty_body() -> ReqBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn bytes_body(b: impl Into<Bytes>) -> ReqBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    host: String,
    /// Whether the host was given (`-H`, `BERTH_HOST`): no daemon is started for it.
    explicit: bool,
    /// The API version in use, once it is known (see `connect_lazy`). Its initialization is
    /// single-flight: tasks of one command that need it together wait for one `/_ping` (and at
    /// most one start of the daemon).
    version: std::sync::Arc<tokio::sync::OnceCell<String>>,
}

/// Query string builder (`application/x-www-form-urlencoded`).
#[derive(Default, Debug)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(mut self, k: &str, v: impl ToString) -> Self {
        self.0.push((k.to_string(), v.to_string()));
        self
    }
    pub fn add_if(self, cond: bool, k: &str, v: impl ToString) -> Self {
        if cond {
            self.add(k, v)
        } else {
            self
        }
    }
    pub fn encode(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }
}

/// Percent-encode one path segment (container/image names may hold `/` and `:`).
/// Like the docker client, `/` and `:` are left as they are.
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => out.push(b as char),
            b'-' | b'_' | b'.' | b'~' | b'/' | b':' | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn socket_path(host: &str) -> Result<PathBuf, CliError> {
    match host.strip_prefix("unix://") {
        Some(p) => Ok(PathBuf::from(p)),
        None => Err(CliError::msg(format!(
            "unable to parse docker host `{host}`: only unix:// sockets are supported"
        ))),
    }
}

/// Why a request got no response: nothing answered on the socket, or the exchange broke.
#[derive(Debug)]
enum SendError {
    Connect(std::io::Error),
    Exchange(String),
}

async fn raw_send(socket: &Path, req: Request<ReqBody>) -> Result<Response<Incoming>, SendError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(SendError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| SendError::Exchange(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    let what = format!("{} {}", req.method(), req.uri().path());
    sender.send_request(req).await.map_err(|e| {
        let mut m = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            m = format!("{m}: {s}");
            src = s.source();
        }
        SendError::Exchange(format!("error during connect: {what}: {m}"))
    })
}

impl Client {
    fn send_error(&self, e: SendError) -> CliError {
        match e {
            SendError::Connect(_) => CliError::msg(format!(
                "Cannot connect to the berth daemon at {}. Is the berth daemon running?",
                self.host
            )),
            SendError::Exchange(m) => CliError::msg(m),
        }
    }
}

async fn ping(socket: &Path) -> Result<Option<String>, std::io::Error> {
    let req = Request::get("/_ping")
        .header("Host", "berth")
        .body(empty_body())
        .map_err(std::io::Error::other)?;
    let resp = tokio::time::timeout(Duration::from_secs(10), raw_send(socket, req))
        .await
        .map_err(|_| std::io::Error::other("timeout"))?
        .map_err(|e| match e {
            SendError::Connect(e) => e,
            SendError::Exchange(m) => std::io::Error::other(m),
        })?;
    Ok(resp
        .headers()
        .get("api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string))
}

/// The daemon's newest API version from its answer to a client too new for it (Docker's
/// words, which berth's daemon also uses): "client version 1.47 is too new. Maximum supported
/// API version is 1.41".
fn max_version_of(msg: &str) -> Option<String> {
    let rest = msg
        .split("is too new. Maximum supported API version is ")
        .nth(1)?;
    let v: String = rest
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    (v.contains('.') && !v.starts_with('.') && !v.ends_with('.')).then_some(v)
}

/// Compare dotted versions ("1.41" < "1.45").
pub fn version_lt(a: &str, b: &str) -> bool {
    let p = |s: &str| -> Vec<u64> { s.split('.').map(|x| x.parse().unwrap_or(0)).collect() };
    p(a) < p(b)
}

fn spawn_daemon() -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe()?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open("/var/log/berth.log")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("daemon")
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and only detaches the child from our session.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    cmd.spawn()?;
    Ok(())
}

impl Client {
    /// Connect to `host` (or the default), negotiate the API version, and start
    /// the daemon when the default socket is dead and we are root.
    pub async fn connect(host: Option<String>) -> Result<Client, CliError> {
        let c = Client::connect_lazy(host)?;
        c.negotiate().await?;
        Ok(c)
    }

    /// A client that negotiates the API version only when it must: its first request with a
    /// small body (`request`, `get`, `post`, `post_json`) goes at once with this client's own
    /// version, and is sent again, once, with the daemon's when the daemon refuses it (a 400:
    /// "too new", or other words, then a `/_ping` says its version) before acting on it. Against a
    /// daemon of the same version that spares the `/_ping` round trip before every command.
    /// A dead default socket is handled as `connect` does; streaming requests and hijacked
    /// connections negotiate first.
    pub fn connect_lazy(host: Option<String>) -> Result<Client, CliError> {
        let explicit = host.is_some();
        let host = host.unwrap_or_else(|| DEFAULT_HOST.to_string());
        let socket = socket_path(&host)?;
        Ok(Client {
            socket,
            host,
            explicit,
            version: Default::default(),
        })
    }

    /// Ping the daemon (starting it when the default socket is dead and we are root) and take
    /// the older of its API version and ours, unless a version is known already.
    async fn negotiate(&self) -> Result<(), CliError> {
        self.version
            .get_or_try_init(|| self.ping_version())
            .await
            .map(|_| ())
    }

    /// The API version to use, from `/_ping` (see `negotiate`).
    async fn ping_version(&self) -> Result<String, CliError> {
        let host = &self.host;
        let socket = &self.socket;
        let cannot = || {
            CliError::msg(format!(
                "Cannot connect to the berth daemon at {host}. Is the berth daemon running?"
            ))
        };
        let server_version = match ping(socket).await {
            Ok(v) => v,
            Err(_) if !self.explicit && nix::unistd::geteuid().is_root() => {
                spawn_daemon().map_err(|_| cannot())?;
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if let Ok(v) = ping(socket).await {
                        break v;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(cannot());
                    }
                }
            }
            Err(_) => return Err(cannot()),
        };
        Ok(match server_version {
            Some(v) if version_lt(&v, CLIENT_API_VERSION) => v,
            _ => CLIENT_API_VERSION.to_string(),
        })
    }

    /// Settle on `v`, unless a version is known already.
    fn set_version(&self, v: String) {
        let _ = self.version.set(v);
    }

    /// The API version in use (this client's own until one was negotiated).
    pub fn api_version(&self) -> String {
        self.version
            .get()
            .cloned()
            .unwrap_or_else(|| CLIENT_API_VERSION.to_string())
    }

    fn uri(&self, path: &str, query: &Query) -> String {
        let q = query.encode();
        let v = self.api_version();
        if q.is_empty() {
            format!("/v{v}{path}")
        } else {
            format!("/v{v}{path}?{q}")
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Request<ReqBody> {
        self.build_with(method, path, query, body, content_type, &[])
    }

    fn build_with(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: ReqBody,
        content_type: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Request<ReqBody> {
        let mut b = Request::builder()
            .method(method)
            .uri(self.uri(path, query))
            .header("Host", "berth")
            .header("User-Agent", "berth-cli");
        if let Some(ct) = content_type {
            b = b.header("Content-Type", ct);
        }
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(body).expect("valid request")
    }

    /// `send` with a registry's credentials, when there are some, as `X-Registry-Auth`.
    pub async fn send_with_registry_auth(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: ReqBody,
        registry_auth: Option<&str>,
    ) -> Result<Response<Incoming>, CliError> {
        self.negotiate().await?;
        let headers: Vec<(&str, &str)> = registry_auth
            .map(|a| ("X-Registry-Auth", a))
            .into_iter()
            .collect();
        let req = self.build_with(method, path, query, body, None, &headers);
        let resp = raw_send(&self.socket, req)
            .await
            .map_err(|e| self.send_error(e))?;
        Self::checked(resp).await
    }

    /// Send a request; non-2xx statuses become `CliError::Daemon`.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>, CliError> {
        self.negotiate().await?;
        let req = self.build(method, path, query, body, content_type);
        let resp = raw_send(&self.socket, req)
            .await
            .map_err(|e| self.send_error(e))?;
        Self::checked(resp).await
    }

    /// A response, or its non-2xx status as `CliError::Daemon`.
    async fn checked(resp: Response<Incoming>) -> Result<Response<Incoming>, CliError> {
        // As docker's client: any status under 400 is an answer, not an error (a start of a
        // running container is a 304, and `docker start` prints its name)
        if resp.status().as_u16() < 400 {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        Err(CliError::daemon(status.as_u16(), error_message(&body)))
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        json: Option<&serde_json::Value>,
    ) -> Result<Bytes, CliError> {
        let (body, ct) = match json {
            Some(v) => (
                Bytes::from(serde_json::to_vec(v).unwrap_or_default()),
                Some("application/json"),
            ),
            None => (Bytes::new(), None),
        };
        if self.version.initialized() {
            let resp = self.send(method, path, query, bytes_body(body), ct).await?;
            return read_all(resp).await;
        }
        // No version yet: this client's own, and the daemon's if it says ours is too new.
        let req = self.build(method.clone(), path, query, bytes_body(body.clone()), ct);
        let resp = match raw_send(&self.socket, req).await {
            Ok(resp) => resp,
            // Nothing answers: as `connect` (which may start the daemon), then once more.
            Err(SendError::Connect(_)) => {
                let resp = self.send(method, path, query, bytes_body(body), ct).await?;
                return read_all(resp).await;
            }
            Err(e) => return Err(self.send_error(e)),
        };
        if resp.status() == StatusCode::BAD_REQUEST {
            let msg = error_message(&read_all(resp).await?);
            if let Some(max) = max_version_of(&msg) {
                self.set_version(max);
                let resp = self.send(method, path, query, bytes_body(body), ct).await?;
                return read_all(resp).await;
            }
            // Another daemon's words for "too new" (older dockerds say "client is newer than
            // server"), or a request it refused: ask its version with `/_ping`, and send the
            // request again if that is older than ours. A 400 is a refusal: nothing was done.
            self.negotiate().await?;
            if self.api_version() != CLIENT_API_VERSION {
                let resp = self.send(method, path, query, bytes_body(body), ct).await?;
                return read_all(resp).await;
            }
            return Err(CliError::daemon(400, msg));
        }
        self.set_version(CLIENT_API_VERSION.to_string());
        read_all(Self::checked(resp).await?).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str, query: &Query) -> Result<T, CliError> {
        let b = self.request(Method::GET, path, query, None).await?;
        serde_json::from_slice(&b)
            .map_err(|e| CliError::msg(format!("error decoding response: {e}")))
    }

    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &Query,
        json: &serde_json::Value,
    ) -> Result<T, CliError> {
        let b = self.request(Method::POST, path, query, Some(json)).await?;
        serde_json::from_slice(&b)
            .map_err(|e| CliError::msg(format!("error decoding response: {e}")))
    }

    pub async fn post(&self, path: &str, query: &Query) -> Result<Bytes, CliError> {
        self.request(Method::POST, path, query, None).await
    }

    /// Open a hijacked (upgraded) connection, as for attach and exec start.
    pub async fn hijack(
        &self,
        path: &str,
        query: &Query,
        json: Option<&serde_json::Value>,
    ) -> Result<TokioIo<Upgraded>, CliError> {
        let (body, ct) = match json {
            Some(v) => (
                bytes_body(serde_json::to_vec(v).unwrap_or_default()),
                Some("application/json"),
            ),
            None => (empty_body(), None),
        };
        self.negotiate().await?;
        let mut req = self.build(Method::POST, path, query, body, ct);
        req.headers_mut()
            .insert("Connection", http::HeaderValue::from_static("Upgrade"));
        req.headers_mut()
            .insert("Upgrade", http::HeaderValue::from_static("tcp"));
        let resp = raw_send(&self.socket, req)
            .await
            .map_err(|e| self.send_error(e))?;
        let status = resp.status();
        if !status.is_success() && status != StatusCode::SWITCHING_PROTOCOLS {
            let body = read_all(resp).await.unwrap_or_default();
            return Err(CliError::daemon(status.as_u16(), error_message(&body)));
        }
        let up = hyper::upgrade::on(resp)
            .await
            .map_err(|e| CliError::msg(format!("error upgrading connection: {e}")))?;
        Ok(TokioIo::new(up))
    }
}

pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes, CliError> {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| CliError::msg(format!("error reading response: {e}")))
}

/// The daemon's `{"message": "..."}` error body, or the raw text.
pub fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct E {
        message: String,
    }
    match serde_json::from_slice::<E>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_new_answers() {
        assert_eq!(
            max_version_of("client version 1.47 is too new. Maximum supported API version is 1.41")
                .as_deref(),
            Some("1.41")
        );
        assert_eq!(max_version_of("No such container: x"), None);
        assert_eq!(
            max_version_of("client version 1.47 is too new. Maximum supported API version is "),
            None
        );
    }

    #[test]
    fn versions() {
        assert!(version_lt("1.41", "1.45"));
        assert!(!version_lt("1.45", "1.45"));
        assert!(version_lt("1.9", "1.10"));
    }

    #[test]
    fn query_and_segments() {
        let q = Query::new()
            .add("repo", "a/b")
            .add("changes", "CMD [\"x\"]");
        assert_eq!(q.encode(), "repo=a%2Fb&changes=CMD+%5B%22x%22%5D");
        assert_eq!(seg("a b"), "a%20b");
        assert_eq!(
            error_message(br#"{"message":"No such container: x"}"#),
            "No such container: x"
        );
    }

    #[test]
    fn host_parsing() {
        assert_eq!(
            socket_path("unix:///tmp/x.sock").unwrap(),
            PathBuf::from("/tmp/x.sock")
        );
        assert!(socket_path("tcp://1.2.3.4:2375").is_err());
    }
}
