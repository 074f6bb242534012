//! Health checks: `HEALTHCHECK` of the image, or `--health-cmd` and its options.
//!
//! When a container with a check starts, a task runs the probe in it (an exec through its
//! shim, like `exec`) **at once**, not after a first full interval as Docker does, then
//! every interval. A probe that exits 0 makes the container `healthy`; one that fails, or
//! runs longer than the timeout, adds to the failing streak, and `retries` failures in a
//! row make it `unhealthy` (failures within the start period do not count while it is still
//! `starting`). The last five results are kept with their output (at most 4 KiB each), as
//! Docker keeps them, in the record's state; `ps` shows `(healthy)`, `(unhealthy)` or
//! `(health: starting)`. The task ends when the container stops or starts again.

use crate::container::{Container, Status};
use crate::shim_client;
use crate::Daemon;
use berth_runtime::shim::Request;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// Docker's defaults.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// Results kept, and output kept per result.
const MAX_LOG: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// One probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub start: chrono::DateTime<chrono::Utc>,
    pub end: chrono::DateTime<chrono::Utc>,
    pub exit_code: i64,
    pub output: String,
}

/// A container's health, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: i64,
    pub log: Vec<Probe>,
}

/// The probe command of a container's check (`CMD-SHELL` runs through `/bin/sh -c`), or
/// `None` without one (`NONE`, or none at all).
pub fn probe_command(test: &[String]) -> Option<Vec<String>> {
    match test.first().map(String::as_str) {
        Some("CMD") if test.len() > 1 => Some(test[1..].to_vec()),
        Some("CMD-SHELL") if test.len() > 1 => {
            Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")])
        }
        _ => None,
    }
}

fn nanos(v: Option<i64>, default: Duration) -> Duration {
    match v {
        Some(n) if n > 0 => Duration::from_nanos(n as u64),
        _ => default,
    }
}

impl Daemon {
    /// Start the health monitor of a container that just started, when it has a check.
    pub(crate) fn spawn_health(self: &Arc<Self>, c: Arc<Container>) {
        let rec = c.record();
        let Some(hc) = rec.config.healthcheck.clone() else {
            return;
        };
        let Some(cmd) = probe_command(&hc.test.clone().unwrap_or_default()) else {
            return;
        };
        let interval = nanos(hc.interval, DEFAULT_INTERVAL);
        let timeout = nanos(hc.timeout, DEFAULT_TIMEOUT);
        let start_period = nanos(hc.start_period, Duration::ZERO);
        let retries = hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
        let started = rec.state.started_at.unwrap_or_else(chrono::Utc::now);
        let starts = c.progress.borrow().starts;
        c.set_state(&self.container_dir(&c.id), |r| {
            r.state.health = Some(Health {
                status: "starting".into(),
                ..Default::default()
            })
        });
        let d = self.clone();
        tokio::spawn(async move {
            loop {
                let still = |c: &Container| {
                    c.progress.borrow().starts == starts
                        && matches!(c.status(), Status::Running | Status::Paused)
                };
                if !still(&c) {
                    return;
                }
                if c.status() == Status::Running {
                    let probe = d.probe(&c, &cmd, timeout).await;
                    if !still(&c) {
                        return;
                    }
                    let in_start = (probe.start - started)
                        .to_std()
                        .map(|t| t < start_period)
                        .unwrap_or(true);
                    let mut changed = None;
                    c.set_state(&d.container_dir(&c.id), |r| {
                        let h = r.state.health.get_or_insert_with(Default::default);
                        let before = h.status.clone();
                        if probe.exit_code == 0 {
                            h.status = "healthy".into();
                            h.failing_streak = 0;
                        } else if !(in_start && h.status == "starting") {
                            h.failing_streak += 1;
                            if h.failing_streak >= retries {
                                h.status = "unhealthy".into();
                            }
                        }
                        h.log.push(probe.clone());
                        if h.log.len() > MAX_LOG {
                            h.log.remove(0);
                        }
                        if h.status != before {
                            changed = Some(h.status.clone());
                        }
                    });
                    if let Some(status) = changed {
                        d.container_event(&c.id, &format!("health_status: {status}"), &[]);
                    }
                }
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Run the probe `cmd` in the container, at most `timeout`.
    async fn probe(&self, c: &Container, cmd: &[String], timeout: Duration) -> Probe {
        let start = chrono::Utc::now();
        let run = async {
            let config = berth_api::models::ExecConfig {
                cmd: Some(cmd.to_vec()),
                ..Default::default()
            };
            let e = crate::exec::Exec::internal(&c.id, config);
            let process = self.exec_process(&e, false)?;
            let req = Request::Exec {
                exec_id: e.id.clone(),
                process,
                stdin: false,
            };
            let (resp, mut conn) = shim_client::open(&self.bundle_dir(&c.id), &req).await?;
            if !resp.ok {
                return Ok((
                    -1,
                    format!(
                        "OCI runtime exec failed: {}",
                        resp.error.unwrap_or_default()
                    ),
                ));
            }
            match crate::exec::read_to_exit(&mut conn, MAX_OUTPUT).await {
                (crate::attach::StreamEnd::Exited(code), out) => {
                    Ok((i64::from(code), String::from_utf8_lossy(&out).into_owned()))
                }
                _ => Ok((-1, "the probe's connection closed".to_string())),
            }
        };
        let (exit_code, output) = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(r)) => r,
            Ok(Err::<_, berth_api::ApiError>(e)) => (-1, e.message),
            Err(_) => (
                -1,
                format!("Health check exceeded timeout ({})", humantime(timeout)),
            ),
        };
        Probe {
            start,
            end: chrono::Utc::now(),
            exit_code,
            output,
        }
    }
}

/// `30s`, `1m0s`, `500ms`: Go's duration text, as Docker prints it.
fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = d.as_secs();
    if s < 60 {
        return format!("{s}s");
    }
    format!("{}m{}s", s / 60, s % 60)
}

/// `inspect`'s `State.Health`.
pub fn api_health(h: &Health) -> berth_api::models::Health {
    use berth_api::models::HealthStatusEnum as S;
    berth_api::models::Health {
        status: Some(match h.status.as_str() {
            "healthy" => S::HEALTHY,
            "unhealthy" => S::UNHEALTHY,
            "starting" => S::STARTING,
            _ => S::NONE,
        }),
        failing_streak: Some(h.failing_streak),
        log: Some(
            h.log
                .iter()
                .map(|p| berth_api::models::HealthcheckResult {
                    start: Some(p.start.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
                    end: Some(p.end.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
                    exit_code: Some(p.exit_code),
                    output: Some(p.output.clone()),
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_commands() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            probe_command(&s(&["CMD-SHELL", "test -f /x"])),
            Some(s(&["/bin/sh", "-c", "test -f /x"]))
        );
        assert_eq!(probe_command(&s(&["CMD", "true"])), Some(s(&["true"])));
        assert_eq!(probe_command(&s(&["NONE"])), None);
        assert_eq!(probe_command(&[]), None);
        assert_eq!(humantime(Duration::from_secs(30)), "30s");
        assert_eq!(humantime(Duration::from_millis(250)), "250ms");
    }
}
