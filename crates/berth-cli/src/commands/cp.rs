//! `cp`: files between a container and the local filesystem, as tar streams through the
//! archive endpoints (`HEAD`/`GET`/`PUT /containers/{id}/archive`). The daemon resolves
//! every path inside the container's root; this side resolves the local ones.

use std::io::{IsTerminal, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use http::Method;
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::image::stdin_body;
use crate::cli::CpArgs;
use crate::client::{empty_body, seg, Client, Query, ReqBody};
use crate::error::{CliError, Result};
use crate::format::units::human_size;
use crate::opts::io_msg;

const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;

/// The daemon's `X-Docker-Container-Path-Stat`.
#[derive(Debug, Deserialize, Default)]
struct PathStat {
    #[serde(default)]
    #[allow(dead_code)]
    name: String,
    #[serde(default)]
    mode: u32,
    #[serde(default, rename = "linkTarget")]
    link_target: String,
}

impl PathStat {
    fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }
}

/// `CONTAINER:PATH` or a local path (absolute or starting with `.`, or without a colon).
fn split_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') || arg.starts_with('.') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.is_empty() => (Some(c), p),
        _ => (None, arg),
    }
}

fn decode_stat(h: Option<&http::HeaderValue>) -> Result<PathStat> {
    let raw = h
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| CliError::msg("the daemon sent no path stat"))?;
    let json = base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|e| CliError::msg(format!("unable to decode container path stat header: {e}")))?;
    serde_json::from_slice(&json)
        .map_err(|e| CliError::msg(format!("unable to decode container path stat header: {e}")))
}

async fn stat(c: &Client, container: &str, path: &str) -> Result<PathStat> {
    let resp = c
        .send(
            Method::HEAD,
            &format!("/containers/{}/archive", seg(container)),
            &Query::new().add("path", path),
            empty_body(),
            None,
        )
        .await
        .map_err(|e| match e {
            CliError::Daemon { status: 404, .. } => CliError::msg(format!(
                "Error response from daemon: Could not find the file {path} in container {container}"
            )),
            e => e,
        })?;
    decode_stat(resp.headers().get("X-Docker-Container-Path-Stat"))
}

/// Docker's "No such container" before any path is looked at (a `HEAD` 404 has no body to
/// tell a missing container from a missing path).
async fn exists(c: &Client, ct: &str) -> Result<()> {
    c.request(
        Method::GET,
        &format!("/containers/{}/json", seg(ct)),
        &Query::new(),
        None,
    )
    .await
    .map(|_| ())
}

/// Whether the path asks for a directory's contents (`dir/.`).
fn ends_with_dot(p: &str) -> bool {
    p == "." || p.ends_with("/.")
}

pub async fn cp(c: &Client, a: CpArgs) -> Result<i32> {
    match (split_arg(&a.src), split_arg(&a.dest)) {
        ((Some(_), _), (Some(_), _)) => {
            Err(CliError::msg("copying between containers is not supported"))
        }
        ((None, _), (None, _)) => Err(CliError::msg("must specify at least one container source")),
        ((Some(ct), src), (None, dest)) => {
            exists(c, ct).await?;
            from_container(c, &a, ct, src, dest).await
        }
        ((None, src), (Some(ct), dest)) => {
            exists(c, ct).await?;
            to_container(c, &a, src, ct, dest).await
        }
    }
}

