//! The detection engine: loads a resource, finds mentions per entity type
//! (offline recognizer or a language model), and emits one W3C linking
//! annotation per mention with a deterministic id.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use semiont_jobs_content::text::TextIndex;
use semiont_jobs_content::{
    Agent, Annotation, AnnotationId, AnnotationStore, Body, InferenceClient, Motivation,
    ProgressSink, ResourceId, ResourceStore, Target,
};
use semiont_jobs_model::{DetectionParams, DetectionProgress, DetectionResult, JobId, Timestamp};

use crate::llm;
use crate::recognizer::{Mention, Recognizer};
use crate::{Error, Result};

/// How mentions are found.
#[derive(Clone, Debug)]
pub enum Backend {
    /// The offline rule- and gazetteer-based [`Recognizer`].
    Rules(Arc<Recognizer>),
    /// A language model asked for JSON spans, which are validated against
    /// the text.
    Model(ModelOptions),
}

/// Settings of model-based detection.
#[derive(Clone)]
pub struct ModelOptions {
    /// The model.
    pub client: Arc<dyn InferenceClient>,
    /// Sampling temperature (default 0).
    pub temperature: f32,
    /// Token limit per answer (default 2048).
    pub max_tokens: u32,
    /// Longest text sent in one request, in characters (default 6000);
    /// longer documents are split at paragraphs or sentences.
    pub chunk_chars: usize,
}

impl ModelOptions {
    /// Defaults for `client`.
    pub fn new(client: Arc<dyn InferenceClient>) -> Self {
        ModelOptions {
            client,
            temperature: 0.0,
            max_tokens: 2048,
            chunk_chars: 6000,
        }
    }
}

impl fmt::Debug for ModelOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelOptions")
            .field("client", &self.client.describe())
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .field("chunk_chars", &self.chunk_chars)
            .finish()
    }
}

/// What earlier attempts of a detection job finished, and where the engine
/// records what this attempt finishes: one unit per entity type, plus the
/// running totals, so a retry skips finished types and its result still
/// counts every type. [`Detector::run_resumable`] calls it; the job runtime
/// implements it on checkpoints.
#[async_trait::async_trait]
pub trait Resume: Send {
    /// Whether an earlier attempt finished `entity_type` (its annotations
    /// are stored).
    fn is_done(&self, entity_type: &str) -> bool;

    /// The totals of the types earlier attempts finished.
    fn totals(&self) -> DetectionResult;

    /// Records that `entity_type` is finished and its annotations stored,
    /// with the totals so far (this type included) and how many types are
    /// finished. Returns false when the run must stop (the job was
    /// cancelled or lost): the engine then ends with [`Error::Cancelled`].
    async fn type_done(
        &mut self,
        entity_type: &str,
        totals: &DetectionResult,
        types_done: u32,
    ) -> bool;
}

/// Nothing finished before, nothing recorded: [`Detector::run`].
struct Fresh;

#[async_trait::async_trait]
impl Resume for Fresh {
    fn is_done(&self, _: &str) -> bool {
        false
    }
    fn totals(&self) -> DetectionResult {
        DetectionResult::default()
    }
    async fn type_done(&mut self, _: &str, _: &DetectionResult, _: u32) -> bool {
        true
    }
}

/// The detection engine. Independent of any job runtime: give it a job id,
/// the job's parameters, a progress sink and a cancellation token.
///
/// # Behaviour
///
/// - For each entity type of `params.entity_types` (duplicates skipped), in
///   order, it finds mentions and writes one annotation per mention:
///   motivation `linking`, a `TextPositionSelector` (code points) and a
///   `TextQuoteSelector`, and a `TextualBody` with purpose `tagging` whose
///   value is the entity type as the job spelled it.
/// - Annotation ids are derived from (job id, resource id, entity type,
///   start, end), so a retried job rewrites the same ids and creates no
///   duplicates. `entitiesEmitted` counts annotations written or already
///   present from an earlier attempt.
/// - Progress is reported before each type (with `currentEntityType`) and
///   after it, in the seed's `DetectionJob.progress` shape.
/// - Cancellation is checked before each entity type and before each model
///   call, and an in-flight model call is abandoned when the token fires;
///   the run then ends with [`Error::Cancelled`].
/// - Per-type failures that retrying will not fix (a type the offline
///   recognizer has no rules or gazetteer for, a model answer that is not
///   JSON) are counted in `errors` and the run goes on. Retryable errors
///   (network, timeout, 429, 5xx, IO) and other permanent ones (400, 401,
///   missing resource) end the run with that error.
#[derive(Clone, Debug)]
pub struct Detector {
    resources: Arc<dyn ResourceStore>,
    annotations: Arc<dyn AnnotationStore>,
    backend: Backend,
    creator: Agent,
}

