//! update.

use serde_json::{json, Map, Value};

use crate::cli::UpdateArgs;
use crate::client::{seg, Client, Query};
use crate::commands::run::parse_restart;
use crate::error::{CliError, Result};

/// The `POST /containers/{id}/update` body: only the flags given (HostConfig's names). As
/// docker's, a `--pids-limit 0` is not sent.
pub fn update_body(a: &UpdateArgs) -> std::result::Result<Value, String> {
    let mut b = Map::new();
    let ints = [
        ("Memory", a.memory),
        ("MemoryReservation", a.memory_reservation),
        ("MemorySwap", a.memory_swap),
        ("KernelMemory", a.kernel_memory),
        ("NanoCpus", a.cpus),
        ("CpuShares", a.cpu_shares),
        ("CpuPeriod", a.cpu_period),
        ("CpuQuota", a.cpu_quota),
        ("CpuRealtimePeriod", a.cpu_rt_period),
        ("CpuRealtimeRuntime", a.cpu_rt_runtime),
        ("PidsLimit", a.pids_limit.filter(|p| *p != 0)),
    ];
    for (k, v) in ints {
        if let Some(v) = v {
            b.insert(k.into(), json!(v));
        }
    }
    if let Some(w) = a.blkio_weight {
        b.insert("BlkioWeight".into(), json!(w));
    }
    if let Some(c) = &a.cpuset_cpus {
        b.insert("CpusetCpus".into(), json!(c));
    }
    if let Some(c) = &a.cpuset_mems {
        b.insert("CpusetMems".into(), json!(c));
    }
    if let Some(r) = a.restart.as_deref().filter(|r| !r.is_empty()) {
        b.insert("RestartPolicy".into(), parse_restart(r)?);
    }
    Ok(Value::Object(b))
}

/// Whether any flag was given (cobra's `NFlag`).
fn any_flag(a: &UpdateArgs) -> bool {
    a.blkio_weight.is_some()
        || a.cpu_period.is_some()
        || a.cpu_quota.is_some()
        || a.cpu_rt_period.is_some()
        || a.cpu_rt_runtime.is_some()
        || a.cpu_shares.is_some()
        || a.cpus.is_some()
        || a.cpuset_cpus.is_some()
        || a.cpuset_mems.is_some()
        || a.kernel_memory.is_some()
        || a.memory.is_some()
        || a.memory_reservation.is_some()
        || a.memory_swap.is_some()
        || a.pids_limit.is_some()
        || a.restart.is_some()
}

/// docker 20.10's refusal of an update without flags.
pub fn check_flags(a: &UpdateArgs) -> Result<()> {
    if any_flag(a) {
        Ok(())
    } else {
        Err(CliError::msg(
            "you must provide one or more flags when using this command",
        ))
    }
}

pub async fn update(c: &Client, a: UpdateArgs) -> Result<i32> {
    check_flags(&a)?;
    let body = update_body(&a).map_err(CliError::msg)?;
    let mut warns: Vec<String> = Vec::new();
    let mut errs: Vec<String> = Vec::new();
    for name in &a.containers {
        let r: Result<Value> = c
            .post_json(
                &format!("/containers/{}/update", seg(name)),
                &Query::new(),
                &body,
            )
            .await;
        match r {
            Ok(v) => {
                println!("{name}");
                warns.extend(
                    v["Warnings"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|w| w.as_str().map(str::to_string)),
                );
            }
            Err(e) => errs.push(e.to_string()),
        }
    }
    if !warns.is_empty() {
        println!("{}", warns.join("\n"));
    }
    if !errs.is_empty() {
        eprintln!("{}", errs.join("\n"));
        return Ok(1);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_only_the_flags_given() {
        let a = UpdateArgs {
            containers: vec!["c".into()],
            ..Default::default()
        };
        assert!(!any_flag(&a));
        assert_eq!(update_body(&a).unwrap(), json!({}));
        let a = UpdateArgs {
            memory: Some(256 << 20),
            memory_swap: Some(-1),
            cpus: Some(500_000_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            pids_limit: Some(100),
            blkio_weight: Some(500),
            restart: Some("on-failure:3".into()),
            containers: vec!["c".into()],
            ..Default::default()
        };
        assert!(any_flag(&a));
        assert_eq!(
            update_body(&a).unwrap(),
            json!({
                "Memory": 256 << 20,
                "MemorySwap": -1,
                "NanoCpus": 500_000_000,
                "CpuShares": 512,
                "PidsLimit": 100,
                "BlkioWeight": 500,
                "CpusetCpus": "0",
                "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
            })
        );
        let a = UpdateArgs {
            pids_limit: Some(0),
            ..Default::default()
        };
        assert!(any_flag(&a));
        assert_eq!(update_body(&a).unwrap(), json!({}));
        let a = UpdateArgs {
            restart: Some("sometimes".into()),
            ..Default::default()
        };
        assert_eq!(
            update_body(&a).unwrap_err(),
            "invalid restart policy format: sometimes"
        );
    }
}
