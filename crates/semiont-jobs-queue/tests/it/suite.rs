//! The queue's behaviour suite: one function per behaviour, each on a fresh
//! store, generic over the backend. `queue_suite!(factory)` turns every case
//! into a `#[tokio::test]`; the factory is a closure returning a future of a
//! [`Backend`].
//!
//! Time is a `ManualClock` starting at [`T0`]: back-off and retention are
//! checked by moving it, never by sleeping. Events are awaited with a timeout.

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{
    DetectionProgress, GenerationParams, GenerationProgress, GenerationStage, Job, JobFilter,
    JobId, JobStatus, JobType, NewJob, Progress, RetryPolicy, Timestamp, MAX_LIST_LIMIT,
    MAX_PARAMS_BYTES,
};
use semiont_jobs_queue::{
    Clock, ErrorKind, EventKind, EventStream, JobFailure, JobQueue, JobQueueBuilder, ManualClock,
    QueueEvent, Result,
};
use semiont_jobs_store::{ChangeOrigin, JobStore, TypeFilter};
use serde_json::json;

/// Opens a second store instance on the same data (another "process").
type Reopen = Box<dyn Fn() -> Arc<dyn JobStore> + Send + Sync>;

/// A store under test plus whatever must outlive it (a temp dir).
pub struct Backend {
    store: Arc<dyn JobStore>,
    reopen: Option<Reopen>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl Backend {
    /// A backend that needs nothing kept alive.
    pub fn new(store: impl JobStore) -> Self {
        Self::with_guard(store, ())
    }

    /// A backend that keeps `guard` alive as long as the store.
    pub fn with_guard(store: impl JobStore, guard: impl Any + Send + Sync) -> Self {
        Backend {
            store: Arc::new(store),
            reopen: None,
            _guard: Box::new(guard),
        }
    }

    /// How to open a second instance on the same data, for backends that
    /// report other instances' changes (`Capabilities::external_events`).
    #[allow(dead_code, reason = "used by persistent backends only")]
    pub fn with_reopen(
        mut self,
        reopen: impl Fn() -> Arc<dyn JobStore> + Send + Sync + 'static,
    ) -> Self {
        self.reopen = Some(Box::new(reopen));
        self
    }
}

/// Runs every case of the suite as its own test, on stores from `$factory`.
macro_rules! queue_suite {
    ($factory:expr) => {
        queue_suite!(@cases $factory;
            initialize_is_idempotent_and_recovers_dead_workers,
            create_job_returns_a_pending_job,
            create_job_takes_every_request_type,
            create_job_rejects_bad_input_and_writes_nothing,
            create_jobs_enqueues_a_batch_in_order,
            create_jobs_rejects_the_whole_batch_for_one_bad_request,
            get_job_rejects_invalid_and_unknown_ids,
            update_job_status_sets_running_for_the_queue,
            update_job_status_conflicts_when_another_task_was_first,
            update_job_status_refuses_illegal_transitions,
            update_job_status_covers_every_legal_move,
            update_job_progress_accepts_generic_and_typed_progress,
            update_job_progress_rejects_bad_values,
            update_job_progress_requires_a_running_job,
            fenced_writes_with_a_stale_attempt_conflict,
            complete_job_records_the_result,
            complete_job_refuses_jobs_that_are_not_running,
            fail_job_retries_with_exponential_backoff,
            fail_job_jitter_stays_within_bounds,
            fail_job_permanent_failure_skips_retries,
            fail_job_without_retry_budget_fails_at_once,
            retry_job_resubmits_failed_and_cancelled_jobs,
            release_job_requeues_without_counting_a_retry,
            list_jobs_filters_sorts_and_paginates,
            get_stats_counts_every_status,
            poll_next_pending_job_is_fifo_and_skips_jobs_not_due,
            poll_then_set_running_competes_through_the_status_update,
            claim_next_job_takes_each_job_once,
            claim_next_job_validates_its_arguments,
            cancel_job_cancels_a_pending_job,
            cancel_job_fences_the_running_worker,
            cancel_job_refuses_finished_and_unknown_jobs,
            cancel_and_complete_race_has_one_winner,
            cleanup_old_jobs_uses_the_retention_period,
            cleanup_never_touches_pending_or_running_jobs,
            events_of_one_job_arrive_in_order,
            events_carry_snapshots_and_can_be_filtered,
            events_name_every_lifecycle_change,
            events_report_a_resync_after_falling_behind,
            events_of_other_instances_arrive_as_external,
            close_makes_the_queues_own_jobs_recoverable,
            clones_share_one_queue,
            enqueue_with_a_unique_key_returns_the_holder,
            retry_of_a_job_whose_key_is_held_is_a_duplicate,
            type_policies_set_defaults_and_backoff,
            checkpoints_are_fenced_merged_and_kept_across_attempts,
            bulk_cancel_and_retry_by_filter,
            pause_and_resume_a_type,
            sweep_runs_cleanup_for_one_holder_at_a_time,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend: $crate::suite::Backend = ($factory)().await;
                let harness = $crate::suite::Harness::new(backend);
                ::tokio::time::timeout(
                    ::std::time::Duration::from_secs(60),
                    $crate::suite::$case(harness),
                )
                .await
                .expect(concat!("queue case ", stringify!($case), " timed out"));
            }
        )*
    };
}

/// The suite's start time: 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_millis(1_767_225_600_000);
const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);

/// A fresh store, a manual clock at [`T0`] and a queue on both.
pub struct Harness {
    pub store: Arc<dyn JobStore>,
    pub clock: ManualClock,
    pub queue: JobQueue,
    backend: Backend,
}

/// Back-off without jitter: 1 s, 2 s, 4 s, ... capped at 60 s.
fn exact_policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: SECOND,
        max_delay: Duration::from_secs(60),
        jitter: 0.0,
    }
}

impl Harness {
    pub fn new(backend: Backend) -> Self {
        let store = Arc::clone(&backend.store);
        let clock = ManualClock::new(T0);
        let queue = build_queue(&store, &clock, |b| b);
        Harness {
            store,
            clock,
            queue,
            backend,
        }
    }

    /// Another queue on the same store and clock, with extra settings.
    pub fn queue_with(&self, f: impl FnOnce(JobQueueBuilder) -> JobQueueBuilder) -> JobQueue {
        build_queue(&self.store, &self.clock, f)
    }
}

fn build_queue(
    store: &Arc<dyn JobStore>,
    clock: &ManualClock,
    f: impl FnOnce(JobQueueBuilder) -> JobQueueBuilder,
) -> JobQueue {
    let builder = JobQueue::builder()
        .store(Arc::clone(store))
        .clock(clock.clone())
        .retry_policy(exact_policy())
        .jitter_seed(1);
    f(builder).build().expect("queue")
}

fn detection() -> NewJob {
    NewJob::detection("user-123", "doc-456", ["Person", "Organization"])
}

fn custom(ty: &str, user: &str) -> NewJob {
    NewJob::custom(ty, user, json!({ "n": 1 })).unwrap()
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

/// The error of `r`, checked to be of kind `k` and to mention `needle`.
fn expect_err<T: std::fmt::Debug>(r: Result<T>, k: ErrorKind, needle: &str) {
    match r {
        Ok(v) => panic!("expected a {k:?} error mentioning {needle:?}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(e.kind(), k, "{e}");
            assert!(
                e.to_string().contains(needle),
                "{needle:?} not in {e:?}: {e}"
            );
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }
}

/// Creates a job of type `solo` and claims it for `w1` (jobs of other types
/// a case has pending stay pending).
async fn running(h: &Harness) -> Job {
    let job = h
        .queue
        .create_job(custom("solo", "user-123"))
        .await
        .unwrap();
    let claimed = h
        .queue
        .claim_next_job("solo", "w1")
        .await
        .unwrap()
        .expect("a due job");
    assert_eq!(claimed.id, job.id);
    claimed
}

async fn next_event(events: &mut EventStream) -> QueueEvent {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("an event arrives")
        .expect("the stream is open")
}

async fn status_of(h: &Harness, id: &JobId) -> JobStatus {
    h.queue.get_job(id).await.unwrap().status
}

/// `initialize()` registers the queue and recovers dead workers' jobs once;
/// a second call does nothing.
pub async fn initialize_is_idempotent_and_recovers_dead_workers(h: Harness) {
    let orphan = h.queue.create_job(detection()).await.unwrap();
    h.queue
        .claim_next_job(TypeFilter::Any, "ghost")
        .await
        .unwrap()
        .unwrap();
    h.clock.advance(Duration::from_secs(120)); // past the 30 s lease
    h.queue.initialize().await.unwrap();
    let back = h.queue.get_job(&orphan.id).await.unwrap();
    assert_eq!(back.status, JobStatus::Pending);
    assert_eq!(back.retry_count, 1);
    assert!(
        back.error.as_deref().unwrap_or("").contains("ghost"),
        "{back:?}"
    );

    // A second initialize runs no recovery pass.
    h.queue
        .claim_next_job(TypeFilter::Any, "ghost-2")
        .await
        .unwrap()
        .unwrap();
    h.clock.advance(Duration::from_secs(120));
    h.queue.initialize().await.unwrap();
    assert_eq!(status_of(&h, &orphan.id).await, JobStatus::Running);

    // The queue's own worker is registered: a job it set running survives
    // recovery however long it runs.
    let own = h.queue.create_job(detection()).await.unwrap();
    h.queue
        .update_job_status(&own.id, JobStatus::Running)
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(3600));
    let report = h.queue.recover().await.unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&orphan.id));
    assert_eq!(status_of(&h, &own.id).await, JobStatus::Running);
}

