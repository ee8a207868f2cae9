//! The [`JobStore`] trait and the small value types of its requests and
//! notifications.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use semiont_jobs_model::{
    Job, JobFilter, JobId, JobPage, JobStatus, JobType, QueueStats, Timestamp, Transition,
};
use tokio::sync::broadcast;

use crate::{rules, ErrorKind, Result};

/// The precondition of a conditional write: the job must be in `status`
/// and, when `attempt` is given, at that attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Expect {
    /// Required current status.
    pub status: JobStatus,
    /// Required current attempt (the fencing token of a running job).
    pub attempt: Option<u32>,
}

impl Expect {
    /// Only the status is checked.
    pub const fn status(status: JobStatus) -> Self {
        Expect {
            status,
            attempt: None,
        }
    }

    /// The job must be running at exactly `attempt`.
    pub const fn running(attempt: u32) -> Self {
        Expect {
            status: JobStatus::Running,
            attempt: Some(attempt),
        }
    }

    /// Whether a job in `status` at `attempt` satisfies this precondition.
    pub fn holds(&self, status: JobStatus, attempt: u32) -> bool {
        self.status == status && self.attempt.is_none_or(|a| a == attempt)
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.attempt {
            None => write!(f, "{}", self.status),
            Some(a) => write!(f, "{} at attempt {a}", self.status),
        }
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

/// A request to claim the next job.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    /// Accepted job types.
    pub types: TypeFilter,
    /// The claiming worker (should be registered with
    /// [`JobStore::register_worker`] so its liveness can be seen).
    pub worker_id: String,
    /// The claimer's clock: jobs whose `runAt` is later are not due.
    pub now: Timestamp,
    /// Lease length: the job's `leaseExpiresAt` becomes `now + lease`.
    pub lease: Duration,
}

/// A worker about to claim jobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Unique worker id (also written into the jobs it runs).
    pub id: String,
    /// Lease length the worker promises to renew within, by heartbeats.
    pub lease: Duration,
}

/// A finished job old enough for retention cleanup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedJob {
    /// The job.
    pub id: JobId,
    /// Its (finished) status, for the conditional delete.
    pub status: JobStatus,
    /// When it finished.
    pub completed_at: Timestamp,
}

/// What a recovery pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Running jobs of dead workers put back to pending.
    pub requeued: Vec<JobId>,
    /// Running jobs of dead workers whose retries were spent, now failed.
    pub failed: Vec<JobId>,
    /// Interrupted operations rolled forward or back, duplicates resolved,
    /// stale staging files removed.
    pub repaired: u64,
    /// Files moved to quarantine.
    pub quarantined: u64,
}

/// What happened to a job, as seen by a store subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// A new pending job.
    Created,
    /// A move of the state machine.
    Transition(Transition),
    /// A running job's content changed (progress, heartbeat).
    Updated,
    /// A dead worker's job was put back to pending or failed by recovery.
    Recovered,
    /// A finished job was deleted.
    Deleted,
    /// The backend lost track of changes (e.g. a watcher overflow) and
    /// re-read everything: subscribers should refresh whatever they cache.
    Resynced,
}

/// Where a change came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangeOrigin {
    /// This store instance made it.
    Local,
    /// Another process (or instance) made it; seen through the backend's
    /// notifications. Best effort.
    External,
}

/// A change notification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobChange {
    /// The job (for [`ChangeKind::Resynced`], an arbitrary id is never sent:
    /// `None`).
    pub id: Option<JobId>,
    /// What happened.
    pub kind: ChangeKind,
    /// The job's status afterwards (`None` when deleted or unknown).
    pub status: Option<JobStatus>,
    /// The job's type, when known.
    pub job_type: Option<JobType>,
    /// Who made the change.
    pub origin: ChangeOrigin,
}

/// How hard a backend works to keep acknowledged writes across failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Writes survive a crash of the process, not of the machine.
    None,
    /// Creates and transitions survive power loss: data is flushed to stable
    /// storage before the call returns (`create_batch` flushes once for the
    /// whole batch). In-place updates of running jobs (progress) never wait.
    #[default]
    Fsync,
}

impl std::str::FromStr for Durability {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Durability::None),
            "fsync" => Ok(Durability::Fsync),
            other => Err(format!(
                "unknown durability {other:?} (expected none or fsync)"
            )),
        }
    }
}

