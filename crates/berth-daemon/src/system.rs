//! `GET /version`, `GET /info`.

use crate::container::Status;
use crate::Daemon;
use serde_json::{json, Value};

/// "2" on a unified (cgroup v2) host, "1" on a legacy or hybrid one.
pub fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

fn uname() -> (String, String, String) {
    match nix::sys::utsname::uname() {
        Ok(u) => (
            u.release().to_string_lossy().into_owned(),
            u.nodename().to_string_lossy().into_owned(),
            u.machine().to_string_lossy().into_owned(),
        ),
        Err(_) => Default::default(),
    }
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// Docker's architecture names.
fn arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        m => m,
    }
}

impl Daemon {
    /// `GET /version`.
    pub fn version(&self) -> Value {
        let (kernel, _, machine) = uname();
        json!({
            "Platform": { "Name": "berth" },
            "Components": [{
                "Name": "Engine",
                "Version": berth_api::VERSION,
                "Details": {
                    "ApiVersion": berth_api::API_VERSION,
                    "MinAPIVersion": berth_api::MIN_API_VERSION,
                    "Os": "linux",
                    "Arch": arch(&machine),
                    "KernelVersion": kernel,
                }
            }],
            "Version": berth_api::VERSION,
            "ApiVersion": berth_api::API_VERSION,
            "MinAPIVersion": berth_api::MIN_API_VERSION,
            "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
            "GoVersion": "rust",
            "Os": "linux",
            "Arch": arch(&machine),
            "KernelVersion": kernel,
            "BuildTime": "",
            "Experimental": false,
        })
    }

    /// `GET /info`.
    pub fn info(&self) -> Value {
        let (kernel, host, machine) = uname();
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        let all = self.all_containers();
        for c in &all {
            match c.status() {
                Status::Running => running += 1,
                Status::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        let images = self.images.list(false).len();
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        let mut runtimes = serde_json::Map::new();
        runtimes.insert("berth".into(), json!({ "path": self.config.shim_exe }));
        runtimes.insert("runc".into(), json!({ "path": "runc" }));
        for (name, path) in &self.config.runtimes {
            runtimes.insert(name.clone(), json!({ "path": path }));
        }
        json!({
            "ID": host,
            "Containers": all.len(),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": stopped,
            "Images": images,
            "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"]],
            "Plugins": {
                "Volume": ["local"],
                "Network": ["bridge", "host", "null"],
                "Authorization": null,
                "Log": ["json-file", "local", "none"],
            },
            "MemoryLimit": true,
            "SwapLimit": true,
            "CpuCfsPeriod": true,
            "CpuCfsQuota": true,
            "CPUShares": true,
            "CPUSet": true,
            "PidsLimit": true,
            "IPv4Forwarding": true,
            "BridgeNfIptables": false,
            "BridgeNfIp6tables": false,
            "Debug": false,
            "NFd": 0,
            "OomKillDisable": true,
            "NGoroutines": 0,
            "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version(),
            "NEventsListener": 0,
            "KernelVersion": kernel,
            "OperatingSystem": os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": machine,
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": registry_config(&self.config.insecure_registries, &self.config.registry_mirrors),
            "NCPU": ncpu,
            "MemTotal": mem_total(),
            "DockerRootDir": self.config.data_root,
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": host,
            "Labels": [],
            "ExperimentalBuild": false,
            "ServerVersion": berth_api::VERSION,
            "Runtimes": runtimes,
            "DefaultRuntime": self.config.default_runtime.clone().unwrap_or_else(|| "berth".into()),
            "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
            "LiveRestoreEnabled": true,
            "Isolation": "",
            "InitBinary": "",
            "ContainerdCommit": { "ID": "", "Expected": "" },
            "RuncCommit": { "ID": "", "Expected": "" },
            "InitCommit": { "ID": "", "Expected": "" },
            "SecurityOptions": ["name=seccomp,profile=builtin"],
            "Warnings": [],
        })
    }
}

/// `RegistryConfig` as dockerd describes its daemon.json: insecure registries given as CIDRs
/// (and loopback), the others and Docker Hub (with its mirrors, normalised with a trailing
/// `/` as dockerd does) as index configs.
fn registry_config(insecure: &[String], mirrors: &[String]) -> serde_json::Value {
    let mirrors: Vec<String> = mirrors
        .iter()
        .map(|m| {
            let m = m.trim_end_matches('/');
            let m = if m.contains("://") {
                m.to_string()
            } else {
                format!("https://{m}")
            };
            format!("{m}/")
        })
        .collect();
    let mut cidrs = Vec::new();
    let mut indexes = serde_json::Map::new();
    for r in insecure {
        match r.parse::<ipnet::IpNet>() {
            // (as Go prints a CIDR: its network's address)
            Ok(net) => cidrs.push(net.trunc().to_string()),
            Err(_) => {
                indexes.insert(
                    r.clone(),
                    json!({"Name": r, "Mirrors": [], "Secure": false, "Official": false}),
                );
            }
        }
    }
    if !cidrs.iter().any(|c| c == "127.0.0.0/8") {
        cidrs.push("127.0.0.0/8".into());
    }
    indexes.insert(
        "docker.io".into(),
        json!({"Name": "docker.io", "Mirrors": mirrors, "Secure": true, "Official": true}),
    );
    json!({"IndexConfigs": indexes, "InsecureRegistryCIDRs": cidrs, "Mirrors": mirrors})
}
