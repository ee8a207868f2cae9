//! Typed extractors that validate requests before any handler runs: JSON
//! bodies (media type, size, read time, syntax), job ids in paths, query
//! strings (unknown and repeated parameters refused), `If-Match`,
//! `Idempotency-Key` and `Last-Event-ID`. Every rejection is a problem
//! document naming what was wrong.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::{header, request::Parts, HeaderMap};
use semiont_jobs_model::{Job, JobId};
use serde::de::DeserializeOwned;

use crate::{AppState, Error, ErrorKind, Result};

/// A JSON request body: `Content-Type: application/json`, at most the
/// configured size, read within the request timeout, parsed into `T`.
/// Keeps a fingerprint of the raw bytes (for idempotency keys).
#[derive(Debug)]
pub struct JsonBody<T> {
    /// The parsed body.
    pub value: T,
    /// Fingerprint of the raw body.
    pub fingerprint: u64,
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self> {
        if !is_json(req.headers()) {
            return Err(Error::new(
                ErrorKind::UnsupportedMediaType,
                "the request body must be JSON (Content-Type: application/json)",
            ));
        }
        let limit = state.config().body_limit;
        let reading = req
            .extensions()
            .get::<crate::layers::BodyReading>()
            .cloned()
            .unwrap_or_default();
        reading.set(true);
        let bytes = read_body(req, limit).await;
        reading.set(false);
        let bytes = bytes?;
        let value = parse_json(&bytes)?;
        Ok(JsonBody {
            value,
            fingerprint: crate::idempotency::fingerprint(&bytes),
        })
    }
}

/// Reads a body of at most `limit` bytes (the declared length is checked
/// first; a body that grows past the limit is refused as soon as it does).
async fn read_body(req: Request, limit: usize) -> Result<Bytes> {
    use futures_util::StreamExt;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut stream = req.into_body().into_data_stream();
    let mut buf = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| Error::invalid(format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("the request body is larger than the limit of {limit} bytes"),
    )
}

/// Parses JSON, naming the problem (serde_json refuses nesting deeper than
/// 128 levels, so a deep body cannot exhaust the stack).
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "malformed JSON"
            }
            _ => "invalid request body",
        };
        Error::invalid(format!("{what}: {e}"))
    })
}

/// A job id from the `{id}` path segment, validated (no separators, `..`,
/// control characters, at most 128 bytes).
#[derive(Debug)]
pub struct JobIdPath(pub JobId);

impl<S: Send + Sync> FromRequestParts<S> for JobIdPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::invalid(format!("invalid job id in the path: {e}")))?;
        JobId::parse(&raw)
            .map(JobIdPath)
            .map_err(|e| Error::invalid(e.to_string()))
    }
}

/// The query string as name → value, each name at most once and from an
/// allowed set (handlers say which).
#[derive(Debug, Default)]
pub struct QueryMap(pub BTreeMap<String, String>);

impl QueryMap {
    /// Parses `query`, refusing names outside `allowed` and repeated names.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self> {
        let mut map = BTreeMap::new();
        let Some(query) = query.filter(|q| !q.is_empty()) else {
            return Ok(QueryMap(map));
        };
        let pairs: Vec<(String, String)> = axum::extract::Query::try_from_uri(
            &format!("/?{query}")
                .parse()
                .map_err(|_| Error::invalid("malformed query string"))?,
        )
        .map(|axum::extract::Query(p)| p)
        .map_err(|_| Error::invalid("malformed query string"))?;
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let shown: String = name.chars().take(40).collect();
                return Err(Error::invalid(if allowed.is_empty() {
                    format!("unknown query parameter {shown:?} (this endpoint takes none)")
                } else {
                    format!(
                        "unknown query parameter {shown:?} (expected {})",
                        allowed.join(", ")
                    )
                }));
            }
            if map.insert(name.clone(), value).is_some() {
                return Err(Error::invalid(format!(
                    "query parameter {name} is repeated"
                )));
            }
        }
        Ok(QueryMap(map))
    }

    /// A parameter's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A non-negative integer parameter, at most `max`.
    pub fn number(&self, name: &str, default: usize, max: usize) -> Result<usize> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(Error::invalid(format!(
                    "{name} must be a whole number from 0 to {max}, not {:?}",
                    v.chars().take(40).collect::<String>()
                ))),
            },
        }
    }
}

/// `If-Match`: the versions of the job the request expects (`*`: any).
#[derive(Debug, Default)]
pub struct IfMatch(pub Option<Vec<String>>);

impl IfMatch {
    /// Whether `job` is one of the expected versions (always, without the
    /// header).
    pub fn allows(&self, job: &Job) -> bool {
        match &self.0 {
            None => true,
            Some(tags) => {
                let current = etag(job);
                tags.iter().any(|t| t == "*" || *t == current)
            }
        }
    }

