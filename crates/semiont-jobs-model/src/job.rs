//! The job document: its fields, its type, its typed parameters, and how a
//! new job is described before it is enqueued.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::layout::{nested_from_slice, nested_from_value, to_nested};
use crate::{
    merge_checkpoint, Checkpoint, Error, JobId, JobLayout, JobStatus, NestedExtra, Result,
    Timestamp, UnitCursor,
};

/// `maxRetries` when neither the job nor the queue says otherwise (the seed's default).
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// Largest accepted `maxRetries`.
pub const MAX_MAX_RETRIES: u32 = 100;
/// Largest accepted serialized size of a job's parameters (1 MiB).
pub const MAX_PARAMS_BYTES: usize = 1 << 20;
/// Deepest accepted nesting of arrays and objects in parameters, progress
/// and results. A job document holds them one or two levels down, and
/// `serde_json` refuses to read documents nested deeper than 128 levels: a
/// job accepted with deeper values could be written but never read back.
pub const MAX_JSON_DEPTH: usize = 64;
/// Longest accepted unique key, in bytes.
pub const MAX_UNIQUE_KEY_LEN: usize = 200;
const MAX_TYPE_LEN: usize = 64;
const MAX_USER_ID_LEN: usize = 256;

/// Top-level field names owned by the job itself; custom parameters may not
/// use them.
pub const RESERVED_FIELDS: &[&str] = &[
    "id",
    "type",
    "status",
    "userId",
    "created",
    "startedAt",
    "completedAt",
    "error",
    "retryCount",
    "maxRetries",
    "progress",
    "result",
    "attempt",
    "runAt",
    "priority",
    "workerId",
    "leaseExpiresAt",
    "completedUnits",
    "unitCursors",
    "uniqueKey",
    "uniqueAfterFinishMs",
];

/// What kind of work a job is. Serialized as a plain string.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobType {
    /// Entity detection in a document (the seed's `DetectionJob`).
    Detection,
    /// Document generation from an annotation (the seed's `GenerationJob`).
    Generation,
    /// Any other type, e.g. the seed's `my-job-type`.
    Custom(Box<str>),
}

impl JobType {
    /// Parses and validates a type name: 1 to 64 characters from
    /// `[A-Za-z0-9._:-]`.
    pub fn parse(s: &str) -> Result<Self> {
        let reject = |reason| {
            Err(Error::InvalidType {
                job_type: s.chars().take(64).collect(),
                reason,
            })
        };
        if s.is_empty() {
            return reject("empty");
        }
        if s.len() > MAX_TYPE_LEN {
            return reject("longer than 64 bytes");
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return reject("only letters, digits and . _ : - are allowed");
        }
        Ok(match s {
            "detection" => JobType::Detection,
            "generation" => JobType::Generation,
            other => JobType::Custom(other.into()),
        })
    }

    /// The type name.
    pub fn as_str(&self) -> &str {
        match self {
            JobType::Detection => "detection",
            JobType::Generation => "generation",
            JobType::Custom(s) => s,
        }
    }
}

impl fmt::Display for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for JobType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::str::FromStr for JobType {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobType::parse(s)
    }
}

impl Serialize for JobType {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        JobType::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Parameters of a detection job (the seed's `DetectionJob` fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectionParams {
    /// The document to analyse.
    pub resource_id: String,
    /// Entity types to look for, e.g. `Person`, `Organization`.
    pub entity_types: Vec<String>,
}

/// Parameters of a generation job (the seed's `GenerationJob` fields).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerationParams {
    /// The reference annotation to generate a document for.
    pub reference_id: String,
    /// The document holding that annotation.
    pub source_resource_id: String,
    /// Extra instructions for the generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// Title of the generated document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Entity types to tag the generated document with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_types: Option<Vec<String>>,
    /// Language of the generated document (BCP 47, e.g. `en`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// A job's parameters, typed where the type is known.
#[derive(Clone, Debug, PartialEq)]
pub enum JobParams {
    /// A detection job.
    Detection(DetectionParams),
    /// A generation job.
    Generation(GenerationParams),
    /// Any other type: its parameters are top-level JSON fields of the job.
    Custom {
        /// The type name (not `detection` or `generation`).
        job_type: JobType,
        /// The parameters, a JSON object whose keys avoid [`RESERVED_FIELDS`].
        params: Map<String, Value>,
    },
}

impl JobParams {
    /// The job type these parameters belong to.
    pub fn job_type(&self) -> JobType {
        match self {
            JobParams::Detection(_) => JobType::Detection,
            JobParams::Generation(_) => JobType::Generation,
            JobParams::Custom { job_type, .. } => job_type.clone(),
        }
    }

