//! The [`JobStore`] trait and the small value types of its requests and
//! notifications.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use semiont_jobs_model::{
    Job, JobFilter, JobId, JobPage, JobStatus, JobType, QueueStats, Timestamp, Transition,
    TypeFilter,
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

/// A request to claim the next job.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    /// Accepted job types.
    pub types: TypeFilter,
    /// The claiming worker (should be registered with
    /// [`JobStore::register_worker`] so its liveness can be seen).
    pub worker_id: String,
    /// The claimer's clock: jobs whose `runAt` is later are not due
    /// (backends with [`Capabilities::server_clock`] use their own clock).
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
    /// Unreadable records set aside (the filesystem backend's quarantine).
    pub unreadable: u64,
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
    /// For [`ChangeKind::Resynced`] after a subscriber fell behind: how many
    /// changes it missed (0 when unknown or not applicable).
    pub missed: u64,
}

impl JobChange {
    /// A change of job `job` (its id, status and type) of `kind`.
    pub fn of(job: &Job, kind: ChangeKind, origin: ChangeOrigin) -> Self {
        JobChange {
            id: Some(job.id.clone()),
            kind,
            status: Some(job.status),
            job_type: Some(job.job_type.clone()),
            origin,
            missed: 0,
        }
    }

    /// "Re-read everything": sent when a backend lost track of changes
    /// (watcher overflow, listener reconnect) or a subscriber fell behind.
    pub fn resynced(origin: ChangeOrigin, missed: u64) -> Self {
        JobChange {
            id: None,
            kind: ChangeKind::Resynced,
            status: None,
            job_type: None,
            origin,
            missed,
        }
    }
}

/// A subscription to a store's change notifications, from
/// [`JobStore::subscribe`].
///
/// Backends feed it from wherever their notifications come from (their own
/// writes, a file watcher, a database listener) through a
/// [`broadcast`] channel. A subscriber that falls further behind than the
/// channel holds gets one [`ChangeKind::Resynced`] change (with the number
/// of changes it missed) instead of the changes, and should re-read what it
/// caches; so does everyone after a backend's own resynchronisation (a
/// watcher overflow, a reconnect of a database listener).
#[derive(Debug)]
pub struct ChangeStream {
    rx: broadcast::Receiver<JobChange>,
}

impl ChangeStream {
    /// A stream reading a backend's broadcast channel (see
    /// [`crate::CHANGE_CHANNEL_CAPACITY`] for its capacity).
    pub fn from_broadcast(rx: broadcast::Receiver<JobChange>) -> Self {
        ChangeStream { rx }
    }

    /// The next change; `None` once the backend is gone.
    pub async fn recv(&mut self) -> Option<JobChange> {
        use broadcast::error::RecvError;
        match self.rx.recv().await {
            Ok(change) => Some(change),
            Err(RecvError::Lagged(missed)) => {
                Some(JobChange::resynced(ChangeOrigin::Local, missed))
            }
            Err(RecvError::Closed) => None,
        }
    }

    /// The next change if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<JobChange> {
        use broadcast::error::TryRecvError;
        match self.rx.try_recv() {
            Ok(change) => Some(change),
            Err(TryRecvError::Lagged(missed)) => {
                Some(JobChange::resynced(ChangeOrigin::Local, missed))
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        }
    }
}

/// How hard a backend works to keep acknowledged writes across failures.
///
/// A neutral setting whose exact meaning each backend documents:
///
/// | backend | `None` | `Fsync` |
/// | --- | --- | --- |
/// | memory | (nothing is kept) | (nothing is kept) |
/// | filesystem | no `fsync`: survives a crash of any process, not of the machine | file and directory `fsync` before a create or transition returns; `create_batch` syncs once per batch |
/// | a database | the server acknowledges before its log is flushed (PostgreSQL: `synchronous_commit = off`): survives a crash of any client, a server crash may lose the last moments | acknowledged after the server's log is flushed (`synchronous_commit = on`) |
///
/// In-place updates of running jobs (progress, heartbeats) never wait for
/// stable storage in either mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// Writes survive a crash of any process using the store, not a power
    /// loss of the machine holding the data.
    None,
    /// Creates and transitions survive power loss: they are on stable
    /// storage before the call returns.
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
    /// The backend judges leases and due times by its own clock (a database
    /// server's), not by the `now` its callers pass: hosts' clocks differ,
    /// one server clock does not. See [`JobStore`]'s section on clocks.
    pub server_clock: bool,
}

impl Capabilities {
    /// A capabilities value (the struct is non-exhaustive outside this
    /// crate); `server_clock` is false, see [`Capabilities::with_server_clock`].
    pub const fn new(cross_process: bool, persistent: bool, external_events: bool) -> Self {
        Capabilities {
            cross_process,
            persistent,
            external_events,
            server_clock: false,
        }
    }

