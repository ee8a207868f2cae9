//! Handlers of single jobs: create (with `Idempotency-Key`), read (with
//! `ETag`), list (the seed's filters), cancel, retry and delete (with
//! `If-Match`).

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use semiont_jobs_model::{
    validate_unique_key, DetectionParams, GenerationParams, Job, JobFilter, JobId, JobParams,
    JobType, NewJob, Timestamp, RESERVED_FIELDS,
};
use semiont_jobs_store::Expect;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::auth::{AdminAccess, ReadAccess, WriteAccess};
use crate::extract::{etag, IdempotencyKey, IfMatch, JobIdPath, JsonBody, QueryMap};
use crate::idempotency::Begin;
use crate::{AppState, Error, ErrorKind, Result};

/// Largest page of `GET /jobs`.
pub const MAX_PAGE: usize = 1000;
/// Largest `offset` of `GET /jobs`.
pub const MAX_OFFSET: usize = 1_000_000_000;
/// Longest accepted `uniqueAfterFinishMs` (about 31,700 years).
const MAX_UNIQUE_AFTER_MS: u64 = 999_999_999_999_999;
/// Longest accepted `userId`.
const MAX_USER_ID: usize = 256;

const DETECTION_FIELDS: &[&str] = &["resourceId", "entityTypes"];
const GENERATION_FIELDS: &[&str] = &[
    "referenceId",
    "sourceResourceId",
    "prompt",
    "title",
    "entityTypes",
    "language",
];

/// A job with its `ETag` (and, when created, its `Location`).
pub(crate) struct JobResponse {
    status: StatusCode,
    job: Job,
    location: Option<String>,
}

impl JobResponse {
    fn ok(job: Job) -> Self {
        JobResponse {
            status: StatusCode::OK,
            job,
            location: None,
        }
    }
}

impl IntoResponse for JobResponse {
    fn into_response(self) -> Response {
        let mut headers = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(&etag(&self.job)) {
            headers.insert(header::ETAG, v);
        }
        if let Some(v) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            headers.insert(header::LOCATION, v);
        }
        (self.status, headers, Json(self.job)).into_response()
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn take_string(body: &mut Map<String, Value>, field: &str) -> Result<Option<String>> {
    match body.remove(field) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(Error::invalid(format!(
            "{field} must be a string, not {}",
            kind_of(&other)
        ))),
    }
}

fn take_integer<T: TryFrom<i64>>(
    body: &mut Map<String, Value>,
    field: &str,
    range: &str,
) -> Result<Option<T>> {
    match body.remove(field) {
        None => Ok(None),
        // JSON Schema counts 3.0 as an integer; so does this API.
        Some(v) => v
            .as_i64()
            .or_else(|| {
                v.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                    .map(|f| f as i64)
            })
            .and_then(|n| T::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "{field} must be a whole number in {range}, not {v}"
                ))
            }),
    }
}

/// Refuses `value` of the body's `field` unless it is printable ASCII (the
/// API's documented form for ids and keys, so that a length in characters
/// is a length in bytes); `what` names such values in the message.
fn printable_ascii(value: &str, field: &str, what: &str) -> Result<()> {
    match value.chars().find(|c| !(' '..='~').contains(c)) {
        Some(c) => Err(Error::invalid(format!(
            "{field} contains {c:?}: the API takes printable ASCII {what}"
        ))),
        None => Ok(()),
    }
}

/// A user id from a request: non-empty, at most 256 bytes, no control
/// characters.
pub(crate) fn validate_user(user: &str) -> Result<()> {
    if user.trim().is_empty() {
        return Err(Error::invalid("userId is empty"));
    }
    if user.len() > MAX_USER_ID {
        return Err(Error::invalid(format!(
            "userId is longer than {MAX_USER_ID} bytes"
        )));
    }
    if user.chars().any(char::is_control) {
        return Err(Error::invalid("userId contains a control character"));
    }
    // The API's documented form (the OpenAPI pattern `^[!-~]([ -~]*[!-~])?$`):
    // printable ASCII, no space at either end.
    printable_ascii(user, "userId", "user ids")?;
    if user.starts_with(' ') || user.ends_with(' ') {
        return Err(Error::invalid("userId starts or ends with a space"));
    }
    Ok(())
}

