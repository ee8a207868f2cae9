//! [`GenerationWorker`]: the [`Generator`] as a [`JobWorker`] for
//! `generation` jobs — typed parameters in, staged progress through the job
//! context, errors classified for the retry policy.

use async_trait::async_trait;
use semiont_jobs_content::ProgressSink;
use semiont_jobs_model::{GenerationProgress, Job, JobType};
use semiont_jobs_store::TypeFilter;
use semiont_jobs_worker::{JobContext, JobError, JobWorker};
use serde_json::Value;

use crate::{Error, Generator};

/// Runs `generation` jobs with a [`Generator`].
pub struct GenerationWorker {
    generator: Generator,
}

impl GenerationWorker {
    /// A worker using `generator`.
    pub fn new(generator: Generator) -> Self {
        GenerationWorker { generator }
    }
}

struct ContextSink<'a>(&'a JobContext);

#[async_trait]
impl ProgressSink<GenerationProgress> for ContextSink<'_> {
    async fn report(&mut self, progress: GenerationProgress) {
        // A failed write means the job was cancelled or lost; the engine
        // learns that from the cancellation token.
        let _ = self.0.update_progress(progress).await;
    }
}

fn job_error(e: &Error) -> JobError {
    JobError::classified(
        matches!(e, Error::Cancelled { .. }),
        e.is_retryable(),
        e.code(),
        e.to_string(),
    )
    .with_retry_after(e.retry_after())
}

#[async_trait]
impl JobWorker for GenerationWorker {
    fn worker_name(&self) -> &str {
        "generation"
    }

    fn job_types(&self) -> TypeFilter {
        TypeFilter::one(JobType::Generation)
    }

    fn can_process_job(&self, job: &Job) -> bool {
        job.job_type == JobType::Generation
    }

    async fn execute_job(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
        let params = job
            .generation_params()
            .map_err(|e| JobError::permanent(e.to_string()).with_code("INVALID_PARAMS"))?;
        let mut sink = ContextSink(ctx);
        let result = self
            .generator
            .run(&job.id, &params, &mut sink, ctx.cancellation_token())
            .await
            .map_err(|e| job_error(&e))?;
        Ok(Some(serde_json::to_value(result)?))
    }
}
