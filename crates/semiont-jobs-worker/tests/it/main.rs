//! Integration tests of the worker runtime: completion, retries on a manual
//! clock, panics, concurrency, wake-ups, cancellation, graceful and forced
//! shutdown, progress throttling, batches, lease safety. Every case runs
//! on the in-memory store and on PostgreSQL (a schema per case, judging
//! times by the caller's clock so manual clocks drive it; the cases on the
//! system clock run with the server's clock too).

mod engine;
mod lease;

pub(crate) use lease::{
    checkpoints_keep_the_watchdog_satisfied_like_heartbeats,
    store_outages_are_retried_not_job_failures,
    the_heartbeat_stops_a_job_cancelled_while_notifications_are_lost,
    the_watchdog_stops_a_job_whose_heartbeats_keep_failing,
};

/// Every case of the suite on stores from `$factory`, each as its own test.
macro_rules! worker_suite {
    ($factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, guard) = ($factory)().await;
                crate::$case(store).await;
                drop(guard);
            }
        )*
    };
}

/// The cases that use the system clock only.
macro_rules! system_clock_cases {
    ($m:ident!($factory:expr)) => {
        $m!($factory;
            runs_jobs_to_completion_and_stops,
            permanent_errors_fail_at_once,
            concurrency_limit_is_respected,
            an_idle_worker_wakes_on_new_work_long_before_its_poll_interval,
            a_stream_of_news_is_claimed_a_cooldown_at_a_time,
            cancelling_a_running_job_fires_its_token_and_records_nothing_more,
            graceful_stop_waits_for_the_running_job,
            stop_after_timeout_cancels_cooperatively_and_gives_the_job_back,
            a_job_ignoring_cancellation_is_aborted_and_given_back,
            refused_jobs_are_left_for_others,
            progress_is_throttled_and_the_last_value_is_written_before_completion,
            batches_keep_order_and_stop_at_the_first_error,
            a_job_longer_than_its_lease_is_never_reclaimed_while_its_worker_lives,
            several_workers_of_different_types_share_one_queue,
            the_watchdog_stops_a_job_whose_heartbeats_keep_failing,
            the_heartbeat_stops_a_job_cancelled_while_notifications_are_lost,
            store_outages_are_retried_not_job_failures,
            checkpoints_keep_the_watchdog_satisfied_like_heartbeats,
            a_job_past_its_timeout_fails_retryably_with_code_timeout,
        );
    };
}

/// Every case.
macro_rules! all_cases {
    ($m:ident!($factory:expr)) => {
        system_clock_cases!($m!($factory));
        $m!($factory;
            retry_back_off_follows_the_queue_clock,
            a_panic_fails_the_attempt_not_the_worker,
            a_retry_resumes_after_the_checkpointed_units,
            the_runner_sweeps_old_finished_jobs,
        );
    };
}

type Guard = Box<dyn std::any::Any + Send>;

mod memory {
    all_cases!(worker_suite!(|| async {
        let store: std::sync::Arc<dyn semiont_jobs_store::JobStore> =
            std::sync::Arc::new(semiont_jobs_store::MemoryStore::new());
        (store, Box::new(()) as crate::Guard)
    }));
}

async fn pg_store(clock: semiont_jobs_store_pg::PgClock) -> (Arc<dyn JobStore>, Guard) {
    let schema = semiont_jobs_store_pg::testing::TestSchema::new();
    let store = schema.open(schema.options().clock(clock)).await;
    (Arc::new(store), Box::new(schema))
}

mod postgres {
    all_cases!(worker_suite!(|| crate::pg_store(
        semiont_jobs_store_pg::PgClock::Caller
    )));
}

