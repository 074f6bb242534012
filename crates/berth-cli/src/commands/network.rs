//! network ls, create, rm, prune, connect and disconnect (network inspect is in `inspect`).

use std::collections::HashMap;
use std::net::IpAddr;

use gtmpl::Value as T;
use serde_json::{json, Map, Value};

use crate::cli::{
    NetworkConnectArgs, NetworkCreateArgs, NetworkDisconnectArgs, NetworkLsArgs, NetworkPruneArgs,
    NetworkRmArgs,
};
use crate::client::{seg, Client, Query};
use crate::commands::images::list_format;
use crate::commands::prune::confirm;
use crate::error::{CliError, Result};
use crate::format::template::render_rows;
use crate::format::units::truncate_id;
use crate::opts::{filters_json, labels_map, map_json, map_opts};

pub const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn network_row(n: &Value, trunc: bool) -> HashMap<String, T> {
    let id = s(&n["Id"]);
    let mut m = HashMap::new();
    m.insert(
        "ID".into(),
        T::from(if trunc { truncate_id(&id) } else { id }),
    );
    m.insert("Name".into(), T::from(s(&n["Name"])));
    m.insert("Driver".into(), T::from(s(&n["Driver"])));
    m.insert("Scope".into(), T::from(s(&n["Scope"])));
    m.insert(
        "IPv6".into(),
        T::from(n["EnableIPv6"].as_bool().unwrap_or(false).to_string()),
    );
    m.insert(
        "Internal".into(),
        T::from(n["Internal"].as_bool().unwrap_or(false).to_string()),
    );
    let mut labels: Vec<String> = n["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    m.insert("Labels".into(), T::from(labels.join(",")));
    m.insert("CreatedAt".into(), T::from(s(&n["Created"])));
    m
}

pub async fn ls(c: &Client, a: NetworkLsArgs) -> Result<i32> {
    let filters = filters_json(&a.filter).map_err(CliError::msg)?;
    let q = Query::new().add_if(filters.is_some(), "filters", filters.unwrap_or_default());
    let mut list: Vec<Value> = c.get("/networks", &q).await?;
    list.sort_by_key(|n| s(&n["Name"]));
    let rows: Vec<_> = list.iter().map(|n| network_row(n, !a.no_trunc)).collect();
    let format = list_format(
        a.quiet,
        a.format.as_deref(),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    );
    let out = render_rows("*formatter.networkContext", &format, NETWORK_HEADERS, &rows)
        .map_err(CliError::msg)?;
    print!("{out}");
    Ok(0)
}

/// Go's `net.ParseIP`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// An IPv4-mapped IPv6 address as IPv4 (Go's `To4`).
fn to4(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// Go's `net.ParseCIDR`: the address as written and the prefix length.
fn parse_cidr(s: &str) -> std::result::Result<(IpAddr, u32), String> {
    let bad = || format!("invalid CIDR address: {s}");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let ip = parse_ip(addr).ok_or_else(bad)?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let len: u32 = len.parse().map_err(|_| bad())?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if len > max {
        return Err(bad());
    }
    Ok((ip, len))
}

/// Whether `ip` is inside `net/len` (Go's `IPNet.Contains`; an IPv4-mapped subnet of /96 or
/// more is an IPv4 one).
fn contains(net: IpAddr, len: u32, ip: IpAddr) -> bool {
    let (net, len) = match net {
        IpAddr::V6(v6) if len >= 96 && v6.to_ipv4_mapped().is_some() => (to4(net), len - 96),
        _ => (net, len),
    };
    match (net, to4(ip)) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// docker's `subnetMatches`: whether `data` (an address, or an address/len) is in `subnet`.
fn subnet_matches(subnet: &str, data: &str) -> std::result::Result<bool, String> {
    let (net, len) = parse_cidr(subnet).map_err(|e| format!("invalid subnet: {e}"))?;
    let ip = if data.contains('/') {
        Some(parse_cidr(data)?.0)
    } else {
        parse_ip(data)
    };
    Ok(ip.is_some_and(|ip| contains(net, len, ip)))
}

/// One `IPAM.Config` entry.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    pub subnet: String,
    pub ip_range: String,
    pub gateway: String,
    pub aux: Vec<(String, String)>,
}

impl IpamConfig {
    /// As Go encodes `network.IPAMConfig` (empty fields omitted).
    fn json(&self) -> Value {
        let mut m = Map::new();
        if !self.subnet.is_empty() {
            m.insert("Subnet".into(), json!(self.subnet));
        }
        if !self.ip_range.is_empty() {
            m.insert("IPRange".into(), json!(self.ip_range));
        }
        if !self.gateway.is_empty() {
            m.insert("Gateway".into(), json!(self.gateway));
        }
        if !self.aux.is_empty() {
            let mut aux = self.aux.clone();
            aux.sort();
            let aux: Map<String, Value> = aux.into_iter().map(|(k, v)| (k, json!(v))).collect();
            m.insert("AuxiliaryAddresses".into(), Value::Object(aux));
        }
        Value::Object(m)
    }
}

/// docker's `consolidateIpam`: each `--ip-range`, `--gateway` and `--aux-address` goes with the
/// `--subnet` that holds it; the same checks and messages. One entry per subnet, in order.
pub fn consolidate_ipam(
    subnets: &[String],
    ranges: &[String],
    gateways: &[String],
    aux: &[(String, String)],
) -> std::result::Result<Vec<IpamConfig>, String> {
    if subnets.len() < ranges.len() || subnets.len() < gateways.len() {
        return Err("every ip-range or gateway must have a corresponding subnet".into());
    }
    let mut data: Vec<IpamConfig> = Vec::new();
    for s in subnets {
        for k in &data {
            let a = subnet_matches(s, &k.subnet)?;
            let b = subnet_matches(&k.subnet, s)?;
            if a || b {
                return Err("multiple overlapping subnet configuration is not supported".into());
            }
        }
        data.push(IpamConfig {
            subnet: s.clone(),
            ..Default::default()
        });
    }
    for r in ranges {
        let mut matched = false;
        for d in data.iter_mut() {
            if !subnet_matches(&d.subnet, r)? {
                continue;
            }
            if !d.ip_range.is_empty() {
                return Err(format!(
                    "cannot configure multiple ranges ({r}, {}) on the same subnet ({})",
                    d.ip_range, d.subnet
                ));
            }
            d.ip_range = r.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for range {r}"));
        }
    }
    for g in gateways {
        let mut matched = false;
        for d in data.iter_mut() {
            if !subnet_matches(&d.subnet, g)? {
                continue;
            }
            if !d.gateway.is_empty() {
                return Err(format!(
                    "cannot configure multiple gateways ({g}, {}) for the same subnet ({})",
                    d.gateway, d.subnet
                ));
            }
            d.gateway = g.clone();
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for gateway {g}"));
        }
    }
    for (key, a) in aux {
        let mut matched = false;
        for d in data.iter_mut() {
            if !subnet_matches(&d.subnet, a)? {
                continue;
            }
            d.aux.push((key.clone(), a.clone()));
            matched = true;
        }
        if !matched {
            return Err(format!("no matching subnet for aux-address {a}"));
        }
    }
    Ok(data)
}

/// pflag's string slices: `--subnet ''` adds nothing.
fn slice(v: &[String]) -> Vec<String> {
    v.iter().filter(|s| !s.is_empty()).cloned().collect()
}

/// The `POST /networks/create` body, as docker 20.10's `types.NetworkCreateRequest`.
pub fn create_body(a: &NetworkCreateArgs) -> std::result::Result<Value, String> {
    let ipam = consolidate_ipam(
        &slice(&a.subnet),
        &slice(&a.ip_range),
        &slice(&a.gateway),
        &map_opts(&a.aux_address),
    )?;
    Ok(json!({
        "CheckDuplicate": true,
        "Driver": a.driver,
        "Scope": a.scope.clone().unwrap_or_default(),
        "EnableIPv6": a.ipv6,
        "IPAM": {
            "Driver": a.ipam_driver,
            "Options": map_json(&a.ipam_opt),
            "Config": ipam.iter().map(IpamConfig::json).collect::<Vec<_>>(),
        },
        "Internal": a.internal,
        "Attachable": a.attachable,
        "Ingress": a.ingress,
        "ConfigOnly": a.config_only,
        "ConfigFrom": match a.config_from.as_deref() {
            Some(n) if !n.is_empty() => json!({"Network": n}),
            _ => Value::Null,
        },
        "Options": map_json(&a.opt),
        "Labels": sorted(labels_map(&a.label)),
        "Name": a.name,
    }))
}

fn sorted(m: Map<String, Value>) -> Value {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(v.into_iter().collect())
}

pub async fn create(c: &Client, a: NetworkCreateArgs) -> Result<i32> {
    let body = create_body(&a).map_err(CliError::msg)?;
    let resp: Value = c
        .post_json("/networks/create", &Query::new(), &body)
        .await?;
    println!("{}", s(&resp["Id"]));
    Ok(0)
}

const INGRESS_WARNING: &str = "WARNING! Before removing the routing-mesh network, make sure all the nodes in your swarm run the same docker engine version. Otherwise, removal may not be effective and functionality of newly create ingress networks will be impaired.";

/// How docker's client words a failed remove: a 404 is "Error: No such network: <name>".
fn rm_error(name: &str, e: &CliError) -> String {
    if e.is_not_found() {
        format!("Error: No such network: {name}")
    } else {
        e.to_string()
    }
}

pub async fn rm(c: &Client, a: NetworkRmArgs) -> Result<i32> {
    let mut failed = false;
    for name in &a.names {
        let path = format!("/networks/{}", seg(name));
        // docker asks before removing the swarm routing-mesh network.
        if let Ok(n) = c.get::<Value>(&path, &Query::new()).await {
            if n["Ingress"].as_bool() == Some(true) && !confirm(INGRESS_WARNING) {
                continue;
            }
        }
        match c
            .request(http::Method::DELETE, &path, &Query::new(), None)
            .await
        {
            Ok(_) => println!("{name}"),
            Err(e) => {
                eprintln!("{}", rm_error(name, &e));
                failed = true;
            }
        }
    }
    Ok(if failed { 1 } else { 0 })
}

/// What `network prune` prints for the names the daemon deleted.
pub fn prune_output(deleted: &[String]) -> String {
    if deleted.is_empty() {
        return String::new();
    }
    let mut out = String::from("Deleted Networks:\n");
    for n in deleted {
        out.push_str(n);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// `POST /networks/prune`: the names of the networks deleted.
pub async fn prune_networks(c: &Client, filters: &[String]) -> Result<Vec<String>> {
    let f = filters_json(filters).map_err(CliError::msg)?;
    let q = Query::new().add_if(f.is_some(), "filters", f.unwrap_or_default());
    let v: Value = c
        .post_json("/networks/prune", &q, &Value::Null)
        .await
        .map_err(|e| match e {
            CliError::Msg(m) if m.starts_with("error decoding response") => {
                CliError::msg(format!("Error retrieving network prune report: {m}"))
            }
            e => e,
        })?;
    Ok(v["NetworksDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str().map(String::from))
        .collect())
}

pub async fn prune(c: &Client, a: NetworkPruneArgs) -> Result<i32> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all custom networks not used by at least one container.",
        )
    {
        return Ok(0);
    }
    let deleted = prune_networks(c, &slice(&a.filter)).await?;
    print!("{}", prune_output(&deleted));
    Ok(0)
}

/// docker's `convertDriverOpt` for `network connect --driver-opt k=v`.
fn driver_opts(opts: &[String]) -> std::result::Result<Map<String, Value>, String> {
    let mut m = std::collections::BTreeMap::new();
    for o in opts {
        let Some((k, v)) = o.split_once('=') else {
            return Err("invalid key/value pair format in driver options".into());
        };
        m.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(m.into_iter().map(|(k, v)| (k, json!(v))).collect())
}

/// The `POST /networks/{id}/connect` body.
pub fn connect_body(a: &NetworkConnectArgs) -> std::result::Result<Value, String> {
    let opts = driver_opts(&slice(&a.driver_opt))?;
    let mut ep = Map::new();
    let ip4 = a.ip.clone().unwrap_or_default();
    let ip6 = a.ip6.clone().unwrap_or_default();
    let lla = slice(&a.link_local_ip);
    if !ip4.is_empty() || !ip6.is_empty() || !lla.is_empty() {
        let mut ipam = Map::new();
        if !ip4.is_empty() {
            ipam.insert("IPv4Address".into(), json!(ip4));
        }
        if !ip6.is_empty() {
            ipam.insert("IPv6Address".into(), json!(ip6));
        }
        if !lla.is_empty() {
            ipam.insert("LinkLocalIPs".into(), json!(lla));
        }
        ep.insert("IPAMConfig".into(), Value::Object(ipam));
    }
    if !a.link.is_empty() {
        ep.insert("Links".into(), json!(a.link));
    }
    ep.insert("Aliases".into(), json!(slice(&a.alias)));
    if !opts.is_empty() {
        ep.insert("DriverOpts".into(), Value::Object(opts));
    }
    Ok(json!({"Container": a.container, "EndpointConfig": ep}))
}

pub async fn connect(c: &Client, a: NetworkConnectArgs) -> Result<i32> {
    let body = connect_body(&a).map_err(CliError::msg)?;
    c.request(
        http::Method::POST,
        &format!("/networks/{}/connect", seg(&a.network)),
        &Query::new(),
        Some(&body),
    )
    .await?;
    Ok(0)
}

/// The `POST /networks/{id}/disconnect` body.
pub fn disconnect_body(a: &NetworkDisconnectArgs) -> Value {
    json!({"Container": a.container, "Force": a.force})
}

pub async fn disconnect(c: &Client, a: NetworkDisconnectArgs) -> Result<i32> {
    c.request(
        http::Method::POST,
        &format!("/networks/{}/disconnect", seg(&a.network)),
        &Query::new(),
        Some(&disconnect_body(&a)),
    )
    .await?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    fn create(name: &str) -> NetworkCreateArgs {
        NetworkCreateArgs {
            driver: "bridge".into(),
            ipam_driver: "default".into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn create_body_defaults_as_docker() {
        let b = create_body(&create("net1")).unwrap();
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"CheckDuplicate":true,"Driver":"bridge","Scope":"","EnableIPv6":false,"IPAM":{"Driver":"default","Options":{},"Config":[]},"Internal":false,"Attachable":false,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"net1"}"#
        );
    }

    #[test]
    fn create_body_with_everything() {
        let mut a = create("net2");
        a.driver = "macvlan".into();
        a.subnet = v(&["10.1.0.0/16", "fd00::/64"]);
        a.ip_range = v(&["10.1.2.0/24"]);
        a.gateway = v(&["fd00::1", "10.1.0.1"]);
        a.aux_address = v(&["host1=10.1.0.5", "host2=fd00::5", "host1=10.1.0.6"]);
        a.internal = true;
        a.attachable = true;
        a.ingress = true;
        a.ipv6 = true;
        a.label = v(&["z=1", "a", "m=x=y"]);
        a.opt = v(&["com.docker.network.bridge.name=br1", "mtu"]);
        a.ipam_driver = "custom".into();
        a.ipam_opt = v(&["k=v"]);
        a.scope = Some("local".into());
        a.config_only = true;
        a.config_from = Some("base".into());
        let b = create_body(&a).unwrap();
        assert_eq!(
            b,
            json!({
                "CheckDuplicate": true,
                "Driver": "macvlan",
                "Scope": "local",
                "EnableIPv6": true,
                "IPAM": {
                    "Driver": "custom",
                    "Options": {"k": "v"},
                    "Config": [
                        {"Subnet": "10.1.0.0/16", "IPRange": "10.1.2.0/24", "Gateway": "10.1.0.1",
                         "AuxiliaryAddresses": {"host1": "10.1.0.6"}},
                        {"Subnet": "fd00::/64", "Gateway": "fd00::1",
                         "AuxiliaryAddresses": {"host2": "fd00::5"}},
                    ],
                },
                "Internal": true,
                "Attachable": true,
                "Ingress": true,
                "ConfigOnly": true,
                "ConfigFrom": {"Network": "base"},
                "Options": {"com.docker.network.bridge.name": "br1", "mtu": ""},
                "Labels": {"a": "", "m": "x=y", "z": "1"},
                "Name": "net2",
            })
        );
        // Go's map order: sorted keys.
        let text = serde_json::to_string(&b["Labels"]).unwrap();
        assert_eq!(text, r#"{"a":"","m":"x=y","z":"1"}"#);
    }

    fn ipam(
        s: &[&str],
        r: &[&str],
        g: &[&str],
        aux: &[(&str, &str)],
    ) -> std::result::Result<Vec<IpamConfig>, String> {
        let aux: Vec<(String, String)> = aux
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        consolidate_ipam(&v(s), &v(r), &v(g), &aux)
    }

    #[test]
    fn ipam_checks_and_messages_as_docker() {
        assert_eq!(
            ipam(&[], &[], &["10.0.0.1"], &[]).unwrap_err(),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            ipam(
                &["10.0.0.0/24"],
                &["10.0.0.0/25", "10.0.0.128/25"],
                &[],
                &[]
            )
            .unwrap_err(),
            "every ip-range or gateway must have a corresponding subnet"
        );
        assert_eq!(
            ipam(&["10.0.0.0/8", "10.1.0.0/16"], &[], &[], &[]).unwrap_err(),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            ipam(&["10.1.0.0/16", "10.0.0.0/8"], &[], &[], &[]).unwrap_err(),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24", "10.0.0.0/24"], &[], &[], &[]).unwrap_err(),
            "multiple overlapping subnet configuration is not supported"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24", "10.0.1.0/24"], &["10.0.0.0/25", "10.0.0.128/25"], &[], &[])
                .unwrap_err(),
            "cannot configure multiple ranges (10.0.0.128/25, 10.0.0.0/25) on the same subnet (10.0.0.0/24)"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24", "10.0.1.0/24"], &[], &["10.0.0.1", "10.0.0.2"], &[]).unwrap_err(),
            "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/24)"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24"], &["10.9.0.0/25"], &[], &[]).unwrap_err(),
            "no matching subnet for range 10.9.0.0/25"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24"], &[], &["10.9.0.1"], &[]).unwrap_err(),
            "no matching subnet for gateway 10.9.0.1"
        );
        // Not an address: it matches nothing.
        assert_eq!(
            ipam(&["10.0.0.0/24"], &[], &["nope"], &[]).unwrap_err(),
            "no matching subnet for gateway nope"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24"], &[], &[], &[("h", "10.9.0.1")]).unwrap_err(),
            "no matching subnet for aux-address 10.9.0.1"
        );
        assert_eq!(
            ipam(&["10.0.0.0"], &[], &["10.0.0.1"], &[]).unwrap_err(),
            "invalid subnet: invalid CIDR address: 10.0.0.0"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24"], &["10.0.0.0/33"], &[], &[]).unwrap_err(),
            "invalid CIDR address: 10.0.0.0/33"
        );
        assert_eq!(
            ipam(&["10.0.0.0/24", "bad/8"], &[], &[], &[]).unwrap_err(),
            "invalid subnet: invalid CIDR address: bad/8"
        );
        // docker checks a lone subnet only against the others: the daemon judges it.
        assert_eq!(ipam(&["bad"], &[], &[], &[]).unwrap()[0].subnet, "bad");
        // Host bits may be set, as Go's ParseCIDR allows; IPv6 and IPv4-mapped work.
        let c = ipam(
            &["172.20.0.1/16", "2001:db8::/64"],
            &["172.20.5.0/24"],
            &["::ffff:172.20.0.1", "2001:db8::1"],
            &[],
        )
        .unwrap();
        assert_eq!(c[0].gateway, "::ffff:172.20.0.1");
        assert_eq!(c[0].ip_range, "172.20.5.0/24");
        assert_eq!(c[1].gateway, "2001:db8::1");
        assert!(ipam(&["0.0.0.0/0"], &[], &["1.2.3.4"], &[]).is_ok());
        assert!(ipam(&["10.0.0.0/24"], &[], &["2001:db8::1"], &[]).is_err());
    }

    #[test]
    fn connect_and_disconnect_bodies() {
        let a = NetworkConnectArgs {
            network: "n".into(),
            container: "c1".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&connect_body(&a).unwrap()).unwrap(),
            r#"{"Container":"c1","EndpointConfig":{"Aliases":[]}}"#
        );
        let a = NetworkConnectArgs {
            network: "n".into(),
            container: "c1".into(),
            alias: v(&["web", "www"]),
            ip: Some("10.0.0.9".into()),
            ip6: Some("2001:db8::9".into()),
            link: v(&["db:database"]),
            link_local_ip: v(&["169.254.0.9"]),
            driver_opt: v(&[" k = v ", "b=2"]),
        };
        assert_eq!(
            connect_body(&a).unwrap(),
            json!({"Container": "c1", "EndpointConfig": {
                "IPAMConfig": {"IPv4Address": "10.0.0.9", "IPv6Address": "2001:db8::9",
                               "LinkLocalIPs": ["169.254.0.9"]},
                "Links": ["db:database"],
                "Aliases": ["web", "www"],
                "DriverOpts": {"b": "2", "k": "v"},
            }})
        );
        let a = NetworkConnectArgs {
            ip6: Some("2001:db8::9".into()),
            ..Default::default()
        };
        assert_eq!(
            connect_body(&a).unwrap()["EndpointConfig"]["IPAMConfig"],
            json!({"IPv6Address": "2001:db8::9"})
        );
        let a = NetworkConnectArgs {
            driver_opt: v(&["novalue"]),
            ..Default::default()
        };
        assert_eq!(
            connect_body(&a).unwrap_err(),
            "invalid key/value pair format in driver options"
        );
        let d = NetworkDisconnectArgs {
            network: "n".into(),
            container: "c1".into(),
            force: true,
        };
        assert_eq!(
            serde_json::to_string(&disconnect_body(&d)).unwrap(),
            r#"{"Container":"c1","Force":true}"#
        );
    }

    #[test]
    fn rm_and_prune_output() {
        assert_eq!(
            rm_error("n1", &CliError::daemon(404, "network n1 not found")),
            "Error: No such network: n1"
        );
        assert_eq!(
            rm_error("n1", &CliError::daemon(403, "error while removing network: network n1 id abc has active endpoints")),
            "Error response from daemon: error while removing network: network n1 id abc has active endpoints"
        );
        assert_eq!(prune_output(&[]), "");
        assert_eq!(prune_output(&v(&["a", "b"])), "Deleted Networks:\na\nb\n\n");
    }
}
