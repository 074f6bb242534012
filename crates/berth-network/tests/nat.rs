//! Outbound NAT for real, as root, in private namespaces: a container behind the bridge
//! reaches an "outside" namespace (on another bridge of the host namespace, with no route
//! back to the containers) only once berth's masquerade rule is in, and is seen there with
//! the host's address.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::time::Duration;

use berth_network::link::{self, EndpointConfig, Netlink};
use berth_network::nat::{self, Masquerade, Nat};
use common::{privileged, Netns};
use ipnet::Ipv4Net;

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `nft list table ip berth` in `ns`, when nft is installed (only to look, never to change).
fn nft_list(ns: &Netns) -> Option<String> {
    ns.run(|| {
        let out = std::process::Command::new("nft")
            .args(["list", "table", "ip", "berth"])
            .output()
            .ok()?;
        Some(
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    })
}

/// Connect from `ns` to `to` and read back the source address the server saw.
fn seen_as(ns: &Netns, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&to, timeout)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    })
}

#[test]
fn masquerade_takes_containers_out_with_the_hosts_address() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    let container = Netns::new();
    let outside = Netns::new();
    let (cf, of) = (container.file(), outside.file());
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        nl.ensure_bridge("berth0", net("172.17.0.1/16"))
            .await
            .unwrap();
        nl.ensure_bridge("uplink0", net("192.0.2.1/24"))
            .await
            .unwrap();
        let cfg = EndpointConfig::new("berth0", net("172.17.0.2/16"), Some(ip("172.17.0.1")));
        link::connect(&nl, cf.as_fd(), &cfg).await.unwrap();
        // The outside knows only its own link: no route back to 172.17.0.0/16.
        let cfg = EndpointConfig::new("uplink0", net("192.0.2.2/24"), None);
        link::connect(&nl, of.as_fd(), &cfg).await.unwrap();
    });
    host.run(|| nat::enable_ip_forward().unwrap());
    assert_eq!(
        host.run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap()),
        "1\n"
    );

    let listener = outside.run(|| TcpListener::bind((ip("192.0.2.2"), 0)).unwrap());
    let to = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        for s in listener.incoming().take(1) {
            let mut s = s.unwrap();
            let peer = s.peer_addr().unwrap().ip().to_string();
            s.write_all(peer.as_bytes()).unwrap();
        }
    });

    // Without NAT the answers cannot find their way back.
    assert!(seen_as(&container, to, Duration::from_millis(700)).is_err());

    let nat = Nat::new();
    let rules = [Masquerade {
        subnet: net("172.17.0.0/16"),
        bridge: "berth0".into(),
    }];
    host.run(move || nat.apply(&rules).unwrap());
    assert_eq!(
        seen_as(&container, to, Duration::from_secs(5)).unwrap(),
        "192.0.2.1"
    );
    server.join().unwrap();

    if let Some(text) = nft_list(&host) {
        assert!(
            text.contains("type nat hook postrouting priority srcnat; policy accept;"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"),
            "{text}"
        );
    }

    // Applying is idempotent and replaces the rules; removing removes the table.
    host.run(|| {
        let nat = Nat::new();
        let two = [
            Masquerade {
                subnet: net("172.17.0.0/16"),
                bridge: "berth0".into(),
            },
            Masquerade {
                subnet: net("172.18.0.0/16"),
                bridge: "br-0123456789ab".into(),
            },
        ];
        nat.apply(&two).unwrap();
        nat.apply(&two).unwrap();
    });
    if let Some(text) = nft_list(&host) {
        assert_eq!(text.matches("masquerade").count(), 2, "{text}");
        assert!(
            text.contains("ip saddr 172.18.0.0/16 oifname != \"br-0123456789ab\" masquerade"),
            "{text}"
        );
    }
    host.run(|| Nat::new().apply(&[]).unwrap());
    if let Some(text) = nft_list(&host) {
        assert_eq!(text.matches("masquerade").count(), 0, "{text}");
    }
    let bad = [Masquerade {
        subnet: net("10.0.0.0/8"),
        bridge: "no/such".into(),
    }];
    assert!(host.run(move || Nat::new().apply(&bad)).is_err());
    host.run(|| {
        Nat::new().remove().unwrap();
        Nat::new().remove().unwrap();
    });
    if let Some(text) = nft_list(&host) {
        assert!(!text.contains("table ip berth {"), "{text}");
    }
}

