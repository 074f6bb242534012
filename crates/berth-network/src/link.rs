//! Links through rtnetlink, in-process: the bridge, veth pairs, a container's `eth0`.
//!
//! A [`Netlink`] is one rtnetlink connection in one network namespace. A netlink socket
//! belongs to the namespace its creator was in when it was opened, and stays there wherever
//! it is used afterwards. So [`Netlink::new`] opens one in the caller's namespace, and
//! [`Netlink::in_netns`] opens one in another namespace from a short-lived helper thread
//! that calls `setns(2)` and exits: no tokio worker thread ever changes namespace. Both run
//! the connection as a task on the current tokio runtime; it ends when the `Netlink` drops.
//!
//! [`connect`] plugs a container in, the way Docker's bridge driver does: a veth pair
//! (`vethXXXXXXX` on the host, attached to the bridge and up) whose peer is made inside the
//! container's namespace as `eth0` with the MAC derived from its address
//! ([`crate::ipam::mac_for`]), then the address, `lo` and `eth0` up, and a default route via
//! the gateway. Any failure removes the pair, so nothing is left behind. [`disconnect`] deletes
//! the host end, which deletes the pair.
//!
//! # IPv6
//!
//! A network with `--ipv6` gets its gateway on the bridge with [`Netlink::ensure_bridge6`]
//! (after [`Netlink::ensure_bridge`]), and its endpoints an [`EndpointConfig::address6`] (and
//! [`EndpointConfig::gateway6`] for the default IPv6 route). Both addresses are added with
//! `IFA_F_NODAD`: without it an address is "tentative" for the duration of duplicate address
//! detection (a second or two), and binding to it or routing through it fails meanwhile.
//! IPv6 must be enabled on both interfaces: `net.ipv6.conf.<if>.disable_ipv6` is set to 0
//! where it is 1 (on the bridge in the calling thread's namespace, on the container's
//! interface inside its namespace). A kernel without IPv6 (booted with `ipv6.disable=1`) has
//! no `/proc/sys/net/ipv6`: [`ipv6_supported`] is false and both fail with
//! [`LinkError::Ipv6Unsupported`]. An endpoint without `address6` costs nothing more than
//! before.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, IntoRawFd};
use std::path::Path;

use futures_util::TryStreamExt;
use ipnet::{Ipv4Net, Ipv6Net};
use rtnetlink::packet_route::address::{AddressAttribute, AddressHeaderFlags};
use rtnetlink::packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute, RouteHeader, RouteType};
use rtnetlink::sys::{protocols::NETLINK_ROUTE, Socket, TokioSocket};
use rtnetlink::{
    Handle, LinkBridge, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth,
    RouteMessageBuilder,
};

/// Errors of link operations; each names what was being done.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Opening the netlink socket.
    #[error("open a netlink socket: {0}")]
    Socket(std::io::Error),
    /// Opening a namespace file (`/proc/<pid>/ns/net`, a bind mount).
    #[error("open network namespace {path}: {source}")]
    OpenNetns {
        path: String,
        source: std::io::Error,
    },
    /// `setns(2)` on the helper thread.
    #[error("enter network namespace: {0}")]
    Setns(nix::Error),
    /// A netlink request the kernel refused.
    #[error("{op}: {source}")]
    Netlink { op: String, source: std::io::Error },
    /// The bridge's name is taken by a link of another kind.
    #[error("{0} exists and is not a bridge")]
    NotABridge(String),
    /// The bridge exists with an IPv4 address other than the one configured.
    #[error("bridge {name} has address {found}, not {want}: remove it or configure {found}")]
    BridgeAddress {
        name: String,
        found: Ipv4Net,
        want: Ipv4Net,
    },
    /// A link that should exist does not.
    #[error("no such interface: {0}")]
    NoSuchLink(String),
    /// An interface name the kernel would refuse (empty, over 15 bytes, `/`, spaces).
    #[error("invalid interface name {0:?}")]
    InvalidName(String),
    /// IPv6 asked for on a kernel without it (no `/proc/sys/net/ipv6`: `ipv6.disable=1`).
    #[error("IPv6 is not supported by this host: the kernel has no IPv6 (/proc/sys/net/ipv6 is missing; booted with ipv6.disable=1?)")]
    Ipv6Unsupported,
    /// Reading or writing a sysctl (`/proc/sys/net/ipv6/conf/<if>/disable_ipv6`).
    #[error("{op} {path}: {source}")]
    Sysctl {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
}

