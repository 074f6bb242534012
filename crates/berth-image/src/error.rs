//! The image store's error type.

use std::io;

use berth_content::ContentError;
use berth_snapshot::{ApplyError, CompressionError, SnapshotError};

use crate::changes::ChangesError;
use crate::reference::ReferenceError;

/// How the daemon should report an error (HTTP 404 / 409 / 400 / 500).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    Conflict,
    InvalidArgument,
    Internal,
}

/// Errors from the image store.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A conflict with Docker's wording (e.g. deleting an image in use).
    #[error("{0}")]
    Conflict(String),
    /// An id prefix matching several images.
    #[error("ambiguous image id prefix {prefix:?}: it matches {count} images")]
    Ambiguous { prefix: String, count: usize },
    /// A bad reference.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// A bad `--change` instruction.
    #[error(transparent)]
    Changes(#[from] ChangesError),
    /// Other invalid input.
    #[error("{0}")]
    InvalidArgument(String),
    /// The layer stream could not be decompressed.
    #[error(transparent)]
    Compression(#[from] CompressionError),
    /// The layer could not be unpacked.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Content store failure.
    #[error(transparent)]
    Content(#[from] ContentError),
    /// A `docker load` archive that is malformed, incomplete or fails verification.
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    /// A store file is corrupt.
    #[error("corrupt image store file {path}: {reason}")]
    Corrupt { path: String, reason: String },
    /// I/O failure, with context.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// The category of the error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) => ErrorKind::NotFound,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::Ambiguous { .. }
            | ImageError::Reference(_)
            | ImageError::Changes(_)
            | ImageError::InvalidArgument(_)
            | ImageError::InvalidArchive(_) => ErrorKind::InvalidArgument,
            ImageError::Compression(CompressionError::Unsupported(_)) => ErrorKind::InvalidArgument,
            ImageError::Snapshot(SnapshotError::Apply(e)) => match e {
                ApplyError::Io { .. } => ErrorKind::Internal,
                _ => ErrorKind::InvalidArgument,
            },
            ImageError::Snapshot(SnapshotError::DiffIdMismatch { .. }) => {
                ErrorKind::InvalidArgument
            }
            ImageError::Compression(_)
            | ImageError::Snapshot(_)
            | ImageError::Content(_)
            | ImageError::Corrupt { .. }
            | ImageError::Io { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> ImageError {
        let context = context.into();
        move |source| ImageError::Io { context, source }
    }
}
