//! `login`, `logout`, and the credentials they keep: docker's own file,
//! `$DOCKER_CONFIG/config.json` (default `~/.docker/config.json`), `auths.<server>.auth` =
//! base64 of `user:password`, so a docker user's logins work in berth and berth's in docker.
//! Pulls and pushes send the credentials of their registry as `X-Registry-Auth`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use base64::Engine;
use serde_json::{json, Value};

use crate::cli::{LoginArgs, LogoutArgs, SearchArgs};
use crate::client::Client;
use crate::error::{CliError, Result};

/// Docker Hub's server address, as docker writes it.
const HUB: &str = "https://index.docker.io/v1/";

fn config_path() -> PathBuf {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".docker")
        });
    dir.join("config.json")
}

fn read_config() -> Result<Value> {
    let p = config_path();
    match std::fs::read(&p) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(json!({})),
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| CliError::msg(format!("loading config file {}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(CliError::msg(format!("{}: {e}", p.display()))),
    }
}

/// Writes the file whole under a temporary name, then renames it (mode 0600; its directory,
/// when made here, 0700). A symlinked config.json is written where it points, as docker does.
fn write_config(v: &Value) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let p = config_path();
    let p = std::fs::canonicalize(&p).unwrap_or(p);
    let dir = p.parent().unwrap_or(std::path::Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| CliError::msg(format!("{}: {e}", dir.display())))?;
    let tmp = dir.join(format!(".config.json.{}", std::process::id()));
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &p));
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CliError::msg(format!("saving credentials to {}: {e}", p.display()))
    })
}

/// The key a server's credentials are kept under: Docker Hub's address, or `host[:port]`.
fn server_key(server: &str) -> String {
    let host = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    match host.as_str() {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => HUB.to_string(),
        _ => host,
    }
}

/// The registry of an image reference: its first component when that names a host.
fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            server_key(first)
        }
        _ => HUB.to_string(),
    }
}

/// The `X-Registry-Auth` header for an image's registry, if logged in to it.
pub fn auth_header(image: &str) -> Option<String> {
    let key = registry_of(image);
    let cfg = read_config().ok()?;
    let auths = cfg.get("auths")?.as_object()?;
    // docker also finds entries written with a scheme (`http://host:5000`)
    let entry = auths.get(&key).or_else(|| {
        auths
            .iter()
            .find(|(k, _)| server_key(k) == key)
            .map(|(_, v)| v)
    })?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(entry.get("auth")?.as_str()?)
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (user, password) = raw.split_once(':')?;
    if password.is_empty() {
        // (an identity-token login: berth cannot use those)
        return None;
    }
    let header = json!({"username": user, "password": password, "serveraddress": key});
    Some(base64::engine::general_purpose::URL_SAFE.encode(header.to_string()))
}

fn prompt(label: &str) -> Result<String> {
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::msg(e.to_string()))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A password read from the terminal without echo (or a plain line when stdin is no tty).
fn prompt_password() -> Result<String> {
    use nix::sys::termios::{tcgetattr, tcsetattr, LocalFlags, SetArg};
    let stdin = std::io::stdin();
    let saved = tcgetattr(&stdin).ok();
    if let Some(t) = &saved {
        let mut quiet = t.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
    }
    let r = prompt("Password: ");
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
        eprintln!();
    }
    r
}

/// `berth login [-u USER] [-p PASSWORD | --password-stdin] [SERVER]`.
pub async fn login(c: &Client, a: LoginArgs) -> Result<i32> {
    let server = a.server.clone().unwrap_or_else(|| HUB.to_string());
    let key = server_key(&server);
    // A credential helper keeps docker's passwords out of this file: berth cannot use one
    // yet, and will not write a password in plain text where its owner chose a helper.
    let cfg = read_config()?;
    let helper = cfg["credHelpers"][&key]
        .as_str()
        .or_else(|| cfg["credsStore"].as_str())
        .filter(|h| !h.is_empty());
    if let Some(h) = helper {
        return Err(CliError::msg(format!(
            "{} uses the credential helper docker-credential-{h}, which berth cannot use yet: log in with docker",
            config_path().display()
        )));
    }
    if a.password.is_some() && a.password_stdin {
        return Err(CliError::msg(
            "--password and --password-stdin are mutually exclusive",
        ));
    }
    if a.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    // docker's check: prompts need a terminal (`cat | docker login`)
    if a.password.is_none() && !a.password_stdin && !crate::stream::is_tty(0) {
        return Err(CliError::msg(
            "Error: Cannot perform an interactive login from a non TTY device",
        ));
    }
    let username = match a.username.clone().filter(|u| !u.is_empty()) {
        Some(u) => u,
        None if a.password_stdin => {
            return Err(CliError::msg(
                "Must provide --username with --password-stdin",
            ))
        }
        None => prompt("Username: ")?,
    };
    if username.is_empty() {
        return Err(CliError::msg("Error: Non-null Username Required"));
    }
    let password = if a.password_stdin {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| CliError::msg(e.to_string()))?;
        s.trim_end_matches(['\n', '\r']).to_string()
    } else {
        match a.password.clone() {
            Some(p) => p,
            None => prompt_password()?,
        }
    };
    if password.is_empty() {
        return Err(CliError::msg("Error: Non-null Password Required"));
    }
    let resp: Value = c
        .post_json(
            "/auth",
            &crate::client::Query::new(),
            &json!({"username": username, "password": password, "serveraddress": key}),
        )
        .await?;
    let mut cfg = read_config()?;
    if !cfg.is_object() {
        cfg = json!({});
    }
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    cfg["auths"][&key] = json!({ "auth": auth });
    write_config(&cfg)?;
    eprintln!(
        "WARNING! Your password will be stored unencrypted in {}.",
        config_path().display()
    );
    println!(
        "{}",
        resp.get("Status")
            .and_then(Value::as_str)
            .unwrap_or("Login Succeeded")
    );
    Ok(0)
}

