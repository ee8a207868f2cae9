//! How a queue is set up: the seed's options (`data_dir`, `max_retries`,
//! `retention_period`) plus durability, retry policy and lease, and the
//! builder that combines them with a store and a clock.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{RetryPolicy, DEFAULT_MAX_RETRIES, MAX_MAX_RETRIES};
use semiont_jobs_store::{Durability, JobStore};

use crate::{Clock, Error, JobQueue, Result, SystemClock};

/// How long finished jobs are kept by default (the seed's 24 hours).
pub const DEFAULT_RETENTION_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);
/// Default lease of a running job whose owner's liveness cannot be seen.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default jobs directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data/jobs";

/// The queue's settings: the seed's constructor options plus this
/// implementation's own.
///
/// ```
/// use std::time::Duration;
/// use semiont_jobs_queue::JobQueueConfig;
///
/// let config = JobQueueConfig {
///     data_dir: "/path/to/data/jobs".into(),
///     max_retries: 3,
///     retention_period: Duration::from_secs(24 * 60 * 60),
///     ..Default::default()
/// };
/// config.validate().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct JobQueueConfig {
    /// The jobs directory itself (the seed's `dataDir`, holding `pending/`,
    /// `running/`, ...). Used by the filesystem backend; ignored when the
    /// queue is given a store explicitly. Default [`DEFAULT_DATA_DIR`].
    pub data_dir: PathBuf,
    /// Retry budget of jobs created without their own (default 3, at most
    /// [`MAX_MAX_RETRIES`]).
    pub max_retries: u32,
    /// How long complete, failed and cancelled jobs are kept before
    /// [`JobQueue::cleanup_old_jobs`] deletes them (default 24 h).
    pub retention_period: Duration,
    /// How hard the filesystem backend works to keep acknowledged writes
    /// (default [`Durability::Fsync`]). Ignored with an explicit store.
    pub durability: Durability,
    /// Back-off between automatic retries of failed attempts.
    pub retry_policy: RetryPolicy,
    /// Lease of the jobs this queue's claims make running: how long an owner
    /// whose process cannot be watched may go without a heartbeat before its
    /// job is presumed abandoned (default 30 s).
    pub lease: Duration,
}

impl Default for JobQueueConfig {
    fn default() -> Self {
        JobQueueConfig {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            max_retries: DEFAULT_MAX_RETRIES,
            retention_period: DEFAULT_RETENTION_PERIOD,
            durability: Durability::default(),
            retry_policy: RetryPolicy::default(),
            lease: DEFAULT_LEASE,
        }
    }
}

impl JobQueueConfig {
    /// The defaults, with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        JobQueueConfig {
            data_dir: data_dir.into(),
            ..Default::default()
        }
    }

    /// Checks every setting; the error names the first one out of range.
    pub fn validate(&self) -> Result<()> {
        if self.max_retries > MAX_MAX_RETRIES {
            return Err(semiont_jobs_model::Error::MaxRetriesOutOfRange(u64::from(
                self.max_retries,
            ))
            .into());
        }
        if self.lease.is_zero() {
            return Err(Error::InvalidConfig("lease must be longer than 0".into()));
        }
        let p = &self.retry_policy;
        if !(p.jitter.is_finite() && (0.0..=1.0).contains(&p.jitter)) {
            return Err(Error::InvalidConfig(format!(
                "retry jitter {} outside 0..=1",
                p.jitter
            )));
        }
        if p.base_delay > p.max_delay {
            return Err(Error::InvalidConfig(format!(
                "retry base delay {:?} is longer than the maximum delay {:?}",
                p.base_delay, p.max_delay
            )));
        }
        Ok(())
    }
}

/// Builds a [`JobQueue`]: settings, the store, the clock.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use semiont_jobs_model::Timestamp;
/// use semiont_jobs_queue::{JobQueue, ManualClock};
/// use semiont_jobs_store::MemoryStore;
///
/// let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
/// let queue = JobQueue::builder()
///     .max_retries(5)
///     .retention_period(Duration::from_secs(3600))
///     .store(Arc::new(MemoryStore::new()))
///     .clock(clock.clone())
///     .build()
///     .unwrap();
/// assert_eq!(queue.config().max_retries, 5);
/// assert_eq!(queue.now(), clock.now());
/// # use semiont_jobs_queue::Clock;
/// ```
#[derive(Default)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct JobQueueBuilder {
    config: JobQueueConfig,
    store: Option<Arc<dyn JobStore>>,
    clock: Option<Arc<dyn Clock>>,
    worker_id: Option<String>,
    jitter_seed: Option<u64>,
}

