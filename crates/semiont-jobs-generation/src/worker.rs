//! [`GenerationWorker`]: the [`Generator`] as a [`JobWorker`] for
//! `generation` jobs — the [`JobEngine`] that the worker runtime's generic
//! [`EngineWorker`] runs (typed parameters in, staged progress and
//! checkpoints through the job context, errors classified for the retry
//! policy).
//!
//! [`JobWorker`]: semiont_jobs_worker::JobWorker

use async_trait::async_trait;
use semiont_jobs_content::ProgressSink;
use semiont_jobs_model::{
    Checkpoint, GenerationParams, GenerationProgress, GenerationResult, GenerationStage, Job,
    JobType,
};
use semiont_jobs_worker::{EngineError, EngineWorker, JobContext, JobEngine};

use crate::{Error, Generator};

/// Runs `generation` jobs with a [`Generator`]: `GenerationWorker::new(generator)`.
pub type GenerationWorker = EngineWorker<Generator>;

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

impl EngineError for Error {
    fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled { .. })
    }
    fn is_retryable(&self) -> bool {
        Error::is_retryable(self)
    }
    fn code(&self) -> &'static str {
        Error::code(self)
    }
    fn retry_after(&self) -> Option<std::time::Duration> {
        Error::retry_after(self)
    }
}

#[async_trait]
impl JobEngine for Generator {
    type Params = GenerationParams;
    type Output = GenerationResult;
    type Error = Error;

    fn job_type(&self) -> JobType {
        JobType::Generation
    }

    async fn run_job(
        &self,
        ctx: &JobContext,
        job: &Job,
        params: GenerationParams,
    ) -> Result<GenerationResult, Error> {
        let mut sink = ContextSink { ctx, stage: None };
        self.run(&job.id, &params, &mut sink, ctx.cancellation_token())
            .await
    }
}
