//! NAT in berth's own nftables table, over netlink, in-process: outbound masquerade and
//! published ports (DNAT).
//!
//! Everything lives in `table ip berth`, so Docker's iptables chains (and anybody else's
//! tables) are never read or changed, and removing the table removes all of berth's rules.
//! [`Nat::apply_all`] makes the table say exactly what it is given, in one atomic nf_tables
//! batch (the kernel applies all of it or nothing):
//!
//! ```text
//! table ip berth {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr 172.17.0.0/16 oifname != "berth0" masquerade
//!         …one rule per network that is not --internal; when any port is published, also:
//!         ip saddr 127.0.0.0/8 oifname "berth0" masquerade
//!         ip saddr 172.17.0.0/16 oifname "berth0" ct status dnat masquerade
//!     }
//!     chain prerouting {
//!         type nat hook prerouting priority dstnat; policy accept;
//!         fib daddr type local tcp dport 8080 dnat to 172.17.0.2:80
//!         ip daddr 127.0.0.1 udp dport 5353 dnat to 172.17.0.2:53
//!         …one rule per published port
//!     }
//!     chain output {
//!         type nat hook output priority -100; policy accept;
//!         …the same rules as prerouting
//!     }
//!     chain forward {
//!         type filter hook forward priority filter; policy accept;
//!         iifname "br-int" oifname != "br-int" drop    …and back: --internal networks
//!         ct status dnat accept                        published ports, from any network
//!         iifname "berth0" oifname "br-1" drop         …per pair: networks kept apart
//!     }
//! }
//! ```
//!
//! `prerouting` catches what arrives from outside and from containers (through the gateway or
//! any host address); `output` what the host sends to its own addresses, 127.0.0.1 included
//! (which needs [`enable_route_localnet`] on the bridge). `fib daddr type local` keeps a rule
//! without an address from capturing forwarded traffic meant for other hosts. The two hairpin
//! rules masquerade the host's 127.0.0.1 and containers that reach a published port through a
//! host address, so that the replies come back through the host's conntrack.
//!
//! The chains are flushed and refilled on each call, so the daemon calls it with the whole
//! list whenever a network or a published port comes or goes (and once at start, which also
//! drops rules a crashed daemon left). [`Nat::apply`] is the same without ports. [`Nat::remove`]
//! deletes the table. [`enable_ip_forward`] turns on `net.ipv4.ip_forward` (what dockerd does
//! too).
//!
//! No crate on crates.io fitted (see the crate documentation), so the few nf_tables messages
//! needed are encoded here: the netlink header, `nfgenmsg`, attributes (integers big-endian,
//! as nf_tables wants), and the batch begin/end around them. The expressions are those `nft`
//! itself sends for the rules above (payload, bitwise, cmp, meta, fib, ct, immediate, nat,
//! masq), so `nft list table ip berth` shows them as written above.

use ipnet::Ipv4Net;
use rtnetlink::sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use std::net::Ipv4Addr;

/// berth's table (family `ip`).
pub const TABLE: &str = "berth";
/// The chain of masquerade rules.
pub const POSTROUTING: &str = "postrouting";
/// The chain of DNAT rules for traffic arriving at the host (from outside, from containers).
pub const PREROUTING: &str = "prerouting";
/// The chain of DNAT rules for traffic the host itself sends (to its addresses, 127.0.0.1).
pub const OUTPUT: &str = "output";
/// The chain that keeps networks apart (hook forward, filter).
pub const FORWARD: &str = "forward";

/// Errors of NAT setup.
#[derive(Debug, thiserror::Error)]
pub enum NatError {
    #[error("open a netfilter netlink socket: {0}")]
    Socket(std::io::Error),
    #[error("send nftables batch: {0}")]
    Send(std::io::Error),
    #[error("read the nftables answer: {0}")]
    Recv(std::io::Error),
    /// The kernel refused one command of the batch (nothing was applied).
    #[error("nftables: {op}: {source}")]
    Refused {
        op: &'static str,
        source: std::io::Error,
    },
    #[error("invalid interface name {0:?}")]
    InvalidName(String),
    #[error("set a sysctl (ip_forward, route_localnet): {0}")]
    Forwarding(std::io::Error),
}

