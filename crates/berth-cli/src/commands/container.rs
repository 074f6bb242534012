//! stop, restart, kill, rm, pause, unpause, rename, wait, top, port.

use crate::cli::{KillArgs, NamesArgs, PortArgs, RenameArgs, RmArgs, StopArgs, TopArgs};
use crate::client::{seg, Client, Query};
use crate::commands::for_each;
use crate::error::{CliError, Result};
use crate::format::table::tabwrite;
use http::Method;

pub async fn stop(c: &Client, a: StopArgs, restart: bool) -> Result<i32> {
    let verb = if restart { "restart" } else { "stop" };
    for_each(&a.containers, |name| {
        let q = Query::new()
            .add_if(a.time.is_some(), "t", a.time.unwrap_or_default())
            .add_if(
                a.signal.is_some(),
                "signal",
                a.signal.clone().unwrap_or_default(),
            );
        async move {
            c.post(&format!("/containers/{}/{verb}", seg(&name)), &q)
                .await?;
            println!("{name}");
            Ok(())
        }
    })
    .await
}

pub async fn kill(c: &Client, a: KillArgs) -> Result<i32> {
    for_each(&a.containers, |name| {
        let q = Query::new().add_if(
            a.signal.is_some(),
            "signal",
            a.signal.clone().unwrap_or_default(),
        );
        async move {
            c.post(&format!("/containers/{}/kill", seg(&name)), &q)
                .await?;
            println!("{name}");
            Ok(())
        }
    })
    .await
}

pub async fn rm(c: &Client, a: RmArgs) -> Result<i32> {
    for_each(&a.containers, |name| {
        let q = Query::new()
            .add_if(a.force, "force", 1)
            .add_if(a.volumes, "v", 1)
            .add_if(a.link, "link", 1);
        async move {
            let name = name.trim_start_matches('/').to_string();
            c.request(
                Method::DELETE,
                &format!("/containers/{}", seg(&name)),
                &q,
                None,
            )
            .await?;
            println!("{name}");
            Ok(())
        }
    })
    .await
}

pub async fn simple(c: &Client, a: NamesArgs, verb: &str) -> Result<i32> {
    for_each(&a.containers, |name| async move {
        c.post(&format!("/containers/{}/{verb}", seg(&name)), &Query::new())
            .await?;
        println!("{name}");
        Ok(())
    })
    .await
}

pub async fn rename(c: &Client, a: RenameArgs) -> Result<i32> {
    let new = a.new_name.trim().trim_start_matches('/');
    if new.is_empty() {
        return Err(CliError::msg(
            "Error: Neither old nor new names may be empty",
        ));
    }
    if let Err(e) = c
        .post(
            &format!("/containers/{}/rename", seg(&a.container)),
            &Query::new().add("name", new),
        )
        .await
    {
        eprintln!("{e}");
        return Err(CliError::msg(format!(
            "Error: failed to rename container named {}",
            a.container
        )));
    }
    Ok(0)
}

pub async fn wait(c: &Client, a: NamesArgs) -> Result<i32> {
    for_each(&a.containers, |name| async move {
        let v: serde_json::Value = c
            .post_json(
                &format!("/containers/{}/wait", seg(&name)),
                &Query::new(),
                &serde_json::Value::Null,
            )
            .await?;
        if let Some(msg) = v.pointer("/Error/Message").and_then(|m| m.as_str()) {
            if !msg.is_empty() {
                return Err(CliError::msg(msg.to_string()));
            }
        }
        println!("{}", v["StatusCode"].as_i64().unwrap_or(0));
        Ok(())
    })
    .await
}

/// docker top's table: tabwriter with minwidth 20.
pub fn top_table(v: &serde_json::Value) -> String {
    let mut text = String::new();
    let strs = |a: &serde_json::Value| -> Vec<String> {
        a.as_array()
            .map(|x| {
                x.iter()
                    .map(|s| s.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    text.push_str(&strs(&v["Titles"]).join("\t"));
    text.push('\n');
    for p in v["Processes"].as_array().into_iter().flatten() {
        text.push_str(&strs(p).join("\t"));
        text.push('\n');
    }
    tabwrite(&text, 20, 3)
}

pub async fn top(c: &Client, a: TopArgs) -> Result<i32> {
    let q = Query::new().add_if(!a.ps_args.is_empty(), "ps_args", a.ps_args.join(" "));
    let v: serde_json::Value = c
        .get(&format!("/containers/{}/top", seg(&a.container)), &q)
        .await?;
    print!("{}", top_table(&v));
    Ok(0)
}

/// `port`'s lines from `NetworkSettings.Ports`: `80/tcp -> 0.0.0.0:8080` for each binding,
/// or with a private port (`80`, `80/udp`) only its `0.0.0.0:8080`s; `None` when that port
/// has no binding.
pub fn port_lines(ports: &serde_json::Value, private: Option<&str>) -> Option<Vec<String>> {
    let addr = |b: &serde_json::Value| {
        let ip = b["HostIp"].as_str().unwrap_or("");
        let ip = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("{ip}:{}", b["HostPort"].as_str().unwrap_or(""))
    };
    let map = ports.as_object();
    match private {
        Some(p) => {
            let key = if p.contains('/') {
                p.to_string()
            } else {
                format!("{p}/tcp")
            };
            let list = map?.get(&key)?.as_array()?;
            (!list.is_empty()).then(|| list.iter().map(addr).collect())
        }
        None => {
            let mut keys: Vec<&String> = map.into_iter().flat_map(|m| m.keys()).collect();
            let num = |k: &str| k.split('/').next().and_then(|n| n.parse::<u32>().ok());
            keys.sort_by(|a, b| num(a).cmp(&num(b)).then(a.cmp(b)));
            let mut out = Vec::new();
            for k in keys {
                for b in map?[k.as_str()].as_array().into_iter().flatten() {
                    out.push(format!("{k} -> {}", addr(b)));
                }
            }
            Some(out)
        }
    }
}

pub async fn port(c: &Client, a: PortArgs) -> Result<i32> {
    let v: serde_json::Value = c
        .get(
            &format!("/containers/{}/json", seg(&a.container)),
            &Query::new(),
        )
        .await?;
    let ports = &v["NetworkSettings"]["Ports"];
    match port_lines(ports, a.private_port.as_deref()) {
        Some(lines) => {
            for l in lines {
                println!("{l}");
            }
            Ok(0)
        }
        None => {
            let p = a.private_port.unwrap_or_default();
            let key = if p.contains('/') {
                p
            } else {
                format!("{p}/tcp")
            };
            Err(CliError::msg(format!(
                "Error: No public port '{key}' published for {}",
                a.container
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_output() {
        let p = serde_json::json!({
            "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
            "443/tcp": null,
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": "5353"}],
        });
        assert_eq!(
            port_lines(&p, None).unwrap(),
            ["53/udp -> 127.0.0.1:5353", "80/tcp -> 0.0.0.0:8080"]
        );
        assert_eq!(port_lines(&p, Some("80")).unwrap(), ["0.0.0.0:8080"]);
        assert_eq!(port_lines(&p, Some("53/udp")).unwrap(), ["127.0.0.1:5353"]);
        assert!(port_lines(&p, Some("443")).is_none());
        assert!(port_lines(&p, Some("53")).is_none());
    }

    #[test]
    fn top_layout() {
        let v = serde_json::json!({"Titles": ["UID", "PID", "CMD"], "Processes": [["root", "1234", "sleep 100"]]});
        assert_eq!(
            top_table(&v),
            "UID                 PID                 CMD\nroot                1234                sleep 100\n"
        );
    }
}