fn typed_params<T: serde::de::DeserializeOwned>(
    body: Map<String, Value>,
    job_type: &str,
    allowed: &[&str],
) -> Result<T> {
    if let Some((field, _)) = body.iter().find(|(_, v)| v.is_null()) {
        return Err(Error::invalid(format!(
            "{field} is null; leave an optional field out instead"
        )));
    }
    if let Some(unknown) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "unknown field {:?} for a {job_type} job (expected type, userId, maxRetries, priority, runAt, uniqueKey, uniqueAfterFinishMs, {})",
            unknown.chars().take(40).collect::<String>(),
            allowed.join(", ")
        )));
    }
    serde_json::from_value(Value::Object(body))
        .map_err(|e| Error::invalid(format!("invalid {job_type} parameters: {e}")))
}

/// The seed's `createJob` object → a [`NewJob`]: `type`, `userId`, the
/// type's fields, `maxRetries`, and this project's `priority`, `runAt`,
/// `uniqueKey` and `uniqueAfterFinishMs`.
/// Detection and generation jobs refuse unknown fields; a custom type's
/// other fields are its parameters.
pub(crate) fn new_job(mut body: Map<String, Value>) -> Result<NewJob> {
    let job_type = take_string(&mut body, "type")?.ok_or_else(|| {
        Error::invalid("type is required (detection, generation or a custom type name)")
    })?;
    let job_type = JobType::parse(&job_type).map_err(|e| Error::invalid(e.to_string()))?;
    let user =
        take_string(&mut body, "userId")?.ok_or_else(|| Error::invalid("userId is required"))?;
    validate_user(&user)?;
    let max_retries: Option<u32> = take_integer(&mut body, "maxRetries", "0..=100")?;
    let priority: Option<i16> = take_integer(&mut body, "priority", "-32768..=32767")?;
    let run_at = take_string(&mut body, "runAt")?
        .map(|t| Timestamp::parse(&t))
        .transpose()
        .map_err(|e| Error::invalid(e.to_string()))?;
    let unique_key = take_string(&mut body, "uniqueKey")?;
    if let Some(key) = &unique_key {
        validate_unique_key(key).map_err(|e| Error::invalid(e.to_string()))?;
        // The API's documented form (the OpenAPI pattern
        // `^[ -~]*[!-~][ -~]*$`), as for user ids.
        printable_ascii(key, "uniqueKey", "unique keys")?;
    }
    let unique_after: Option<u64> =
        take_integer(&mut body, "uniqueAfterFinishMs", "0..=999999999999999")?;
    if unique_after.is_some_and(|ms| ms > MAX_UNIQUE_AFTER_MS) {
        return Err(Error::invalid(
            "uniqueAfterFinishMs must be a whole number in 0..=999999999999999",
        ));
    }
    if unique_after.is_some() && unique_key.is_none() {
        return Err(Error::invalid("uniqueAfterFinishMs needs a uniqueKey"));
    }
    if let Some(reserved) = body.keys().find(|k| RESERVED_FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid(format!(
            "field {reserved} is set by the queue and cannot be given"
        )));
    }
    let params = match job_type {
        JobType::Detection => JobParams::Detection(typed_params::<DetectionParams>(
            body,
            "detection",
            DETECTION_FIELDS,
        )?),
        JobType::Generation => JobParams::Generation(typed_params::<GenerationParams>(
            body,
            "generation",
            GENERATION_FIELDS,
        )?),
        custom => JobParams::Custom {
            job_type: custom,
            params: body,
        },
    };
    let mut new = NewJob::new(params, user);
    new.max_retries = max_retries;
    new.run_at = run_at;
    new.priority = priority;
    if let Some(key) = unique_key {
        new = new.unique_key(key);
    }
    if let Some(ms) = unique_after {
        new = new.unique_after_finish(std::time::Duration::from_millis(ms));
    }
    Ok(new)
}

