//! Inference: the `InferenceClient` trait (complete a prompt), its request
//! and response types, and three implementations: offline (deterministic,
//! no network), Ollama, and OpenAI-compatible servers.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::{ResourceId, Result};

mod config;
mod http;
mod offline;
mod ollama;
mod openai;
mod settings;

pub use config::InferenceConfig;
pub use http::HttpOptions;
pub use offline::{render_document, OfflineInference};
pub use ollama::{OllamaApi, OllamaClient, OllamaConfig};
pub use openai::{ApiKey, OpenAiClient, OpenAiConfig};
pub use settings::ModelSettings;

/// What shape of answer is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResponseFormat {
    /// Free text (markdown).
    #[default]
    Text,
    /// A JSON object; servers that support it are asked to constrain output
    /// to JSON. Callers must still validate what comes back.
    Json,
}

/// A prompt to complete.
#[derive(Clone, Debug, PartialEq)]
pub struct CompletionRequest {
    /// Instructions for the model's role (a system message), if any.
    pub system: Option<String>,
    /// The prompt (user message).
    pub prompt: String,
    /// Sampling temperature, 0 for the most deterministic answer.
    pub temperature: f32,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Text or JSON.
    pub format: ResponseFormat,
    /// The structured task behind the prompt. HTTP clients send only the
    /// prompt; [`OfflineInference`] uses the task to answer without a model.
    pub task: Option<Task>,
}

impl CompletionRequest {
    /// A text request with temperature 0.2 and at most 1024 tokens.
    pub fn new(prompt: impl Into<String>) -> Self {
        CompletionRequest {
            system: None,
            prompt: prompt.into(),
            temperature: 0.2,
            max_tokens: 1024,
            format: ResponseFormat::Text,
            task: None,
        }
    }

    /// Sets the system message.
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Sets the temperature.
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = t;
        self
    }

    /// Sets the token limit.
    pub fn max_tokens(mut self, n: u32) -> Self {
        self.max_tokens = n;
        self
    }

    /// Sets the response format.
    pub fn format(mut self, format: ResponseFormat) -> Self {
        self.format = format;
        self
    }

    /// Attaches the structured task.
    pub fn task(mut self, task: Task) -> Self {
        self.task = Some(task);
        self
    }
}

/// The structured task behind a prompt.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Task {
    /// Write a markdown document about a referenced subject.
    GenerateDocument(DocumentBrief),
}

/// Everything needed to write a document about a subject referenced in a
/// source document.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct DocumentBrief {
    /// The new document's title.
    pub title: String,
    /// The referenced text (the subject), e.g. `Zoë Müller`.
    pub subject: String,
    /// Entity types of the subject, e.g. `Person`.
    pub entity_types: Vec<String>,
    /// Language of the new document (BCP 47).
    pub language: String,
    /// The user's extra instructions.
    pub instructions: Option<String>,
    /// The source document's id.
    pub source_id: Option<ResourceId>,
    /// The source document's name.
    pub source_name: String,
    /// The passage of the source around the reference.
    pub context: String,
    /// Sentences of the source that mention the subject, in order.
    pub mentions: Vec<String>,
}

/// A completion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The generated text.
    pub text: String,
    /// The model that produced it.
    pub model: String,
    /// Whether the model stopped because it hit the token limit.
    pub truncated: bool,
}

/// Completes prompts. Object-safe; implemented for `Arc<T>` and `Box<T>`.
///
/// Errors are classified: [`Error::is_retryable`](crate::Error::is_retryable)
/// is true for network errors, timeouts, 429 and 5xx answers and false for
/// other 4xx answers and malformed responses.
#[async_trait]
pub trait InferenceClient: fmt::Debug + Send + Sync + 'static {
    /// A short description for logs, e.g. `ollama llama3.2 at
    /// http://127.0.0.1:11434/api/chat`. Never contains credentials.
    fn describe(&self) -> String;

    /// Completes one prompt.
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion>;
}

#[async_trait]
impl<T: InferenceClient + ?Sized> InferenceClient for Arc<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion> {
        (**self).complete(request).await
    }
}

#[async_trait]
impl<T: InferenceClient + ?Sized> InferenceClient for Box<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    async fn complete(&self, request: &CompletionRequest) -> Result<Completion> {
        (**self).complete(request).await
    }
}
