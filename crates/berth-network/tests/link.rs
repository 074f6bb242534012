//! Bridges and veth pairs for real, as root, each test inside network namespaces of its own
//! (one plays the host, the others containers), never in the host's.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use berth_network::ipam::{self, NetworkAddresses};
use berth_network::link::{self, EndpointConfig, LinkError, Netlink};
use common::{privileged, Netns};
use ipnet::{Ipv4Net, Ipv6Net};

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// What a container's namespace looks like from inside.
#[derive(Debug)]
struct Inside {
    eth0: Option<link::Link>,
    lo_up: bool,
    addresses: Vec<Ipv4Net>,
    routes: Vec<link::Route>,
}

fn inside(ns: &Netns) -> Inside {
    ns.block_on(|| async {
        let nl = Netlink::new().unwrap();
        let eth0 = nl.link("eth0").await.unwrap();
        let addresses = match &eth0 {
            Some(l) => nl.addresses(l.index).await.unwrap(),
            None => Vec::new(),
        };
        Inside {
            eth0,
            lo_up: nl.link("lo").await.unwrap().unwrap().up,
            addresses,
            routes: nl.routes().await.unwrap(),
        }
    })
}

/// Listen on `addr` in `ns`; returns the port. One connection is accepted and answered
/// with what it sent.
fn echo_server(ns: &Netns, addr: impl Into<IpAddr>) -> (u16, std::thread::JoinHandle<()>) {
    let addr = addr.into();
    let listener = ns.run(move || TcpListener::bind((addr, 0)).unwrap());
    let port = listener.local_addr().unwrap().port();
    // The socket stays in the namespace it was made in; accepting can happen anywhere.
    let t = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    (port, t)
}

fn echo_client(ns: &Netns, to: impl Into<IpAddr>, port: u16) -> std::io::Result<[u8; 5]> {
    let to = to.into();
    ns.run(move || {
        let mut s =
            TcpStream::connect_timeout(&SocketAddr::from((to, port)), Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"hello")?;
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf)?;
        Ok(buf)
    })
}

