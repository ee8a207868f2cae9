//! The queue's error type and the kinds callers match on.

use semiont_jobs_model::{JobId, JobStatus};
use semiont_jobs_store::Expect;

/// Result alias of the queue crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as a kind callers match on (rather than on messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No job with that id.
    NotFound,
    /// The job changed under the caller: another worker claimed it first, it
    /// was cancelled or recovered, or the caller's attempt is stale. Re-read
    /// the job and decide again.
    Conflict,
    /// The job's current status does not allow the operation (complete a
    /// pending job, report progress on a finished one, retry a complete one).
    IllegalTransition,
    /// The request itself is invalid: a malformed id, type or parameter, a
    /// percentage outside 0..=100, a value out of range. Nothing was written.
    InvalidInput,
    /// The store failed (IO, corrupt data, no space, unsupported operation).
    Storage,
    /// The store's server or connection cannot be reached; nothing was
    /// decided. Retry after a back-off ([`Error::is_transient`] says whether
    /// the same call may succeed later as is).
    Unavailable,
    /// Another job holds the unique key the operation would take (a retry
    /// of a job whose key was taken meanwhile, a batch with a held key).
    Duplicate,
}

/// An error of a [`JobQueue`](crate::JobQueue) operation.
///
/// Messages are one lowercase line naming the job or the rejected value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No job with that id.
    #[error("job {id} not found")]
    NotFound {
        /// The id looked for.
        id: JobId,
    },
    /// The job is not in the state the operation expected any more.
    #[error("job {id} is {}, expected {expected}", describe(*actual))]
    Conflict {
        /// The job.
        id: JobId,
        /// What the operation required.
        expected: Expect,
        /// What was found (`None`: the job is gone).
        actual: Option<(JobStatus, u32)>,
    },
    /// The state machine has no move from the job's status to the requested one.
    #[error("illegal transition of job {id} from {from} to {to}")]
    IllegalTransition {
        /// The job.
        id: JobId,
        /// Its current status.
        from: JobStatus,
        /// The requested status.
        to: JobStatus,
    },
    /// The operation needs a running job.
    #[error("cannot {action} job {id}: it is {status}, not running")]
    NotRunning {
        /// The job.
        id: JobId,
        /// Its current status.
        status: JobStatus,
        /// What was attempted, e.g. `update the progress of`.
        action: &'static str,
    },
    /// The model rejected a value (id, type, parameters, progress, filter).
    #[error(transparent)]
    InvalidInput(#[from] semiont_jobs_model::Error),
    /// One job of a bulk request was rejected; nothing was written.
    #[error("job {index} of the batch: {source}")]
    InvalidBatch {
        /// Position of the rejected job in the request (0-based).
        index: usize,
        /// Why it was rejected.
        source: semiont_jobs_model::Error,
    },
    /// A job result could not be stored.
    #[error("invalid result for job {id}: {reason}")]
    InvalidResult {
        /// The job.
        id: JobId,
        /// What is wrong with the result.
        reason: String,
    },
    /// A worker id is unusable (worker ids follow the rules of job ids: they
    /// may name files).
    #[error("invalid worker id {id:?}: {reason}")]
    InvalidWorkerId {
        /// The rejected id (possibly truncated for display).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A queue setting is out of range, or a store is missing.
    #[error("invalid queue configuration: {0}")]
    InvalidConfig(String),
    /// Another job holds the unique key the operation would take.
    #[error("unique key {key:?} is held by job {holder}")]
    UniqueKeyTaken {
        /// The key.
        key: String,
        /// The job holding it.
        holder: JobId,
    },
    /// The store failed.
    #[error(transparent)]
    Store(semiont_jobs_store::Error),
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
            Error::Conflict { .. } => ErrorKind::Conflict,
            Error::IllegalTransition { .. } | Error::NotRunning { .. } => {
                ErrorKind::IllegalTransition
            }
            Error::InvalidInput(_)
            | Error::InvalidBatch { .. }
            | Error::InvalidResult { .. }
            | Error::InvalidWorkerId { .. }
            | Error::InvalidConfig(_) => ErrorKind::InvalidInput,
            Error::UniqueKeyTaken { .. } => ErrorKind::Duplicate,
            Error::Store(e) if e.unique_holder().is_some() => ErrorKind::Duplicate,
            Error::Store(e) if e.kind() == semiont_jobs_store::ErrorKind::Unavailable => {
                ErrorKind::Unavailable
            }
            Error::Store(_) => ErrorKind::Storage,
        }
    }

    /// Whether the same call may succeed later without anybody changing
    /// anything (a transient store failure: a lost connection, a timeout).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Store(e) if e.is_transient())
    }

    /// The job holding the unique key, for a [`ErrorKind::Duplicate`].
    pub fn unique_holder(&self) -> Option<&JobId> {
        match self {
            Error::UniqueKeyTaken { holder, .. } => Some(holder),
            Error::Store(e) => e.unique_holder(),
            _ => None,
        }
    }

    /// Whether this is a [`ErrorKind::Conflict`]: the usual outcome of a lost race.
    pub fn is_conflict(&self) -> bool {
        self.kind() == ErrorKind::Conflict
    }
}

impl From<semiont_jobs_store::Error> for Error {
    fn from(e: semiont_jobs_store::Error) -> Self {
        use semiont_jobs_store::Error as S;
        match e {
            S::NotFound { id } => Error::NotFound { id },
            S::Conflict {
                id,
                expected,
                actual,
            } => Error::Conflict {
                id,
                expected,
                actual,
            },
            S::Invalid(semiont_jobs_model::Error::IllegalTransition { id, from, to }) => {
                match semiont_jobs_model::JobId::parse(&id) {
                    Ok(id) => Error::IllegalTransition { id, from, to },
                    Err(_) => Error::InvalidInput(semiont_jobs_model::Error::IllegalTransition {
                        id,
                        from,
                        to,
                    }),
                }
            }
            S::Invalid(model) => Error::InvalidInput(model),
            S::UniqueKeyTaken { key, holder } => Error::UniqueKeyTaken { key, holder },
            other => Error::Store(other),
        }
    }
}
