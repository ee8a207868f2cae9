//! A job as a table row and back: the fields statements use are columns,
//! everything else stays in the `doc` json text, in its order, so a job
//! reads back as the same document.
//!
//! A job in the nested layout of the TypeScript package (`JobLayout`)
//! keeps it: its `doc` is its nested document without the column fields
//! (top level `startedAt`, `completedAt`; in `metadata` those of
//! [`META_COLUMN_KEYS`]), with `metadata.uniqueAfterFinishMs` moved to the
//! top level (where the generated `unique_until` column reads it), and with
//! its top-level `status` kept as the mark of the layout (a flat `doc`
//! never holds `status`, a column key; the column's value is the one read
//! back).

use semiont_jobs_model::{Job, JobLayout, JobStatus, Timestamp};
use semiont_jobs_store::{Error, Result};
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::error::corrupt;

/// The columns a job is read from, in [`job_from_row`]'s order.
pub(crate) const COLS: &str = "id, job_type, status, user_id, priority, attempt, retry_count, \
     max_retries, created, started_at, completed_at, run_at, worker_id, lease_expires_at, doc::text";

/// The same columns of a table alias `j`.
pub(crate) const J_COLS: &str = "j.id, j.job_type, j.status, j.user_id, j.priority, j.attempt, \
     j.retry_count, j.max_retries, j.created, j.started_at, j.completed_at, j.run_at, j.worker_id, \
     j.lease_expires_at, j.doc::text";

/// The columns a job is written to (plus `worker_inc`, which is not part
/// of the document), in [`JobRow::params`]'s order as `$1..$16`.
pub(crate) const WRITE_COLS: &str = "id, job_type, status, user_id, priority, attempt, \
     retry_count, max_retries, created, started_at, completed_at, run_at, worker_id, \
     lease_expires_at, unique_key, doc";

/// Document keys held in columns (never in `doc`).
const COLUMN_KEYS: &[&str] = &[
    "id",
    "type",
    "status",
    "userId",
    "created",
    "startedAt",
    "completedAt",
    "retryCount",
    "maxRetries",
    "attempt",
    "runAt",
    "priority",
    "workerId",
    "leaseExpiresAt",
];

/// Keys of a nested document's `metadata` held in columns.
const META_COLUMN_KEYS: &[&str] = &[
    "id",
    "type",
    "userId",
    "created",
    "retryCount",
    "maxRetries",
    "attempt",
    "runAt",
    "priority",
    "workerId",
    "leaseExpiresAt",
];

/// Top-level keys of a nested document held in columns.
const NESTED_COLUMN_KEYS: &[&str] = &["startedAt", "completedAt"];

/// Which table holds jobs in `status`.
pub(crate) fn table_of(status: JobStatus) -> &'static str {
    if status.is_finished() {
        "jobs_done"
    } else {
        "jobs"
    }
}

/// A job split into column values.
#[derive(Clone, Debug)]
pub(crate) struct JobRow {
    pub id: String,
    pub job_type: String,
    pub status: &'static str,
    pub user_id: String,
    pub priority: i16,
    pub attempt: i64,
    pub retry_count: i64,
    pub max_retries: i64,
    pub created: i64,
    pub started_at: Option<i64>,
    pub completed_at: Option<i64>,
    pub run_at: Option<i64>,
    pub worker_id: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub unique_key: Option<String>,
    pub doc: String,
}

/// Rows split into one array per column, for statements that take many
/// jobs at once through `unnest` (the parameters `$1..$16` in
/// [`WRITE_COLS`] order, as `text[]`, `smallint[]` and `bigint[]`).
pub(crate) struct Columns<'a> {
    ids: Vec<&'a str>,
    types: Vec<&'a str>,
    statuses: Vec<&'a str>,
    users: Vec<&'a str>,
    priorities: Vec<i16>,
    attempts: Vec<i64>,
    retries: Vec<i64>,
    max_retries: Vec<i64>,
    created: Vec<i64>,
    started: Vec<Option<i64>>,
    completed: Vec<Option<i64>>,
    run_at: Vec<Option<i64>>,
    workers: Vec<Option<&'a str>>,
    leases: Vec<Option<i64>>,
    unique_keys: Vec<Option<&'a str>>,
    docs: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    /// The columns of `rows`, in their order.
    pub fn of(rows: impl IntoIterator<Item = &'a JobRow> + Clone) -> Self {
        fn col<'a, T>(
            rows: impl IntoIterator<Item = &'a JobRow>,
            f: impl Fn(&'a JobRow) -> T,
        ) -> Vec<T> {
            rows.into_iter().map(f).collect()
        }
        let r = || rows.clone();
        Columns {
            ids: col(r(), |r| r.id.as_str()),
            types: col(r(), |r| r.job_type.as_str()),
            statuses: col(r(), |r| r.status),
            users: col(r(), |r| r.user_id.as_str()),
            priorities: col(r(), |r| r.priority),
            attempts: col(r(), |r| r.attempt),
            retries: col(r(), |r| r.retry_count),
            max_retries: col(r(), |r| r.max_retries),
            created: col(r(), |r| r.created),
            started: col(r(), |r| r.started_at),
            completed: col(r(), |r| r.completed_at),
            run_at: col(r(), |r| r.run_at),
            workers: col(r(), |r| r.worker_id.as_deref()),
            leases: col(r(), |r| r.lease_expires_at),
            unique_keys: col(r(), |r| r.unique_key.as_deref()),
            docs: col(r(), |r| r.doc.as_str()),
        }
    }

    /// The arrays as statement parameters `$1..$16`.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.ids,
            &self.types,
            &self.statuses,
            &self.users,
            &self.priorities,
            &self.attempts,
            &self.retries,
            &self.max_retries,
            &self.created,
            &self.started,
            &self.completed,
            &self.run_at,
            &self.workers,
            &self.leases,
            &self.unique_keys,
            &self.docs,
        ]
    }
}

