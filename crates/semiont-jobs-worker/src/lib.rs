//! The worker runtime of semiont-jobs: the [`JobWorker`] trait (the seed's
//! `JobWorker` base class) and [`Worker`], the runner that claims jobs from a
//! [`JobQueue`](semiont_jobs_queue::JobQueue) and executes them.
//! [`JobEngine`] and [`EngineWorker`] make an engine of one job type with
//! typed parameters (detection, generation) a `JobWorker` without glue of
//! its own.
//!
//! What the runner guarantees:
//!
//! - **Wake-ups, not polling**: an idle runner sleeps until the store reports
//!   new work (in this process or, where the backend can see it, in another);
//!   `poll_interval` is only a fallback.
//! - **Liveness**: the runner registers its worker id with the store and
//!   renews its lease on a timer independent of progress writes, so a long
//!   job is never mistaken for a dead one, while a dead process's jobs are
//!   recovered by other workers.
//! - **Cancellation from anywhere**: when a job is cancelled (by any process)
//!   or its lease is lost, its [`JobContext::cancellation_token`] fires and the
//!   runner records nothing further for that attempt.
//! - **Isolation**: a panic in [`JobWorker::execute_job`] fails that attempt
//!   (retryable); the runner keeps going.
//! - **Graceful shutdown**: [`Worker::stop`] stops claiming, waits for running
//!   jobs, then cancels them cooperatively after `shutdown_timeout` and puts
//!   them back to pending — never half-complete.
//! - **Timeouts**: a job type with an execution timeout (the queue's
//!   [`TypePolicy`](semiont_jobs_queue::TypePolicy)) has its token fired at
//!   the deadline, a grace period to stop, and its attempt failed as
//!   retryable with code `TIMEOUT`.
//! - **Resumable work**: [`JobContext::checkpoint`] records finished units
//!   (a heartbeat too); a retry reads them back
//!   ([`JobContext::completed_units`], [`JobContext::cursor`]).
//! - **Retention**: the runner sweeps finished jobs past the queue's
//!   retention period on a timer, one process at a time
//!   ([`WorkerOptions::sweep_interval`]).
//!
//! Every execution logs structured `tracing` events: `job.started`,
//! `job.completed`, `job.failed`, `job.retrying`, `job.cancelled`,
//! `job.released`, `job.lost`, `job.recovered`, `job.timeout`, with
//! `job_id`, `attempt` and `worker_id` fields; and `queue.swept` with the
//! number of jobs deleted.

mod context;
mod engine;
mod error;
mod runner;
mod worker;

pub use context::JobContext;
pub use engine::{EngineError, EngineWorker, JobEngine};
pub use error::{Error, JobError, JobErrorKind, Result};
pub use runner::{Worker, WorkerOptions, DEFAULT_CLAIM_COOLDOWN, DEFAULT_SWEEP_INTERVAL};
pub use worker::JobWorker;
