//! [`JobQueue`]: the seed's queue API on top of any [`JobStore`]. Validation,
//! the retry policy, retention and the queue's own clock live here; storage,
//! atomicity and change notifications are the store's.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{
    validate_progress, Checkpoint, Job, JobFilter, JobId, JobPage, JobStatus, JobType, NewJob,
    QueueStats, RetryPolicy, Timestamp, Transition, MAX_JSON_DEPTH, MAX_PARAMS_BYTES,
};
use semiont_jobs_store::{
    rules, CheckpointRequest, ClaimRequest, Expect, Heartbeat, JobSelector, JobStore, LostJob,
    RecoveryReport, TypeFilter, Updated, WorkerInfo, WorkerRecord,
};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};
use tracing::{debug, info, Instrument};

use crate::finite::first_non_finite;
use crate::jitter::Jitter;
use crate::{
    Clock, Error, EventStream, IntoTypeFilter, JobFailure, JobQueueBuilder, JobQueueConfig, Result,
};

/// Per-job locks: operations of this queue on one job are serialized, so
/// their store writes (and change events) happen in call order.
const LOCK_STRIPES: usize = 64;
/// Finished jobs read and deleted per round of retention cleanup.
const CLEANUP_BATCH: usize = 1000;
/// How often a cancel re-reads a job that moved under it before giving up.
const CANCEL_ATTEMPTS: usize = 16;
/// How often a create of a unique job retries when the job holding its key
/// vanished before it could be read.
const UNIQUE_ATTEMPTS: usize = 8;

/// What [`JobQueue::enqueue`] did: the job, and whether it was created now
/// or another job holding the same unique key was returned instead.
#[derive(Clone, Debug, PartialEq)]
pub struct Enqueued {
    /// The new job, or the job holding the request's unique key.
    pub job: Job,
    /// `true` when `job` was created by this call.
    pub created: bool,
}

/// The job queue: create, inspect, update, claim, cancel and clean up jobs
/// in any [`JobStore`].
///
/// Cheap to clone (clones share everything) and `Send + Sync`. Every method
/// validates its input before writing anything; every state change is a
/// conditional write in the store, so concurrent callers (tasks, or
/// processes sharing a filesystem store) cannot both win: the loser gets an
/// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) error.
///
/// Methods taking a job id accept anything that is `AsRef<str>`: a
/// [`JobId`], `&JobId`, `&str` or `String`. Ids are validated (an invalid id
/// is [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput), an unknown
/// one [`ErrorKind::NotFound`](crate::ErrorKind::NotFound)).
///
/// The seed-shaped methods that finish or update a running job by id alone
/// ([`complete_job`](Self::complete_job), [`fail_job`](Self::fail_job),
/// [`update_job_progress`](Self::update_job_progress)) act on whatever
/// attempt is running now. A worker should use the `*_at` variants, which
/// take the attempt it was given and fail with a conflict once it lost the
/// job (cancelled, or recovered after it was presumed dead).
#[derive(Clone)]
pub struct JobQueue {
    inner: Arc<Inner>,
}

struct Inner {
    config: JobQueueConfig,
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    worker_id: String,
    jitter: Jitter,
    /// Whether this queue's own worker id is registered with the store.
    registered: Mutex<bool>,
    locks: Box<[Mutex<()>]>,
}

impl fmt::Debug for JobQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobQueue")
            .field("worker_id", &self.inner.worker_id)
            .field("config", &self.inner.config)
            .field("store", &self.inner.store)
            .field("clock", &self.inner.clock)
            .finish_non_exhaustive()
    }
}

fn parse_id(id: &str) -> Result<JobId> {
    Ok(JobId::parse(id)?)
}

/// Worker ids name lock files in the filesystem backend: they follow the
/// rules of job ids.
pub(crate) fn validate_worker_id(id: &str) -> Result<()> {
    match JobId::parse(id) {
        Ok(_) => Ok(()),
        Err(semiont_jobs_model::Error::InvalidId { id, reason }) => {
            Err(Error::InvalidWorkerId { id, reason })
        }
        Err(other) => Err(other.into()),
    }
}

/// Serializes a progress or result value, refusing NaN and infinities
/// (which `serde_json` would silently turn into `null`), oversize values and
/// values nested deeper than [`MAX_JSON_DEPTH`] (unreadable once stored).
fn to_json<T: Serialize + ?Sized>(value: &T) -> std::result::Result<Value, String> {
    if let Some(problem) = first_non_finite(value) {
        return Err(problem);
    }
    let v = serde_json::to_value(value).map_err(|e| e.to_string())?;
    let depth = semiont_jobs_model::json_depth(&v);
    if depth > MAX_JSON_DEPTH {
        return Err(format!(
            "it is nested {depth} levels deep, more than the limit of {MAX_JSON_DEPTH}"
        ));
    }
    let size = serde_json::to_vec(&v).map_err(|e| e.to_string())?.len();
    if size > MAX_PARAMS_BYTES {
        return Err(format!(
            "it is {size} bytes, more than the limit of {MAX_PARAMS_BYTES}"
        ));
    }
    Ok(v)
}

