//! The embedded DNS server of user-defined networks, as dockerd's (libnetwork's resolver).
//!
//! Every container on a user-defined network gets a DNS server at `127.0.0.11:53`
//! ([`DNS_ADDRESS`], UDP and TCP), inside its own network namespace, and a `resolv.conf`
//! that says `nameserver 127.0.0.11`. The daemon holds the sockets and serves them as tasks on
//! its tokio runtime; one [`DnsServer`] per container, asking a [`Lookup`] (the daemon's view
//! of that container's networks) for names.
//!
//! # What it answers
//!
//! For a standard query (opcode QUERY, one question, class IN):
//!
//! - type `A` for a name [`Lookup::lookup_v4`] knows (matched case-insensitively, without
//!   the trailing dot): NOERROR with one A record per address, TTL 600, `RA` set (as
//!   Docker: not `AA`); type `AAAA` for a name [`Lookup::lookup_v6`] knows: the AAAA records,
//!   likewise;
//! - any other type (`MX`…, or `A`/`AAAA` for a name with addresses of the other family
//!   only) for a name either knows: NOERROR with no answers, so that a resolver asking for
//!   A and AAAA at once does not wait for the second;
//! - `PTR` for `d.c.b.a.in-addr.arpa` or a full (32-nibble) `ip6.arpa` name whose address
//!   [`Lookup::reverse`] knows: the PTR record (`web.mynet.`).
//!
//! Everything else is forwarded unchanged to [`Lookup::upstreams`], in turn: a UDP query over
//! UDP (at most [`UPSTREAM_TIMEOUT`] per upstream, only a reply with the query's id counts), a
//! TCP query over TCP (2-byte length framing). The first answer goes back as it came, except
//! that a SERVFAIL or REFUSED answer moves on to the next upstream as Docker does (it is
//! returned only when no upstream answers better). No upstream, or none answering: SERVFAIL
//! with the question echoed. A local answer too big for the client's UDP size (512 bytes, or
//! its EDNS size) goes back truncated (`TC`), so that the client asks again over TCP.
//!
//! Malformed packets, and responses sent to the server, are ignored (UDP) or close the
//! connection (TCP); nothing a client sends can make it panic. Each forwarded UDP query runs
//! as a task of its own, so a slow upstream delays only the queries it serves; at most
//! [`MAX_IN_FLIGHT`] at once per server, over that a query gets SERVFAIL at once. Each TCP
//! connection is a task (at most [`MAX_IN_FLIGHT`] at once; more are closed), serving any
//! number of queries one after the other, and is closed after [`TCP_IDLE_TIMEOUT`] idle.
//! Messages are parsed and built with `hickory-proto`.
//!
//! # Where the sockets live
//!
//! A socket belongs to the network namespace its creator was in when it was made, and stays
//! there wherever it is used. [`DnsServer::start_in_netns`] therefore binds both sockets on
//! a short-lived thread that `setns(2)`s into the container's namespace and exits (as
//! [`crate::link::Netlink::in_netns`] does for netlink): no tokio worker ever changes
//! namespace. The sockets are then served by ordinary tasks of the daemon.
//!
//! The sockets that forward queries upstream are opened by those tasks, so in the daemon's
//! namespace (the host's), not the container's. That is deliberate: the upstreams are the
//! host's resolvers, and a loopback one (systemd-resolved's `127.0.0.53`, a local dnsmasq)
//! works from the host's namespace while it is unreachable from the container's. dockerd 20.10
//! forwards from inside the container, so it drops those and falls back to public servers
//! (later dockerd versions forward to loopback ones from the host's namespace); berth forwards
//! every query from the daemon's namespace, and the daemon should pass the host's
//! `resolv.conf` nameservers as they are.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::BorrowedFd;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, IntoName, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use ipnet::IpNet;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tracing::debug;

/// The address of the embedded DNS server inside a container, as Docker's.
pub const DNS_ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);
/// Its port, UDP and TCP.
pub const DNS_PORT: u16 = 53;
/// The TTL of local answers (Docker's).
pub const TTL: u32 = 600;
/// How long one upstream has to answer a forwarded query.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP connection may stay idle (or take to send a query) before it is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// How many forwarded UDP queries, and how many TCP connections, one server has at once.
pub const MAX_IN_FLIGHT: usize = 64;

/// The UDP size of a client without EDNS.
const PLAIN_UDP_SIZE: u16 = 512;
/// The largest DNS message (TCP's 2-byte length, UDP's datagram).
const MAX_MESSAGE: usize = 65535;

/// What the server asks the daemon, for the container it serves.
///
/// The methods are called on tokio worker threads, once per query: they must not block
/// (no I/O, only short locks).
pub trait Lookup: Send + Sync + 'static {
    /// IPv4 addresses of `name` (lowercase, no trailing dot) as the container sees it: empty
    /// when the name is not a local one.
    fn lookup_v4(&self, name: &str) -> Vec<Ipv4Addr>;
    /// IPv6 addresses of `name` (as for [`Self::lookup_v4`]): empty when the name is not a
    /// local one or has no IPv6 address (a network without `--ipv6`). The default knows none.
    fn lookup_v6(&self, name: &str) -> Vec<Ipv6Addr> {
        let _ = name;
        Vec::new()
    }
    /// The name for a reverse lookup of `ip` (e.g. "web.mynet"), if it is a local container's.
    fn reverse(&self, ip: IpAddr) -> Option<String>;
    /// The servers to forward other queries to (port 53 usually), in order.
    fn upstreams(&self) -> Vec<SocketAddr>;
}

