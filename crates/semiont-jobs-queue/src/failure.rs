//! Why an attempt failed, and whether it is worth another try.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// Longest error text stored in a job, in bytes; longer messages are cut.
pub const MAX_ERROR_LEN: usize = 16 * 1024;

/// The failure of one attempt of a job, as given to
/// [`JobQueue::fail_job`](crate::JobQueue::fail_job).
///
/// A retryable failure (the default for plain messages) sends the job back to
/// pending with a back-off while it has retries left; a permanent one fails
/// it at once. The stored `error` text is the message, prefixed with the code
/// when there is one (`NETWORK_ERROR: connection refused`).
///
/// ```
/// use semiont_jobs_queue::JobFailure;
///
/// let f: JobFailure = "Processing failed".into();
/// assert!(f.retryable);
/// let p = JobFailure::permanent("bad input").with_code("INVALID");
/// assert!(!p.retryable);
/// assert_eq!(p.to_string(), "INVALID: bad input");
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out");
/// assert_eq!(JobFailure::from_error(&io).message, "read timed out");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFailure {
    /// What went wrong.
    pub message: String,
    /// Whether another attempt may succeed.
    pub retryable: bool,
    /// A machine-readable code, e.g. `NETWORK_ERROR` or `TIMEOUT`.
    pub code: Option<String>,
    /// The least wait before the retry that the cause suggests (a server's
    /// `Retry-After`, or a busy server's time to finish an abandoned
    /// request). The queue waits the longer of this (capped at the retry
    /// policy's `max_delay`) and its own back-off.
    pub retry_after: Option<Duration>,
}

impl JobFailure {
    /// A failure worth retrying (network error, timeout, overloaded server).
    pub fn retryable(message: impl Into<String>) -> Self {
        JobFailure {
            message: message.into(),
            retryable: true,
            code: None,
            retry_after: None,
        }
    }

    /// A failure no retry can fix (invalid input, missing resource).
    pub fn permanent(message: impl Into<String>) -> Self {
        JobFailure {
            message: message.into(),
            retryable: false,
            code: None,
            retry_after: None,
        }
    }

    /// A retryable failure from an error value; the message is the error and
    /// its chain of sources, joined with `": "`.
    pub fn from_error(error: &(dyn StdError + 'static)) -> Self {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(s) = source {
            let text = s.to_string();
            if !message.ends_with(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        JobFailure::retryable(message)
    }

    /// Sets the machine-readable code.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Sets the least wait before the retry (see
    /// [`retry_after`](Self::retry_after)).
    pub fn with_retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Makes the failure permanent (or retryable again with `false`).
    pub fn set_permanent(mut self, permanent: bool) -> Self {
        self.retryable = !permanent;
        self
    }

    /// The text stored in the job's `error` field: non-empty, at most
    /// [`MAX_ERROR_LEN`] bytes.
    pub fn error_text(&self) -> String {
        let mut text = self.to_string();
        if text.trim().is_empty() {
            text = "unknown error".to_owned();
        }
        if text.len() > MAX_ERROR_LEN {
            let mut cut = MAX_ERROR_LEN - '…'.len_utf8();
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

impl fmt::Display for JobFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl From<&str> for JobFailure {
    fn from(message: &str) -> Self {
        JobFailure::retryable(message)
    }
}

impl From<String> for JobFailure {
    fn from(message: String) -> Self {
        JobFailure::retryable(message)
    }
}

impl From<&String> for JobFailure {
    fn from(message: &String) -> Self {
        JobFailure::retryable(message.clone())
    }
}

impl From<Box<dyn StdError + Send + Sync>> for JobFailure {
    fn from(error: Box<dyn StdError + Send + Sync>) -> Self {
        JobFailure::from_error(&*error)
    }
}

impl From<std::io::Error> for JobFailure {
    fn from(error: std::io::Error) -> Self {
        JobFailure::from_error(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("cannot fetch document")
        }
    }
    impl StdError for Outer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn from_error_joins_the_source_chain() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(
            JobFailure::from_error(&e).message,
            "cannot fetch document: connection refused"
        );
    }

    #[test]
    fn error_text_is_bounded_and_never_empty() {
        assert_eq!(JobFailure::retryable("  ").error_text(), "unknown error");
        let long = JobFailure::retryable("é".repeat(MAX_ERROR_LEN));
        let text = long.error_text();
        assert!(text.len() <= MAX_ERROR_LEN, "{}", text.len());
        assert!(text.ends_with('…'));
    }

    #[test]
    fn code_prefixes_the_text() {
        let f = JobFailure::retryable("timed out").with_code("TIMEOUT");
        assert_eq!(f.error_text(), "TIMEOUT: timed out");
        assert!(!f.clone().set_permanent(true).retryable);
    }
}