    /// Whether the header was sent.
    pub fn is_present(&self) -> bool {
        self.0.is_some()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        let mut tags = Vec::new();
        let mut seen = false;
        for value in parts.headers.get_all(header::IF_MATCH) {
            seen = true;
            let text = value
                .to_str()
                .map_err(|_| Error::invalid("If-Match is not visible ASCII"))?;
            for item in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                tags.push(entity_tag(item)?);
            }
        }
        // An empty list (RFC 9110 allows one) matches no version.
        Ok(IfMatch(seen.then_some(tags)))
    }
}

/// One `If-Match` item as compared with [`etag`]: `*`, a quoted tag, or
/// (leniently) a bare one, which is quoted here. A weak tag (`W/"..."`)
/// never matches: `If-Match` compares strongly.
fn entity_tag(item: &str) -> Result<String> {
    let is_tag_char = |c: char| c.is_ascii_graphic() && c != '"' && c != ',';
    if item == "*" {
        return Ok(item.to_owned());
    }
    if let Some(inner) = item.strip_prefix('"').and_then(|i| i.strip_suffix('"')) {
        if inner.chars().all(is_tag_char) {
            return Ok(item.to_owned());
        }
    } else if let Some(weak) = item.strip_prefix("W/") {
        entity_tag(weak)?;
        return Ok(format!("W/{weak}"));
    } else if item.chars().all(is_tag_char) {
        return Ok(format!("\"{item}\""));
    }
    Err(Error::invalid(format!(
        "If-Match must list entity tags such as \"running.2\", not {:?}",
        item.chars().take(40).collect::<String>()
    )))
}

/// The entity tag of a job: its status and attempt (what every conditional
/// write of the store compares), e.g. `"running.2"`. Progress reports do not
/// change it.
pub fn etag(job: &Job) -> String {
    format!("\"{}.{}\"", job.status, job.attempt)
}

/// The `Idempotency-Key` header, validated.
#[derive(Debug, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        let mut values = parts.headers.get_all("idempotency-key").iter();
        let Some(value) = values.next() else {
            return Ok(IdempotencyKey(None));
        };
        if values.next().is_some() {
            return Err(Error::invalid("more than one Idempotency-Key header"));
        }
        crate::idempotency::validate_key(value.as_bytes()).map(|k| IdempotencyKey(Some(k)))
    }
}

/// The `Last-Event-ID` header: the id of the last event a reconnecting
/// client saw.
#[derive(Debug, Default)]
pub struct LastEventId(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for LastEventId {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self> {
        let Some(value) = parts.headers.get("last-event-id") else {
            return Ok(LastEventId(None));
        };
        let text = value.to_str().unwrap_or("").trim();
        if text.is_empty() {
            return Ok(LastEventId(None));
        }
        text.parse::<u64>()
            .map(|n| LastEventId(Some(n)))
            .map_err(|_| {
                Error::invalid(
                    "Last-Event-ID must be the id of an event this server sent (a number)",
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings() {
        let q = QueryMap::parse(Some("status=pending&limit=5"), &["status", "limit"]).unwrap();
        assert_eq!(q.get("status"), Some("pending"));
        assert_eq!(q.number("limit", 100, 1000).unwrap(), 5);
        assert_eq!(q.number("offset", 0, 10).unwrap(), 0);
        let cases = [
            ("x=1", "unknown query parameter \"x\""),
            ("status=a&status=b", "repeated"),
        ];
        for (query, want) in cases {
            let e = QueryMap::parse(Some(query), &["status"]).unwrap_err();
            assert!(e.to_string().contains(want), "{query}: {e}");
        }
        let q = QueryMap::parse(Some("limit=-1"), &["limit"]).unwrap();
        assert!(q.number("limit", 1, 10).is_err());
        let q = QueryMap::parse(Some("limit=11"), &["limit"]).unwrap();
        assert!(q.number("limit", 1, 10).is_err());
        let q = QueryMap::parse(Some("userId=a%20b"), &["userId"]).unwrap();
        assert_eq!(q.get("userId"), Some("a b"));
    }

    #[test]
    fn if_match_items() {
        assert_eq!(entity_tag("*").unwrap(), "*");
        assert_eq!(entity_tag("\"running.2\"").unwrap(), "\"running.2\"");
        assert_eq!(entity_tag("running.2").unwrap(), "\"running.2\"");
        assert_eq!(entity_tag("W/\"running.2\"").unwrap(), "W/\"running.2\"");
        for bad in ["\"a\"b\"", "\"a b\"", "a\"", "W/a\"b"] {
            assert!(entity_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn json_media_types() {
        let mut h = HeaderMap::new();
        assert!(!is_json(&h));
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/merge-patch+json",
        ] {
            h.insert(header::CONTENT_TYPE, ok.parse().unwrap());
            assert!(is_json(&h), "{ok}");
        }
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(!is_json(&h));
    }

    #[test]
    fn json_errors_name_the_problem() {
        let e = parse_json::<serde_json::Value>(b"{\"a\":").unwrap_err();
        assert!(e.to_string().starts_with("malformed JSON"), "{e}");
        let deep = "[".repeat(200) + &"]".repeat(200);
        let e = parse_json::<serde_json::Value>(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
    }
}
