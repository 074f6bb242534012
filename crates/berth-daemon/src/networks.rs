//! `/networks`: the built-in networks (`bridge`, `host`, `none`) and user networks as
//! dockerd 20.10 shows them; `network create`, `rm`, `prune`, `connect` and `disconnect`.
//! The built-in networks' ids are random, saved under `<data-root>/network/<name>.id` at the
//! first daemon start; `Created` is that file's modification time.

use crate::container::{Container, Status};
use crate::network::{Attachment, CreateRequest, EndpointRecord, Net};
use crate::Daemon;
use berth_api::ApiError;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The built-in networks without a bridge: name, driver.
const NO_BRIDGE: [(&str, &str); 2] = [("host", "host"), ("none", "null")];

/// A network as the API lists it: a bridge network (built-in or not), or `host`/`none`.
enum Listed {
    Bridge(Arc<Net>),
    Other(&'static str, &'static str),
}

/// A time in the daemon's zone, RFC 3339, with the precision Docker shows for the resource
/// (nanoseconds for networks, seconds for volumes).
pub(crate) fn local_time(t: chrono::DateTime<chrono::Utc>, p: chrono::SecondsFormat) -> String {
    chrono::DateTime::<chrono::Local>::from(t).to_rfc3339_opts(p, true)
}

fn rfc3339(t: chrono::DateTime<chrono::Utc>) -> String {
    local_time(t, chrono::SecondsFormat::Nanos)
}

/// A JSON object of strings (`Labels`, `Options`, `DriverOpts`) as a map; other values are
/// empty strings, a missing object an empty map.
pub(crate) fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
        .collect()
}

impl Daemon {
    fn builtin_id(&self, name: &str) -> String {
        match name {
            "host" => self.net.host_id.clone(),
            _ => self.net.none_id.clone(),
        }
    }

