//! Bulk operations: cancel, retry or delete the jobs named by a list of ids
//! or matching a filter, with a dry run that only counts. Every id and
//! filter value is validated before the store is read.

use axum::extract::State;
use axum::Json;
use semiont_jobs_model::{Job, JobFilter, JobId, JobStatus, JobType};
use serde::{Deserialize, Serialize};

use crate::auth::{AdminAccess, WriteAccess};
use crate::extract::JsonBody;
use crate::jobs::{delete_job, validate_user};
use crate::{AppState, Error, Result};

/// Most ids in one request.
pub const MAX_BULK_IDS: usize = 1000;
/// Most jobs acted on per request in filter mode (`remaining` says how many
/// more matched; call again).
pub const MAX_BULK_FILTER: usize = 10_000;

/// The body of a bulk request: `ids` or `filter`, and `dryRun`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BulkRequest {
    #[serde(default, deserialize_with = "present")]
    ids: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    filter: Option<BulkFilter>,
    #[serde(default)]
    dry_run: bool,
}

/// Which jobs, by the seed's list filters (all three optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BulkFilter {
    #[serde(default, deserialize_with = "present")]
    status: Option<String>,
    #[serde(default, rename = "type", deserialize_with = "present")]
    job_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    user_id: Option<String>,
}

/// An optional field that, when present, must hold a value (`null` is
/// refused like any other wrong type).
fn present<'de, D, T>(d: D) -> std::result::Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A job the operation did not apply to, and why.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Skipped {
    id: String,
    code: &'static str,
    detail: String,
}

/// What a bulk request did (or, with `dryRun`, would do).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BulkResponse {
    action: &'static str,
    dry_run: bool,
    /// Jobs the action applies to (their status allows it).
    matched: usize,
    /// Jobs it was applied to.
    succeeded: usize,
    /// Jobs it was not applied to: unknown ids, a status that does not
    /// allow it, or a change in between.
    skipped: Vec<Skipped>,
    /// Filter mode: matching jobs beyond this request's limit.
    remaining: usize,
}

enum Target {
    Ids(Vec<JobId>),
    Filter(JobFilter),
}

fn target(req: BulkRequest) -> Result<(Target, bool)> {
    match (req.ids, req.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > MAX_BULK_IDS {
                return Err(Error::invalid(format!(
                    "ids must list 1 to {MAX_BULK_IDS} job ids"
                )));
            }
            let mut parsed: Vec<JobId> = Vec::with_capacity(ids.len());
            for (i, raw) in ids.iter().enumerate() {
                let id = JobId::parse(raw).map_err(|e| Error::invalid(format!("ids[{i}]: {e}")))?;
                if !api_id_form(raw) {
                    return Err(Error::invalid(format!(
                        "ids[{i}]: the API takes ids of ASCII letters, digits, '_', ':' and '-' \
                         in segments joined by single dots"
                    )));
                }
                if !parsed.contains(&id) {
                    parsed.push(id);
                }
            }
            Ok((Target::Ids(parsed), req.dry_run))
        }
        (None, Some(f)) => {
            let mut filter = JobFilter::default();
            if let Some(s) = f.status {
                filter.status = Some(
                    s.parse::<JobStatus>()
                        .map_err(|e| Error::invalid(format!("filter.status: {e}")))?,
                );
            }
            if let Some(t) = f.job_type {
                filter.job_type = Some(
                    JobType::parse(&t).map_err(|e| Error::invalid(format!("filter.type: {e}")))?,
                );
            }
            if let Some(u) = f.user_id {
                validate_user(&u).map_err(|e| Error::invalid(format!("filter.{e}")))?;
                filter.user_id = Some(u);
            }
            Ok((Target::Filter(filter), req.dry_run))
        }
        (Some(_), Some(_)) => Err(Error::invalid("give ids or filter, not both")),
        (None, None) => Err(Error::invalid(
            "give ids (a list of job ids) or filter (status, type, userId)",
        )),
    }
}

/// Whether `raw` has the documented form of a job id in a bulk request
/// (the OpenAPI pattern `^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$`); the
/// store takes more (any file-name-safe id), but every id this project
/// and the TypeScript package generate has this form.
fn api_id_form(raw: &str) -> bool {
    raw.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-'))
    })
}

/// The three bulk actions.
#[derive(Clone, Copy, Debug)]
enum Action {
    Cancel,
    Retry,
    Delete,
}

