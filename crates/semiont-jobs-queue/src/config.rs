//! How a queue is set up: the seed's options (`data_dir`, `max_retries`,
//! `retention_period`) plus durability, retry policy and lease, and the
//! builder that combines them with a store and a clock.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{
    JobDefaults, JobLayout, JobType, RetryPolicy, DEFAULT_MAX_RETRIES, MAX_MAX_RETRIES,
};
use semiont_jobs_store::{Durability, JobStore};

use crate::{Clock, Error, JobQueue, Result, SystemClock};

/// How long finished jobs are kept by default (the seed's 24 hours).
pub const DEFAULT_RETENTION_PERIOD: Duration = Duration::from_secs(24 * 60 * 60);
/// Default lease of a running job whose owner's liveness cannot be seen.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default jobs directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "data/jobs";
/// How long a job past its execution timeout may take to stop after its
/// token fired, before the attempt is failed anyway (default).
pub const DEFAULT_TIMEOUT_GRACE: Duration = Duration::from_secs(5);

/// Settings of one job type, overriding the queue's own (`None`: the
/// queue's).
///
/// ```
/// use std::time::Duration;
/// use semiont_jobs_queue::{JobQueueConfig, TypePolicy};
///
/// let mut config = JobQueueConfig::default();
/// config.types.insert(
///     "detection".parse().unwrap(),
///     TypePolicy {
///         max_retries: Some(5),
///         priority: Some(10),
///         timeout: Some(Duration::from_secs(600)),
///         ..Default::default()
///     },
/// );
/// config.validate().unwrap();
/// let p = config.policy(&"detection".parse().unwrap());
/// assert_eq!((p.max_retries, p.priority, p.timeout), (5, 10, Some(Duration::from_secs(600))));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypePolicy {
    /// Retry budget of new jobs of the type that set none.
    pub max_retries: Option<u32>,
    /// Claim priority of new jobs of the type that set none.
    pub priority: Option<i16>,
    /// Execution timeout of one attempt: at the deadline the worker runtime
    /// fires the job's cancellation token, waits the grace period, and
    /// fails the attempt as retryable with code `TIMEOUT` (`None`: no
    /// timeout).
    pub timeout: Option<Duration>,
    /// How long a timed-out job may take to stop (default: the queue's
    /// `timeout_grace`).
    pub timeout_grace: Option<Duration>,
    /// Back-off between automatic retries of the type.
    pub retry_policy: Option<RetryPolicy>,
}

/// The settings that apply to one job type: its [`TypePolicy`] over the
/// queue's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EffectivePolicy {
    /// Retry budget of new jobs that set none.
    pub max_retries: u32,
    /// Claim priority of new jobs that set none.
    pub priority: i16,
    /// Execution timeout of one attempt, if any.
    pub timeout: Option<Duration>,
    /// How long a timed-out job may take to stop.
    pub timeout_grace: Duration,
    /// Back-off between automatic retries.
    pub retry_policy: RetryPolicy,
    /// The document layout of new jobs (the queue's).
    pub layout: JobLayout,
}

