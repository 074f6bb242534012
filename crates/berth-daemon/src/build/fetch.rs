//! `ADD <url>`: downloads a file over HTTP into the build's private directory.

use berth_api::ApiError;
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use tokio::io::AsyncWriteExt;

/// The file name Docker gives a download: the URL path's last segment.
pub(crate) fn url_file_name(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let name = u.path_segments()?.next_back()?.to_string();
    (!name.is_empty() && name != "." && name != "..").then_some(name)
}

/// Downloads `url` into `dir/<name>` (following up to 10 redirects); returns the path.
/// `what` starts the error messages (`ADD failed`).
pub(crate) async fn download(
    url: &str,
    dir: &Path,
    name: &str,
    what: &str,
) -> Result<PathBuf, ApiError> {
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, http_body_util::Empty<bytes::Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut current = url.to_string();
    for _ in 0..10 {
        let uri: http::Uri = current
            .parse()
            .map_err(|e| ApiError::invalid(format!("{what}: invalid URL {current}: {e}")))?;
        if uri.scheme_str() != Some("http") {
            return Err(ApiError::invalid(format!(
                "{what}: unsupported URL scheme in {current}: berth downloads http:// URLs"
            )));
        }
        let resp = client
            .get(uri)
            .await
            .map_err(|e| ApiError::invalid(format!("{what}: Get \"{current}\": {e}")))?;
        let status = resp.status();
        if status.is_redirection() {
            let loc = resp
                .headers()
                .get(http::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| {
                    ApiError::invalid(format!(
                        "{what}: Get \"{current}\": redirect without a location"
                    ))
                })?;
            current = url::Url::parse(&current)
                .and_then(|b| b.join(loc))
                .map(|u| u.to_string())
                .map_err(|e| ApiError::invalid(format!("{what}: bad redirect {loc}: {e}")))?;
            continue;
        }
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
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| ApiError::invalid(format!("{what}: reading {url}: {e}")))?;
            if let Some(data) = frame.data_ref() {
                f.write_all(data)
                    .await
                    .map_err(|e| ApiError::internal(format!("write {}: {e}", path.display())))?;
            }
        }
        f.flush()
            .await
            .map_err(|e| ApiError::internal(format!("write {}: {e}", path.display())))?;
        // Docker gives downloads mode 0600.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| ApiError::internal(format!("chmod {}: {e}", path.display())))?;
        return Ok(path);
    }
    Err(ApiError::invalid(format!(
        "{what}: Get \"{url}\": stopped after 10 redirects"
    )))
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
