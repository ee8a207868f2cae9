//! A client of an Ollama server's `/api/chat` or `/api/generate` endpoint
//! (non-streaming).

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

use super::http::{endpoint_url, wire_temperature, HttpOptions, JsonEndpoint};
use super::{Completion, CompletionRequest, InferenceClient, ResponseFormat};
use crate::{Error, Result};

/// Which Ollama endpoint to call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OllamaApi {
    /// `POST /api/chat` with system and user messages.
    #[default]
    Chat,
    /// `POST /api/generate` with `system` and `prompt`.
    Generate,
}

/// Configuration of an [`OllamaClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OllamaConfig {
    /// The server, e.g. `http://127.0.0.1:11434` (the scheme may be left
    /// out, as in Ollama's `OLLAMA_HOST`).
    pub base_url: String,
    /// The model name, e.g. `llama3.2`.
    pub model: String,
    /// Which endpoint to call.
    pub api: OllamaApi,
    /// The context window to ask for (`options.num_ctx`, in tokens); `None`
    /// leaves the server's default (2048 or 4096 tokens, depending on the
    /// Ollama version).
    pub num_ctx: Option<u32>,
    /// Timeouts.
    pub http: HttpOptions,
}

impl OllamaConfig {
    /// Ollama's default address.
    pub const DEFAULT_BASE_URL: &'static str = "http://127.0.0.1:11434";

    /// A configuration for `model` at the default address, using `/api/chat`.
    pub fn new(model: impl Into<String>) -> Self {
        OllamaConfig {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            model: model.into(),
            api: OllamaApi::Chat,
            num_ctx: None,
            http: HttpOptions::default(),
        }
    }

    /// Sets the server address.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets the endpoint.
    pub fn api(mut self, api: OllamaApi) -> Self {
        self.api = api;
        self
    }

    /// Sets the context window sent as `options.num_ctx`.
    pub fn num_ctx(mut self, tokens: Option<u32>) -> Self {
        self.num_ctx = tokens;
        self
    }

    /// Sets the timeouts.
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }
}

/// An [`InferenceClient`] for Ollama.
///
/// Sends `stream: false`, `options.temperature`, `options.num_predict`
/// (the token limit), `options.num_ctx` (the context window, when
/// configured) and, for JSON requests, `format: "json"`. An answer whose
/// `done_reason` is `length` is reported as truncated.
#[derive(Clone, Debug)]
pub struct OllamaClient {
    model: String,
    api: OllamaApi,
    num_ctx: Option<u32>,
    endpoint: JsonEndpoint,
}

impl OllamaClient {
    /// Builds a client (no request is made).
    pub fn new(config: OllamaConfig) -> Result<Self> {
        if config.model.trim().is_empty() {
            return Err(Error::Config("ollama model name is empty".into()));
        }
        let path = match config.api {
            OllamaApi::Chat => "api/chat",
            OllamaApi::Generate => "api/generate",
        };
        let url = endpoint_url(&config.base_url, path)?;
        Ok(OllamaClient {
            endpoint: JsonEndpoint::new(url, &config.model, config.http, HeaderMap::new())?,
            model: config.model,
            api: config.api,
            num_ctx: config.num_ctx,
        })
    }

    fn body(&self, request: &CompletionRequest) -> Value {
        let mut options = json!({
            "temperature": wire_temperature(request.temperature),
            "num_predict": request.max_tokens,
        });
        if let Some(n) = self.num_ctx {
            options["num_ctx"] = json!(n);
        }
        let mut body = match self.api {
            OllamaApi::Chat => {
                let mut messages = Vec::new();
                if let Some(system) = &request.system {
                    messages.push(json!({"role": "system", "content": system}));
                }
                messages.push(json!({"role": "user", "content": request.prompt}));
                json!({
                    "model": self.model,
                    "messages": messages,
                    "stream": false,
                    "options": options,
                })
            }
            OllamaApi::Generate => {
                let mut body = json!({
                    "model": self.model,
                    "prompt": request.prompt,
                    "stream": false,
                    "options": options,
                });
                if let Some(system) = &request.system {
                    body["system"] = json!(system);
                }
                body
            }
        };
        if request.format == ResponseFormat::Json {
            body["format"] = json!("json");
        }
        body
    }
}

#[async_trait]
impl InferenceClient for OllamaClient {
    fn describe(&self) -> String {
        format!("ollama {} at {}", self.model, self.endpoint.display())
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion> {
        let answer = self.endpoint.post(&self.body(request)).await?;
        let text = match self.api {
            OllamaApi::Chat => answer
                .get("message")
                .and_then(|m| m.get("content"))
                .and_then(Value::as_str),
            OllamaApi::Generate => answer.get("response").and_then(Value::as_str),
        };
        let Some(text) = text else {
            let field = match self.api {
                OllamaApi::Chat => "message.content",
                OllamaApi::Generate => "response",
            };
            return Err(Error::MalformedOutput {
                source_name: self.endpoint.request().to_owned(),
                reason: format!("response has no string field {field}"),
            });
        };
        Ok(Completion {
            text: text.to_owned(),
            model: answer
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_owned(),
            truncated: answer.get("done_reason").and_then(Value::as_str) == Some("length"),
        })
    }
}