/// What a backend can do beyond the contract's minimum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Several processes may share the store safely.
    pub cross_process: bool,
    /// Acknowledged writes survive a process crash.
    pub persistent: bool,
    /// Changes made by other processes show up in [`JobStore::subscribe`].
    pub external_events: bool,
}

impl Capabilities {
    /// A capabilities value (the struct is non-exhaustive outside this crate).
    pub const fn new(cross_process: bool, persistent: bool, external_events: bool) -> Self {
        Capabilities {
            cross_process,
            persistent,
            external_events,
        }
    }
}

/// A change computed from the stored version of a job, for
/// [`JobStore::update_with`]: the precondition and the new version, or
/// `None` to write nothing.
pub type UpdateFn = Box<dyn FnOnce(&Job) -> Option<(Expect, Job)> + Send>;

/// What [`JobStore::update_with`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum Updated {
    /// The new version, as written.
    Written(Job),
    /// The closure declined; the job as read.
    Declined(Job),
}

/// The storage backend contract.
///
/// Object-safe (`Arc<dyn JobStore>`), async, and shared between tasks. Every
/// method that changes a job is conditional; see the crate docs. Times come
/// from the caller (`now` arguments), never from the backend's own clock, so
/// callers can run on a fake clock.
///
/// Backends must keep the invariants listed in `ARCHITECTURE.md` and pass
/// the conformance suite (the `conformance` module, behind the feature of
/// that name).
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new job (any status, normally pending) if no job has its id.
    ///
    /// Errors: [`ErrorKind::AlreadyExists`] when the id is taken.
    async fn create(&self, job: &Job) -> Result<()>;

    /// Stores many new jobs behind one durability barrier (group commit).
    /// Jobs are published in order; on an error, the jobs before the failing
    /// one are stored and the rest are not.
    async fn create_batch(&self, jobs: &[Job]) -> Result<()>;

    /// Reads a job by id. Errors: [`ErrorKind::NotFound`].
    async fn get(&self, id: &JobId) -> Result<Job>;

    /// Replaces the job `job.id` with `job` if it is currently as `expect`
    /// says, moving it from `expect.status` to `job.status`.
    ///
    /// Errors: [`ErrorKind::InvalidInput`] if the state machine forbids the
    /// move; [`ErrorKind::NotFound`]; [`ErrorKind::Conflict`] if the job is
    /// not in `expect`.
    async fn transition(&self, expect: Expect, job: &Job) -> Result<()>;

    /// Reads job `id` and applies what `f` makes of it as one
    /// [`transition`](Self::transition): `f` sees the job as stored and
    /// returns the precondition and the new version (same id), or `None`
    /// to write nothing.
    ///
    /// The default is [`get`](Self::get) then `transition`, so a change in
    /// between is a [`ErrorKind::Conflict`]. Backends that can read and
    /// write under one lock override it (one read of the job instead of
    /// two). Errors: those of `get` and `transition`.
    async fn update_with(&self, id: &JobId, f: UpdateFn) -> Result<Updated> {
        let current = self.get(id).await?;
        match f(&current) {
            Some((expect, next)) => {
                rules::check_same_id(id, &next)?;
                self.transition(expect, &next).await?;
                Ok(Updated::Written(next))
            }
            None => Ok(Updated::Declined(current)),
        }
    }

    /// Rewrites a running job in place (progress, lease), fenced by
    /// `job.attempt`. Never waits for the disk.
    ///
    /// Errors: [`ErrorKind::Conflict`] if the job is not running at
    /// `job.attempt` (cancelled, recovered, completed meanwhile).
    async fn update_running(&self, job: &Job) -> Result<()>;

    /// Atomically takes the due pending job with the highest priority and
    /// then the smallest id among `req.types`, and makes it running: attempt
    /// + 1, `startedAt = now`, `workerId`, `leaseExpiresAt = now + lease`.
    /// Returns the running job, or `None` when nothing is due.
    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>>;

    /// The job [`JobStore::claim`] would take now, without taking it.
    async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>>;

    /// Jobs matching `filter`, newest first, with the total match count.
    async fn list(&self, filter: &JobFilter) -> Result<JobPage>;

    /// Job counts per status.
    async fn stats(&self) -> Result<QueueStats>;

    /// Up to `limit` finished jobs whose `completedAt` is before `before`,
    /// oldest first (candidates for retention cleanup).
    async fn finished_before(&self, before: Timestamp, limit: usize) -> Result<Vec<FinishedJob>>;

    /// Deletes a finished job if it is still in `expect`.
    ///
    /// Errors: [`ErrorKind::InvalidInput`] if `expect.status` is not a
    /// finished status; [`ErrorKind::NotFound`]; [`ErrorKind::Conflict`].
    async fn delete(&self, id: &JobId, expect: Expect) -> Result<()>;

    /// Declares a worker alive until [`JobStore::unregister_worker`] (or its
    /// process dies, where the backend can see that).
    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()>;

    /// Renews the leases of a registered worker's running jobs to
    /// `now + lease`.
    async fn heartbeat(&self, worker_id: &str, now: Timestamp) -> Result<()>;

    /// Declares a worker gone. Its running jobs become recoverable at once.
    async fn unregister_worker(&self, worker_id: &str) -> Result<()>;

    /// Returns running jobs of dead workers to pending (`retryCount + 1`) or
    /// to failed when their retries are spent, and repairs whatever an
    /// interrupted operation left behind. A worker is dead when it was
    /// unregistered, when the backend sees that its process is gone, or when
    /// its lease expired before `now`.
    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport>;

    /// Change notifications: this instance's own changes, and where
    /// [`Capabilities::external_events`] says so, other processes' changes.
    fn subscribe(&self) -> broadcast::Receiver<JobChange>;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;
}

