//! Containers as the API shows them: `GET /containers/json` and `GET /containers/{id}/json`.

use crate::container::{ContainerRecord, Status};
use crate::Daemon;
use berth_api::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryHostConfig, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum,
    DriverData, EndpointSettings, NetworkSettings, PortBinding, PortMap, PortSummary,
    PortSummaryTypeEnum,
};
pub use berth_api::types::ListOptions;
use berth_api::types::{ContainerInspect, NetworkSettingsCompat};
use berth_api::units::human_duration;
use berth_api::ApiError;
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;

/// Go's zero time, which Docker shows for times that never happened.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn time(t: &Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Nanos, true))
        .unwrap_or_else(|| ZERO_TIME.into())
}

/// `Up 2 minutes`, `Exited (0) 5 seconds ago`, `Created`: the STATUS column.
pub fn status_text(rec: &ContainerRecord, now: DateTime<Utc>) -> String {
    let since = |t: Option<DateTime<Utc>>| {
        human_duration((now - t.unwrap_or(now)).to_std().unwrap_or_default())
    };
    match rec.state.status {
        Status::Running => {
            let health = match rec.state.health.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            };
            format!("Up {}{health}", since(rec.state.started_at))
        }
        Status::Paused => format!("Up {} (Paused)", since(rec.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            rec.state.exit_code,
            since(rec.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Created => "Created".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            rec.state.exit_code,
            since(rec.state.finished_at)
        ),
    }
}

/// The COMMAND column: path and args joined.
/// `Command` as dockerd writes it: the path, then the arguments, those with a space in
/// single quotes.
fn command(rec: &ContainerRecord) -> String {
    std::iter::once(rec.path.clone())
        .chain(rec.args.iter().map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The published ports of a running container (none otherwise).
fn published(rec: &ContainerRecord) -> &[crate::network::PortMapping] {
    match rec.endpoints.iter().find(|e| !e.ports.is_empty()) {
        Some(ep) if rec.state.status.is_live() => &ep.ports,
        _ => &[],
    }
}

/// `NetworkSettings.Ports` while the container runs: every exposed port, with its bindings
/// or `null` (as dockerd shows it); empty when it does not run.
fn port_map(rec: &ContainerRecord) -> PortMap {
    let mut map = PortMap::new();
    if !rec.state.status.is_live() {
        return map;
    }
    for key in rec.config.exposed_ports.iter().flatten() {
        let key = if key.contains('/') {
            key.clone()
        } else {
            format!("{key}/tcp")
        };
        map.insert(key, None);
    }
    for m in published(rec) {
        map.entry(m.key())
            .or_insert(None)
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: Some(m.host_ip.to_string()),
                host_port: Some(m.host_port.to_string()),
            });
    }
    map
}

/// `Ports` of the list: the published ports, then the exposed ones that are not published
/// (while the container runs, as dockerd).
fn port_summaries(rec: &ContainerRecord) -> Vec<PortSummary> {
    let typ = |p: berth_network::nat::Protocol| match p {
        berth_network::nat::Protocol::Tcp => PortSummaryTypeEnum::TCP,
        berth_network::nat::Protocol::Udp => PortSummaryTypeEnum::UDP,
    };
    let mut out: Vec<PortSummary> = published(rec)
        .iter()
        .map(|m| PortSummary {
            ip: Some(m.host_ip.to_string()),
            private_port: m.container_port,
            public_port: Some(m.host_port),
            typ: Some(typ(m.proto)),
        })
        .collect();
    if rec.state.status.is_live() {
        for key in rec.config.exposed_ports.iter().flatten() {
            if let Ok((port, proto)) = berth_network::ports::parse_port_key(key) {
                if !published(rec)
                    .iter()
                    .any(|m| m.container_port == port && m.proto == proto)
                {
                    out.push(PortSummary {
                        ip: None,
                        private_port: port,
                        public_port: None,
                        typ: Some(typ(proto)),
                    });
                }
            }
        }
    }
    out
}

impl Daemon {
    /// `GET /containers/json`.
    pub fn list_containers(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>, ApiError> {
        let now = Utc::now();
        let mut out = Vec::new();
        let all = opts.all || opts.limit.is_some();
        for c in self.all_containers() {
            let rec = c.record();
            if !all && !rec.state.status.is_live() {
                continue;
            }
            if !self.matches(&rec, &opts.filters)? {
                continue;
            }
            out.push(self.summary(&rec, now));
            if let Some(n) = opts.limit {
                if out.len() >= n {
                    break;
                }
            }
        }
        Ok(out)
    }

    fn matches(
        &self,
        rec: &ContainerRecord,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<bool, ApiError> {
        for (key, values) in filters {
            let ok = match key.as_str() {
                "id" => values.iter().any(|v| rec.id.starts_with(v.as_str())),
                "name" => values
                    .iter()
                    .any(|v| rec.name.contains(v.trim_start_matches('/'))),
                "status" => values.iter().any(|v| v == rec.state.status.as_str()),
                "exited" => values.iter().any(|v| {
                    rec.state.status == Status::Exited && v.parse() == Ok(rec.state.exit_code)
                }),
                "label" => values.iter().all(|v| {
                    let labels = rec.config.labels.clone().unwrap_or_default();
                    match v.split_once('=') {
                        Some((k, val)) => labels.get(k).map(|x| x == val).unwrap_or(false),
                        None => labels.contains_key(v),
                    }
                }),
                "ancestor" => values
                    .iter()
                    .any(|v| rec.image == *v || rec.image_id.contains(v.as_str())),
                other => {
                    return Err(ApiError::invalid(format!("invalid filter '{other}'")));
                }
            };
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The IMAGE column: the name the container was created with while it still names the
    /// same image, else the image's short id (as after `rmi -f` or a re-tag).
    fn image_display(&self, rec: &ContainerRecord) -> String {
        match self.images.get(&rec.image) {
            Ok(i) if i.id.to_string() == rec.image_id => rec.image.clone(),
            _ => {
                let hex = rec.image_id.trim_start_matches("sha256:");
                hex[..hex.len().min(12)].to_string()
            }
        }
    }

    fn summary(&self, rec: &ContainerRecord, now: DateTime<Utc>) -> ContainerSummary {
        let state = match rec.state.status {
            Status::Created => ContainerSummaryStateEnum::CREATED,
            Status::Running => ContainerSummaryStateEnum::RUNNING,
            Status::Paused => ContainerSummaryStateEnum::PAUSED,
            Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
            Status::Removing => ContainerSummaryStateEnum::REMOVING,
            Status::Exited => ContainerSummaryStateEnum::EXITED,
            Status::Dead => ContainerSummaryStateEnum::DEAD,
        };
        ContainerSummary {
            id: Some(rec.id.clone()),
            names: Some(vec![format!("/{}", rec.name)]),
            image: Some(self.image_display(rec)),
            image_id: Some(rec.image_id.clone()),
            command: Some(command(rec)),
            created: Some(rec.created.timestamp()),
            ports: Some(port_summaries(rec)),
            labels: Some(rec.config.labels.clone().unwrap_or_default()),
            state: Some(state),
            status: Some(status_text(rec, now)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: rec.host_config.network_mode.clone(),
                ..Default::default()
            }),
            mounts: Some(self.mount_points(rec)),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(self.network_settings(rec).base.networks.unwrap_or_default()),
            }),
            ..Default::default()
        }
    }

    /// `NetworkSettings.Networks` (and its Docker 20.10 top-level copy): the container's
    /// network with its endpoint while it runs, empty fields otherwise.
    fn network_settings(&self, rec: &ContainerRecord) -> NetworkSettingsCompat {
        let live = rec.state.status.is_live();
        let endpoint = |a: &crate::network::Attachment,
                        ep: Option<&crate::network::EndpointRecord>| {
            let ep = ep.filter(|_| live);
            let user = !matches!(
                a.network.as_str(),
                crate::network::NETWORK | "host" | "none"
            );
            let mut aliases = a.aliases.clone();
            if user {
                aliases.push(rec.id[..12].to_string());
            }
            EndpointSettings {
                ipam_config: (a.ipv4_address.is_some() || a.ipv6_address.is_some()).then(|| {
                    berth_api::models::EndpointIpamConfig {
                        ipv4_address: a.ipv4_address.map(|ip| ip.to_string()),
                        ipv6_address: a.ipv6_address.map(|ip| ip.to_string()),
                        ..Default::default()
                    }
                }),
                links: None,
                aliases: user.then_some(aliases),
                mac_address: Some(ep.map(|e| e.mac.clone()).unwrap_or_default()),
                driver_opts: None,
                network_id: Some(match ep {
                    Some(e) => e.network_id.clone(),
                    None => self
                        .net
                        .resolve(a)
                        .map(|n| n.cfg.id.clone())
                        .unwrap_or_else(|| a.network_id.clone()),
                }),
                endpoint_id: Some(ep.map(|e| e.endpoint_id.clone()).unwrap_or_default()),
                gateway: Some(
                    ep.and_then(|e| e.gateway)
                        .map(|g| g.to_string())
                        .unwrap_or_default(),
                ),
                ip_address: Some(ep.map(|e| e.ip.to_string()).unwrap_or_default()),
                ip_prefix_len: Some(ep.map(|e| i64::from(e.prefix_len)).unwrap_or(0)),
                ipv6_gateway: Some(
                    ep.and_then(|e| e.gateway6)
                        .map(|g| g.to_string())
                        .unwrap_or_default(),
                ),
                global_ipv6_address: Some(
                    ep.and_then(|e| e.ip6)
                        .map(|a| a.to_string())
                        .unwrap_or_default(),
                ),
                global_ipv6_prefix_len: Some(ep.map(|e| i64::from(e.prefix6)).unwrap_or(0)),
                ..Default::default()
            }
        };
        let mut networks: HashMap<String, EndpointSettings> = HashMap::new();
        for a in crate::network::attachments(rec) {
            // The endpoint was made on the network as the attachment names it (by id, or by
            // name when the network was made again since).
            let ep = rec
                .endpoints
                .iter()
                .find(|e| e.network_id == a.network_id || e.network == a.network);
            networks.insert(a.network.clone(), endpoint(&a, ep));
        }
        for builtin in ["host", "none"] {
            if rec.host_config.network_mode.as_deref() == Some(builtin) {
                let id = if builtin == "host" {
                    &self.net.host_id
                } else {
                    &self.net.none_id
                };
                let a = crate::network::Attachment {
                    network: builtin.into(),
                    network_id: id.clone(),
                    ..Default::default()
                };
                networks.insert(builtin.into(), endpoint(&a, None));
            }
        }
        let top = networks.get(crate::network::NETWORK);
        let field =
            |f: fn(&EndpointSettings) -> Option<String>| top.and_then(f).unwrap_or_default();
        NetworkSettingsCompat {
            base: NetworkSettings {
                sandbox_id: Some(String::new()),
                sandbox_key: Some(if rec.state.status.is_live() && rec.state.pid > 0 {
                    format!("/proc/{}/ns/net", rec.state.pid)
                } else {
                    String::new()
                }),
                ports: Some(port_map(rec)),
                networks: Some(networks.clone()),
            },
            endpoint_id: field(|e| e.endpoint_id.clone()),
            gateway: field(|e| e.gateway.clone()),
            ip_address: field(|e| e.ip_address.clone()),
            ip_prefix_len: top.and_then(|e| e.ip_prefix_len).unwrap_or(0),
            mac_address: field(|e| e.mac_address.clone()),
            ..Default::default()
        }
    }

    /// `GET /containers/{id}/json`.
    pub fn inspect_container(&self, name: &str) -> Result<ContainerInspect, ApiError> {
        let c = self.container(name)?;
        let rec = c.record();
        let dir = self.container_dir(&rec.id);
        let st = &rec.state;
        let status = match st.status {
            Status::Created => ContainerStateStatusEnum::CREATED,
            Status::Running => ContainerStateStatusEnum::RUNNING,
            Status::Paused => ContainerStateStatusEnum::PAUSED,
            Status::Restarting => ContainerStateStatusEnum::RESTARTING,
            Status::Removing => ContainerStateStatusEnum::REMOVING,
            Status::Exited => ContainerStateStatusEnum::EXITED,
            Status::Dead => ContainerStateStatusEnum::DEAD,
        };
        let exec_ids: Vec<String> = self
            .execs
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|e| e.container == rec.id)
            .map(|e| e.id.clone())
            .collect();
        let lowers = self
            .rootfs_lowers(&rec)
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut graph = HashMap::new();
        graph.insert("LowerDir".to_string(), lowers);
        graph.insert(
            "UpperDir".into(),
            dir.join("rw/upper").display().to_string(),
        );
        graph.insert("WorkDir".into(), dir.join("rw/work").display().to_string());
        graph.insert(
            "MergedDir".into(),
            self.bundle_dir(&rec.id)
                .join("rootfs")
                .display()
                .to_string(),
        );
        let network_settings = self.network_settings(&rec);
        let base = ContainerInspectResponse {
            id: Some(rec.id.clone()),
            created: Some(time(&Some(rec.created))),
            path: Some(rec.path.clone()),
            args: Some(rec.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                running: Some(st.status.is_live()),
                paused: Some(st.status == Status::Paused),
                restarting: Some(st.status == Status::Restarting),
                oom_killed: Some(st.oom_killed),
                dead: Some(st.status == Status::Dead),
                pid: Some(st.pid as i64),
                exit_code: Some(st.exit_code as i64),
                error: Some(st.error.clone()),
                started_at: Some(time(&st.started_at)),
                finished_at: Some(time(&st.finished_at)),
                health: rec.state.health.as_ref().map(crate::health::api_health),
            }),
            image: Some(rec.image_id.clone()),
            resolv_conf_path: Some(dir.join("resolv.conf").display().to_string()),
            hostname_path: Some(dir.join("hostname").display().to_string()),
            hosts_path: Some(dir.join("hosts").display().to_string()),
            log_path: Some(crate::logs::log_path(&dir, &rec.id).display().to_string()),
            name: Some(format!("/{}", rec.name)),
            restart_count: Some(rec.restart_count),
            driver: Some("overlay2".into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
            host_config: Some(rec.host_config.clone()),
            graph_driver: Some(DriverData {
                name: "overlay2".into(),
                data: graph,
            }),
            mounts: Some(self.mount_points(&rec)),
            config: Some(rec.config.clone()),
            ..Default::default()
        };
        Ok(ContainerInspect {
            base,
            network_settings,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::StateRecord;

    #[test]
    fn commands_quote_arguments_with_spaces_as_dockerd() {
        let mut r = rec(Status::Running, 0, Utc::now());
        r.path = "/bin/sh".into();
        r.args = vec!["-c".into(), "while true; do echo hi; done".into()];
        assert_eq!(command(&r), "/bin/sh -c 'while true; do echo hi; done'");
    }

    fn rec(status: Status, code: i32, now: DateTime<Utc>) -> ContainerRecord {
        ContainerRecord {
            id: "a".repeat(64),
            name: "x".into(),
            created: now,
            image: "busybox".into(),
            image_id: "sha256:1".into(),
            config: Default::default(),
            host_config: Default::default(),
            path: "echo".into(),
            args: vec!["hi".into()],
            mac_address: None,
            transient: false,
            state: StateRecord {
                status,
                exit_code: code,
                started_at: Some(now - chrono::Duration::seconds(150)),
                finished_at: Some(now - chrono::Duration::seconds(5)),
                ..Default::default()
            },
            restart_count: 0,
            layers: vec![],
            networks: vec![],
            endpoints: vec![],
            legacy_endpoint: None,
            mounts: vec![],
        }
    }

    #[test]
    fn status_reads_like_docker() {
        let now = Utc::now();
        assert_eq!(
            status_text(&rec(Status::Running, 0, now), now),
            "Up 2 minutes"
        );
        assert_eq!(
            status_text(&rec(Status::Exited, 3, now), now),
            "Exited (3) 5 seconds ago"
        );
        assert_eq!(status_text(&rec(Status::Created, 0, now), now), "Created");
        assert_eq!(
            status_text(&rec(Status::Paused, 0, now), now),
            "Up 2 minutes (Paused)"
        );
        assert_eq!(command(&rec(Status::Created, 0, now)), "echo hi");
    }
}