#[test]
fn bridge_is_idempotent_and_checked() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    host.block_on(|| async {
        let nl = Netlink::new().unwrap();
        let gw = net("172.17.0.1/16");
        let idx = nl.ensure_bridge("berth0", gw).await.unwrap();
        assert_eq!(nl.ensure_bridge("berth0", gw).await.unwrap(), idx);
        let l = nl.link("berth0").await.unwrap().unwrap();
        assert!(l.up);
        assert_eq!(l.kind.as_deref(), Some("bridge"));
        assert_eq!(nl.addresses(idx).await.unwrap(), [gw]);

        let e = nl.ensure_bridge("berth0", net("10.1.0.1/24")).await.unwrap_err();
        assert!(matches!(e, LinkError::BridgeAddress { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "bridge berth0 has address 172.17.0.1/16, not 10.1.0.1/24: remove it or configure 172.17.0.1/16"
        );
        assert!(nl.ensure_bridge("lo", gw).await.unwrap_err().to_string().contains("not a bridge"));
        assert!(matches!(
            nl.ensure_bridge("much-too-long-name", gw).await,
            Err(LinkError::InvalidName(_))
        ));

        // The bridge's route is a host route; the daemon ignores its own bridges.
        let routes = nl.host_routes(&[]).await.unwrap();
        assert_eq!(routes, [net("172.17.0.0/16")]);
        assert!(nl.host_routes(&[idx]).await.unwrap().is_empty());
        let pools = ipam::default_address_pools();
        assert_eq!(ipam::choose_subnet(&pools, &[], &routes).unwrap(), net("172.18.0.0/16"));

        // A bridge made with a second address is not berth's to change either.
        let idx2 = nl.ensure_bridge("berth1", net("10.2.0.1/24")).await.unwrap();
        nl.add_address(idx2, net("10.3.0.1/24")).await.unwrap();
        nl.ensure_bridge("berth1", net("10.3.0.1/24")).await.unwrap();

        assert!(nl.delete_link("berth0").await.unwrap());
        assert!(!nl.delete_link("berth0").await.unwrap());
        assert!(nl.link("berth0").await.unwrap().is_none());
        assert!(nl.delete_link("berth1").await.unwrap());
    });
}

#[test]
fn container_gets_eth0_reaches_gateway_and_disconnects() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    let container = Netns::new();
    let cns = container.file();
    let ep = host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        let mut addrs =
            NetworkAddresses::new("bridge", ipam::DEFAULT_BRIDGE_SUBNET, None, None).unwrap();
        let gw = addrs.gateway();
        let bridge_addr = Ipv4Net::new(gw, addrs.subnet().prefix_len()).unwrap();
        let bridge = nl.ensure_bridge("berth0", bridge_addr).await.unwrap();
        let a = addrs.allocate("c1").unwrap();
        assert_eq!(a, ip("172.17.0.2"));
        let cfg = EndpointConfig::new("berth0", Ipv4Net::new(a, 16).unwrap(), Some(gw));
        let ep = link::connect(&nl, cns.as_fd(), &cfg).await.unwrap();
        assert!(
            ep.host_ifname.starts_with("veth") && ep.host_ifname.len() == 11,
            "{ep:?}"
        );
        let h = nl.link(&ep.host_ifname).await.unwrap().unwrap();
        assert!(h.up);
        assert_eq!(h.controller, Some(bridge));
        assert_eq!(nl.bridge_ports(bridge).await.unwrap(), [h]);
        ep
    });
    assert_eq!(ep.ifname, "eth0");
    assert_eq!(ipam::format_mac(&ep.mac), "02:42:ac:11:00:02");

    let seen = inside(&container);
    let eth0 = seen.eth0.expect("eth0 in the container");
    assert!(eth0.up);
    assert_eq!(eth0.mac, Some(ep.mac));
    assert!(seen.lo_up);
    assert_eq!(seen.addresses, [net("172.17.0.2/16")]);
    let default = seen
        .routes
        .iter()
        .find(|r| r.destination.prefix_len() == 0)
        .expect("default route");
    assert_eq!(default.gateway, Some(ip("172.17.0.1")));
    assert_eq!(default.oif, Some(eth0.index));

    // The container reaches a service on the gateway's address, in the host's namespace.
    let (port, server) = echo_server(&host, ip("172.17.0.1"));
    assert_eq!(
        &echo_client(&container, ip("172.17.0.1"), port).unwrap(),
        b"hello"
    );
    server.join().unwrap();

    // Deleting the host end removes both ends.
    let name = ep.host_ifname.clone();
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        assert!(link::disconnect(&nl, &name).await.unwrap());
        assert!(nl.link(&name).await.unwrap().is_none());
        assert!(!link::disconnect(&nl, &name).await.unwrap());
    });
    assert!(inside(&container).eth0.is_none());
}