    /// The same capabilities with `server_clock` set.
    pub const fn with_server_clock(mut self, server_clock: bool) -> Self {
        self.server_clock = server_clock;
        self
    }
}

/// A worker's periodic sign of life, for [`JobStore::heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The registered worker.
    pub worker_id: String,
    /// The caller's clock (ignored for lease arithmetic by backends with
    /// [`Capabilities::server_clock`]).
    pub now: Timestamp,
    /// The running jobs the worker believes it holds, as `(id, attempt)`.
    pub held: Vec<(JobId, u32)>,
}

/// A job a worker believed it held that the store no longer holds for it,
/// from [`JobStore::heartbeat`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostJob {
    /// The job.
    pub id: JobId,
    /// The attempt the worker held.
    pub attempt: u32,
    /// The job's status now (`None`: the job is gone). A running status
    /// means another attempt (or another worker) holds it.
    pub status: Option<JobStatus>,
}

impl LostJob {
    /// Whether the job was lost because a user cancelled it.
    pub fn cancelled(&self) -> bool {
        self.status == Some(JobStatus::Cancelled)
    }
}

/// A worker as the store knows it, from [`JobStore::workers`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerRecord {
    /// The worker id.
    pub id: String,
    /// Whether the store considers the worker alive now (registered and not
    /// known to be dead; where liveness cannot be seen, within its lease).
    pub alive: bool,
    /// The lease the worker promised to renew within.
    pub lease: Duration,
    /// The last registration or heartbeat the store recorded.
    pub last_seen: Option<Timestamp>,
    /// The host the worker runs on, where known.
    pub host: Option<String>,
    /// The worker's process id on its host, where known.
    pub pid: Option<u32>,
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
/// method that changes a job is conditional; see the crate docs. Backends
/// must keep the invariants listed in `ARCHITECTURE.md` and pass the
/// conformance suite (the `conformance` module, behind the feature of that
/// name).
///
/// # Clocks
///
/// Callers pass their clock's `now` into every call that compares times
/// (claims, heartbeats, recovery). The rule every backend follows:
///
/// - A backend without [`Capabilities::server_clock`] never reads a clock to
///   decide a lease or a due time: expiry and due-ness are judged only
///   against the `now` of the call. Work a backend does on its own (the
///   filesystem backend's recovery passes at open and on a timer) recovers
///   only jobs whose worker it can *see* is dead (a released liveness lock),
///   never jobs whose lease merely looks expired by the wall clock. So a
///   queue on a fake clock sees exactly the leases its clock implies.
/// - A backend with `server_clock` (a database shared by many hosts) judges
///   leases and due times by its own clock and ignores `now` for them:
///   `leaseExpiresAt` becomes server time + lease, a job is due when its
///   `runAt` has passed by server time, and recovery compares leases with
///   server time. Timestamps it writes for humans (`startedAt`,
///   `completedAt`) still come from the job documents callers write.
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new job (any status, normally pending) if no job has its id.
    ///
    /// Errors: [`ErrorKind::AlreadyExists`] when the id is taken.
    async fn create(&self, job: &Job) -> Result<()>;

    /// Stores many new jobs behind one durability barrier (group commit).
    ///
    /// What a failed batch leaves behind is exact: every error is an
    /// [`Error::Batch`](crate::Error::Batch) whose
    /// [`batch_stored`](crate::Error::batch_stored) says how many jobs,
    /// from the start of the batch, are stored (a transactional backend
    /// stores none); the rest are not stored. Its [`kind`](crate::Error::kind) is the
    /// cause's, e.g. [`ErrorKind::AlreadyExists`] for a taken id.
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

    /// Rewrites a running job in place (progress), fenced by `job.attempt`.
    /// Never waits for stable storage.
    ///
    /// Errors: [`ErrorKind::InvalidInput`] if `job` is not running;
    /// [`ErrorKind::Conflict`] if the stored job is not running at
    /// `job.attempt` (cancelled, recovered, completed meanwhile).
    async fn update_running(&self, job: &Job) -> Result<()>;

    /// Atomically takes the due pending job with the highest priority and
    /// then the smallest id among `req.types`, and makes it running
    /// ([`rules::claimed`]): attempt + 1, `startedAt`, `workerId`,
    /// `leaseExpiresAt = now + lease`. Returns the running job, or `None`
    /// when nothing is due.
    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>>;

    /// Claims up to `max` due jobs in claim order, as one call: a runner
    /// with `max` free slots fills them with one round trip. Returns fewer
    /// (possibly none) when fewer are due.
    ///
    /// The default calls [`claim`](Self::claim) up to `max` times; backends
    /// that can claim many jobs in one statement or under one lock override
    /// it. Errors: those of `claim`; an error after some claims keeps them
    /// (the claimed jobs stay running and are recovered like any other if
    /// their worker never runs them).
    async fn claim_batch(&self, req: &ClaimRequest, max: usize) -> Result<Vec<Job>> {
        let mut out = Vec::new();
        while out.len() < max {
            match self.claim(req).await {
                Ok(Some(job)) => out.push(job),
                Ok(None) => break,
                Err(e) if out.is_empty() => return Err(e),
                Err(_) => break,
            }
        }
        Ok(out)
    }

    /// The job [`JobStore::claim`] would take now, without taking it.
    async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>>;

    /// Jobs matching `filter`, newest first, with the total match count.
    async fn list(&self, filter: &JobFilter) -> Result<JobPage>;

    /// Job counts per status. Exact, and cheap enough to call on every
    /// refresh of a dashboard (no scan of every job).
    async fn stats(&self) -> Result<QueueStats>;

    /// Job counts per status for each job type that has jobs.
    async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>>;

    /// Up to `limit` finished jobs whose `completedAt` is before `before`,
    /// oldest first (candidates for retention cleanup).
    async fn finished_before(&self, before: Timestamp, limit: usize) -> Result<Vec<FinishedJob>>;

    /// Deletes a finished job if it is still in `expect`.
    ///
    /// Errors: [`ErrorKind::InvalidInput`] if `expect.status` is not a
    /// finished status; [`ErrorKind::NotFound`]; [`ErrorKind::Conflict`].
    async fn delete(&self, id: &JobId, expect: Expect) -> Result<()>;

    /// Deletes up to `limit` finished jobs whose `completedAt` is before
    /// `before`, oldest first, and returns how many it deleted (retention).
    /// Jobs that change meanwhile (retried, deleted by someone else) are
    /// left alone. Each deleted job is announced as [`ChangeKind::Deleted`].
    ///
    /// The default lists candidates with [`finished_before`](Self::finished_before)
    /// and deletes them one by one with [`delete`](Self::delete); a
    /// database deletes them in one statement.
    async fn delete_finished_before(&self, before: Timestamp, limit: usize) -> Result<u64> {
        let mut deleted = 0;
        for old in self.finished_before(before, limit).await? {
            match self.delete(&old.id, Expect::status(old.status)).await {
                Ok(()) => deleted += 1,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(deleted)
    }

    /// Declares a worker alive until [`JobStore::unregister_worker`] (or its
    /// process dies, where the backend can see that).
    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()>;

    /// Renews the leases of a registered worker's running jobs and returns
    /// those of `beat.held` the store no longer holds for it at that
    /// attempt (cancelled, recovered, deleted, re-claimed): the worker stops
    /// them. One call per worker per period, whatever the number of jobs.
    ///
    /// Errors: [`ErrorKind::InvalidInput`] when the worker is not
    /// registered.
    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>>;

    /// Declares a worker gone. Its running jobs become recoverable at once.
    async fn unregister_worker(&self, worker_id: &str) -> Result<()>;

    /// The workers the store knows of: live ones, and dead ones whose
    /// records are still kept, in id order.
    async fn workers(&self) -> Result<Vec<WorkerRecord>>;

    /// Returns running jobs of dead workers to pending (`retryCount + 1`) or
    /// to failed when their retries are spent ([`rules::recovered`]), and
    /// repairs whatever an interrupted operation left behind. A worker is
    /// dead when it was unregistered, when the backend sees that its process
    /// is gone, or when its lease expired before `now` (see the section on
    /// clocks).
    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport>;

    /// Change notifications: this instance's own changes, and where
    /// [`Capabilities::external_events`] says so, other processes' changes.
    fn subscribe(&self) -> ChangeStream;

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
            async fn claim_batch(&self, req: &ClaimRequest, max: usize) -> Result<Vec<Job>> {
                (**self).claim_batch(req, max).await
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
            async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>> {
                (**self).type_stats().await
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
            async fn delete_finished_before(&self, before: Timestamp, limit: usize) -> Result<u64> {
                (**self).delete_finished_before(before, limit).await
            }
            async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
                (**self).register_worker(worker).await
            }
            async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
                (**self).heartbeat(beat).await
            }
            async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
                (**self).unregister_worker(worker_id).await
            }
            async fn workers(&self) -> Result<Vec<WorkerRecord>> {
                (**self).workers().await
            }
            async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
                (**self).recover(now).await
            }
            fn subscribe(&self) -> ChangeStream {
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
