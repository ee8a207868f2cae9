//! The generation engine: from a reference annotation in a source document,
//! write a markdown document about the referenced subject, store it, and
//! link the reference to it. Idempotent by job id.

use std::ops::Range;
use std::sync::Arc;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use semiont_jobs_content::text::{sentences, TextIndex};
use semiont_jobs_content::{
    Annotation, AnnotationId, AnnotationStore, Body, CompletionRequest, DocumentBrief,
    InferenceClient, MediaType, ModelSettings, OfflineInference, ProgressSink, PutMode, Resource,
    ResourceId, ResourceStore, Task,
};
use semiont_jobs_model::{
    GenerationParams, GenerationProgress, GenerationResult, GenerationStage, JobId,
};

use crate::{Error, Result};

/// Settings of the generator.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationOptions {
    /// Characters of source text taken on each side of the reference, then
    /// widened to whole sentences (default 600).
    pub context_chars: usize,
    /// Sampling temperature (default 0.4).
    pub temperature: f32,
    /// Token limit of the generated document (default 1500).
    pub max_tokens: u32,
    /// Language when neither the job nor the source says (default `en`).
    pub default_language: String,
    /// Most sentences mentioning the subject passed to the model (default 12).
    pub max_mentions: usize,
    /// The model's context window in tokens, if known (default none). When
    /// set, the passage and the mentions are trimmed so that the prompt
    /// (at 3 characters per token) and the answer fit in it.
    pub context_tokens: Option<u32>,
}

impl Default for GenerationOptions {
    fn default() -> Self {
        GenerationOptions {
            context_chars: 600,
            temperature: 0.4,
            max_tokens: 1500,
            default_language: "en".to_owned(),
            max_mentions: 12,
            context_tokens: None,
        }
    }
}

impl GenerationOptions {
    /// Options for a model with these settings: its temperature (default
    /// 0.4), its answer limit (default half the context, at most 1500
    /// tokens) and its context, which bounds the prompt.
    pub fn from_settings(settings: &ModelSettings) -> Self {
        let defaults = GenerationOptions::default();
        GenerationOptions {
            temperature: settings.temperature.unwrap_or(defaults.temperature),
            max_tokens: settings
                .max_tokens
                .unwrap_or_else(|| (settings.context_tokens / 2).min(defaults.max_tokens)),
            context_tokens: Some(settings.context_tokens),
            ..defaults
        }
    }
}

/// Tokens assumed for the system message and the chat template.
const OVERHEAD_TOKENS: usize = 64;
/// Fewest answer tokens worth asking for.
const MIN_ANSWER_TOKENS: u32 = 128;

fn prompt_tokens(brief: &DocumentBrief) -> usize {
    (prompt(brief).chars().count() + SYSTEM.chars().count()) / ModelSettings::CHARS_PER_TOKEN
        + OVERHEAD_TOKENS
}

/// A smaller brief: half the mentions and half the passage (around the
/// subject); `None` when nothing is left to cut.
fn shrink(brief: &DocumentBrief) -> Option<DocumentBrief> {
    let mut b = brief.clone();
    let before = (b.mentions.len(), b.context.len());
    b.mentions.truncate(b.mentions.len() / 2);
    let chars = b.context.chars().count();
    if chars > 80 {
        let keep = chars / 2;
        let center = b
            .context
            .find(b.subject.as_str())
            .map_or(chars / 2, |i| b.context[..i].chars().count());
        let from = center.saturating_sub(keep / 2).min(chars - keep);
        let mut cut: String = b.context.chars().skip(from).take(keep).collect();
        // Whole words only.
        if from > 0 {
            if let Some(i) = cut.find(char::is_whitespace) {
                cut = cut[i..].trim_start().to_owned();
            }
        }
        if from + keep < chars {
            if let Some(i) = cut.rfind(char::is_whitespace) {
                cut.truncate(i);
            }
        }
        b.context = cut;
    }
    ((b.mentions.len(), b.context.len()) != before).then_some(b)
}

