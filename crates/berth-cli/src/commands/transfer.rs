//! Images and files in and out: save, load, export, commit, diff.

use std::io::IsTerminal;

use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::image::{display_stream, file_body, stdin_body};
use crate::cli::{CommitArgs, DiffArgs, ExportArgs, LoadArgs, SaveArgs};
use crate::client::{empty_body, seg, Client, Query};
use crate::error::{CliError, Result};
use crate::opts::{io_msg, split_repo_tag};

/// Where `save` and `export` write: a file (written whole, then renamed into place, so a
/// failed transfer never leaves a truncated archive under the name asked for; it is not
/// fsynced, as with docker and tar, so a power loss right after may) or stdout.
pub(crate) struct Output {
    file: Option<(std::fs::File, std::path::PathBuf, std::path::PathBuf)>,
    /// Standard output as an unbuffered file (std's `Stdout` flushes at every newline).
    stdout: std::mem::ManuallyDrop<std::fs::File>,
}

impl Output {
    pub(crate) async fn open(path: Option<&str>) -> Result<Output> {
        let file = match path {
            Some(p) if p != "-" => {
                let dest = std::path::PathBuf::from(p);
                let tmp = dest.with_file_name(format!(
                    ".{}.berth-tmp",
                    dest.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ));
                let f = std::fs::File::create(&tmp).map_err(|e| {
                    CliError::msg(format!("failed to save: open {p}: {}", io_msg(&e)))
                })?;
                Some((f, tmp, dest))
            }
            _ => {
                if std::io::stdout().is_terminal() {
                    return Err(CliError::msg(
                        "cowardly refusing to save to a terminal. Use the -o flag or redirect",
                    ));
                }
                None
            }
        };
        // SAFETY: fd 1 is open for the life of the process; ManuallyDrop never closes it.
        let stdout = std::mem::ManuallyDrop::new(unsafe {
            <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(1)
        });
        Ok(Output { file, stdout })
    }

    /// Copy a response body into the output; on success the file takes its name.
    pub(crate) async fn copy(mut self, resp: http::Response<Incoming>) -> Result<u64> {
        let mut body = resp.into_body();
        let mut total = 0u64;
        let r: Result<()> = async {
            while let Some(frame) = body.frame().await {
                let frame =
                    frame.map_err(|e| CliError::msg(format!("error reading the response: {e}")))?;
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    // Written in place, not through tokio's blocking pool: a page-cache write
                    // of one frame is short, and the hops cost more than it.
                    match &mut self.file {
                        Some((f, ..)) => std::io::Write::write_all(f, &data)?,
                        None => write_all_waiting(&mut self.stdout, &data)?,
                    }
                }
            }
            // Like `docker save -o` and `tar -cf`, the file is not fsynced: the temporary name
            // keeps a partial file from appearing under the real one, and a user who wants it
            // on disk now runs `sync` (an fsync of a 500 MB archive costs seconds on a real disk).
            Ok(())
        }
        .await;
        if let Some((f, tmp, dest)) = self.file.take() {
            drop(f);
            match &r {
                Ok(()) => tokio::fs::rename(&tmp, &dest).await?,
                Err(_) => {
                    let _ = tokio::fs::remove_file(&tmp).await;
                }
            }
        }
        r.map(|()| total)
    }
}

impl Drop for Output {
    /// An output never copied into (the request failed first): its temporary file goes.
    fn drop(&mut self) {
        if let Some((_, tmp, _)) = self.file.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

/// `write_all`, waiting for room when the descriptor is non-blocking (a pipe its reader set so).
fn write_all_waiting(f: &mut std::fs::File, mut data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::fd::AsFd;
    while !data.is_empty() {
        match f.write(data) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                let mut fds = [nix::poll::PollFd::new(
                    f.as_fd(),
                    nix::poll::PollFlags::POLLOUT,
                )];
                let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

pub async fn save(c: &Client, a: SaveArgs) -> Result<i32> {
    let out = Output::open(a.output.as_deref()).await?;
    let mut q = Query::new();
    for i in &a.images {
        q = q.add("names", i);
    }
    match a.format.as_str() {
        "docker" => {}
        "oci" => q = q.add("format", "oci"),
        f => {
            return Err(CliError::msg(format!(
                "invalid --format {f:?}: use docker or oci"
            )))
        }
    }
    if let Some(comp) = &a.compression {
        q = q.add("compression", comp);
    }
    if let Some(p) = &a.platform {
        q = q.add("platform", p);
    }
    let resp = c
        .send(Method::GET, "/images/get", &q, empty_body(), None)
        .await?;
    out.copy(resp).await?;
    Ok(0)
}

pub async fn load(c: &Client, a: LoadArgs) -> Result<i32> {
    let body = match a.input.as_deref() {
        Some(p) if p != "-" => {
            let f = tokio::fs::File::open(p)
                .await
                .map_err(|e| CliError::msg(format!("open {p}: {}", io_msg(&e))))?;
            file_body(f)
        }
        _ => {
            if std::io::stdin().is_terminal() {
                return Err(CliError::msg(
                    "requested load from stdin, but stdin is empty",
                ));
            }
            stdin_body()
        }
    };
    let q = Query::new().add_if(a.quiet, "quiet", 1);
    let resp = c
        .send(
            Method::POST,
            "/images/load",
            &q,
            body,
            Some("application/x-tar"),
        )
        .await?;
    display_stream(resp, false).await?;
    Ok(0)
}

pub async fn export(c: &Client, a: ExportArgs) -> Result<i32> {
    let out = Output::open(a.output.as_deref()).await?;
    let resp = c
        .send(
            Method::GET,
            &format!("/containers/{}/export", seg(&a.container)),
            &Query::new(),
            empty_body(),
            None,
        )
        .await?;
    out.copy(resp).await?;
    Ok(0)
}

pub async fn commit(c: &Client, a: CommitArgs) -> Result<i32> {
    let mut q = Query::new()
        .add("container", &a.container)
        .add("pause", if a.pause { 1 } else { 0 });
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
        q = q.add("comment", m);
    }
    if let Some(au) = &a.author {
        q = q.add("author", au);
    }
    for ch in &a.change {
        q = q.add("changes", ch);
    }
    let v: Value = c.post_json("/commit", &q, &serde_json::json!({})).await?;
    println!("{}", v["Id"].as_str().unwrap_or_default());
    Ok(0)
}

/// Docker's letters for the change kinds.
pub fn change_line(v: &Value) -> Option<String> {
    let kind = match v["Kind"].as_u64()? {
        0 => 'C',
        1 => 'A',
        2 => 'D',
        _ => return None,
    };
    Some(format!("{kind} {}", v["Path"].as_str()?))
}

pub async fn diff(c: &Client, a: DiffArgs) -> Result<i32> {
    let v: Value = c
        .get(
            &format!("/containers/{}/changes", seg(&a.container)),
            &Query::new(),
        )
        .await?;
    for ch in v.as_array().into_iter().flatten() {
        if let Some(l) = change_line(ch) {
            println!("{l}");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn change_lines() {
        let v = serde_json::json!({"Path": "/etc", "Kind": 0});
        assert_eq!(super::change_line(&v).unwrap(), "C /etc");
        let v = serde_json::json!({"Path": "/x", "Kind": 2});
        assert_eq!(super::change_line(&v).unwrap(), "D /x");
        assert!(super::change_line(&serde_json::json!({"Path": "/x", "Kind": 9})).is_none());
    }
}
