//! semiont-jobs: a durable, filesystem-based job queue for long-running work
//! (LLM inference, document analysis, generation) with atomic state
//! transitions, live progress, automatic retry and a worker runtime.
//!
//! This facade re-exports the layers so applications depend on one crate:
//!
//! - [`model`]: jobs, ids, statuses, typed parameters and progress, the pure
//!   state machine and retry policy;
//! - [`store`]: the [`JobStore`](store::JobStore) backend contract and the
//!   in-memory backend;
//! - [`store_fs`] (feature `fs`): the filesystem backend;
//! - [`queue`]: [`JobQueue`](queue::JobQueue), the seed's queue API;
//! - [`worker`] (feature `worker`): the [`JobWorker`](worker::JobWorker)
//!   trait and the [`Worker`](worker::Worker) runner.
//!
//! # Feature flags
//!
//! - `fs` (default): the filesystem backend and `open_fs_queue`.
//! - `worker` (default): the worker runtime. A program that only enqueues
//!   jobs can turn it off.
//! - `conformance`: the backend behaviour suite (`store::conformance`), for
//!   authors of new backends.
//! - `config`: the configuration file ([`config`]): queue settings,
//!   retention and per-type policies in TOML, as the CLI reads them.
//!
//! The README's example (below, with default features) is compiled and run
//! as a doc test.
#![cfg_attr(
    all(feature = "fs", feature = "worker"),
    doc = include_str!("../../../README.md")
)]

#[doc(inline)]
pub use semiont_jobs_model as model;
#[doc(inline)]
pub use semiont_jobs_queue as queue;
#[doc(inline)]
pub use semiont_jobs_store as store;
#[cfg(feature = "fs")]
#[doc(inline)]
pub use semiont_jobs_store_fs as store_fs;
#[cfg(feature = "worker")]
#[doc(inline)]
pub use semiont_jobs_worker as worker;

#[cfg(feature = "config")]
pub mod config;

/// Errors of the facade's conveniences.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The filesystem backend could not open the jobs directory.
    #[cfg(feature = "fs")]
    #[error(transparent)]
    Open(#[from] semiont_jobs_store_fs::OpenError),
    /// The queue refused its configuration or could not initialise.
    #[error(transparent)]
    Queue(#[from] semiont_jobs_queue::Error),
    /// A configuration file is unusable: the file, the line when known,
    /// and what is wrong, naming the key.
    #[cfg(feature = "config")]
    #[error("config file {file}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Config {
        /// The file, as given.
        file: String,
        /// The line (1-based) of the problem, when known.
        line: Option<usize>,
        /// What is wrong.
        reason: String,
    },
}

/// Opens (creating if needed) a [`JobQueue`](queue::JobQueue) on the
/// filesystem backend in `config.data_dir` (the jobs directory itself, as in
/// the seed), with `config.durability`, and initialises it.
#[cfg(feature = "fs")]
pub async fn open_fs_queue(
    config: semiont_jobs_queue::JobQueueConfig,
) -> Result<semiont_jobs_queue::JobQueue, Error> {
    let store = semiont_jobs_store_fs::FsStore::open(
        &config.data_dir,
        semiont_jobs_store_fs::FsOptions::default().durability(config.durability),
    )
    .await?;
    let queue = semiont_jobs_queue::JobQueue::new(config, std::sync::Arc::new(store))?;
    queue.initialize().await?;
    Ok(queue)
}

/// The names most programs need.
pub mod prelude {
    #[doc(inline)]
    pub use semiont_jobs_model::{
        Job, JobFilter, JobId, JobStatus, JobType, NewJob, Progress, QueueStats, Timestamp,
    };
    #[doc(inline)]
    pub use semiont_jobs_queue::{JobQueue, JobQueueConfig};
    #[doc(inline)]
    pub use semiont_jobs_store::{JobStore, JobStoreExt, MemoryStore};
    #[cfg(feature = "worker")]
    #[doc(inline)]
    pub use semiont_jobs_worker::{JobContext, JobError, JobWorker, Worker, WorkerOptions};
}
