//! The job queue of semiont-jobs: the seed's `JobQueue` API — create jobs,
//! read and update them, report progress, complete or fail them (with
//! automatic retry and back-off), list, count, poll, claim, cancel, retry,
//! clean up — on top of any [`JobStore`](semiont_jobs_store::JobStore), plus
//! a stream of job lifecycle events.
//!
//! The queue knows nothing about files or directories: storage, atomicity
//! and cross-process notifications are the store's. It owns validation, the
//! retry policy, retention, and a [`Clock`], so back-off and retention can
//! be tested on a [`ManualClock`] without waiting.
//!
//! Below, every snippet of the seed's API reference (§JobQueue) with its
//! Rust twin. They run on the in-memory store; with the filesystem backend
//! only the construction differs.
//!
//! # Initialization
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use semiont_jobs_queue::JobQueue;
//! use semiont_jobs_store::MemoryStore;
//!
//! let queue = JobQueue::builder()
//!     .data_dir("/path/to/data/jobs")
//!     .max_retries(3)
//!     .retention_period(Duration::from_secs(24 * 60 * 60)) // 24 hours
//!     .store(Arc::new(MemoryStore::new())) // any JobStore backend
//!     .build()?;
//!
//! queue.initialize().await?;
//! queue.initialize().await?; // idempotent
//! # Ok(())
//! # }
//! ```
//!
//! The same with a config struct:
//! `JobQueue::new(JobQueueConfig { max_retries: 3, ..Default::default() }, store)`
//! (see [`JobQueueConfig`]).
//!
//! # Creating Jobs
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! # let queue = semiont_jobs_queue::JobQueue::builder()
//! #     .store(Arc::new(semiont_jobs_store::MemoryStore::new()))
//! #     .build()?;
//! # queue.initialize().await?;
//! use semiont_jobs_model::{GenerationParams, JobStatus, NewJob};
//! use serde_json::json;
//!
//! let job = queue
//!     .create_job(
//!         NewJob::detection("user-123", "doc-456", ["Person", "Organization"]).max_retries(3),
//!     )
//!     .await?;
//!
//! assert!(job.id.as_str().starts_with("job-")); // job-0193c1f0-8a2b-7cde-...
//! assert_eq!(job.status, JobStatus::Pending);
//!
//! // The other request types: generation, and any custom type with JSON params.
//! let generation = NewJob::generation(
//!     "user-123",
//!     GenerationParams {
//!         reference_id: "ann-1".into(),
//!         source_resource_id: "doc-456".into(),
//!         title: Some("Alan Turing".into()),
//!         ..Default::default()
//!     },
//! );
//! let custom = NewJob::custom("my-job-type", "user-123", json!({ "items": 100 }))?;
//! // Bulk enqueue: one durability barrier for the whole batch.
//! let jobs = queue.create_jobs([generation, custom]).await?;
//! assert_eq!(jobs.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Job Status Management
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! # let queue = semiont_jobs_queue::JobQueue::builder()
//! #     .store(Arc::new(semiont_jobs_store::MemoryStore::new()))
//! #     .build()?;
//! # queue.initialize().await?;
//! # let new = || semiont_jobs_model::NewJob::detection("user-123", "doc-456", ["Person"]);
//! # let id = queue.create_job(new()).await?.id;
//! use semiont_jobs_model::{JobStatus, Progress};
//! use semiont_jobs_queue::JobFailure;
//! use serde_json::json;
//!
//! // Get job by ID
//! let job = queue.get_job(&id).await?;
//!
//! // Update job status (atomic operation: a conflict if another worker got it first)
//! queue.update_job_status(&id, JobStatus::Running).await?;
//!
//! // Update progress
//! queue
//!     .update_job_progress(
//!         &id,
//!         Progress {
//!             percentage: Some(50.0),
//!             message: Some("Processing entity types...".into()),
//!             current_step: Some(2),
//!             total_steps: Some(4),
//!             ..Default::default()
//!         },
//!     )
//!     .await?;
//!
//! // Complete job with result
//! let done = queue
//!     .complete_job(&id, json!({ "totalProcessed": 100, "errors": 0 }))
//!     .await?;
//! assert_eq!(done.status, JobStatus::Complete);
//!
//! // Fail job with error (another job: a complete job cannot fail)
//! # let id = queue.create_job(new()).await?.id;
//! # queue.update_job_status(&id, JobStatus::Running).await?;
//! let error = std::io::Error::other("Processing failed");
//! let failed = queue.fail_job(&id, JobFailure::from_error(&error)).await?;
//! // Retries left: back to pending, due again after a back-off.
//! assert_eq!(failed.status, JobStatus::Pending);
//! assert_eq!(failed.retry_count, 1);
//! assert_eq!(failed.error.as_deref(), Some("Processing failed"));
//! # let _ = job;
//! # Ok(())
//! # }
//! ```
//!
//! # Querying Jobs
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! # let queue = semiont_jobs_queue::JobQueue::builder()
//! #     .store(Arc::new(semiont_jobs_store::MemoryStore::new()))
//! #     .build()?;
//! # queue.initialize().await?;
//! # for _ in 0..3 {
//! #     queue.create_job(semiont_jobs_model::NewJob::detection("user-123", "doc", ["Person"])).await?;
//! # }
//! use semiont_jobs_model::{JobFilter, JobStatus, JobType};
//!
//! // List jobs with filters
//! let pending_jobs = queue
//!     .list_jobs(
//!         &JobFilter::default()
//!             .status(JobStatus::Pending)
//!             .job_type(JobType::Detection)
//!             .user("user-123")
//!             .limit(10)
//!             .offset(0),
//!     )
//!     .await?;
//! assert_eq!(pending_jobs.jobs.len(), 3); // newest first
//! assert_eq!(pending_jobs.total, 3); // all matches, for pagination
//!
//! // Get queue statistics
//! let stats = queue.get_stats().await?;
//! // QueueStats { pending: 3, running: 0, complete: 0, failed: 0, cancelled: 0, quarantined: 0 }
//! assert_eq!((stats.pending, stats.running, stats.complete), (3, 0, 0));
//!
//! // Poll for next pending job (FIFO); it stays pending
//! let next_job = queue.poll_next_pending_job("detection").await?;
//! assert_eq!(next_job.unwrap().id, pending_jobs.jobs[2].id);
//! # Ok(())
//! # }
//! ```
//!
//! # Maintenance
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! # let queue = semiont_jobs_queue::JobQueue::builder()
//! #     .store(Arc::new(semiont_jobs_store::MemoryStore::new()))
//! #     .build()?;
//! # queue.initialize().await?;
//! # let id = queue.create_job(semiont_jobs_model::NewJob::detection("u", "doc", ["Person"])).await?.id;
//! # queue.update_job_status(&id, semiont_jobs_model::JobStatus::Running).await?;
//! // Clean up old completed/failed jobs (older than the retention period)
//! let deleted = queue.cleanup_old_jobs().await?;
//! assert_eq!(deleted, 0);
//!
//! // Cancel a running job
//! let cancelled = queue.cancel_job(&id).await?;
//! assert_eq!(cancelled.status, semiont_jobs_model::JobStatus::Cancelled);
//! # Ok(())
//! # }
//! ```
//!
//! # Retry failed jobs
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! # let queue = semiont_jobs_queue::JobQueue::builder()
//! #     .store(Arc::new(semiont_jobs_store::MemoryStore::new()))
//! #     .build()?;
//! # let job = queue.create_job(semiont_jobs_model::NewJob::detection("u", "doc", ["Person"])).await?;
//! # queue.update_job_status(&job.id, semiont_jobs_model::JobStatus::Running).await?;
//! # queue.fail_job(&job.id, semiont_jobs_queue::JobFailure::permanent("bad input")).await?;
//! use semiont_jobs_model::{JobFilter, JobStatus};
//!
//! let failed = queue.list_jobs(&JobFilter::default().status(JobStatus::Failed)).await?;
//! for job in &failed.jobs {
//!     let retried = queue.retry_job(&job.id).await?;
//!     assert_eq!(retried.status, JobStatus::Pending);
//! }
//! # assert_eq!(failed.total, 1);
//! # Ok(())
//! # }
//! ```
//!
//! # Workers and events
//!
//! A worker claims atomically and writes fenced by its attempt; anyone can
//! watch the jobs' lifecycle:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::sync::Arc;
//! # let queue = semiont_jobs_queue::JobQueue::builder()
//! #     .store(Arc::new(semiont_jobs_store::MemoryStore::new()))
//! #     .build()?;
//! use semiont_jobs_model::{NewJob, Progress};
//! use semiont_jobs_queue::EventKind;
//!
//! let mut events = queue.subscribe();
//! queue.register_worker("worker-1").await?;
//! queue.create_job(NewJob::detection("u", "doc", ["Person"])).await?;
//!
//! let job = queue.claim_next_job(["detection"], "worker-1").await?.unwrap();
//! queue.update_job_progress_at(&job.id, job.attempt, Progress::percent(50.0)).await?;
//! queue.complete_job_at(&job.id, job.attempt, ()).await?;
//!
//! let mut kinds = Vec::new();
//! while kinds.len() < 4 {
//!     kinds.push(events.recv().await.unwrap().kind);
//! }
//! assert_eq!(
//!     kinds,
//!     [EventKind::Created, EventKind::Started, EventKind::Progress, EventKind::Completed]
//! );
//! # Ok(())
//! # }
//! ```

mod clock;
mod config;
mod error;
mod events;
mod failure;
mod finite;
mod jitter;
mod queue;
mod types;

pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{
    EffectivePolicy, JobQueueBuilder, JobQueueConfig, TypePolicy, DEFAULT_DATA_DIR, DEFAULT_LEASE,
    DEFAULT_RETENTION_PERIOD, DEFAULT_TIMEOUT_GRACE,
};
pub use error::{Error, ErrorKind, Result};
pub use events::{EventKind, EventStream, QueueEvent};
pub use failure::{JobFailure, MAX_ERROR_LEN};
pub use queue::{Enqueued, JobQueue};
pub use types::IntoTypeFilter;
