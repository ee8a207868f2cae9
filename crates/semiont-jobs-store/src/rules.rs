//! Rules every backend applies the same way: what a claimed, recovered or
//! retried job looks like, and which writes the state machine allows. Shared
//! so that backends differ only in how they store, never in what they store.

use semiont_jobs_model::{check_transition, Job, JobId, JobStatus, RetryPolicy, Timestamp};

use crate::{ClaimRequest, Error, Expect, Result};

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

/// The running job a claim produces from a pending one.
pub fn claimed(mut job: Job, req: &ClaimRequest) -> Job {
    job.status = JobStatus::Running;
    job.attempt += 1;
    job.started_at = Some(req.now);
    job.completed_at = None;
    job.worker_id = Some(req.worker_id.clone());
    job.lease_expires_at = Some(req.now.add(req.lease));
    job.run_at = None;
    job
}

/// Whether a pending job is claimable by `req` (type accepted and due).
pub fn claimable(job: &Job, req_types: &crate::TypeFilter, now: Timestamp) -> bool {
    job.status == JobStatus::Pending && req_types.matches(&job.job_type) && job.is_due(now)
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