type Result<T, E = LinkError> = std::result::Result<T, E>;

fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let op = op.into();
    move |e| LinkError::Netlink {
        op,
        source: to_io(e),
    }
}

fn to_io(e: rtnetlink::Error) -> std::io::Error {
    match e {
        rtnetlink::Error::NetlinkError(m) => m.to_io(),
        other => std::io::Error::other(other.to_string()),
    }
}

fn errno(e: &LinkError) -> Option<i32> {
    match e {
        LinkError::Netlink { source, .. } => source.raw_os_error(),
        _ => None,
    }
}

/// Where the kernel's IPv6 settings are; absent when it has no IPv6.
const IPV6_SYSCTL: &str = "/proc/sys/net/ipv6";

/// Whether the host's kernel has IPv6 (`/proc/sys/net/ipv6` exists; it does not on a host
/// booted with `ipv6.disable=1`).
pub fn ipv6_supported() -> bool {
    Path::new(IPV6_SYSCTL).exists()
}

/// Make sure IPv6 is enabled on interface `ifname` of the calling thread's network
/// namespace: `net.ipv6.conf.<ifname>.disable_ipv6` set to 0 when it is not. (The sysctls
/// under `/proc/sys/net` are those of the namespace of the thread that opens them.)
fn enable_ipv6(ifname: &str) -> Result<()> {
    check_ifname(ifname)?;
    if !ipv6_supported() {
        return Err(LinkError::Ipv6Unsupported);
    }
    let path = format!("{IPV6_SYSCTL}/conf/{ifname}/disable_ipv6");
    let sysctl = |op| {
        let path = path.clone();
        move |source| LinkError::Sysctl { op, path, source }
    };
    let current = std::fs::read_to_string(&path).map_err(sysctl("read"))?;
    if current.trim() != "0" {
        std::fs::write(&path, b"0").map_err(sysctl("write"))?;
    }
    Ok(())
}

/// Check an interface name as the kernel will (`dev_valid_name`).
pub fn check_ifname(name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace())
    {
        return Err(LinkError::InvalidName(name.to_string()));
    }
    Ok(())
}

/// A fresh interface name like Docker's: `prefix` then 7 random hex digits (`veth1a2b3c4`).
pub fn random_ifname(prefix: &str) -> String {
    format!("{prefix}{:07x}", rand::random::<u32>() & 0x0fff_ffff)
}

/// Open a network namespace by path (`/proc/<pid>/ns/net`, `/run/netns/<name>`).
pub fn open_netns(path: &Path) -> Result<std::fs::File> {
    std::fs::File::open(path).map_err(|source| LinkError::OpenNetns {
        path: path.display().to_string(),
        source,
    })
}

/// What one link is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Administratively up.
    pub up: bool,
    pub mac: Option<[u8; 6]>,
    /// The bridge it is attached to.
    pub controller: Option<u32>,
    /// Its kind (`bridge`, `veth`…), when it has one.
    pub kind: Option<String>,
}

impl Link {
    fn from_message(m: &LinkMessage) -> Self {
        let mut link = Link {
            index: m.header.index,
            name: String::new(),
            up: m.header.flags.contains(LinkFlags::Up),
            mac: None,
            controller: None,
            kind: None,
        };
        for a in &m.attributes {
            match a {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Address(a) => link.mac = <[u8; 6]>::try_from(a.as_slice()).ok(),
                LinkAttribute::Controller(c) => link.controller = Some(*c),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            link.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        link
    }
}

/// One IPv4 route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
}

/// One rtnetlink connection, in the namespace it was opened in.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// A connection in the calling thread's network namespace. Call it inside a tokio runtime.
    pub fn new() -> Result<Self> {
        Self::with_socket(Socket::new(NETLINK_ROUTE).map_err(LinkError::Socket)?)
    }

    /// A connection in the namespace `ns` refers to (an open `/proc/<pid>/ns/net` or
    /// `/proc/<pid>/task/<tid>/ns/net`, or a bind mount of one). The socket is opened by a
    /// new thread that enters the namespace and exits; this blocks the caller for as long as
    /// that takes (tens of microseconds). Call it inside a tokio runtime.
    pub fn in_netns(ns: BorrowedFd<'_>) -> Result<Self> {
        Self::in_netns_then(ns, || Ok(()))
    }