fn progress_value<T: Serialize + ?Sized>(progress: &T) -> Result<Value> {
    let v = to_json(progress).map_err(semiont_jobs_model::Error::InvalidProgress)?;
    validate_progress(&v)?;
    Ok(v)
}

/// `Running` at `attempt` (when given), or the error explaining why not.
/// Whether `job` is running (at `attempt`, when given).
fn is_running_at(job: &Job, attempt: Option<u32>) -> bool {
    job.status == JobStatus::Running && attempt.is_none_or(|a| a == job.attempt)
}

fn check_running(
    job: &Job,
    attempt: Option<u32>,
    wrong_status: impl FnOnce(JobStatus) -> Error,
) -> Result<()> {
    match attempt {
        Some(a) if job.status != JobStatus::Running || job.attempt != a => Err(Error::Conflict {
            id: job.id.clone(),
            expected: Expect::running(a),
            actual: Some((job.status, job.attempt)),
        }),
        None if job.status != JobStatus::Running => Err(wrong_status(job.status)),
        _ => Ok(()),
    }
}

fn illegal(id: &JobId, to: JobStatus) -> impl FnOnce(JobStatus) -> Error + '_ {
    move |from| Error::IllegalTransition {
        id: id.clone(),
        from,
        to,
    }
}

/// `job` completed at `now` with `result`: no error of earlier attempts,
/// no lease, no `runAt`.
fn completed(mut job: Job, now: Timestamp, result: Option<Value>) -> Job {
    job.status = JobStatus::Complete;
    job.completed_at = Some(now);
    job.result = result;
    job.error = None;
    job.lease_expires_at = None;
    job.run_at = None;
    job
}

/// The expectation that exactly this version of a job is current.
fn exactly(job: &Job) -> Expect {
    Expect {
        status: job.status,
        attempt: Some(job.attempt),
    }
}

impl JobQueue {
    /// A builder: settings, store, clock.
    pub fn builder() -> JobQueueBuilder {
        JobQueueBuilder::new()
    }

    /// A queue with `config` over `store`, on the system clock.
    pub fn new(config: JobQueueConfig, store: Arc<dyn JobStore>) -> Result<Self> {
        JobQueue::builder().config(config).store(store).build()
    }

    pub(crate) fn from_parts(
        config: JobQueueConfig,
        store: Arc<dyn JobStore>,
        clock: Arc<dyn Clock>,
        worker_id: String,
        jitter_seed: Option<u64>,
    ) -> Self {
        JobQueue {
            inner: Arc::new(Inner {
                config,
                store,
                clock,
                worker_id,
                jitter: Jitter::new(jitter_seed),
                registered: Mutex::new(false),
                locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            }),
        }
    }

    /// The queue's settings.
    pub fn config(&self) -> &JobQueueConfig {
        &self.inner.config
    }

