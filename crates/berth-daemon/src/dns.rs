//! The embedded DNS server's view of the containers (`berth_network::dns` serves it).
//!
//! A container on a user network gets a server at 127.0.0.11:53 in its own network
//! namespace, held by the daemon from its start to its exit (and set up again for the live
//! containers after a daemon restart). The server asks [`Resolver`] about each name: the
//! running containers that share a user network with the asking container answer to their
//! name, their short id and their aliases on that network, also as `<name>.<network>`;
//! reverse lookups give `<name>.<network>`. Everything else is forwarded to the container's
//! `--dns`, else daemon.json `dns`, else the host's nameservers (loopback ones work: the
//! forwarding happens in the daemon's namespace), else Google's.

use crate::Daemon;
use berth_network::dns::{DnsServer, Lookup};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// The DNS servers of the running containers, by container id, and what they answer from.
#[derive(Default)]
pub struct DnsServers {
    servers: Mutex<std::collections::HashMap<String, DnsServer>>,
    /// Moves on every change of what the servers answer (a start, an exit, a connect, a
    /// disconnect, a rename).
    generation: AtomicU64,
    /// The peers as of a generation: rebuilt only after a change, not per query.
    peers: Mutex<Option<(u64, Arc<Vec<Peer>>)>>,
}

impl DnsServers {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, DnsServer>> {
        self.servers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the servers answer changed.
    pub fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// What one container's server asks.
struct Resolver {
    daemon: Weak<Daemon>,
    id: String,
}

impl Lookup for Resolver {
    fn lookup_v4(&self, name: &str) -> Vec<Ipv4Addr> {
        self.daemon
            .upgrade()
            .map(|d| {
                d.dns_lookup(&self.id, name)
                    .into_iter()
                    .map(|a| a.0)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn lookup_v6(&self, name: &str) -> Vec<Ipv6Addr> {
        self.daemon
            .upgrade()
            .map(|d| {
                d.dns_lookup(&self.id, name)
                    .into_iter()
                    .filter_map(|a| a.1)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn reverse(&self, ip: IpAddr) -> Option<String> {
        self.daemon.upgrade()?.dns_reverse(&self.id, ip)
    }

    fn upstreams(&self) -> Vec<SocketAddr> {
        self.daemon
            .upgrade()
            .map(|d| d.dns_upstreams(&self.id))
            .unwrap_or_default()
    }
}

/// An endpoint's addresses: IPv4, and IPv6 on a network with it.
type Addrs = (Ipv4Addr, Option<Ipv6Addr>);

/// A live container's endpoints on user networks: (network id, network name, address), and
/// its names there.
struct Peer {
    name: String,
    id: String,
    endpoints: Vec<(String, String, Addrs, Vec<String>)>,
}

impl Daemon {
    /// Serve DNS in the network namespace of container `id`, whose init is `pid`.
    pub(crate) fn start_dns(self: &Arc<Self>, id: &str, pid: i32) -> Result<(), String> {
        let ns = berth_network::link::open_netns(format!("/proc/{pid}/ns/net").as_ref())
            .map_err(|e| e.to_string())?;
        let resolver = Arc::new(Resolver {
            daemon: Arc::downgrade(self),
            id: id.to_string(),
        });
        let server = DnsServer::start_in_netns(ns.as_fd(), resolver).map_err(|e| e.to_string())?;
        self.net.dns.lock().insert(id.to_string(), server);
        tracing::debug!(%id, "embedded DNS server started");
        Ok(())
    }

    /// Stop container `id`'s DNS server, if it has one.
    pub(crate) fn stop_dns(&self, id: &str) {
        self.net.dns.lock().remove(id);
    }

    /// Whether container `id` has a DNS server.
    pub(crate) fn has_dns(&self, id: &str) -> bool {
        self.net.dns.lock().contains_key(id)
    }

    /// After a restart: serve DNS again to the live containers on user networks.
    pub(crate) fn restore_dns(self: &Arc<Self>) {
        for c in self.all_containers() {
            let rec = c.record();
            if !rec.state.status.is_live() || rec.state.pid <= 0 {
                continue;
            }
            if rec
                .endpoints
                .iter()
                .any(|e| e.network != crate::network::NETWORK)
            {
                if let Err(e) = self.start_dns(&rec.id, rec.state.pid) {
                    tracing::warn!(id = %rec.id, "cannot serve DNS again: {e}");
                }
            }
        }
    }

    /// The running containers' endpoints on user networks (rebuilt after a change).
    fn dns_peers(&self) -> Arc<Vec<Peer>> {
        let cache = &self.net.dns;
        let generation = cache.generation.load(Ordering::SeqCst);
        if let Some((g, peers)) = &*cache.peers.lock().unwrap_or_else(|e| e.into_inner()) {
            if *g == generation {
                return peers.clone();
            }
        }
        let peers = Arc::new(self.build_dns_peers());
        *cache.peers.lock().unwrap_or_else(|e| e.into_inner()) = Some((generation, peers.clone()));
        peers
    }

    fn build_dns_peers(&self) -> Vec<Peer> {
        let mut out = Vec::new();
        for c in self.all_containers() {
            let rec = c.record();
            if !rec.state.status.is_live() {
                continue;
            }
            let endpoints: Vec<_> = rec
                .endpoints
                .iter()
                .filter(|e| e.network != crate::network::NETWORK)
                .map(|e| {
                    let aliases = rec
                        .networks
                        .iter()
                        .find(|a| a.network_id == e.network_id || a.network == e.network)
                        .map(|a| a.aliases.clone())
                        .unwrap_or_default();
                    (
                        e.network_id.clone(),
                        e.network.clone(),
                        (e.ip, e.ip6),
                        aliases,
                    )
                })
                .collect();
            if !endpoints.is_empty() {
                out.push(Peer {
                    name: rec.name.clone(),
                    id: rec.id.clone(),
                    endpoints,
                });
            }
        }
        out
    }

    /// The addresses `name` has for container `from`: the containers on its user networks
    /// named so (name, short id, alias), or `<that>.<network>` on that network only.
    pub(crate) fn dns_lookup(&self, from: &str, name: &str) -> Vec<Addrs> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let peers = self.dns_peers();
        let Some(me) = peers.iter().find(|p| p.id == from) else {
            return Vec::new();
        };
        let mine: HashSet<&str> = me.endpoints.iter().map(|e| e.0.as_str()).collect();
        let find = |target: &str, network: Option<&str>| -> Vec<Addrs> {
            let mut ips = Vec::new();
            for p in peers.iter() {
                for (nid, nname, ip, aliases) in &p.endpoints {
                    if !mine.contains(nid.as_str()) || network.is_some_and(|n| n != nname) {
                        continue;
                    }
                    let hit = p.name.eq_ignore_ascii_case(target)
                        || (target.len() == 12 && p.id.starts_with(target))
                        || aliases.iter().any(|a| a.eq_ignore_ascii_case(target));
                    if hit && !ips.contains(ip) {
                        ips.push(*ip);
                    }
                }
            }
            ips
        };
        let ips = find(&name, None);
        if !ips.is_empty() {
            return ips;
        }
        // `<name>.<network>`, the network's name possibly with dots of its own.
        for e in &me.endpoints {
            let suffix = format!(".{}", e.1.to_ascii_lowercase());
            if let Some(target) = name.strip_suffix(&suffix) {
                let ips = find(target, Some(&e.1));
                if !ips.is_empty() {
                    return ips;
                }
            }
        }
        Vec::new()
    }

    /// The name of the container at `ip` on one of `from`'s user networks: `name.network`.
    pub(crate) fn dns_reverse(&self, from: &str, ip: IpAddr) -> Option<String> {
        let peers = self.dns_peers();
        let me = peers.iter().find(|p| p.id == from)?;
        let mine: HashSet<&str> = me.endpoints.iter().map(|e| e.0.as_str()).collect();
        peers.iter().find_map(|p| {
            p.endpoints
                .iter()
                .find(|e| {
                    let hit = match ip {
                        IpAddr::V4(v4) => e.2 .0 == v4,
                        IpAddr::V6(v6) => e.2 .1 == Some(v6),
                    };
                    hit && mine.contains(e.0.as_str())
                })
                .map(|e| format!("{}.{}", p.name, e.1))
        })
    }

    /// Where container `from`'s other queries go.
    pub(crate) fn dns_upstreams(&self, from: &str) -> Vec<SocketAddr> {
        let given = self
            .container(from)
            .ok()
            .and_then(|c| c.record().host_config.dns)
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| self.config.dns.clone());
        let mut out: Vec<SocketAddr> = given
            .iter()
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .map(|ip| SocketAddr::new(ip, 53))
            .collect();
        if out.is_empty() {
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            out = crate::bundle::resolv_fields(&host, "nameserver")
                .iter()
                .filter_map(|s| s.parse::<IpAddr>().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect();
        }
        if out.is_empty() {
            out = ["8.8.8.8", "8.8.4.4"]
                .iter()
                .map(|s| SocketAddr::new(s.parse().expect("an address"), 53))
                .collect();
        }
        out
    }
}
