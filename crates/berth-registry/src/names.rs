//! The distribution spec's grammar for repository names and references.
//!
//! ```text
//! name       = component ("/" component)*            (at most 255 characters)
//! component  = [a-z0-9]+ (separator [a-z0-9]+)*
//! separator  = "." | "_" | "__" | "-"+
//! tag        = [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}
//! reference  = tag | digest
//! ```

use crate::digest::Digest;

/// The longest repository name accepted (distribution's limit).
pub const MAX_NAME_LEN: usize = 255;

fn alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run, which must be ".", "_", "__" or "-"+
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// Whether `name` is a valid repository name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_NAME_LEN && name.split('/').all(component_ok)
}

/// Whether `tag` is a valid tag.
pub fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|&x| x.is_ascii_alphanumeric() || matches!(x, b'_' | b'.' | b'-'))
}

/// A manifest reference: a tag or a digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// `None` when the text is neither a valid tag nor a digest; an `Err` carries a
    /// digest's own error (it has a `:`, so it can only be a digest).
    pub fn parse(s: &str) -> Result<Reference, crate::digest::DigestError> {
        if s.contains(':') {
            return Digest::parse(s).map(Reference::Digest);
        }
        if valid_tag(s) {
            Ok(Reference::Tag(s.to_string()))
        } else {
            Err(crate::digest::DigestError::Format(s.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in [
            "a",
            "library/busybox",
            "a.b_c__d---e/f0",
            "x/y/z",
            "conformance-test/crossmount",
        ] {
            assert!(valid_name(ok), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a___b", "-a", "a-", "a_.b", "a b", "a:b", &long,
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn tags_and_references() {
        assert!(valid_tag("latest") && valid_tag("_x") && valid_tag("v1.0-rc_1"));
        assert!(
            !valid_tag("-x") && !valid_tag(".x") && !valid_tag("") && !valid_tag(&"a".repeat(129))
        );
        assert_eq!(Reference::parse("v1").unwrap(), Reference::Tag("v1".into()));
        assert!(Reference::parse("sha256:xyz").is_err());
        assert!(Reference::parse("bad tag").is_err());
    }
}
