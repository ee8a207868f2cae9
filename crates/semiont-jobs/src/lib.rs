//! semiont-jobs: a durable, filesystem-based job queue for long-running work
//! (LLM inference, document analysis, generation) with atomic state
//! transitions, progress tracking, automatic retry and a worker runtime.
//!
//! This facade re-exports the layers so applications depend on one crate:
//!
//! - [`model`]: jobs, ids, statuses, typed parameters and progress, the pure
//!   state machine and retry policy;
//! - [`store`]: the [`JobStore`](store::JobStore) backend contract and the
//!   in-memory backend.
//!
//! # Feature flags
//!
//! - `conformance`: the backend behaviour suite
//!   (`store::conformance`), for authors of new backends.
//!
//! # Example
//!
//! ```
//! use semiont_jobs::prelude::*;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let job = NewJob::detection("user-123", "doc-456", ["Person", "Organization"])
//!     .into_job(JobId::generate(), Timestamp::now(), 3)?;
//! store.create(&job).await?;
//! let claimed = store.claim_any("worker-1", Timestamp::now(), std::time::Duration::from_secs(30)).await?;
//! assert_eq!(claimed.map(|j| j.status), Some(JobStatus::Running));
//! # Ok(()) }
//! ```

#[doc(inline)]
pub use semiont_jobs_model as model;
#[doc(inline)]
pub use semiont_jobs_store as store;

/// The names most programs need.
pub mod prelude {
    #[doc(inline)]
    pub use semiont_jobs_model::{
        Job, JobFilter, JobId, JobStatus, JobType, NewJob, Progress, QueueStats, Timestamp,
    };
    #[doc(inline)]
    pub use semiont_jobs_store::{JobStore, JobStoreExt, MemoryStore};
}
