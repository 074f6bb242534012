//! The Docker Engine API as berth serves it: versions, models, and the one error taxonomy.
//!
//! The wire models are `bollard-stubs`, generated from moby's `api/swagger.yaml`, so field names
//! and shapes are Docker's own.

pub mod error;
pub mod types;
pub mod units;
pub mod zero;

pub use bollard_stubs::models;
pub use error::{ApiError, ErrorKind};

/// The newest Engine API version berth implements (moby's swagger for Docker 24+).
pub const API_VERSION: &str = "1.45";
/// The oldest version a client may ask for.
pub const MIN_API_VERSION: &str = "1.24";
/// Reported as the server's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The default socket, as `-H` would spell it.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// Parse "1.41" into (1, 41).
pub fn parse_version(v: &str) -> Option<(u32, u32)> {
    let (a, b) = v.split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn versions_parse() {
        assert_eq!(super::parse_version("1.41"), Some((1, 41)));
        assert_eq!(super::parse_version("x"), None);
        assert!(
            super::parse_version(super::MIN_API_VERSION) < super::parse_version(super::API_VERSION)
        );
    }
}