/// Timeouts and bounds of one server (the constants above, shorter in tests).
#[derive(Debug, Clone, Copy)]
struct Limits {
    upstream_timeout: Duration,
    idle_timeout: Duration,
    max_in_flight: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            upstream_timeout: UPSTREAM_TIMEOUT,
            idle_timeout: TCP_IDLE_TIMEOUT,
            max_in_flight: MAX_IN_FLIGHT,
        }
    }
}

struct Shared {
    lookup: Arc<dyn Lookup>,
    limits: Limits,
}

/// A running server; dropping it stops it (aborts its tasks, closes its sockets).
pub struct DnsServer {
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
    tasks: [JoinHandle<()>; 2],
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("udp", &self.udp_addr)
            .field("tcp", &self.tcp_addr)
            .finish()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // The per-query and per-connection tasks belong to JoinSets owned by these two, so
        // they are aborted with them.
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DnsServer {
    /// Bind 127.0.0.11:53 UDP and TCP inside the network namespace `ns` (an open
    /// `/proc/<pid>/ns/net`) and serve there. The namespace's `lo` must be up. The sockets are
    /// made by a new thread that enters the namespace and exits; this blocks the caller for as
    /// long as that takes (tens of microseconds). Call from inside a tokio runtime.
    pub fn start_in_netns(ns: BorrowedFd<'_>, lookup: Arc<dyn Lookup>) -> io::Result<DnsServer> {
        tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let (udp, tcp) = std::thread::scope(|s| {
            s.spawn(|| -> io::Result<_> {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                let addr = SocketAddr::from((DNS_ADDRESS, DNS_PORT));
                let udp = std::net::UdpSocket::bind(addr)?;
                let tcp = std::net::TcpListener::bind(addr)?;
                Ok((udp, tcp))
            })
            .join()
            .unwrap_or_else(|p| resume_unwind(p))
        })?;
        Self::serve(udp, tcp, lookup)
    }

    /// Serve on sockets already bound (used by the above, and by tests on 127.0.0.1:0).
    /// `tcp` must be listening (as `std::net::TcpListener::bind` leaves it). Call from inside
    /// a tokio runtime.
    pub fn serve(
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        lookup: Arc<dyn Lookup>,
    ) -> io::Result<DnsServer> {
        Self::serve_with(udp, tcp, lookup, Limits::default())
    }

    fn serve_with(
        udp: std::net::UdpSocket,
        tcp: std::net::TcpListener,
        lookup: Arc<dyn Lookup>,
        limits: Limits,
    ) -> io::Result<DnsServer> {
        let runtime = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        udp.set_nonblocking(true)?;
        tcp.set_nonblocking(true)?;
        let udp_addr = udp.local_addr()?;
        let tcp_addr = tcp.local_addr()?;
        let udp = UdpSocket::from_std(udp)?;
        let tcp = TcpListener::from_std(tcp)?;
        let shared = Arc::new(Shared { lookup, limits });
        let tasks = [
            runtime.spawn(udp_loop(Arc::new(udp), shared.clone())),
            runtime.spawn(tcp_loop(tcp, shared)),
        ];
        debug!(%udp_addr, %tcp_addr, "dns: serving");
        Ok(DnsServer {
            udp_addr,
            tcp_addr,
            tasks,
        })
    }

    /// The address the UDP socket is bound to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The address the TCP socket listens on.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }
}

/// What to do with one packet a client sent.
enum Outcome {
    /// Malformed, or not a query: drop it (UDP) or close the connection (TCP).
    Ignore,
    /// Answered locally: the encoded reply.
    Reply(Vec<u8>),
    /// Not a local name: forward the packet; the parsed query is for a SERVFAIL.
    Forward(Message),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// Decide what to do with `packet`, answering it if it is about a local name. Never panics:
/// a panic (of the parser or of the `Lookup`) counts as a malformed packet.
fn decide(lookup: &dyn Lookup, packet: &[u8], transport: Transport, peer: SocketAddr) -> Outcome {
    catch_unwind(AssertUnwindSafe(|| {
        decide_inner(lookup, packet, transport, peer)
    }))
    .unwrap_or(Outcome::Ignore)
}

fn decide_inner(
    lookup: &dyn Lookup,
    packet: &[u8],
    transport: Transport,
    peer: SocketAddr,
) -> Outcome {
    let query = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(e) => {
            debug!(%peer, ?transport, error = %e, "dns: malformed packet ignored");
            return Outcome::Ignore;
        }
    };
    if query.metadata.message_type != MessageType::Query {
        debug!(%peer, ?transport, "dns: a response sent to the server ignored");
        return Outcome::Ignore;
    }
    let Some(answers) = local_answers(lookup, &query) else {
        if let Some(q) = query.queries.first() {
            debug!(%peer, ?transport, name = %q.name(), qtype = %q.query_type(), "dns: forwarding");
        }
        return Outcome::Forward(query);
    };
    if let Some(q) = query.queries.first() {
        debug!(%peer, ?transport, name = %q.name(), qtype = %q.query_type(),
            answers = answers.len(), "dns: answered locally");
    }
    let mut reply = reply_to(&query, ResponseCode::NoError);
    reply.answers = answers;
    let limit = match transport {
        Transport::Udp => Some(udp_size(&query)),
        Transport::Tcp => None,
    };
    match encode(reply, limit) {
        Some(bytes) => Outcome::Reply(bytes),
        None => Outcome::Ignore,
    }
}

/// The answers to `query` if it is about a local name or address, `None` to forward it.
fn local_answers(lookup: &dyn Lookup, query: &Message) -> Option<Vec<Record>> {
    if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
        return None;
    }
    let q = &query.queries[0];
    if q.query_class() != DNSClass::IN {
        return None;
    }
    if q.query_type() == RecordType::PTR {
        if let Some(ip) = arpa_address(q.name()) {
            let target = lookup.reverse(ip)?;
            let target = fqdn(&target)?;
            return Some(vec![Record::from_rdata(
                q.name().clone(),
                TTL,
                RData::PTR(PTR(target)),
            )]);
        }
    }
    let key = name_key(q.name())?;
    let record = |data| Record::from_rdata(q.name().clone(), TTL, data);
    match q.query_type() {
        RecordType::A => {
            let v4 = lookup.lookup_v4(&key);
            if !v4.is_empty() {
                return Some(v4.into_iter().map(|a| record(RData::A(A(a)))).collect());
            }
            // A name with IPv6 addresses only: no A records, but it is ours.
            (!lookup.lookup_v6(&key).is_empty()).then(Vec::new)
        }
        RecordType::AAAA => {
            let v6 = lookup.lookup_v6(&key);
            if !v6.is_empty() {
                return Some(
                    v6.into_iter()
                        .map(|a| record(RData::AAAA(AAAA(a))))
                        .collect(),
                );
            }
            (!lookup.lookup_v4(&key).is_empty()).then(Vec::new)
        }
        _ => (!lookup.lookup_v4(&key).is_empty() || !lookup.lookup_v6(&key).is_empty())
            .then(Vec::new),
    }
}

