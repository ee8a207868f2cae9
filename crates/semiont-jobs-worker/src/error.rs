//! Errors: [`JobError`], how one attempt of a job failed, and [`Error`], how
//! the runner itself failed.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use semiont_jobs_queue::{ErrorKind as QueueKind, JobFailure};

/// Result alias of the worker crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of the runner itself (not of a job).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The queue refused an operation the runner needs (registering the
    /// worker, for instance).
    #[error("worker {worker_id}: {source}")]
    Queue {
        /// The runner's worker id.
        worker_id: String,
        /// The queue's error.
        #[source]
        source: semiont_jobs_queue::Error,
    },
    /// The options are unusable.
    #[error("invalid worker options: {0}")]
    InvalidOptions(String),
    /// `start` was called on a runner that is already running or stopped.
    #[error("worker {0} was already started")]
    AlreadyStarted(String),
}

/// How an attempt ended, from the runner's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobErrorKind {
    /// Another attempt may succeed (network error, timeout, overload).
    Retryable,
    /// No retry can fix it (bad input, missing resource).
    Permanent,
    /// The job was cancelled; nothing more is recorded for this attempt.
    Cancelled,
    /// The worker lost the job (recovered as dead, or changed by someone
    /// else); nothing more is recorded for this attempt.
    LeaseLost,
}

/// The failure of one attempt of a job, returned by
/// [`JobWorker::execute_job`](crate::JobWorker::execute_job).
///
/// Conversions so that `?` works, and what they decide:
///
/// | from | kind | code |
/// | --- | --- | --- |
/// | `&str`, `String`, `Box<dyn Error + Send + Sync>` | retryable (the seed retries thrown errors) | — |
/// | `std::io::Error`: timed out | retryable | `TIMEOUT` |
/// | `std::io::Error`: connection refused/reset/aborted, broken pipe, interrupted, unexpected EOF | retryable | `NETWORK_ERROR` |
/// | `std::io::Error`: not found, permission denied, invalid input/data | permanent | `IO_ERROR` |
/// | other `std::io::Error` | retryable | `IO_ERROR` |
/// | `serde_json::Error` | permanent (the data will not parse next time either) | `INVALID_DATA` |
/// | `tokio::time::error::Elapsed` | retryable | `TIMEOUT` |
/// | `semiont_jobs_queue::Error`: conflict | lease lost | — |
/// | `semiont_jobs_queue::Error`: job no longer running | cancelled | — |
/// | other queue errors | retryable | `QUEUE_ERROR` |
#[derive(Debug)]
pub struct JobError {
    kind: JobErrorKind,
    code: Option<String>,
    message: String,
    retry_after: Option<Duration>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl JobError {
    fn new(kind: JobErrorKind, message: impl Into<String>) -> Self {
        JobError {
            kind,
            code: None,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self::new(JobErrorKind::Retryable, message)
    }

    /// A failure no retry can fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(JobErrorKind::Permanent, message)
    }

    /// The attempt stopped because the job was cancelled.
    pub fn cancelled() -> Self {
        Self::new(JobErrorKind::Cancelled, "job cancelled")
    }

    /// An engine error as the attempt's end: [`cancelled`](Self::cancelled)
    /// when the engine stopped for a cancellation, else retryable or
    /// permanent as the engine judged, with its machine-readable `code`.
    pub fn classified(
        cancelled: bool,
        retryable: bool,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        if cancelled {
            return Self::cancelled();
        }
        let kind = if retryable {
            JobErrorKind::Retryable
        } else {
            JobErrorKind::Permanent
        };
        Self::new(kind, message).with_code(code)
    }

    /// The attempt stopped because the worker no longer owns the job.
    pub fn lease_lost(message: impl Into<String>) -> Self {
        Self::new(JobErrorKind::LeaseLost, message)
    }

    /// A retryable network failure (`NETWORK_ERROR`).
    pub fn network(message: impl Into<String>) -> Self {
        Self::retryable(message).with_code("NETWORK_ERROR")
    }

    /// A retryable timeout (`TIMEOUT`).
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::retryable(message).with_code("TIMEOUT")
    }

    /// Sets the machine-readable code, e.g. `NETWORK_ERROR`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the least wait before a retry that the cause suggests (a
    /// server's `Retry-After`, a busy server's time to finish); the queue
    /// waits the longer of this and its own back-off.
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// The least wait before a retry, if the cause suggests one.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Makes the error permanent (it keeps its code and message).
    pub fn into_permanent(mut self) -> Self {
        if self.kind == JobErrorKind::Retryable {
            self.kind = JobErrorKind::Permanent;
        }
        self
    }

