//! The Dockerfile parser: directives, comments, continuations, heredocs, JSON (exec)
//! forms and flags, into [`crate::instructions::Dockerfile`].

use crate::instructions::Dockerfile;

/// A Dockerfile that cannot be parsed: Docker's wording, with the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dockerfile parse error line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

/// Parses a whole Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    let _ = src;
    todo!("helper: implement")
}