    /// [`Self::in_netns`], running `inside` on the helper thread inside the namespace first
    /// (for sysctls of that namespace), at no extra thread.
    fn in_netns_then(
        ns: BorrowedFd<'_>,
        inside: impl FnOnce() -> Result<()> + Send,
    ) -> Result<Self> {
        let socket = std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(LinkError::Setns)?;
                inside()?;
                Socket::new(NETLINK_ROUTE).map_err(LinkError::Socket)
            })
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })?;
        Self::with_socket(socket)
    }

    fn with_socket(socket: Socket) -> Result<Self> {
        socket.set_non_blocking(true).map_err(LinkError::Socket)?;
        // SAFETY: the fd was just taken out of an owned, open netlink socket, which gives up
        // its ownership to the TokioSocket (it closes the fd on drop).
        let socket = unsafe { TokioSocket::from_raw_fd(socket.into_raw_fd()) };
        let (conn, handle, _) = rtnetlink::from_socket(socket);
        tokio::spawn(conn);
        Ok(Self { handle })
    }

    /// The link named `name`, if there is one.
    pub async fn link(&self, name: &str) -> Result<Option<Link>> {
        check_ifname(name)?;
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(Some(Link::from_message(&m))),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => {
                Ok(None)
            }
            Err(e) => Err(nl(format!("look up interface {name}"))(e)),
        }
    }

    /// Every link of the namespace.
    pub async fn links(&self) -> Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self
            .handle
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(nl("list interfaces"))?;
        Ok(msgs.iter().map(Link::from_message).collect())
    }

    /// The links attached to bridge `bridge` (for reconciling after a restart: a `veth` whose
    /// container is gone is a leak to delete).
    pub async fn bridge_ports(&self, bridge: u32) -> Result<Vec<Link>> {
        Ok(self
            .links()
            .await?
            .into_iter()
            .filter(|l| l.controller == Some(bridge))
            .collect())
    }

    async fn require(&self, name: &str) -> Result<Link> {
        self.link(name)
            .await?
            .ok_or_else(|| LinkError::NoSuchLink(name.to_string()))
    }

    /// The addresses of link `index`, both families, as (address, prefix length).
    async fn all_addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>> {
        let msgs: Vec<_> = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(nl("list addresses"))?;
        let mut out = Vec::new();
        for m in msgs.iter().filter(|m| m.header.index == index) {
            for a in &m.attributes {
                if let AddressAttribute::Address(ip) = a {
                    out.push((*ip, m.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    /// The IPv4 addresses of link `index`, as address/prefix.
    pub async fn addresses(&self, index: u32) -> Result<Vec<Ipv4Net>> {
        Ok(self
            .all_addresses(index)
            .await?
            .into_iter()
            .filter_map(|(ip, p)| match ip {
                IpAddr::V4(ip) => Ipv4Net::new(ip, p).ok(),
                IpAddr::V6(_) => None,
            })
            .collect())
    }

    /// The IPv6 addresses of link `index`, as address/prefix (link-local ones included).
    pub async fn addresses6(&self, index: u32) -> Result<Vec<Ipv6Net>> {
        Ok(self
            .all_addresses(index)
            .await?
            .into_iter()
            .filter_map(|(ip, p)| match ip {
                IpAddr::V6(ip) => Ipv6Net::new(ip, p).ok(),
                IpAddr::V4(_) => None,
            })
            .collect())
    }

    /// Add an IPv6 address (address/prefix) to link `index`, without duplicate address
    /// detection (`IFA_F_NODAD`: usable at once, never "tentative"). Idempotent: an address
    /// that is there already is fine. IPv6 must be enabled on the link (`disable_ipv6` 0).
    pub async fn add_address6(&self, index: u32, address: Ipv6Net) -> Result<()> {
        let mut req =
            self.handle
                .address()
                .add(index, IpAddr::V6(address.addr()), address.prefix_len());
        req.message_mut().header.flags = AddressHeaderFlags::Nodad;
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::EEXIST => Ok(()),
            Err(e) => Err(nl(format!("add address {address}"))(e)),
        }
    }

    /// Add an IPv4 address (address/prefix) to link `index`.
    pub async fn add_address(&self, index: u32, address: Ipv4Net) -> Result<()> {
        self.handle
            .address()
            .add(index, IpAddr::V4(address.addr()), address.prefix_len())
            .execute()
            .await
            .map_err(nl(format!("add address {address}")))
    }

    /// Set link `index` up.
    pub async fn set_up(&self, index: u32) -> Result<()> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("set interface {index} up")))
    }

    /// The IPv4 routes of the main table.
    pub async fn routes(&self) -> Result<Vec<Route>> {
        let msgs: Vec<_> = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute()
            .try_collect()
            .await
            .map_err(nl("list routes"))?;
        let mut out = Vec::new();
        for m in msgs {
            let mut table = u32::from(m.header.table);
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let mut gateway = None;
            let mut oif = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some(*g),
                    RouteAttribute::Oif(o) => oif = Some(*o),
                    _ => {}
                }
            }
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) || m.header.kind != RouteType::Unicast
            {
                continue;
            }
            let Ok(destination) = Ipv4Net::new(dst, m.header.destination_prefix_length) else {
                continue;
            };
            out.push(Route {
                destination,
                gateway,
                oif,
            });
        }
        Ok(out)
    }

    /// The destinations of the host's routes that a new network must not overlap, for
    /// [`crate::ipam::choose_subnet`]: the main table without default routes (as Docker), and
    /// without the routes through the links in `ignore` (berth's own bridges, whose subnets
    /// the daemon already counts as networks in use).
    pub async fn host_routes(&self, ignore: &[u32]) -> Result<Vec<Ipv4Net>> {
        Ok(self
            .routes()
            .await?
            .into_iter()
            .filter(|r| r.destination.prefix_len() > 0)
            .filter(|r| !r.oif.is_some_and(|o| ignore.contains(&o)))
            .map(|r| r.destination)
            .collect())
    }

    /// Make sure bridge `name` exists with address `gateway` (the gateway's address and the
    /// subnet's prefix length, e.g. 172.17.0.1/16) and is up; returns its index. Idempotent.
    /// A link of that name that is not a bridge, or a bridge with another IPv4 address, is an
    /// error (nothing is changed then).
    pub async fn ensure_bridge(&self, name: &str, gateway: Ipv4Net) -> Result<u32> {
        let link = match self.link(name).await? {
            Some(l) => l,
            None => {
                let created = self
                    .handle
                    .link()
                    .add(LinkBridge::new(name).build())
                    .execute()
                    .await
                    .map_err(nl(format!("create bridge {name}")));
                // Another caller may have created it meanwhile: that is fine.
                if let Err(e) = created {
                    if errno(&e) != Some(libc::EEXIST) {
                        return Err(e);
                    }
                }
                self.require(name).await?
            }
        };
        if link.kind.as_deref() != Some(&InfoKind::Bridge.to_string()) {
            return Err(LinkError::NotABridge(name.to_string()));
        }
        let addrs = self.addresses(link.index).await?;
        if !addrs.contains(&gateway) {
            if let Some(found) = addrs.first() {
                return Err(LinkError::BridgeAddress {
                    name: name.to_string(),
                    found: *found,
                    want: gateway,
                });
            }
            self.add_address(link.index, gateway).await?;
        }
        if !link.up {
            self.set_up(link.index).await?;
        }
        Ok(link.index)
    }

    /// Give bridge `name` (made by [`Self::ensure_bridge`]) the IPv6 address `gateway` (the
    /// gateway's address and the subnet's prefix length, e.g. `fd00:db8:1::1/64`), without
    /// duplicate address detection. IPv6 is enabled on the bridge first
    /// (`net.ipv6.conf.<name>.disable_ipv6` = 0, written in the **calling thread's**
    /// namespace, so call it on a connection of that namespace: [`Self::new`]). Idempotent;
    /// other IPv6 addresses of the bridge are left alone. Fails with
    /// [`LinkError::Ipv6Unsupported`] on a kernel without IPv6.
    pub async fn ensure_bridge6(&self, name: &str, gateway: Ipv6Net) -> Result<()> {
        if !ipv6_supported() {
            return Err(LinkError::Ipv6Unsupported);
        }
        let link = self.require(name).await?;
        if link.kind.as_deref() != Some(&InfoKind::Bridge.to_string()) {
            return Err(LinkError::NotABridge(name.to_string()));
        }
        enable_ipv6(name)?;
        if !self.addresses6(link.index).await?.contains(&gateway) {
            self.add_address6(link.index, gateway).await?;
        }
        if !link.up {
            self.set_up(link.index).await?;
        }
        Ok(())
    }

    /// Delete link `name` (a bridge, or a veth's host end, which deletes its peer too).
    /// Returns whether there was one.
    pub async fn delete_link(&self, name: &str) -> Result<bool> {
        let Some(link) = self.link(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == libc::ENODEV => {
                Ok(false)
            }
            Err(e) => Err(nl(format!("delete interface {name}"))(e)),
        }
    }

    /// Add the default route via `gateway`, through link `index`.
    pub async fn add_default_route(&self, index: u32, gateway: Ipv4Addr) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(nl(format!("add default route via {gateway}")))
    }

    /// Add the default IPv6 route via `gateway`, through link `index`.
    pub async fn add_default_route6(&self, index: u32, gateway: Ipv6Addr) -> Result<()> {
        let route = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gateway)
            .output_interface(index)
            .build();
        self.handle
            .route()
            .add(route)
            .execute()
            .await
            .map_err(nl(format!("add default route via {gateway}")))
    }
}

