//! [`Worker`], the runner: claims jobs for a [`JobWorker`], runs up to
//! `concurrency` of them at once, keeps its lease alive, relays cancellation
//! to running jobs, and shuts down gracefully.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use semiont_jobs_model::{Job, JobId, JobStatus};
use semiont_jobs_queue::{EventKind, EventStream, JobQueue};
use semiont_jobs_store::{ChangeOrigin, TypeFilter};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::context::{Shared, StopReason};
use crate::{Error, JobContext, JobError, JobErrorKind, JobWorker, Result};

/// How a [`Worker`] runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Fallback wait between claims when idle (default 1 s). Idle runners
    /// wake at once on new work reported by the store; this only bounds how
    /// late a delayed (`runAt`) job or a missed notification is noticed.
    pub poll_interval: Duration,
    /// Wait after the store itself fails (default 5 s). A failing job does
    /// not trigger it.
    pub error_backoff: Duration,
    /// Jobs run at once by this runner (default 1).
    pub concurrency: usize,
    /// How long [`Worker::stop`] waits for running jobs before cancelling
    /// them (default 30 s).
    pub shutdown_timeout: Duration,
    /// Lease renewal period (default: a third of the queue's lease). Each
    /// heartbeat is one store call for all of this runner's jobs, and also
    /// the re-check that stops jobs the store no longer holds for this
    /// worker (cancelled or recovered elsewhere), which bounds how late a
    /// cancel reaches a job when change notifications are lost.
    pub heartbeat_interval: Option<Duration>,
    /// The watchdog's safety margin (default: a fifth of the queue's
    /// lease). When no heartbeat has succeeded for a job for `lease −
    /// margin`, the runner stops the job (its token fires) and records
    /// nothing more for that attempt: past its lease another host may
    /// recover and run it, and the two must never both write.
    pub lease_margin: Option<Duration>,
    /// Minimum time between two progress writes of one job (default 250 ms).
    pub progress_interval: Duration,
    /// How often this runner looks for dead workers' jobs to recover
    /// (default 5 s).
    pub recovery_interval: Duration,
    /// The worker id (default: `<worker name>-<host>-<pid>-<n>`).
    pub worker_id: Option<String>,
    /// How often the runner runs the queue's retention cleanup
    /// ([`JobQueue::sweep`]: finished jobs older than the queue's
    /// `retention_period` are deleted), one process at a time across every
    /// process sharing the store (default hourly; `None`: never). The
    /// first sweep runs at start when no other process swept within the
    /// interval; each is logged as `queue.swept` with the count.
    pub sweep_interval: Option<Duration>,
    /// The least time between two claims that news of new work prompts
    /// (default 20 ms; zero: claim at every news). A runner that has room
    /// for more jobs claims when the store reports new work; when that
    /// news comes sooner than this after its previous claim, it waits out
    /// the rest, so that under a steady stream one claim takes the jobs
    /// of several creates instead of one statement each. News after a
    /// quiet spell is claimed at once, and a slot freed while jobs are
    /// waiting is refilled at once: only a busy stream of news is slowed,
    /// by at most this much; a cooldown above the poll interval counts as
    /// the poll interval. River's `FetchCooldown` is the same idea.
    pub claim_cooldown: Duration,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            poll_interval: Duration::from_secs(1),
            error_backoff: Duration::from_secs(5),
            concurrency: 1,
            shutdown_timeout: Duration::from_secs(30),
            heartbeat_interval: None,
            lease_margin: None,
            progress_interval: Duration::from_millis(250),
            recovery_interval: Duration::from_secs(5),
            worker_id: None,
            sweep_interval: Some(DEFAULT_SWEEP_INTERVAL),
            claim_cooldown: DEFAULT_CLAIM_COOLDOWN,
        }
    }
}

/// The least time between two claims prompted by news, by default
/// (`docs/postgres-performance.md`: in the lifecycle at 4 processes, 20 ms
/// took claims from 0.8 to 0.3 per job).
pub const DEFAULT_CLAIM_COOLDOWN: Duration = Duration::from_millis(20);

/// How often a runner sweeps finished jobs by default (hourly).
pub const DEFAULT_SWEEP_INTERVAL: Duration = Duration::from_secs(3600);

