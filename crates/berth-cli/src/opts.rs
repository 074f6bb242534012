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

/// docker's `opts.ValidateLabel` (for `network create --label`): a key that is not empty and
/// has no whitespace; the value may be absent.
pub fn validate_label(val: &str) -> Result<String, String> {
    let key = val.split('=').next().unwrap_or("");
    let key = key.trim_start_matches([' ', '\t']);
    if key.is_empty() {
        return Err(format!("invalid label '{val}': empty name"));
    }
    if key.contains([' ', '\t']) {
        return Err(format!("label '{key}' contains whitespaces"));
    }
    Ok(val.to_string())
}

/// docker's `filters.ParseFlag` check of one `--filter`.
pub fn validate_filter(val: &str) -> Result<String, String> {
    if !val.is_empty() && !val.contains('=') {
        return Err("bad format of filter (expected name=value)".into());
    }
    Ok(val.to_string())
}

/// docker's `opts.ValidateLink`: `name` or `name:alias`.
pub fn validate_link(val: &str) -> Result<String, String> {
    if val.is_empty() {
        return Err("empty string specified for links".into());
    }
    if val.split(':').count() > 2 {
        return Err(format!("bad format for links: {val}"));
    }
    Ok(val.to_string())
}

/// docker's `MapOpts` (`-o k=v`, `--aux-address k=v`): `k` alone maps to ""; a later key
/// replaces an earlier one. In the order first given.
pub fn map_opts(vals: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for v in vals {
        let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
        match out.iter_mut().find(|(x, _)| x == k) {
            Some(e) => e.1 = val.to_string(),
            None => out.push((k.to_string(), val.to_string())),
        }
    }
    out
}

/// A JSON object of `map_opts`, keys sorted as Go encodes a map.
pub fn map_json(vals: &[String]) -> serde_json::Value {
    let sorted: std::collections::BTreeMap<String, String> = map_opts(vals).into_iter().collect();
    serde_json::Value::Object(
        sorted
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect(),
    )
}

/// One record of Go's `encoding/csv` reader: fields split on `,`, a field may be quoted
/// (`""` is a quote inside one).
pub fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    let mut col = 0;
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            col += 1;
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        col += 2;
                        field.push('"');
                    }
                    Some('"') => {
                        col += 1;
                        break;
                    }
                    Some(c) => {
                        col += 1;
                        field.push(c);
                    }
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            col + 1
                        ))
                    }
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {
                    col += 1;
                    out.push(field);
                    continue;
                }
                Some(_) => {
                    return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    col + 1
                ))
                }
            }
        }
        loop {
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {
                    col += 1;
                    out.push(field);
                    break;
                }
                Some('"') => {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted-field",
                        col + 1
                    ))
                }
                Some(c) => {
                    col += 1;
                    field.push(c);
                }
            }
        }
    }
}

/// One `--network` of run/create: docker's `NetworkAttachmentOpts`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    pub target: String,
    pub aliases: Vec<String>,
    /// driver-opt, keys sorted as Go encodes a map.
    pub driver_opts: std::collections::BTreeMap<String, String>,
    pub links: Vec<String>,
    pub ipv4_address: String,
    pub ipv6_address: String,
    pub link_local_ips: Vec<String>,
}

