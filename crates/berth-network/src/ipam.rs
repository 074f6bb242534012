//! IPv4 (and IPv6) address management, with Docker's defaults and Docker's behaviour.
//!
//! Two levels, both pure (no syscalls), so everything here is unit-tested:
//!
//! - **Subnets for networks.** [`default_address_pools`] is dockerd's
//!   `default-address-pools` (172.17.0.0/16 … 172.31.0.0/16 as /16s, then 192.168.0.0/16 as
//!   /20s). [`choose_subnet`] takes the first subnet of the pools that overlaps neither a
//!   network berth already has nor a route of the host (the caller reads the routes, e.g. with
//!   [`crate::link::Netlink::host_routes`]); that is also how the default bridge gets
//!   172.17.0.0/16 when no `bip` is configured. A subnet the user asks for
//!   (`network create --subnet`) is checked with [`check_subnet`] against the other networks
//!   only, as Docker does.
//! - **Addresses in a network.** [`NetworkAddresses`] is one network's allocator and its
//!   leases: the gateway is reserved, the network and broadcast addresses are never handed
//!   out, allocation is sequential from the last address handed out, wrapping around (so a
//!   released address is not reused at once, as with Docker), and an explicit `--ip` is
//!   honoured when free. The daemon owns one per network and persists it as
//!   `<dir>/<network-id>.json` ([`NetworkAddresses::save`], written atomically) after every
//!   change, so a restarted daemon loads the leases ([`NetworkAddresses::load_all`]) and
//!   reconciles them with the containers it finds ([`NetworkAddresses::retain_owners`]).
//! - **IPv6 addresses** (`network create --ipv6 --subnet fd00:db8:1::/64`):
//!   [`NetworkAddresses6`], the same shape without `--ip-range` (subnet given, checked with
//!   [`parse_subnet6`] and [`overlaps6`]; gateway `::1` by default; sequential from the
//!   subnet's first address + 1 with a bounded search), persisted as `<dir>/<network-id>.v6.json`
//!   next to the IPv4 file (which [`NetworkAddresses::load_all`] skips).

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The default bridge's subnet when nothing is configured and nothing collides.
pub const DEFAULT_BRIDGE_SUBNET: Ipv4Net = match Ipv4Net::new(Ipv4Addr::new(172, 17, 0, 0), 16) {
    Ok(n) => n,
    Err(_) => panic!("constant subnet"),
};

/// Errors of address management. Where Docker has a message for the case, this is it.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    /// Not an IPv4 CIDR at all.
    #[error("invalid subnet {0}")]
    InvalidSubnet(String),
    /// A CIDR with host bits set, e.g. `172.20.0.1/16`.
    #[error("invalid subnet {given}: it should be {canonical}")]
    SubnetHostBits { given: String, canonical: Ipv4Net },
    /// A subnet with no room for a gateway and one address (/31, /32).
    #[error("invalid subnet {0}: it is too small for a gateway and an address")]
    SubnetTooSmall(Ipv4Net),
    /// A `bip` that is not `address/prefix` with a host address.
    #[error("invalid bip {0}: it should be an address and a prefix length, e.g. 172.17.0.1/16")]
    InvalidBip(String),
    /// A `default-address-pools` entry whose size is shorter than its base or too long.
    #[error("invalid address pool {base} with size {size}")]
    InvalidPool { base: Ipv4Net, size: u8 },
    /// The gateway is outside the subnet, or is its network or broadcast address.
    #[error("invalid gateway {gateway}: it is not a host address of subnet {subnet}")]
    InvalidGateway { gateway: Ipv4Addr, subnet: Ipv4Net },
    /// An `--ip-range` that is not inside the subnet.
    #[error("invalid ip range {range}: it is not inside subnet {subnet}")]
    InvalidRange { range: Ipv4Net, subnet: Ipv4Net },
    /// A requested subnet overlaps one of another network (Docker's message).
    #[error("Pool overlaps with other one on this address space")]
    PoolOverlap,
    /// Every subnet of the pools is taken or collides with a host route (Docker's message).
    #[error("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")]
    NoPool,
    /// Every address of the network is leased (Docker's message).
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    NoAddress(String),
    /// A requested address is leased already, or is the gateway (Docker's message).
    #[error("Address already in use")]
    AddressInUse(Ipv4Addr),
    /// A requested address outside the subnet.
    #[error("requested address {address} is out of range of subnet {subnet}")]
    OutOfRange { address: Ipv4Addr, subnet: Ipv4Net },
    /// A requested address that is the network's or the broadcast address.
    #[error("requested address {address} is reserved in subnet {subnet}")]
    Reserved { address: Ipv4Addr, subnet: Ipv4Net },
    /// An IPv6 CIDR with host bits set, e.g. `fd00:db8:1::1/64`.
    #[error("invalid subnet {given}: it should be {canonical}")]
    SubnetHostBits6 { given: String, canonical: Ipv6Net },
    /// An IPv6 subnet with no room for a gateway and one address (/127, /128).
    #[error("invalid subnet {0}: it is too small for a gateway and an address")]
    SubnetTooSmall6(Ipv6Net),
    /// The IPv6 gateway is outside the subnet, or is its subnet-router address.
    #[error("invalid gateway {gateway}: it is not a host address of subnet {subnet}")]
    InvalidGateway6 { gateway: Ipv6Addr, subnet: Ipv6Net },
    /// Every IPv6 address of the network that may be searched is leased.
    #[error("no available IPv6 addresses on this network's address pools: {0}")]
    NoAddress6(String),
    /// A requested IPv6 address is leased already, or is the gateway (Docker's message).
    #[error("Address already in use")]
    AddressInUse6(Ipv6Addr),
    /// A requested IPv6 address outside the subnet.
    #[error("requested address {address} is out of range of subnet {subnet}")]
    OutOfRange6 { address: Ipv6Addr, subnet: Ipv6Net },
    /// A requested IPv6 address that is the subnet's (subnet-router anycast) address.
    #[error("requested address {address} is reserved in subnet {subnet}")]
    Reserved6 { address: Ipv6Addr, subnet: Ipv6Net },
    /// A network id that cannot name a file.
    #[error("invalid network id {0:?}")]
    InvalidId(String),
    /// Reading or writing the leases file.
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// A leases file that is not what [`NetworkAddresses::save`] writes.
    #[error("corrupt leases file {path}: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Parse an IPv4 subnet in CIDR form; host bits must be zero (as `docker network create`).
pub fn parse_subnet(s: &str) -> Result<Ipv4Net, IpamError> {
    let net: Ipv4Net = s
        .trim()
        .parse()
        .map_err(|_| IpamError::InvalidSubnet(s.to_string()))?;
    if net.addr() != net.network() {
        return Err(IpamError::SubnetHostBits {
            given: s.to_string(),
            canonical: net.trunc(),
        });
    }
    Ok(net)
}

