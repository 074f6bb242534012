//! Disk space: `container prune`, `image prune`, `system prune`, `system df`, and berth's
//! `system check`.

use std::io::{BufRead, Write};

use serde_json::Value;

use crate::cli::{
    BuilderPruneArgs, CheckArgs, ContainerPruneArgs, DfArgs, ImagePruneArgs, SystemPruneArgs,
};
use crate::client::{Client, Query};
use crate::error::{CliError, Result};
use crate::format::table::tabwrite;
use crate::format::template::Tmpl;
use crate::format::units::{human_size, since_unix, truncate_id};
use crate::opts::filters_json;

/// Docker's `[y/N]` prompt; anything but y/Y declines.
pub(crate) fn confirm(warning: &str) -> bool {
    print!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y")
}

fn filter_query(filters: &[String], extra: Option<(&str, &str)>) -> Result<Query> {
    let mut f: Vec<String> = filters.to_vec();
    if let Some((k, v)) = extra {
        f.push(format!("{k}={v}"));
    }
    let q = Query::new();
    Ok(match filters_json(&f).map_err(CliError::msg)? {
        Some(j) => q.add("filters", j),
        None => q,
    })
}

/// Deleted ids and reclaimed bytes of a container prune.
async fn prune_containers(c: &Client, filters: &[String]) -> Result<(Vec<String>, u64)> {
    let v: Value = c
        .post_json(
            "/containers/prune",
            &filter_query(filters, None)?,
            &Value::Null,
        )
        .await?;
    let ids = v["ContainersDeleted"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    Ok((ids, v["SpaceReclaimed"].as_u64().unwrap_or(0)))
}

/// Lines (`untagged: …`, `deleted: …`) and reclaimed bytes of an image prune.
async fn prune_images(c: &Client, all: bool, filters: &[String]) -> Result<(Vec<String>, u64)> {
    let q = filter_query(filters, all.then_some(("dangling", "false")))?;
    let v: Value = c.post_json("/images/prune", &q, &Value::Null).await?;
    let mut lines = Vec::new();
    for item in v["ImagesDeleted"].as_array().into_iter().flatten() {
        if let Some(u) = item["Untagged"].as_str() {
            lines.push(format!("untagged: {u}"));
        }
        if let Some(d) = item["Deleted"].as_str() {
            lines.push(format!("deleted: {d}"));
        }
    }
    Ok((lines, v["SpaceReclaimed"].as_u64().unwrap_or(0)))
}

/// `Deleted …:`, one line each, a blank line; nothing when nothing was deleted.
fn print_section(title: &str, lines: &[String]) {
    if !lines.is_empty() {
        println!("{title}");
        for l in lines {
            println!("{l}");
        }
        println!();
    }
}

pub async fn container_prune(c: &Client, a: ContainerPruneArgs) -> Result<i32> {
    if !a.force && !confirm("WARNING! This will remove all stopped containers.") {
        return Ok(0);
    }
    let (ids, space) = prune_containers(c, &a.filter).await?;
    print_section("Deleted Containers:", &ids);
    println!("Total reclaimed space: {}", human_size(space as f64));
    Ok(0)
}

pub async fn image_prune(c: &Client, a: ImagePruneArgs) -> Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !a.force && !confirm(warning) {
        return Ok(0);
    }
    let (lines, space) = prune_images(c, a.all, &a.filter).await?;
    print_section("Deleted Images:", &lines);
    println!("Total reclaimed space: {}", human_size(space as f64));
    Ok(0)
}

pub async fn system_prune(c: &Client, a: SystemPruneArgs) -> Result<i32> {
    let mut warning = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
    );
    if a.volumes {
        warning.push_str("  - all volumes not used by at least one container\n");
    }
    if a.all {
        warning.push_str(
            "  - all images without at least one container associated to them\n  - all build cache\n",
        );
    } else {
        warning.push_str("  - all dangling images\n  - unused build cache\n");
    }
    if a.volumes
        && a.filter.iter().any(|f| {
            f.split('=')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("until")
        })
    {
        return Err(CliError::msg(
            "ERROR: The \"until\" filter is not supported with \"--volumes\"",
        ));
    }
    if !a.force && !confirm(&warning) {
        return Ok(0);
    }
    let (ids, mut space) = prune_containers(c, &a.filter).await?;
    print_section("Deleted Containers:", &ids);
    let networks = crate::commands::network::prune_networks(c, &a.filter).await?;
    print_section("Deleted Networks:", &networks);
    if a.volumes {
        let (out, s) = crate::commands::volume::prune_volumes(c, &a.filter).await?;
        space += s;
        print!("{out}");
    }
    let (lines, s) = prune_images(c, a.all, &a.filter).await?;
    space += s;
    print_section("Deleted Images:", &lines);
    let (keys, s) = prune_build_cache(c).await?;
    space += s;
    print_section("Deleted build cache objects:", &keys);
    println!("Total reclaimed space: {}", human_size(space as f64));
    Ok(0)
}