mod postgres_server_clock {
    system_clock_cases!(worker_suite!(|| crate::pg_store(
        semiont_jobs_store_pg::PgClock::Server
    )));
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{Job, JobStatus, NewJob, Progress, Timestamp};
use semiont_jobs_queue::{EventKind, JobQueue, ManualClock};
use semiont_jobs_store::{JobStore, TypeFilter};
use semiont_jobs_worker::{JobContext, JobError, JobWorker, Worker, WorkerOptions};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

const WAIT: Duration = Duration::from_secs(20);

async fn queue(store: &Arc<dyn JobStore>) -> JobQueue {
    let q = JobQueue::builder()
        .store(Arc::clone(store))
        .build()
        .unwrap();
    q.initialize().await.unwrap();
    q
}

async fn queue_with_clock(store: &Arc<dyn JobStore>, clock: ManualClock) -> JobQueue {
    let q = JobQueue::builder()
        .store(Arc::clone(store))
        .clock(clock)
        .build()
        .unwrap();
    q.initialize().await.unwrap();
    q
}

fn fast() -> WorkerOptions {
    WorkerOptions::default()
        .poll_interval(Duration::from_millis(20))
        .error_backoff(Duration::from_millis(20))
        .progress_interval(Duration::from_millis(10))
}

fn spawn(worker: &Worker) -> tokio::task::JoinHandle<semiont_jobs_worker::Result<()>> {
    let w = worker.clone();
    tokio::spawn(async move { w.start().await })
}

async fn enqueue(q: &JobQueue, ty: &str, params: Value) -> Job {
    q.create_job(NewJob::custom(ty, "u1", params).unwrap())
        .await
        .unwrap()
}

/// Waits until `f` holds for the job, re-reading it on every queue event
/// (and every 50 ms in case the condition depends on time).
async fn wait_job(q: &JobQueue, job: &Job, f: impl Fn(&Job) -> bool) -> Job {
    let mut events = q.subscribe().without_snapshots();
    tokio::time::timeout(WAIT, async {
        loop {
            let current = q.get_job(&job.id).await.unwrap();
            if f(&current) {
                return current;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("job {} never reached the expected state", job.id))
}

/// A worker driven by the job's params: `{"mode": "ok" | "fail" | "permanent" | "panic" | "wait" | "progress" | "units" | "checkpoint-loop"}`.
struct Scripted {
    running: AtomicUsize,
    max_running: AtomicUsize,
    /// "gate" jobs wait for a permit.
    gate: Semaphore,
    calls: AtomicUsize,
    /// "checkpoint-loop" jobs checkpoint while this is set.
    checkpointing: std::sync::atomic::AtomicBool,
    /// Checkpoints written by "checkpoint-loop" jobs.
    checkpoints: AtomicUsize,
}

impl Default for Scripted {
    fn default() -> Self {
        Scripted {
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            gate: Semaphore::new(0),
            calls: AtomicUsize::new(0),
            checkpointing: std::sync::atomic::AtomicBool::new(true),
            checkpoints: AtomicUsize::new(0),
        }
    }
}

#[async_trait::async_trait]
impl JobWorker for Scripted {
    fn worker_name(&self) -> &str {
        "scripted"
    }
    fn job_types(&self) -> TypeFilter {
        TypeFilter::one("scripted".parse().unwrap())
    }
    fn can_process_job(&self, job: &Job) -> bool {
        job.params.get("refuse").is_none()
    }
    async fn execute_job(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        let _dec = Dec(&self.running);
        let mode = job.params["mode"].as_str().unwrap_or("ok").to_owned();
        match mode.as_str() {
            "ok" => Ok(Some(json!({"attempt": ctx.attempt()}))),
            "fail-once" if ctx.attempt() == 1 => Err(JobError::network("flaky")),
            "fail-once" => Ok(Some(json!({"attempt": ctx.attempt()}))),
            "permanent" => Err(JobError::permanent("bad input").with_code("INVALID")),
            "panic" if ctx.attempt() == 1 => panic!("worker bug"),
            "panic" => Ok(None),
            "gate" => {
                tokio::select! {
                    p = self.gate.acquire() => { p.unwrap().forget(); Ok(None) },
                    _ = ctx.cancellation_token().cancelled() => Err(JobError::cancelled()),
                }
            }
            "until-cancelled" => {
                ctx.cancellation_token().cancelled().await;
                Err(JobError::cancelled())
            }
            "ignore-cancel" => {
                self.gate.acquire().await.unwrap().forget();
                Ok(None)
            }
            "progress" => {
                for i in 0..=200u32 {
                    ctx.update_progress(
                        Progress::percent(f64::from(i) / 2.0).with_message(format!("item {i}")),
                    )
                    .await?;
                }
                Ok(None)
            }
            // Works through `units`, checkpointing each; the first attempt
            // fails (retryably) after `fail_after` units.
            "units" => {
                let units: Vec<String> = serde_json::from_value(job.params["units"].clone())
                    .map_err(|e| JobError::permanent(e.to_string()))?;
                let fail_after = job.params["fail_after"].as_u64().unwrap_or(u64::MAX);
                let mut done = Vec::new();
                for unit in units {
                    if ctx.is_completed(&unit) {
                        continue;
                    }
                    if ctx.attempt() == 1 && done.len() as u64 == fail_after {
                        return Err(JobError::retryable("failing after some units"));
                    }
                    ctx.update_progress(Progress::percent(50.0)).await?;
                    ctx.checkpoint(semiont_jobs_model::Checkpoint::unit_done(unit.clone()))
                        .await?;
                    done.push(unit);
                }
                Ok(Some(
                    json!({"done": done, "completed": ctx.completed_units()}),
                ))
            }
            // Moves a cursor every 50 ms while the worker says so, then
            // waits for its token.
            "checkpoint-loop" => {
                let mut next = 0;
                while self.checkpointing.load(Ordering::SeqCst) && !ctx.is_cancelled() {
                    next += 1;
                    ctx.checkpoint(semiont_jobs_model::Checkpoint::cursor(
                        "loop",
                        semiont_jobs_model::UnitCursor::at(next, 0),
                    ))
                    .await?;
                    self.checkpoints.fetch_add(1, Ordering::SeqCst);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                        _ = ctx.cancellation_token().cancelled() => {}
                    }
                }
                ctx.cancellation_token().cancelled().await;
                Err(JobError::cancelled())
            }
            other => Err(JobError::permanent(format!("unknown mode {other}"))),
        }
    }
}

struct Dec<'a>(&'a AtomicUsize);
impl Drop for Dec<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub(crate) async fn runs_jobs_to_completion_and_stops(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let w = Worker::new(q.clone(), Scripted::default(), fast());
    let handle = spawn(&w);
    let mut jobs = Vec::new();
    for _ in 0..10 {
        jobs.push(enqueue(&q, "scripted", json!({"mode": "ok"})).await);
    }
    for job in &jobs {
        let done = wait_job(&q, job, |j| j.status == JobStatus::Complete).await;
        assert_eq!(done.result, Some(json!({"attempt": 1})));
    }
    w.stop().await;
    handle.await.unwrap().unwrap();
    assert_eq!(w.executed(), 10);
}

pub(crate) async fn retry_back_off_follows_the_queue_clock(store: Arc<dyn JobStore>) {
    let clock = ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap());
    let q = queue_with_clock(&store, clock.clone()).await;
    let w = Worker::new(q.clone(), Scripted::default(), fast());
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "fail-once"})).await;
    let pending = wait_job(&q, &job, |j| j.retry_count == 1).await;
    assert_eq!(pending.status, JobStatus::Pending);
    let run_at = pending.run_at.expect("a retry is scheduled");
    assert!(run_at > q.now(), "back-off in the future");
    assert!(pending.error.as_deref().unwrap().contains("NETWORK_ERROR"));
    // Not due: the runner polls several more times without running it.
    let polls = w.claim_attempts();
    tokio::time::timeout(WAIT, async {
        while w.claim_attempts() < polls + 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(q.get_job(&job.id).await.unwrap().status, JobStatus::Pending);
    clock.set(run_at);
    let done = wait_job(&q, &job, |j| j.status == JobStatus::Complete).await;
    assert_eq!(done.attempt, 2);
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn permanent_errors_fail_at_once(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let w = Worker::new(q.clone(), Scripted::default(), fast());
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "permanent"})).await;
    let failed = wait_job(&q, &job, |j| j.status == JobStatus::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("INVALID: bad input"));
    assert_eq!(failed.retry_count, 0);
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn a_panic_fails_the_attempt_not_the_worker(store: Arc<dyn JobStore>) {
    let clock = ManualClock::new(Timestamp::parse("2026-01-01T00:00:00Z").unwrap());
    let q = queue_with_clock(&store, clock.clone()).await;
    let w = Worker::new(q.clone(), Scripted::default(), fast());
    let handle = spawn(&w);
    let bad = enqueue(&q, "scripted", json!({"mode": "panic"})).await;
    let retried = wait_job(&q, &bad, |j| j.retry_count == 1).await;
    assert!(
        retried.error.as_deref().unwrap().contains("worker bug"),
        "{retried:?}"
    );
    let good = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    wait_job(&q, &good, |j| j.status == JobStatus::Complete).await;
    clock.set(retried.run_at.unwrap());
    wait_job(&q, &bad, |j| j.status == JobStatus::Complete).await;
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn concurrency_limit_is_respected(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let script = Arc::new(Scripted::default());
    let w = Worker::new(q.clone(), Arc::clone(&script), fast().concurrency(3));
    let mut jobs = Vec::new();
    for _ in 0..12 {
        jobs.push(enqueue(&q, "scripted", json!({"mode": "gate"})).await);
    }
    let handle = spawn(&w);
    // Three are in flight at once, and no fourth starts while they hold.
    tokio::time::timeout(WAIT, async {
        while script.running.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("three jobs in flight");
    assert_eq!(w.in_flight(), 3);
    script.gate.add_permits(12);
    for job in &jobs {
        wait_job(&q, job, |j| j.status == JobStatus::Complete).await;
    }
    assert_eq!(script.max_running.load(Ordering::SeqCst), 3);
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn an_idle_worker_wakes_on_new_work_long_before_its_poll_interval(
    store: Arc<dyn JobStore>,
) {
    let q = queue(&store).await;
    let opts = fast().poll_interval(Duration::from_secs(3600));
    let w = Worker::new(q.clone(), Scripted::default(), opts);
    let handle = spawn(&w);
    let first = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    wait_job(&q, &first, |j| j.status == JobStatus::Complete).await;
    let started = std::time::Instant::now();
    let second = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    wait_job(&q, &second, |j| j.status == JobStatus::Complete).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "woke by notification"
    );
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn a_stream_of_news_is_claimed_a_cooldown_at_a_time(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let cooldown = Duration::from_secs(2);
    let opts = fast()
        .poll_interval(Duration::from_secs(3600))
        .claim_cooldown(cooldown)
        .concurrency(10);
    let w = Worker::new(q.clone(), Scripted::default(), opts);
    let handle = spawn(&w);
    // The start's claim finds nothing; the runner waits for news.
    tokio::time::timeout(WAIT, async {
        while w.claim_attempts() < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the runner claimed at start");
    // A quiet spell longer than the cooldown (the condition under test,
    // not a synchronisation): the next news is claimed at once.
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let first = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    wait_job(&q, &first, |j| j.status == JobStatus::Complete).await;
    assert!(
        started.elapsed() < cooldown,
        "news after a quiet spell waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        w.claim_attempts(),
        2,
        "the start's claim and the first job's"
    );
    // A stream right after that claim: one claim, a cooldown after the
    // previous one, takes every job of it.
    let mut stream = Vec::new();
    for _ in 0..5 {
        stream.push(enqueue(&q, "scripted", json!({"mode": "ok"})).await);
    }
    for job in &stream {
        wait_job(&q, job, |j| j.status == JobStatus::Complete).await;
    }
    assert_eq!(w.claim_attempts(), 3, "five creates, one claim");
    let mut starts = Vec::new();
    for job in &stream {
        starts.push(q.get_job(&job.id).await.unwrap().started_at);
    }
    assert!(
        starts.iter().all(|s| s.is_some() && *s == starts[0]),
        "the five were claimed together: {starts:?}"
    );
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn cancelling_a_running_job_fires_its_token_and_records_nothing_more(
    store: Arc<dyn JobStore>,
) {
    let q = queue(&store).await;
    let script = Arc::new(Scripted::default());
    let w = Worker::new(q.clone(), Arc::clone(&script), fast());
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "until-cancelled"})).await;
    wait_job(&q, &job, |j| j.status == JobStatus::Running).await;
    let mut events = q.subscribe().without_snapshots().only_job(job.id.clone());
    q.cancel_job(&job.id).await.unwrap();
    let start = std::time::Instant::now();
    tokio::time::timeout(WAIT, async {
        while script.running.load(Ordering::SeqCst) > 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the job saw its token fire");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "cancel reached the job in {:?}",
        start.elapsed()
    );
    tokio::time::timeout(WAIT, async {
        while w.in_flight() > 0 {
            tokio::task::yield_now().await
        }
    })
    .await
    .unwrap();
    let after = q.get_job(&job.id).await.unwrap();
    assert_eq!(after.status, JobStatus::Cancelled);
    // The only event is the cancellation itself: no failure, no retry.
    let ev = events.recv().await.unwrap();
    assert_eq!(ev.kind, EventKind::Cancelled);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), events.recv())
            .await
            .is_err()
    );
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn graceful_stop_waits_for_the_running_job(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let script = Arc::new(Scripted::default());
    let w = Worker::new(
        q.clone(),
        Arc::clone(&script),
        fast().shutdown_timeout(Duration::from_secs(60)),
    );
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "gate"})).await;
    wait_job(&q, &job, |j| j.status == JobStatus::Running).await;
    let mut stopping = tokio::spawn({
        let w = w.clone();
        async move { w.stop().await }
    });
    // The stop is waiting on the job: the job is still running.
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut stopping)
            .await
            .is_err()
    );
    assert_eq!(q.get_job(&job.id).await.unwrap().status, JobStatus::Running);
    script.gate.add_permits(1);
    handle.await.unwrap().unwrap();
    assert_eq!(
        q.get_job(&job.id).await.unwrap().status,
        JobStatus::Complete
    );
    // No new claims after stop.
    let late = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    assert_eq!(
        q.get_job(&late.id).await.unwrap().status,
        JobStatus::Pending
    );
}

