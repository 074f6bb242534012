//! Byte-exact reproductions of the JSON Docker 20.10 (Go's `encoding/json`)
//! writes for the legacy v1 layer metadata of `docker save`, and the v1 ids
//! derived from it (moby `image/v1.CreateID`).
//!
//! Go's encoder differs from serde_json: struct fields keep declaration order,
//! map keys are sorted, `<`, `>`, `&`, U+2028 and U+2029 are escaped, and
//! control characters other than `\n`, `\r`, `\t` become `\u00XX`.

use berth_content::Digest;
use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{Map, Value};

/// Appends `s` as a Go-encoded JSON string.
pub(crate) fn string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{0}'..='\u{1f}' => {
                let b = c as u32;
                out.push_str("\\u00");
                out.push(HEX[(b >> 4) as usize] as char);
                out.push(HEX[(b & 0xf) as usize] as char);
            }
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn quoted(s: &str) -> String {
    let mut out = String::new();
    string(&mut out, s);
    out
}

/// Go's `time.Time` JSON form (RFC 3339 with trailing fractional zeros trimmed,
/// `Z` for a zero offset).
pub(crate) fn time(t: &DateTime<FixedOffset>) -> String {
    let mut s = if t.offset().local_minus_utc() == 0 {
        t.naive_utc()
            .and_utc()
            .to_rfc3339_opts(SecondsFormat::Nanos, true)
    } else {
        t.to_rfc3339_opts(SecondsFormat::Nanos, false)
    };
    // Trim the fractional part's trailing zeros (and the dot if nothing is left).
    if let Some(dot) = s.find('.') {
        let end = s[dot..]
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .map(|i| dot + i)
            .unwrap_or(s.len());
        let frac = s[dot + 1..end].trim_end_matches('0').to_string();
        let tail = s[end..].to_string();
        s.truncate(dot);
        if !frac.is_empty() {
            s.push('.');
            s.push_str(&frac);
        }
        s.push_str(&tail);
    }
    quoted(&s)
}

/// Looks a field up the way Go does: exact name first, then case-insensitively.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).or_else(|| {
        obj.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
            .next_back()
    })
}

fn str_field(obj: &Map<String, Value>, name: &str) -> String {
    field(obj, name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn bool_field(obj: &Map<String, Value>, name: &str) -> bool {
    field(obj, name).and_then(Value::as_bool).unwrap_or(false)
}

fn int_field(obj: &Map<String, Value>, name: &str) -> Option<i64> {
    field(obj, name).and_then(Value::as_i64)
}

/// `[]string`: `null` when absent, Go's `strslice.StrSlice` also accepts a string.
fn string_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::Array(a) => Some(
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect(),
        ),
        Value::String(s) => Some(vec![s.clone()]),
        _ => None,
    }
}

fn encode_list(out: &mut String, list: &Option<Vec<String>>) {
    match list {
        None => out.push_str("null"),
        Some(l) => {
            out.push('[');
            for (i, s) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, s);
            }
            out.push(']');
        }
    }
}

/// A Go map (sorted keys); `values` decides how each value is encoded.
fn encode_map(out: &mut String, v: Option<&Value>, set: bool) -> bool {
    let Some(Value::Object(m)) = v else {
        out.push_str("null");
        return false;
    };
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    out.push('{');
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(out, k);
        out.push(':');
        if set {
            out.push_str("{}");
        } else {
            string(out, m[*k].as_str().unwrap_or_default());
        }
    }
    out.push('}');
    true
}

fn map_len(v: Option<&Value>) -> usize {
    match v {
        Some(Value::Object(m)) => m.len(),
        _ => 0,
    }
}

