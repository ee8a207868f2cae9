//! HTTP plumbing shared by the Ollama and OpenAI-compatible clients:
//! timeouts, JSON POST, and the classification of failures into retryable
//! and permanent errors.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;

use crate::{Error, NetworkCause, Result};

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
    /// The request as errors name it: `POST <url> (model <name>)`.
    request: String,
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
    pub(crate) fn new(
        url: reqwest::Url,
        model: &str,
        options: HttpOptions,
        headers: HeaderMap,
    ) -> Result<Self> {
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
        let display = display_url(&url);
        let model: String = model
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        Ok(JsonEndpoint {
            client,
            request: format!("POST {display} (model {model})"),
            display,
            url,
            options,
        })
    }

    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The request as error messages name it.
    pub(crate) fn request(&self) -> &str {
        &self.request
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
            .and_then(|s| parse_retry_after(s, std::time::SystemTime::now()));
        let bytes = self.read_body(response).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| Error::MalformedOutput {
                source_name: self.request.clone(),
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
                    source_name: self.request.clone(),
                    reason: format!("response is larger than {MAX_RESPONSE_BYTES} bytes"),
                });
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    }

    fn transport_error(&self, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            let connecting = e.is_connect();
            let timeout = if connecting {
                self.options.connect_timeout
            } else {
                self.options
                    .request_timeout
                    .map_or(self.options.read_timeout, |t| {
                        t.min(self.options.read_timeout)
                    })
            };
            return Error::Timeout {
                endpoint: self.request.clone(),
                timeout,
                connecting,
            };
        }
        let e = e.without_url();
        let (cause, detail) = network_cause(&e);
        Error::Network {
            endpoint: self.request.clone(),
            cause,
            detail,
            source: e,
        }
    }

    fn status_error(
        &self,
        status: StatusCode,
        retry_after: Option<Duration>,
        body: &[u8],
    ) -> Error {
        let endpoint = self.request.clone();
        let server = ServerMessage::of(body);
        let message = server.short();
        match status.as_u16() {
            408 => Error::Timeout {
                endpoint,
                timeout: self.options.read_timeout,
                connecting: false,
            },
            429 => Error::RateLimited {
                endpoint,
                retry_after,
            },
            s if server.says_context_exceeded() => Error::ContextExceeded {
                endpoint,
                status: s,
                message,
            },
            s @ 500..=599 => Error::ServerError {
                endpoint,
                status: s,
                message,
                retry_after: retry_after
                    .unwrap_or_else(|| server_error_wait(self.options.read_timeout)),
            },
            s => Error::Rejected {
                endpoint,
                status: s,
                message,
            },
        }
    }
}

/// The wait after a 5xx answer without `Retry-After`: a tenth of the read
/// timeout, at least 5 and at most 60 seconds.
fn server_error_wait(read_timeout: Duration) -> Duration {
    (read_timeout / 10).clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date
/// (`Sun, 06 Nov 1994 08:49:37 GMT`) taken relative to `now`. Dates in the
/// past give zero; anything else gives `None`.
pub(crate) fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(u64::from(u32::MAX))));
    }
    let at = parse_http_date(value)?;
    let now = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// Seconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
