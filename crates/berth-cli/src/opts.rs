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

/// The source of a `-v` spec as docker's `loader.ParseVolume` finds it (its errors are ignored
/// by `docker run`, as here): a spec with a source is a bind (`HostConfig.Binds`), one without
/// is an anonymous volume (`Config.Volumes`). A letter and a colon at the start of a part is a
/// Windows drive (`c:\x:/data`).
pub fn volume_source(spec: &str) -> String {
    if spec.len() <= 2 {
        return String::new();
    }
    let (mut source, mut has_target) = (String::new(), false);
    let mut buffer: Vec<char> = Vec::new();
    let chars: Vec<Option<char>> = spec.chars().map(Some).chain([None]).collect();
    for c in chars {
        let drive = c == Some(':') && buffer.len() == 1 && buffer[0].is_alphabetic();
        if drive {
            buffer.push(':');
        } else if c == Some(':') || c.is_none() {
            let b: String = buffer.iter().collect();
            if b.is_empty() {
                break; // "empty section between colons"
            } else if source.is_empty() && c.is_none() {
                break; // an anonymous volume: the target alone
            } else if source.is_empty() {
                source = b;
            } else if !has_target {
                has_target = true;
            } else if c == Some(':') {
                break; // "too many colons"
            }
            buffer.clear();
        } else if let Some(c) = c {
            buffer.push(c);
        }
    }
    source
}

/// docker 20.10's `-v` values: (`HostConfig.Binds`, `Config.Volumes` keys). Each value once
/// (docker keeps them in a set), in the order first given.
pub fn split_volumes(vols: &[String]) -> (Vec<String>, Vec<String>) {
    let (mut binds, mut anon): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for v in vols {
        if binds.contains(v) || anon.contains(v) {
            continue;
        }
        if volume_source(v).is_empty() {
            anon.push(v.clone());
        } else {
            binds.push(v.clone());
        }
    }
    (binds, anon)
}

/// `--tmpfs /path[:opts]` → `HostConfig.Tmpfs` (a later path replaces an earlier one).
pub fn tmpfs_map(vals: &[String]) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    for t in vals {
        let (path, o) = t.split_once(':').unwrap_or((t.as_str(), ""));
        m.insert(path.to_string(), serde_json::Value::String(o.to_string()));
    }
    m
}

/// go-units `RAMInBytes`: `64m`, `1.5g`, `100`, `2KiB` (binary units).
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let bad = || format!("invalid size: '{s}'");
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, rest) = s.split_at(num_end);
    // `\d+(\.\d+)*`
    if num.is_empty()
        || num
            .split('.')
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let mut it = rest.chars().peekable();
    let mut mul: f64 = 1.0;
    if let Some(&c) = it.peek() {
        let p = match c.to_ascii_lowercase() {
            'k' => Some(1),
            'm' => Some(2),
            'g' => Some(3),
            't' => Some(4),
            'p' => Some(5),
            _ => None,
        };
        if let Some(p) = p {
            mul = 1024f64.powi(p);
            it.next();
        }
    }
    if matches!(it.peek(), Some('i' | 'I')) {
        it.next();
    }
    if matches!(it.peek(), Some('b' | 'B')) {
        it.next();
    }
    if it.next().is_some() {
        return Err(bad());
    }
    let n: f64 = num
        .parse()
        .map_err(|_| format!("strconv.ParseFloat: parsing \"{num}\": invalid syntax"))?;
    Ok((n * mul) as i64)
}