/// A created job is pending, has a `job-` id, the clock's time and the
/// queue's default retry budget, and reads back unchanged.
pub async fn create_job_returns_a_pending_job(h: Harness) {
    let job = h.queue.create_job(detection()).await.unwrap();
    assert!(job.id.as_str().starts_with("job-"), "{}", job.id);
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.job_type, JobType::Detection);
    assert_eq!(job.user_id, "user-123");
    assert_eq!(job.created, T0);
    assert_eq!(job.max_retries, 3);
    assert_eq!(job.retry_count, 0);
    assert_eq!(job.attempt, 0);
    let p = job.detection_params().unwrap();
    assert_eq!(p.resource_id, "doc-456");
    assert_eq!(p.entity_types, ["Person", "Organization"]);
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), job);
    assert_eq!(h.queue.get_job(job.id.as_str()).await.unwrap(), job);

    let q5 = h.queue_with(|b| b.max_retries(5));
    assert_eq!(q5.create_job(detection()).await.unwrap().max_retries, 5);
}

/// Detection, generation and custom requests, with per-job options.
pub async fn create_job_takes_every_request_type(h: Harness) {
    let g = h
        .queue
        .create_job(NewJob::generation(
            "u",
            GenerationParams {
                reference_id: "ann-1".into(),
                source_resource_id: "doc-1".into(),
                prompt: Some("Write about it".into()),
                title: Some("Title".into()),
                entity_types: Some(vec!["Person".into()]),
                language: Some("en".into()),
            },
        ))
        .await
        .unwrap();
    assert_eq!(g.job_type, JobType::Generation);
    assert_eq!(
        g.generation_params().unwrap().language.as_deref(),
        Some("en")
    );

    let c = h
        .queue
        .create_job(
            NewJob::custom("my-job-type", "u", json!({ "items": [1, 2, 3] }))
                .unwrap()
                .max_retries(0)
                .priority(7),
        )
        .await
        .unwrap();
    assert_eq!(c.job_type.as_str(), "my-job-type");
    assert_eq!(c.params["items"], json!([1, 2, 3]));
    assert_eq!((c.max_retries, c.priority), (0, 7));

    let d = h
        .queue
        .create_job(detection().max_retries(100))
        .await
        .unwrap();
    assert_eq!(d.max_retries, 100);
    assert_eq!(h.queue.get_stats().await.unwrap().pending, 3);
}

/// Invalid requests are typed errors naming the value; nothing is written.
pub async fn create_job_rejects_bad_input_and_writes_nothing(h: Harness) {
    let q = &h.queue;
    let no_types = NewJob::detection("u", "doc", Vec::<String>::new());
    expect_err(
        q.create_job(no_types).await,
        ErrorKind::InvalidInput,
        "entityTypes is empty",
    );
    let big = NewJob::custom("t", "u", json!({ "blob": "x".repeat(MAX_PARAMS_BYTES) })).unwrap();
    expect_err(
        q.create_job(big).await,
        ErrorKind::InvalidInput,
        "more than the limit",
    );
    expect_err(
        q.create_job(detection().max_retries(101)).await,
        ErrorKind::InvalidInput,
        "101",
    );
    expect_err(
        q.create_job(NewJob::detection("", "doc", ["Person"])).await,
        ErrorKind::InvalidInput,
        "userId",
    );
    let reserved = NewJob::custom("t", "u", json!({ "status": "complete" })).unwrap();
    expect_err(
        q.create_job(reserved).await,
        ErrorKind::InvalidInput,
        "\"status\"",
    );
    expect_err(
        q.create_job(NewJob::generation("u", GenerationParams::default()))
            .await,
        ErrorKind::InvalidInput,
        "referenceId",
    );
    assert_eq!(q.get_stats().await.unwrap().total(), 0);
}

/// A batch is stored whole, in request order, and claimed FIFO.
pub async fn create_jobs_enqueues_a_batch_in_order(h: Harness) {
    let jobs = h
        .queue
        .create_jobs((0..100).map(|i| custom("bulk", &format!("u{i}"))))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 100);
    assert!(jobs.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(h.queue.get_stats().await.unwrap().pending, 100);
    for job in &jobs[..10] {
        let claimed = h.queue.claim_next_job("bulk", "w1").await.unwrap().unwrap();
        assert_eq!(claimed.id, job.id);
    }
    assert!(h.queue.create_jobs(Vec::new()).await.unwrap().is_empty());
}

/// One bad request rejects the batch, naming its position.
pub async fn create_jobs_rejects_the_whole_batch_for_one_bad_request(h: Harness) {
    let batch = vec![
        custom("t", "u"),
        custom("t", "u"),
        NewJob::detection("u", "doc", Vec::<String>::new()),
        custom("t", "u"),
    ];
    let e = h.queue.create_jobs(batch).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().starts_with("job 2 of the batch"), "{e}");
    assert_eq!(h.queue.get_stats().await.unwrap().total(), 0);
}

/// Malformed ids are invalid input naming the id; unknown ones are not found.
pub async fn get_job_rejects_invalid_and_unknown_ids(h: Harness) {
    expect_err(
        h.queue.get_job("../etc/passwd").await,
        ErrorKind::InvalidInput,
        "../etc/passwd",
    );
    expect_err(h.queue.get_job("").await, ErrorKind::InvalidInput, "empty");
    expect_err(
        h.queue.get_job("job with spaces").await,
        ErrorKind::InvalidInput,
        "job with spaces",
    );
    let ghost = JobId::generate();
    expect_err(
        h.queue.get_job(&ghost).await,
        ErrorKind::NotFound,
        ghost.as_str(),
    );
    expect_err(
        h.queue.update_job_status(&ghost, JobStatus::Running).await,
        ErrorKind::NotFound,
        ghost.as_str(),
    );
    expect_err(
        h.queue.cancel_job("a/b").await,
        ErrorKind::InvalidInput,
        "a/b",
    );
}

/// pending → running takes the job for the queue's own worker id.
pub async fn update_job_status_sets_running_for_the_queue(h: Harness) {
    let job = h.queue.create_job(detection()).await.unwrap();
    h.clock.advance(SECOND);
    let running = h
        .queue
        .update_job_status(&job.id, JobStatus::Running)
        .await
        .unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.attempt, 1);
    assert_eq!(running.started_at, Some(T0.add(SECOND)));
    assert_eq!(running.worker_id.as_deref(), Some(h.queue.worker_id()));
    assert_eq!(
        running.lease_expires_at,
        Some(T0.add(SECOND).add(h.queue.config().lease))
    );
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), running);
}

/// Two tasks (on two queues, so only the store arbitrates) set the same
/// jobs running: exactly one wins each job, the other gets a conflict.
pub async fn update_job_status_conflicts_when_another_task_was_first(h: Harness) {
    let q1 = h.queue.clone();
    let q2 = h.queue_with(|b| b);
    let jobs = q1.create_jobs((0..20).map(|_| detection())).await.unwrap();
    let mut tasks = Vec::new();
    for q in [q1, q2] {
        let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for id in ids {
                outcomes.push(q.update_job_status(&id, JobStatus::Running).await);
            }
            outcomes
        }));
    }
    let a = tasks.remove(0).await.unwrap();
    let b = tasks.remove(0).await.unwrap();
    for (i, (a, b)) in a.into_iter().zip(b).enumerate() {
        match (a, b) {
            (Ok(job), Err(e)) | (Err(e), Ok(job)) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "job {i}: {e}");
                assert_eq!(job.attempt, 1);
                assert_eq!(h.queue.get_job(&job.id).await.unwrap(), job);
            }
            other => panic!("job {i}: expected one winner, got {other:?}"),
        }
    }
}

