//! The container networks: the default bridge `berth0`, user-defined bridge networks
//! (`br-<id>`), each container's interfaces on them, published ports, and the embedded DNS.
//!
//! Built from `berth_network` (see its documentation). At daemon start [`Networks::init`]
//! settles the default bridge's subnet (daemon.json `bip`, else the one saved in its leases
//! file, else the address the bridge already has, else the first subnet of
//! `default-address-pools` that collides with no route of the host), loads the user networks
//! (`<data-root>/network/networks/<id>.json`) and ensures every bridge, turns on ip
//! forwarding and writes berth's NAT table; [`Networks::reconcile`] then drops what no live
//! container owns (leases, veths on the bridges) and serves DNS again to the live containers.
//!
//! A container's networks are its record's attachments ([`attachments`]): the default
//! bridge for network mode `default`/`bridge`, else the user network it names, plus those
//! `network connect` added. Each gets an address before the bundle is written
//! ([`Networks::allocate`]: `/etc/hosts` names the first) and its interface (`eth0`,
//! `eth1`, …) once the shim reports the created-but-not-started init ([`Networks::connect`]);
//! all are released when it exits ([`Networks::release`]).
//!
//! The leases files are rewritten on each change, but the container records are the truth:
//! reconciling re-leases any address a live container's record holds.
//!
//! Published ports ([`Networks::publish`], [`Networks::unpublish`]): each host port is held
//! by a socket the daemon binds (the check that it is free, and the reservation), and every
//! change rewrites berth's NAT table from all networks and published ports in one atomic
//! batch; after a restart the live containers' ports are bound and written again from their
//! records. See docs/ARCHITECTURE.md, "Networking".

use crate::container::ContainerRecord;
use crate::fsutil::write_atomic;
use berth_api::models::HostConfig;
use berth_api::ApiError;
use berth_network::{ipam, link, nat, ports};
use ipnet::Ipv4Net;
use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// How long an exited container's veth is left to the kernel, which removes it with the
/// container's network namespace, before the daemon deletes it (see `Networks::release`).
const VETH_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// The default bridge's interface.
pub const BRIDGE: &str = "berth0";
/// The default bridge network's name (Docker's), also its leases file's id.
pub const NETWORK: &str = "bridge";

fn is_zero(n: &u8) -> bool {
    *n == 0
}

fn default_ifname() -> String {
    "eth0".into()
}

/// A container's endpoint on a network, as its record keeps it while the container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    /// The network's name (`bridge`, `mynet`).
    pub network: String,
    pub network_id: String,
    pub endpoint_id: String,
    /// The veth's host end, on the bridge.
    pub host_ifname: String,
    /// The interface inside the container (`eth0`, `eth1`, …).
    #[serde(default = "default_ifname")]
    pub ifname: String,
    pub ip: Ipv4Addr,
    pub prefix_len: u8,
    /// The default route's gateway, when this endpoint gives the container its default route.
    pub gateway: Option<Ipv4Addr>,
    /// Its IPv6 address and prefix length, on a network with IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefix6: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    /// `02:42:ac:11:00:02`
    pub mac: String,
    /// Its published ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortMapping>,
}

/// A network the container is attached to, with what its endpoint asks for (kept while the
/// container is stopped too: `NetworkSettings.Networks`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's name.
    pub network: String,
    /// Its id when the container was attached (a network removed and made again under the
    /// same name is found by name).
    #[serde(default)]
    pub network_id: String,
    /// `--network-alias` / `network connect --alias`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// `--ip` / `network connect --ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<Ipv4Addr>,
    /// `--ip6` / `network connect --ip6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<Ipv6Addr>,
}

/// The networks a container gets endpoints on, in order (the first gives `eth0`).
pub fn attachments(rec: &ContainerRecord) -> Vec<Attachment> {
    rec.networks.clone()
}

/// An endpoint to plug in at start: the network, what the container asked of it, and the
/// address leased.
pub struct Planned {
    pub net: Arc<Net>,
    pub att: Attachment,
    pub ip: Ipv4Addr,
    /// On a network with IPv6.
    pub ip6: Option<Ipv6Addr>,
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

/// A network's settings. The default bridge's are made at each start; a user network's are
/// kept in `<data-root>/network/networks/<id>.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    pub id: String,
    pub name: String,
    pub created: chrono::DateTime<chrono::Utc>,
    /// The bridge interface (`berth0`, `br-<id[..12]>`).
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub gateway: Ipv4Addr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<Ipv4Net>,
    /// The subnet was given (`--subnet`): only then may a container ask for its address.
    #[serde(default)]
    pub user_subnet: bool,
    /// The gateway was given (`--gateway`): `IPAM.Config` shows it only then, as Docker's.
    #[serde(default)]
    pub user_gateway: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub enable_ipv6: bool,
    /// The IPv6 subnet and gateway of a network made with `--ipv6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet6: Option<Ipv6Net>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<Ipv6Addr>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `--aux-address`: names → addresses kept out of allocation.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, Ipv4Addr>,
}