pub(crate) async fn stop_after_timeout_cancels_cooperatively_and_gives_the_job_back(
    store: Arc<dyn JobStore>,
) {
    let q = queue(&store).await;
    let w = Worker::new(
        q.clone(),
        Scripted::default(),
        fast().shutdown_timeout(Duration::from_millis(100)),
    );
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "until-cancelled"})).await;
    let running = wait_job(&q, &job, |j| j.status == JobStatus::Running).await;
    w.stop().await;
    handle.await.unwrap().unwrap();
    let after = q.get_job(&job.id).await.unwrap();
    assert_eq!(
        after.status,
        JobStatus::Pending,
        "recoverable, never half-complete"
    );
    assert_eq!(after.retry_count, 0, "a shutdown is not the job's fault");
    assert_eq!(after.attempt, running.attempt);
}

pub(crate) async fn a_job_ignoring_cancellation_is_aborted_and_given_back(
    store: Arc<dyn JobStore>,
) {
    let q = queue(&store).await;
    let w = Worker::new(
        q.clone(),
        Scripted::default(),
        fast().shutdown_timeout(Duration::from_millis(50)),
    );
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "ignore-cancel"})).await;
    wait_job(&q, &job, |j| j.status == JobStatus::Running).await;
    w.stop().await;
    handle.await.unwrap().unwrap();
    assert_eq!(q.get_job(&job.id).await.unwrap().status, JobStatus::Pending);
}