/// Moves the state machine forbids are illegal transitions; nothing changes.
pub async fn update_job_status_refuses_illegal_transitions(h: Harness) {
    let job = h.queue.create_job(detection()).await.unwrap();
    expect_err(
        h.queue
            .update_job_status(&job.id, JobStatus::Complete)
            .await,
        ErrorKind::IllegalTransition,
        "from pending to complete",
    );
    expect_err(
        h.queue.update_job_status(&job.id, JobStatus::Failed).await,
        ErrorKind::IllegalTransition,
        "from pending to failed",
    );
    expect_err(
        h.queue.update_job_status(&job.id, JobStatus::Pending).await,
        ErrorKind::IllegalTransition,
        "from pending to pending",
    );
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), job);
    let r = running(&h).await;
    h.queue.complete_job(&r.id, ()).await.unwrap();
    for to in JobStatus::ALL {
        let e = h.queue.update_job_status(&r.id, to).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::IllegalTransition, "{to}: {e}");
        assert!(e.to_string().contains("from complete"), "{e}");
    }
}

/// Every legal target of `update_job_status` does what its table says.
pub async fn update_job_status_covers_every_legal_move(h: Harness) {
    use JobStatus::*;
    let q = &h.queue;
    let to = |id: JobId, s| async move { q.update_job_status(&id, s).await.unwrap() };

    let a = q.create_job(detection()).await.unwrap();
    let r = to(a.id.clone(), Running).await;
    let done = to(a.id.clone(), Complete).await;
    assert_eq!((done.status, done.completed_at), (Complete, Some(T0)));
    assert_eq!(done.attempt, r.attempt);

    let b = q.create_job(detection()).await.unwrap();
    to(b.id.clone(), Running).await;
    let failed = to(b.id.clone(), Failed).await;
    assert_eq!(failed.status, Failed, "an explicit failed status is final");
    assert_eq!(failed.retry_count, 0);
    assert!(failed.error.is_some());
    let again = to(b.id.clone(), Pending).await;
    assert_eq!((again.status, again.retry_count), (Pending, 0));

    let c = q.create_job(detection()).await.unwrap();
    to(c.id.clone(), Running).await;
    let released = to(c.id.clone(), Pending).await;
    assert_eq!((released.status, released.retry_count), (Pending, 0));
    assert_eq!(released.run_at, None);
    assert_eq!(released.worker_id, None);
    let r2 = to(c.id.clone(), Running).await;
    assert_eq!(r2.attempt, 2);
    assert_eq!(to(c.id.clone(), Cancelled).await.status, Cancelled);
    assert_eq!(to(c.id.clone(), Pending).await.status, Pending);
    assert_eq!(to(c.id.clone(), Cancelled).await.status, Cancelled);
}

/// Generic, typed and free-form progress are stored as given.
pub async fn update_job_progress_accepts_generic_and_typed_progress(h: Harness) {
    let job = running(&h).await;
    let generic = Progress {
        percentage: Some(50.0),
        message: Some("Processing entity types...".into()),
        current_step: Some(2),
        total_steps: Some(4),
        ..Default::default()
    };
    let after = h
        .queue
        .update_job_progress(&job.id, &generic)
        .await
        .unwrap();
    assert_eq!(
        after.progress_as::<Progress>().unwrap(),
        Some(generic.clone())
    );
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), after);

    let detection = DetectionProgress {
        total_entity_types: 2,
        processed_entity_types: 1,
        current_entity_type: Some("Person".into()),
        entities_found: 7,
        entities_emitted: 5,
    };
    h.queue
        .update_job_progress_at(&job.id, job.attempt, &detection)
        .await
        .unwrap();
    let stored = h.queue.get_job(&job.id).await.unwrap();
    assert_eq!(
        stored.progress_as::<DetectionProgress>().unwrap(),
        Some(detection)
    );

    let generation = GenerationProgress {
        stage: GenerationStage::Linking,
        percentage: 100.0,
        message: None,
    };
    h.queue
        .update_job_progress(&job.id, &generation)
        .await
        .unwrap();
    let free = json!({ "percentage": 0, "currentItem": 1, "totalItems": 3, "phase": "x" });
    let stored = h.queue.update_job_progress(&job.id, &free).await.unwrap();
    assert_eq!(stored.progress, Some(free));
    assert_eq!(stored.status, JobStatus::Running);
}

/// Out-of-range, NaN, infinite, non-numeric and oversize progress are
/// invalid input naming the value; the stored progress is unchanged.
pub async fn update_job_progress_rejects_bad_values(h: Harness) {
    let job = running(&h).await;
    let q = &h.queue;
    let bad = [
        (json!({ "percentage": -1 }), "-1"),
        (json!({ "percentage": 100.5 }), "100.5"),
        (json!({ "percentage": "50" }), "\"50\""),
        (json!(42), "object"),
        (json!(null), "object"),
    ];
    for (value, needle) in bad {
        expect_err(
            q.update_job_progress(&job.id, &value).await,
            ErrorKind::InvalidInput,
            needle,
        );
    }
    expect_err(
        q.update_job_progress(&job.id, Progress::percent(f64::NAN))
            .await,
        ErrorKind::InvalidInput,
        "percentage is NaN",
    );
    expect_err(
        q.update_job_progress(&job.id, Progress::percent(f64::INFINITY))
            .await,
        ErrorKind::InvalidInput,
        "percentage is inf",
    );
    let g = GenerationProgress {
        stage: GenerationStage::Fetching,
        percentage: 150.0,
        message: None,
    };
    expect_err(
        q.update_job_progress(&job.id, &g).await,
        ErrorKind::InvalidInput,
        "150",
    );
    let huge = json!({ "message": "x".repeat(MAX_PARAMS_BYTES) });
    expect_err(
        q.update_job_progress(&job.id, &huge).await,
        ErrorKind::InvalidInput,
        "bytes",
    );
    assert_eq!(q.get_job(&job.id).await.unwrap(), job);
}

/// Progress is only for running jobs.
pub async fn update_job_progress_requires_a_running_job(h: Harness) {
    let pending = h.queue.create_job(detection()).await.unwrap();
    expect_err(
        h.queue
            .update_job_progress(&pending.id, Progress::percent(1.0))
            .await,
        ErrorKind::IllegalTransition,
        "it is pending, not running",
    );
    let job = running(&h).await;
    h.queue.complete_job(&job.id, ()).await.unwrap();
    expect_err(
        h.queue
            .update_job_progress(&job.id, Progress::percent(1.0))
            .await,
        ErrorKind::IllegalTransition,
        "it is complete",
    );
    expect_err(
        h.queue
            .update_job_progress(JobId::generate(), Progress::percent(1.0))
            .await,
        ErrorKind::NotFound,
        "not found",
    );
    assert_eq!(h.queue.get_job(&pending.id).await.unwrap(), pending);
}

/// A worker whose attempt is stale cannot report progress, complete, fail
/// or release the job: each is a conflict and nothing changes.
pub async fn fenced_writes_with_a_stale_attempt_conflict(h: Harness) {
    let first = running(&h).await;
    h.queue.release_job(&first.id, first.attempt).await.unwrap();
    let second = h
        .queue
        .claim_next_job(TypeFilter::Any, "w2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.attempt, first.attempt + 1);
    let stale = first.attempt;
    let id = &first.id;
    let q = &h.queue;
    assert_eq!(
        kind(
            q.update_job_progress_at(id, stale, Progress::percent(5.0))
                .await
        ),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(q.complete_job_at(id, stale, ()).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(q.fail_job_at(id, stale, "late").await),
        ErrorKind::Conflict
    );
    assert_eq!(kind(q.release_job(id, stale).await), ErrorKind::Conflict);
    expect_err(
        q.complete_job_at(id, stale, ()).await,
        ErrorKind::Conflict,
        "running at attempt 2, expected running at attempt 1",
    );
    assert_eq!(q.get_job(id).await.unwrap(), second);
    q.complete_job_at(id, second.attempt, ()).await.unwrap();
}

/// Completing records status, time and result, and clears the lease.
pub async fn complete_job_records_the_result(h: Harness) {
    let job = running(&h).await;
    h.clock.advance(Duration::from_secs(5));
    let done = h
        .queue
        .complete_job(&job.id, json!({ "totalProcessed": 100, "errors": 0 }))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Complete);
    assert_eq!(done.completed_at, Some(T0.add(Duration::from_secs(5))));
    assert_eq!(
        done.result,
        Some(json!({ "totalProcessed": 100, "errors": 0 }))
    );
    assert_eq!(done.lease_expires_at, None);
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), done);

    let other = running(&h).await;
    let none = h.queue.complete_job(&other.id, ()).await.unwrap();
    assert_eq!(none.result, None);

    let third = running(&h).await;
    expect_err(
        h.queue
            .complete_job(&third.id, json!({ "blob": "x".repeat(MAX_PARAMS_BYTES) }))
            .await,
        ErrorKind::InvalidInput,
        "bytes",
    );
    expect_err(
        h.queue.complete_job(&third.id, vec![1.0, f64::NAN]).await,
        ErrorKind::InvalidInput,
        "NaN",
    );
    assert_eq!(status_of(&h, &third.id).await, JobStatus::Running);
}