    fn validate(&self) -> Result<()> {
        let nonempty = |field: &str, v: &str| {
            if v.trim().is_empty() {
                Err(Error::InvalidParams(format!("{field} is empty")))
            } else {
                Ok(())
            }
        };
        match self {
            JobParams::Detection(p) => {
                nonempty("resourceId", &p.resource_id)?;
                if p.entity_types.is_empty() {
                    return Err(Error::InvalidParams("entityTypes is empty".into()));
                }
                for t in &p.entity_types {
                    nonempty("an entity type", t)?;
                }
            }
            JobParams::Generation(p) => {
                nonempty("referenceId", &p.reference_id)?;
                nonempty("sourceResourceId", &p.source_resource_id)?;
                for t in p.entity_types.iter().flatten() {
                    nonempty("an entity type", t)?;
                }
            }
            JobParams::Custom { job_type, params } => {
                if matches!(job_type, JobType::Detection | JobType::Generation) {
                    return Err(Error::InvalidParams(format!(
                        "type {job_type} takes typed parameters, not custom ones"
                    )));
                }
                if let Some(key) = params
                    .keys()
                    .find(|k| RESERVED_FIELDS.contains(&k.as_str()))
                {
                    return Err(Error::InvalidParams(format!(
                        "parameter name {key:?} is reserved for the job itself"
                    )));
                }
            }
        }
        let map = self.to_map();
        let depth = map.values().map(json_depth).max().unwrap_or(0) + 1;
        if depth > MAX_JSON_DEPTH {
            return Err(Error::InvalidParams(format!(
                "parameters are nested {depth} levels deep, more than the limit of {MAX_JSON_DEPTH}"
            )));
        }
        let size = serde_json::to_vec(&map)
            .map_err(|e| Error::InvalidParams(e.to_string()))?
            .len();
        if size > MAX_PARAMS_BYTES {
            return Err(Error::InvalidParams(format!(
                "parameters are {size} bytes, more than the limit of {MAX_PARAMS_BYTES}"
            )));
        }
        Ok(())
    }

    fn to_map(&self) -> Map<String, Value> {
        let value = match self {
            JobParams::Detection(p) => serde_json::to_value(p),
            JobParams::Generation(p) => serde_json::to_value(p),
            JobParams::Custom { params, .. } => return params.clone(),
        };
        match value {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        }
    }
}

/// How long a job's unique key keeps other jobs with the same key from
/// being created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UniqueScope {
    /// While the job is pending or running (the default).
    #[default]
    Active,
    /// While the job is pending or running, and for this long after it
    /// finished (complete, failed or cancelled), counted from its
    /// `completedAt`.
    ActiveAndAfterFinish(Duration),
}

/// Defaults a queue fills into a [`NewJob`] that does not set its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobDefaults {
    /// Retry budget.
    pub max_retries: u32,
    /// Claim priority.
    pub priority: i16,
    /// The document layout of new jobs.
    pub layout: JobLayout,
}

impl Default for JobDefaults {
    fn default() -> Self {
        JobDefaults {
            max_retries: DEFAULT_MAX_RETRIES,
            priority: 0,
            layout: JobLayout::Flat,
        }
    }
}

/// A job the caller wants enqueued: its parameters plus per-job options.
/// The queue turns it into a [`Job`] with an id and a creation time.
#[derive(Clone, Debug, PartialEq)]
pub struct NewJob {
    /// What to do.
    pub params: JobParams,
    /// Who asked for it.
    pub user_id: String,
    /// Per-job retry budget; the queue's (or its type's) default when `None`.
    pub max_retries: Option<u32>,
    /// Do not start before this time.
    pub run_at: Option<Timestamp>,
    /// Higher runs first among due jobs; FIFO within a priority. The
    /// queue's (or its type's) default, 0 unless configured, when `None`.
    pub priority: Option<i16>,
    /// While another job holds this key (see [`UniqueScope`]), creating
    /// this job returns that job instead.
    pub unique_key: Option<String>,
    /// How long the key stays taken.
    pub unique_scope: UniqueScope,
}

impl NewJob {
    /// A job with these parameters for `user_id`.
    pub fn new(params: JobParams, user_id: impl Into<String>) -> Self {
        NewJob {
            params,
            user_id: user_id.into(),
            max_retries: None,
            run_at: None,
            priority: None,
            unique_key: None,
            unique_scope: UniqueScope::Active,
        }
    }

