//! `GET /events`: Docker's event stream. Each event (type, action, actor id and attributes,
//! time) goes to a broadcast channel for the clients that follow, and into a ring of the last
//! [`KEPT`] for `--since` (as dockerd keeps the last 256 in memory).

use crate::Daemon;
use berth_api::ApiError;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use tokio::io::AsyncWriteExt;

/// Events kept for `--since`.
const KEPT: usize = 1024;

/// One event.
#[derive(Debug, Clone)]
pub struct Event {
    pub typ: &'static str,
    pub action: String,
    pub id: String,
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
}

impl Event {
    /// Docker's JSON (with the pre-1.22 `status`, `id`, `from` of container events).
    pub fn json(&self) -> Value {
        let mut v = json!({
            "Type": self.typ,
            "Action": self.action,
            "Actor": { "ID": self.id, "Attributes": self.attributes },
            "scope": "local",
            "time": self.time_nano / 1_000_000_000,
            "timeNano": self.time_nano,
        });
        if self.typ == "container" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.id);
            if let Some(img) = self.attributes.get("image") {
                v["from"] = json!(img);
            }
        }
        v
    }
}

/// The daemon's events.
pub struct Events {
    tx: tokio::sync::broadcast::Sender<Event>,
    kept: Mutex<VecDeque<Event>>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: tokio::sync::broadcast::channel(1024).0,
            kept: Mutex::new(VecDeque::new()),
        }
    }
}

impl Events {
    /// Record and broadcast an event.
    pub fn emit(
        &self,
        typ: &'static str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) {
        let now = chrono::Utc::now();
        let e = Event {
            typ,
            action: action.to_string(),
            id: id.to_string(),
            attributes,
            time_nano: now.timestamp_nanos_opt().unwrap_or(0),
        };
        {
            let mut k = self.kept.lock().unwrap_or_else(|e| e.into_inner());
            if k.len() >= KEPT {
                k.pop_front();
            }
            k.push_back(e.clone());
        }
        let _ = self.tx.send(e);
    }
}

/// Whether `e` passes Docker's event filters.
fn matches(e: &Event, filters: &HashMap<String, Vec<String>>) -> bool {
    let attr = |k: &str| e.attributes.get(k).map(String::as_str).unwrap_or("");
    filters.iter().all(|(k, vals)| {
        vals.is_empty()
            || vals.iter().any(|v| match k.as_str() {
                "type" => v == e.typ,
                "event" => v == &e.action || e.action.starts_with(&format!("{v}:")),
                "container" => {
                    e.typ == "container" && (e.id.starts_with(v.as_str()) || attr("name") == v)
                }
                "image" => {
                    attr("image") == v || (e.typ == "image" && (e.id == *v || attr("name") == v))
                }
                "network" => {
                    e.typ == "network" && (e.id.starts_with(v.as_str()) || attr("name") == v)
                }
                "volume" => e.typ == "volume" && e.id == *v,
                "label" => match v.split_once('=') {
                    Some((lk, lv)) => attr(lk) == lv,
                    None => e.attributes.contains_key(v.as_str()),
                },
                "scope" => v == "local",
                "daemon" => e.typ == "daemon",
                _ => false,
            })
    })
}

impl Daemon {
    /// A container's event, with Docker's attributes (image, name, its labels, and `extra`).
    pub(crate) fn container_event(&self, id: &str, action: &str, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        if let Ok(c) = self.container(id) {
            let rec = c.record();
            for (k, v) in rec.config.labels.clone().unwrap_or_default() {
                attrs.insert(k, v);
            }
            attrs.insert("image".into(), rec.image.clone());
            attrs.insert("name".into(), rec.name.clone());
        }
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events.emit("container", action, id, attrs);
    }

    /// `network connect` / `disconnect` of a container's endpoints, as dockerd tells them at
    /// its start and after its end (the network's id, its name and type, the container).
    pub(crate) fn network_events(
        &self,
        container: &str,
        endpoints: &[crate::network::EndpointRecord],
        action: &str,
    ) {
        for ep in endpoints {
            self.event(
                "network",
                action,
                &ep.network_id,
                &[
                    ("container", container.to_string()),
                    ("name", ep.network.clone()),
                    ("type", "bridge".to_string()),
                ],
            );
        }
    }