/// Completing a job that is not running is an illegal transition.
pub async fn complete_job_refuses_jobs_that_are_not_running(h: Harness) {
    let job = h.queue.create_job(detection()).await.unwrap();
    expect_err(
        h.queue.complete_job(&job.id, ()).await,
        ErrorKind::IllegalTransition,
        "from pending to complete",
    );
    expect_err(
        h.queue.fail_job(&job.id, "x").await,
        ErrorKind::IllegalTransition,
        "from pending to failed",
    );
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), job);
    let done = running(&h).await;
    h.queue.complete_job(&done.id, ()).await.unwrap();
    expect_err(
        h.queue.complete_job(&done.id, ()).await,
        ErrorKind::IllegalTransition,
        "from complete to complete",
    );
}

/// Retryable failures go back to pending with `runAt` = now + 1 s, 2 s,
/// 4 s; the job is not due before; the failure after the last retry fails it.
pub async fn fail_job_retries_with_exponential_backoff(h: Harness) {
    let job = h
        .queue
        .create_job(detection().max_retries(3))
        .await
        .unwrap();
    for (n, secs) in [1u64, 2, 4].into_iter().enumerate() {
        let delay = Duration::from_secs(secs);
        let run = h
            .queue
            .claim_next_job("detection", "w1")
            .await
            .unwrap()
            .expect("due");
        assert_eq!(run.attempt as usize, n + 1);
        let failed_at = h.clock.now();
        let back = h
            .queue
            .fail_job_at(&job.id, run.attempt, format!("boom {n}"))
            .await
            .unwrap();
        assert_eq!(back.status, JobStatus::Pending);
        assert_eq!(back.retry_count as usize, n + 1);
        assert_eq!(back.run_at, Some(failed_at.add(delay)));
        assert_eq!(back.error, Some(format!("boom {n}")));
        assert_eq!(back.worker_id, None);
        assert_eq!(h.queue.get_job(&job.id).await.unwrap(), back);

        h.clock.advance(delay - MS);
        assert!(h
            .queue
            .poll_next_pending_job("detection")
            .await
            .unwrap()
            .is_none());
        assert!(h
            .queue
            .claim_next_job("detection", "w1")
            .await
            .unwrap()
            .is_none());
        h.clock.advance(MS);
        let due = h.queue.poll_next_pending_job("detection").await.unwrap();
        assert_eq!(due.map(|j| j.id), Some(job.id.clone()));
    }
    let last = h
        .queue
        .claim_next_job("detection", "w1")
        .await
        .unwrap()
        .unwrap();
    let failed = h.queue.fail_job(&job.id, "final straw").await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.retry_count, 3);
    assert_eq!(failed.attempt, last.attempt);
    assert_eq!(failed.completed_at, Some(h.clock.now()));
    assert_eq!(failed.error.as_deref(), Some("final straw"));
}

/// With jitter 0.5 every delay lies in [d/2, d] and they are spread out.
pub async fn fail_job_jitter_stays_within_bounds(h: Harness) {
    let q = h.queue_with(|b| {
        b.retry_policy(RetryPolicy {
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(600),
            jitter: 0.5,
        })
        .jitter_seed(42)
    });
    let jobs = q.create_jobs((0..20).map(|_| detection())).await.unwrap();
    let mut delays = HashSet::new();
    for _ in &jobs {
        let run = q.claim_next_job("detection", "w1").await.unwrap().unwrap();
        let back = q.fail_job(&run.id, "flaky").await.unwrap();
        let delay = back.run_at.unwrap().since(h.clock.now());
        assert!(
            (Duration::from_secs(5)..=Duration::from_secs(10)).contains(&delay),
            "{delay:?}"
        );
        delays.insert(delay);
    }
    assert!(delays.len() > 5, "jitter spreads delays: {delays:?}");
}

/// A permanent failure fails the job at once, whatever its budget.
pub async fn fail_job_permanent_failure_skips_retries(h: Harness) {
    let job = running(&h).await;
    let failed = h
        .queue
        .fail_job(
            &job.id,
            JobFailure::permanent("bad input").with_code("INVALID"),
        )
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.retry_count, 0);
    assert_eq!(failed.error.as_deref(), Some("INVALID: bad input"));
    assert_eq!(failed.completed_at, Some(T0));
    assert!(h
        .queue
        .poll_next_pending_job(TypeFilter::Any)
        .await
        .unwrap()
        .is_none());
}

