//! The detection engine: loads a resource, finds mentions per entity type
//! (offline recognizer or a language model), and emits one W3C linking
//! annotation per mention with a deterministic id.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use semiont_jobs_content::text::TextIndex;
use semiont_jobs_content::{
    Agent, Annotation, AnnotationId, AnnotationStore, Body, InferenceClient, ModelSettings,
    Motivation, ProgressSink, ResourceId, ResourceStore, Target,
};
use semiont_jobs_model::{DetectionParams, DetectionProgress, DetectionResult, JobId, Timestamp};

use crate::chunking;
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
    /// Token limit per answer (default: a quarter of the context, 64 to
    /// 1024; 512 for a 2,048-token context).
    pub max_tokens: u32,
    /// Most characters of a document sent in one request (default: what
    /// fits in the context beside the prompt and the answer, at 3
    /// characters per token; 3,840 for a 2,048-token context).
    pub chunk_chars: usize,
    /// Characters shared by neighbouring chunks, so a mention on a cut is
    /// seen whole (default a tenth of the chunk, 40 to 200).
    pub overlap_chars: usize,
    /// The floor of halving: a chunk whose answer is cut off or does not
    /// fit is asked again in two halves while each half keeps at least
    /// this many characters (default an eighth of the chunk, at least 200).
    pub min_chunk_chars: usize,
    /// Model calls of one job in flight at once (default 1).
    pub concurrency: usize,
}

/// Tokens assumed for the detection prompt around a chunk (instructions,
/// system message, chat template).
const PROMPT_TOKENS: u32 = 256;

impl ModelOptions {
    /// Defaults for `client`: [`ModelSettings::default`], a model with a
    /// 2,048-token context.
    pub fn new(client: Arc<dyn InferenceClient>) -> Self {
        Self::from_settings(client, &ModelSettings::default())
    }