impl Detector {
    /// An engine over these stores with this backend.
    pub fn new(
        resources: Arc<dyn ResourceStore>,
        annotations: Arc<dyn AnnotationStore>,
        backend: Backend,
    ) -> Self {
        Detector {
            resources,
            annotations,
            backend,
            creator: Agent::software("semiont-jobs:detection", "semiont-jobs entity detection"),
        }
    }

    /// An offline engine using `recognizer`.
    pub fn offline(
        resources: Arc<dyn ResourceStore>,
        annotations: Arc<dyn AnnotationStore>,
        recognizer: Recognizer,
    ) -> Self {
        Self::new(resources, annotations, Backend::Rules(Arc::new(recognizer)))
    }

    /// Sets the creator written into annotations (default: the software
    /// agent `semiont-jobs:detection`).
    pub fn with_creator(mut self, creator: Agent) -> Self {
        self.creator = creator;
        self
    }

    /// Runs detection for one job.
    pub async fn run(
        &self,
        job_id: &JobId,
        params: &DetectionParams,
        progress: &mut dyn ProgressSink<DetectionProgress>,
        cancel: &CancellationToken,
    ) -> Result<DetectionResult> {
        self.run_resumable(job_id, params, progress, cancel, &mut Fresh)
            .await
    }

    /// Runs detection for one job, skipping the entity types `resume` says
    /// an earlier attempt finished (no model call, no annotation written
    /// for them) and telling it after each type this attempt finishes. The
    /// result counts every type, the skipped ones by `resume`'s totals.
    pub async fn run_resumable(
        &self,
        job_id: &JobId,
        params: &DetectionParams,
        progress: &mut dyn ProgressSink<DetectionProgress>,
        cancel: &CancellationToken,
        resume: &mut dyn Resume,
    ) -> Result<DetectionResult> {
        let resource_id = ResourceId::parse(params.resource_id.trim())?;
        let mut types: Vec<String> = Vec::new();
        for t in &params.entity_types {
            let t = t.trim();
            if t.is_empty() {
                return Err(Error::InvalidParams("an entity type is empty".into()));
            }
            if !types.iter().any(|x| x == t) {
                types.push(t.to_owned());
            }
        }
        if types.is_empty() {
            return Err(Error::InvalidParams("entityTypes is empty".into()));
        }
        let cancelled = || Error::Cancelled {
            resource_id: resource_id.to_string(),
        };
        if cancel.is_cancelled() {
            return Err(cancelled());
        }
        let resource = self.resources.get(&resource_id).await?;
        let text: Arc<str> = Arc::from(resource.text.as_str());
        let before = resume.totals();
        let done_before = types.iter().filter(|t| resume.is_done(t)).count() as u32;
        let mut state = DetectionProgress {
            total_entity_types: types.len() as u32,
            processed_entity_types: done_before,
            current_entity_type: types.iter().find(|t| !resume.is_done(t)).cloned(),
            entities_found: before.total_found,
            entities_emitted: before.total_emitted,
        };
        progress.report(state.clone()).await;

        // The offline recognizer analyses the document once for all types.
        let analysis = match &self.backend {
            Backend::Rules(r) => {
                let (r, t) = (Arc::clone(r), Arc::clone(&text));
                let mentions = tokio::task::spawn_blocking(move || r.analyze(&t))
                    .await
                    .map_err(|e| {
                        if e.is_panic() {
                            std::panic::resume_unwind(e.into_panic());
                        }
                        Error::InvalidParams(format!("recognizer task failed: {e}"))
                    })?;
                Some(mentions)
            }
            Backend::Model(_) => None,
        };
        let index = TextIndex::new(&text);
        let mut errors = before.errors;
        for entity_type in &types {
            if resume.is_done(entity_type) {
                continue;
            }
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            state.current_entity_type = Some(entity_type.clone());
            progress.report(state.clone()).await;
            let spans = match (&self.backend, &analysis) {
                (Backend::Rules(r), Some(all)) => match r.canonical_type(entity_type) {
                    Some(canonical) => Some(
                        all.iter()
                            .filter(|m: &&Mention| m.entity_type == canonical)
                            .map(|m| m.start..m.end)
                            .collect(),
                    ),
                    None => {
                        tracing::warn!(
                            resource = %resource_id,
                            entity_type = %entity_type,
                            "no rules or gazetteer for this entity type"
                        );
                        None
                    }
                },
                (Backend::Model(opts), _) => {
                    self.model_spans(opts, &text, entity_type, cancel, &cancelled)
                        .await?
                }
                (Backend::Rules(_), None) => None,
            };
            match spans {
                None => errors += 1,
                Some(spans) => {
                    state.entities_found += spans.len() as u64;
                    for span in spans {
                        self.emit(job_id, &resource_id, &index, entity_type, span)
                            .await?;
                        state.entities_emitted += 1;
                    }
                }
            }
            state.processed_entity_types += 1;
            progress.report(state.clone()).await;
            let totals = DetectionResult {
                total_found: state.entities_found,
                total_emitted: state.entities_emitted,
                errors,
            };
            if !resume
                .type_done(entity_type, &totals, state.processed_entity_types)
                .await
            {
                return Err(cancelled());
            }
        }
        state.current_entity_type = None;
        progress.report(state.clone()).await;
        Ok(DetectionResult {
            total_found: state.entities_found,
            total_emitted: state.entities_emitted,
            errors,
        })
    }

