//! run and create.

use serde_json::{json, Map, Value};

use crate::cli::{ContainerOpts, CreateArgs, RunArgs};
use crate::client::{Client, Query};
use crate::commands::attach::{attach_session, start_error_code, AttachOpts, Outcome};
use crate::commands::image::pull;
use crate::error::{CliError, Result};
use crate::opts::{self, NetworkAttachment};

/// `-p [ip:][hostPort:]containerPort[/proto]` → (port key, host ip, host port) per port, as
/// docker's `nat.ParsePortSpec`: a container range expands to one key per port, paired with a
/// host range of the same length (`8000-8001:80-81`); a host range with one container port
/// stays a range (the daemon takes the first free one).
pub fn parse_publish(p: &str) -> std::result::Result<Vec<(String, String, String)>, String> {
    let (spec, proto) = match p.rsplit_once('/') {
        Some((s, proto)) => (s, proto.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let (ip, host_port, container_port) = match spec.rsplitn(3, ':').collect::<Vec<_>>().as_slice()
    {
        [c] => (String::new(), String::new(), c.to_string()),
        [c, h] => (String::new(), h.to_string(), c.to_string()),
        [c, h, ip] => (
            ip.trim_matches(['[', ']']).to_string(),
            h.to_string(),
            c.to_string(),
        ),
        _ => return Err(format!("invalid port format: {p}")),
    };
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let range = |s: &str, what: &str| -> std::result::Result<(u32, u32), String> {
        let num = |x: &str| x.parse::<u32>().ok().filter(|n| *n <= 65535);
        let bad = || format!("invalid {what}: {s}");
        match s.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?);
                if a > b {
                    return Err(bad());
                }
                Ok((a, b))
            }
            None => num(s).map(|n| (n, n)).ok_or_else(bad),
        }
    };
    if container_port.is_empty() {
        return Err(format!("no port specified: {p}<empty>"));
    }
    let (c0, c1) = range(&container_port, "containerPort")?;
    let host = if host_port.is_empty() {
        None
    } else {
        Some(range(&host_port, "hostPort")?)
    };
    if let Some((h0, h1)) = host {
        if c1 > c0 && h1 - h0 != c1 - c0 {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container_port} and {host_port}"
            ));
        }
    }
    let mut out = Vec::new();
    for (i, c) in (c0..=c1).enumerate() {
        let hp = match host {
            None => String::new(),
            Some((h0, _)) if c1 > c0 => (h0 + i as u32).to_string(),
            Some((h0, h1)) if h1 > h0 => format!("{h0}-{h1}"),
            Some((h0, _)) => h0.to_string(),
        };
        out.push((format!("{c}/{proto}"), ip.clone(), hp));
    }
    Ok(out)
}

/// docker's `ValidateExtraHost`: `name:ip`, the ip may be `host-gateway`.
pub fn validate_add_host(v: &str) -> std::result::Result<(), String> {
    let bad = || format!("invalid argument \"{v}\" for \"--add-host\" flag: ");
    match v.split_once(':') {
        Some((name, ip)) if !name.is_empty() => {
            if ip == "host-gateway" || ip.trim().parse::<std::net::IpAddr>().is_ok() {
                Ok(())
            } else {
                Err(format!("{}invalid IP address in add-host: \"{ip}\"", bad()))
            }
        }
        _ => Err(format!("{}bad format for add-host: \"{v}\"", bad())),
    }
}

/// docker's `ValidateDNSSearch`: `.` or a domain name of at most 255 characters.
fn validate_dns_search(v: &str) -> std::result::Result<(), String> {
    let d = v.trim_end_matches('.');
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if v == "." || (d.len() <= 255 && d.split('.').all(label_ok)) {
        Ok(())
    } else {
        Err(format!(
            "invalid argument \"{v}\" for \"--dns-search\" flag: {v} is not a valid domain"
        ))
    }
}

/// The DNS and hosts flags: (ExtraHosts, Dns, DnsSearch, DnsOptions), checked as docker's
/// flag validators do.
#[allow(clippy::type_complexity)]
fn dns_flags(
    o: &ContainerOpts,
) -> std::result::Result<(Vec<String>, Vec<String>, Vec<String>, Vec<String>), String> {
    for h in &o.add_host {
        validate_add_host(h)?;
    }
    for d in &o.dns {
        if d.trim().parse::<std::net::IpAddr>().is_err() {
            return Err(format!(
                "invalid argument \"{d}\" for \"--dns\" flag: {d} is not an ip address"
            ));
        }
    }
    for s in &o.dns_search {
        validate_dns_search(s)?;
    }
    Ok((
        o.add_host.clone(),
        o.dns.iter().map(|d| d.trim().to_string()).collect(),
        o.dns_search.clone(),
        o.dns_option.clone(),
    ))
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart(r: &str) -> std::result::Result<Value, String> {
    let (name, count) = match r.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<i64>()
                .map_err(|_| format!("invalid restart policy format: {r}"))?,
        ),
        None => (r, 0),
    };
    match name {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(
            json!({"Name": if name.is_empty() { "no" } else { name }, "MaximumRetryCount": count}),
        ),
        _ => Err(format!("invalid restart policy format: {r}")),
    }
}

/// docker's `NetworkMode.IsUserDefined`.
fn is_user_defined(mode: &str) -> bool {
    !matches!(mode, "default" | "bridge" | "host" | "none") && !mode.starts_with("container:")
}