/// How to plug a container into a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The bridge (it must exist: [`Netlink::ensure_bridge`]).
    pub bridge: String,
    /// The container's address and the subnet's prefix length (172.17.0.2/16).
    pub address: Ipv4Net,
    /// The default route's gateway; none for an `--internal` network.
    pub gateway: Option<Ipv4Addr>,
    /// The MAC; Docker's derived one ([`crate::ipam::mac_for`]) when `None`.
    pub mac: Option<[u8; 6]>,
    /// The name inside the container (`eth0`).
    pub ifname: String,
    /// The MTU of both ends; the kernel's default (1500) when `None`.
    pub mtu: Option<u32>,
    /// The container's IPv6 address and the subnet's prefix length (fd00:db8:1::2/64), on a
    /// network with `--ipv6`; added without duplicate address detection.
    pub address6: Option<Ipv6Net>,
    /// The default IPv6 route's gateway (with `address6`; none for `--internal`).
    pub gateway6: Option<Ipv6Addr>,
}

impl EndpointConfig {
    /// `eth0` on `bridge` with `address`, a default route via `gateway`, Docker's MAC.
    pub fn new(bridge: &str, address: Ipv4Net, gateway: Option<Ipv4Addr>) -> Self {
        Self {
            bridge: bridge.to_string(),
            address,
            gateway,
            mac: None,
            ifname: "eth0".to_string(),
            mtu: None,
            address6: None,
            gateway6: None,
        }
    }
}

