//! Preparing a container's OCI bundle at start: the overlay rootfs, the spec, the shim config.

use crate::container::ContainerRecord;
use crate::network::Planned;
use crate::{blocking, fsutil::write_replace, Daemon};
use berth_api::ApiError;
use berth_runtime::shim::{self, ShimConfig};
use berth_runtime::spec::{self, BindMount, SpecOptions};
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

/// Where `--init`'s init is in the container (Docker's place for docker-init).
const INIT_PATH: &str = "/dev/init";
/// berth-init (init/berth-init.c, built static by build.rs).
static INIT_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

impl Daemon {
    /// Lease the container's address on each of its networks, mount the rootfs and write
    /// `config.json` and `shim.json` into the bundle directory. Returns the endpoints to
    /// plug in; on error, no lease is left.
    pub(crate) async fn prepare_bundle(
        self: &Arc<Self>,
        rec: &ContainerRecord,
    ) -> Result<Vec<Planned>, ApiError> {
        let d = self.clone();
        let rec = rec.clone();
        blocking(move || {
            // The mode is checked first: a bad one leases nothing.
            let network = d.spec_network(&rec)?;
            let planned = d.plan_endpoints(&rec)?;
            let r = d.prepare_bundle_blocking(&rec, network, &planned);
            if r.is_err() {
                for p in &planned {
                    d.net.release_lease(&p.net, &rec.id);
                }
            }
            r.map(|()| planned)
        })
        .await
    }

    /// An address on each network the container is attached to (blocking); Docker's
    /// `network X not found` when one of them is gone.
    fn plan_endpoints(&self, rec: &ContainerRecord) -> Result<Vec<Planned>, ApiError> {
        let mut planned: Vec<Planned> = Vec::new();
        for att in crate::network::attachments(rec) {
            let r = self
                .net
                .resolve(&att)
                .ok_or_else(|| ApiError::not_found(format!("network {} not found", att.network)))
                .and_then(|net| {
                    let ip = self.net.allocate(&net, &rec.id, att.ipv4_address)?;
                    let ip6 = match self.net.allocate6(&net, &rec.id, att.ipv6_address) {
                        Ok(ip6) => ip6,
                        Err(e) => {
                            self.net.release_lease(&net, &rec.id);
                            return Err(e);
                        }
                    };
                    Ok(Planned { net, att, ip, ip6 })
                });
            match r {
                Ok(p) => planned.push(p),
                Err(e) => {
                    for p in &planned {
                        self.net.release_lease(&p.net, &rec.id);
                    }
                    return Err(e);
                }
            }
        }
        Ok(planned)
    }