impl WorkerOptions {
    /// Sets the fallback poll interval.
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// Sets the back-off after store errors.
    pub fn error_backoff(mut self, d: Duration) -> Self {
        self.error_backoff = d;
        self
    }

    /// Sets how many jobs run at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets the graceful shutdown timeout.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Sets the progress write throttle.
    pub fn progress_interval(mut self, d: Duration) -> Self {
        self.progress_interval = d;
        self
    }

    /// Sets the heartbeat period.
    pub fn heartbeat_interval(mut self, d: Duration) -> Self {
        self.heartbeat_interval = Some(d);
        self
    }

    /// Sets the watchdog's margin before a lease runs out.
    pub fn lease_margin(mut self, d: Duration) -> Self {
        self.lease_margin = Some(d);
        self
    }

    /// Sets the worker id.
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }

    /// Sets how often the retention sweep runs (`None`: never).
    pub fn sweep_interval(mut self, every: Option<Duration>) -> Self {
        self.sweep_interval = every;
        self
    }

    /// Sets the least time between two claims prompted by news.
    pub fn claim_cooldown(mut self, d: Duration) -> Self {
        self.claim_cooldown = d;
        self
    }

    fn validate(&self, lease: Duration) -> Result<()> {
        let bad = |what: &str| Err(Error::InvalidOptions(what.to_owned()));
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1");
        }
        if self.concurrency > 4096 {
            return bad("concurrency must be at most 4096");
        }
        for (name, d) in [
            ("poll interval", self.poll_interval),
            ("recovery interval", self.recovery_interval),
        ] {
            if d.is_zero() {
                return Err(Error::InvalidOptions(format!("{name} must be above zero")));
            }
        }
        if self.heartbeat_interval.is_some_and(|d| d.is_zero()) {
            return bad("heartbeat interval must be above zero");
        }
        if self.sweep_interval.is_some_and(|d| d.is_zero()) {
            return bad("sweep interval must be above zero (or none to turn sweeping off)");
        }
        let margin = self.margin(lease);
        if self.heartbeat_period(lease) + margin >= lease {
            return Err(Error::InvalidOptions(format!(
                "heartbeat interval ({:?}) plus lease margin ({margin:?}) must be below the queue's lease ({lease:?})",
                self.heartbeat_period(lease)
            )));
        }
        Ok(())
    }

    fn heartbeat_period(&self, lease: Duration) -> Duration {
        self.heartbeat_interval
            .unwrap_or(lease / 3)
            .max(Duration::from_millis(10))
    }

    fn margin(&self, lease: Duration) -> Duration {
        self.lease_margin.unwrap_or(lease / 5)
    }
}

/// Runs a [`JobWorker`] against a queue (the seed's `worker.start()` /
/// `worker.stop()`). Cheap to clone; clones control the same runner.
///
/// ```
/// # use semiont_jobs_model::Job;
/// # use semiont_jobs_worker::{JobContext, JobError, JobWorker, Worker, WorkerOptions};
/// # use std::time::Duration;
/// # struct MyWorker;
/// # #[async_trait::async_trait]
/// # impl JobWorker for MyWorker {
/// #     fn worker_name(&self) -> &str { "my-worker" }
/// #     fn can_process_job(&self, job: &Job) -> bool { job.job_type.as_str() == "my-job-type" }
/// #     async fn execute_job(&self, _: &JobContext, _: &Job) -> Result<Option<serde_json::Value>, JobError> { Ok(None) }
/// # }
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let queue = semiont_jobs_queue::JobQueue::builder()
/// #     .store(std::sync::Arc::new(semiont_jobs_store::MemoryStore::new()))
/// #     .build()?;
/// # queue.initialize().await?;
/// let worker = Worker::new(
///     queue.clone(),
///     MyWorker,
///     WorkerOptions::default()
///         .poll_interval(Duration::from_millis(1000)) // check for jobs every second
///         .error_backoff(Duration::from_millis(5000)), // back off on errors
/// );
///
/// // Start processing jobs (runs until stopped).
/// let running = tokio::spawn({
///     let worker = worker.clone();
///     async move { worker.start().await }
/// });
///
/// // Graceful shutdown.
/// worker.stop().await;
/// running.await??;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("worker_id", &self.inner.worker_id)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