/// Go's `strconv.ParseBool`.
pub fn go_parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker 20.10's `MountOpt.Set` (`--mount type=…,source=…,target=…`): the `mount.Mount` as
/// Go encodes it (empty fields left out), or the flag's message.
pub fn parse_mount(value: &str) -> Result<serde_json::Value, String> {
    use serde_json::{json, Map, Value};
    let fields = csv_fields(value)?;
    let mut typ = "volume".to_string();
    let (mut source, mut target, mut consistency) = (String::new(), String::new(), String::new());
    let mut read_only = false;
    // BindOptions: (propagation, nonrecursive)
    let mut bind: Option<(String, bool)> = None;
    // VolumeOptions: (nocopy, labels, driver name, driver options)
    type VolOpts = (
        bool,
        Vec<(String, String)>,
        String,
        Option<Vec<(String, String)>>,
    );
    let mut vol: Option<VolOpts> = None;
    // TmpfsOptions: (size, mode)
    let mut tmpfs: Option<(i64, u32)> = None;
    fn set(list: &mut Vec<(String, String)>, value: &str) {
        let (k, v) = value.split_once('=').unwrap_or((value, ""));
        match list.iter_mut().find(|(x, _)| x == k) {
            Some(e) => e.1 = v.to_string(),
            None => list.push((k.to_string(), v.to_string())),
        }
    }
    let vol_default = || (false, Vec::new(), String::new(), None);
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => read_only = true,
                "volume-nocopy" => vol.get_or_insert_with(vol_default).0 = true,
                "bind-nonrecursive" => bind.get_or_insert_with(Default::default).1 = true,
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let bad = || format!("invalid value for {key}: {val}");
        match key.as_str() {
            "type" => typ = val.to_lowercase(),
            "source" | "src" => source = val.to_string(),
            "target" | "dst" | "destination" => target = val.to_string(),
            "readonly" | "ro" => read_only = go_parse_bool(val).ok_or_else(bad)?,
            "consistency" => consistency = val.to_lowercase(),
            "bind-propagation" => bind.get_or_insert_with(Default::default).0 = val.to_lowercase(),
            "bind-nonrecursive" => {
                bind.get_or_insert_with(Default::default).1 = go_parse_bool(val).ok_or_else(bad)?
            }
            "volume-nocopy" => {
                vol.get_or_insert_with(vol_default).0 = go_parse_bool(val)
                    .ok_or_else(|| format!("invalid value for volume-nocopy: {val}"))?
            }
            "volume-label" => set(&mut vol.get_or_insert_with(vol_default).1, val),
            "volume-driver" => vol.get_or_insert_with(vol_default).2 = val.to_string(),
            "volume-opt" => set(
                vol.get_or_insert_with(vol_default)
                    .3
                    .get_or_insert_with(Vec::new),
                val,
            ),
            "tmpfs-size" => tmpfs.get_or_insert((0, 0)).0 = ram_in_bytes(val).map_err(|_| bad())?,
            "tmpfs-mode" => {
                tmpfs.get_or_insert((0, 0)).1 = u32::from_str_radix(val, 8)
                    .ok()
                    .filter(|_| !val.starts_with(['+', '-']))
                    .ok_or_else(bad)?
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if typ.is_empty() {
        return Err("type is required".into());
    }
    if target.is_empty() {
        return Err("target is required".into());
    }
    if vol.is_some() && typ != "volume" {
        return Err(format!(
            "cannot mix 'volume-*' options with mount type '{typ}'"
        ));
    }
    if bind.is_some() && typ != "bind" {
        return Err(format!(
            "cannot mix 'bind-*' options with mount type '{typ}'"
        ));
    }
    if tmpfs.is_some() && typ != "tmpfs" {
        return Err(format!(
            "cannot mix 'tmpfs-*' options with mount type '{typ}'"
        ));
    }
    let sorted = |l: &[(String, String)]| -> Value {
        let mut l = l.to_vec();
        l.sort();
        Value::Object(l.into_iter().map(|(k, v)| (k, json!(v))).collect())
    };
    let mut m = Map::new();
    m.insert("Type".into(), json!(typ));
    if !source.is_empty() {
        m.insert("Source".into(), json!(source));
    }
    m.insert("Target".into(), json!(target));
    if read_only {
        m.insert("ReadOnly".into(), json!(true));
    }
    if !consistency.is_empty() {
        m.insert("Consistency".into(), json!(consistency));
    }
    if let Some((prop, nonrec)) = bind {
        let mut b = Map::new();
        if !prop.is_empty() {
            b.insert("Propagation".into(), json!(prop));
        }
        if nonrec {
            b.insert("NonRecursive".into(), json!(true));
        }
        m.insert("BindOptions".into(), Value::Object(b));
    }
    if let Some((nocopy, labels, driver, opts)) = vol {
        let mut v = Map::new();
        if nocopy {
            v.insert("NoCopy".into(), json!(true));
        }
        if !labels.is_empty() {
            v.insert("Labels".into(), sorted(&labels));
        }
        let mut d = Map::new();
        if !driver.is_empty() {
            d.insert("Name".into(), json!(driver));
        }
        if let Some(o) = opts.filter(|o| !o.is_empty()) {
            d.insert("Options".into(), sorted(&o));
        }
        v.insert("DriverConfig".into(), Value::Object(d));
        m.insert("VolumeOptions".into(), Value::Object(v));
    }
    if let Some((size, mode)) = tmpfs {
        let mut t = Map::new();
        if size != 0 {
            t.insert("SizeBytes".into(), json!(size));
        }
        if mode != 0 {
            t.insert("Mode".into(), json!(mode));
        }
        m.insert("TmpfsOptions".into(), Value::Object(t));
    }
    Ok(Value::Object(m))
}

/// clap's check of `--mount` (the value is kept as given and parsed again later).
pub fn validate_mount(value: &str) -> Result<String, String> {
    parse_mount(value).map(|_| value.to_string())
}

/// fvbommel/sortorder's `NaturalLess`: runs of digits compare as numbers.
pub fn natural_less(a: &str, b: &str) -> bool {
    let (s1, s2) = (a.as_bytes(), b.as_bytes());
    let (mut i1, mut i2) = (0, 0);
    while i1 < s1.len() && i2 < s2.len() {
        let (c1, c2) = (s1[i1], s2[i2]);
        let (d1, d2) = (c1.is_ascii_digit(), c2.is_ascii_digit());
        if d1 != d2 {
            return d1;
        }
        if !d1 {
            if c1 != c2 {
                return c1 < c2;
            }
            i1 += 1;
            i2 += 1;
            continue;
        }
        while i1 < s1.len() && s1[i1] == b'0' {
            i1 += 1;
        }
        while i2 < s2.len() && s2[i2] == b'0' {
            i2 += 1;
        }
        let (nz1, nz2) = (i1, i2);
        while i1 < s1.len() && s1[i1].is_ascii_digit() {
            i1 += 1;
        }
        while i2 < s2.len() && s2[i2].is_ascii_digit() {
            i2 += 1;
        }
        if i1 - nz1 != i2 - nz2 {
            return i1 - nz1 < i2 - nz2;
        }
        if s1[nz1..i1] != s2[nz2..i2] {
            return s1[nz1..i1] < s2[nz2..i2];
        }
        if nz1 != nz2 {
            return nz1 < nz2;
        }
    }
    s1.len() < s2.len()
}

// ---- Resource limits, devices, security options and health checks (docker 20.10's
// `cli/command/container/opts.go` and `opts` package). ----

/// Go's `strconv.NumError` text.
fn num_error(func: &str, s: &str, why: &str) -> String {
    format!(
        "strconv.{func}: parsing {}: {why}",
        crate::format::units::go_quote(s)
    )
}

/// The digits of `strconv.ParseInt/ParseUint(s, 0, _)` after the sign: (radix, digits), the
/// base prefixes `0x`, `0o`, `0b` and a leading `0` (octal) understood, `_` between digits.
fn go_radix(s: &str) -> Option<(u32, String)> {
    let lower = s.to_ascii_lowercase();
    let (radix, digits) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || (radix == 10 && digits.contains('_'))
    {
        return None;
    }
    let d: String = digits.chars().filter(|c| *c != '_').collect();
    if d.is_empty() || !d.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some((radix, d))
}

/// Go's `strconv.ParseInt(s, 0, 64)`, as pflag's int and int64 flags parse, with its error.
pub fn go_parse_int(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, digits) =
        go_radix(body).ok_or_else(|| num_error("ParseInt", s, "invalid syntax"))?;
    let mag = u128::from_str_radix(&digits, radix)
        .map_err(|_| num_error("ParseInt", s, "value out of range"))?;
    let v = if neg { -(mag as i128) } else { mag as i128 };
    i64::try_from(v).map_err(|_| num_error("ParseInt", s, "value out of range"))
}

/// Go's `strconv.ParseUint(s, 0, 16)` (pflag's uint16 flags).
pub fn go_parse_uint16(s: &str) -> Result<u16, String> {
    let (radix, digits) = go_radix(s).ok_or_else(|| num_error("ParseUint", s, "invalid syntax"))?;
    let v = u128::from_str_radix(&digits, radix)
        .map_err(|_| num_error("ParseUint", s, "value out of range"))?;
    u16::try_from(v).map_err(|_| num_error("ParseUint", s, "value out of range"))
}

/// `opts.MemBytes` (`-m 512m`, `--shm-size 64m`): go-units `RAMInBytes`.
pub fn parse_mem_bytes(s: &str) -> Result<i64, String> {
    ram_in_bytes(s)
}

/// `opts.MemSwapBytes` (`--memory-swap`): `-1` (unlimited) or a size.
pub fn parse_mem_swap_bytes(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    ram_in_bytes(s)
}

/// `opts.ParseCPUs` (`--cpus 1.5`): the value as a `big.Rat` (`1.5`, `3/2`, `1e-1`) times
/// 1e9, which must be a whole number.
pub fn parse_nano_cpus(s: &str) -> Result<i64, String> {
    let bad = || format!("failed to parse {s} as a rational number");
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // (numerator, denominator) exactly.
    let (num, den): (i128, i128) = if let Some((a, b)) = body.split_once('/') {
        let digits =
            |x: &str| !x.is_empty() && x.len() <= 30 && x.bytes().all(|c| c.is_ascii_digit());
        if !digits(a) || !digits(b) {
            return Err(bad());
        }
        let (a, b): (i128, i128) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if b == 0 {
            return Err(bad());
        }
        (a, b)
    } else {
        let (mant, exp) = match body.find(['e', 'E']) {
            Some(i) => (&body[..i], body[i + 1..].parse::<i32>().map_err(|_| bad())?),
            None => (body, 0),
        };
        let (ip, fp) = mant.split_once('.').unwrap_or((mant, ""));
        if (ip.is_empty() && fp.is_empty())
            || !ip.bytes().all(|b| b.is_ascii_digit())
            || !fp.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let digits = format!("{ip}{fp}");
        let digits = digits.trim_start_matches('0');
        let m: i128 = if digits.is_empty() {
            0
        } else if digits.len() > 30 {
            return Err("value is too precise".into());
        } else {
            digits.parse().map_err(|_| bad())?
        };
        let scale = exp - fp.len() as i32;
        if !(-36..=18).contains(&scale) {
            return Err(if m == 0 {
                bad()
            } else {
                "value is too precise".into()
            });
        }
        if scale >= 0 {
            (m * 10i128.pow(scale as u32), 1)
        } else {
            (m, 10i128.pow((-scale) as u32))
        }
    };
    let nano = num.checked_mul(1_000_000_000).ok_or_else(bad)?;
    if nano % den != 0 {
        return Err("value is too precise".into());
    }
    let v = nano / den;
    let v = if neg { -v } else { v };
    // big.Rat's Int64 of a value too large wraps; such a value is nonsense anyway.
    Ok(v as i64)
}

/// Go's `time.ParseDuration` in nanoseconds (negative allowed), with its errors.
pub fn parse_go_duration_ns(s: &str) -> Result<i64, String> {
    use crate::format::units::go_quote;
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let int_end = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let int_part = &rest[..int_end];
        rest = &rest[int_end..];
        let mut frac_part = "";
        if let Some(r) = rest.strip_prefix('.') {
            let fe = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            frac_part = &r[..fe];
            rest = &r[fe..];
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        } else if int_part.is_empty() {
            return Err(invalid());
        }
        let unit_end = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_end == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let mult: u128 = match unit {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    go_quote(unit),
                    go_quote(s)
                ))
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut v = int.checked_mul(mult).ok_or_else(invalid)?;
        if !frac_part.is_empty() {
            let f = &frac_part[..frac_part.len().min(20)];
            let fv: u128 = f.parse().map_err(|_| invalid())?;
            v += fv * mult / 10u128.pow(f.len() as u32);
        }
        total = total.checked_add(v).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    let t = total as i64;
    Ok(if neg { -t } else { t })
}