/// The `--network` values, parsed (clap checked them).
fn network_attachments(o: &ContainerOpts) -> std::result::Result<Vec<NetworkAttachment>, String> {
    o.network
        .iter()
        .map(|n| opts::parse_network_opt(n))
        .collect()
}

/// `HostConfig.NetworkMode`: the first `--network`, or "default".
fn network_mode(o: &ContainerOpts) -> std::result::Result<String, String> {
    Ok(network_attachments(o)?
        .first()
        .map(|n| n.target.clone())
        .unwrap_or_else(|| "default".into()))
}

/// docker's `applyContainerOptions`: `--network-alias`, `--link`, `--ip`, `--ip6` and
/// `--link-local-ip` go with the first `--network`.
fn apply_container_options(
    n: &mut NetworkAttachment,
    o: &ContainerOpts,
) -> std::result::Result<(), String> {
    let ip4 = o.ip.clone().unwrap_or_default();
    let ip6 = o.ip6.clone().unwrap_or_default();
    if !n.aliases.is_empty() && !o.network_alias.is_empty() {
        return Err(
            "conflicting options: cannot specify both --network-alias and per-network alias".into(),
        );
    }
    if !n.links.is_empty() && !o.link.is_empty() {
        return Err("conflicting options: cannot specify both --link and per-network links".into());
    }
    if !n.ipv4_address.is_empty() && !ip4.is_empty() {
        return Err(
            "conflicting options: cannot specify both --ip and per-network IPv4 address".into(),
        );
    }
    if !n.ipv6_address.is_empty() && !ip6.is_empty() {
        return Err(
            "conflicting options: cannot specify both --ip6 and per-network IPv6 address".into(),
        );
    }
    if !o.network_alias.is_empty() {
        n.aliases = o.network_alias.clone();
    }
    if !o.link.is_empty() {
        n.links = o.link.clone();
    }
    if !ip4.is_empty() {
        n.ipv4_address = ip4;
    }
    if !ip6.is_empty() {
        n.ipv6_address = ip6;
    }
    if !o.link_local_ip.is_empty() {
        n.link_local_ips = o.link_local_ip.clone();
    }
    Ok(())
}

/// docker's `parseNetworkAttachmentOpt`: the endpoint settings of one network, empty fields
/// left out (an empty object when there is nothing to say).
fn endpoint_settings(n: &NetworkAttachment) -> std::result::Result<Value, String> {
    if n.target.trim().is_empty() {
        return Err("no name set for network".into());
    }
    if !is_user_defined(&n.target) {
        if !n.aliases.is_empty() {
            return Err(
                "network-scoped aliases are only supported for user-defined networks".into(),
            );
        }
        if !n.links.is_empty() {
            return Err("links are only supported for user-defined networks".into());
        }
    }
    let mut ep = Map::new();
    if !n.ipv4_address.is_empty() || !n.ipv6_address.is_empty() || !n.link_local_ips.is_empty() {
        let mut ipam = Map::new();
        if !n.ipv4_address.is_empty() {
            ipam.insert("IPv4Address".into(), json!(n.ipv4_address));
        }
        if !n.ipv6_address.is_empty() {
            ipam.insert("IPv6Address".into(), json!(n.ipv6_address));
        }
        if !n.link_local_ips.is_empty() {
            ipam.insert("LinkLocalIPs".into(), json!(n.link_local_ips));
        }
        ep.insert("IPAMConfig".into(), Value::Object(ipam));
    }
    if !n.links.is_empty() {
        ep.insert("Links".into(), json!(n.links));
    }
    if !n.aliases.is_empty() {
        ep.insert("Aliases".into(), json!(n.aliases));
    }
    if !n.driver_opts.is_empty() {
        ep.insert("DriverOpts".into(), json!(n.driver_opts));
    }
    Ok(Value::Object(ep))
}

/// docker 20.10's `parseNetworkOpts`: `NetworkingConfig.EndpointsConfig`, one entry per
/// `--network`; a single network with nothing to configure gets none (the daemon makes its
/// endpoint from `NetworkMode`). Without `--network`, the endpoint flags are not sent, as
/// docker 20.10 does.
pub fn endpoints_config(o: &ContainerOpts) -> std::result::Result<Map<String, Value>, String> {
    let nets = network_attachments(o)?;
    let mut endpoints = Map::new();
    let (mut user, mut builtin) = (false, false);
    let count = nets.len();
    for (i, mut n) in nets.into_iter().enumerate() {
        if is_user_defined(&n.target) {
            user = true;
        } else {
            builtin = true;
        }
        if i == 0 {
            apply_container_options(&mut n, o)?;
        }
        let ep = endpoint_settings(&n)?;
        if endpoints.contains_key(&n.target) {
            return Err(format!(
                "network \"{}\" is specified multiple times",
                n.target
            ));
        }
        if i == 0 && count == 1 && ep.as_object().is_some_and(|m| m.is_empty()) {
            continue;
        }
        endpoints.insert(n.target, ep);
    }
    if user && builtin {
        return Err("conflicting options: cannot attach both user-defined and non-user-defined network-modes".into());
    }
    Ok(endpoints)
}