/// `maxRetries` 0: the first failure is final.
pub async fn fail_job_without_retry_budget_fails_at_once(h: Harness) {
    h.queue
        .create_job(detection().max_retries(0))
        .await
        .unwrap();
    let run = h
        .queue
        .claim_next_job(TypeFilter::Any, "w1")
        .await
        .unwrap()
        .unwrap();
    let failed = h.queue.fail_job(&run.id, "boom").await.unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    let q0 = h.queue_with(|b| b.max_retries(0));
    q0.create_job(detection()).await.unwrap();
    let run = q0
        .claim_next_job(TypeFilter::Any, "w1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.max_retries, 0);
    assert_eq!(
        q0.fail_job(&run.id, "boom").await.unwrap().status,
        JobStatus::Failed
    );
}

/// Failed and cancelled jobs can be retried by hand, with a fresh budget;
/// other statuses cannot.
pub async fn retry_job_resubmits_failed_and_cancelled_jobs(h: Harness) {
    let job = running(&h).await;
    h.queue
        .fail_job(&job.id, JobFailure::permanent("bad"))
        .await
        .unwrap();
    h.clock.advance(SECOND);
    let retried = h.queue.retry_job(&job.id).await.unwrap();
    assert_eq!(retried.status, JobStatus::Pending);
    assert_eq!(retried.retry_count, 0);
    assert_eq!((retried.run_at, retried.completed_at), (None, None));
    assert_eq!(retried.error.as_deref(), Some("bad"), "last error kept");
    let again = h
        .queue
        .claim_next_job(TypeFilter::Any, "w2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id.clone(), again.attempt), (job.id.clone(), 2));
    expect_err(
        h.queue.retry_job(&job.id).await,
        ErrorKind::IllegalTransition,
        "from running to pending",
    );
    h.queue.cancel_job(&job.id).await.unwrap();
    assert_eq!(
        h.queue.retry_job(&job.id).await.unwrap().status,
        JobStatus::Pending
    );
    expect_err(
        h.queue.retry_job(&job.id).await,
        ErrorKind::IllegalTransition,
        "from pending to pending",
    );
    h.queue.cancel_job(&job.id).await.unwrap();
    let done = running(&h).await;
    h.queue.complete_job(&done.id, ()).await.unwrap();
    expect_err(
        h.queue.retry_job(&done.id).await,
        ErrorKind::IllegalTransition,
        "from complete",
    );
}

/// A released job is due at once and keeps its retry count.
pub async fn release_job_requeues_without_counting_a_retry(h: Harness) {
    let job = running(&h).await;
    let back = h.queue.release_job(&job.id, job.attempt).await.unwrap();
    assert_eq!(back.status, JobStatus::Pending);
    assert_eq!(back.retry_count, 0);
    assert_eq!(back.worker_id, None);
    let again = h
        .queue
        .claim_next_job(TypeFilter::Any, "w2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.attempt, 2);
}

/// Filters by status, type and user combine; newest first; pages with a
/// total; oversized limits are invalid input.
pub async fn list_jobs_filters_sorts_and_paginates(h: Harness) {
    let mut all = Vec::new();
    for i in 0..25 {
        let ty = if i % 2 == 0 { "even" } else { "odd" };
        let user = if i % 3 == 0 { "u0" } else { "u1" };
        all.push(h.queue.create_job(custom(ty, user)).await.unwrap());
        h.clock.advance(SECOND);
    }
    let claimed = h.queue.claim_next_job("even", "w1").await.unwrap().unwrap();
    assert_eq!(claimed.id, all[0].id);

    let page = h.queue.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(page.total, 25);
    let ids: Vec<&JobId> = page.jobs.iter().map(|j| &j.id).collect();
    let newest_first: Vec<&JobId> = all.iter().rev().map(|j| &j.id).collect();
    assert_eq!(ids, newest_first);

    let mut seen = Vec::new();
    for offset in [0, 10, 20] {
        let p = h
            .queue
            .list_jobs(&JobFilter::default().limit(10).offset(offset))
            .await
            .unwrap();
        assert_eq!(p.total, 25);
        seen.extend(p.jobs.into_iter().map(|j| j.id));
    }
    assert_eq!(seen.iter().collect::<Vec<_>>(), newest_first);

    let even = JobType::parse("even").unwrap();
    let f = JobFilter::default()
        .status(JobStatus::Pending)
        .job_type(even.clone())
        .user("u0")
        .limit(10)
        .offset(0);
    let p = h.queue.list_jobs(&f).await.unwrap();
    // Even and multiple of 3: 6, 12, 18, 24 (0 is running).
    let expected: Vec<&JobId> = [24, 18, 12, 6].iter().map(|i| &all[*i].id).collect();
    assert_eq!(p.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(), expected);
    assert_eq!(p.total, 4);
    let r = h
        .queue
        .list_jobs(&JobFilter::default().status(JobStatus::Running))
        .await
        .unwrap();
    assert_eq!((r.total, r.jobs[0].id.clone()), (1, all[0].id.clone()));
    let by_type = h
        .queue
        .list_jobs(&JobFilter::default().job_type(even))
        .await
        .unwrap();
    assert_eq!(by_type.total, 13);
    let beyond = h
        .queue
        .list_jobs(&JobFilter::default().offset(100))
        .await
        .unwrap();
    assert_eq!((beyond.jobs.len(), beyond.total), (0, 25));
    expect_err(
        h.queue
            .list_jobs(&JobFilter::default().limit(MAX_LIST_LIMIT + 1))
            .await,
        ErrorKind::InvalidInput,
        &(MAX_LIST_LIMIT + 1).to_string(),
    );
}

/// Stats follow every kind of change.
pub async fn get_stats_counts_every_status(h: Harness) {
    let q = &h.queue;
    let counts = || async move {
        let s = q.get_stats().await.unwrap();
        (s.pending, s.running, s.complete, s.failed, s.cancelled)
    };
    assert_eq!(counts().await, (0, 0, 0, 0, 0));
    q.create_jobs((0..6).map(|_| detection())).await.unwrap();
    let mut run = Vec::new();
    for _ in 0..4 {
        run.push(
            q.claim_next_job(TypeFilter::Any, "w")
                .await
                .unwrap()
                .unwrap(),
        );
    }
    assert_eq!(counts().await, (2, 4, 0, 0, 0));
    q.complete_job(&run[0].id, ()).await.unwrap();
    q.fail_job(&run[1].id, JobFailure::permanent("x"))
        .await
        .unwrap();
    q.cancel_job(&run[2].id).await.unwrap();
    q.fail_job(&run[3].id, "retry me").await.unwrap();
    assert_eq!(counts().await, (3, 0, 1, 1, 1));
    q.retry_job(&run[1].id).await.unwrap();
    assert_eq!(counts().await, (4, 0, 1, 0, 1));
    assert_eq!(q.get_stats().await.unwrap().total(), 6);
}

/// Polling returns the oldest due job of the type without taking it.
pub async fn poll_next_pending_job_is_fifo_and_skips_jobs_not_due(h: Harness) {
    let q = &h.queue;
    let later = q
        .create_job(detection().run_at(T0.add(Duration::from_secs(60))))
        .await
        .unwrap();
    let a = q.create_job(detection()).await.unwrap();
    let b = q.create_job(detection()).await.unwrap();
    q.create_job(custom("other", "u")).await.unwrap();
    let poll = || async move {
        q.poll_next_pending_job("detection")
            .await
            .unwrap()
            .map(|j| j.id)
    };
    assert_eq!(poll().await, Some(a.id.clone()));
    assert_eq!(poll().await, Some(a.id.clone()), "polling does not take");
    assert_eq!(status_of(&h, &a.id).await, JobStatus::Pending);
    q.claim_next_job("detection", "w").await.unwrap().unwrap();
    assert_eq!(poll().await, Some(b.id.clone()));
    q.claim_next_job("detection", "w").await.unwrap().unwrap();
    assert_eq!(poll().await, None);
    assert!(q
        .poll_next_pending_job("generation")
        .await
        .unwrap()
        .is_none());
    assert!(q
        .poll_next_pending_job(TypeFilter::Any)
        .await
        .unwrap()
        .is_some());
    h.clock.advance(Duration::from_secs(60));
    assert_eq!(poll().await, Some(later.id.clone()));
    expect_err(
        q.poll_next_pending_job("no spaces allowed").await,
        ErrorKind::InvalidInput,
        "no spaces allowed",
    );
}

/// Two pollers see the same job; setting it running is where they compete.
pub async fn poll_then_set_running_competes_through_the_status_update(h: Harness) {
    let q1 = h.queue.clone();
    let q2 = h.queue_with(|b| b);
    q1.create_job(detection()).await.unwrap();
    let seen1 = q1
        .poll_next_pending_job("detection")
        .await
        .unwrap()
        .unwrap();
    let seen2 = q2
        .poll_next_pending_job("detection")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen1.id, seen2.id);
    let t1 = tokio::spawn(async move { q1.update_job_status(&seen1.id, JobStatus::Running).await });
    let t2 = tokio::spawn(async move { q2.update_job_status(&seen2.id, JobStatus::Running).await });
    let (r1, r2) = (t1.await.unwrap(), t2.await.unwrap());
    let winner = match (r1, r2) {
        (Ok(job), Err(e)) | (Err(e), Ok(job)) => {
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
            job
        }
        other => panic!("expected one winner, got {other:?}"),
    };
    assert_eq!(h.queue.get_job(&winner.id).await.unwrap(), winner);
    // A claimer racing a poller: also exactly one.
    let job = h.queue.create_job(detection()).await.unwrap();
    let claim = h.queue.claim_next_job("detection", "w9").await.unwrap();
    assert_eq!(claim.map(|j| j.id), Some(job.id.clone()));
    assert_eq!(
        kind(h.queue.update_job_status(&job.id, JobStatus::Running).await),
        ErrorKind::Conflict
    );
}

/// Concurrent claimers take every job exactly once.
pub async fn claim_next_job_takes_each_job_once(h: Harness) {
    h.queue
        .create_jobs((0..200).map(|_| detection()))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let q = h.queue.clone();
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            q.register_worker(&worker).await.unwrap();
            let mut mine = Vec::new();
            while let Some(job) = q.claim_next_job(["detection"], &worker).await.unwrap() {
                assert_eq!(job.worker_id.as_deref(), Some(worker.as_str()));
                q.complete_job_at(&job.id, job.attempt, ()).await.unwrap();
                mine.push(job.id);
            }
            q.unregister_worker(&worker).await.unwrap();
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&JobId> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (200, 200));
    assert_eq!(h.queue.get_stats().await.unwrap().complete, 200);
}

/// Empty type lists, malformed types and worker ids are invalid input.
pub async fn claim_next_job_validates_its_arguments(h: Harness) {
    h.queue.create_job(detection()).await.unwrap();
    let none: Vec<JobType> = Vec::new();
    expect_err(
        h.queue.claim_next_job(none, "w").await,
        ErrorKind::InvalidInput,
        "empty",
    );
    expect_err(
        h.queue.claim_next_job("bad/type", "w").await,
        ErrorKind::InvalidInput,
        "bad/type",
    );
    expect_err(
        h.queue.claim_next_job("detection", "").await,
        ErrorKind::InvalidInput,
        "worker id",
    );
    expect_err(
        h.queue.claim_next_job("detection", "../w").await,
        ErrorKind::InvalidInput,
        "../w",
    );
    assert_eq!(h.queue.get_stats().await.unwrap().pending, 1);
    let typed = [JobType::Detection, JobType::Generation];
    assert!(h.queue.claim_next_job(typed, "w").await.unwrap().is_some());
}

/// A pending job is cancelled at once and never claimed.
pub async fn cancel_job_cancels_a_pending_job(h: Harness) {
    let job = h.queue.create_job(detection()).await.unwrap();
    h.clock.advance(SECOND);
    let cancelled = h.queue.cancel_job(&job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.completed_at, Some(T0.add(SECOND)));
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), cancelled);
    assert!(h
        .queue
        .claim_next_job(TypeFilter::Any, "w")
        .await
        .unwrap()
        .is_none());
}

/// Cancelling a running job fences its worker: its later writes conflict.
pub async fn cancel_job_fences_the_running_worker(h: Harness) {
    let job = running(&h).await;
    h.queue
        .update_job_progress_at(&job.id, job.attempt, Progress::percent(30.0))
        .await
        .unwrap();
    let cancelled = h.queue.cancel_job(&job.id).await.unwrap();
    assert_eq!(cancelled.status, JobStatus::Cancelled);
    assert_eq!(cancelled.attempt, job.attempt);
    let q = &h.queue;
    assert_eq!(
        kind(
            q.update_job_progress_at(&job.id, job.attempt, Progress::percent(40.0))
                .await
        ),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(q.complete_job_at(&job.id, job.attempt, ()).await),
        ErrorKind::Conflict
    );
    assert_eq!(
        kind(q.fail_job_at(&job.id, job.attempt, "x").await),
        ErrorKind::Conflict
    );
    assert_eq!(q.get_job(&job.id).await.unwrap(), cancelled);
}

