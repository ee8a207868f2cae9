//! [`DetectionWorker`]: the [`Detector`] as a [`JobWorker`] for `detection`
//! jobs — typed parameters in, typed progress through the job context, errors
//! classified for the retry policy.

use async_trait::async_trait;
use semiont_jobs_content::ProgressSink;
use semiont_jobs_model::{DetectionProgress, Job, JobType};
use semiont_jobs_store::TypeFilter;
use semiont_jobs_worker::{JobContext, JobError, JobWorker};
use serde_json::Value;

use crate::{Detector, Error};

/// Runs `detection` jobs with a [`Detector`].
pub struct DetectionWorker {
    detector: Detector,
}

impl DetectionWorker {
    /// A worker using `detector`.
    pub fn new(detector: Detector) -> Self {
        DetectionWorker { detector }
    }
}

/// Forwards the engine's progress to the job (throttled by the context).
pub(crate) struct ContextSink<'a>(pub(crate) &'a JobContext);

#[async_trait]
impl ProgressSink<DetectionProgress> for ContextSink<'_> {
    async fn report(&mut self, progress: DetectionProgress) {
        // A failed write means the job was cancelled or lost; the engine
        // learns that from the cancellation token.
        let _ = self.0.update_progress(progress).await;
    }
}

/// How an engine error ends the attempt.
pub(crate) fn job_error(e: &Error) -> JobError {
    JobError::classified(
        matches!(e, Error::Cancelled { .. }),
        e.is_retryable(),
        e.code(),
        e.to_string(),
    )
    .with_retry_after(e.retry_after())
}

#[async_trait]
impl JobWorker for DetectionWorker {
    fn worker_name(&self) -> &str {
        "detection"
    }

    fn job_types(&self) -> TypeFilter {
        TypeFilter::one(JobType::Detection)
    }

    fn can_process_job(&self, job: &Job) -> bool {
        job.job_type == JobType::Detection
    }

    async fn execute_job(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
        let params = job
            .detection_params()
            .map_err(|e| JobError::permanent(e.to_string()).with_code("INVALID_PARAMS"))?;
        let mut sink = ContextSink(ctx);
        let result = self
            .detector
            .run(&job.id, &params, &mut sink, ctx.cancellation_token())
            .await
            .map_err(|e| job_error(&e))?;
        Ok(Some(serde_json::to_value(result)?))
    }
}
