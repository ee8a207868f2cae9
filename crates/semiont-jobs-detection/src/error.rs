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
            Error::InvalidParams(_) | Error::Cancelled { .. } | Error::Gazetteer { .. } => false,
        }
    }

    /// A stable machine-readable code: the content error's code, or
    /// `INVALID_INPUT`, `CANCELLED`, `CONFIG_ERROR`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Content(e) => e.code(),
            Error::InvalidParams(_) => "INVALID_INPUT",
            Error::Cancelled { .. } => "CANCELLED",
            Error::Gazetteer { .. } => "CONFIG_ERROR",
        }
    }
}