/// docker 20.10's `parse` for the resource, device, namespace, security, logging and health
/// flags: (HostConfig fields, Config.Healthcheck). Only the flags given are sent.
pub fn resources_and_health(
    o: &ContainerOpts,
) -> std::result::Result<(Map<String, Value>, Option<Value>), String> {
    let mut h = Map::new();
    if let Some(sw) = o.memory_swappiness {
        if sw != -1 && !(0..=100).contains(&sw) {
            return Err(format!(
                "invalid value: {sw}. Valid memory swappiness range is 0-100"
            ));
        }
        h.insert("MemorySwappiness".into(), json!(sw));
    }
    let devices = o
        .device
        .iter()
        .map(|d| opts::parse_device(d))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if let Some(m) = &o.pid {
        if !opts::valid_pid_mode(m) {
            return Err("--pid: invalid PID mode".into());
        }
        h.insert("PidMode".into(), json!(m));
    }
    if let Some(m) = &o.uts {
        if !opts::valid_uts_mode(m) {
            return Err("--uts: invalid UTS mode".into());
        }
        h.insert("UTSMode".into(), json!(m));
    }
    if let Some(m) = &o.userns {
        if !opts::valid_userns_mode(m) {
            return Err("--userns: invalid USER mode".into());
        }
        h.insert("UsernsMode".into(), json!(m));
    }
    if let Some(m) = &o.ipc {
        h.insert("IpcMode".into(), json!(m));
    }
    let driver = o.log_driver.clone().unwrap_or_default();
    if driver == "none" && !o.log_opt.is_empty() {
        return Err(format!("invalid logging opts for driver {driver}"));
    }
    if o.log_driver.is_some() || !o.log_opt.is_empty() {
        h.insert(
            "LogConfig".into(),
            json!({"Type": driver, "Config": opts::labels_map(&o.log_opt)}),
        );
    }
    let (security, unconfined_paths) = opts::parse_security_opts(&o.security_opt)?;
    if !security.is_empty() {
        h.insert("SecurityOpt".into(), json!(security));
    }
    if unconfined_paths {
        h.insert("MaskedPaths".into(), json!([]));
        h.insert("ReadonlyPaths".into(), json!([]));
    }
    // Healthcheck: zero values count as not given, as docker's.
    let interval = o.health_interval.unwrap_or(0);
    let timeout = o.health_timeout.unwrap_or(0);
    let start = o.health_start_period.unwrap_or(0);
    let retries = o.health_retries.unwrap_or(0);
    let cmd = o.health_cmd.clone().unwrap_or_default();
    let have = !cmd.is_empty() || interval != 0 || timeout != 0 || start != 0 || retries != 0;
    let health = if o.no_healthcheck {
        if have {
            return Err("--no-healthcheck conflicts with --health-* options".into());
        }
        Some(json!({"Test": ["NONE"]}))
    } else if have {
        if interval < 0 {
            return Err("--health-interval cannot be negative".into());
        }
        if timeout < 0 {
            return Err("--health-timeout cannot be negative".into());
        }
        if retries < 0 {
            return Err("--health-retries cannot be negative".into());
        }
        if start < 0 {
            return Err("--health-start-period cannot be negative".into());
        }
        // Go's HealthConfig: every field omitempty.
        let mut hc = Map::new();
        if !cmd.is_empty() {
            hc.insert("Test".into(), json!(["CMD-SHELL", cmd]));
        }
        for (k, v) in [
            ("Interval", interval),
            ("Timeout", timeout),
            ("StartPeriod", start),
            ("Retries", retries),
        ] {
            if v != 0 {
                hc.insert(k.into(), json!(v));
            }
        }
        Some(Value::Object(hc))
    } else {
        None
    };
    let ints = [
        ("Memory", o.memory),
        ("MemoryReservation", o.memory_reservation),
        ("MemorySwap", o.memory_swap),
        ("KernelMemory", o.kernel_memory),
        ("NanoCpus", o.cpus),
        ("CpuShares", o.cpu_shares),
        ("CpuPeriod", o.cpu_period),
        ("CpuQuota", o.cpu_quota),
        ("CpuRealtimePeriod", o.cpu_rt_period),
        ("CpuRealtimeRuntime", o.cpu_rt_runtime),
        ("PidsLimit", o.pids_limit),
        ("OomScoreAdj", o.oom_score_adj),
        ("ShmSize", o.shm_size),
    ];
    for (k, v) in ints {
        if let Some(v) = v {
            h.insert(k.into(), json!(v));
        }
    }
    if let Some(w) = o.blkio_weight {
        h.insert("BlkioWeight".into(), json!(w));
    }
    if o.oom_kill_disable {
        h.insert("OomKillDisable".into(), json!(true));
    }
    if let Some(c) = &o.cpuset_cpus {
        h.insert("CpusetCpus".into(), json!(c));
    }
    if let Some(c) = &o.cpuset_mems {
        h.insert("CpusetMems".into(), json!(c));
    }
    if !o.ulimit.is_empty() {
        h.insert("Ulimits".into(), opts::ulimits_json(&o.ulimit)?);
    }
    if !devices.is_empty() {
        h.insert("Devices".into(), json!(devices));
    }
    if !o.device_cgroup_rule.is_empty() {
        h.insert("DeviceCgroupRules".into(), json!(o.device_cgroup_rule));
    }
    if !o.sysctl.is_empty() {
        h.insert("Sysctls".into(), opts::map_json(&o.sysctl));
    }
    if !o.group_add.is_empty() {
        h.insert("GroupAdd".into(), json!(o.group_add));
    }
    Ok((h, health))
}

