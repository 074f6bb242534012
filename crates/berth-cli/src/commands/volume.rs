//! volume create, ls, rm and prune, as docker 20.10's (volume inspect is in `inspect`).

use std::collections::HashMap;

use gtmpl::Value as T;
use serde_json::{json, Map, Value};

use crate::cli::{VolumeCreateArgs, VolumeLsArgs, VolumePruneArgs, VolumeRmArgs};
use crate::client::{seg, Client, Query};
use crate::commands::prune::confirm;
use crate::error::{CliError, Result};
use crate::format::template::render_rows;
use crate::format::units::human_size;
use crate::opts::{filters_json, labels_map, map_json, natural_less};

pub const VOLUME_HEADERS: &[(&str, &str)] = &[
    ("Name", "VOLUME NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
];

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn sorted(m: Map<String, Value>) -> Value {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Object(v.into_iter().collect())
}

/// The `POST /volumes/create` body (`volume.VolumeCreateBody`), or docker's message for a name
/// given twice.
pub fn create_body(a: &VolumeCreateArgs) -> std::result::Result<Value, String> {
    let name =
        match (&a.name, &a.name_flag) {
            (Some(_), Some(f)) if !f.is_empty() => return Err(
                "conflicting options: either specify --name or provide positional arg, not both"
                    .into(),
            ),
            (Some(n), _) => n.clone(),
            (None, f) => f.clone().unwrap_or_default(),
        };
    Ok(json!({
        "Driver": a.driver,
        "DriverOpts": map_json(&a.opt),
        "Labels": sorted(labels_map(&a.label)),
        "Name": name,
    }))
}

pub async fn create(c: &Client, a: VolumeCreateArgs) -> Result<i32> {
    let body = create_body(&a).map_err(CliError::msg)?;
    let resp: Value = c.post_json("/volumes/create", &Query::new(), &body).await?;
    println!("{}", s(&resp["Name"]));
    Ok(0)
}

/// One row of `volume ls` (docker's `volumeContext`).
fn volume_row(v: &Value) -> HashMap<String, T> {
    let mut m = HashMap::new();
    for k in ["Name", "Driver", "Scope", "Mountpoint"] {
        m.insert(k.into(), T::from(s(&v[k])));
    }
    let mut labels: Vec<String> = v["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    m.insert("Labels".into(), T::from(labels.join(",")));
    let usage = &v["UsageData"];
    let (links, size) = if usage.is_object() {
        (
            usage["RefCount"].as_i64().unwrap_or(0).to_string(),
            human_size(usage["Size"].as_i64().unwrap_or(0) as f64),
        )
    } else {
        ("N/A".to_string(), "N/A".to_string())
    };
    m.insert("Links".into(), T::from(links));
    m.insert("Size".into(), T::from(size));
    m
}

/// docker's `NewVolumeFormat`: `-q` only changes the table format.
pub fn ls_format(quiet: bool, format: Option<&str>) -> String {
    match format {
        None | Some("") | Some("table") if quiet => "{{.Name}}".into(),
        None | Some("") | Some("table") => "table {{.Driver}}\t{{.Name}}".into(),
        Some("raw") if quiet => "name: {{.Name}}".into(),
        Some("raw") => "name: {{.Name}}\\ndriver: {{.Driver}}\\n".into(),
        Some("json") => "{{json .}}".into(),
        Some(f) => f.into(),
    }
}

/// What `volume ls` prints for the `GET /volumes` answer.
pub fn ls_output(
    resp: &Value,
    quiet: bool,
    format: Option<&str>,
) -> std::result::Result<String, String> {
    let mut list: Vec<Value> = resp["Volumes"].as_array().cloned().unwrap_or_default();
    list.sort_by(|a, b| {
        let (a, b) = (s(&a["Name"]), s(&b["Name"]));
        if natural_less(&a, &b) {
            std::cmp::Ordering::Less
        } else if natural_less(&b, &a) {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    });
    let rows: Vec<_> = list.iter().map(volume_row).collect();
    render_rows(
        "*formatter.volumeContext",
        &ls_format(quiet, format),
        VOLUME_HEADERS,
        &rows,
    )
}

pub async fn ls(c: &Client, a: VolumeLsArgs) -> Result<i32> {
    let filters = filters_json(&a.filter).map_err(CliError::msg)?;
    let q = Query::new().add_if(filters.is_some(), "filters", filters.unwrap_or_default());
    let resp: Value = c.get("/volumes", &q).await?;
    let out = ls_output(&resp, a.quiet, a.format.as_deref()).map_err(CliError::msg)?;
    print!("{out}");
    Ok(0)
}

/// How docker's client words a failed remove: a 404 is "Error: No such volume: <name>".
fn rm_error(name: &str, e: &CliError) -> String {
    if e.is_not_found() {
        format!("Error: No such volume: {name}")
    } else {
        e.to_string()
    }
}

pub async fn rm(c: &Client, a: VolumeRmArgs) -> Result<i32> {
    let mut errs = Vec::new();
    for name in &a.names {
        let q = Query::new().add_if(a.force, "force", 1);
        match c
            .request(
                http::Method::DELETE,
                &format!("/volumes/{}", seg(name)),
                &q,
                None,
            )
            .await
        {
            Ok(_) => println!("{name}"),
            Err(e) => errs.push(rm_error(name, &e)),
        }
    }
    if errs.is_empty() {
        Ok(0)
    } else {
        eprintln!("{}", errs.join("\n"));
        Ok(1)
    }
}

/// What a volume prune prints before the total (docker's `runPrune` output, the blank line
/// of its `Fprintln` included), and the space it counts (only when something was deleted).
pub fn prune_output(report: &Value) -> (String, u64) {
    let deleted: Vec<&str> = report["VolumesDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if deleted.is_empty() {
        return (String::new(), 0);
    }
    let mut out = String::from("Deleted Volumes:\n");
    for n in deleted {
        out.push_str(n);
        out.push('\n');
    }
    out.push('\n');
    (out, report["SpaceReclaimed"].as_u64().unwrap_or(0))
}

/// `POST /volumes/prune`: what to print and the space reclaimed.
pub async fn prune_volumes(c: &Client, filters: &[String]) -> Result<(String, u64)> {
    let f = filters_json(filters).map_err(CliError::msg)?;
    let q = Query::new().add_if(f.is_some(), "filters", f.unwrap_or_default());
    let b = c.post("/volumes/prune", &q).await?;
    let v: Value = serde_json::from_slice(&b).map_err(|e| {
        CliError::msg(format!(
            "Error retrieving volume prune report: error decoding response: {e}"
        ))
    })?;
    Ok(prune_output(&v))
}

pub async fn prune(c: &Client, a: VolumePruneArgs) -> Result<i32> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all local volumes not used by at least one container.",
        )
    {
        return Ok(0);
    }
    let (out, space) = prune_volumes(c, &a.filter).await?;
    print!("{out}");
    println!("Total reclaimed space: {}", human_size(space as f64));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_bodies() {
        let a = VolumeCreateArgs {
            driver: "local".into(),
            label: vec!["z=1".into(), "a".into()],
            opt: vec![
                "type=tmpfs".into(),
                "device=tmpfs".into(),
                "o=size=100m".into(),
            ],
            name: Some("v1".into()),
            ..Default::default()
        };
        let b = create_body(&a).unwrap();
        assert_eq!(
            serde_json::to_string(&b).unwrap(),
            r#"{"Driver":"local","DriverOpts":{"device":"tmpfs","o":"size=100m","type":"tmpfs"},"Labels":{"a":"","z":"1"},"Name":"v1"}"#
        );
        let a = VolumeCreateArgs {
            driver: "local".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&create_body(&a).unwrap()).unwrap(),
            r#"{"Driver":"local","DriverOpts":{},"Labels":{},"Name":""}"#
        );
        let a = VolumeCreateArgs {
            driver: "local".into(),
            name_flag: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(create_body(&a).unwrap()["Name"], "x");
        let a = VolumeCreateArgs {
            name: Some("y".into()),
            name_flag: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            create_body(&a).unwrap_err(),
            "conflicting options: either specify --name or provide positional arg, not both"
        );
    }

    #[test]
    fn ls_as_docker() {
        let resp = json!({"Volumes": [
            {"Name": "v10", "Driver": "local", "Scope": "local", "Mountpoint": "/m/v10", "Labels": {"b": "2", "a": "1"}},
            {"Name": "v2", "Driver": "local", "Scope": "local", "Mountpoint": "/m/v2", "Labels": null},
            {"Name": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "Driver": "local", "Scope": "local", "Mountpoint": "/m/x", "Labels": null},
        ], "Warnings": []});
        assert_eq!(
            ls_output(&resp, false, None).unwrap(),
            "DRIVER    VOLUME NAME\n\
             local     0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n\
             local     v2\n\
             local     v10\n"
        );
        assert_eq!(
            ls_output(&resp, true, None).unwrap(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\nv2\nv10\n"
        );
        assert_eq!(
            ls_output(&resp, true, Some("{{.Name}} {{.Labels}} {{.Links}} {{.Size}}")).unwrap(),
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  N/A N/A\nv2  N/A N/A\nv10 a=1,b=2 N/A N/A\n"
        );
        assert_eq!(
            ls_output(&resp, false, Some("table {{.Name}}\t{{.Mountpoint}}"))
                .unwrap()
                .lines()
                .next()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>(),
            vec!["VOLUME", "NAME", "MOUNTPOINT"]
        );
        assert_eq!(
            ls_output(&json!({"Volumes": null, "Warnings": null}), false, None).unwrap(),
            "DRIVER    VOLUME NAME\n"
        );
    }

    #[test]
    fn prune_as_docker() {
        assert_eq!(
            prune_output(&json!({"VolumesDeleted": ["a", "b"], "SpaceReclaimed": 1234})),
            ("Deleted Volumes:\na\nb\n\n".to_string(), 1234)
        );
        assert_eq!(
            prune_output(&json!({"VolumesDeleted": null, "SpaceReclaimed": 99})),
            (String::new(), 0)
        );
        assert_eq!(human_size(1234.0), "1.234kB");
    }
}
