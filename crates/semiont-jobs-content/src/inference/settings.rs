//! The model's limits and sampling settings shared by the engines that call
//! it: context window, answer length, chunk size, temperature and how many
//! calls one job may have in flight.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// How big the model's context is and how the engines should use it.
///
/// The defaults fit a small local model served with a 2,048-token context
/// (llama.cpp's and older Ollama's default). Fields left `None` are derived
/// by each engine from `context_tokens`; see `ModelOptions::from_settings`
/// (detection) and `GenerationOptions::from_settings` (generation).
///
/// [`ModelSettings::from_lookup`] reads these variables (the `work` command's
/// `--model-*` flags take precedence over them):
///
/// | variable | flag | meaning | default |
/// | --- | --- | --- | --- |
/// | `SEMIONT_INFERENCE_CONTEXT` | `--model-context` | the model's context window, in tokens (sent to Ollama as `num_ctx`) | 2048 |
/// | `SEMIONT_INFERENCE_MAX_TOKENS` | `--model-max-tokens` | most tokens per answer | detection: a quarter of the context (at most 1024); generation: half of it (at most 1500) |
/// | `SEMIONT_INFERENCE_CHUNK_CHARS` | `--model-chunk-chars` | most characters of a document per detection request | what fits beside the prompt and the answer, at 3 characters per token |
/// | `SEMIONT_INFERENCE_TEMPERATURE` | `--model-temperature` | sampling temperature | detection 0, generation 0.4 |
/// | `SEMIONT_INFERENCE_CONCURRENCY` | `--model-concurrency` | model calls one job may have in flight | 1 |
///
/// The struct is plain data (serde, camelCase), so a configuration file can
/// fill it too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct ModelSettings {
    /// The model's context window, in tokens: the prompt and the answer
    /// together must fit in it.
    pub context_tokens: u32,
    /// Most tokens per answer; `None`: derived by each engine.
    pub max_tokens: Option<u32>,
    /// Most characters of a document per detection request; `None`:
    /// derived from the context and the answer length.
    pub chunk_chars: Option<usize>,
    /// Sampling temperature; `None`: each engine's default.
    pub temperature: Option<f32>,
    /// Model calls one job may have in flight at once (1 suits a server
    /// that answers one request at a time, as llama.cpp and Ollama do by
    /// default).
    pub concurrency: usize,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            context_tokens: Self::DEFAULT_CONTEXT_TOKENS,
            max_tokens: None,
            chunk_chars: None,
            temperature: None,
            concurrency: 1,
        }
    }
}

impl ModelSettings {
    /// The context assumed when none is configured.
    pub const DEFAULT_CONTEXT_TOKENS: u32 = 2048;
    /// Characters per token assumed when sizing text for a context (a
    /// cautious figure: English runs near 4, accented and non-Latin text
    /// lower).
    pub const CHARS_PER_TOKEN: usize = 3;
    /// Smallest accepted context.
    pub const MIN_CONTEXT_TOKENS: u32 = 256;
    /// Smallest accepted chunk.
    pub const MIN_CHUNK_CHARS: usize = 100;

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads the settings through `get` (variable name → value); unset
    /// variables keep their defaults.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| {
            get(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        fn number<T: std::str::FromStr>(k: &str, v: Option<String>) -> Result<Option<T>> {
            v.map(|v| {
                v.parse::<T>()
                    .map_err(|_| Error::Config(format!("{k}={v:?} is not a valid number")))
            })
            .transpose()
        }
        let mut s = ModelSettings::default();
        if let Some(n) = number(
            "SEMIONT_INFERENCE_CONTEXT",
            get("SEMIONT_INFERENCE_CONTEXT"),
        )? {
            s.context_tokens = n;
        }
        s.max_tokens = number(
            "SEMIONT_INFERENCE_MAX_TOKENS",
            get("SEMIONT_INFERENCE_MAX_TOKENS"),
        )?;
        s.chunk_chars = number(
            "SEMIONT_INFERENCE_CHUNK_CHARS",
            get("SEMIONT_INFERENCE_CHUNK_CHARS"),
        )?;
        s.temperature = number(
            "SEMIONT_INFERENCE_TEMPERATURE",
            get("SEMIONT_INFERENCE_TEMPERATURE"),
        )?;
        if let Some(n) = number(
            "SEMIONT_INFERENCE_CONCURRENCY",
            get("SEMIONT_INFERENCE_CONCURRENCY"),
        )? {
            s.concurrency = n;
        }
        s.validate()?;
        Ok(s)
    }