impl JobRow {
    /// Splits `job`: its column fields, and the rest as json text.
    pub fn of(job: &Job) -> Result<JobRow> {
        let (rest, unique_key) = match job.layout {
            JobLayout::Flat => {
                let value = serde_json::to_value(job).map_err(|e| {
                    Error::Invalid(semiont_jobs_model::Error::InvalidJob(format!(
                        "job {} cannot be serialized: {e}",
                        job.id
                    )))
                })?;
                let Value::Object(map) = value else {
                    unreachable!("a job serializes to an object")
                };
                // `uniqueKey` stays in the document too (it keeps its place
                // among fields this version may not know) and is copied to
                // its column.
                let unique_key = map
                    .get("uniqueKey")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let rest: Map<String, Value> = map
                    .into_iter()
                    .filter(|(k, _)| !COLUMN_KEYS.contains(&k.as_str()))
                    .collect();
                (rest, unique_key)
            }
            JobLayout::Nested => {
                let Value::Object(mut map) = job.to_document() else {
                    unreachable!("a job's document is an object")
                };
                map.retain(|k, _| !NESTED_COLUMN_KEYS.contains(&k.as_str()));
                let mut unique_key = None;
                if let Some(Value::Object(meta)) = map.get_mut("metadata") {
                    unique_key = meta
                        .get("uniqueKey")
                        .and_then(Value::as_str)
                        .map(str::to_owned);
                    meta.retain(|k, _| !META_COLUMN_KEYS.contains(&k.as_str()));
                    // At top level, where the generated `unique_until`
                    // column looks for it.
                    if let Some(ms) = meta.remove("uniqueAfterFinishMs") {
                        map.insert("uniqueAfterFinishMs".into(), ms);
                    }
                }
                (map, unique_key)
            }
        };
        Ok(JobRow {
            id: job.id.as_str().to_owned(),
            job_type: job.job_type.as_str().to_owned(),
            status: job.status.as_str(),
            user_id: job.user_id.clone(),
            priority: job.priority,
            attempt: i64::from(job.attempt),
            retry_count: i64::from(job.retry_count),
            max_retries: i64::from(job.max_retries),
            created: job.created.as_millis(),
            started_at: job.started_at.map(Timestamp::as_millis),
            completed_at: job.completed_at.map(Timestamp::as_millis),
            run_at: job.run_at.map(Timestamp::as_millis),
            worker_id: job.worker_id.clone(),
            lease_expires_at: job.lease_expires_at.map(Timestamp::as_millis),
            unique_key,
            doc: Value::Object(rest).to_string(),
        })
    }

    /// The values as statement parameters `$1..$16`, in [`WRITE_COLS`] order.
    pub fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.id,
            &self.job_type,
            &self.status,
            &self.user_id,
            &self.priority,
            &self.attempt,
            &self.retry_count,
            &self.max_retries,
            &self.created,
            &self.started_at,
            &self.completed_at,
            &self.run_at,
            &self.worker_id,
            &self.lease_expires_at,
            &self.unique_key,
            &self.doc,
        ]
    }
}