impl Action {
    const fn name(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Retry => "retry",
            Action::Delete => "delete",
        }
    }

    /// Whether a job in `status` can be acted on.
    fn applies_to(self, status: JobStatus) -> bool {
        match self {
            Action::Cancel => matches!(status, JobStatus::Pending | JobStatus::Running),
            Action::Retry => matches!(status, JobStatus::Failed | JobStatus::Cancelled),
            Action::Delete => status.is_finished(),
        }
    }

    fn not_applicable(self, job: &Job) -> Skipped {
        let (allowed, done) = match self {
            Action::Cancel => ("pending or running", "cancelled"),
            Action::Retry => ("failed or cancelled", "retried"),
            Action::Delete => ("complete, failed or cancelled", "deleted"),
        };
        Skipped {
            id: job.id.to_string(),
            code: "conflict",
            detail: format!(
                "job {} is {}; only {allowed} jobs can be {done}",
                job.id, job.status
            ),
        }
    }

    async fn apply(self, state: &AppState, job: &Job) -> Result<()> {
        match self {
            Action::Cancel => drop(state.queue().cancel_job(&job.id).await?),
            Action::Retry => drop(state.queue().retry_job(&job.id).await?),
            Action::Delete => delete_job(state, job, false).await?,
        }
        Ok(())
    }
}

fn skipped(id: &JobId, e: &Error) -> Skipped {
    Skipped {
        id: id.to_string(),
        code: e.kind().code(),
        detail: crate::error::one_line(&e.to_string()),
    }
}

async fn run(state: &AppState, action: Action, body: BulkRequest) -> Result<BulkResponse> {
    let (target, dry_run) = target(body)?;
    let mut out = BulkResponse {
        action: action.name(),
        dry_run,
        matched: 0,
        succeeded: 0,
        skipped: Vec::new(),
        remaining: 0,
    };
    let jobs: Vec<Job> = match target {
        Target::Ids(ids) => {
            let mut jobs = Vec::with_capacity(ids.len());
            for id in &ids {
                match state.queue().get_job(id).await {
                    Ok(job) if action.applies_to(job.status) => jobs.push(job),
                    Ok(job) => out.skipped.push(action.not_applicable(&job)),
                    Err(e) => out.skipped.push(skipped(id, &e.into())),
                }
            }
            out.matched = jobs.len();
            jobs
        }
        Target::Filter(filter) => {
            let statuses: Vec<JobStatus> = JobStatus::ALL
                .into_iter()
                .filter(|s| action.applies_to(*s) && filter.status.is_none_or(|f| f == *s))
                .collect();
            let mut jobs = Vec::new();
            for status in statuses {
                let mut f = filter.clone().status(status);
                f.limit = if dry_run {
                    0
                } else {
                    MAX_BULK_FILTER.saturating_sub(jobs.len())
                };
                let page = state.queue().list_jobs(&f).await?;
                out.matched += page.total;
                jobs.extend(page.jobs);
            }
            let acted_on = if dry_run {
                out.matched.min(MAX_BULK_FILTER)
            } else {
                jobs.len()
            };
            out.remaining = out.matched - acted_on.min(out.matched);
            jobs
        }
    };
    if dry_run {
        return Ok(out);
    }
    for job in &jobs {
        match action.apply(state, job).await {
            Ok(()) => out.succeeded += 1,
            Err(e) => out.skipped.push(skipped(&job.id, &e)),
        }
    }
    Ok(out)
}

/// `POST /api/v1/jobs/bulk/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    _: WriteAccess,
    body: JsonBody<BulkRequest>,
) -> Result<Json<BulkResponse>> {
    run(&state, Action::Cancel, body.value).await.map(Json)
}

/// `POST /api/v1/jobs/bulk/retry`.
pub(crate) async fn retry(
    State(state): State<AppState>,
    _: WriteAccess,
    body: JsonBody<BulkRequest>,
) -> Result<Json<BulkResponse>> {
    run(&state, Action::Retry, body.value).await.map(Json)
}

/// `POST /api/v1/jobs/bulk/delete`.
pub(crate) async fn delete(
    State(state): State<AppState>,
    _: AdminAccess,
    body: JsonBody<BulkRequest>,
) -> Result<Json<BulkResponse>> {
    run(&state, Action::Delete, body.value).await.map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_ids_have_the_documented_form() {
        for ok in ["job-1", "a.b", "job-01a2:x_y"] {
            assert!(api_id_form(ok), "{ok}");
        }
        for bad in ["V\u{f1}", "a..b", ".a", "a.", "a b", ""] {
            assert!(!api_id_form(bad), "{bad:?}");
        }
    }
}