    fn prepare_bundle_blocking(
        &self,
        rec: &ContainerRecord,
        network: spec::NetworkMode,
        planned: &[Planned],
    ) -> Result<(), ApiError> {
        let bundle = self.bundle_dir(&rec.id);
        let dir = self.container_dir(&rec.id);
        let rootfs = bundle.join("rootfs");
        let _ = berth_snapshot::unmount(&rootfs);
        let _ = std::fs::remove_dir_all(&bundle);
        std::fs::create_dir_all(&rootfs).map_err(io_err)?;
        let lowers = self.rootfs_lowers(rec);
        if let Some(missing) = lowers.iter().find(|l| !l.exists()) {
            return Err(ApiError::internal(format!(
                "the container's image layer {} is missing",
                missing.display()
            )));
        }
        // A build step's writable layer needs no syncing (the build syncs its layers once at
        // its end), nor its unmount's sync of the whole file system, which the next step
        // waits for; its previous run, if any, was unmounted by its shim before this start
        // (the teardown lock). Not for auto-removed containers, where nothing waits for the
        // unmount: on the development machine's journal-less ext4, back-to-back `run --rm`
        // with volatile overlays made every metadata operation of the file system slower
        // (mkdir 50 us -> 0.9 ms) for a reason not found.
        let volatile = rec.transient && !rec.host_config.auto_remove.unwrap_or(false);
        let mount = if volatile {
            berth_snapshot::mount_overlay_volatile
        } else {
            berth_snapshot::mount_overlay
        };
        mount(
            &lowers,
            &dir.join("rw/upper"),
            &dir.join("rw/work"),
            &rootfs,
        )
        .map_err(|e| ApiError::internal(format!("error mounting the container's rootfs: {e}")))?;

        let user = berth_runtime::user::resolve(&rootfs, rec.config.user.as_deref().unwrap_or(""))
            .map_err(|e| ApiError::invalid(format!("unable to find user: {e}")))?;
        let limits = crate::limits::limits(&rec.host_config)?;
        let init_bind = if rec.host_config.init.unwrap_or(false) {
            Some(BindMount {
                source: self.init_binary()?,
                destination: INIT_PATH.into(),
                readonly: true,
                options: vec!["rprivate".into()],
            })
        } else {
            None
        };
        let (volume_binds, tmpfs) = match self.mount_sources(rec, &rootfs) {
            Ok(m) => m,
            Err(e) => {
                self.volumes.release_all(&rec.id);
                return Err(e);
            }
        };
        let hostname = rec.config.hostname.clone().unwrap_or_default();
        let domain = rec.config.domainname.as_deref();
        let hc = &rec.host_config;
        let ip = planned.first().map(|p| p.ip);
        let embedded_dns = planned.iter().any(|p| !p.net.builtin);
        let mut etc_hc = hc.clone();
        if etc_hc.dns.as_ref().is_none_or(|d| d.is_empty()) && !self.config.dns.is_empty() {
            etc_hc.dns = Some(self.config.dns.clone());
        }
        match hc
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("container:"))
        {
            // As dockerd: in another container's network namespace, its name files too (its
            // resolv.conf may name the embedded DNS server, which answers there).
            Some(other) => {
                let from = self.container_dir(&self.container(other)?.id);
                for f in ["hosts", "resolv.conf"] {
                    let data = std::fs::read(from.join(f)).map_err(io_err)?;
                    write_replace(&dir.join(f), &data).map_err(io_err)?;
                }
                write_replace(&dir.join("hostname"), format!("{hostname}\n").as_bytes())
                    .map_err(io_err)?;
            }
            None => write_etc_files(
                &dir,
                &hostname,
                domain,
                ip,
                &etc_hc,
                self.net.gateway(),
                embedded_dns,
            )?,
        }
        let opts = SpecOptions {
            id: rec.id.clone(),
            args: if hc.init.unwrap_or(false) {
                vec![INIT_PATH.to_string(), "--".to_string()]
            } else {
                Vec::new()
            }
            .into_iter()
            .chain(std::iter::once(rec.path.clone()))
            .chain(rec.args.iter().cloned())
            .collect(),
            env: rec.config.env.clone().unwrap_or_default(),
            cwd: rec
                .config
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into()),
            user,
            hostname,
            domainname: rec.config.domainname.clone().filter(|d| !d.is_empty()),
            tty: rec.config.tty.unwrap_or(false),
            rootfs: rootfs.clone(),
            readonly_rootfs: hc.readonly_rootfs.unwrap_or(false),
            cgroup_parent: hc
                .cgroup_parent
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| self.config.cgroup_parent.clone()),
            binds: ["hostname", "hosts", "resolv.conf"]
                .iter()
                .map(|f| BindMount {
                    source: dir.join(f),
                    destination: Path::new("/etc").join(f),
                    readonly: false,
                    options: vec!["rprivate".into()],
                })
                .chain(volume_binds)
                .chain(init_bind)
                .collect(),
            extra_mounts: tmpfs,
            resources: limits.resources,
            shm_size: limits.shm_size.unwrap_or(64 * 1024 * 1024),
            oom_score_adj: limits.oom_score_adj,
            seccomp: limits
                .seccomp
                .unwrap_or(berth_runtime::spec::SeccompMode::Default),
            no_new_privileges: limits.no_new_privileges,
            rlimits: limits.rlimits,
            sysctls: limits.sysctls,
            devices: limits.devices,
            cap_add: hc.cap_add.clone().unwrap_or_default(),
            cap_drop: hc.cap_drop.clone().unwrap_or_default(),
            privileged: hc.privileged.unwrap_or(false),
            ..SpecOptions::default()
        };
        let opts = SpecOptions { network, ..opts };
        let spec = spec::build(&opts).map_err(|e| ApiError::invalid(e.to_string()))?;
        let spec_json = serde_json::to_vec(&spec).map_err(|e| ApiError::internal(e.to_string()))?;
        write_replace(&bundle.join(shim::SPEC_FILE), &spec_json).map_err(io_err)?;

        let runtime = self.config.runtime_path(hc.runtime.as_deref())?;
        let (max_size, max_files) = self.log_limits(rec)?;
        let log_driver = hc
            .log_config
            .as_ref()
            .and_then(|l| l.typ.clone())
            .unwrap_or_else(|| "json-file".into());
        let cfg = ShimConfig {
            id: rec.id.clone(),
            bundle: bundle.clone(),
            runtime,
            runtime_root: crate::layout::runtime_root(&self.config.exec_root),
            log_path: (log_driver != "none").then(|| crate::logs::log_path(&dir, &rec.id)),
            log_max_size: max_size,
            log_max_files: max_files,
            tty: rec.config.tty.unwrap_or(false),
            open_stdin: rec.config.open_stdin.unwrap_or(false),
            stdin_once: rec.config.stdin_once.unwrap_or(false),
            rootfs_mount: Some(rootfs),
            seccomp_cache: Some(crate::layout::seccomp_cache(&self.config.exec_root)),
            cgroups_path: spec.linux().as_ref().and_then(|l| l.cgroups_path().clone()),
        };
        let cfg_json = serde_json::to_vec(&cfg).map_err(|e| ApiError::internal(e.to_string()))?;
        write_replace(&bundle.join(shim::CONFIG_FILE), &cfg_json).map_err(io_err)?;
        Ok(())
    }

    /// `<data-root>/init/berth-init`, written (atomically, executable) when missing or not
    /// this build's; checked at the first `--init` start of the daemon.
    fn init_binary(&self) -> Result<std::path::PathBuf, ApiError> {
        // Checked (and written) once per daemon, not at every start.
        static READY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
        if let Some(p) = READY.get() {
            return Ok(p.clone());
        }
        let path = self.config.data_root.join("init").join("berth-init");
        let current = std::fs::read(&path).is_ok_and(|b| b == INIT_BINARY);
        if !current {
            use std::os::unix::fs::PermissionsExt;
            let dir = path.parent().expect("a parent");
            std::fs::create_dir_all(dir).map_err(io_err)?;
            let tmp = dir.join(format!(".berth-init-{}", crate::new_id()));
            std::fs::write(&tmp, INIT_BINARY)
                .and_then(|()| {
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))
                })
                .and_then(|()| std::fs::rename(&tmp, &path))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    ApiError::internal(format!("cannot install berth-init: {e}"))
                })?;
        }
        Ok(READY.get_or_init(|| path).clone())
    }

    /// The container's volumes and binds as bind mounts, its tmpfs mounts as OCI mounts, in
    /// the order they must be made (parents first). A volume with driver options is mounted
    /// for it; a new, empty volume is first filled with what the image has at its path
    /// (Docker's copy-up, unless `nocopy`); a missing `-v` bind source is made.
    fn mount_sources(
        &self,
        rec: &ContainerRecord,
        rootfs: &Path,
    ) -> Result<(Vec<BindMount>, Vec<oci_spec::runtime::Mount>), ApiError> {
        use crate::volumes::MountKind;
        let mut mounts: Vec<&crate::volumes::MountPoint> = rec.mounts.iter().collect();
        mounts.sort_by_key(|m| m.destination.matches('/').count());
        let mut binds = Vec::new();
        let mut tmpfs = Vec::new();
        for m in mounts {
            let source = match m.kind {
                MountKind::Tmpfs => {
                    tmpfs.push(
                        berth_runtime::spec::tmpfs_mount(&m.destination, &m.tmpfs_options)
                            .map_err(|e| ApiError::invalid(e.to_string()))?,
                    );
                    continue;
                }
                MountKind::Bind => {
                    let src = Path::new(&m.source);
                    if !src.exists() {
                        if !m.create_source {
                            return Err(ApiError::invalid(format!(
                                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                                m.source
                            )));
                        }
                        std::fs::create_dir_all(src).map_err(|e| {
                            ApiError::internal(format!(
                                "error while creating mount source path '{}': {e}",
                                m.source
                            ))
                        })?;
                    }
                    src.to_path_buf()
                }
                MountKind::Volume => {
                    let meta = self.volumes.get(&m.name)?;
                    self.volumes.acquire(&meta, &rec.id)?;
                    let data = self.volumes.data(&m.name);
                    let empty = std::fs::read_dir(&data)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                    if empty
                        && !m.nocopy
                        && crate::build::steps::is_dir_in_root(rootfs, &m.destination)
                    {
                        crate::build::steps::copy_tree(
                            rootfs,
                            m.destination.trim_start_matches('/'),
                            &data,
                            "/",
                            None,
                            crate::build::steps::Attrs::default(),
                        )
                        .map_err(|e| {
                            ApiError::internal(format!(
                                "copy the image's {} into volume {}: {}",
                                m.destination, m.name, e.message
                            ))
                        })?;
                    }
                    data
                }
            };
            let mut options = Vec::new();
            if !m.propagation.is_empty() {
                options.push(m.propagation.clone());
            }
            binds.push(BindMount {
                source,
                destination: m.destination.clone().into(),
                readonly: !m.rw,
                options,
            });
        }
        Ok((binds, tmpfs))
    }

    /// The network namespace the container gets from its `--network` (checked at start, as
    /// dockerd does): `default`/`bridge`, a user network and `none` get a new one (the runtime makes it; the
    /// daemon adds `eth0` on the default bridge between create and start), `host` the host's,
    /// `container:<name or id>` a running container's.
    fn spec_network(&self, rec: &ContainerRecord) -> Result<spec::NetworkMode, ApiError> {
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
        match mode {
            "" | "default" | "bridge" | "none" => return Ok(spec::NetworkMode::Loopback),
            "host" => return Ok(spec::NetworkMode::Host),
            _ => {}
        }
        let Some(other) = mode.strip_prefix("container:") else {
            // A user network: a new namespace, as for the default bridge (the network itself
            // is looked up when its address is leased).
            return Ok(spec::NetworkMode::Loopback);
        };
        let c = self.container(other)?;
        if c.id == rec.id {
            return Err(ApiError::invalid("cannot join own network namespace"));
        }
        let st = c.record().state;
        if !st.status.is_live() || st.pid <= 0 {
            return Err(ApiError::conflict(format!(
                "cannot join network of a non running container: {}",
                c.id
            )));
        }
        Ok(spec::NetworkMode::Join(
            format!("/proc/{}/ns/net", st.pid).into(),
        ))
    }

    /// Log rotation for a container: its `--log-opt`s over the daemon's defaults.
    fn log_limits(&self, rec: &ContainerRecord) -> Result<(u64, u32), ApiError> {
        let opts = rec
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.config.clone())
            .unwrap_or_default();
        let size = match opts.get("max-size") {
            Some(s) => crate::config::parse_size(s)?,
            None => self.config.log_max_size,
        };
        let files = match opts.get("max-file") {
            Some(n) => n
                .parse()
                .map_err(|_| ApiError::invalid(format!("invalid value for max-file: {n}")))?,
            None => self.config.log_max_files,
        };
        Ok((size, files))
    }
}

