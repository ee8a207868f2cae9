//! Rules every backend applies the same way: what a claimed, recovered or
//! retried job looks like, and which writes the state machine allows. Shared
//! so that backends differ only in how they store, never in what they store.

use semiont_jobs_model::{
    check_transition, Job, JobId, JobStatus, JobType, RetryPolicy, Timestamp, Transition,
};

use crate::{CheckpointRequest, ClaimRequest, Error, Expect, Result};

/// Checks a conditional transition request before any IO: the id is the
/// job's, and the state machine allows `expect.status → job.status`.
pub fn check_transition_request(expect: Expect, job: &Job) -> Result<()> {
    check_transition(job.id.as_str(), expect.status, job.status)?;
    Ok(())
}

/// Checks that an update computed for job `id` kept its id.
pub fn check_same_id(id: &JobId, job: &Job) -> Result<()> {
    if job.id == *id {
        Ok(())
    } else {
        Err(Error::Invalid(semiont_jobs_model::Error::InvalidJob(
            format!("an update of job {id} returned job {}", job.id),
        )))
    }
}

/// Checks an in-place update request ([`JobStore::update_running`](crate::JobStore::update_running))
/// before any IO: the new version must be running. Returns the precondition
/// the stored job must meet: running at the same attempt.
pub fn check_update_running(job: &Job) -> Result<Expect> {
    if job.status == JobStatus::Running {
        Ok(Expect::running(job.attempt))
    } else {
        Err(semiont_jobs_model::Error::IllegalTransition {
            id: job.id.to_string(),
            from: JobStatus::Running,
            to: job.status,
        }
        .into())
    }
}

/// Checks a delete request: only finished jobs may be deleted.
pub fn check_delete_request(id: &JobId, expect: Expect) -> Result<()> {
    if expect.status.is_finished() {
        Ok(())
    } else {
        Err(Error::Invalid(
            semiont_jobs_model::Error::IllegalTransition {
                id: id.to_string(),
                from: expect.status,
                to: expect.status,
            },
        ))
    }
}

/// The running job a claim produces from a pending one. The new attempt
/// starts clean: the previous attempt's `progress` is cleared (what must
/// survive an attempt is what checkpoints carry, and they are kept).
pub fn claimed(mut job: Job, req: &ClaimRequest) -> Job {
    job.status = JobStatus::Running;
    job.attempt += 1;
    job.started_at = Some(req.now);
    job.completed_at = None;
    job.worker_id = Some(req.worker_id.clone());
    job.lease_expires_at = Some(req.now.add(req.lease));
    job.run_at = None;
    job.progress = None;
    job
}

/// Whether a pending job is claimable by `req` (type accepted and due).
/// Paused types are the backend's to skip (see [`not_paused`]).
pub fn claimable(job: &Job, req_types: &crate::TypeFilter, now: Timestamp) -> bool {
    job.status == JobStatus::Pending && req_types.matches(&job.job_type) && job.is_due(now)
}

/// Whether `job_type` is outside the paused set.
pub fn not_paused<'a>(paused: impl IntoIterator<Item = &'a JobType>, job_type: &JobType) -> bool {
    !paused.into_iter().any(|p| p == job_type)
}

/// The running job after a checkpoint ([`JobStore::checkpoint`](crate::JobStore::checkpoint)):
/// the checkpoint merged ([`Job::apply_checkpoint`]), the progress replaced
/// when one is given, and the lease renewed to `now + lease`.
pub fn checkpointed(mut job: Job, req: &CheckpointRequest) -> Job {
    job.apply_checkpoint(&req.checkpoint);
    if let Some(p) = &req.progress {
        job.progress = Some(p.clone());
    }
    job.lease_expires_at = Some(req.now.add(req.lease));
    job
}

/// A pending or running job cancelled at `now`. Its checkpoints are kept.
pub fn cancelled(mut job: Job, now: Timestamp) -> Job {
    job.status = JobStatus::Cancelled;
    job.completed_at = Some(now);
    job.lease_expires_at = None;
    job.run_at = None;
    job
}

/// A failed or cancelled job retried by hand: pending, due at once, with a
/// fresh retry budget (`retryCount` 0). The last error stays until the job
/// runs again; the checkpoints are kept, so the retry resumes.
pub fn retried(mut job: Job) -> Job {
    job.status = JobStatus::Pending;
    job.retry_count = 0;
    job.run_at = None;
    job.completed_at = None;
    job.result = None;
    job.worker_id = None;
    job.lease_expires_at = None;
    job
}

/// The unique key a write takes, if any, and the time to judge other
/// holders by: a create of a job that holds its key at its `created` time
/// takes it, judged at that time (a backend with a server clock judges by
/// its own); a manual retry (failed or cancelled → pending) takes it back,
/// refused only by a holder that is pending or running (`None`: a holder's
/// after-finish period does not block a retry an operator asked for).
/// Every backend checks, under its lock or in its transaction, that no
/// other job [`blocks_key`] before such a write.
pub fn unique_key_claim(from: Option<JobStatus>, job: &Job) -> Option<(&str, Option<Timestamp>)> {
    let key = job.unique_key.as_deref()?;
    match from {
        None if job.holds_unique_key(job.created) => Some((key, Some(job.created))),
        Some(from) if Transition::between(from, job.status) == Some(Transition::Retry) => {
            Some((key, None))
        }
        _ => None,
    }
}

/// Whether `holder` keeps `job` from taking their common unique key, judged
/// at `now` (see [`unique_key_claim`]).
pub fn blocks_key(holder: &Job, job: &Job, now: Option<Timestamp>) -> bool {
    holder.id != job.id
        && holder.unique_key.is_some()
        && holder.unique_key == job.unique_key
        && match now {
            Some(now) => holder.holds_unique_key(now),
            None => !holder.status.is_finished(),
        }
}

/// The error of a write refused because `holder` holds `key`.
pub fn key_taken(key: &str, holder: &Job) -> Error {
    Error::UniqueKeyTaken {
        key: key.to_owned(),
        holder: holder.id.clone(),
    }
}

/// Claim order among claimable jobs: higher priority first, then smaller id
/// (older). Returns true if `a` goes before `b`.
pub fn claim_order_key(job: &Job) -> (std::cmp::Reverse<i16>, &JobId) {
    (std::cmp::Reverse(job.priority), &job.id)
}

/// What recovery makes of a running job whose worker died: back to pending
/// with `retryCount + 1`, due at once, or failed when its retries are spent.
pub fn recovered(mut job: Job, now: Timestamp, why: &str) -> Job {
    let worker = job.worker_id.take().unwrap_or_else(|| "unknown".into());
    let message = format!("worker {worker} {why} during attempt {}", job.attempt);
    job.lease_expires_at = None;
    if RetryPolicy::should_retry(job.retry_count, job.max_retries) {
        job.status = JobStatus::Pending;
        job.retry_count += 1;
        job.run_at = None;
    } else {
        job.status = JobStatus::Failed;
        job.completed_at = Some(now);
    }
    job.error = Some(message);
    job
}
