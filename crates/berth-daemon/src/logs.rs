//! `GET /containers/{id}/logs`: reading the json-file logs the shim writes.

use crate::container::Container;
use crate::Daemon;
pub use berth_api::types::{parse_timestamp, LogOptions};
use berth_api::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

pub use crate::layout::log_path;

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: String,
}

/// Render one json-file line as the bytes the client gets, or nothing if filtered out.
fn render(this: &LogOptions, line: &str, tty: bool) -> Option<Vec<u8>> {
    let e: Entry = serde_json::from_str(line).ok()?;
    let stderr = e.stream == "stderr";
    if (stderr && !this.stderr) || (!stderr && !this.stdout) {
        return None;
    }
    let t: Option<DateTime<Utc>> = DateTime::parse_from_rfc3339(&e.time)
        .ok()
        .map(|t| t.with_timezone(&Utc));
    if let (Some(since), Some(t)) = (this.since, t) {
        if (t.timestamp_nanos_opt().unwrap_or(0) as f64) / 1e9 < since {
            return None;
        }
    }
    if let (Some(until), Some(t)) = (this.until, t) {
        if (t.timestamp_nanos_opt().unwrap_or(0) as f64) / 1e9 > until {
            return None;
        }
    }
    let mut payload = Vec::new();
    if this.timestamps {
        let ts = t
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true))
            .unwrap_or(e.time);
        payload.extend_from_slice(ts.as_bytes());
        payload.push(b' ');
    }
    payload.extend_from_slice(e.log.as_bytes());
    if tty {
        return Some(payload);
    }
    let kind = if stderr {
        berth_runtime::shim::FrameKind::Stderr
    } else {
        berth_runtime::shim::FrameKind::Stdout
    };
    let mut out = berth_runtime::shim::frame_header(kind, payload.len()).to_vec();
    out.extend_from_slice(&payload);
    Some(out)
}

impl Daemon {
    /// Check the request, then stream the logs into `out`. Returns whether the container has a
    /// tty (the stream is then raw, not multiplexed).
    pub fn logs_target(&self, name: &str) -> Result<(Arc<Container>, bool), ApiError> {
        let c = self.container(name)?;
        let rec = c.record();
        let driver = rec
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.clone())
            .unwrap_or_default();
        if driver == "none" {
            return Err(ApiError::invalid(
                "configured logging driver does not support reading",
            ));
        }
        Ok((c, rec.config.tty.unwrap_or(false)))
    }

    /// Write the container's logs to `out`, following them if asked until the container stops
    /// or `out` goes away.
    pub async fn write_logs(
        &self,
        c: &Arc<Container>,
        opts: &LogOptions,
        tty: bool,
        out: &mut (impl AsyncWriteExt + Unpin + Send),
    ) -> Result<(), ApiError> {
        let path = log_path(&self.container_dir(&c.id), &c.id);
        let (lines, mut pos) = {
            let p = path.clone();
            crate::blocking(move || Ok(read_all(&p))).await?
        };
        let start = match opts.tail {
            Some(n) => lines.len().saturating_sub(n),
            None => 0,
        };
        for l in &lines[start..] {
            if let Some(b) = render(opts, l, tty) {
                if out.write_all(&b).await.is_err() {
                    return Ok(());
                }
            }
        }
        let _ = out.flush().await;
        if !opts.follow {
            return Ok(());
        }
        let mut rx = c.progress.subscribe();
        let mut partial = String::new();
        loop {
            let live = c.status().is_live() && !rx.borrow().removed;
            let (new_lines, new_pos) = read_from(&path, pos, &mut partial);
            pos = new_pos;
            for l in &new_lines {
                if let Some(b) = render(opts, l, tty) {
                    if out.write_all(&b).await.is_err() {
                        return Ok(());
                    }
                }
            }
            if !new_lines.is_empty() && out.flush().await.is_err() {
                return Ok(());
            }
            if !live {
                return Ok(());
            }
            let _ = tokio::time::timeout(Duration::from_millis(100), rx.changed()).await;
        }
    }
}

/// Every line of the rotated files (oldest first) and of the live file, and the live file's
/// length.
fn read_all(path: &Path) -> (Vec<String>, u64) {
    let mut lines = Vec::new();
    let mut rotated: Vec<PathBuf> = (1..100)
        .map(|i| PathBuf::from(format!("{}.{i}", path.display())))
        .take_while(|p| p.exists())
        .collect();
    rotated.reverse();
    for p in rotated {
        if let Ok(f) = std::fs::File::open(&p) {
            lines.extend(BufReader::new(f).lines().map_while(Result::ok));
        }
    }
    let mut pos = 0;
    if let Ok(f) = std::fs::File::open(path) {
        let mut r = BufReader::new(f);
        let mut s = String::new();
        while let Ok(n) = r.read_line(&mut s) {
            if n == 0 || !s.ends_with('\n') {
                break;
            }
            pos += n as u64;
            lines.push(s.trim_end_matches('\n').to_string());
            s.clear();
        }
    }
    (lines, pos)
}

/// Complete lines added to the live file since `pos`; starts over if the file was rotated.
fn read_from(path: &Path, mut pos: u64, partial: &mut String) -> (Vec<String>, u64) {
    let mut out = Vec::new();
    let Ok(mut f) = std::fs::File::open(path) else {
        return (out, pos);
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < pos {
        pos = 0;
        partial.clear();
    }
    if f.seek(SeekFrom::Start(pos)).is_err() {
        return (out, pos);
    }
    let mut r = BufReader::new(f);
    loop {
        let mut s = String::new();
        match r.read_line(&mut s) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                pos += n as u64;
                partial.push_str(&s);
                if partial.ends_with('\n') {
                    out.push(partial.trim_end_matches('\n').to_string());
                    partial.clear();
                }
            }
        }
    }
    (out, pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_render_with_frames_and_timestamps() {
        let o = LogOptions {
            stdout: true,
            stderr: false,
            timestamps: true,
            ..Default::default()
        };
        let l = r#"{"log":"hi\n","stream":"stdout","time":"2026-11-28T01:02:03.5Z"}"#;
        let b = render(&o, l, false).unwrap();
        assert_eq!(b[0], 1);
        assert_eq!(&b[8..], b"2026-11-28T01:02:03.500000000Z hi\n");
        let e = r#"{"log":"x\n","stream":"stderr","time":"2026-11-28T01:02:03Z"}"#;
        assert!(render(&o, e, false).is_none());
        let tty = LogOptions {
            stdout: true,
            ..Default::default()
        };
        assert_eq!(render(&tty, l, true).unwrap(), b"hi\n");
    }

    #[test]
    fn since_filters() {
        let o = LogOptions {
            stdout: true,
            since: Some(1.0e10),
            ..Default::default()
        };
        let l = r#"{"log":"hi\n","stream":"stdout","time":"2026-11-28T01:02:03Z"}"#;
        assert!(render(&o, l, true).is_none());
    }
}