/// The `POST /containers/create` body for the flags.
pub fn create_body(o: &ContainerOpts, detach: bool) -> std::result::Result<Value, String> {
    let image = o.args[0].clone();
    let cmd: Vec<String> = o.args[1..].to_vec();
    let lookup = |k: &str| std::env::var(k).ok();
    let mut env = opts::read_kv_files(&o.env_file, true)?;
    for e in &o.env {
        env.push(opts::expand_env(e, lookup)?);
    }
    let mut labels = opts::read_kv_files(&o.label_file, false)?;
    labels.extend(o.label.iter().cloned());
    let restart = parse_restart(&o.restart)?;
    if o.rm && restart["Name"] != "no" {
        return Err("Conflicting options: --restart and --rm".into());
    }
    let mut attach_stdin = o.interactive;
    let mut attach_stdout = true;
    let mut attach_stderr = true;
    if detach {
        attach_stdin = false;
        attach_stdout = false;
        attach_stderr = false;
    } else if !o.attach.is_empty() {
        attach_stdin = false;
        attach_stdout = false;
        attach_stderr = false;
        for a in &o.attach {
            match a.to_lowercase().as_str() {
                "stdin" => attach_stdin = true,
                "stdout" => attach_stdout = true,
                "stderr" => attach_stderr = true,
                _ => return Err(format!("invalid argument \"{a}\" for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR")),
            }
        }
    }
    let (resources, health) = resources_and_health(o)?;
    let (extra_hosts, dns, dns_search, dns_options) = dns_flags(o)?;
    if let Some(m) = &o.mac_address {
        let ok = m.split(':').count() == 6
            && m.split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !ok {
            return Err(format!(
                "invalid argument \"{m}\" for \"--mac-address\" flag: {m} is not a valid mac address"
            ));
        }
    }
    let mut exposed = Map::new();
    let mut bindings = Map::new();
    for p in &o.publish {
        for (key, ip, hp) in parse_publish(p)? {
            exposed.insert(key.clone(), json!({}));
            let list = bindings.entry(key).or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(json!({"HostIp": ip, "HostPort": hp}));
            }
        }
    }
    for e in &o.expose {
        let key = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        exposed.insert(key, json!({}));
    }
    let (binds, anon) = opts::split_volumes(&o.volume);
    let mounts = o
        .mount
        .iter()
        .map(|m| opts::parse_mount(m))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let mut cfg = json!({
        "Hostname": o.hostname.clone().unwrap_or_default(),
        "User": o.user.clone().unwrap_or_default(),
        "AttachStdin": attach_stdin,
        "AttachStdout": attach_stdout,
        "AttachStderr": attach_stderr,
        "Tty": o.tty,
        "OpenStdin": o.interactive,
        "StdinOnce": o.interactive && attach_stdin,
        "Env": env,
        "Cmd": if cmd.is_empty() { Value::Null } else { json!(cmd) },
        "Image": image,
        "WorkingDir": o.workdir.clone().unwrap_or_default(),
        "Labels": Value::Object(opts::labels_map(&labels)),
        "Volumes": Value::Object(anon.iter().map(|v| (v.clone(), json!({}))).collect()),
        "HostConfig": {
            "Binds": if binds.is_empty() { Value::Null } else { json!(binds) },
            "VolumesFrom": if o.volumes_from.is_empty() { Value::Null } else { json!(o.volumes_from) },
            "VolumeDriver": o.volume_driver.clone().unwrap_or_default(),
            "NetworkMode": network_mode(o)?,
            "Links": if o.link.is_empty() { Value::Null } else { json!(o.link) },
            "PortBindings": Value::Object(bindings),
            "RestartPolicy": restart,
            "AutoRemove": o.rm,
            "Privileged": o.privileged,
            "PublishAllPorts": o.publish_all,
            "ReadonlyRootfs": o.read_only,
            "Runtime": o.runtime.clone().unwrap_or_default(),
            "CgroupParent": o.cgroup_parent.clone().unwrap_or_default(),
            "CapAdd": if o.cap_add.is_empty() { Value::Null } else { json!(o.cap_add) },
            "CapDrop": if o.cap_drop.is_empty() { Value::Null } else { json!(o.cap_drop) },
            "ExtraHosts": if extra_hosts.is_empty() { Value::Null } else { json!(extra_hosts) },
            "Dns": dns,
            "DnsSearch": dns_search,
            "DnsOptions": dns_options,
        },
    });
    if !exposed.is_empty() {
        cfg["ExposedPorts"] = Value::Object(exposed);
    }
    if let Some(ep) = &o.entrypoint {
        cfg["Entrypoint"] = json!([ep]);
    }
    if o.init {
        cfg["HostConfig"]["Init"] = json!(true);
    }
    if !o.tmpfs.is_empty() {
        cfg["HostConfig"]["Tmpfs"] = Value::Object(opts::tmpfs_map(&o.tmpfs));
    }
    if !mounts.is_empty() {
        cfg["HostConfig"]["Mounts"] = json!(mounts);
    }
    if let Some(s) = &o.stop_signal {
        cfg["StopSignal"] = json!(s);
    }
    if let Some(t) = o.stop_timeout {
        cfg["StopTimeout"] = json!(t);
    }
    if let Some(m) = &o.mac_address {
        cfg["MacAddress"] = json!(m);
    }
    if let Some(hc) = cfg["HostConfig"].as_object_mut() {
        hc.extend(resources);
    }
    if let Some(h) = health {
        cfg["Healthcheck"] = h;
    }
    cfg["NetworkingConfig"] = json!({"EndpointsConfig": endpoints_config(o)?});
    Ok(cfg)
}

