//! import, tag, rmi, and pulling (for `run`).

use bytes::Bytes;
use http::Method;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::Value;

use crate::cli::{ImportArgs, PullArgs, PushArgs, RmiArgs, TagArgs};
use crate::client::{empty_body, seg, Client, Query, ReqBody};
use crate::error::{CliError, Result};
use crate::opts::{io_msg, split_repo_tag};

/// One line of docker's JSON progress output, or the error it carries.
pub fn json_message_line(v: &Value) -> std::result::Result<Option<String>, String> {
    if let Some(e) = v
        .get("errorDetail")
        .and_then(|d| d.get("message"))
        .and_then(|m| m.as_str())
    {
        return Err(e.to_string());
    }
    if let Some(e) = v.get("error").and_then(|m| m.as_str()) {
        return Err(e.to_string());
    }
    let status = v.get("status").and_then(|s| s.as_str()).unwrap_or("");
    let id = v.get("id").and_then(|s| s.as_str()).unwrap_or("");
    let progress = v.get("progress").and_then(|s| s.as_str()).unwrap_or("");
    if status.is_empty() && id.is_empty() {
        return Ok(v
            .get("stream")
            .and_then(|s| s.as_str())
            .map(|s| s.trim_end_matches('\n').to_string()));
    }
    let mut line = String::new();
    if !id.is_empty() {
        line.push_str(id);
        line.push_str(": ");
    }
    line.push_str(status);
    if !progress.is_empty() {
        line.push(' ');
        line.push_str(progress);
    }
    Ok(Some(line))
}

/// Docker's display of a JSON message stream (its `jsonmessage`). On a terminal each layer
/// keeps a line of its own, rewritten in place (the cursor moved up to it and back) with its
/// progress bar; elsewhere the messages that carry a transfer's progress are left out and the
/// others printed a line each.
pub(crate) struct MessageDisplay {
    terminal: bool,
    /// The terminal's width: a bar is drawn when it is over 110 columns.
    width: usize,
    /// The line of each layer shown since the last message of no layer, from the top.
    ids: Vec<String>,
}

impl MessageDisplay {
    pub(crate) fn new(terminal: bool, width: usize) -> MessageDisplay {
        MessageDisplay {
            terminal,
            width,
            ids: Vec::new(),
        }
    }

    /// Shows one message; an `error` message is returned instead.
    pub(crate) fn show(
        &mut self,
        v: &Value,
        out: &mut impl std::io::Write,
    ) -> std::result::Result<(), String> {
        if v.get("aux").is_some_and(|a| !a.is_null()) {
            return Ok(());
        }
        if v.get("errorDetail")
            .and_then(|d| d.get("code"))
            .and_then(|c| c.as_i64())
            == Some(401)
        {
            return Err("authentication is required".into());
        }
        if let Some(e) = v
            .get("errorDetail")
            .and_then(|d| d.get("message"))
            .and_then(|m| m.as_str())
            .or_else(|| v.get("error").and_then(|m| m.as_str()))
        {
            return Err(e.to_string());
        }
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("");
        let (id, status, stream, message) = (s("id"), s("status"), s("stream"), s("progress"));
        let detail = v.get("progressDetail").filter(|d| d.is_object());
        let count = |k: &str| {
            detail
                .and_then(|d| d.get(k))
                .and_then(|x| x.as_u64())
                .unwrap_or(0)
        };
        let bar = detail.map(|_| {
            berth_api::units::progress_string(count("current"), count("total"), self.width)
        });
        let w = |out: &mut dyn std::io::Write, t: &str| out.write_all(t.as_bytes());
        let r = (|| -> std::io::Result<()> {
            let mut diff = 0;
            if !id.is_empty() && (detail.is_some() || !message.is_empty()) {
                let line = match self.ids.iter().position(|i| i == id) {
                    Some(l) => l,
                    None => {
                        self.ids.push(id.to_string());
                        if self.terminal {
                            w(out, "\n")?;
                        }
                        self.ids.len() - 1
                    }
                };
                diff = self.ids.len() - line;
                if self.terminal {
                    w(out, &format!("\x1b[{diff}A"))?;
                }
            } else {
                self.ids.clear();
            }
            let mut endl = "";
            // (no progress bars but on a terminal)
            let mut shown = true;
            if self.terminal && stream.is_empty() && detail.is_some() {
                w(out, "\x1b[2K\r")?;
                endl = "\r";
            } else if bar.as_deref().is_some_and(|b| !b.is_empty()) {
                shown = false;
            }
            if shown {
                if !id.is_empty() {
                    w(out, &format!("{id}: "))?;
                }
                if let (Some(bar), true) = (&bar, self.terminal) {
                    w(out, &format!("{status} {bar}{endl}"))?;
                } else if !message.is_empty() {
                    w(out, &format!("{status} {message}{endl}"))?;
                } else if !stream.is_empty() {
                    w(out, &format!("{stream}{endl}"))?;
                } else {
                    w(out, &format!("{status}{endl}\n"))?;
                }
            }
            // (no move is written as none: a terminal reads `ESC[0B` as one line)
            if !id.is_empty() && self.terminal && diff > 0 {
                w(out, &format!("\x1b[{diff}B"))?;
            }
            Ok(())
        })();
        // (a closed output is not the stream's error)
        let _ = r.and_then(|_| out.flush());
        Ok(())
    }
}