/// `POST /build/prune`: the cache entries deleted and the space reclaimed.
async fn prune_build_cache(c: &Client) -> Result<(Vec<String>, u64)> {
    let v: Value = c
        .post_json("/build/prune", &Query::new(), &serde_json::json!({}))
        .await?;
    let keys = v["CachesDeleted"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok((keys, v["SpaceReclaimed"].as_u64().unwrap_or(0)))
}

/// `builder prune`: forgets the build cache (the images it pointed to stay until pruned
/// as images).
pub async fn builder_prune(c: &Client, a: BuilderPruneArgs) -> Result<i32> {
    let warning = if a.all {
        "WARNING! This will remove all build cache."
    } else {
        "WARNING! This will remove all dangling build cache."
    };
    if !a.force && !confirm(warning) {
        return Ok(0);
    }
    let (keys, space) = prune_build_cache(c).await?;
    print_section("Deleted build cache objects:", &keys);
    println!("Total reclaimed space: {}", human_size(space as f64));
    Ok(0)
}

fn reclaimable(reclaim: u64, total: u64) -> String {
    match (reclaim * 100).checked_div(total) {
        Some(pct) => format!("{} ({pct}%)", human_size(reclaim as f64)),
        None => human_size(reclaim as f64),
    }
}

/// The summary rows of `system df`: (type, total, active, size, reclaimable).
pub fn df_rows(v: &Value) -> Vec<[String; 5]> {
    let images = v["Images"].as_array().cloned().unwrap_or_default();
    let layers = v["LayersSize"].as_u64().unwrap_or(0);
    let active_images = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .count();
    let used: u64 = images
        .iter()
        .filter(|i| i["Containers"].as_i64().unwrap_or(0) > 0)
        .map(|i| {
            let size = i["Size"].as_i64().unwrap_or(0);
            let shared = i["SharedSize"].as_i64().unwrap_or(0).max(0);
            (size - shared).max(0) as u64
        })
        .sum();
    let containers = v["Containers"].as_array().cloned().unwrap_or_default();
    let running = |c: &Value| c["State"].as_str() == Some("running");
    let c_total: u64 = containers
        .iter()
        .map(|c| c["SizeRw"].as_u64().unwrap_or(0))
        .sum();
    let c_reclaim: u64 = containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| c["SizeRw"].as_u64().unwrap_or(0))
        .sum();
    let volumes = v["Volumes"].as_array().cloned().unwrap_or_default();
    let v_size: u64 = volumes
        .iter()
        .map(|x| x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as u64)
        .sum();
    let v_active = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) > 0)
        .count();
    let v_reclaim: u64 = volumes
        .iter()
        .filter(|x| x["UsageData"]["RefCount"].as_i64().unwrap_or(0) == 0)
        .map(|x| x["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as u64)
        .sum();
    let cache = v["BuildCache"].as_array().cloned().unwrap_or_default();
    let b_size: u64 = cache.iter().map(|x| x["Size"].as_u64().unwrap_or(0)).sum();
    vec![
        [
            "Images".into(),
            images.len().to_string(),
            active_images.to_string(),
            human_size(layers as f64),
            reclaimable(layers.saturating_sub(used), layers),
        ],
        [
            "Containers".into(),
            containers.len().to_string(),
            containers.iter().filter(|c| running(c)).count().to_string(),
            human_size(c_total as f64),
            reclaimable(c_reclaim, c_total),
        ],
        [
            "Local Volumes".into(),
            volumes.len().to_string(),
            v_active.to_string(),
            human_size(v_size as f64),
            reclaimable(v_reclaim, v_size),
        ],
        [
            "Build Cache".into(),
            cache.len().to_string(),
            "0".into(),
            human_size(b_size as f64),
            human_size(b_size as f64),
        ],
    ]
}

pub async fn df(c: &Client, a: DfArgs) -> Result<i32> {
    let v: Value = c.get("/system/df", &Query::new()).await?;
    let rows = df_rows(&v);
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        if f == "json" || f == "{{json .}}" {
            for r in &rows {
                println!(
                    "{}",
                    serde_json::json!({"Type": r[0], "TotalCount": r[1], "Active": r[2], "Size": r[3], "Reclaimable": r[4]})
                );
            }
            return Ok(0);
        }
        let t = Tmpl::parse(f).map_err(|e| CliError::Coded {
            message: format!("template parsing error: {e}"),
            code: 64,
        })?;
        for r in &rows {
            let doc = serde_json::json!({"Type": r[0], "TotalCount": r[1], "Active": r[2], "Size": r[3], "Reclaimable": r[4]});
            println!("{}", t.render_json(&doc).map_err(CliError::msg)?);
        }
        return Ok(0);
    }
    if a.verbose {
        print!("{}", df_verbose(&v));
        return Ok(0);
    }
    let mut text = String::from("TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE\n");
    for r in rows {
        text.push_str(&r.join("\t"));
        text.push('\n');
    }
    print!("{}", tabwrite(&text, 10, 3));
    Ok(0)
}

