//! semiont-jobs: a durable, filesystem-based job queue for long-running work
//! (LLM inference, document analysis, generation) with atomic state
//! transitions, live progress, automatic retry and a worker runtime.
//!
//! This facade re-exports every layer so applications depend on one crate:
//!
//! - [`model`]: jobs, ids, statuses, typed parameters and progress, the pure
//!   state machine and retry policy;
//! - [`store`]: the [`JobStore`](store::JobStore) backend contract and the
//!   in-memory backend;
//! - `store_fs` (feature `fs`): the filesystem backend;
//! - `store_pg` (feature `postgres`): the PostgreSQL backend;
//! - [`queue`]: [`JobQueue`](queue::JobQueue), the seed's queue API;
//! - `worker` (feature `worker`): the `JobWorker` trait and the `Worker`
//!   runner;
//! - `content` (feature `content`): documents, W3C annotations and the
//!   inference clients the detection and generation workers share;
//! - `detection` (feature `detection`): entity detection and its
//!   `DetectionWorker`;
//! - `generation` (feature `generation`): document generation and its
//!   `GenerationWorker`;
//! - `server` (feature `server`): the HTTP API, Server-Sent Events,
//!   Prometheus metrics and the web dashboard over any queue (`router`,
//!   `AppState`, `Server`).
//!
//! # Feature flags
//!
//! | feature | default | gives | pulls in |
//! | --- | --- | --- | --- |
//! | `fs` | yes | `store_fs` (`FsStore`, `FsOptions`) and `open_fs_queue` | `semiont-jobs-store-fs` |
//! | `postgres` | no | `store_pg` (`PgStore`, `PgOptions`, `DatabaseUrl`) and `open_pg_queue` | `semiont-jobs-store-pg` |
//! | `worker` | yes | `worker` (`JobWorker`, `JobContext`, `Worker`), the worker names of the `prelude` | `semiont-jobs-worker` |
//! | `content` | no | `content` (`ResourceStore`, `AnnotationStore`, `DataDir`, `inference`, samples) | `semiont-jobs-content` |
//! | `detection` | no | `detection` (`Detector`, `Recognizer`, `DetectionWorker`) | `content`, `worker`, `semiont-jobs-detection` |
//! | `generation` | no | `generation` (`Generator`, `GenerationWorker`) | `content`, `worker`, `semiont-jobs-generation` |
//! | `server` | no | `server` (`router`, `AppState`, `Server`, `ServerConfig`, `Tokens`): HTTP API, SSE, metrics, web dashboard | `semiont-jobs-server` (axum, tower-http, hyper) |
//! | `test-util` | no | `content::testing`: a scripted Ollama/OpenAI stub server on 127.0.0.1, for tests | `content` |
//! | `conformance` | no | `store::conformance`: the backend behaviour suite, for authors of new backends | — |
//! | `config` | no | `config` (`FileConfig`): the TOML configuration file — queue settings, retention, per-type policies — as the CLI reads it | `toml` |
//!
//! [`model`], [`store`] and [`queue`] are always there. A program that only
//! enqueues jobs can turn the default features off and keep `fs`:
//! `semiont-jobs = { version = "0.1", default-features = false, features = ["fs"] }`.
//! On docs.rs every item shows the feature it needs.
//!
//! The README's example (below, with default features) is compiled and run
//! as a doc test.
#![cfg_attr(
    all(feature = "fs", feature = "worker"),
    doc = include_str!("../README.md")
)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "content")]
#[cfg_attr(docsrs, doc(cfg(feature = "content")))]
#[doc(inline)]
pub use semiont_jobs_content as content;
#[cfg(feature = "detection")]
#[cfg_attr(docsrs, doc(cfg(feature = "detection")))]
#[doc(inline)]
pub use semiont_jobs_detection as detection;
#[cfg(feature = "generation")]
#[cfg_attr(docsrs, doc(cfg(feature = "generation")))]
#[doc(inline)]
pub use semiont_jobs_generation as generation;
#[doc(inline)]
pub use semiont_jobs_model as model;
#[doc(inline)]
pub use semiont_jobs_queue as queue;
#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
#[doc(inline)]
pub use semiont_jobs_server as server;
#[doc(inline)]
pub use semiont_jobs_store as store;
#[cfg(feature = "fs")]
#[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
#[doc(inline)]
pub use semiont_jobs_store_fs as store_fs;
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
#[doc(inline)]
pub use semiont_jobs_store_pg as store_pg;
#[cfg(feature = "worker")]
#[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
#[doc(inline)]
pub use semiont_jobs_worker as worker;

#[cfg(feature = "config")]
#[cfg_attr(docsrs, doc(cfg(feature = "config")))]
pub mod config;

/// Errors of the facade's conveniences.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The filesystem backend could not open the jobs directory.
    #[cfg(feature = "fs")]
    #[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
    #[error(transparent)]
    Open(#[from] semiont_jobs_store_fs::OpenError),
    /// The PostgreSQL backend could not open its schema.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    #[error(transparent)]
    OpenPg(#[from] semiont_jobs_store_pg::OpenError),
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
/// the seed), with `config.durability`, and initialises it. New jobs take
/// the document layout the directory recorded in its `format.json` (see
/// `semiont-jobs init`) when it has one, else `config.job_layout`.
#[cfg(feature = "fs")]
#[cfg_attr(docsrs, doc(cfg(feature = "fs")))]
pub async fn open_fs_queue(
    mut config: semiont_jobs_queue::JobQueueConfig,
) -> Result<semiont_jobs_queue::JobQueue, Error> {
    let store = semiont_jobs_store_fs::FsStore::open(
        &config.data_dir,
        semiont_jobs_store_fs::FsOptions::default().durability(config.durability),
    )
    .await?;
    if let Some(layout) = store
        .new_job_layout()
        .map_err(semiont_jobs_queue::Error::from)?
    {
        config.job_layout = layout;
    }
    let queue = semiont_jobs_queue::JobQueue::new(config, std::sync::Arc::new(store))?;
    queue.initialize().await?;
    Ok(queue)
}

/// Opens a [`JobQueue`](queue::JobQueue) on the PostgreSQL backend at
/// `url` (e.g. the value of `SEMIONT_JOBS_DATABASE_URL`), in the default
/// schema with `config.durability`, applying missing migrations, and
/// initialises it. [`open_pg_queue_with`] takes the backend's options.
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn open_pg_queue(
    url: &str,
    config: semiont_jobs_queue::JobQueueConfig,
) -> Result<semiont_jobs_queue::JobQueue, Error> {
    let url = semiont_jobs_store_pg::DatabaseUrl::parse(url)?;
    let options = semiont_jobs_store_pg::PgOptions::default().durability(config.durability);
    open_pg_queue_with(&url, options, config).await
}

/// Like [`open_pg_queue`], with the backend's options (schema, pool,
/// clock...).
#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub async fn open_pg_queue_with(
    url: &semiont_jobs_store_pg::DatabaseUrl,
    options: semiont_jobs_store_pg::PgOptions,
    config: semiont_jobs_queue::JobQueueConfig,
) -> Result<semiont_jobs_queue::JobQueue, Error> {
    let store = semiont_jobs_store_pg::PgStore::open(url, options).await?;
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
    #[cfg_attr(docsrs, doc(cfg(feature = "worker")))]
    #[doc(inline)]
    pub use semiont_jobs_worker::{JobContext, JobError, JobWorker, Worker, WorkerOptions};
}