/// docker's `NetworkOpt.Set`: a network name, or (when the value matches `\w+=\w+`) the
/// long form `name=n,alias=a,ip=…,ip6=…,driver-opt=k=v`, keys and values lower-cased.
pub fn parse_network_opt(value: &str) -> Result<NetworkAttachment, String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let long = value
        .as_bytes()
        .windows(3)
        .any(|w| word(w[0]) && w[1] == b'=' && word(w[2]));
    if !long {
        return Ok(NetworkAttachment {
            target: value.to_string(),
            ..Default::default()
        });
    }
    let mut n = NetworkAttachment::default();
    for field in csv_fields(value)? {
        let Some((k, v)) = field.split_once('=') else {
            return Err(format!("invalid field {field}"));
        };
        let key = k.trim().to_lowercase();
        let val = v.trim().to_lowercase();
        match key.as_str() {
            "name" => n.target = val,
            "alias" => n.aliases.push(val),
            "ip" => n.ipv4_address = val,
            "ip6" => n.ipv6_address = val,
            "driver-opt" => {
                let Some((dk, dv)) = val.split_once('=') else {
                    return Err("invalid key value pair format in driver options".into());
                };
                n.driver_opts
                    .insert(dk.trim().to_string(), dv.trim().to_string());
            }
            _ => return Err(format!("invalid field key {key}")),
        }
    }
    if n.target.is_empty() {
        return Err("network name/id is not specified".into());
    }
    Ok(n)
}

/// clap's check of `--network` (the value is kept as given and parsed again later).
pub fn validate_network_opt(value: &str) -> Result<String, String> {
    parse_network_opt(value).map(|_| value.to_string())
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

    #[test]
    fn labels_links_maps() {
        assert_eq!(validate_label("a=b").unwrap(), "a=b");
        assert_eq!(validate_label("a").unwrap(), "a");
        assert_eq!(
            validate_label("=x").unwrap_err(),
            "invalid label '=x': empty name"
        );
        assert_eq!(
            validate_label("a b=x").unwrap_err(),
            "label 'a b' contains whitespaces"
        );
        assert!(validate_link("db").is_ok() && validate_link("db:alias").is_ok());
        assert_eq!(
            validate_link("a:b:c").unwrap_err(),
            "bad format for links: a:b:c"
        );
        assert_eq!(
            validate_link("").unwrap_err(),
            "empty string specified for links"
        );
        let m = map_opts(&["b=1".into(), "a".into(), "b=2=3".into()]);
        assert_eq!(
            m,
            vec![("b".into(), "2=3".into()), ("a".into(), String::new())]
        );
        assert_eq!(
            serde_json::to_string(&map_json(&["z=1".into(), "a=2".into()])).unwrap(),
            r#"{"a":"2","z":"1"}"#
        );
    }

    #[test]
    fn csv_and_network_opt() {
        assert_eq!(csv_fields("a,b").unwrap(), vec!["a", "b"]);
        assert_eq!(
            csv_fields(r#""a,b",c"#).unwrap(),
            vec!["a,b".to_string(), "c".into()]
        );
        assert_eq!(csv_fields("a,").unwrap(), vec!["a", ""]);
        assert!(csv_fields(r#"a"b"#).unwrap_err().contains("bare \""));
        assert_eq!(
            parse_network_opt("my-net").unwrap(),
            NetworkAttachment {
                target: "my-net".into(),
                ..Default::default()
            }
        );
        // A value with no `\w=\w` is a plain name.
        assert_eq!(
            parse_network_opt("container:x").unwrap().target,
            "container:x"
        );
        let n = parse_network_opt(
            "name=Net1,alias=Web,alias=w2,ip=10.0.0.5,ip6=2001:db8::5,driver-opt=K=V",
        )
        .unwrap();
        assert_eq!(n.target, "net1");
        assert_eq!(n.aliases, vec!["web", "w2"]);
        assert_eq!(n.ipv4_address, "10.0.0.5");
        assert_eq!(n.ipv6_address, "2001:db8::5");
        assert_eq!(n.driver_opts.get("k").map(String::as_str), Some("v"));
        assert_eq!(
            parse_network_opt("name=a,foo=b").unwrap_err(),
            "invalid field key foo"
        );
        assert_eq!(
            parse_network_opt("name=a,alias").unwrap_err(),
            "invalid field alias"
        );
        assert_eq!(
            parse_network_opt("alias=a").unwrap_err(),
            "network name/id is not specified"
        );
        assert_eq!(
            parse_network_opt("name=a,driver-opt=x").unwrap_err(),
            "invalid key value pair format in driver options"
        );
    }
}