/// The `$1..$16` placeholders of a row, typed, in [`WRITE_COLS`] order,
/// starting at parameter `first`.
pub(crate) fn placeholders(first: usize) -> String {
    const TYPES: [&str; 16] = [
        "text", "text", "text", "text", "smallint", "bigint", "bigint", "bigint", "bigint",
        "bigint", "bigint", "bigint", "text", "bigint", "text", "text",
    ];
    TYPES
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if i == 15 {
                format!("${}::text::json", first + i)
            } else {
                format!("${}::{t}", first + i)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ts(ms: i64) -> Value {
    serde_json::to_value(Timestamp::from_millis(ms)).unwrap_or(Value::Null)
}

/// Reads a job from a row of [`COLS`] (at columns `0..15`) of `table` in
/// `schema` (for the location of a corrupt row).
pub(crate) fn job_from_row(row: &Row, schema: &str, table: &str) -> Result<Job> {
    let id: String = row.get(0);
    let bad = |reason: String| corrupt(schema, table, &id, reason);
    let mut map = Map::new();
    map.insert("id".into(), Value::String(id.clone()));
    map.insert("type".into(), Value::String(row.get(1)));
    map.insert("status".into(), Value::String(row.get(2)));
    map.insert("userId".into(), Value::String(row.get(3)));
    let created: i64 = row.get(8);
    map.insert("created".into(), ts(created));
    for (key, col) in [("startedAt", 9), ("completedAt", 10)] {
        if let Some(ms) = row.get::<_, Option<i64>>(col) {
            map.insert(key.into(), ts(ms));
        }
    }
    map.insert("retryCount".into(), Value::from(row.get::<_, i64>(6)));
    map.insert("maxRetries".into(), Value::from(row.get::<_, i64>(7)));
    map.insert("attempt".into(), Value::from(row.get::<_, i64>(5)));
    if let Some(ms) = row.get::<_, Option<i64>>(11) {
        map.insert("runAt".into(), ts(ms));
    }
    map.insert("priority".into(), Value::from(row.get::<_, i16>(4)));
    if let Some(w) = row.get::<_, Option<String>>(12) {
        map.insert("workerId".into(), Value::String(w));
    }
    if let Some(ms) = row.get::<_, Option<i64>>(13) {
        map.insert("leaseExpiresAt".into(), ts(ms));
    }
    let doc: String = row.get(14);
    let rest = match serde_json::from_str::<Value>(&doc) {
        Ok(Value::Object(rest)) => rest,
        Ok(_) => return Err(bad("doc is not a json object".into())),
        Err(e) => return Err(bad(format!("doc is not json: {e}"))),
    };
    if rest.contains_key("status") {
        return nested_from_row(map, rest).map_err(|e| bad(e.to_string()));
    }
    for (k, v) in rest {
        if !COLUMN_KEYS.contains(&k.as_str()) {
            map.insert(k, v);
        }
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| bad(e.to_string()))
}

/// A nested job from its column fields (`columns`, flat keys) and its
/// `doc` (see the module docs).
fn nested_from_row(
    mut columns: Map<String, Value>,
    mut rest: Map<String, Value>,
) -> std::result::Result<Job, semiont_jobs_model::Error> {
    let mut meta = Map::new();
    for key in META_COLUMN_KEYS {
        if let Some(v) = columns.remove(*key) {
            meta.insert((*key).to_owned(), v);
        }
    }
    // Zero and absent are one: the flat reader's defaults.
    if meta.get("attempt").is_some_and(|v| v == 0) {
        meta.remove("attempt");
    }
    if meta.get("priority").is_some_and(|v| v == 0) {
        meta.remove("priority");
    }
    if let Some(Value::Object(doc_meta)) = rest.remove("metadata") {
        for (k, v) in doc_meta {
            meta.entry(k).or_insert(v);
        }
    }
    if let Some(ms) = rest.remove("uniqueAfterFinishMs") {
        meta.insert("uniqueAfterFinishMs".into(), ms);
    }
    let mut doc = Map::new();
    doc.insert(
        "status".into(),
        columns.remove("status").unwrap_or(Value::Null),
    );
    doc.insert("metadata".into(), Value::Object(meta));
    rest.remove("status");
    for key in NESTED_COLUMN_KEYS {
        if let Some(v) = columns.remove(*key) {
            doc.insert((*key).to_owned(), v);
        }
    }
    doc.extend(rest);
    Job::from_document(Value::Object(doc))
}

/// Parses a status column.
pub(crate) fn status_of(s: &str) -> Option<JobStatus> {
    JobStatus::ALL.into_iter().find(|st| st.as_str() == s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use semiont_jobs_model::{JobId, NewJob};
    use serde_json::json;

    #[test]
    fn the_document_keeps_everything_but_the_columns_in_order() {
        let mut job = NewJob::custom("t", "u", json!({"z": 1, "a": {"y": 2, "b": 3}}))
            .unwrap()
            .into_job(JobId::generate(), Timestamp::from_millis(5), 3)
            .unwrap();
        job.error = Some("nul \u{0} inside".into());
        job.progress = Some(json!({"percentage": 5, "message": "m"}));
        let row = JobRow::of(&job).unwrap();
        assert_eq!(row.status, "pending");
        assert_eq!(row.created, 5);
        let doc: Value = serde_json::from_str(&row.doc).unwrap();
        let keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["error", "progress", "z", "a"]);
        assert!(row.doc.contains("\\u0000"), "{}", row.doc);
        assert_eq!(placeholders(1).matches('$').count(), 16);
    }
}