pub(crate) async fn refused_jobs_are_left_for_others(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let script = Arc::new(Scripted::default());
    let w = Worker::new(q.clone(), Arc::clone(&script), fast());
    let refused = enqueue(&q, "scripted", json!({"mode": "ok", "refuse": true})).await;
    let other = enqueue(&q, "other-type", json!({})).await;
    let handle = spawn(&w);
    let ok = enqueue(&q, "scripted", json!({"mode": "ok"})).await;
    wait_job(&q, &ok, |j| j.status == JobStatus::Complete).await;
    w.stop().await;
    handle.await.unwrap().unwrap();
    let r = q.get_job(&refused.id).await.unwrap();
    assert_eq!(r.status, JobStatus::Pending);
    assert_eq!(r.retry_count, 0);
    assert_eq!(
        q.get_job(&other.id).await.unwrap().attempt,
        0,
        "other types are never claimed"
    );
}

pub(crate) async fn progress_is_throttled_and_the_last_value_is_written_before_completion(
    store: Arc<dyn JobStore>,
) {
    let q = queue(&store).await;
    let w = Worker::new(
        q.clone(),
        Scripted::default(),
        fast().progress_interval(Duration::from_millis(50)),
    );
    let mut events = q.subscribe().without_snapshots();
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "progress"})).await;
    let done = wait_job(&q, &job, |j| j.status == JobStatus::Complete).await;
    assert_eq!(done.progress.as_ref().unwrap()["percentage"], json!(100.0));
    assert_eq!(done.progress.as_ref().unwrap()["message"], "item 200");
    let mut writes = 0;
    while let Ok(Some(ev)) = tokio::time::timeout(Duration::from_millis(10), events.recv()).await {
        if ev.kind == EventKind::Progress && ev.job_id.as_ref() == Some(&job.id) {
            writes += 1;
        }
    }
    assert!(
        (1..200).contains(&writes),
        "{writes} progress writes for 201 reports"
    );
    w.stop().await;
    handle.await.unwrap().unwrap();
}