/// One network whose traffic to the outside is masqueraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masquerade {
    /// The network's subnet (the source addresses to rewrite).
    pub subnet: Ipv4Net,
    /// Its bridge: traffic leaving through it stays between containers, unrewritten.
    pub bridge: String,
}

/// A bridge to keep apart from the others in the `forward` chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isolated {
    pub bridge: String,
    /// An `--internal` network: nothing is forwarded in or out of it.
    pub internal: bool,
}

/// The `forward` chain's rules, in order:
///
/// ```text
/// iifname "<internal>" oifname != "<internal>" drop     per internal bridge, and back:
/// oifname "<internal>" iifname != "<internal>" drop
/// ct status dnat accept                                 published ports, from anywhere
/// iifname "<a>" oifname "<b>" drop                      per pair of other bridges
/// ```
fn isolation_rules(bridges: &[Isolated]) -> Vec<Attrs> {
    let verdict = |list: &mut Attrs, v: u32| {
        expr(list, "immediate", |d| {
            d.be32(NFTA_IMMEDIATE_DREG, 0)
                .nested(NFTA_IMMEDIATE_DATA, |data| {
                    data.nested(NFTA_DATA_VERDICT, |vd| {
                        vd.be32(NFTA_VERDICT_CODE, v);
                    });
                });
        });
    };
    let mut out = Vec::new();
    if bridges.len() < 2 && bridges.iter().all(|b| !b.internal) {
        return out;
    }
    for b in bridges.iter().filter(|b| b.internal) {
        for (a, z) in [
            (NFT_META_IIFNAME, NFT_META_OIFNAME),
            (NFT_META_OIFNAME, NFT_META_IIFNAME),
        ] {
            out.push(rule(FORWARD, |list| {
                ifname_match(list, a, NFT_CMP_EQ, &b.bridge);
                ifname_match(list, z, NFT_CMP_NEQ, &b.bridge);
                verdict(list, NF_DROP);
            }));
        }
    }
    out.push(rule(FORWARD, |list| {
        ct_status_dnat(list);
        verdict(list, NF_ACCEPT);
    }));
    let open: Vec<&Isolated> = bridges.iter().filter(|b| !b.internal).collect();
    for a in &open {
        for z in &open {
            if a.bridge != z.bridge {
                out.push(rule(FORWARD, |list| {
                    ifname_match(list, NFT_META_IIFNAME, NFT_CMP_EQ, &a.bridge);
                    ifname_match(list, NFT_META_OIFNAME, NFT_CMP_EQ, &z.bridge);
                    verdict(list, NF_DROP);
                }));
            }
        }
    }
    out
}

/// A transport protocol of a published port.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// `IPPROTO_TCP`, `IPPROTO_UDP`.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "" | "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            other => Err(format!("unsupported protocol {other:?}")),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port: traffic for `host_port` (on `host_ip`, or on any local address) goes
/// to `dest:dest_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub proto: Protocol,
    /// `None`: every address of the host (`fib daddr type local`).
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub dest: Ipv4Addr,
    pub dest_port: u16,
}

// linux/netlink.h, linux/netfilter/nfnetlink.h, linux/netfilter/nf_tables.h
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFPROTO_UNSPEC: u8 = 0;
const NFPROTO_IPV4: u8 = 2;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_OIFNAME: u32 = 7;
const NFT_MSG_GETRULE: u16 = 7;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_DONE: u16 = 0x3;
const NFTA_RULE_HANDLE: u16 = 3;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
/// `NFTNL_UDATA_RULE_COMMENT`: a rule's comment in its user data, as `nft` writes it.
const UDATA_RULE_COMMENT: u8 = 0;
const NFT_META_L4PROTO: u32 = 16;
const NFT_REG_1: u32 = 1;
const NFT_REG_2: u32 = 2;
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
/// `RTN_LOCAL` (linux/rtnetlink.h): the address type `fib … type local` compares with.
const RTN_LOCAL: u32 = 2;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_NAT_TYPE: u16 = 1;
const NFTA_NAT_FAMILY: u16 = 2;
const NFTA_NAT_REG_ADDR_MIN: u16 = 3;
const NFTA_NAT_REG_PROTO_MIN: u16 = 5;
const NFT_NAT_DNAT: u32 = 1;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;
const NFT_CT_STATUS: u32 = 2;
/// `IPS_DST_NAT` (linux/netfilter/nf_conntrack_common.h): `ct status dnat`.
const IPS_DST_NAT: u32 = 1 << 5;
const NF_INET_PRE_ROUTING: u32 = 0;
const NF_INET_FORWARD: u32 = 2;
/// `filter`, the priority of the forward chain.
const NF_IP_PRI_FILTER: i32 = 0;
const NF_DROP: u32 = 0;
const NF_INET_LOCAL_OUT: u32 = 3;
const NF_INET_POST_ROUTING: u32 = 4;
/// `dstnat`, the priority of destination NAT in prerouting (and Docker's -100 in output).
const NF_IP_PRI_NAT_DST: i32 = -100;
const NF_ACCEPT: u32 = 1;
/// `srcnat`, the priority of source NAT in postrouting.
const NF_IP_PRI_NAT_SRC: i32 = 100;
const IFNAMSIZ: usize = 16;

