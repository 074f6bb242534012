//! `GET /containers/{id}/stats` and `POST /containers/{id}/update`: a container's usage read
//! from its cgroup (v1 controllers, or the v2 unified hierarchy), its network counters from
//! its namespace, and its limits changed while it runs (written into the same cgroup files
//! libcontainer set them in).

use crate::container::ContainerRecord;
use crate::Daemon;
use berth_api::ApiError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

const ROOT: &str = "/sys/fs/cgroup";

/// Where a container's cgroup is: per v1 controller, or the one v2 directory.
enum Cgroup {
    V1(PathBuf),
    V2(PathBuf),
}

impl Cgroup {
    fn of(d: &Daemon, rec: &ContainerRecord) -> Cgroup {
        let parent = rec
            .host_config
            .cgroup_parent
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| d.config.cgroup_parent.clone());
        let rel = berth_runtime::spec::cgroups_path(&parent, &rec.id);
        let rel = rel.to_string_lossy().trim_start_matches('/').to_string();
        if Path::new(ROOT).join("memory").join(&rel).exists() {
            Cgroup::V1(PathBuf::from(rel))
        } else {
            Cgroup::V2(Path::new(ROOT).join(rel))
        }
    }

    /// A file of controller `ctrl` (v1), or of the v2 directory.
    fn file(&self, ctrl: &str, v1: &str, v2: &str) -> PathBuf {
        match self {
            Cgroup::V1(rel) => Path::new(ROOT).join(ctrl).join(rel).join(v1),
            Cgroup::V2(dir) => dir.join(v2),
        }
    }

    fn read(&self, ctrl: &str, v1: &str, v2: &str) -> Option<String> {
        std::fs::read_to_string(self.file(ctrl, v1, v2)).ok()
    }

    fn number(&self, ctrl: &str, v1: &str, v2: &str) -> Option<u64> {
        self.read(ctrl, v1, v2)?.trim().parse().ok()
    }

    /// `key value` lines (memory.stat, cpu.stat, memory.events).
    fn keyed(&self, ctrl: &str, v1: &str, v2: &str) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        for l in self.read(ctrl, v1, v2).unwrap_or_default().lines() {
            if let Some((k, v)) = l.split_once(' ') {
                if let Ok(n) = v.trim().parse::<u64>() {
                    m.insert(k.to_string(), json!(n));
                }
            }
        }
        m
    }

    fn write(&self, ctrl: &str, v1: &str, v2: &str, value: &str) -> Result<(), ApiError> {
        let f = self.file(ctrl, v1, v2);
        std::fs::write(&f, value).map_err(|e| {
            ApiError::internal(format!(
                "Cannot update container: write {}: {e}",
                f.display()
            ))
        })
    }
}

/// The host's total CPU time in nanoseconds (`/proc/stat`'s first line, in clock ticks).
fn system_cpu_usage() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * (1_000_000_000 / hz)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|k| k * 1024)
        .unwrap_or(0)
}

