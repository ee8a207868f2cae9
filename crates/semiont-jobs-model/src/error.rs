//! The model's error type: everything a value can be rejected for.

use crate::JobStatus;

/// Result alias of the model crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a value was rejected by the model.
///
/// Messages are one line, lowercase, and name the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A job id failed validation (ids become file names).
    #[error("invalid job id {id:?}: {reason}")]
    InvalidId {
        /// The rejected id (possibly truncated for display).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A status string is not one of the five statuses.
    #[error("unknown job status {0:?} (expected pending, running, complete, failed or cancelled)")]
    UnknownStatus(String),
    /// A job type string is empty, too long, or has characters outside `[A-Za-z0-9._:-]`.
    #[error("invalid job type {job_type:?}: {reason}")]
    InvalidType {
        /// The rejected type.
        job_type: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The state machine forbids this move.
    #[error("illegal transition of job {id} from {from} to {to}")]
    IllegalTransition {
        /// The job concerned (empty when checked without a job).
        id: String,
        /// Current status.
        from: JobStatus,
        /// Requested status.
        to: JobStatus,
    },
    /// Job parameters are missing, of the wrong type or out of range.
    #[error("invalid parameters: {0}")]
    InvalidParams(String),
    /// A progress value is malformed (e.g. a percentage outside 0..=100 or NaN).
    #[error("invalid progress: {0}")]
    InvalidProgress(String),
    /// A timestamp could not be parsed.
    #[error("invalid timestamp {value:?}: {reason}")]
    InvalidTimestamp {
        /// The rejected text.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `maxRetries` is outside the accepted range.
    #[error("max retries {0} out of range (0..={max})", max = crate::MAX_MAX_RETRIES)]
    MaxRetriesOutOfRange(u64),
    /// A list filter is out of range.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// A job document is not valid job JSON.
    #[error("invalid job document: {0}")]
    InvalidJob(String),
    /// A checkpoint names a unit badly or records too many units.
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(String),
    /// A unique key is empty, too long or has control characters.
    #[error("invalid unique key {key:?}: {reason}")]
    InvalidUniqueKey {
        /// The rejected key (possibly truncated for display).
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}
