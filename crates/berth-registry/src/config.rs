//! The registry's configuration: a YAML file in one of two shapes, read into [`Settings`].
//!
//! berth's own shape has top-level sections ("flavors"); the one in use is named by
//! `SETTINGS_FLAVOR` (default `dev`) and merged over `common`. Any value may be written
//! `_env:VARIABLE[:DEFAULT]`.
//!
//! ```yaml
//! common:
//!   loglevel: info
//!   storage: local                 # or s3, or azure
//!   storage_path: /var/lib/berth/registry
//!   http: { addr: ":5000", tls: { certificate: cert.pem, key: key.pem } }
//!   auth: { htpasswd: { realm: berth, path: /etc/berth/htpasswd } }
//!   # or bearer tokens: checked with publickey (or rootcertbundle); with signingkey and
//!   # htpasswd, the registry also issues them itself at /auth/token
//!   # auth: { token: { realm: "http://host:5000/auth/token", service: reg, issuer: berth,
//!   #                  publickey: pub.pem, signingkey: key.pem, htpasswd: users } }
//!   delete: true
//!   readonly: false
//! prod:
//!   storage: s3
//!   s3_bucket: _env:S3_BUCKET
//!   s3_region: _env:S3_REGION:us-east-1
//!   s3_endpoint: _env:S3_ENDPOINT
//!   s3_access_key: _env:AWS_ACCESS_KEY_ID
//!   s3_secret_key: _env:AWS_SECRET_ACCESS_KEY
//!   proxy: { remoteurl: "https://registry-1.docker.io" }
//! azure:
//!   storage: azure
//!   azure_account: _env:AZURE_STORAGE_ACCOUNT
//!   azure_container: registry
//!   azure_key: _env:AZURE_STORAGE_KEY
//!   azure_endpoint: _env:AZURE_ENDPOINT:        # Azurite: http://127.0.0.1:10000/<account>
//! ```
//!
//! distribution's `config.yml` (a top-level `version:`) is read too, for the same settings:
//! `log.level`, `storage.filesystem.rootdirectory`, `storage.s3.*`, `storage.azure.*`,
//! `storage.delete.enabled`,
//! `storage.maintenance.readonly.enabled`, `http.addr`, `http.tls.*`, `auth.htpasswd`,
//! `auth.token`, `proxy.*`, with distribution's `REGISTRY_<SECTION>_<KEY>` environment
//! overrides (`REGISTRY_HTTP_ADDR`, `REGISTRY_STORAGE_DELETE_ENABLED`, …).

use std::path::PathBuf;

use serde_yaml_ng::{Mapping, Value};

/// Where blobs and metadata live.
#[derive(Clone, Debug, PartialEq)]
pub enum Storage {
    Local {
        path: PathBuf,
    },
    S3 {
        bucket: String,
        region: Option<String>,
        endpoint: Option<String>,
        access_key: Option<String>,
        secret_key: Option<String>,
        root: Option<String>,
    },
    /// An Azure Blob Storage container.
    Azure {
        account: String,
        container: String,
        key: Option<String>,
        /// The account's URL, when not `https://<account>.blob.core.windows.net`.
        endpoint: Option<String>,
        root: Option<String>,
    },
}

/// Who may do what.
#[derive(Clone, Debug, PartialEq)]
pub enum Auth {
    Htpasswd {
        realm: String,
        path: PathBuf,
    },
    Token {
        realm: String,
        service: String,
        issuer: String,
        /// The public key (or certificate bundle) tokens are checked with.
        rootcertbundle: PathBuf,
        /// berth's own: with a private key and an htpasswd file, the registry also serves the
        /// token endpoint itself at `/auth/token` (for small setups).
        signingkey: Option<PathBuf>,
        htpasswd: Option<PathBuf>,
    },
}

/// A pull-through cache's upstream.
#[derive(Clone, Debug, PartialEq)]
pub struct Proxy {
    pub remoteurl: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Everything the registry is told.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub loglevel: String,
    pub storage: Storage,
    pub addr: String,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub auth: Option<Auth>,
    pub delete: bool,
    pub readonly: bool,
    pub proxy: Option<Proxy>,
}