/// The generation engine. Independent of any job runtime: give it a job id,
/// the job's parameters, a progress sink and a cancellation token.
///
/// # Behaviour
///
/// 1. **fetching** (0–10 %): loads the source resource and the reference
///    annotation, and finds the referenced text (position selector checked
///    against the quote, else the quote searched).
/// 2. **generating** (20–70 %): writes a markdown document with the
///    inference client: the title (`title`, else the referenced text), the
///    passage around the reference, the source's sentences mentioning the
///    subject, `prompt`, `language` (else the source's) and `entityTypes`
///    (else the reference's tags). The offline client answers with an
///    extractive template; a model's answer gets a `# title` heading and a
///    source citation if it lacks them.
/// 3. **creating** (75–85 %): stores it as a `text/markdown` resource whose
///    id is derived from the job id ([`Generator::resource_id_for`]).
/// 4. **linking** (90–100 %): adds a `SpecificResource` body with purpose
///    `linking` to the reference annotation (once).
///
/// Re-running a job never creates a second resource: an existing resource
/// with the derived id is reused (no second model call) and linking is
/// idempotent. Cancellation is checked between stages and abandons an
/// in-flight model call.
#[derive(Clone, Debug)]
pub struct Generator {
    resources: Arc<dyn ResourceStore>,
    annotations: Arc<dyn AnnotationStore>,
    client: Arc<dyn InferenceClient>,
    options: GenerationOptions,
}

impl Generator {
    /// An engine over these stores, writing with `client`.
    pub fn new(
        resources: Arc<dyn ResourceStore>,
        annotations: Arc<dyn AnnotationStore>,
        client: Arc<dyn InferenceClient>,
    ) -> Self {
        Generator {
            resources,
            annotations,
            client,
            options: GenerationOptions::default(),
        }
    }

    /// An engine writing with the offline template ([`OfflineInference`]).
    pub fn offline(
        resources: Arc<dyn ResourceStore>,
        annotations: Arc<dyn AnnotationStore>,
    ) -> Self {
        Self::new(resources, annotations, Arc::new(OfflineInference::new()))
    }

    /// Replaces the options.
    pub fn with_options(mut self, options: GenerationOptions) -> Self {
        self.options = options;
        self
    }

    /// The id of the resource a job generates: `gen-` and the job id
    /// without its `job-` prefix (`job-0193…` → `gen-0193…`); ids that do
    /// not fit get `gen-` and a name-based UUID of the job id.
    pub fn resource_id_for(job_id: &JobId) -> ResourceId {
        let id = job_id.as_str();
        let suffix = id.strip_prefix("job-").unwrap_or(id);
        ResourceId::parse(&format!("gen-{suffix}")).unwrap_or_else(|_| {
            ResourceId::derive("gen", &[id])
                .unwrap_or_else(|_| unreachable!("'gen' is a valid prefix"))
        })
    }

    /// Runs generation for one job.
    pub async fn run(
        &self,
        job_id: &JobId,
        params: &GenerationParams,
        progress: &mut dyn ProgressSink<GenerationProgress>,
        cancel: &CancellationToken,
    ) -> Result<GenerationResult> {
        let source_id = ResourceId::parse(params.source_resource_id.trim())?;
        let reference_id = AnnotationId::parse(params.reference_id.trim())?;
        let cancelled = || Error::Cancelled {
            reference_id: reference_id.to_string(),
        };
        let check = |cancel: &CancellationToken| {
            if cancel.is_cancelled() {
                Err(cancelled())
            } else {
                Ok(())
            }
        };
        check(cancel)?;

        // Fetching.
        report(
            progress,
            GenerationStage::Fetching,
            0.0,
            "loading the source and the reference",
        )
        .await;
        let source = self.resources.get(&source_id).await?;
        let reference = self.annotations.get(&source_id, &reference_id).await?;
        let index = TextIndex::new(&source.text);
        let span = index.resolve(&reference.target.selector).ok_or_else(|| {
            Error::UnresolvableReference {
                reference_id: reference_id.to_string(),
                resource_id: source_id.to_string(),
            }
        })?;
        let subject = one_line(&source.text[span.clone()]);
        let title = params
            .title
            .as_deref()
            .map(one_line)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| subject.clone());
        let title: String = title.chars().take(200).collect();
        let target_id = Self::resource_id_for(job_id);
        let mut truncated = false;
        report(
            progress,
            GenerationStage::Fetching,
            10.0,
            "source and reference loaded",
        )
        .await;