/// Netlink attributes, written in place (nested ones get their length when closed).
struct Attrs {
    buf: Vec<u8>,
}

impl Attrs {
    fn new() -> Self {
        Self { buf: Vec::new() }
    }

    fn put(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = u16::try_from(4 + data.len()).expect("attribute fits");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    fn str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        self.put(ty, &v)
    }

    fn be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    fn nested(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::new();
        f(&mut inner);
        self.put(ty | NLA_F_NESTED, &inner.buf)
    }

    fn pad(&mut self) {
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }
}

/// One expression of a rule: its name and its attributes.
fn expr(list: &mut Attrs, name: &str, data: impl FnOnce(&mut Attrs)) {
    list.nested(NFTA_LIST_ELEM, |e| {
        e.str(NFTA_EXPR_NAME, name);
        let mut d = Attrs::new();
        data(&mut d);
        if !d.buf.is_empty() {
            e.put(NFTA_EXPR_DATA | NLA_F_NESTED, &d.buf);
        }
    });
}

/// `cmp <op> <data>` on register `reg`.
fn cmp(list: &mut Attrs, reg: u32, op: u32, data: &[u8]) {
    expr(list, "cmp", |d| {
        d.be32(NFTA_CMP_SREG, reg)
            .be32(NFTA_CMP_OP, op)
            .nested(NFTA_CMP_DATA, |v| {
                v.put(NFTA_DATA_VALUE, data);
            });
    });
}

/// `ip saddr|daddr <net>`: the address (IPv4 header, offset 12 or 16) into register 1,
/// masked with the prefix unless it is a /32, compared with the network.
fn ip_match(list: &mut Attrs, offset: u32, net: Ipv4Net) {
    expr(list, "payload", |d| {
        d.be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
            .be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER)
            .be32(NFTA_PAYLOAD_OFFSET, offset)
            .be32(NFTA_PAYLOAD_LEN, 4);
    });
    if net.prefix_len() < 32 {
        expr(list, "bitwise", |d| {
            d.be32(NFTA_BITWISE_SREG, NFT_REG_1)
                .be32(NFTA_BITWISE_DREG, NFT_REG_1)
                .be32(NFTA_BITWISE_LEN, 4)
                .nested(NFTA_BITWISE_MASK, |v| {
                    v.put(NFTA_DATA_VALUE, &net.netmask().octets());
                })
                .nested(NFTA_BITWISE_XOR, |v| {
                    v.put(NFTA_DATA_VALUE, &[0; 4]);
                });
        });
    }
    cmp(list, NFT_REG_1, NFT_CMP_EQ, &net.network().octets());
}

/// `oifname ==|!= "<name>"`.
fn oifname(list: &mut Attrs, op: u32, ifname: &str) {
    ifname_match(list, NFT_META_OIFNAME, op, ifname);
}

/// `iifname`/`oifname` (`key`) `op` `ifname`.
fn ifname_match(list: &mut Attrs, key: u32, op: u32, ifname: &str) {
    expr(list, "meta", |d| {
        d.be32(NFTA_META_DREG, NFT_REG_1).be32(NFTA_META_KEY, key);
    });
    let mut name = [0u8; IFNAMSIZ];
    name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    cmp(list, NFT_REG_1, op, &name);
}

