//! inspect and image inspect.

use bytes::Bytes;

use serde_json::Value;

use crate::cli::{ImageInspectArgs, InspectArgs, NetworkInspectArgs, VolumeInspectArgs};
use crate::client::{seg, Client, Query};
use crate::error::{CliError, Result};
use crate::format::json::indent;
use crate::format::template::Tmpl;

async fn get_raw(c: &Client, kind: &str, name: &str, size: bool) -> Result<Option<Bytes>> {
    let path = match kind {
        "container" => format!("/containers/{}/json", seg(name)),
        "network" => format!("/networks/{}", seg(name)),
        // docker's client answers "not found" for an empty volume name without asking.
        "volume" | "volume-typed" if name.is_empty() => return Ok(None),
        "volume" | "volume-typed" => format!("/volumes/{}", seg(name)),
        _ => format!("/images/{}/json", seg(name)),
    };
    let q = Query::new().add_if(size && kind == "container", "size", 1);
    match c.request(http::Method::GET, &path, &q, None).await {
        Ok(b) if kind == "volume-typed" => {
            let v: Value = serde_json::from_slice(&b)
                .map_err(|e| CliError::msg(format!("error decoding response: {e}")))?;
            Ok(Some(Bytes::from(typed_volume(&v))))
        }
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Go's `json.Marshal` of a value: object keys sorted (as for a map), `<`, `>`, `&`, U+2028
/// and U+2029 escaped.
fn go_json(v: &Value) -> String {
    let sorted = sort_keys(v);
    let s = serde_json::to_string(&sorted).unwrap_or_default();
    // Outside strings compact JSON has none of these characters.
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut e: Vec<_> = m.iter().collect();
            e.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                e.into_iter()
                    .map(|(k, v)| (k.clone(), sort_keys(v)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        v => v.clone(),
    }
}

/// A volume as `docker volume inspect` prints it: decoded into `types.Volume` and encoded
/// again (its fields in order, empty `CreatedAt`, `Status` and `UsageData` left out).
pub fn typed_volume(v: &Value) -> String {
    let str_field = |k: &str| go_json(&Value::String(v[k].as_str().unwrap_or("").to_string()));
    let map_field = |k: &str| match &v[k] {
        Value::Object(m) => go_json(&Value::Object(m.clone())),
        _ => "null".to_string(),
    };
    let mut out = String::from("{");
    if v["CreatedAt"].as_str().is_some_and(|c| !c.is_empty()) {
        out += &format!("\"CreatedAt\":{},", str_field("CreatedAt"));
    }
    out += &format!(
        "\"Driver\":{},\"Labels\":{},\"Mountpoint\":{},\"Name\":{},\"Options\":{},\"Scope\":{}",
        str_field("Driver"),
        map_field("Labels"),
        str_field("Mountpoint"),
        str_field("Name"),
        map_field("Options"),
        str_field("Scope"),
    );
    if v["Status"].as_object().is_some_and(|m| !m.is_empty()) {
        out += &format!(",\"Status\":{}", map_field("Status"));
    }
    if v["UsageData"].is_object() {
        out += &format!(
            ",\"UsageData\":{{\"RefCount\":{},\"Size\":{}}}",
            v["UsageData"]["RefCount"].as_i64().unwrap_or(0),
            v["UsageData"]["Size"].as_i64().unwrap_or(0)
        );
    }
    out.push('}');
    out
}

/// Print the objects as docker does: an indented JSON array, or one template
/// rendering per object. Errors for missing objects go to stderr.
async fn inspect_all(
    c: &Client,
    names: &[String],
    kinds: &[&str],
    format: Option<&str>,
    size: bool,
    missing: &dyn Fn(&str) -> String,
) -> Result<i32> {
    let tmpl = match format {
        Some(f) if !f.is_empty() && f != "json" => Some(
            Tmpl::parse(&f.replace("\\t", "\t").replace("\\n", "\n")).map_err(|e| {
                CliError::Coded {
                    message: format!("template parsing error: {e}"),
                    code: 64,
                }
            })?,
        ),
        _ => None,
    };
    let mut raws: Vec<Bytes> = Vec::new();
    let mut errors = Vec::new();
    let mut out = String::new();
    for name in names {
        let mut found = None;
        for kind in kinds {
            if let Some(b) = get_raw(c, kind, name, size).await? {
                found = Some(b);
                break;
            }
        }
        let Some(raw) = found else {
            errors.push(missing(name));
            continue;
        };
        match &tmpl {
            Some(t) => {
                let v: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
                match t.render_json(&v) {
                    Ok(s) => {
                        out.push_str(&s);
                        out.push('\n');
                    }
                    Err(e) => {
                        println!("{out}");
                        return Err(CliError::msg(format!("template parsing error: {e}")));
                    }
                }
            }
            None => raws.push(raw),
        }
    }
    if tmpl.is_some() {
        print!("{out}");
    } else {
        let mut all = Vec::from(&b"["[..]);
        for (i, r) in raws.iter().enumerate() {
            if i > 0 {
                all.push(b',');
            }
            all.extend_from_slice(r);
        }
        all.push(b']');
        println!("{}", indent(&all, "    "));
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        eprintln!("{}", errors.join("\n"));
        Ok(1)
    }
}

pub async fn inspect(c: &Client, a: InspectArgs) -> Result<i32> {
    let kinds: Vec<&str> = match a.kind.as_deref() {
        None | Some("") => vec!["container", "image", "network", "volume"],
        Some("container") => vec!["container"],
        Some("image") => vec!["image"],
        Some("network") => vec!["network"],
        Some("volume") => vec!["volume"],
        Some(t) => {
            return Err(CliError::msg(format!(
                "\"{t}\" is not a valid value for --type"
            )))
        }
    };
    let typed = a.kind.clone().filter(|k| !k.is_empty());
    let missing = move |n: &str| match typed.as_deref() {
        Some(k) => format!("Error: No such {k}: {n}"),
        None => format!("Error: No such object: {n}"),
    };
    inspect_all(c, &a.names, &kinds, a.format.as_deref(), a.size, &missing).await
}

pub async fn image_inspect(c: &Client, a: ImageInspectArgs) -> Result<i32> {
    let missing = |n: &str| format!("Error: No such image: {n}");
    inspect_all(
        c,
        &a.names,
        &["image"],
        a.format.as_deref(),
        false,
        &missing,
    )
    .await
}

pub async fn network_inspect(c: &Client, a: NetworkInspectArgs) -> Result<i32> {
    let missing = |n: &str| format!("Error: No such network: {n}");
    inspect_all(
        c,
        &a.names,
        &["network"],
        a.format.as_deref(),
        false,
        &missing,
    )
    .await
}

pub async fn volume_inspect(c: &Client, a: VolumeInspectArgs) -> Result<i32> {
    let missing = |n: &str| format!("Error: No such volume: {n}");
    inspect_all(
        c,
        &a.names,
        &["volume-typed"],
        a.format.as_deref(),
        false,
        &missing,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_inspect_is_re_encoded_as_docker_does() {
        let v = serde_json::json!({
            "Name": "v1", "Driver": "local", "Mountpoint": "/var/lib/berth/volumes/v1/_data",
            "CreatedAt": "2024-01-02T03:04:05Z", "Labels": {"z": "1", "a": "<&>"},
            "Scope": "local", "Options": null, "Status": {}, "Extra": 1,
        });
        assert_eq!(
            typed_volume(&v),
            r#"{"CreatedAt":"2024-01-02T03:04:05Z","Driver":"local","Labels":{"a":"\u003c\u0026\u003e","z":"1"},"Mountpoint":"/var/lib/berth/volumes/v1/_data","Name":"v1","Options":null,"Scope":"local"}"#
        );
        let v = serde_json::json!({"Name": "v", "UsageData": {"Size": 5, "RefCount": 2}, "Status": {"b": 1, "a": {"y": 1, "x": 2}}});
        assert_eq!(
            typed_volume(&v),
            r#"{"Driver":"","Labels":null,"Mountpoint":"","Name":"v","Options":null,"Scope":"","Status":{"a":{"x":2,"y":1},"b":1},"UsageData":{"RefCount":2,"Size":5}}"#
        );
    }
}
