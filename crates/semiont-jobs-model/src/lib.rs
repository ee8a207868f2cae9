//! The job model of semiont-jobs: ids, statuses, job types and their typed
//! parameters, progress and result shapes, the pure state machine, the retry
//! policy, list filters and queue statistics.
//!
//! This crate does no IO and has no async code. Everything here is a value or a
//! pure function, so the rules of the queue can be tested exhaustively without
//! a disk or a runtime.
//!
//! A [`Job`] document has one of two layouts ([`JobLayout`]): the seed's
//! flat camelCase JSON, or the nested one the published `@semiont/jobs`
//! TypeScript package writes (`status`, `metadata`, `params`, ...). A job
//! read in one layout is written back in it, and fields this crate does not
//! know survive a read-modify-write in either.

mod checkpoint;
mod error;
mod filter;
mod id;
mod job;
mod layout;
mod progress;
mod retry;
mod status;
mod time;

pub use checkpoint::{
    merge_checkpoint, validate_unit, Checkpoint, UnitCursor, MAX_UNITS, MAX_UNIT_LEN,
};
pub use error::{Error, Result};
pub use filter::{JobFilter, JobPage, QueueStats, TypeFilter, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT};
pub use id::{check_file_name_id, IdRejection, JobId, MAX_ID_LEN};
pub use job::{
    json_depth, validate_unique_key, DetectionParams, GenerationParams, Job, JobDefaults,
    JobParams, JobType, NewJob, UniqueScope, DEFAULT_MAX_RETRIES, MAX_JSON_DEPTH, MAX_MAX_RETRIES,
    MAX_PARAMS_BYTES, MAX_UNIQUE_KEY_LEN, RESERVED_FIELDS,
};
pub use layout::{JobLayout, NestedExtra};
pub use progress::{
    validate_progress, DetectionProgress, DetectionResult, GenerationProgress, GenerationResult,
    GenerationStage, Progress,
};
pub use retry::RetryPolicy;
pub use status::{check_transition, is_legal_transition, JobStatus, Transition};
pub use time::Timestamp;
