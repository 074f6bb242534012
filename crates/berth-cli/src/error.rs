//! CLI errors and how they print.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// The daemon answered with an error status.
    Daemon { status: u16, message: String },
    /// Anything else; printed as is.
    Msg(String),
    /// Exit with this code without printing anything more.
    Status(i32),
    /// Print the message, exit with the code (docker's `cli.StatusError`).
    Coded { message: String, code: i32 },
}

impl CliError {
    pub fn msg(s: impl Into<String>) -> Self {
        CliError::Msg(s.into())
    }
    pub fn daemon(status: u16, message: impl Into<String>) -> Self {
        CliError::Daemon {
            status,
            message: message.into(),
        }
    }
    pub fn is_not_found(&self) -> bool {
        matches!(self, CliError::Daemon { status: 404, .. })
    }
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Status(c) => *c,
            CliError::Coded { code, .. } => *code,
            _ => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Daemon { message, .. } => write!(f, "Error response from daemon: {message}"),
            CliError::Msg(m) => f.write_str(m),
            CliError::Coded { message, .. } => f.write_str(message),
            CliError::Status(_) => Ok(()),
        }
    }
}

impl std::error::Error for CliError {}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Msg(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