/// Parse an IPv6 subnet in CIDR form (`fd00:db8:1::/64`); host bits must be zero.
pub fn parse_subnet6(s: &str) -> Result<Ipv6Net, IpamError> {
    let net: Ipv6Net = s
        .trim()
        .parse()
        .map_err(|_| IpamError::InvalidSubnet(s.to_string()))?;
    if net.addr() != net.network() {
        return Err(IpamError::SubnetHostBits6 {
            given: s.to_string(),
            canonical: net.trunc(),
        });
    }
    Ok(net)
}

/// Whether two IPv6 subnets share an address.
pub fn overlaps6(a: &Ipv6Net, b: &Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Parse dockerd's `bip` (`172.17.0.1/16`): the bridge's (gateway's) address and its subnet.
pub fn parse_bip(s: &str) -> Result<(Ipv4Addr, Ipv4Net), IpamError> {
    let net: Ipv4Net = s
        .trim()
        .parse()
        .map_err(|_| IpamError::InvalidBip(s.to_string()))?;
    let subnet = net.trunc();
    if net.prefix_len() > 30 || net.addr() == subnet.network() || net.addr() == subnet.broadcast() {
        return Err(IpamError::InvalidBip(s.to_string()));
    }
    Ok((net.addr(), subnet))
}

/// Whether two subnets share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// One entry of `default-address-pools`: subnets of prefix length `size` carved from `base`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    pub base: Ipv4Net,
    pub size: u8,
}

impl AddressPool {
    /// A pool; `size` must be at least the base's prefix length and at most 30.
    pub fn new(base: Ipv4Net, size: u8) -> Result<Self, IpamError> {
        if size < base.prefix_len() || size > 30 || base.addr() != base.network() {
            return Err(IpamError::InvalidPool { base, size });
        }
        Ok(Self { base, size })
    }

    /// The pool's subnets, in address order.
    pub fn subnets(&self) -> impl Iterator<Item = Ipv4Net> + '_ {
        // `new` checked size >= prefix_len, so this cannot fail; an invalid pool built by
        // hand (the fields are public for serde) yields nothing.
        self.base.subnets(self.size).into_iter().flatten()
    }
}

/// dockerd's default `default-address-pools`.
pub fn default_address_pools() -> Vec<AddressPool> {
    let mut pools: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool {
            base: Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("valid prefix"),
            size: 16,
        })
        .collect();
    pools.push(AddressPool {
        base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("valid prefix"),
        size: 20,
    });
    pools
}

/// The first subnet of `pools` that overlaps neither a subnet in `in_use` (the networks that
/// exist) nor a route of the host in `host_routes` (default routes excluded by the caller, as
/// Docker does: they would overlap everything).
pub fn choose_subnet(
    pools: &[AddressPool],
    in_use: &[Ipv4Net],
    host_routes: &[Ipv4Net],
) -> Result<Ipv4Net, IpamError> {
    pools
        .iter()
        .flat_map(|p| p.subnets())
        .find(|s| !in_use.iter().chain(host_routes).any(|u| overlaps(s, u)))
        .ok_or(IpamError::NoPool)
}

/// Check a subnet the user asked for against the existing networks' subnets.
pub fn check_subnet(requested: &Ipv4Net, in_use: &[Ipv4Net]) -> Result<(), IpamError> {
    if in_use.iter().any(|u| overlaps(requested, u)) {
        return Err(IpamError::PoolOverlap);
    }
    Ok(())
}

/// The MAC address Docker derives from a container's IPv4 address: `02:42` then the four
/// bytes of the address (`02:42:ac:11:00:02` for 172.17.0.2).
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A MAC address as Docker prints it (`02:42:ac:11:00:02`).
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Leased address → owner (the endpoint or container id), for either address family;
/// serialized as the plain map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
struct Leases<A: Ord>(BTreeMap<A, String>);

impl<A: Ord> Default for Leases<A> {
    fn default() -> Self {
        Leases(BTreeMap::new())
    }
}

impl<A: Ord + Copy> Leases<A> {
    fn iter(&self) -> impl Iterator<Item = (A, &str)> {
        self.0.iter().map(|(a, o)| (*a, o.as_str()))
    }

    fn owner(&self, ip: A) -> Option<&str> {
        self.0.get(&ip).map(String::as_str)
    }

    fn addresses_of(&self, owner: &str) -> Vec<A> {
        self.iter()
            .filter(|(_, o)| *o == owner)
            .map(|(a, _)| a)
            .collect()
    }

    fn taken(&self, ip: A) -> bool {
        self.0.contains_key(&ip)
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn insert(&mut self, ip: A, owner: &str) {
        self.0.insert(ip, owner.to_string());
    }

    fn release(&mut self, ip: A) -> Option<String> {
        self.0.remove(&ip)
    }

    fn release_owner(&mut self, owner: &str) -> Vec<A> {
        let gone = self.addresses_of(owner);
        for ip in &gone {
            self.0.remove(ip);
        }
        gone
    }

    fn retain_owners(&mut self, mut keep: impl FnMut(&str) -> bool) -> Vec<(A, String)> {
        let mut dropped = Vec::new();
        self.0.retain(|ip, owner| {
            let k = keep(owner);
            if !k {
                dropped.push((*ip, owner.clone()));
            }
            k
        });
        dropped
    }
}

/// One network's addresses: its subnet, gateway, optional `--ip-range`, and the leases.
///
/// The daemon owns one per network (behind its own lock), calls [`Self::save`] after each
/// change, and loads them all at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAddresses {
    /// The network's id; also the file name.
    network: String,
    subnet: Ipv4Net,
    gateway: Ipv4Addr,
    /// Where automatic allocation draws from (`--ip-range`); the whole subnet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    range: Option<Ipv4Net>,
    /// The last address handed out automatically; the next search starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Ipv4Addr>,
    /// Leased address → owner (the endpoint or container id).
    #[serde(default)]
    leases: Leases<Ipv4Addr>,
}

fn check_id(id: &str) -> Result<(), IpamError> {
    if id.is_empty()
        || id.starts_with('.')
        || id.len() > 128
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Err(IpamError::InvalidId(id.to_string()));
    }
    Ok(())
}

fn host_address(ip: Ipv4Addr, subnet: &Ipv4Net) -> bool {
    subnet.contains(&ip) && ip != subnet.network() && ip != subnet.broadcast()
}