/// `POST /api/v1/jobs`.
pub(crate) async fn create(
    State(state): State<AppState>,
    WriteAccess(caller): WriteAccess,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<Value>,
) -> Result<JobResponse> {
    let Value::Object(map) = body.value else {
        return Err(Error::invalid(format!(
            "the request body must be a JSON object, not {}",
            kind_of(&body.value)
        )));
    };
    let new = new_job(map)?;
    let reservation = match key {
        None => None,
        Some(key) => match state
            .idempotency()
            .begin(caller.token, key, body.fingerprint)?
        {
            Begin::Replay(id) => {
                let job = state
                    .queue()
                    .get_job(&id)
                    .await
                    .map_err(|e| match e.kind() {
                        semiont_jobs_queue::ErrorKind::NotFound => Error::not_found(format!(
                            "job {id}, created for this Idempotency-Key, no longer exists"
                        )),
                        _ => e.into(),
                    })?;
                return Ok(JobResponse::ok(job));
            }
            Begin::Fresh(r) => Some(r),
        },
    };
    let enqueued = state.queue().enqueue(new).await?;
    let job = enqueued.job;
    if let Some(r) = reservation {
        r.finish(job.id.clone());
    }
    if !enqueued.created {
        // Another job holds the request's unique key: that one.
        return Ok(JobResponse::ok(job));
    }
    let location = format!("{}/api/v1/jobs/{}", state.config().base_path, job.id);
    Ok(JobResponse {
        status: StatusCode::CREATED,
        job,
        location: Some(location),
    })
}

/// `GET /api/v1/jobs/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    _: ReadAccess,
    JobIdPath(id): JobIdPath,
) -> Result<JobResponse> {
    Ok(JobResponse::ok(state.queue().get_job(&id).await?))
}

/// A page of `GET /api/v1/jobs`.
#[derive(Serialize)]
pub(crate) struct ListResponse {
    jobs: Vec<Job>,
    total: usize,
    limit: usize,
    offset: usize,
}

/// The seed's filters from a query (status, type, userId, limit, offset).
pub(crate) fn list_filter(query: Option<&str>) -> Result<JobFilter> {
    let q = QueryMap::parse(query, &["status", "type", "userId", "limit", "offset"])?;
    let mut filter = JobFilter::default()
        .limit(q.number("limit", semiont_jobs_model::DEFAULT_LIST_LIMIT, MAX_PAGE)?)
        .offset(q.number("offset", 0, MAX_OFFSET)?);
    if let Some(s) = q.get("status") {
        filter.status = Some(
            s.parse()
                .map_err(|e: semiont_jobs_model::Error| Error::invalid(e.to_string()))?,
        );
    }
    if let Some(t) = q.get("type") {
        filter.job_type = Some(JobType::parse(t).map_err(|e| Error::invalid(e.to_string()))?);
    }
    if let Some(u) = q.get("userId") {
        validate_user(u)?;
        filter.user_id = Some(u.to_owned());
    }
    Ok(filter)
}

/// `GET /api/v1/jobs`.
pub(crate) async fn list(
    State(state): State<AppState>,
    _: ReadAccess,
    RawQuery(query): RawQuery,
) -> Result<Json<ListResponse>> {
    let filter = list_filter(query.as_deref())?;
    let page = state.queue().list_jobs(&filter).await?;
    Ok(Json(ListResponse {
        jobs: page.jobs,
        total: page.total,
        limit: filter.limit,
        offset: filter.offset,
    }))
}

/// Reads the job when `If-Match` needs it, and refuses a changed job.
async fn check_if_match(state: &AppState, id: &JobId, if_match: &IfMatch) -> Result<()> {
    if !if_match.is_present() {
        return Ok(());
    }
    let job = state.queue().get_job(id).await?;
    if !if_match.allows(&job) {
        return Err(precondition_failed(&job));
    }
    Ok(())
}

fn precondition_failed(job: &Job) -> Error {
    Error::new(
        ErrorKind::PreconditionFailed,
        format!(
            "job {} changed: it is now {} (ETag {})",
            job.id,
            job.status,
            etag(job)
        ),
    )
}

