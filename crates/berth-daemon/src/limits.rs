//! A container's resource limits and security options, from its `HostConfig`, as the runtime
//! spec says them: memory (`--memory`, `--memory-swap`, `--memory-reservation`,
//! `--oom-kill-disable`), CPU (`--cpus`, `--cpu-shares`, `--cpu-period`/`--cpu-quota`,
//! `--cpuset-cpus`/`--cpuset-mems`), `--pids-limit`, `--ulimit`, `--device`, `--shm-size`,
//! `--sysctl`, `--oom-score-adj` and `--security-opt` (`no-new-privileges`,
//! `seccomp=unconfined|<profile>`). Checked at create (Docker's errors) and applied at each
//! start; libcontainer writes them into the cgroup (v1 or v2).

use berth_api::models::HostConfig;
use berth_api::ApiError;
use berth_runtime::spec::SeccompMode;
use oci_spec::runtime::{LinuxDevice, LinuxResources, LinuxSeccomp, PosixRlimit};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Docker's smallest `--memory`.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
/// The CFS period `--cpus` is expressed in (Docker's).
const CPU_PERIOD: i64 = 100_000;

/// What the spec gets from the limits and security options.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub resources: Option<LinuxResources>,
    pub shm_size: Option<u64>,
    pub oom_score_adj: Option<i32>,
    pub seccomp: Option<SeccompMode>,
    pub no_new_privileges: bool,
    pub rlimits: Vec<PosixRlimit>,
    pub sysctls: HashMap<String, String>,
    pub devices: Vec<(LinuxDevice, String)>,
}

/// `--cpus` (in billionths of a CPU) as a CFS (quota, period) in microseconds.
pub(crate) fn cfs_of_nano_cpus(nano: i64) -> (i64, i64) {
    (nano * CPU_PERIOD / 1_000_000_000, CPU_PERIOD)
}

fn bad(m: impl Into<String>) -> ApiError {
    ApiError::invalid(m)
}