    /// A detection job over `resource_id` for the given entity types.
    pub fn detection<I, S>(
        user_id: impl Into<String>,
        resource_id: impl Into<String>,
        entity_types: I,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::new(
            JobParams::Detection(DetectionParams {
                resource_id: resource_id.into(),
                entity_types: entity_types.into_iter().map(Into::into).collect(),
            }),
            user_id,
        )
    }

    /// A generation job.
    pub fn generation(user_id: impl Into<String>, params: GenerationParams) -> Self {
        Self::new(JobParams::Generation(params), user_id)
    }

    /// A job of a custom type whose parameters are the fields of `params`
    /// (which must be a JSON object).
    pub fn custom(job_type: &str, user_id: impl Into<String>, params: Value) -> Result<Self> {
        let job_type = JobType::parse(job_type)?;
        let params = match params {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            other => {
                return Err(Error::InvalidParams(format!(
                    "custom parameters must be a JSON object, not {}",
                    json_kind(&other)
                )))
            }
        };
        Ok(Self::new(JobParams::Custom { job_type, params }, user_id))
    }

    /// Sets the per-job retry budget.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Delays the job until `at`.
    pub fn run_at(mut self, at: Timestamp) -> Self {
        self.run_at = Some(at);
        self
    }

    /// Sets the priority (higher first; default 0).
    pub fn priority(mut self, p: i16) -> Self {
        self.priority = Some(p);
        self
    }

    /// Makes the job unique by `key` while it is pending or running: while
    /// another job holds the key, creating this one returns that job.
    pub fn unique_key(mut self, key: impl Into<String>) -> Self {
        self.unique_key = Some(key.into());
        self
    }

    /// Keeps the unique key taken for `period` after the job finished too
    /// (e.g. "at most one import of this file per hour").
    pub fn unique_after_finish(mut self, period: Duration) -> Self {
        self.unique_scope = UniqueScope::ActiveAndAfterFinish(period);
        self
    }

    /// Validates and builds the pending job document, with the seed's
    /// default priority 0 when the request sets none.
    pub fn into_job(self, id: JobId, created: Timestamp, default_max_retries: u32) -> Result<Job> {
        self.into_job_with(
            id,
            created,
            JobDefaults {
                max_retries: default_max_retries,
                priority: 0,
                layout: JobLayout::Flat,
            },
        )
    }

    /// Validates and builds the pending job document, filling what the
    /// request does not set from `defaults`.
    pub fn into_job_with(
        self,
        id: JobId,
        created: Timestamp,
        defaults: JobDefaults,
    ) -> Result<Job> {
        validate_user_id(&self.user_id)?;
        self.params.validate()?;
        let max_retries = self.max_retries.unwrap_or(defaults.max_retries);
        if max_retries > MAX_MAX_RETRIES {
            return Err(Error::MaxRetriesOutOfRange(u64::from(max_retries)));
        }
        if let Some(key) = &self.unique_key {
            validate_unique_key(key)?;
        }
        let unique_after_finish_ms = match (&self.unique_key, self.unique_scope) {
            (Some(_), UniqueScope::ActiveAndAfterFinish(d)) => {
                Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            }
            _ => None,
        };
        Ok(Job {
            id,
            job_type: self.params.job_type(),
            status: JobStatus::Pending,
            user_id: self.user_id,
            created,
            started_at: None,
            completed_at: None,
            error: None,
            retry_count: 0,
            max_retries,
            progress: None,
            result: None,
            attempt: 0,
            run_at: self.run_at,
            priority: self.priority.unwrap_or(defaults.priority),
            worker_id: None,
            lease_expires_at: None,
            completed_units: Vec::new(),
            unit_cursors: BTreeMap::new(),
            unique_key: self.unique_key,
            unique_after_finish_ms,
            params: self.params.to_map(),
            layout: defaults.layout,
            nested_extra: NestedExtra::default(),
        })
    }
}

/// Whether the first key of a JSON object document is `"status"`.
fn starts_with_status(bytes: &[u8]) -> bool {
    let mut rest = bytes.iter().skip_while(|b| b.is_ascii_whitespace());
    if rest.next() != Some(&b'{') {
        return false;
    }
    let rest: Vec<u8> = rest
        .skip_while(|b| b.is_ascii_whitespace())
        .take(8)
        .copied()
        .collect();
    rest == b"\"status\""
}

