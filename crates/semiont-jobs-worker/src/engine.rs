//! [`EngineWorker`]: one [`JobWorker`] for every engine that runs a single
//! job type with typed parameters ([`JobEngine`]), so an engine crate
//! writes only what is its own — how to run one job — and not the glue
//! (type filter, parameter decoding, result encoding, error
//! classification).

use std::time::Duration;

use async_trait::async_trait;
use semiont_jobs_model::{Job, JobType, TypeFilter};
use serde::{de::DeserializeOwned, Serialize};
use serde_json::Value;

use crate::{JobContext, JobError, JobWorker};

/// An engine's error as the retry policy needs to see it.
pub trait EngineError: std::fmt::Display + Send {
    /// The engine stopped because the job's cancellation token fired.
    fn is_cancelled(&self) -> bool;

    /// A retry may succeed (a transient failure).
    fn is_retryable(&self) -> bool;

    /// The machine-readable code stored with the failure (e.g.
    /// `INVALID_INPUT`).
    fn code(&self) -> &'static str;

    /// How long the cause asked to wait before a retry (e.g. a server's
    /// `Retry-After`); `None` leaves the wait to the retry policy.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl JobError {
    /// An engine error as the attempt's end (see [`JobError::classified`]),
    /// with the cause's wait before a retry.
    pub fn from_engine(e: &impl EngineError) -> Self {
        JobError::classified(e.is_cancelled(), e.is_retryable(), e.code(), e.to_string())
            .with_retry_after(e.retry_after())
    }
}

/// An engine that runs one job type: typed parameters in, a typed result
/// out, progress and checkpoints through the [`JobContext`]. Wrap it in an
/// [`EngineWorker`] to run it under a [`Worker`](crate::Worker).
#[async_trait]
pub trait JobEngine: Send + Sync + 'static {
    /// The job's parameters, decoded from [`Job::params`].
    type Params: DeserializeOwned + Send;
    /// What a finished job stores as its result.
    type Output: Serialize + Send;
    /// The engine's error; [`EngineError`] says how it ends the attempt.
    type Error: EngineError;

    /// The one job type this engine runs (also the worker's name).
    fn job_type(&self) -> JobType;

    /// Runs one attempt of `job` with its decoded `params`. The engine
    /// should stop with an error for which [`EngineError::is_cancelled`]
    /// holds once `ctx`'s cancellation token fires.
    async fn run_job(
        &self,
        ctx: &JobContext,
        job: &Job,
        params: Self::Params,
    ) -> Result<Self::Output, Self::Error>;
}

/// A [`JobEngine`] as a [`JobWorker`]: claims only the engine's job type,
/// fails a job whose parameters do not decode permanently with code
/// `INVALID_PARAMS`, stores the engine's output as the job's result, and
/// classifies the engine's errors with [`JobError::from_engine`].
pub struct EngineWorker<E> {
    engine: E,
    job_type: JobType,
}

impl<E: JobEngine> EngineWorker<E> {
    /// A worker running `engine`.
    pub fn new(engine: E) -> Self {
        let job_type = engine.job_type();
        EngineWorker { engine, job_type }
    }

    /// The engine this worker runs.
    pub fn engine(&self) -> &E {
        &self.engine
    }
}

#[async_trait]
impl<E: JobEngine> JobWorker for EngineWorker<E> {
    fn worker_name(&self) -> &str {
        self.job_type.as_str()
    }

    fn job_types(&self) -> TypeFilter {
        TypeFilter::one(self.job_type.clone())
    }

    fn can_process_job(&self, job: &Job) -> bool {
        job.job_type == self.job_type
    }

    async fn execute_job(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
        let params = job
            .params_as::<E::Params>()
            .map_err(|e| JobError::permanent(e.to_string()).with_code("INVALID_PARAMS"))?;
        let output = self
            .engine
            .run_job(ctx, job, params)
            .await
            .map_err(|e| JobError::from_engine(&e))?;
        Ok(Some(serde_json::to_value(output)?))
    }
}