/// A rule of `chain`, its expressions written by `f`.
fn rule(chain: &str, f: impl FnOnce(&mut Attrs)) -> Attrs {
    let mut a = Attrs::new();
    a.str(NFTA_RULE_TABLE, TABLE).str(NFTA_RULE_CHAIN, chain);
    a.nested(NFTA_RULE_EXPRESSIONS, f);
    a
}

/// `ip saddr <subnet> oifname != "<bridge>" masquerade`, as `nft` encodes it.
fn masquerade_rule(m: &Masquerade) -> Attrs {
    rule(POSTROUTING, |list| {
        ip_match(list, 12, m.subnet);
        // The output interface is not the bridge.
        oifname(list, NFT_CMP_NEQ, &m.bridge);
        expr(list, "masq", |_| {});
    })
}

/// The hairpin rules of a network with published ports, which make the replies come back
/// through the host: `ip saddr 127.0.0.0/8 oifname "<bridge>" masquerade` (the host's own
/// 127.0.0.1 DNATed to a container) and `ip saddr <subnet> oifname "<bridge>" ct status dnat
/// masquerade` (a container reaching a published port through a host address, possibly its
/// own: the reply would otherwise go straight over the bridge, bypassing the un-DNAT).
fn hairpin_rules(m: &Masquerade) -> [Attrs; 2] {
    let lo = rule(POSTROUTING, |list| {
        ip_match(list, 12, "127.0.0.0/8".parse().expect("loopback net"));
        oifname(list, NFT_CMP_EQ, &m.bridge);
        expr(list, "masq", |_| {});
    });
    let containers = rule(POSTROUTING, |list| {
        ip_match(list, 12, m.subnet);
        oifname(list, NFT_CMP_EQ, &m.bridge);
        ct_status_dnat(list);
        expr(list, "masq", |_| {});
    });
    [lo, containers]
}

/// `ct status dnat`: the connection's destination was rewritten (a published port).
fn ct_status_dnat(list: &mut Attrs) {
    expr(list, "ct", |d| {
        d.be32(NFTA_CT_DREG, NFT_REG_1)
            .be32(NFTA_CT_KEY, NFT_CT_STATUS);
    });
    expr(list, "bitwise", |d| {
        d.be32(NFTA_BITWISE_SREG, NFT_REG_1)
            .be32(NFTA_BITWISE_DREG, NFT_REG_1)
            .be32(NFTA_BITWISE_LEN, 4)
            .nested(NFTA_BITWISE_MASK, |v| {
                v.put(NFTA_DATA_VALUE, &IPS_DST_NAT.to_ne_bytes());
            })
            .nested(NFTA_BITWISE_XOR, |v| {
                v.put(NFTA_DATA_VALUE, &[0; 4]);
            });
    });
    cmp(list, NFT_REG_1, NFT_CMP_NEQ, &[0; 4]);
}

/// `[fib daddr type local | ip daddr <ip>] <proto> dport <port> dnat to <ip>:<port>` in
/// `chain`.
fn dnat_rule(chain: &str, f: &PortForward) -> Attrs {
    rule(chain, |list| {
        match f.host_ip {
            Some(ip) => ip_match(list, 16, Ipv4Net::from(ip)),
            None => {
                expr(list, "fib", |d| {
                    d.be32(NFTA_FIB_DREG, NFT_REG_1)
                        .be32(NFTA_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE)
                        .be32(NFTA_FIB_FLAGS, NFTA_FIB_F_DADDR);
                });
                cmp(list, NFT_REG_1, NFT_CMP_EQ, &RTN_LOCAL.to_ne_bytes());
            }
        }
        expr(list, "meta", |d| {
            d.be32(NFTA_META_DREG, NFT_REG_1)
                .be32(NFTA_META_KEY, NFT_META_L4PROTO);
        });
        cmp(list, NFT_REG_1, NFT_CMP_EQ, &[f.proto.number()]);
        // The destination port (transport header, offset 2, 2 bytes).
        expr(list, "payload", |d| {
            d.be32(NFTA_PAYLOAD_DREG, NFT_REG_1)
                .be32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_TRANSPORT_HEADER)
                .be32(NFTA_PAYLOAD_OFFSET, 2)
                .be32(NFTA_PAYLOAD_LEN, 2);
        });
        cmp(list, NFT_REG_1, NFT_CMP_EQ, &f.host_port.to_be_bytes());
        expr(list, "immediate", |d| {
            d.be32(NFTA_IMMEDIATE_DREG, NFT_REG_1)
                .nested(NFTA_IMMEDIATE_DATA, |v| {
                    v.put(NFTA_DATA_VALUE, &f.dest.octets());
                });
        });
        expr(list, "immediate", |d| {
            d.be32(NFTA_IMMEDIATE_DREG, NFT_REG_2)
                .nested(NFTA_IMMEDIATE_DATA, |v| {
                    v.put(NFTA_DATA_VALUE, &f.dest_port.to_be_bytes());
                });
        });
        expr(list, "nat", |d| {
            d.be32(NFTA_NAT_TYPE, NFT_NAT_DNAT)
                .be32(NFTA_NAT_FAMILY, u32::from(NFPROTO_IPV4))
                .be32(NFTA_NAT_REG_ADDR_MIN, NFT_REG_1)
                .be32(NFTA_NAT_REG_PROTO_MIN, NFT_REG_2);
        });
    })
}

