//! One error taxonomy for the whole engine, and its one mapping to HTTP statuses.

/// What kind of failure an error is; decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is malformed or a parameter is invalid.
    InvalidArgument,
    /// 401: a registry refused the credentials (`docker login`).
    Unauthorized,
    /// 403
    Forbidden,
    /// 404: no such container, image, exec...
    NotFound,
    /// 409: a name in use, an image in use, a container running...
    Conflict,
    /// 304: nothing to do (start a running container, stop a stopped one).
    NotModified,
    /// 501
    NotImplemented,
    /// 503
    Unavailable,
    /// 500
    Internal,
}

impl ErrorKind {
    /// The HTTP status code Docker answers with for this kind.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::NotModified => 304,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Unavailable => 503,
            ErrorKind::Internal => 500,
        }
    }
}

/// An error as the API reports it: `{"message": "..."}` with the kind's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
        }
    }
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, m)
    }
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, m)
    }
    pub fn conflict(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, m)
    }
    pub fn forbidden(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, m)
    }
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, m)
    }
    /// The JSON body Docker sends with an error.
    pub fn body(&self) -> String {
        serde_json::json!({ "message": self.message }).to_string()
    }
}