        let resource = match self.resources.get(&target_id).await {
            Ok(existing) => {
                tracing::info!(resource = %target_id, "reusing the resource of an earlier attempt");
                existing
            }
            Err(semiont_jobs_content::Error::NotFound { .. }) => {
                // Generating.
                check(cancel)?;
                report(
                    progress,
                    GenerationStage::Generating,
                    20.0,
                    &format!("writing with {}", self.client.describe()),
                )
                .await;
                let brief = self.brief(params, &source, &reference, span, &subject, &title);
                let (text, cut_off) = self
                    .generate_fitted(brief.clone(), cancel, &cancelled)
                    .await?;
                truncated = cut_off;
                report(
                    progress,
                    GenerationStage::Generating,
                    70.0,
                    "document written",
                )
                .await;

                // Creating.
                check(cancel)?;
                report(
                    progress,
                    GenerationStage::Creating,
                    75.0,
                    "storing the document",
                )
                .await;
                let mut resource =
                    Resource::new(target_id.clone(), title.clone(), MediaType::Markdown, text)
                        .with_language(brief.language.clone());
                resource.extra.insert(
                    "generatedFrom".into(),
                    json!({
                        "resourceId": source_id.as_str(),
                        "annotationId": reference_id.as_str(),
                        "jobId": job_id.as_str(),
                    }),
                );
                match self.resources.create(&resource, PutMode::CreateNew).await {
                    Ok(_) => resource,
                    // A concurrent attempt of the same job got there first.
                    Err(semiont_jobs_content::Error::AlreadyExists { .. }) => {
                        self.resources.get(&target_id).await?
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        report(progress, GenerationStage::Creating, 85.0, "document stored").await;

        // Linking.
        check(cancel)?;
        report(
            progress,
            GenerationStage::Linking,
            90.0,
            "linking the reference",
        )
        .await;
        let added = self
            .annotations
            .add_body(&source_id, &reference_id, &Body::link(&target_id))
            .await?;
        if !added {
            tracing::debug!(reference = %reference_id, "reference was already linked");
        }
        report(
            progress,
            GenerationStage::Linking,
            100.0,
            "reference linked",
        )
        .await;
        Ok(GenerationResult {
            resource_id: target_id.to_string(),
            resource_name: resource.name,
            truncated,
        })
    }

    fn brief(
        &self,
        params: &GenerationParams,
        source: &Resource,
        reference: &Annotation,
        span: Range<usize>,
        subject: &str,
        title: &str,
    ) -> DocumentBrief {
        let text = &source.text;
        let all = sentences(text);
        let lo = span.start.saturating_sub(byte_len_of_chars(
            text,
            span.start,
            self.options.context_chars,
            true,
        ));
        let hi = span.end + byte_len_of_chars(text, span.end, self.options.context_chars, false);
        let context_sentences: Vec<&Range<usize>> =
            all.iter().filter(|s| s.start < hi && lo < s.end).collect();
        let context = context_sentences
            .iter()
            .map(|r| &text[(*r).clone()])
            .collect::<Vec<_>>()
            .join("\n");
        let entity_types = params
            .entity_types
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| reference.tags().map(str::to_owned).collect());
        // Sentences naming the subject; for people also by surname alone.
        let mut needles = vec![subject.to_owned()];
        let words: Vec<&str> = subject.split_whitespace().collect();
        if words.len() >= 2
            && entity_types
                .iter()
                .any(|t| t.eq_ignore_ascii_case("person"))
        {
            if let Some(last) = words.last() {
                needles.push((*last).to_owned());
            }
        }
        let mentions = all
            .iter()
            .map(|r| one_line(&text[r.clone()]))
            .filter(|s| needles.iter().any(|n| s.contains(n.as_str())))
            .take(self.options.max_mentions)
            .collect();
        let language = params
            .language
            .clone()
            .or_else(|| source.language.clone())
            .unwrap_or_else(|| self.options.default_language.clone());
        DocumentBrief {
            title: title.to_owned(),
            subject: subject.to_owned(),
            entity_types,
            language,
            instructions: params.prompt.clone().filter(|p| !p.trim().is_empty()),
            source_id: Some(source.id.clone()),
            source_name: source.name.clone(),
            context,
            mentions,
        }
    }

    /// Writes the document with a brief trimmed to fit the model's
    /// context (when known), trimming further and asking again (at most
    /// three times) when the server still refuses it as too long. Returns
    /// the document and whether the answer was cut off at the token limit.
    async fn generate_fitted(
        &self,
        mut brief: DocumentBrief,
        cancel: &CancellationToken,
        cancelled: &(dyn Fn() -> Error + Sync),
    ) -> Result<(String, bool)> {
        let mut max_tokens = self.options.max_tokens;
        if let Some(context) = self.options.context_tokens {
            let room = |b: &DocumentBrief| (context as usize).saturating_sub(prompt_tokens(b));
            while room(&brief) < max_tokens.min(context / 2) as usize {
                match shrink(&brief) {
                    Some(smaller) => brief = smaller,
                    None => break,
                }
            }
            max_tokens = max_tokens.min(room(&brief) as u32).max(MIN_ANSWER_TOKENS);
        }
        let mut attempts = 0;
        loop {
            match self.generate(&brief, max_tokens, cancel, cancelled).await {
                Err(Error::Content(e @ semiont_jobs_content::Error::ContextExceeded { .. })) => {
                    attempts += 1;
                    match shrink(&brief).filter(|_| attempts < 3) {
                        Some(smaller) => {
                            tracing::info!(error = %e, "the prompt does not fit the model's context; trimming it");
                            brief = smaller;
                        }
                        None => return Err(e.into()),
                    }
                }
                other => return other,
            }
        }
    }

    async fn generate(
        &self,
        brief: &DocumentBrief,
        max_tokens: u32,
        cancel: &CancellationToken,
        cancelled: &(dyn Fn() -> Error + Sync),
    ) -> Result<(String, bool)> {
        let request = CompletionRequest::new(prompt(brief))
            .system(SYSTEM)
            .temperature(self.options.temperature)
            .max_tokens(max_tokens)
            .task(Task::GenerateDocument(brief.clone()));
        let completion = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(cancelled()),
            c = self.client.complete(&request) => c?,
        };
        if completion.truncated {
            tracing::warn!(model = %completion.model, "generated document hit the token limit");
        }
        let mut doc = strip_fence(&completion.text).trim().to_owned();
        if doc.is_empty() {
            return Err(semiont_jobs_content::Error::MalformedOutput {
                source_name: self.client.describe(),
                reason: "the generated document is empty".into(),
            }
            .into());
        }
        let has_title = doc.lines().take(3).any(|l| l.starts_with("# "));
        if !has_title {
            doc = format!("# {}\n\n{doc}", brief.title);
        }
        if let Some(id) = &brief.source_id {
            if !cites(&doc, id.as_str()) {
                doc.push_str(&format!(
                    "\n\n---\n\nSource: [{}]({id}), reference “{}”.",
                    one_line(&brief.source_name),
                    brief.subject
                ));
            }
        }
        doc.push('\n');
        Ok((doc, completion.truncated))
    }
}

/// Whether markdown `doc` links to `target` exactly: an inline link or
/// image `[text](target)` or `[text](<target> "title")`, an autolink
/// `<target>`, or a reference definition `[label]: target`. A mere mention
/// of the id in the text, or inside another word or link, does not count.
fn cites(doc: &str, target: &str) -> bool {
    let is_target = |dest: &str| {
        let dest = dest.trim();
        // Drop a title: `dest "title"` / `dest 'title'` / `dest (title)`.
        let dest = if let Some(rest) = dest.strip_prefix('<') {
            rest.split_once('>').map_or(rest, |(d, _)| d)
        } else {
            dest.split_whitespace().next().unwrap_or("")
        };
        dest == target
    };
    // Inline links: `](` ... `)` (no nesting in destinations).
    let mut rest = doc;
    while let Some(i) = rest.find("](") {
        let after = &rest[i + 2..];
        let end = if after.starts_with('<') {
            after
                .find('>')
                .and_then(|g| after[g..].find(')').map(|p| g + p))
        } else {
            after.find(')')
        };
        if let Some(end) = end {
            if is_target(&after[..end]) {
                return true;
            }
        }
        rest = after;
    }
    // Autolinks and reference definitions.
    doc.match_indices('<').any(|(i, _)| {
        doc[i + 1..]
            .split_once('>')
            .is_some_and(|(d, _)| d == target)
    }) || doc.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with('[')
            && line
                .split_once("]:")
                .is_some_and(|(_, dest)| is_target(dest))
    })
}