/// The reference docker prints in "Unable to find image": `:latest` added.
pub fn familiar_ref(image: &str) -> String {
    let (_, tag) = opts::split_repo_tag(image);
    if tag.is_empty() && !image.contains('@') {
        format!("{image}:latest")
    } else {
        image.to_string()
    }
}

/// A warning as docker's logrus prints one to stderr (its text formatter: short on a
/// terminal, key=value lines otherwise).
fn log_warning(msg: &str) {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!("WARN[0000] {msg}");
    } else {
        let now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        eprintln!(
            "time=\"{now}\" level=warning msg={}",
            crate::format::units::go_quote(msg)
        );
    }
}

async fn create_container(c: &Client, o: &ContainerOpts, detach: bool) -> Result<String> {
    let body = create_body(o, detach).map_err(CliError::msg)?;
    if !o.mount.is_empty() && o.volume_driver.as_deref().is_some_and(|d| !d.is_empty()) {
        log_warning("`--volume-driver` is ignored for volumes specified via `--mount`. Use `--mount type=volume,volume-driver=...` instead.");
    }
    let image = &o.args[0];
    let q = Query::new().add_if(o.name.is_some(), "name", o.name.clone().unwrap_or_default());
    if o.pull == "always" {
        pull(c, image, true).await?;
    }
    let resp: Value = match c.post_json("/containers/create", &q, &body).await {
        Ok(v) => v,
        // Only a missing image is worth a pull (docker pulls on any 404, then fails again
        // on, say, a --volumes-from container that does not exist).
        Err(e)
            if e.is_not_found() && o.pull != "never" && e.to_string().contains("No such image") =>
        {
            eprintln!("Unable to find image '{}' locally", familiar_ref(image));
            pull(c, image, true).await?;
            c.post_json("/containers/create", &q, &body).await?
        }
        Err(e) => return Err(e),
    };
    for w in resp["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str() {
            eprintln!("WARNING: {w}");
        }
    }
    Ok(resp["Id"].as_str().unwrap_or_default().to_string())
}

/// docker's `reportError`: "berth: <msg>." plus an optional help hint.
fn report(cmd: &str, e: &CliError, with_help: bool) {
    let mut s = e.to_string().trim_end_matches('.').to_string() + ".";
    if with_help {
        s += &format!("\nSee 'berth {cmd} --help'.");
    }
    eprintln!("berth: {s}");
}

pub async fn create(c: &Client, a: CreateArgs) -> Result<i32> {
    match create_container(c, &a.opts, false).await {
        Ok(id) => {
            println!("{id}");
            Ok(0)
        }
        Err(e) => {
            report("create", &e, true);
            Ok(125)
        }
    }
}