/// Print a JSON message stream as it arrives, as docker does (`MessageDisplay`); fails on an
/// `error` message.
pub async fn display_stream(resp: http::Response<Incoming>, to_stderr: bool) -> Result<()> {
    let fd = if to_stderr { 2 } else { 1 };
    let terminal = crate::stream::is_tty(fd);
    // (docker's width when the terminal's is unknown)
    let width = crate::stream::term_size_of(fd).map_or(200, |(_, w)| w as usize);
    let mut display = MessageDisplay::new(terminal, width);
    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::new();
    let mut emit = |buf: &mut Vec<u8>, last: bool| -> Result<()> {
        let mut consumed = 0;
        {
            let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<Value>();
            loop {
                match it.next() {
                    Some(Ok(v)) => {
                        consumed = it.byte_offset();
                        let shown = if to_stderr {
                            display.show(&v, &mut std::io::stderr().lock())
                        } else {
                            display.show(&v, &mut std::io::stdout().lock())
                        };
                        shown.map_err(CliError::msg)?;
                    }
                    Some(Err(e)) if last && !e.is_eof() => {
                        return Err(CliError::msg(format!("error decoding response: {e}")))
                    }
                    _ => break,
                }
            }
        }
        buf.drain(..consumed);
        Ok(())
    };
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::msg(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            buf.extend_from_slice(&data);
            emit(&mut buf, false)?;
        }
    }
    emit(&mut buf, true)
}

/// `POST /images/create?fromImage=…&tag=…` with the registry's credentials: the answer,
/// docker's JSON message stream.
async fn pull_response(c: &Client, image: &str) -> Result<http::Response<Incoming>> {
    let (repo, tag) = split_repo_tag(image);
    let tag = if tag.is_empty() && !image.contains('@') {
        "latest".to_string()
    } else {
        tag
    };
    let from = if image.contains('@') {
        image.to_string()
    } else {
        repo
    };
    let q = Query::new()
        .add("fromImage", from)
        .add_if(!tag.is_empty(), "tag", tag);
    let auth = super::login::auth_header(image);
    c.send_with_registry_auth(
        Method::POST,
        "/images/create",
        &q,
        empty_body(),
        auth.as_deref(),
    )
    .await
}

/// A pull, its progress to stderr when `to_stderr`.
pub async fn pull(c: &Client, image: &str, to_stderr: bool) -> Result<()> {
    display_stream(pull_response(c, image).await?, to_stderr).await
}

/// `berth pull`: progress on stdout, then the image's full name, as docker prints them.
pub async fn pull_cmd(c: &Client, a: PullArgs) -> Result<i32> {
    if a.all_tags {
        return Err(CliError::msg(
            "pulling all tags (-a) is not supported by berth yet",
        ));
    }
    if let Some(p) = a.platform.as_deref().filter(|p| !p.is_empty()) {
        let host = format!(
            "linux/{}",
            std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64")
        );
        if p != host {
            return Err(CliError::msg(format!(
                "image with reference {} was found but does not match the specified platform: wanted {p}",
                a.image
            )));
        }
    }
    let (_, tag) = split_repo_tag(&a.image);
    if tag.is_empty() && !a.image.contains('@') && !a.quiet {
        println!("Using default tag: latest");
    }
    if a.quiet {
        // progress read and dropped: errors still end the command
        let resp = pull_response(c, &a.image).await?;
        drain_stream(resp).await?;
    } else {
        pull(c, &a.image, false).await?;
    }
    println!("{}", full_name(&a.image));
    Ok(0)
}