impl EffectivePolicy {
    /// The defaults new jobs of the type get.
    pub fn job_defaults(&self) -> JobDefaults {
        JobDefaults {
            max_retries: self.max_retries,
            priority: self.priority,
            layout: self.layout,
        }
    }
}

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
    /// How long a job past its execution timeout may take to stop before
    /// its attempt is failed anyway (default 5 s; see [`TypePolicy`]).
    pub timeout_grace: Duration,
    /// Per-type settings: default retry budget and priority, execution
    /// timeout, retry back-off.
    pub types: BTreeMap<JobType, TypePolicy>,
    /// The document layout of the jobs this queue creates (default
    /// [`JobLayout::Flat`], the seed's; [`JobLayout::Nested`] is what the
    /// published TypeScript package reads). Jobs already stored keep
    /// their own layout whatever this says.
    pub job_layout: JobLayout,
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
            timeout_grace: DEFAULT_TIMEOUT_GRACE,
            types: BTreeMap::new(),
            job_layout: JobLayout::Flat,
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
        check_retry_policy("", &self.retry_policy)?;
        for (t, p) in &self.types {
            if let Some(n) = p.max_retries.filter(|n| *n > MAX_MAX_RETRIES) {
                return Err(Error::InvalidConfig(format!(
                    "type {t}: max retries {n} out of range (0..={MAX_MAX_RETRIES})"
                )));
            }
            if p.timeout.is_some_and(|d| d.is_zero()) {
                return Err(Error::InvalidConfig(format!(
                    "type {t}: timeout must be longer than 0"
                )));
            }
            if let Some(rp) = &p.retry_policy {
                check_retry_policy(&format!("type {t}: "), rp)?;
            }
        }
        Ok(())
    }

    /// The settings that apply to jobs of `job_type`.
    pub fn policy(&self, job_type: &JobType) -> EffectivePolicy {
        let p = self.types.get(job_type);
        EffectivePolicy {
            max_retries: p.and_then(|p| p.max_retries).unwrap_or(self.max_retries),
            priority: p.and_then(|p| p.priority).unwrap_or(0),
            timeout: p.and_then(|p| p.timeout),
            timeout_grace: p
                .and_then(|p| p.timeout_grace)
                .unwrap_or(self.timeout_grace),
            retry_policy: p.and_then(|p| p.retry_policy).unwrap_or(self.retry_policy),
            layout: self.job_layout,
        }
    }
}

fn check_retry_policy(prefix: &str, p: &RetryPolicy) -> Result<()> {
    if !(p.jitter.is_finite() && (0.0..=1.0).contains(&p.jitter)) {
        return Err(Error::InvalidConfig(format!(
            "{prefix}retry jitter {} outside 0..=1",
            p.jitter
        )));
    }
    if p.base_delay > p.max_delay {
        return Err(Error::InvalidConfig(format!(
            "{prefix}retry base delay {:?} is longer than the maximum delay {:?}",
            p.base_delay, p.max_delay
        )));
    }
    Ok(())
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

    /// The document layout of new jobs.
    pub fn job_layout(mut self, layout: JobLayout) -> Self {
        self.config.job_layout = layout;
        self
    }

    /// Settings of one job type (replacing earlier ones for it).
    pub fn type_policy(mut self, job_type: JobType, policy: TypePolicy) -> Self {
        self.config.types.insert(job_type, policy);
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
        let typed = |p: TypePolicy| {
            let mut c = JobQueueConfig::default();
            c.types.insert(JobType::parse("detection").unwrap(), p);
            c
        };
        check(
            typed(TypePolicy {
                max_retries: Some(500),
                ..Default::default()
            }),
            "type detection: max retries 500",
        );
        check(
            typed(TypePolicy {
                timeout: Some(Duration::ZERO),
                ..Default::default()
            }),
            "type detection: timeout",
        );
        check(
            typed(TypePolicy {
                retry_policy: Some(RetryPolicy {
                    jitter: 2.0,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            "type detection: retry jitter 2",
        );
    }

    #[test]
    fn type_policies_override_the_queues_defaults() {
        let mut c = JobQueueConfig {
            max_retries: 2,
            ..Default::default()
        };
        let det = JobType::parse("detection").unwrap();
        let backoff = RetryPolicy {
            base_delay: Duration::from_secs(10),
            ..Default::default()
        };
        c.types.insert(
            det.clone(),
            TypePolicy {
                priority: Some(-3),
                timeout: Some(Duration::from_secs(60)),
                timeout_grace: Some(Duration::from_secs(1)),
                retry_policy: Some(backoff),
                ..Default::default()
            },
        );
        let p = c.policy(&det);
        assert_eq!(p.max_retries, 2, "not overridden");
        assert_eq!(p.priority, -3);
        assert_eq!(p.timeout, Some(Duration::from_secs(60)));
        assert_eq!(p.timeout_grace, Duration::from_secs(1));
        assert_eq!(p.retry_policy, backoff);
        let other = c.policy(&JobType::parse("noop").unwrap());
        assert_eq!(
            (other.max_retries, other.priority, other.timeout),
            (2, 0, None)
        );
        assert_eq!(other.timeout_grace, DEFAULT_TIMEOUT_GRACE);
        assert_eq!(other.retry_policy, RetryPolicy::default());
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
