//! stats, as docker 20.10's `cli/command/container/stats.go`, `stats_helpers.go` and
//! `formatter_stats.go`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gtmpl::Value as T;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use crate::cli::StatsArgs;
use crate::client::{empty_body, seg, Client, Query};
use crate::error::{CliError, Result};
use crate::format::template::render_rows;
use crate::format::units::{bytes_size, human_size_prec, truncate_id};

/// A stream of JSON values in a response body (the daemon writes one after another).
pub(crate) struct JsonStream {
    body: Incoming,
    buf: Vec<u8>,
    done: bool,
}

impl JsonStream {
    pub(crate) fn new(body: Incoming) -> Self {
        JsonStream {
            body,
            buf: Vec::new(),
            done: false,
        }
    }

    /// The next value; `None` at the end of the body.
    pub(crate) async fn next(&mut self) -> Option<std::result::Result<Value, String>> {
        loop {
            let start = self
                .buf
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(self.buf.len());
            self.buf.drain(..start);
            if !self.buf.is_empty() {
                let mut it = serde_json::Deserializer::from_slice(&self.buf).into_iter::<Value>();
                match it.next() {
                    Some(Ok(v)) => {
                        let off = it.byte_offset();
                        self.buf.drain(..off);
                        return Some(Ok(v));
                    }
                    Some(Err(e)) if !e.is_eof() => {
                        self.buf.clear();
                        return Some(Err(e.to_string()));
                    }
                    _ => {}
                }
            }
            if self.done {
                if self.buf.is_empty() {
                    return None;
                }
                self.buf.clear();
                return Some(Err("unexpected EOF".into()));
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    self.buf.clear();
                    return Some(Err(e.to_string()));
                }
                None => self.done = true,
            }
        }
    }
}

/// docker's `StatsEntry`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsEntry {
    pub container: String,
    pub name: String,
    pub id: String,
    pub cpu_percentage: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percentage: f64,
    pub network_rx: f64,
    pub network_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids_current: u64,
    pub is_invalid: bool,
}

fn u(v: &Value, p: &str) -> u64 {
    v.pointer(p).and_then(Value::as_u64).unwrap_or(0)
}

/// `calculateCPUPercentUnix`.
pub fn cpu_percent(v: &Value) -> f64 {
    let cpu_delta = u(v, "/cpu_stats/cpu_usage/total_usage") as f64
        - u(v, "/precpu_stats/cpu_usage/total_usage") as f64;
    let system_delta =
        u(v, "/cpu_stats/system_cpu_usage") as f64 - u(v, "/precpu_stats/system_cpu_usage") as f64;
    let mut online = u(v, "/cpu_stats/online_cpus") as f64;
    if online == 0.0 {
        online = v
            .pointer("/cpu_stats/cpu_usage/percpu_usage")
            .and_then(Value::as_array)
            .map(|a| a.len())
            .unwrap_or(0) as f64;
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * online * 100.0
    } else {
        0.0
    }
}

