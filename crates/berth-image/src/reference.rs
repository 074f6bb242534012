//! Image references with Docker's grammar and normalization
//! (`busybox` → `docker.io/library/busybox`, shown as `busybox`).

use std::fmt;
use std::sync::OnceLock;

use berth_content::Digest;
use regex::Regex;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const LOCALHOST: &str = "localhost";
const NAME_TOTAL_LENGTH_MAX: usize = 255;
/// The tag used when none is given.
pub const DEFAULT_TAG: &str = "latest";

/// Reference parse errors, worded like Docker's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// Doesn't match the grammar.
    #[error("invalid reference format")]
    InvalidFormat,
    /// The repository part has uppercase letters.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    /// Uppercase somewhere the grammar can't attribute to the domain.
    #[error("invalid reference format: repository name must be lowercase")]
    ContainsUppercase,
    /// Empty input.
    #[error("repository name must have at least one component")]
    NameEmpty,
    /// Name longer than 255 characters.
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    /// A bare 64-hex string as a repository name.
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    /// A digest that is not a valid sha256 digest.
    #[error("invalid digest format")]
    InvalidDigest,
}

fn reference_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let alnum = "[a-z0-9]+";
        let sep = "(?:[._]|__|[-]+)";
        let path_comp = format!("{alnum}(?:{sep}{alnum})*");
        let domain_comp = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
        let domain_name = format!(r"{domain_comp}(?:\.{domain_comp})*");
        let host = format!("(?:{domain_name}|{ipv6})");
        let domain = format!("{host}(?::[0-9]+)?");
        let name = format!("(?:({domain})/)?({path_comp}(?:/{path_comp})*)");
        let tag = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
        Regex::new(&format!("^{name}(?::({tag}))?(?:@({digest}))?$")).expect("valid regex")
    })
}

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Whether `s` is exactly 64 lowercase hex characters.
fn is_full_hex_id(s: &str) -> bool {
    berth_content::is_sha256_hex(s)
}

fn split_docker_domain(name: &str) -> (String, String) {
    let (mut domain, mut remainder) = match name.find('/') {
        Some(i)
            if name[..i].contains(['.', ':'])
                || &name[..i] == LOCALHOST
                || name[..i].to_lowercase() != name[..i] =>
        {
            (name[..i].to_string(), name[i + 1..].to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_string();
    }
    if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
        remainder = format!("{OFFICIAL_REPO_PREFIX}{remainder}");
    }
    (domain, remainder)
}

impl Reference {
    /// Parses a reference the way `docker` does (`ParseNormalizedNamed`).
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        if is_full_hex_id(s) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (domain, remainder) = split_docker_domain(s);
        let remote = match remainder.find(':') {
            Some(i) => &remainder[..i],
            None => remainder.as_str(),
        };
        if remote.to_lowercase() != remote {
            return Err(ReferenceError::Uppercase(remote.to_string()));
        }
        Self::parse_full(&format!("{domain}/{remainder}"))
    }

    /// Parses and adds the `latest` tag if neither a tag nor a digest is given.
    pub fn parse_tagged(s: &str) -> Result<Self, ReferenceError> {
        Ok(Self::parse(s)?.with_default_tag())
    }

    fn parse_full(s: &str) -> Result<Self, ReferenceError> {
        let re = reference_regex();
        let Some(caps) = re.captures(s) else {
            if s.is_empty() {
                return Err(ReferenceError::NameEmpty);
            }
            if re.is_match(&s.to_lowercase()) {
                return Err(ReferenceError::ContainsUppercase);
            }
            return Err(ReferenceError::InvalidFormat);
        };
        let domain = caps.get(1).map(|m| m.as_str()).unwrap_or_default();
        let path = caps.get(2).map(|m| m.as_str()).unwrap_or_default();
        let name_len = if domain.is_empty() {
            path.len()
        } else {
            domain.len() + 1 + path.len()
        };
        if name_len > NAME_TOTAL_LENGTH_MAX {
            return Err(ReferenceError::NameTooLong);
        }
        let digest = match caps.get(4) {
            Some(d) => Some(Digest::parse(d.as_str()).map_err(|_| ReferenceError::InvalidDigest)?),
            None => None,
        };
        Ok(Reference {
            domain: domain.to_string(),
            path: path.to_string(),
            tag: caps.get(3).map(|m| m.as_str().to_string()),
            digest,
        })
    }

    /// Adds the `latest` tag if neither a tag nor a digest is set.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// Replaces the tag.
    pub fn with_tag(mut self, tag: &str) -> Self {
        self.tag = Some(tag.to_string());
        self
    }

    /// The registry domain (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The full repository name (`docker.io/library/busybox`).
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// The repository name as Docker shows it (`busybox`, `localhost:5000/a/b`).
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix(OFFICIAL_REPO_PREFIX) {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => self.path.clone(),
            }
        } else {
            self.name()
        }
    }

    /// The reference as Docker shows it (`busybox:latest`, `busybox@sha256:…`).
    pub fn familiar(&self) -> String {
        self.render(self.familiar_name())
    }

    fn render(&self, mut s: String) -> String {
        if let Some(tag) = &self.tag {
            s.push(':');
            s.push_str(tag);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    /// The fully-qualified form (`docker.io/library/busybox:latest`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(self.name()))
    }
}

