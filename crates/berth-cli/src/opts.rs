//! Option parsing shared by commands: env files, labels, key=value lists.

/// docker's `ValidateEnv` for `-e`: `KEY` alone takes the value from our environment.
pub fn expand_env(val: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let (k, has_value) = match val.split_once('=') {
        Some((k, _)) => (k, true),
        None => (val, false),
    };
    if k.is_empty() {
        return Err(format!("invalid environment variable: {val}"));
    }
    if has_value {
        return Ok(val.to_string());
    }
    Ok(match lookup(k) {
        Some(v) => format!("{k}={v}"),
        None => val.to_string(),
    })
}

/// Looks a variable up in the environment.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// docker's `parseKeyValueFile` (env files and label files).
pub fn parse_kv_file(content: &str, lookup: Option<Lookup<'_>>) -> Result<Vec<String>, String> {
    let content = content.strip_prefix('\u{feff}').unwrap_or(content);
    let mut out = Vec::new();
    for line in content.lines() {
        let line = line.trim_start_matches([' ', '\t', '\r']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((var, value)) = line.split_once('=') {
            let var = var.trim_start_matches([' ', '\t']);
            if var.is_empty() {
                return Err(format!("no variable name on line '{line}'"));
            }
            if var.contains([' ', '\t']) {
                return Err(format!("variable '{var}' contains whitespaces"));
            }
            out.push(format!("{var}={value}"));
        } else {
            let var = line.trim_end_matches([' ', '\t', '\r']);
            if var.contains([' ', '\t']) {
                return Err(format!("variable '{var}' contains whitespaces"));
            }
            match lookup.and_then(|f| f(var)) {
                Some(v) => out.push(format!("{var}={v}")),
                None => out.push(var.to_string()),
            }
        }
    }
    Ok(out)
}

pub fn read_kv_files(files: &[String], env: bool) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let lookup = |k: &str| std::env::var(k).ok();
    for f in files {
        let content =
            std::fs::read_to_string(f).map_err(|e| format!("open {f}: {}", io_msg(&e)))?;
        let parsed = if env {
            parse_kv_file(&content, Some(&lookup))
        } else {
            parse_kv_file(&content, None)
        };
        out.extend(parsed?);
    }
    Ok(out)
}

/// Go-style io error text ("no such file or directory").
pub fn io_msg(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// Labels as a map: `a=b`, `a` (empty value).
pub fn labels_map(labels: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for l in labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        m.insert(k.to_string(), serde_json::Value::String(v.to_string()));
    }
    m
}

/// `--filter a=b --filter a=c` → `{"a":{"b":true,"c":true}}`.
pub fn filters_json(filters: &[String]) -> Result<Option<String>, String> {
    if filters.is_empty() {
        return Ok(None);
    }
    // Go encodes maps with sorted keys; so do we.
    let mut m: std::collections::BTreeMap<String, std::collections::BTreeMap<String, bool>> =
        Default::default();
    for f in filters {
        let Some((k, v)) = f.split_once('=') else {
            return Err(format!(
                "bad format of filter (expected name=value)\n'{f}' is not a valid filter"
            ));
        };
        m.entry(k.trim().to_lowercase())
            .or_default()
            .insert(v.to_string(), true);
    }
    serde_json::to_string(&m)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Split `name[:tag]` into (repository, tag); a `:` before the last `/` is a registry port.
pub fn split_repo_tag(r: &str) -> (String, String) {
    if let Some((name, _digest)) = r.split_once('@') {
        return (name.to_string(), String::new());
    }
    match r.rfind(':') {
        Some(i) if !r[i..].contains('/') => (r[..i].to_string(), r[i + 1..].to_string()),
        _ => (r.to_string(), String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env() {
        let look = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(expand_env("A=b", look).unwrap(), "A=b");
        assert_eq!(expand_env("HOME", look).unwrap(), "HOME=/root");
        assert_eq!(expand_env("NOPE", look).unwrap(), "NOPE");
        assert!(expand_env("=x", look).is_err());
    }

    #[test]
    fn kv_file() {
        let look = |k: &str| (k == "USER").then(|| "me".to_string());
        let f = "\u{feff}# comment\n\nA=1\n  B = x\nC=a=b\nUSER\nGONE\n";
        assert!(parse_kv_file(f, Some(&look)).is_err()); // "B " has a space
        let f = "# comment\n\nA=1\n  B=x y\nC=a=b\nUSER\nGONE\n";
        assert_eq!(
            parse_kv_file(f, Some(&look)).unwrap(),
            vec!["A=1", "B=x y", "C=a=b", "USER=me", "GONE"]
        );
        assert!(parse_kv_file("=x\n", None).is_err());
    }

    #[test]
    fn filters_and_refs() {
        assert_eq!(
            filters_json(&["status=exited".into(), "status=created".into()])
                .unwrap()
                .unwrap(),
            r#"{"status":{"created":true,"exited":true}}"#
        );
        assert!(filters_json(&["nope".into()]).is_err());
        assert_eq!(split_repo_tag("busybox"), ("busybox".into(), "".into()));
        assert_eq!(split_repo_tag("a/b:1.0"), ("a/b".into(), "1.0".into()));
        assert_eq!(
            split_repo_tag("reg:5000/b"),
            ("reg:5000/b".into(), "".into())
        );
        assert_eq!(labels_map(&["a=b".into(), "c".into()])["c"], "");
    }
}