impl NetworkAddresses {
    /// A network's allocator. `gateway` defaults to the subnet's first host address (Docker's
    /// `.1`); `range` (`--ip-range`) must lie inside the subnet.
    pub fn new(
        network: &str,
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        range: Option<Ipv4Net>,
    ) -> Result<Self, IpamError> {
        check_id(network)?;
        if subnet.addr() != subnet.network() {
            return Err(IpamError::SubnetHostBits {
                given: subnet.to_string(),
                canonical: subnet.trunc(),
            });
        }
        if subnet.prefix_len() > 30 {
            return Err(IpamError::SubnetTooSmall(subnet));
        }
        let gateway = gateway.unwrap_or_else(|| u32_ip(u32::from(subnet.network()) + 1));
        if !host_address(gateway, &subnet) {
            return Err(IpamError::InvalidGateway { gateway, subnet });
        }
        if let Some(r) = range {
            if r.addr() != r.network() {
                return Err(IpamError::SubnetHostBits {
                    given: r.to_string(),
                    canonical: r.trunc(),
                });
            }
            if !subnet.contains(&r) {
                return Err(IpamError::InvalidRange { range: r, subnet });
            }
        }
        Ok(Self {
            network: network.to_string(),
            subnet,
            gateway,
            range,
            last: None,
            leases: Leases::default(),
        })
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    pub fn subnet(&self) -> Ipv4Net {
        self.subnet
    }

    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    pub fn range(&self) -> Option<Ipv4Net> {
        self.range
    }

    /// The leases, in address order: (address, owner).
    pub fn leases(&self) -> impl Iterator<Item = (Ipv4Addr, &str)> {
        self.leases.iter()
    }

    /// The owner of a leased address.
    pub fn owner(&self, ip: Ipv4Addr) -> Option<&str> {
        self.leases.owner(ip)
    }

    /// The addresses leased to `owner`.
    pub fn addresses_of(&self, owner: &str) -> Vec<Ipv4Addr> {
        self.leases.addresses_of(owner)
    }

    /// The bounds (inclusive, as integers) of automatic allocation: the range (or subnet)
    /// without the subnet's network and broadcast addresses.
    fn bounds(&self) -> (u32, u32) {
        let pool = self.range.unwrap_or(self.subnet);
        let lo = u32::from(pool.network()).max(u32::from(self.subnet.network()) + 1);
        let hi = u32::from(pool.broadcast()).min(u32::from(self.subnet.broadcast()) - 1);
        (lo, hi)
    }

    fn free(&self, ip: Ipv4Addr) -> bool {
        ip != self.gateway && !self.leases.taken(ip)
    }

    /// Lease the next free address after the last one handed out (wrapping around) to `owner`.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv4Addr, IpamError> {
        let (lo, hi) = self.bounds();
        if lo > hi {
            return Err(IpamError::NoAddress(self.network.clone()));
        }
        let count = u64::from(hi - lo) + 1;
        let start = match self.last.map(u32::from) {
            Some(l) if l >= lo && l < hi => l + 1,
            _ => lo,
        };
        for i in 0..count {
            // `start - lo + i` < 2 * count, and the result is back in [lo, hi].
            let off = (u64::from(start - lo) + i) % count;
            let ip = u32_ip(lo + off as u32);
            if self.free(ip) {
                self.leases.insert(ip, owner);
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(IpamError::NoAddress(self.network.clone()))
    }

    /// Lease a given address (`--ip`) to `owner`. It may lie outside `--ip-range` but must be a
    /// host address of the subnet, and neither the gateway nor leased.
    pub fn request(&mut self, ip: Ipv4Addr, owner: &str) -> Result<(), IpamError> {
        if !self.subnet.contains(&ip) {
            return Err(IpamError::OutOfRange {
                address: ip,
                subnet: self.subnet,
            });
        }
        if !host_address(ip, &self.subnet) {
            return Err(IpamError::Reserved {
                address: ip,
                subnet: self.subnet,
            });
        }
        if !self.free(ip) {
            return Err(IpamError::AddressInUse(ip));
        }
        self.leases.insert(ip, owner);
        Ok(())
    }

    /// Release a lease; returns its owner, or `None` when the address was not leased.
    pub fn release(&mut self, ip: Ipv4Addr) -> Option<String> {
        self.leases.release(ip)
    }

    /// Release every lease of `owner`; returns the addresses released.
    pub fn release_owner(&mut self, owner: &str) -> Vec<Ipv4Addr> {
        self.leases.release_owner(owner)
    }

    /// Keep only the leases whose owner passes `keep` (after a restart: the containers that
    /// still exist); returns the leases dropped.
    pub fn retain_owners(&mut self, keep: impl FnMut(&str) -> bool) -> Vec<(Ipv4Addr, String)> {
        self.leases.retain_owners(keep)
    }

    /// The leases file of network `id` in `dir`.
    pub fn path(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}.json"))
    }

    /// Write `<dir>/<network>.json` atomically (a temporary file in `dir`, fsynced, renamed).
    pub fn save(&self, dir: &Path) -> Result<(), IpamError> {
        self.write(dir, true)
    }

    /// [`Self::save`] without the fsync, and in place when the file exists (see `write_json`):
    /// a crash of the process may leave the file torn (unparsable), a power loss old or torn.
    /// For a caller that rebuilds the leases of its live endpoints anyway (the daemon
    /// re-leases what its container records hold): no disk flush, no new inode per change.
    pub fn save_unsynced(&self, dir: &Path) -> Result<(), IpamError> {
        self.write(dir, false)
    }

    fn write(&self, dir: &Path, sync: bool) -> Result<(), IpamError> {
        write_json(dir, &Self::path(dir, &self.network), self, sync)
    }

    /// Read network `id`'s leases from `dir`; `None` when it has no file.
    pub fn load(dir: &Path, id: &str) -> Result<Option<Self>, IpamError> {
        check_id(id)?;
        read_json(Self::path(dir, id))
    }

    /// Read every network's leases from `dir` (empty when `dir` does not exist), in file name
    /// order. Temporary files left by a crash are removed; a file that does not parse (torn by
    /// a crash) is skipped.
    pub fn load_all(dir: &Path) -> Result<Vec<Self>, IpamError> {
        // `<id>.json`, but not a network's IPv6 leases (`<id>.v6.json`).
        let ids = network_ids(dir, |name| {
            if name.ends_with(V6_SUFFIX) {
                None
            } else {
                name.strip_suffix(".json")
            }
        })?;
        load_each(dir, ids, Self::load)
    }

    /// Remove network `id`'s leases file (when the network is removed); absent is fine.
    pub fn remove_file(dir: &Path, id: &str) -> Result<(), IpamError> {
        check_id(id)?;
        remove_leases_file(Self::path(dir, id))
    }
}

/// The end of an IPv6 leases file's name: `<network-id>.v6.json`.
const V6_SUFFIX: &str = ".v6.json";

/// One network's IPv6 addresses (`network create --ipv6 --subnet fd00:db8:1::/64`): its
/// subnet, gateway and leases. The same shape as [`NetworkAddresses`], persisted next to it as
/// `<dir>/<network-id>.v6.json` ([`NetworkAddresses::load_all`] skips those files).
///
/// The subnet's own address (the subnet-router anycast address) is never handed out; there is
/// no broadcast address in IPv6, so the last address of the subnet is a host address (as
/// Docker). Allocation is sequential from the subnet's first address + 1 upward, skipping the
/// gateway and leased addresses, and goes on after the last address handed out, wrapping
/// around. A search never looks at more than `leases + 2` candidates (one of them is free
/// whenever the subnet has room), so a /64 costs no more than a /120.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkAddresses6 {
    /// The network's id; also the file name.
    network: String,
    subnet: Ipv6Net,
    gateway: Ipv6Addr,
    /// The last address handed out automatically; the next search starts after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<Ipv6Addr>,
    /// Leased address → owner (the endpoint or container id).
    #[serde(default)]
    leases: Leases<Ipv6Addr>,
}

