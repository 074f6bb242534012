//! Who may do what: htpasswd (bcrypt) basic auth, or bearer tokens of the Docker token flow,
//! with scopes checked per repository and action.
//!
//! Every request is checked before anything is looked up, so an unauthorized client learns
//! nothing of what exists: it gets the same 401 and `WWW-Authenticate` challenge either way.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::error::{Code, RegistryError};

/// One access a request needs: `repository:<name>:pull`, `registry:catalog:*`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Access {
    pub fn repo(name: &str, actions: &[&str]) -> Access {
        Access {
            kind: "repository".into(),
            name: name.into(),
            actions: actions.iter().map(|a| a.to_string()).collect(),
        }
    }

    pub fn catalog() -> Access {
        Access {
            kind: "registry".into(),
            name: "catalog".into(),
            actions: vec!["*".into()],
        }
    }

    /// `type:name:action,action` as the token flow writes a scope.
    pub fn scope(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }

    /// Parse a scope; names may hold colons (`repository:host:5000/x:pull` does not occur in
    /// practice, but the last colon splits the actions).
    pub fn parse(scope: &str) -> Option<Access> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(Access {
            kind: kind.into(),
            name: name.into(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    /// Whether this (granted) access covers `need`.
    fn covers(&self, need: &Access) -> bool {
        self.kind == need.kind
            && self.name == need.name
            && need
                .actions
                .iter()
                .all(|a| self.actions.iter().any(|g| g == a || g == "*"))
    }
}

/// A token's claims (the Docker token spec).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    #[serde(default)]
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default)]
    pub nbf: u64,
    #[serde(default)]
    pub iat: u64,
    #[serde(default)]
    pub jti: String,
    #[serde(default)]
    pub access: Vec<Access>,
}

/// A key's algorithm, told by trying the key types in turn.
fn decoding_key(
    pem: &[u8],
) -> Result<(jsonwebtoken::DecodingKey, jsonwebtoken::Algorithm), String> {
    use jsonwebtoken::{Algorithm, DecodingKey};
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((k, Algorithm::RS256));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        return Ok((k, Algorithm::ES256));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((k, Algorithm::EdDSA));
    }
    Err("not an RSA, EC P-256 or Ed25519 public key in PEM".into())
}

/// A private key for signing tokens, and its algorithm.
pub fn encoding_key(
    pem: &[u8],
) -> Result<(jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm), String> {
    use jsonwebtoken::{Algorithm, EncodingKey};
    if let Ok(k) = EncodingKey::from_rsa_pem(pem) {
        return Ok((k, Algorithm::RS256));
    }
    if let Ok(k) = EncodingKey::from_ec_pem(pem) {
        return Ok((k, Algorithm::ES256));
    }
    if let Ok(k) = EncodingKey::from_ed_pem(pem) {
        return Ok((k, Algorithm::EdDSA));
    }
    Err("not an RSA, EC P-256 or Ed25519 private key in PEM (PKCS#8 or the key type's own)".into())
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// Sign a token granting `access` to `subject` for `ttl`.
pub fn issue(
    key_pem: &[u8],
    issuer: &str,
    service: &str,
    subject: &str,
    access: Vec<Access>,
    ttl: Duration,
) -> Result<String, String> {
    let (key, alg) = encoding_key(key_pem)?;
    let t = now();
    let claims = Claims {
        iss: issuer.into(),
        sub: subject.into(),
        aud: service.into(),
        exp: t + ttl.as_secs().max(1),
        nbf: t.saturating_sub(10),
        iat: t,
        jti: format!("{:032x}", rand::random::<u128>()),
        access,
    };
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &key).map_err(|e| e.to_string())
}

/// Users and their bcrypt hashes, from an htpasswd file.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// sha256(user:password) of credentials bcrypt accepted recently: bcrypt is slow by design,
    /// and clients send basic credentials with every request.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
}

const VERIFIED_FOR: Duration = Duration::from_secs(300);