impl std::str::FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "3f57d9401f8d42f986df300f0c69192fc41da28ccc8d797829467780db3dd741";

    fn fam(s: &str) -> String {
        Reference::parse_tagged(s).unwrap().familiar()
    }

    #[test]
    fn normalizes_like_docker() {
        assert_eq!(fam("busybox"), "busybox:latest");
        assert_eq!(fam("docker.io/library/busybox:1"), "busybox:1");
        assert_eq!(fam("index.docker.io/library/busybox"), "busybox:latest");
        assert_eq!(fam("library/busybox:1.36"), "busybox:1.36");
        assert_eq!(fam("docker.io/foo/bar"), "foo/bar:latest");
        assert_eq!(fam("foo/bar/baz:v"), "foo/bar/baz:v");
        assert_eq!(fam("localhost:5000/a/b:t"), "localhost:5000/a/b:t");
        assert_eq!(fam("localhost/a"), "localhost/a:latest");
        assert_eq!(fam("example.com/x"), "example.com/x:latest");
        assert_eq!(fam("[::1]:5000/x:y"), "[::1]:5000/x:y");
        assert_eq!(fam("a-b.c__d/e:Tag_1.0-x"), "a-b.c__d/e:Tag_1.0-x");

        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(r.domain(), "docker.io");
        assert_eq!(r.path(), "library/busybox");
        assert_eq!(
            r.clone().with_default_tag().to_string(),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(r.with_tag("x").familiar(), "busybox:x");

        let with_digest = format!("busybox@sha256:{HEX}");
        let r = Reference::parse_tagged(&with_digest).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().hex(), HEX);
        assert_eq!(r.familiar(), with_digest);
        let both = format!("busybox:1@sha256:{HEX}");
        assert_eq!(Reference::parse(&both).unwrap().familiar(), both);
    }

    #[test]
    fn errors_match_docker() {
        let err = |s: &str| Reference::parse(s).unwrap_err().to_string();
        assert_eq!(
            err("Foo"),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        assert_eq!(
            err("foo/Bar:tag"),
            "invalid reference format: repository name (foo/Bar) must be lowercase"
        );
        assert_eq!(err(""), "invalid reference format");
        assert_eq!(err("foo:"), "invalid reference format");
        assert_eq!(err("foo::bar"), "invalid reference format");
        assert_eq!(err("foo bar"), "invalid reference format");
        assert_eq!(err("-foo"), "invalid reference format");
        assert_eq!(err("foo/"), "invalid reference format");
        assert_eq!(err("foo@sha256:abc"), "invalid reference format");
        assert_eq!(
            err(&format!("foo@sha256:{}", &HEX[..40])),
            "invalid digest format"
        );
        assert_eq!(
            err(&format!("foo:{}", "a".repeat(129))),
            "invalid reference format"
        );
        assert_eq!(
            err(&format!("a/{}", "b".repeat(260))),
            "repository name must not be more than 255 characters"
        );
        assert_eq!(
            err(HEX),
            format!("invalid repository name ({HEX}), cannot specify 64-byte hexadecimal strings")
        );
    }
}