    /// Checks that the values make sense together: a context of at least
    /// 256 tokens, an answer limit smaller than the context, chunks of at
    /// least 100 characters, a temperature in 0..=2 and a concurrency in
    /// 1..=64.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Config(m));
        if !(Self::MIN_CONTEXT_TOKENS..=100_000_000).contains(&self.context_tokens) {
            return bad(format!(
                "model context of {} tokens is outside {}..=100000000",
                self.context_tokens,
                Self::MIN_CONTEXT_TOKENS
            ));
        }
        if let Some(m) = self.max_tokens {
            if m == 0 || m >= self.context_tokens {
                return bad(format!(
                    "model max tokens {m} must be at least 1 and less than the context of {} tokens",
                    self.context_tokens
                ));
            }
        }
        if let Some(c) = self.chunk_chars {
            if !(Self::MIN_CHUNK_CHARS..=10_000_000).contains(&c) {
                return bad(format!(
                    "model chunk of {c} characters is outside {}..=10000000",
                    Self::MIN_CHUNK_CHARS
                ));
            }
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return bad(format!("model temperature {t} is outside 0..=2"));
            }
        }
        if !(1..=64).contains(&self.concurrency) {
            return bad(format!(
                "model concurrency {} is outside 1..=64",
                self.concurrency
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<ModelSettings> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        ModelSettings::from_lookup(|k| map.get(k).map(|v| (*v).to_owned()))
    }

    #[test]
    fn defaults_fit_a_small_local_model() {
        let s = from(&[]).unwrap();
        assert_eq!(s, ModelSettings::default());
        assert_eq!(s.context_tokens, 2048);
        assert_eq!(s.concurrency, 1);
    }

    #[test]
    fn reads_and_checks_values() {
        let s = from(&[
            ("SEMIONT_INFERENCE_CONTEXT", "8192"),
            ("SEMIONT_INFERENCE_MAX_TOKENS", "700"),
            ("SEMIONT_INFERENCE_CHUNK_CHARS", " 5000 "),
            ("SEMIONT_INFERENCE_TEMPERATURE", "0.1"),
            ("SEMIONT_INFERENCE_CONCURRENCY", "2"),
        ])
        .unwrap();
        assert_eq!(
            (
                s.context_tokens,
                s.max_tokens,
                s.chunk_chars,
                s.temperature,
                s.concurrency
            ),
            (8192, Some(700), Some(5000), Some(0.1), 2)
        );
        for bad in [
            ("SEMIONT_INFERENCE_CONTEXT", "lots"),
            ("SEMIONT_INFERENCE_CONTEXT", "100"),
            ("SEMIONT_INFERENCE_MAX_TOKENS", "2048"),
            ("SEMIONT_INFERENCE_MAX_TOKENS", "0"),
            ("SEMIONT_INFERENCE_CHUNK_CHARS", "10"),
            ("SEMIONT_INFERENCE_TEMPERATURE", "3"),
            ("SEMIONT_INFERENCE_CONCURRENCY", "0"),
        ] {
            let e = from(&[bad]).unwrap_err();
            assert_eq!(e.code(), "CONFIG_ERROR", "{bad:?}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn a_file_can_fill_it() {
        let s: ModelSettings =
            serde_json::from_str(r#"{"contextTokens": 4096, "concurrency": 2}"#).unwrap();
        assert_eq!(
            (s.context_tokens, s.concurrency, s.max_tokens),
            (4096, 2, None)
        );
        assert!(serde_json::from_str::<ModelSettings>(r#"{"contxt": 1}"#).is_err());
    }
}
