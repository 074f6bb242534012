//! The distribution spec's error codes, each registered once with its HTTP status, and the
//! one place where an error becomes a response: `{"errors":[{"code","message","detail"}]}`.

use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// An error code of the spec (and distribution's few extras).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    PaginationNumberInvalid,
    RangeInvalid,
    Unknown,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Code::RangeInvalid => "RANGE_INVALID",
            Code::Unknown => "UNKNOWN",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::ManifestBlobUnknown
            | Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid
            | Code::PaginationNumberInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::RangeInvalid => StatusCode::RANGE_NOT_SATISFIABLE,
            Code::Unknown => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The spec's one-line description, sent as `message`.
    fn message(self) -> &'static str {
        match self {
            Code::BlobUnknown => "blob unknown to registry",
            Code::BlobUploadInvalid => "blob upload invalid",
            Code::BlobUploadUnknown => "blob upload unknown to registry",
            Code::DigestInvalid => "provided digest did not match uploaded content",
            Code::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            Code::ManifestInvalid => "manifest invalid",
            Code::ManifestUnknown => "manifest unknown",
            Code::NameInvalid => "invalid repository name",
            Code::NameUnknown => "repository name not known to registry",
            Code::SizeInvalid => "provided length did not match content length",
            Code::Unauthorized => "authentication required",
            Code::Denied => "requested access to the resource is denied",
            Code::Unsupported => "the operation is unsupported",
            Code::TooManyRequests => "too many requests",
            Code::PaginationNumberInvalid => "invalid number of results requested",
            Code::RangeInvalid => "invalid content range",
            Code::Unknown => "unknown error",
        }
    }
}

/// An error answered to a client: a code, and a detail for people.
#[derive(Debug, thiserror::Error)]
#[error("{}: {detail}", code.as_str())]
pub struct RegistryError {
    pub code: Code,
    pub detail: String,
    /// Overrides the code's status (the spec answers some codes with several statuses).
    pub status: Option<StatusCode>,
    /// A `WWW-Authenticate` challenge, for 401s.
    pub challenge: Option<String>,
}

impl RegistryError {
    pub fn new(code: Code, detail: impl Into<String>) -> RegistryError {
        RegistryError {
            code,
            detail: detail.into(),
            status: None,
            challenge: None,
        }
    }

    /// 401 with the challenge a client should answer.
    pub fn unauthorized(detail: impl Into<String>, challenge: String) -> RegistryError {
        let mut e = RegistryError::new(Code::Unauthorized, detail);
        e.challenge = Some(challenge);
        e
    }

    pub fn with_status(mut self, status: StatusCode) -> RegistryError {
        self.status = Some(status);
        self
    }

    /// A storage failure: logged, and answered as 500 UNKNOWN without the host's paths.
    pub fn storage(e: std::io::Error) -> RegistryError {
        tracing::error!("storage: {e}");
        RegistryError::new(Code::Unknown, "storage error")
    }

    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or(self.code.status())
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "errors": [{
                "code": self.code.as_str(),
                "message": self.code.message(),
                "detail": self.detail,
            }]
        });
        let mut r = (
            self.status(),
            [(http::header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
        if let Some(c) = self
            .challenge
            .and_then(|c| http::HeaderValue::from_str(&c).ok())
        {
            r.headers_mut().insert(http::header::WWW_AUTHENTICATE, c);
        }
        r
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
