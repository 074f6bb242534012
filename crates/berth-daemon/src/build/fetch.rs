//! `ADD <url>`: downloads a file over HTTP(S) into the build's private directory.

use berth_api::ApiError;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The file name Docker gives a download: the URL path's last segment.
pub(crate) fn url_file_name(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let name = u.path_segments()?.next_back()?.to_string();
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// Downloads `url` (http or https, following up to 10 redirects) into `dir/<name>`; returns
/// the path. `what` starts the error messages (`ADD failed`).
pub(crate) async fn download(
    url: &str,
    dir: &Path,
    name: &str,
    what: &str,
) -> Result<PathBuf, ApiError> {
    // (a server that stops answering ends the build's step rather than hanging it; a large
    // file may take as long as it needs)
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(10))
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut resp = client.get(url).send().await.map_err(|e| {
        ApiError::invalid(format!(
            "{what}: Get \"{url}\": {}",
            crate::pull::with_causes(&e)
        ))
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(ApiError::invalid(format!(
            "{what}: failed to GET {url} with status {status}"
        )));
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| ApiError::internal(format!("create {}: {e}", dir.display())))?;
    let path = dir.join(name);
    let mut f = tokio::fs::File::create(&path)
        .await
        .map_err(|e| ApiError::internal(format!("create {}: {e}", path.display())))?;
    while let Some(data) = resp
        .chunk()
        .await
        .map_err(|e| ApiError::invalid(format!("{what}: reading {url}: {e}")))?
    {
        f.write_all(&data)
            .await
            .map_err(|e| ApiError::internal(format!("write {}: {e}", path.display())))?;
    }
    f.flush()
        .await
        .map_err(|e| ApiError::internal(format!("write {}: {e}", path.display())))?;
    // Docker gives downloads mode 0600.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ApiError::internal(format!("chmod {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names() {
        assert_eq!(
            super::url_file_name("http://h/a/b.tar.gz").as_deref(),
            Some("b.tar.gz")
        );
        assert_eq!(
            super::url_file_name("http://h/a/b?x=1").as_deref(),
            Some("b")
        );
        assert_eq!(super::url_file_name("http://h/"), None);
    }
}