fn df_verbose(v: &Value) -> String {
    let mut out = String::from("Images space usage:\n\n");
    let mut t = String::from(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n",
    );
    for i in v["Images"].as_array().into_iter().flatten() {
        let size = i["Size"].as_i64().unwrap_or(0);
        let shared = i["SharedSize"].as_i64().unwrap_or(0).max(0);
        let tags: Vec<String> = i["RepoTags"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        let tags = if tags.is_empty() {
            vec!["<none>:<none>".to_string()]
        } else {
            tags
        };
        for rt in tags {
            let (repo, tag) = rt.rsplit_once(':').unwrap_or((&rt, ""));
            t.push_str(&format!(
                "{repo}\t{tag}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                truncate_id(i["Id"].as_str().unwrap_or_default()),
                since_unix(i["Created"].as_i64().unwrap_or(0)),
                human_size(size as f64),
                human_size(shared as f64),
                human_size((size - shared).max(0) as f64),
                i["Containers"].as_i64().unwrap_or(0)
            ));
        }
    }
    out.push_str(&tabwrite(&t, 10, 3));
    out.push_str("\nContainers space usage:\n\n");
    let mut t =
        String::from("CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES\n");
    for c in v["Containers"].as_array().into_iter().flatten() {
        let names: Vec<String> = c["Names"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(|s| s.trim_start_matches('/').to_string()))
                    .collect()
            })
            .unwrap_or_default();
        t.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            truncate_id(c["Id"].as_str().unwrap_or_default()),
            c["Image"].as_str().unwrap_or_default(),
            crate::format::units::ellipsis(
                &format!("\"{}\"", c["Command"].as_str().unwrap_or_default()),
                20
            ),
            c["Mounts"].as_array().map(|m| m.len()).unwrap_or(0),
            human_size(c["SizeRw"].as_u64().unwrap_or(0) as f64),
            since_unix(c["Created"].as_i64().unwrap_or(0)),
            c["Status"].as_str().unwrap_or_default(),
            names.join(",")
        ));
    }
    out.push_str(&tabwrite(&t, 10, 3));
    out.push_str("\nLocal Volumes space usage:\n\n");
    let mut t = String::from("VOLUME NAME\tLINKS\tSIZE\n");
    for vol in v["Volumes"].as_array().into_iter().flatten() {
        t.push_str(&format!(
            "{}\t{}\t{}\n",
            vol["Name"].as_str().unwrap_or_default(),
            vol["UsageData"]["RefCount"].as_i64().unwrap_or(0),
            human_size(vol["UsageData"]["Size"].as_i64().unwrap_or(0).max(0) as f64),
        ));
    }
    out.push_str(&tabwrite(&t, 10, 3));
    out.push_str("\nBuild cache usage: 0B\n\n");
    out.push_str(&tabwrite(
        "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n",
        10,
        3,
    ));
    out
}

/// `system check`: the daemon's report, one line per finding; exit 1 when anything is
/// broken or left over (and not repaired).
pub async fn check(c: &Client, a: CheckArgs) -> Result<i32> {
    let q = Query::new().add_if(a.repair, "repair", 1);
    let v: Value = c.post_json("/system/check", &q, &Value::Null).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    }
    let findings = v["findings"].as_array().cloned().unwrap_or_default();
    let broken = v["broken_containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let unresolved = findings
        .iter()
        .filter(|f| !f["repaired"].as_bool().unwrap_or(false))
        .count()
        + broken.len();
    if !a.json {
        for f in &findings {
            let repaired = f["repaired"].as_bool().unwrap_or(false);
            println!(
                "{}\t{}\t{}{}",
                f["kind"].as_str().unwrap_or_default(),
                f["object"].as_str().unwrap_or_default(),
                f["detail"].as_str().unwrap_or_default(),
                if repaired { " (repaired)" } else { "" }
            );
        }
        for b in &broken {
            println!(
                "broken_container\t{}\tlayer {} is missing",
                b["container"].as_str().unwrap_or_default(),
                b["missing_layer"].as_str().unwrap_or_default()
            );
        }
        if findings.is_empty() && broken.is_empty() {
            println!("No problems found.");
        }
    }
    Ok(if unresolved > 0 { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    #[test]
    fn df_summary_like_docker() {
        let v = serde_json::json!({
            "LayersSize": 1000,
            "Images": [{"Size": 1000, "SharedSize": 0, "Containers": 1}, {"Size": 0, "SharedSize": 0, "Containers": 0}],
            "Containers": [{"State": "running", "SizeRw": 10}, {"State": "exited", "SizeRw": 30}],
            "Volumes": [],
            "BuildCache": []
        });
        let rows = super::df_rows(&v);
        assert_eq!(
            rows[0],
            ["Images", "2", "1", "1kB", "0B (0%)"].map(String::from)
        );
        assert_eq!(
            rows[1],
            ["Containers", "2", "1", "40B", "30B (75%)"].map(String::from)
        );
        assert_eq!(rows[2][4], "0B");
    }
}