/// A container's end of a network, as [`connect`] made it: what the daemon records (to
/// show in `inspect`, and to [`disconnect`] it later).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The veth's host end, on the bridge.
    pub host_ifname: String,
    /// The name inside the container.
    pub ifname: String,
    pub address: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub mac: [u8; 6],
    /// The IPv6 address, when the endpoint has one.
    pub address6: Option<Ipv6Net>,
}

/// Plug the container whose network namespace is `netns` into `cfg.bridge` (see the module
/// documentation). `host` is a connection in the bridge's namespace. On error, nothing is
/// left: the veth pair is deleted.
///
/// The pair is made by one request, with its peer created directly inside the container's
/// namespace as `cfg.ifname` with its MAC, and its host end already on the bridge and up:
/// moving an existing interface into another namespace costs the kernel an RCU grace period
/// (tens of milliseconds on a busy host), creating it there does not.
pub async fn connect(
    host: &Netlink,
    netns: BorrowedFd<'_>,
    cfg: &EndpointConfig,
) -> Result<Endpoint> {
    check_ifname(&cfg.ifname)?;
    let bridge = host.require(&cfg.bridge).await?;
    let mac = cfg
        .mac
        .unwrap_or_else(|| crate::ipam::mac_for(cfg.address.addr()));
    // The host end's name is fresh; a clash (one in 2^28) fails with EEXIST and is retried. A
    // few clashes in a row mean the name inside the container is the one taken.
    let mut attempts = 0;
    let host_ifname = loop {
        let h = random_ifname("veth");
        // One queue pair per end (veth's default is one per possible CPU, each with its
        // kernel objects): less kernel memory per container on hosts with many CPUs.
        let mut peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(cfg.ifname.clone())
            .address(mac.to_vec())
            .setns_by_fd(netns.as_raw_fd())
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1));
        let mut msg = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(h.clone())
            .controller(bridge.index)
            .append_extra_attribute(LinkAttribute::NumTxQueues(1))
            .append_extra_attribute(LinkAttribute::NumRxQueues(1))
            .up();
        if let Some(mtu) = cfg.mtu {
            peer = peer.mtu(mtu);
            msg = msg.mtu(mtu);
        }
        let msg = msg
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        match host.handle.link().add(msg).execute().await {
            Ok(()) => break h,
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code().abs() == libc::EEXIST && attempts < 3 =>
            {
                attempts += 1;
            }
            Err(e) => {
                return Err(nl(format!(
                    "create veth pair {h} with {} in the container's network namespace",
                    cfg.ifname
                ))(e))
            }
        }
    };
    // Hairpin mode on the bridge port: a packet the host sends back out the port it came in
    // on (a container reaching its own published port through a host address) is delivered.
    // It and the container side are independent (two sockets): side by side.
    let (hairpinned, configured) = tokio::join!(hairpin(host, &host_ifname), configure(netns, cfg));
    let configured = hairpinned.and(configured);
    match configured {
        Ok(()) => Ok(Endpoint {
            host_ifname,
            ifname: cfg.ifname.clone(),
            address: cfg.address,
            gateway: cfg.gateway,
            mac,
            address6: cfg.address6,
        }),
        Err(e) => {
            if let Err(d) = host.delete_link(&host_ifname).await {
                tracing::warn!("cannot remove {host_ifname} after a failed connect: {d}");
            }
            Err(e)
        }
    }
}

