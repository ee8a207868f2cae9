//! A client of an OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI,
//! vLLM, llama.cpp server, LM Studio, Ollama's compatibility layer, ...).

use std::fmt;

use async_trait::async_trait;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use serde_json::{json, Value};

use super::http::{endpoint_url, wire_temperature, HttpOptions, JsonEndpoint};
use super::{Completion, CompletionRequest, InferenceClient, ResponseFormat};
use crate::{Error, Result};

/// The environment variable the API key is read from.
pub const OPENAI_API_KEY_ENV: &str = "OPENAI_API_KEY";

/// A secret API key. Its `Debug` output is redacted; it has no `Display`
/// and no serialization, so it cannot end up in logs or files by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// Reads `OPENAI_API_KEY`; `None` when unset or empty.
    pub fn from_env() -> Option<Self> {
        std::env::var(OPENAI_API_KEY_ENV)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(|k| ApiKey(k.trim().to_owned()))
    }

    fn header(&self) -> Result<HeaderValue> {
        let mut v = HeaderValue::from_str(&format!("Bearer {}", self.0)).map_err(|_| {
            Error::Config("api key contains characters not allowed in a header".into())
        })?;
        v.set_sensitive(true);
        Ok(v)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Configuration of an [`OpenAiClient`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// The API base including the version, e.g. `https://api.openai.com/v1`
    /// or `http://127.0.0.1:8000/v1`; `chat/completions` is appended.
    pub base_url: String,
    /// The model name, e.g. `gpt-4o-mini`.
    pub model: String,
    /// The bearer key (servers on localhost often need none).
    pub api_key: Option<ApiKey>,
    /// Whether JSON requests send `response_format: {"type": "json_object"}`
    /// (default `true`; turn off for servers that reject it).
    pub json_mode: bool,
    /// Timeouts.
    pub http: HttpOptions,
}

impl OpenAiConfig {
    /// OpenAI's API base.
    pub const DEFAULT_BASE_URL: &'static str = "https://api.openai.com/v1";

    /// A configuration for `model` at OpenAI, with the key from
    /// `OPENAI_API_KEY` if set.
    pub fn new(model: impl Into<String>) -> Self {
        OpenAiConfig {
            base_url: Self::DEFAULT_BASE_URL.to_owned(),
            model: model.into(),
            api_key: ApiKey::from_env(),
            json_mode: true,
            http: HttpOptions::default(),
        }
    }

    /// Sets the API base.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets (or clears) the key.
    pub fn api_key(mut self, key: Option<ApiKey>) -> Self {
        self.api_key = key;
        self
    }

    /// Sets the timeouts.
    pub fn http(mut self, http: HttpOptions) -> Self {
        self.http = http;
        self
    }
}

/// An [`InferenceClient`] for OpenAI-compatible chat completions.
#[derive(Clone, Debug)]
pub struct OpenAiClient {
    model: String,
    json_mode: bool,
    endpoint: JsonEndpoint,
}

impl OpenAiClient {
    /// Builds a client (no request is made).
    pub fn new(config: OpenAiConfig) -> Result<Self> {
        if config.model.trim().is_empty() {
            return Err(Error::Config("openai model name is empty".into()));
        }
        let url = endpoint_url(&config.base_url, "chat/completions")?;
        let mut headers = HeaderMap::new();
        if let Some(key) = &config.api_key {
            headers.insert(AUTHORIZATION, key.header()?);
        }
        Ok(OpenAiClient {
            endpoint: JsonEndpoint::new(url, &config.model, config.http, headers)?,
            model: config.model,
            json_mode: config.json_mode,
        })
    }

    fn body(&self, request: &CompletionRequest) -> Value {
        let mut messages = Vec::new();
        if let Some(system) = &request.system {
            messages.push(json!({"role": "system", "content": system}));
        }
        messages.push(json!({"role": "user", "content": request.prompt}));
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "temperature": wire_temperature(request.temperature),
            "max_tokens": request.max_tokens,
            "stream": false,
        });
        if request.format == ResponseFormat::Json && self.json_mode {
            body["response_format"] = json!({"type": "json_object"});
        }
        body
    }
}

#[async_trait]
impl InferenceClient for OpenAiClient {
    fn describe(&self) -> String {
        format!(
            "openai-compatible {} at {}",
            self.model,
            self.endpoint.display()
        )
    }

    async fn complete(&self, request: &CompletionRequest) -> Result<Completion> {
        let answer = self.endpoint.post(&self.body(request)).await?;
        let choice = answer.get("choices").and_then(|c| c.get(0));
        let text = choice
            .and_then(|c| c.get("message"))
            .and_then(|m| m.get("content"))
            .and_then(Value::as_str);
        let Some(text) = text else {
            return Err(Error::MalformedOutput {
                source_name: self.endpoint.request().to_owned(),
                reason: "response has no string field choices[0].message.content".into(),
            });
        };
        Ok(Completion {
            text: text.to_owned(),
            model: answer
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&self.model)
                .to_owned(),
            truncated: choice
                .and_then(|c| c.get("finish_reason"))
                .and_then(Value::as_str)
                == Some("length"),
        })
    }
}
