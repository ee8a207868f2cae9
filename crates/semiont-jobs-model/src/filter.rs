//! List filters, pages and queue statistics.

use serde::{Deserialize, Serialize};

use crate::{Error, Job, JobStatus, JobType, Result};

/// `limit` of a [`JobFilter`] when none is given (the seed's default).
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Largest accepted `limit`.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Which jobs to list: the seed's `listJobs` options. Results are newest
/// first (by `created`, then by id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobFilter {
    /// Only jobs in this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<JobStatus>,
    /// Only jobs of this type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub job_type: Option<JobType>,
    /// Only jobs of this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// At most this many jobs (default 100).
    #[serde(default = "default_limit")]
    pub limit: usize,
    /// Skip this many matching jobs first.
    #[serde(default)]
    pub offset: usize,
}

fn default_limit() -> usize {
    DEFAULT_LIST_LIMIT
}

impl Default for JobFilter {
    fn default() -> Self {
        JobFilter {
            status: None,
            job_type: None,
            user_id: None,
            limit: DEFAULT_LIST_LIMIT,
            offset: 0,
        }
    }
}

impl JobFilter {
    /// Only jobs in `status`.
    pub fn status(mut self, status: JobStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Only jobs of `job_type`.
    pub fn job_type(mut self, job_type: JobType) -> Self {
        self.job_type = Some(job_type);
        self
    }

    /// Only jobs of `user_id`.
    pub fn user(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Page size.
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// Page start.
    pub fn offset(mut self, offset: usize) -> Self {
        self.offset = offset;
        self
    }

    /// Whether `job` passes the filter (ignoring limit and offset).
    pub fn matches(&self, job: &Job) -> bool {
        self.matches_parts(job.status, &job.job_type, &job.user_id)
    }

    /// Like [`JobFilter::matches`] on the fields an index keeps.
    pub fn matches_parts(&self, status: JobStatus, job_type: &JobType, user_id: &str) -> bool {
        self.status.is_none_or(|s| s == status)
            && self.job_type.as_ref().is_none_or(|t| t == job_type)
            && self.user_id.as_deref().is_none_or(|u| u == user_id)
    }

    /// Rejects a limit above [`MAX_LIST_LIMIT`].
    pub fn validate(&self) -> Result<()> {
        if self.limit > MAX_LIST_LIMIT {
            return Err(Error::InvalidFilter(format!(
                "limit {} is more than {MAX_LIST_LIMIT}",
                self.limit
            )));
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPage {
    /// The jobs on this page, newest first.
    pub jobs: Vec<Job>,
    /// How many jobs match the filter in all (for pagination).
    pub total: usize,
}

/// Job counts per status (the seed's `getStats` shape), plus the number of
/// unreadable records the backend set aside.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    /// Waiting jobs (due or not).
    pub pending: u64,
    /// Jobs held by workers.
    pub running: u64,
    /// Finished successfully.
    pub complete: u64,
    /// Finished unsuccessfully.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Records the backend could not read as jobs and set aside (never in
    /// the other counts): the filesystem backend's quarantined files; a
    /// database, whose rows are typed, reports 0.
    #[serde(default)]
    pub unreadable: u64,
    /// In the counts of one job type (a store's `type_stats`): claims of
    /// this type are paused. Always false in whole-queue counts.
    #[serde(default, skip_serializing_if = "is_false")]
    pub paused: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl QueueStats {
    /// The count of one status.
    pub fn get(&self, status: JobStatus) -> u64 {
        match status {
            JobStatus::Pending => self.pending,
            JobStatus::Running => self.running,
            JobStatus::Complete => self.complete,
            JobStatus::Failed => self.failed,
            JobStatus::Cancelled => self.cancelled,
        }
    }

    /// Mutable count of one status.
    pub fn get_mut(&mut self, status: JobStatus) -> &mut u64 {
        match status {
            JobStatus::Pending => &mut self.pending,
            JobStatus::Running => &mut self.running,
            JobStatus::Complete => &mut self.complete,
            JobStatus::Failed => &mut self.failed,
            JobStatus::Cancelled => &mut self.cancelled,
        }
    }

    /// All jobs (unreadable records excluded).
    pub fn total(&self) -> u64 {
        JobStatus::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// Which job types a claim or poll accepts.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum TypeFilter {
    /// Any type.
    #[default]
    Any,
    /// Only these types.
    Only(Vec<JobType>),
}

impl TypeFilter {
    /// Only one type.
    pub fn one(t: JobType) -> Self {
        TypeFilter::Only(vec![t])
    }

    /// Whether `t` is accepted.
    pub fn matches(&self, t: &JobType) -> bool {
        match self {
            TypeFilter::Any => true,
            TypeFilter::Only(types) => types.contains(t),
        }
    }
}
