//! Host ports for published ports: parsing Docker's `PortBindings`, reserving a host port by
//! holding a socket bound to it, and choosing random ones from the ephemeral range.
//!
//! Forwarding itself is the kernel's (DNAT rules, [`crate::nat`]); no process listens. A
//! [`Reservation`] is a socket bound (never listening, so it accepts nothing) to the host
//! address and port: while it is held, no other program of the host can bind the port, so a
//! server started later cannot be shadowed by the DNAT rule without noticing, and binding is
//! also the check that nobody holds the port now. It costs a file descriptor and a socket
//! structure in the kernel (about a kilobyte), no process and no buffer: a UDP one gets the
//! smallest receive buffer, and traffic to the port is DNATed before it could reach it.

use crate::nat::Protocol;
use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::OwnedFd;

/// Docker's ephemeral range when `/proc/sys/net/ipv4/ip_local_port_range` cannot be read.
pub const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);

/// The host's ephemeral port range (`net.ipv4.ip_local_port_range`), where random host
/// ports come from (as Docker's port allocator).
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>());
            match (it.next(), it.next()) {
                (Some(Ok(a)), Some(Ok(b))) if a > 0 && a <= b => Some((a, b)),
                _ => None,
            }
        })
        .unwrap_or(DEFAULT_EPHEMERAL)
}

/// A host port held by a bound socket; dropping it frees the port.
#[derive(Debug)]
pub struct Reservation {
    _socket: OwnedFd,
}

/// Bind `ip:port` (`0.0.0.0` for every address) for `proto`, without listening.
pub fn reserve(proto: Protocol, ip: Ipv4Addr, port: u16) -> std::io::Result<Reservation> {
    let ty = match proto {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let fd = socket::socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None)?;
    if proto == Protocol::Udp {
        // The kernel raises this to its minimum (a few KiB).
        let _ = socket::setsockopt(&fd, socket::sockopt::RcvBuf, &0);
    }
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(SocketAddrV4::new(ip, port)),
    )?;
    Ok(Reservation { _socket: fd })
}

/// A port or an inclusive range of ports, as Docker writes them (`80`, `8000-8010`).
pub fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid port {s:?}");
    let num = |x: &str| x.trim().parse::<u16>().ok().filter(|p| *p > 0);
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a).ok_or_else(bad)?, num(b).ok_or_else(bad)?);
            if a > b {
                return Err(format!("invalid port range {s:?}"));
            }
            Ok((a, b))
        }
        None => num(s).map(|p| (p, p)).ok_or_else(bad),
    }
}

/// A `PortBindings`/`ExposedPorts` key: `80/tcp`, `53/udp`, `80` (tcp).
pub fn parse_port_key(key: &str) -> Result<(u16, Protocol), String> {
    let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
    let (p, q) = parse_range(port)?;
    if p != q {
        return Err(format!("invalid container port {key:?}: a range"));
    }
    Ok((p, proto.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_ranges() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, Protocol::Tcp));
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, Protocol::Udp));
        assert_eq!(parse_port_key("8080").unwrap(), (8080, Protocol::Tcp));
        assert!(parse_port_key("80/sctpx").is_err());
        assert!(parse_port_key("0/tcp").is_err());
        assert_eq!(parse_range("8000-8010").unwrap(), (8000, 8010));
        assert!(parse_range("9-8").is_err());
        assert!(parse_range("x").is_err());
        let (a, b) = ephemeral_range();
        assert!(a <= b);
    }

    #[test]
    fn a_reservation_holds_the_port() {
        let r = reserve(Protocol::Tcp, Ipv4Addr::LOCALHOST, 0).unwrap();
        drop(r);
        // Bound on an ephemeral port: find which, then show a second bind fails.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let held = reserve(Protocol::Tcp, Ipv4Addr::UNSPECIFIED, port).unwrap();
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_err());
        drop(held);
        assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        let u = reserve(Protocol::Udp, Ipv4Addr::LOCALHOST, port).unwrap();
        assert!(std::net::UdpSocket::bind(("127.0.0.1", port)).is_err());
        drop(u);
    }
}
