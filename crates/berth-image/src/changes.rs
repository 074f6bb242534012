//! Dockerfile instructions accepted by `docker import --change` / `docker commit --change`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::ContainerConfig;

/// Errors from parsing `--change` instructions (Docker's wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangesError {
    /// Not a Dockerfile instruction at all.
    #[error("dockerfile parse error line {line}: unknown instruction: {instruction}")]
    Unknown { line: usize, instruction: String },
    /// A Dockerfile instruction that `--change` does not allow.
    #[error("{0} is not a valid change command")]
    NotAllowed(String),
    /// Bad arguments.
    #[error("dockerfile parse error line {line}: {message}")]
    Invalid { line: usize, message: String },
}

const KNOWN_NOT_ALLOWED: &[&str] = &["add", "arg", "copy", "from", "maintainer", "run", "shell"];

/// Applies `changes` (one instruction each; `\`-newline continuations allowed)
/// to `config`.
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<(), ChangesError> {
    let mut cmd_set = false;
    for (i, change) in changes.iter().enumerate() {
        let line = i + 1;
        let joined = change.replace("\\\r\n", "").replace("\\\n", "");
        let text = joined.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        apply_one(config, text, line, &mut cmd_set)?;
    }
    Ok(())
}

fn split_instruction(text: &str) -> (String, &str) {
    let text = text.trim_start();
    let end = text.find(char::is_whitespace).unwrap_or(text.len());
    (text[..end].to_lowercase(), text[end..].trim())
}

fn invalid(line: usize, message: impl Into<String>) -> ChangesError {
    ChangesError::Invalid {
        line,
        message: message.into(),
    }
}

fn apply_one(
    config: &mut ContainerConfig,
    text: &str,
    line: usize,
    cmd_set: &mut bool,
) -> Result<(), ChangesError> {
    let (name, rest) = split_instruction(text);
    let upper = name.to_uppercase();
    let need_args = |rest: &str| {
        if rest.is_empty() {
            Err(invalid(
                line,
                format!("{upper} requires at least one argument"),
            ))
        } else {
            Ok(())
        }
    };
    match name.as_str() {
        "cmd" => {
            need_args(rest)?;
            config.cmd = Some(parse_command(rest));
            *cmd_set = true;
        }
        "entrypoint" => {
            need_args(rest)?;
            config.entrypoint = Some(parse_command(rest));
            // As in a Dockerfile: ENTRYPOINT resets CMD unless CMD was set here.
            if !*cmd_set {
                config.cmd = None;
            }
        }
        "env" => {
            need_args(rest)?;
            let pairs = parse_key_values(rest, "ENV", line)?;
            let env = config.env.get_or_insert_with(Vec::new);
            for (k, v) in pairs {
                let entry = format!("{k}={v}");
                match env
                    .iter_mut()
                    .find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()) || **e == k)
                {
                    Some(existing) => *existing = entry,
                    None => env.push(entry),
                }
            }
        }
        "label" => {
            need_args(rest)?;
            let pairs = parse_key_values(rest, "LABEL", line)?;
            let labels = config.labels.get_or_insert_with(BTreeMap::new);
            labels.extend(pairs);
        }
        "expose" => {
            need_args(rest)?;
            let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
            for word in split_words(rest, line)? {
                for port in parse_port_spec(&word).map_err(|m| invalid(line, m))? {
                    ports.insert(port, Value::Object(Default::default()));
                }
            }
        }
        "user" => {
            let words = split_words(rest, line)?;
            if words.len() != 1 {
                return Err(invalid(line, "USER requires exactly one argument"));
            }
            config.user = Some(words.into_iter().next().unwrap_or_default());
        }
        "volume" => {
            need_args(rest)?;
            let vols: Vec<String> = match parse_json_array(rest) {
                Some(v) => v,
                None => split_words(rest, line)?,
            };
            let map = config.volumes.get_or_insert_with(BTreeMap::new);
            for v in vols {
                let v = v.trim().to_string();
                if v.is_empty() {
                    return Err(invalid(line, "VOLUME specified can not be an empty string"));
                }
                map.insert(v, Value::Object(Default::default()));
            }
        }
        "workdir" => {
            let words = split_words(rest, line)?;
            if words.len() != 1 {
                return Err(invalid(line, "WORKDIR requires exactly one argument"));
            }
            let dir = &words[0];
            let joined = if dir.starts_with('/') {
                dir.clone()
            } else {
                let base = config.working_dir.clone().unwrap_or_default();
                format!("{}/{dir}", if base.is_empty() { "" } else { base.as_str() })
            };
            config.working_dir = Some(clean_path(&joined));
        }
        "stopsignal" => {
            let words = split_words(rest, line)?;
            if words.len() != 1 {
                return Err(invalid(line, "STOPSIGNAL requires exactly one argument"));
            }
            config.stop_signal = Some(words[0].clone());
        }
        "onbuild" => {
            need_args(rest)?;
            let (trigger, _) = split_instruction(rest);
            match trigger.as_str() {
                "onbuild" => {
                    return Err(invalid(
                        line,
                        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                    ))
                }
                "from" | "maintainer" => {
                    return Err(invalid(
                        line,
                        format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            trigger.to_uppercase()
                        ),
                    ))
                }
                _ => {}
            }
            config
                .on_build
                .get_or_insert_with(Vec::new)
                .push(rest.to_string());
        }
        "healthcheck" => {
            need_args(rest)?;
            config.healthcheck = Some(parse_healthcheck(rest, line)?);
        }
        n if KNOWN_NOT_ALLOWED.contains(&n) => return Err(ChangesError::NotAllowed(name)),
        _ => {
            return Err(ChangesError::Unknown {
                line,
                instruction: upper,
            })
        }
    }
    Ok(())
}

