//! inspect and image inspect.

use bytes::Bytes;

use crate::cli::{ImageInspectArgs, InspectArgs, NetworkInspectArgs};
use crate::client::{seg, Client, Query};
use crate::error::{CliError, Result};
use crate::format::json::indent;
use crate::format::template::Tmpl;

async fn get_raw(c: &Client, kind: &str, name: &str, size: bool) -> Result<Option<Bytes>> {
    let path = match kind {
        "container" => format!("/containers/{}/json", seg(name)),
        "network" => format!("/networks/{}", seg(name)),
        _ => format!("/images/{}/json", seg(name)),
    };
    let q = Query::new().add_if(size && kind == "container", "size", 1);
    match c.request(http::Method::GET, &path, &q, None).await {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
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
        None | Some("") => vec!["container", "image", "network"],
        Some("container") => vec!["container"],
        Some("image") => vec!["image"],
        Some("network") => vec!["network"],
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
