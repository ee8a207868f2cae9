//! The generic [`EngineWorker`] adapter: a [`JobEngine`] of one job type run
//! by the runtime — parameters decoded, output stored, errors classified.
//! The adapter does not touch the store beyond what the runner does, so
//! these cases run on the in-memory store only.

use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{Job, JobStatus, JobType, NewJob, Timestamp};
use semiont_jobs_queue::{JobQueue, ManualClock};
use semiont_jobs_store::{JobStore, MemoryStore, TypeFilter};
use semiont_jobs_worker::{EngineError, EngineWorker, JobContext, JobEngine, JobWorker, Worker};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{fast, queue, queue_with_clock, spawn, wait_job};

/// Doubles `n`; `mode` picks a failure instead.
struct Doubler;

#[derive(Deserialize)]
struct Params {
    n: u32,
    #[serde(default)]
    mode: String,
}

#[derive(Serialize)]
struct Doubled {
    doubled: u32,
    attempt: u32,
}

#[derive(Debug, thiserror::Error)]
enum DoublerError {
    #[error("the doubler is busy")]
    Busy,
    #[error("{0} cannot be doubled")]
    Bad(u32),
    #[error("stopped by cancellation")]
    Stopped,
}

impl EngineError for DoublerError {
    fn is_cancelled(&self) -> bool {
        matches!(self, DoublerError::Stopped)
    }
    fn is_retryable(&self) -> bool {
        matches!(self, DoublerError::Busy)
    }
    fn code(&self) -> &'static str {
        match self {
            DoublerError::Busy => "BUSY",
            DoublerError::Bad(_) => "BAD_NUMBER",
            DoublerError::Stopped => "CANCELLED",
        }
    }
    fn retry_after(&self) -> Option<Duration> {
        matches!(self, DoublerError::Busy).then_some(Duration::from_secs(30))
    }
}

#[async_trait::async_trait]
impl JobEngine for Doubler {
    type Params = Params;
    type Output = Doubled;
    type Error = DoublerError;

    fn job_type(&self) -> JobType {
        "doubling".parse().unwrap()
    }

    async fn run_job(
        &self,
        ctx: &JobContext,
        _job: &Job,
        params: Params,
    ) -> Result<Doubled, DoublerError> {
        match params.mode.as_str() {
            "busy" if ctx.attempt() == 1 => Err(DoublerError::Busy),
            "bad" => Err(DoublerError::Bad(params.n)),
            "until-cancelled" => {
                ctx.cancellation_token().cancelled().await;
                Err(DoublerError::Stopped)
            }
            _ => Ok(Doubled {
                doubled: params.n * 2,
                attempt: ctx.attempt(),
            }),
        }
    }
}

const START: &str = "2026-01-01T00:00:00Z";

async fn setup() -> (
    JobQueue,
    ManualClock,
    Worker,
    tokio::task::JoinHandle<semiont_jobs_worker::Result<()>>,
) {
    let clock = ManualClock::new(Timestamp::parse(START).unwrap());
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let q = queue_with_clock(&store, clock.clone()).await;
    let w = Worker::new(q.clone(), EngineWorker::new(Doubler), fast());
    let handle = spawn(&w);
    (q, clock, w, handle)
}

async fn enqueue(q: &JobQueue, ty: &str, params: serde_json::Value) -> Job {
    q.create_job(NewJob::custom(ty, "u1", params).unwrap().max_retries(3))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_adapter_claims_only_the_engines_job_type_under_its_name() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new());
    let q = queue(&store).await;
    let w = EngineWorker::new(Doubler);
    let doubling: JobType = "doubling".parse().unwrap();
    assert_eq!(w.worker_name(), "doubling");
    assert_eq!(w.job_types(), TypeFilter::one(doubling));
    let mine = enqueue(&q, "doubling", json!({"n": 1})).await;
    let other = enqueue(&q, "tripling", json!({"n": 1})).await;
    assert!(w.can_process_job(&mine));
    assert!(!w.can_process_job(&other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engines_output_becomes_the_jobs_result() {
    let (q, _clock, w, handle) = setup().await;
    let job = enqueue(&q, "doubling", json!({"n": 21})).await;
    let done = wait_job(&q, &job, |j| j.status == JobStatus::Complete).await;
    assert_eq!(done.result, Some(json!({"doubled": 42, "attempt": 1})));
    w.stop().await;
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_that_do_not_decode_fail_the_job_at_once_as_invalid_params() {
    let (q, _clock, w, handle) = setup().await;
    let job = enqueue(&q, "doubling", json!({"n": "twenty"})).await;
    let failed = wait_job(&q, &job, |j| j.status == JobStatus::Failed).await;
    let error = failed.error.unwrap_or_default();
    assert!(error.starts_with("INVALID_PARAMS: "), "{error}");
    assert!(
        error.contains(job.id.as_str()),
        "the error names the job: {error}"
    );
    assert_eq!(failed.retry_count, 0);
    w.stop().await;
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_engine_error_fails_the_job_with_its_code() {
    let (q, _clock, w, handle) = setup().await;
    let job = enqueue(&q, "doubling", json!({"n": 7, "mode": "bad"})).await;
    let failed = wait_job(&q, &job, |j| j.status == JobStatus::Failed).await;
    assert_eq!(
        failed.error.as_deref(),
        Some("BAD_NUMBER: 7 cannot be doubled")
    );
    assert_eq!(failed.retry_count, 0);
    w.stop().await;
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retryable_engine_error_is_retried_after_the_wait_it_asked_for() {
    let (q, clock, w, handle) = setup().await;
    let job = enqueue(&q, "doubling", json!({"n": 5, "mode": "busy"})).await;
    let retried = wait_job(&q, &job, |j| j.retry_count == 1).await;
    assert_eq!(retried.status, JobStatus::Pending);
    assert_eq!(retried.error.as_deref(), Some("BUSY: the doubler is busy"));
    // The policy alone would wait at most 1.5 s; the engine asked for 30 s.
    let due = retried.run_at.expect("a retry has runAt");
    let start = Timestamp::parse(START).unwrap();
    assert!(
        due.since(start) >= Duration::from_secs(30),
        "due {due:?}, queued at {start:?}"
    );
    clock.set(due);
    let done = wait_job(&q, &job, |j| j.status == JobStatus::Complete).await;
    assert_eq!(done.result, Some(json!({"doubled": 10, "attempt": 2})));
    w.stop().await;
    handle.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_stopped_by_cancellation_leaves_the_job_cancelled() {
    let (q, _clock, w, handle) = setup().await;
    let job = enqueue(&q, "doubling", json!({"n": 1, "mode": "until-cancelled"})).await;
    wait_job(&q, &job, |j| j.status == JobStatus::Running).await;
    q.cancel_job(&job.id).await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while w.in_flight() > 0 {
            tokio::task::yield_now().await
        }
    })
    .await
    .expect("the engine saw the token fire");
    let after = q.get_job(&job.id).await.unwrap();
    assert_eq!(after.status, JobStatus::Cancelled);
    assert_eq!(after.error, None, "{after:?}");
    assert_eq!(after.retry_count, 0);
    w.stop().await;
    handle.await.unwrap().unwrap();
}