/// Turns on hairpin mode on the bridge port `ifname`.
async fn hairpin(host: &Netlink, ifname: &str) -> Result<()> {
    let port = host.require(ifname).await?;
    host.handle
        .link()
        .set_port(LinkBridgePort::new(port.index).hairpin(true).build())
        .execute()
        .await
        .map_err(nl(format!("set hairpin mode on {ifname}")))
}

/// Inside the container's namespace: the address(es) on `cfg.ifname`, it and `lo` up, the
/// default route(s). With an IPv6 address, IPv6 is enabled on `cfg.ifname` by the thread
/// that opens the netlink socket in the namespace (so at no extra thread).
async fn configure(netns: BorrowedFd<'_>, cfg: &EndpointConfig) -> Result<()> {
    let ns = match cfg.address6 {
        None => Netlink::in_netns(netns.as_fd())?,
        Some(_) => Netlink::in_netns_then(netns.as_fd(), || enable_ipv6(&cfg.ifname))?,
    };
    // Requests that do not depend on each other go out together (the kernel takes a socket's
    // messages in order); the routes need the address and the link up first.
    let (peer, lo) = tokio::join!(ns.require(&cfg.ifname), ns.link("lo"));
    let peer = peer?;
    let lo = lo?;
    let address6 = async {
        match cfg.address6 {
            Some(a6) => ns.add_address6(peer.index, a6).await,
            None => Ok(()),
        }
    };
    let lo_up = async {
        match lo {
            Some(lo) if !lo.up => ns.set_up(lo.index).await,
            _ => Ok(()),
        }
    };
    let (a, a6, up, lo_up) = tokio::join!(
        ns.add_address(peer.index, cfg.address),
        address6,
        ns.set_up(peer.index),
        lo_up
    );
    a?;
    a6?;
    up?;
    lo_up?;
    if let Some(gw) = cfg.gateway {
        ns.add_default_route(peer.index, gw).await?;
    }
    if let (Some(_), Some(gw6)) = (cfg.address6, cfg.gateway6) {
        ns.add_default_route6(peer.index, gw6).await?;
    }
    Ok(())
}

/// Unplug an endpoint: delete its veth's host end (the kernel deletes the peer inside the
/// container with it). Returns whether it existed (a container whose namespace died already
/// took the pair with it).
pub async fn disconnect(host: &Netlink, host_ifname: &str) -> Result<bool> {
    host.delete_link(host_ifname).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        check_ifname("eth0").unwrap();
        check_ifname("berth0").unwrap();
        check_ifname("fifteen-chars-x").unwrap();
        for bad in ["", "sixteen-chars-xx", "a/b", "a b", ".", "..", "a:1"] {
            assert!(check_ifname(bad).is_err(), "{bad}");
        }
        let n = random_ifname("veth");
        assert_eq!(n.len(), 11);
        check_ifname(&n).unwrap();
    }
}