/// `berth logout [SERVER]`.
pub async fn logout(a: LogoutArgs) -> Result<i32> {
    let key = server_key(a.server.as_deref().unwrap_or(HUB));
    let mut cfg = read_config()?;
    // every spelling of the server (`host`, `http://host`, …)
    let removed = cfg
        .get_mut("auths")
        .and_then(Value::as_object_mut)
        .map(|m| {
            let keys: Vec<String> = m.keys().filter(|k| server_key(k) == key).cloned().collect();
            for k in &keys {
                m.remove(k);
            }
            !keys.is_empty()
        })
        .unwrap_or(false);
    if !removed {
        println!("Not logged in to {key}");
        return Ok(0);
    }
    println!("Removing login credentials for {key}");
    write_config(&cfg)?;
    Ok(0)
}

const SEARCH_HEADERS: &[(&str, &str)] = &[
    ("Name", "NAME"),
    ("Description", "DESCRIPTION"),
    ("StarCount", "STARS"),
    ("IsOfficial", "OFFICIAL"),
    ("IsAutomated", "AUTOMATED"),
];

/// What `search` prints for `GET /images/search`'s answer.
pub fn search_output(
    results: &[Value],
    no_trunc: bool,
    format: Option<&str>,
) -> std::result::Result<String, String> {
    use gtmpl::Value as T;
    let ok = |b: bool| if b { "[OK]" } else { "" }.to_string();
    let rows: Vec<std::collections::HashMap<String, T>> = results
        .iter()
        .map(|r| {
            let desc = r["description"].as_str().unwrap_or("").replace('\n', " ");
            let desc = if no_trunc {
                desc
            } else {
                crate::format::units::ellipsis(&desc, 45)
            };
            [
                ("Name", r["name"].as_str().unwrap_or("").to_string()),
                ("Description", desc),
                (
                    "StarCount",
                    r["star_count"].as_u64().unwrap_or(0).to_string(),
                ),
                (
                    "IsOfficial",
                    ok(r["is_official"].as_bool().unwrap_or(false)),
                ),
                (
                    "IsAutomated",
                    ok(r["is_automated"].as_bool().unwrap_or(false)),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), T::String(v)))
            .collect()
        })
        .collect();
    let format = match format {
        None | Some("") | Some("table") => {
            "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t{{.IsAutomated}}"
        }
        Some("json") => "{{json .}}",
        Some(f) => f,
    };
    crate::format::template::render_rows("*formatter.searchContext", format, SEARCH_HEADERS, &rows)
}

/// `berth search [--limit N] [-f FILTER] [--no-trunc] [--format F] TERM`.
pub async fn search(c: &Client, a: SearchArgs) -> Result<i32> {
    let filters = crate::opts::filters_json(&a.filter).map_err(CliError::msg)?;
    let q = crate::client::Query::new()
        .add("term", a.term.clone())
        .add("limit", a.limit.to_string())
        .add_if(filters.is_some(), "filters", filters.unwrap_or_default());
    let auth = auth_header(&format!("{}/x", a.term.split('/').next().unwrap_or("")))
        .filter(|_| a.term.contains('/'));
    let resp = c
        .send_with_registry_auth(
            http::Method::GET,
            "/images/search",
            &q,
            crate::client::empty_body(),
            auth.as_deref(),
        )
        .await?;
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map_err(|e| CliError::msg(e.to_string()))?
        .to_bytes();
    let results: Vec<Value> = serde_json::from_slice(&body)
        .map_err(|e| CliError::msg(format!("error decoding response: {e}")))?;
    print!(
        "{}",
        search_output(&results, a.no_trunc, a.format.as_deref()).map_err(CliError::msg)?
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_name_their_registry() {
        assert_eq!(registry_of("busybox"), HUB);
        assert_eq!(registry_of("library/busybox:1"), HUB);
        assert_eq!(registry_of("docker.io/x/y"), HUB);
        assert_eq!(registry_of("127.0.0.1:5000/a/b:1"), "127.0.0.1:5000");
        assert_eq!(registry_of("localhost/a"), "localhost");
        assert_eq!(
            server_key("http://reg.example:5000/v2/"),
            "reg.example:5000"
        );
    }
}
