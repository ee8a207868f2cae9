//! The store error type, shared by every backend, and its kinds.
//!
//! The variants name what went wrong in terms every backend can use: a job
//! that is missing, taken or moved ([`Error::NotFound`],
//! [`Error::AlreadyExists`], [`Error::Conflict`]), a bad request
//! ([`Error::Invalid`]), an unreadable record ([`Error::Corrupt`], with a
//! location string: a file path, a table row), a local IO failure
//! ([`Error::Io`]), a server or connection that cannot be reached
//! ([`Error::Unavailable`], which callers retry after a back-off when it is
//! transient), and anything else a backend reports ([`Error::Backend`]).

use std::error::Error as StdError;
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
    /// The backend's server or connection cannot be reached. The worker
    /// runtime backs off and retries the store call; it never fails a job
    /// for it. See [`Error::is_transient`].
    Unavailable,
    /// The backend reported an error the contract has no kind for.
    Backend,
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
    /// Another job holds the unique key the write would take (kind
    /// [`ErrorKind::AlreadyExists`]).
    #[error("unique key {key:?} is held by job {holder}")]
    UniqueKeyTaken {
        /// The key.
        key: String,
        /// The job holding it.
        holder: JobId,
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
    #[error("corrupt job record {location}: {reason}")]
    Corrupt {
        /// Where the record is: a file path (the filesystem backend moves
        /// the file to quarantine), a table and key for a database.
        location: String,
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
    /// The backend's server or connection cannot be reached (connection
    /// refused or lost, server shutting down or restarting, pool exhausted,
    /// timeout). `transient` says whether the same call may succeed later
    /// without anybody changing anything.
    #[error("{store} is unavailable: {source}")]
    Unavailable {
        /// The backend, e.g. `postgres`.
        store: &'static str,
        /// Whether retrying the same call later may succeed.
        transient: bool,
        /// What the backend's client reported.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// An error of the backend that no other variant describes.
    #[error("{store} error: {source}")]
    Backend {
        /// The backend, e.g. `postgres`.
        store: &'static str,
        /// What the backend reported.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// [`JobStore::create_batch`](crate::JobStore::create_batch) failed
    /// after storing exactly the first `stored` jobs of the batch (0 for a
    /// backend that stores a batch in one transaction); the others are not
    /// stored. Its kind is the kind of `source`.
    #[error("batch create stopped after {stored} stored jobs: {source}")]
    Batch {
        /// How many jobs, from the start of the batch, are stored.
        stored: usize,
        /// Why the batch stopped.
        #[source]
        source: Box<Error>,
    },
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
            Error::AlreadyExists { .. } | Error::UniqueKeyTaken { .. } => ErrorKind::AlreadyExists,
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
            Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Backend { .. } => ErrorKind::Backend,
            Error::Batch { source, .. } => source.kind(),
        }
    }

    /// Whether the same call may succeed later without anybody changing
    /// anything: a transient [`Error::Unavailable`], or an IO error that
    /// timed out or was interrupted. The worker runtime retries such calls
    /// after its error back-off.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unavailable { transient, .. } => *transient,
            Error::Io { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::WouldBlock
            ),
            Error::Batch { source, .. } => source.is_transient(),
            _ => false,
        }
    }

    /// For an error of [`JobStore::create_batch`](crate::JobStore::create_batch):
    /// how many jobs, from the start of the batch, were stored.
    pub fn batch_stored(&self) -> Option<usize> {
        match self {
            Error::Batch { stored, .. } => Some(*stored),
            _ => None,
        }
    }

    /// For [`Error::UniqueKeyTaken`] (also inside [`Error::Batch`]): the
    /// job holding the key.
    pub fn unique_holder(&self) -> Option<&JobId> {
        match self {
            Error::UniqueKeyTaken { holder, .. } => Some(holder),
            Error::Batch { source, .. } => source.unique_holder(),
            _ => None,
        }
    }

    /// Wraps an error of `create_batch` with the number of jobs stored.
    pub fn batch(stored: usize, source: Error) -> Self {
        match source {
            // Never nest: the outer count is the batch's.
            Error::Batch { source, .. } => Error::Batch { stored, source },
            other => Error::Batch {
                stored,
                source: Box::new(other),
            },
        }
    }

    /// Shorthand for a corrupt record at `location`.
    pub fn corrupt(location: impl std::fmt::Display, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            location: location.to_string(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`Error::Unavailable`].
    pub fn unavailable(
        store: &'static str,
        transient: bool,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error::Unavailable {
            store,
            transient,
            source: source.into(),
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