/// Finished jobs cannot be cancelled (the error names their status).
pub async fn cancel_job_refuses_finished_and_unknown_jobs(h: Harness) {
    let done = running(&h).await;
    h.queue.complete_job(&done.id, ()).await.unwrap();
    expect_err(
        h.queue.cancel_job(&done.id).await,
        ErrorKind::IllegalTransition,
        "from complete to cancelled",
    );
    let failed = running(&h).await;
    h.queue
        .fail_job(&failed.id, JobFailure::permanent("x"))
        .await
        .unwrap();
    expect_err(
        h.queue.cancel_job(&failed.id).await,
        ErrorKind::IllegalTransition,
        "from failed",
    );
    let c = h.queue.create_job(detection()).await.unwrap();
    h.queue.cancel_job(&c.id).await.unwrap();
    expect_err(
        h.queue.cancel_job(&c.id).await,
        ErrorKind::IllegalTransition,
        "from cancelled",
    );
    expect_err(
        h.queue.cancel_job(JobId::generate()).await,
        ErrorKind::NotFound,
        "not found",
    );
}

/// A worker completing and a user cancelling at once: exactly one wins.
pub async fn cancel_and_complete_race_has_one_winner(h: Harness) {
    for _ in 0..10 {
        let job = running(&h).await;
        let worker = h.queue.clone();
        let user = h.queue_with(|b| b);
        let (id1, id2) = (job.id.clone(), job.id.clone());
        let attempt = job.attempt;
        let t1 = tokio::spawn(async move { worker.complete_job_at(&id1, attempt, ()).await });
        let t2 = tokio::spawn(async move { user.cancel_job(&id2).await });
        let (done, cancel) = (t1.await.unwrap(), t2.await.unwrap());
        let final_status = status_of(&h, &job.id).await;
        match (done, cancel) {
            (Ok(_), Err(e)) => {
                assert_eq!(e.kind(), ErrorKind::IllegalTransition, "{e}");
                assert_eq!(final_status, JobStatus::Complete);
            }
            (Err(e), Ok(_)) => {
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                assert_eq!(final_status, JobStatus::Cancelled);
            }
            other => panic!("expected one winner, got {other:?}"),
        }
    }
}

/// Finished jobs older than the retention period (by `completedAt`) are
/// deleted, oldest first, and counted.
pub async fn cleanup_old_jobs_uses_the_retention_period(h: Harness) {
    let q = h.queue_with(|b| b.retention_period(Duration::from_secs(3600)));
    let minutes = |m: u64| Duration::from_secs(60 * m);
    let finish = |status: JobStatus| {
        let q = q.clone();
        async move {
            q.create_job(detection()).await.unwrap();
            let run = q
                .claim_next_job(TypeFilter::Any, "w")
                .await
                .unwrap()
                .unwrap();
            match status {
                JobStatus::Complete => q.complete_job(&run.id, ()).await.unwrap(),
                JobStatus::Failed => q
                    .fail_job(&run.id, JobFailure::permanent("x"))
                    .await
                    .unwrap(),
                _ => q.cancel_job(&run.id).await.unwrap(),
            }
        }
    };
    let c1 = finish(JobStatus::Complete).await; // finished at T0
    h.clock.set(T0.add(minutes(10)));
    let f1 = finish(JobStatus::Failed).await;
    h.clock.set(T0.add(minutes(20)));
    let x1 = finish(JobStatus::Cancelled).await;
    h.clock.set(T0.add(minutes(50)));
    let c2 = finish(JobStatus::Complete).await;

    h.clock.set(T0.add(minutes(60)));
    assert_eq!(
        q.cleanup_old_jobs().await.unwrap(),
        0,
        "nothing older than 1 h"
    );
    h.clock.set(T0.add(minutes(75)));
    assert_eq!(q.cleanup_old_jobs().await.unwrap(), 2);
    for gone in [&c1, &f1] {
        assert_eq!(kind(q.get_job(&gone.id).await), ErrorKind::NotFound);
    }
    for kept in [&x1, &c2] {
        assert!(q.get_job(&kept.id).await.is_ok());
    }
    h.clock.set(T0.add(minutes(120)));
    assert_eq!(q.cleanup_old_jobs().await.unwrap(), 2);
    assert_eq!(q.cleanup_old_jobs().await.unwrap(), 0);
    assert_eq!(q.get_stats().await.unwrap().total(), 0);

    // Another age on demand (the CLI's --older-than).
    let fresh = finish(JobStatus::Complete).await;
    assert_eq!(q.cleanup_jobs_older_than(minutes(1)).await.unwrap(), 0);
    h.clock.advance(MS);
    assert_eq!(q.cleanup_jobs_older_than(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(kind(q.get_job(&fresh.id).await), ErrorKind::NotFound);
}

/// Old pending and running jobs are never deleted by retention.
pub async fn cleanup_never_touches_pending_or_running_jobs(h: Harness) {
    let q = h.queue_with(|b| b.retention_period(Duration::from_secs(60)));
    q.register_worker("w").await.unwrap();
    let pending = q.create_job(custom("idle", "u")).await.unwrap();
    q.create_job(detection()).await.unwrap();
    let run = q.claim_next_job("detection", "w").await.unwrap().unwrap();
    let waiting = q.create_job(detection()).await.unwrap();
    let retried = q.claim_next_job("detection", "w").await.unwrap().unwrap();
    assert_eq!(retried.id, waiting.id);
    q.fail_job(&retried.id, "again later").await.unwrap();
    h.clock.advance(Duration::from_secs(86_400 * 30));
    assert_eq!(q.cleanup_old_jobs().await.unwrap(), 0);
    assert_eq!(q.cleanup_jobs_older_than(Duration::ZERO).await.unwrap(), 0);
    assert_eq!(status_of(&h, &pending.id).await, JobStatus::Pending);
    assert_eq!(status_of(&h, &run.id).await, JobStatus::Running);
    assert_eq!(status_of(&h, &waiting.id).await, JobStatus::Pending);
}

/// A job's events arrive in the order of its changes, with its statuses.
pub async fn events_of_one_job_arrive_in_order(h: Harness) {
    let mut events = h.queue.subscribe();
    let q = &h.queue;
    let job = q.create_job(detection()).await.unwrap();
    let other = q.create_job(custom("noise", "u")).await.unwrap();
    let run = q.claim_next_job("detection", "w1").await.unwrap().unwrap();
    q.update_job_progress_at(&job.id, run.attempt, Progress::percent(10.0))
        .await
        .unwrap();
    q.cancel_job(&other.id).await.unwrap();
    q.update_job_progress_at(&job.id, run.attempt, Progress::percent(60.0))
        .await
        .unwrap();
    q.fail_job_at(&job.id, run.attempt, "flaky").await.unwrap();
    h.clock.advance(SECOND);
    let run2 = q.claim_next_job("detection", "w1").await.unwrap().unwrap();
    q.complete_job_at(&job.id, run2.attempt, ()).await.unwrap();

    let expected = {
        use EventKind::*;
        use JobStatus::*;
        [
            (Created, Pending),
            (Started, Running),
            (Progress, Running),
            (Progress, Running),
            (Retrying, Pending),
            (Started, Running),
            (Completed, Complete),
        ]
    };
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let e = next_event(&mut events).await;
        if e.job_id.as_ref() == Some(&job.id) {
            assert_eq!(e.origin, ChangeOrigin::Local);
            assert_eq!(e.job_type, Some(JobType::Detection));
            got.push((e.kind, e.status.unwrap()));
        }
    }
    assert_eq!(got, expected);
}

/// Events carry a snapshot of the job (progress, attempt, error) and a
/// stream can follow one job only.
pub async fn events_carry_snapshots_and_can_be_filtered(h: Harness) {
    let q = &h.queue;
    let job = q.create_job(detection()).await.unwrap();
    let mut mine = q.subscribe().only_job(job.id.clone());
    let mut bare = q.subscribe().without_snapshots();
    q.create_job(custom("noise", "u")).await.unwrap();
    let run = q.claim_next_job("detection", "w1").await.unwrap().unwrap();

    let started = next_event(&mut mine).await;
    assert_eq!(started.kind, EventKind::Started);
    assert_eq!(started.attempt(), Some(run.attempt));
    assert_eq!(started.at, T0);
    let noise = next_event(&mut bare).await;
    assert_eq!(noise.kind, EventKind::Created);
    assert!(noise.job.is_none());

    let progress = json!({ "percentage": 42, "message": "halfway" });
    q.update_job_progress(&job.id, &progress).await.unwrap();
    let e = next_event(&mut mine).await;
    assert_eq!(e.kind, EventKind::Progress);
    assert_eq!(e.progress(), Some(&progress));

    q.fail_job(&job.id, "transient").await.unwrap();
    let e = next_event(&mut mine).await;
    assert_eq!(
        (e.kind, e.status),
        (EventKind::Retrying, Some(JobStatus::Pending))
    );
    assert_eq!(e.error(), Some("transient"));
    assert_eq!(e.job.as_ref().unwrap().retry_count, 1);
}

/// Failed, cancelled, resubmitted, recovered and deleted jobs each have
/// their event kind.
pub async fn events_name_every_lifecycle_change(h: Harness) {
    let mut events = h.queue.subscribe().without_snapshots();
    let q = &h.queue;
    let a = running(&h).await;
    q.fail_job(&a.id, JobFailure::permanent("no"))
        .await
        .unwrap();
    q.retry_job(&a.id).await.unwrap();
    q.cancel_job(&a.id).await.unwrap();
    let b = running(&h).await; // claimed by the unregistered worker w1
    h.clock.advance(Duration::from_secs(3600));
    let report = q.recover().await.unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&b.id));
    h.clock.advance(Duration::from_secs(86_400 * 2));
    assert_eq!(q.cleanup_old_jobs().await.unwrap(), 1);

    use EventKind::*;
    let expected = [
        (Created, Some(a.id.clone())),
        (Started, Some(a.id.clone())),
        (Failed, Some(a.id.clone())),
        (Resubmitted, Some(a.id.clone())),
        (Cancelled, Some(a.id.clone())),
        (Created, Some(b.id.clone())),
        (Started, Some(b.id.clone())),
        (Recovered, Some(b.id.clone())),
        (Deleted, Some(a.id.clone())),
    ];
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let e = next_event(&mut events).await;
        got.push((e.kind, e.job_id));
    }
    assert_eq!(got, expected);
}