/// The name as [`Lookup::lookup_v4`] takes it: lowercase, labels joined with dots, no
/// trailing dot. `None` for the root or a label with bytes no container name has.
fn name_key(name: &Name) -> Option<String> {
    let mut key = String::with_capacity(name.len());
    for label in name.iter() {
        if !key.is_empty() {
            key.push('.');
        }
        for &b in label {
            if !b.is_ascii_graphic() || b == b'.' {
                return None;
            }
            key.push(char::from(b.to_ascii_lowercase()));
        }
    }
    (!key.is_empty()).then_some(key)
}

/// The address a whole `in-addr.arpa` / `ip6.arpa` name stands for (not a partial one).
fn arpa_address(name: &Name) -> Option<IpAddr> {
    let net = name.parse_arpa_name().ok()?;
    (net.prefix_len() == net.max_prefix_len()).then(|| match net {
        IpNet::V4(n) => IpAddr::V4(n.addr()),
        IpNet::V6(n) => IpAddr::V6(n.addr()),
    })
}

/// `web.mynet` (with or without its trailing dot) as a fully qualified name.
fn fqdn(name: &str) -> Option<Name> {
    let name = format!("{}.", name.trim_end_matches('.'));
    Name::from_ascii(&name)
        .or_else(|_| name.as_str().into_name())
        .ok()
}

/// The reply header for `query` (id, opcode, RD and CD copied, RA set), with its question.
fn reply_to(query: &Message, code: ResponseCode) -> Message {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata = Metadata::response_from_request(&query.metadata);
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = code;
    reply.queries = query.queries.clone();
    if query.edns.is_some() {
        // A client that sent an OPT record gets one back (RFC 6891), with our UDP size.
        reply.set_edns(Edns::new());
    }
    reply
}

/// How big a UDP reply to `query` may be.
fn udp_size(query: &Message) -> usize {
    let size = query
        .edns
        .as_ref()
        .map_or(PLAIN_UDP_SIZE, |e| e.max_payload().max(PLAIN_UDP_SIZE));
    usize::from(size)
}

/// Encode `reply`; over `limit`, without its answers and with `TC` set.
fn encode(mut reply: Message, limit: Option<usize>) -> Option<Vec<u8>> {
    let bytes = reply.to_vec().ok()?;
    match limit {
        Some(limit) if bytes.len() > limit => {
            reply.answers.clear();
            reply.authorities.clear();
            reply.additionals.clear();
            reply.metadata.truncation = true;
            reply.to_vec().ok()
        }
        _ => Some(bytes),
    }
}

/// SERVFAIL for `query`, its question echoed.
fn servfail(query: &Message) -> Option<Vec<u8>> {
    encode(reply_to(query, ResponseCode::ServFail), None)
}

/// The header of `reply` if it answers the query `id`.
fn reply_header(reply: &[u8], id: u16) -> Option<Header> {
    let header = Header::read(&mut BinDecoder::new(reply)).ok()?;
    (header.metadata.id == id && header.metadata.message_type == MessageType::Response)
        .then_some(header)
}

/// Whether an upstream's answer says to try the next one (Docker's rule).
fn is_failure(header: &Header) -> bool {
    matches!(
        header.metadata.response_code,
        ResponseCode::ServFail | ResponseCode::Refused
    )
}

/// Forward `packet` (the query `id`) to each upstream in turn over `transport`; the first
/// good answer, else the first SERVFAIL/REFUSED one, else `None`.
async fn forward(
    packet: &[u8],
    id: u16,
    upstreams: &[SocketAddr],
    transport: Transport,
    wait: Duration,
) -> Option<Vec<u8>> {
    let mut fallback = None;
    for &upstream in upstreams {
        let exchange = async {
            match transport {
                Transport::Udp => exchange_udp(packet, id, upstream).await,
                Transport::Tcp => exchange_tcp(packet, id, upstream).await,
            }
        };
        match tokio::time::timeout(wait, exchange).await {
            Ok(Ok((reply, header))) => {
                if !is_failure(&header) {
                    return Some(reply);
                }
                debug!(%upstream, ?transport, rcode = %header.metadata.response_code,
                    "dns: upstream failed, trying the next");
                fallback.get_or_insert(reply);
            }
            Ok(Err(e)) => debug!(%upstream, ?transport, error = %e, "dns: upstream unreachable"),
            Err(_) => debug!(%upstream, ?transport, "dns: upstream timed out"),
        }
    }
    fallback
}

