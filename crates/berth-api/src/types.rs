//! The requests the engine serves, in typed form: what the HTTP layer parses a request into
//! before the backend sees it, and the stream type of hijacked connections.

use crate::ApiError;
use std::collections::HashMap;
use tokio::io::{AsyncRead, AsyncWrite};

/// A bidirectional byte stream: a hijacked HTTP connection.
pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// Filters of `GET /containers/json` that berth understands.
#[derive(Debug, Default, Clone)]
pub struct ListOptions {
    pub all: bool,
    pub limit: Option<usize>,
    pub filters: HashMap<String, Vec<String>>,
}

/// What `GET /containers/{id}/logs` asked for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub timestamps: bool,
    /// Unix seconds; entries before it are skipped.
    pub since: Option<f64>,
    /// Unix seconds; entries after it are skipped.
    pub until: Option<f64>,
    /// Only the last N entries.
    pub tail: Option<usize>,
}

/// Docker's `since`/`until` parameter: unix seconds with an optional fraction.
pub fn parse_timestamp(s: &str) -> Result<Option<f64>, ApiError> {
    if s.is_empty() || s == "0" {
        return Ok(None);
    }
    s.parse::<f64>()
        .map(Some)
        .map_err(|_| ApiError::invalid(format!("invalid value for time: {s}")))
}

/// What the client asked to attach.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub stream: bool,
    pub logs: bool,
    pub detach_keys: Option<String>,
}

/// How a proxied stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEnd {
    /// The process exited with this code.
    Exited(i32),
    /// The client typed the detach keys.
    Detached,
    /// Either side went away.
    Closed,
}

/// What `wait` waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: Option<&str>) -> Result<WaitCondition, ApiError> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(ApiError::invalid(format!("invalid condition: \"{other}\""))),
        }
    }
}

/// What `docker import` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct ImportRequest {
    /// `repo[:tag]` to tag the new image with.
    pub reference: Option<String>,
    pub changes: Vec<String>,
    pub message: Option<String>,
    /// `-` or the URL, for the history comment.
    pub source: String,
}

/// Docker's `--detach-keys` format: `ctrl-p,ctrl-q`, or single characters.
pub fn parse_detach_keys(s: &str) -> Result<Vec<u8>, ApiError> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let p = part.trim();
        if let Some(c) = p.strip_prefix("ctrl-") {
            let b = c.as_bytes();
            if b.len() != 1 {
                return Err(ApiError::invalid(format!(
                    "Invalid escape keys ({s}) provided"
                )));
            }
            let ch = b[0].to_ascii_uppercase();
            match ch {
                b'@'..=b'_' => out.push(ch - b'@'),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Invalid escape keys ({s}) provided"
                    )))
                }
            }
        } else if p.len() == 1 {
            out.push(p.as_bytes()[0]);
        } else {
            return Err(ApiError::invalid(format!(
                "Invalid escape keys ({s}) provided"
            )));
        }
    }
    Ok(out)
}

/// Blocking work that writes a response body (an image archive, a container's files). It
/// runs on a blocking thread once the response has started; an error then cuts the body
/// short, so that the client sees a truncated transfer rather than a complete one.
pub type Producer = Box<dyn FnOnce(&mut dyn std::io::Write) -> Result<(), ApiError> + Send>;

/// `GET /images/get`: what to save and how.
#[derive(Debug, Clone, Default)]
pub struct SaveRequest {
    pub names: Vec<String>,
    /// An OCI image layout instead of Docker's archive (berth's `format=oci`).
    pub oci: bool,
    /// Layer compression of an OCI archive: `gzip` (default), `zstd` or `none`.
    pub compression: Option<String>,
}

/// `POST /commit`.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    pub container: String,
    /// `repo[:tag]`.
    pub reference: Option<String>,
    pub comment: String,
    pub author: String,
    pub pause: bool,
    pub changes: Vec<String>,
    /// The container config the client sent, if any (JSON `Config`).
    pub config: Option<crate::models::ContainerConfig>,
}

