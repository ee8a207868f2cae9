//! HTTP plumbing shared by the Ollama and OpenAI-compatible clients:
//! timeouts, JSON POST, and the classification of failures into retryable
//! and permanent errors.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

use crate::{Error, Result};

/// Largest response body accepted from an inference server (16 MiB).
const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// Longest server error message kept in an error.
const MAX_MESSAGE_CHARS: usize = 200;

/// A temperature as sent on the wire: an `f32` widened to `f64` shows
/// float noise (`0.4` becomes `0.4000000059604645`), so round to 1/1000.
pub(crate) fn wire_temperature(t: f32) -> f64 {
    (f64::from(t) * 1000.0).round() / 1000.0
}

/// Timeouts of an HTTP inference client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// Longest wait to establish a connection (default 10 s).
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response, including the wait for
    /// its first byte while the model works (default 300 s).
    pub read_timeout: Duration,
    /// Longest time for a whole request, if limited (default none).
    pub request_timeout: Option<Duration>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(300),
            request_timeout: None,
        }
    }
}

/// A configured HTTP client plus the endpoint it posts to.
#[derive(Clone, Debug)]
pub(crate) struct JsonEndpoint {
    client: reqwest::Client,
    url: reqwest::Url,
    /// The URL without credentials, query or fragment, for messages.
    display: String,
    options: HttpOptions,
}

/// Parses a base URL and appends `path` (e.g. `api/chat`) to it.
pub(crate) fn endpoint_url(base: &str, path: &str) -> Result<reqwest::Url> {
    let mut base = base.trim().to_owned();
    if !base.contains("://") {
        base = format!("http://{base}");
    }
    if !base.ends_with('/') {
        base.push('/');
    }
    let url = reqwest::Url::parse(&base)
        .and_then(|b| b.join(path))
        .map_err(|e| Error::Config(format!("invalid base url {:?}: {e}", redact_url_str(&base))))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!(
            "base url {:?} must use http or https",
            redact_url_str(&base)
        )));
    }
    Ok(url)
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

fn redact_url_str(s: &str) -> String {
    match reqwest::Url::parse(s) {
        Ok(u) => display_url(&u),
        Err(_) => "<unparsable url>".to_owned(),
    }
}

fn display_url(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

impl JsonEndpoint {
    pub(crate) fn new(url: reqwest::Url, options: HttpOptions, headers: HeaderMap) -> Result<Self> {
        let mut headers = headers;
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .default_headers(headers)
            .user_agent(concat!("semiont-jobs/", env!("CARGO_PKG_VERSION")));
        if let Some(t) = options.request_timeout {
            builder = builder.timeout(t);
        }
        // A server on this machine is never reached through a proxy.
        if is_loopback(&url) {
            builder = builder.no_proxy();
        }
        let client = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot build http client: {e}")))?;
        Ok(JsonEndpoint {
            client,
            display: display_url(&url),
            url,
            options,
        })
    }

    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// POSTs `body` as JSON and returns the JSON answer of a 2xx response.
    pub(crate) async fn post(&self, body: &Value) -> Result<Value> {
        let response = self
            .client
            .post(self.url.clone())
            .json(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = self.read_body(response).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::MalformedOutput {
                source_name: self.display.clone(),
                reason: format!("response is not JSON: {e}"),
            });
        }
        Err(self.status_error(status, retry_after, &bytes))
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(e))?
        {
            if buf.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(Error::MalformedOutput {
                    source_name: self.display.clone(),
                    reason: format!("response is larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            let timeout = if e.is_connect() {
                self.options.connect_timeout
            } else {
                self.options
                    .request_timeout
                    .map_or(self.options.read_timeout, |t| {
                        t.min(self.options.read_timeout)
                    })
            };
            return Error::Timeout {
                endpoint: self.display.clone(),
                timeout,
            };
        }
        Error::Network {
            endpoint: self.display.clone(),
            source: e.without_url(),
        }
    }

    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Error {
        let endpoint = self.display.clone();
        let message = error_message(body);
        match status.as_u16() {
            408 => Error::Timeout {
                endpoint,
                timeout: self.options.read_timeout,
            },
            429 => Error::RateLimited {
                endpoint,
                retry_after,
            },
            s @ 500..=599 => Error::ServerError {
                endpoint,
                status: s,
                message,
            },
            s => Error::Rejected {
                endpoint,
                status: s,
                message,
            },
        }
    }
}

/// The server's error message: `error.message`, `error` or `message` of a
/// JSON body, else the body text; one line, shortened.
fn error_message(body: &[u8]) -> String {
    let from_json = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let e = v.get("error");
        e.and_then(|e| e.get("message"))
            .or(e)
            .or_else(|| v.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_MESSAGE_CHARS)
        .collect();
    one_line = one_line.trim().to_owned();
    if one_line.is_empty() {
        "no message".to_owned()
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_joined_and_redacted() {
        let u = endpoint_url("127.0.0.1:11434", "api/chat").unwrap();
        assert_eq!(u.as_str(), "http://127.0.0.1:11434/api/chat");
        let u = endpoint_url("https://user:secret@example.invalid/v1", "chat/completions").unwrap();
        assert_eq!(u.path(), "/v1/chat/completions");
        assert_eq!(
            display_url(&u),
            "https://example.invalid/v1/chat/completions"
        );
        assert!(endpoint_url("ftp://x", "a").is_err());
        for (base, local) in [
            ("http://127.0.0.1:1", true),
            ("http://127.1.2.3:1", true),
            ("http://[::1]:1", true),
            ("http://LOCALHOST:1", true),
            ("https://api.openai.com/v1", false),
            ("http://10.0.0.1", false),
        ] {
            assert_eq!(
                is_loopback(&endpoint_url(base, "x").unwrap()),
                local,
                "{base}"
            );
        }
    }

    #[test]
    fn error_messages_are_extracted() {
        assert_eq!(
            error_message(br#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(
            error_message(br#"{"error":"model not found"}"#),
            "model not found"
        );
        assert_eq!(error_message(b"oops\nline two"), "oops line two");
        assert_eq!(error_message(b""), "no message");
    }
}