/// The `LinuxResources` of the cgroup limits `hc` sets (none: `None`). Also what `update`
/// writes into a running container's cgroup.
pub fn resources(hc: &HostConfig) -> Result<Option<LinuxResources>, ApiError> {
    let mut memory = Map::new();
    let mem = hc.memory.unwrap_or(0);
    if mem != 0 {
        if mem < MIN_MEMORY {
            return Err(bad("Minimum memory limit allowed is 6MB"));
        }
        memory.insert("limit".into(), json!(mem));
    }
    match hc.memory_swap.unwrap_or(0) {
        0 => {}
        -1 => {
            memory.insert("swap".into(), json!(-1));
        }
        swap => {
            if mem == 0 {
                return Err(bad(
                    "You should always set the Memory limit when using Memoryswap limit",
                ));
            }
            if swap < mem {
                return Err(bad(
                    "Minimum memoryswap limit should be larger than memory limit, see usage",
                ));
            }
            memory.insert("swap".into(), json!(swap));
        }
    }
    if let Some(r) = hc.memory_reservation.filter(|r| *r != 0) {
        if r < MIN_MEMORY {
            return Err(bad("Minimum memory reservation allowed is 6MB"));
        }
        if mem != 0 && r > mem {
            return Err(bad(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
        memory.insert("reservation".into(), json!(r));
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s != -1) {
        if !(0..=100).contains(&s) {
            return Err(bad(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
        memory.insert("swappiness".into(), json!(s));
    }
    if hc.oom_kill_disable.unwrap_or(false) {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    let mut cpu = Map::new();
    if let Some(n) = hc.nano_cpus.filter(|n| *n != 0) {
        if hc.cpu_quota.unwrap_or(0) != 0 || hc.cpu_period.unwrap_or(0) != 0 {
            return Err(bad(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        let online = std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1);
        if n < 0 || n > online * 1_000_000_000 {
            return Err(bad(format!(
                "Range of CPUs is from 0.01 to {online}.00, as there are only {online} CPUs available"
            )));
        }
        let (quota, period) = cfs_of_nano_cpus(n);
        cpu.insert("period".into(), json!(period));
        cpu.insert("quota".into(), json!(quota));
    }
    if let Some(p) = hc.cpu_period.filter(|p| *p != 0) {
        if !(1000..=1_000_000).contains(&p) {
            return Err(bad(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
        cpu.insert("period".into(), json!(p));
    }
    if let Some(q) = hc.cpu_quota.filter(|q| *q != 0) {
        if q > 0 && q < 1000 {
            return Err(bad("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
        }
        cpu.insert("quota".into(), json!(q));
    }
    if let Some(s) = hc.cpu_shares.filter(|s| *s != 0) {
        cpu.insert("shares".into(), json!(s.max(2)));
    }
    if let Some(c) = hc.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu.insert("cpus".into(), json!(c));
    }
    if let Some(m) = hc.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        cpu.insert("mems".into(), json!(m));
    }
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        r.insert(
            "pids".into(),
            json!({ "limit": if p < 0 { -1 } else { p } }),
        );
    }
    if r.is_empty() {
        return Ok(None);
    }
    serde_json::from_value(Value::Object(r))
        .map(Some)
        .map_err(|e| bad(format!("invalid resources: {e}")))
}

/// Everything the spec takes from `hc` (see the module documentation), checked.
pub fn limits(hc: &HostConfig) -> Result<Limits, ApiError> {
    let mut l = Limits {
        resources: resources(hc)?,
        ..Default::default()
    };
    if let Some(s) = hc.shm_size.filter(|s| *s != 0) {
        if s < 0 {
            return Err(bad("SHM size can not be less than 0"));
        }
        l.shm_size = Some(s as u64);
    }
    if let Some(a) = hc.oom_score_adj.filter(|a| *a != 0) {
        if !(-1000..=1000).contains(&a) {
            return Err(bad(format!(
                "Invalid value {a}, range for oom score adj is [-1000, 1000]"
            )));
        }
        l.oom_score_adj = Some(a as i32);
    }
    for (i, opt) in hc.security_opt.iter().flatten().enumerate() {
        let (k, v) = opt
            .split_once(['=', ':'])
            .map(|(k, v)| (k, Some(v)))
            .unwrap_or((opt.as_str(), None));
        match (k, v) {
            ("no-new-privileges", None | Some("true")) => l.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => l.no_new_privileges = false,
            ("seccomp", Some("unconfined")) => l.seccomp = Some(SeccompMode::Unconfined),
            ("seccomp", Some(profile)) => {
                l.seccomp = Some(SeccompMode::Custom(docker_seccomp(profile)?))
            }
            ("apparmor" | "label", Some(_)) => {}
            _ => return Err(bad(format!("invalid --security-opt {}: {opt:?}", i + 1))),
        }
    }
    for u in hc.ulimits.iter().flatten() {
        let name = u.name.clone().unwrap_or_default();
        let typ = format!("RLIMIT_{}", name.to_ascii_uppercase());
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        if soft > hard {
            return Err(bad(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            )));
        }
        let r: PosixRlimit =
            serde_json::from_value(json!({"type": typ, "soft": soft, "hard": hard}))
                .map_err(|_| bad(format!("invalid ulimit type: {name}")))?;
        l.rlimits.push(r);
    }
    for (k, v) in hc.sysctls.iter().flatten() {
        let namespaced = k.starts_with("net.")
            || k.starts_with("kernel.msg")
            || k.starts_with("kernel.sem")
            || k.starts_with("kernel.shm")
            || k.starts_with("fs.mqueue.")
            || k == "kernel.domainname"
            || k == "kernel.hostname";
        if !namespaced {
            return Err(bad(format!("sysctl '{k}' is not whitelisted")));
        }
        l.sysctls.insert(k.clone(), v.clone());
    }
    for d in hc.devices.iter().flatten() {
        let host = d.path_on_host.clone().unwrap_or_default();
        let inside = d
            .path_in_container
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| host.clone());
        let perms = d
            .cgroup_permissions
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "rwm".into());
        l.devices.push((device(&host, &inside)?, perms));
    }
    Ok(l)
}

/// A host device node as the spec's `linux.devices` entry at `inside`.
fn device(host: &str, inside: &str) -> Result<LinuxDevice, ApiError> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let err = |e: String| {
        bad(format!(
            "error gathering device information while adding custom device \"{host}\": {e}"
        ))
    };
    let md = std::fs::metadata(host).map_err(|e| err(e.to_string()))?;
    let typ = if md.file_type().is_char_device() {
        "c"
    } else if md.file_type().is_block_device() {
        "b"
    } else {
        return Err(err("not a device node".into()));
    };
    let rdev = md.rdev();
    serde_json::from_value(json!({
        "path": inside,
        "type": typ,
        "major": nix::sys::stat::major(rdev),
        "minor": nix::sys::stat::minor(rdev),
        "fileMode": md.mode() & 0o777,
        "uid": md.uid(),
        "gid": md.gid(),
    }))
    .map_err(|e| err(e.to_string()))
}

/// A seccomp profile in Docker's format (what `--security-opt seccomp=profile.json` sends),
/// as the OCI spec's: `archMap` becomes `architectures`, Docker's own keys (`comment`,
/// `includes`, `excludes`) go; the rest has the same shape.
pub fn docker_seccomp(profile: &str) -> Result<LinuxSeccomp, ApiError> {
    let bad_profile = |e: String| bad(format!("Decoding seccomp profile failed: {e}"));
    let mut v: Value = serde_json::from_str(profile).map_err(|e| bad_profile(e.to_string()))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| bad_profile("not a JSON object".into()))?;
    if let Some(map) = obj.remove("archMap") {
        let mut arches = Vec::new();
        for a in map.as_array().into_iter().flatten() {
            if let Some(x) = a["architecture"].as_str() {
                arches.push(json!(x));
            }
            for s in a["subArchitectures"].as_array().into_iter().flatten() {
                arches.push(s.clone());
            }
        }
        if !arches.is_empty() && !obj.contains_key("architectures") {
            obj.insert("architectures".into(), Value::Array(arches));
        }
    }
    if let Some(list) = obj.get_mut("syscalls").and_then(|s| s.as_array_mut()) {
        for sc in list.iter_mut().filter_map(|s| s.as_object_mut()) {
            for k in ["comment", "includes", "excludes"] {
                sc.remove(k);
            }
            if let Some(name) = sc.remove("name") {
                sc.entry("names").or_insert_with(|| json!([name]));
            }
        }
    }
    serde_json::from_value(v).map_err(|e| bad_profile(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_follow_dockers_rules() {
        let hc = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(32),
            cpu_shares: Some(512),
            ..Default::default()
        };
        let r = resources(&hc).unwrap().unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["memory"]["limit"], 64 << 20);
        assert_eq!(v["memory"]["swap"], 128 << 20);
        assert_eq!(v["cpu"]["quota"], 50_000);
        assert_eq!(v["cpu"]["period"], 100_000);
        assert_eq!(v["cpu"]["shares"], 512);
        assert_eq!(v["pids"]["limit"], 32);
        assert!(resources(&HostConfig::default()).unwrap().is_none());
        let small = HostConfig {
            memory: Some(1 << 20),
            ..Default::default()
        };
        assert!(resources(&small).unwrap_err().message.contains("6MB"));
        let swap_only = HostConfig {
            memory_swap: Some(1 << 30),
            ..Default::default()
        };
        assert!(resources(&swap_only).is_err());
    }

    #[test]
    fn security_opts_ulimits_and_profiles() {
        let hc = HostConfig {
            security_opt: Some(vec![
                "no-new-privileges".into(),
                "seccomp=unconfined".into(),
            ]),
            ulimits: Some(vec![berth_api::models::ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(100),
                hard: Some(200),
            }]),
            ..Default::default()
        };
        let l = limits(&hc).unwrap();
        assert!(l.no_new_privileges);
        assert_eq!(l.seccomp, Some(SeccompMode::Unconfined));
        assert_eq!(l.rlimits.len(), 1);
        let bad_opt = HostConfig {
            security_opt: Some(vec!["bogus".into()]),
            ..Default::default()
        };
        assert!(limits(&bad_opt)
            .unwrap_err()
            .message
            .contains("invalid --security-opt"));
        let p = docker_seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":["SCMP_ARCH_X86"]}],
                "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","comment":"no","includes":{},"excludes":{}}]}"#,
        )
        .unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["architectures"][1], "SCMP_ARCH_X86");
        assert_eq!(v["syscalls"][0]["names"][1], "mkdirat");
        assert!(docker_seccomp("nope").is_err());
    }
}