/// Published ports: a server in a "container" is reached through the host's addresses
/// (DNAT in prerouting/output), from the host itself (its bridge address and 127.0.0.1: the
/// output chain, route_localnet and the loopback hairpin) and from another container through
/// the gateway (the container hairpin); a rule with an address only captures that address;
/// the listing reads as the module documentation says; an empty list removes the rules.
#[test]
fn published_ports_are_dnat_rules() {
    if !privileged() {
        return;
    }
    let host = Netns::new();
    let web = Netns::new();
    let client = Netns::new();
    let (wf, cf) = (web.file(), client.file());
    host.block_on(move || async move {
        let nl = Netlink::new().unwrap();
        nl.ensure_bridge("berth0", net("172.17.0.1/16"))
            .await
            .unwrap();
        let lo = nl.link("lo").await.unwrap().unwrap();
        nl.set_up(lo.index).await.unwrap();
        for (f, a) in [(wf, "172.17.0.2/16"), (cf, "172.17.0.3/16")] {
            let cfg = EndpointConfig::new("berth0", net(a), Some(ip("172.17.0.1")));
            link::connect(&nl, f.as_fd(), &cfg).await.unwrap();
        }
    });
    host.run(|| {
        nat::enable_ip_forward().unwrap();
        nat::enable_route_localnet("berth0").unwrap();
    });
    let listener = web.run(|| TcpListener::bind((ip("0.0.0.0"), 80)).unwrap());
    let server = std::thread::spawn(move || {
        for s in listener.incoming().take(3) {
            let mut s = s.unwrap();
            let peer = s.peer_addr().unwrap().ip().to_string();
            s.write_all(peer.as_bytes()).unwrap();
        }
    });
    let networks = [Masquerade {
        subnet: net("172.17.0.0/16"),
        bridge: "berth0".into(),
    }];
    let forwards = [
        nat::PortForward {
            proto: nat::Protocol::Tcp,
            host_ip: None,
            host_port: 8080,
            dest: ip("172.17.0.2"),
            dest_port: 80,
        },
        nat::PortForward {
            proto: nat::Protocol::Udp,
            host_ip: Some(ip("127.0.0.1")),
            host_port: 5353,
            dest: ip("172.17.0.2"),
            dest_port: 53,
        },
    ];
    let (n, f) = (networks.clone(), forwards.clone());
    host.run(move || Nat::new().apply_all(&n, &f).unwrap());
    let t = Duration::from_secs(5);
    let to = |a: &str| SocketAddr::new(ip(a).into(), 8080);
    assert_eq!(seen_as(&host, to("127.0.0.1"), t).unwrap(), "172.17.0.1");
    assert_eq!(seen_as(&host, to("172.17.0.1"), t).unwrap(), "172.17.0.1");
    assert_eq!(seen_as(&client, to("172.17.0.1"), t).unwrap(), "172.17.0.1");
    server.join().unwrap();

    if let Some(text) = nft_list(&host) {
        for want in [
            "type nat hook prerouting priority dstnat; policy accept;",
            "type nat hook output priority -100; policy accept;",
            "fib daddr type local tcp dport 8080 dnat to 172.17.0.2:80",
            "ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.2:53",
            "ip saddr 127.0.0.0/8 oifname \"berth0\" masquerade",
            "ip saddr 172.17.0.0/16 oifname \"berth0\" ct status dnat masquerade",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
        assert_eq!(text.matches("dnat to").count(), 4, "{text}");
    }
    host.run(move || Nat::new().apply(&networks).unwrap());
    if let Some(text) = nft_list(&host) {
        assert_eq!(text.matches("dnat").count(), 0, "{text}");
        assert_eq!(text.matches("masquerade").count(), 1, "{text}");
    }
    host.run(|| Nat::new().remove().unwrap());
}