    fn builtin_created(&self, name: &str) -> String {
        let path = crate::layout::network_dir(&self.config.data_root).join(format!("{name}.id"));
        let t = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Utc>::from)
            .unwrap_or_else(|_| chrono::Utc::now());
        rfc3339(t)
    }

    fn listed(&self) -> Vec<Listed> {
        let mut v: Vec<Listed> = self.net.list().into_iter().map(Listed::Bridge).collect();
        v.extend(NO_BRIDGE.iter().map(|(n, d)| Listed::Other(n, d)));
        v
    }

    /// The running containers with an endpoint on network `id`.
    fn endpoints_on(&self, id: &str) -> Vec<(crate::container::ContainerRecord, EndpointRecord)> {
        let mut out = Vec::new();
        for c in self.all_containers() {
            let rec = c.record();
            if !rec.state.status.is_live() {
                continue;
            }
            if let Some(ep) = rec.endpoints.iter().find(|e| e.network_id == id).cloned() {
                out.push((rec, ep));
            }
        }
        out
    }

    /// `Containers` of a network's inspect: its running containers.
    fn network_containers(&self, l: &Listed) -> Map<String, Value> {
        let mut out = Map::new();
        match l {
            Listed::Bridge(net) => {
                for (rec, ep) in self.endpoints_on(&net.cfg.id) {
                    out.insert(
                        rec.id.clone(),
                        json!({
                            "Name": rec.name,
                            "EndpointID": ep.endpoint_id,
                            "MacAddress": ep.mac,
                            "IPv4Address": format!("{}/{}", ep.ip, ep.prefix_len),
                            "IPv6Address": ep.ip6.map(|a| format!("{a}/{}", ep.prefix6)).unwrap_or_default(),
                        }),
                    );
                }
            }
            Listed::Other(name, _) => {
                for c in self.all_containers() {
                    let rec = c.record();
                    if rec.state.status.is_live()
                        && rec.host_config.network_mode.as_deref() == Some(name)
                    {
                        out.insert(
                            rec.id.clone(),
                            json!({"Name": rec.name, "EndpointID": "", "MacAddress": "",
                                   "IPv4Address": "", "IPv6Address": ""}),
                        );
                    }
                }
            }
        }
        out
    }

    fn network_resource(&self, l: &Listed, containers: bool) -> Value {
        let contained = if containers {
            Value::Object(self.network_containers(l))
        } else {
            json!({})
        };
        match l {
            Listed::Bridge(net) => {
                let c = &net.cfg;
                let mut ipam = json!({ "Subnet": c.subnet.to_string() });
                if net.builtin || c.user_gateway {
                    ipam["Gateway"] = json!(c.gateway.to_string());
                } else {
                    // Docker shows a chosen gateway too.
                    ipam["Gateway"] = json!(c.gateway.to_string());
                }
                if let Some(r) = c.ip_range {
                    ipam["IPRange"] = json!(r.to_string());
                }
                if !c.aux_addresses.is_empty() {
                    ipam["AuxiliaryAddresses"] = json!(c
                        .aux_addresses
                        .iter()
                        .map(|(k, v)| (k.clone(), v.to_string()))
                        .collect::<BTreeMap<_, _>>());
                }
                let mut ipam_configs = vec![ipam];
                if let (Some(s6), Some(g6)) = (c.subnet6, c.gateway6) {
                    ipam_configs.push(json!({"Subnet": s6.to_string(), "Gateway": g6.to_string()}));
                }
                let options = if net.builtin {
                    json!({
                        "com.docker.network.bridge.default_bridge": "true",
                        "com.docker.network.bridge.enable_icc": "true",
                        "com.docker.network.bridge.enable_ip_masquerade": "true",
                        "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                        "com.docker.network.bridge.name": c.bridge,
                        "com.docker.network.driver.mtu": "1500",
                    })
                } else {
                    json!(c.options)
                };
                json!({
                    "Name": c.name,
                    "Id": c.id,
                    "Created": rfc3339(c.created),
                    "Scope": "local",
                    "Driver": "bridge",
                    "EnableIPv6": c.enable_ipv6,
                    "IPAM": { "Driver": "default", "Options": if net.builtin { Value::Null } else { json!({}) }, "Config": ipam_configs },
                    "Internal": c.internal,
                    "Attachable": c.attachable,
                    "Ingress": false,
                    "ConfigFrom": { "Network": "" },
                    "ConfigOnly": false,
                    "Containers": contained,
                    "Options": options,
                    "Labels": c.labels,
                })
            }
            Listed::Other(name, driver) => json!({
                "Name": name,
                "Id": self.builtin_id(name),
                "Created": self.builtin_created(name),
                "Scope": "local",
                "Driver": driver,
                "EnableIPv6": false,
                "IPAM": { "Driver": "default", "Options": null, "Config": [] },
                "Internal": false,
                "Attachable": false,
                "Ingress": false,
                "ConfigFrom": { "Network": "" },
                "ConfigOnly": false,
                "Containers": contained,
                "Options": {},
                "Labels": {},
            }),
        }
    }

    fn listed_facts(
        &self,
        l: &Listed,
    ) -> (String, String, &'static str, bool, BTreeMap<String, String>) {
        match l {
            Listed::Bridge(n) => (
                n.cfg.name.clone(),
                n.cfg.id.clone(),
                "bridge",
                n.builtin,
                n.cfg.labels.clone(),
            ),
            Listed::Other(name, driver) => (
                name.to_string(),
                self.builtin_id(name),
                driver,
                true,
                BTreeMap::new(),
            ),
        }
    }

    /// `GET /networks`, with the filters `name`, `id` (substrings, as Docker's), `driver`,
    /// `type` (`builtin`, `custom`), `label` (`k` or `k=v`), `scope` and `dangling`.
    pub fn list_networks(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<Value>, ApiError> {
        for k in filters.keys() {
            if !matches!(
                k.as_str(),
                "name" | "id" | "driver" | "type" | "label" | "scope" | "dangling"
            ) {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        for t in filters.get("type").into_iter().flatten() {
            if t != "builtin" && t != "custom" {
                return Err(ApiError::invalid(format!("invalid filter: 'type'='{t}'")));
            }
        }
        let ok = |key: &str, f: &dyn Fn(&str) -> bool| {
            filters
                .get(key)
                .is_none_or(|vs| vs.is_empty() || vs.iter().any(|v| f(v)))
        };
        let mut out = Vec::new();
        for l in self.listed() {
            let (name, id, driver, builtin, labels) = self.listed_facts(&l);
            let dangling = || match &l {
                Listed::Bridge(n) => !n.builtin && self.endpoints_on(&n.cfg.id).is_empty(),
                Listed::Other(..) => false,
            };
            if ok("name", &|v| name.contains(v))
                && ok("id", &|v| id.contains(v))
                && ok("driver", &|v| v == driver)
                && ok("type", &|v| (v == "builtin") == builtin)
                && ok("scope", &|v| v == "local")
                && filters.get("label").is_none_or(|vs| {
                    vs.iter().all(|v| match v.split_once('=') {
                        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
                        None => labels.contains_key(v.as_str()),
                    })
                })
                && ok("dangling", &|v| matches!(v, "true" | "1") == dangling())
            {
                out.push(self.network_resource(&l, false));
            }
        }
        Ok(out)
    }

    /// A network by name, full id, or unique id prefix, built-in ones included.
    fn find_listed(&self, key: &str) -> Result<Listed, ApiError> {
        if let Some(n) = self.net.find(key) {
            return Ok(Listed::Bridge(n));
        }
        let others = self.listed();
        let exact = others.iter().find_map(|l| match l {
            Listed::Other(n, d) if *n == key || self.builtin_id(n) == key => Some((*n, *d)),
            _ => None,
        });
        if let Some((n, d)) = exact {
            return Ok(Listed::Other(n, d));
        }
        let prefixed: Vec<_> = NO_BRIDGE
            .iter()
            .filter(|(n, _)| !key.is_empty() && self.builtin_id(n).starts_with(key))
            .collect();
        if prefixed.len() == 1 {
            return Ok(Listed::Other(prefixed[0].0, prefixed[0].1));
        }
        Err(ApiError::not_found(format!("network {key} not found")))
    }

    /// `GET /networks/{id}`: by name, full id, or unique id prefix.
    pub fn inspect_network(&self, key: &str) -> Result<Value, ApiError> {
        let l = self.find_listed(key)?;
        Ok(self.network_resource(&l, true))
    }

    /// `POST /networks/create`: returns `{"Id", "Warning"}`.
    pub async fn create_network(&self, body: Value) -> Result<Value, ApiError> {
        let name = body["Name"].as_str().unwrap_or("").to_string();
        let driver = body["Driver"].as_str().unwrap_or("");
        match driver {
            "" | "bridge" => {}
            "host" | "null" => {
                return Err(ApiError::forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )))
            }
            d => return Err(ApiError::not_found(format!("plugin \"{d}\" not found"))),
        }
        let ipam_driver = body["IPAM"]["Driver"].as_str().unwrap_or("");
        if !matches!(ipam_driver, "" | "default") {
            return Err(ApiError::not_found(format!(
                "plugin \"{ipam_driver}\" not found"
            )));
        }
        let configs: Vec<&Value> = body["IPAM"]["Config"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for c in &configs {
            let subnet = c["Subnet"].as_str().unwrap_or("");
            if subnet.contains(':') {
                if !body["EnableIPv6"].as_bool().unwrap_or(false) {
                    return Err(ApiError::invalid(
                        "non-IPv6 network cannot have IPv6 subnets",
                    ));
                }
                v6.push(*c);
                continue;
            }
            v4.push(*c);
        }
        if v6.len() > 1 {
            return Err(ApiError::invalid(
                "berth networks have one IPv6 subnet; more were given",
            ));
        }
        let c6 = v6.first().copied().cloned().unwrap_or(Value::Null);
        let opt6 = |k: &str| c6[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        if v4.len() > 1 {
            return Err(ApiError::invalid(
                "berth networks have one IPv4 subnet; more were given",
            ));
        }
        let c = v4.first().copied().cloned().unwrap_or(Value::Null);
        let opt = |k: &str| c[k].as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let req = CreateRequest {
            name,
            subnet: opt("Subnet"),
            gateway: opt("Gateway"),
            ip_range: opt("IPRange"),
            aux_addresses: str_map(&c["AuxiliaryAddresses"]),
            internal: body["Internal"].as_bool().unwrap_or(false),
            attachable: body["Attachable"].as_bool().unwrap_or(false),
            enable_ipv6: body["EnableIPv6"].as_bool().unwrap_or(false),
            subnet6: opt6("Subnet"),
            gateway6: opt6("Gateway"),
            labels: str_map(&body["Labels"]),
            options: str_map(&body["Options"]),
        };
        if req.gateway.is_some() && req.subnet.is_none() {
            return Err(ApiError::invalid("gateway specified without subnet"));
        }
        let _admin = self.net.admin.write().await;
        let net = self.net.create(req).await?;
        self.event(
            "network",
            "create",
            &net.cfg.id,
            &[("name", net.cfg.name.clone()), ("type", "bridge".into())],
        );
        Ok(json!({ "Id": net.cfg.id, "Warning": "" }))
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(&self, key: &str) -> Result<(), ApiError> {
        let _admin = self.net.admin.write().await;
        self.remove_network_locked(key).await
    }

    async fn remove_network_locked(&self, key: &str) -> Result<(), ApiError> {
        let net = match self.find_listed(key)? {
            Listed::Bridge(n) if !n.builtin => n,
            Listed::Bridge(n) => {
                return Err(ApiError::forbidden(format!(
                    "{} is a pre-defined network and cannot be removed",
                    n.cfg.name
                )))
            }
            Listed::Other(n, _) => {
                return Err(ApiError::forbidden(format!(
                    "{n} is a pre-defined network and cannot be removed"
                )))
            }
        };
        if !self.endpoints_on(&net.cfg.id).is_empty() {
            return Err(ApiError::forbidden(format!(
                "error while removing network: network {} id {} has active endpoints",
                net.cfg.name, net.cfg.id
            )));
        }
        self.net.remove(&net).await?;
        self.event(
            "network",
            "destroy",
            &net.cfg.id,
            &[("name", net.cfg.name.clone()), ("type", "bridge".into())],
        );
        Ok(())
    }

    /// `POST /networks/prune`: removes the user networks no running container uses (filters
    /// `label`, `label!`, `until`); returns their names.
    pub async fn prune_networks(
        &self,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Vec<String>, ApiError> {
        let _admin = self.net.admin.write().await;
        let mut deleted = Vec::new();
        for net in self.net.list() {
            let labels: HashMap<String, String> = net.cfg.labels.clone().into_iter().collect();
            if net.builtin
                || !crate::usage::prune_match(filters, &labels, net.cfg.created)?
                || !self.endpoints_on(&net.cfg.id).is_empty()
            {
                continue;
            }
            match self.net.remove(&net).await {
                Ok(()) => deleted.push(net.cfg.name.clone()),
                Err(e) => tracing::warn!(network = %net.cfg.name, "prune: {}", e.message),
            }
        }
        Ok(deleted)
    }

    /// `POST /networks/{id}/connect`: attach a container (running or not) to a user network,
    /// with `EndpointConfig.Aliases` and `IPAMConfig.IPv4Address`.
    pub async fn connect_network(self: &Arc<Self>, key: &str, body: Value) -> Result<(), ApiError> {
        let who = body["Container"].as_str().unwrap_or("").to_string();
        let net = match self.find_listed(key)? {
            Listed::Bridge(n) => n,
            Listed::Other(n, _) => {
                return Err(ApiError::forbidden(if n == "host" {
                    "container cannot be disconnected from host network or connected to host network"
                } else {
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode"
                }))
            }
        };
        let c = self.container(&who)?;
        let ep = &body["EndpointConfig"];
        let aliases: Vec<String> = ep["Aliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str())
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        let ip = ep["IPAMConfig"]["IPv4Address"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<std::net::Ipv4Addr>()
                    .map_err(|_| ApiError::invalid(format!("invalid IPv4 address: {s}")))
            })
            .transpose()?;
        if net.builtin && !aliases.is_empty() {
            return Err(ApiError::invalid(
                "network-scoped alias is supported only for containers in user defined networks",
            ));
        }
        if net.builtin && ip.is_some() {
            return Err(ApiError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        if ip.is_some() && !net.cfg.user_subnet {
            return Err(ApiError::invalid(
                "user specified IP address is supported only when connecting to networks with user configured subnets",
            ));
        }
        let ip6 = ep["IPAMConfig"]["IPv6Address"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<std::net::Ipv6Addr>()
                    .map_err(|_| ApiError::invalid(format!("invalid IPv6 address: {s}")))
            })
            .transpose()?;
        if net.builtin && ip6.is_some() {
            return Err(ApiError::invalid(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        let _op = c.op.lock().await;
        // After the container's lock, as a start takes them.
        let _networks = self.net.admin.read().await;
        if self
            .net
            .resolve(&Attachment {
                network: net.cfg.name.clone(),
                network_id: net.cfg.id.clone(),
                ..Default::default()
            })
            .is_none_or(|n| n.cfg.id != net.cfg.id)
        {
            return Err(ApiError::not_found(format!("network {key} not found")));
        }
        let rec = c.record();
        let mode = rec.host_config.network_mode.as_deref().unwrap_or("default");
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(ApiError::forbidden(if mode == "none" {
                "container cannot be connected to multiple networks with one of the networks in private (none) mode".to_string()
            } else {
                "container sharing network namespace with another container or host cannot be connected to any other network".to_string()
            }));
        }
        let mut atts = crate::network::attachments(&rec);
        // By name too: a network removed and made again keeps its name, not its id.
        if atts
            .iter()
            .any(|a| a.network_id == net.cfg.id || a.network == net.cfg.name)
        {
            return Err(ApiError::forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, net.cfg.name
            )));
        }
        let att = Attachment {
            network: net.cfg.name.clone(),
            network_id: net.cfg.id.clone(),
            aliases,
            ipv4_address: ip,
            ipv6_address: ip6,
        };
        let dir = self.container_dir(&c.id);
        if !(rec.state.status == Status::Running || rec.state.status == Status::Paused)
            || rec.state.pid <= 0
        {
            atts.push(att);
            c.update(&dir, |r| r.networks = atts);
            return Ok(());
        }
        // Running: an address, the next ethN, and DNS when this is its first user network.
        let d = self.clone();
        let (n2, id2, want, want6) = (net.clone(), c.id.clone(), ip, ip6);
        let (ip, ip6) = crate::blocking(move || {
            let ip = d.net.allocate(&n2, &id2, want)?;
            match d.net.allocate6(&n2, &id2, want6) {
                Ok(ip6) => Ok((ip, ip6)),
                Err(e) => {
                    d.net.release_lease(&n2, &id2);
                    Err(e)
                }
            }
        })
        .await?;
        let ifname = next_ifname(&rec.endpoints);
        let routed = rec.endpoints.iter().any(|e| e.gateway.is_some());
        let ep = match self
            .net
            .connect(
                &net,
                &c.id,
                rec.state.pid,
                &ifname,
                (ip, ip6),
                None,
                !routed,
            )
            .await
        {
            Ok(ep) => ep,
            Err(e) => {
                let d = self.clone();
                let (n2, id2) = (net.clone(), c.id.clone());
                let _ = crate::blocking(move || {
                    d.net.release_lease(&n2, &id2);
                    Ok(())
                })
                .await;
                return Err(ApiError::internal(format!(
                    "failed to connect to network {}: {e}",
                    net.cfg.name
                )));
            }
        };
        if !net.builtin && !self.has_dns(&c.id) {
            // Its resolv.conf was written for the host's servers: now the embedded one.
            let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            let hc = &rec.host_config;
            let conf = crate::bundle::embedded_resolv_conf(
                &host,
                hc.dns_search.as_deref().unwrap_or_default(),
                hc.dns_options.as_deref().unwrap_or_default(),
            );
            if let Err(e) = rewrite_in_place(&dir.join("resolv.conf"), &conf) {
                tracing::warn!(id = %c.id, "cannot rewrite resolv.conf: {e}");
            }
            if let Err(e) = self.start_dns(&c.id, rec.state.pid) {
                tracing::warn!(id = %c.id, "cannot start the embedded DNS server: {e}");
            }
        }
        atts.push(att);
        let mut committed = false;
        c.update(&dir, |r| {
            // It may have exited meanwhile (its exit is recorded without the container's
            // lock): then the endpoint went with its namespace.
            if r.state.status.is_live() && r.state.pid == rec.state.pid {
                r.networks = atts.clone();
                r.endpoints.push(ep.clone());
                committed = true;
            }
        });
        if !committed {
            let _ = self.net.disconnect(&c.id, &ep).await;
            return Err(ApiError::conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        self.net.bump_dns();
        self.network_events(&c.id, std::slice::from_ref(&ep), "connect");
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(
        self: &Arc<Self>,
        key: &str,
        body: Value,
    ) -> Result<(), ApiError> {
        let who = body["Container"].as_str().unwrap_or("").to_string();
        let force = body["Force"].as_bool().unwrap_or(false);
        let net = match self.find_listed(key)? {
            Listed::Bridge(n) => n,
            Listed::Other(..) => return Err(ApiError::forbidden(
                "container cannot be disconnected from host network or connected to host network",
            )),
        };
        let c: Arc<Container> = match self.container(&who) {
            Ok(c) => c,
            Err(e) if force => {
                // Docker's force: drop a stale endpoint of a container that is gone.
                tracing::debug!("disconnect -f of {who}: {}", e.message);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let _op = c.op.lock().await;
        let rec = c.record();
        let mut atts = crate::network::attachments(&rec);
        let before = atts.len();
        atts.retain(|a| !(a.network_id == net.cfg.id || (a.network == net.cfg.name)));
        let ep = rec
            .endpoints
            .iter()
            .find(|e| e.network_id == net.cfg.id)
            .cloned();
        if atts.len() == before && ep.is_none() {
            return Err(ApiError::forbidden(format!(
                "container {} is not connected to network {}",
                c.id, net.cfg.name
            )));
        }
        if let Some(ep) = &ep {
            self.net.disconnect(&c.id, ep).await.map_err(|e| {
                ApiError::internal(format!("disconnect from {}: {e}", net.cfg.name))
            })?;
        }
        // The default route went with it: another network that is not internal takes it
        // over, as Docker moves the gateway.
        let mut moved = None;
        if ep.as_ref().is_some_and(|e| e.gateway.is_some()) {
            let internal = |e: &EndpointRecord| {
                self.net
                    .list()
                    .iter()
                    .any(|n| n.cfg.id == e.network_id && n.cfg.internal)
            };
            if let Some(next) = rec
                .endpoints
                .iter()
                .find(|e| e.network_id != net.cfg.id && !internal(e))
            {
                match self.net.route_through(rec.state.pid, next).await {
                    Ok(gw) => moved = Some((next.endpoint_id.clone(), gw)),
                    Err(e) => tracing::warn!(id = %c.id, "cannot move the default route: {e}"),
                }
            }
        }
        // The DNS server stays for the container's life, as Docker's resolver does (its
        // resolv.conf names it); without a user network it only forwards.
        c.update(&self.container_dir(&c.id), |r| {
            r.networks = atts;
            r.endpoints.retain(|e| e.network_id != net.cfg.id);
            if let Some((id, gw)) = &moved {
                for e in r.endpoints.iter_mut().filter(|e| &e.endpoint_id == id) {
                    e.gateway = Some(*gw);
                }
            }
        });
        self.net.bump_dns();
        if let Some(ep) = &ep {
            self.network_events(&c.id, std::slice::from_ref(ep), "disconnect");
        }
        Ok(())
    }
}

/// The first `ethN` no endpoint uses.
fn next_ifname(eps: &[EndpointRecord]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !eps.iter().any(|e| &e.ifname == n))
        .expect("a free name")
}

/// Rewrite a bind-mounted file's content in place (a rename would leave the container
/// seeing the old file).
fn rewrite_in_place(path: &std::path::Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(content.as_bytes())
}
