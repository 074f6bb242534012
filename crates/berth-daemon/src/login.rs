//! `docker login` (`POST /auth`): credentials checked against a registry the way docker checks
//! them. `GET /v2/` answers 200 (no auth), or 401 with a challenge: for `Basic` the same
//! request with the credentials must succeed; for `Bearer` the challenge's token realm must
//! issue a token to them. The daemon keeps nothing: the client stores the credentials.

use berth_api::ApiError;

use crate::pull::insecure;

/// The registry host of a login's server address: `https://index.docker.io/v1/` is Docker
/// Hub, any other is `host[:port]` with an optional scheme and path.
pub fn registry_host(server: &str) -> String {
    let s = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "docker.io" | "registry-1.docker.io" => {
            "registry-1.docker.io".to_string()
        }
        h => h.to_string(),
    }
}

/// A registry's `WWW-Authenticate` challenge: its scheme (`Basic`, `Bearer`) and its
/// `key="value"` parameters.
pub(crate) struct Challenge {
    scheme: String,
    params: Vec<(String, String)>,
}

impl Challenge {
    /// The challenge of an answer (an empty one when it has none).
    pub(crate) fn of(resp: &reqwest::Response) -> Challenge {
        Challenge::parse(
            resp.headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or(""),
        )
    }

    fn parse(h: &str) -> Challenge {
        let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
        Challenge {
            scheme: scheme.to_string(),
            params: challenge_params(rest),
        }
    }

    /// Whether its scheme is `scheme` (in any case).
    pub(crate) fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// A parameter (`realm`, `service`).
    pub(crate) fn get(&self, key: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

/// `key="value"` pairs of a `WWW-Authenticate` challenge after its scheme.
fn challenge_params(h: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = h;
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_lowercase();
        let after = &rest[eq + 1..];
        let (value, next) = match after.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            },
            None => match after.find(',') {
                Some(c) => (&after[..c], &after[c..]),
                None => (after, ""),
            },
        };
        out.push((key, value.to_string()));
        rest = next;
    }
    out
}

/// Why [`body_within`] gave up.
pub(crate) enum BodyError {
    /// Over the limit.
    TooBig,
    /// The transfer failed.
    Failed(reqwest::Error),
}

/// A registry's answer, refused past `max` bytes as it comes (by its length, then as it
/// streams): what a registry or its token server sends is not to be trusted with the
/// daemon's memory.
pub(crate) async fn body_within(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooBig);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Failed)? {
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooBig);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The largest token answer or search result taken from a registry.
pub(crate) const MAX_REGISTRY_JSON: usize = 16 << 20;

/// The client of a login check or a search: it gives up within a minute.
pub(crate) fn http_client() -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(15))
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// HTTPS, then plain HTTP for a registry that may be insecure (as docker tries them).
fn schemes(host: &str, insecure_registries: &[String]) -> &'static [&'static str] {
    if insecure(host, insecure_registries) {
        &["https", "http"]
    } else {
        &["https"]
    }
}

fn failed(url: &str, status: reqwest::StatusCode) -> ApiError {
    ApiError::new(
        berth_api::ErrorKind::Unauthorized,
        format!("login attempt to {url} failed with status: {status}"),
    )
}

/// Check `username`/`password` against the registry at `server`.
pub async fn check(
    server: &str,
    username: &str,
    password: &str,
    insecure_registries: &[String],
) -> Result<(), ApiError> {
    let host = registry_host(server);
    let http = http_client()?;
    let schemes = schemes(&host, insecure_registries);
    let mut last = None;
    for scheme in schemes {
        let url = format!("{scheme}://{host}/v2/");
        let resp = match http.get(&url).send().await {
            Ok(r) => r,
            Err(e) => {
                last = Some(ApiError::internal(format!(
                    "Get \"{url}\": {}",
                    crate::pull::with_causes(&e)
                )));
                continue;
            }
        };
        if resp.status().is_success() {
            return Ok(());
        }
        if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
            return Err(failed(&url, resp.status()));
        }
        let challenge = Challenge::of(&resp);
        let resp = if challenge.is("bearer") {
            let Some(realm) = challenge.get("realm") else {
                return Err(failed(&url, reqwest::StatusCode::UNAUTHORIZED));
            };
            let mut q: Vec<(&str, String)> = vec![("account", username.to_string())];
            if let Some(s) = challenge.get("service") {
                q.push(("service", s));
            }
            http.get(&realm)
                .query(&q)
                .basic_auth(username, Some(password))
                .send()
                .await
        } else {
            http.get(&url)
                .basic_auth(username, Some(password))
                .send()
                .await
        }
        .map_err(|e| ApiError::internal(format!("{url}: {}", crate::pull::with_causes(&e))))?;
        if resp.status().is_success() {
            return Ok(());
        }
        return Err(failed(&url, resp.status()));
    }
    Err(last.unwrap_or_else(|| ApiError::internal(format!("no answer from {host}"))))
}