/// The system message of generation prompts.
const SYSTEM: &str = "You write clear, factual, encyclopedia-style documents in markdown. \
Use only the information in the source excerpts you are given; never invent facts.";

/// The prompt sent to a model.
pub(crate) fn prompt(brief: &DocumentBrief) -> String {
    let mut p = format!(
        "Write a short markdown document titled \"{}\" about \"{}\"",
        brief.title, brief.subject
    );
    if !brief.entity_types.is_empty() {
        p.push_str(&format!(
            " (entity type: {})",
            brief.entity_types.join(", ")
        ));
    }
    p.push_str(&format!(
        ".\nWrite it in the language with the BCP 47 tag \"{}\". Start with the heading \"# {}\". \
         Summarize what the source says about the subject; do not add facts.\n",
        brief.language, brief.title
    ));
    if let Some(i) = &brief.instructions {
        p.push_str(&format!("Additional instructions: {i}\n"));
    }
    p.push_str(&format!(
        "\nSource document: \"{}\"\nPassage around the reference:\n<<<\n{}\n>>>\n",
        brief.source_name, brief.context
    ));
    if !brief.mentions.is_empty() {
        p.push_str(&format!(
            "\nSentences of the source that mention \"{}\":\n",
            brief.subject
        ));
        for m in &brief.mentions {
            p.push_str(&format!("- {m}\n"));
        }
    }
    p
}

