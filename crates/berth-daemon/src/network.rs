//! The default bridge: `berth0`, its addresses, and each container's `eth0` on it.
//!
//! Built from `berth_network` (see its documentation): at daemon start [`DefaultBridge::init`]
//! settles the subnet (daemon.json `bip`, else the one saved in the leases file, else the
//! address the bridge already has, else the first subnet of `default-address-pools` that
//! collides with no route of the host), ensures the bridge, turns on ip forwarding and
//! writes berth's NAT table; [`DefaultBridge::reconcile`] then drops what no live container
//! owns (leases, veths on the bridge). A container on the default network gets an address
//! before its bundle is written ([`DefaultBridge::allocate`], so `/etc/hosts` names it), and
//! its veth once its shim reports the created-but-not-started init ([`DefaultBridge::connect`]);
//! both are released when it exits ([`DefaultBridge::release`]).
//!
//! The leases file is rewritten on each change, but the container records are the truth:
//! reconciling re-leases any address a live container's record holds.
//!
//! Published ports ([`DefaultBridge::publish`], [`DefaultBridge::unpublish`]): each host port
//! is held by a socket the daemon binds (the check that it is free, and the reservation), and
//! every change rewrites berth's NAT table from all published ports in one atomic batch;
//! after a restart the live containers' ports are bound and written again from their records.
//! See docs/ARCHITECTURE.md, "Networking".

use crate::container::ContainerRecord;
use crate::fsutil::write_atomic;
use berth_api::models::HostConfig;
use berth_api::ApiError;
use berth_network::{ipam, link, nat, ports};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Mutex;

/// The default bridge's interface.
pub const BRIDGE: &str = "berth0";
/// The default bridge network's name (Docker's), also its leases file's id.
pub const NETWORK: &str = "bridge";

/// A container's endpoint on a network, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The network's name (`bridge`).
    pub network: String,
    pub network_id: String,
    pub endpoint_id: String,
    /// The veth's host end, on the bridge.
    pub host_ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    pub gateway: Option<Ipv4Addr>,
    /// `02:42:ac:11:00:02`
    pub mac: String,
    /// Its published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
}

/// A published port as the container's record keeps it: `proto` `container_port` ←
/// `host_ip:host_port` (`0.0.0.0` for every address of the host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub proto: nat::Protocol,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
}

impl PortMapping {
    /// `80/tcp`, the key of `PortBindings` and `NetworkSettings.Ports`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.proto)
    }
}

/// What a container asks to publish: from `HostConfig.PortBindings`, and with
/// `PublishAllPorts` every exposed port not bound there, on a random port. Each is
/// (protocol, container port, host address, host ports: a range, `None` for a random one).
type PortRequest = (nat::Protocol, u16, Ipv4Addr, Option<(u16, u16)>);

/// The ports `rec` asks to publish, checked (also what `create` checks).
pub fn port_requests(
    host_config: &berth_api::models::HostConfig,
    exposed: Option<&Vec<String>>,
) -> Result<Vec<PortRequest>, String> {
    let mut out = Vec::new();
    let mut bindings: Vec<_> = host_config
        .port_bindings
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect();
    bindings.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, list) in &bindings {
        let (cport, proto) =
            ports::parse_port_key(key).map_err(|e| format!("invalid port specification: {e}"))?;
        for b in list {
            let ip = match b.host_ip.as_deref().unwrap_or("") {
                "" => Ipv4Addr::UNSPECIFIED,
                // The IPv6 half of a docker CLI's default binding: berth publishes on IPv4.
                s if s.contains(':') => continue,
                s => s
                    .parse()
                    .map_err(|_| format!("invalid IP address {s:?} in port binding {key}"))?,
            };
            let hp = match b.host_port.as_deref().unwrap_or("") {
                "" | "0" => None,
                s => Some(
                    ports::parse_range(s)
                        .map_err(|e| format!("invalid port specification: {e}"))?,
                ),
            };
            out.push((proto, cport, ip, hp));
        }
    }
    if host_config.publish_all_ports.unwrap_or(false) {
        let mut keys: Vec<&String> = exposed.into_iter().flatten().collect();
        keys.sort();
        for key in keys {
            if bindings.iter().any(|(k, _)| k == key) {
                continue;
            }
            let (cport, proto) = ports::parse_port_key(key)
                .map_err(|e| format!("invalid port specification: {e}"))?;
            out.push((proto, cport, Ipv4Addr::UNSPECIFIED, None));
        }
    }
    Ok(out)
}