async fn from_container(c: &Client, a: &CpArgs, ct: &str, src: &str, dest: &str) -> Result<i32> {
    let mut src_path = src.to_string();
    let mut rebase: Option<String> = None;
    if a.follow_link {
        let st = stat(c, ct, &src_path).await?;
        if st.mode & MODE_SYMLINK != 0 && !st.link_target.is_empty() {
            // Copy what the link points at, under the link's name.
            rebase = Path::new(src_path.trim_end_matches('/'))
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            src_path = st.link_target.clone();
        }
    }
    let resp = c
        .send(
            Method::GET,
            &format!("/containers/{}/archive", seg(ct)),
            &Query::new().add("path", &src_path),
            empty_body(),
            None,
        )
        .await
        .map_err(|e| match e {
            CliError::Daemon { status: 404, .. } => CliError::msg(format!(
                "Error response from daemon: Could not find the file {src_path} in container {ct}"
            )),
            e => e,
        })?;
    let st = decode_stat(resp.headers().get("X-Docker-Container-Path-Stat"))?;
    if dest == "-" {
        if std::io::stdout().is_terminal() {
            return Err(CliError::msg(
                "cowardly refusing to write a tar archive to a terminal. Redirect stdout",
            ));
        }
        let mut out = tokio::io::stdout();
        let mut body = resp.into_body();
        while let Some(f) = body.frame().await {
            let f = f.map_err(|e| CliError::msg(format!("error reading the archive: {e}")))?;
            if let Ok(d) = f.into_data() {
                out.write_all(&d).await?;
            }
        }
        out.flush().await?;
        return Ok(0);
    }
    // Spool the archive through a pipe into a blocking extractor.
    let (reader, writer) = std::io::pipe()?;
    let mut writer =
        tokio::fs::File::from_std(std::fs::File::from(std::os::fd::OwnedFd::from(writer)));
    let dest_s = dest.to_string();
    let contents = ends_with_dot(&src_path);
    let src_is_dir = st.is_dir();
    let extract = tokio::task::spawn_blocking(move || {
        extract_local(reader, &dest_s, src_is_dir, contents, rebase.as_deref())
    });
    let mut body = resp.into_body();
    let mut send_err = None;
    while let Some(f) = body.frame().await {
        match f {
            Ok(f) => {
                if let Ok(d) = f.into_data() {
                    if let Err(e) = writer.write_all(&d).await {
                        send_err = Some(e);
                        break;
                    }
                }
            }
            Err(e) => {
                send_err = Some(std::io::Error::other(e.to_string()));
                break;
            }
        }
    }
    let _ = writer.flush().await;
    drop(writer);
    let size = extract.await.map_err(|e| CliError::msg(e.to_string()))??;
    if let Some(e) = send_err {
        return Err(CliError::msg(format!("error reading the archive: {e}")));
    }
    if !a.quiet {
        eprintln!("Successfully copied {} to {dest}", human_size(size as f64));
    }
    Ok(0)
}

/// Unpack the daemon's archive locally, the way `docker cp` places it: into an existing
/// directory under the source's name (or its contents, for `dir/.`), over an existing file,
/// or under the destination's name in its parent.
fn extract_local(
    reader: impl Read,
    dest: &str,
    src_is_dir: bool,
    contents: bool,
    rebase: Option<&str>,
) -> Result<u64> {
    let dest_path = PathBuf::from(dest);
    let (root, rename): (PathBuf, Option<String>) = match std::fs::metadata(&dest_path) {
        Ok(m) if m.is_dir() => {
            if contents {
                (dest_path.clone(), Some(String::new()))
            } else {
                (dest_path.clone(), rebase.map(str::to_string))
            }
        }
        Ok(_) => {
            if src_is_dir {
                return Err(CliError::msg(format!(
                    "cannot copy directory to file: {dest}"
                )));
            }
            let parent = parent_of(&dest_path);
            (parent, Some(file_name(&dest_path)?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dest.ends_with('/') && !src_is_dir {
                return Err(CliError::msg(format!(
                    "destination directory {dest} does not exist"
                )));
            }
            let parent = parent_of(&dest_path);
            if !parent.is_dir() {
                return Err(CliError::msg(format!(
                    "destination directory {} does not exist",
                    parent.display()
                )));
            }
            (parent, Some(file_name(&dest_path)?))
        }
        Err(e) => return Err(CliError::msg(format!("stat {dest}: {}", io_msg(&e)))),
    };
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    let root_user = nix::unistd::geteuid().is_root();
    ar.set_preserve_ownerships(root_user);
    let mut total = 0u64;
    let entries = ar
        .entries()
        .map_err(|e| CliError::msg(format!("read archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| CliError::msg(format!("read archive: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| CliError::msg(format!("read archive: {e}")))?
            .into_owned();
        let Some(rel) = renamed(&path, rename.as_deref()) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            // The top directory itself, copied as contents: the destination stands for it.
            continue;
        }
        total += entry.header().size().unwrap_or(0);
        if entry.header().entry_type().is_hard_link() {
            let Some(target) = entry
                .link_name()
                .ok()
                .flatten()
                .and_then(|t| renamed(&t, rename.as_deref()))
            else {
                continue;
            };
            let (link, to) = (root.join(&rel), root.join(target));
            let _ = std::fs::remove_file(&link);
            std::fs::hard_link(&to, &link)
                .map_err(|e| CliError::msg(format!("link {}: {}", link.display(), io_msg(&e))))?;
            continue;
        }
        let target = root.join(&rel);
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p)
                .map_err(|e| CliError::msg(format!("mkdir {}: {}", p.display(), io_msg(&e))))?;
        }
        entry
            .unpack(&target)
            .map_err(|e| CliError::msg(format!("extract {}: {e}", target.display())))?;
    }
    Ok(total)
}