const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// go-units `ParseUlimit` (`nofile=1024:2048`): (name, soft, hard).
pub fn parse_ulimit(val: &str) -> Result<(String, i64, i64), String> {
    let Some((name, limits)) = val.split_once('=') else {
        return Err(format!("invalid ulimit argument: {val}"));
    };
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let int = |x: &str| -> Result<i64, String> {
        x.parse::<i64>().map_err(|e| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                    "value out of range"
                }
                _ => "invalid syntax",
            };
            num_error("ParseInt", x, why)
        })
    };
    let parts: Vec<&str> = limits.split(':').collect();
    let (soft, hard) = match parts.as_slice() {
        [s] => {
            let s = int(s)?;
            (s, s)
        }
        [s, h] => {
            let h = int(h)?;
            (int(s)?, h)
        }
        _ => {
            return Err(format!(
                "too many limit value arguments - {limits}, can only have up to two, `soft[:hard]`"
            ))
        }
    };
    if hard != -1 {
        if soft == -1 {
            return Err(format!("ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: {hard}"));
        }
        if soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    Ok((name.to_string(), soft, hard))
}

/// The `--ulimit` flag's check.
pub fn validate_ulimit(val: &str) -> Result<String, String> {
    parse_ulimit(val).map(|_| val.to_string())
}

