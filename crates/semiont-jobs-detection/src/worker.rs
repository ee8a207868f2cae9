//! [`DetectionWorker`]: the [`Detector`] as a [`JobWorker`] for `detection`
//! jobs — the [`JobEngine`] that the worker runtime's generic
//! [`EngineWorker`] runs (typed parameters in, typed progress and
//! checkpoints through the job context, errors classified for the retry
//! policy).
//!
//! [`JobWorker`]: semiont_jobs_worker::JobWorker

use async_trait::async_trait;
use semiont_jobs_content::ProgressSink;
use semiont_jobs_model::{
    Checkpoint, DetectionParams, DetectionProgress, DetectionResult, Job, JobType, UnitCursor,
};
use semiont_jobs_worker::{EngineError, EngineWorker, JobContext, JobEngine};
use serde_json::Value;

use crate::{Detector, Error, TypeCursor};

/// Runs `detection` jobs with a [`Detector`]: `DetectionWorker::new(detector)`.
pub type DetectionWorker = EngineWorker<Detector>;

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

/// The unit whose cursor carries the running totals of the finished
/// entity types (a completed unit's cursor is dropped, so the totals live
/// in a unit that never completes): `next` is the number of types
/// finished, `found`/`emitted`/`errors` their sums, and the extra fields
/// `errorClasses`, `chunks` and `modelCalls` those of model-based detection.
pub const TOTALS_UNIT: &str = "#totals";

/// Resumes from the job's checkpoints: one completed unit per finished
/// entity type, the totals in [`TOTALS_UNIT`]'s cursor, and for a type an
/// attempt stopped inside (model-based detection), a cursor named after
/// the type: `next` the characters searched, `size` the chunk size, the
/// job's totals at that chunk, and the extra fields `chunksDone` and
/// `learnedChars`.
pub(crate) struct ContextResume<'a>(pub(crate) &'a JobContext);

#[async_trait]
impl crate::Resume for ContextResume<'_> {
    fn is_done(&self, entity_type: &str) -> bool {
        self.0.is_completed(entity_type)
    }

    fn totals(&self) -> DetectionResult {
        self.0
            .cursor(TOTALS_UNIT)
            .map(|c| totals_of(&c))
            .unwrap_or_default()
    }

    async fn type_done(
        &mut self,
        entity_type: &str,
        totals: &DetectionResult,
        types_done: u32,
    ) -> bool {
        let cursor = cursor_of(u64::from(types_done), 0, totals);
        let checkpoint = Checkpoint::cursor(TOTALS_UNIT, cursor).with_done(entity_type);
        match self.0.checkpoint(checkpoint).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(job_id = %self.0.job_id(), entity_type, error = %e, "cannot checkpoint a finished entity type; stopping");
                false
            }
        }
    }

    fn type_cursor(&self, entity_type: &str) -> Option<TypeCursor> {
        let c = self.0.cursor(entity_type)?;
        Some(TypeCursor {
            done_chars: c.next,
            chunk_chars: c.size,
            chunks_done: c.extra.get("chunksDone").and_then(Value::as_u64)?,
            learned_chars: c.extra.get("learnedChars").and_then(Value::as_u64),
            totals: totals_of(&c),
        })
    }

    async fn chunk_done(&mut self, entity_type: &str, cursor: &TypeCursor) -> bool {
        let mut unit = cursor_of(cursor.done_chars, cursor.chunk_chars, &cursor.totals);
        unit.extra
            .insert("chunksDone".into(), cursor.chunks_done.into());
        if let Some(n) = cursor.learned_chars {
            unit.extra.insert("learnedChars".into(), n.into());
        }
        match self
            .0
            .checkpoint(Checkpoint::cursor(entity_type, unit))
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(job_id = %self.0.job_id(), entity_type, error = %e, "cannot checkpoint a finished chunk; stopping");
                false
            }
        }
    }
}

/// A cursor at `next` of `size` carrying `totals`: the counts in its
/// fields, the model-based ones in its extra fields.
fn cursor_of(next: u64, size: u64, totals: &DetectionResult) -> UnitCursor {
    let mut cursor = UnitCursor::at(next, size);
    cursor.found = totals.total_found;
    cursor.emitted = totals.total_emitted;
    cursor.errors = totals.errors;
    if !totals.error_classes.is_empty() {
        cursor.extra.insert(
            "errorClasses".into(),
            serde_json::to_value(&totals.error_classes).unwrap_or_default(),
        );
    }
    if let Some(n) = totals.chunks {
        cursor.extra.insert("chunks".into(), n.into());
    }
    if let Some(n) = totals.model_calls {
        cursor.extra.insert("modelCalls".into(), n.into());
    }
    cursor
}

/// The totals a cursor made by [`cursor_of`] carries.
fn totals_of(c: &UnitCursor) -> DetectionResult {
    DetectionResult {
        total_found: c.found,
        total_emitted: c.emitted,
        errors: c.errors,
        error_classes: c
            .extra
            .get("errorClasses")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default(),
        chunks: c.extra.get("chunks").and_then(Value::as_u64),
        model_calls: c.extra.get("modelCalls").and_then(Value::as_u64),
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
impl JobEngine for Detector {
    type Params = DetectionParams;
    type Output = DetectionResult;
    type Error = Error;

    fn job_type(&self) -> JobType {
        JobType::Detection
    }

    async fn run_job(
        &self,
        ctx: &JobContext,
        job: &Job,
        params: DetectionParams,
    ) -> Result<DetectionResult, Error> {
        let mut sink = ContextSink(ctx);
        let mut resume = ContextResume(ctx);
        self.run_resumable(
            &job.id,
            &params,
            &mut sink,
            ctx.cancellation_token(),
            &mut resume,
        )
        .await
    }
}