/// A subscriber that falls behind the store's channel gets one `Resynced`
/// event saying how many it missed, then the newer events.
pub async fn events_report_a_resync_after_falling_behind(h: Harness) {
    let mut events = h.queue.subscribe().without_snapshots();
    let burst = semiont_jobs_store::CHANGE_CHANNEL_CAPACITY + 10;
    h.queue
        .create_jobs((0..burst).map(|_| custom("burst", "u")))
        .await
        .unwrap();
    let first = next_event(&mut events).await;
    assert_eq!(first.kind, EventKind::Resynced);
    assert_eq!(first.job_id, None);
    assert!(first.missed >= 10, "{first:?}");
    let next = next_event(&mut events).await;
    assert_eq!(next.kind, EventKind::Created);
}

/// Changes made through another store instance on the same data (another
/// process) reach this queue's subscribers as external events. Backends
/// without external events (the in-memory one) have nothing to check here.
pub async fn events_of_other_instances_arrive_as_external(h: Harness) {
    let (true, Some(reopen)) = (
        h.store.capabilities().external_events,
        h.backend.reopen.as_ref(),
    ) else {
        return;
    };
    let mut events = h.queue.subscribe();
    let other = JobQueue::builder()
        .store(reopen())
        .clock(h.clock.clone())
        .build()
        .unwrap();
    let job = other.create_job(detection()).await.unwrap();
    loop {
        let e = next_event(&mut events).await;
        if e.job_id.as_ref() == Some(&job.id) {
            assert_eq!(e.origin, ChangeOrigin::External);
            assert_eq!(e.job.as_ref().map(|j| j.id.clone()), Some(job.id.clone()));
            break;
        }
    }
}

/// `close()` unregisters the queue's worker: its running jobs become
/// recoverable; `initialize()` registers it again.
pub async fn close_makes_the_queues_own_jobs_recoverable(h: Harness) {
    let job = h.queue.create_job(detection()).await.unwrap();
    h.queue
        .update_job_status(&job.id, JobStatus::Running)
        .await
        .unwrap();
    assert!(h.queue.recover().await.unwrap().requeued.is_empty());
    h.queue.close().await.unwrap();
    h.queue.close().await.unwrap();
    let report = h.queue.recover().await.unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&job.id));
    h.queue.initialize().await.unwrap();
    let again = h
        .queue
        .update_job_status(&job.id, JobStatus::Running)
        .await
        .unwrap();
    assert_eq!(again.attempt, 2);
    assert!(h.queue.recover().await.unwrap().requeued.is_empty());
}

/// Clones share one queue; the queue is `Send + Sync + 'static`.
pub async fn clones_share_one_queue(h: Harness) {
    fn assert_send_sync<T: Send + Sync + 'static>(_: &T) {}
    assert_send_sync(&h.queue);
    let clone = h.queue.clone();
    assert_eq!(clone.worker_id(), h.queue.worker_id());
    let job = clone.create_job(detection()).await.unwrap();
    assert_eq!(h.queue.get_job(&job.id).await.unwrap(), job);
    assert_eq!(clone.now(), h.clock.now());
    assert!(format!("{:?}", h.queue).contains(h.queue.worker_id()));
}

/// `enqueue` with a unique key: the first request creates the job, later
/// ones (also from another queue on the same store) get it with
/// `created: false`; once it finished, the key is free again.
/// `create_job` returns the holder too.
pub async fn enqueue_with_a_unique_key_returns_the_holder(h: Harness) {
    let new = || custom("report", "u1").unique_key("report:2026-01");
    let first = h.queue.enqueue(new()).await.unwrap();
    assert!(first.created);
    assert_eq!(first.job.unique_key.as_deref(), Some("report:2026-01"));
    let other = h.queue_with(|b| b);
    let second = other.enqueue(new()).await.unwrap();
    assert!(!second.created);
    assert_eq!(second.job.id, first.job.id);
    assert_eq!(h.queue.create_job(new()).await.unwrap().id, first.job.id);
    assert_eq!(h.queue.get_stats().await.unwrap().pending, 1);
    let running = h
        .queue
        .claim_next_job("report", "w")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !h.queue.enqueue(new()).await.unwrap().created,
        "running holds it"
    );
    h.queue.complete_job_at(&running.id, 1, ()).await.unwrap();
    let third = h.queue.enqueue(new()).await.unwrap();
    assert!(third.created);
    assert_ne!(third.job.id, first.job.id);
    // With an after-finish period, a finished job keeps the key that long.
    let periodic = || {
        custom("import", "u1")
            .unique_key("file-7")
            .unique_after_finish(Duration::from_secs(3600))
    };
    let a = h.queue.enqueue(periodic()).await.unwrap().job;
    let cancelled = h.queue.cancel_job(&a.id).await.unwrap();
    assert_eq!(cancelled.unique_after_finish_ms, Some(3_600_000));
    h.clock.advance(Duration::from_secs(1800));
    assert_eq!(h.queue.enqueue(periodic()).await.unwrap().job.id, a.id);
    h.clock.advance(Duration::from_secs(1801));
    assert!(h.queue.enqueue(periodic()).await.unwrap().created);
    // A bad key is a usage error; nothing is written.
    let bad = h
        .queue
        .enqueue(custom("report", "u1").unique_key(" "))
        .await;
    expect_err(bad, ErrorKind::InvalidInput, "unique key");
}

/// Retrying a failed job whose unique key another job took meanwhile is a
/// `Duplicate` error naming the holder; the bulk retry skips it.
pub async fn retry_of_a_job_whose_key_is_held_is_a_duplicate(h: Harness) {
    let job = h
        .queue
        .create_job(custom("t", "u").unique_key("k").max_retries(0))
        .await
        .unwrap();
    let run = h.queue.claim_next_job("t", "w").await.unwrap().unwrap();
    h.queue
        .fail_job_at(&run.id, 1, JobFailure::permanent("no"))
        .await
        .unwrap();
    let holder = h
        .queue
        .enqueue(custom("t", "u").unique_key("k"))
        .await
        .unwrap();
    assert!(holder.created);
    let e = h.queue.retry_job(&job.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Duplicate, "{e}");
    assert_eq!(e.unique_holder(), Some(&holder.job.id));
    assert!(e.to_string().contains(holder.job.id.as_str()), "{e}");
    let sel = semiont_jobs_store::JobSelector::default();
    assert_eq!(h.queue.retry_failed_jobs(&sel).await.unwrap(), 0);
    assert_eq!(status_of(&h, &job.id).await, JobStatus::Failed);
}

