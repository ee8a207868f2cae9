//! Read-only views: queue statistics, the caller's role, health and
//! readiness, Prometheus metrics, the OpenAPI document, and the problem
//! documents for unknown routes and methods.

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use semiont_jobs_model::{JobStatus, JobType, QueueStats};
use serde::Serialize;
use serde_json::{json, Value};

use crate::auth::{Caller, ReadAccess, WriteAccess};
use crate::extract::QueryMap;
use crate::metrics::header as metric_header;
use crate::{AppState, Error, ErrorKind, Result};

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Refuses any query parameter (endpoints that take none).
fn no_query(query: Option<&str>) -> Result<()> {
    QueryMap::parse(query, &[]).map(drop)
}

/// `GET /api/v1/stats`: job counts per status (the seed's `getStats`).
pub(crate) async fn stats(
    State(state): State<AppState>,
    _: ReadAccess,
    RawQuery(query): RawQuery,
) -> Result<Json<QueueStats>> {
    no_query(query.as_deref())?;
    Ok(Json(state.queue().get_stats().await?))
}

/// One job type's counts in `GET /api/v1/types`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TypeView {
    #[serde(rename = "type")]
    job_type: String,
    pending: u64,
    running: u64,
    complete: u64,
    failed: u64,
    cancelled: u64,
    total: u64,
    paused: bool,
}

/// `GET /api/v1/types`: job counts per status for each type that has jobs
/// (one store call; no scan of the jobs).
pub(crate) async fn types(
    State(state): State<AppState>,
    _: ReadAccess,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    no_query(query.as_deref())?;
    let mut per_type = state.queue().get_type_stats().await?;
    // A paused type without jobs is still worth showing (to resume it).
    for t in state.queue().paused_types().await? {
        per_type.entry(t).or_default().paused = true;
    }
    let types: Vec<TypeView> = per_type
        .into_iter()
        .map(|(t, s)| TypeView {
            job_type: t.to_string(),
            pending: s.pending,
            running: s.running,
            complete: s.complete,
            failed: s.failed,
            cancelled: s.cancelled,
            total: s.total(),
            paused: s.paused,
        })
        .collect();
    Ok(Json(json!({ "types": types })))
}

/// A job type from the `{type}` path segment, validated.
pub(crate) struct TypePath(JobType);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for TypePath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Self> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|e| Error::invalid(format!("invalid job type in the path: {e}")))?;
        JobType::parse(&raw)
            .map(TypePath)
            .map_err(|e| Error::invalid(e.to_string()))
    }
}

/// `POST /api/v1/types/{type}/pause`: no worker of any process claims jobs
/// of the type until it is resumed (running jobs go on).
pub(crate) async fn pause(
    State(state): State<AppState>,
    _: WriteAccess,
    TypePath(job_type): TypePath,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    no_query(query.as_deref())?;
    let changed = state.queue().pause_type(&job_type).await?;
    Ok(Json(
        json!({ "type": job_type.as_str(), "paused": true, "changed": changed }),
    ))
}

/// `POST /api/v1/types/{type}/resume`.
pub(crate) async fn resume(
    State(state): State<AppState>,
    _: WriteAccess,
    TypePath(job_type): TypePath,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    no_query(query.as_deref())?;
    let changed = state.queue().resume_type(&job_type).await?;
    Ok(Json(
        json!({ "type": job_type.as_str(), "paused": false, "changed": changed }),
    ))
}

/// Running jobs listed per worker in `GET /api/v1/workers` (at most this
/// many running jobs are read; `runningTotal` counts them all).
pub const MAX_RUNNING_LISTED: usize = 1000;

/// A running job in `GET /api/v1/workers`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RunningJob {
    id: String,
    #[serde(rename = "type")]
    job_type: String,
    attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<Value>,
}

/// A worker in `GET /api/v1/workers`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkerView {
    id: String,
    alive: bool,
    lease_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_seen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pid: Option<u32>,
    running: Vec<RunningJob>,
}

/// `GET /api/v1/workers`: the workers the store knows (live ones and the
/// records it still keeps of stopped ones), their last heartbeat, and the
/// running jobs each holds (running jobs listed, grouped by `workerId`).
pub(crate) async fn workers(
    State(state): State<AppState>,
    _: ReadAccess,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    no_query(query.as_deref())?;
    let queue = state.queue();
    let records = queue.list_workers().await?;
    let page = queue
        .list_jobs(
            &semiont_jobs_model::JobFilter::default()
                .status(JobStatus::Running)
                .limit(MAX_RUNNING_LISTED),
        )
        .await?;
    let mut by_worker: std::collections::BTreeMap<String, Vec<RunningJob>> = Default::default();
    for job in page.jobs {
        let Some(worker) = job.worker_id.clone() else {
            continue;
        };
        by_worker.entry(worker).or_default().push(RunningJob {
            id: job.id.to_string(),
            job_type: job.job_type.to_string(),
            attempt: job.attempt,
            started_at: job.started_at.map(|t| t.to_string()),
            progress: job.progress,
        });
    }
    let mut workers: Vec<WorkerView> = records
        .into_iter()
        .map(|w| WorkerView {
            running: by_worker.remove(&w.id).unwrap_or_default(),
            id: w.id,
            alive: w.alive,
            lease_seconds: w.lease.as_secs_f64(),
            last_seen: w.last_seen.map(|t| t.to_string()),
            host: w.host,
            pid: w.pid,
        })
        .collect();
    // Running jobs whose worker the store no longer lists (recovery will
    // take them back).
    for (id, running) in by_worker {
        workers.push(WorkerView {
            id,
            alive: false,
            lease_seconds: 0.0,
            last_seen: None,
            host: None,
            pid: None,
            running,
        });
    }
    Ok(Json(json!({
        "workers": workers,
        "runningTotal": page.total,
    })))
}