/// A batch of nf_tables commands, each acknowledged.
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    ops: Vec<(u32, &'static str)>,
}

impl Batch {
    fn new() -> Self {
        let mut b = Self {
            buf: Vec::new(),
            seq: 0,
            ops: Vec::new(),
        };
        b.message(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, NFPROTO_UNSPEC, &[]);
        b
    }

    fn message(&mut self, ty: u16, flags: u16, family: u8, attrs: &[u8]) -> u32 {
        self.seq += 1;
        let len = u32::try_from(16 + 4 + attrs.len()).expect("message fits");
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: family, version 0, res_id (big-endian; the subsystem for batch markers).
        self.buf.push(family);
        self.buf.push(0);
        let res_id = if family == NFPROTO_UNSPEC {
            NFNL_SUBSYS_NFTABLES
        } else {
            0
        };
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        self.buf.extend_from_slice(attrs);
        self.seq
    }

    fn command(&mut self, op: &'static str, msg: u16, flags: u16, attrs: &Attrs) {
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | msg;
        let seq = self.message(
            ty,
            NLM_F_REQUEST | NLM_F_ACK | flags,
            NFPROTO_IPV4,
            &attrs.buf,
        );
        self.ops.push((seq, op));
    }

    fn finish(mut self) -> (Vec<u8>, Vec<(u32, &'static str)>) {
        self.message(NFNL_MSG_BATCH_END, NLM_F_REQUEST, NFPROTO_UNSPEC, &[]);
        (self.buf, self.ops)
    }
}

/// A handle on berth's nftables table in the calling thread's network namespace (the socket
/// is opened per call, so the namespace is the one of the thread that calls). Calls block for
/// the time the kernel takes (well under a millisecond); from async code, call them from
/// `spawn_blocking`.
#[derive(Debug, Default, Clone)]
pub struct Nat;

impl Nat {
    pub fn new() -> Self {
        Self
    }

    /// Make `table ip berth`'s postrouting chain hold exactly one masquerade rule per entry of
    /// `networks`, and no published port, atomically (see the module documentation).
    pub fn apply(&self, networks: &[Masquerade]) -> Result<(), NatError> {
        self.apply_all(networks, &[])
    }

    /// [`Self::apply_full`] without isolation rules.
    pub fn apply_all(
        &self,
        networks: &[Masquerade],
        forwards: &[PortForward],
    ) -> Result<(), NatError> {
        self.apply_full(networks, forwards, &[])
    }

