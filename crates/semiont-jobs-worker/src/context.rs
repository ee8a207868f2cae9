//! [`JobContext`]: what a running job can use — throttled progress reports,
//! checkpoints of finished work, its cancellation token, its attempt and
//! worker id, and concurrent batches.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use semiont_jobs_model::{validate_progress, Checkpoint, Job, JobId, JobType, UnitCursor};
use semiont_jobs_queue::JobQueue;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::JobError;

/// Why a job's token fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Cancelled by a user (any process).
    Cancelled,
    /// The worker no longer owns the job.
    LeaseLost,
    /// No heartbeat succeeded within the lease (minus the margin): the job
    /// may have been recovered elsewhere, so nothing more is recorded.
    LeaseExpired,
    /// The runner is shutting down and gives the job back.
    Shutdown,
    /// The job ran past its type's execution timeout.
    TimedOut,
}

/// Finished units and cursors: the job's, as claimed, plus this attempt's
/// checkpoints.
#[derive(Debug, Default)]
struct Units {
    completed: Vec<String>,
    cursors: BTreeMap<String, UnitCursor>,
}

#[derive(Debug, Default)]
struct ProgressSlot {
    /// The newest value not yet written.
    pending: Option<Value>,
    /// When the last write started.
    last_write: Option<Instant>,
    /// A delayed flush is scheduled.
    scheduled: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) queue: JobQueue,
    pub(crate) job_id: JobId,
    pub(crate) job_type: JobType,
    pub(crate) attempt: u32,
    pub(crate) worker_id: Arc<str>,
    pub(crate) token: CancellationToken,
    pub(crate) reason: Mutex<Option<StopReason>>,
    /// Set once `execute_job` has returned: from then on the runner only
    /// records the outcome (a record that conflicts tells it the job is no
    /// longer its own), so there is nothing left for the token to stop.
    pub(crate) executed: std::sync::atomic::AtomicBool,
    progress_interval: Duration,
    /// When the lease was last known renewed: the claim, then each
    /// heartbeat that succeeded (the time it was sent).
    renewed: Mutex<Instant>,
    slot: Mutex<ProgressSlot>,
    /// Serializes writes so the newest value is always written last.
    write_lock: tokio::sync::Mutex<()>,
    units: Mutex<Units>,
}

impl Shared {
    /// Fires the token, remembering the first reason.
    pub(crate) fn stop(&self, reason: StopReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.token.cancel();
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a lease renewal sent at `at` (never moves backwards).
    pub(crate) fn lease_renewed(&self, at: Instant) {
        let mut r = self.renewed.lock().unwrap_or_else(|e| e.into_inner());
        if at > *r {
            *r = at;
        }
    }

    /// When the lease was last known renewed.
    pub(crate) fn renewed_at(&self) -> Instant {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, ProgressSlot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the newest pending value, if any.
    pub(crate) async fn flush(&self) -> Result<(), JobError> {
        let _write = self.write_lock.lock().await;
        let value = {
            let mut slot = self.slot();
            slot.last_write = Some(Instant::now());
            slot.pending.take()
        };
        let Some(value) = value else { return Ok(()) };
        match self
            .queue
            .update_job_progress_at(&self.job_id, self.attempt, &value)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.is_transient() => {
                // The store is briefly unreachable: progress is best effort
                // and the newest value is written by the next write or the
                // flush before completion. Not the job's failure.
                tracing::warn!(job_id = %self.job_id, error = %e, "progress write failed; will retry");
                let mut slot = self.slot();
                if slot.pending.is_none() {
                    slot.pending = Some(value);
                }
                Ok(())
            }
            Err(e) => {
                let err = JobError::from(e);
                match err.kind() {
                    crate::JobErrorKind::LeaseLost | crate::JobErrorKind::Cancelled => {
                        self.stop(StopReason::LeaseLost);
                    }
                    _ => {
                        tracing::warn!(job_id = %self.job_id, error = %err, "progress write failed")
                    }
                }
                Err(err)
            }
        }
    }
}

/// The context of one attempt of one job, given to
/// [`JobWorker::execute_job`](crate::JobWorker::execute_job). Cheap to clone.
#[derive(Clone, Debug)]
pub struct JobContext {
    pub(crate) shared: Arc<Shared>,
}

impl JobContext {
    pub(crate) fn new(
        queue: JobQueue,
        job: &Job,
        worker_id: Arc<str>,
        progress_interval: Duration,
        claimed_at: Instant,
    ) -> Self {
        JobContext {
            shared: Arc::new(Shared {
                queue,
                job_id: job.id.clone(),
                job_type: job.job_type.clone(),
                attempt: job.attempt,
                worker_id,
                token: CancellationToken::new(),
                reason: Mutex::new(None),
                executed: std::sync::atomic::AtomicBool::new(false),
                progress_interval,
                renewed: Mutex::new(claimed_at),
                slot: Mutex::new(ProgressSlot::default()),
                write_lock: tokio::sync::Mutex::new(()),
                units: Mutex::new(Units {
                    completed: job.completed_units.clone(),
                    cursors: job.unit_cursors.clone(),
                }),
            }),
        }
    }