/// What `GET /api/v1/whoami` says.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WhoAmI {
    role: crate::Role,
    authenticated: bool,
    base_path: String,
    version: &'static str,
}

/// `GET /api/v1/whoami`: the caller's role (a page hides what it may not
/// do), whether tokens are in use, the base path and the server version.
pub(crate) async fn whoami(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<WhoAmI>> {
    no_query(query.as_deref())?;
    Ok(Json(WhoAmI {
        role: caller.role,
        authenticated: caller.token.is_some(),
        base_path: state.config().base_path.clone(),
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// `GET /healthz`: the process is up.
pub(crate) async fn healthz(RawQuery(query): RawQuery) -> Result<Json<Value>> {
    no_query(query.as_deref())?;
    Ok(Json(json!({ "status": "ok" })))
}

/// `GET /readyz`: the store answers (503 otherwise).
pub(crate) async fn readyz(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    no_query(query.as_deref())?;
    match tokio::time::timeout(READY_TIMEOUT, state.queue().get_stats()).await {
        Ok(Ok(_)) => Ok(Json(json!({ "status": "ready" }))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check: the store failed");
            Err(Error::new(
                ErrorKind::Unavailable,
                "the job store is unreachable; the server log has the cause",
            ))
        }
        Err(_) => Err(Error::new(
            ErrorKind::Unavailable,
            format!(
                "the job store did not answer within {} s",
                READY_TIMEOUT.as_secs()
            ),
        )),
    }
}

/// `GET /metrics`: the Prometheus text format.
pub(crate) async fn metrics(
    State(state): State<AppState>,
    _: ReadAccess,
    RawQuery(query): RawQuery,
) -> Result<Response> {
    no_query(query.as_deref())?;
    let queue = state.queue();
    let stats = queue.get_stats().await?;
    let per_type = queue.get_type_stats().await?;
    let workers = queue.list_workers().await?;
    let age = crate::history::oldest_due_age(queue).await?;
    let mut out = String::with_capacity(16 << 10);
    metric_header(
        &mut out,
        "semiont_jobs_jobs",
        "Jobs in the store, by status.",
        "gauge",
    );
    for status in JobStatus::ALL {
        let _ = writeln!(
            out,
            "semiont_jobs_jobs{{status=\"{status}\"}} {}",
            stats.get(status)
        );
    }
    metric_header(
        &mut out,
        "semiont_jobs_type_jobs",
        "Jobs in the store, by type and status.",
        "gauge",
    );
    for (job_type, counts) in &per_type {
        for status in JobStatus::ALL {
            let _ = writeln!(
                out,
                "semiont_jobs_type_jobs{{type=\"{}\",status=\"{status}\"}} {}",
                crate::metrics::escape(job_type.as_str()),
                counts.get(status)
            );
        }
    }
    metric_header(
        &mut out,
        "semiont_jobs_type_paused",
        "1 while claims of the job type are paused.",
        "gauge",
    );
    for (job_type, counts) in &per_type {
        let _ = writeln!(
            out,
            "semiont_jobs_type_paused{{type=\"{}\"}} {}",
            crate::metrics::escape(job_type.as_str()),
            u8::from(counts.paused)
        );
    }
    metric_header(
        &mut out,
        "semiont_jobs_unreadable",
        "Records the store could not read as jobs and set aside.",
        "gauge",
    );
    let _ = writeln!(out, "semiont_jobs_unreadable {}", stats.unreadable);
    metric_header(
        &mut out,
        "semiont_jobs_workers",
        "Workers the store considers alive.",
        "gauge",
    );
    let _ = writeln!(
        out,
        "semiont_jobs_workers {}",
        workers.iter().filter(|w| w.alive).count()
    );
    metric_header(
        &mut out,
        "semiont_jobs_oldest_due_pending_age_seconds",
        "How long the job a worker would claim next has been due (0 when none is due).",
        "gauge",
    );
    let _ = writeln!(out, "semiont_jobs_oldest_due_pending_age_seconds {age}");
    metric_header(
        &mut out,
        "semiont_jobs_sse_clients",
        "Event-stream clients connected.",
        "gauge",
    );
    let _ = writeln!(out, "semiont_jobs_sse_clients {}", state.hub().clients());
    state.metrics().render(&mut out);
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn openapi(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>> {
    no_query(query.as_deref())?;
    Ok(Json(crate::openapi::document(&state.config().base_path)))
}

/// Unknown routes: 404 as a problem document.
pub(crate) async fn not_found(uri: Uri) -> Error {
    let path: String = uri.path().chars().take(100).collect();
    Error::not_found(format!("no route {path}"))
}

/// Known routes with another method: 405 as a problem document.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let path: String = uri.path().chars().take(100).collect();
    let mut response = Error::new(
        ErrorKind::MethodNotAllowed,
        format!("{path} does not accept {method}"),
    )
    .into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}
