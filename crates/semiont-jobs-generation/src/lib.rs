//! Document generation for semiont-jobs: from a reference annotation in a
//! source document, write a markdown document about the referenced
//! subject, store it as a new resource, and link the reference to it.
//!
//! [`Generator`] is the engine a `generation` job worker wraps. It takes
//! the job id, [`GenerationParams`](semiont_jobs_model::GenerationParams),
//! a [`ProgressSink`](semiont_jobs_content::ProgressSink) of
//! [`GenerationProgress`](semiont_jobs_model::GenerationProgress) and a
//! cancellation token, and returns a
//! [`GenerationResult`](semiont_jobs_model::GenerationResult) or an
//! [`Error`] that says whether a retry may help. It is idempotent by job id.
//!
//! [`GenerationWorker`] wraps it as a `JobWorker` for the worker runtime;
//! the engine itself knows nothing about the queue.

mod error;
mod generator;
mod worker;

pub use error::{Error, Result};
pub use generator::{GenerationOptions, Generator};
pub use worker::GenerationWorker;