fn io_err(e: std::io::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

/// `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` as Docker writes them. With an
/// address (the default bridge), `/etc/hosts` is made anew on each start, as Docker does, with
/// the container's line; without one, it is written once.
fn write_etc_files(
    dir: &Path,
    hostname: &str,
    domain: Option<&str>,
    ip: Option<Ipv4Addr>,
    hc: &berth_api::models::HostConfig,
    gateway: Ipv4Addr,
    embedded_dns: bool,
) -> Result<(), ApiError> {
    write_replace(&dir.join("hostname"), format!("{hostname}\n").as_bytes()).map_err(io_err)?;
    let extra = hc.extra_hosts.as_deref().unwrap_or_default();
    // Also when it is empty: a write lost to a power failure (these are not fsynced).
    let hosts_missing = std::fs::metadata(dir.join("hosts")).map_or(true, |m| m.len() == 0);
    if ip.is_some() || !extra.is_empty() || hosts_missing {
        // As Docker's: the defaults, the extra hosts, then the container's own line.
        let base = HOSTS.to_string() + &crate::network::extra_hosts_lines(extra, Some(gateway));
        let hosts = crate::network::hosts_file(&base, ip, hostname, domain);
        write_replace(&dir.join("hosts"), hosts.as_bytes()).map_err(io_err)?;
    }
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let (dns, search, options) = (
        hc.dns.as_deref().unwrap_or_default(),
        hc.dns_search.as_deref().unwrap_or_default(),
        hc.dns_options.as_deref().unwrap_or_default(),
    );
    // In the host's network namespace the host's resolvers, loopback ones included, work as
    // they are: Docker gives such a container the host's file unchanged.
    let conf = if embedded_dns {
        embedded_resolv_conf(&host, search, options)
    } else if hc.network_mode.as_deref() == Some("host")
        && dns.is_empty()
        && search.is_empty()
        && options.is_empty()
    {
        host
    } else {
        resolv_conf(&host, dns, search, options)
    };
    write_replace(&dir.join("resolv.conf"), conf.as_bytes()).map_err(io_err)
}

/// The values of the `key` lines of a resolv.conf (`nameserver`, `search`, `options`), in
/// order.
pub(crate) fn resolv_fields(text: &str, key: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some(key)).then(|| w.map(str::to_string).collect::<Vec<_>>())
        })
        .flatten()
        .collect()
}