/// `calculateMemUsageUnixNoCache`: usage less `total_inactive_file` (cgroup v1) or
/// `inactive_file` (v2).
pub fn mem_usage_no_cache(v: &Value) -> f64 {
    let usage = u(v, "/memory_stats/usage");
    let stats = v.pointer("/memory_stats/stats");
    if let Some(x) = stats
        .and_then(|s| s.get("total_inactive_file"))
        .and_then(Value::as_u64)
    {
        if x < usage {
            return (usage - x) as f64;
        }
    }
    let x = stats
        .and_then(|s| s.get("inactive_file"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if x < usage {
        (usage - x) as f64
    } else {
        usage as f64
    }
}

/// `calculateBlockIO`: (read, write) bytes.
pub fn block_io(v: &Value) -> (u64, u64) {
    let (mut r, mut w) = (0u64, 0u64);
    for e in v
        .pointer("/blkio_stats/io_service_bytes_recursive")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let val = e["value"].as_u64().unwrap_or(0);
        match e["op"].as_str().and_then(|o| o.chars().next()) {
            Some('r' | 'R') => r = r.wrapping_add(val),
            Some('w' | 'W') => w = w.wrapping_add(val),
            _ => {}
        }
    }
    (r, w)
}

/// `calculateNetwork`: (rx, tx) bytes over every interface.
pub fn network_io(v: &Value) -> (f64, f64) {
    let (mut rx, mut tx) = (0.0, 0.0);
    for n in v["networks"]
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
    {
        rx += n["rx_bytes"].as_u64().unwrap_or(0) as f64;
        tx += n["tx_bytes"].as_u64().unwrap_or(0) as f64;
    }
    (rx, tx)
}

/// One sample of `GET /containers/{id}/stats` as docker's `collect` makes it an entry.
pub fn entry_from_json(container: &str, v: &Value) -> StatsEntry {
    let mem = mem_usage_no_cache(v);
    let limit = u(v, "/memory_stats/limit") as f64;
    let (r, w) = block_io(v);
    let (rx, tx) = network_io(v);
    StatsEntry {
        container: container.to_string(),
        name: v["name"].as_str().unwrap_or("").to_string(),
        id: v["id"].as_str().unwrap_or("").to_string(),
        cpu_percentage: cpu_percent(v),
        memory: mem,
        memory_limit: limit,
        memory_percentage: if limit != 0.0 {
            mem / limit * 100.0
        } else {
            0.0
        },
        network_rx: rx,
        network_tx: tx,
        block_read: r as f64,
        block_write: w as f64,
        pids_current: u(v, "/pids_stats/current"),
        is_invalid: false,
    }
}

pub const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

const HEADERS: &[(&str, &str)] = &[
    ("Container", "CONTAINER"),
    ("Name", "NAME"),
    ("ID", "CONTAINER ID"),
    ("CPUPerc", "CPU %"),
    ("MemUsage", "MEM USAGE / LIMIT"),
    ("MemPerc", "MEM %"),
    ("NetIO", "NET I/O"),
    ("BlockIO", "BLOCK I/O"),
    ("PIDs", "PIDS"),
];

/// The fields of docker's `statsContext`, as displayed.
pub fn row(s: &StatsEntry, trunc: bool) -> HashMap<String, T> {
    let inv = s.is_invalid;
    let or = |x: String| if inv { "--".to_string() } else { x };
    let fields = [
        ("Container", s.container.clone()),
        (
            "Name",
            if s.name.chars().count() > 1 {
                s.name.chars().skip(1).collect()
            } else {
                "--".into()
            },
        ),
        (
            "ID",
            if trunc {
                truncate_id(&s.id)
            } else {
                s.id.clone()
            },
        ),
        ("CPUPerc", or(format!("{:.2}%", s.cpu_percentage))),
        (
            "MemUsage",
            if inv {
                "-- / --".into()
            } else {
                format!("{} / {}", bytes_size(s.memory), bytes_size(s.memory_limit))
            },
        ),
        ("MemPerc", or(format!("{:.2}%", s.memory_percentage))),
        (
            "NetIO",
            or(format!(
                "{} / {}",
                human_size_prec(s.network_rx, 3),
                human_size_prec(s.network_tx, 3)
            )),
        ),
        (
            "BlockIO",
            or(format!(
                "{} / {}",
                human_size_prec(s.block_read, 3),
                human_size_prec(s.block_write, 3)
            )),
        ),
        ("PIDs", or(s.pids_current.to_string())),
    ];
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), T::String(v)))
        .collect()
}

/// docker's `statsFormatWrite`.
pub fn render(
    entries: &[StatsEntry],
    format: &str,
    trunc: bool,
) -> std::result::Result<String, String> {
    let rows: Vec<HashMap<String, T>> = entries.iter().map(|e| row(e, trunc)).collect();
    render_rows("*container.statsContext", format, HEADERS, &rows)
}

/// A container being watched: its latest entry and error.
#[derive(Default)]
struct Watched {
    entry: StatsEntry,
    err: Option<String>,
}

type Shared = Arc<Mutex<Vec<Watched>>>;

fn with_entry(shared: &Shared, container: &str, f: impl FnOnce(&mut Watched)) {
    let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(w) = g.iter_mut().find(|w| w.entry.container == container) {
        f(w);
    }
}

/// docker's `collect`: read the container's stats, updating its entry; `first` fires at the
/// first sample or error.
async fn collect(
    c: Client,
    shared: Shared,
    container: String,
    stream: bool,
    first: tokio::sync::oneshot::Sender<()>,
) {
    let mut first = Some(first);
    let mut fire = || {
        if let Some(f) = first.take() {
            let _ = f.send(());
        }
    };
    let q = Query::new().add("stream", if stream { 1 } else { 0 });
    let resp = c
        .send(
            Method::GET,
            &format!("/containers/{}/stats", seg(&container)),
            &q,
            empty_body(),
            None,
        )
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            with_entry(&shared, &container, |w| {
                w.err = Some(e.to_string());
                w.entry.is_invalid = true;
            });
            fire();
            return;
        }
    };
    let mut js = JsonStream::new(resp.into_body());
    loop {
        match tokio::time::timeout(Duration::from_secs(2), js.next()).await {
            Err(_) => {
                // No update within 2 s: zero the values (SetErrorAndReset).
                with_entry(&shared, &container, |w| {
                    let e = &mut w.entry;
                    *e = StatsEntry {
                        container: e.container.clone(),
                        name: e.name.clone(),
                        id: e.id.clone(),
                        is_invalid: true,
                        ..Default::default()
                    };
                    w.err = Some("timeout waiting for stats".into());
                });
                fire();
            }
            Ok(Some(Ok(v))) => {
                let e = entry_from_json(&container, &v);
                with_entry(&shared, &container, |w| {
                    w.entry = e;
                    w.err = None;
                });
                fire();
                if !stream {
                    return;
                }
            }
            Ok(Some(Err(m))) => {
                with_entry(&shared, &container, |w| {
                    w.err = Some(m);
                    w.entry.is_invalid = true;
                });
                fire();
                if !stream {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) => {
                with_entry(&shared, &container, |w| {
                    w.err = Some("EOF".into());
                    w.entry.is_invalid = true;
                });
                fire();
                return;
            }
        }
    }
}

