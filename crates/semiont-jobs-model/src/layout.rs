//! The two layouts of a job document: the seed's flat one and the nested
//! one the published TypeScript package `@semiont/jobs` writes, how a
//! document's layout is detected, and the nested reader and writer.
//!
//! The nested layout (`@semiont/jobs` 0.2.46):
//!
//! ```json
//! { "status": "running",
//!   "metadata": { "id": "job-1", "type": "detection", "userId": "u1",
//!                 "created": "2024-01-15T10:30:00.000Z", "retryCount": 0, "maxRetries": 3 },
//!   "params": { "resourceId": "doc-1", "entityTypes": ["Person"] },
//!   "startedAt": "2024-01-15T10:30:01.000Z", "progress": {},
//!   "completedAt": "…", "result": {…}, "error": "…" }
//! ```
//!
//! This implementation's own fields (`attempt`, `runAt`, `priority`,
//! `workerId`, `leaseExpiresAt`, `completedUnits`, `unitCursors`,
//! `uniqueKey`, `uniqueAfterFinishMs`) live in `metadata`. Fields neither
//! layout knows are kept where they were: at top level or in `metadata`
//! ([`NestedExtra`]).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::job::{default_max_retries, deserialize_unique_key};
use crate::{Error, Job, JobId, JobStatus, JobType, Result, Timestamp, UnitCursor};

/// The layout of a job document.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobLayout {
    /// The seed's flat document: every field at top level, the type's
    /// parameters too.
    #[default]
    Flat,
    /// The published TypeScript package's document: `status`, a `metadata`
    /// object, a `params` object, and the lifecycle fields at top level.
    Nested,
}

impl JobLayout {
    /// `flat` or `nested`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobLayout::Flat => "flat",
            JobLayout::Nested => "nested",
        }
    }

    /// The layout of a parsed document: nested when it has no top-level
    /// `id` and its `metadata` is an object; flat otherwise.
    pub fn of_document(doc: &Map<String, Value>) -> JobLayout {
        if !doc.contains_key("id") && doc.get("metadata").is_some_and(Value::is_object) {
            JobLayout::Nested
        } else {
            JobLayout::Flat
        }
    }
}

impl fmt::Display for JobLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobLayout {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "flat" => Ok(JobLayout::Flat),
            "nested" => Ok(JobLayout::Nested),
            other => Err(Error::InvalidJob(format!(
                "unknown job layout {:?} (expected flat or nested)",
                other.chars().take(32).collect::<String>()
            ))),
        }
    }
}

/// Fields of a nested document that this implementation does not know,
/// kept where they were found and written back there.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NestedExtra {
    /// Unknown top-level fields.
    pub top: Map<String, Value>,
    /// Unknown fields inside `metadata`.
    pub metadata: Map<String, Value>,
}