#[test]
fn two_containers_reach_each_other_over_the_bridge() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    let c1 = Netns::new();
    let c2 = Netns::new();
    let (f1, f2) = (c1.file(), c2.file());
    let (e1, e2) = host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        let mut addrs = NetworkAddresses::new("net1", net("10.88.0.0/24"), None, None).unwrap();
        nl.ensure_bridge("br-test", net("10.88.0.1/24"))
            .await
            .unwrap();
        let mut plug = |f: std::fs::File, owner: &str| {
            let a = addrs.allocate(owner).unwrap();
            let cfg = EndpointConfig::new(
                "br-test",
                Ipv4Net::new(a, 24).unwrap(),
                Some(ip("10.88.0.1")),
            );
            let nl = nl.clone();
            async move { link::connect(&nl, f.as_fd(), &cfg).await.unwrap() }
        };
        let e1 = plug(f1, "c1").await;
        let e2 = plug(f2, "c2").await;
        (e1, e2)
    });
    assert_eq!(e1.address, net("10.88.0.2/24"));
    assert_eq!(e2.address, net("10.88.0.3/24"));
    assert_ne!(e1.host_ifname, e2.host_ifname);

    let (port, server) = echo_server(&c2, ip("10.88.0.3"));
    assert_eq!(&echo_client(&c1, ip("10.88.0.3"), port).unwrap(), b"hello");
    server.join().unwrap();
    let (port, server) = echo_server(&c1, ip("10.88.0.2"));
    assert_eq!(&echo_client(&c2, ip("10.88.0.2"), port).unwrap(), b"hello");
    server.join().unwrap();

    // Removing the bridge leaves the pairs unplugged; the peers stay until deleted.
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        assert!(nl.delete_link("br-test").await.unwrap());
        assert!(link::disconnect(&nl, &e1.host_ifname).await.unwrap());
        assert!(link::disconnect(&nl, &e2.host_ifname).await.unwrap());
        let left: Vec<_> = nl
            .links()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(left, ["lo"]);
    });
    assert!(inside(&c1).eth0.is_none());
    assert!(inside(&c2).eth0.is_none());
}

#[test]
fn a_failed_connect_leaves_nothing() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    let container = Netns::new();
    let cns = container.file();
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        // No bridge yet.
        let cfg = EndpointConfig::new("berth0", net("172.17.0.2/16"), Some(ip("172.17.0.1")));
        let e = link::connect(&nl, cns.as_fd(), &cfg).await.unwrap_err();
        assert_eq!(e.to_string(), "no such interface: berth0");
        // A gateway the container cannot reach: the route is refused after the pair was made.
        nl.ensure_bridge("berth0", net("172.17.0.1/16"))
            .await
            .unwrap();
        let cfg = EndpointConfig::new("berth0", net("172.17.0.2/16"), Some(ip("10.9.9.9")));
        let e = link::connect(&nl, cns.as_fd(), &cfg).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("add default route via 10.9.9.9: "),
            "{e}"
        );
        let left: Vec<_> = nl
            .links()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(left, ["lo", "berth0"]);
        // A netns that is not one.
        let not_ns = std::fs::File::open("/proc/self/stat").unwrap();
        let cfg = EndpointConfig::new("berth0", net("172.17.0.3/16"), Some(ip("172.17.0.1")));
        let e = link::connect(&nl, not_ns.as_fd(), &cfg).await.unwrap_err();
        assert!(e.to_string().starts_with("create veth pair"), "{e}");
        let left: Vec<_> = nl
            .links()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(left, ["lo", "berth0"]);
    });
    let seen = inside(&container);
    assert!(seen.eth0.is_none());
    assert_eq!(
        seen.routes
            .iter()
            .filter(|r| r.destination.prefix_len() == 0)
            .count(),
        0,
        "{seen:?}"
    );
}

#[test]
fn netns_by_path() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    let container = Netns::new();
    let path = container.run(|| format!("/proc/self/task/{}/ns/net", nix::unistd::gettid()));
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        nl.ensure_bridge("berth0", net("172.17.0.1/16"))
            .await
            .unwrap();
        let ns = link::open_netns(std::path::Path::new(&path)).unwrap();
        let cfg = EndpointConfig::new("berth0", net("172.17.0.5/16"), Some(ip("172.17.0.1")));
        link::connect(&nl, ns.as_fd(), &cfg).await.unwrap();
        let e = link::open_netns(std::path::Path::new("/proc/self/task/0/ns/net")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("open network namespace /proc/self/task/0/ns/net: "),
            "{e}"
        );
    });
    assert_eq!(inside(&container).addresses, [net("172.17.0.5/16")]);
}

