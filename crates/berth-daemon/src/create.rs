//! `POST /containers/create`: a container record from the request and its image.

use crate::container::{Container, ContainerRecord, StateRecord};
use crate::{blocking, names, new_id, Daemon};
use berth_api::models::{ContainerConfig, ContainerCreateBody, HostConfigLogConfig};
use berth_api::ApiError;
use std::sync::Arc;

impl Daemon {
    /// Create a container; returns its id.
    pub async fn create_container(
        self: &Arc<Self>,
        name: Option<String>,
        body: ContainerCreateBody,
    ) -> Result<String, ApiError> {
        let transient = body
            .host_config
            .as_ref()
            .and_then(|h| h.auto_remove)
            .unwrap_or(false);
        self.create_container_as(name, body, transient).await
    }

    /// Create a container; a `transient` one (auto-removed, or a build step's) has its record
    /// written without waiting for the disk (`ContainerRecord::save_volatile`).
    pub(crate) async fn create_container_as(
        self: &Arc<Self>,
        name: Option<String>,
        body: ContainerCreateBody,
        transient: bool,
    ) -> Result<String, ApiError> {
        let image_name = body
            .image
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                ApiError::invalid("config cannot be empty in order to create a container")
            })?;
        let images = self.images.clone();
        let lookup = image_name.clone();
        let image = blocking(move || images.get(&lookup).map_err(crate::images::map_err)).await?;
        if let Some(why) = &image.broken {
            return Err(ApiError::conflict(format!(
                "image {image_name} is broken ({why}): remove it with `rmi` and load or import it again"
            )));
        }

        let id = new_id();
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = names::validate(&n).map_err(ApiError::invalid)?;
                self.reserve_name(&n, &id)?;
                n
            }
            None => {
                let mut retry = 0;
                loop {
                    let n = names::random_name(retry);
                    if self.reserve_name(&n, &id).is_ok() {
                        break n;
                    }
                    retry += 1;
                }
            }
        };

        let result = self.build_record(&id, &name, &image_name, &image, body);
        let rec = match result {
            Ok(r) => ContainerRecord { transient, ..r },
            Err(e) => {
                self.release_name(&name);
                return Err(e);
            }
        };
        let dir = self.container_dir(&id);
        let saved = (|| -> std::io::Result<()> {
            // (made where its files land in an allocation group of their own)
            self.spread.create_dir(&dir)?;
            std::fs::create_dir_all(dir.join("rw/upper"))?;
            std::fs::create_dir_all(dir.join("rw/work"))?;
            if rec.transient {
                rec.save_volatile(&dir)
            } else {
                rec.save(&dir)
            }
        })();
        if let Err(e) = saved {
            let _ = std::fs::remove_dir_all(&dir);
            for m in rec.mounts.iter().filter(|m| m.anonymous) {
                let _ = self.volumes.remove(&m.name);
            }
            self.release_name(&name);
            return Err(ApiError::internal(format!("cannot create container: {e}")));
        }
        self.register(Arc::new(Container::new(rec)));
        self.container_event(&id, "create", &[]);
        Ok(id)
    }

    fn build_record(
        &self,
        id: &str,
        name: &str,
        image_name: &str,
        image: &berth_image::Image,
        body: ContainerCreateBody,
    ) -> Result<ContainerRecord, ApiError> {
        let mut host_config = body.host_config.clone().unwrap_or_default();
        if let Some(rt) = host_config.runtime.as_deref() {
            self.config.runtime_path(Some(rt))?;
        }
        let img = crate::images::image_container_config(image);
        let mac_address = body
            .networking_config
            .iter()
            .flat_map(|n| n.endpoints_config.iter().flatten())
            .find_map(|(_, e)| e.mac_address.clone().filter(|m| !m.is_empty()));
        if let Some(m) = &mac_address {
            crate::network::parse_mac(m).map_err(ApiError::invalid)?;
        }
        let body_endpoints = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default();
        let mut config = user_config(body);
        merge(&mut config, &img);
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            // Docker's: the host's name on the host's network, else the short id.
            let host_net = host_config.network_mode.as_deref() == Some("host");
            config.hostname = Some(
                host_net
                    .then(|| nix::unistd::gethostname().ok())
                    .flatten()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| id[..12].to_string()),
            );
        }
        config.image = Some(image_name.to_string());
        let mut argv: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        argv.extend(config.cmd.clone().unwrap_or_default());
        if argv.is_empty() {
            return Err(ApiError::invalid("No command specified"));
        }
        if host_config.network_mode.as_deref().unwrap_or("").is_empty() {
            host_config.network_mode = Some("default".into());
        }
        crate::network::check_dns_settings(&host_config).map_err(ApiError::invalid)?;
        crate::limits::limits(&host_config)?;
        {
            use berth_api::models::RestartPolicyNameEnum as P;
            let policy = host_config.restart_policy.clone().unwrap_or_default();
            let restarts = matches!(
                policy.name,
                Some(P::ALWAYS) | Some(P::UNLESS_STOPPED) | Some(P::ON_FAILURE)
            );
            if restarts && host_config.auto_remove.unwrap_or(false) {
                return Err(ApiError::invalid(
                    "conflicting options: cannot specify both --restart and --rm",
                ));
            }
            if policy.maximum_retry_count.unwrap_or(0) != 0 && policy.name != Some(P::ON_FAILURE) {
                return Err(ApiError::invalid(format!(
                    "invalid restart policy '{}': maximum retry count can only be used with 'on-failure'",
                    policy.name.map(|n| n.to_string()).unwrap_or_default()
                )));
            }
            if policy.maximum_retry_count.unwrap_or(0) < 0 {
                return Err(ApiError::invalid(
                    "invalid restart policy: maximum retry count cannot be negative",
                ));
            }
        }
        let networks = self.create_attachments(
            host_config.network_mode.as_deref().unwrap_or("default"),
            &body_endpoints,
        )?;
        // Published ports: checked now (a bad one is refused at create, as by dockerd), and
        // their container ports exposed.
        crate::network::port_requests(&host_config, config.exposed_ports.as_ref())
            .map_err(ApiError::invalid)?;
        let mut bound: Vec<String> = host_config
            .port_bindings
            .iter()
            .flatten()
            .map(|(k, _)| {
                if k.contains('/') {
                    k.clone()
                } else {
                    format!("{k}/tcp")
                }
            })
            .collect();
        bound.sort();
        if !bound.is_empty() {
            let exposed = config.exposed_ports.get_or_insert_with(Vec::new);
            for k in bound {
                if !exposed.contains(&k) {
                    exposed.push(k);
                }
            }
        }
        // As dockerd does: the daemon's log options fill in what the container leaves unset.
        let mut log = host_config
            .log_config
            .take()
            .unwrap_or(HostConfigLogConfig {
                typ: None,
                config: None,
            });
        if log.typ.as_deref().unwrap_or("").is_empty() {
            log.typ = Some("json-file".into());
        }
        let mut opts = log.config.take().unwrap_or_default();
        match log.typ.as_deref().unwrap_or("") {
            "json-file" => {
                for (k, v) in &self.config.log_opts {
                    opts.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            // Docker's `local` driver keeps 5 files of 20 MB by default; berth writes the same
            // json lines as json-file (readable by `logs`), rotated with those defaults.
            "local" => {
                opts.entry("max-size".into())
                    .or_insert_with(|| "20m".into());
                opts.entry("max-file".into()).or_insert_with(|| "5".into());
            }
            "none" => {}
            other => {
                return Err(ApiError::invalid(format!(
                    "logger: no log driver named '{other}' is registered"
                )))
            }
        }
        for k in opts.keys() {
            if !matches!(
                k.as_str(),
                "max-size"
                    | "max-file"
                    | "compress"
                    | "labels"
                    | "env"
                    | "env-regex"
                    | "tag"
                    | "mode"
                    | "max-buffer-size"
            ) {
                return Err(ApiError::invalid(format!(
                    "unknown log opt '{k}' for {} log driver",
                    log.typ.as_deref().unwrap_or("")
                )));
            }
        }
        if let Some(s) = opts.get("max-size") {
            crate::config::parse_size(s)?;
        }
        if let Some(n) = opts.get("max-file") {
            if n.parse::<u32>().map_or(true, |n| n == 0) {
                return Err(ApiError::invalid(format!(
                    "invalid value for max-file: {n}"
                )));
            }
        }
        log.config = Some(opts);
        host_config.log_config = Some(log);
        // Last: it makes the volumes the container names.
        let mounts =
            self.plan_mounts(&host_config, config.volumes.as_deref().unwrap_or_default())?;
        Ok(ContainerRecord {
            id: id.to_string(),
            name: name.to_string(),
            created: chrono::Utc::now(),
            image: image_name.to_string(),
            image_id: image.id.to_string(),
            config,
            host_config,
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            state: StateRecord::default(),
            restart_count: 0,
            layers: image.chain_ids.iter().map(|c| c.to_string()).collect(),
            networks,
            endpoints: Vec::new(),
            legacy_endpoint: None,
            mounts,
            mac_address,
            transient: false,
        })
    }

    /// The container's mounts, in Docker's order of precedence: `Binds` (`-v`), `Mounts`
    /// (`--mount`), `Tmpfs`, then the mounts of `VolumesFrom` containers and an anonymous
    /// volume for each `Config.Volumes` path (the image's `VOLUME`s, `-v /path`) that none of
    /// those covers. The volumes named are made (blocking); on error the anonymous ones made
    /// here are removed again.
    fn plan_mounts(
        &self,
        hc: &berth_api::models::HostConfig,
        volumes: &[String],
    ) -> Result<Vec<crate::volumes::MountPoint>, ApiError> {
        use crate::volumes::{self, MountKind};
        let mut out: Vec<volumes::MountPoint> = Vec::new();
        let push = |out: &mut Vec<volumes::MountPoint>, m: volumes::MountPoint| {
            if out.iter().any(|o| o.destination == m.destination) {
                return Err(ApiError::invalid(format!(
                    "Duplicate mount point: {}",
                    m.destination
                )));
            }
            out.push(m);
            Ok(())
        };
        for b in hc.binds.iter().flatten() {
            push(&mut out, volumes::parse_bind(b)?)?;
        }
        for m in hc.mounts.iter().flatten() {
            push(&mut out, volumes::parse_api_mount(m)?)?;
        }
        let mut tmpfs: Vec<_> = hc.tmpfs.iter().flatten().collect();
        tmpfs.sort();
        for (path, opts) in tmpfs {
            push(&mut out, volumes::tmpfs_mount(path, opts)?)?;
        }
        for from in hc.volumes_from.iter().flatten() {
            let (name, mode) = from.split_once(':').unwrap_or((from, ""));
            if !matches!(mode, "" | "ro" | "rw") {
                return Err(ApiError::invalid(format!(
                    "invalid mode for volumes-from: {mode}"
                )));
            }
            let other = self.container(name)?;
            for m in other.record().mounts {
                if out.iter().any(|o| o.destination == m.destination) {
                    continue;
                }
                let mut m = m.clone();
                match mode {
                    "ro" => m.rw = false,
                    "rw" => m.rw = true,
                    _ => {}
                }
                // The other container's: `rm -v` of this one leaves it.
                m.anonymous = false;
                out.push(m);
            }
        }
        for v in volumes {
            if !v.starts_with('/') {
                return Err(ApiError::invalid(format!(
                    "invalid volume specification: '{v}'"
                )));
            }
            let dest = volumes::clean(v);
            if out.iter().any(|o| o.destination == dest) {
                continue;
            }
            out.push(volumes::MountPoint {
                kind: MountKind::Volume,
                name: String::new(),
                source: String::new(),
                destination: dest,
                rw: true,
                mode: String::new(),
                propagation: String::new(),
                anonymous: true,
                nocopy: false,
                create_source: false,
                tmpfs_options: String::new(),
                listed: true,
            });
        }
        let mut made = Vec::new();
        for m in out.iter_mut().filter(|m| m.kind == MountKind::Volume) {
            let r = if m.name.is_empty() {
                self.volumes.create(
                    None,
                    hc.volume_driver.as_deref().unwrap_or(""),
                    Default::default(),
                    Default::default(),
                    true,
                )
            } else {
                self.volumes.create(
                    Some(&m.name),
                    hc.volume_driver.as_deref().unwrap_or(""),
                    Default::default(),
                    Default::default(),
                    false,
                )
            };
            match r {
                Ok(v) => {
                    if m.name.is_empty() {
                        m.name = v.name.clone();
                        made.push(v.name);
                    }
                }
                Err(e) => {
                    for n in &made {
                        let _ = self.volumes.remove(n);
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }
}

impl Daemon {
    /// The networks a new container is attached to: the one its network mode names (the
    /// default bridge, or a user network, which must exist), with the aliases and address its
    /// endpoint settings ask for (Docker's errors where the network does not allow them).
    fn create_attachments(
        &self,
        mode: &str,
        endpoints: &std::collections::HashMap<String, berth_api::models::EndpointSettings>,
    ) -> Result<Vec<crate::network::Attachment>, ApiError> {
        let settings = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| endpoints.get(*k))
                .or_else(|| {
                    (endpoints.len() == 1)
                        .then(|| endpoints.values().next())
                        .flatten()
                })
                .cloned()
                .unwrap_or_default()
        };
        let wanted = |ep: &berth_api::models::EndpointSettings| {
            let aliases: Vec<String> = ep
                .aliases
                .iter()
                .flatten()
                .filter(|a| !a.is_empty())
                .cloned()
                .collect();
            let ip = ep
                .ipam_config
                .as_ref()
                .and_then(|c| c.ipv4_address.clone())
                .filter(|s| !s.is_empty());
            let ip6 = ep
                .ipam_config
                .as_ref()
                .and_then(|c| c.ipv6_address.clone())
                .filter(|s| !s.is_empty());
            (aliases, ip, ip6)
        };
        let builtin = matches!(mode, "" | "default" | "bridge" | "host" | "none")
            || mode.starts_with("container:");
        if builtin {
            let (aliases, ip, ip6) = wanted(&settings(&[mode, "bridge", "default"]));
            if !aliases.is_empty() {
                return Err(ApiError::invalid(
                    "network-scoped alias is supported only for containers in user defined networks",
                ));
            }
            if ip.is_some() || ip6.is_some() {
                return Err(ApiError::invalid(
                    "user specified IP address is supported on user defined networks only",
                ));
            }
            return Ok(if matches!(mode, "" | "default" | "bridge") {
                vec![crate::network::Attachment {
                    network: crate::network::NETWORK.into(),
                    network_id: self.net.default_id(),
                    ..Default::default()
                }]
            } else {
                Vec::new()
            });
        }
        let Some(net) = self.net.find(mode) else {
            // As dockerd: a network that does not exist fails the start, not the create.
            return Ok(vec![crate::network::Attachment {
                network: mode.to_string(),
                ..Default::default()
            }]);
        };
        let attach = |net: &crate::network::Net, ep: &berth_api::models::EndpointSettings| {
            let (aliases, ip, ip6) = wanted(ep);
            let ipv6_address = ip6
                .map(|s| {
                    s.parse::<std::net::Ipv6Addr>()
                        .map_err(|_| ApiError::invalid(format!("invalid IPv6 address: {s}")))
                })
                .transpose()?;
            let ipv4_address = ip
                .map(|s| {
                    s.parse::<std::net::Ipv4Addr>()
                        .map_err(|_| ApiError::invalid(format!("invalid IPv4 address: {s}")))
                })
                .transpose()?;
            if ipv4_address.is_some() && !net.cfg.user_subnet {
                return Err(ApiError::invalid(
                    "user specified IP address is supported only when connecting to networks with user configured subnets",
                ));
            }
            Ok(crate::network::Attachment {
                network: net.cfg.name.clone(),
                network_id: net.cfg.id.clone(),
                aliases,
                ipv4_address,
                ipv6_address,
            })
        };
        let primary_keys = [mode, net.cfg.name.as_str(), net.cfg.id.as_str()];
        let mut out = vec![attach(&net, &settings(&primary_keys))?];
        // More endpoints (API 1.44's several `--network`s): each a user network, in name order.
        let mut others: Vec<_> = endpoints
            .iter()
            .filter(|(k, _)| !primary_keys.contains(&k.as_str()))
            .collect();
        others.sort_by(|a, b| a.0.cmp(b.0));
        for (key, ep) in others {
            let other = self
                .net
                .find(key)
                .ok_or_else(|| ApiError::not_found(format!("network {key} not found")))?;
            if other.builtin {
                return Err(ApiError::invalid(format!(
                    "Container cannot be connected to network endpoints: {mode}, {key}"
                )));
            }
            if out.iter().all(|a| a.network_id != other.cfg.id) {
                out.push(attach(&other, ep)?);
            }
        }
        Ok(out)
    }
}

/// The config part of a create request.
fn user_config(b: ContainerCreateBody) -> ContainerConfig {
    ContainerConfig {
        hostname: b.hostname,
        domainname: b.domainname,
        user: b.user,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        exposed_ports: b.exposed_ports,
        tty: b.tty,
        open_stdin: b.open_stdin,
        stdin_once: b.stdin_once,
        env: b.env,
        cmd: b.cmd,
        healthcheck: b.healthcheck,
        args_escaped: b.args_escaped,
        image: b.image,
        volumes: b.volumes,
        working_dir: b.working_dir,
        entrypoint: b.entrypoint,
        network_disabled: b.network_disabled,
        on_build: b.on_build,
        labels: b.labels,
        stop_signal: b.stop_signal,
        stop_timeout: b.stop_timeout,
        shell: b.shell,
    }
}

/// Docker's merge of the image's config under the user's.
pub fn merge(user: &mut ContainerConfig, image: &ContainerConfig) {
    if user.user.as_deref().unwrap_or("").is_empty() {
        user.user = image.user.clone();
    }
    // Env: the image's first, overridden by the user's, by key.
    let mut env: Vec<String> = image.env.clone().unwrap_or_default();
    for e in user.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next().unwrap_or("") != key);
        env.push(e);
    }
    // (No default PATH here, as in Docker: the runtime spec adds it, and a commit must not.)
    user.env = (!env.is_empty()).then_some(env);
    // An explicit empty entrypoint (`--entrypoint ""`) resets the image's.
    let user_ep_empty = user
        .entrypoint
        .as_ref()
        .map(|e| e.iter().all(|s| s.is_empty()))
        .unwrap_or(true);
    if user_ep_empty {
        if user.cmd.as_ref().map(|c| c.is_empty()).unwrap_or(true) {
            user.cmd = image.cmd.clone();
        }
        if user.entrypoint.is_none() {
            user.entrypoint = image.entrypoint.clone();
        } else {
            user.entrypoint = None;
        }
    }
    if user.working_dir.as_deref().unwrap_or("").is_empty() {
        user.working_dir = image.working_dir.clone();
    }
    let mut labels = image.labels.clone().unwrap_or_default();
    labels.extend(user.labels.clone().unwrap_or_default());
    user.labels = Some(labels);
    let mut ports = image.exposed_ports.clone().unwrap_or_default();
    for p in user.exposed_ports.clone().unwrap_or_default() {
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    user.exposed_ports = (!ports.is_empty()).then_some(ports);
    let mut vols = image.volumes.clone().unwrap_or_default();
    for v in user.volumes.clone().unwrap_or_default() {
        if !vols.contains(&v) {
            vols.push(v);
        }
    }
    user.volumes = (!vols.is_empty()).then_some(vols);
    if user.stop_signal.is_none() {
        user.stop_signal = image.stop_signal.clone();
    }
    if user.healthcheck.is_none() {
        user.healthcheck = image.healthcheck.clone();
    }
    if user.on_build.is_none() {
        user.on_build = image.on_build.clone();
    }
    if user.shell.is_none() {
        user.shell = image.shell.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Option<Vec<String>> {
        Some(s.iter().map(|x| x.to_string()).collect())
    }

    #[test]
    fn image_cmd_is_used_unless_overridden() {
        let image = ContainerConfig {
            cmd: v(&["sh"]),
            env: v(&["PATH=/bin", "A=1"]),
            working_dir: Some("/srv".into()),
            ..Default::default()
        };
        let mut u = ContainerConfig {
            env: v(&["A=2", "B=3"]),
            ..Default::default()
        };
        merge(&mut u, &image);
        assert_eq!(u.cmd, v(&["sh"]));
        assert_eq!(u.env, v(&["PATH=/bin", "A=2", "B=3"]));
        assert_eq!(u.working_dir.as_deref(), Some("/srv"));

        let mut u = ContainerConfig {
            entrypoint: v(&["echo"]),
            ..Default::default()
        };
        merge(&mut u, &image);
        assert_eq!(u.cmd, None, "a user entrypoint drops the image's cmd");
        assert_eq!(u.entrypoint, v(&["echo"]));
    }

    #[test]
    fn empty_entrypoint_resets_the_images() {
        let image = ContainerConfig {
            entrypoint: v(&["/init"]),
            cmd: v(&["x"]),
            ..Default::default()
        };
        let mut u = ContainerConfig {
            entrypoint: v(&[""]),
            cmd: v(&["ls"]),
            ..Default::default()
        };
        merge(&mut u, &image);
        assert_eq!(u.entrypoint, None);
        assert_eq!(u.cmd, v(&["ls"]));
        // Like Docker, no default PATH in the container's config (the runtime spec adds it).
        assert_eq!(u.env, None);
    }
}
