//! The `Digest` type: a validated `sha256:<64 hex>` content digest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

/// Errors produced while parsing a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    /// The string is not `<algorithm>:<hex>`.
    #[error("invalid digest {input:?}: expected \"sha256:<64 hex characters>\"")]
    Format { input: String },
    /// The algorithm is not sha256.
    #[error("invalid digest {input:?}: unsupported algorithm {algorithm:?}")]
    Algorithm { input: String, algorithm: String },
    /// The encoded part is not 64 lowercase hex characters.
    #[error("invalid digest {input:?}: sha256 digests are 64 lowercase hex characters")]
    Hex { input: String },
}

/// A sha256 content digest, displayed as `sha256:<64 hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The only supported algorithm.
    pub const ALGORITHM: &'static str = "sha256";

    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Self, DigestError> {
        let Some((algorithm, hex)) = s.split_once(':') else {
            return Err(DigestError::Format {
                input: s.to_string(),
            });
        };
        if algorithm != Self::ALGORITHM {
            if algorithm.is_empty() || hex.is_empty() {
                return Err(DigestError::Format {
                    input: s.to_string(),
                });
            }
            return Err(DigestError::Algorithm {
                input: s.to_string(),
                algorithm: algorithm.to_string(),
            });
        }
        Self::from_hex(hex).map_err(|_| DigestError::Hex {
            input: s.to_string(),
        })
    }

    /// Builds a digest from its 64 lowercase hex characters (no algorithm prefix).
    pub fn from_hex(hex: &str) -> Result<Self, DigestError> {
        if is_sha256_hex(hex) {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(DigestError::Hex {
                input: hex.to_string(),
            })
        }
    }

    /// The sha256 digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self::from_sha256(Sha256::digest(data).as_slice())
    }

    /// Builds a digest from a raw 32-byte sha256 output.
    pub fn from_sha256(raw: &[u8]) -> Self {
        Digest {
            hex: hex::encode(raw),
        }
    }

    /// The algorithm name (`sha256`).
    pub fn algorithm(&self) -> &'static str {
        Self::ALGORITHM
    }

    /// The 64 hex characters.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters, as Docker shows short ids.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

/// Whether `s` is exactly 64 lowercase hex characters.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest(sha256:{})", self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parse_and_display_round_trip() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(d, Digest::of(b""));
        assert_eq!(d.algorithm(), "sha256");
        assert_eq!(EMPTY.parse::<Digest>().unwrap(), d);
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855a",
            "sha256:../../etc/passwd",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
        let err = Digest::parse("sha512:abcd").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid digest \"sha512:abcd\": unsupported algorithm \"sha512\""
        );
        let err = Digest::parse("nope").unwrap_err();
        assert!(err
            .to_string()
            .contains("expected \"sha256:<64 hex characters>\""));
    }

    #[test]
    fn serde_as_string() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