/// JSON (exec) form, or shell form wrapped in `/bin/sh -c`.
fn parse_command(rest: &str) -> Vec<String> {
    parse_json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()])
}

fn parse_json_array(rest: &str) -> Option<Vec<String>> {
    if !rest.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(rest).ok()
}

/// Splits on whitespace honouring single/double quotes and backslash escapes.
fn split_words(s: &str, line: usize) -> Result<Vec<String>, ChangesError> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err(invalid(
                            line,
                            "unexpected end of statement while looking for matching single-quote",
                        )),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err(invalid(line, "unexpected end of statement while looking for matching double-quote")),
                        },
                        Some(c) => cur.push(c),
                        None => return Err(invalid(line, "unexpected end of statement while looking for matching double-quote")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(c) = chars.next() {
                    cur.push(c);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// `K=V K2="v 2"` or the legacy `K V with spaces` form.
fn parse_key_values(
    rest: &str,
    instruction: &str,
    line: usize,
) -> Result<Vec<(String, String)>, ChangesError> {
    let first_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
    let first = &rest[..first_end];
    if !first.contains('=') {
        // Legacy form: the first word is the key, the rest is the value.
        let key = split_words(first, line)?.join("");
        let value = rest[first_end..].trim();
        if value.is_empty() {
            return Err(invalid(
                line,
                format!("{instruction} must have two arguments"),
            ));
        }
        let value = split_words(value, line)?.join(" ");
        return Ok(vec![(key, value)]);
    }
    let mut out = Vec::new();
    for word in split_words(rest, line)? {
        let Some((k, v)) = word.split_once('=') else {
            return Err(invalid(
                line,
                format!("Syntax error - can't find = in {word:?}. Must be of the form: name=value"),
            ));
        };
        if k.is_empty() {
            return Err(invalid(
                line,
                format!("{instruction} names can not be blank"),
            ));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// `80`, `80/udp`, `8000-8002/tcp` → `["80/tcp"]`…
fn parse_port_spec(spec: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {ports}"))
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let p = parse(ports)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!("invalid containerPort: {ports}"));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

fn parse_duration_ns(s: &str, line: usize) -> Result<i64, ChangesError> {
    let bad = || invalid(line, format!("time: invalid duration {s:?}"));
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = &rest[unit_end..];
    }
    Ok(total as i64)
}

fn parse_healthcheck(rest: &str, line: usize) -> Result<Value, ChangesError> {
    let mut obj = serde_json::Map::new();
    let mut rest = rest.trim();
    while let Some(flag) = rest.strip_prefix("--") {
        let end = flag.find(char::is_whitespace).unwrap_or(flag.len());
        let (k, v) = flag[..end]
            .split_once('=')
            .ok_or_else(|| invalid(line, format!("invalid flag --{}", &flag[..end])))?;
        let key = match k {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            _ => return Err(invalid(line, format!("unknown flag: {k}"))),
        };
        let value = if key == "Retries" {
            v.parse::<i64>()
                .map_err(|_| invalid(line, format!("invalid retries {v:?}")))?
        } else {
            parse_duration_ns(v, line)?
        };
        obj.insert(key.into(), value.into());
        rest = flag[end..].trim_start();
    }
    let (kind, args) = split_instruction(rest);
    let test: Vec<String> = match kind.as_str() {
        "none" if args.is_empty() => vec!["NONE".into()],
        "cmd" if !args.is_empty() => match parse_json_array(args) {
            Some(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
            None => vec!["CMD-SHELL".into(), args.to_string()],
        },
        _ => {
            return Err(invalid(
                line,
                "Unknown type in HEALTHCHECK (try CMD or NONE)",
            ))
        }
    };
    obj.insert("Test".into(), test.into());
    Ok(Value::Object(obj))
}

/// Lexically cleans an absolute path (like Go's `path.Clean`).
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(changes: &[&str]) -> Result<ContainerConfig, ChangesError> {
        let mut c = ContainerConfig::default();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply_changes(&mut c, &changes)?;
        Ok(c)
    }

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cmd_and_entrypoint() {
        let c = apply(&[r#"CMD ["/bin/echo", "hi"]"#]).unwrap();
        assert_eq!(c.cmd, Some(v(&["/bin/echo", "hi"])));
        let c = apply(&["cmd echo $HOME"]).unwrap();
        assert_eq!(c.cmd, Some(v(&["/bin/sh", "-c", "echo $HOME"])));
        let c = apply(&["CMD [\"a\"]", "ENTRYPOINT [\"/e\"]"]).unwrap();
        assert_eq!(c.cmd, Some(v(&["a"])));
        assert_eq!(c.entrypoint, Some(v(&["/e"])));
        let mut c = ContainerConfig {
            cmd: Some(v(&["old"])),
            ..Default::default()
        };
        apply_changes(&mut c, &["ENTRYPOINT top -b".to_string()]).unwrap();
        assert_eq!(c.entrypoint, Some(v(&["/bin/sh", "-c", "top -b"])));
        assert_eq!(c.cmd, None);
        assert_eq!(
            apply(&["CMD"]).unwrap_err().to_string(),
            "dockerfile parse error line 1: CMD requires at least one argument"
        );
    }

    #[test]
    fn env_forms() {
        let c = apply(&[
            r#"ENV A=1 B="two words" C=three\ words"#,
            "ENV LEGACY some value",
            "ENV A=override",
        ])
        .unwrap();
        assert_eq!(
            c.env,
            Some(v(&[
                "A=override",
                "B=two words",
                "C=three words",
                "LEGACY=some value"
            ]))
        );
        assert!(apply(&["ENV A"]).is_err());
        assert!(apply(&["ENV A=1 junk"]).is_err());
        assert!(apply(&["ENV =x"]).is_err());
        assert!(apply(&[r#"ENV A="unterminated"#]).is_err());
    }

    #[test]
    fn labels_ports_volumes_misc() {
        let c = apply(&[
            r#"LABEL a=b "c d"=e"#,
            "LABEL legacy value here",
            "EXPOSE 80 53/udp 8000-8001",
            r#"VOLUME ["/data", "/logs"]"#,
            "VOLUME /x /y",
            "USER nobody:nogroup",
            "WORKDIR /app",
            "WORKDIR sub/../dir",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN echo hi",
            "HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://localhost/",
        ])
        .unwrap();
        let labels = c.labels.unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["c d"], "e");
        assert_eq!(labels["legacy"], "value here");
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, v(&["53/udp", "80/tcp", "8000/tcp", "8001/tcp"]));
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, v(&["/data", "/logs", "/x", "/y"]));
        assert_eq!(c.user.as_deref(), Some("nobody:nogroup"));
        assert_eq!(c.working_dir.as_deref(), Some("/app/dir"));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGINT"));
        assert_eq!(c.on_build, Some(v(&["RUN echo hi"])));
        let hc = c.healthcheck.unwrap();
        assert_eq!(hc["Interval"], 5_000_000_000i64);
        assert_eq!(hc["Retries"], 3);
        assert_eq!(
            hc["Test"],
            serde_json::json!(["CMD-SHELL", "curl -f http://localhost/"])
        );
        let c = apply(&["WORKDIR rel"]).unwrap();
        assert_eq!(c.working_dir.as_deref(), Some("/rel"));
        assert!(apply(&["EXPOSE abc"])
            .unwrap_err()
            .to_string()
            .contains("invalid containerPort: abc"));
        assert!(apply(&["USER a b"]).is_err());
    }

    #[test]
    fn rejects_unknown_and_disallowed() {
        assert_eq!(
            apply(&["FOO bar"]).unwrap_err().to_string(),
            "dockerfile parse error line 1: unknown instruction: FOO"
        );
        assert_eq!(
            apply(&["CMD x", "RUN echo"]).unwrap_err().to_string(),
            "run is not a valid change command"
        );
        assert!(apply(&["ONBUILD ONBUILD RUN x"]).is_err());
        assert!(apply(&["ONBUILD FROM x"]).is_err());
        // blank lines and comments are ignored
        assert_eq!(
            apply(&["", "  ", "# c"]).unwrap(),
            ContainerConfig::default()
        );
    }
}