impl Htpasswd {
    pub fn load(path: &Path) -> Result<Htpasswd, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read htpasswd file {}: {e}", path.display()))?;
        Htpasswd::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (u, h) = line
                .split_once(':')
                .ok_or_else(|| format!("line {}: not user:hash", i + 1))?;
            if !(h.starts_with("$2y$") || h.starts_with("$2b$") || h.starts_with("$2a$")) {
                return Err(format!("line {}: only bcrypt hashes are supported", i + 1));
            }
            users.insert(u.to_string(), h.to_string());
        }
        Ok(Htpasswd {
            users,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The user whose basic credentials these are, if they are right.
    pub fn check(&self, user: &str, password: &str) -> bool {
        let key: [u8; 32] = sha2::Sha256::digest(format!("{user}:{password}")).into();
        {
            let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            match v.get(&key) {
                Some(t) if t.elapsed() < VERIFIED_FOR => return true,
                Some(_) => {
                    v.remove(&key);
                }
                None => {}
            }
        }
        let ok = self
            .users
            .get(user)
            .is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false));
        if ok {
            let mut v = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if v.len() > 10_000 {
                v.clear();
            }
            v.insert(key, Instant::now());
        }
        ok
    }
}

/// The basic credentials of a request.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (u, p) = s.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// How requests are authenticated.
pub enum Authenticator {
    Htpasswd {
        realm: String,
        users: Htpasswd,
    },
    Token {
        realm: String,
        service: String,
        issuer: String,
        key: jsonwebtoken::DecodingKey,
        alg: jsonwebtoken::Algorithm,
    },
}

impl Authenticator {
    pub fn htpasswd(realm: &str, path: &Path) -> Result<Authenticator, String> {
        Ok(Authenticator::Htpasswd {
            realm: realm.into(),
            users: Htpasswd::load(path)?,
        })
    }

    pub fn token(
        realm: &str,
        service: &str,
        issuer: &str,
        key: &Path,
    ) -> Result<Authenticator, String> {
        let pem = std::fs::read(key)
            .map_err(|e| format!("cannot read the token key {}: {e}", key.display()))?;
        let (key, alg) = decoding_key(&pem).map_err(|e| format!("{}: {e}", key.display()))?;
        Ok(Authenticator::Token {
            realm: realm.into(),
            service: service.into(),
            issuer: issuer.into(),
            key,
            alg,
        })
    }

    fn challenge(&self, need: &[Access], error: Option<&str>) -> String {
        match self {
            Authenticator::Htpasswd { realm, .. } => format!("Basic realm=\"{realm}\""),
            Authenticator::Token { realm, service, .. } => {
                let mut c = format!("Bearer realm=\"{realm}\",service=\"{service}\"");
                if !need.is_empty() {
                    let scopes: Vec<String> = need.iter().map(Access::scope).collect();
                    c.push_str(&format!(",scope=\"{}\"", scopes.join(" ")));
                }
                if let Some(e) = error {
                    c.push_str(&format!(",error=\"{e}\""));
                }
                c
            }
        }
    }

    /// Allow the request, or answer 401 with a challenge for what it needs.
    pub fn authorize(&self, headers: &HeaderMap, need: &[Access]) -> Result<(), RegistryError> {
        match self {
            Authenticator::Htpasswd { users, .. } => match basic_credentials(headers) {
                Some((u, p)) if users.check(&u, &p) => Ok(()),
                Some(_) => Err(RegistryError::unauthorized(
                    "invalid username or password",
                    self.challenge(need, None),
                )),
                None => Err(RegistryError::unauthorized(
                    "authentication required",
                    self.challenge(need, None),
                )),
            },
            Authenticator::Token {
                service,
                issuer,
                key,
                alg,
                ..
            } => {
                let Some(token) = headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| {
                        v.strip_prefix("Bearer ")
                            .or_else(|| v.strip_prefix("bearer "))
                    })
                else {
                    return Err(RegistryError::unauthorized(
                        "authentication required",
                        self.challenge(need, None),
                    ));
                };
                let mut v = jsonwebtoken::Validation::new(*alg);
                v.set_issuer(&[issuer]);
                v.set_audience(&[service]);
                v.validate_nbf = true;
                v.leeway = 30;
                let claims = match jsonwebtoken::decode::<Claims>(token.trim(), key, &v) {
                    Ok(d) => d.claims,
                    Err(e) => {
                        return Err(RegistryError::unauthorized(
                            format!("invalid token: {e}"),
                            self.challenge(need, Some("invalid_token")),
                        ))
                    }
                };
                if need
                    .iter()
                    .all(|n| claims.access.iter().any(|g| g.covers(n)))
                {
                    Ok(())
                } else {
                    Err(RegistryError::unauthorized(
                        "the token does not grant this access",
                        self.challenge(need, Some("insufficient_scope")),
                    ))
                }
            }
        }
    }
}