    /// Another kind's event (`network`, `volume`, `image`) with its attributes.
    pub(crate) fn event(
        &self,
        typ: &'static str,
        action: &str,
        id: &str,
        attrs: &[(&str, String)],
    ) {
        let attrs = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        self.events.emit(typ, action, id, attrs);
    }

    /// `GET /events`: the kept events since `since`, then (unless `until` is past) the new
    /// ones until `until`, as JSON lines into `out`. Times are seconds since the epoch.
    pub async fn write_events(
        &self,
        since: Option<f64>,
        until: Option<f64>,
        filters: HashMap<String, Vec<String>>,
        mut out: tokio::io::DuplexStream,
    ) -> Result<(), ApiError> {
        for k in filters.keys() {
            if !matches!(
                k.as_str(),
                "type"
                    | "event"
                    | "container"
                    | "image"
                    | "network"
                    | "volume"
                    | "label"
                    | "scope"
                    | "daemon"
                    | "config"
                    | "node"
                    | "plugin"
                    | "secret"
                    | "service"
            ) {
                return Err(ApiError::invalid(format!("invalid filter '{k}'")));
            }
        }
        let nanos = |s: f64| (s * 1e9) as i64;
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
        let until_n = until.map(nanos);
        // Subscribe first: nothing falls between the past and the live ones.
        let mut rx = self.events.tx.subscribe();
        let mut last = 0i64;
        if let Some(s) = since.map(nanos) {
            let past: Vec<Event> = self
                .events
                .kept
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|e| e.time_nano >= s && until_n.is_none_or(|u| e.time_nano <= u))
                .cloned()
                .collect();
            for e in past {
                last = e.time_nano;
                if matches(&e, &filters) && write(&mut out, &e).await.is_err() {
                    return Ok(());
                }
            }
        }
        if until_n.is_some_and(|u| u <= now) {
            return Ok(());
        }
        loop {
            let next = match until_n {
                Some(u) => {
                    let left = std::time::Duration::from_nanos(
                        (u - chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)).max(0) as u64,
                    );
                    match tokio::time::timeout(left, rx.recv()).await {
                        Ok(r) => r,
                        Err(_) => return Ok(()),
                    }
                }
                None => rx.recv().await,
            };
            match next {
                Ok(e) => {
                    if e.time_nano <= last || until_n.is_some_and(|u| e.time_nano > u) {
                        continue;
                    }
                    if matches(&e, &filters) && write(&mut out, &e).await.is_err() {
                        return Ok(());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return Ok(()),
            }
        }
    }
}

async fn write(out: &mut tokio::io::DuplexStream, e: &Event) -> std::io::Result<()> {
    let mut line = e.json().to_string();
    line.push('\n');
    out.write_all(line.as_bytes()).await?;
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_as_dockers() {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_string(), "web".to_string());
        attrs.insert("image".to_string(), "busybox".to_string());
        attrs.insert("exitCode".to_string(), "0".to_string());
        let e = Event {
            typ: "container",
            action: "health_status: healthy".into(),
            id: "abcdef".into(),
            attributes: attrs,
            time_nano: 1,
        };
        let f = |k: &str, v: &str| {
            let mut m = HashMap::new();
            m.insert(k.to_string(), vec![v.to_string()]);
            m
        };
        assert!(matches(&e, &f("container", "web")));
        assert!(matches(&e, &f("container", "abc")));
        assert!(matches(&e, &f("event", "health_status")));
        assert!(matches(&e, &f("type", "container")));
        assert!(matches(&e, &f("image", "busybox")));
        assert!(!matches(&e, &f("type", "image")));
        assert!(!matches(&e, &f("event", "die")));
        let j = e.json();
        assert_eq!(j["Actor"]["Attributes"]["name"], "web");
        assert_eq!(j["status"], "health_status: healthy");
        assert_eq!(j["from"], "busybox");
    }
}