fn host_address6(ip: Ipv6Addr, subnet: &Ipv6Net) -> bool {
    subnet.contains(&ip) && ip != subnet.network()
}

impl NetworkAddresses6 {
    /// A network's IPv6 allocator. `subnet` must have no host bits set and a prefix length
    /// of at most 126; `gateway` defaults to the subnet's first address + 1
    /// (`fd00:db8:1::1`) and must be a host address of the subnet.
    pub fn new(
        network: &str,
        subnet: Ipv6Net,
        gateway: Option<Ipv6Addr>,
    ) -> Result<Self, IpamError> {
        check_id(network)?;
        if subnet.addr() != subnet.network() {
            return Err(IpamError::SubnetHostBits6 {
                given: subnet.to_string(),
                canonical: subnet.trunc(),
            });
        }
        if subnet.prefix_len() > 126 {
            return Err(IpamError::SubnetTooSmall6(subnet));
        }
        let gateway = gateway.unwrap_or_else(|| Ipv6Addr::from(u128::from(subnet.network()) + 1));
        if !host_address6(gateway, &subnet) {
            return Err(IpamError::InvalidGateway6 { gateway, subnet });
        }
        Ok(Self {
            network: network.to_string(),
            subnet,
            gateway,
            last: None,
            leases: Leases::default(),
        })
    }

    pub fn network(&self) -> &str {
        &self.network
    }

    pub fn subnet(&self) -> Ipv6Net {
        self.subnet
    }

    pub fn gateway(&self) -> Ipv6Addr {
        self.gateway
    }

    /// The leases, in address order: (address, owner).
    pub fn leases(&self) -> impl Iterator<Item = (Ipv6Addr, &str)> {
        self.leases.iter()
    }

    /// The owner of a leased address.
    pub fn owner(&self, ip: Ipv6Addr) -> Option<&str> {
        self.leases.owner(ip)
    }

    /// The addresses leased to `owner`.
    pub fn addresses_of(&self, owner: &str) -> Vec<Ipv6Addr> {
        self.leases.addresses_of(owner)
    }

    fn free(&self, ip: Ipv6Addr) -> bool {
        ip != self.gateway && !self.leases.taken(ip)
    }

    /// Lease the next free address after the last one handed out (wrapping around) to `owner`.
    pub fn allocate(&mut self, owner: &str) -> Result<Ipv6Addr, IpamError> {
        let lo = u128::from(self.subnet.network()) + 1;
        let hi = u128::from(self.subnet.broadcast());
        // `new` checked the prefix length (<= 126), so hi > lo; `count` is at most 2^128 - 1.
        let count = hi - lo + 1;
        let start = match self.last.map(u128::from) {
            Some(l) if l >= lo && l < hi => l + 1,
            _ => lo,
        };
        let off = start - lo;
        // At most leases + 1 (the gateway) addresses are taken, so among leases + 2
        // consecutive candidates one is free, unless the subnet is full.
        let tries = count.min(self.leases.len() as u128 + 2);
        for i in 0..tries {
            // (off + i) mod count, without overflowing.
            let rem = count - off;
            let o = if i < rem { off + i } else { i - rem };
            let ip = Ipv6Addr::from(lo + o);
            if self.free(ip) {
                self.leases.insert(ip, owner);
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(IpamError::NoAddress6(self.network.clone()))
    }

    /// Lease a given address (`--ip6`) to `owner`. It must be in the subnet, not the subnet's
    /// own address, and neither the gateway nor leased.
    pub fn request(&mut self, ip: Ipv6Addr, owner: &str) -> Result<(), IpamError> {
        if !self.subnet.contains(&ip) {
            return Err(IpamError::OutOfRange6 {
                address: ip,
                subnet: self.subnet,
            });
        }
        if !host_address6(ip, &self.subnet) {
            return Err(IpamError::Reserved6 {
                address: ip,
                subnet: self.subnet,
            });
        }
        if !self.free(ip) {
            return Err(IpamError::AddressInUse6(ip));
        }
        self.leases.insert(ip, owner);
        Ok(())
    }

    /// Release a lease; returns its owner, or `None` when the address was not leased.
    pub fn release(&mut self, ip: Ipv6Addr) -> Option<String> {
        self.leases.release(ip)
    }

    /// Release every lease of `owner`; returns the addresses released.
    pub fn release_owner(&mut self, owner: &str) -> Vec<Ipv6Addr> {
        self.leases.release_owner(owner)
    }

    /// Keep only the leases whose owner passes `keep`; returns the leases dropped.
    pub fn retain_owners(&mut self, keep: impl FnMut(&str) -> bool) -> Vec<(Ipv6Addr, String)> {
        self.leases.retain_owners(keep)
    }

    /// The IPv6 leases file of network `id` in `dir`: `<dir>/<id>.v6.json`.
    pub fn path(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}{V6_SUFFIX}"))
    }

    /// Write `<dir>/<network>.v6.json` atomically (a temporary file in `dir`, fsynced,
    /// renamed).
    pub fn save(&self, dir: &Path) -> Result<(), IpamError> {
        write_json(dir, &Self::path(dir, &self.network), self, true)
    }

    /// [`Self::save`] without the fsync (see [`NetworkAddresses::save_unsynced`]).
    pub fn save_unsynced(&self, dir: &Path) -> Result<(), IpamError> {
        write_json(dir, &Self::path(dir, &self.network), self, false)
    }

    /// Read network `id`'s IPv6 leases from `dir`; `None` when it has no file.
    pub fn load(dir: &Path, id: &str) -> Result<Option<Self>, IpamError> {
        check_id(id)?;
        read_json(Self::path(dir, id))
    }

    /// Read every network's IPv6 leases from `dir` (empty when `dir` does not exist), in file
    /// name order. Temporary files left by a crash are removed.
    pub fn load_all(dir: &Path) -> Result<Vec<Self>, IpamError> {
        let ids = network_ids(dir, |name| name.strip_suffix(V6_SUFFIX))?;
        load_each(dir, ids, Self::load)
    }

    /// Remove network `id`'s IPv6 leases file; absent is fine.
    pub fn remove_file(dir: &Path, id: &str) -> Result<(), IpamError> {
        check_id(id)?;
        remove_leases_file(Self::path(dir, id))
    }
}

/// The network ids of the leases files in `dir` that `id_of` recognises (it returns the id
/// of a file name), sorted; empty when `dir` does not exist. Temporary files a crash left
/// (`.leases*`) are removed.
fn network_ids(dir: &Path, id_of: impl Fn(&str) -> Option<&str>) -> Result<Vec<String>, IpamError> {
    let io = |op, source| IpamError::Io {
        op,
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io("read directory", e)),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| io("read directory", e))?.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(".leases") {
            let _ = std::fs::remove_file(dir.join(name));
        } else if let Some(id) = id_of(name) {
            ids.push(id.to_string());
        }
    }
    ids.sort();
    Ok(ids)
}