/// `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Default)]
pub struct CopyToOptions {
    pub path: String,
    pub no_overwrite_dir_non_dir: bool,
    pub copy_uid_gid: bool,
}

/// `POST /build` (the legacy builder's query parameters).
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// `t`: `repo[:tag]`, repeatable.
    pub tags: Vec<String>,
    /// `dockerfile`: the Dockerfile's path inside the context (default `Dockerfile`).
    pub dockerfile: String,
    /// `buildargs`: `--build-arg` values (`None`: declared without a value).
    pub build_args: std::collections::BTreeMap<String, Option<String>>,
    /// `labels`.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `target`: the stage to build (default: the last).
    pub target: String,
    pub no_cache: bool,
    pub pull: bool,
    /// `q`: only the image id is reported.
    pub quiet: bool,
    /// `networkmode` for RUN steps.
    pub network: String,
    /// `platform`.
    pub platform: String,
    /// `remote`: a URL to fetch the context (or Dockerfile) from.
    pub remote: String,
}

/// A build's progress, one Docker JSON message per item (`{"stream": …}`, `{"aux": …}`,
/// `{"errorDetail": …, "error": …}`).
pub type BuildEvents = tokio::sync::mpsc::Sender<serde_json::Value>;

/// `GET /containers/{id}/json`: the API's model with `NetworkSettings` in the shape Docker
/// 20.10 shows it: the endpoint on the default bridge repeated at its top level
/// (`IPAddress`, `Gateway`, `MacAddress`…), which newer API models no longer carry but
/// scripts still read (`docker inspect -f '{{.NetworkSettings.IPAddress}}'`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ContainerInspect {
    /// Everything but `NetworkSettings` (leave its `network_settings` `None`).
    #[serde(flatten)]
    pub base: crate::models::ContainerInspectResponse,
    #[serde(rename = "NetworkSettings")]
    pub network_settings: NetworkSettingsCompat,
}

/// `NetworkSettings` with Docker 20.10's top-level fields (empty when not connected).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct NetworkSettingsCompat {
    /// `SandboxID`, `SandboxKey`, `Ports`, `Networks`.
    #[serde(flatten)]
    pub base: crate::models::NetworkSettings,
    #[serde(rename = "Bridge")]
    pub bridge: String,
    #[serde(rename = "HairpinMode")]
    pub hairpin_mode: bool,
    #[serde(rename = "LinkLocalIPv6Address")]
    pub link_local_ipv6_address: String,
    #[serde(rename = "LinkLocalIPv6PrefixLen")]
    pub link_local_ipv6_prefix_len: i64,
    #[serde(rename = "SecondaryIPAddresses")]
    pub secondary_ip_addresses: Option<Vec<String>>,
    #[serde(rename = "SecondaryIPv6Addresses")]
    pub secondary_ipv6_addresses: Option<Vec<String>>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    #[serde(rename = "Gateway")]
    pub gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: i64,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "MacAddress")]
    pub mac_address: String,
}

#[cfg(test)]
mod inspect_tests {
    use super::*;

    #[test]
    fn network_settings_have_docker_20_10_fields() {
        let v = serde_json::to_value(ContainerInspect {
            base: crate::models::ContainerInspectResponse {
                id: Some("x".into()),
                ..Default::default()
            },
            network_settings: NetworkSettingsCompat {
                ip_address: "172.17.0.2".into(),
                ip_prefix_len: 16,
                ..Default::default()
            },
        })
        .unwrap();
        assert_eq!(v["Id"], "x");
        assert_eq!(v["NetworkSettings"]["IPAddress"], "172.17.0.2");
        assert_eq!(v["NetworkSettings"]["IPPrefixLen"], 16);
        assert_eq!(v["NetworkSettings"]["Bridge"], "");
        assert!(v["NetworkSettings"]["SecondaryIPAddresses"].is_null());
    }
}