pub(crate) async fn batches_keep_order_and_stop_at_the_first_error(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let job = enqueue(&q, "scripted", json!({})).await;
    let running = q
        .claim_next_job("scripted", q.worker_id())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.id, job.id);
    let ctx = JobContext::detached(q.clone(), &running);
    let squares = ctx
        .run_batch(0..25u64, 10, |n| async move { Ok::<_, JobError>(n * n) })
        .await
        .unwrap();
    assert_eq!(squares, (0..25u64).map(|n| n * n).collect::<Vec<_>>());
    let started = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&started);
    let err = ctx
        .run_batch(0..1000u64, 2, move |n| {
            let s = Arc::clone(&s);
            async move {
                s.fetch_add(1, Ordering::SeqCst);
                if n == 3 {
                    Err(JobError::permanent("item 3 is bad"))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "item 3 is bad");
    assert!(started.load(Ordering::SeqCst) < 1000, "stopped early");
}

pub(crate) async fn a_job_longer_than_its_lease_is_never_reclaimed_while_its_worker_lives(
    store: Arc<dyn JobStore>,
) {
    let q = JobQueue::builder()
        .store(Arc::clone(&store))
        .lease(Duration::from_millis(600))
        .build()
        .unwrap();
    q.initialize().await.unwrap();
    let script = Arc::new(Scripted::default());
    let mut opts = fast();
    opts.recovery_interval = Duration::from_millis(20);
    let w = Worker::new(q.clone(), Arc::clone(&script), opts);
    let handle = spawn(&w);
    let job = enqueue(&q, "scripted", json!({"mode": "gate"})).await;
    wait_job(&q, &job, |j| j.status == JobStatus::Running).await;
    // Recovery runs every 20 ms; wait until the job has outlived three
    // lease lengths, seen through heartbeats pushing its lease forward.
    // (A lease well above the heartbeat period: the watchdog stops jobs
    // whose heartbeats are late by more than the lease minus its margin.)
    let first = q.get_job(&job.id).await.unwrap().lease_expires_at.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            let lease = q.get_job(&job.id).await.unwrap().lease_expires_at.unwrap();
            if lease.as_millis() >= first.as_millis() + 1800 {
                break;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("heartbeats renew the lease");
    script.gate.add_permits(1);
    let done = wait_job(&q, &job, |j| j.status == JobStatus::Complete).await;
    assert_eq!(done.attempt, 1, "never reclaimed");
    assert_eq!(done.retry_count, 0);
    w.stop().await;
    handle.await.unwrap().unwrap();
}

/// Runs every job of one type and records which type it saw.
struct Typed(&'static str);

#[async_trait::async_trait]
impl JobWorker for Typed {
    fn worker_name(&self) -> &str {
        self.0
    }
    fn job_types(&self) -> TypeFilter {
        TypeFilter::one(self.0.parse().unwrap())
    }
    fn can_process_job(&self, job: &Job) -> bool {
        job.job_type.as_str() == self.0
    }
    async fn execute_job(&self, _: &JobContext, _: &Job) -> Result<Option<Value>, JobError> {
        Ok(Some(json!({ "by": self.0 })))
    }
}

pub(crate) async fn several_workers_of_different_types_share_one_queue(store: Arc<dyn JobStore>) {
    let q = queue(&store).await;
    let a = Worker::new(q.clone(), Typed("alpha"), fast());
    let b = Worker::new(q.clone(), Typed("beta"), fast());
    assert_ne!(a.worker_id(), b.worker_id());
    let (ha, hb) = (spawn(&a), spawn(&b));
    let mut jobs = Vec::new();
    for i in 0..10 {
        let ty = if i % 2 == 0 { "alpha" } else { "beta" };
        jobs.push((ty, enqueue(&q, ty, json!({})).await));
    }
    for (ty, job) in &jobs {
        let done = wait_job(&q, job, |j| j.status == JobStatus::Complete).await;
        assert_eq!(done.result, Some(json!({ "by": ty })));
    }
    assert_eq!((a.executed(), b.executed()), (5, 5));
    a.stop().await;
    b.stop().await;
    ha.await.unwrap().unwrap();
    hb.await.unwrap().unwrap();
}

/// Checkpoints through the context: the first attempt finishes two units
/// and fails; the retry skips them (it sees them as completed), does the
/// rest, and the job ends with every unit completed.
pub(crate) async fn a_retry_resumes_after_the_checkpointed_units(store: Arc<dyn JobStore>) {
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let q = queue_with_clock(&store, clock.clone()).await;
    let script = Arc::new(Scripted::default());
    let w = Worker::new(q.clone(), Arc::clone(&script), fast());
    let handle = spawn(&w);
    let job = enqueue(
        &q,
        "scripted",
        json!({"mode": "units", "units": ["a", "b", "c", "d"], "fail_after": 2}),
    )
    .await;
    let retrying = wait_job(&q, &job, |j| {
        j.status == JobStatus::Pending && j.retry_count == 1
    })
    .await;
    assert_eq!(retrying.completed_units, ["a", "b"]);
    assert!(
        retrying.progress.is_some(),
        "the failed attempt's last progress"
    );
    clock.advance(Duration::from_secs(60));
    let done = wait_job(&q, &job, |j| j.status == JobStatus::Complete).await;
    assert_eq!(done.attempt, 2);
    assert_eq!(done.result.as_ref().unwrap()["done"], json!(["c", "d"]));
    assert_eq!(done.completed_units, ["a", "b", "c", "d"]);
    w.stop().await;
    handle.await.unwrap().unwrap();
}

/// A type with an execution timeout: at the deadline the job's token
/// fires, and the attempt fails as retryable with code `TIMEOUT` (also
/// when the job ignores its token: then it is abandoned after the grace).
pub(crate) async fn a_job_past_its_timeout_fails_retryably_with_code_timeout(
    store: Arc<dyn JobStore>,
) {
    let q = JobQueue::builder()
        .store(Arc::clone(&store))
        .type_policy(
            "scripted".parse().unwrap(),
            semiont_jobs_queue::TypePolicy {
                timeout: Some(Duration::from_millis(200)),
                timeout_grace: Some(Duration::from_millis(200)),
                ..Default::default()
            },
        )
        .build()
        .unwrap();
    q.initialize().await.unwrap();
    let script = Arc::new(Scripted::default());
    let w = Worker::new(q.clone(), Arc::clone(&script), fast());
    let handle = spawn(&w);
    for mode in ["until-cancelled", "ignore-cancel"] {
        let job = enqueue(&q, "scripted", json!({ "mode": mode })).await;
        let back = wait_job(&q, &job, |j| j.retry_count == 1).await;
        assert_eq!(back.status, JobStatus::Pending, "{mode}: retried");
        let error = back.error.clone().unwrap_or_default();
        assert!(error.starts_with("TIMEOUT: "), "{mode}: {error}");
        assert!(error.contains("200 ms"), "{mode}: {error}");
        q.cancel_job(&job.id).await.unwrap();
    }
    until_idle(&w).await;
    w.stop().await;
    handle.await.unwrap().unwrap();
}

async fn until_idle(w: &Worker) {
    tokio::time::timeout(WAIT, async {
        while w.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the runner let go of its jobs");
}

/// The runner sweeps finished jobs past the queue's retention period at
/// start (and on its timer), under the store's sweep lease.
pub(crate) async fn the_runner_sweeps_old_finished_jobs(store: Arc<dyn JobStore>) {
    let clock = ManualClock::new(Timestamp::from_millis(1_767_225_600_000));
    let q = JobQueue::builder()
        .store(Arc::clone(&store))
        .clock(clock.clone())
        .retention_period(Duration::from_secs(3600))
        .build()
        .unwrap();
    q.initialize().await.unwrap();
    let old = enqueue(&q, "other", json!({})).await;
    q.cancel_job(&old.id).await.unwrap();
    clock.advance(Duration::from_secs(7200));
    let fresh = enqueue(&q, "other", json!({})).await;
    q.cancel_job(&fresh.id).await.unwrap();
    let w = Worker::new(
        q.clone(),
        Scripted::default(),
        fast().sweep_interval(Some(Duration::from_secs(3600))),
    );
    let handle = spawn(&w);
    tokio::time::timeout(WAIT, async {
        while q.get_stats().await.unwrap().cancelled != 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the old job was swept");
    assert!(q.get_job(&fresh.id).await.is_ok(), "within retention");
    w.stop().await;
    handle.await.unwrap().unwrap();
    let bad = Worker::new(
        q.clone(),
        Scripted::default(),
        fast().sweep_interval(Some(Duration::ZERO)),
    );
    let e = bad.start().await.unwrap_err();
    assert!(e.to_string().contains("sweep interval"), "{e}");
}
