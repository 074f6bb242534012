//! images / image ls, and history.

use std::collections::HashMap;

use gtmpl::Value as T;
use serde_json::Value;

use crate::cli::{HistoryArgs, ImagesArgs};
use crate::client::{seg, Client, Query};
use crate::error::{CliError, Result};
use crate::format::template::render_rows;
use crate::format::units::{
    ellipsis, go_time_string, human_size, human_size_prec, since_unix, truncate_id,
};
use crate::opts::filters_json;

pub const IMAGE_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("VirtualSize", "VIRTUAL SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
];

pub const HISTORY_HEADERS: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn split_ref(r: &str, sep: char) -> Option<(String, String)> {
    let i = r.rfind(sep)?;
    if sep == ':' && r[i..].contains('/') {
        return None;
    }
    Some((r[..i].to_string(), r[i + 1..].to_string()))
}

/// The (repository, tag, digest) rows docker shows for one image.
pub fn image_refs(img: &Value, show_digests: bool) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    let mut digests: Vec<(String, String)> = img["RepoDigests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| split_ref(s(d), '@'))
        .filter(|(r, _)| r != "<none>")
        .collect();
    for t in img["RepoTags"].as_array().into_iter().flatten() {
        let Some((repo, tag)) = split_ref(s(t), ':') else {
            continue;
        };
        if repo == "<none>" {
            continue;
        }
        let ds: Vec<String> = digests
            .iter()
            .filter(|(r, _)| *r == repo)
            .map(|(_, d)| d.clone())
            .collect();
        digests.retain(|(r, _)| *r != repo);
        if show_digests && !ds.is_empty() {
            for d in ds {
                rows.push((repo.clone(), tag.clone(), d));
            }
        } else {
            rows.push((repo, tag, "<none>".into()));
        }
    }
    for (repo, d) in digests {
        if show_digests {
            rows.push((repo, "<none>".into(), d));
        } else if !rows.iter().any(|(r, t, _)| *r == repo && t == "<none>") {
            rows.push((repo, "<none>".into(), "<none>".into()));
        }
    }
    if rows.is_empty() {
        rows.push(("<none>".into(), "<none>".into(), "<none>".into()));
    }
    rows
}

pub fn image_rows(img: &Value, trunc: bool, show_digests: bool) -> Vec<HashMap<String, T>> {
    let id = s(&img["Id"]);
    let created = img["Created"].as_i64().unwrap_or(0);
    let size = img["Size"].as_f64().unwrap_or(0.0);
    let vsize = img["VirtualSize"].as_f64().unwrap_or(size);
    let count = |k: &str| match img[k].as_i64() {
        Some(n) if n >= 0 => n.to_string(),
        _ => "N/A".to_string(),
    };
    let shared = match img["SharedSize"].as_i64() {
        Some(n) if n >= 0 => human_size_prec(n as f64, 3),
        _ => "N/A".into(),
    };
    let unique = match img["SharedSize"].as_i64() {
        Some(n) if n >= 0 => human_size_prec(vsize - n as f64, 3),
        _ => "N/A".into(),
    };
    image_refs(img, show_digests)
        .into_iter()
        .map(|(repo, tag, digest)| {
            let mut m = HashMap::new();
            m.insert(
                "ID".into(),
                T::from(if trunc {
                    truncate_id(id)
                } else {
                    id.to_string()
                }),
            );
            m.insert("Repository".into(), T::from(repo));
            m.insert("Tag".into(), T::from(tag));
            m.insert("Digest".into(), T::from(digest));
            m.insert("CreatedSince".into(), T::from(since_unix(created)));
            m.insert("CreatedAt".into(), T::from(go_time_string(created)));
            m.insert("Size".into(), T::from(human_size_prec(size, 3)));
            m.insert("VirtualSize".into(), T::from(human_size(vsize)));
            m.insert("Containers".into(), T::from(count("Containers")));
            m.insert("SharedSize".into(), T::from(shared.clone()));
            m.insert("UniqueSize".into(), T::from(unique.clone()));
            m
        })
        .collect()
}

pub async fn images(c: &Client, a: ImagesArgs) -> Result<i32> {
    let mut filters = a.filter.clone();
    if let Some(r) = &a.reference {
        filters.push(format!("reference={r}"));
    }
    let filters = filters_json(&filters).map_err(CliError::msg)?;
    let q = Query::new().add_if(a.all, "all", 1).add_if(
        filters.is_some(),
        "filters",
        filters.clone().unwrap_or_default(),
    );
    let list: Vec<Value> = c.get("/images/json", &q).await?;
    let rows: Vec<_> = list
        .iter()
        .flat_map(|i| image_rows(i, !a.no_trunc, a.digests))
        .collect();
    let d = if a.digests { "{{.Digest}}\t" } else { "" };
    let format = list_format(
        a.quiet,
        a.format.as_deref(),
        &format!("table {{{{.Repository}}}}\t{{{{.Tag}}}}\t{d}{{{{.ID}}}}\t{{{{.CreatedSince}}}}\t{{{{.Size}}}}"),
    );
    let out = render_rows("*formatter.imageContext", &format, IMAGE_HEADERS, &rows)
        .map_err(CliError::msg)?;
    print!("{out}");
    Ok(0)
}