pub async fn run(c: &Client, a: RunArgs) -> Result<i32> {
    let o = &a.opts;
    if a.detach && !o.attach.is_empty() {
        eprintln!("berth: Conflicting options: -a and -d.\nSee 'berth run --help'.");
        return Ok(125);
    }
    if let Some(k) = &a.detach_keys {
        if let Err(e) = crate::stream::parse_detach_keys(k) {
            report("run", &CliError::msg(e), true);
            return Ok(125);
        }
    }
    // as docker's CLI checks before it creates anything
    if o.tty && o.interactive && !a.detach && !crate::stream::is_tty(0) {
        eprintln!("the input device is not a TTY");
        return Ok(1);
    }
    let id = match create_container(c, o, a.detach).await {
        Ok(id) => id,
        Err(e) => {
            report("run", &e, true);
            return Ok(125);
        }
    };
    if a.detach {
        if let Err(e) = c
            .post(&format!("/containers/{id}/start"), &Query::new())
            .await
        {
            report("run", &e, false);
            return Ok(start_error_code(&e.to_string()));
        }
        println!("{id}");
        return Ok(0);
    }
    let body = create_body(o, false).map_err(CliError::msg)?;
    let ao = AttachOpts {
        stdin: body["AttachStdin"].as_bool().unwrap_or(false),
        stdout: body["AttachStdout"].as_bool().unwrap_or(true),
        stderr: body["AttachStderr"].as_bool().unwrap_or(true),
        tty: o.tty,
        detach_keys: a.detach_keys.clone(),
        sig_proxy: a.sig_proxy,
        auto_remove: o.rm,
    };
    match attach_session(c, &id, &ao, true).await {
        Ok(Outcome::Detached) => Ok(0),
        Ok(Outcome::Exited(code)) => Ok(code),
        Err((e, start_failed)) => {
            report("run", &e, false);
            if start_failed {
                if o.rm {
                    let _ = c
                        .request(
                            http::Method::DELETE,
                            &format!("/containers/{id}"),
                            &Query::new().add("force", 1),
                            None,
                        )
                        .await;
                }
                Ok(start_error_code(&e.to_string()))
            } else {
                Ok(125)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> ContainerOpts {
        ContainerOpts {
            args: args.iter().map(|s| s.to_string()).collect(),
            restart: "no".into(),
            pull: "missing".into(),
            ..Default::default()
        }
    }

    #[test]
    fn body_basics() {
        let mut o = opts(&["busybox", "echo", "hi"]);
        o.interactive = true;
        o.env = vec!["A=1".into()];
        o.label = vec!["x=y".into()];
        o.entrypoint = Some("".into());
        let b = create_body(&o, false).unwrap();
        assert_eq!(b["Image"], "busybox");
        assert_eq!(b["Cmd"], json!(["echo", "hi"]));
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Labels"], json!({"x": "y"}));
        assert_eq!(b["AttachStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        assert_eq!(b["Entrypoint"], json!([""]));
        let d = create_body(&o, true).unwrap();
        assert_eq!(d["AttachStdout"], false);
        assert_eq!(
            create_body(&opts(&["busybox"]), false).unwrap()["Cmd"],
            Value::Null
        );
    }

    #[test]
    fn ports_restart_refs() {
        let one =
            |k: &str, ip: &str, hp: &str| vec![(k.to_string(), ip.to_string(), hp.to_string())];
        assert_eq!(parse_publish("8080:80").unwrap(), one("80/tcp", "", "8080"));
        assert_eq!(
            parse_publish("127.0.0.1:53:53/udp").unwrap(),
            one("53/udp", "127.0.0.1", "53")
        );
        assert_eq!(parse_publish("80").unwrap(), one("80/tcp", "", ""));
        assert_eq!(
            parse_publish("127.0.0.1::80").unwrap(),
            one("80/tcp", "127.0.0.1", "")
        );
        assert_eq!(
            parse_publish("8000-8010:80").unwrap(),
            one("80/tcp", "", "8000-8010")
        );
        let r = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[1], ("81/tcp".into(), "".into(), "8001".into()));
        assert_eq!(parse_publish("80-81").unwrap().len(), 2);
        assert!(parse_publish("8000:80-81").is_err());
        assert!(parse_publish("x:y").is_err());
        assert!(parse_publish("nope:1:2").is_err());
        assert!(parse_publish("80/foo").is_err());
        assert_eq!(
            parse_restart("on-failure:3").unwrap()["MaximumRetryCount"],
            3
        );
        assert!(parse_restart("sometimes").is_err());
        let mut o = opts(&["busybox"]);
        o.rm = true;
        o.restart = "always".into();
        assert!(create_body(&o, false).is_err());
        let mut o = opts(&["busybox"]);
        o.add_host = vec![
            "db:10.1.2.3".into(),
            "gw:host-gateway".into(),
            "v6:::1".into(),
        ];
        o.dns = vec!["10.0.0.53".into()];
        o.dns_search = vec!["example.com".into()];
        o.dns_option = vec!["ndots:2".into()];
        let b = create_body(&o, false).unwrap();
        assert_eq!(
            b["HostConfig"]["ExtraHosts"],
            json!(["db:10.1.2.3", "gw:host-gateway", "v6:::1"])
        );
        assert_eq!(b["HostConfig"]["Dns"], json!(["10.0.0.53"]));
        assert_eq!(b["HostConfig"]["DnsSearch"], json!(["example.com"]));
        assert_eq!(b["HostConfig"]["DnsOptions"], json!(["ndots:2"]));
        assert_eq!(
            validate_add_host("foo").unwrap_err(),
            r#"invalid argument "foo" for "--add-host" flag: bad format for add-host: "foo""#
        );
        assert!(validate_add_host(":1.2.3.4").is_err());
        assert!(validate_add_host("a:1.2.3.999")
            .unwrap_err()
            .contains("invalid IP address in add-host: \"1.2.3.999\""));
        o.dns = vec!["nope".into()];
        assert!(create_body(&o, false).is_err());
        o.dns = vec![];
        o.dns_search = vec!["-bad-.com".into()];
        assert!(create_body(&o, false).is_err());
        o.mac_address = Some("zz".into());
        assert!(create_body(&o, false).is_err());
        assert_eq!(familiar_ref("busybox"), "busybox:latest");
        assert_eq!(familiar_ref("a/b:1"), "a/b:1");
    }

    #[test]
    fn volumes_and_mounts_as_docker_20_10() {
        let mut o = opts(&["busybox"]);
        let b = create_body(&o, false).unwrap();
        assert_eq!(b["Volumes"], json!({}));
        assert_eq!(b["HostConfig"]["Binds"], Value::Null);
        assert_eq!(b["HostConfig"]["VolumesFrom"], Value::Null);
        assert_eq!(b["HostConfig"]["VolumeDriver"], "");
        assert!(b["HostConfig"].get("Mounts").is_none());
        assert!(b["HostConfig"].get("Tmpfs").is_none());
        o.volume = v(&["/data", "/h:/c:ro", "named:/n", "/data"]);
        o.mount = v(&[
            "type=bind,src=/h2,dst=/c2,readonly",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
        ]);
        o.tmpfs = v(&["/run", "/tmp:rw,noexec,size=65536k"]);
        o.volumes_from = v(&["other:ro", "third"]);
        o.volume_driver = Some("local".into());
        let b = create_body(&o, false).unwrap();
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(b["HostConfig"]["Binds"], json!(["/h:/c:ro", "named:/n"]));
        assert_eq!(
            b["HostConfig"]["Mounts"],
            json!([
                {"Type": "bind", "Source": "/h2", "Target": "/c2", "ReadOnly": true},
                {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1048576}},
            ])
        );
        assert_eq!(
            b["HostConfig"]["Tmpfs"],
            json!({"/run": "", "/tmp": "rw,noexec,size=65536k"})
        );
        assert_eq!(b["HostConfig"]["VolumesFrom"], json!(["other:ro", "third"]));
        assert_eq!(b["HostConfig"]["VolumeDriver"], "local");
    }

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn networking_config_as_docker_20_10() {
        // No --network: NetworkMode "default", no endpoints; --ip and aliases are not sent.
        let mut o = opts(&["busybox"]);
        let b = create_body(&o, false).unwrap();
        assert_eq!(b["HostConfig"]["NetworkMode"], "default");
        assert_eq!(b["NetworkingConfig"], json!({"EndpointsConfig": {}}));
        assert_eq!(b["HostConfig"]["Links"], Value::Null);
        o.ip = Some("10.0.0.9".into());
        o.network_alias = v(&["web"]);
        assert_eq!(
            create_body(&o, false).unwrap()["NetworkingConfig"],
            json!({"EndpointsConfig": {}})
        );

        // One network with nothing to say: no endpoint entry.
        let mut o = opts(&["busybox"]);
        o.network = v(&["net1"]);
        let b = create_body(&o, false).unwrap();
        assert_eq!(b["HostConfig"]["NetworkMode"], "net1");
        assert_eq!(b["NetworkingConfig"], json!({"EndpointsConfig": {}}));

        // Aliases, addresses and links go with it.
        o.network_alias = v(&["web", "www"]);
        o.ip = Some("10.0.0.9".into());
        o.ip6 = Some("2001:db8::9".into());
        o.link = v(&["db:database"]);
        let b = create_body(&o, false).unwrap();
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"net1": {
                "IPAMConfig": {"IPv4Address": "10.0.0.9", "IPv6Address": "2001:db8::9"},
                "Links": ["db:database"],
                "Aliases": ["web", "www"],
            }}})
        );
        assert_eq!(b["HostConfig"]["Links"], json!(["db:database"]));

        // --ip alone on the default bridge is sent (the daemon judges it).
        let mut o = opts(&["busybox"]);
        o.network = v(&["bridge"]);
        o.ip = Some("x".into());
        assert_eq!(
            create_body(&o, false).unwrap()["NetworkingConfig"],
            json!({"EndpointsConfig": {"bridge": {"IPAMConfig": {"IPv4Address": "x"}}}})
        );
        o.ip = None;
        o.network_alias = v(&["web"]);
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "network-scoped aliases are only supported for user-defined networks"
        );
        o.network_alias = vec![];
        o.link = v(&["db"]);
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "links are only supported for user-defined networks"
        );
    }

    #[test]
    fn network_long_syntax_and_conflicts() {
        let mut o = opts(&["busybox"]);
        o.network = v(&["name=Net1,alias=a1,ip=10.0.0.9,driver-opt=k=v"]);
        let b = create_body(&o, false).unwrap();
        assert_eq!(b["HostConfig"]["NetworkMode"], "net1");
        assert_eq!(
            b["NetworkingConfig"],
            json!({"EndpointsConfig": {"net1": {
                "IPAMConfig": {"IPv4Address": "10.0.0.9"},
                "Aliases": ["a1"],
                "DriverOpts": {"k": "v"},
            }}})
        );
        o.network_alias = v(&["x"]);
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "conflicting options: cannot specify both --network-alias and per-network alias"
        );
        o.network_alias = vec![];
        o.ip = Some("10.0.0.8".into());
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "conflicting options: cannot specify both --ip and per-network IPv4 address"
        );
        o.ip = None;
        o.network = v(&["name=n,ip6=2001:db8::1"]);
        o.ip6 = Some("2001:db8::2".into());
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "conflicting options: cannot specify both --ip6 and per-network IPv6 address"
        );

        // Several networks: each gets an entry, the flags go with the first.
        let mut o = opts(&["busybox"]);
        o.network = v(&["n1", "n2"]);
        o.network_alias = v(&["a"]);
        assert_eq!(
            create_body(&o, false).unwrap()["NetworkingConfig"],
            json!({"EndpointsConfig": {"n1": {"Aliases": ["a"]}, "n2": {}}})
        );
        o.network = v(&["n1", "n1"]);
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "network \"n1\" is specified multiple times"
        );
        o.network_alias = vec![];
        o.network = v(&["n1", "host"]);
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        );
        assert!(is_user_defined("mynet"));
        for m in ["default", "bridge", "host", "none", "container:abc"] {
            assert!(!is_user_defined(m), "{m}");
        }
    }
    #[test]
    fn resources_security_health_as_docker_20_10() {
        let o = opts(&["busybox"]);
        let b = create_body(&o, false).unwrap();
        for k in [
            "Memory",
            "NanoCpus",
            "Ulimits",
            "Devices",
            "SecurityOpt",
            "LogConfig",
            "PidsLimit",
        ] {
            assert!(b["HostConfig"].get(k).is_none(), "{k}");
        }
        assert!(b.get("Healthcheck").is_none());
        let mut o = opts(&["busybox"]);
        o.memory = Some(512 << 20);
        o.memory_swap = Some(-1);
        o.memory_reservation = Some(1 << 20);
        o.memory_swappiness = Some(10);
        o.kernel_memory = Some(4 << 20);
        o.oom_kill_disable = true;
        o.oom_score_adj = Some(-500);
        o.cpus = Some(1_500_000_000);
        o.cpu_shares = Some(512);
        o.cpu_period = Some(100000);
        o.cpu_quota = Some(50000);
        o.cpuset_cpus = Some("0-1".into());
        o.cpuset_mems = Some("0".into());
        o.pids_limit = Some(-1);
        o.blkio_weight = Some(300);
        o.shm_size = Some(64 << 20);
        o.ulimit = v(&["nofile=1024:2048"]);
        o.device = v(&["/dev/fuse", "/dev/sda:/dev/xvda:r"]);
        o.device_cgroup_rule = v(&["c 1:3 rwm"]);
        o.security_opt = v(&["no-new-privileges", "seccomp=unconfined"]);
        o.sysctl = v(&["net.ipv4.ip_forward=1"]);
        o.log_driver = Some("json-file".into());
        o.log_opt = v(&["max-size=10m"]);
        o.userns = Some("host".into());
        o.pid = Some("host".into());
        o.ipc = Some("shareable".into());
        o.uts = Some("host".into());
        o.group_add = v(&["audio"]);
        let b = create_body(&o, false).unwrap();
        let h = &b["HostConfig"];
        assert_eq!(h["Memory"], 512 << 20);
        assert_eq!(h["MemorySwap"], -1);
        assert_eq!(h["MemoryReservation"], 1 << 20);
        assert_eq!(h["MemorySwappiness"], 10);
        assert_eq!(h["KernelMemory"], 4 << 20);
        assert_eq!(h["OomKillDisable"], true);
        assert_eq!(h["OomScoreAdj"], -500);
        assert_eq!(h["NanoCpus"], 1_500_000_000i64);
        assert_eq!(h["CpuShares"], 512);
        assert_eq!(h["CpuPeriod"], 100000);
        assert_eq!(h["CpuQuota"], 50000);
        assert_eq!(h["CpusetCpus"], "0-1");
        assert_eq!(h["CpusetMems"], "0");
        assert_eq!(h["PidsLimit"], -1);
        assert_eq!(h["BlkioWeight"], 300);
        assert_eq!(h["ShmSize"], 64 << 20);
        assert_eq!(
            h["Ulimits"],
            json!([{"Name": "nofile", "Hard": 2048, "Soft": 1024}])
        );
        assert_eq!(
            h["Devices"],
            json!([
                {"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"},
                {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
            ])
        );
        assert_eq!(h["DeviceCgroupRules"], json!(["c 1:3 rwm"]));
        assert_eq!(
            h["SecurityOpt"],
            json!(["no-new-privileges", "seccomp=unconfined"])
        );
        assert_eq!(h["Sysctls"], json!({"net.ipv4.ip_forward": "1"}));
        assert_eq!(
            h["LogConfig"],
            json!({"Type": "json-file", "Config": {"max-size": "10m"}})
        );
        assert_eq!(h["UsernsMode"], "host");
        assert_eq!(h["PidMode"], "host");
        assert_eq!(h["IpcMode"], "shareable");
        assert_eq!(h["UTSMode"], "host");
        assert_eq!(h["GroupAdd"], json!(["audio"]));

        let err = |f: &dyn Fn(&mut ContainerOpts)| {
            let mut o = opts(&["busybox"]);
            f(&mut o);
            create_body(&o, false).unwrap_err()
        };
        assert_eq!(
            err(&|o| o.memory_swappiness = Some(101)),
            "invalid value: 101. Valid memory swappiness range is 0-100"
        );
        assert_eq!(
            err(&|o| o.pid = Some("foo".into())),
            "--pid: invalid PID mode"
        );
        assert_eq!(
            err(&|o| o.uts = Some("foo".into())),
            "--uts: invalid UTS mode"
        );
        assert_eq!(
            err(&|o| o.userns = Some("foo".into())),
            "--userns: invalid USER mode"
        );
        assert_eq!(
            err(&|o| {
                o.log_driver = Some("none".into());
                o.log_opt = v(&["a=b"]);
            }),
            "invalid logging opts for driver none"
        );
        assert_eq!(
            err(&|o| o.device = v(&["/dev/x:y:z"])),
            "bad mode specified: z"
        );

        // Health checks.
        let mut o = opts(&["busybox"]);
        o.health_cmd = Some("curl -f http://localhost/".into());
        o.health_interval = Some(30_000_000_000);
        o.health_retries = Some(3);
        let b = create_body(&o, false).unwrap();
        assert_eq!(
            b["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "curl -f http://localhost/"], "Interval": 30_000_000_000i64, "Retries": 3})
        );
        let mut o = opts(&["busybox"]);
        o.health_timeout = Some(5_000_000_000);
        o.health_start_period = Some(1_000_000_000);
        assert_eq!(
            create_body(&o, false).unwrap()["Healthcheck"],
            json!({"Timeout": 5_000_000_000i64, "StartPeriod": 1_000_000_000i64})
        );
        let mut o = opts(&["busybox"]);
        o.no_healthcheck = true;
        assert_eq!(
            create_body(&o, false).unwrap()["Healthcheck"],
            json!({"Test": ["NONE"]})
        );
        o.health_retries = Some(1);
        assert_eq!(
            create_body(&o, false).unwrap_err(),
            "--no-healthcheck conflicts with --health-* options"
        );
        for (f, m) in [
            (0, "--health-interval cannot be negative"),
            (1, "--health-timeout cannot be negative"),
            (2, "--health-retries cannot be negative"),
            (3, "--health-start-period cannot be negative"),
        ] {
            let mut o = opts(&["busybox"]);
            match f {
                0 => o.health_interval = Some(-1),
                1 => o.health_timeout = Some(-1),
                2 => o.health_retries = Some(-1),
                _ => o.health_start_period = Some(-1),
            }
            assert_eq!(create_body(&o, false).unwrap_err(), m);
        }
    }
}
