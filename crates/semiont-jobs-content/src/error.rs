//! The content crate's error type, classified retryable or permanent.

use std::path::PathBuf;
use std::time::Duration;

/// Result alias of the content crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a store, a text operation or an inference call.
///
/// Every error says whether trying again later may succeed
/// ([`Error::is_retryable`]) and carries a stable machine-readable
/// [`code`](Error::code) such as `NETWORK_ERROR` or `MALFORMED_OUTPUT`.
/// Messages are one lowercase line naming the value concerned; they never
/// contain an API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A resource or annotation id failed validation (ids become file names).
    #[error("invalid {kind} id {id:?}: {reason}")]
    InvalidId {
        /// `resource` or `annotation`.
        kind: &'static str,
        /// The rejected id (possibly truncated for display).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A value other than an id is invalid (an empty name, an unknown media
    /// type, a selector outside the text, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No resource or annotation with that id.
    #[error("{kind} {id} not found")]
    NotFound {
        /// `resource` or `annotation`.
        kind: &'static str,
        /// The id looked for (for annotations: `<resource>/<annotation>`).
        id: String,
    },
    /// A resource with that id exists already (and overwriting was not asked for).
    #[error("{kind} {id} already exists")]
    AlreadyExists {
        /// `resource` or `annotation`.
        kind: &'static str,
        /// The id.
        id: String,
    },
    /// A stored file is not valid JSON of the expected shape.
    #[error("corrupt file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// A path inside the data directory is a symlink or not the expected kind
    /// of file; it is refused rather than followed.
    #[error("refusing unsafe path {path}: {reason}")]
    UnsafePath {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A filesystem operation failed.
    #[error("cannot {op} {path}: {source}")]
    Io {
        /// What was being done, e.g. `rename`.
        op: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The inference server could not be reached, or the connection broke.
    #[error("cannot reach inference server {endpoint}: {source}")]
    Network {
        /// The endpoint called (without credentials).
        endpoint: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The inference server did not answer in time (connect or read timeout,
    /// or HTTP 408).
    #[error("inference server {endpoint} timed out after {timeout:?}")]
    Timeout {
        /// The endpoint called.
        endpoint: String,
        /// The timeout that expired (the larger configured one when unknown).
        timeout: Duration,
    },
    /// The inference server answered 429 Too Many Requests.
    #[error("inference server {endpoint} is rate limiting requests{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The endpoint called.
        endpoint: String,
        /// The server's `Retry-After`, when it gave one in seconds.
        retry_after: Option<Duration>,
    },
    /// The inference server answered with a 5xx status.
    #[error("inference server {endpoint} failed with status {status}: {message}")]
    ServerError {
        /// The endpoint called.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message, shortened.
        message: String,
    },
    /// The inference server rejected the request with a 4xx status other
    /// than 408 and 429 (bad request, unauthorized, unknown model, ...).
    #[error("inference server {endpoint} rejected the request with status {status}: {message}")]
    Rejected {
        /// The endpoint called.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message, shortened.
        message: String,
    },
    /// The server's response, or the model's text in it, is not what was
    /// asked for (not JSON, missing fields, empty, unusable spans).
    #[error("malformed output from {source_name}: {reason}")]
    MalformedOutput {
        /// Who produced it (an endpoint or `model`).
        source_name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The inference configuration is incomplete or invalid (e.g. a missing
    /// API key or an unparsable base URL).
    #[error("invalid inference configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether trying again later may succeed: network errors, timeouts,
    /// rate limiting, 5xx answers and most IO errors are retryable; invalid
    /// input, missing data, corrupt files, 4xx answers and malformed model
    /// output are not.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network { .. }
            | Error::Timeout { .. }
            | Error::RateLimited { .. }
            | Error::ServerError { .. } => true,
            Error::Io { source, .. } => !matches!(
                source.kind(),
                std::io::ErrorKind::PermissionDenied
                    | std::io::ErrorKind::InvalidInput
                    | std::io::ErrorKind::InvalidData
            ),
            Error::InvalidId { .. }
            | Error::InvalidInput(_)
            | Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::Corrupt { .. }
            | Error::UnsafePath { .. }
            | Error::Rejected { .. }
            | Error::MalformedOutput { .. }
            | Error::Config(_) => false,
        }
    }

    /// A stable machine-readable code: `NETWORK_ERROR`, `TIMEOUT`,
    /// `RATE_LIMITED`, `SERVER_ERROR`, `BAD_REQUEST`, `UNAUTHORIZED`,
    /// `NOT_FOUND`, `ALREADY_EXISTS`, `MALFORMED_OUTPUT`, `INVALID_INPUT`,
    /// `CORRUPT`, `IO_ERROR` or `CONFIG_ERROR`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Network { .. } => "NETWORK_ERROR",
            Error::Timeout { .. } => "TIMEOUT",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::ServerError { .. } => "SERVER_ERROR",
            Error::Rejected { status, .. } => match status {
                401 | 403 => "UNAUTHORIZED",
                404 => "NOT_FOUND",
                _ => "BAD_REQUEST",
            },
            Error::NotFound { .. } => "NOT_FOUND",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::MalformedOutput { .. } => "MALFORMED_OUTPUT",
            Error::InvalidId { .. } | Error::InvalidInput(_) => "INVALID_INPUT",
            Error::Corrupt { .. } => "CORRUPT",
            Error::UnsafePath { .. } | Error::Io { .. } => "IO_ERROR",
            Error::Config(_) => "CONFIG_ERROR",
        }
    }

    /// How long the server asked callers to wait, for rate limiting.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.raw_os_error() == Some(libc::ELOOP) {
            return Error::UnsafePath {
                path,
                reason: "it is a symlink",
            };
        }
        Error::Io { op, path, source }
    }
}