/// `HostConfig.Ulimits` of the `--ulimit` flags: one per name (the last given wins),
/// sorted by name, as `UlimitOpt.GetList`.
pub fn ulimits_json(vals: &[String]) -> Result<serde_json::Value, String> {
    let mut m: std::collections::BTreeMap<String, (i64, i64)> = Default::default();
    for v in vals {
        let (n, s, h) = parse_ulimit(v)?;
        m.insert(n, (s, h));
    }
    Ok(serde_json::Value::Array(
        m.into_iter()
            .map(|(n, (s, h))| serde_json::json!({"Name": n, "Hard": h, "Soft": s}))
            .collect(),
    ))
}

/// `opts.ValidateSysctl` (`--sysctl net.ipv4.ip_forward=1`).
pub fn validate_sysctl(val: &str) -> Result<String, String> {
    const NAMES: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let bad = || format!("sysctl '{val}' is not whitelisted");
    let Some((key, _)) = val.split_once('=') else {
        return Err(bad());
    };
    if NAMES.contains(&key) || key.starts_with("net.") || key.starts_with("fs.mqueue.") {
        Ok(val.to_string())
    } else {
        Err(bad())
    }
}

/// `validateDeviceCgroupRule`: `type major:minor mode` (`c 1:3 rwm`, `b *:* r`).
pub fn validate_device_cgroup_rule(val: &str) -> Result<String, String> {
    let ok = (|| {
        let mut it = val.split(' ');
        let (t, mm, mode) = (it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || !matches!(t, "a" | "c" | "b") {
            return None;
        }
        let (maj, min) = mm.split_once(':')?;
        let num = |x: &str| x == "*" || (!x.is_empty() && x.bytes().all(|b| b.is_ascii_digit()));
        (num(maj)
            && num(min)
            && (1..=3).contains(&mode.len())
            && mode.bytes().all(|b| matches!(b, b'r' | b'w' | b'm')))
        .then_some(())
    })();
    match ok {
        Some(()) => Ok(val.to_string()),
        None => Err(format!("invalid device cgroup format '{val}'")),
    }
}

/// Go's `path.Clean`.
pub fn go_path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            x => out.push(x),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// `validDeviceMode`: r, w and m, each at most once.
fn valid_device_mode(mode: &str) -> bool {
    let mut seen = [false; 3];
    !mode.is_empty()
        && mode.chars().all(|c| {
            let i = match c {
                'r' => 0,
                'w' => 1,
                'm' => 2,
                _ => return false,
            };
            !std::mem::replace(&mut seen[i], true)
        })
}

/// `--device /dev/x[:/dev/y][:rwm]` → the `DeviceMapping` (`validateLinuxPath`, then
/// `parseLinuxDevice`), with docker's errors.
pub fn parse_device(val: &str) -> Result<serde_json::Value, String> {
    if val.matches(':').count() > 2 {
        return Err(format!("bad format for path: {val}"));
    }
    let split: Vec<&str> = val.splitn(3, ':').collect();
    if split[0].is_empty() {
        return Err(format!("bad format for path: {val}"));
    }
    let (container_path, validated) = match split.as_slice() {
        [c] => (c.to_string(), go_path_clean(c)),
        [a, b] if valid_device_mode(b) => (a.to_string(), format!("{}:{b}", go_path_clean(a))),
        [a, b] => (b.to_string(), format!("{a}:{}", go_path_clean(b))),
        [a, b, m] => {
            if !valid_device_mode(m) {
                return Err(format!("bad mode specified: {m}"));
            }
            (b.to_string(), format!("{a}:{b}:{m}"))
        }
        _ => unreachable!("splitn(3)"),
    };
    if !container_path.starts_with('/') {
        return Err(format!("{container_path} is not an absolute path"));
    }
    let arr: Vec<&str> = validated.split(':').collect();
    let mut perms = "rwm".to_string();
    let mut dst = String::new();
    if arr.len() == 3 {
        perms = arr[2].to_string();
    }
    if arr.len() >= 2 {
        if valid_device_mode(arr[1]) {
            perms = arr[1].to_string();
        } else {
            dst = arr[1].to_string();
        }
    }
    let src = arr[0].to_string();
    if dst.is_empty() {
        dst = src.clone();
    }
    Ok(serde_json::json!({
        "PathOnHost": src,
        "PathInContainer": dst,
        "CgroupPermissions": perms,
    }))
}

/// docker's `parseSecurityOpts` and `parseSystemPaths`: a `seccomp=<file>` profile is read
/// and sent as `seccomp=<compact json>`; `systempaths=unconfined` is not sent but empties
/// MaskedPaths and ReadonlyPaths. Returns (SecurityOpt, whether systempaths=unconfined).
pub fn parse_security_opts(vals: &[String]) -> Result<(Vec<String>, bool), String> {
    let mut out = Vec::new();
    let mut unconfined_paths = false;
    for opt in vals {
        let mut con: Vec<&str> = opt.splitn(2, '=').collect();
        if con.len() == 1 && con[0] != "no-new-privileges" {
            if opt.contains(':') {
                con = opt.splitn(2, ':').collect();
            } else {
                return Err(format!(
                    "Invalid --security-opt: {}",
                    crate::format::units::go_quote(opt)
                ));
            }
        }
        if con[0] == "seccomp" && con.get(1).is_some_and(|f| *f != "unconfined") {
            let f = con[1];
            let data = std::fs::read(f).map_err(|e| {
                format!(
                    "opening seccomp profile ({f}) failed: open {f}: {}",
                    io_msg(&e)
                )
            })?;
            let v: serde_json::Value = serde_json::from_slice(&data)
                .map_err(|e| format!("compacting json for seccomp profile ({f}) failed: {e}"))?;
            out.push(format!("seccomp={v}"));
            continue;
        }
        if opt == "systempaths=unconfined" {
            unconfined_paths = true;
            continue;
        }
        out.push(opt.clone());
    }
    Ok((out, unconfined_paths))
}

/// `PidMode.Valid`: "", `host` or `container:<name>`.
pub fn valid_pid_mode(m: &str) -> bool {
    let parts: Vec<&str> = m.split(':').collect();
    match parts[0] {
        "" | "host" => true,
        "container" => parts.len() == 2 && !parts[1].is_empty(),
        _ => false,
    }
}

/// `UTSMode.Valid`: "" or `host`.
pub fn valid_uts_mode(m: &str) -> bool {
    matches!(m.split(':').next().unwrap_or(""), "" | "host")
}

/// `UsernsMode.Valid`: "" or `host`.
pub fn valid_userns_mode(m: &str) -> bool {
    m.is_empty() || m.split(':').next() == Some("host")
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

    #[test]
    fn volume_specs_as_docker_20_10() {
        assert_eq!(volume_source("/data"), "");
        assert_eq!(volume_source("/h:/data"), "/h");
        assert_eq!(volume_source("vol:/data:ro"), "vol");
        assert_eq!(volume_source("c:\\x:/data"), "c:\\x");
        assert_eq!(volume_source("ab"), "");
        // Errors are ignored: what was found before them counts.
        assert_eq!(volume_source(":/data"), "");
        assert_eq!(volume_source("/a:/b:ro:x"), "/a");
        assert_eq!(volume_source("/a::/b"), "/a");
        let (binds, anon) = split_volumes(&[
            "/data".into(),
            "/h:/c".into(),
            "/data".into(),
            "v:/x:ro".into(),
        ]);
        assert_eq!(binds, vec!["/h:/c", "v:/x:ro"]);
        assert_eq!(anon, vec!["/data"]);
        let t = tmpfs_map(&["/run".into(), "/tmp:rw,size=64m".into()]);
        assert_eq!(
            serde_json::Value::Object(t),
            serde_json::json!({"/run": "", "/tmp": "rw,size=64m"})
        );
        assert_eq!(ram_in_bytes("64m").unwrap(), 64 << 20);
        assert_eq!(ram_in_bytes("1.5g").unwrap(), 3 << 29);
        assert_eq!(ram_in_bytes("100").unwrap(), 100);
        assert_eq!(ram_in_bytes("2 KiB").unwrap(), 2048);
        assert!(
            ram_in_bytes("x").is_err()
                && ram_in_bytes("1q").is_err()
                && ram_in_bytes("1.2.3").is_err()
        );
        assert!(natural_less("v2", "v10") && !natural_less("v10", "v2"));
        assert!(natural_less("a", "b") && natural_less("1", "a") && natural_less("a", "ab"));
        assert!(natural_less("v01", "v001") && !natural_less("x", "x"));
    }

    #[test]
    fn mount_flag_as_docker_20_10() {
        use serde_json::json;
        assert_eq!(
            parse_mount("type=bind,src=/h,dst=/c,ro,bind-propagation=RSHARED").unwrap(),
            json!({"Type": "bind", "Source": "/h", "Target": "/c", "ReadOnly": true,
                   "BindOptions": {"Propagation": "rshared"}})
        );
        assert_eq!(
            parse_mount("source=v,target=/d").unwrap(),
            json!({"Type": "volume", "Source": "v", "Target": "/d"})
        );
        assert_eq!(
            parse_mount("target=/d,volume-nocopy").unwrap(),
            json!({"Type": "volume", "Target": "/d", "VolumeOptions": {"NoCopy": true, "DriverConfig": {}}})
        );
        assert_eq!(
            parse_mount("src=v,destination=/d,volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-label=a=b,volume-label=c,readonly=false,consistency=Cached").unwrap(),
            json!({"Type": "volume", "Source": "v", "Target": "/d", "Consistency": "cached",
                   "VolumeOptions": {"Labels": {"a": "b", "c": ""},
                   "DriverConfig": {"Name": "local", "Options": {"device": "tmpfs", "type": "tmpfs"}}}})
        );
        assert_eq!(
            parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap(),
            json!({"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 1016}})
        );
        assert_eq!(
            parse_mount("type=bind,src=/h,dst=/c,bind-nonrecursive").unwrap()["BindOptions"],
            json!({"NonRecursive": true})
        );
        // The daemon judges the type.
        assert_eq!(parse_mount("type=foo,dst=/x").unwrap()["Type"], "foo");
        let err = |v: &str| parse_mount(v).unwrap_err();
        assert_eq!(err("type"), "invalid field 'type' must be a key=value pair");
        assert_eq!(err("type=bind,x=y,dst=/c"), "unexpected key 'x' in 'x=y'");
        assert_eq!(err("type=,dst=/x"), "type is required");
        assert_eq!(err("type=bind,src=/x"), "target is required");
        assert_eq!(err("dst=/x,ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(
            err("dst=/x,volume-nocopy=2"),
            "invalid value for volume-nocopy: 2"
        );
        assert_eq!(
            err("type=tmpfs,dst=/x,tmpfs-size=big"),
            "invalid value for tmpfs-size: big"
        );
        assert_eq!(
            err("type=tmpfs,dst=/x,tmpfs-mode=9"),
            "invalid value for tmpfs-mode: 9"
        );
        assert_eq!(
            err("type=bind,src=/a,dst=/x,volume-nocopy"),
            "cannot mix 'volume-*' options with mount type 'bind'"
        );
        assert_eq!(
            err("dst=/x,bind-propagation=shared"),
            "cannot mix 'bind-*' options with mount type 'volume'"
        );
        assert_eq!(
            err("dst=/x,tmpfs-size=1m"),
            "cannot mix 'tmpfs-*' options with mount type 'volume'"
        );
        assert!(err("dst=\"/x").contains("bare \" in non-quoted-field"));
    }
    #[test]
    fn numbers_sizes_cpus_as_go() {
        assert_eq!(go_parse_int("42"), Ok(42));
        assert_eq!(go_parse_int("-1"), Ok(-1));
        assert_eq!(go_parse_int("0x10"), Ok(16));
        assert_eq!(go_parse_int("010"), Ok(8));
        assert_eq!(
            go_parse_int("x").unwrap_err(),
            "strconv.ParseInt: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            go_parse_int("99999999999999999999").unwrap_err(),
            "strconv.ParseInt: parsing \"99999999999999999999\": value out of range"
        );
        assert_eq!(go_parse_uint16("500"), Ok(500));
        assert_eq!(
            go_parse_uint16("70000").unwrap_err(),
            "strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert!(go_parse_uint16("-1")
            .unwrap_err()
            .ends_with("invalid syntax"));
        assert_eq!(parse_mem_bytes("512m"), Ok(512 << 20));
        assert_eq!(parse_mem_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_mem_bytes("1.5k"), Ok(1536));
        assert_eq!(parse_mem_bytes("100"), Ok(100));
        assert_eq!(parse_mem_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_mem_bytes("-1").unwrap_err(), "invalid size: '-1'");
        assert_eq!(parse_mem_bytes("1x").unwrap_err(), "invalid size: '1x'");
        assert_eq!(parse_mem_swap_bytes("-1"), Ok(-1));
        assert_eq!(parse_mem_swap_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_nano_cpus("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus("3/2"), Ok(1_500_000_000));
        assert_eq!(parse_nano_cpus("1e-1"), Ok(100_000_000));
        assert_eq!(parse_nano_cpus(".5"), Ok(500_000_000));
        assert_eq!(
            parse_nano_cpus("0.0000000001").unwrap_err(),
            "value is too precise"
        );
        assert_eq!(
            parse_nano_cpus("abc").unwrap_err(),
            "failed to parse abc as a rational number"
        );
        assert!(parse_nano_cpus("").is_err());
        assert!(parse_nano_cpus("1/0").is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration_ns("30s"), Ok(30_000_000_000));
        assert_eq!(parse_go_duration_ns("1m30s"), Ok(90_000_000_000));
        assert_eq!(parse_go_duration_ns("1.5h"), Ok(5_400_000_000_000));
        assert_eq!(parse_go_duration_ns("250ms"), Ok(250_000_000));
        assert_eq!(parse_go_duration_ns("10us"), Ok(10_000));
        assert_eq!(parse_go_duration_ns("0"), Ok(0));
        assert_eq!(parse_go_duration_ns("-5s"), Ok(-5_000_000_000));
        assert_eq!(
            parse_go_duration_ns("x").unwrap_err(),
            "time: invalid duration \"x\""
        );
        assert_eq!(
            parse_go_duration_ns("10").unwrap_err(),
            "time: missing unit in duration \"10\""
        );
        assert_eq!(
            parse_go_duration_ns("10q").unwrap_err(),
            "time: unknown unit \"q\" in duration \"10q\""
        );
        assert!(parse_go_duration_ns("").is_err());
    }

    #[test]
    fn ulimits_as_go_units() {
        assert_eq!(
            parse_ulimit("nofile=1024:2048"),
            Ok(("nofile".into(), 1024, 2048))
        );
        assert_eq!(parse_ulimit("nproc=512"), Ok(("nproc".into(), 512, 512)));
        assert_eq!(parse_ulimit("core=-1"), Ok(("core".into(), -1, -1)));
        assert_eq!(parse_ulimit("core=0:-1"), Ok(("core".into(), 0, -1)));
        assert_eq!(
            parse_ulimit("nofile").unwrap_err(),
            "invalid ulimit argument: nofile"
        );
        assert_eq!(parse_ulimit("as=1").unwrap_err(), "invalid ulimit type: as");
        assert_eq!(
            parse_ulimit("nofile=a").unwrap_err(),
            "strconv.ParseInt: parsing \"a\": invalid syntax"
        );
        assert_eq!(
            parse_ulimit("nofile=1:2:3").unwrap_err(),
            "too many limit value arguments - 1:2:3, can only have up to two, `soft[:hard]`"
        );
        assert_eq!(
            parse_ulimit("nofile=20:10").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: 20 > 10"
        );
        assert_eq!(
            parse_ulimit("nofile=-1:10").unwrap_err(),
            "ulimit soft limit must be less than or equal to hard limit: soft: -1 (unlimited), hard: 10"
        );
        let v: Vec<String> = ["nproc=5", "nofile=1:2", "nproc=7"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            ulimits_json(&v).unwrap(),
            serde_json::json!([
                {"Name": "nofile", "Hard": 2, "Soft": 1},
                {"Name": "nproc", "Hard": 7, "Soft": 7},
            ])
        );
    }

    #[test]
    fn devices_sysctls_security() {
        let d = |s: &str| parse_device(s).unwrap();
        assert_eq!(
            d("/dev/fuse"),
            serde_json::json!({"PathOnHost": "/dev/fuse", "PathInContainer": "/dev/fuse", "CgroupPermissions": "rwm"})
        );
        assert_eq!(d("/dev/sda:/dev/xvda")["PathInContainer"], "/dev/xvda");
        assert_eq!(d("/dev/sda:/dev/xvda")["CgroupPermissions"], "rwm");
        assert_eq!(d("/dev/sda:r")["PathInContainer"], "/dev/sda");
        assert_eq!(d("/dev/sda:r")["CgroupPermissions"], "r");
        assert_eq!(d("/dev/sda:/dev/xvda:rw")["CgroupPermissions"], "rw");
        assert_eq!(d("/dev//sda/")["PathOnHost"], "/dev/sda");
        assert_eq!(
            parse_device("/dev/sda:/dev/xvda:rx").unwrap_err(),
            "bad mode specified: rx"
        );
        assert_eq!(
            parse_device("/a:/b:rw:x").unwrap_err(),
            "bad format for path: /a:/b:rw:x"
        );
        assert_eq!(parse_device(":/b").unwrap_err(), "bad format for path: :/b");
        assert_eq!(
            parse_device("/dev/sda:xvda").unwrap_err(),
            "xvda is not an absolute path"
        );
        assert_eq!(go_path_clean("/a/./b/../c//"), "/a/c");
        assert_eq!(go_path_clean("a/../.."), "..");
        assert!(validate_sysctl("net.ipv4.ip_forward=1").is_ok());
        assert!(validate_sysctl("kernel.shmmax=1").is_ok());
        assert_eq!(
            validate_sysctl("kernel.foo=1").unwrap_err(),
            "sysctl 'kernel.foo=1' is not whitelisted"
        );
        assert!(validate_sysctl("net.x").is_err());
        assert!(validate_device_cgroup_rule("c 1:3 rwm").is_ok());
        assert!(validate_device_cgroup_rule("b *:* r").is_ok());
        assert_eq!(
            validate_device_cgroup_rule("x 1:3 rwm").unwrap_err(),
            "invalid device cgroup format 'x 1:3 rwm'"
        );
        assert!(validate_device_cgroup_rule("c 1:3 rwmr").is_err());
        let so =
            |v: &[&str]| parse_security_opts(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            so(&[
                "no-new-privileges",
                "no-new-privileges:true",
                "seccomp=unconfined",
                "apparmor=unconfined",
                "label=disable"
            ])
            .unwrap(),
            (
                vec![
                    "no-new-privileges".to_string(),
                    "no-new-privileges:true".into(),
                    "seccomp=unconfined".into(),
                    "apparmor=unconfined".into(),
                    "label=disable".into()
                ],
                false
            )
        );
        assert_eq!(so(&["systempaths=unconfined"]).unwrap(), (vec![], true));
        assert_eq!(so(&["foo"]).unwrap_err(), "Invalid --security-opt: \"foo\"");
        assert_eq!(
            so(&["seccomp=/nonexistent/p.json"]).unwrap_err(),
            "opening seccomp profile (/nonexistent/p.json) failed: open /nonexistent/p.json: no such file or directory"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p.json");
        std::fs::write(
            &f,
            "{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\",\n  \"syscalls\": []\n}\n",
        )
        .unwrap();
        let f = f.to_string_lossy().to_string();
        assert_eq!(
            so(&[&format!("seccomp={f}")]).unwrap().0,
            vec![r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#.to_string()]
        );
        assert_eq!(
            so(&[&format!("seccomp:{f}")]).unwrap().0,
            vec![r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#.to_string()]
        );
        assert!(valid_pid_mode("host") && valid_pid_mode("container:x") && valid_pid_mode(""));
        assert!(!valid_pid_mode("container:") && !valid_pid_mode("foo"));
        assert!(valid_uts_mode("host") && !valid_uts_mode("private"));
        assert!(valid_userns_mode("host") && valid_userns_mode("") && !valid_userns_mode("x"));
    }
}