/// The default data directory.
pub const DEFAULT_STORAGE_PATH: &str = "/var/lib/berth/registry";

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            loglevel: "info".into(),
            storage: Storage::Local {
                path: PathBuf::from(DEFAULT_STORAGE_PATH),
            },
            addr: ":5000".into(),
            tls: None,
            auth: None,
            delete: false,
            readonly: false,
            proxy: None,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("registry configuration: {0}")]
pub struct ConfigError(String);

fn err(s: impl Into<String>) -> ConfigError {
    ConfigError(s.into())
}

/// Read settings from YAML text; `env` looks up environment variables.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let doc: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml_ng::from_str(text).map_err(|e| err(e.to_string()))?
    };
    let Value::Mapping(top) = doc else {
        return Err(err("the file must be a mapping"));
    };
    if top.contains_key("version") || top.is_empty() {
        distribution(top, env)
    } else {
        flavored(top, env)
    }
}

/// Resolve `_env:VAR[:DEFAULT]` strings, everywhere in a value.
fn resolve_env(v: Value, env: &dyn Fn(&str) -> Option<String>) -> Value {
    match v {
        Value::String(s) => match s.strip_prefix("_env:") {
            Some(rest) => {
                let (var, default) = match rest.split_once(':') {
                    Some((v, d)) => (v, Some(d)),
                    None => (rest, None),
                };
                match env(var).or(default.map(str::to_string)) {
                    // the value is YAML too: `true`, `5000`
                    Some(val) => serde_yaml_ng::from_str::<Value>(&val)
                        .ok()
                        .filter(|v| !matches!(v, Value::Mapping(_) | Value::Sequence(_)))
                        .unwrap_or(Value::String(val)),
                    None => Value::Null,
                }
            }
            None => Value::String(s),
        },
        Value::Mapping(m) => Value::Mapping(
            m.into_iter()
                .map(|(k, v)| (k, resolve_env(v, env)))
                .collect(),
        ),
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(|v| resolve_env(v, env)).collect()),
        v => v,
    }
}

/// `over` merged onto `base`, maps deeply.
fn merge(base: Value, over: Value) -> Value {
    match (base, over) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (b, Value::Null) => b,
        (_, o) => o,
    }
}

fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = cur.as_mapping()?.get(*p)?;
    }
    (!cur.is_null()).then_some(cur)
}

fn string(v: &Value, path: &[&str]) -> Result<Option<String>, ConfigError> {
    match get(v, path) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(err(format!("{} must be a string", path.join(".")))),
    }
}

fn boolean(v: &Value, path: &[&str]) -> Result<Option<bool>, ConfigError> {
    match get(v, path) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(Value::String(s)) if s == "true" || s == "false" => Ok(Some(s == "true")),
        Some(_) => Err(err(format!("{} must be true or false", path.join(".")))),
    }
}

fn required(v: &Value, path: &[&str]) -> Result<String, ConfigError> {
    string(v, path)?.ok_or_else(|| err(format!("{} is required", path.join("."))))
}

fn flavored(top: Mapping, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
    let chosen = env("SETTINGS_FLAVOR");
    let flavor = chosen.clone().unwrap_or_else(|| "dev".into());
    let common = top.get("common").cloned().unwrap_or(Value::Null);
    let section = match top.get(flavor.as_str()) {
        Some(s) => s.clone(),
        None if chosen.is_some() => {
            let names: Vec<&str> = top.keys().filter_map(Value::as_str).collect();
            return Err(err(format!(
                "no flavor {flavor:?} (the file has: {})",
                names.join(", ")
            )));
        }
        None => Value::Null,
    };
    let v = resolve_env(merge(common, section), env);
    if !v.is_mapping() && !v.is_null() {
        return Err(err(format!("flavor {flavor:?} must be a mapping")));
    }
    let mut s = Settings::default();
    if let Some(l) = string(&v, &["loglevel"])? {
        s.loglevel = l;
    }
    match string(&v, &["storage"])?.as_deref() {
        None | Some("local") | Some("file") | Some("filesystem") => {
            if let Some(p) = string(&v, &["storage_path"])? {
                s.storage = Storage::Local { path: p.into() };
            }
        }
        Some("s3") => {
            s.storage = Storage::S3 {
                bucket: required(&v, &["s3_bucket"])?,
                region: string(&v, &["s3_region"])?,
                endpoint: string(&v, &["s3_endpoint"])?,
                access_key: string(&v, &["s3_access_key"])?,
                secret_key: string(&v, &["s3_secret_key"])?,
                root: string(&v, &["storage_path"])?,
            }
        }
        Some("azure") => {
            s.storage = Storage::Azure {
                account: required(&v, &["azure_account"])?,
                container: required(&v, &["azure_container"])?,
                key: string(&v, &["azure_key"])?,
                endpoint: string(&v, &["azure_endpoint"])?,
                root: string(&v, &["storage_path"])?,
            }
        }
        Some(o) => return Err(err(format!("unknown storage {o:?} (local, s3 or azure)"))),
    }
    http_auth_proxy(&v, &mut s)?;
    s.delete = match get(&v, &["delete"]) {
        Some(Value::Mapping(_)) => boolean(&v, &["delete", "enabled"])?.unwrap_or(false),
        _ => boolean(&v, &["delete"])?.unwrap_or(false),
    };
    s.readonly = boolean(&v, &["readonly"])?.unwrap_or(false);
    Ok(s)
}