fn unspecified_for(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

async fn exchange_udp(
    packet: &[u8],
    id: u16,
    upstream: SocketAddr,
) -> io::Result<(Vec<u8>, Header)> {
    let socket = UdpSocket::bind(unspecified_for(upstream)).await?;
    // Connected: the kernel drops datagrams from anyone else, and reports ICMP errors.
    socket.connect(upstream).await?;
    socket.send(packet).await?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        let n = socket.recv(&mut buf).await?;
        if let Some(header) = reply_header(&buf[..n], id) {
            buf.truncate(n);
            return Ok((buf, header));
        }
        debug!(%upstream, "dns: stray datagram from upstream ignored");
    }
}

async fn exchange_tcp(
    packet: &[u8],
    id: u16,
    upstream: SocketAddr,
) -> io::Result<(Vec<u8>, Header)> {
    let mut stream = TcpStream::connect(upstream).await?;
    stream.set_nodelay(true)?;
    stream.write_all(&framed(packet)?).await?;
    let len = stream.read_u16().await?;
    let mut reply = vec![0u8; usize::from(len)];
    stream.read_exact(&mut reply).await?;
    let header = reply_header(&reply, id)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an answer to the query"))?;
    Ok((reply, header))
}

/// `message` with its 2-byte length before it, as DNS over TCP sends it.
fn framed(message: &[u8]) -> io::Result<Vec<u8>> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "DNS message too long"))?;
    let mut out = Vec::with_capacity(message.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(message);
    Ok(out)
}

/// A pause after a socket error that may repeat (out of fds…), so a loop does not spin.
const ERROR_PAUSE: Duration = Duration::from_millis(50);

async fn udp_loop(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(shared.limits.max_in_flight));
    // Owned by this task: aborting it aborts the forwards in flight.
    let mut forwards = JoinSet::new();
    let mut buf = vec![0u8; MAX_MESSAGE];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, peer) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        debug!(error = %e, "dns: udp receive");
                        tokio::time::sleep(ERROR_PAUSE).await;
                        continue;
                    }
                };
                let packet = &buf[..n];
                let reply = match decide(&*shared.lookup, packet, Transport::Udp, peer) {
                    Outcome::Ignore => continue,
                    Outcome::Reply(bytes) => bytes,
                    Outcome::Forward(query) => match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            let packet = packet.to_vec();
                            let socket = socket.clone();
                            let shared = shared.clone();
                            forwards.spawn(async move {
                                let _permit = permit;
                                let upstreams = shared.lookup.upstreams();
                                let reply = forward(
                                    &packet,
                                    query.metadata.id,
                                    &upstreams,
                                    Transport::Udp,
                                    shared.limits.upstream_timeout,
                                )
                                .await
                                .or_else(|| servfail(&query));
                                if let Some(reply) = reply {
                                    if let Err(e) = socket.send_to(&reply, peer).await {
                                        debug!(%peer, error = %e, "dns: udp send");
                                    }
                                }
                            });
                            continue;
                        }
                        Err(_) => {
                            debug!(%peer, "dns: too many queries in flight, SERVFAIL");
                            match servfail(&query) {
                                Some(bytes) => bytes,
                                None => continue,
                            }
                        }
                    },
                };
                if let Err(e) = socket.send_to(&reply, peer).await {
                    debug!(%peer, error = %e, "dns: udp send");
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
        }
    }
}