/// One sample, Docker's `types.StatsJSON` without `precpu_stats`.
fn sample(cg: &Cgroup, pid: i32) -> Value {
    let online = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let (total, percpu) = match cg {
        Cgroup::V1(_) => {
            let total = cg.number("cpuacct", "cpuacct.usage", "").unwrap_or(0);
            let percpu: Vec<u64> = cg
                .read("cpuacct", "cpuacct.usage_percpu", "")
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (total, percpu)
        }
        Cgroup::V2(_) => {
            let st = cg.keyed("", "", "cpu.stat");
            (
                st.get("usage_usec").and_then(|v| v.as_u64()).unwrap_or(0) * 1000,
                Vec::new(),
            )
        }
    };
    let usage = cg
        .number("memory", "memory.usage_in_bytes", "memory.current")
        .unwrap_or(0);
    let limit = match cg.read("memory", "memory.limit_in_bytes", "memory.max") {
        Some(s) if s.trim() != "max" => s.trim().parse::<u64>().unwrap_or(u64::MAX),
        _ => u64::MAX,
    }
    .min(host_memory().max(1));
    let mstat = cg.keyed("memory", "memory.stat", "memory.stat");
    let pids = cg
        .number("pids", "pids.current", "pids.current")
        .unwrap_or(0);
    let mut blk = Vec::new();
    match cg {
        Cgroup::V1(_) => {
            for l in cg
                .read("blkio", "blkio.throttle.io_service_bytes_recursive", "")
                .unwrap_or_default()
                .lines()
            {
                let f: Vec<&str> = l.split_whitespace().collect();
                if let [dev, op, v] = f.as_slice() {
                    let (maj, min) = dev.split_once(':').unwrap_or(("0", "0"));
                    blk.push(json!({"major": maj.parse::<u64>().unwrap_or(0), "minor": min.parse::<u64>().unwrap_or(0), "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
                }
            }
        }
        Cgroup::V2(_) => {
            for l in cg.read("", "", "io.stat").unwrap_or_default().lines() {
                let mut f = l.split_whitespace();
                let dev = f.next().unwrap_or("0:0");
                let (maj, min) = dev.split_once(':').unwrap_or(("0", "0"));
                for kv in f {
                    let (k, v) = kv.split_once('=').unwrap_or(("", "0"));
                    let op = match k {
                        "rbytes" => "read",
                        "wbytes" => "write",
                        _ => continue,
                    };
                    blk.push(json!({"major": maj.parse::<u64>().unwrap_or(0), "minor": min.parse::<u64>().unwrap_or(0), "op": op, "value": v.parse::<u64>().unwrap_or(0)}));
                }
            }
        }
    }
    let mut networks = serde_json::Map::new();
    for l in std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
        .unwrap_or_default()
        .lines()
        .skip(2)
    {
        let Some((name, rest)) = l.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name == "lo" {
            continue;
        }
        let v: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() >= 16 {
            networks.insert(
                name.to_string(),
                json!({"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                       "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}),
            );
        }
    }
    json!({
        "read": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "pids_stats": { "current": pids },
        "blkio_stats": { "io_service_bytes_recursive": blk },
        "cpu_stats": {
            "cpu_usage": { "total_usage": total, "percpu_usage": percpu },
            "system_cpu_usage": system_cpu_usage(),
            "online_cpus": online,
        },
        "memory_stats": { "usage": usage, "limit": limit, "stats": mstat },
        "networks": networks,
    })
}

impl Daemon {
    /// `GET /containers/{id}/stats`: one sample (with the one before, 200 ms earlier, as
    /// `precpu_stats`) when `stream` is false; else a sample a second until the client goes
    /// or the container stops. A stopped container's sample is all zeros, as Docker's.
    pub async fn write_stats(
        self: &Arc<Self>,
        name: &str,
        stream: bool,
        mut out: tokio::io::DuplexStream,
    ) -> Result<(), ApiError> {
        let c = self.container(name)?;
        let mut prev: Option<Value> = None;
        loop {
            let rec = c.record();
            let live = rec.state.status.is_live();
            let cur = if live {
                let cg = Cgroup::of(self, &rec);
                let pid = rec.state.pid;
                tokio::task::spawn_blocking(move || sample(&cg, pid))
                    .await
                    .unwrap_or(Value::Null)
            } else {
                json!({"read": "0001-01-01T00:00:00Z", "cpu_stats": {}, "memory_stats": {}, "pids_stats": {}, "blkio_stats": {}})
            };
            if !stream && prev.is_none() && live {
                prev = Some(cur);
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            let mut v = cur.clone();
            v["name"] = json!(format!("/{}", rec.name));
            v["id"] = json!(rec.id);
            let pre = prev.take().unwrap_or_else(|| json!({}));
            v["preread"] = pre["read"].clone();
            v["precpu_stats"] = pre["cpu_stats"].clone();
            let mut line = v.to_string();
            line.push('\n');
            if out.write_all(line.as_bytes()).await.is_err() || out.flush().await.is_err() {
                return Ok(());
            }
            if !stream || !live {
                return Ok(());
            }
            prev = Some(cur);
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    }

    /// `POST /containers/{id}/update`: the restart policy and resource limits in the
    /// record; a running container's cgroup gets the new limits at once.
    pub async fn update_container(
        self: &Arc<Self>,
        name: &str,
        body: Value,
    ) -> Result<Value, ApiError> {
        let c = self.container(name)?;
        let _op = c.op.lock().await;
        let mut hc = c.record().host_config;
        let num = |k: &str| body.get(k).and_then(|v| v.as_i64());
        let text = |k: &str| body.get(k).and_then(|v| v.as_str()).map(str::to_string);
        if let Some(rp) = body.get("RestartPolicy").filter(|v| !v.is_null()) {
            let policy: berth_api::models::RestartPolicy = serde_json::from_value(rp.clone())
                .map_err(|e| ApiError::invalid(format!("invalid restart policy: {e}")))?;
            if hc.auto_remove.unwrap_or(false)
                && !matches!(
                    policy.name,
                    None | Some(berth_api::models::RestartPolicyNameEnum::NO)
                        | Some(berth_api::models::RestartPolicyNameEnum::EMPTY)
                )
            {
                return Err(ApiError::invalid(
                    "Cannot update container: Restart policy cannot be updated because AutoRemove is enabled for the container",
                ));
            }
            hc.restart_policy = Some(policy);
        }
        if let Some(v) = num("Memory") {
            hc.memory = Some(v);
        }
        if let Some(v) = num("MemorySwap") {
            hc.memory_swap = Some(v);
        }
        if let Some(v) = num("MemoryReservation") {
            hc.memory_reservation = Some(v);
        }
        if let Some(v) = num("NanoCpus") {
            hc.nano_cpus = Some(v);
            hc.cpu_quota = None;
            hc.cpu_period = None;
        }
        if let Some(v) = num("CpuShares") {
            hc.cpu_shares = Some(v);
        }
        if let Some(v) = num("CpuPeriod") {
            hc.cpu_period = Some(v);
        }
        if let Some(v) = num("CpuQuota") {
            hc.cpu_quota = Some(v);
        }
        if let Some(v) = num("PidsLimit") {
            hc.pids_limit = Some(v);
        }
        if let Some(v) = text("CpusetCpus") {
            hc.cpuset_cpus = Some(v);
        }
        if let Some(v) = text("CpusetMems") {
            hc.cpuset_mems = Some(v);
        }
        // The same checks as at create.
        crate::limits::resources(&hc)
            .map_err(|e| ApiError::invalid(format!("Cannot update container: {}", e.message)))?;
        let rec = c.record();
        if rec.state.status.is_live() {
            let cg = Cgroup::of(self, &rec);
            let hc2 = hc.clone();
            tokio::task::spawn_blocking(move || apply_limits(&cg, &hc2))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
        }
        c.update(&self.container_dir(&c.id), |r| r.host_config = hc);
        self.container_event(&c.id, "update", &[]);
        Ok(json!({ "Warnings": [] }))
    }
}

/// Write `hc`'s limits into a running container's cgroup.
fn apply_limits(cg: &Cgroup, hc: &berth_api::models::HostConfig) -> Result<(), ApiError> {
    let v1 = matches!(cg, Cgroup::V1(_));
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        let swap = hc.memory_swap.unwrap_or(0);
        if v1 {
            // The swap limit may not go below the memory limit: order the writes.
            let memsw = cg.file("memory", "memory.memsw.limit_in_bytes", "");
            let cur = cg
                .number("memory", "memory.limit_in_bytes", "")
                .unwrap_or(0) as i64;
            let sw = if swap > 0 {
                swap
            } else if swap < 0 {
                -1
            } else {
                m * 2
            };
            if memsw.exists() && (sw == -1 || sw > cur) {
                cg.write("memory", "memory.memsw.limit_in_bytes", "", &sw.to_string())?;
                cg.write("memory", "memory.limit_in_bytes", "", &m.to_string())?;
            } else {
                cg.write("memory", "memory.limit_in_bytes", "", &m.to_string())?;
                if memsw.exists() {
                    cg.write("memory", "memory.memsw.limit_in_bytes", "", &sw.to_string())?;
                }
            }
        } else {
            cg.write("memory", "", "memory.max", &m.to_string())?;
            if swap > 0 {
                cg.write(
                    "memory",
                    "",
                    "memory.swap.max",
                    &(swap - m).max(0).to_string(),
                )?;
            } else if swap < 0 {
                cg.write("memory", "", "memory.swap.max", "max")?;
            }
        }
    }
    if let Some(r) = hc.memory_reservation.filter(|r| *r > 0) {
        cg.write(
            "memory",
            "memory.soft_limit_in_bytes",
            "memory.low",
            &r.to_string(),
        )?;
    }
    let (quota, period) = match hc.nano_cpus.filter(|n| *n > 0) {
        Some(n) => {
            let (q, p) = crate::limits::cfs_of_nano_cpus(n);
            (Some(q), Some(p))
        }
        None => (
            hc.cpu_quota.filter(|q| *q != 0),
            hc.cpu_period.filter(|p| *p != 0),
        ),
    };
    if quota.is_some() || period.is_some() {
        if v1 {
            if let Some(p) = period {
                cg.write("cpu", "cpu.cfs_period_us", "", &p.to_string())?;
            }
            if let Some(q) = quota {
                cg.write("cpu", "cpu.cfs_quota_us", "", &q.to_string())?;
            }
        } else {
            let q = quota.map(|q| q.to_string()).unwrap_or_else(|| "max".into());
            cg.write(
                "cpu",
                "",
                "cpu.max",
                &format!("{q} {}", period.unwrap_or(100_000)),
            )?;
        }
    }
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        if v1 {
            cg.write("cpu", "cpu.shares", "", &s.to_string())?;
        } else {
            let weight = 1 + ((s.max(2) - 2) * 9999) / 262142;
            cg.write("cpu", "", "cpu.weight", &weight.to_string())?;
        }
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        let v = if p < 0 {
            "max".to_string()
        } else {
            p.to_string()
        };
        cg.write("pids", "pids.max", "pids.max", &v)?;
    }
    if let Some(c) = hc.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cg.write("cpuset", "cpuset.cpus", "cpuset.cpus", c)?;
    }
    if let Some(m) = hc.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        cg.write("cpuset", "cpuset.mems", "cpuset.mems", m)?;
    }
    Ok(())
}