/// Checks a unique key: 1 to [`MAX_UNIQUE_KEY_LEN`] bytes, not blank, no
/// control characters.
pub fn validate_unique_key(key: &str) -> Result<()> {
    let reject = |reason| {
        Err(Error::InvalidUniqueKey {
            key: key.chars().take(64).collect(),
            reason,
        })
    };
    if key.trim().is_empty() {
        return reject("empty");
    }
    if key.len() > MAX_UNIQUE_KEY_LEN {
        return reject("longer than 200 bytes");
    }
    if key.chars().any(char::is_control) {
        return reject("contains a control character");
    }
    Ok(())
}

fn validate_user_id(u: &str) -> Result<()> {
    if u.trim().is_empty() {
        return Err(Error::InvalidParams("userId is empty".into()));
    }
    if u.len() > MAX_USER_ID_LEN {
        return Err(Error::InvalidParams(format!(
            "userId is {} bytes, more than {MAX_USER_ID_LEN}",
            u.len()
        )));
    }
    if u.chars().any(char::is_control) {
        return Err(Error::InvalidParams(
            "userId contains a control character".into(),
        ));
    }
    Ok(())
}

/// How deeply arrays and objects nest in `value`: 0 for a scalar, 1 for
/// `[1]` or `{"a": 1}`, and so on. Iterative, so a deep value cannot
/// exhaust the stack here.
pub fn json_depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(items) => Box::new(items.iter()),
            Value::Object(map) => Box::new(map.values()),
            _ => continue,
        };
        let depth = depth + 1;
        deepest = deepest.max(depth);
        stack.extend(children.map(|c| (c, depth)));
    }
    deepest
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_i16(v: &i16) -> bool {
    *v == 0
}

pub(crate) fn default_max_retries() -> u32 {
    DEFAULT_MAX_RETRIES
}

pub(crate) fn deserialize_unique_key<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<String>, D::Error> {
    let key = Option::<String>::deserialize(d)?;
    if let Some(k) = &key {
        validate_unique_key(k).map_err(serde::de::Error::custom)?;
    }
    Ok(key)
}

/// A job as stored and exchanged: the seed's flat camelCase JSON document.
///
/// The seed's fields come first. Fields this implementation adds are all
/// optional and omitted when they hold their default:
///
/// | field | meaning |
/// | --- | --- |
/// | `attempt` | how many times the job was claimed; the fencing token of a running job |
/// | `runAt` | not due before this time (delayed retry, scheduled jobs) |
/// | `priority` | higher is claimed first among due jobs (default 0) |
/// | `workerId` | the worker holding a running job |
/// | `leaseExpiresAt` | when a running job's lease lapses if its worker cannot be seen |
/// | `completedUnits` | units of work finished by any attempt (sorted, see [`Checkpoint`]) |
/// | `unitCursors` | unit → position inside it (`next`, `size`, `found`, `emitted`, `errors`) |
/// | `uniqueKey` | no other job with this key is created while this one holds it |
/// | `uniqueAfterFinishMs` | the key stays taken this long after the job finished |
///
/// Type parameters (`resourceId`, `entityTypes`, ...) and any field this
/// version does not know live in [`Job::params`] and are written back as
/// top-level fields, so nothing a newer writer added is lost.
///
/// A job also remembers its document [`layout`](Job::layout): the files of
/// the published TypeScript package are nested ([`JobLayout::Nested`]:
/// `status`, a `metadata` object holding the identity, counters and this
/// implementation's fields, a `params` object, the lifecycle fields at top
/// level). [`Job::from_json`] detects the layout and [`Job::to_json`]
/// writes the job back in it. The serde impls of `Job` are the flat shape
/// whatever the layout (the HTTP API's view); [`Job::to_document`] and
/// [`Job::from_document`] are the stored document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job's id; also its file name.
    pub id: JobId,
    /// The job's type.
    #[serde(rename = "type")]
    pub job_type: JobType,
    /// Current status.
    pub status: JobStatus,
    /// Who created the job.
    pub user_id: String,
    /// When the job was created.
    pub created: Timestamp,
    /// When the current (or last) attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When the job finished (complete, failed or cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// The last error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How many times the job was re-queued after a failed attempt.
    #[serde(default)]
    pub retry_count: u32,
    /// How many retries the job may have.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// The last progress report (generic or typed shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
    /// The result of a complete job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Claim count; fences a running job against stale owners.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub attempt: u32,
    /// Not due before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<Timestamp>,
    /// Claim priority, higher first.
    #[serde(default, skip_serializing_if = "is_zero_i16")]
    pub priority: i16,
    /// The worker holding the job while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Lease expiry of a running job, for owners whose liveness cannot be seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_expires_at: Option<Timestamp>,
    /// Units of work finished by any attempt (checkpoints; sorted when
    /// written by [`Job::apply_checkpoint`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub completed_units: Vec<String>,
    /// Positions inside unfinished units (checkpoints).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unit_cursors: BTreeMap<String, UnitCursor>,
    /// The job's unique key, if it has one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "deserialize_unique_key"
    )]
    pub unique_key: Option<String>,
    /// How long after finishing the job still holds its unique key, in
    /// milliseconds (absent: only while pending or running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_after_finish_ms: Option<u64>,
    /// Type parameters and, in the flat layout, unknown fields, written
    /// back at top level (flat) or as the `params` object (nested).
    #[serde(flatten)]
    pub params: Map<String, Value>,
    /// The layout the document is stored in; writes keep it.
    #[serde(skip)]
    pub layout: JobLayout,
    /// Unknown fields of a nested document (empty for a flat one, whose
    /// unknown fields are in [`Job::params`]).
    #[serde(skip)]
    pub nested_extra: NestedExtra,
}

