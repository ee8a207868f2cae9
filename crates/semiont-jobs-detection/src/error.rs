//! The detection engine's error type, classified retryable or permanent.

use std::path::PathBuf;

/// Result alias of the detection crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a detection run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store or inference error; its classification is kept.
    #[error(transparent)]
    Content(#[from] semiont_jobs_content::Error),
    /// The job's parameters cannot be used.
    #[error("invalid detection parameters: {0}")]
    InvalidParams(String),
    /// The cancellation token fired; annotations emitted so far are kept
    /// (a re-run with the same job id rewrites the same ids).
    #[error("detection of resource {resource_id} was cancelled")]
    Cancelled {
        /// The resource being analysed.
        resource_id: String,
    },
    /// Even the smallest chunk does not fit the model's context with the
    /// configured answer length.
    #[error("a chunk of {chars} characters still exceeds the model's context: raise the configured context (--model-context, SEMIONT_INFERENCE_CONTEXT) if the model allows, or lower the answer limit (--model-max-tokens): {source}")]
    ContextTooSmall {
        /// Characters of the smallest chunk sent.
        chars: usize,
        /// The server's refusal.
        #[source]
        source: semiont_jobs_content::Error,
    },
    /// A gazetteer file could not be read.
    #[error("cannot read gazetteer {path}: {reason}")]
    Gazetteer {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl Error {
    /// Whether trying the job again later may succeed (network errors,
    /// timeouts, rate limiting, 5xx, transient IO).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Content(e) => e.is_retryable(),
            Error::InvalidParams(_)
            | Error::Cancelled { .. }
            | Error::Gazetteer { .. }
            | Error::ContextTooSmall { .. } => false,
        }
    }

    /// A stable machine-readable code: the content error's code, or
    /// `INVALID_INPUT`, `CANCELLED`, `CONFIG_ERROR`, `CONTEXT_EXCEEDED`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Content(e) => e.code(),
            Error::InvalidParams(_) => "INVALID_INPUT",
            Error::Cancelled { .. } => "CANCELLED",
            Error::Gazetteer { .. } => "CONFIG_ERROR",
            Error::ContextTooSmall { .. } => "CONTEXT_EXCEEDED",
        }
    }

    /// The least wait before a retry that the cause suggests (see
    /// [`semiont_jobs_content::Error::retry_after`]).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::Content(e) => e.retry_after(),
            _ => None,
        }
    }
}