async fn tcp_loop(listener: TcpListener, shared: Arc<Shared>) {
    let permits = Arc::new(Semaphore::new(shared.limits.max_in_flight));
    // Owned by this task: aborting it closes the connections.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        debug!(error = %e, "dns: tcp accept");
                        tokio::time::sleep(ERROR_PAUSE).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    debug!(%peer, "dns: too many tcp connections, closing");
                    continue;
                };
                let shared = shared.clone();
                connections.spawn(async move {
                    let _permit = permit;
                    tcp_connection(stream, peer, &shared).await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Serve one TCP connection: queries one after the other until the client closes it, sends
/// something malformed, or stays idle too long.
async fn tcp_connection(mut stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let idle = shared.limits.idle_timeout;
    let _ = stream.set_nodelay(true);
    loop {
        let len = match tokio::time::timeout(idle, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return,
        };
        let mut packet = vec![0u8; len];
        if !matches!(
            tokio::time::timeout(idle, stream.read_exact(&mut packet)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let reply = match decide(&*shared.lookup, &packet, Transport::Tcp, peer) {
            Outcome::Ignore => return,
            Outcome::Reply(bytes) => bytes,
            Outcome::Forward(query) => {
                let upstreams = shared.lookup.upstreams();
                let reply = forward(
                    &packet,
                    query.metadata.id,
                    &upstreams,
                    Transport::Tcp,
                    shared.limits.upstream_timeout,
                )
                .await
                .or_else(|| servfail(&query));
                match reply {
                    Some(r) => r,
                    None => return,
                }
            }
        };
        let Ok(out) = framed(&reply) else { return };
        if !matches!(
            tokio::time::timeout(idle, stream.write_all(&out)).await,
            Ok(Ok(()))
        ) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::os::fd::AsFd;
    use std::sync::Mutex;

    use hickory_proto::op::Query;

    /// The addresses the tests' names have; nothing is ever sent to them.
    const WEB: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 2);
    const WEB2: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 3);
    const DB: Ipv4Addr = Ipv4Addr::new(172, 18, 0, 4);
    const WEB6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdb8, 1, 0, 0, 0, 0, 2);
    const V6ONLY: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xdb8, 1, 0, 0, 0, 0, 3);
    /// What the tests' upstream answers (TEST-NET-1, documentation only).
    const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    struct TestLookup {
        names: HashMap<String, Vec<Ipv4Addr>>,
        names6: HashMap<String, Vec<Ipv6Addr>>,
        reverse: HashMap<IpAddr, String>,
        upstreams: Mutex<Vec<SocketAddr>>,
    }

    impl TestLookup {
        fn new(upstreams: Vec<SocketAddr>) -> Arc<Self> {
            Arc::new(Self {
                names: HashMap::from([
                    ("web".to_string(), vec![WEB, WEB2]),
                    ("web.mynet".to_string(), vec![WEB, WEB2]),
                    ("db".to_string(), vec![DB]),
                ]),
                names6: HashMap::from([
                    ("web".to_string(), vec![WEB6]),
                    ("web.mynet".to_string(), vec![WEB6]),
                    ("v6only".to_string(), vec![V6ONLY, WEB6]),
                ]),
                reverse: HashMap::from([
                    (IpAddr::V4(WEB), "web.mynet".to_string()),
                    (IpAddr::V6(WEB6), "web.mynet".to_string()),
                ]),
                upstreams: Mutex::new(upstreams),
            })
        }
    }

    impl Lookup for TestLookup {
        fn lookup_v4(&self, name: &str) -> Vec<Ipv4Addr> {
            assert_eq!(name, name.to_lowercase(), "lookup_v4 gets lowercase names");
            assert!(!name.ends_with('.'), "lookup_v4 gets names without the dot");
            self.names.get(name).cloned().unwrap_or_default()
        }
        fn lookup_v6(&self, name: &str) -> Vec<Ipv6Addr> {
            assert_eq!(name, name.to_lowercase(), "lookup_v6 gets lowercase names");
            self.names6.get(name).cloned().unwrap_or_default()
        }
        fn reverse(&self, ip: IpAddr) -> Option<String> {
            self.reverse.get(&ip).cloned()
        }
        fn upstreams(&self) -> Vec<SocketAddr> {
            self.upstreams.lock().unwrap().clone()
        }
    }

    const SHORT: Limits = Limits {
        upstream_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(2),
        max_in_flight: 64,
    };

    fn serve(lookup: Arc<dyn Lookup>) -> DnsServer {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        DnsServer::serve_with(udp, tcp, lookup, SHORT).unwrap()
    }

    fn query(name: &str, qtype: RecordType) -> Message {
        let mut m = Message::query();
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        m
    }

    async fn ask_udp(server: SocketAddr, q: &Message) -> Message {
        let bytes = ask_udp_raw(server, &q.to_vec().unwrap(), Duration::from_secs(3))
            .await
            .expect("an answer over UDP");
        let reply = Message::from_vec(&bytes).unwrap();
        assert_eq!(reply.metadata.id, q.metadata.id);
        reply
    }

    async fn ask_udp_raw(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.send_to(packet, server).await.unwrap();
        let mut buf = vec![0u8; MAX_MESSAGE];
        match tokio::time::timeout(wait, s.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    async fn ask_tcp_on(stream: &mut TcpStream, q: &Message) -> Message {
        stream
            .write_all(&framed(&q.to_vec().unwrap()).unwrap())
            .await
            .unwrap();
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0u8; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        let reply = Message::from_vec(&buf).unwrap();
        assert_eq!(reply.metadata.id, q.metadata.id);
        reply
    }

    async fn ask_tcp(server: SocketAddr, q: &Message) -> Message {
        let mut stream = TcpStream::connect(server).await.unwrap();
        tokio::time::timeout(Duration::from_secs(3), ask_tcp_on(&mut stream, q))
            .await
            .expect("an answer over TCP")
    }

    fn a_records(m: &Message) -> Vec<Ipv4Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    fn aaaa_records(m: &Message) -> Vec<Ipv6Addr> {
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect()
    }

    /// The answer an upstream gives to `q`: one A record.
    fn upstream_reply(q: &Message) -> Vec<u8> {
        let mut r = reply_to(q, ResponseCode::NoError);
        let name = q.queries[0].name().clone();
        r.answers
            .push(Record::from_rdata(name, 30, RData::A(A(UPSTREAM_ANSWER))));
        r.to_vec().unwrap()
    }

    /// A tiny upstream on 127.0.0.1 over UDP: answers every query with one A record, after a
    /// stray datagram with the wrong id (which the server must not take). Counts queries.
    async fn udp_upstream() -> (SocketAddr, Arc<Mutex<usize>>, JoinHandle<()>) {
        let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = s.local_addr().unwrap();
        let count = Arc::new(Mutex::new(0));
        let c = count.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; MAX_MESSAGE];
            loop {
                let (n, peer) = s.recv_from(&mut buf).await.unwrap();
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                *c.lock().unwrap() += 1;
                let mut wrong = q.clone();
                wrong.metadata.id = q.metadata.id.wrapping_add(1);
                s.send_to(&upstream_reply(&wrong), peer).await.unwrap();
                s.send_to(&upstream_reply(&q), peer).await.unwrap();
            }
        });
        (addr, count, task)
    }

    /// The same over TCP, one query per connection.
    async fn tcp_upstream() -> (SocketAddr, JoinHandle<()>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let len = s.read_u16().await.unwrap();
                let mut buf = vec![0u8; usize::from(len)];
                s.read_exact(&mut buf).await.unwrap();
                let q = Message::from_vec(&buf).unwrap();
                s.write_all(&framed(&upstream_reply(&q)).unwrap())
                    .await
                    .unwrap();
            }
        });
        (addr, task)
    }

    /// A port nothing listens on (bound, then closed).
    fn closed_port() -> SocketAddr {
        std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    }

    #[tokio::test]
    async fn a_for_a_local_name_case_insensitive() {
        let server = serve(TestLookup::new(vec![]));
        for name in ["web", "web.", "WeB.", "Web.MyNet", "web.mynet."] {
            let q = query(name, RecordType::A);
            for reply in [
                ask_udp(server.udp_addr(), &q).await,
                ask_tcp(server.tcp_addr(), &q).await,
            ] {
                assert_eq!(
                    reply.metadata.response_code,
                    ResponseCode::NoError,
                    "{name}"
                );
                assert_eq!(reply.metadata.message_type, MessageType::Response);
                assert!(reply.metadata.recursion_available);
                assert!(reply.metadata.recursion_desired);
                // The question is echoed as asked (case kept; on the wire every name is
                // fully qualified), and the records are for that name.
                let asked = format!("{}.", name.trim_end_matches('.'));
                assert_eq!(reply.queries.len(), 1);
                assert_eq!(reply.queries[0].name().to_ascii(), asked);
                assert_eq!(reply.queries[0].query_type(), RecordType::A);
                assert_eq!(a_records(&reply), vec![WEB, WEB2], "{name}");
                for r in &reply.answers {
                    assert_eq!(r.ttl, TTL);
                    assert_eq!(r.name.to_ascii(), asked);
                }
            }
        }
    }

    #[tokio::test]
    async fn other_types_for_a_local_name_are_empty() {
        let server = serve(TestLookup::new(vec![closed_port()]));
        for qtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT] {
            let q = query("db", qtype);
            let reply = ask_udp(server.udp_addr(), &q).await;
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert!(reply.answers.is_empty(), "{qtype}: {reply:?}");
            let reply = ask_tcp(server.tcp_addr(), &q).await;
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert!(reply.answers.is_empty());
        }
    }

    #[tokio::test]
    async fn aaaa_for_a_local_name() {
        let server = serve(TestLookup::new(vec![closed_port()]));
        for (name, want) in [
            ("web", vec![WEB6]),
            ("Web.MyNet.", vec![WEB6]),
            ("v6only", vec![V6ONLY, WEB6]),
        ] {
            let q = query(name, RecordType::AAAA);
            for reply in [
                ask_udp(server.udp_addr(), &q).await,
                ask_tcp(server.tcp_addr(), &q).await,
            ] {
                assert_eq!(
                    reply.metadata.response_code,
                    ResponseCode::NoError,
                    "{name}"
                );
                assert_eq!(aaaa_records(&reply), want, "{name}");
                assert!(reply.answers.iter().all(|r| r.ttl == TTL));
            }
        }
        // A name with IPv6 addresses only: A (and other types) are empty, not forwarded.
        for qtype in [RecordType::A, RecordType::MX] {
            let reply = ask_udp(server.udp_addr(), &query("v6only", qtype)).await;
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NoError,
                "{qtype}"
            );
            assert!(reply.answers.is_empty(), "{qtype}: {reply:?}");
        }
        // A still gives the IPv4 addresses only.
        let reply = ask_udp(server.udp_addr(), &query("web", RecordType::A)).await;
        assert_eq!(a_records(&reply), vec![WEB, WEB2]);
        assert!(aaaa_records(&reply).is_empty());
        // Unknown names are forwarded (no upstream answers: SERVFAIL).
        let reply = ask_udp(server.udp_addr(), &query("nobody", RecordType::AAAA)).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }

    #[tokio::test]
    async fn ptr_for_a_local_ipv6_address() {
        let server = serve(TestLookup::new(vec![]));
        // fd00:db8:1::2, nibble by nibble, backwards.
        let arpa = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.0.0.d.f.ip6.arpa.";
        let q = query(arpa, RecordType::PTR);
        for reply in [
            ask_udp(server.udp_addr(), &q).await,
            ask_tcp(server.tcp_addr(), &q).await,
        ] {
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert_eq!(reply.answers.len(), 1);
            assert_eq!(reply.answers[0].ttl, TTL);
            match &reply.answers[0].data {
                RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web.mynet."),
                other => panic!("{other:?}"),
            }
        }
        // fd00:db8:1::3 has no reverse entry: forwarded, SERVFAIL without upstreams.
        let q = query(
            "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.0.0.d.f.ip6.arpa.",
            RecordType::PTR,
        );
        let reply = ask_udp(server.udp_addr(), &q).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }

    #[tokio::test]
    async fn ptr_for_a_local_address() {
        let server = serve(TestLookup::new(vec![]));
        let q = query("2.0.18.172.in-addr.arpa.", RecordType::PTR);
        for reply in [
            ask_udp(server.udp_addr(), &q).await,
            ask_tcp(server.tcp_addr(), &q).await,
        ] {
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert_eq!(reply.answers.len(), 1);
            match &reply.answers[0].data {
                RData::PTR(p) => assert_eq!(p.0.to_ascii(), "web.mynet."),
                other => panic!("{other:?}"),
            }
        }
        // An address no container has is not ours: forwarded, and with no upstream SERVFAIL.
        let q = query("3.0.18.172.in-addr.arpa.", RecordType::PTR);
        let reply = ask_udp(server.udp_addr(), &q).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }

    #[tokio::test]
    async fn other_names_are_forwarded() {
        let (udp_up, count, _u) = udp_upstream().await;
        let (tcp_up, _t) = tcp_upstream().await;
        let lookup = TestLookup::new(vec![udp_up]);
        let server = serve(lookup.clone());

        let q = query("example.com.", RecordType::A);
        let reply = ask_udp(server.udp_addr(), &q).await;
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert_eq!(a_records(&reply), vec![UPSTREAM_ANSWER]);
        assert_eq!(reply.answers[0].ttl, 30, "the upstream's answer, as it is");
        assert_eq!(*count.lock().unwrap(), 1);

        // A silent upstream first: its timeout passes, the next one answers.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        *lookup.upstreams.lock().unwrap() = vec![silent.local_addr().unwrap(), udp_up];
        let q = query("example.org.", RecordType::AAAA);
        let reply = ask_udp(server.udp_addr(), &q).await;
        assert_eq!(a_records(&reply), vec![UPSTREAM_ANSWER]);

        // Over TCP, forwarded over TCP.
        *lookup.upstreams.lock().unwrap() = vec![closed_port(), tcp_up];
        let q = query("example.net.", RecordType::A);
        let reply = ask_tcp(server.tcp_addr(), &q).await;
        assert_eq!(a_records(&reply), vec![UPSTREAM_ANSWER]);
    }

    #[tokio::test]
    async fn servfail_when_no_upstream_answers() {
        let lookup = TestLookup::new(vec![closed_port()]);
        let server = serve(lookup.clone());
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for upstreams in [
            vec![closed_port()],
            vec![],
            vec![silent.local_addr().unwrap()],
        ] {
            *lookup.upstreams.lock().unwrap() = upstreams.clone();
            let q = query("nowhere.example.", RecordType::A);
            for reply in [
                ask_udp(server.udp_addr(), &q).await,
                ask_tcp(server.tcp_addr(), &q).await,
            ] {
                assert_eq!(
                    reply.metadata.response_code,
                    ResponseCode::ServFail,
                    "{upstreams:?}"
                );
                assert_eq!(reply.queries, q.queries);
                assert!(reply.answers.is_empty());
            }
        }
    }

    #[tokio::test]
    async fn garbage_is_ignored() {
        let server = serve(TestLookup::new(vec![]));
        let garbage: [&[u8]; 4] = [b"", b"\x00", b"hello, this is not DNS at all", &[0xff; 40]];
        for g in garbage {
            assert_eq!(
                ask_udp_raw(server.udp_addr(), g, Duration::from_millis(200)).await,
                None
            );
        }
        // A response sent to the server is not answered either.
        let mut r = query("web", RecordType::A);
        r.metadata.message_type = MessageType::Response;
        let r = r.to_vec().unwrap();
        assert_eq!(
            ask_udp_raw(server.udp_addr(), &r, Duration::from_millis(200)).await,
            None
        );
        let reply = ask_udp(server.udp_addr(), &query("web", RecordType::A)).await;
        assert_eq!(a_records(&reply), vec![WEB, WEB2]);

        // Over TCP, garbage closes the connection; a new one is served.
        let mut s = TcpStream::connect(server.tcp_addr()).await.unwrap();
        s.write_all(&framed(b"hello, this is not DNS at all").unwrap())
            .await
            .unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest))
            .await
            .expect("closed")
            .unwrap();
        assert!(rest.is_empty());
        let reply = ask_tcp(server.tcp_addr(), &query("db", RecordType::A)).await;
        assert_eq!(a_records(&reply), vec![DB]);
    }

    #[tokio::test]
    async fn tcp_serves_several_queries_per_connection() {
        let server = serve(TestLookup::new(vec![]));
        let mut s = TcpStream::connect(server.tcp_addr()).await.unwrap();
        for (name, want) in [
            ("web", vec![WEB, WEB2]),
            ("db", vec![DB]),
            ("DB.", vec![DB]),
        ] {
            let reply = ask_tcp_on(&mut s, &query(name, RecordType::A)).await;
            assert_eq!(a_records(&reply), want);
        }
    }

    #[tokio::test]
    async fn big_local_answers_are_truncated_over_udp() {
        let many: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(172, 18, 1, i)).collect();
        let lookup = Arc::new(TestLookup {
            names: HashMap::from([("many".to_string(), many.clone())]),
            names6: HashMap::new(),
            reverse: HashMap::new(),
            upstreams: Mutex::new(vec![]),
        });
        let server = serve(lookup);
        let q = query("many", RecordType::A);
        let reply = ask_udp(server.udp_addr(), &q).await;
        assert!(reply.metadata.truncation);
        assert!(reply.answers.is_empty());
        let reply = ask_tcp(server.tcp_addr(), &q).await;
        assert!(!reply.metadata.truncation);
        assert_eq!(a_records(&reply), many);
        // With EDNS and room enough, UDP carries it all (and an OPT record comes back).
        let mut q = q;
        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        q.set_edns(edns);
        let reply = ask_udp(server.udp_addr(), &q).await;
        assert!(!reply.metadata.truncation);
        assert!(reply.edns.is_some());
        assert_eq!(a_records(&reply), many);
    }

    #[tokio::test]
    async fn dropping_stops_it() {
        let server = serve(TestLookup::new(vec![]));
        let (udp, tcp) = (server.udp_addr(), server.tcp_addr());
        ask_udp(udp, &query("web", RecordType::A)).await;
        drop(server);
        // The tasks are aborted; the listener closes when the runtime drops them.
        let mut refused = false;
        for _ in 0..100 {
            if TcpStream::connect(tcp).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "the TCP listener is closed");
        let q = query("web", RecordType::A).to_vec().unwrap();
        assert_eq!(ask_udp_raw(udp, &q, Duration::from_millis(200)).await, None);
    }

    #[test]
    fn names_and_addresses() {
        let key = |s: &str| name_key(&Name::from_ascii(s).unwrap());
        assert_eq!(key("Web.MyNet.").as_deref(), Some("web.mynet"));
        assert_eq!(key("web").as_deref(), Some("web"));
        assert_eq!(key("."), None);
        let arpa = |s: &str| arpa_address(&Name::from_ascii(s).unwrap());
        assert_eq!(
            arpa("4.3.2.1.in-addr.arpa."),
            Some("1.2.3.4".parse().unwrap())
        );
        assert_eq!(arpa("3.2.1.in-addr.arpa."), None);
        assert_eq!(
            arpa("2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.8.b.d.0.0.0.d.f.ip6.arpa."),
            Some(IpAddr::V6(WEB6))
        );
        assert_eq!(arpa("1.0.0.0.8.b.d.0.0.0.d.f.ip6.arpa."), None);
        assert_eq!(arpa("web.mynet."), None);
        assert_eq!(fqdn("web.mynet").unwrap().to_ascii(), "web.mynet.");
        assert_eq!(fqdn("web.mynet.").unwrap().to_ascii(), "web.mynet.");
    }

    /// A new network namespace with `lo` up, as a file; made by a thread that unshares and
    /// exits (the open file keeps the namespace alive).
    fn new_netns() -> std::fs::File {
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let nl = crate::link::Netlink::new().unwrap();
                    let lo = nl.link("lo").await.unwrap().expect("lo");
                    nl.set_up(lo.index).await.unwrap();
                });
            std::fs::File::open("/proc/thread-self/ns/net").unwrap()
        })
        .join()
        .unwrap()
    }

    /// Run `f` on a new thread inside `ns`, without blocking the runtime.
    async fn in_netns<T: Send + 'static>(
        ns: &std::fs::File,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let ns = ns.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        });
        tokio::task::spawn_blocking(move || t.join().unwrap())
            .await
            .unwrap()
    }

    /// A blocking query to 127.0.0.11:53 over UDP and over TCP, in the caller's namespace.
    fn ask_embedded(q: &Message) -> (Option<Message>, Option<Message>) {
        use std::io::{Read, Write};
        let server = SocketAddr::from((DNS_ADDRESS, DNS_PORT));
        let bytes = q.to_vec().unwrap();
        let udp = (|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").ok()?;
            s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            s.send_to(&bytes, server).ok()?;
            let mut buf = vec![0u8; MAX_MESSAGE];
            let (n, _) = s.recv_from(&mut buf).ok()?;
            Message::from_vec(&buf[..n]).ok()
        })();
        let tcp = (|| {
            let mut s =
                std::net::TcpStream::connect_timeout(&server, Duration::from_millis(500)).ok()?;
            s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
            s.write_all(&framed(&bytes).unwrap()).ok()?;
            let mut len = [0u8; 2];
            s.read_exact(&mut len).ok()?;
            let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
            s.read_exact(&mut buf).ok()?;
            Message::from_vec(&buf).ok()
        })();
        (udp, tcp)
    }

    #[tokio::test]
    async fn start_in_netns_serves_inside_the_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (network namespaces)");
            return;
        }
        let only_inside = "only-inside-the-netns.berth-test";
        let lookup = Arc::new(TestLookup {
            names: HashMap::from([(only_inside.to_string(), vec![WEB])]),
            names6: HashMap::new(),
            reverse: HashMap::new(),
            upstreams: Mutex::new(vec![]),
        });
        let ns = new_netns();
        let server = DnsServer::start_in_netns(ns.as_fd(), lookup).unwrap();
        assert_eq!(server.udp_addr(), SocketAddr::from((DNS_ADDRESS, DNS_PORT)));

        let q = query(only_inside, RecordType::A);
        let qq = q.clone();
        let (udp, tcp) = in_netns(&ns, move || ask_embedded(&qq)).await;
        for reply in [
            udp.expect("UDP answer inside"),
            tcp.expect("TCP answer inside"),
        ] {
            assert_eq!(reply.metadata.id, q.metadata.id);
            assert_eq!(a_records(&reply), vec![WEB]);
        }

        // Not in the test's own namespace: whatever answers 127.0.0.11:53 there (usually
        // nothing) does not know the name.
        let qq = q.clone();
        let (udp, tcp) = tokio::task::spawn_blocking(move || ask_embedded(&qq))
            .await
            .unwrap();
        for reply in [udp, tcp].into_iter().flatten() {
            assert!(a_records(&reply).is_empty(), "{reply:?}");
        }

        // Dropped: nothing listens inside any more.
        drop(server);
        let mut gone = false;
        for _ in 0..100 {
            let qq = q.clone();
            if in_netns(&ns, move || ask_embedded(&qq)).await == (None, None) {
                gone = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(gone, "the sockets are closed after drop");
    }
}
