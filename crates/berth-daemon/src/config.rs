//! The daemon's configuration: dockerd's flags and daemon.json.

use berth_api::ApiError;
use berth_network::ipam::AddressPool;
use ipnet::Ipv4Net;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where things live and how containers run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Persistent state (`--data-root`, default /var/lib/berth).
    pub data_root: PathBuf,
    /// Runtime state: sockets, bundles, pid files (`--exec-root`, default /run/berth).
    pub exec_root: PathBuf,
    /// Addresses to listen on (`-H`), e.g. `unix:///run/berth/berth.sock`.
    pub hosts: Vec<String>,
    /// The daemon's pid file (`--pidfile`).
    pub pidfile: PathBuf,
    /// The cgroup every container's cgroup lives under.
    pub cgroup_parent: String,
    /// The OCI runtime used when a container names none: `None` is the built-in libcontainer.
    pub default_runtime: Option<String>,
    /// Named runtimes: name → binary path (`runc` is always known, looked up in PATH).
    pub runtimes: HashMap<String, PathBuf>,
    /// Default log rotation: bytes per file (0 = unbounded) and files kept.
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// daemon.json's `log-opts` as written, given to each new container's LogConfig.
    pub log_opts: HashMap<String, String>,
    /// The binary to run as `<exe> shim --dir …`.
    pub shim_exe: PathBuf,
    /// The cap on a layer's (or a copied archive's) uncompressed bytes.
    pub max_layer_size: u64,
    /// The default bridge's address and subnet (daemon.json `bip`, e.g. `172.17.0.1/16`);
    /// chosen from `address_pools` when `None`.
    pub bip: Option<(Ipv4Addr, Ipv4Net)>,
    /// Where the default bridge's subnet is chosen from (`default-address-pools`).
    pub address_pools: Vec<AddressPool>,
    /// daemon.json `dns`: the nameservers of containers without `--dns` (in their
    /// resolv.conf, or behind the embedded DNS server on user networks).
    pub dns: Vec<String>,
    /// Set the host's cgroup2 `favordynmods` option at start-up (berth's own daemon.json
    /// `cgroup-favordynmods`, default true): see `cgroups::favor_dynmods`.
    pub cgroup_favordynmods: bool,
    /// daemon.json `insecure-registries`: registries (`host[:port]`, or CIDRs of their
    /// addresses) reached over plain HTTP when HTTPS fails; loopback ones always are.
    pub insecure_registries: Vec<String>,
    /// daemon.json `registry-mirrors`: URLs tried, in order, before Docker Hub for its images.
    pub registry_mirrors: Vec<String>,
}