    /// The store the queue works on.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.store
    }

    /// The queue's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The current time by the queue's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    /// The worker id under which this queue holds the jobs that
    /// [`update_job_status`](Self::update_job_status) sets running.
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    async fn lock(&self, id: &JobId) -> MutexGuard<'_, ()> {
        let mut h = DefaultHasher::new();
        id.hash(&mut h);
        let stripe = (h.finish() % LOCK_STRIPES as u64) as usize;
        self.inner.locks[stripe].lock().await
    }

    /// Prepares the queue, like the seed's `initialize()`; idempotent.
    ///
    /// Registers this queue's own worker id with the store (so the jobs it
    /// sets running through [`update_job_status`](Self::update_job_status)
    /// have a live owner) and runs one recovery pass: running jobs of dead
    /// workers go back to pending, or to failed when their retries are spent.
    /// A second call does nothing; after [`close`](Self::close) it registers
    /// again.
    pub async fn initialize(&self) -> Result<()> {
        let span =
            tracing::debug_span!("job_queue", op = "initialize", worker_id = %self.inner.worker_id);
        async {
            let mut registered = self.inner.registered.lock().await;
            if *registered {
                return Ok(());
            }
            self.inner
                .store
                .register_worker(&WorkerInfo {
                    id: self.inner.worker_id.clone(),
                    lease: self.inner.config.lease,
                })
                .await?;
            let report = self.recover().await?;
            *registered = true;
            info!(
                requeued = report.requeued.len(),
                failed = report.failed.len(),
                repaired = report.repaired,
                unreadable = report.unreadable,
                "queue initialized"
            );
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// Unregisters this queue's own worker id: jobs it set running and did
    /// not finish become recoverable at once. The queue stays usable;
    /// [`initialize`](Self::initialize) registers it again.
    pub async fn close(&self) -> Result<()> {
        let mut registered = self.inner.registered.lock().await;
        if *registered {
            self.inner
                .store
                .unregister_worker(&self.inner.worker_id)
                .await?;
            *registered = false;
            info!(worker_id = %self.inner.worker_id, "queue closed");
        }
        Ok(())
    }

    /// Enqueues one job and returns it: a fresh `job-…` id, `pending`,
    /// `created` = now, the retry budget and priority of its type's policy
    /// (else the queue's `max_retries` and 0) unless the request sets its
    /// own. A request with a unique key that another job holds returns that
    /// job instead (see [`enqueue`](Self::enqueue), which says which
    /// happened).
    ///
    /// Errors ([`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput),
    /// nothing written): empty user id or entity-type list, parameters over
    /// 1 MiB or using reserved field names, `max_retries` above 100, a bad
    /// unique key.
    pub async fn create_job(&self, new: NewJob) -> Result<Job> {
        Ok(self.enqueue(new).await?.job)
    }

    /// Like [`create_job`](Self::create_job), saying whether the job was
    /// created: with a unique key that another job holds (pending or
    /// running, or finished within its after-finish period), nothing is
    /// created and that job is returned with `created: false`. Race-free
    /// across processes: of many concurrent requests with one key, one
    /// creates the job and the others get it.
    pub async fn enqueue(&self, new: NewJob) -> Result<Enqueued> {
        let job_type = new.params.job_type();
        let span = tracing::debug_span!("job_queue", op = "create_job", job_type = %job_type);
        async {
            let now = self.now();
            let defaults = self.inner.config.policy(&job_type).job_defaults();
            let job = new.into_job_with(JobId::generate_at(now), now, defaults)?;
            let mut tries = 0;
            loop {
                tries += 1;
                let err = match self.inner.store.create(&job).await {
                    Ok(()) => {
                        info!(job_id = %job.id, job_type = %job.job_type, status = %job.status, "job created");
                        return Ok(Enqueued { job, created: true });
                    }
                    Err(e) => e,
                };
                let Some(holder) = err.unique_holder().cloned() else {
                    return Err(err.into());
                };
                match self.inner.store.get(&holder).await {
                    Ok(existing) => {
                        info!(job_id = %existing.id, job_type = %existing.job_type, status = %existing.status, unique_key = ?job.unique_key, "job not created: its unique key is held");
                        return Ok(Enqueued {
                            job: existing,
                            created: false,
                        });
                    }
                    // The holder was deleted meanwhile: try again.
                    Err(e) if e.kind() == semiont_jobs_store::ErrorKind::NotFound
                        && tries < UNIQUE_ATTEMPTS => {}
                    Err(_) => return Err(err.into()),
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Enqueues many jobs behind one durability barrier (one flush for the
    /// batch on a durable store) and returns them in request order.
    ///
    /// Every request is validated first: one invalid request rejects the
    /// whole batch ([`Error::InvalidBatch`] names its position) and nothing
    /// is written. A store failure part-way leaves the jobs before the
    /// failing one stored.
    pub async fn create_jobs(&self, new: impl IntoIterator<Item = NewJob>) -> Result<Vec<Job>> {
        let span = tracing::debug_span!(
            "job_queue",
            op = "create_jobs",
            count = tracing::field::Empty
        );
        async {
            let now = self.now();
            let config = &self.inner.config;
            let jobs = new
                .into_iter()
                .enumerate()
                .map(|(index, n)| {
                    let defaults = config.policy(&n.params.job_type()).job_defaults();
                    n.into_job_with(JobId::generate_at(now), now, defaults)
                        .map_err(|source| Error::InvalidBatch { index, source })
                })
                .collect::<Result<Vec<Job>>>()?;
            tracing::Span::current().record("count", jobs.len());
            if jobs.is_empty() {
                return Ok(jobs);
            }
            self.inner.store.create_batch(&jobs).await?;
            info!(count = jobs.len(), "jobs created");
            Ok(jobs)
        }
        .instrument(span)
        .await
    }

    /// Reads a job.
    pub async fn get_job(&self, id: impl AsRef<str>) -> Result<Job> {
        let id = parse_id(id.as_ref())?;
        let span = tracing::debug_span!("job_queue", op = "get_job", job_id = %id);
        async { Ok(self.inner.store.get(&id).await?) }
            .instrument(span)
            .await
    }

    /// Moves a job to `status` — only along the state machine — and returns
    /// the job as written. What each target does:
    ///
    /// | from → to | effect |
    /// | --- | --- |
    /// | pending → running | takes the job for this queue's own worker id (attempt + 1, `startedAt`, lease), as a claim would, even before its `runAt`; fails with a **conflict** if another worker got it first |
    /// | running → complete | like [`complete_job`](Self::complete_job) without a result |
    /// | running → failed | a permanent failure ("status set to failed"), no retry |
    /// | running → pending | releases the job: due again at once, no retry counted |
    /// | pending/running → cancelled | like [`cancel_job`](Self::cancel_job) |
    /// | failed/cancelled → pending | like [`retry_job`](Self::retry_job) |
    ///
    /// Any other move is [`ErrorKind::IllegalTransition`](crate::ErrorKind::IllegalTransition).
    /// This is the seed's poll-then-set-running pattern; a worker runtime
    /// should use [`claim_next_job`](Self::claim_next_job), which does both
    /// in one atomic step.
    pub async fn update_job_status(&self, id: impl AsRef<str>, status: JobStatus) -> Result<Job> {
        let id = parse_id(id.as_ref())?;
        let span =
            tracing::debug_span!("job_queue", op = "update_job_status", job_id = %id, to = %status);
        async {
            if status == JobStatus::Running {
                self.initialize().await?;
            }
            let _guard = self.lock(&id).await;
            let job = self.inner.store.get(&id).await?;
            if status == JobStatus::Running && job.status == JobStatus::Running {
                // Someone else made it running first: a lost race, not a
                // misuse of the state machine.
                return Err(Error::Conflict {
                    expected: Expect::status(JobStatus::Pending),
                    actual: Some((job.status, job.attempt)),
                    id,
                });
            }
            let transition = Transition::between(job.status, status).ok_or_else(|| {
                Error::IllegalTransition {
                    id: id.clone(),
                    from: job.status,
                    to: status,
                }
            })?;
            match transition {
                Transition::Claim => self.start_locked(job).await,
                Transition::CancelPending | Transition::CancelRunning => {
                    self.cancel_locked(job).await
                }
                Transition::Complete => self.complete_locked(job, None).await,
                Transition::Fail => {
                    self.fail_locked(job, JobFailure::permanent("status set to failed"))
                        .await
                }
                Transition::Requeue => self.release_locked(job, None).await,
                Transition::Retry => self.retry_locked(job).await,
            }
        }
        .instrument(span)
        .await
    }

    async fn start_locked(&self, job: Job) -> Result<Job> {
        let req = ClaimRequest {
            types: TypeFilter::Any,
            worker_id: self.inner.worker_id.clone(),
            now: self.now(),
            lease: self.inner.config.lease,
        };
        let expect = exactly(&job);
        let running = rules::claimed(job, &req);
        self.transition(expect, &running).await?;
        info!(job_id = %running.id, job_type = %running.job_type, status = %running.status, attempt = running.attempt, worker_id = %self.inner.worker_id, "job started");
        Ok(running)
    }

    async fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
        match self.inner.store.transition(expect, job).await {
            Ok(()) => Ok(()),
            Err(e) => {
                debug!(job_id = %job.id, expected = %expect, to = %job.status, error = %e, "transition refused");
                Err(e.into())
            }
        }
    }

    /// Records progress of a running job (whatever attempt is running).
    ///
    /// Accepts the seed's generic [`Progress`](semiont_jobs_model::Progress),
    /// the typed [`DetectionProgress`](semiont_jobs_model::DetectionProgress)
    /// and [`GenerationProgress`](semiont_jobs_model::GenerationProgress), or
    /// any serializable object (`serde_json::json!({...})`). Rejected with
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput): a value
    /// that is not an object, a `percentage` that is not a number in
    /// 0..=100 (NaN and infinities included), more than 1 MiB. Rejected with
    /// [`ErrorKind::IllegalTransition`](crate::ErrorKind::IllegalTransition)
    /// unless the job is running.
    pub async fn update_job_progress(
        &self,
        id: impl AsRef<str>,
        progress: impl Serialize,
    ) -> Result<Job> {
        self.progress_inner(id.as_ref(), None, &progress).await
    }

    /// Like [`update_job_progress`](Self::update_job_progress), fenced: only
    /// while the job is running at `attempt` (else a conflict).
    pub async fn update_job_progress_at(
        &self,
        id: impl AsRef<str>,
        attempt: u32,
        progress: impl Serialize,
    ) -> Result<Job> {
        self.progress_inner(id.as_ref(), Some(attempt), &progress)
            .await
    }

    async fn progress_inner(
        &self,
        id: &str,
        attempt: Option<u32>,
        progress: &(impl Serialize + ?Sized),
    ) -> Result<Job> {
        let id = parse_id(id)?;
        let span = tracing::debug_span!("job_queue", op = "update_job_progress", job_id = %id);
        async {
            let value = progress_value(progress)?;
            let _guard = self.lock(&id).await;
            let mut job = self.inner.store.get(&id).await?;
            check_running(&job, attempt, |status| Error::NotRunning {
                id: id.clone(),
                status,
                action: "update the progress of",
            })?;
            job.progress = Some(value);
            self.inner.store.update_running(&job).await?;
            debug!(job_id = %job.id, job_type = %job.job_type, status = %job.status, attempt = job.attempt, "job progress");
            Ok(job)
        }
        .instrument(span)
        .await
    }

    /// Completes a running job with `result` (any serializable value; `()`
    /// or `null` for none) and clears the error of earlier attempts. The job
    /// must be running
    /// ([`ErrorKind::IllegalTransition`](crate::ErrorKind::IllegalTransition)
    /// otherwise); a result with NaN or over 1 MiB is refused.
    pub async fn complete_job(&self, id: impl AsRef<str>, result: impl Serialize) -> Result<Job> {
        self.complete_inner(id.as_ref(), None, &result).await
    }

    /// Like [`complete_job`](Self::complete_job), fenced by the worker's attempt.
    pub async fn complete_job_at(
        &self,
        id: impl AsRef<str>,
        attempt: u32,
        result: impl Serialize,
    ) -> Result<Job> {
        self.complete_inner(id.as_ref(), Some(attempt), &result)
            .await
    }

    async fn complete_inner(
        &self,
        id: &str,
        attempt: Option<u32>,
        result: &(impl Serialize + ?Sized),
    ) -> Result<Job> {
        let id = parse_id(id)?;
        let span = tracing::debug_span!("job_queue", op = "complete_job", job_id = %id);
        async {
            let result = to_json(result).map_err(|reason| Error::InvalidResult {
                id: id.clone(),
                reason,
            })?;
            let result = (!result.is_null()).then_some(result);
            let _guard = self.lock(&id).await;
            let now = self.now();
            // One read and one write under the store's lock.
            let update = self
                .inner
                .store
                .update_with(
                    &id,
                    Box::new(move |job: &Job| {
                        is_running_at(job, attempt).then(|| {
                            (
                                Expect::running(job.attempt),
                                completed(job.clone(), now, result),
                            )
                        })
                    }),
                )
                .await;
            match update {
                Ok(Updated::Written(done)) => {
                    debug!(job_id = %done.id, job_type = %done.job_type, status = %done.status, attempt = done.attempt, "job completed");
                    Ok(done)
                }
                Ok(Updated::Declined(job)) => {
                    check_running(&job, attempt, illegal(&id, JobStatus::Complete))?;
                    Err(Error::Conflict {
                        id: id.clone(),
                        expected: Expect::running(job.attempt),
                        actual: Some((job.status, job.attempt)),
                    })
                }
                Err(e) => {
                    debug!(job_id = %id, to = %JobStatus::Complete, error = %e, "transition refused");
                    Err(e.into())
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn complete_locked(&self, job: Job, result: Option<Value>) -> Result<Job> {
        let expect = Expect::running(job.attempt);
        let done = completed(job, self.now(), result);
        self.transition(expect, &done).await?;
        debug!(job_id = %done.id, job_type = %done.job_type, status = %done.status, attempt = done.attempt, "job completed");
        Ok(done)
    }

    /// Reports a failed attempt of a running job and applies the retry
    /// policy: a retryable failure with retries left (`retryCount <
    /// maxRetries`) sends the job back to pending with `retryCount + 1` and
    /// `runAt` = now + exponential back-off with jitter; a permanent failure,
    /// or one with no retries left, makes it failed. Either way `error` holds
    /// the message. Returns the job as written (check its status).
    ///
    /// `failure` is a message (`"..."`, retryable), an error value via
    /// [`JobFailure::from_error`], or a [`JobFailure`] saying whether to retry.
    pub async fn fail_job(
        &self,
        id: impl AsRef<str>,
        failure: impl Into<JobFailure>,
    ) -> Result<Job> {
        self.fail_inner(id.as_ref(), None, failure.into()).await
    }

    /// Like [`fail_job`](Self::fail_job), fenced by the worker's attempt.
    pub async fn fail_job_at(
        &self,
        id: impl AsRef<str>,
        attempt: u32,
        failure: impl Into<JobFailure>,
    ) -> Result<Job> {
        self.fail_inner(id.as_ref(), Some(attempt), failure.into())
            .await
    }

    async fn fail_inner(&self, id: &str, attempt: Option<u32>, failure: JobFailure) -> Result<Job> {
        let id = parse_id(id)?;
        let span = tracing::debug_span!("job_queue", op = "fail_job", job_id = %id);
        async {
            let _guard = self.lock(&id).await;
            let job = self.inner.store.get(&id).await?;
            check_running(&job, attempt, illegal(&id, JobStatus::Failed))?;
            self.fail_locked(job, failure).await
        }
        .instrument(span)
        .await
    }

    async fn fail_locked(&self, job: Job, failure: JobFailure) -> Result<Job> {
        let now = self.now();
        let expect = Expect::running(job.attempt);
        let mut next = job;
        next.error = Some(failure.error_text());
        next.lease_expires_at = None;
        if failure.retryable && RetryPolicy::should_retry(next.retry_count, next.max_retries) {
            let delay = self
                .inner
                .config
                .policy(&next.job_type)
                .retry_policy
                .delay(next.retry_count, self.inner.jitter.unit());
            next.status = JobStatus::Pending;
            next.retry_count += 1;
            next.run_at = Some(now.add(delay));
            next.worker_id = None;
            next.completed_at = None;
            self.transition(expect, &next).await?;
            debug!(job_id = %next.id, job_type = %next.job_type, status = %next.status, attempt = next.attempt, retry_count = next.retry_count, delay_ms = delay.as_millis() as u64, error = %failure, "job retrying");
        } else {
            next.status = JobStatus::Failed;
            next.completed_at = Some(now);
            next.run_at = None;
            self.transition(expect, &next).await?;
            debug!(job_id = %next.id, job_type = %next.job_type, status = %next.status, attempt = next.attempt, retryable = failure.retryable, error = %failure, "job failed");
        }
        Ok(next)
    }

    /// Gives a running job back: pending and due at once, without counting a
    /// retry (a worker shutting down before it started real work). Fenced by
    /// the worker's attempt.
    pub async fn release_job(&self, id: impl AsRef<str>, attempt: u32) -> Result<Job> {
        self.release_job_until(id, attempt, None).await
    }

    /// Like [`release_job`](Self::release_job), but the job is not due again
    /// before `run_at` (when given): for a worker that claimed a job it
    /// cannot process, so the queue's FIFO head does not come straight back
    /// to it while other jobs wait.
    pub async fn release_job_until(
        &self,
        id: impl AsRef<str>,
        attempt: u32,
        run_at: Option<Timestamp>,
    ) -> Result<Job> {
        let id = parse_id(id.as_ref())?;
        let span = tracing::debug_span!("job_queue", op = "release_job", job_id = %id);
        async {
            let _guard = self.lock(&id).await;
            let job = self.inner.store.get(&id).await?;
            check_running(&job, Some(attempt), illegal(&id, JobStatus::Pending))?;
            self.release_locked(job, run_at).await
        }
        .instrument(span)
        .await
    }

    async fn release_locked(&self, job: Job, run_at: Option<Timestamp>) -> Result<Job> {
        let expect = Expect::running(job.attempt);
        let mut next = job;
        next.status = JobStatus::Pending;
        next.worker_id = None;
        next.lease_expires_at = None;
        next.run_at = run_at;
        self.transition(expect, &next).await?;
        debug!(job_id = %next.id, job_type = %next.job_type, status = %next.status, attempt = next.attempt, "job released");
        Ok(next)
    }

    /// Manually retries a failed or cancelled job: back to pending, due at
    /// once, with a fresh retry budget (`retryCount` 0). The last error stays
    /// in `error` until the job runs again; its checkpoints stay, so the
    /// next attempt resumes where the last one got. Other statuses are
    /// [`ErrorKind::IllegalTransition`](crate::ErrorKind::IllegalTransition);
    /// a job whose unique key another job holds now is
    /// [`ErrorKind::Duplicate`](crate::ErrorKind::Duplicate).
    pub async fn retry_job(&self, id: impl AsRef<str>) -> Result<Job> {
        let id = parse_id(id.as_ref())?;
        let span = tracing::debug_span!("job_queue", op = "retry_job", job_id = %id);
        async {
            let _guard = self.lock(&id).await;
            let job = self.inner.store.get(&id).await?;
            if !matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
                return Err(Error::IllegalTransition {
                    id,
                    from: job.status,
                    to: JobStatus::Pending,
                });
            }
            self.retry_locked(job).await
        }
        .instrument(span)
        .await
    }

    async fn retry_locked(&self, job: Job) -> Result<Job> {
        let expect = exactly(&job);
        let next = rules::retried(job);
        self.transition(expect, &next).await?;
        info!(job_id = %next.id, job_type = %next.job_type, status = %next.status, "job resubmitted");
        Ok(next)
    }

    /// Cancels a job: a pending job is cancelled at once; a running job is
    /// cancelled and its worker fenced off (its next write is refused with a
    /// conflict, and a worker runtime watching the store's events stops it).
    /// A finished job is
    /// [`ErrorKind::IllegalTransition`](crate::ErrorKind::IllegalTransition),
    /// naming its status. If the job moves while being cancelled (claimed,
    /// requeued), the cancel re-reads it and tries again.
    pub async fn cancel_job(&self, id: impl AsRef<str>) -> Result<Job> {
        let id = parse_id(id.as_ref())?;
        let span = tracing::debug_span!("job_queue", op = "cancel_job", job_id = %id);
        async {
            let _guard = self.lock(&id).await;
            let job = self.inner.store.get(&id).await?;
            self.cancel_locked(job).await
        }
        .instrument(span)
        .await
    }

    async fn cancel_locked(&self, mut job: Job) -> Result<Job> {
        let mut tries = 0;
        loop {
            if !matches!(job.status, JobStatus::Pending | JobStatus::Running) {
                return Err(Error::IllegalTransition {
                    id: job.id,
                    from: job.status,
                    to: JobStatus::Cancelled,
                });
            }
            let expect = exactly(&job);
            let next = rules::cancelled(job.clone(), self.now());
            match self.transition(expect, &next).await {
                Ok(()) => {
                    info!(job_id = %next.id, job_type = %next.job_type, status = %next.status, from = %expect.status, attempt = next.attempt, "job cancelled");
                    return Ok(next);
                }
                Err(e) if e.is_conflict() && tries + 1 < CANCEL_ATTEMPTS => {
                    tries += 1;
                    job = self.inner.store.get(&job.id).await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Records a checkpoint of a running job at `attempt` (see
    /// [`Checkpoint`]): units it finished and cursors inside unfinished
    /// ones are merged into the job's `completedUnits` / `unitCursors`, the
    /// lease is renewed (a checkpoint counts as a heartbeat), and
    /// `progress`, when given, is written in the same write. Never
    /// throttled. Returns the job as written.
    ///
    /// Errors: a stale attempt or a job that is not running is a
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) and writes
    /// nothing; a bad unit name or progress value
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput).
    pub async fn checkpoint_job_at(
        &self,
        id: impl AsRef<str>,
        attempt: u32,
        checkpoint: &Checkpoint,
        progress: Option<Value>,
    ) -> Result<Job> {
        let id = parse_id(id.as_ref())?;
        let span = tracing::debug_span!("job_queue", op = "checkpoint_job", job_id = %id);
        async {
            checkpoint.validate()?;
            let progress = progress.as_ref().map(progress_value).transpose()?;
            let req = CheckpointRequest {
                id: id.clone(),
                attempt,
                checkpoint: checkpoint.clone(),
                progress,
                now: self.now(),
                lease: self.inner.config.lease,
            };
            // Serialized with this queue's progress writes of the job, which
            // rewrite the whole document.
            let _guard = self.lock(&id).await;
            let job = self.inner.store.checkpoint(&req).await?;
            debug!(job_id = %job.id, job_type = %job.job_type, attempt = job.attempt, completed_units = job.completed_units.len(), "job checkpoint");
            Ok(job)
        }
        .instrument(span)
        .await
    }

    /// Cancels every pending job matching `selector` (type, user) and
    /// returns how many were cancelled; running jobs are left alone.
    pub async fn cancel_pending_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let n = self
            .inner
            .store
            .cancel_pending(selector, self.now())
            .await?;
        info!(count = n, job_type = ?selector.job_type.as_ref().map(JobType::as_str), user_id = ?selector.user_id, "pending jobs cancelled");
        Ok(n)
    }

    /// Retries every failed job matching `selector` (type, user), as
    /// [`retry_job`](Self::retry_job) does one, and returns how many were
    /// retried (jobs whose unique key is held by another job stay failed).
    pub async fn retry_failed_jobs(&self, selector: &JobSelector) -> Result<u64> {
        let n = self.inner.store.retry_failed(selector).await?;
        info!(count = n, job_type = ?selector.job_type.as_ref().map(JobType::as_str), user_id = ?selector.user_id, "failed jobs resubmitted");
        Ok(n)
    }

    /// Pauses claims of `job_type` for every process sharing the store
    /// (running jobs finish); returns whether it was running before.
    pub async fn pause_type(&self, job_type: &JobType) -> Result<bool> {
        let changed = self.inner.store.set_paused(job_type, true).await?;
        info!(job_type = %job_type, changed, "job type paused");
        Ok(changed)
    }

    /// Resumes claims of a paused `job_type`; returns whether it was paused.
    pub async fn resume_type(&self, job_type: &JobType) -> Result<bool> {
        let changed = self.inner.store.set_paused(job_type, false).await?;
        info!(job_type = %job_type, changed, "job type resumed");
        Ok(changed)
    }

    /// The paused job types.
    pub async fn paused_types(&self) -> Result<std::collections::BTreeSet<JobType>> {
        Ok(self.inner.store.paused_types().await?)
    }

    /// Runs [`cleanup_old_jobs`](Self::cleanup_old_jobs) if `holder` gets
    /// the store's sweep lease for `ttl` (one sweep at a time across every
    /// process sharing the store): `Some(deleted)` when it swept, `None`
    /// when another holder's lease runs.
    pub async fn sweep(&self, holder: &str, ttl: Duration) -> Result<Option<u64>> {
        if !self
            .inner
            .store
            .try_lock_sweep(holder, ttl, self.now())
            .await?
        {
            debug!(holder, "retention sweep: another process holds the lease");
            return Ok(None);
        }
        self.cleanup_old_jobs().await.map(Some)
    }

    /// Lists jobs matching `filter` (status, type, user; newest first;
    /// `limit` and `offset` for paging), with the total number of matches.
    pub async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage> {
        let span = tracing::debug_span!("job_queue", op = "list_jobs", status = ?filter.status, job_type = ?filter.job_type);
        async {
            filter.validate()?;
            Ok(self.inner.store.list(filter).await?)
        }
        .instrument(span)
        .await
    }

    /// Job counts per status.
    pub async fn get_stats(&self) -> Result<QueueStats> {
        let span = tracing::debug_span!("job_queue", op = "get_stats");
        async { Ok(self.inner.store.stats().await?) }
            .instrument(span)
            .await
    }

    /// The job a claim of `types` would take now — the oldest due pending
    /// job, highest priority first; jobs whose `runAt` is later are skipped —
    /// without taking it.
    ///
    /// Like the seed, this only looks: several callers may see the same job.
    /// A caller that then sets it running with
    /// [`update_job_status`](Self::update_job_status) competes with the
    /// others through that conditional update (the loser gets a conflict).
    /// Workers should use [`claim_next_job`](Self::claim_next_job) instead.
    pub async fn poll_next_pending_job(&self, types: impl IntoTypeFilter) -> Result<Option<Job>> {
        let types = types.into_type_filter()?;
        let span = tracing::debug_span!("job_queue", op = "poll_next_pending_job", types = ?types);
        async { Ok(self.inner.store.peek_next(&types, self.now()).await?) }
            .instrument(span)
            .await
    }

    /// Atomically takes the next due job of `types` for `worker_id` (which
    /// should be registered with [`register_worker`](Self::register_worker)):
    /// running, attempt + 1, `startedAt` = now, lease = now + the configured
    /// lease. `None` when nothing is due. What the worker runtime uses.
    pub async fn claim_next_job(
        &self,
        types: impl IntoTypeFilter,
        worker_id: &str,
    ) -> Result<Option<Job>> {
        let types = types.into_type_filter()?;
        validate_worker_id(worker_id)?;
        let span = tracing::debug_span!("job_queue", op = "claim_next_job", worker_id = %worker_id);
        async {
            let req = ClaimRequest {
                types,
                worker_id: worker_id.to_owned(),
                now: self.now(),
                lease: self.inner.config.lease,
            };
            let job = self.inner.store.claim(&req).await?;
            if let Some(job) = &job {
                debug!(job_id = %job.id, job_type = %job.job_type, status = %job.status, attempt = job.attempt, worker_id = %worker_id, "job started");
            }
            Ok(job)
        }
        .instrument(span)
        .await
    }

    /// Atomically takes up to `max` due jobs of `types` for `worker_id` in
    /// claim order, in one store call (as [`claim_next_job`](Self::claim_next_job)
    /// does for one): what a runner with several free slots uses. Returns
    /// fewer, possibly none, when fewer are due.
    pub async fn claim_next_jobs(
        &self,
        types: impl IntoTypeFilter,
        worker_id: &str,
        max: usize,
    ) -> Result<Vec<Job>> {
        let types = types.into_type_filter()?;
        validate_worker_id(worker_id)?;
        let span =
            tracing::debug_span!("job_queue", op = "claim_next_jobs", worker_id = %worker_id, max);
        async {
            let req = ClaimRequest {
                types,
                worker_id: worker_id.to_owned(),
                now: self.now(),
                lease: self.inner.config.lease,
            };
            let jobs = self.inner.store.claim_batch(&req, max).await?;
            for job in &jobs {
                debug!(job_id = %job.id, job_type = %job.job_type, status = %job.status, attempt = job.attempt, worker_id = %worker_id, "job started");
            }
            Ok(jobs)
        }
        .instrument(span)
        .await
    }

    /// Deletes complete, failed and cancelled jobs that finished (by
    /// `completedAt`) longer than the retention period ago; returns how many
    /// were deleted. Pending and running jobs are never touched.
    pub async fn cleanup_old_jobs(&self) -> Result<u64> {
        self.cleanup_jobs_older_than(self.inner.config.retention_period)
            .await
    }

    /// Like [`cleanup_old_jobs`](Self::cleanup_old_jobs) with another age
    /// (the CLI's `cleanup --older-than`).
    pub async fn cleanup_jobs_older_than(&self, age: Duration) -> Result<u64> {
        let cutoff = self.now().sub(age);
        let span = tracing::debug_span!("job_queue", op = "cleanup_old_jobs", cutoff = %cutoff);
        async {
            let store = &self.inner.store;
            let mut deleted = 0u64;
            loop {
                // Jobs retried or deleted by someone else meanwhile are left
                // alone by the store; a round that deletes nothing ends it.
                let round = store.delete_finished_before(cutoff, CLEANUP_BATCH).await?;
                deleted += round;
                debug!(deleted = round, cutoff = %cutoff, "retention round");
                if round < CLEANUP_BATCH as u64 {
                    break;
                }
            }
            info!(deleted, cutoff = %cutoff, "retention cleanup");
            Ok(deleted)
        }
        .instrument(span)
        .await
    }

    /// One recovery pass now: running jobs of dead workers (unregistered,
    /// process gone, or lease expired) go back to pending, or to failed
    /// when their retries are spent.
    pub async fn recover(&self) -> Result<RecoveryReport> {
        let report = self.inner.store.recover(self.now()).await?;
        for id in &report.requeued {
            debug!(job_id = %id, status = "pending", "job recovered");
        }
        for id in &report.failed {
            debug!(job_id = %id, status = "failed", "job recovered");
        }
        Ok(report)
    }

    /// Declares a worker alive (until [`unregister_worker`](Self::unregister_worker)
    /// or its process ends), with the queue's lease.
    pub async fn register_worker(&self, worker_id: &str) -> Result<()> {
        validate_worker_id(worker_id)?;
        self.inner
            .store
            .register_worker(&WorkerInfo {
                id: worker_id.to_owned(),
                lease: self.inner.config.lease,
            })
            .await?;
        debug!(worker_id, "worker registered");
        Ok(())
    }

    /// Renews the leases of a registered worker's running jobs, and returns
    /// those of `held` (the `(id, attempt)` pairs the worker believes it
    /// runs) that the store no longer holds for it: cancelled, recovered,
    /// deleted or re-claimed. The worker stops those.
    pub async fn heartbeat(&self, worker_id: &str, held: &[(JobId, u32)]) -> Result<Vec<LostJob>> {
        validate_worker_id(worker_id)?;
        let beat = Heartbeat {
            worker_id: worker_id.to_owned(),
            now: self.now(),
            held: held.to_vec(),
        };
        Ok(self.inner.store.heartbeat(&beat).await?)
    }

    /// The workers the store knows of (live ones, and stopped ones while it
    /// keeps their records), in id order.
    pub async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        Ok(self.inner.store.workers().await?)
    }

    /// Job counts per status for each job type that has jobs.
    pub async fn get_type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>> {
        Ok(self.inner.store.type_stats().await?)
    }

    /// Declares a worker gone: its running jobs become recoverable at once.
    pub async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
        validate_worker_id(worker_id)?;
        self.inner.store.unregister_worker(worker_id).await?;
        debug!(worker_id, "worker unregistered");
        Ok(())
    }

    /// Subscribes to job lifecycle events from now on (see [`EventStream`]):
    /// changes made through this queue, anything else sharing its store, and
    /// — best effort, where the backend reports them — other processes.
    pub fn subscribe(&self) -> EventStream {
        EventStream::new(Arc::clone(&self.inner.store), Arc::clone(&self.inner.clock))
    }
}
