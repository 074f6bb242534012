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

use crate::container::ContainerRecord;
use crate::fsutil::write_atomic;
use berth_api::ApiError;
use berth_network::{ipam, link, nat};
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
}

impl DefaultBridge {
    /// Set up the default bridge (see the module documentation). Call it inside the daemon's
    /// tokio runtime, in the daemon's network namespace.
    pub async fn init(config: &crate::Config) -> Result<DefaultBridge, ApiError> {
        let dir = crate::layout::network_dir(&config.data_root);
        let leases_dir = crate::layout::leases_dir(&config.data_root);
        std::fs::create_dir_all(&leases_dir)
            .map_err(|e| err("cannot create the network directory")(e.to_string()))?;
        let id = match std::fs::read_to_string(dir.join("bridge.id")) {
            Ok(s) if s.trim().len() == 64 => s.trim().to_string(),
            _ => {
                let id = crate::new_id();
                write_atomic(&dir.join("bridge.id"), id.as_bytes())
                    .map_err(|e| err("cannot save the bridge's id")(e.to_string()))?;
                id
            }
        };
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
    ) -> Result<EndpointRecord, String> {
        let (prefix, gateway) = {
            let l = self.lock();
            (l.subnet().prefix_len(), l.gateway())
        };
        let ns =
            link::open_netns(format!("/proc/{pid}/ns/net").as_ref()).map_err(|e| e.to_string())?;
        let address = Ipv4Net::new(ip, prefix).map_err(|e| e.to_string())?;
        let cfg = link::EndpointConfig::new(BRIDGE, address, Some(gateway));
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
        })
    }

    /// Container `id` exited: its lease goes now (blocking: it writes the leases file); its
    /// veth, which the kernel removes with the container's namespace, is deleted in the
    /// background in case it is still there.
    pub fn release(&self, id: &str, ep: Option<&EndpointRecord>) {
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
        };
        let j = serde_json::to_string(&ep).unwrap();
        assert_eq!(serde_json::from_str::<EndpointRecord>(&j).unwrap(), ep);
    }
}