/// `http`, `auth` and `proxy`: the same keys in both shapes.
fn http_auth_proxy(v: &Value, s: &mut Settings) -> Result<(), ConfigError> {
    if let Some(a) = string(v, &["http", "addr"])? {
        s.addr = a;
    }
    if let Some(cert) = string(v, &["http", "tls", "certificate"])? {
        s.tls = Some((cert.into(), required(v, &["http", "tls", "key"])?.into()));
    }
    if get(v, &["auth", "htpasswd"]).is_some() {
        s.auth = Some(Auth::Htpasswd {
            realm: string(v, &["auth", "htpasswd", "realm"])?.unwrap_or_else(|| "berth".into()),
            path: required(v, &["auth", "htpasswd", "path"])?.into(),
        });
    } else if get(v, &["auth", "token"]).is_some() {
        let key = match string(v, &["auth", "token", "publickey"])? {
            Some(k) => k,
            None => required(v, &["auth", "token", "rootcertbundle"])?,
        };
        s.auth = Some(Auth::Token {
            realm: required(v, &["auth", "token", "realm"])?,
            service: required(v, &["auth", "token", "service"])?,
            issuer: required(v, &["auth", "token", "issuer"])?,
            rootcertbundle: key.into(),
            signingkey: string(v, &["auth", "token", "signingkey"])?.map(PathBuf::from),
            htpasswd: string(v, &["auth", "token", "htpasswd"])?.map(PathBuf::from),
        });
        if s.auth.as_ref().is_some_and(|a| {
            matches!(a, Auth::Token { signingkey, htpasswd, .. } if signingkey.is_some() != htpasswd.is_some())
        }) {
            return Err(err("auth.token.signingkey and auth.token.htpasswd go together"));
        }
    }
    if let Some(url) = string(v, &["proxy", "remoteurl"])? {
        s.proxy = Some(Proxy {
            remoteurl: url,
            username: string(v, &["proxy", "username"])?,
            password: string(v, &["proxy", "password"])?,
        });
    }
    Ok(())
}

/// distribution's `REGISTRY_A_B_C=value` overrides, onto the file's tree.
fn env_overrides(mut v: Value, env: &dyn Fn(&str) -> Option<String>) -> Value {
    const KNOWN: &[&[&str]] = &[
        &["log", "level"],
        &["http", "addr"],
        &["http", "tls", "certificate"],
        &["http", "tls", "key"],
        &["storage", "filesystem", "rootdirectory"],
        &["storage", "delete", "enabled"],
        &["storage", "maintenance", "readonly", "enabled"],
        &["storage", "s3", "bucket"],
        &["storage", "s3", "region"],
        &["storage", "s3", "regionendpoint"],
        &["storage", "s3", "accesskey"],
        &["storage", "s3", "secretkey"],
        &["storage", "s3", "rootdirectory"],
        &["storage", "azure", "accountname"],
        &["storage", "azure", "accountkey"],
        &["storage", "azure", "container"],
        &["storage", "azure", "realm"],
        &["storage", "azure", "serviceurl"],
        &["storage", "azure", "rootdirectory"],
        &["auth", "htpasswd", "realm"],
        &["auth", "htpasswd", "path"],
        &["proxy", "remoteurl"],
        &["proxy", "username"],
        &["proxy", "password"],
    ];
    for path in KNOWN {
        let var = format!("REGISTRY_{}", path.join("_").to_uppercase());
        let Some(val) = env(&var) else { continue };
        let mut cur = &mut v;
        for p in *path {
            if !cur.is_mapping() {
                *cur = Value::Mapping(Mapping::new());
            }
            let m = cur.as_mapping_mut().expect("a mapping");
            cur = m
                .entry(Value::String(p.to_string()))
                .or_insert(Value::Mapping(Mapping::new()));
        }
        *cur = Value::String(val);
    }
    v
}

