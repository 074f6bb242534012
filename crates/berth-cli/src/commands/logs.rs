//! logs.

use http::Method;

use crate::cli::LogsArgs;
use crate::client::{empty_body, seg, Client, Query};
use crate::error::{CliError, Result};
use crate::format::units::get_timestamp;
use crate::stream::copy_output;

pub async fn logs(c: &Client, a: LogsArgs) -> Result<i32> {
    let v: serde_json::Value = c
        .get(
            &format!("/containers/{}/json", seg(&a.container)),
            &Query::new(),
        )
        .await?;
    let tty = v
        .pointer("/Config/Tty")
        .and_then(|t| t.as_bool())
        .unwrap_or(false);
    let now = chrono::Utc::now();
    let ts = |s: &Option<String>| -> Result<Option<String>> {
        match s {
            Some(s) if !s.is_empty() => get_timestamp(s, now).map(Some).map_err(CliError::msg),
            _ => Ok(None),
        }
    };
    let since = ts(&a.since)?;
    let until = ts(&a.until)?;
    let q = Query::new()
        .add("stdout", 1)
        .add("stderr", 1)
        .add_if(a.follow, "follow", 1)
        .add_if(a.timestamps, "timestamps", 1)
        .add_if(a.details, "details", 1)
        .add("tail", &a.tail)
        .add_if(since.is_some(), "since", since.unwrap_or_default())
        .add_if(until.is_some(), "until", until.unwrap_or_default());
    let resp = c
        .send(
            Method::GET,
            &format!("/containers/{}/logs", seg(&a.container)),
            &q,
            empty_body(),
            None,
        )
        .await?;
    let body = http_body_util::BodyDataStream::new(resp.into_body());
    use futures_util::TryStreamExt;
    let reader = tokio_util::io::StreamReader::new(body.map_err(std::io::Error::other));
    copy_output(reader, tty).await?;
    Ok(0)
}