pub fn history_row(h: &Value, trunc: bool, human: bool) -> HashMap<String, T> {
    let mut m = HashMap::new();
    let id = s(&h["Id"]);
    let id = if id == "<missing>" || !trunc {
        id.to_string()
    } else {
        truncate_id(id)
    };
    m.insert("ID".into(), T::from(id));
    let created = h["Created"].as_i64().unwrap_or(0);
    let rfc = chrono::DateTime::from_timestamp(created, 0)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        })
        .unwrap_or_default();
    m.insert(
        "CreatedSince".into(),
        T::from(if human {
            since_unix(created)
        } else {
            rfc.clone()
        }),
    );
    m.insert(
        "CreatedAt".into(),
        T::from(if human { go_time_string(created) } else { rfc }),
    );
    let by = s(&h["CreatedBy"]).replace('\t', " ");
    m.insert(
        "CreatedBy".into(),
        T::from(if trunc { ellipsis(&by, 45) } else { by }),
    );
    let size = h["Size"].as_i64().unwrap_or(0);
    m.insert(
        "Size".into(),
        T::from(if human {
            human_size_prec(size as f64, 3)
        } else {
            size.to_string()
        }),
    );
    m.insert("Comment".into(), T::from(s(&h["Comment"])));
    m
}

/// The template of a listing: IDs only with `-q`, the default table, `json`, or the user's.
pub fn list_format(quiet: bool, format: Option<&str>, table: &str) -> String {
    if quiet {
        return "{{.ID}}".to_string();
    }
    match format {
        None | Some("") | Some("table") => table.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    }
}

pub async fn history(c: &Client, a: HistoryArgs) -> Result<i32> {
    let list: Vec<Value> = c
        .get(&format!("/images/{}/history", seg(&a.image)), &Query::new())
        .await?;
    let rows: Vec<_> = list
        .iter()
        .map(|h| history_row(h, !a.no_trunc, a.human))
        .collect();
    let format = list_format(
        a.quiet,
        a.format.as_deref(),
        "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    );
    let out = render_rows("*formatter.historyContext", &format, HISTORY_HEADERS, &rows)
        .map_err(CliError::msg)?;
    print!("{out}");
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs() {
        let img = serde_json::json!({"RepoTags": ["busybox:latest", "localhost:5000/bb:1"], "RepoDigests": []});
        assert_eq!(
            image_refs(&img, false),
            vec![
                ("busybox".into(), "latest".into(), "<none>".into()),
                ("localhost:5000/bb".into(), "1".into(), "<none>".into())
            ]
        );
        let none =
            serde_json::json!({"RepoTags": ["<none>:<none>"], "RepoDigests": ["<none>@<none>"]});
        assert_eq!(
            image_refs(&none, false),
            vec![("<none>".into(), "<none>".into(), "<none>".into())]
        );
        let dig = serde_json::json!({"RepoTags": null, "RepoDigests": ["bb@sha256:aa"]});
        assert_eq!(
            image_refs(&dig, true),
            vec![("bb".into(), "<none>".into(), "sha256:aa".into())]
        );
    }

    #[test]
    fn image_table() {
        let img = serde_json::json!({"Id": "sha256:c6df5e495a91b60e0c244d567786afce", "RepoTags": ["busybox:latest"],
            "Created": chrono::Utc::now().timestamp(), "Size": 1985000});
        let rows = image_rows(&img, true, false);
        let out = render_rows(
            "T",
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}",
            IMAGE_HEADERS,
            &rows,
        )
        .unwrap();
        assert_eq!(
            out,
            "REPOSITORY   TAG       IMAGE ID       CREATED                  SIZE\n\
             busybox      latest    c6df5e495a91   Less than a second ago   1.99MB\n"
        );
    }

    #[test]
    fn history_fields() {
        let h = serde_json::json!({"Id": "<missing>", "Created": 0, "CreatedBy": "/bin/sh -c #(nop)\tCMD [\"sh\"] and a long tail of text", "Size": 1234, "Comment": "x"});
        let r = history_row(&h, true, true);
        assert_eq!(r["ID"].to_string(), "<missing>");
        assert_eq!(
            r["CreatedBy"].to_string(),
            "/bin/sh -c #(nop) CMD [\"sh\"] and a long tail…"
        );
        assert_eq!(r["Size"].to_string(), "1.23kB");
        assert_eq!(history_row(&h, true, false)["Size"].to_string(), "1234");
    }
}