impl NestedExtra {
    /// Whether nothing unknown was kept.
    pub fn is_empty(&self) -> bool {
        self.top.is_empty() && self.metadata.is_empty()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NestedIn {
    status: JobStatus,
    metadata: MetaIn,
    #[serde(default)]
    params: Option<Map<String, Value>>,
    #[serde(default)]
    started_at: Option<Timestamp>,
    #[serde(default)]
    progress: Option<Value>,
    #[serde(default)]
    completed_at: Option<Timestamp>,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<String>,
    #[serde(flatten)]
    top: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MetaIn {
    id: JobId,
    #[serde(rename = "type")]
    job_type: JobType,
    user_id: String,
    created: Timestamp,
    #[serde(default)]
    retry_count: u32,
    #[serde(default = "default_max_retries")]
    max_retries: u32,
    #[serde(default)]
    attempt: u32,
    #[serde(default)]
    run_at: Option<Timestamp>,
    #[serde(default)]
    priority: i16,
    #[serde(default)]
    worker_id: Option<String>,
    #[serde(default)]
    lease_expires_at: Option<Timestamp>,
    #[serde(default)]
    completed_units: Vec<String>,
    #[serde(default)]
    unit_cursors: BTreeMap<String, UnitCursor>,
    #[serde(default, deserialize_with = "deserialize_unique_key")]
    unique_key: Option<String>,
    #[serde(default)]
    unique_after_finish_ms: Option<u64>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Parses a nested document.
pub(crate) fn nested_from_slice(bytes: &[u8]) -> Result<Job> {
    let doc: NestedIn = serde_json::from_slice(bytes)
        .map_err(|e| Error::InvalidJob(format!("nested layout: {e}")))?;
    Ok(from_nested(doc))
}

/// Parses a nested document already read as a JSON value.
pub(crate) fn nested_from_value(value: Value) -> Result<Job> {
    let doc: NestedIn = serde_json::from_value(value)
        .map_err(|e| Error::InvalidJob(format!("nested layout: {e}")))?;
    Ok(from_nested(doc))
}

fn from_nested(doc: NestedIn) -> Job {
    let m = doc.metadata;
    Job {
        id: m.id,
        job_type: m.job_type,
        status: doc.status,
        user_id: m.user_id,
        created: m.created,
        started_at: doc.started_at,
        completed_at: doc.completed_at,
        error: doc.error,
        retry_count: m.retry_count,
        max_retries: m.max_retries,
        progress: doc.progress.filter(|v| !v.is_null()),
        result: doc.result.filter(|v| !v.is_null()),
        attempt: m.attempt,
        run_at: m.run_at,
        priority: m.priority,
        worker_id: m.worker_id,
        lease_expires_at: m.lease_expires_at,
        completed_units: m.completed_units,
        unit_cursors: m.unit_cursors,
        unique_key: m.unique_key,
        unique_after_finish_ms: m.unique_after_finish_ms,
        params: doc.params.unwrap_or_default(),
        layout: JobLayout::Nested,
        nested_extra: NestedExtra {
            top: doc.top,
            metadata: m.rest,
        },
    }
}

fn put<T: Serialize>(map: &mut Map<String, Value>, key: &str, value: &T) {
    // Values of a job (strings, numbers, timestamps, maps with string
    // keys) always serialize.
    if let Ok(v) = serde_json::to_value(value) {
        map.insert(key.to_owned(), v);
    }
}

/// The nested document of `job`.
pub(crate) fn to_nested(job: &Job) -> Value {
    let mut meta = Map::new();
    put(&mut meta, "id", &job.id);
    put(&mut meta, "type", &job.job_type);
    put(&mut meta, "userId", &job.user_id);
    put(&mut meta, "created", &job.created);
    put(&mut meta, "retryCount", &job.retry_count);
    put(&mut meta, "maxRetries", &job.max_retries);
    if job.attempt != 0 {
        put(&mut meta, "attempt", &job.attempt);
    }
    if let Some(t) = &job.run_at {
        put(&mut meta, "runAt", t);
    }
    if job.priority != 0 {
        put(&mut meta, "priority", &job.priority);
    }
    if let Some(w) = &job.worker_id {
        put(&mut meta, "workerId", w);
    }
    if let Some(t) = &job.lease_expires_at {
        put(&mut meta, "leaseExpiresAt", t);
    }
    if !job.completed_units.is_empty() {
        put(&mut meta, "completedUnits", &job.completed_units);
    }
    if !job.unit_cursors.is_empty() {
        put(&mut meta, "unitCursors", &job.unit_cursors);
    }
    if let Some(k) = &job.unique_key {
        put(&mut meta, "uniqueKey", k);
    }
    if let Some(ms) = &job.unique_after_finish_ms {
        put(&mut meta, "uniqueAfterFinishMs", ms);
    }
    for (k, v) in &job.nested_extra.metadata {
        meta.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let mut doc = Map::new();
    put(&mut doc, "status", &job.status);
    doc.insert("metadata".into(), Value::Object(meta));
    doc.insert("params".into(), Value::Object(job.params.clone()));
    if let Some(t) = &job.started_at {
        put(&mut doc, "startedAt", t);
    }
    if let Some(p) = &job.progress {
        doc.insert("progress".into(), p.clone());
    }
    if let Some(t) = &job.completed_at {
        put(&mut doc, "completedAt", t);
    }
    if let Some(r) = &job.result {
        doc.insert("result".into(), r.clone());
    }
    if let Some(e) = &job.error {
        doc.insert("error".into(), Value::String(e.clone()));
    }
    for (k, v) in &job.nested_extra.top {
        doc.entry(k.clone()).or_insert_with(|| v.clone());
    }
    Value::Object(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Checkpoint, JobDefaults, NewJob};
    use serde_json::json;

    fn ts_running() -> Value {
        json!({
            "status": "running",
            "metadata": {
                "id": "job-1", "type": "detection", "userId": "u1",
                "created": "2026-01-01T00:00:00.000Z", "retryCount": 0, "maxRetries": 3,
                "tenant": {"name": "acme"}
            },
            "params": {"resourceId": "doc-1", "entityTypes": ["Person"]},
            "startedAt": "2026-01-01T00:00:01.000Z",
            "progress": {},
            "traceId": "t-9"
        })
    }

    #[test]
    fn detection_table() {
        let doc = |v: Value| v.as_object().cloned().unwrap();
        let table = [
            (ts_running(), JobLayout::Nested),
            (json!({"id": "j", "metadata": {"id": "x"}}), JobLayout::Flat),
            (json!({"metadata": "a string"}), JobLayout::Flat),
            (json!({"status": "pending"}), JobLayout::Flat),
        ];
        for (v, want) in table {
            assert_eq!(JobLayout::of_document(&doc(v.clone())), want, "{v}");
        }
        assert_eq!("nested".parse::<JobLayout>().unwrap(), JobLayout::Nested);
        assert!("Nested".parse::<JobLayout>().is_err());
    }

    #[test]
    fn nested_documents_round_trip_with_unknown_fields_in_place() {
        let v = ts_running();
        let job = Job::from_json(v.to_string().as_bytes()).unwrap();
        assert_eq!(job.layout, JobLayout::Nested);
        assert_eq!(job.id.as_str(), "job-1");
        assert_eq!(job.detection_params().unwrap().resource_id, "doc-1");
        assert_eq!(job.progress, Some(json!({})));
        assert_eq!(job.nested_extra.metadata["tenant"], json!({"name": "acme"}));
        assert_eq!(job.nested_extra.top["traceId"], "t-9");
        let back: Value = serde_json::from_slice(&job.to_json()).unwrap();
        assert_eq!(back, v);
        assert_eq!(job.to_document(), v);
        assert_eq!(Job::from_document(v.clone()).unwrap(), job);
    }

    #[test]
    fn this_implementations_fields_live_in_metadata() {
        let mut job = Job::from_json(ts_running().to_string().as_bytes()).unwrap();
        job.attempt = 2;
        job.worker_id = Some("w1".into());
        job.priority = 5;
        job.unique_key = Some("k".into());
        job.apply_checkpoint(&Checkpoint::unit_done("Person"));
        let v = job.to_document();
        let meta = v["metadata"].as_object().unwrap();
        for key in [
            "attempt",
            "workerId",
            "priority",
            "uniqueKey",
            "completedUnits",
        ] {
            assert!(meta.contains_key(key), "{key} not in metadata: {v}");
            assert!(v.get(key).is_none(), "{key} at top level: {v}");
        }
        assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
        // The API view (serde) is flat whatever the layout.
        let flat = serde_json::to_value(&job).unwrap();
        assert_eq!(flat["id"], "job-1");
        assert_eq!(flat["resourceId"], "doc-1");
        assert!(flat.get("metadata").is_none());
    }

    #[test]
    fn new_jobs_take_the_configured_layout() {
        let defaults = JobDefaults {
            layout: JobLayout::Nested,
            ..JobDefaults::default()
        };
        let job = NewJob::custom("t", "u", json!({"a": 1}))
            .unwrap()
            .into_job_with(
                JobId::parse("job-n").unwrap(),
                Timestamp::from_millis(0),
                defaults,
            )
            .unwrap();
        assert_eq!(
            job.to_document(),
            json!({
                "status": "pending",
                "metadata": {"id": "job-n", "type": "t", "userId": "u",
                             "created": "1970-01-01T00:00:00.000Z", "retryCount": 0, "maxRetries": 3},
                "params": {"a": 1}
            })
        );
    }

    #[test]
    fn the_parse_order_never_changes_the_answer() {
        // Flat with `status` first (nested documents start so): still flat.
        let text = r#"{"status":"pending","id":"job-1","type":"t","userId":"u","created":"1970-01-01T00:00:00.000Z","metadata":{"id":"x"}}"#;
        let job = Job::from_json(text.as_bytes()).unwrap();
        assert_eq!(job.layout, JobLayout::Flat);
        assert_eq!(job.params["metadata"], json!({"id": "x"}));
        // A top-level `id` makes a document flat even when its `metadata`
        // would read as nested: the flat reader's reason is given.
        let mut v = ts_running();
        v["id"] = json!("job-1");
        for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
            let e = Job::from_json(text.as_bytes()).unwrap_err().to_string();
            assert!(!e.contains("nested layout"), "{e}");
        }
    }

    #[test]
    fn bad_nested_documents_name_the_layout() {
        let mut v = ts_running();
        v["metadata"]["retryCount"] = json!(-1);
        let e = Job::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("nested layout"), "{e}");
        let mut v = ts_running();
        v["metadata"].as_object_mut().unwrap().remove("id");
        let e = Job::from_json(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("missing field `id`"), "{e}");
    }
}