/// `POST /api/v1/jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    _: WriteAccess,
    JobIdPath(id): JobIdPath,
    if_match: IfMatch,
) -> Result<JobResponse> {
    check_if_match(&state, &id, &if_match).await?;
    Ok(JobResponse::ok(state.queue().cancel_job(&id).await?))
}

/// `POST /api/v1/jobs/{id}/retry`.
pub(crate) async fn retry(
    State(state): State<AppState>,
    _: WriteAccess,
    JobIdPath(id): JobIdPath,
    if_match: IfMatch,
) -> Result<JobResponse> {
    check_if_match(&state, &id, &if_match).await?;
    Ok(JobResponse::ok(state.queue().retry_job(&id).await?))
}

/// Deletes a finished job, conditional on its status (and, with
/// `If-Match`, its attempt): a job that moved meanwhile is not deleted.
pub(crate) async fn delete_job(state: &AppState, job: &Job, exact: bool) -> Result<()> {
    if !job.status.is_finished() {
        return Err(Error::conflict(format!(
            "job {} is {}; only complete, failed or cancelled jobs can be deleted (cancel it first)",
            job.id, job.status
        )));
    }
    let expect = Expect {
        status: job.status,
        attempt: exact.then_some(job.attempt),
    };
    state
        .queue()
        .store()
        .delete(&job.id, expect)
        .await
        .map_err(|e| {
            if exact && e.kind() == semiont_jobs_store::ErrorKind::Conflict {
                Error::new(
                    ErrorKind::PreconditionFailed,
                    format!("job {} changed while being deleted", job.id),
                )
            } else {
                e.into()
            }
        })
}