/// The resolv.conf of a container on a user network, as Docker's: the embedded DNS server
/// (which forwards what it does not know to the container's `--dns`, else the host's
/// servers), the search domains of `--dns-search` or the host, and `ndots:0` before the
/// options of `--dns-option` or the host.
pub fn embedded_resolv_conf(host: &str, search: &[String], options: &[String]) -> String {
    let host_fields = |key: &str| resolv_fields(host, key);
    let search = if search.is_empty() {
        host_fields("search")
    } else {
        search.to_vec()
    };
    let mut opts = vec!["ndots:0".to_string()];
    let given = if options.is_empty() {
        host_fields("options")
    } else {
        options.to_vec()
    };
    for o in given {
        if o.starts_with("ndots:") {
            opts[0] = o;
        } else if !opts.contains(&o) {
            opts.push(o);
        }
    }
    let mut s = String::new();
    if !search.is_empty() && search != ["."] {
        s.push_str(&format!("search {}\n", search.join(" ")));
    }
    s.push_str(&format!(
        "nameserver {}\noptions {}\n",
        berth_network::dns::DNS_ADDRESS,
        opts.join(" ")
    ));
    s
}

/// The container's resolv.conf, as Docker's: without `--dns`, `--dns-search` or
/// `--dns-option`, the host's file without loopback nameservers (they mean nothing inside the
/// container's network namespace), Google's resolvers when none is left. With any of them,
/// `search`, `nameserver` and `options` lines, each from the flag when given, else from the
/// host's file.
pub fn resolv_conf(host: &str, dns: &[String], search: &[String], options: &[String]) -> String {
    let filtered = filter_resolv_conf(host);
    if dns.is_empty() && search.is_empty() && options.is_empty() {
        return filtered;
    }
    let fields = |key: &str| resolv_fields(&filtered, key);
    let pick = |given: &[String], key: &str| {
        if given.is_empty() {
            fields(key)
        } else {
            given.to_vec()
        }
    };
    let (dns, search, options) = (
        pick(dns, "nameserver"),
        pick(search, "search"),
        pick(options, "options"),
    );
    let mut out = String::new();
    let search = search.join(" ");
    if !search.is_empty() && search.trim() != "." {
        out.push_str(&format!("search {search}\n"));
    }
    for ns in dns {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    let options = options.join(" ");
    if !options.trim().is_empty() {
        out.push_str(&format!("options {options}\n"));
    }
    out
}

fn filter_resolv_conf(host: &str) -> String {
    let mut out = String::new();
    let mut servers = 0;
    for line in host.lines() {
        let t = line.trim();
        if let Some(ns) = t.strip_prefix("nameserver") {
            let ns = ns.trim();
            if ns.starts_with("127.") || ns == "::1" {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn loopback_resolvers_are_dropped() {
        let rc = |h: &str| super::resolv_conf(h, &[], &[], &[]);
        let r = rc("search x\nnameserver 127.0.0.53\n");
        assert!(!r.contains("127.0.0.53"));
        assert!(r.contains("search x") && r.contains("nameserver 8.8.8.8"));
        let r = rc("nameserver 10.0.0.2\n");
        assert_eq!(r, "nameserver 10.0.0.2\n");
    }

    #[test]
    fn dns_flags() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let host = "search h.lan\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n";
        assert_eq!(
            super::resolv_conf(
                host,
                &v(&["10.0.0.53"]),
                &v(&["example.com"]),
                &v(&["ndots:2"])
            ),
            "search example.com\nnameserver 10.0.0.53\noptions ndots:2\n"
        );
        assert_eq!(
            super::resolv_conf(host, &[], &v(&["a.com", "b.com"]), &[]),
            "search a.com b.com\nnameserver 10.0.0.2\noptions edns0\n"
        );
        assert_eq!(
            super::resolv_conf("nameserver 127.0.0.1\n", &[], &[], &v(&["ndots:1"])),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions ndots:1\n"
        );
    }
}