    /// How the attempt ended.
    pub fn kind(&self) -> JobErrorKind {
        self.kind
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind == JobErrorKind::Retryable
    }

    /// The machine-readable code, if any.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The message (without code).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// What the queue records for this failure.
    pub fn to_failure(&self) -> JobFailure {
        let mut message = self.message.clone();
        let mut source: Option<&(dyn StdError + 'static)> = self
            .source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static));
        while let Some(s) = source {
            let text = s.to_string();
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        let failure = if self.is_retryable() {
            JobFailure::retryable(message)
        } else {
            JobFailure::permanent(message)
        };
        let failure = failure.with_retry_after(self.retry_after);
        match &self.code {
            Some(code) => failure.with_code(code.clone()),
            None => failure,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl StdError for JobError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

impl From<&str> for JobError {
    fn from(message: &str) -> Self {
        JobError::retryable(message)
    }
}

impl From<String> for JobError {
    fn from(message: String) -> Self {
        JobError::retryable(message)
    }
}

impl From<Box<dyn StdError + Send + Sync>> for JobError {
    fn from(e: Box<dyn StdError + Send + Sync>) -> Self {
        JobError {
            kind: JobErrorKind::Retryable,
            code: None,
            message: e.to_string(),
            retry_after: None,
            source: Some(e),
        }
    }
}

impl From<std::io::Error> for JobError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let (kind, code) = match e.kind() {
            K::TimedOut => (JobErrorKind::Retryable, "TIMEOUT"),
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::Interrupted
            | K::UnexpectedEof => (JobErrorKind::Retryable, "NETWORK_ERROR"),
            K::NotFound | K::PermissionDenied | K::InvalidInput | K::InvalidData => {
                (JobErrorKind::Permanent, "IO_ERROR")
            }
            _ => (JobErrorKind::Retryable, "IO_ERROR"),
        };
        JobError::new(kind, e.to_string())
            .with_code(code)
            .with_source(e)
    }
}

impl From<serde_json::Error> for JobError {
    fn from(e: serde_json::Error) -> Self {
        JobError::permanent(e.to_string())
            .with_code("INVALID_DATA")
            .with_source(e)
    }
}

impl From<tokio::time::error::Elapsed> for JobError {
    fn from(e: tokio::time::error::Elapsed) -> Self {
        JobError::timeout(e.to_string())
    }
}

impl From<semiont_jobs_queue::Error> for JobError {
    fn from(e: semiont_jobs_queue::Error) -> Self {
        match e.kind() {
            QueueKind::Conflict => JobError::lease_lost(e.to_string()),
            QueueKind::IllegalTransition => JobError::new(JobErrorKind::Cancelled, e.to_string()),
            _ => JobError::retryable(e.to_string())
                .with_code("QUEUE_ERROR")
                .with_source(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classified_follows_the_engine_verdict() {
        let e = JobError::classified(false, true, "MODEL_DOWN", "model unreachable");
        assert_eq!(
            (e.kind(), e.code(), e.message()),
            (
                JobErrorKind::Retryable,
                Some("MODEL_DOWN"),
                "model unreachable"
            )
        );
        let e = JobError::classified(false, false, "BAD_DOC", "no text");
        assert_eq!(
            (e.kind(), e.code()),
            (JobErrorKind::Permanent, Some("BAD_DOC"))
        );
        let e = JobError::classified(true, true, "CANCELLED", "stopped");
        assert_eq!(e.kind(), JobErrorKind::Cancelled);
    }

    #[test]
    fn conversions_classify() {
        let e: JobError = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow").into();
        assert!(e.is_retryable());
        assert_eq!(e.code(), Some("TIMEOUT"));
        let e: JobError = std::io::Error::new(std::io::ErrorKind::NotFound, "gone").into();
        assert!(!e.is_retryable());
        let e: JobError = serde_json::from_str::<u8>("x").unwrap_err().into();
        assert_eq!(e.kind(), JobErrorKind::Permanent);
        let e: JobError = "boom".into();
        assert!(e.is_retryable());
        assert_eq!(e.to_failure().to_string(), "boom");
        let f = JobError::network("refused").to_failure();
        assert!(f.retryable);
        assert_eq!(f.to_string(), "NETWORK_ERROR: refused");
        assert!(
            !JobError::network("x")
                .into_permanent()
                .to_failure()
                .retryable
        );
        let wait = Some(std::time::Duration::from_secs(30));
        let f = JobError::timeout("slow")
            .with_retry_after(wait)
            .to_failure();
        assert_eq!(f.retry_after, wait);
    }
}