struct Inner {
    queue: JobQueue,
    worker: Arc<dyn JobWorker>,
    options: WorkerOptions,
    worker_id: Arc<str>,
    types: TypeFilter,
    stop_claiming: CancellationToken,
    finished: CancellationToken,
    started: AtomicBool,
    in_flight: Mutex<HashMap<JobId, Arc<Shared>>>,
    executed: AtomicU64,
    claim_attempts: AtomicU64,
    /// Wakes the heartbeat loop for an early beat (after a resync).
    beat_now: Notify,
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

impl Worker {
    /// A runner for `worker` on `queue`. Nothing happens until
    /// [`Worker::start`].
    pub fn new(queue: JobQueue, worker: impl JobWorker, options: WorkerOptions) -> Self {
        let worker: Arc<dyn JobWorker> = Arc::new(worker);
        let worker_id: Arc<str> = options
            .worker_id
            .clone()
            .unwrap_or_else(|| semiont_jobs_store::worker_id(worker.worker_name()))
            .into();
        let types = worker.job_types();
        Worker {
            inner: Arc::new(Inner {
                queue,
                worker,
                options,
                worker_id,
                types,
                stop_claiming: CancellationToken::new(),
                finished: CancellationToken::new(),
                started: AtomicBool::new(false),
                in_flight: Mutex::new(HashMap::new()),
                executed: AtomicU64::new(0),
                claim_attempts: AtomicU64::new(0),
                beat_now: Notify::new(),
            }),
        }
    }

    /// This runner's worker id (written into the jobs it runs).
    pub fn worker_id(&self) -> &str {
        &self.inner.worker_id
    }

    /// Jobs running now.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight().len()
    }

    /// Attempts this runner has finished executing so far.
    pub fn executed(&self) -> u64 {
        self.inner.executed.load(Ordering::Relaxed)
    }

    /// Claims tried so far (found a job or not): shows an idle runner is
    /// polling.
    pub fn claim_attempts(&self) -> u64 {
        self.inner.claim_attempts.load(Ordering::Relaxed)
    }

    /// Claims and runs jobs until [`Worker::stop`]; returns once shutdown is
    /// complete. Errors only when the runner cannot start (bad options, the
    /// store refuses to register the worker) or was started before.
    pub async fn start(&self) -> Result<()> {
        let inner = &self.inner;
        inner.options.validate(inner.queue.config().lease)?;
        if inner.started.swap(true, Ordering::SeqCst) {
            return Err(Error::AlreadyStarted(inner.worker_id.to_string()));
        }
        let result = self.run().await;
        inner.finished.cancel();
        result
    }

    /// Stops claiming, waits up to the shutdown timeout for running jobs,
    /// then cancels the rest cooperatively and gives them back to the queue.
    /// Returns once [`Worker::start`] has finished (at once if it never ran).
    pub async fn stop(&self) {
        self.inner.stop_claiming.cancel();
        if self.inner.started.load(Ordering::SeqCst) {
            self.inner.finished.cancelled().await;
        }
    }

    /// Stops claiming and cancels running jobs at once (cooperatively: their
    /// tokens fire and they are given back to the queue). For a second
    /// interrupt signal. Returns without waiting; [`Worker::stop`] waits.
    pub fn cancel_running(&self) {
        self.inner.stop_claiming.cancel();
        for shared in self.inner.in_flight().values() {
            shared.stop(StopReason::Shutdown);
        }
    }

    async fn run(&self) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let wid = inner.worker_id.to_string();
        let queue_err = |source| Error::Queue {
            worker_id: wid.clone(),
            source,
        };
        inner.queue.register_worker(&wid).await.map_err(queue_err)?;
        info!(event = "worker.started", worker_id = %wid, concurrency = inner.options.concurrency, "worker started");
        inner.recover_once().await;

        let background = CancellationToken::new();
        let mut bg = JoinSet::new();
        bg.spawn(Arc::clone(&inner).heartbeat_loop(background.clone()));
        bg.spawn(Arc::clone(&inner).watchdog_loop(background.clone()));
        bg.spawn(Arc::clone(&inner).cancel_watch_loop(background.clone()));
        bg.spawn(Arc::clone(&inner).recovery_loop(background.clone()));
        if let Some(every) = inner.options.sweep_interval {
            bg.spawn(Arc::clone(&inner).sweep_loop(every, background.clone()));
        }