/// The archive path with its first component replaced by `rename` (dropped when empty);
/// `None` for paths that would leave the destination.
fn renamed(path: &Path, rename: Option<&str>) -> Option<PathBuf> {
    let mut parts = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .peekable();
    let mut out = PathBuf::new();
    if let Some(first) = parts.next() {
        match first {
            Component::Normal(n) => match rename {
                Some("") => {}
                Some(r) => out.push(r),
                None => out.push(n),
            },
            _ => return None,
        }
    }
    for p in parts {
        match p {
            Component::Normal(n) => out.push(n),
            _ => return None,
        }
    }
    Some(out)
}

fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(pp) if !pp.as_os_str().is_empty() => pp.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(p: &Path) -> Result<String> {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CliError::msg(format!("invalid destination path {}", p.display())))
}

async fn to_container(c: &Client, a: &CpArgs, src: &str, ct: &str, dest: &str) -> Result<i32> {
    let dest_stat = match stat(c, ct, dest).await {
        Ok(s) => Some(s),
        Err(e) if e.to_string().contains("Could not find the file") => None,
        Err(e) => return Err(e),
    };
    // A symlink destination stands for what it points at.
    let (dest, dest_stat) = match dest_stat {
        Some(s) if s.mode & MODE_SYMLINK != 0 && !s.link_target.is_empty() => {
            let t = s.link_target.clone();
            let st = stat(c, ct, &t).await.ok();
            (t, st)
        }
        other => (dest.to_string(), other),
    };
    let q = |path: &str| {
        Query::new()
            .add("path", path)
            .add("noOverwriteDirNonDir", "true")
            .add_if(a.archive, "copyUIDGID", "true")
    };
    if src == "-" {
        match &dest_stat {
            Some(s) if s.is_dir() => {}
            _ => {
                return Err(CliError::msg(format!(
                    "destination \"{ct}:{dest}\" must be a directory"
                )))
            }
        }
        put(c, ct, &q(&dest), stdin_body()).await?;
        return Ok(0);
    }
    let src_path = PathBuf::from(src);
    let meta = std::fs::symlink_metadata(&src_path)
        .map_err(|e| CliError::msg(format!("lstat {src}: {}", io_msg(&e))))?;
    let follow = a.follow_link && meta.file_type().is_symlink();
    let real = if follow {
        std::fs::canonicalize(&src_path)
            .map_err(|e| CliError::msg(format!("lstat {src}: {}", io_msg(&e))))?
    } else {
        src_path.clone()
    };
    let src_is_dir = std::fs::symlink_metadata(&real)
        .map(|m| m.is_dir())
        .unwrap_or(false);
    let src_name = file_name(&src_path).unwrap_or_else(|_| ".".into());
    let contents = ends_with_dot(src);
    let (put_dir, name): (String, Option<String>) = match &dest_stat {
        Some(s) if s.is_dir() => (dest.clone(), if contents { None } else { Some(src_name) }),
        Some(_) => {
            if src_is_dir {
                return Err(CliError::msg(format!(
                    "cannot copy directory to file: {ct}:{dest}"
                )));
            }
            let (parent, base) = split_container_path(&dest);
            (parent, Some(base))
        }
        None => {
            if dest.ends_with('/') && !src_is_dir {
                return Err(CliError::msg(format!(
                    "Error response from daemon: Could not find the file {dest} in container {ct}"
                )));
            }
            let (parent, base) = split_container_path(dest.trim_end_matches('/'));
            (parent, Some(base))
        }
    };
    let (reader, writer) = std::io::pipe()?;
    let real2 = real.clone();
    let builder =
        std::thread::spawn(move || build_tar(writer, &real2, src_is_dir, name.as_deref()));
    let fd: std::os::fd::OwnedFd = reader.into();
    let file = tokio::fs::File::from_std(std::fs::File::from(fd));
    let body = super::image::file_body(file);
    let r = put(c, ct, &q(&put_dir), body).await;
    let built = builder
        .join()
        .map_err(|_| CliError::msg("building the archive failed"))?;
    r?;
    let size = built?;
    if !a.quiet {
        eprintln!(
            "Successfully copied {} to {ct}:{dest}",
            human_size(size as f64)
        );
    }
    Ok(0)
}