/// `docker search` (`GET /images/search`): a registry's `/v1/search` for `term`, which names
/// its registry first (`host:5000/query`; Docker Hub without one). At most `limit` results.
pub async fn search(
    term: &str,
    limit: usize,
    auth: &oci_client::secrets::RegistryAuth,
    insecure_registries: &[String],
) -> Result<Vec<serde_json::Value>, ApiError> {
    let (host, query) = match term.split_once('/') {
        Some((h, rest)) if h.contains('.') || h.contains(':') || h == "localhost" => {
            (registry_host(h), rest.to_string())
        }
        _ => ("index.docker.io".to_string(), term.to_string()),
    };
    // Docker Hub searches at its index, not at its registry
    let host = if host == "registry-1.docker.io" {
        "index.docker.io".to_string()
    } else {
        host
    };
    let http = http_client()?;
    let schemes = schemes(&host, insecure_registries);
    let mut last = None;
    for scheme in schemes {
        let url = format!("{scheme}://{host}/v1/search");
        let mut req = http
            .get(&url)
            .query(&[("q", query.as_str()), ("n", &limit.to_string())]);
        req = match auth {
            oci_client::secrets::RegistryAuth::Basic(u, p) => req.basic_auth(u, Some(p)),
            oci_client::secrets::RegistryAuth::Bearer(t) => req.bearer_auth(t),
            oci_client::secrets::RegistryAuth::Anonymous => req,
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                last = Some(ApiError::internal(format!(
                    "Get \"{url}\": {}",
                    crate::pull::with_causes(&e)
                )));
                continue;
            }
        };
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ApiError::new(
                berth_api::ErrorKind::Unauthorized,
                "unauthorized: authentication required",
            ));
        }
        if !status.is_success() {
            return Err(ApiError::internal(format!(
                "Unexpected status code {}",
                status.as_u16()
            )));
        }
        let raw = body_within(resp, MAX_REGISTRY_JSON)
            .await
            .map_err(|e| match e {
                BodyError::TooBig => {
                    ApiError::internal(format!("{url}: over {MAX_REGISTRY_JSON} bytes"))
                }
                BodyError::Failed(e) => ApiError::internal(format!("{url}: {e}")),
            })?;
        let body: serde_json::Value =
            serde_json::from_slice(&raw).map_err(|e| ApiError::internal(format!("{url}: {e}")))?;
        let mut results = body["results"].as_array().cloned().unwrap_or_default();
        results.truncate(limit);
        return Ok(results
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "name": r["name"].as_str().unwrap_or(""),
                    "description": r["description"].as_str().unwrap_or(""),
                    "star_count": r["star_count"].as_u64().unwrap_or(0),
                    "is_official": r["is_official"].as_bool().unwrap_or(false),
                    "is_automated": r["is_automated"].as_bool().unwrap_or(false),
                })
            })
            .collect());
    }
    Err(last.unwrap_or_else(|| ApiError::internal(format!("no answer from {host}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_name_their_registry() {
        assert_eq!(
            registry_host("https://index.docker.io/v1/"),
            "registry-1.docker.io"
        );
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            registry_host("http://reg.example:5000/v2/"),
            "reg.example:5000"
        );
    }

    #[test]
    fn challenges_are_parsed() {
        let c = Challenge::parse(
            r#"Bearer realm="http://h:1/auth/token",service="reg",scope="a:b:pull,push""#,
        );
        assert!(c.is("bearer") && !c.is("basic"));
        assert_eq!(c.get("service").as_deref(), Some("reg"));
        assert_eq!(
            c.params,
            vec![
                ("realm".to_string(), "http://h:1/auth/token".to_string()),
                ("service".to_string(), "reg".to_string()),
                ("scope".to_string(), "a:b:pull,push".to_string()),
            ]
        );
    }
}