/// A published port and the socket holding its host port (none when it could not be bound
/// again after a daemon restart).
type HeldPort = (PortMapping, Option<ports::Reservation>);

/// The published ports of the containers that run: their mappings and the sockets that hold
/// the host ports.
#[derive(Default)]
struct PortTable {
    by_container: HashMap<String, (Ipv4Addr, Vec<HeldPort>)>,
    /// Where the search for the next random port starts (sequential, as Docker's allocator).
    next_random: u16,
}

/// Whether a container's network mode puts it on the default bridge.
pub fn on_default_bridge(rec: &ContainerRecord) -> bool {
    matches!(
        rec.host_config.network_mode.as_deref().unwrap_or("default"),
        "" | "default" | "bridge"
    )
}

/// The name under which `inspect` lists the container's network (`NetworkSettings.Networks`),
/// if it has one there.
pub fn network_name(rec: &ContainerRecord) -> Option<&str> {
    match rec.host_config.network_mode.as_deref().unwrap_or("default") {
        "" | "default" | "bridge" => Some(NETWORK),
        "none" => Some("none"),
        "host" => Some("host"),
        _ => None,
    }
}

/// A built-in network's id: a random 64-hex id saved in `<data-root>/network/<name>.id` the
/// first time (as Docker keeps its built-in networks' ids), read back afterwards.
fn builtin_id(dir: &std::path::Path, name: &str) -> Result<String, ApiError> {
    let path = dir.join(format!("{name}.id"));
    match std::fs::read_to_string(&path) {
        Ok(s) if s.trim().len() == 64 => Ok(s.trim().to_string()),
        _ => {
            let id = crate::new_id();
            write_atomic(&path, id.as_bytes())
                .map_err(|e| err("cannot save a network's id")(e.to_string()))?;
            Ok(id)
        }
    }
}

fn err(what: &str) -> impl Fn(String) -> ApiError + '_ {
    move |e| ApiError::internal(format!("{what}: {e}"))
}

/// The default bridge, set up.
pub struct DefaultBridge {
    /// One rtnetlink connection in the daemon's namespace, for every container.
    host: link::Netlink,
    bridge_index: u32,
    leases: Mutex<ipam::NetworkAddresses>,
    leases_dir: PathBuf,
    /// The network's id (`Networks.bridge.NetworkID`).
    pub id: String,
    /// The ids of the built-in `host` and `none` networks.
    pub host_id: String,
    pub none_id: String,
    /// Published ports; the lock also orders the NAT table's rewrites.
    ports: Mutex<PortTable>,
}