/// A job type's policy gives its new jobs their retry budget and priority
/// and its failures their back-off; other types keep the queue's.
pub async fn type_policies_set_defaults_and_backoff(h: Harness) {
    use semiont_jobs_queue::TypePolicy;
    let q = h.queue_with(|b| {
        b.max_retries(2).type_policy(
            JobType::parse("slow").unwrap(),
            TypePolicy {
                max_retries: Some(9),
                priority: Some(5),
                retry_policy: Some(RetryPolicy {
                    base_delay: Duration::from_secs(30),
                    max_delay: Duration::from_secs(600),
                    jitter: 0.0,
                }),
                ..Default::default()
            },
        )
    });
    let slow = q.create_job(custom("slow", "u")).await.unwrap();
    assert_eq!((slow.max_retries, slow.priority), (9, 5));
    let own = q
        .create_job(custom("slow", "u").max_retries(1).priority(-2))
        .await
        .unwrap();
    assert_eq!((own.max_retries, own.priority), (1, -2), "the request wins");
    let fast = q.create_job(custom("fast", "u")).await.unwrap();
    assert_eq!((fast.max_retries, fast.priority), (2, 0));
    let batch = q
        .create_jobs([custom("slow", "u"), custom("fast", "u")])
        .await
        .unwrap();
    assert_eq!(
        batch
            .iter()
            .map(|j| (j.max_retries, j.priority))
            .collect::<Vec<_>>(),
        [(9, 5), (2, 0)]
    );
    // Priority 5 is claimed first; its failure backs off 30 s.
    let run = q
        .claim_next_job(TypeFilter::Any, "w")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.id, slow.id);
    let back = q
        .fail_job_at(&run.id, run.attempt, "transient")
        .await
        .unwrap();
    assert_eq!(
        back.run_at,
        Some(h.clock.now().add(Duration::from_secs(30)))
    );
    let run = q.claim_next_job("fast", "w").await.unwrap().unwrap();
    let back = q
        .fail_job_at(&run.id, run.attempt, "transient")
        .await
        .unwrap();
    assert_eq!(back.run_at, Some(h.clock.now().add(SECOND)), "the queue's");
}

/// Checkpoints through the queue: fenced by the attempt, validated,
/// merged, and kept by a retry whose claim starts with empty progress.
pub async fn checkpoints_are_fenced_merged_and_kept_across_attempts(h: Harness) {
    use semiont_jobs_model::{Checkpoint, UnitCursor};
    let job = h.queue.create_job(custom("steps", "u")).await.unwrap();
    let run = h.queue.claim_next_job("steps", "w").await.unwrap().unwrap();
    h.queue
        .update_job_progress_at(&job.id, 1, Progress::percent(10.0))
        .await
        .unwrap();
    let after = h
        .queue
        .checkpoint_job_at(
            &job.id,
            1,
            &Checkpoint::unit_done("b"),
            Some(json!({"percentage": 50.0})),
        )
        .await
        .unwrap();
    assert_eq!(after.completed_units, ["b"]);
    assert_eq!(after.progress, Some(json!({"percentage": 50.0})));
    assert_eq!(
        after.lease_expires_at,
        Some(h.clock.now().add(Duration::from_secs(30))),
        "a checkpoint renews the lease"
    );
    let after = h
        .queue
        .checkpoint_job_at(
            &job.id,
            1,
            &Checkpoint::cursor("a", UnitCursor::at(3, 10)).with_done("c"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(after.completed_units, ["b", "c"]);
    assert_eq!(after.unit_cursors["a"].next, 3);
    assert_eq!(after.progress, Some(json!({"percentage": 50.0})), "kept");
    expect_err(
        h.queue
            .checkpoint_job_at(&job.id, 1, &Checkpoint::unit_done(""), None)
            .await,
        ErrorKind::InvalidInput,
        "unit name is empty",
    );
    expect_err(
        h.queue
            .checkpoint_job_at(
                &job.id,
                1,
                &Checkpoint::unit_done("x"),
                Some(json!({"percentage": 101})),
            )
            .await,
        ErrorKind::InvalidInput,
        "percentage",
    );
    assert_eq!(
        kind(
            h.queue
                .checkpoint_job_at(&job.id, 2, &Checkpoint::unit_done("x"), None)
                .await
        ),
        ErrorKind::Conflict
    );
    // A retryable failure: the next attempt sees the checkpoint, no progress.
    h.queue.fail_job_at(&run.id, 1, "transient").await.unwrap();
    h.clock.advance(Duration::from_secs(5));
    let again = h.queue.claim_next_job("steps", "w").await.unwrap().unwrap();
    assert_eq!(again.attempt, 2);
    assert_eq!(again.progress, None, "a new attempt starts clean");
    assert_eq!(again.completed_units, ["b", "c"]);
    assert_eq!(again.unit_cursors["a"].next, 3);
    // After a final failure and a manual retry, still there.
    h.queue
        .fail_job_at(&again.id, 2, JobFailure::permanent("stop"))
        .await
        .unwrap();
    assert_eq!(
        kind(
            h.queue
                .checkpoint_job_at(&job.id, 2, &Checkpoint::unit_done("x"), None)
                .await
        ),
        ErrorKind::Conflict,
        "nothing written to a failed job"
    );
    let retried = h.queue.retry_job(&job.id).await.unwrap();
    assert_eq!(retried.completed_units, ["b", "c"]);
}

/// Bulk cancel and retry by type and user, with counts.
pub async fn bulk_cancel_and_retry_by_filter(h: Harness) {
    use semiont_jobs_store::JobSelector;
    for (ty, user) in [("a", "u1"), ("a", "u2"), ("b", "u1"), ("a", "u1")] {
        h.queue.create_job(custom(ty, user)).await.unwrap();
    }
    let running = h.queue.claim_next_job("a", "w").await.unwrap().unwrap();
    let a = JobSelector::of_type(JobType::parse("a").unwrap());
    assert_eq!(h.queue.cancel_pending_jobs(&a).await.unwrap(), 2);
    assert_eq!(status_of(&h, &running.id).await, JobStatus::Running);
    let stats = h.queue.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.cancelled), (1, 2));
    // Fail three jobs of type c (two for u1) and retry u1's.
    for user in ["u1", "u1", "u2"] {
        h.queue
            .create_job(custom("c", user).max_retries(0))
            .await
            .unwrap();
        let r = h.queue.claim_next_job("c", "w").await.unwrap().unwrap();
        h.queue.fail_job_at(&r.id, r.attempt, "x").await.unwrap();
    }
    let c_u1 = JobSelector {
        job_type: Some(JobType::parse("c").unwrap()),
        user_id: Some("u1".into()),
    };
    assert_eq!(h.queue.retry_failed_jobs(&c_u1).await.unwrap(), 2);
    let failed = h
        .queue
        .list_jobs(&JobFilter::default().status(JobStatus::Failed))
        .await
        .unwrap();
    assert_eq!(failed.total, 1);
    assert_eq!(failed.jobs[0].user_id, "u2");
    let pending_c = h
        .queue
        .list_jobs(
            &JobFilter::default()
                .status(JobStatus::Pending)
                .job_type(JobType::parse("c").unwrap()),
        )
        .await
        .unwrap();
    assert!(pending_c
        .jobs
        .iter()
        .all(|j| j.retry_count == 0 && j.user_id == "u1"));
    assert_eq!(pending_c.total, 2);
}

/// Pausing a type stops claims and polls of it (other types go on),
/// shows in the paused set and the type counts, and resuming restarts it.
pub async fn pause_and_resume_a_type(h: Harness) {
    let a = JobType::parse("a").unwrap();
    let ja = h.queue.create_job(custom("a", "u")).await.unwrap();
    let jb = h.queue.create_job(custom("b", "u")).await.unwrap();
    assert!(h.queue.pause_type(&a).await.unwrap());
    assert!(!h.queue.pause_type(&a).await.unwrap());
    assert_eq!(h.queue.paused_types().await.unwrap().len(), 1);
    assert!(h.queue.get_type_stats().await.unwrap()[&a].paused);
    assert!(h.queue.poll_next_pending_job("a").await.unwrap().is_none());
    assert!(h.queue.claim_next_job("a", "w").await.unwrap().is_none());
    let got = h
        .queue
        .claim_next_jobs(TypeFilter::Any, "w", 5)
        .await
        .unwrap();
    assert_eq!(got.iter().map(|j| &j.id).collect::<Vec<_>>(), [&jb.id]);
    assert!(h.queue.resume_type(&a).await.unwrap());
    assert!(!h.queue.resume_type(&a).await.unwrap());
    assert_eq!(
        h.queue
            .claim_next_job("a", "w")
            .await
            .unwrap()
            .map(|j| j.id),
        Some(ja.id)
    );
}

/// The sweep runs retention cleanup for one holder at a time until its
/// lease runs out.
pub async fn sweep_runs_cleanup_for_one_holder_at_a_time(h: Harness) {
    let q = h.queue_with(|b| b.retention_period(Duration::from_secs(60)));
    let job = q.create_job(custom("t", "u")).await.unwrap();
    q.cancel_job(&job.id).await.unwrap();
    h.clock.advance(Duration::from_secs(61));
    let hour = Duration::from_secs(3600);
    assert_eq!(q.sweep("p1", hour).await.unwrap(), Some(1));
    let job = q.create_job(custom("t", "u")).await.unwrap();
    q.cancel_job(&job.id).await.unwrap();
    h.clock.advance(Duration::from_secs(61));
    assert_eq!(q.sweep("p2", hour).await.unwrap(), None, "p1 holds it");
    assert_eq!(h.queue.get_stats().await.unwrap().cancelled, 1);
    h.clock.advance(hour);
    assert_eq!(q.sweep("p2", hour).await.unwrap(), Some(1));
}