#[test]
fn the_pair_goes_when_the_container_namespace_dies() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    let container = Netns::new();
    let cns = container.file();
    let ep = host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        nl.ensure_bridge("berth0", net("172.17.0.1/16"))
            .await
            .unwrap();
        let cfg = EndpointConfig::new("berth0", net("172.17.0.2/16"), Some(ip("172.17.0.1")));
        link::connect(&nl, cns.as_fd(), &cfg).await.unwrap()
    });
    // The namespace's last references: its thread and the file the test held.
    drop(container);
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        for _ in 0..200 {
            if nl.link(&ep.host_ifname).await.unwrap().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} outlived its container's namespace", ep.host_ifname);
    });
}

fn net6(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// `disable_ipv6` of `ifname` (or `default`, `all`) in the namespace of the calling thread.
fn disable_ipv6(ifname: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"))
        .unwrap()
        .trim()
        .to_string()
}

/// `ip <args>` in the namespace of the calling thread, when `ip` is there.
fn ip_cmd(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("ip").args(args).output().ok()?;
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    Some(String::from_utf8(out.stdout).unwrap())
}

#[test]
fn ipv6_endpoints_are_usable_at_once() {
    if !privileged() {
        return;
    }
    if !link::ipv6_supported() {
        eprintln!("skipped: the kernel has no IPv6");
        return;
    }
    let host = Netns::new();
    let c1 = Netns::new();
    let c2 = Netns::new();
    // Interfaces made in c1 start with IPv6 disabled: connect enables it on eth0.
    c1.run(|| {
        std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1").unwrap();
    });
    let (f1, f2) = (c1.file(), c2.file());
    let (e1, e2) = host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        let gw6 = net6("fd00:db8:1::1/64");
        // Without the v4 bridge first: no such interface.
        assert!(matches!(
            nl.ensure_bridge6("br-v6", gw6).await,
            Err(LinkError::NoSuchLink(_))
        ));
        assert!(matches!(
            nl.ensure_bridge6("lo", gw6).await,
            Err(LinkError::NotABridge(_))
        ));
        let idx = nl
            .ensure_bridge("br-v6", net("10.90.0.1/24"))
            .await
            .unwrap();
        std::fs::write("/proc/sys/net/ipv6/conf/br-v6/disable_ipv6", "1").unwrap();
        nl.ensure_bridge6("br-v6", gw6).await.unwrap();
        assert_eq!(disable_ipv6("br-v6"), "0");
        nl.ensure_bridge6("br-v6", gw6).await.unwrap();
        let a6 = nl.addresses6(idx).await.unwrap();
        assert_eq!(a6.iter().filter(|a| **a == gw6).count(), 1, "{a6:?}");
        // The v4 side is untouched, and adding the address again is fine.
        assert_eq!(nl.addresses(idx).await.unwrap(), [net("10.90.0.1/24")]);
        nl.add_address6(idx, gw6).await.unwrap();

        let mut addrs6 =
            ipam::NetworkAddresses6::new("net6", net6("fd00:db8:1::/64"), None).unwrap();
        let mut plug = |f: std::fs::File, owner: &str, v4: &str| {
            let a = addrs6.allocate(owner).unwrap();
            let mut cfg = EndpointConfig::new("br-v6", net(v4), Some(ip("10.90.0.1")));
            cfg.address6 = Some(Ipv6Net::new(a, 64).unwrap());
            cfg.gateway6 = Some(addrs6.gateway());
            let nl = nl.clone();
            async move { link::connect(&nl, f.as_fd(), &cfg).await.unwrap() }
        };
        let e1 = plug(f1, "c1", "10.90.0.2/24").await;
        let e2 = plug(f2, "c2", "10.90.0.3/24").await;
        (e1, e2)
    });
    assert_eq!(e1.address6, Some(net6("fd00:db8:1::2/64")));
    assert_eq!(e2.address6, Some(net6("fd00:db8:1::3/64")));

    // Inside: the address is there, not tentative, and the default route goes via the gateway.
    let (addrs, shown, routes) = c1.block_on(|| async {
        let nl = Netlink::new().unwrap();
        let eth0 = nl.link("eth0").await.unwrap().unwrap();
        assert_eq!(disable_ipv6("eth0"), "0");
        (
            nl.addresses6(eth0.index).await.unwrap(),
            ip_cmd(&["-6", "addr", "show", "dev", "eth0"]),
            ip_cmd(&["-6", "route", "show", "default"]),
        )
    });
    assert!(addrs.contains(&net6("fd00:db8:1::2/64")), "{addrs:?}");
    assert_eq!(inside(&c1).addresses, [net("10.90.0.2/24")]);
    if let Some(shown) = shown {
        let line = shown
            .lines()
            .find(|l| l.contains("fd00:db8:1::2/64"))
            .unwrap_or_else(|| panic!("{shown}"));
        assert!(!line.contains("tentative"), "{shown}");
    }
    if let Some(routes) = routes {
        assert!(
            routes.contains("default via fd00:db8:1::1 dev eth0"),
            "{routes}"
        );
    }

    // At once (no DAD wait): a container reaches the gateway, and the other container.
    let (port, server) = echo_server(&host, ip6("fd00:db8:1::1"));
    assert_eq!(
        &echo_client(&c1, ip6("fd00:db8:1::1"), port).unwrap(),
        b"hello"
    );
    server.join().unwrap();
    let (port, server) = echo_server(&c2, ip6("fd00:db8:1::3"));
    assert_eq!(
        &echo_client(&c1, ip6("fd00:db8:1::3"), port).unwrap(),
        b"hello"
    );
    server.join().unwrap();
    // And a ping, when there is a ping that does IPv6.
    let pinged = c1.run(|| {
        let args = ["-6", "-c", "1", "-W", "2", "fd00:db8:1::1"];
        let ping = std::process::Command::new("ping").args(args).output();
        ping.or_else(|_| {
            std::process::Command::new("busybox")
                .arg("ping")
                .args(args)
                .output()
        })
        .ok()
        .map(|o| (o.status.success(), o))
    });
    if let Some((ok, out)) = pinged {
        assert!(ok, "{out:?}");
    }

    // A v4-only endpoint on the same bridge has no IPv6 address but the link-local one.
    let c3 = Netns::new();
    let f3 = c3.file();
    let e3 = host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        let cfg = EndpointConfig::new("br-v6", net("10.90.0.4/24"), Some(ip("10.90.0.1")));
        link::connect(&nl, f3.as_fd(), &cfg).await.unwrap()
    });
    assert_eq!(e3.address6, None);
    let a3 = c3.block_on(|| async {
        let nl = Netlink::new().unwrap();
        let eth0 = nl.link("eth0").await.unwrap().unwrap();
        nl.addresses6(eth0.index).await.unwrap()
    });
    assert!(
        a3.iter().all(|a| a.addr().is_unicast_link_local()),
        "{a3:?}"
    );
}

#[test]
fn ipv6_gateway_the_container_cannot_reach_leaves_nothing() {
    if !privileged() || !link::ipv6_supported() {
        return;
    }
    let host = Netns::new();
    let container = Netns::new();
    let cns = container.file();
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        nl.ensure_bridge("br-v6", net("10.90.0.1/24"))
            .await
            .unwrap();
        nl.ensure_bridge6("br-v6", net6("fd00:db8:1::1/64"))
            .await
            .unwrap();
        let mut cfg = EndpointConfig::new("br-v6", net("10.90.0.2/24"), None);
        cfg.address6 = Some(net6("fd00:db8:1::2/64"));
        cfg.gateway6 = Some(ip6("fd00:db8:9::1"));
        let e = link::connect(&nl, cns.as_fd(), &cfg).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("add default route via fd00:db8:9::1: "),
            "{e}"
        );
        let left: Vec<_> = nl
            .links()
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.name)
            .collect();
        assert_eq!(left, ["lo", "br-v6"]);
    });
    assert!(inside(&container).eth0.is_none());
}
