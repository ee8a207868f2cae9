//! [`GenerationWorker`]: the [`Generator`] as a [`JobWorker`] for
//! `generation` jobs — typed parameters in, staged progress through the job
//! context, errors classified for the retry policy.

use async_trait::async_trait;
use semiont_jobs_content::ProgressSink;
use semiont_jobs_model::{Checkpoint, GenerationProgress, GenerationStage, Job, JobType};
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

/// Forwards the engine's progress to the job, and checkpoints each stage
/// the engine leaves behind (a unit per stage: `fetching`, `generating`,
/// `creating`, `linking`). What makes a retry skip the model is the stored
/// document itself (its id derives from the job's, and the engine reuses
/// it); the checkpoints record the stages for the job's readers and for
/// the next attempt's progress.
struct ContextSink<'a> {
    ctx: &'a JobContext,
    stage: Option<GenerationStage>,
}

fn stage_unit(stage: GenerationStage) -> &'static str {
    match stage {
        GenerationStage::Fetching => "fetching",
        GenerationStage::Generating => "generating",
        GenerationStage::Creating => "creating",
        GenerationStage::Linking => "linking",
    }
}

#[async_trait]
impl ProgressSink<GenerationProgress> for ContextSink<'_> {
    async fn report(&mut self, progress: GenerationProgress) {
        let stage = progress.stage;
        let finished = progress.percentage >= 100.0;
        // A failed write means the job was cancelled or lost; the engine
        // learns that from the cancellation token.
        let _ = self.ctx.update_progress(progress).await;
        let mut done = Vec::new();
        if let Some(prev) = self.stage.filter(|p| *p != stage) {
            done.push(stage_unit(prev));
        }
        if finished {
            done.push(stage_unit(stage));
        }
        self.stage = Some(stage);
        if !done.is_empty() {
            let checkpoint = Checkpoint {
                completed: done.into_iter().map(str::to_owned).collect(),
                ..Default::default()
            };
            let _ = self.ctx.checkpoint(checkpoint).await;
        }
    }
}

fn job_error(e: &Error) -> JobError {
    JobError::classified(
        matches!(e, Error::Cancelled { .. }),
        e.is_retryable(),
        e.code(),
        e.to_string(),
    )
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
        let mut sink = ContextSink { ctx, stage: None };
        let result = self
            .generator
            .run(&job.id, &params, &mut sink, ctx.cancellation_token())
            .await
            .map_err(|e| job_error(&e))?;
        Ok(Some(serde_json::to_value(result)?))
    }
}