/// Start watching `container` unless it is already watched; the receiver fires at its
/// first sample.
fn add(
    c: &Client,
    shared: &Shared,
    container: &str,
    stream: bool,
) -> Option<tokio::sync::oneshot::Receiver<()>> {
    {
        let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
        if g.iter().any(|w| w.entry.container == container) {
            return None;
        }
        g.push(Watched {
            entry: StatsEntry {
                container: container.to_string(),
                ..Default::default()
            },
            err: None,
        });
    }
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(collect(
        c.clone(),
        shared.clone(),
        container.to_string(),
        stream,
        tx,
    ));
    Some(rx)
}

fn remove(shared: &Shared, container: &str) {
    let mut g = shared.lock().unwrap_or_else(|e| e.into_inner());
    g.retain(|w| w.entry.container != container);
}

fn short(id: &str) -> String {
    id.chars().take(12).collect()
}

/// Follow container events (create, start, die) to add and drop containers, as docker's
/// stats without names does.
async fn watch_events(c: Client, shared: Shared, all: bool, stream: bool) {
    let q = Query::new().add("filters", r#"{"type":{"container":true}}"#);
    let Ok(resp) = c.send(Method::GET, "/events", &q, empty_body(), None).await else {
        return;
    };
    let mut js = JsonStream::new(resp.into_body());
    while let Some(Ok(ev)) = js.next().await {
        let action = ev["Action"]
            .as_str()
            .or(ev["status"].as_str())
            .unwrap_or("");
        let id = ev["Actor"]["ID"]
            .as_str()
            .or(ev["id"].as_str())
            .unwrap_or("");
        if id.is_empty() {
            continue;
        }
        match action {
            "create" if all => {
                add(&c, &shared, &short(id), stream);
            }
            "start" => {
                add(&c, &shared, &short(id), stream);
            }
            "die" if !all => remove(&shared, &short(id)),
            _ => {}
        }
    }
}

pub async fn stats(c: &Client, a: StatsArgs) -> Result<i32> {
    let show_all = a.containers.is_empty();
    let stream = !a.no_stream;
    let shared: Shared = Arc::new(Mutex::new(Vec::new()));
    let mut firsts = Vec::new();
    if show_all {
        tokio::spawn(watch_events(c.clone(), shared.clone(), a.all, stream));
        let q = Query::new().add_if(a.all, "all", 1);
        let list: Vec<Value> = c.get("/containers/json", &q).await?;
        for ct in &list {
            let id = short(ct["Id"].as_str().unwrap_or(""));
            if let Some(rx) = add(c, &shared, &id, stream) {
                firsts.push(rx);
            }
        }
    } else {
        for n in &a.containers {
            if let Some(rx) = add(c, &shared, n, stream) {
                firsts.push(rx);
            }
        }
    }
    for f in firsts {
        let _ = f.await;
    }
    if !show_all {
        let errs: Vec<String> = {
            let g = shared.lock().unwrap_or_else(|e| e.into_inner());
            g.iter().filter_map(|w| w.err.clone()).collect()
        };
        if !errs.is_empty() {
            return Err(CliError::msg(errs.join("\n")));
        }
    }
    let format = a
        .format
        .clone()
        .filter(|f| !f.is_empty())
        .unwrap_or_else(|| "table".into());
    let format = if format == "table" {
        DEFAULT_FORMAT.to_string()
    } else {
        format
    };
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(500),
        Duration::from_millis(500),
    );
    use std::io::Write;
    loop {
        ticker.tick().await;
        let (entries, n) = {
            let g = shared.lock().unwrap_or_else(|e| e.into_inner());
            (
                g.iter().map(|w| w.entry.clone()).collect::<Vec<_>>(),
                g.len(),
            )
        };
        let text = render(&entries, &format, !a.no_trunc).map_err(CliError::msg)?;
        let mut out = std::io::stdout().lock();
        if stream {
            let _ = out.write_all(b"\x1b[2J\x1b[H");
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        drop(out);
        if (n == 0 && !show_all) || !stream {
            break;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "read": "2026-11-28T10:00:01.000000000Z",
            "preread": "2026-11-28T10:00:00.000000000Z",
            "name": "/web",
            "id": "4f5e6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091",
            "pids_stats": {"current": 7},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"major": 8, "minor": 0, "op": "read", "value": 4096000},
                {"major": 8, "minor": 0, "op": "write", "value": 1024},
                {"major": 8, "minor": 0, "op": "sync", "value": 5},
                {"major": 8, "minor": 0, "op": "Read", "value": 4000},
            ]},
            "cpu_stats": {
                "cpu_usage": {"total_usage": 400_000_000u64, "percpu_usage": [1, 2, 3, 4]},
                "system_cpu_usage": 20_000_000_000u64,
                "online_cpus": 2,
            },
            "precpu_stats": {
                "cpu_usage": {"total_usage": 300_000_000u64},
                "system_cpu_usage": 18_000_000_000u64,
                "online_cpus": 2,
            },
            "memory_stats": {"usage": 10_485_760u64, "limit": 2_147_483_648u64,
                "stats": {"inactive_file": 2_097_152u64}},
            "networks": {
                "eth0": {"rx_bytes": 1500, "tx_bytes": 648},
                "eth1": {"rx_bytes": 500, "tx_bytes": 0},
            },
        })
    }

    #[test]
    fn computations_as_docker() {
        let v = sample();
        // (100e6 / 2000e6) * 2 cpus * 100
        assert!((cpu_percent(&v) - 10.0).abs() < 1e-9);
        let mut v1 = v.clone();
        v1["cpu_stats"]["online_cpus"] = json!(0);
        assert!((cpu_percent(&v1) - 20.0).abs() < 1e-9);
        v1["cpu_stats"]["system_cpu_usage"] = json!(18_000_000_000u64);
        assert_eq!(cpu_percent(&v1), 0.0);
        assert_eq!(mem_usage_no_cache(&v), 8_388_608.0);
        let mut v2 = v.clone();
        v2["memory_stats"]["stats"] =
            json!({"total_inactive_file": 1_048_576u64, "inactive_file": 5});
        assert_eq!(mem_usage_no_cache(&v2), 9_437_184.0);
        v2["memory_stats"]["stats"] = json!({"total_inactive_file": 99_999_999u64});
        assert_eq!(mem_usage_no_cache(&v2), 10_485_760.0);
        v2["memory_stats"]["stats"] = json!({});
        assert_eq!(mem_usage_no_cache(&v2), 10_485_760.0);
        assert_eq!(block_io(&v), (4_100_000, 1024));
        assert_eq!(network_io(&v), (2000.0, 648.0));
        let e = entry_from_json("web", &v);
        assert_eq!(e.pids_current, 7);
        assert!((e.memory_percentage - 0.390625).abs() < 1e-9);
        assert_eq!(entry_from_json("x", &json!({})).memory_percentage, 0.0);
    }

    #[test]
    fn table_as_docker() {
        let e = entry_from_json("web", &sample());
        let out = render(std::slice::from_ref(&e), DEFAULT_FORMAT, true).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O      BLOCK I/O        PIDS\n\
             4f5e6a7b8c9d   web       10.00%    8MiB / 2GiB         0.39%     2kB / 648B   4.1MB / 1.02kB   7\n"
        );
        let bad = StatsEntry {
            container: "x".into(),
            is_invalid: true,
            ..Default::default()
        };
        let r = row(&bad, true);
        assert_eq!(r["Name"], T::String("--".into()));
        assert_eq!(r["MemUsage"], T::String("-- / --".into()));
        for k in ["CPUPerc", "MemPerc", "NetIO", "BlockIO", "PIDs"] {
            assert_eq!(r[k], T::String("--".into()), "{k}");
        }
        assert_eq!(
            render(
                std::slice::from_ref(&e),
                "{{.Container}}: {{.CPUPerc}} {{.MemPerc}}",
                false
            )
            .unwrap(),
            "web: 10.00% 0.39%\n"
        );
        assert_eq!(
            render(std::slice::from_ref(&e), "{{.ID}}", false).unwrap(),
            format!("{}\n", e.id)
        );
        assert_eq!(
            render(&[e], "{{json .}}", true).unwrap(),
            "{\"BlockIO\":\"4.1MB / 1.02kB\",\"CPUPerc\":\"10.00%\",\"Container\":\"web\",\"ID\":\"4f5e6a7b8c9d\",\"MemPerc\":\"0.39%\",\"MemUsage\":\"8MiB / 2GiB\",\"Name\":\"web\",\"NetIO\":\"2kB / 648B\",\"PIDs\":\"7\"}\n"
        );
        assert_eq!(
            render(&[], DEFAULT_FORMAT, true).unwrap(),
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O   PIDS\n"
        );
    }
}
