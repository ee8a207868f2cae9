//! Lease safety of the runner: the watchdog that stops a job whose
//! heartbeats keep failing, the heartbeat as the re-check that stops jobs
//! the store no longer holds for this worker, and store outages treated as
//! "back off and retry", never as job failures. A store wrapper fails
//! heartbeats, transitions and claims, or hides change notifications, on
//! demand.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use semiont_jobs_model::{
    Job, JobFilter, JobId, JobPage, JobStatus, JobType, QueueStats, Timestamp,
};
use semiont_jobs_queue::JobQueue;
use semiont_jobs_store::{
    Capabilities, ChangeStream, ClaimRequest, Error, Expect, FinishedJob, Heartbeat, JobChange,
    JobStore, LostJob, RecoveryReport, Result, TypeFilter, WorkerInfo, WorkerRecord,
};
use semiont_jobs_worker::Worker;
use serde_json::json;
use tokio::sync::broadcast;

use crate::{enqueue, fast, spawn, wait_job, Scripted, WAIT};

/// A store whose heartbeats, transitions and claims fail with
/// [`Error::Unavailable`] while told to, and whose notifications can be
/// hidden (as if every one of them were lost).
#[derive(Debug)]
struct Flaky {
    inner: Arc<dyn JobStore>,
    fail_heartbeats: AtomicBool,
    /// Transitions to fail before the next one succeeds.
    fail_transitions: AtomicUsize,
    /// Claims to fail before the next one succeeds.
    fail_claims: AtomicUsize,
    quiet: bool,
    silent: broadcast::Sender<JobChange>,
    heartbeats: AtomicUsize,
}

impl Flaky {
    fn new(inner: Arc<dyn JobStore>, quiet: bool) -> Self {
        Flaky {
            inner,
            fail_heartbeats: AtomicBool::new(false),
            fail_transitions: AtomicUsize::new(0),
            fail_claims: AtomicUsize::new(0),
            quiet,
            silent: broadcast::channel(16).0,
            heartbeats: AtomicUsize::new(0),
        }
    }

    fn down(what: &str) -> Error {
        Error::unavailable("flaky", true, format!("{what}: connection refused"))
    }

    fn take(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[async_trait]
impl JobStore for Flaky {
    async fn create(&self, job: &Job) -> Result<()> {
        self.inner.create(job).await
    }
    async fn create_batch(&self, jobs: &[Job]) -> Result<()> {
        self.inner.create_batch(jobs).await
    }
    async fn get(&self, id: &JobId) -> Result<Job> {
        self.inner.get(id).await
    }
    async fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
        if Self::take(&self.fail_transitions) {
            return Err(Self::down("transition"));
        }
        self.inner.transition(expect, job).await
    }
    async fn update_running(&self, job: &Job) -> Result<()> {
        self.inner.update_running(job).await
    }
    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
        if Self::take(&self.fail_claims) {
            return Err(Self::down("claim"));
        }
        self.inner.claim(req).await
    }
    async fn claim_batch(&self, req: &ClaimRequest, max: usize) -> Result<Vec<Job>> {
        if Self::take(&self.fail_claims) {
            return Err(Self::down("claim"));
        }
        self.inner.claim_batch(req, max).await
    }
    async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
        self.inner.peek_next(types, now).await
    }
    async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        self.inner.list(filter).await
    }
    async fn stats(&self) -> Result<QueueStats> {
        self.inner.stats().await
    }
    async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>> {
        self.inner.type_stats().await
    }
    async fn checkpoint(&self, req: &semiont_jobs_store::CheckpointRequest) -> Result<Job> {
        self.inner.checkpoint(req).await
    }
    async fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool> {
        self.inner.set_paused(job_type, paused).await
    }
    async fn paused_types(&self) -> Result<BTreeSet<JobType>> {
        self.inner.paused_types().await
    }
    async fn try_lock_sweep(&self, holder: &str, ttl: Duration, now: Timestamp) -> Result<bool> {
        self.inner.try_lock_sweep(holder, ttl, now).await
    }
    async fn finished_before(&self, before: Timestamp, limit: usize) -> Result<Vec<FinishedJob>> {
        self.inner.finished_before(before, limit).await
    }
    async fn delete(&self, id: &JobId, expect: Expect) -> Result<()> {
        self.inner.delete(id, expect).await
    }
    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        self.inner.register_worker(worker).await
    }
    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
        self.heartbeats.fetch_add(1, Ordering::SeqCst);
        if self.fail_heartbeats.load(Ordering::SeqCst) {
            return Err(Self::down("heartbeat"));
        }
        self.inner.heartbeat(beat).await
    }
    async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
        self.inner.unregister_worker(worker_id).await
    }
    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        self.inner.workers().await
    }
    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
        self.inner.recover(now).await
    }
    fn subscribe(&self) -> ChangeStream {
        if self.quiet {
            ChangeStream::from_broadcast(self.silent.subscribe())
        } else {
            self.inner.subscribe()
        }
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

async fn queue_on(store: &Arc<Flaky>, lease: Duration) -> JobQueue {
    let q = JobQueue::builder()
        .store(Arc::clone(store) as Arc<dyn JobStore>)
        .lease(lease)
        .build()
        .unwrap();
    q.initialize().await.unwrap();
    q
}

async fn until(what: &str, f: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} did not happen within {WAIT:?}"));
}