    /// Make `table ip berth` say exactly this, in one atomic batch: a masquerade rule per
    /// network in `postrouting` (plus its two hairpin rules when any port is published), per
    /// published port a DNAT rule in `prerouting` and the same in `output`, and in `forward`
    /// the isolation of `bridges` (see [`Isolated`]).
    pub fn apply_full(
        &self,
        networks: &[Masquerade],
        forwards: &[PortForward],
        bridges: &[Isolated],
    ) -> Result<(), NatError> {
        for name in networks
            .iter()
            .map(|m| &m.bridge)
            .chain(bridges.iter().map(|b| &b.bridge))
        {
            crate::link::check_ifname(name).map_err(|_| NatError::InvalidName(name.clone()))?;
        }
        let mut b = Batch::new();
        let mut table = Attrs::new();
        table.str(NFTA_TABLE_NAME, TABLE);
        b.command(
            "create table ip berth",
            NFT_MSG_NEWTABLE,
            NLM_F_CREATE,
            &table,
        );
        for (name, hook, priority, kind) in [
            (POSTROUTING, NF_INET_POST_ROUTING, NF_IP_PRI_NAT_SRC, "nat"),
            (PREROUTING, NF_INET_PRE_ROUTING, NF_IP_PRI_NAT_DST, "nat"),
            (OUTPUT, NF_INET_LOCAL_OUT, NF_IP_PRI_NAT_DST, "nat"),
            (FORWARD, NF_INET_FORWARD, NF_IP_PRI_FILTER, "filter"),
        ] {
            let mut chain = Attrs::new();
            chain
                .str(NFTA_CHAIN_TABLE, TABLE)
                .str(NFTA_CHAIN_NAME, name)
                .nested(NFTA_CHAIN_HOOK, |h| {
                    h.be32(NFTA_HOOK_HOOKNUM, hook)
                        .be32(NFTA_HOOK_PRIORITY, priority as u32);
                })
                .be32(NFTA_CHAIN_POLICY, NF_ACCEPT)
                .str(NFTA_CHAIN_TYPE, kind);
            b.command("create chain", NFT_MSG_NEWCHAIN, NLM_F_CREATE, &chain);
            let mut flush = Attrs::new();
            flush.str(NFTA_RULE_TABLE, TABLE).str(NFTA_RULE_CHAIN, name);
            b.command("flush chain", NFT_MSG_DELRULE, 0, &flush);
        }
        let add = NLM_F_CREATE | NLM_F_APPEND;
        for m in networks {
            b.command(
                "add masquerade rule",
                NFT_MSG_NEWRULE,
                add,
                &masquerade_rule(m),
            );
            if !forwards.is_empty() {
                for r in hairpin_rules(m) {
                    b.command("add hairpin rule", NFT_MSG_NEWRULE, add, &r);
                }
            }
        }
        for f in forwards {
            for chain in [PREROUTING, OUTPUT] {
                b.command("add dnat rule", NFT_MSG_NEWRULE, add, &dnat_rule(chain, f));
            }
        }
        for r in isolation_rules(bridges) {
            b.command("add isolation rule", NFT_MSG_NEWRULE, add, &r);
        }
        run(b)
    }

