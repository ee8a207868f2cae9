//! Choosing an inference client from configuration values (environment
//! variables or any key-value lookup).

use std::sync::Arc;
use std::time::Duration;

use super::openai::OPENAI_API_KEY_ENV;
use super::{
    ApiKey, HttpOptions, InferenceClient, ModelSettings, OfflineInference, OllamaApi, OllamaClient,
    OllamaConfig, OpenAiClient, OpenAiConfig,
};
use crate::{Error, Result};

/// Which inference client to use, and how it is set up.
///
/// [`InferenceConfig::from_env`] reads:
///
/// | variable | meaning | default |
/// | --- | --- | --- |
/// | `SEMIONT_INFERENCE` | `offline`, `ollama` or `openai` | `offline` |
/// | `SEMIONT_INFERENCE_MODEL` | model name | `llama3.2` (Ollama), `gpt-4o-mini` (OpenAI) |
/// | `OLLAMA_HOST` | Ollama server | `http://127.0.0.1:11434` |
/// | `SEMIONT_OLLAMA_API` | `chat` or `generate` | `chat` |
/// | `OPENAI_BASE_URL` | API base including `/v1` | `https://api.openai.com/v1` |
/// | `OPENAI_API_KEY` | bearer key (required for the default base) | none |
/// | `SEMIONT_INFERENCE_CONNECT_TIMEOUT_SECS` | connect timeout | 10 |
/// | `SEMIONT_INFERENCE_READ_TIMEOUT_SECS` | read timeout | 300 |
/// | `SEMIONT_INFERENCE_CONTEXT` | the model's context in tokens, sent to Ollama as `num_ctx` | 2048 |
///
/// The other limits (answer length, chunk size, temperature, concurrency)
/// are [`ModelSettings`], read from the same lookup.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum InferenceConfig {
    /// [`OfflineInference`].
    #[default]
    Offline,
    /// An Ollama server.
    Ollama(OllamaConfig),
    /// An OpenAI-compatible server.
    OpenAi(OpenAiConfig),
}

impl InferenceConfig {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the configuration through `get` (variable name → value), so
    /// callers and tests can supply values from anywhere.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let secs = |k: &str, default: u64| -> Result<Duration> {
            match get(k) {
                None => Ok(Duration::from_secs(default)),
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| {
                        Error::Config(format!("{k}={v:?} is not a positive number of seconds"))
                    }),
            }
        };
        let http = HttpOptions {
            connect_timeout: secs("SEMIONT_INFERENCE_CONNECT_TIMEOUT_SECS", 10)?,
            read_timeout: secs("SEMIONT_INFERENCE_READ_TIMEOUT_SECS", 300)?,
            request_timeout: None,
        };
        let settings = ModelSettings::from_lookup(|k| get(k))?;
        let kind = get("SEMIONT_INFERENCE").unwrap_or_else(|| "offline".into());
        match kind.to_ascii_lowercase().as_str() {
            "offline" | "none" => Ok(InferenceConfig::Offline),
            "ollama" => {
                let api = match get("SEMIONT_OLLAMA_API").as_deref() {
                    None | Some("chat") => OllamaApi::Chat,
                    Some("generate") => OllamaApi::Generate,
                    Some(other) => {
                        return Err(Error::Config(format!(
                            "SEMIONT_OLLAMA_API={other:?} is not chat or generate"
                        )))
                    }
                };
                Ok(InferenceConfig::Ollama(OllamaConfig {
                    base_url: get("OLLAMA_HOST")
                        .unwrap_or_else(|| OllamaConfig::DEFAULT_BASE_URL.into()),
                    model: get("SEMIONT_INFERENCE_MODEL").unwrap_or_else(|| "llama3.2".into()),
                    api,
                    num_ctx: Some(settings.context_tokens),
                    http,
                }))
            }
            "openai" => {
                let base_url =
                    get("OPENAI_BASE_URL").unwrap_or_else(|| OpenAiConfig::DEFAULT_BASE_URL.into());
                let api_key = get(OPENAI_API_KEY_ENV).map(ApiKey::new);
                if api_key.is_none() && base_url == OpenAiConfig::DEFAULT_BASE_URL {
                    return Err(Error::Config(format!(
                        "{OPENAI_API_KEY_ENV} is not set (needed for {base_url})"
                    )));
                }
                Ok(InferenceConfig::OpenAi(OpenAiConfig {
                    base_url,
                    model: get("SEMIONT_INFERENCE_MODEL").unwrap_or_else(|| "gpt-4o-mini".into()),
                    api_key,
                    json_mode: true,
                    http,
                }))
            }
            other => Err(Error::Config(format!(
                "SEMIONT_INFERENCE={other:?} is not offline, ollama or openai"
            ))),
        }
    }

    /// Whether this is the offline client.
    pub fn is_offline(&self) -> bool {
        matches!(self, InferenceConfig::Offline)
    }

    /// Builds the client.
    pub fn build(&self) -> Result<Arc<dyn InferenceClient>> {
        Ok(match self {
            InferenceConfig::Offline => Arc::new(OfflineInference::new()),
            InferenceConfig::Ollama(c) => Arc::new(OllamaClient::new(c.clone())?),
            InferenceConfig::OpenAi(c) => Arc::new(OpenAiClient::new(c.clone())?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<InferenceConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        InferenceConfig::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_to_offline() {
        assert_eq!(from(&[]).unwrap(), InferenceConfig::Offline);
    }

    #[test]
    fn reads_ollama_and_openai() {
        let InferenceConfig::Ollama(c) = from(&[
            ("SEMIONT_INFERENCE", "ollama"),
            ("OLLAMA_HOST", "127.0.0.1:9999"),
            ("SEMIONT_INFERENCE_READ_TIMEOUT_SECS", "1.5"),
        ])
        .unwrap() else {
            panic!("expected ollama");
        };
        assert_eq!(c.base_url, "127.0.0.1:9999");
        assert_eq!(c.num_ctx, Some(2048));
        assert_eq!(c.http.read_timeout, Duration::from_millis(1500));

        let e = from(&[("SEMIONT_INFERENCE", "openai")]).unwrap_err();
        assert!(e.to_string().contains("OPENAI_API_KEY"), "{e}");
        let c = from(&[
            ("SEMIONT_INFERENCE", "openai"),
            ("OPENAI_API_KEY", "sk-secret-value"),
        ])
        .unwrap();
        assert!(!format!("{c:?}").contains("sk-secret-value"));
        assert!(from(&[
            ("SEMIONT_INFERENCE", "openai"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
        ])
        .is_ok());
        assert!(from(&[("SEMIONT_INFERENCE", "magic")]).is_err());
        assert!(from(&[
            ("SEMIONT_INFERENCE", "ollama"),
            ("SEMIONT_INFERENCE_READ_TIMEOUT_SECS", "-1")
        ])
        .is_err());
    }
}