/// `load` each of `ids` from `dir`, skipping files gone meanwhile.
fn load_each<T>(
    dir: &Path,
    ids: Vec<String>,
    load: impl Fn(&Path, &str) -> Result<Option<T>, IpamError>,
) -> Result<Vec<T>, IpamError> {
    let mut all = Vec::new();
    for id in ids {
        match load(dir, &id) {
            Ok(Some(n)) => all.push(n),
            Ok(None) => {}
            // A file torn by a crash (written in place): that network's leases start again.
            Err(IpamError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}

/// Remove a leases file; absent is fine.
fn remove_leases_file(path: PathBuf) -> Result<(), IpamError> {
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(IpamError::Io {
            op: "remove",
            path,
            source,
        }),
    }
}

/// How much longer than its new contents a leases file written in place may stay (padded
/// with spaces) before it is cut to size.
const SHRINK_SLACK: u64 = 64 << 10;

/// Write `value` as JSON to `path` (in `dir`). Durably (`sync`): atomically, a temporary
/// `.leases*` file in `dir`, fsynced and renamed over `path`. Otherwise (the leases that
/// change at each start and exit, which the containers' records override at start-up) in
/// place when the file exists: one write at offset 0, padded with spaces (JSON's whitespace)
/// over a longer old content, so that no new inode is made and no block freed. On ext4
/// without a journal both cost: every freed block a synchronous discard where the disk is
/// mounted with `discard`, every new inode a scan past the recently deleted ones. A write
/// torn by a crash leaves a file that does not parse, which start-up replaces. Writers of one
/// file must not run at once (the daemon holds the network's lock): in place, two writes of
/// different lengths could leave one's tail after the other. A file far longer than its new
/// contents is replaced by the rename instead (cutting it after the write could tear it).
fn write_json<T: Serialize>(
    dir: &Path,
    path: &Path,
    value: &T,
    sync: bool,
) -> Result<(), IpamError> {
    let io = |op, source| IpamError::Io {
        op,
        path: path.to_path_buf(),
        source,
    };
    let mut data = serde_json::to_vec_pretty(value).expect("leases serialize");
    if !sync {
        match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(f) => {
                use std::os::unix::fs::FileExt;
                let old = f.metadata().map_err(|e| io("stat", e))?.len();
                let new = data.len() as u64;
                if old <= new + SHRINK_SLACK {
                    if old > new {
                        data.resize(old as usize, b' ');
                    }
                    f.write_all_at(&data, 0).map_err(|e| io("write", e))?;
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("open", e)),
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".leases")
        .tempfile_in(dir)
        .map_err(|e| io("create a temporary file for", e))?;
    tmp.write_all(&data).map_err(|e| io("write", e))?;
    if sync {
        tmp.as_file().sync_all().map_err(|e| io("sync", e))?;
    }
    tmp.persist(path).map_err(|e| io("rename into", e.error))?;
    Ok(())
}

/// Read the JSON file `path`; `None` when it does not exist.
fn read_json<T: serde::de::DeserializeOwned>(path: PathBuf) -> Result<Option<T>, IpamError> {
    let data = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(IpamError::Io {
                op: "read",
                path,
                source,
            })
        }
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|source| IpamError::Corrupt { path, source })
}

fn u32_ip(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_subnets() {
        assert_eq!(parse_subnet("10.1.0.0/16").unwrap(), net("10.1.0.0/16"));
        let e = parse_subnet("172.20.0.1/16").unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid subnet 172.20.0.1/16: it should be 172.20.0.0/16"
        );
        assert_eq!(
            parse_subnet("nope").unwrap_err().to_string(),
            "invalid subnet nope"
        );
        assert!(parse_subnet("10.0.0.0/33").is_err());
        assert!(parse_subnet("fd00::/64").is_err());
    }

    #[test]
    fn parse_bips() {
        assert_eq!(
            parse_bip("172.17.0.1/16").unwrap(),
            (ip("172.17.0.1"), net("172.17.0.0/16"))
        );
        assert_eq!(
            parse_bip("10.9.8.7/24").unwrap(),
            (ip("10.9.8.7"), net("10.9.8.0/24"))
        );
        assert!(parse_bip("172.17.0.0/16").is_err());
        assert!(parse_bip("172.17.255.255/16").is_err());
        assert!(parse_bip("172.17.0.1/31").is_err());
        assert!(parse_bip("172.17.0.1").is_err());
    }

    #[test]
    fn default_pools_are_dockers() {
        let pools = default_address_pools();
        assert_eq!(pools.len(), 16);
        assert_eq!(
            pools[0],
            AddressPool::new(net("172.17.0.0/16"), 16).unwrap()
        );
        assert_eq!(
            pools[14],
            AddressPool::new(net("172.31.0.0/16"), 16).unwrap()
        );
        assert_eq!(
            pools[15],
            AddressPool::new(net("192.168.0.0/16"), 20).unwrap()
        );
        let all: Vec<_> = pools.iter().flat_map(|p| p.subnets()).collect();
        assert_eq!(all.len(), 15 + 16);
        assert_eq!(all[15], net("192.168.0.0/20"));
        assert_eq!(all[16], net("192.168.16.0/20"));
        assert_eq!(*all.last().unwrap(), net("192.168.240.0/20"));
        assert!(AddressPool::new(net("10.0.0.0/8"), 7).is_err());
        assert!(AddressPool::new(net("10.0.0.0/8"), 31).is_err());
        assert!(AddressPool::new(net("10.0.0.1/8"), 16).is_err());
    }

    #[test]
    fn choose_skips_networks_and_host_routes() {
        let pools = default_address_pools();
        assert_eq!(
            choose_subnet(&pools, &[], &[]).unwrap(),
            DEFAULT_BRIDGE_SUBNET
        );
        // The default bridge takes 172.17; the first user network gets 172.18.
        assert_eq!(
            choose_subnet(&pools, &[net("172.17.0.0/16")], &[]).unwrap(),
            net("172.18.0.0/16")
        );
        // A host route inside 172.18 (a VPN, a LAN) skips it; one covering several skips them all.
        assert_eq!(
            choose_subnet(&pools, &[net("172.17.0.0/16")], &[net("172.18.5.0/24")]).unwrap(),
            net("172.19.0.0/16")
        );
        assert_eq!(
            choose_subnet(&pools, &[], &[net("172.16.0.0/12")]).unwrap(),
            net("192.168.0.0/20")
        );
        // A LAN on 192.168.1.0/24 skips only the /20 that holds it.
        assert_eq!(
            choose_subnet(&pools, &[net("172.16.0.0/12")], &[net("192.168.1.0/24")]).unwrap(),
            net("192.168.16.0/20")
        );
        let everything = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        let e = choose_subnet(&pools, &everything, &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
        );
        // Configured pools are used as given.
        let custom = [AddressPool::new(net("10.10.0.0/16"), 24).unwrap()];
        assert_eq!(
            choose_subnet(&custom, &[net("10.10.0.0/24")], &[]).unwrap(),
            net("10.10.1.0/24")
        );
    }

    #[test]
    fn explicit_subnets_must_not_overlap() {
        let in_use = [net("172.17.0.0/16"), net("10.1.0.0/24")];
        check_subnet(&net("10.2.0.0/16"), &in_use).unwrap();
        let e = check_subnet(&net("10.0.0.0/8"), &in_use).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Pool overlaps with other one on this address space"
        );
        assert!(check_subnet(&net("172.17.3.0/24"), &in_use).is_err());
    }

    #[test]
    fn macs_come_from_addresses() {
        assert_eq!(format_mac(&mac_for(ip("172.17.0.2"))), "02:42:ac:11:00:02");
        assert_eq!(
            format_mac(&mac_for(ip("192.168.16.255"))),
            "02:42:c0:a8:10:ff"
        );
    }

    #[test]
    fn new_validates() {
        let n = NetworkAddresses::new("bridge", net("172.17.0.0/16"), None, None).unwrap();
        assert_eq!(n.gateway(), ip("172.17.0.1"));
        let e =
            NetworkAddresses::new("n", net("10.0.0.0/24"), Some(ip("10.0.1.1")), None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid gateway 10.0.1.1: it is not a host address of subnet 10.0.0.0/24"
        );
        assert!(
            NetworkAddresses::new("n", net("10.0.0.0/24"), Some(ip("10.0.0.255")), None).is_err()
        );
        assert!(
            NetworkAddresses::new("n", net("10.0.0.0/24"), Some(ip("10.0.0.0")), None).is_err()
        );
        assert!(NetworkAddresses::new("n", net("10.0.0.0/31"), None, None).is_err());
        assert!(
            NetworkAddresses::new("n", net("10.0.0.0/24"), None, Some(net("10.0.1.0/28"))).is_err()
        );
        assert!(NetworkAddresses::new("../x", net("10.0.0.0/24"), None, None).is_err());
        assert!(NetworkAddresses::new("", net("10.0.0.0/24"), None, None).is_err());
        assert!(NetworkAddresses::new("a/b", net("10.0.0.0/24"), None, None).is_err());
    }

    #[test]
    fn sequential_allocation_wraps_and_skips() {
        let mut n = NetworkAddresses::new("n", net("10.0.0.0/29"), None, None).unwrap();
        // .0 network, .1 gateway, .7 broadcast: .2 to .6 are handed out.
        let got: Vec<_> = (0..5)
            .map(|i| n.allocate(&format!("c{i}")).unwrap())
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
        );
        let e = n.allocate("c5").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no available IPv4 addresses on this network's address pools: n"
        );
        // Released addresses come back only after the search wraps around.
        assert_eq!(n.release(ip("10.0.0.3")).as_deref(), Some("c1"));
        assert_eq!(n.release(ip("10.0.0.5")).as_deref(), Some("c3"));
        assert_eq!(n.release(ip("10.0.0.5")), None);
        assert_eq!(n.allocate("x").unwrap(), ip("10.0.0.3"));
        assert_eq!(n.allocate("y").unwrap(), ip("10.0.0.5"));
        // Released before the last one: the next allocation goes past it first.
        let mut n = NetworkAddresses::new("n", net("172.17.0.0/16"), None, None).unwrap();
        let a = n.allocate("a").unwrap();
        assert_eq!(a, ip("172.17.0.2"));
        n.release(a);
        assert_eq!(n.allocate("b").unwrap(), ip("172.17.0.3"));
    }

    #[test]
    fn gateway_anywhere_is_skipped() {
        let mut n =
            NetworkAddresses::new("n", net("10.0.0.0/29"), Some(ip("10.0.0.3")), None).unwrap();
        let got: Vec<_> = (0..5).map(|_| n.allocate("c").unwrap()).collect();
        assert_eq!(
            got,
            ["10.0.0.1", "10.0.0.2", "10.0.0.4", "10.0.0.5", "10.0.0.6"].map(ip)
        );
        assert_eq!(n.addresses_of("c").len(), 5);
    }

    #[test]
    fn ip_range_limits_automatic_allocation() {
        let mut n =
            NetworkAddresses::new("n", net("10.0.0.0/24"), None, Some(net("10.0.0.128/30")))
                .unwrap();
        let got: Vec<_> = (0..4).map(|_| n.allocate("c").unwrap()).collect();
        assert_eq!(
            got,
            ["10.0.0.128", "10.0.0.129", "10.0.0.130", "10.0.0.131"].map(ip)
        );
        assert!(n.allocate("c").is_err());
        // An explicit address outside the range but inside the subnet is fine.
        n.request(ip("10.0.0.9"), "d").unwrap();
        // A range at the start of the subnet never hands out the network address.
        let mut n = NetworkAddresses::new(
            "n",
            net("10.0.0.0/24"),
            Some(ip("10.0.0.254")),
            Some(net("10.0.0.0/30")),
        )
        .unwrap();
        let got: Vec<_> = (0..3).map(|_| n.allocate("c").unwrap()).collect();
        assert_eq!(got, ["10.0.0.1", "10.0.0.2", "10.0.0.3"].map(ip));
    }

    #[test]
    fn explicit_requests() {
        let mut n = NetworkAddresses::new("n", net("172.18.0.0/16"), None, None).unwrap();
        n.request(ip("172.18.0.2"), "a").unwrap();
        assert_eq!(
            n.request(ip("172.18.0.2"), "b").unwrap_err().to_string(),
            "Address already in use"
        );
        assert!(matches!(
            n.request(ip("172.18.0.1"), "b"),
            Err(IpamError::AddressInUse(_))
        ));
        assert_eq!(
            n.request(ip("10.0.0.2"), "b").unwrap_err().to_string(),
            "requested address 10.0.0.2 is out of range of subnet 172.18.0.0/16"
        );
        assert!(matches!(
            n.request(ip("172.18.0.0"), "b"),
            Err(IpamError::Reserved { .. })
        ));
        assert!(matches!(
            n.request(ip("172.18.255.255"), "b"),
            Err(IpamError::Reserved { .. })
        ));
        // Automatic allocation goes around explicit leases.
        assert_eq!(n.allocate("c").unwrap(), ip("172.18.0.3"));
        assert_eq!(n.owner(ip("172.18.0.2")), Some("a"));
    }

    #[test]
    fn release_by_owner_and_reconcile() {
        let mut n = NetworkAddresses::new("n", net("10.0.0.0/24"), None, None).unwrap();
        n.allocate("a").unwrap();
        n.allocate("b").unwrap();
        n.allocate("a").unwrap();
        n.allocate("c").unwrap();
        assert_eq!(n.release_owner("a"), [ip("10.0.0.2"), ip("10.0.0.4")]);
        let dropped = n.retain_owners(|o| o == "c");
        assert_eq!(dropped, [(ip("10.0.0.3"), "b".to_string())]);
        assert_eq!(n.leases().collect::<Vec<_>>(), [(ip("10.0.0.5"), "c")]);
    }

    #[test]
    fn persistence_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        assert!(NetworkAddresses::load_all(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
        assert!(NetworkAddresses::load(dir.path(), "n1").unwrap().is_none());
        let mut a =
            NetworkAddresses::new("n1", net("172.18.0.0/16"), None, Some(net("172.18.1.0/24")))
                .unwrap();
        a.allocate("c1").unwrap();
        a.request(ip("172.18.0.9"), "c2").unwrap();
        a.save(dir.path()).unwrap();
        let mut b = NetworkAddresses::new("n0", net("10.0.0.0/24"), None, None).unwrap();
        b.save(dir.path()).unwrap();
        // Saving again replaces the file (with or without the fsync).
        b.allocate("x").unwrap();
        b.save_unsynced(dir.path()).unwrap();
        std::fs::write(dir.path().join(".leasesXYZ"), b"partial").unwrap();
        let all = NetworkAddresses::load_all(dir.path()).unwrap();
        assert_eq!(all, [b.clone(), a.clone()]);
        assert!(!dir.path().join(".leasesXYZ").exists());
        // The allocator goes on where it stopped.
        let mut a2 = NetworkAddresses::load(dir.path(), "n1").unwrap().unwrap();
        assert_eq!(a2.allocate("c3").unwrap(), ip("172.18.1.1"));
        let text = std::fs::read_to_string(dir.path().join("n1.json")).unwrap();
        assert!(text.contains("\"172.18.0.9\": \"c2\""), "{text}");
        NetworkAddresses::remove_file(dir.path(), "n1").unwrap();
        NetworkAddresses::remove_file(dir.path(), "n1").unwrap();
        assert_eq!(NetworkAddresses::load_all(dir.path()).unwrap(), [b.clone()]);
        std::fs::write(dir.path().join("bad.json"), b"{").unwrap();
        assert!(matches!(
            NetworkAddresses::load(dir.path(), "bad"),
            Err(IpamError::Corrupt { .. })
        ));
        // A torn file does not keep the others from loading.
        assert_eq!(NetworkAddresses::load_all(dir.path()).unwrap(), [b]);
    }

    #[test]
    fn unsynced_saves_write_in_place() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n1.json");
        let mut a = NetworkAddresses::new("n1", net("10.1.0.0/16"), None, None).unwrap();
        for i in 0..40 {
            a.allocate(&format!("c{i}")).unwrap();
        }
        a.save(dir.path()).unwrap();
        let before = std::fs::metadata(&path).unwrap();
        // Fewer leases: the same inode, padded to its old length, and it reads back as is.
        for i in 0..30 {
            a.release_owner(&format!("c{i}"));
        }
        a.save_unsynced(dir.path()).unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(after.ino(), before.ino());
        assert_eq!(after.len(), before.len());
        assert_eq!(
            NetworkAddresses::load(dir.path(), "n1").unwrap().unwrap(),
            a
        );
        // More: longer, still in place.
        for i in 0..60 {
            a.allocate(&format!("d{i}")).unwrap();
        }
        a.save_unsynced(dir.path()).unwrap();
        let grown = std::fs::metadata(&path).unwrap();
        assert_eq!(grown.ino(), before.ino());
        assert!(grown.len() > before.len());
        assert_eq!(
            NetworkAddresses::load(dir.path(), "n1").unwrap().unwrap(),
            a
        );
        // Far shorter than the file (more than the slack): cut to size.
        let mut big = NetworkAddresses::new("n2", net("10.2.0.0/16"), None, None).unwrap();
        for i in 0..2000 {
            big.allocate(&format!("{i:064}")).unwrap();
        }
        big.save_unsynced(dir.path()).unwrap();
        let small = NetworkAddresses::new("n2", net("10.2.0.0/16"), None, None).unwrap();
        small.save_unsynced(dir.path()).unwrap();
        let text = std::fs::read(dir.path().join("n2.json")).unwrap();
        assert!(!text.ends_with(b" "), "not cut: {} bytes", text.len());
        assert_eq!(
            NetworkAddresses::load(dir.path(), "n2").unwrap().unwrap(),
            small
        );
    }

    fn net6(s: &str) -> Ipv6Net {
        s.parse().unwrap()
    }

    fn ip6(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_subnets6() {
        assert_eq!(
            parse_subnet6("fd00:db8:1::/64").unwrap(),
            net6("fd00:db8:1::/64")
        );
        assert_eq!(
            parse_subnet6("fd00:db8:1::1/64").unwrap_err().to_string(),
            "invalid subnet fd00:db8:1::1/64: it should be fd00:db8:1::/64"
        );
        assert_eq!(
            parse_subnet6("10.0.0.0/8").unwrap_err().to_string(),
            "invalid subnet 10.0.0.0/8"
        );
        assert!(parse_subnet6("fd00::/129").is_err());
        assert!(overlaps6(&net6("fd00::/48"), &net6("fd00:0:0:5::/64")));
        assert!(overlaps6(&net6("fd00:0:0:5::/64"), &net6("fd00::/48")));
        assert!(!overlaps6(&net6("fd00:1::/64"), &net6("fd00:2::/64")));
    }

    #[test]
    fn new_validates6() {
        let n = NetworkAddresses6::new("n", net6("fd00:db8:1::/64"), None).unwrap();
        assert_eq!(n.gateway(), ip6("fd00:db8:1::1"));
        assert_eq!(n.subnet(), net6("fd00:db8:1::/64"));
        assert_eq!(n.network(), "n");
        assert_eq!(
            NetworkAddresses6::new("n", net6("fd00:db8:1::/64"), Some(ip6("fd00:db8:2::1")))
                .unwrap_err()
                .to_string(),
            "invalid gateway fd00:db8:2::1: it is not a host address of subnet fd00:db8:1::/64"
        );
        assert!(
            NetworkAddresses6::new("n", net6("fd00:db8:1::/64"), Some(ip6("fd00:db8:1::")))
                .is_err()
        );
        // The last address is a host address in IPv6.
        NetworkAddresses6::new(
            "n",
            net6("fd00:db8:1::/64"),
            Some(ip6("fd00:db8:1:0:ffff:ffff:ffff:ffff")),
        )
        .unwrap();
        assert!(matches!(
            NetworkAddresses6::new("n", net6("fd00::/127"), None),
            Err(IpamError::SubnetTooSmall6(_))
        ));
        NetworkAddresses6::new("n", net6("fd00::/126"), None).unwrap();
        assert!(matches!(
            NetworkAddresses6::new("n", net6("fd00::1/64"), None),
            Err(IpamError::SubnetHostBits6 { .. })
        ));
        assert!(NetworkAddresses6::new("../x", net6("fd00::/64"), None).is_err());
    }

    #[test]
    fn sequential_allocation6_wraps_and_skips() {
        // /125: ::0 reserved, ::1 gateway, ::2 to ::7 handed out (no broadcast in IPv6).
        let mut n = NetworkAddresses6::new("n", net6("fd00::/125"), None).unwrap();
        let got: Vec<_> = (0..6)
            .map(|i| n.allocate(&format!("c{i}")).unwrap())
            .collect();
        assert_eq!(
            got,
            ["fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7"].map(ip6)
        );
        assert_eq!(
            n.allocate("x").unwrap_err().to_string(),
            "no available IPv6 addresses on this network's address pools: n"
        );
        assert_eq!(n.release(ip6("fd00::3")).as_deref(), Some("c1"));
        assert_eq!(n.release(ip6("fd00::5")).as_deref(), Some("c3"));
        assert_eq!(n.allocate("x").unwrap(), ip6("fd00::3"));
        assert_eq!(n.allocate("y").unwrap(), ip6("fd00::5"));
        // A /64: released addresses are not reused at once.
        let mut n = NetworkAddresses6::new("n", net6("fd00:db8:1::/64"), None).unwrap();
        let a = n.allocate("a").unwrap();
        assert_eq!(a, ip6("fd00:db8:1::2"));
        n.release(a);
        assert_eq!(n.allocate("b").unwrap(), ip6("fd00:db8:1::3"));
        // A gateway elsewhere: ::1 is a host address like any other.
        let mut n = NetworkAddresses6::new("n", net6("fd00::/126"), Some(ip6("fd00::2"))).unwrap();
        let got: Vec<_> = (0..2).map(|_| n.allocate("c").unwrap()).collect();
        assert_eq!(got, ["fd00::1", "fd00::3"].map(ip6));
        assert!(n.allocate("c").is_err());
        assert_eq!(n.addresses_of("c"), ["fd00::1", "fd00::3"].map(ip6));
    }

    #[test]
    fn allocation6_wraps_at_the_end_of_a_big_subnet() {
        let mut n = NetworkAddresses6::new("n", net6("fd00:db8:1::/64"), None).unwrap();
        let last = ip6("fd00:db8:1:0:ffff:ffff:ffff:ffff");
        n.request(ip6("fd00:db8:1:0:ffff:ffff:ffff:fffe"), "a")
            .unwrap();
        n.last = Some(ip6("fd00:db8:1:0:ffff:ffff:ffff:fffd"));
        assert_eq!(n.allocate("b").unwrap(), last);
        // Past the end: back to the start, past the gateway.
        assert_eq!(n.allocate("c").unwrap(), ip6("fd00:db8:1::2"));
        // Many leases in a row cost a bounded search, never a scan of the subnet.
        for i in 0..1000 {
            n.allocate(&format!("d{i}")).unwrap();
        }
        assert_eq!(n.leases().count(), 1003);
        assert_eq!(n.allocate("e").unwrap(), ip6("fd00:db8:1::3eb"));
    }

    #[test]
    fn explicit_requests6() {
        let mut n = NetworkAddresses6::new("n", net6("fd00:db8:1::/64"), None).unwrap();
        n.request(ip6("fd00:db8:1::2"), "a").unwrap();
        assert_eq!(
            n.request(ip6("fd00:db8:1::2"), "b")
                .unwrap_err()
                .to_string(),
            "Address already in use"
        );
        assert!(matches!(
            n.request(ip6("fd00:db8:1::1"), "b"),
            Err(IpamError::AddressInUse6(_))
        ));
        assert_eq!(
            n.request(ip6("fd00:db8:2::2"), "b")
                .unwrap_err()
                .to_string(),
            "requested address fd00:db8:2::2 is out of range of subnet fd00:db8:1::/64"
        );
        assert_eq!(
            n.request(ip6("fd00:db8:1::"), "b").unwrap_err().to_string(),
            "requested address fd00:db8:1:: is reserved in subnet fd00:db8:1::/64"
        );
        assert_eq!(n.allocate("c").unwrap(), ip6("fd00:db8:1::3"));
        assert_eq!(n.owner(ip6("fd00:db8:1::2")), Some("a"));
        assert_eq!(n.owner(ip6("fd00:db8:1::9")), None);
    }

    #[test]
    fn release_by_owner_and_reconcile6() {
        let mut n = NetworkAddresses6::new("n", net6("fd00::/64"), None).unwrap();
        n.allocate("a").unwrap();
        n.allocate("b").unwrap();
        n.allocate("a").unwrap();
        n.allocate("c").unwrap();
        assert_eq!(n.release_owner("a"), [ip6("fd00::2"), ip6("fd00::4")]);
        let dropped = n.retain_owners(|o| o == "c");
        assert_eq!(dropped, [(ip6("fd00::3"), "b".to_string())]);
        assert_eq!(n.leases().collect::<Vec<_>>(), [(ip6("fd00::5"), "c")]);
    }

    #[test]
    fn persistence_round_trips6_next_to_v4() {
        let dir = tempfile::tempdir().unwrap();
        assert!(NetworkAddresses6::load(dir.path(), "n1").unwrap().is_none());
        assert!(NetworkAddresses6::load_all(&dir.path().join("missing"))
            .unwrap()
            .is_empty());
        let mut v4 = NetworkAddresses::new("n1", net("172.18.0.0/16"), None, None).unwrap();
        v4.allocate("c1").unwrap();
        v4.save(dir.path()).unwrap();
        let mut v6 = NetworkAddresses6::new("n1", net6("fd00:db8:1::/64"), None).unwrap();
        v6.allocate("c1").unwrap();
        v6.request(ip6("fd00:db8:1::99"), "c2").unwrap();
        v6.save(dir.path()).unwrap();
        v6.allocate("c3").unwrap();
        v6.save_unsynced(dir.path()).unwrap();
        assert!(dir.path().join("n1.v6.json").exists());
        let text = std::fs::read_to_string(dir.path().join("n1.v6.json")).unwrap();
        assert!(text.contains("\"fd00:db8:1::99\": \"c2\""), "{text}");
        // Each loader sees its own files only.
        assert_eq!(
            NetworkAddresses::load_all(dir.path()).unwrap(),
            [v4.clone()]
        );
        assert_eq!(
            NetworkAddresses6::load_all(dir.path()).unwrap(),
            [v6.clone()]
        );
        let mut back = NetworkAddresses6::load(dir.path(), "n1").unwrap().unwrap();
        assert_eq!(back, v6);
        assert_eq!(back.allocate("c4").unwrap(), ip6("fd00:db8:1::4"));
        NetworkAddresses6::remove_file(dir.path(), "n1").unwrap();
        NetworkAddresses6::remove_file(dir.path(), "n1").unwrap();
        assert!(NetworkAddresses6::load(dir.path(), "n1").unwrap().is_none());
        assert_eq!(NetworkAddresses::load_all(dir.path()).unwrap(), [v4]);
        std::fs::write(dir.path().join("bad.v6.json"), b"{").unwrap();
        assert!(matches!(
            NetworkAddresses6::load(dir.path(), "bad"),
            Err(IpamError::Corrupt { .. })
        ));
    }
}