    /// Options for `client` from the model's settings: values set there are
    /// taken as they are, the others derived from the context size.
    pub fn from_settings(client: Arc<dyn InferenceClient>, settings: &ModelSettings) -> Self {
        let context = settings.context_tokens;
        let max_tokens = settings
            .max_tokens
            .unwrap_or_else(|| (context / 4).clamp(64, 1024));
        let room = context.saturating_sub(max_tokens.saturating_add(PROMPT_TOKENS));
        let chunk_chars = settings.chunk_chars.unwrap_or_else(|| {
            (room as usize * ModelSettings::CHARS_PER_TOKEN).max(ModelSettings::MIN_CHUNK_CHARS)
        });
        ModelOptions {
            client,
            temperature: settings.temperature.unwrap_or(0.0),
            max_tokens,
            chunk_chars,
            overlap_chars: (chunk_chars / 10).clamp(40, 200).min(chunk_chars / 2),
            min_chunk_chars: (chunk_chars / 8).max(200).min(chunk_chars),
            concurrency: settings.concurrency.max(1),
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
            .field("overlap_chars", &self.overlap_chars)
            .field("min_chunk_chars", &self.min_chunk_chars)
            .field("concurrency", &self.concurrency)
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

    /// Where an earlier attempt stopped inside `entity_type` (model-based
    /// detection only), if it stopped inside it. The default: nowhere.
    fn type_cursor(&self, _entity_type: &str) -> Option<TypeCursor> {
        None
    }

    /// Records that model-based detection of `entity_type` is done up to
    /// `cursor` (its chunks' annotations are stored). Called after each
    /// chunk but the type's last (then [`Resume::type_done`] follows).
    /// Returns false when the run must stop (the job was cancelled or
    /// lost). The default records nothing.
    async fn chunk_done(&mut self, _entity_type: &str, _cursor: &TypeCursor) -> bool {
        true
    }
}

/// How far model-based detection of one entity type got: the text before
/// `done_chars` is searched and its annotations are stored. A retry plans
/// chunks from there (with its own chunk size) instead of from the start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TypeCursor {
    /// Characters (Unicode code points) of the document searched, from
    /// its start.
    pub done_chars: u64,
    /// The chunk size the cursor was made with, in characters.
    pub chunk_chars: u64,
    /// Chunks of this type done so far (for progress).
    pub chunks_done: u64,
    /// The owned chunk size that worked after halvings, if any: later
    /// chunks start at this size instead of halving again.
    pub learned_chars: Option<u64>,
    /// The job's totals at this point: the finished types and this type's
    /// chunks so far.
    pub totals: DetectionResult,
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
///   after it, in the seed's `DetectionJob.progress` shape; model-based
///   detection also reports `totalChunks`/`processedChunks` after each chunk.
/// - Model-based detection splits the document into overlapping chunks
///   ([`ModelOptions`]); a mention on a cut is kept by one chunk only, and
///   annotations of a chunk are written as soon as it is done. A chunk
///   whose answer was cut off at the token limit, or that the server
///   refused as longer than the context, is asked again in two halves
///   (down to `min_chunk_chars`; later chunks start at the size that
///   worked). A chunk still cut off at the floor keeps the complete items
///   of its answer and counts a `TRUNCATED` error; a malformed answer is
///   asked again once, then counts a `MALFORMED_OUTPUT` error for that
///   chunk alone. Every other chunk's results are kept.
/// - Cancellation is checked before each entity type and before each model
///   call, and an in-flight model call is abandoned when the token fires;
///   the run then ends with [`Error::Cancelled`].
/// - Failures that retrying will not fix and that concern one part of the
///   work (a type the offline recognizer has no rules or gazetteer for, a
///   chunk's unusable answer) are counted in `errors` and `errorClasses`
///   and the run goes on. Retryable errors (network, timeout, 429, 5xx, IO)
///   and other permanent ones (400, 401, missing resource, a context too
///   small for the smallest chunk) end the run with that error.
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
        // A type an earlier attempt stopped inside carries the latest
        // totals (the finished types' and its own chunks').
        let partial = types
            .iter()
            .filter(|t| !resume.is_done(t))
            .find_map(|t| resume.type_cursor(t));
        let before = match &partial {
            Some(c) if matches!(self.backend, Backend::Model(_)) => c.totals.clone(),
            _ => resume.totals(),
        };
        let done_before = types.iter().filter(|t| resume.is_done(t)).count() as u32;
        let mut state = DetectionProgress {
            total_entity_types: types.len() as u32,
            processed_entity_types: done_before,
            current_entity_type: types.iter().find(|t| !resume.is_done(t)).cloned(),
            entities_found: before.total_found,
            entities_emitted: before.total_emitted,
            ..DetectionProgress::default()
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
        let model = matches!(self.backend, Backend::Model(_));
        let mut tally = Tally::from_totals(&before);
        for entity_type in &types {
            if resume.is_done(entity_type) {
                continue;
            }
            if cancel.is_cancelled() {
                return Err(cancelled());
            }
            state.current_entity_type = Some(entity_type.clone());
            state.total_chunks = None;
            state.processed_chunks = None;
            progress.report(state.clone()).await;
            match (&self.backend, &analysis) {
                (Backend::Rules(r), Some(all)) => match r.canonical_type(entity_type) {
                    Some(canonical) => {
                        let spans: Vec<Range<usize>> = all
                            .iter()
                            .filter(|m: &&Mention| m.entity_type == canonical)
                            .map(|m| m.start..m.end)
                            .collect();
                        state.entities_found += spans.len() as u64;
                        for span in spans {
                            self.emit(job_id, &resource_id, &index, entity_type, span)
                                .await?;
                            state.entities_emitted += 1;
                        }
                    }
                    None => {
                        tracing::warn!(
                            resource = %resource_id,
                            entity_type = %entity_type,
                            "no rules or gazetteer for this entity type"
                        );
                        tally.error("UNKNOWN_ENTITY_TYPE");
                    }
                },
                (Backend::Model(opts), _) => {
                    let run = TypeRun {
                        job_id,
                        resource_id: &resource_id,
                        index: &index,
                        entity_type,
                    };
                    let from = resume.type_cursor(entity_type);
                    let mut ctx = TypeState {
                        state: &mut state,
                        tally: &mut tally,
                        progress: &mut *progress,
                        resume: &mut *resume,
                    };
                    self.model_type(opts, &run, &text, from, &mut ctx, cancel)
                        .await?;
                }
                (Backend::Rules(_), None) => tally.error("UNKNOWN_ENTITY_TYPE"),
            }
            state.processed_entity_types += 1;
            progress.report(state.clone()).await;
            let totals = tally.result(&state, model);
            if !resume
                .type_done(entity_type, &totals, state.processed_entity_types)
                .await
            {
                return Err(cancelled());
            }
        }
        state.current_entity_type = None;
        progress.report(state.clone()).await;
        Ok(tally.result(&state, model))
    }

    /// Searches one entity type with the model, chunk by chunk, writing
    /// each chunk's annotations as soon as it is done, and resuming from
    /// `from` (an earlier attempt's cursor) when given.
    ///
    /// The chunks come back in plan order, so after each one "the text
    /// before the end of its owned segment is done" is a resumable cursor,
    /// handed to [`Resume::chunk_done`].
    async fn model_type(
        &self,
        opts: &ModelOptions,
        run: &TypeRun<'_>,
        text: &Arc<str>,
        from: Option<TypeCursor>,
        ctx: &mut TypeState<'_>,
        cancel: &CancellationToken,
    ) -> Result<()> {
        let chars_total = run.index.char_len();
        // A cursor beyond the text (the document changed) starts over.
        let from = from.filter(|c| c.done_chars <= chars_total as u64);
        let start = match &from {
            Some(c) => run.index.char_to_byte(c.done_chars as usize).unwrap_or(0),
            None => 0,
        };
        let chunks_before = from.as_ref().map_or(0, |c| c.chunks_done);
        let learned = from
            .as_ref()
            .and_then(|c| c.learned_chars)
            .map_or(usize::MAX, |n| n as usize);
        let plan: Arc<[chunking::Piece]> =
            chunking::plan_from(text, start, opts.chunk_chars, opts.overlap_chars).into();
        let ask = Arc::new(chunking::Ask {
            client: Arc::clone(&opts.client),
            text: Arc::clone(text),
            entity_type: run.entity_type.to_owned(),
            resource_id: run.resource_id.to_string(),
            temperature: opts.temperature,
            max_tokens: opts.max_tokens,
            margin: opts.overlap_chars / 2,
            min_chars: opts.min_chunk_chars,
            learned_chars: Arc::new(AtomicUsize::new(learned)),
            cancel: cancel.clone(),
        });
        let state = &mut *ctx.state;
        state.total_chunks = Some((chunks_before + plan.len() as u64) as u32);
        state.processed_chunks = Some(chunks_before as u32);
        ctx.progress.report(state.clone()).await;
        let mut seen: HashSet<Range<usize>> = HashSet::new();
        let mut runner =
            chunking::ChunkRunner::new(Arc::clone(&ask), Arc::clone(&plan), 0, opts.concurrency);
        while let Some(outcome) = runner.next().await {
            let outcome = outcome?;
            let state = &mut *ctx.state;
            for span in outcome.spans {
                if seen.insert(span.clone()) {
                    state.entities_found += 1;
                    self.emit(
                        run.job_id,
                        run.resource_id,
                        run.index,
                        run.entity_type,
                        span,
                    )
                    .await?;
                    state.entities_emitted += 1;
                }
            }
            for class in outcome.errors {
                ctx.tally.error(class);
            }
            ctx.tally.chunks += 1;
            ctx.tally.calls += outcome.calls;
            let chunks_done = chunks_before + outcome.index as u64 + 1;
            state.processed_chunks = Some(chunks_done as u32);
            ctx.progress.report(state.clone()).await;
            if outcome.index + 1 < plan.len() {
                let done_to = plan[outcome.index].own.end;
                let done_chars = run.index.byte_to_char(done_to).unwrap_or(0) as u64;
                let learned = ask.learned_chars.load(std::sync::atomic::Ordering::Relaxed);
                let cursor = TypeCursor {
                    done_chars,
                    chunk_chars: opts.chunk_chars as u64,
                    chunks_done,
                    learned_chars: (learned != usize::MAX).then_some(learned as u64),
                    totals: ctx.tally.result(ctx.state, true),
                };
                if !ctx.resume.chunk_done(run.entity_type, &cursor).await {
                    return Err(Error::Cancelled {
                        resource_id: run.resource_id.to_string(),
                    });
                }
            }
        }
        Ok(())
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

/// The annotation target of one entity type's run.
struct TypeRun<'a> {
    job_id: &'a JobId,
    resource_id: &'a ResourceId,
    index: &'a TextIndex<'a>,
    entity_type: &'a str,
}

/// The run's state that one entity type's model search updates.
struct TypeState<'a> {
    state: &'a mut DetectionProgress,
    tally: &'a mut Tally,
    progress: &'a mut dyn ProgressSink<DetectionProgress>,
    resume: &'a mut dyn Resume,
}

/// Failures that did not stop the run, chunks and model calls.
#[derive(Default)]
struct Tally {
    errors: u64,
    classes: BTreeMap<String, u64>,
    chunks: u64,
    calls: u64,
}

impl Tally {
    /// Carries on from the totals of earlier attempts.
    fn from_totals(before: &DetectionResult) -> Self {
        Tally {
            errors: before.errors,
            classes: before.error_classes.clone(),
            chunks: before.chunks.unwrap_or(0),
            calls: before.model_calls.unwrap_or(0),
        }
    }

    /// The result so far.
    fn result(&self, state: &DetectionProgress, model: bool) -> DetectionResult {
        DetectionResult {
            total_found: state.entities_found,
            total_emitted: state.entities_emitted,
            errors: self.errors,
            error_classes: self.classes.clone(),
            chunks: model.then_some(self.chunks),
            model_calls: model.then_some(self.calls),
        }
    }

    fn error(&mut self, class: &str) {
        self.errors += 1;
        *self.classes.entry(class.to_owned()).or_default() += 1;
    }
}