    /// A context for one attempt of `job` (which must be running) outside a
    /// runner: for testing a [`JobWorker`](crate::JobWorker) implementation
    /// or running a job by hand. Progress is written at most every 250 ms;
    /// nothing fires the token unless you cancel it.
    pub fn detached(queue: JobQueue, job: &Job) -> Self {
        let worker_id: Arc<str> = job.worker_id.as_deref().unwrap_or("detached").into();
        Self::new(
            queue,
            job,
            worker_id,
            Duration::from_millis(250),
            Instant::now(),
        )
    }

    /// The job's id.
    pub fn job_id(&self) -> &JobId {
        &self.shared.job_id
    }

    /// The job's type.
    pub fn job_type(&self) -> &JobType {
        &self.shared.job_type
    }

    /// This attempt's number (1 for the first run).
    pub fn attempt(&self) -> u32 {
        self.shared.attempt
    }

    /// The id of the worker running this attempt.
    pub fn worker_id(&self) -> &str {
        &self.shared.worker_id
    }

    /// The queue, for jobs that enqueue follow-up work.
    pub fn queue(&self) -> &JobQueue {
        &self.shared.queue
    }

    /// Fires when the job is cancelled (from any process), when the worker
    /// loses the job, or when the runner's shutdown timeout passes. Check it
    /// between steps, or `select!` on [`CancellationToken::cancelled`].
    pub fn cancellation_token(&self) -> &CancellationToken {
        &self.shared.token
    }

    /// Whether the token has fired.
    pub fn is_cancelled(&self) -> bool {
        self.shared.token.is_cancelled()
    }

    /// `Err(JobError::cancelled())` once the token has fired, for `?` between
    /// steps.
    pub fn check_cancelled(&self) -> Result<(), JobError> {
        if self.is_cancelled() {
            Err(JobError::cancelled())
        } else {
            Ok(())
        }
    }