fn distribution(
    top: Mapping,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Settings, ConfigError> {
    let v = env_overrides(Value::Mapping(top), env);
    let mut s = Settings::default();
    if let Some(l) = string(&v, &["log", "level"])? {
        s.loglevel = l;
    }
    if get(&v, &["storage", "s3"]).is_some() {
        s.storage = Storage::S3 {
            bucket: required(&v, &["storage", "s3", "bucket"])?,
            region: string(&v, &["storage", "s3", "region"])?,
            endpoint: string(&v, &["storage", "s3", "regionendpoint"])?,
            access_key: string(&v, &["storage", "s3", "accesskey"])?,
            secret_key: string(&v, &["storage", "s3", "secretkey"])?,
            root: string(&v, &["storage", "s3", "rootdirectory"])?,
        };
    } else if get(&v, &["storage", "azure"]).is_some() {
        let account = required(&v, &["storage", "azure", "accountname"])?;
        // distribution 2.8 has `realm` (the domain after `<account>.blob.`), 3.0 `serviceurl`
        let endpoint = match (
            string(&v, &["storage", "azure", "serviceurl"])?,
            string(&v, &["storage", "azure", "realm"])?,
        ) {
            (Some(url), _) => Some(url),
            (None, Some(realm)) => Some(format!("https://{account}.blob.{realm}")),
            (None, None) => None,
        };
        s.storage = Storage::Azure {
            container: required(&v, &["storage", "azure", "container"])?,
            key: string(&v, &["storage", "azure", "accountkey"])?,
            endpoint,
            root: string(&v, &["storage", "azure", "rootdirectory"])?,
            account,
        };
    } else if let Some(p) = string(&v, &["storage", "filesystem", "rootdirectory"])? {
        s.storage = Storage::Local { path: p.into() };
    }
    http_auth_proxy(&v, &mut s)?;
    s.delete = boolean(&v, &["storage", "delete", "enabled"])?.unwrap_or(false);
    s.readonly = boolean(&v, &["storage", "maintenance", "readonly", "enabled"])?.unwrap_or(false);
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        move |k| pairs.iter().find(|(a, _)| a == k).map(|(_, b)| b.clone())
    }

    const FLAVORED: &str = r#"
common:
  loglevel: info
  storage: local
  storage_path: _env:DATA:/srv/reg
  http: { addr: ":5000" }
dev:
  loglevel: debug
  delete: _env:DEL:true
prod:
  storage: s3
  s3_bucket: _env:BUCKET
  s3_region: eu-west-1
  readonly: true
"#;

    #[test]
    fn flavors_merge_over_common_with_env_values() {
        let s = parse(FLAVORED, &env_of(&[])).unwrap();
        assert_eq!(s.loglevel, "debug");
        assert_eq!(
            s.storage,
            Storage::Local {
                path: "/srv/reg".into()
            }
        );
        assert!(s.delete && !s.readonly);
        assert_eq!(s.addr, ":5000");
        let s = parse(FLAVORED, &env_of(&[("DATA", "/x"), ("DEL", "false")])).unwrap();
        assert_eq!(s.storage, Storage::Local { path: "/x".into() });
        assert!(!s.delete);
        let prod = env_of(&[("SETTINGS_FLAVOR", "prod"), ("BUCKET", "b1")]);
        let s = parse(FLAVORED, &prod).unwrap();
        assert_eq!(s.loglevel, "info");
        assert!(
            matches!(s.storage, Storage::S3 { ref bucket, ref region, .. } if bucket == "b1" && region.as_deref() == Some("eu-west-1"))
        );
        assert!(s.readonly && !s.delete);
        // a flavor that is not there, an s3 storage without its bucket, a bad boolean
        let e = parse(FLAVORED, &env_of(&[("SETTINGS_FLAVOR", "qa")])).unwrap_err();
        assert!(e.to_string().contains("no flavor \"qa\""), "{e}");
        let e = parse(FLAVORED, &env_of(&[("SETTINGS_FLAVOR", "prod")])).unwrap_err();
        assert!(e.to_string().contains("s3_bucket is required"), "{e}");
        assert!(parse("dev: { delete: maybe }", &env_of(&[])).is_err());
        assert!(parse("dev: { storage: floppy }", &env_of(&[])).is_err());
        let s = parse(
            "dev: { storage: azure, azure_account: acct, azure_container: reg, azure_key: _env:K, storage_path: /r }",
            &env_of(&[("K", "a2V5")]),
        )
        .unwrap();
        assert_eq!(
            s.storage,
            Storage::Azure {
                account: "acct".into(),
                container: "reg".into(),
                key: Some("a2V5".into()),
                endpoint: None,
                root: Some("/r".into()),
            }
        );
        let e = parse("dev: { storage: azure, azure_account: a }", &env_of(&[])).unwrap_err();
        assert!(e.to_string().contains("azure_container is required"), "{e}");
        assert!(parse("- a\n- b\n", &env_of(&[])).is_err());
    }

    #[test]
    fn distribution_config_yml_and_its_env_overrides() {
        let text = r#"
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: /var/lib/registry }
  delete: { enabled: true }
http:
  addr: 127.0.0.1:5001
  tls: { certificate: /c.pem, key: /k.pem }
auth:
  htpasswd: { realm: basic-realm, path: /auth/htpasswd }
"#;
        let s = parse(text, &env_of(&[])).unwrap();
        assert_eq!(s.loglevel, "warn");
        assert_eq!(
            s.storage,
            Storage::Local {
                path: "/var/lib/registry".into()
            }
        );
        assert!(s.delete);
        assert_eq!(s.addr, "127.0.0.1:5001");
        assert_eq!(s.tls, Some(("/c.pem".into(), "/k.pem".into())));
        assert!(matches!(s.auth, Some(Auth::Htpasswd { ref realm, .. }) if realm == "basic-realm"));
        let s = parse(
            text,
            &env_of(&[
                ("REGISTRY_HTTP_ADDR", ":6000"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(s.addr, ":6000");
        assert!(!s.delete);
        // no file at all: defaults, with the overrides
        let s = parse(
            "",
            &env_of(&[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/d")]),
        )
        .unwrap();
        assert_eq!(s.storage, Storage::Local { path: "/d".into() });
        assert_eq!(s.addr, ":5000");
        // Azure, as distribution 2.8 writes it (realm) and as 3.0 does (serviceurl)
        let azure = "version: 0.1\nstorage:\n  azure: { accountname: acct, accountkey: a2V5, container: reg, realm: core.chinacloudapi.cn }\n";
        let s = parse(azure, &env_of(&[])).unwrap();
        assert_eq!(
            s.storage,
            Storage::Azure {
                account: "acct".into(),
                container: "reg".into(),
                key: Some("a2V5".into()),
                endpoint: Some("https://acct.blob.core.chinacloudapi.cn".into()),
                root: None,
            }
        );
        let s = parse(
            azure,
            &env_of(&[
                (
                    "REGISTRY_STORAGE_AZURE_SERVICEURL",
                    "http://127.0.0.1:10000/acct",
                ),
                ("REGISTRY_STORAGE_AZURE_ROOTDIRECTORY", "/r"),
            ]),
        )
        .unwrap();
        assert!(
            matches!(s.storage, Storage::Azure { ref endpoint, ref root, .. } if endpoint.as_deref() == Some("http://127.0.0.1:10000/acct") && root.as_deref() == Some("/r")),
            "{:?}",
            s.storage
        );
    }
}