/// Encodes a moby 20.10 `container.Config` from its JSON (null → zero value).
pub(crate) fn container_config(v: Option<&Value>) -> String {
    let empty = Map::new();
    let obj = match v {
        Some(Value::Object(m)) => m,
        _ => &empty,
    };
    let mut out = String::from("{");
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        string(out, k);
        out.push(':');
    };
    for name in ["Hostname", "Domainname", "User"] {
        key(&mut out, name);
        string(&mut out, &str_field(obj, name));
    }
    for name in ["AttachStdin", "AttachStdout", "AttachStderr"] {
        key(&mut out, name);
        out.push_str(if bool_field(obj, name) {
            "true"
        } else {
            "false"
        });
    }
    if map_len(field(obj, "ExposedPorts")) > 0 {
        key(&mut out, "ExposedPorts");
        encode_map(&mut out, field(obj, "ExposedPorts"), true);
    }
    for name in ["Tty", "OpenStdin", "StdinOnce"] {
        key(&mut out, name);
        out.push_str(if bool_field(obj, name) {
            "true"
        } else {
            "false"
        });
    }
    key(&mut out, "Env");
    encode_list(&mut out, &string_list(field(obj, "Env")));
    key(&mut out, "Cmd");
    encode_list(&mut out, &string_list(field(obj, "Cmd")));
    if let Some(Value::Object(h)) = field(obj, "Healthcheck") {
        key(&mut out, "Healthcheck");
        out.push('{');
        let mut parts = Vec::new();
        if let Some(t) = string_list(field(h, "Test")).filter(|t| !t.is_empty()) {
            let mut s = String::from("\"Test\":");
            encode_list(&mut s, &Some(t));
            parts.push(s);
        }
        for name in ["Interval", "Timeout", "StartPeriod", "Retries"] {
            if let Some(n) = int_field(h, name).filter(|n| *n != 0) {
                parts.push(format!("\"{name}\":{n}"));
            }
        }
        out.push_str(&parts.join(","));
        out.push('}');
    }
    if bool_field(obj, "ArgsEscaped") {
        key(&mut out, "ArgsEscaped");
        out.push_str("true");
    }
    key(&mut out, "Image");
    string(&mut out, &str_field(obj, "Image"));
    key(&mut out, "Volumes");
    encode_map(&mut out, field(obj, "Volumes"), true);
    key(&mut out, "WorkingDir");
    string(&mut out, &str_field(obj, "WorkingDir"));
    key(&mut out, "Entrypoint");
    encode_list(&mut out, &string_list(field(obj, "Entrypoint")));
    if bool_field(obj, "NetworkDisabled") {
        key(&mut out, "NetworkDisabled");
        out.push_str("true");
    }
    let mac = str_field(obj, "MacAddress");
    if !mac.is_empty() {
        key(&mut out, "MacAddress");
        string(&mut out, &mac);
    }
    key(&mut out, "OnBuild");
    encode_list(&mut out, &string_list(field(obj, "OnBuild")));
    key(&mut out, "Labels");
    encode_map(&mut out, field(obj, "Labels"), false);
    let stop = str_field(obj, "StopSignal");
    if !stop.is_empty() {
        key(&mut out, "StopSignal");
        string(&mut out, &stop);
    }
    if let Some(n) = int_field(obj, "StopTimeout") {
        key(&mut out, "StopTimeout");
        out.push_str(&n.to_string());
    }
    if let Some(shell) = string_list(field(obj, "Shell")).filter(|s| !s.is_empty()) {
        key(&mut out, "Shell");
        encode_list(&mut out, &Some(shell));
    }
    out.push('}');
    out
}

/// moby's `image.V1Image` as JSON members in declaration order (`id` and
/// `parent` excluded: the caller adds them).
#[derive(Debug, Clone)]
pub(crate) struct V1Image {
    members: Vec<(&'static str, String)>,
}

impl V1Image {
    /// The v1 image of a layer below the top one: `created` = the Unix epoch,
    /// zero container config, nothing else.
    pub(crate) fn empty() -> Self {
        V1Image {
            members: vec![
                ("created", quoted("1970-01-01T00:00:00Z")),
                ("container_config", container_config(None)),
            ],
        }
    }

    /// The v1 image embedded in an image config (the top layer's).
    pub(crate) fn from_config(config: &Value) -> Self {
        let empty = Map::new();
        let obj = config.as_object().unwrap_or(&empty);
        let mut members = Vec::new();
        let s = |name: &str| str_field(obj, name);
        if !s("comment").is_empty() {
            members.push(("comment", quoted(&s("comment"))));
        }
        let created = field(obj, "created")
            .and_then(Value::as_str)
            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
            .map(|t| time(&t))
            .unwrap_or_else(|| quoted("0001-01-01T00:00:00Z"));
        members.push(("created", created));
        if !s("container").is_empty() {
            members.push(("container", quoted(&s("container"))));
        }
        members.push((
            "container_config",
            container_config(field(obj, "container_config")),
        ));
        for name in ["docker_version", "author"] {
            if !s(name).is_empty() {
                members.push((name, quoted(&s(name))));
            }
        }
        if let Some(c @ Value::Object(_)) = field(obj, "config") {
            members.push(("config", container_config(Some(c))));
        }
        for name in ["architecture", "variant"] {
            if !s(name).is_empty() {
                members.push((name, quoted(&s(name))));
            }
        }
        if !s("os").is_empty() {
            members.push(("os", quoted(&s("os"))));
        }
        if let Some(n) = int_field(obj, "Size").filter(|n| *n != 0) {
            members.push(("Size", n.to_string()));
        }
        V1Image { members }
    }

    /// Sets `os` (moby sets it on lower layers after computing their id).
    pub(crate) fn with_os(mut self, os: &str) -> Self {
        self.members.retain(|(k, _)| *k != "os" && *k != "Size");
        if !os.is_empty() {
            // `os` goes before `Size`, which lower layers never have.
            self.members.push(("os", quoted(os)));
        }
        self
    }