        let mut events = inner.queue.subscribe().without_snapshots();
        let permits = Arc::new(Semaphore::new(inner.options.concurrency));
        let mut tasks = JoinSet::new();
        loop {
            let permit = tokio::select! {
                biased;
                _ = inner.stop_claiming.cancelled() => break,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            while tasks.try_join_next().is_some() {}
            if inner.stop_claiming.is_cancelled() {
                break;
            }
            // Fill every free slot with one claim call.
            let mut slots = vec![permit];
            while let Ok(p) = Arc::clone(&permits).try_acquire_owned() {
                slots.push(p);
            }
            let claimed_at = Instant::now();
            let claimed = inner
                .queue
                .claim_next_jobs(&inner.types, &wid, slots.len())
                .await;
            inner.claim_attempts.fetch_add(1, Ordering::Relaxed);
            match claimed {
                Ok(jobs) if jobs.is_empty() => {
                    drop(slots);
                    // This claim came back empty. When news comes fast
                    // (another process took the job the last news was
                    // about, and more are coming), the cooldown keeps N
                    // idle processes woken by every new job from each
                    // claiming for each one.
                    inner.wait_for_work(&mut events, claimed_at).await;
                }
                Ok(jobs) => {
                    // Fewer jobs than free slots: nothing more is due now,
                    // so the next claim waits for news (or the poll)
                    // instead of coming back empty.
                    let drained = jobs.len() < slots.len();
                    for job in jobs {
                        let Some(permit) = slots.pop() else { break };
                        if !inner.worker.can_process_job(&job) {
                            drop(permit);
                            inner.refuse(&job).await;
                            continue;
                        }
                        // In flight from here on, before the task is
                        // scheduled: a cancel arriving meanwhile finds it.
                        let ctx = inner.context_for(&job, claimed_at);
                        tasks.spawn(Arc::clone(&inner).run_job(job, ctx, permit));
                    }
                    drop(slots);
                    if drained {
                        inner.wait_for_work(&mut events, claimed_at).await;
                    }
                }
                Err(e) => {
                    drop(slots);
                    warn!(worker_id = %wid, error = %e, "claim failed; backing off");
                    inner.pause(inner.options.error_backoff).await;
                }
            }
        }

        // Graceful shutdown: wait, then cancel cooperatively, then force.
        let timeout = inner.options.shutdown_timeout;
        if tokio::time::timeout(timeout, drain(&mut tasks))
            .await
            .is_err()
        {
            let running = inner.in_flight();
            warn!(worker_id = %wid, jobs = running.len(), "shutdown timeout passed; cancelling running jobs");
            for shared in running.values() {
                shared.stop(StopReason::Shutdown);
            }
            let grace = timeout.max(Duration::from_secs(1));
            if tokio::time::timeout(grace, drain(&mut tasks))
                .await
                .is_err()
            {
                error!(worker_id = %wid, "jobs ignored cancellation; aborting them");
                tasks.abort_all();
                drain(&mut tasks).await;
                for (id, shared) in inner.in_flight() {
                    match inner.queue.release_job(&id, shared.attempt).await {
                        Ok(_) => {
                            info!(event = "job.released", job_id = %id, attempt = shared.attempt, worker_id = %wid, "job released after abort")
                        }
                        Err(e) => {
                            warn!(job_id = %id, error = %e, "cannot release aborted job; recovery will")
                        }
                    }
                }
                inner
                    .in_flight
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
            }
        }
        background.cancel();
        drain(&mut bg).await;
        if let Err(e) = inner.queue.unregister_worker(&wid).await {
            warn!(worker_id = %wid, error = %e, "cannot unregister worker");
        }
        info!(event = "worker.stopped", worker_id = %wid, executed = inner.executed.load(Ordering::Relaxed), "worker stopped");
        Ok(())
    }
}

async fn drain<T: 'static>(set: &mut JoinSet<T>) {
    while set.join_next().await.is_some() {}
}

