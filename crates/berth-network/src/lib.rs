//! berth's container networking (issue 5): the pieces of Docker's bridge driver, in-process.
//!
//! - [`dns`]: the embedded DNS server of user networks (Docker's `127.0.0.11`): one per
//!   container, its sockets bound inside the container's namespace and served by the daemon's
//!   tasks; answers the names (A, and AAAA from [`dns::Lookup::lookup_v6`]) a [`dns::Lookup`] knows and forwards the rest from the host's
//!   namespace (so a loopback host resolver works).
//! - [`ipam`]: IPv4 (and IPv6: [`ipam::NetworkAddresses6`]) address management, pure. Docker's `default-address-pools`, subnets chosen
//!   around the host's routes and the other networks, per-network leases (gateway reserved,
//!   sequential with wrap-around, `--ip`, `--ip-range`) persisted as one JSON file per network.
//! - [`link`]: rtnetlink. The bridge (`berth0`, ensured idempotently), and [`link::connect`]:
//!   a veth pair whose host end is on the bridge and whose peer becomes the container's `eth0`
//!   (Docker's MAC, the address, `lo` up, the default route), optionally with an IPv6 address
//!   and default route ([`link::EndpointConfig::address6`], on a bridge given its IPv6 gateway
//!   by [`link::Netlink::ensure_bridge6`]; see the module's IPv6 section: no DAD, and
//!   `disable_ipv6` is cleared). [`link::disconnect`] deletes it.
//! - [`nat`]: outbound NAT (masquerade) and published ports (DNAT) in berth's own nftables
//!   table `ip berth`, over netfilter netlink, applied as one atomic batch; and `net.ipv4.ip_forward`.
//! - [`ports`]: host ports for published ports: `PortBindings` keys and ranges, reserving a
//!   port by holding a bound socket (no process), the ephemeral range for random ones.
//!
//! Nothing here shells out (`ip`, `iptables`, `nft`), and nothing touches Docker's chains.
//! The crate knows nothing of containers or of the daemon; `berth-daemon/src/network.rs`
//! wires it in (the steps below).
//!
//! # Crates
//!
//! `rtnetlink` (rust-netlink, tokio) for links, addresses and routes; `ipnet` for subnets.
//! For nftables no crate fitted: `nftables` drives the `nft` binary (JSON), which the issue
//! rules out; `nftnl`/`mnl` bind the C libraries libnftnl and libmnl (a build- and run-time
//! system dependency for every berth binary); `rustables` is GPL-3.0 (berth is Apache-2.0);
//! `nf_tables` 0.1 is pure Rust but has no NAT expressions and a closed expression enum. So
//! [`nat`] encodes the handful of nf_tables messages it needs itself (about 150 lines), on a
//! `netlink-sys` socket (re-exported by `rtnetlink`).
//!
//! # Namespaces and threads
//!
//! A netlink socket works in the namespace its opener was in when it was opened.
//! [`link::Netlink::new`] uses the caller's; [`link::Netlink::in_netns`] opens its socket on a
//! short-lived thread that `setns(2)`s into the target and exits, so no tokio worker ever
//! changes namespace (never call `setns` in `spawn_blocking` either: those threads are
//! reused). [`nat::Nat`] and [`nat::enable_ip_forward`] act in the calling thread's namespace,
//! which for the daemon is the host's.
//!
//! # Wiring it into the daemon
//!
//! Today `berth_runtime::spec::NetworkMode::Loopback` gives every container a new, empty
//! network namespace (the runtime creates it, `crates/berth-runtime/src/spec.rs`), `host`
//! shares the host's, and `container:<id>` joins `/proc/<pid>/ns/net` (`Join`). For the
//! default bridge and user networks:
//!
//! 1. **At daemon start:** load every network's leases with
//!    [`ipam::NetworkAddresses::load_all`] from e.g. `<data-root>/network/leases/`. For the
//!    default bridge, take `bip` from daemon.json ([`ipam::parse_bip`]), else its saved
//!    subnet, else [`ipam::choose_subnet`] over [`ipam::default_address_pools`] (or the
//!    configured `default-address-pools`) with [`link::Netlink::host_routes`] (ignoring
//!    berth's own bridges) and the other networks' subnets as `in_use`. Then
//!    [`link::Netlink::ensure_bridge`] (`berth0`, gateway/prefix), [`nat::enable_ip_forward`],
//!    and [`nat::Nat::apply`] with every non-internal network (this also drops rules for
//!    networks a crash left behind). Reconcile: drop leases whose owner is not a live
//!    container ([`ipam::NetworkAddresses::retain_owners`], then save), and delete every
//!    `veth*` in [`link::Netlink::bridge_ports`] that no live container's record names.
//! 2. **At container start** (`berth-daemon/src/lifecycle.rs`, `start_locked`): keep the spec's
//!    `Loopback` (the runtime makes the namespace). The shim's ready line carries the pid of
//!    the container's init, which is created but waits for `start`; between
//!    `shim_client::spawn` and `Request::Start`, allocate an address
//!    ([`ipam::NetworkAddresses::allocate`] or `request` for `--ip`, then `save`), open
//!    `/proc/<pid>/ns/net` ([`link::open_netns`]) and call [`link::connect`] with
//!    [`link::EndpointConfig::new`]`("berth0", ip/prefix, Some(gateway))`. Record the
//!    [`link::Endpoint`] in the container's record (`NetworkSettings.IPAddress`, `Gateway`,
//!    `IPPrefixLen`, `MacAddress` via [`ipam::format_mac`], `Networks.bridge`, and the host
//!    veth name for cleanup). On failure: release the lease, kill the shim, fail the start.
//!    (The alternative, a namespace made and bind-mounted by the daemon before the shim and
//!    passed as `NetworkMode::Join(path)`, is what podman does; it costs a bind mount and an
//!    unmount per container and makes cleanup the daemon's job, while with the runtime's
//!    namespace the kernel removes the veth pair by itself shortly after the container's last
//!    process exits, which the tests check.)
//! 3. **At container exit/stop/remove** (the exit monitor): [`link::disconnect`] the host veth
//!    (usually gone already, which it reports as `false`), release the lease
//!    ([`ipam::NetworkAddresses::release_owner`]) and save.
//! 4. **`network create/rm`**: a user network is a bridge `br-<id[..12]>` (Docker's name),
//!    a `NetworkAddresses` (subnet from `--subnet` checked with [`ipam::check_subnet`], or
//!    chosen as above; `--gateway`, `--ip-range`), a masquerade entry unless `--internal`
//!    (then no gateway route either: `EndpointConfig::gateway = None`), then `Nat::apply`.
//!    `rm` refuses while leases remain, then deletes the bridge, the leases file
//!    ([`ipam::NetworkAddresses::remove_file`]) and re-applies NAT.
//! 5. **`--ipv6`**: also a [`ipam::NetworkAddresses6`] (`--subnet` with a v6 CIDR, saved as
//!    `<id>.v6.json` in the same leases dir), [`link::Netlink::ensure_bridge6`] after
//!    `ensure_bridge` (gateway/prefix, e.g. `fd00:db8:1::1/64`), and per endpoint an
//!    `address6` (allocated, or `--ip6` with `request`) and `gateway6` in the
//!    [`link::EndpointConfig`]; [`dns::Lookup::lookup_v6`] for AAAA. Check
//!    [`link::ipv6_supported`] first to refuse `--ipv6` on a kernel without IPv6. NAT stays
//!    IPv4-only (no `ip6 berth` table yet): IPv6 containers reach the bridge and each other,
//!    and the outside only if the host routes the subnet.

pub mod dns;
pub mod ipam;
pub mod link;
pub mod nat;
pub mod ports;