/// Heartbeats that keep failing: once none has succeeded for `lease −
/// margin`, the runner fires the job's token and records nothing for that
/// attempt (the job's own "cancelled" answer is not recorded as a failure),
/// then goes on with other work once the store answers again.
pub(crate) async fn the_watchdog_stops_a_job_whose_heartbeats_keep_failing(
    store: Arc<dyn JobStore>,
) {
    let store = Arc::new(Flaky::new(store, false));
    let lease = Duration::from_millis(1200);
    let q = queue_on(&store, lease).await;
    let script = Arc::new(Scripted::default());
    let opts = fast()
        .heartbeat_interval(Duration::from_millis(100))
        .lease_margin(Duration::from_millis(300));
    let w = Worker::new(q.clone(), Arc::clone(&script), opts);
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "until-cancelled"})).await;
    let running = wait_job(&q, &job, |j| j.status == JobStatus::Running).await;
    // Healthy heartbeats keep it running well past its lease.
    let beats = store.heartbeats.load(Ordering::SeqCst);
    until("two lease lengths of heartbeats", || {
        store.heartbeats.load(Ordering::SeqCst) >= beats + 25
    })
    .await;
    assert_eq!(script.running.load(Ordering::SeqCst), 1);
    store.fail_heartbeats.store(true, Ordering::SeqCst);
    let failing_since = Instant::now();
    until("the job's token fired", || {
        script.running.load(Ordering::SeqCst) == 0
    })
    .await;
    let stopped_after = failing_since.elapsed();
    // The watchdog waits for the lease minus the margin from the last
    // heartbeat that succeeded (at most one period before the failures).
    assert!(
        stopped_after >= Duration::from_millis(800),
        "stopped after {stopped_after:?}, before the lease could run out"
    );
    until("the runner let go of the job", || w.in_flight() == 0).await;
    store.fail_heartbeats.store(false, Ordering::SeqCst);
    // Nothing was recorded for the lost attempt: no failure, no retry.
    let after = q.get_job(&job.id).await.unwrap();
    assert_eq!(
        (
            after.status,
            after.attempt,
            after.retry_count,
            after.error.as_deref()
        ),
        (JobStatus::Running, running.attempt, 0, None)
    );
    // The runner itself carries on.
    let next = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    wait_job(&q, &next, |j| j.status == JobStatus::Complete).await;
    w.stop().await;
    handle.await.unwrap().unwrap();
}