/// The token endpoint of small setups: users from an htpasswd file get tokens for the scopes
/// they ask (every user may do everything), signed with the registry's key.
pub struct TokenIssuer {
    key_pem: Vec<u8>,
    issuer: String,
    service: String,
    users: Htpasswd,
    ttl: Duration,
}

/// What the token endpoint answers.
#[derive(Debug, Serialize)]
pub struct TokenAnswer {
    pub token: String,
    pub access_token: String,
    pub expires_in: u64,
    pub issued_at: String,
}

impl TokenIssuer {
    pub fn load(
        key: &Path,
        users: &Path,
        issuer: &str,
        service: &str,
    ) -> Result<TokenIssuer, String> {
        let key_pem = std::fs::read(key)
            .map_err(|e| format!("cannot read the signing key {}: {e}", key.display()))?;
        encoding_key(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
        Ok(TokenIssuer {
            key_pem,
            issuer: issuer.into(),
            service: service.into(),
            users: Htpasswd::load(users)?,
            ttl: Duration::from_secs(300),
        })
    }

    /// `GET /auth/token?service=…&scope=…` with basic credentials.
    pub fn answer(
        &self,
        headers: &HeaderMap,
        query: &[(String, String)],
    ) -> Result<TokenAnswer, RegistryError> {
        let challenge = format!("Basic realm=\"{}\"", self.service);
        let Some((user, password)) = basic_credentials(headers) else {
            return Err(RegistryError::unauthorized(
                "credentials required",
                challenge,
            ));
        };
        if !self.users.check(&user, &password) {
            return Err(RegistryError::unauthorized(
                "invalid username or password",
                challenge,
            ));
        }
        if let Some((_, s)) = query.iter().find(|(k, _)| k == "service") {
            if s != &self.service {
                return Err(RegistryError::new(
                    Code::Denied,
                    format!(
                        "this endpoint issues tokens for {:?}, not {s:?}",
                        self.service
                    ),
                ));
            }
        }
        let access: Vec<Access> = query
            .iter()
            .filter(|(k, _)| k == "scope")
            .flat_map(|(_, v)| v.split(' ').filter_map(Access::parse).collect::<Vec<_>>())
            .collect();
        let token = issue(
            &self.key_pem,
            &self.issuer,
            &self.service,
            &user,
            access,
            self.ttl,
        )
        .map_err(|e| RegistryError::new(Code::Unknown, e))?;
        Ok(TokenAnswer {
            access_token: token.clone(),
            token,
            expires_in: self.ttl.as_secs(),
            issued_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let a = Access::parse("repository:a/b:pull,push").unwrap();
        assert_eq!(a, Access::repo("a/b", &["pull", "push"]));
        assert_eq!(a.scope(), "repository:a/b:pull,push");
        assert!(a.covers(&Access::repo("a/b", &["pull"])));
        assert!(!a.covers(&Access::repo("a/b", &["delete"])));
        assert!(!a.covers(&Access::repo("a/c", &["pull"])));
        let star = Access::parse("repository:a/b:*").unwrap();
        assert!(star.covers(&Access::repo("a/b", &["pull", "push", "delete"])));
        assert!(Access::parse("nonsense").is_none());
    }

    #[test]
    fn htpasswd_checks_bcrypt_and_remembers() {
        let h = bcrypt::hash("s3cret", 4).unwrap();
        let users = Htpasswd::parse(&format!("# users\nalice:{h}\n")).unwrap();
        assert!(users.check("alice", "s3cret"));
        assert!(users.check("alice", "s3cret"), "from the cache");
        assert!(!users.check("alice", "wrong"));
        assert!(!users.check("bob", "s3cret"));
        assert!(Htpasswd::parse("carol:{SHA}abc\n").is_err());
        assert!(Htpasswd::parse("no colon\n").is_err());
    }
}