impl fmt::Debug for JobQueueBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobQueueBuilder")
            .field("config", &self.config)
            .field("store", &self.store)
            .field("clock", &self.clock)
            .field("worker_id", &self.worker_id)
            .finish_non_exhaustive()
    }
}

impl JobQueueBuilder {
    /// A builder with the default settings and no store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces all settings at once.
    pub fn config(mut self, config: JobQueueConfig) -> Self {
        self.config = config;
        self
    }

    /// The jobs directory (the seed's `dataDir`).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.config.data_dir = dir.into();
        self
    }

    /// Default retry budget of new jobs (the seed's `maxRetries`).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = n;
        self
    }

    /// How long finished jobs are kept (the seed's `retentionPeriod`).
    pub fn retention_period(mut self, period: Duration) -> Self {
        self.config.retention_period = period;
        self
    }

    /// Durability of the filesystem backend.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.config.durability = durability;
        self
    }

    /// Back-off between automatic retries.
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.config.retry_policy = policy;
        self
    }

    /// Lease of claimed jobs.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease;
        self
    }

    /// The store holding the jobs: any backend.
    pub fn store(mut self, store: Arc<dyn JobStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock (default [`SystemClock`]); a [`ManualClock`](crate::ManualClock)
    /// makes back-off and retention testable without waiting.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The worker id under which this queue holds the jobs it sets running
    /// itself ([`JobQueue::update_job_status`]). Default
    /// `queue-<host>-<pid>-<n>`, unique per queue.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Seeds the retry jitter, for reproducible delays.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = Some(seed);
        self
    }

    /// Checks the settings and builds the queue. Does no IO: call
    /// [`JobQueue::initialize`] next.
    pub fn build(self) -> Result<JobQueue> {
        self.config.validate()?;
        let worker_id = match self.worker_id {
            Some(id) => {
                crate::queue::validate_worker_id(&id)?;
                id
            }
            None => default_worker_id(),
        };
        let store = match self.store {
            Some(store) => store,
            // The filesystem backend (semiont-jobs-store-fs) is opened here
            // from `data_dir` and `durability` once it is part of the
            // workspace; until then a store must be given.
            None => {
                return Err(Error::InvalidConfig(format!(
                    "no store for data dir {}: pass one with JobQueueBuilder::store",
                    self.config.data_dir.display()
                )))
            }
        };
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        Ok(JobQueue::from_parts(
            self.config,
            store,
            clock,
            worker_id,
            self.jitter_seed,
        ))
    }
}

fn default_worker_id() -> String {
    semiont_jobs_store::worker_id("queue")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn defaults_are_the_seeds() {
        let c = JobQueueConfig::default();
        assert_eq!(c.max_retries, 3);
        assert_eq!(c.retention_period, Duration::from_secs(86_400));
        assert_eq!(c.durability, Durability::Fsync);
        c.validate().unwrap();
    }

    #[test]
    fn out_of_range_settings_are_named() {
        let check = |config: JobQueueConfig, needle: &str| {
            let e = config.validate().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(needle), "{e}");
        };
        check(
            JobQueueConfig {
                max_retries: 101,
                ..Default::default()
            },
            "101",
        );
        check(
            JobQueueConfig {
                lease: Duration::ZERO,
                ..Default::default()
            },
            "lease",
        );
        let mut c = JobQueueConfig::default();
        c.retry_policy.jitter = f64::NAN;
        check(c.clone(), "NaN");
        c.retry_policy.jitter = 0.5;
        c.retry_policy.base_delay = Duration::from_secs(7200);
        check(c, "base delay");
    }

    #[test]
    fn default_worker_ids_are_unique_and_valid() {
        let a = default_worker_id();
        let b = default_worker_id();
        assert_ne!(a, b);
        assert!(a.starts_with("queue-"), "{a}");
        crate::queue::validate_worker_id(&a).unwrap();
    }

    #[test]
    fn build_without_store_is_an_error() {
        let e = JobQueueBuilder::new().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert!(e.to_string().contains("data/jobs"), "{e}");
    }
}
