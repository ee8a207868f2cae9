//! The generation engine's error type, classified retryable or permanent.

/// Result alias of the generation crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a generation run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A store or inference error; its classification is kept.
    #[error(transparent)]
    Content(#[from] semiont_jobs_content::Error),
    /// The job's parameters cannot be used.
    #[error("invalid generation parameters: {0}")]
    InvalidParams(String),
    /// The reference annotation's selectors match nothing in the source text.
    #[error("reference {reference_id} does not match the text of resource {resource_id}")]
    UnresolvableReference {
        /// The reference annotation.
        reference_id: String,
        /// The source resource.
        resource_id: String,
    },
    /// The cancellation token fired. A re-run with the same job id resumes:
    /// it reuses a resource already created and links it.
    #[error("generation for reference {reference_id} was cancelled")]
    Cancelled {
        /// The reference annotation.
        reference_id: String,
    },
}

impl Error {
    /// Whether trying the job again later may succeed (network errors,
    /// timeouts, rate limiting, 5xx, transient IO).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Content(e) => e.is_retryable(),
            Error::InvalidParams(_)
            | Error::UnresolvableReference { .. }
            | Error::Cancelled { .. } => false,
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

    /// A stable machine-readable code: the content error's code, or
    /// `INVALID_INPUT`, `UNRESOLVABLE_REFERENCE`, `CANCELLED`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Content(e) => e.code(),
            Error::InvalidParams(_) => "INVALID_INPUT",
            Error::UnresolvableReference { .. } => "UNRESOLVABLE_REFERENCE",
            Error::Cancelled { .. } => "CANCELLED",
        }
    }
}