async fn put(c: &Client, ct: &str, q: &Query, body: ReqBody) -> Result<()> {
    c.send(
        Method::PUT,
        &format!("/containers/{}/archive", seg(ct)),
        q,
        body,
        Some("application/x-tar"),
    )
    .await?;
    Ok(())
}

/// `/a/b/c` → (`/a/b`, `c`).
fn split_container_path(p: &str) -> (String, String) {
    match p.rsplit_once('/') {
        Some(("", b)) => ("/".into(), b.into()),
        Some((a, b)) => (a.into(), b.into()),
        None => (".".into(), p.into()),
    }
}

/// A tar of the local `path`: under `name`, or its contents when `name` is None. Returns the
/// bytes of file data written.
fn build_tar(w: impl Write, path: &Path, is_dir: bool, name: Option<&str>) -> Result<u64> {
    let err =
        |e: std::io::Error| CliError::msg(format!("archive {}: {}", path.display(), io_msg(&e)));
    let mut b = tar::Builder::new(w);
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Complete);
    let mut size = 0u64;
    if is_dir {
        size += tree_size(path);
        b.append_dir_all(name.unwrap_or("."), path).map_err(err)?;
    } else {
        size += std::fs::symlink_metadata(path)
            .map(|m| m.size())
            .unwrap_or(0);
        let n = name.map(str::to_string).unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        b.append_path_with_name(path, n).map_err(err)?;
    }
    b.finish().map_err(err)?;
    Ok(size)
}

fn tree_size(p: &Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if m.is_dir() {
        std::fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| tree_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        m.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_split_like_docker() {
        assert_eq!(split_arg("c1:/etc"), (Some("c1"), "/etc"));
        assert_eq!(split_arg("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_arg("./x:y"), (None, "./x:y"));
        assert_eq!(split_arg("file"), (None, "file"));
        assert_eq!(split_arg("-"), (None, "-"));
    }

    #[test]
    fn archive_paths_rename() {
        let p = Path::new("hosts");
        assert_eq!(renamed(p, Some("h2")).unwrap(), PathBuf::from("h2"));
        let p = Path::new("etc/passwd");
        assert_eq!(renamed(p, None).unwrap(), PathBuf::from("etc/passwd"));
        assert_eq!(renamed(p, Some("")).unwrap(), PathBuf::from("passwd"));
        assert!(renamed(Path::new("etc/../../x"), None).is_none());
        assert!(renamed(Path::new("/abs"), None).is_none());
        assert_eq!(split_container_path("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_container_path("/b"), ("/".into(), "b".into()));
    }
}
