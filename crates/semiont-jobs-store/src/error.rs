//! The store error type, shared by every backend, and its kinds.

use std::path::PathBuf;

use semiont_jobs_model::{JobId, JobStatus};

/// Result alias of the store crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as a kind callers and the conformance suite match on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No job with that id.
    NotFound,
    /// A job with that id exists already.
    AlreadyExists,
    /// The job is not in the expected status or attempt: someone else moved it.
    Conflict,
    /// The request itself is invalid (bad id, illegal transition, bad value).
    InvalidInput,
    /// Stored data is unreadable; it was set aside.
    Corrupt,
    /// The disk is full.
    NoSpace,
    /// The operating system refused access.
    PermissionDenied,
    /// Any other IO failure.
    Io,
    /// The backend does not offer this operation.
    Unsupported,
}

/// An error of a [`JobStore`](crate::JobStore) operation. Messages are one
/// lowercase line naming the job or path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No job with that id.
    #[error("job {id} not found")]
    NotFound {
        /// The id looked for.
        id: JobId,
    },
    /// A job with that id exists already.
    #[error("job {id} already exists")]
    AlreadyExists {
        /// The id.
        id: JobId,
    },
    /// The precondition of a conditional write failed.
    #[error("job {id} is {}, expected {expected}", describe(*actual))]
    Conflict {
        /// The job.
        id: JobId,
        /// What the writer expected.
        expected: crate::Expect,
        /// What the store found (`None`: the job is gone).
        actual: Option<(JobStatus, u32)>,
    },
    /// The request is invalid: the model rejected an id, transition or value.
    #[error(transparent)]
    Invalid(#[from] semiont_jobs_model::Error),
    /// Stored data could not be read as a job.
    #[error("corrupt job file {path}: {reason}")]
    Corrupt {
        /// The file (moved to quarantine).
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
    /// An IO operation failed.
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
    /// The backend does not offer this operation.
    #[error("{0} is not supported by this backend")]
    Unsupported(&'static str),
}

fn describe(actual: Option<(JobStatus, u32)>) -> String {
    match actual {
        None => "gone".to_owned(),
        Some((status, 0)) => status.to_string(),
        Some((status, attempt)) => format!("{status} at attempt {attempt}"),
    }
}

impl Error {
    /// The kind of error, for matching.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::Invalid(_) => ErrorKind::InvalidInput,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::Io { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                    ErrorKind::PermissionDenied
                }
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
                    ErrorKind::NoSpace
                }
                _ => ErrorKind::Io,
            },
            Error::Unsupported(_) => ErrorKind::Unsupported,
        }
    }

    /// Shorthand for an IO error on a path.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