    /// Asks the model chunk by chunk. `Ok(None)`: the type failed for a
    /// reason retrying will not fix (malformed answers).
    async fn model_spans(
        &self,
        opts: &ModelOptions,
        text: &str,
        entity_type: &str,
        cancel: &CancellationToken,
        cancelled: &(dyn Fn() -> Error + Sync),
    ) -> Result<Option<Vec<Range<usize>>>> {
        let mut spans = Vec::new();
        for chunk in llm::chunks(text, opts.chunk_chars) {
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            let request = llm::request(
                entity_type,
                &text[chunk.clone()],
                opts.temperature,
                opts.max_tokens,
            );
            let answer = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(cancelled()),
                answer = opts.client.complete(&request) => answer,
            };
            let answer = match answer {
                Ok(a) => a,
                Err(e @ semiont_jobs_content::Error::MalformedOutput { .. }) => {
                    tracing::warn!(entity_type = %entity_type, error = %e, "model answer unusable");
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            };
            let parsed = match llm::parse(&answer.text) {
                Ok(p) => p,
                Err(reason) => {
                    tracing::warn!(entity_type = %entity_type, %reason, "malformed model output");
                    return Ok(None);
                }
            };
            let checked = llm::check(&text[chunk.clone()], &parsed);
            if checked.repaired > 0 || checked.dropped > 0 {
                tracing::debug!(
                    entity_type = %entity_type,
                    repaired = checked.repaired,
                    dropped = checked.dropped,
                    "model spans corrected"
                );
            }
            spans.extend(
                checked
                    .spans
                    .into_iter()
                    .map(|r| chunk.start + r.start..chunk.start + r.end),
            );
        }
        Ok(Some(spans))
    }

    async fn emit(
        &self,
        job_id: &JobId,
        resource_id: &ResourceId,
        index: &TextIndex<'_>,
        entity_type: &str,
        span: Range<usize>,
    ) -> Result<()> {
        let (Some(chars), Some(selector)) = (
            index.bytes_to_chars(span.clone()),
            index.selectors(span.clone()),
        ) else {
            // Spans come from this text on char boundaries; never here.
            tracing::warn!(?span, "skipping a span off character boundaries");
            return Ok(());
        };
        let id = AnnotationId::derive(&[
            job_id.as_str(),
            resource_id.as_str(),
            entity_type,
            &chars.start.to_string(),
            &chars.end.to_string(),
        ]);
        let mut annotation = Annotation::new(
            id,
            Motivation::Linking,
            Target {
                source: resource_id.clone(),
                selector,
            },
            Timestamp::now(),
        );
        annotation.creator = Some(self.creator.clone());
        annotation.body.push(Body::tag(entity_type));
        self.annotations.add(&annotation).await?;
        Ok(())
    }
}