/// With every change notification lost, a cancel still reaches the running
/// job: the next heartbeat reports the job as no longer held.
pub(crate) async fn the_heartbeat_stops_a_job_cancelled_while_notifications_are_lost(
    store: Arc<dyn JobStore>,
) {
    let store = Arc::new(Flaky::new(store, true));
    let q = queue_on(&store, Duration::from_secs(30)).await;
    let script = Arc::new(Scripted::default());
    let opts = fast().heartbeat_interval(Duration::from_millis(150));
    let w = Worker::new(q.clone(), Arc::clone(&script), opts);
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "until-cancelled"})).await;
    until("the job runs", || {
        script.running.load(Ordering::SeqCst) == 1
    })
    .await;
    q.cancel_job(&job.id).await.unwrap();
    until("the job's token fired", || {
        script.running.load(Ordering::SeqCst) == 0
    })
    .await;
    until("the runner let go of the job", || w.in_flight() == 0).await;
    let after = q.get_job(&job.id).await.unwrap();
    assert_eq!((after.status, after.retry_count), (JobStatus::Cancelled, 0));
    w.stop().await;
    handle.await.unwrap().unwrap();
}

/// A store that is briefly unreachable costs back-offs, never a job: failed
/// claims are retried, and a completion whose first writes fail is written
/// once the store answers (attempt 1, no retry counted).
pub(crate) async fn store_outages_are_retried_not_job_failures(store: Arc<dyn JobStore>) {
    let store = Arc::new(Flaky::new(store, false));
    let q = queue_on(&store, Duration::from_secs(30)).await;
    let job = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    store.fail_claims.store(3, Ordering::SeqCst);
    store.fail_transitions.store(4, Ordering::SeqCst);
    let script = Arc::new(Scripted::default());
    let w = Worker::new(q.clone(), Arc::clone(&script), fast());
    let handle = spawn(&w);
    let done = wait_job(&q, &job, |j| j.status == JobStatus::Complete).await;
    assert_eq!((done.attempt, done.retry_count), (1, 0));
    assert_eq!(done.result, Some(json!({"attempt": 1})));
    assert_eq!(store.fail_claims.load(Ordering::SeqCst), 0);
    assert_eq!(store.fail_transitions.load(Ordering::SeqCst), 0);
    assert_eq!(script.calls.load(Ordering::SeqCst), 1, "executed once");
    w.stop().await;
    handle.await.unwrap().unwrap();
}

/// A successful checkpoint renews the lease like a heartbeat: with every
/// heartbeat failing, a job that keeps checkpointing keeps running past
/// its lease; once it stops checkpointing, the watchdog stops it.
pub(crate) async fn checkpoints_keep_the_watchdog_satisfied_like_heartbeats(
    store: Arc<dyn JobStore>,
) {
    let store = Arc::new(Flaky::new(store, false));
    let lease = Duration::from_millis(1200);
    let q = queue_on(&store, lease).await;
    let script = Arc::new(Scripted::default());
    let opts = fast()
        .heartbeat_interval(Duration::from_millis(100))
        .lease_margin(Duration::from_millis(300));
    let w = Worker::new(q.clone(), Arc::clone(&script), opts);
    let handle = spawn(&w);
    store.fail_heartbeats.store(true, Ordering::SeqCst);
    let job = enqueue(&q, "scripted", json!({"mode": "checkpoint-loop"})).await;
    until("the job checkpoints", || {
        script.checkpoints.load(Ordering::SeqCst) > 0
    })
    .await;
    // Three lease lengths of failed heartbeats, the job still running.
    let beats = store.heartbeats.load(Ordering::SeqCst);
    until("three lease lengths of failed heartbeats", || {
        store.heartbeats.load(Ordering::SeqCst) >= beats + 36
    })
    .await;
    assert_eq!(script.running.load(Ordering::SeqCst), 1, "not stopped");
    let leased = q.get_job(&job.id).await.unwrap();
    assert!(leased.unit_cursors["loop"].next > 10, "{leased:?}");
    // No more checkpoints: the watchdog stops it within the lease.
    script.checkpointing.store(false, Ordering::SeqCst);
    let quiet_since = Instant::now();
    until("the job's token fired", || {
        script.running.load(Ordering::SeqCst) == 0
    })
    .await;
    assert!(
        quiet_since.elapsed() >= Duration::from_millis(700),
        "{:?}",
        quiet_since.elapsed()
    );
    until("the runner let go of the job", || w.in_flight() == 0).await;
    store.fail_heartbeats.store(false, Ordering::SeqCst);
    w.stop().await;
    handle.await.unwrap().unwrap();
}