    /// Reports progress: the seed's generic shape
    /// ([`Progress`](semiont_jobs_model::Progress)), a typed shape, or any
    /// JSON object.
    ///
    /// Writes are throttled: at most one per progress interval, the newest
    /// value wins, and the last value is written before the job completes.
    /// Fails with a cancelled error once the job was cancelled, and with a
    /// permanent error for a malformed value (a percentage outside 0..=100).
    pub async fn update_progress(&self, progress: impl Serialize) -> Result<(), JobError> {
        self.check_cancelled()?;
        let value = serde_json::to_value(&progress).map_err(|e| {
            JobError::permanent(format!("progress is not serializable: {e}"))
                .with_code("INVALID_PROGRESS")
        })?;
        validate_progress(&value)
            .map_err(|e| JobError::permanent(e.to_string()).with_code("INVALID_PROGRESS"))?;
        let shared = &self.shared;
        let wait = {
            let mut slot = shared.slot();
            slot.pending = Some(value);
            let due = slot
                .last_write
                .map(|t| t + shared.progress_interval)
                .unwrap_or_else(Instant::now);
            let now = Instant::now();
            if due <= now {
                None
            } else if slot.scheduled {
                return Ok(());
            } else {
                slot.scheduled = true;
                Some(due)
            }
        };
        match wait {
            None => shared.flush().await,
            Some(due) => {
                let shared = Arc::clone(shared);
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => {}
                        _ = shared.token.cancelled() => {}
                    }
                    shared.slot().scheduled = false;
                    if !shared.token.is_cancelled() {
                        let _ = shared.flush().await;
                    }
                });
                Ok(())
            }
        }
    }

    /// Records a checkpoint: units of work this attempt finished (their
    /// effects are stored) and cursors inside unfinished ones. Merged into
    /// the job's `completedUnits` and `unitCursors` (union; a cursor only
    /// moves forward; a completed unit's cursor is dropped), written at once
    /// (never throttled) together with the newest progress not yet written,
    /// and counted as a heartbeat: the lease is renewed and the runner's
    /// watchdog restarts its clock for this job.
    ///
    /// What it records survives a crash, a retry and a final failure: the
    /// next attempt reads it with [`completed_units`](Self::completed_units)
    /// and [`cursor`](Self::cursor) and skips what is done.
    ///
    /// Fails with a cancelled error once the job was cancelled, a lease-lost
    /// error once it is no longer this attempt's (nothing written), a
    /// permanent error for a bad unit name, and a retryable error when the
    /// store cannot be reached for a while.
    pub async fn checkpoint(&self, checkpoint: Checkpoint) -> Result<(), JobError> {
        self.check_cancelled()?;
        checkpoint
            .validate()
            .map_err(|e| JobError::permanent(e.to_string()).with_code("INVALID_CHECKPOINT"))?;
        let shared = &self.shared;
        let _write = shared.write_lock.lock().await;
        let progress = shared.slot().pending.take();
        let mut delay = Duration::from_millis(50);
        let mut tries = 0;
        loop {
            let sent = Instant::now();
            match shared
                .queue
                .checkpoint_job_at(
                    &shared.job_id,
                    shared.attempt,
                    &checkpoint,
                    progress.clone(),
                )
                .await
            {
                Ok(job) => {
                    shared.lease_renewed(sent);
                    shared.slot().last_write = Some(sent);
                    let mut units = shared.units.lock().unwrap_or_else(|e| e.into_inner());
                    units.completed = job.completed_units;
                    units.cursors = job.unit_cursors;
                    return Ok(());
                }
                Err(e) if e.is_transient() && tries < 5 && !shared.token.is_cancelled() => {
                    tracing::warn!(job_id = %shared.job_id, error = %e, "checkpoint write failed; retrying");
                    tries += 1;
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shared.token.cancelled() => {}
                    }
                    delay *= 2;
                }
                Err(e) => {
                    let err = JobError::from(e);
                    if matches!(
                        err.kind(),
                        crate::JobErrorKind::LeaseLost | crate::JobErrorKind::Cancelled
                    ) {
                        shared.stop(StopReason::LeaseLost);
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Units of work finished by this or an earlier attempt (sorted).
    pub fn completed_units(&self) -> Vec<String> {
        self.shared
            .units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .completed
            .clone()
    }

    /// Whether `unit` was finished by this or an earlier attempt.
    pub fn is_completed(&self, unit: &str) -> bool {
        self.shared
            .units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .completed
            .iter()
            .any(|u| u == unit)
    }

    /// Where this or an earlier attempt got inside `unit` (`None`: not
    /// started, or completed).
    pub fn cursor(&self, unit: &str) -> Option<UnitCursor> {
        self.shared
            .units
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .cursors
            .get(unit)
            .cloned()
    }

    /// Runs `f` over `items` with at most `concurrency` at once (the seed's
    /// batch pattern), returning the results in input order. Stops starting
    /// new items once the job is cancelled or an item fails, and returns the
    /// first error.
    pub async fn run_batch<I, T, F, Fut>(
        &self,
        items: impl IntoIterator<Item = I>,
        concurrency: usize,
        f: F,
    ) -> Result<Vec<T>, JobError>
    where
        I: Send + 'static,
        T: Send + 'static,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
    {
        let f = Arc::new(f);
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let mut set = JoinSet::new();
        let mut count = 0;
        let mut first_error = None;
        let mut results: Vec<Option<T>> = Vec::new();
        for (index, item) in items.into_iter().enumerate() {
            let permit = tokio::select! {
                p = Arc::clone(&permits).acquire_owned() => p.map_err(|_| JobError::cancelled())?,
                _ = self.shared.token.cancelled() => break,
            };
            // Collect whatever finished, so errors stop the batch early.
            while let Some(done) = set.try_join_next() {
                record(done, &mut results, &mut first_error);
            }
            if first_error.is_some() {
                break;
            }
            let f = Arc::clone(&f);
            set.spawn(async move {
                let out = f(item).await;
                drop(permit);
                (index, out)
            });
            count += 1;
        }
        while let Some(done) = set.join_next().await {
            record(done, &mut results, &mut first_error);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.check_cancelled()?;
        let out: Vec<T> = results.into_iter().flatten().collect();
        debug_assert_eq!(out.len(), count);
        Ok(out)
    }
}

fn record<T>(
    done: Result<(usize, Result<T, JobError>), tokio::task::JoinError>,
    results: &mut Vec<Option<T>>,
    first_error: &mut Option<JobError>,
) {
    match done {
        Ok((index, Ok(value))) => {
            if results.len() <= index {
                results.resize_with(index + 1, || None);
            }
            results[index] = Some(value);
        }
        Ok((_, Err(e))) => {
            first_error.get_or_insert(e);
        }
        Err(join) => {
            first_error.get_or_insert(JobError::retryable(format!("batch item panicked: {join}")));
        }
    }
}
