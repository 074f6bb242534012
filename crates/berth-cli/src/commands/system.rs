//! version and info.

use serde_json::Value;

use crate::cli::{InfoArgs, VersionArgs};
use crate::client::{Client, Query, CLIENT_API_VERSION};
use crate::error::{CliError, Result};
use crate::format::template::Tmpl;
use crate::format::units::bytes_size;

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

fn client_section(api: &str) -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    format!(
        "Client:\n Version:           {}\n API version:       {api}\n Go version:        n/a (rust)\n Git commit:        berth\n Built:             n/a\n OS/Arch:           {}/{arch}\n Context:           default\n Experimental:      true\n",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
    )
}

/// RFC 3339 → Go's `time.ANSIC` ("Thu May  7 21:09:36 2026"), as docker shows it.
pub fn go_ansic(t: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(t) {
        Ok(d) => d.format("%a %b %e %H:%M:%S %Y").to_string(),
        Err(_) => t.to_string(),
    }
}

/// The Server: section of `version` from `GET /version`.
pub fn server_section(v: &Value) -> String {
    let mut o = String::from("Server:\n");
    let comps = v["Components"].as_array().cloned().unwrap_or_default();
    let engine_details = comps
        .iter()
        .find(|c| c["Name"] == "Engine")
        .map(|c| c["Details"].clone())
        .unwrap_or(Value::Null);
    let d = |k: &str| -> String {
        let x = &engine_details[k];
        if x.is_null() {
            s(&v[k])
        } else {
            s(x)
        }
    };
    o.push_str(" Engine:\n");
    o.push_str(&format!("  Version:          {}\n", s(&v["Version"])));
    o.push_str(&format!(
        "  API version:      {} (minimum version {})\n",
        s(&v["ApiVersion"]),
        s(&v["MinAPIVersion"])
    ));
    o.push_str(&format!("  Go version:       {}\n", d("GoVersion")));
    o.push_str(&format!("  Git commit:       {}\n", d("GitCommit")));
    o.push_str(&format!(
        "  Built:            {}\n",
        go_ansic(&d("BuildTime"))
    ));
    o.push_str(&format!(
        "  OS/Arch:          {}/{}\n",
        s(&v["Os"]),
        s(&v["Arch"])
    ));
    o.push_str(&format!("  Experimental:     {}\n", d("Experimental")));
    for c in comps.iter().filter(|c| c["Name"] != "Engine") {
        o.push_str(&format!(" {}:\n", s(&c["Name"])));
        o.push_str(&format!("  Version:          {}\n", s(&c["Version"])));
        if let Some(det) = c["Details"].as_object() {
            for (k, val) in det {
                let label = format!("{k}:");
                o.push_str(&format!("  {label:<18}{}\n", s(val)));
            }
        }
    }
    o
}

pub async fn version(host: Option<String>, a: &VersionArgs) -> Result<i32> {
    let c = Client::connect(host).await;
    if let Some(f) = &a.format {
        let c = c?;
        let server: Value = c.get("/version", &Query::new()).await?;
        let ctx = serde_json::json!({
            "Client": {"Version": env!("CARGO_PKG_VERSION"), "ApiVersion": CLIENT_API_VERSION, "Os": std::env::consts::OS, "Arch": std::env::consts::ARCH},
            "Server": server,
        });
        let t =
            Tmpl::parse(f).map_err(|e| CliError::msg(format!("template parsing error: {e}")))?;
        println!("{}", t.render_json(&ctx).map_err(CliError::msg)?);
        return Ok(0);
    }
    match c {
        Ok(c) => {
            print!("{}", client_section(&c.api_version()));
            let server: Value = c.get("/version", &Query::new()).await?;
            println!();
            print!("{}", server_section(&server));
            Ok(0)
        }
        Err(e) => {
            print!("{}", client_section(CLIENT_API_VERSION));
            Err(e)
        }
    }
}