/// GMT`), the HTTP date format servers send.
fn parse_http_date(s: &str) -> Option<u64> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split_ascii_whitespace().collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| m == month)? as u64 + 1;
    let year: u64 = year.parse().ok().filter(|y| (1970..=9999).contains(y))?;
    let mut hms = time.split(':').map(|p| p.parse::<u64>().ok());
    let (Some(Some(h)), Some(Some(m)), Some(Some(sec)), None) =
        (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    if h > 23 || m > 59 || sec > 60 {
        return None;
    }
    // Days from the civil date (proleptic Gregorian calendar).
    let (y, mo) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * mo + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// Walks an HTTP client error's source chain to its root cause: the
/// innermost `std::io::Error`'s kind, else the words of the layers (hyper's
/// "connection closed before message completed", DNS and TLS errors).
/// Returns the cause and the innermost error's text.
pub(crate) fn network_cause(e: &(dyn std::error::Error + 'static)) -> (NetworkCause, String) {
    let mut chain: Vec<&(dyn std::error::Error + 'static)> = vec![e];
    while let Some(next) = chain.last().and_then(|c| c.source()) {
        if chain.len() > 32 {
            break;
        }
        chain.push(next);
    }
    let detail = chain
        .last()
        .map(|c| one_line(&c.to_string()))
        .unwrap_or_default();
    let by_kind = chain.iter().rev().find_map(|c| {
        let io = c.downcast_ref::<std::io::Error>()?;
        use std::io::ErrorKind as K;
        match io.kind() {
            K::ConnectionRefused => Some(NetworkCause::Refused),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => Some(NetworkCause::Reset),
            K::UnexpectedEof => Some(NetworkCause::Closed),
            _ => None,
        }
    });
    if let Some(cause) = by_kind {
        return (cause, detail);
    }
    let words: Vec<String> = chain.iter().map(|c| c.to_string().to_lowercase()).collect();
    let says = |needles: &[&str]| words.iter().any(|w| needles.iter().any(|n| w.contains(n)));
    let cause = if says(&["connection refused"]) {
        NetworkCause::Refused
    } else if says(&["connection reset", "reset by peer"]) {
        NetworkCause::Reset
    } else if says(&[
        "connection closed before message completed",
        "incomplete message",
        "unexpected eof",
        "end of file before message length reached",
    ]) {
        NetworkCause::Closed
    } else if says(&[
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "no such host",
        "temporary failure in name resolution",
    ]) {
        NetworkCause::Dns
    } else if says(&[
        "certificate",
        "tls",
        "handshake",
        "corrupt message",
        "invalidcontenttype",
    ]) {
        NetworkCause::Tls
    } else {
        NetworkCause::Other
    };
    (cause, detail)
}

/// An inference server's error answer: the message, read from
/// `error.message`, `error` (a string), `message` or `detail` (FastAPI: a
/// string or a list of `{msg, loc}`), else the body text; and the error
/// code or type when given.
#[derive(Debug, Default)]
struct ServerMessage {
    text: String,
    code: String,
}

impl ServerMessage {
    fn of(body: &[u8]) -> Self {
        let Ok(v) = serde_json::from_slice::<Value>(body) else {
            return ServerMessage {
                text: String::from_utf8_lossy(body).into_owned(),
                code: String::new(),
            };
        };
        let error = v.get("error");
        let text = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .or_else(|| error.and_then(Value::as_str))
            .or_else(|| v.get("message").and_then(Value::as_str))
            .map(str::to_owned)
            .or_else(|| v.get("detail").and_then(detail_text))
            .unwrap_or_else(|| v.to_string());
        let code = [
            error.and_then(|e| e.get("code")),
            error.and_then(|e| e.get("type")),
            v.get("code"),
            v.get("type"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>()
        .join(" ");
        ServerMessage { text, code }
    }

    /// One line, at most [`MAX_MESSAGE_CHARS`] characters.
    fn short(&self) -> String {
        let line: String = one_line(&self.text)
            .chars()
            .take(MAX_MESSAGE_CHARS)
            .collect();
        if line.is_empty() {
            "no message".to_owned()
        } else {
            line
        }
    }

    /// Whether the server says the request does not fit the model's
    /// context, in the words of OpenAI and vLLM ("maximum context length",
    /// `context_length_exceeded`), llama-cpp-python ("Requested tokens (N)
    /// exceed context window of M"), the llama.cpp server ("request (N
    /// tokens) exceeds the available context size", `exceed_context_size_error`,
    /// "input is too large to process") and Ollama ("input length exceeds
    /// the context length").
    fn says_context_exceeded(&self) -> bool {
        let code = self.code.to_lowercase();
        if code.contains("context_length_exceeded") || code.contains("exceed_context_size") {
            return true;
        }
        let t = self.text.to_lowercase();
        [
            "maximum context length",
            "context_length_exceeded",
            "exceed context window",
            "exceeds context window",
            "exceeds the available context",
            "exceeds the context",
            "exceeds context length",
            "exceeds maximum context",
            "exceeds the maximum context",
            "context length exceeded",
            "context window exceeded",
            "input is too large to process",
            "longer than the model's context",
        ]
        .iter()
        .any(|p| t.contains(p))
            || (t.contains("context")
                && (t.contains("exceed") || t.contains("too long") || t.contains("too large")))
    }
}

/// FastAPI's `detail`: a string, or a list of validation errors whose
/// `msg` (and `loc`) are joined.
fn detail_text(detail: &Value) -> Option<String> {
    match detail {
        Value::String(s) => Some(s.clone()),
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .filter_map(|i| {
                    let msg = i.get("msg").and_then(Value::as_str)?;
                    let loc = i
                        .get("loc")
                        .and_then(Value::as_array)
                        .map(|l| {
                            l.iter()
                                .map(|p| match p {
                                    Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                })
                                .collect::<Vec<_>>()
                                .join(".")
                        })
                        .filter(|l| !l.is_empty());
                    Some(match loc {
                        Some(loc) => format!("{loc}: {msg}"),
                        None => msg.to_owned(),
                    })
                })
                .collect();
            (!parts.is_empty()).then(|| parts.join("; "))
        }
        _ => None,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
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

    fn message(body: &str) -> String {
        ServerMessage::of(body.as_bytes()).short()
    }

    #[test]
    fn error_messages_are_extracted() {
        assert_eq!(
            message(r#"{"error":{"message":"bad key","type":"x"}}"#),
            "bad key"
        );
        assert_eq!(message(r#"{"error":"model not found"}"#), "model not found");
        assert_eq!(message(r#"{"message":"slot busy"}"#), "slot busy");
        assert_eq!(message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(
            message(
                r#"{"detail":[{"loc":["body","messages",0],"msg":"field required","type":"missing"},{"loc":["body","model"],"msg":"not a string"}]}"#
            ),
            "body.messages.0: field required; body.model: not a string"
        );
        assert_eq!(message("oops\nline two"), "oops line two");
        assert_eq!(message(""), "no message");
    }

    #[test]
    fn context_overflow_is_recognised_in_each_servers_words() {
        for body in [
            // OpenAI and llama-cpp-python's server.
            r#"{"error":{"message":"This model's maximum context length is 2048 tokens. However, you requested 2300 tokens (1788 in the messages, 512 in the completion). Please reduce the length of the messages or completion.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#,
            // llama-cpp-python's own exception text.
            r#"{"detail":"Requested tokens (2100) exceed context window of 2048"}"#,
            // llama.cpp server, new and old.
            r#"{"error":{"code":400,"message":"request (4476 tokens) exceeds the available context size (4096 tokens)","type":"exceed_context_size_error","n_prompt_tokens":4476,"n_ctx":4096}}"#,
            r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"invalid_request_error"}}"#,
            r#"{"error":{"code":500,"message":"input is too large to process. increase the physical batch size","type":"server_error"}}"#,
            // Ollama.
            r#"{"error":"the input length exceeds the context length"}"#,
            r#"{"error":"input length exceeds maximum context length"}"#,
        ] {
            assert!(
                ServerMessage::of(body.as_bytes()).says_context_exceeded(),
                "{body}"
            );
        }
        for body in [
            r#"{"error":{"message":"invalid temperature","type":"invalid_request_error"}}"#,
            r#"{"error":"model 'x' not found, try pulling it first"}"#,
            r#"{"detail":"Not Found"}"#,
        ] {
            assert!(
                !ServerMessage::of(body.as_bytes()).says_context_exceeded(),
                "{body}"
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", std::time::UNIX_EPOCH),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_http_date("Thu, 29 Feb 2024 12:00:00 GMT"),
            Some(1_709_208_000)
        );
        for bad in [
            "soon",
            "-3",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn server_errors_wait_a_tenth_of_the_read_timeout() {
        assert_eq!(
            server_error_wait(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            server_error_wait(Duration::from_secs(10)),
            Duration::from_secs(5)
        );
        assert_eq!(
            server_error_wait(Duration::from_secs(3600)),
            Duration::from_secs(60)
        );
    }

    #[derive(Debug)]
    struct Layer(
        &'static str,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    );
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn network_causes_come_from_the_innermost_error() {
        use std::io::{Error as IoError, ErrorKind};
        let wrap = |inner: Box<dyn std::error::Error + Send + Sync>| {
            Layer(
                "error sending request",
                Some(Box::new(Layer("client error (Connect)", Some(inner)))),
            )
        };
        let cases: Vec<(Layer, NetworkCause)> = vec![
            (
                wrap(Box::new(IoError::from(ErrorKind::ConnectionRefused))),
                NetworkCause::Refused,
            ),
            (
                wrap(Box::new(IoError::from(ErrorKind::ConnectionReset))),
                NetworkCause::Reset,
            ),
            (
                wrap(Box::new(Layer(
                    "connection closed before message completed",
                    None,
                ))),
                NetworkCause::Closed,
            ),
            (
                wrap(Box::new(Layer(
                    "dns error",
                    Some(Box::new(IoError::other(
                        "failed to lookup address information: Name or service not known",
                    ))),
                ))),
                NetworkCause::Dns,
            ),
            (
                wrap(Box::new(IoError::new(
                    ErrorKind::InvalidData,
                    "invalid peer certificate: UnknownIssuer",
                ))),
                NetworkCause::Tls,
            ),
            (
                wrap(Box::new(Layer("something odd", None))),
                NetworkCause::Other,
            ),
        ];
        for (error, want) in cases {
            let (cause, detail) = network_cause(&error);
            assert_eq!(cause, want, "{detail}");
            assert!(!detail.is_empty());
        }
    }
}
