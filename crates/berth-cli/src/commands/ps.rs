//! ps / container ls.

use std::collections::HashMap;

use gtmpl::Value as T;
use serde_json::Value;

use crate::cli::PsArgs;
use crate::client::{Client, Query};
use crate::error::{CliError, Result};
use crate::format::template::render_rows;
use crate::format::units::{
    ellipsis, go_quote, go_time_string, human_size_prec, since_unix, truncate_id,
};
use crate::opts::filters_json;

pub const PS_HEADERS: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("Ports", "PORTS"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("Size", "SIZE"),
    ("Names", "NAMES"),
    ("Labels", "LABELS"),
    ("Mounts", "MOUNTS"),
    ("Networks", "NETWORKS"),
    ("LocalVolumes", "LOCAL VOLUMES"),
    ("Platform", "PLATFORM"),
];

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// docker's `DisplayablePorts`: ports sorted by container port, address, host port and
/// protocol; runs of consecutive ports folded into ranges (`80-81/tcp`, and
/// `0.0.0.0:8000-8001->8000-8001/tcp` where host and container ports are the same); a port
/// published on another number listed on its own, after the groups
/// (`0.0.0.0:8080->80/tcp`, `[::]:8080->80/tcp`).
pub fn display_ports(ports: &Value) -> String {
    struct P<'a> {
        ip: &'a str,
        private: i64,
        public: i64,
        typ: &'a str,
    }
    let mut list: Vec<P> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| P {
            ip: s(&p["IP"]),
            private: p["PrivatePort"].as_i64().unwrap_or(0),
            public: p["PublicPort"].as_i64().unwrap_or(0),
            typ: s(&p["Type"]),
        })
        .collect();
    list.sort_by(|a, b| {
        (a.private, a.ip, a.public, a.typ).cmp(&(b.private, b.ip, b.public, b.typ))
    });
    // Groups by key (`tcp`, or `0.0.0.0/tcp`), in the order the keys first appear.
    let mut groups: Vec<(String, i64, i64)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    let form = |key: &str, first: i64, last: i64| {
        let (ip, typ) = match key.rsplit_once('/') {
            Some((ip, typ)) => (ip, typ),
            None => ("", key),
        };
        let mut range = first.to_string();
        if first != last {
            range = format!("{range}-{last}");
        }
        if ip.is_empty() {
            format!("{range}/{typ}")
        } else {
            format!("{ip}:{range}->{range}/{typ}")
        }
    };
    for p in &list {
        let key = if p.ip.is_empty() {
            p.typ.to_string()
        } else {
            if p.public != p.private {
                let host = if p.ip.contains(':') {
                    format!("[{}]:{}", p.ip, p.public)
                } else {
                    format!("{}:{}", p.ip, p.public)
                };
                mappings.push(format!("{host}->{}/{}", p.private, p.typ));
                continue;
            }
            format!("{}/{}", p.ip, p.typ)
        };
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2 + 1 => g.2 = p.private,
            Some(g) => {
                result.push(form(&g.0, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    result.extend(groups.iter().map(|g| form(&g.0, g.1, g.2)));
    result.extend(mappings);
    result.join(", ")
}

/// The display fields of one container, as `docker ps` computes them.
pub fn container_row(c: &Value, trunc: bool) -> HashMap<String, T> {
    let mut m: HashMap<String, T> = HashMap::new();
    let id = s(&c["Id"]);
    m.insert(
        "ID".into(),
        T::from(if trunc {
            truncate_id(id)
        } else {
            id.to_string()
        }),
    );
    let mut image = s(&c["Image"]).to_string();
    if trunc {
        let image_id = s(&c["ImageID"]);
        if !image_id.is_empty() && truncate_id(image_id) == truncate_id(&image) {
            image = truncate_id(&image);
        }
        if let Some((name, _)) = image.split_once('@') {
            image = name.to_string();
        }
    }
    if image.is_empty() {
        image = "<no image>".into();
    }
    m.insert("Image".into(), T::from(image));
    let cmd = s(&c["Command"]);
    let cmd = if trunc {
        ellipsis(cmd, 20)
    } else {
        cmd.to_string()
    };
    m.insert("Command".into(), T::from(go_quote(&cmd)));
    let created = c["Created"].as_i64().unwrap_or(0);
    m.insert("CreatedAt".into(), T::from(go_time_string(created)));
    m.insert("RunningFor".into(), T::from(since_unix(created)));
    m.insert("Ports".into(), T::from(display_ports(&c["Ports"])));
    m.insert("State".into(), T::from(s(&c["State"])));
    m.insert("Status".into(), T::from(s(&c["Status"])));
    let srw = human_size_prec(c["SizeRw"].as_f64().unwrap_or(0.0), 3);
    let root = c["SizeRootFs"].as_f64().unwrap_or(0.0);
    let size = if root > 0.0 {
        format!("{srw} (virtual {})", human_size_prec(root, 3))
    } else {
        srw
    };
    m.insert("Size".into(), T::from(size));
    let names: Vec<String> = c["Names"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| s(n).trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    m.insert("Names".into(), T::from(names.join(",")));
    let mut labels: Vec<String> = c["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", s(v)))
        .collect();
    labels.sort();
    m.insert("Labels".into(), T::from(labels.join(",")));
    let mounts: Vec<String> = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|mt| {
            let name = if s(&mt["Name"]).is_empty() {
                s(&mt["Source"])
            } else {
                s(&mt["Name"])
            };
            if trunc {
                ellipsis(name, 15)
            } else {
                name.to_string()
            }
        })
        .collect();
    m.insert("Mounts".into(), T::from(mounts.join(",")));
    let local = c["Mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|mt| s(&mt["Driver"]) == "local")
        .count();
    m.insert("LocalVolumes".into(), T::from(local.to_string()));
    let mut nets: Vec<String> = c
        .pointer("/NetworkSettings/Networks")
        .and_then(|n| n.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    nets.sort();
    m.insert("Networks".into(), T::from(nets.join(",")));
    m.insert("Platform".into(), T::from(""));
    m
}

pub fn default_ps_format(size: bool) -> String {
    let mut f = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
    if size {
        f.push_str("\t{{.Size}}");
    }
    f
}

pub async fn ps(c: &Client, a: PsArgs) -> Result<i32> {
    let filters = filters_json(&a.filter).map_err(CliError::msg)?;
    let limit = if a.latest { 1 } else { a.last };
    let size = a.size || a.format.as_deref().is_some_and(|f| f.contains(".Size"));
    let q = Query::new()
        .add_if(a.all || limit > 0, "all", 1)
        .add_if(limit > 0, "limit", limit)
        .add_if(size, "size", 1)
        .add_if(
            filters.is_some(),
            "filters",
            filters.clone().unwrap_or_default(),
        );
    let list: Vec<Value> = c.get("/containers/json", &q).await?;
    if a.quiet && a.format.is_none() {
        for ct in &list {
            let id = s(&ct["Id"]);
            println!(
                "{}",
                if a.no_trunc {
                    id.to_string()
                } else {
                    truncate_id(id)
                }
            );
        }
        return Ok(0);
    }
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => default_ps_format(a.size),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let rows: Vec<_> = list
        .iter()
        .map(|ct| container_row(ct, !a.no_trunc))
        .collect();
    let out = render_rows("*formatter.ContainerContext", &format, PS_HEADERS, &rows)
        .map_err(CliError::msg)?;
    print!("{out}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_fields() {
        let c = serde_json::json!({
            "Id": "317ddf3d858264b120a69197167dfa6b64b7f9d92668eca073fad3dca0d04285",
            "Names": ["/quirky_borg"], "Image": "busybox", "ImageID": "sha256:c6df5e495a91b6",
            "Command": "sh -c 'sleep 10000; echo done'", "Created": 0, "State": "exited",
            "Status": "Exited (0) 5 seconds ago", "Labels": {"b": "2", "a": "1"},
            "Ports": [{"PrivatePort": 80, "PublicPort": 8080, "IP": "0.0.0.0", "Type": "tcp"}, {"PrivatePort": 443, "Type": "tcp"}],
            "SizeRw": 0
        });
        let r = container_row(&c, true);
        assert_eq!(r["ID"].to_string(), "317ddf3d8582");
        assert_eq!(r["Command"].to_string(), "\"sh -c 'sleep 10000;…\"");
        assert_eq!(r["Names"].to_string(), "quirky_borg");
        assert_eq!(r["Labels"].to_string(), "a=1,b=2");
        assert_eq!(r["Ports"].to_string(), "443/tcp, 0.0.0.0:8080->80/tcp");
        assert_eq!(r["Size"].to_string(), "0B");
        let out = render_rows(
            "*formatter.ContainerContext",
            &default_ps_format(false),
            PS_HEADERS,
            &[r],
        )
        .unwrap();
        assert!(
            out.starts_with("CONTAINER ID   IMAGE     COMMAND                  CREATED"),
            "{out}"
        );
    }
}

#[cfg(test)]
mod port_tests {
    use super::display_ports;
    use serde_json::json;

    #[test]
    fn ports_fold_into_ranges_as_dockers() {
        let p = |ip: &str, private: i64, public: i64, typ: &str| {
            let mut v = json!({"PrivatePort": private, "Type": typ});
            if !ip.is_empty() {
                v["IP"] = json!(ip);
                v["PublicPort"] = json!(public);
            }
            v
        };
        assert_eq!(display_ports(&json!([])), "");
        assert_eq!(
            display_ports(&json!([
                p("", 81, 0, "tcp"),
                p("", 80, 0, "tcp"),
                p("", 53, 0, "udp")
            ])),
            "53/udp, 80-81/tcp"
        );
        assert_eq!(
            display_ports(&json!([
                p("0.0.0.0", 8001, 8001, "tcp"),
                p("0.0.0.0", 8000, 8000, "tcp"),
                p("0.0.0.0", 80, 8080, "tcp"),
                p("::", 80, 8080, "tcp"),
            ])),
            "0.0.0.0:8000-8001->8000-8001/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(
            display_ports(&json!([p("", 80, 0, "tcp"), p("", 82, 0, "tcp")])),
            "80/tcp, 82/tcp"
        );
    }
}