impl DefaultBridge {
    /// Set up the default bridge (see the module documentation). Call it inside the daemon's
    /// tokio runtime, in the daemon's network namespace.
    pub async fn init(config: &crate::Config) -> Result<DefaultBridge, ApiError> {
        let dir = crate::layout::network_dir(&config.data_root);
        let leases_dir = crate::layout::leases_dir(&config.data_root);
        std::fs::create_dir_all(&leases_dir)
            .map_err(|e| err("cannot create the network directory")(e.to_string()))?;
        let id = builtin_id(&dir, NETWORK)?;
        let host_id = builtin_id(&dir, "host")?;
        let none_id = builtin_id(&dir, "none")?;
        let setup = err("cannot set up the default bridge");
        let host = link::Netlink::new().map_err(|e| setup(e.to_string()))?;
        let saved =
            ipam::NetworkAddresses::load(&leases_dir, NETWORK).map_err(|e| setup(e.to_string()))?;
        let existing = host.link(BRIDGE).await.map_err(|e| setup(e.to_string()))?;
        let leases = match (config.bip, saved) {
            (Some((gw, subnet)), Some(s)) if s.subnet() == subnet && s.gateway() == gw => s,
            (Some((gw, subnet)), _) => ipam::NetworkAddresses::new(NETWORK, subnet, Some(gw), None)
                .map_err(|e| setup(e.to_string()))?,
            (None, Some(s)) => s,
            (None, None) => {
                let mut have = None;
                if let Some(l) = &existing {
                    have = host
                        .addresses(l.index)
                        .await
                        .map_err(|e| setup(e.to_string()))?
                        .first()
                        .copied();
                }
                let (subnet, gw) = match have {
                    Some(a) => (a.trunc(), Some(a.addr())),
                    None => {
                        let ignore: Vec<u32> = existing.iter().map(|l| l.index).collect();
                        let routes = host
                            .host_routes(&ignore)
                            .await
                            .map_err(|e| setup(e.to_string()))?;
                        let s = ipam::choose_subnet(&config.address_pools, &[], &routes)
                            .map_err(|e| setup(e.to_string()))?;
                        (s, None)
                    }
                };
                ipam::NetworkAddresses::new(NETWORK, subnet, gw, None)
                    .map_err(|e| setup(e.to_string()))?
            }
        };
        let subnet = leases.subnet();
        let gw = Ipv4Net::new(leases.gateway(), subnet.prefix_len()).expect("prefix of a subnet");
        let bridge_index = host
            .ensure_bridge(BRIDGE, gw)
            .await
            .map_err(|e| setup(e.to_string()))?;
        nat::enable_ip_forward().map_err(|e| setup(e.to_string()))?;
        nat::enable_route_localnet(BRIDGE).map_err(|e| setup(e.to_string()))?;
        nat::Nat::new()
            .apply(&[nat::Masquerade {
                subnet,
                bridge: BRIDGE.into(),
            }])
            .map_err(|e| setup(e.to_string()))?;
        leases.save(&leases_dir).map_err(|e| setup(e.to_string()))?;
        tracing::info!(bridge = BRIDGE, %gw, "default bridge ready");
        Ok(DefaultBridge {
            host,
            bridge_index,
            leases: Mutex::new(leases),
            leases_dir,
            id,
            host_id,
            none_id,
            ports: Mutex::new(PortTable::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ipam::NetworkAddresses> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the leases file (not fsynced: after a power loss no container runs, and after a
    /// crash of the daemon the rename is whole; `reconcile` re-leases what records hold).
    fn save(&self, leases: &ipam::NetworkAddresses) {
        if let Err(e) = leases.save_unsynced(&self.leases_dir) {
            tracing::error!("cannot save the default bridge's leases: {e}");
        }
    }

    /// The bridge's gateway address (what `host-gateway` means in `--add-host`).
    pub fn gateway(&self) -> Ipv4Addr {
        self.lock().gateway()
    }

    /// The bridge's subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.lock().subnet()
    }

    /// Lease an address to container `id` (blocking: it writes the leases file).
    pub fn allocate(&self, id: &str) -> Result<Ipv4Addr, ApiError> {
        let mut l = self.lock();
        let ip = l
            .allocate(id)
            .map_err(|e| ApiError::internal(format!("cannot allocate an address: {e}")))?;
        self.save(&l);
        Ok(ip)
    }

    /// Give up container `id`'s leases (blocking: it writes the leases file when it had one).
    pub fn release_lease(&self, id: &str) {
        let mut l = self.lock();
        if !l.release_owner(id).is_empty() {
            self.save(&l);
        }
    }

    /// Plug container `id`, whose init is `pid` (created, not started), into the bridge with
    /// address `ip`.
    pub async fn connect(
        &self,
        id: &str,
        pid: i32,
        ip: Ipv4Addr,
        mac: Option<&str>,
    ) -> Result<EndpointRecord, String> {
        let (prefix, gateway) = {
            let l = self.lock();
            (l.subnet().prefix_len(), l.gateway())
        };
        let ns =
            link::open_netns(format!("/proc/{pid}/ns/net").as_ref()).map_err(|e| e.to_string())?;
        let address = Ipv4Net::new(ip, prefix).map_err(|e| e.to_string())?;
        let mut cfg = link::EndpointConfig::new(BRIDGE, address, Some(gateway));
        cfg.mac = mac.map(parse_mac).transpose()?;
        let ep = link::connect(&self.host, ns.as_fd(), &cfg)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(%id, veth = %ep.host_ifname, %ip, "connected to {BRIDGE}");
        Ok(EndpointRecord {
            network: NETWORK.into(),
            network_id: self.id.clone(),
            endpoint_id: crate::new_id(),
            host_ifname: ep.host_ifname,
            ip,
            prefix_len: prefix,
            gateway: ep.gateway,
            mac: ipam::format_mac(&ep.mac),
            ports: Vec::new(),
        })
    }

    /// Container `id` exited: its lease goes now (blocking: it writes the leases file); its
    /// veth, which the kernel removes with the container's namespace, is deleted in the
    /// background in case it is still there.
    pub fn release(&self, id: &str, ep: Option<&EndpointRecord>) {
        self.unpublish(id);
        self.release_lease(id);
        if let Some(ep) = ep {
            let host = self.host.clone();
            let name = ep.host_ifname.clone();
            tokio::spawn(async move {
                if let Err(e) = link::disconnect(&host, &name).await {
                    tracing::warn!("cannot remove {name}: {e}");
                }
            });
        }
    }

    fn ports_lock(&self) -> std::sync::MutexGuard<'_, PortTable> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrite berth's NAT table from `table` (one atomic batch).
    fn apply_nat(&self, table: &PortTable) -> Result<(), String> {
        let mut forwards = Vec::new();
        for (dest, list) in table.by_container.values() {
            for (m, _) in list {
                forwards.push(nat::PortForward {
                    proto: m.proto,
                    host_ip: (!m.host_ip.is_unspecified()).then_some(m.host_ip),
                    host_port: m.host_port,
                    dest: *dest,
                    dest_port: m.container_port,
                });
            }
        }
        forwards.sort_by_key(|f| (f.host_port, f.proto, f.host_ip));
        let masq = nat::Masquerade {
            subnet: self.subnet(),
            bridge: BRIDGE.into(),
        };
        nat::Nat::new()
            .apply_all(&[masq], &forwards)
            .map_err(|e| e.to_string())
    }

    /// Publish container `id`'s ports (at `ip`): reserve each host port (a random one from
    /// the ephemeral range where none is given; the first free one of a range), then write
    /// the DNAT rules. Blocking (binds and one netlink batch). The error is Docker's
    /// (`Bind for 0.0.0.0:8080 failed: port is already allocated`); nothing is kept then.
    pub fn publish(
        &self,
        id: &str,
        ip: Ipv4Addr,
        requests: &[PortRequest],
    ) -> Result<Vec<PortMapping>, String> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let mut table = self.ports_lock();
        let (lo, hi) = ports::ephemeral_range();
        let mut held = Vec::new();
        for &(proto, cport, host_ip, range) in requests {
            let taken =
                |port: u16| format!("Bind for {host_ip}:{port} failed: port is already allocated");
            let (port, r) = match range {
                Some((a, b)) => {
                    let mut got = None;
                    let mut last = None;
                    for p in a..=b {
                        match ports::reserve(proto, host_ip, p) {
                            Ok(r) => {
                                got = Some((p, r));
                                break;
                            }
                            Err(e) => last = Some((p, e)),
                        }
                    }
                    match (got, last) {
                        (Some(g), _) => g,
                        (None, Some((p, e))) if e.kind() == std::io::ErrorKind::AddrInUse => {
                            return Err(taken(if a == b { p } else { a }))
                        }
                        (None, Some((p, e))) => {
                            return Err(format!("Bind for {host_ip}:{p} failed: {e}"))
                        }
                        (None, None) => unreachable!("a range has a port"),
                    }
                }
                None => {
                    let span = u32::from(hi - lo) + 1;
                    let start = table.next_random.clamp(lo, hi);
                    let mut got = None;
                    for i in 0..span {
                        let p = (u32::from(start - lo) + i) % span + u32::from(lo);
                        let p = p as u16;
                        match ports::reserve(proto, host_ip, p) {
                            Ok(r) => {
                                got = Some((p, r));
                                break;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
                            Err(e) => return Err(format!("Bind for {host_ip}:{p} failed: {e}")),
                        }
                    }
                    let g = got.ok_or_else(|| {
                        format!("no free port in the range {lo}-{hi} for {host_ip}")
                    })?;
                    table.next_random = if g.0 >= hi { lo } else { g.0 + 1 };
                    g
                }
            };
            held.push((
                PortMapping {
                    proto,
                    container_port: cport,
                    host_ip,
                    host_port: port,
                },
                Some(r),
            ));
        }
        let mappings: Vec<PortMapping> = held.iter().map(|(m, _)| m.clone()).collect();
        table.by_container.insert(id.to_string(), (ip, held));
        if let Err(e) = self.apply_nat(&table) {
            table.by_container.remove(id);
            return Err(format!("cannot write the port forwarding rules: {e}"));
        }
        tracing::debug!(%id, ports = mappings.len(), "ports published");
        Ok(mappings)
    }

    /// Container `id` stopped: its rules go (one batch) and its host ports are freed.
    /// Blocking. Nothing happens when it published nothing.
    pub fn unpublish(&self, id: &str) {
        let mut table = self.ports_lock();
        if table.by_container.remove(id).is_some() {
            if let Err(e) = self.apply_nat(&table) {
                tracing::error!(%id, "cannot remove the port forwarding rules: {e}");
            }
        }
    }

    /// After a restart: hold the host ports of the live containers again and write exactly
    /// their rules (which drops those of containers that stopped while the daemon was away).
    fn restore_ports(&self, live: &HashMap<String, EndpointRecord>) {
        let mut table = self.ports_lock();
        table.by_container.clear();
        for (id, ep) in live {
            if ep.ports.is_empty() {
                continue;
            }
            let held = ep
                .ports
                .iter()
                .map(|m| {
                    let r = ports::reserve(m.proto, m.host_ip, m.host_port)
                        .map_err(|e| {
                            tracing::warn!(%id, port = m.host_port, "cannot hold a published port again: {e}");
                        })
                        .ok();
                    (m.clone(), r)
                })
                .collect();
            table.by_container.insert(id.clone(), (ep.ip, held));
        }
        if let Err(e) = self.apply_nat(&table) {
            tracing::error!("cannot write the port forwarding rules: {e}");
        }
    }

    /// After loading the containers: keep the leases of the live containers (re-leasing any
    /// their records hold), drop the others, and delete each veth on the bridge that no live
    /// container's record names. `live` maps live container ids to their endpoints.
    pub async fn reconcile(&self, live: &HashMap<String, EndpointRecord>) {
        {
            let mut l = self.lock();
            let before = l.clone();
            let dropped = l.retain_owners(|o| live.contains_key(o));
            for (ip, owner) in &dropped {
                tracing::info!(%ip, %owner, "released the lease of a container that is gone");
            }
            for (id, ep) in live {
                if l.owner(ep.ip) != Some(id.as_str()) {
                    if let Err(e) = l.request(ep.ip, id) {
                        tracing::warn!(%id, ip = %ep.ip, "cannot lease a live container's address again: {e}");
                    }
                }
            }
            if *l != before {
                self.save(&l);
            }
        }
        self.restore_ports(live);
        let owned: HashSet<&str> = live.values().map(|e| e.host_ifname.as_str()).collect();
        let ports = match self.host.bridge_ports(self.bridge_index).await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("cannot list the ports of {BRIDGE}: {e}");
                return;
            }
        };
        for p in ports {
            if p.kind.as_deref() == Some("veth") && !owned.contains(p.name.as_str()) {
                match link::disconnect(&self.host, &p.name).await {
                    Ok(_) => tracing::info!(veth = %p.name, "removed a veth no container owns"),
                    Err(e) => tracing::warn!(veth = %p.name, "cannot remove: {e}"),
                }
            }
        }
    }
}

/// `/etc/hosts` as Docker writes it for a container with address `ip` (the loopback lines,
/// then `<ip>\t<hostname>`, with the fully qualified name first when there is a domain).
/// `--mac-address`: six hex bytes separated by colons.
pub fn parse_mac(m: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{m} is not a valid mac address");
    let parts: Vec<&str> = m.split(':').collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut out = [0u8; 6];
    for (o, p) in out.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *o = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// The special address of `--add-host name:host-gateway`.
pub const HOST_GATEWAY: &str = "host-gateway";

/// `HostConfig.ExtraHosts` (`name:ip`, the ip may be `host-gateway`) and `Dns` checked at
/// create, with the docker CLI's messages.
pub fn check_dns_settings(hc: &HostConfig) -> Result<(), String> {
    for h in hc.extra_hosts.iter().flatten() {
        match h.split_once(':') {
            Some((name, ip)) if !name.is_empty() => {
                if ip != HOST_GATEWAY && ip.trim().parse::<std::net::IpAddr>().is_err() {
                    return Err(format!("invalid IP address in add-host: \"{ip}\""));
                }
            }
            _ => return Err(format!("bad format for add-host: \"{h}\"")),
        }
    }
    for d in hc.dns.iter().flatten() {
        if d.trim().parse::<std::net::IpAddr>().is_err() {
            return Err(format!("{d} is not an ip address"));
        }
    }
    Ok(())
}

/// `HostConfig.ExtraHosts` as `/etc/hosts` lines (`<ip>\t<name>`), `host-gateway` replaced
/// by `gateway`.
pub fn extra_hosts_lines(extra: &[String], gateway: Option<Ipv4Addr>) -> String {
    let mut s = String::new();
    for h in extra {
        let Some((name, ip)) = h.split_once(':') else {
            continue;
        };
        let ip = match (ip, gateway) {
            (HOST_GATEWAY, Some(gw)) => gw.to_string(),
            (HOST_GATEWAY, None) => continue,
            (ip, _) => ip.trim().to_string(),
        };
        s.push_str(&format!("{ip}\t{name}\n"));
    }
    s
}

pub fn hosts_file(
    base: &str,
    ip: Option<Ipv4Addr>,
    hostname: &str,
    domain: Option<&str>,
) -> String {
    let mut s = base.to_string();
    if let (Some(ip), false) = (ip, hostname.is_empty()) {
        match domain.filter(|d| !d.is_empty()) {
            Some(d) => s.push_str(&format!("{ip}\t{hostname}.{d} {hostname}\n")),
            None => s.push_str(&format!("{ip}\t{hostname}\n")),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_hosts() {
        let gw = Some("172.17.0.1".parse().unwrap());
        let x = vec![
            "db:10.1.2.3".to_string(),
            "gw:host-gateway".into(),
            "v6:::1".into(),
        ];
        assert_eq!(
            extra_hosts_lines(&x, gw),
            "10.1.2.3\tdb\n172.17.0.1\tgw\n::1\tv6\n"
        );
        let hc = |h: &str| HostConfig {
            extra_hosts: Some(vec![h.to_string()]),
            ..Default::default()
        };
        assert!(check_dns_settings(&hc("db:10.1.2.3")).is_ok());
        assert!(check_dns_settings(&hc("gw:host-gateway")).is_ok());
        assert_eq!(
            check_dns_settings(&hc("foo")).unwrap_err(),
            "bad format for add-host: \"foo\""
        );
        assert!(check_dns_settings(&hc("a:1.2.3")).is_err());
    }

    #[test]
    fn hosts_lines() {
        let ip = Some("172.17.0.2".parse().unwrap());
        assert_eq!(
            hosts_file("B\n", ip, "abc", None),
            "B\nabc\n".replace("abc", "172.17.0.2\tabc")
        );
        assert_eq!(
            hosts_file("", ip, "h", Some("example.com")),
            "172.17.0.2\th.example.com h\n"
        );
        assert_eq!(hosts_file("B\n", None, "h", None), "B\n");
    }

    #[test]
    fn endpoint_record_round_trips() {
        let ep = EndpointRecord {
            network: "bridge".into(),
            network_id: "n".into(),
            endpoint_id: "e".into(),
            host_ifname: "veth1234567".into(),
            ip: "172.17.0.2".parse().unwrap(),
            prefix_len: 16,
            gateway: Some("172.17.0.1".parse().unwrap()),
            mac: "02:42:ac:11:00:02".into(),
            ports: vec![PortMapping {
                proto: nat::Protocol::Udp,
                container_port: 53,
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 5353,
            }],
        };
        let j = serde_json::to_string(&ep).unwrap();
        assert_eq!(serde_json::from_str::<EndpointRecord>(&j).unwrap(), ep);
    }
}