/// `DELETE /api/v1/jobs/{id}`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    _: AdminAccess,
    JobIdPath(id): JobIdPath,
    if_match: IfMatch,
) -> Result<StatusCode> {
    let job = state.queue().get_job(&id).await?;
    if !if_match.allows(&job) {
        return Err(precondition_failed(&job));
    }
    delete_job(&state, &job, if_match.is_present()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use semiont_jobs_model::JobStatus;
    use serde_json::json;

    fn parse(v: Value) -> Result<NewJob> {
        match v {
            Value::Object(m) => new_job(m),
            _ => unreachable!(),
        }
    }

    /// `check` accepts each of `ok` and refuses each of `bad` with a
    /// message containing its reason.
    fn accepts_and_refuses<T>(
        check: impl Fn(&str) -> Result<T>,
        ok: &[&str],
        bad: &[(&str, &str)],
    ) {
        for ok in ok {
            if let Err(e) = check(ok) {
                panic!("{ok:?}: {e}");
            }
        }
        for (bad, why) in bad {
            let Err(e) = check(bad) else {
                panic!("{bad:?} was accepted");
            };
            let e = e.to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn user_ids_are_printable_ascii_as_documented() {
        accepts_and_refuses(
            validate_user,
            &["u", "user@example.com", "a b", "~!"],
            &[
                ("\u{d8}", "printable ASCII"),
                ("caf\u{e9}", "printable ASCII"),
                (" u", "space"),
                ("u ", "space"),
                ("", "empty"),
                ("a\tb", "control"),
            ],
        );
        assert!(validate_user(&"x".repeat(257)).is_err());
        assert!(validate_user(&"x".repeat(256)).is_ok());
    }

    #[test]
    fn unique_keys_are_printable_ascii_as_documented() {
        accepts_and_refuses(
            |key| parse(json!({ "type": "t", "userId": "u", "uniqueKey": key })),
            &["k", "a b", " x ", "~!"],
            &[
                ("\u{ec}\u{c0}\u{be}", "printable ASCII"),
                ("caf\u{e9}", "printable ASCII"),
                ("   ", "empty"),
                ("a\tb", "control"),
            ],
        );
    }

    #[test]
    fn the_seed_create_object_is_accepted() {
        let new = parse(json!({
            "type": "detection", "userId": "user-123", "resourceId": "doc-456",
            "entityTypes": ["Person", "Organization"], "maxRetries": 3,
            "priority": 5, "runAt": "2030-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(new.user_id, "user-123");
        assert_eq!(new.max_retries, Some(3));
        assert_eq!(new.priority, Some(5));
        assert!(new.run_at.is_some());
        let unique = parse(json!({"type": "noop", "userId": "u", "uniqueKey": "report:1", "uniqueAfterFinishMs": 60000})).unwrap();
        assert_eq!(unique.unique_key.as_deref(), Some("report:1"));
        let whole = parse(json!({"type": "noop", "userId": "u", "maxRetries": 2.0})).unwrap();
        assert_eq!(whole.max_retries, Some(2));
        assert!(matches!(new.params, JobParams::Detection(ref p) if p.entity_types.len() == 2));
        let custom = parse(json!({"type": "sleep", "userId": "u", "ms": 10})).unwrap();
        assert!(
            matches!(custom.params, JobParams::Custom { ref params, .. } if params["ms"] == 10)
        );
    }

    #[test]
    fn bad_create_objects_name_the_field() {
        let cases = [
            (json!({"userId": "u"}), "type is required"),
            (
                json!({"type": 5, "userId": "u"}),
                "type must be a string, not a number",
            ),
            (json!({"type": "a b", "userId": "u"}), "invalid job type"),
            (json!({"type": "noop"}), "userId is required"),
            (json!({"type": "noop", "userId": ""}), "userId is empty"),
            (
                json!({"type": "noop", "userId": "u", "maxRetries": -1}),
                "maxRetries must be a whole number",
            ),
            (
                json!({"type": "noop", "userId": "u", "maxRetries": 1.5}),
                "maxRetries must be a whole number",
            ),
            (
                json!({"type": "noop", "userId": "u", "priority": 40000}),
                "priority must be a whole number",
            ),
            (
                json!({"type": "noop", "userId": "u", "runAt": "tomorrow"}),
                "invalid timestamp",
            ),
            (
                json!({"type": "noop", "userId": "u", "status": "complete"}),
                "field status is set by the queue",
            ),
            (
                json!({"type": "noop", "userId": "u", "uniqueKey": " "}),
                "invalid unique key",
            ),
            (
                json!({"type": "noop", "userId": "u", "uniqueKey": 5}),
                "uniqueKey must be a string",
            ),
            (
                json!({"type": "noop", "userId": "u", "uniqueAfterFinishMs": 5}),
                "needs a uniqueKey",
            ),
            (
                json!({"type": "noop", "userId": "u", "uniqueKey": "k", "uniqueAfterFinishMs": 1e16}),
                "uniqueAfterFinishMs must be a whole number",
            ),
            (
                json!({"type": "detection", "userId": "u", "resourceId": "d", "entityTypes": ["P"], "extra": 1}),
                "unknown field \"extra\" for a detection job",
            ),
            (
                json!({"type": "detection", "userId": "u", "resourceId": 5, "entityTypes": ["P"]}),
                "invalid detection parameters",
            ),
            (
                json!({"type": "generation", "userId": "u"}),
                "invalid generation parameters",
            ),
        ];
        for (body, want) in cases {
            let e = parse(body.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert!(e.to_string().contains(want), "{body}: {e}");
        }
    }

    #[test]
    fn list_filters_are_validated() {
        let f = list_filter(Some("status=failed&type=noop&userId=u1&limit=5&offset=10")).unwrap();
        assert_eq!(f.status, Some(JobStatus::Failed));
        assert_eq!((f.limit, f.offset), (5, 10));
        for (q, want) in [
            ("status=done", "unknown job status"),
            ("type=a/b", "invalid job type"),
            ("limit=1001", "limit must be a whole number from 0 to 1000"),
            ("offset=x", "offset must be"),
            ("userId=", "userId is empty"),
            ("sort=id", "unknown query parameter"),
        ] {
            let e = list_filter(Some(q)).unwrap_err();
            assert!(e.to_string().contains(want), "{q}: {e}");
        }
    }
}