impl Config {
    pub fn new(data_root: PathBuf, exec_root: PathBuf) -> Config {
        let pidfile = exec_root.join("berth.pid");
        let sock = exec_root.join("berth.sock");
        Config {
            data_root,
            exec_root,
            hosts: vec![format!("unix://{}", sock.display())],
            pidfile,
            cgroup_parent: "berth".into(),
            default_runtime: None,
            runtimes: HashMap::new(),
            log_max_size: 10 * 1000 * 1000,
            log_max_files: 3,
            log_opts: HashMap::new(),
            shim_exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("berth")),
            max_layer_size: berth_snapshot::DEFAULT_MAX_LAYER_SIZE,
            bip: None,
            address_pools: berth_network::ipam::default_address_pools(),
            dns: Vec::new(),
            cgroup_favordynmods: true,
            insecure_registries: Vec::new(),
            registry_mirrors: Vec::new(),
        }
    }

    /// Apply a daemon.json file. Keys on the command line win: callers apply flags afterwards.
    pub fn apply_file(&mut self, path: &Path) -> Result<(), ApiError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ApiError::invalid(format!("unable to read {}: {e}", path.display())))?;
        let f: DaemonJson = serde_json::from_str(&text).map_err(|e| {
            ApiError::invalid(format!(
                "unable to configure the berth daemon with file {}: {e}",
                path.display()
            ))
        })?;
        if let Some(d) = f.data_root {
            self.data_root = d;
        }
        if let Some(d) = f.exec_root {
            self.hosts = vec![format!("unix://{}", d.join("berth.sock").display())];
            self.pidfile = d.join("berth.pid");
            self.exec_root = d;
        }
        if let Some(h) = f.hosts {
            self.hosts = h;
        }
        if let Some(p) = f.pidfile {
            self.pidfile = p;
        }
        if let Some(c) = f.cgroup_parent {
            self.cgroup_parent = c;
        }
        if let Some(r) = f.default_runtime {
            self.default_runtime = Some(r);
        }
        for (name, rt) in f.runtimes.unwrap_or_default() {
            self.runtimes.insert(name, rt.path);
        }
        if let Some(m) = f.max_layer_size {
            self.max_layer_size = parse_size(&m)?;
        }
        if let Some(b) = f.bip.filter(|b| !b.is_empty()) {
            self.bip = Some(
                berth_network::ipam::parse_bip(&b).map_err(|e| ApiError::invalid(e.to_string()))?,
            );
        }
        if let Some(pools) = f.default_address_pools {
            self.address_pools = pools
                .into_iter()
                .map(|p| AddressPool::new(p.base, p.size))
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::invalid(e.to_string()))?;
        }
        if let Some(dns) = f.dns {
            for d in &dns {
                if d.parse::<std::net::IpAddr>().is_err() {
                    return Err(ApiError::invalid(format!(
                        "invalid daemon configuration: dns: {d} is not an ip address"
                    )));
                }
            }
            self.dns = dns;
        }
        if let Some(f) = f.cgroup_favordynmods {
            self.cgroup_favordynmods = f;
        }
        if let Some(r) = f.insecure_registries {
            self.insecure_registries = r;
        }
        if let Some(m) = f.registry_mirrors {
            for u in &m {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(ApiError::invalid(format!(
                        "invalid mirror: unsupported scheme in {u:?}: it must be http or https"
                    )));
                }
            }
            self.registry_mirrors = m;
        }
        if let Some(opts) = f.log_opts {
            self.log_opts = opts.clone();
            if let Some(s) = opts.get("max-size") {
                self.log_max_size = parse_size(s)?;
            }
            if let Some(n) = opts.get("max-file") {
                self.log_max_files = n
                    .parse()
                    .map_err(|_| ApiError::invalid(format!("invalid max-file: {n}")))?;
            }
        }
        Ok(())
    }

    pub fn socket_paths(&self) -> Vec<PathBuf> {
        self.hosts
            .iter()
            .filter_map(|h| h.strip_prefix("unix://").map(PathBuf::from))
            .collect()
    }

    /// Resolve a runtime name to a binary; `None` means the built-in runtime.
    pub fn runtime_path(&self, name: Option<&str>) -> Result<Option<PathBuf>, ApiError> {
        let name = match name.or(self.default_runtime.as_deref()) {
            None | Some("") | Some("berth") | Some("libcontainer") | Some("youki") => {
                return Ok(None)
            }
            Some(n) => n,
        };
        if let Some(p) = self.runtimes.get(name) {
            return Ok(Some(p.clone()));
        }
        if name.contains('/') {
            return Ok(Some(PathBuf::from(name)));
        }
        if let Some(p) = find_in_path(name) {
            return Ok(Some(p));
        }
        Err(ApiError::invalid(format!(
            "unknown or invalid runtime name: {name}"
        )))
    }
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// "10m", "1g", "512k", "100" → bytes (Docker's RAMInBytes, binary units).
pub fn parse_size(s: &str) -> Result<u64, ApiError> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches('b');
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| ApiError::invalid(format!("invalid size: '{s}'")))?;
    if n < 0.0 {
        return Err(ApiError::invalid(format!("invalid size: '{s}'")));
    }
    Ok((n * mult as f64) as u64)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DaemonJson {
    data_root: Option<PathBuf>,
    exec_root: Option<PathBuf>,
    hosts: Option<Vec<String>>,
    pidfile: Option<PathBuf>,
    cgroup_parent: Option<String>,
    default_runtime: Option<String>,
    runtimes: Option<HashMap<String, RuntimeJson>>,
    log_opts: Option<HashMap<String, String>>,
    /// berth's own: the cap on a layer's uncompressed size (`"64g"`), against
    /// decompression bombs in import, load and cp.
    max_layer_size: Option<String>,
    /// The default bridge's address/prefix (`172.17.0.1/16`).
    bip: Option<String>,
    /// `[{"base": "10.10.0.0/16", "size": 24}]`
    default_address_pools: Option<Vec<AddressPool>>,
    /// Default nameservers for containers.
    dns: Option<Vec<String>>,
    /// berth's own: favour fast cgroup migrations over fast forks host-wide.
    cgroup_favordynmods: Option<bool>,
    insecure_registries: Option<Vec<String>>,
    registry_mirrors: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct RuntimeJson {
    path: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10m").unwrap(), 10 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn daemon_json_applies() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("daemon.json");
        std::fs::write(
            &f,
            r#"{"data-root":"/tmp/x","log-opts":{"max-size":"1m","max-file":"2"},"runtimes":{"r":{"path":"/bin/r"}}}"#,
        )
        .unwrap();
        let mut c = Config::new("/a".into(), "/b".into());
        c.apply_file(&f).unwrap();
        assert_eq!(c.data_root, PathBuf::from("/tmp/x"));
        assert_eq!(c.log_max_size, 1 << 20);
        assert_eq!(c.log_max_files, 2);
        assert_eq!(
            c.runtime_path(Some("r")).unwrap(),
            Some(PathBuf::from("/bin/r"))
        );
        assert_eq!(c.bip, None);
        std::fs::write(
            &f,
            r#"{"bip":"10.5.0.1/24","default-address-pools":[{"base":"10.10.0.0/16","size":24}]}"#,
        )
        .unwrap();
        c.apply_file(&f).unwrap();
        assert_eq!(
            c.bip,
            Some(("10.5.0.1".parse().unwrap(), "10.5.0.0/24".parse().unwrap()))
        );
        assert_eq!(c.address_pools.len(), 1);
        assert_eq!(c.address_pools[0].size, 24);
        for bad in [
            r#"{"bip":"10.5.0.0/24"}"#,
            r#"{"bip":"nope"}"#,
            r#"{"default-address-pools":[{"base":"10.10.0.0/16","size":8}]}"#,
        ] {
            std::fs::write(&f, bad).unwrap();
            assert!(c.apply_file(&f).is_err(), "{bad}");
        }
        std::fs::write(&f, "{bad").unwrap();
        assert!(c.apply_file(&f).is_err());
    }
}