/// `busybox` → `docker.io/library/busybox:latest`, as docker prints after a pull or push.
fn full_name(image: &str) -> String {
    let (repo, tag) = split_repo_tag(image);
    let first = repo.split('/').next().unwrap_or("");
    let domain_given =
        repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = if domain_given {
        repo
    } else if repo.contains('/') {
        format!("docker.io/{repo}")
    } else {
        format!("docker.io/library/{repo}")
    };
    if let Some((_, digest)) = image.split_once('@') {
        let repo = repo.split('@').next().unwrap_or(&repo).to_string();
        format!("{repo}@{digest}")
    } else if tag.is_empty() {
        format!("{repo}:latest")
    } else {
        format!("{repo}:{tag}")
    }
}

/// Reads a JSON message stream to its end, failing on its first error message.
async fn drain_stream(resp: http::Response<Incoming>) -> Result<()> {
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| CliError::msg(e.to_string()))?
        .to_bytes();
    for v in serde_json::Deserializer::from_slice(&body).into_iter::<Value>() {
        let v = v.map_err(|e| CliError::msg(format!("error decoding response: {e}")))?;
        json_message_line(&v).map_err(CliError::msg)?;
    }
    Ok(())
}

/// `berth push`: `POST /images/{name}/push?tag=…`, progress on stdout.
pub async fn push(c: &Client, a: PushArgs) -> Result<i32> {
    if a.all_tags {
        return Err(CliError::msg(
            "pushing all tags (-a) is not supported by berth yet",
        ));
    }
    let (repo, tag) = split_repo_tag(&a.image);
    if tag.is_empty() && !a.quiet {
        println!("Using default tag: latest");
    }
    let q = Query::new().add_if(!tag.is_empty(), "tag", tag);
    let auth = super::login::auth_header(&a.image);
    let resp = c
        .send_with_registry_auth(
            Method::POST,
            &format!("/images/{}/push", seg(&repo)),
            &q,
            empty_body(),
            auth.as_deref(),
        )
        .await?;
    if a.quiet {
        drain_stream(resp).await?;
        println!("{}", full_name(&a.image));
    } else {
        display_stream(resp, false).await?;
    }
    Ok(0)
}

/// Uploads go in large chunks: each chunk is one frame for the daemon to hand over.
const UPLOAD_CHUNK: usize = 1 << 20;

pub(crate) fn file_body(file: tokio::fs::File) -> ReqBody {
    use futures_util::StreamExt;
    let s = tokio_util::io::ReaderStream::with_capacity(file, UPLOAD_CHUNK)
        .map(|r| r.map(|b: Bytes| Frame::data(b)));
    BodyExt::boxed(StreamBody::new(s))
}

pub(crate) fn stdin_body() -> ReqBody {
    use futures_util::StreamExt;
    let s = tokio_util::io::ReaderStream::with_capacity(tokio::io::stdin(), UPLOAD_CHUNK)
        .map(|r| r.map(|b: Bytes| Frame::data(b)));
    BodyExt::boxed(StreamBody::new(s))
}

pub async fn import(c: &Client, a: ImportArgs) -> Result<i32> {
    let mut q = Query::new();
    let is_url = a.source.starts_with("http://") || a.source.starts_with("https://");
    let body = if a.source == "-" {
        q = q.add("fromSrc", "-");
        stdin_body()
    } else if is_url {
        q = q.add("fromSrc", &a.source);
        empty_body()
    } else {
        let f = tokio::fs::File::open(&a.source)
            .await
            .map_err(|e| CliError::msg(format!("open {}: {}", a.source, io_msg(&e))))?;
        q = q.add("fromSrc", "-");
        file_body(f)
    };
    if let Some(r) = &a.reference {
        let (repo, tag) = split_repo_tag(r);
        if repo.is_empty() || repo.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(CliError::msg(format!(
                "invalid reference format: repository name ({repo}) must be lowercase"
            )));
        }
        q = q.add("repo", repo).add_if(!tag.is_empty(), "tag", tag);
    }
    if let Some(m) = &a.message {
        q = q.add("message", m);
    }
    for ch in &a.change {
        q = q.add("changes", ch);
    }
    if let Some(p) = &a.platform {
        q = q.add("platform", p);
    }
    let ct = if is_url {
        None
    } else {
        Some("application/x-tar")
    };
    let resp = c.send(Method::POST, "/images/create", &q, body, ct).await?;
    display_stream(resp, false).await?;
    Ok(0)
}

pub async fn tag(c: &Client, a: TagArgs) -> Result<i32> {
    let (repo, tag) = split_repo_tag(&a.target);
    let q = Query::new()
        .add("repo", repo)
        .add_if(!tag.is_empty(), "tag", tag);
    c.post(&format!("/images/{}/tag", seg(&a.source)), &q)
        .await?;
    Ok(0)
}

