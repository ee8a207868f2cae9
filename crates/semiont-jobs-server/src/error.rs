//! The crate's one error type. A failed request renders as an RFC 9457
//! `application/problem+json` document whose `detail` is one lowercase line
//! naming what was wrong; start-up failures (configuration, tokens, bind)
//! are variants of the same type.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Result alias of the server crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The media type of error responses.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What went wrong, for matching (each kind has one HTTP status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 400: malformed or invalid input (body, id, filter, header).
    InvalidInput,
    /// 401: no token, or an unknown one.
    Unauthorized,
    /// 403: the token's role does not allow the operation.
    Forbidden,
    /// 404: no such job, or no such route.
    NotFound,
    /// 405: the route exists but not with this method.
    MethodNotAllowed,
    /// 408: the request body arrived too slowly.
    RequestTimeout,
    /// 409: the job's state does not allow the operation, it changed under
    /// the request, another job holds its unique key, or an idempotent
    /// request with the same key is running.
    Conflict,
    /// 412: `If-Match` named another version of the job.
    PreconditionFailed,
    /// 413: the request body is larger than the limit.
    PayloadTooLarge,
    /// 415: the request body is not JSON.
    UnsupportedMediaType,
    /// 422: an `Idempotency-Key` was reused with a different body.
    Unprocessable,
    /// 500: a bug or an unexpected store failure.
    Internal,
    /// 503: the store is unreachable, the request timed out, or the server
    /// is shutting down.
    Unavailable,
    /// The server could not start (configuration, tokens, bind).
    Startup,
}

impl ErrorKind {
    /// The HTTP status of this kind (500 for start-up errors, which are
    /// never sent).
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::Internal | ErrorKind::Startup => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable snake_case name sent as the problem's `code` member.
    pub const fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::NotFound => "not_found",
            ErrorKind::MethodNotAllowed => "method_not_allowed",
            ErrorKind::RequestTimeout => "request_timeout",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::PayloadTooLarge => "payload_too_large",
            ErrorKind::UnsupportedMediaType => "unsupported_media_type",
            ErrorKind::Unprocessable => "unprocessable",
            ErrorKind::Internal => "internal",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Startup => "startup",
        }
    }
}

/// An error of the server: a request's failure (rendered as problem+json)
/// or a start-up failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A request failed; `detail` is the one-line explanation sent to the
    /// client.
    #[error("{detail}")]
    Request {
        /// What kind of failure (decides the status).
        kind: ErrorKind,
        /// One lowercase line naming what was wrong.
        detail: String,
    },
    /// The server configuration is unusable.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// The tokens (file or environment variable) are unusable.
    #[error("invalid tokens in {origin}: {reason}")]
    Tokens {
        /// Where the tokens came from (a path or a variable name).
        origin: String,
        /// What is wrong (never the token itself).
        reason: String,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// A request error of `kind`.
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Error::Request {
            kind,
            detail: detail.into(),
        }
    }

    /// 400 with `detail`.
    pub fn invalid(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, detail)
    }

    /// 404 with `detail`.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }

    /// 409 with `detail`.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, detail)
    }

    /// The kind, for matching.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Request { kind, .. } => *kind,
            Error::Config(_) | Error::Tokens { .. } | Error::Bind { .. } => ErrorKind::Startup,
        }
    }
}

impl From<semiont_jobs_queue::Error> for Error {
    fn from(e: semiont_jobs_queue::Error) -> Self {
        use semiont_jobs_queue::ErrorKind as Q;
        let kind = match e.kind() {
            Q::NotFound => ErrorKind::NotFound,
            Q::Conflict | Q::IllegalTransition | Q::Duplicate => ErrorKind::Conflict,
            Q::InvalidInput => ErrorKind::InvalidInput,
            Q::Unavailable => {
                tracing::warn!(error = %e, "store unavailable");
                return Error::new(
                    ErrorKind::Unavailable,
                    "the job store is unavailable; retry later",
                );
            }
            _ => {
                // Store failures may name server paths: log them, send a
                // line that does not.
                tracing::error!(error = %e, "store failure");
                return Error::new(
                    ErrorKind::Internal,
                    "the job store failed; the server log has the cause",
                );
            }
        };
        Error::new(kind, one_line(&e.to_string()))
    }
}

impl From<semiont_jobs_store::Error> for Error {
    fn from(e: semiont_jobs_store::Error) -> Self {
        semiont_jobs_queue::Error::from(e).into()
    }
}

/// `text` on one line (newlines become spaces), at most 300 characters.
pub(crate) fn one_line(text: &str) -> String {
    let mut line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    if text.chars().count() > 300 {
        line.push('…');
    }
    line
}

/// The problem document (RFC 9457) plus a `code` member.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    problem_type: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    code: &'static str,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let status = kind.status();
        let detail = one_line(&self.to_string());
        let body = Problem {
            problem_type: "about:blank",
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: &detail,
            code: kind.code(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if kind == ErrorKind::Unauthorized {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"semiont-jobs\""),
            );
        }
        if kind == ErrorKind::Unavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_status_and_a_code() {
        let table = [
            (ErrorKind::InvalidInput, 400, "invalid_input"),
            (ErrorKind::Unauthorized, 401, "unauthorized"),
            (ErrorKind::Forbidden, 403, "forbidden"),
            (ErrorKind::NotFound, 404, "not_found"),
            (ErrorKind::MethodNotAllowed, 405, "method_not_allowed"),
            (ErrorKind::RequestTimeout, 408, "request_timeout"),
            (ErrorKind::Conflict, 409, "conflict"),
            (ErrorKind::PreconditionFailed, 412, "precondition_failed"),
            (ErrorKind::PayloadTooLarge, 413, "payload_too_large"),
            (
                ErrorKind::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ErrorKind::Unprocessable, 422, "unprocessable"),
            (ErrorKind::Internal, 500, "internal"),
            (ErrorKind::Unavailable, 503, "unavailable"),
        ];
        for (kind, status, code) in table {
            assert_eq!(kind.status().as_u16(), status, "{kind:?}");
            assert_eq!(kind.code(), code);
        }
    }

    #[test]
    fn details_are_one_line_and_bounded() {
        assert_eq!(one_line("a\nb\tc"), "a b c");
        let long = "x".repeat(1000);
        assert_eq!(one_line(&long).chars().count(), 301);
    }

    #[test]
    fn queue_errors_map_to_kinds() {
        let id = semiont_jobs_model::JobId::parse("job-1").unwrap();
        let e: Error = semiont_jobs_queue::Error::NotFound { id: id.clone() }.into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert_eq!(e.to_string(), "job job-1 not found");
        let e: Error = semiont_jobs_queue::Error::IllegalTransition {
            id,
            from: semiont_jobs_model::JobStatus::Complete,
            to: semiont_jobs_model::JobStatus::Cancelled,
        }
        .into();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e: Error =
            semiont_jobs_queue::Error::from(semiont_jobs_model::Error::InvalidFilter("bad".into()))
                .into();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
