//! The read side of `/networks` for the three built-in networks (`bridge`, `host`, `none`),
//! as dockerd 20.10 shows them. Their ids are random, saved under `<data-root>/network/<name>.id`
//! at the first daemon start; `Created` is that file's modification time.

use crate::network::{on_default_bridge, BRIDGE, NETWORK};
use crate::Daemon;
use berth_api::ApiError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// The built-in networks: name, driver.
const BUILTIN: [(&str, &str); 3] = [(NETWORK, "bridge"), ("host", "host"), ("none", "null")];

impl Daemon {
    fn network_id(&self, name: &str) -> &str {
        match name {
            NETWORK => &self.bridge.id,
            "host" => &self.bridge.host_id,
            _ => &self.bridge.none_id,
        }
    }

    fn network_created(&self, name: &str) -> String {
        let path = crate::layout::network_dir(&self.config.data_root).join(format!("{name}.id"));
        let t = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map(chrono::DateTime::<chrono::Local>::from)
            .unwrap_or_else(|_| chrono::Local::now());
        t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    }

    /// The running containers on a built-in network (`Containers` of its inspect).
    fn network_containers(&self, name: &str) -> Map<String, Value> {
        let mut out = Map::new();
        for c in self.all_containers() {
            let rec = c.record();
            if !rec.state.status.is_live() {
                continue;
            }
            let on = match name {
                NETWORK => on_default_bridge(&rec),
                n => rec.host_config.network_mode.as_deref() == Some(n),
            };
            if !on {
                continue;
            }
            let ep = rec.network.as_ref().filter(|_| name == NETWORK);
            out.insert(
                rec.id.clone(),
                json!({
                    "Name": rec.name,
                    "EndpointID": ep.map(|e| e.endpoint_id.clone()).unwrap_or_default(),
                    "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
                    "IPv4Address": ep
                        .map(|e| format!("{}/{}", e.ip, e.prefix_len))
                        .unwrap_or_default(),
                    "IPv6Address": "",
                }),
            );
        }
        out
    }

    fn network_resource(&self, name: &str, driver: &str, containers: bool) -> Value {
        let (config, options) = if name == NETWORK {
            let subnet = self.bridge.subnet();
            (
                json!([{ "Subnet": subnet.to_string(), "Gateway": self.bridge.gateway().to_string() }]),
                json!({
                    "com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.enable_icc": "true",
                    "com.docker.network.bridge.enable_ip_masquerade": "true",
                    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                    "com.docker.network.bridge.name": BRIDGE,
                    "com.docker.network.driver.mtu": "1500",
                }),
            )
        } else {
            (json!([]), json!({}))
        };
        json!({
            "Name": name,
            "Id": self.network_id(name),
            "Created": self.network_created(name),
            "Scope": "local",
            "Driver": driver,
            "EnableIPv6": false,
            "IPAM": { "Driver": "default", "Options": null, "Config": config },
            "Internal": false,
            "Attachable": false,
            "Ingress": false,
            "ConfigFrom": { "Network": "" },
            "ConfigOnly": false,
            "Containers": if containers { Value::Object(self.network_containers(name)) } else { json!({}) },
            "Options": options,
            "Labels": {},
        })
    }

    /// `GET /networks`, with the filters `name`, `id` (substrings, as Docker's), `driver`
    /// and `type` (`builtin`, `custom`).
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
        let ok = |key: &str, f: &dyn Fn(&str) -> bool| {
            filters
                .get(key)
                .is_none_or(|vs| vs.is_empty() || vs.iter().any(|v| f(v)))
        };
        let mut out = Vec::new();
        for (name, driver) in BUILTIN {
            let id = self.network_id(name);
            if ok("name", &|v| name.contains(v))
                && ok("id", &|v| id.contains(v))
                && ok("driver", &|v| v == driver)
                && ok("type", &|v| v == "builtin")
                && ok("scope", &|v| v == "local")
                && ok("label", &|_| false)
                && ok("dangling", &|_| false)
            {
                out.push(self.network_resource(name, driver, false));
            }
        }
        Ok(out)
    }

    /// `GET /networks/{id}`: by name, full id, or unique id prefix.
    pub fn inspect_network(&self, key: &str) -> Result<Value, ApiError> {
        let found = BUILTIN
            .iter()
            .find(|(n, _)| *n == key || self.network_id(n) == key)
            .or_else(|| {
                let m: Vec<_> = BUILTIN
                    .iter()
                    .filter(|(n, _)| !key.is_empty() && self.network_id(n).starts_with(key))
                    .collect();
                (m.len() == 1).then(|| m[0])
            });
        match found {
            Some((name, driver)) => Ok(self.network_resource(name, driver, true)),
            None => Err(ApiError::not_found(format!("network {key} not found"))),
        }
    }
}
