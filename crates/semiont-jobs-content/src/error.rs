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
    /// The inference server could not be reached, or the connection broke
    /// before the answer was complete.
    #[error("inference request {endpoint} failed: {cause}: {detail}")]
    Network {
        /// The request: method, URL (without credentials) and model.
        endpoint: String,
        /// The root cause, found by walking the HTTP client's error chain.
        cause: NetworkCause,
        /// The innermost error's text, e.g. `Connection refused (os error 111)`.
        detail: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The inference server did not answer in time (connect or read timeout,
    /// or HTTP 408).
    #[error("inference request {endpoint} timed out after {}s {}", timeout.as_secs_f64(), if *connecting { "connecting" } else { "waiting for the answer" })]
    Timeout {
        /// The request.
        endpoint: String,
        /// The timeout that expired.
        timeout: Duration,
        /// Whether it expired while connecting (else while waiting for the
        /// answer, when the server may still be working on the request).
        connecting: bool,
    },
    /// The inference server answered 429 Too Many Requests.
    #[error("inference server rate-limited the request {endpoint}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// The request.
        endpoint: String,
        /// The server's `Retry-After` (seconds or an HTTP date), if given.
        retry_after: Option<Duration>,
    },
    /// The inference server answered with a 5xx status.
    #[error("inference request {endpoint} failed with status {status}: {message}")]
    ServerError {
        /// The request.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message, shortened.
        message: String,
        /// How long to wait before trying again: the server's `Retry-After`,
        /// else a tenth of the read timeout (5 to 60 s).
        retry_after: Duration,
    },
    /// The inference server rejected the request with a 4xx status other
    /// than 408 and 429 (bad request, unauthorized, unknown model, ...).
    #[error("inference request {endpoint} was rejected with status {status}: {message}")]
    Rejected {
        /// The request.
        endpoint: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message, shortened.
        message: String,
    },
    /// The request does not fit the model's context window: the prompt and
    /// the token limit together exceed it (the server said so, in the words
    /// of OpenAI, llama.cpp, llama-cpp-python or Ollama). The same request
    /// fails again; a smaller one may not.
    #[error(
        "inference request {endpoint} exceeds the model's context (status {status}): {message}"
    )]
    ContextExceeded {
        /// The request.
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
            | Error::ContextExceeded { .. }
            | Error::MalformedOutput { .. }
            | Error::Config(_) => false,
        }
    }

    /// A stable machine-readable code: `NETWORK_ERROR`, `TIMEOUT`,
    /// `RATE_LIMITED`, `SERVER_ERROR`, `CONTEXT_EXCEEDED`, `BAD_REQUEST`, `UNAUTHORIZED`,
    /// `NOT_FOUND`, `ALREADY_EXISTS`, `MALFORMED_OUTPUT`, `INVALID_INPUT`,
    /// `CORRUPT`, `IO_ERROR` or `CONFIG_ERROR`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Network { .. } => "NETWORK_ERROR",
            Error::Timeout { .. } => "TIMEOUT",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::ServerError { .. } => "SERVER_ERROR",
            Error::ContextExceeded { .. } => "CONTEXT_EXCEEDED",
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

    /// How long to wait before trying again, when the cause suggests a
    /// wait longer than a brief back-off:
    ///
    /// | cause | wait |
    /// | --- | --- |
    /// | 429 | the server's `Retry-After` (none: the caller's back-off) |
    /// | 5xx | the server's `Retry-After`, else a tenth of the read timeout, 5 to 60 s |
    /// | timeout waiting for the answer (or 408) | the read timeout: the server may still be working on the abandoned request for about as long |
    /// | connect timeout, network errors | none: the caller's (brief, growing) back-off |
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            Error::ServerError { retry_after, .. } => Some(*retry_after),
            Error::Timeout {
                timeout,
                connecting: false,
                ..
            } => Some(*timeout),
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

/// The root cause of a failed connection to an inference server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NetworkCause {
    /// Nothing listens at the address (connection refused).
    Refused,
    /// The connection was reset or aborted by the other side.
    Reset,
    /// The server closed the connection before the answer was complete.
    Closed,
    /// The host name could not be resolved.
    Dns,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// Anything else (the detail says what).
    Other,
}

impl std::fmt::Display for NetworkCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NetworkCause::Refused => "connection refused",
            NetworkCause::Reset => "connection reset",
            NetworkCause::Closed => "connection closed before the answer was complete",
            NetworkCause::Dns => "host name not resolved",
            NetworkCause::Tls => "tls handshake failed",
            NetworkCause::Other => "network error",
        })
    }
}
