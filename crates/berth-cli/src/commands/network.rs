//! network ls (network inspect is in `inspect`).

use std::collections::HashMap;

use gtmpl::Value as T;
use serde_json::Value;

use crate::cli::NetworkLsArgs;
use crate::client::{Client, Query};
use crate::commands::images::list_format;
use crate::error::{CliError, Result};
use crate::format::template::render_rows;
use crate::format::units::truncate_id;
use crate::opts::filters_json;

pub const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("IPv6", "IPV6"),
    ("Internal", "INTERNAL"),
    ("Labels", "LABELS"),
    ("CreatedAt", "CREATED AT"),
];

fn s(v: &Value) -> String {
    v.as_str().unwrap_or("").to_string()
}

fn network_row(n: &Value, trunc: bool) -> HashMap<String, T> {
    let id = s(&n["Id"]);
    let mut m = HashMap::new();
    m.insert(
        "ID".into(),
        T::from(if trunc { truncate_id(&id) } else { id }),
    );
    m.insert("Name".into(), T::from(s(&n["Name"])));
    m.insert("Driver".into(), T::from(s(&n["Driver"])));
    m.insert("Scope".into(), T::from(s(&n["Scope"])));
    m.insert(
        "IPv6".into(),
        T::from(n["EnableIPv6"].as_bool().unwrap_or(false).to_string()),
    );
    m.insert(
        "Internal".into(),
        T::from(n["Internal"].as_bool().unwrap_or(false).to_string()),
    );
    let mut labels: Vec<String> = n["Labels"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    labels.sort();
    m.insert("Labels".into(), T::from(labels.join(",")));
    m.insert("CreatedAt".into(), T::from(s(&n["Created"])));
    m
}

pub async fn ls(c: &Client, a: NetworkLsArgs) -> Result<i32> {
    let filters = filters_json(&a.filter).map_err(CliError::msg)?;
    let q = Query::new().add_if(filters.is_some(), "filters", filters.unwrap_or_default());
    let mut list: Vec<Value> = c.get("/networks", &q).await?;
    list.sort_by_key(|n| s(&n["Name"]));
    let rows: Vec<_> = list.iter().map(|n| network_row(n, !a.no_trunc)).collect();
    let format = list_format(
        a.quiet,
        a.format.as_deref(),
        "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    );
    let out = render_rows("*formatter.networkContext", &format, NETWORK_HEADERS, &rows)
        .map_err(CliError::msg)?;
    print!("{out}");
    Ok(0)
}