macro_rules! forward_store {
    ($ty:ty) => {
        #[async_trait]
        impl<T: JobStore + ?Sized> JobStore for $ty {
            async fn create(&self, job: &Job) -> Result<()> {
                (**self).create(job).await
            }
            async fn create_batch(&self, jobs: &[Job]) -> Result<()> {
                (**self).create_batch(jobs).await
            }
            async fn get(&self, id: &JobId) -> Result<Job> {
                (**self).get(id).await
            }
            async fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
                (**self).transition(expect, job).await
            }
            async fn update_with(&self, id: &JobId, f: UpdateFn) -> Result<Updated> {
                (**self).update_with(id, f).await
            }
            async fn update_running(&self, job: &Job) -> Result<()> {
                (**self).update_running(job).await
            }
            async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
                (**self).claim(req).await
            }
            async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
                (**self).peek_next(types, now).await
            }
            async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
                (**self).list(filter).await
            }
            async fn stats(&self) -> Result<QueueStats> {
                (**self).stats().await
            }
            async fn finished_before(
                &self,
                before: Timestamp,
                limit: usize,
            ) -> Result<Vec<FinishedJob>> {
                (**self).finished_before(before, limit).await
            }
            async fn delete(&self, id: &JobId, expect: Expect) -> Result<()> {
                (**self).delete(id, expect).await
            }
            async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
                (**self).register_worker(worker).await
            }
            async fn heartbeat(&self, worker_id: &str, now: Timestamp) -> Result<()> {
                (**self).heartbeat(worker_id, now).await
            }
            async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
                (**self).unregister_worker(worker_id).await
            }
            async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
                (**self).recover(now).await
            }
            fn subscribe(&self) -> broadcast::Receiver<JobChange> {
                (**self).subscribe()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }
    };
}

forward_store!(Arc<T>);
forward_store!(Box<T>);

/// Conveniences on top of [`JobStore`], for every store.
#[async_trait]
pub trait JobStoreExt: JobStore {
    /// Like [`JobStore::get`], with `None` for a missing job.
    async fn get_opt(&self, id: &JobId) -> Result<Option<Job>> {
        match self.get(id).await {
            Ok(job) => Ok(Some(job)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Claims the next due job of any type for `worker_id`.
    async fn claim_any(
        &self,
        worker_id: &str,
        now: Timestamp,
        lease: Duration,
    ) -> Result<Option<Job>> {
        self.claim(&ClaimRequest {
            types: TypeFilter::Any,
            worker_id: worker_id.to_owned(),
            now,
            lease,
        })
        .await
    }

    /// The number of jobs in `status`.
    async fn count(&self, status: JobStatus) -> Result<u64> {
        Ok(self.stats().await?.get(status))
    }
}

impl<T: JobStore + ?Sized> JobStoreExt for T {}