impl Job {
    /// Parses a job document in either layout (see [`JobLayout::of_document`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        // A document that parses as flat has a top-level `id`: it is flat.
        // One that does not is read as nested (flat when it has an `id`
        // after all). Which parse is tried first only saves time: flat
        // first unless the document starts with `"status"`, as nested
        // documents written by either implementation do.
        if !starts_with_status(bytes) {
            if let Ok(job) = serde_json::from_slice::<Job>(bytes) {
                return Ok(job);
            }
        }
        match nested_from_slice(bytes) {
            Ok(job) if !job.nested_extra.top.contains_key("id") => Ok(job),
            nested => match serde_json::from_slice::<Job>(bytes) {
                Ok(job) => Ok(job),
                Err(flat) => {
                    let flat = Error::InvalidJob(flat.to_string());
                    match (nested, serde_json::from_slice::<Map<String, Value>>(bytes)) {
                        (Err(e), Ok(doc)) if JobLayout::of_document(&doc) == JobLayout::Nested => {
                            Err(e)
                        }
                        _ => Err(flat),
                    }
                }
            },
        }
    }

    /// Reads a job from a parsed document in either layout.
    pub fn from_document(doc: Value) -> Result<Self> {
        match &doc {
            Value::Object(map) if JobLayout::of_document(map) == JobLayout::Nested => {
                nested_from_value(doc)
            }
            _ => serde_json::from_value(doc).map_err(|e| Error::InvalidJob(e.to_string())),
        }
    }

    /// The stored document of the job, in its layout.
    pub fn to_document(&self) -> Value {
        match self.layout {
            JobLayout::Flat => serde_json::to_value(self).unwrap_or(Value::Null),
            JobLayout::Nested => to_nested(self),
        }
    }

    /// Serializes the job document in its layout (pretty-printed, as the
    /// seed and the TypeScript package write it).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a Job cannot fail: all map keys are strings.
        match self.layout {
            JobLayout::Flat => serde_json::to_vec_pretty(self).unwrap_or_default(),
            JobLayout::Nested => serde_json::to_vec_pretty(&to_nested(self)).unwrap_or_default(),
        }
    }

    /// The typed parameters, checked against the job's type.
    pub fn params_typed(&self) -> Result<JobParams> {
        Ok(match &self.job_type {
            JobType::Detection => JobParams::Detection(self.params_as()?),
            JobType::Generation => JobParams::Generation(self.params_as()?),
            other => JobParams::Custom {
                job_type: other.clone(),
                params: self.params.clone(),
            },
        })
    }

    /// The detection parameters (an error if this is not a detection job or
    /// its fields are malformed).
    pub fn detection_params(&self) -> Result<DetectionParams> {
        self.expect_type(&JobType::Detection)?;
        self.params_as()
    }

    /// The generation parameters (an error if this is not a generation job
    /// or its fields are malformed).
    pub fn generation_params(&self) -> Result<GenerationParams> {
        self.expect_type(&JobType::Generation)?;
        self.params_as()
    }

    /// Reads the parameters into any shape.
    pub fn params_as<T: DeserializeOwned>(&self) -> Result<T> {
        T::deserialize(serde_json::Value::Object(self.params.clone()))
            .map_err(|e| Error::InvalidParams(format!("job {}: {e}", self.id)))
    }

    /// Reads the last progress report into a typed shape.
    pub fn progress_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.progress
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::InvalidProgress(format!("job {}: {e}", self.id)))
    }

    /// Reads the result into a typed shape.
    pub fn result_as<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        self.result
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| Error::InvalidParams(format!("result of job {}: {e}", self.id)))
    }

    /// Whether a pending job may start at `now`.
    pub fn is_due(&self, now: Timestamp) -> bool {
        self.run_at.is_none_or(|t| t <= now)
    }

    /// Merges a checkpoint into the job's `completedUnits` and
    /// `unitCursors` ([`merge_checkpoint`]); returns whether anything
    /// changed.
    pub fn apply_checkpoint(&mut self, checkpoint: &Checkpoint) -> bool {
        merge_checkpoint(
            &mut self.completed_units,
            &mut self.unit_cursors,
            checkpoint,
        )
    }

    /// Whether `unit` is among the completed units.
    pub fn unit_completed(&self, unit: &str) -> bool {
        self.completed_units.iter().any(|u| u == unit)
    }

    /// Whether the job holds its unique key at `now`: it has one, and it is
    /// pending or running, or finished less than `uniqueAfterFinishMs` ago.
    /// A job without a key holds none.
    pub fn holds_unique_key(&self, now: Timestamp) -> bool {
        if self.unique_key.is_none() {
            return false;
        }
        if !self.status.is_finished() {
            return true;
        }
        // A finished job without a completion time (written by hand or
        // by another program) holds nothing.
        match (self.unique_after_finish_ms, self.completed_at) {
            (Some(ms), Some(done)) => now < done.add(Duration::from_millis(ms)),
            _ => false,
        }
    }

    fn expect_type(&self, want: &JobType) -> Result<()> {
        if &self.job_type == want {
            Ok(())
        } else {
            Err(Error::InvalidParams(format!(
                "job {} has type {}, not {want}",
                self.id, self.job_type
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn sample() -> Job {
        NewJob::detection("user-123", "doc-456", ["Person", "Organization"])
            .max_retries(3)
            .into_job(
                JobId::parse("job-abc123xyz").unwrap(),
                Timestamp::parse("2024-01-15T10:30:00.000Z").unwrap(),
                DEFAULT_MAX_RETRIES,
            )
            .unwrap()
    }

    #[test]
    fn serializes_to_the_seed_shape() {
        let v: Value = serde_json::from_slice(&sample().to_json()).unwrap();
        assert_eq!(
            v,
            json!({
                "id": "job-abc123xyz",
                "type": "detection",
                "status": "pending",
                "userId": "user-123",
                "created": "2024-01-15T10:30:00.000Z",
                "retryCount": 0,
                "maxRetries": 3,
                "resourceId": "doc-456",
                "entityTypes": ["Person", "Organization"]
            })
        );
    }

    #[test]
    fn unknown_fields_survive_read_modify_write() {
        let mut v: Value = serde_json::from_slice(&sample().to_json()).unwrap();
        v["futureField"] = json!({"nested": [1, 2, 3]});
        let mut job = Job::from_json(v.to_string().as_bytes()).unwrap();
        job.status = JobStatus::Running;
        let back: Value = serde_json::from_slice(&job.to_json()).unwrap();
        assert_eq!(back["futureField"], json!({"nested": [1, 2, 3]}));
        assert_eq!(back["status"], "running");
    }

    #[test]
    fn checkpoints_and_unique_keys_in_the_document() {
        let mut job = sample();
        job.unique_key = Some("doc-456:detect".into());
        job.apply_checkpoint(&Checkpoint::unit_done("Person"));
        job.apply_checkpoint(&Checkpoint::cursor("Organization", UnitCursor::at(2, 5)));
        let v: Value = serde_json::from_slice(&job.to_json()).unwrap();
        assert_eq!(v["completedUnits"], json!(["Person"]));
        assert_eq!(
            v["unitCursors"],
            json!({"Organization": {"next": 2, "size": 5, "found": 0, "emitted": 0, "errors": 0}})
        );
        assert_eq!(v["uniqueKey"], "doc-456:detect");
        assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
        // Empty checkpoints leave no keys behind.
        let plain: Value = serde_json::from_slice(&sample().to_json()).unwrap();
        for key in [
            "completedUnits",
            "unitCursors",
            "uniqueKey",
            "uniqueAfterFinishMs",
        ] {
            assert!(plain.get(key).is_none(), "{key}");
        }
        // A bad key in a document is rejected like any other bad field.
        let mut bad = v.clone();
        bad["uniqueKey"] = json!("");
        assert!(Job::from_json(bad.to_string().as_bytes()).is_err());
    }

    #[test]
    fn unique_key_holding_table() {
        let t0 = Timestamp::parse("2026-01-01T00:00:00.000Z").unwrap();
        let secs = |s: u64| t0.add(Duration::from_secs(s));
        let job = |status: JobStatus, after_ms: Option<u64>, done: Option<u64>| {
            let mut j = sample();
            j.unique_key = Some("k".into());
            j.status = status;
            j.unique_after_finish_ms = after_ms;
            j.completed_at = done.map(secs);
            j
        };
        use JobStatus::*;
        let table = [
            (job(Pending, None, None), 100, true),
            (job(Running, None, None), 100, true),
            (job(Complete, None, Some(10)), 11, false),
            (job(Failed, None, Some(10)), 11, false),
            (job(Cancelled, Some(60_000), Some(10)), 69, true),
            (job(Cancelled, Some(60_000), Some(10)), 70, false),
            (job(Complete, Some(60_000), None), 0, false),
            (job(Pending, Some(60_000), None), 1_000_000, true),
        ];
        for (j, at, held) in table {
            assert_eq!(j.holds_unique_key(secs(at)), held, "{:?} at {at}", j.status);
        }
        let mut keyless = sample();
        keyless.unique_key = None;
        assert!(!keyless.holds_unique_key(t0));
    }

    #[test]
    fn new_job_defaults_and_unique_options() {
        let id = JobId::parse("job-1").unwrap();
        let t = Timestamp::parse("2026-01-01T00:00:00.000Z").unwrap();
        let d = JobDefaults {
            max_retries: 7,
            priority: 4,
            ..JobDefaults::default()
        };
        let j = NewJob::custom("t", "u", json!({}))
            .unwrap()
            .into_job_with(id.clone(), t, d)
            .unwrap();
        assert_eq!((j.max_retries, j.priority), (7, 4));
        let j = NewJob::custom("t", "u", json!({}))
            .unwrap()
            .priority(-1)
            .max_retries(0)
            .unique_key("k1")
            .unique_after_finish(Duration::from_secs(60))
            .into_job_with(id.clone(), t, d)
            .unwrap();
        assert_eq!((j.max_retries, j.priority), (0, -1));
        assert_eq!(j.unique_key.as_deref(), Some("k1"));
        assert_eq!(j.unique_after_finish_ms, Some(60_000));
        for bad in ["", "  ", "a\u{0}b", &"k".repeat(201)] {
            let e = NewJob::custom("t", "u", json!({}))
                .unwrap()
                .unique_key(bad)
                .into_job_with(id.clone(), t, d)
                .unwrap_err();
            assert!(matches!(e, Error::InvalidUniqueKey { .. }), "{bad:?}: {e}");
        }
    }

    #[test]
    fn typed_params() {
        let job = sample();
        assert_eq!(
            job.detection_params().unwrap().entity_types,
            ["Person", "Organization"]
        );
        assert!(job.generation_params().is_err());
        assert!(matches!(
            job.params_typed().unwrap(),
            JobParams::Detection(_)
        ));
    }

    fn rejects(new: NewJob) -> Error {
        new.into_job(JobId::generate(), Timestamp::now(), 3)
            .unwrap_err()
    }

    #[test]
    fn bad_new_jobs_are_rejected_with_a_reason() {
        let e = rejects(NewJob::detection("u", "doc", Vec::<String>::new()));
        assert_eq!(e.to_string(), "invalid parameters: entityTypes is empty");
        let e = rejects(NewJob::detection("", "doc", ["Person"]));
        assert!(e.to_string().contains("userId"), "{e}");
        let e = rejects(NewJob::detection("u", "doc", ["Person"]).max_retries(101));
        assert_eq!(e, Error::MaxRetriesOutOfRange(101));
        let e = rejects(NewJob::custom("t", "u", json!({"status": "complete"})).unwrap());
        assert!(e.to_string().contains("\"status\""), "{e}");
        let big = "x".repeat(MAX_PARAMS_BYTES + 1);
        let e = rejects(NewJob::custom("t", "u", json!({ "blob": big })).unwrap());
        assert!(e.to_string().contains("more than the limit"), "{e}");
        assert!(NewJob::custom("t", "u", json!([1])).is_err());
        assert!(NewJob::custom("bad type", "u", json!({})).is_err());
        let e = rejects(NewJob::generation("u", GenerationParams::default()));
        assert!(e.to_string().contains("referenceId"), "{e}");
    }

    fn nested(depth: usize) -> Value {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!([v]);
        }
        v
    }

    #[test]
    fn json_depth_table() {
        assert_eq!(json_depth(&json!(1)), 0);
        assert_eq!(json_depth(&json!([])), 1);
        assert_eq!(json_depth(&json!({"a": [1, {"b": 2}]})), 3);
        assert_eq!(json_depth(&nested(1_000)), 1_000);
    }

    #[test]
    fn params_nested_past_the_limit_are_rejected_and_the_rest_read_back() {
        // Found by the hardening suite: params nested ~127 levels deep were
        // accepted, written, and then unreadable (serde_json's limit is 128).
        let ok = NewJob::custom("t", "u", json!({ "a": nested(MAX_JSON_DEPTH - 1) })).unwrap();
        let job = ok.into_job(JobId::generate(), Timestamp::now(), 3).unwrap();
        assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
        let deep = NewJob::custom("t", "u", json!({ "a": nested(MAX_JSON_DEPTH) })).unwrap();
        let e = rejects(deep);
        assert!(e.to_string().contains("nested 65 levels deep"), "{e}");
    }

    #[test]
    fn job_type_parsing() {
        assert_eq!(JobType::parse("detection").unwrap(), JobType::Detection);
        assert_eq!(
            JobType::parse("my-job-type").unwrap().as_str(),
            "my-job-type"
        );
        for bad in ["", "a b", "a/b", &"t".repeat(65)] {
            assert!(JobType::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn wrong_schema_is_rejected() {
        for bad in [
            "{}",
            r#"{"id":"job-1","type":"noop","status":"pending","userId":"u"}"#,
            r#"{"id":"job-1","type":"noop","status":"done","userId":"u","created":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"../x","type":"noop","status":"pending","userId":"u","created":"2024-01-01T00:00:00Z"}"#,
            r#"{"id":"job-1","type":"noop","status":"pending","userId":"u","created":"2024-01-01T00:00:00Z","retryCount":-1}"#,
            "[]",
            "null",
        ] {
            assert!(Job::from_json(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "[a-z ]{0,8}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    prop_compose! {
        fn arb_job()(
            status in prop::sample::select(JobStatus::ALL.to_vec()),
            ty in "[a-z][a-z0-9-]{0,10}",
            user in "[a-zA-Z0-9-]{1,12}",
            created in 0i64..4_000_000_000_000,
            retry in 0u32..10, max in 0u32..10, attempt in 0u32..10,
            priority in any::<i16>(),
            error in proptest::option::of("[ -~]{0,20}"),
            progress in proptest::option::of(arb_value()),
            extra in prop::collection::btree_map("x[a-z]{1,6}", arb_value(), 0..4),
            units in prop::collection::vec("[A-Za-z]{1,8}", 0..3),
            cursors in prop::collection::btree_map("[A-Za-z]{1,8}", 0u64..100, 0..3),
            unique in proptest::option::of("[a-z:0-9-]{1,20}"),
        ) -> Job {
            Job {
                id: JobId::generate(),
                job_type: JobType::parse(&ty).unwrap(),
                status,
                user_id: user,
                created: Timestamp::from_millis(created),
                started_at: Some(Timestamp::from_millis(created + 5)),
                completed_at: None,
                error,
                retry_count: retry,
                max_retries: max,
                progress: progress.filter(|v| !v.is_null()),
                result: None,
                attempt,
                run_at: None,
                priority,
                worker_id: Some("w1".into()),
                lease_expires_at: None,
                completed_units: units,
                unit_cursors: cursors.into_iter().map(|(u, n)| (u, crate::UnitCursor::at(n, n + 1))).collect(),
                unique_key: unique,
                unique_after_finish_ms: None,
                params: extra.into_iter().collect(),
                layout: JobLayout::Flat,
                nested_extra: NestedExtra::default(),
            }
        }
    }

    proptest! {
        #[test]
        fn json_round_trip(job in arb_job()) {
            let back = Job::from_json(&job.to_json()).unwrap();
            prop_assert_eq!(back, job);
        }

        #[test]
        fn nested_json_round_trip(mut job in arb_job()) {
            job.layout = JobLayout::Nested;
            let back = Job::from_json(&job.to_json()).unwrap();
            prop_assert_eq!(&back, &job);
            prop_assert_eq!(Job::from_document(job.to_document()).unwrap(), job);
        }
    }
}