    /// moby's `v1.CreateID`: sha256 of the members plus `layer_id` and
    /// `parent`, keys sorted.
    pub(crate) fn create_id(&self, layer_id: &Digest, parent: Option<&Digest>) -> Digest {
        let mut members: Vec<(&str, String)> =
            self.members.iter().map(|(k, v)| (*k, v.clone())).collect();
        members.push(("layer_id", quoted(&layer_id.to_string())));
        if let Some(p) = parent {
            members.push(("parent", quoted(&p.to_string())));
        }
        members.sort_by(|a, b| a.0.cmp(b.0));
        Digest::of(object(&members).as_bytes())
    }

    /// The `<layer-id>/json` file: `id`, `parent` (hex), then the members.
    pub(crate) fn to_json(&self, id: &Digest, parent: Option<&Digest>) -> String {
        let mut members = vec![("id", quoted(id.hex()))];
        if let Some(p) = parent {
            members.push(("parent", quoted(p.hex())));
        }
        members.extend(self.members.iter().map(|(k, v)| (*k, v.clone())));
        object(&members)
    }
}

fn object(members: &[(&str, String)]) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, k);
        out.push(':');
        out.push_str(v);
    }
    out.push('}');
    out
}

/// The v1 layer ids `docker save` gives an image's layers, bottom first
/// (moby `tarexport.saveImage`). `chain_ids[i]` is the chain id of layers
/// `0..=i`.
pub(crate) fn v1_layer_ids(config: &Value, chain_ids: &[Digest]) -> Vec<(Digest, String)> {
    let os = config
        .get("os")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut out: Vec<(Digest, String)> = Vec::new();
    let mut parent: Option<Digest> = None;
    for (i, chain) in chain_ids.iter().enumerate() {
        let v1 = if i + 1 == chain_ids.len() {
            V1Image::from_config(config)
        } else {
            V1Image::empty()
        };
        let id = v1.create_id(chain, parent.as_ref());
        let json = if i + 1 == chain_ids.len() {
            v1.to_json(&id, parent.as_ref())
        } else {
            v1.with_os(&os).to_json(&id, parent.as_ref())
        };
        out.push((id.clone(), json));
        parent = Some(id);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_string_escapes() {
        let mut s = String::new();
        string(&mut s, "a<b>&\"\\\n\t\u{1}\u{8}\u{2028}é");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\t\u0001\u0008\u2028é""#);
    }

    #[test]
    fn go_times() {
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.120000Z").unwrap();
        assert_eq!(time(&t), "\"2024-01-02T03:04:05.12Z\"");
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05+00:00").unwrap();
        assert_eq!(time(&t), "\"2024-01-02T03:04:05Z\"");
        let t = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.000000001+02:00").unwrap();
        assert_eq!(time(&t), "\"2024-01-02T03:04:05.000000001+02:00\"");
    }

    #[test]
    fn zero_container_config() {
        assert_eq!(
            container_config(None),
            r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#
        );
    }

    #[test]
    fn full_container_config() {
        let v: Value = serde_json::from_str(
            r#"{"Cmd":"sh","Env":[],"Labels":{"b":"2","a":"1"},"ExposedPorts":{"80/tcp":{}},
                "Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"StopTimeout":0,
                "Shell":[],"Volumes":{},"user":"u","Unknown":1}"#,
        )
        .unwrap();
        assert_eq!(
            container_config(Some(&v)),
            r#"{"Hostname":"","Domainname":"","User":"u","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"ExposedPorts":{"80/tcp":{}},"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":[],"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000},"Image":"","Volumes":{},"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"a":"1","b":"2"},"StopTimeout":0}"#
        );
    }

    #[test]
    fn v1_ids_chain() {
        let config: Value = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","created":"2024-01-01T00:00:00Z",
                "config":{"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        let a = Digest::of(b"a");
        let b = Digest::of(b"b");
        let ids = v1_layer_ids(&config, &[a.clone(), b.clone()]);
        assert_eq!(ids.len(), 2);
        // Lower layer: the id has no "os", the json has.
        let lower = format!(
            r#"{{"container_config":{},"created":"1970-01-01T00:00:00Z","layer_id":"{a}"}}"#,
            container_config(None)
        );
        assert_eq!(ids[0].0, Digest::of(lower.as_bytes()));
        assert!(ids[0].1.ends_with(r#","os":"linux"}"#));
        assert!(ids[0]
            .1
            .starts_with(&format!(r#"{{"id":"{}","created""#, ids[0].0.hex())));
        let top = format!(
            r#"{{"architecture":"amd64","config":{},"container_config":{},"created":"2024-01-01T00:00:00Z","layer_id":"{b}","os":"linux","parent":"{}"}}"#,
            container_config(config.get("config")),
            container_config(None),
            ids[0].0
        );
        assert_eq!(ids[1].0, Digest::of(top.as_bytes()));
        assert!(ids[1].1.starts_with(&format!(
            r#"{{"id":"{}","parent":"{}""#,
            ids[1].0.hex(),
            ids[0].0.hex()
        )));
    }
}