/// The lines `rmi` prints for the daemon's delete response.
pub fn rmi_lines(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for item in v.as_array().into_iter().flatten() {
        if let Some(u) = item.get("Untagged").and_then(|s| s.as_str()) {
            out.push(format!("Untagged: {u}"));
        }
        if let Some(d) = item.get("Deleted").and_then(|s| s.as_str()) {
            out.push(format!("Deleted: {d}"));
        }
    }
    out
}

pub async fn rmi(c: &Client, a: RmiArgs) -> Result<i32> {
    let q = Query::new()
        .add_if(a.force, "force", 1)
        .add_if(a.no_prune, "noprune", 1);
    let mut errors = Vec::new();
    for img in &a.images {
        match c
            .request(Method::DELETE, &format!("/images/{}", seg(img)), &q, None)
            .await
        {
            Ok(b) => {
                let v: Value = serde_json::from_slice(&b).unwrap_or_default();
                for l in rmi_lines(&v) {
                    println!("{l}");
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        eprintln!("{}", errors.join("\n"));
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shown(terminal: bool, msgs: &[Value]) -> String {
        let mut d = MessageDisplay::new(terminal, 200);
        let mut out = Vec::new();
        for m in msgs {
            d.show(m, &mut out).unwrap();
        }
        String::from_utf8(out).unwrap()
    }

    fn pull_messages() -> Vec<Value> {
        vec![
            json!({"status": "Pulling from tools/busybox", "id": "1.0"}),
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"}),
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "bbb"}),
            json!({"status": "Downloading", "progressDetail": {"current": 500, "total": 1000}, "progress": "[==>  ]", "id": "aaa"}),
            json!({"status": "Download complete", "progressDetail": {}, "id": "aaa"}),
            json!({"status": "Pull complete", "progressDetail": {}, "id": "bbb"}),
            json!({"status": "Digest: sha256:123"}),
        ]
    }

    #[test]
    fn progress_is_left_out_but_on_a_terminal() {
        assert_eq!(
            shown(false, &pull_messages()),
            "1.0: Pulling from tools/busybox\naaa: Pulling fs layer\nbbb: Pulling fs layer\n\
             aaa: Download complete\nbbb: Pull complete\nDigest: sha256:123\n"
        );
        // on a terminal each layer has its line, rewritten in place: the cursor goes up to
        // it (2 lines for the first of two), the line is cleared, and the cursor comes back
        let t = shown(true, &pull_messages());
        let bar = format!("[{}>{}]     500B/1kB", "=".repeat(25), " ".repeat(25));
        let want = [
            "1.0: Pulling from tools/busybox\n",
            "\n\x1b[1A\x1b[2K\raaa: Pulling fs layer \r\x1b[1B",
            "\n\x1b[1A\x1b[2K\rbbb: Pulling fs layer \r\x1b[1B",
            &format!("\x1b[2A\x1b[2K\raaa: Downloading {bar}\r\x1b[2B"),
            "\x1b[2A\x1b[2K\raaa: Download complete \r\x1b[2B",
            "\x1b[1A\x1b[2K\rbbb: Pull complete \r\x1b[1B",
            "Digest: sha256:123\n",
        ]
        .concat();
        assert_eq!(t, want);
        // an error is returned, not shown
        let mut d = MessageDisplay::new(false, 80);
        let e = d.show(
            &json!({"errorDetail": {"message": "boom"}, "error": "boom"}),
            &mut Vec::new(),
        );
        assert_eq!(e.unwrap_err(), "boom");
    }

    #[test]
    fn messages() {
        let v: Value = serde_json::json!({"status": "sha256:abc"});
        assert_eq!(json_message_line(&v).unwrap().unwrap(), "sha256:abc");
        let v: Value =
            serde_json::json!({"status": "Downloading", "id": "abc", "progress": "[=> ]"});
        assert_eq!(
            json_message_line(&v).unwrap().unwrap(),
            "abc: Downloading [=> ]"
        );
        let v: Value = serde_json::json!({"error": "boom", "errorDetail": {"message": "boom!"}});
        assert_eq!(json_message_line(&v).unwrap_err(), "boom!");
        let v = serde_json::json!([{"Untagged": "busybox:latest"}, {"Deleted": "sha256:1"}]);
        assert_eq!(
            rmi_lines(&v),
            vec!["Untagged: busybox:latest", "Deleted: sha256:1"]
        );
    }
}