async fn report(
    progress: &mut dyn ProgressSink<GenerationProgress>,
    stage: GenerationStage,
    percentage: f64,
    message: &str,
) {
    progress
        .report(GenerationProgress {
            stage,
            percentage,
            message: Some(message.to_owned()),
        })
        .await;
}

/// Byte length of up to `chars` characters before (or after) byte `at`.
fn byte_len_of_chars(text: &str, at: usize, chars: usize, before: bool) -> usize {
    if before {
        text[..at]
            .chars()
            .rev()
            .take(chars)
            .map(char::len_utf8)
            .sum()
    } else {
        text[at..].chars().take(chars).map(char::len_utf8).sum()
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Removes a markdown code fence around the whole answer.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let body = rest.split_once('\n').map_or("", |(_, b)| b);
        return body.trim_end().strip_suffix("```").unwrap_or(body);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn citations_are_exact_links() {
        for (doc, cited) in [
            ("See [the source](doc).", true),
            ("See [the source](<doc> \"Title\").", true),
            ("See [the source](doc 'Title').", true),
            ("![figure](doc)", true),
            ("Read <doc> first.", true),
            ("[src]: doc\n\nText [src].", true),
            // The id inside a word, a longer link or plain text: no citation.
            ("This document is about Zoë.", false),
            ("See [the source](doc-2).", false),
            ("See [the source](mydoc).", false),
            ("The doc says so.", false),
            ("[doc](elsewhere)", false),
        ] {
            assert_eq!(cites(doc, "doc"), cited, "{doc}");
        }
    }

    #[test]
    fn briefs_shrink_around_the_subject_until_nothing_is_left() {
        let mut brief = DocumentBrief {
            title: "Zoë".into(),
            subject: "Zoë Müller".into(),
            context: format!(
                "{} Zoë Müller leads Helix. {}",
                "Before. ".repeat(30),
                "After. ".repeat(30)
            ),
            mentions: (0..8).map(|i| format!("Mention {i}.")).collect(),
            ..DocumentBrief::default()
        };
        let mut steps = 0;
        while let Some(smaller) = shrink(&brief) {
            assert!(smaller.context.len() <= brief.context.len());
            assert!(smaller.mentions.len() <= brief.mentions.len());
            if smaller.context.chars().count() > 40 {
                assert!(
                    smaller.context.contains("Zoë Müller"),
                    "{}",
                    smaller.context
                );
            }
            brief = smaller;
            steps += 1;
            assert!(steps < 20);
        }
        assert!(brief.mentions.is_empty());
        assert!(brief.context.chars().count() <= 80);
    }

    #[test]
    fn fences_are_stripped() {
        assert_eq!(
            strip_fence("```markdown\n# A\n\ntext\n```"),
            "# A\n\ntext\n"
        );
        assert_eq!(strip_fence("# A"), "# A");
    }

    #[test]
    fn generated_ids_follow_job_ids() {
        let job = JobId::parse("job-0193c1f0-8a2b-7cde-8f01-23456789abcd").unwrap();
        assert_eq!(
            Generator::resource_id_for(&job).as_str(),
            "gen-0193c1f0-8a2b-7cde-8f01-23456789abcd"
        );
        let long = JobId::parse(&"x".repeat(128)).unwrap();
        let id = Generator::resource_id_for(&long);
        assert!(id.as_str().starts_with("gen-") && id.as_str().len() <= 128);
        assert_eq!(id, Generator::resource_id_for(&long));
    }

    #[test]
    fn prompt_carries_the_brief() {
        let brief = DocumentBrief {
            title: "T".into(),
            subject: "S".into(),
            entity_types: vec!["Person".into()],
            language: "pt".into(),
            instructions: Some("Be brief.".into()),
            source_id: None,
            source_name: "N".into(),
            context: "C.".into(),
            mentions: vec!["M.".into()],
        };
        let p = prompt(&brief);
        for part in [
            "\"T\"",
            "\"S\"",
            "Person",
            "\"pt\"",
            "Be brief.",
            "\"N\"",
            "C.",
            "- M.",
        ] {
            assert!(p.contains(part), "{part} in {p}");
        }
    }
}