/// docker info's Server: section.
pub fn info_text(v: &Value) -> String {
    let mut o = String::from("Client:\n Context:    default\n Debug Mode: false\n\nServer:\n");
    let n = |k: &str| v[k].as_i64().unwrap_or(0);
    o.push_str(&format!(" Containers: {}\n", n("Containers")));
    o.push_str(&format!("  Running: {}\n", n("ContainersRunning")));
    o.push_str(&format!("  Paused: {}\n", n("ContainersPaused")));
    o.push_str(&format!("  Stopped: {}\n", n("ContainersStopped")));
    o.push_str(&format!(" Images: {}\n", n("Images")));
    o.push_str(&format!(" Server Version: {}\n", s(&v["ServerVersion"])));
    o.push_str(&format!(" Storage Driver: {}\n", s(&v["Driver"])));
    for pair in v["DriverStatus"].as_array().into_iter().flatten() {
        if let Some([k, val]) = pair.as_array().map(|a| a.as_slice()) {
            o.push_str(&format!("  {}: {}\n", s(k), s(val)));
        }
    }
    o.push_str(&format!(" Logging Driver: {}\n", s(&v["LoggingDriver"])));
    o.push_str(&format!(" Cgroup Driver: {}\n", s(&v["CgroupDriver"])));
    o.push_str(&format!(" Cgroup Version: {}\n", s(&v["CgroupVersion"])));
    if let Some(p) = v["Plugins"].as_object() {
        o.push_str(" Plugins:\n");
        for k in ["Volume", "Network", "Authorization", "Log"] {
            if let Some(list) = p.get(k).and_then(|l| l.as_array()) {
                let items: Vec<String> = list.iter().map(s).collect();
                o.push_str(&format!("  {k}: {}\n", items.join(" ")));
            }
        }
    }
    if let Some(st) = v.pointer("/Swarm/LocalNodeState").and_then(|x| x.as_str()) {
        o.push_str(&format!(" Swarm: {st}\n"));
    }
    if let Some(r) = v["Runtimes"].as_object() {
        let mut names: Vec<&String> = r.keys().collect();
        names.sort();
        o.push_str(&format!(
            " Runtimes: {}\n",
            names
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
        o.push_str(&format!(" Default Runtime: {}\n", s(&v["DefaultRuntime"])));
    }
    if !v["InitBinary"].is_null() {
        o.push_str(&format!(" Init Binary: {}\n", s(&v["InitBinary"])));
    }
    for (label, key) in [
        ("containerd", "ContainerdCommit"),
        ("runc", "RuncCommit"),
        ("init", "InitCommit"),
    ] {
        if let Some(id) = v[key].get("ID") {
            o.push_str(&format!(" {label} version: {}\n", s(id)));
        }
    }
    if let Some(sec) = v["SecurityOptions"].as_array() {
        if !sec.is_empty() {
            o.push_str(" Security Options:\n");
            for opt in sec {
                let opt = s(opt);
                let mut name = String::new();
                let mut rest = Vec::new();
                for kv in opt.split(',') {
                    match kv.split_once('=') {
                        Some(("name", n)) => name = n.to_string(),
                        Some((k, val)) => rest.push((k.to_string(), val.to_string())),
                        None => name = kv.to_string(),
                    }
                }
                o.push_str(&format!("  {name}\n"));
                for (k, val) in rest {
                    let mut kc = k.chars();
                    let k = kc
                        .next()
                        .map(|c| c.to_uppercase().collect::<String>() + kc.as_str())
                        .unwrap_or_default();
                    o.push_str(&format!("   {k}: {val}\n"));
                }
            }
        }
    }
    o.push_str(&format!(" Kernel Version: {}\n", s(&v["KernelVersion"])));
    o.push_str(&format!(
        " Operating System: {}\n",
        s(&v["OperatingSystem"])
    ));
    o.push_str(&format!(" OSType: {}\n", s(&v["OSType"])));
    o.push_str(&format!(" Architecture: {}\n", s(&v["Architecture"])));
    o.push_str(&format!(" CPUs: {}\n", n("NCPU")));
    o.push_str(&format!(
        " Total Memory: {}\n",
        bytes_size(v["MemTotal"].as_f64().unwrap_or(0.0))
    ));
    o.push_str(&format!(" Name: {}\n", s(&v["Name"])));
    o.push_str(&format!(" ID: {}\n", s(&v["ID"])));
    o.push_str(&format!(" Docker Root Dir: {}\n", s(&v["DockerRootDir"])));
    o.push_str(&format!(
        " Debug Mode: {}\n",
        v["Debug"].as_bool().unwrap_or(false)
    ));
    if !v["IndexServerAddress"].is_null() {
        o.push_str(&format!(" Registry: {}\n", s(&v["IndexServerAddress"])));
    }
    o.push_str(" Labels:\n");
    for l in v["Labels"].as_array().into_iter().flatten() {
        o.push_str(&format!("  {}\n", s(l)));
    }
    o.push_str(&format!(
        " Experimental: {}\n",
        v["ExperimentalBuild"].as_bool().unwrap_or(false)
    ));
    o.push_str(" Insecure Registries:\n");
    let mut insecure: Vec<&Value> = v
        .pointer("/RegistryConfig/IndexConfigs")
        .and_then(|m| m.as_object())
        .into_iter()
        .flat_map(|m| m.values())
        .filter(|i| i["Secure"] == false)
        .map(|i| &i["Name"])
        .collect();
    insecure.sort_by_key(|n| s(n));
    for name in insecure {
        o.push_str(&format!("  {}\n", s(name)));
    }
    for cidr in v
        .pointer("/RegistryConfig/InsecureRegistryCIDRs")
        .and_then(|a| a.as_array())
        .into_iter()
        .flatten()
    {
        o.push_str(&format!("  {}\n", s(cidr)));
    }
    let mirrors = v
        .pointer("/RegistryConfig/Mirrors")
        .and_then(|a| a.as_array())
        .cloned()
        .unwrap_or_default();
    if !mirrors.is_empty() {
        o.push_str(" Registry Mirrors:\n");
        for m in &mirrors {
            o.push_str(&format!("  {}\n", s(m)));
        }
    }
    o.push_str(&format!(
        " Live Restore Enabled: {}\n\n",
        v["LiveRestoreEnabled"].as_bool().unwrap_or(false)
    ));
    o
}

pub async fn info(c: &Client, a: InfoArgs) -> Result<i32> {
    let v: Value = c.get("/info", &Query::new()).await?;
    if let Some(f) = &a.format {
        let t =
            Tmpl::parse(f).map_err(|e| CliError::msg(format!("template parsing error: {e}")))?;
        println!("{}", t.render_json(&v).map_err(CliError::msg)?);
        return Ok(0);
    }
    print!("{}", info_text(&v));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_layout() {
        let v = serde_json::json!({"Containers": 2, "ContainersRunning": 1, "ContainersPaused": 0,
            "ContainersStopped": 1, "Images": 1, "ServerVersion": "0.1.0", "Driver": "overlay2",
            "CgroupVersion": "2", "DockerRootDir": "/var/lib/berth", "MemTotal": 25275990016u64});
        let t = info_text(&v);
        assert!(t.contains("\nServer:\n Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n Images: 1\n Server Version: 0.1.0\n Storage Driver: overlay2\n"));
        assert!(t.contains(" Cgroup Version: 2\n"));
        assert!(t.contains(" Docker Root Dir: /var/lib/berth\n"));
        assert!(t.contains(" Total Memory: 23.54GiB\n"));
    }
}