/// One network, set up: its settings, its addresses, its bridge.
pub struct Net {
    pub cfg: NetworkConfig,
    /// The default bridge (a built-in network: it cannot be removed, has no DNS).
    pub builtin: bool,
    leases: Mutex<ipam::NetworkAddresses>,
    /// The IPv6 leases, on a network with IPv6.
    leases6: Option<Mutex<ipam::NetworkAddresses6>>,
}

impl Net {
    fn lock(&self) -> std::sync::MutexGuard<'_, ipam::NetworkAddresses> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock6(&self) -> Option<std::sync::MutexGuard<'_, ipam::NetworkAddresses6>> {
        self.leases6
            .as_ref()
            .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn isolated(&self) -> nat::Isolated {
        nat::Isolated {
            bridge: self.cfg.bridge.clone(),
            internal: self.cfg.internal,
        }
    }

    fn masquerade(&self) -> Option<nat::Masquerade> {
        (!self.cfg.internal).then(|| nat::Masquerade {
            subnet: self.cfg.subnet,
            bridge: self.cfg.bridge.clone(),
        })
    }
}

/// A built-in network's id: a random 64-hex id saved in `<data-root>/network/<name>.id` the
/// first time (as Docker keeps its built-in networks' ids), read back afterwards.
fn builtin_id(dir: &Path, name: &str) -> Result<String, ApiError> {
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

/// What `network create` asks for (`POST /networks/create`), checked by
/// [`Networks::create`].
#[derive(Debug, Default, Clone)]
pub struct CreateRequest {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    pub aux_addresses: BTreeMap<String, String>,
    pub internal: bool,
    pub attachable: bool,
    pub enable_ipv6: bool,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// The owner of the leases that hold `--aux-address`es.
pub const AUX_OWNER: &str = "aux-address";

/// The option naming a user network's bridge (Docker's).
pub const BRIDGE_NAME_OPTION: &str = "com.docker.network.bridge.name";

/// Every network, set up.
pub struct Networks {
    /// One rtnetlink connection in the daemon's namespace, for every container.
    host: link::Netlink,
    /// `<data-root>/network`.
    dir: PathBuf,
    leases_dir: PathBuf,
    /// The default bridge first, then the user networks.
    nets: RwLock<Vec<Arc<Net>>>,
    /// The ids of the built-in `host` and `none` networks.
    pub host_id: String,
    pub none_id: String,
    /// For subnets chosen for new networks.
    pools: Vec<ipam::AddressPool>,
    /// Published ports; the lock also orders the NAT table's rewrites.
    ports: Mutex<PortTable>,
    /// Network creations and removals hold it for writing; a container's start and
    /// `network connect`, from leasing to recording the endpoints, for reading (so that a
    /// network is never removed under a container joining it).
    pub(crate) admin: tokio::sync::RwLock<()>,
    /// The embedded DNS servers of the running containers on user networks.
    pub(crate) dns: crate::dns::DnsServers,
}

impl Networks {
    /// Set up every network (see the module documentation). Call it inside the daemon's
    /// tokio runtime, in the daemon's network namespace.
    pub async fn init(config: &crate::Config) -> Result<Networks, ApiError> {
        let dir = crate::layout::network_dir(&config.data_root);
        let leases_dir = crate::layout::leases_dir(&config.data_root);
        let user_dir = crate::layout::user_networks_dir(&config.data_root);
        for d in [&leases_dir, &user_dir] {
            std::fs::create_dir_all(d)
                .map_err(|e| err("cannot create the network directory")(e.to_string()))?;
        }
        let id = builtin_id(&dir, NETWORK)?;
        let host_id = builtin_id(&dir, "host")?;
        let none_id = builtin_id(&dir, "none")?;
        let setup = err("cannot set up the default bridge");
        let host = link::Netlink::new().map_err(|e| setup(e.to_string()))?;

        // The user networks first: the default bridge's subnet, when chosen, avoids theirs.
        let mut users = Vec::new();
        for cfg in load_user_networks(&user_dir) {
            // Leases made again when the file is missing, of another subnet, or torn by a
            // crash (written in place): the aux addresses reserved again, the containers'
            // addresses by `reconcile` from their records.
            let leases = match ipam::NetworkAddresses::load(&leases_dir, &cfg.id) {
                Ok(Some(l)) if l.subnet() == cfg.subnet => l,
                loaded => {
                    if let Err(e) = loaded {
                        tracing::warn!(network = %cfg.name, "its leases are lost: {e}");
                    }
                    match ipam::NetworkAddresses::new(
                        &cfg.id,
                        cfg.subnet,
                        Some(cfg.gateway),
                        cfg.ip_range,
                    ) {
                        Ok(mut l) => {
                            for a in cfg.aux_addresses.values() {
                                let _ = l.request(*a, AUX_OWNER);
                            }
                            l
                        }
                        Err(e) => {
                            tracing::error!(network = %cfg.name, "cannot load its addresses: {e}");
                            continue;
                        }
                    }
                }
            };
            let leases6 = match cfg.subnet6 {
                Some(sub6) => match ipam::NetworkAddresses6::load(&leases_dir, &cfg.id) {
                    Ok(Some(l)) if l.subnet() == sub6 => Some(l),
                    loaded => {
                        if let Err(e) = loaded {
                            tracing::warn!(network = %cfg.name, "its IPv6 leases are lost: {e}");
                        }
                        ipam::NetworkAddresses6::new(&cfg.id, sub6, cfg.gateway6).ok()
                    }
                },
                None => None,
            };
            users.push(Net {
                cfg,
                builtin: false,
                leases: Mutex::new(leases),
                leases6: leases6.map(Mutex::new),
            });
        }
        let user_subnets: Vec<Ipv4Net> = users.iter().map(|n| n.cfg.subnet).collect();

        // A leases file that does not parse (a write torn by a crash) is replaced: the
        // containers' records say which addresses are taken (`reconcile`).
        let saved = match ipam::NetworkAddresses::load(&leases_dir, NETWORK) {
            Err(e @ ipam::IpamError::Corrupt { .. }) => {
                tracing::warn!("the default bridge's leases are lost: {e}");
                None
            }
            r => r.map_err(|e| setup(e.to_string()))?,
        };
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
                        let s = ipam::choose_subnet(&config.address_pools, &user_subnets, &routes)
                            .map_err(|e| setup(e.to_string()))?;
                        (s, None)
                    }
                };
                ipam::NetworkAddresses::new(NETWORK, subnet, gw, None)
                    .map_err(|e| setup(e.to_string()))?
            }
        };
        let created = std::fs::metadata(dir.join(format!("{NETWORK}.id")))
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_else(|_| chrono::Utc::now());
        let default = Net {
            cfg: NetworkConfig {
                id,
                name: NETWORK.into(),
                created,
                bridge: BRIDGE.into(),
                subnet: leases.subnet(),
                gateway: leases.gateway(),
                ip_range: None,
                user_subnet: false,
                user_gateway: false,
                internal: false,
                attachable: false,
                enable_ipv6: false,
                subnet6: None,
                gateway6: None,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
                aux_addresses: BTreeMap::new(),
            },
            builtin: true,
            leases: Mutex::new(leases),
            leases6: None,
        };
        let mut nets = vec![Arc::new(default)];
        nets.extend(users.into_iter().map(Arc::new));
        let mut ready = Vec::new();
        for n in nets {
            match setup_bridge(&host, &n, &leases_dir).await {
                Ok(()) => ready.push(n),
                // The default bridge is needed; a user network that cannot be set up (its
                // bridge's name taken, IPv6 gone from the kernel) is left out until it can.
                Err(e) if !n.builtin => {
                    tracing::error!(network = %n.cfg.name, "left out: {}", e.message)
                }
                Err(e) => return Err(e),
            }
        }
        let nets = ready;
        nat::enable_ip_forward().map_err(|e| setup(e.to_string()))?;
        let masq: Vec<_> = nets.iter().filter_map(|n| n.masquerade()).collect();
        let iso: Vec<_> = nets.iter().map(|n| n.isolated()).collect();
        nat::Nat::new()
            .apply_full(&masq, &[], &iso)
            .map_err(|e| setup(e.to_string()))?;
        docker_user_rules(&nets);
        tracing::info!(bridge = BRIDGE, networks = nets.len(), "networks ready");
        Ok(Networks {
            host,
            dir,
            leases_dir,
            nets: RwLock::new(nets),
            host_id,
            none_id,
            pools: config.address_pools.clone(),
            ports: Mutex::new(PortTable::default()),
            admin: tokio::sync::RwLock::new(()),
            dns: Default::default(),
        })
    }

    /// What the embedded DNS servers answer changed (a container started, exited, was
    /// connected, disconnected or renamed).
    pub fn bump_dns(&self) {
        self.dns.bump();
    }

    fn nets(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Net>>> {
        self.nets.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Every network, the default bridge first.
    pub fn list(&self) -> Vec<Arc<Net>> {
        self.nets().clone()
    }

    /// The default bridge.
    pub fn default_net(&self) -> Arc<Net> {
        self.nets()[0].clone()
    }

    /// The default bridge's id.
    pub fn default_id(&self) -> String {
        self.default_net().cfg.id.clone()
    }

    /// A network by name, full id, or unique id prefix (as Docker finds them).
    pub fn find(&self, key: &str) -> Option<Arc<Net>> {
        let nets = self.nets();
        if let Some(n) = nets.iter().find(|n| n.cfg.name == key || n.cfg.id == key) {
            return Some(n.clone());
        }
        let m: Vec<_> = nets
            .iter()
            .filter(|n| !key.is_empty() && n.cfg.id.starts_with(key))
            .collect();
        (m.len() == 1).then(|| m[0].clone())
    }

    /// The network an attachment names: by its id, else by its name.
    pub fn resolve(&self, a: &Attachment) -> Option<Arc<Net>> {
        let nets = self.nets();
        nets.iter()
            .find(|n| !a.network_id.is_empty() && n.cfg.id == a.network_id)
            .or_else(|| nets.iter().find(|n| n.cfg.name == a.network))
            .cloned()
    }

    /// The default bridge's gateway address (what `host-gateway` means in `--add-host`).
    pub fn gateway(&self) -> Ipv4Addr {
        self.default_net().cfg.gateway
    }

    /// The default bridge's subnet.
    pub fn subnet(&self) -> Ipv4Net {
        self.default_net().cfg.subnet
    }

    /// Write a network's leases file, in place and not fsynced (under the network's lock, as
    /// every write of it is): after a power loss no container runs; a write torn by a crash
    /// of the daemon leaves a file that start-up replaces, and `reconcile` re-leases what
    /// records hold.
    fn save(&self, net: &Net, leases: &ipam::NetworkAddresses) {
        if let Err(e) = leases.save_unsynced(&self.leases_dir) {
            tracing::error!(network = %net.cfg.name, "cannot save the leases: {e}");
        }
    }

    /// Lease an address on `net` to container `id`: `requested` (`--ip`), else the next
    /// free one (blocking: it writes the leases file).
    pub fn allocate(
        &self,
        net: &Net,
        id: &str,
        requested: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, ApiError> {
        let mut l = net.lock();
        let ip = match requested {
            Some(ip) => {
                if !net.cfg.user_subnet {
                    return Err(ApiError::invalid(
                        "user specified IP address is supported only when connecting to networks with user configured subnets",
                    ));
                }
                l.request(ip, id).map_err(|e| match e {
                    ipam::IpamError::AddressInUse(_) => {
                        ApiError::forbidden("Address already in use")
                    }
                    e => ApiError::invalid(e.to_string()),
                })?;
                ip
            }
            None => l.allocate(id).map_err(|e| {
                ApiError::internal(format!(
                    "no available IPv4 addresses on this network's address pools: {} ({}): {e}",
                    net.cfg.name, net.cfg.id
                ))
            })?,
        };
        self.save(net, &l);
        Ok(ip)
    }

    /// Lease an IPv6 address on `net` (when it has IPv6) to container `id`: `requested`
    /// (`--ip6`), else the next free one (blocking).
    pub fn allocate6(
        &self,
        net: &Net,
        id: &str,
        requested: Option<Ipv6Addr>,
    ) -> Result<Option<Ipv6Addr>, ApiError> {
        let Some(mut l) = net.lock6() else {
            return match requested {
                Some(_) => Err(ApiError::invalid(format!(
                    "network {} has no IPv6 (create it with --ipv6)",
                    net.cfg.name
                ))),
                None => Ok(None),
            };
        };
        let ip = match requested {
            Some(ip) => {
                l.request(ip, id).map_err(|e| match e {
                    ipam::IpamError::AddressInUse6(_) => {
                        ApiError::forbidden("Address already in use")
                    }
                    e => ApiError::invalid(e.to_string()),
                })?;
                ip
            }
            None => l.allocate(id).map_err(|e| {
                ApiError::internal(format!(
                    "no available IPv6 addresses on this network's address pools: {} ({}): {e}",
                    net.cfg.name, net.cfg.id
                ))
            })?,
        };
        if let Err(e) = l.save_unsynced(&self.leases_dir) {
            tracing::error!(network = %net.cfg.name, "cannot save the IPv6 leases: {e}");
        }
        Ok(Some(ip))
    }

    /// Give up container `id`'s leases on `net` (blocking: it writes the leases files when
    /// it had some).
    pub fn release_lease(&self, net: &Net, id: &str) {
        let mut l = net.lock();
        if !l.release_owner(id).is_empty() {
            self.save(net, &l);
        }
        drop(l);
        if let Some(mut l6) = net.lock6() {
            if !l6.release_owner(id).is_empty() {
                if let Err(e) = l6.save_unsynced(&self.leases_dir) {
                    tracing::error!(network = %net.cfg.name, "cannot save the IPv6 leases: {e}");
                }
            }
        }
    }

    /// Plug container `id`, whose init is `pid`, into `net` as `ifname` with address `ip`;
    /// with `default_route`, the container's default route goes through this network's
    /// gateway.
    #[allow(clippy::too_many_arguments)]
    pub async fn connect(
        &self,
        net: &Net,
        id: &str,
        pid: i32,
        ifname: &str,
        addresses: (Ipv4Addr, Option<Ipv6Addr>),
        mac: Option<&str>,
        default_route: bool,
    ) -> Result<EndpointRecord, String> {
        let ns =
            link::open_netns(format!("/proc/{pid}/ns/net").as_ref()).map_err(|e| e.to_string())?;
        self.connect_in(net, id, ns.as_fd(), ifname, addresses, mac, default_route)
            .await
    }

    /// [`Self::connect`] into the network namespace `ns` (one a container's init has joined,
    /// or will join: the spare shim's, plugged in while the shim creates the container).
    #[allow(clippy::too_many_arguments)]
    pub async fn connect_in(
        &self,
        net: &Net,
        id: &str,
        ns: BorrowedFd<'_>,
        ifname: &str,
        (ip, ip6): (Ipv4Addr, Option<Ipv6Addr>),
        mac: Option<&str>,
        default_route: bool,
    ) -> Result<EndpointRecord, String> {
        let prefix = net.cfg.subnet.prefix_len();
        let gateway = (default_route && !net.cfg.internal).then_some(net.cfg.gateway);
        let prefix6 = net.cfg.subnet6.map(|s| s.prefix_len()).unwrap_or(0);
        let address = Ipv4Net::new(ip, prefix).map_err(|e| e.to_string())?;
        let mut cfg = link::EndpointConfig::new(&net.cfg.bridge, address, gateway);
        cfg.ifname = ifname.to_string();
        cfg.mac = mac.map(parse_mac).transpose()?;
        if let Some(ip6) = ip6 {
            cfg.address6 = Some(Ipv6Net::new(ip6, prefix6).map_err(|e| e.to_string())?);
            cfg.gateway6 = net.cfg.gateway6.filter(|_| gateway.is_some());
        }
        let ep = link::connect(&self.host, ns, &cfg)
            .await
            .map_err(|e| e.to_string())?;
        tracing::debug!(%id, veth = %ep.host_ifname, %ip, "connected to {}", net.cfg.bridge);
        Ok(EndpointRecord {
            network: net.cfg.name.clone(),
            network_id: net.cfg.id.clone(),
            endpoint_id: crate::new_id(),
            host_ifname: ep.host_ifname,
            ifname: ifname.to_string(),
            ip,
            prefix_len: prefix,
            gateway: ep.gateway,
            ip6,
            prefix6: if ip6.is_some() { prefix6 } else { 0 },
            gateway6: ip6.and(cfg.gateway6),
            mac: ipam::format_mac(&ep.mac),
            ports: Vec::new(),
        })
    }

    /// Container `id` exited: its ports and leases go now (blocking: it writes the leases
    /// files). Its veths go with its network namespace: the kernel removes a namespace's
    /// devices, the pair with them, once nothing holds it (after the shim's teardown), in one
    /// batch for the namespaces that die together. A veth still there `VETH_GRACE` later (its
    /// namespace held by something else) is deleted then. Deleting each pair at once took the
    /// kernel's RTNL lock for its RCU grace periods just when the next container's veth was
    /// being made: back-to-back `run --rm` on the bridge went from ~13 to ~30 ms. Leases go
    /// round the subnet, so the address and its MAC (made from it) are not handed out again
    /// meanwhile, except an address or MAC the container asked for (`pinned`: its next start
    /// gets them again) or on a small subnet (fewer than 256 addresses): those veths are
    /// deleted at once, so that no two bridge ports carry the same MAC.
    pub fn release(&self, id: &str, eps: &[EndpointRecord], pinned: bool) {
        self.unpublish(id);
        let nets = self.list();
        for net in &nets {
            self.release_lease(net, id);
        }
        for ep in eps {
            let host = self.host.clone();
            let name = ep.host_ifname.clone();
            let small = nets
                .iter()
                .any(|n| n.cfg.id == ep.network_id && n.cfg.subnet.prefix_len() > 24);
            let grace = !pinned && !small;
            tokio::spawn(async move {
                if grace {
                    tokio::time::sleep(VETH_GRACE).await;
                }
                match link::disconnect(&host, &name).await {
                    Ok(true) if grace => {
                        tracing::debug!("removed {name}, still there after its container")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!("cannot remove {name}: {e}"),
                }
            });
        }
    }

    /// Delete the veth pair of `ep` (made in a namespace the container did not join).
    pub async fn delete_veth(&self, ep: &EndpointRecord) {
        if let Err(e) = link::disconnect(&self.host, &ep.host_ifname).await {
            tracing::warn!(veth = %ep.host_ifname, "cannot delete: {e}");
        }
    }

    /// Unplug one endpoint of a running container (`network disconnect`): its veth is
    /// deleted (the pair goes with it), its ports unpublished, its lease released.
    pub async fn disconnect(&self, id: &str, ep: &EndpointRecord) -> Result<(), String> {
        link::disconnect(&self.host, &ep.host_ifname)
            .await
            .map_err(|e| e.to_string())?;
        if !ep.ports.is_empty() {
            self.unpublish(id);
        }
        if let Some(net) = self.nets().iter().find(|n| n.cfg.id == ep.network_id) {
            self.release_lease(net, id);
        }
        Ok(())
    }

    /// Give the container whose init is `pid` its default route through `ep`'s network (the
    /// endpoint that had it was disconnected). Returns the gateway.
    pub async fn route_through(&self, pid: i32, ep: &EndpointRecord) -> Result<Ipv4Addr, String> {
        let net = self
            .nets()
            .iter()
            .find(|n| n.cfg.id == ep.network_id)
            .cloned()
            .ok_or_else(|| format!("network {} not found", ep.network))?;
        let ns =
            link::open_netns(format!("/proc/{pid}/ns/net").as_ref()).map_err(|e| e.to_string())?;
        let nl = link::Netlink::in_netns(ns.as_fd()).map_err(|e| e.to_string())?;
        let index = nl
            .link(&ep.ifname)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no {} in the container", ep.ifname))?
            .index;
        nl.add_default_route(index, net.cfg.gateway)
            .await
            .map_err(|e| e.to_string())?;
        Ok(net.cfg.gateway)
    }

    fn ports_lock(&self) -> std::sync::MutexGuard<'_, PortTable> {
        self.ports.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrite berth's NAT table from every network and `table` (one atomic batch).
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
        let (masq, iso): (Vec<_>, Vec<_>) = {
            let nets = self.nets();
            (
                nets.iter().filter_map(|n| n.masquerade()).collect(),
                nets.iter().map(|n| n.isolated()).collect(),
            )
        };
        nat::Nat::new()
            .apply_full(&masq, &forwards, &iso)
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
    fn restore_ports(&self, live: &HashMap<String, Vec<EndpointRecord>>) {
        let mut table = self.ports_lock();
        table.by_container.clear();
        for (id, eps) in live {
            let Some(ep) = eps.iter().find(|e| !e.ports.is_empty()) else {
                continue;
            };
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
    /// their records hold), drop the others, and delete each veth on a bridge that no live
    /// container's record names. `live` maps live container ids to their endpoints.
    pub async fn reconcile(&self, live: &HashMap<String, Vec<EndpointRecord>>) {
        for net in self.list() {
            let mut l = net.lock();
            let before = l.clone();
            let dropped = l.retain_owners(|o| o == AUX_OWNER || live.contains_key(o));
            for (ip, owner) in &dropped {
                tracing::info!(network = %net.cfg.name, %ip, %owner, "released the lease of a container that is gone");
            }
            for (id, eps) in live {
                for ep in eps.iter().filter(|e| e.network_id == net.cfg.id) {
                    if l.owner(ep.ip) != Some(id.as_str()) {
                        if let Err(e) = l.request(ep.ip, id) {
                            tracing::warn!(%id, ip = %ep.ip, "cannot lease a live container's address again: {e}");
                        }
                    }
                }
            }
            if *l != before {
                self.save(&net, &l);
            }
            drop(l);
            if let Some(mut l6) = net.lock6() {
                let before = l6.clone();
                l6.retain_owners(|o| live.contains_key(o));
                for (id, eps) in live {
                    for ep in eps.iter().filter(|e| e.network_id == net.cfg.id) {
                        if let Some(ip6) = ep.ip6 {
                            if l6.owner(ip6) != Some(id.as_str()) {
                                let _ = l6.request(ip6, id);
                            }
                        }
                    }
                }
                if *l6 != before {
                    let _ = l6.save_unsynced(&self.leases_dir);
                }
            }
        }
        self.restore_ports(live);
        let owned: HashSet<&str> = live
            .values()
            .flatten()
            .map(|e| e.host_ifname.as_str())
            .collect();
        for net in self.list() {
            let bridge = match self.host.link(&net.cfg.bridge).await {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!("cannot find {}: {e}", net.cfg.bridge);
                    continue;
                }
            };
            let ports = match self.host.bridge_ports(bridge.index).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("cannot list the ports of {}: {e}", net.cfg.bridge);
                    continue;
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

    /// `network create`: check the request (Docker's errors), choose or check the subnet,
    /// save the network, make its bridge, and rewrite the NAT table. Call it holding
    /// [`Self::admin`]. Nothing is left when it fails.
    pub async fn create(&self, req: CreateRequest) -> Result<Arc<Net>, ApiError> {
        if req.name.is_empty() {
            return Err(ApiError::invalid("network name must not be empty"));
        }
        if matches!(req.name.as_str(), NETWORK | "host" | "none") {
            return Err(ApiError::forbidden(format!(
                "operation is not permitted on predefined {} network ",
                req.name
            )));
        }
        if self.nets().iter().any(|n| n.cfg.name == req.name) {
            return Err(ApiError::conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        let in_use: Vec<Ipv4Net> = self.nets().iter().map(|n| n.cfg.subnet).collect();
        let cidr = |s: &str| -> Result<Ipv4Net, ApiError> {
            s.parse::<Ipv4Net>()
                .map_err(|_| ApiError::invalid(format!("invalid CIDR address: {s}")))
        };
        let (subnet, user_subnet) = match req.subnet.as_deref().filter(|s| !s.is_empty()) {
            Some(s) => {
                let net = cidr(s)?;
                if net.addr() != net.network() {
                    return Err(ApiError::invalid(format!(
                        "invalid subnet {s}: it should be {}",
                        net.trunc()
                    )));
                }
                ipam::check_subnet(&net, &in_use).map_err(|_| {
                    ApiError::forbidden("Pool overlaps with other one on this address space")
                })?;
                (net, true)
            }
            None => {
                let ours: Vec<u32> = {
                    let mut v = Vec::new();
                    for n in self.list() {
                        if let Ok(Some(l)) = self.host.link(&n.cfg.bridge).await {
                            v.push(l.index);
                        }
                    }
                    v
                };
                let routes = self
                    .host
                    .host_routes(&ours)
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?;
                let s = ipam::choose_subnet(&self.pools, &in_use, &routes).map_err(|_| {
                    ApiError::forbidden(
                        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network",
                    )
                })?;
                (s, false)
            }
        };
        let ip = |what: &str, s: &str| -> Result<Ipv4Addr, ApiError> {
            s.parse::<Ipv4Addr>()
                .map_err(|_| ApiError::invalid(format!("invalid {what} address: {s}")))
        };
        let gateway = req
            .gateway
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|g| ip("gateway", g))
            .transpose()?;
        if gateway.is_some() && !user_subnet {
            return Err(ApiError::invalid("gateway specified without subnet"));
        }
        let ip_range = req
            .ip_range
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(cidr)
            .transpose()?;
        let mut aux = BTreeMap::new();
        for (k, v) in &req.aux_addresses {
            let a = ip("auxiliary", v)?;
            if !subnet.contains(&a) {
                return Err(ApiError::invalid(format!(
                    "auxiliary address {k}={v} is not in subnet {subnet}"
                )));
            }
            aux.insert(k.clone(), a);
        }
        let id = crate::new_id();
        let mut leases = ipam::NetworkAddresses::new(&id, subnet, gateway, ip_range)
            .map_err(|e| ApiError::invalid(e.to_string()))?;
        let leases6 = if req.enable_ipv6 {
            if !link::ipv6_supported() {
                return Err(ApiError::invalid("IPv6 is not supported by this host"));
            }
            let Some(s6) = req.subnet6.as_deref().filter(|s| !s.is_empty()) else {
                return Err(ApiError::forbidden(
                    "could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network",
                ));
            };
            let sub6 = ipam::parse_subnet6(s6).map_err(|e| ApiError::invalid(e.to_string()))?;
            if self
                .nets()
                .iter()
                .filter_map(|n| n.cfg.subnet6)
                .any(|o| ipam::overlaps6(&o, &sub6))
            {
                return Err(ApiError::forbidden(
                    "Pool overlaps with other one on this address space",
                ));
            }
            let gw6 = req
                .gateway6
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|g| {
                    g.parse::<Ipv6Addr>()
                        .map_err(|_| ApiError::invalid(format!("invalid gateway address: {g}")))
                })
                .transpose()?;
            Some(
                ipam::NetworkAddresses6::new(&id, sub6, gw6)
                    .map_err(|e| ApiError::invalid(e.to_string()))?,
            )
        } else {
            None
        };
        for a in aux.values() {
            let _ = leases.request(*a, AUX_OWNER);
        }
        let bridge = match req.options.get(BRIDGE_NAME_OPTION) {
            Some(b) if !b.is_empty() => {
                link::check_ifname(b).map_err(|e| ApiError::invalid(e.to_string()))?;
                if self.nets().iter().any(|n| n.cfg.bridge == *b) {
                    return Err(ApiError::conflict(format!(
                        "bridge name {b} is used by another network"
                    )));
                }
                b.clone()
            }
            _ => format!("br-{}", &id[..12]),
        };
        let cfg = NetworkConfig {
            id: id.clone(),
            name: req.name.clone(),
            created: chrono::Utc::now(),
            bridge,
            subnet,
            gateway: leases.gateway(),
            ip_range,
            user_subnet,
            user_gateway: gateway.is_some(),
            internal: req.internal,
            attachable: req.attachable,
            enable_ipv6: leases6.is_some(),
            subnet6: leases6.as_ref().map(|l| l.subnet()),
            gateway6: leases6.as_ref().map(|l| l.gateway()),
            labels: req.labels,
            options: req.options,
            aux_addresses: aux,
        };
        let file = config_path(&self.dir, &id);
        let name = cfg.name.clone();
        let fail =
            move |e: String| ApiError::internal(format!("cannot create network {name}: {e}"));
        // The settings first: a crash after this leaves a network the next start sets up.
        let json = serde_json::to_vec_pretty(&cfg).map_err(|e| fail(e.to_string()))?;
        write_atomic(&file, &json).map_err(|e| fail(e.to_string()))?;
        let undo = |this: &Self, e: String| {
            let _ = std::fs::remove_file(&file);
            let _ = ipam::NetworkAddresses::remove_file(&this.leases_dir, &id);
            let _ = ipam::NetworkAddresses6::remove_file(&this.leases_dir, &id);
            fail(e)
        };
        if let Err(e) = leases.save(&self.leases_dir) {
            return Err(undo(self, e.to_string()));
        }
        if let Some(Err(e)) = leases6.as_ref().map(|l| l.save(&self.leases_dir)) {
            return Err(undo(self, e.to_string()));
        }
        let gw = Ipv4Net::new(cfg.gateway, subnet.prefix_len()).expect("a prefix");
        // A bridge this call makes is deleted again if the rest fails; one that was there
        // (a `com.docker.network.bridge.name` of the host's) is left.
        let existed = matches!(self.host.link(&cfg.bridge).await, Ok(Some(_)));
        if let Err(e) = self.host.ensure_bridge(&cfg.bridge, gw).await {
            if !existed {
                let _ = self.host.delete_link(&cfg.bridge).await;
            }
            return Err(undo(self, e.to_string()));
        }
        if let (Some(s6), Some(g6)) = (cfg.subnet6, cfg.gateway6) {
            let gw6 = Ipv6Net::new(g6, s6.prefix_len()).expect("a prefix");
            if let Err(e) = self.host.ensure_bridge6(&cfg.bridge, gw6).await {
                if !existed {
                    let _ = self.host.delete_link(&cfg.bridge).await;
                }
                return Err(undo(self, e.to_string()));
            }
        }
        let net = Arc::new(Net {
            cfg,
            builtin: false,
            leases: Mutex::new(leases),
            leases6: leases6.map(Mutex::new),
        });
        let r = nat::enable_route_localnet(&net.cfg.bridge)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                self.nets
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(net.clone());
                let table = self.ports_lock();
                self.apply_nat(&table)
            });
        if let Err(e) = r {
            self.nets
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|n| n.cfg.id != id);
            if !existed {
                let _ = self.host.delete_link(&net.cfg.bridge).await;
            }
            return Err(undo(self, e));
        }
        docker_user_rules(&self.list());
        tracing::info!(network = %net.cfg.name, bridge = %net.cfg.bridge, %subnet, "network created");
        Ok(net)
    }

    /// `network rm` of a user network that has no endpoint (the caller checks, holding
    /// [`Self::admin`]): its bridge, rules, leases and settings go.
    pub async fn remove(&self, net: &Net) -> Result<(), ApiError> {
        let fail = |e: String| {
            ApiError::internal(format!(
                "error while removing network: {}: {e}",
                net.cfg.name
            ))
        };
        // The bridge before the settings: a failure or a crash in between leaves a network
        // that can be removed again.
        self.host
            .delete_link(&net.cfg.bridge)
            .await
            .map_err(|e| fail(e.to_string()))?;
        self.nets
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|n| n.cfg.id != net.cfg.id);
        {
            let table = self.ports_lock();
            if let Err(e) = self.apply_nat(&table) {
                tracing::error!("cannot rewrite the NAT table: {e}");
            }
        }
        let _ = ipam::NetworkAddresses::remove_file(&self.leases_dir, &net.cfg.id);
        let _ = ipam::NetworkAddresses6::remove_file(&self.leases_dir, &net.cfg.id);
        std::fs::remove_file(config_path(&self.dir, &net.cfg.id))
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .map_err(|e| fail(e.to_string()))?;
        docker_user_rules(&self.list());
        tracing::info!(network = %net.cfg.name, "network removed");
        Ok(())
    }
}

/// Ensure a network's bridge (and its IPv6 gateway) and save its leases.
async fn setup_bridge(host: &link::Netlink, n: &Net, leases_dir: &Path) -> Result<(), ApiError> {
    let what = format!(
        "cannot set up the bridge {} of network {}",
        n.cfg.bridge, n.cfg.name
    );
    let fail = |e: String| err(&what)(e);
    let gw = Ipv4Net::new(n.cfg.gateway, n.cfg.subnet.prefix_len()).expect("a prefix");
    host.ensure_bridge(&n.cfg.bridge, gw)
        .await
        .map_err(|e| fail(e.to_string()))?;
    nat::enable_route_localnet(&n.cfg.bridge).map_err(|e| fail(e.to_string()))?;
    n.lock().save(leases_dir).map_err(|e| fail(e.to_string()))?;
    if let (Some(sub6), Some(gw6)) = (n.cfg.subnet6, n.cfg.gateway6) {
        let gw6 = Ipv6Net::new(gw6, sub6.prefix_len()).expect("a prefix");
        host.ensure_bridge6(&n.cfg.bridge, gw6)
            .await
            .map_err(|e| fail(e.to_string()))?;
        if let Some(l6) = n.lock6() {
            l6.save(leases_dir).map_err(|e| fail(e.to_string()))?;
        }
    }
    Ok(())
}

/// When Docker's firewall is on this host, let the forwarded traffic of the bridges that
/// are not internal through it (`nat::docker_user_rules`); a failure is logged, not fatal.
fn docker_user_rules(nets: &[Arc<Net>]) {
    let bridges: Vec<String> = nets
        .iter()
        .filter(|n| !n.cfg.internal)
        .map(|n| n.cfg.bridge.clone())
        .collect();
    match nat::docker_user_rules(&bridges) {
        Ok(true) => tracing::info!(
            ?bridges,
            "Docker's DOCKER-USER chain lets berth's bridges forward"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!("cannot write berth's rules in Docker's DOCKER-USER chain: {e}"),
    }
}

/// Where a user network's settings live.
fn config_path(network_dir: &Path, id: &str) -> PathBuf {
    network_dir.join("networks").join(format!("{id}.json"))
}

/// The user networks' settings; a file that cannot be read is reported and skipped.
fn load_user_networks(dir: &Path) -> Vec<NetworkConfig> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        match std::fs::read(&p)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<NetworkConfig>(&b).map_err(|e| e.to_string()))
        {
            Ok(c) => out.push(c),
            Err(e) => tracing::error!("cannot load network {}: {e}", p.display()),
        }
    }
    out.sort_by_key(|c| c.created);
    out
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
            ifname: "eth0".into(),
            ip: "172.17.0.2".parse().unwrap(),
            prefix_len: 16,
            gateway: Some("172.17.0.1".parse().unwrap()),
            ip6: Some("fd00::2".parse().unwrap()),
            prefix6: 64,
            gateway6: None,
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