    /// Delete `table ip berth` and everything in it; absent is fine.
    pub fn remove(&self) -> Result<(), NatError> {
        let mut b = Batch::new();
        let mut table = Attrs::new();
        table.str(NFTA_TABLE_NAME, TABLE);
        b.command("delete table ip berth", NFT_MSG_DELTABLE, 0, &table);
        match run(b) {
            Err(NatError::Refused { source, .. })
                if source.raw_os_error() == Some(libc::ENOENT) =>
            {
                Ok(())
            }
            r => r,
        }
    }
}

/// Docker's table and chain for rules of the host's users (`iptables -I DOCKER-USER`).
const DOCKER_TABLE: &str = "filter";
const DOCKER_USER: &str = "DOCKER-USER";
/// The comment that marks berth's rules in Docker's `DOCKER-USER` chain.
const DOCKER_USER_COMMENT: &str = "berth: forward for its bridges";

/// Let forwarded traffic of berth's `bridges` through when Docker's firewall would drop it.
///
/// A dockerd that turns on `ip_forward` itself also sets the `FORWARD` chain's policy to
/// `DROP` (in iptables' `filter` table), and no rule of berth's own table can overrule a drop
/// in another table. So when that table has Docker's `DOCKER-USER` chain (the one Docker
/// keeps for the host's own rules, evaluated first, never flushed by Docker), berth keeps
/// there, at the top, `iifname "<bridge>" accept` and `oifname "<bridge>" accept` per bridge,
/// marked with a comment; each call replaces the marked rules with the new list, in one
/// batch (an empty list removes them). Docker's own rules are not touched. Returns whether
/// the chain was there. Without Docker (or with a dockerd started after berth, which then
/// finds `ip_forward` on and keeps the policy), nothing is needed and nothing is written.
pub fn docker_user_rules(bridges: &[String]) -> Result<bool, NatError> {
    for b in bridges {
        crate::link::check_ifname(b).map_err(|_| NatError::InvalidName(b.clone()))?;
    }
    let Some(handles) = marked_rules(DOCKER_TABLE, DOCKER_USER, DOCKER_USER_COMMENT)? else {
        return Ok(false);
    };
    if handles.is_empty() && bridges.is_empty() {
        return Ok(true);
    }
    let mut b = Batch::new();
    for h in handles {
        let mut del = Attrs::new();
        del.str(NFTA_RULE_TABLE, DOCKER_TABLE)
            .str(NFTA_RULE_CHAIN, DOCKER_USER)
            .put(NFTA_RULE_HANDLE, &h.to_be_bytes());
        b.command("delete a DOCKER-USER rule", NFT_MSG_DELRULE, 0, &del);
    }
    // Without NLM_F_APPEND a rule goes to the top of the chain: add them in reverse.
    for bridge in bridges.iter().rev() {
        for key in [NFT_META_OIFNAME, NFT_META_IIFNAME] {
            let mut r = Attrs::new();
            r.str(NFTA_RULE_TABLE, DOCKER_TABLE)
                .str(NFTA_RULE_CHAIN, DOCKER_USER);
            r.nested(NFTA_RULE_EXPRESSIONS, |list| {
                ifname_match(list, key, NFT_CMP_EQ, bridge);
                expr(list, "immediate", |d| {
                    d.be32(NFTA_IMMEDIATE_DREG, 0)
                        .nested(NFTA_IMMEDIATE_DATA, |v| {
                            v.nested(NFTA_DATA_VERDICT, |vd| {
                                vd.be32(NFTA_VERDICT_CODE, NF_ACCEPT);
                            });
                        });
                });
            });
            let mut udata = vec![UDATA_RULE_COMMENT, (DOCKER_USER_COMMENT.len() + 1) as u8];
            udata.extend_from_slice(DOCKER_USER_COMMENT.as_bytes());
            udata.push(0);
            r.put(NFTA_RULE_USERDATA, &udata);
            b.command("add a DOCKER-USER rule", NFT_MSG_NEWRULE, NLM_F_CREATE, &r);
        }
    }
    run(b).map(|()| true)
}

/// The handles of the rules of `table`/`chain` (family ip) whose comment is `comment`;
/// `None` when the chain does not exist.
fn marked_rules(table: &str, chain: &str, comment: &str) -> Result<Option<Vec<u64>>, NatError> {
    let socket = Socket::new(NETLINK_NETFILTER).map_err(NatError::Socket)?;
    let timeout = nix::sys::time::TimeVal::from(libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    });
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .map_err(|e| NatError::Socket(e.into()))?;
    let mut attrs = Attrs::new();
    attrs
        .str(NFTA_RULE_TABLE, table)
        .str(NFTA_RULE_CHAIN, chain);
    let len = u32::try_from(16 + 4 + attrs.buf.len()).expect("message fits");
    let mut msg = Vec::new();
    msg.extend_from_slice(&len.to_ne_bytes());
    msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETRULE).to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&[NFPROTO_IPV4, 0, 0, 0]);
    msg.extend_from_slice(&attrs.buf);
    socket
        .send_to(&msg, &SocketAddr::new(0, 0), 0)
        .map_err(NatError::Send)?;
    let mut marked = Vec::new();
    let want = {
        let mut c = comment.as_bytes().to_vec();
        c.push(0);
        c
    };
    loop {
        let (data, _) = socket.recv_from_full().map_err(NatError::Recv)?;
        let mut rest = data.as_slice();
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
            if len < 16 || len > rest.len() {
                return Ok(Some(marked));
            }
            match ty {
                NLMSG_DONE => return Ok(Some(marked)),
                NLMSG_ERROR if len >= 20 => {
                    let code = i32::from_ne_bytes(rest[16..20].try_into().expect("4 bytes"));
                    return match -code {
                        0 => Ok(Some(marked)),
                        libc::ENOENT => Ok(None),
                        e => Err(NatError::Refused {
                            op: "list the DOCKER-USER rules",
                            source: std::io::Error::from_raw_os_error(e),
                        }),
                    };
                }
                _ => {
                    // nlmsghdr (16) + nfgenmsg (4), then the rule's attributes.
                    let (mut handle, mut ours) = (None, false);
                    let mut a = &rest[20.min(len)..len];
                    while a.len() >= 4 {
                        let alen = u16::from_ne_bytes([a[0], a[1]]) as usize;
                        let aty = u16::from_ne_bytes([a[2], a[3]]) & 0x3fff;
                        if alen < 4 || alen > a.len() {
                            break;
                        }
                        let v = &a[4..alen];
                        match aty {
                            NFTA_RULE_HANDLE if v.len() == 8 => {
                                handle = Some(u64::from_be_bytes(v.try_into().expect("8 bytes")))
                            }
                            NFTA_RULE_USERDATA => {
                                ours = v.windows(want.len()).any(|w| w == want.as_slice())
                            }
                            _ => {}
                        }
                        a = &a[((alen + 3) & !3).min(a.len())..];
                    }
                    if let (Some(h), true) = (handle, ours) {
                        marked.push(h);
                    }
                }
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
}

/// Send a batch and wait for every command's acknowledgement; the first error wins.
fn run(batch: Batch) -> Result<(), NatError> {
    let (buf, ops) = batch.finish();
    let socket = Socket::new(NETLINK_NETFILTER).map_err(NatError::Socket)?;
    let timeout = nix::sys::time::TimeVal::from(libc::timeval {
        tv_sec: 5,
        tv_usec: 0,
    });
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::ReceiveTimeout, &timeout)
        .map_err(|e| NatError::Socket(e.into()))?;
    let kernel = SocketAddr::new(0, 0);
    socket.send_to(&buf, &kernel, 0).map_err(NatError::Send)?;
    let mut pending: Vec<(u32, &'static str)> = ops;
    while !pending.is_empty() {
        let (data, _) = socket.recv_from_full().map_err(NatError::Recv)?;
        let mut rest = data.as_slice();
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
            let ty = u16::from_ne_bytes(rest[4..6].try_into().expect("2 bytes"));
            let seq = u32::from_ne_bytes(rest[8..12].try_into().expect("4 bytes"));
            if len < 16 || len > rest.len() {
                break;
            }
            if ty == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes(rest[16..20].try_into().expect("4 bytes"));
                let op = pending.iter().find(|(s, _)| *s == seq).map(|(_, o)| *o);
                pending.retain(|(s, _)| *s != seq);
                if code != 0 {
                    return Err(NatError::Refused {
                        op: op.unwrap_or("batch"),
                        source: std::io::Error::from_raw_os_error(-code),
                    });
                }
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
    Ok(())
}

/// Turn on `net.ipv4.ip_forward` in the calling thread's network namespace (as dockerd does);
/// nothing is written when it is on already.
pub fn enable_ip_forward() -> Result<(), NatError> {
    const PATH: &str = "/proc/sys/net/ipv4/ip_forward";
    let now = std::fs::read_to_string(PATH).map_err(NatError::Forwarding)?;
    if now.trim() == "1" {
        return Ok(());
    }
    std::fs::write(PATH, b"1\n").map_err(NatError::Forwarding)
}

/// Turn on `net.ipv4.conf.<bridge>.route_localnet` (as dockerd does for its bridge when
/// ports are published without its proxy): the host's 127.0.0.1, DNATed to a container,
/// may then leave through the bridge (masqueraded by the hairpin rule), and the replies,
/// un-DNATed back to 127.0.0.1, may arrive through it.
pub fn enable_route_localnet(bridge: &str) -> Result<(), NatError> {
    crate::link::check_ifname(bridge).map_err(|_| NatError::InvalidName(bridge.into()))?;
    let path = format!("/proc/sys/net/ipv4/conf/{bridge}/route_localnet");
    let now = std::fs::read_to_string(&path).map_err(NatError::Forwarding)?;
    if now.trim() == "1" {
        return Ok(());
    }
    std::fs::write(&path, b"1\n").map_err(NatError::Forwarding)
}