/// Events after which a claim may find something new.
fn brings_work(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Created
            | EventKind::Retrying
            | EventKind::Resubmitted
            | EventKind::Recovered
            | EventKind::Resynced
    )
}

impl Inner {
    fn in_flight(&self) -> HashMap<JobId, Arc<Shared>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn pause(&self, d: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = self.stop_claiming.cancelled() => {}
        }
    }

    /// Waits for news of work (or the poll interval), then until the
    /// claim cooldown has passed since `last_claim`: news after a quiet
    /// spell is claimed at once, a stream of it a cooldown at a time.
    async fn wait_for_work(&self, events: &mut EventStream, last_claim: Instant) {
        self.wait_for_news(events).await;
        let cooldown = self.options.claim_cooldown.min(self.options.poll_interval);
        if let Some(rest) = cooldown.checked_sub(last_claim.elapsed()) {
            self.pause(rest).await;
        }
    }

    async fn wait_for_news(&self, events: &mut EventStream) {
        let types = &self.types;
        let wake = async {
            loop {
                match events.recv().await {
                    Some(ev) if brings_work(ev.kind) => {
                        if ev.job_type.as_ref().is_none_or(|t| types.matches(t)) {
                            return;
                        }
                    }
                    Some(_) => {}
                    None => std::future::pending::<()>().await,
                }
            }
        };
        tokio::select! {
            _ = wake => {}
            _ = tokio::time::sleep(self.options.poll_interval) => {}
            _ = self.stop_claiming.cancelled() => {}
        }
    }

    async fn give_back(&self, job: &Job, why: &str) {
        match self.queue.release_job(&job.id, job.attempt).await {
            Ok(_) => {
                info!(event = "job.released", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, reason = why, "job released")
            }
            Err(e) => {
                warn!(job_id = %job.id, error = %e, "cannot release job; recovery will")
            }
        }
    }

    /// Gives back a job `can_process_job` refused, not due again for a
    /// while (the error back-off), so the jobs behind it in FIFO order are
    /// not starved and other workers can take it meanwhile.
    async fn refuse(&self, job: &Job) {
        let later = self.queue.now().add(self.options.error_backoff);
        match self
            .queue
            .release_job_until(&job.id, job.attempt, Some(later))
            .await
        {
            Ok(_) => {
                info!(event = "job.released", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, reason = "refused by can_process_job", "job released")
            }
            Err(e) => {
                warn!(job_id = %job.id, error = %e, "cannot release refused job; recovery will")
            }
        }
    }

    async fn recover_once(&self) {
        match self.queue.recover().await {
            Ok(report) => {
                for id in &report.requeued {
                    info!(event = "job.recovered", job_id = %id, status = "pending", worker_id = %self.worker_id, "dead worker's job requeued");
                }
                for id in &report.failed {
                    info!(event = "job.recovered", job_id = %id, status = "failed", worker_id = %self.worker_id, "dead worker's job failed: retries spent");
                }
            }
            Err(e) => warn!(worker_id = %self.worker_id, error = %e, "recovery pass failed"),
        }
    }

    fn lease(&self) -> Duration {
        self.queue.config().lease
    }

    /// Renews this worker's leases every heartbeat period (one store call
    /// for all its jobs) and stops the jobs the store says are no longer
    /// this worker's. A successful beat moves each held job's watchdog
    /// deadline; a failed one does not.
    async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let period = self.options.heartbeat_period(self.lease());
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(period) => {}
                _ = self.beat_now.notified() => {}
            }
            self.beat(period).await;
        }
    }

    async fn beat(&self, period: Duration) {
        let running = self.in_flight();
        let held: Vec<(JobId, u32)> = running
            .iter()
            .map(|(id, shared)| (id.clone(), shared.attempt))
            .collect();
        let sent = Instant::now();
        // A beat that hangs must not hold up the next one: the watchdog
        // decides by the last beat that succeeded.
        let beat = tokio::time::timeout(period.max(Duration::from_secs(1)), async {
            self.queue.heartbeat(&self.worker_id, &held).await
        });
        match beat.await {
            Ok(Ok(lost)) => {
                for (id, shared) in &running {
                    if !lost
                        .iter()
                        .any(|l| &l.id == id && l.attempt == shared.attempt)
                    {
                        shared.lease_renewed(sent);
                    }
                }
                for l in lost {
                    let Some(shared) = running.get(&l.id) else {
                        continue;
                    };
                    if shared.attempt != l.attempt || shared.executed.load(Ordering::Acquire) {
                        continue;
                    }
                    if l.cancelled() {
                        shared.stop(StopReason::Cancelled);
                    } else {
                        debug!(job_id = %l.id, attempt = l.attempt, status = ?l.status, "heartbeat: job no longer ours");
                        shared.stop(StopReason::LeaseLost);
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(worker_id = %self.worker_id, error = %e, jobs = held.len(), "heartbeat failed")
            }
            Err(_) => {
                warn!(worker_id = %self.worker_id, jobs = held.len(), "heartbeat timed out")
            }
        }
    }

    /// Stops every job whose lease may have run out: no heartbeat has
    /// succeeded for it for `lease − margin`. Past its lease another host
    /// may recover and run it; this runner records nothing more for it.
    async fn watchdog_loop(self: Arc<Self>, stop: CancellationToken) {
        let lease = self.lease();
        let budget = lease.saturating_sub(self.options.margin(lease));
        let tick = (budget / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(tick) => {}
            }
            let now = Instant::now();
            for (id, shared) in self.in_flight() {
                let renewed = shared.renewed_at();
                if now < renewed + budget || shared.reason().is_some() {
                    continue;
                }
                warn!(event = "job.lost", job_id = %id, attempt = shared.attempt, worker_id = %self.worker_id, since_ms = now.duration_since(renewed).as_millis() as u64, "no heartbeat succeeded within the lease; stopping the job and recording nothing more for this attempt");
                shared.stop(StopReason::LeaseExpired);
            }
        }
    }

    /// Runs the retention sweep at start and then every `every`, under the
    /// store's sweep lease (held for `every`: one sweep per interval across
    /// every process sharing the store).
    async fn sweep_loop(self: Arc<Self>, every: Duration, stop: CancellationToken) {
        loop {
            match self.queue.sweep(&self.worker_id, every).await {
                Ok(Some(deleted)) => {
                    info!(event = "queue.swept", deleted, worker_id = %self.worker_id, retention_s = self.queue.config().retention_period.as_secs(), "retention sweep")
                }
                Ok(None) => {}
                Err(e) => warn!(worker_id = %self.worker_id, error = %e, "retention sweep failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    async fn recovery_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.options.recovery_interval) => {}
            }
            self.recover_once().await;
        }
    }

    /// Relays cancellation to running jobs on every store change to one of
    /// them (a cancel in another process arrives within the store's
    /// notification latency). Lost notifications are caught by the next
    /// heartbeat, which re-checks every running job in one call; after a
    /// resynchronisation the heartbeat runs at once.
    async fn cancel_watch_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut events = self.queue.subscribe().without_snapshots();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                ev = events.recv() => match ev {
                    Some(ev) => match &ev.job_id {
                        Some(id) => {
                            let shared = self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).get(id).cloned();
                            if let Some(shared) = shared {
                                // A start by another process may be a re-claim after
                                // this worker lost its lease; this process's own
                                // start of the job is the claim this worker made
                                // (anything rarer is caught by the heartbeat).
                                let foreign_start = ev.kind == EventKind::Started
                                    && ev.origin == ChangeOrigin::External;
                                if ev.status != Some(JobStatus::Running) || foreign_start {
                                    self.check(&shared).await;
                                }
                            }
                        }
                        None => self.beat_now.notify_one(),
                    },
                    None => return,
                },
            }
        }
    }

    /// Fires a running job's token if the store says it is no longer ours.
    async fn check(&self, shared: &Shared) {
        // Its own completion's event would otherwise cost a read per job.
        if shared.token.is_cancelled() || shared.executed.load(Ordering::Acquire) {
            return;
        }
        match self.queue.get_job(&shared.job_id).await {
            Ok(job) if job.status == JobStatus::Running && job.attempt == shared.attempt => {}
            Ok(job) if job.status == JobStatus::Cancelled => shared.stop(StopReason::Cancelled),
            Ok(job) => {
                debug!(job_id = %job.id, status = %job.status, attempt = job.attempt, "job no longer ours");
                shared.stop(StopReason::LeaseLost);
            }
            Err(e) if e.kind() == semiont_jobs_queue::ErrorKind::NotFound => {
                shared.stop(StopReason::LeaseLost)
            }
            Err(e) => debug!(job_id = %shared.job_id, error = %e, "cannot check job"),
        }
    }

    /// The context of a claimed job, registered as in flight.
    fn context_for(&self, job: &Job, claimed_at: Instant) -> JobContext {
        let ctx = JobContext::new(
            self.queue.clone(),
            job,
            Arc::clone(&self.worker_id),
            self.options.progress_interval,
            claimed_at,
        );
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(job.id.clone(), Arc::clone(&ctx.shared));
        ctx
    }

    async fn run_job(self: Arc<Self>, job: Job, ctx: JobContext, permit: OwnedSemaphorePermit) {
        let shared = Arc::clone(&ctx.shared);
        let (id, attempt, wid) = (job.id.clone(), job.attempt, Arc::clone(&self.worker_id));
        info!(event = "job.started", job_id = %id, attempt, worker_id = %wid, job_type = %job.job_type, "job started");

        let worker = Arc::clone(&self.worker);
        let exec_ctx = ctx.clone();
        let exec_job = job.clone();
        let mut exec = tokio::spawn(async move { worker.execute_job(&exec_ctx, &exec_job).await });
        let abort = exec.abort_handle();
        // If this task is aborted (forced shutdown), abort the execution too.
        let _guard = AbortOnDrop(abort.clone());
        let policy = self.queue.config().policy(&job.job_type);
        let outcome = match policy.timeout {
            None => exec.await,
            Some(limit) => {
                tokio::select! {
                    outcome = &mut exec => outcome,
                    _ = tokio::time::sleep(limit) => {
                        warn!(event = "job.timeout", job_id = %id, attempt, worker_id = %wid, timeout_ms = limit.as_millis() as u64, grace_ms = policy.timeout_grace.as_millis() as u64, "job ran past its timeout; cancelling it");
                        shared.stop(StopReason::TimedOut);
                        match tokio::time::timeout(policy.timeout_grace, &mut exec).await {
                            Ok(outcome) => outcome,
                            Err(_) => {
                                warn!(job_id = %id, attempt, worker_id = %wid, "job ignored its cancellation for the grace period; abandoning it");
                                abort.abort();
                                exec.await
                            }
                        }
                    }
                }
            }
        };
        shared.executed.store(true, Ordering::Release);
        if shared.reason().is_none() {
            let _ = shared.flush().await;
        }
        self.executed.fetch_add(1, Ordering::Relaxed);
        match shared.reason() {
            Some(StopReason::Shutdown) => self.give_back(&job, "shutdown").await,
            Some(StopReason::TimedOut) => {
                let limit = policy.timeout.unwrap_or_default();
                let e = JobError::retryable(format!(
                    "execution timed out after {} ms",
                    limit.as_millis()
                ))
                .with_code("TIMEOUT");
                self.record_failure(&job, &shared, e).await;
            }
            Some(StopReason::Cancelled) => {
                info!(event = "job.cancelled", job_id = %id, attempt, worker_id = %wid, "job cancelled while running")
            }
            Some(StopReason::LeaseLost) => {
                warn!(event = "job.lost", job_id = %id, attempt, worker_id = %wid, "job taken away from this worker; nothing recorded")
            }
            Some(StopReason::LeaseExpired) => {
                warn!(event = "job.lost", job_id = %id, attempt, worker_id = %wid, "lease ran out without a successful heartbeat; nothing recorded")
            }
            None => match outcome {
                Ok(Ok(result)) => self.record_completion(&job, &shared, result).await,
                Ok(Err(e)) => self.record_failure(&job, &shared, e).await,
                Err(join) if join.is_panic() => {
                    let msg = panic_message(&*join.into_panic());
                    error!(job_id = %id, attempt, worker_id = %wid, panic = %msg, "execute_job panicked");
                    let e = JobError::retryable(format!("execute_job panicked: {msg}"))
                        .with_code("PANIC");
                    self.record_failure(&job, &shared, e).await;
                }
                Err(_) => self.give_back(&job, "execution aborted").await,
            },
        }
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        drop(permit);
    }

    /// Records an outcome. A conflict means the job is no longer ours. A
    /// transient store failure (a lost connection) is retried with back-off
    /// for as long as this attempt's lease is safe (the watchdog's
    /// deadline); other store errors a few times. A job must not stay
    /// running because the store hiccuped once, and must never be written
    /// after its lease may have run out.
    async fn record<F, Fut>(&self, job: &Job, shared: &Shared, what: &str, op: F) -> Option<Job>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = semiont_jobs_queue::Result<Job>>,
    {
        let lease = self.lease();
        let budget = lease.saturating_sub(self.options.margin(lease));
        let mut delay = Duration::from_millis(50);
        let mut round = 0u32;
        loop {
            if Instant::now() >= shared.renewed_at() + budget {
                warn!(event = "job.lost", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, "lease ran out before the {what} could be recorded; nothing recorded");
                return None;
            }
            // Each try must end before the lease may run out.
            let left = (shared.renewed_at() + budget).saturating_duration_since(Instant::now());
            let outcome = match tokio::time::timeout(left, op()).await {
                Ok(outcome) => outcome,
                Err(_) => continue,
            };
            match outcome {
                Ok(job) => return Some(job),
                Err(e)
                    if matches!(
                        e.kind(),
                        semiont_jobs_queue::ErrorKind::Conflict
                            | semiont_jobs_queue::ErrorKind::IllegalTransition
                            | semiont_jobs_queue::ErrorKind::NotFound
                    ) =>
                {
                    let cancelled = matches!(
                        self.queue.get_job(&job.id).await,
                        Ok(j) if j.status == JobStatus::Cancelled
                    );
                    if cancelled {
                        info!(event = "job.cancelled", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, "job cancelled before its outcome was recorded");
                    } else {
                        warn!(event = "job.lost", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, error = %e, "job taken away before its outcome was recorded");
                    }
                    return None;
                }
                Err(e) if e.is_transient() || round < 5 => {
                    warn!(job_id = %job.id, error = %e, round, "cannot record {what}; retrying");
                    let pause = delay.min(self.options.error_backoff);
                    tokio::time::sleep(pause).await;
                    delay =
                        (delay * 2).min(self.options.error_backoff.max(Duration::from_millis(50)));
                    round += 1;
                }
                Err(e) => {
                    error!(job_id = %job.id, error = %e, "giving up recording {what}; the job stays running until this worker stops and recovery returns it");
                    return None;
                }
            }
        }
    }

    async fn record_completion(&self, job: &Job, shared: &Shared, result: Option<Value>) {
        let result = result.unwrap_or(Value::Null);
        let done = self
            .record(job, shared, "completion", || {
                self.queue.complete_job_at(&job.id, job.attempt, &result)
            })
            .await;
        if done.is_some() {
            info!(event = "job.completed", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, "job completed");
        }
    }

    async fn record_failure(&self, job: &Job, shared: &Shared, e: JobError) {
        if matches!(e.kind(), JobErrorKind::Cancelled | JobErrorKind::LeaseLost) {
            // The job said it stopped because it lost the job; if the store
            // still shows it ours, that was a spurious stop: count a retry.
            let still_ours = matches!(
                self.queue.get_job(&job.id).await,
                Ok(j) if j.status == JobStatus::Running && j.attempt == job.attempt
            );
            if !still_ours {
                info!(event = "job.cancelled", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, "job stopped after losing its job");
                return;
            }
        }
        let failure = e.to_failure();
        let written = self
            .record(job, shared, "failure", || {
                self.queue
                    .fail_job_at(&job.id, job.attempt, failure.clone())
            })
            .await;
        match written {
            Some(j) if j.status == JobStatus::Pending => {
                info!(event = "job.retrying", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, retry_count = j.retry_count, run_at = ?j.run_at.map(|t| t.to_string()), error = %e, "job failed; retrying")
            }
            Some(_) => {
                warn!(event = "job.failed", job_id = %job.id, attempt = job.attempt, worker_id = %self.worker_id, error = %e, "job failed")
            }
            None => {}
        }
    }
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
