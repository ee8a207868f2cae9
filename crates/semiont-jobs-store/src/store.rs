//! The [`JobStore`] trait and the small value types of its requests and
//! notifications.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use semiont_jobs_model::{
    Checkpoint, Job, JobFilter, JobId, JobPage, JobStatus, JobType, QueueStats, Timestamp,
    Transition, TypeFilter, MAX_LIST_LIMIT,
};
use serde_json::Value;
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

    /// Exactly this version of `job`: its status at its attempt.
    pub fn exactly(job: &Job) -> Self {
        Expect {
            status: job.status,
            attempt: Some(job.attempt),
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

/// A checkpoint of a running job, for [`JobStore::checkpoint`].
#[derive(Clone, Debug, PartialEq)]
pub struct CheckpointRequest {
    /// The job.
    pub id: JobId,
    /// The attempt the worker holds (the fence).
    pub attempt: u32,
    /// Units finished and cursors moved since the last checkpoint.
    pub checkpoint: Checkpoint,
    /// A progress value written in the same write (`None`: progress is
    /// left as it is). Validated by the caller.
    pub progress: Option<Value>,
    /// The caller's clock (ignored by backends with
    /// [`Capabilities::server_clock`]).
    pub now: Timestamp,
    /// The lease renewed by the checkpoint: `leaseExpiresAt` becomes
    /// `now + lease`.
    pub lease: Duration,
}

/// Which jobs a bulk operation ([`JobStore::cancel_pending`],
/// [`JobStore::retry_failed`]) acts on: every field that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobSelector {
    /// Only jobs of this type.
    pub job_type: Option<JobType>,
    /// Only jobs of this user.
    pub user_id: Option<String>,
}

impl JobSelector {
    /// Jobs of `job_type`.
    pub fn of_type(job_type: JobType) -> Self {
        JobSelector {
            job_type: Some(job_type),
            user_id: None,
        }
    }

    /// Whether `job` matches.
    pub fn matches(&self, job: &Job) -> bool {
        self.job_type.as_ref().is_none_or(|t| *t == job.job_type)
            && self.user_id.as_deref().is_none_or(|u| u == job.user_id)
    }

    /// A list filter for jobs in `status` matching this selector.
    pub fn filter(&self, status: JobStatus) -> JobFilter {
        JobFilter {
            status: Some(status),
            job_type: self.job_type.clone(),
            user_id: self.user_id.clone(),
            ..JobFilter::default()
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
///
/// # Unique keys
///
/// A job may carry a `uniqueKey`. A job *holds* its key while it is pending
/// or running, and, when it has `uniqueAfterFinishMs`, that long after its
/// `completedAt` ([`Job::holds_unique_key`]; "now" is the new job's
/// `created`, or the server's time). Every write that makes a job hold its
/// key — [`create`](Self::create), [`create_batch`](Self::create_batch),
/// and the [`transition`](Self::transition) of a manual retry (failed or
/// cancelled → pending) — fails with [`Error::UniqueKeyTaken`](crate::Error::UniqueKeyTaken) (kind
/// [`ErrorKind::AlreadyExists`]) naming the holder when another job holds
/// the key, and writes nothing; concurrent writers (other tasks, other
/// processes) never both succeed. A database keeps a table of keys (key
/// primary, job id, `held_until` null while the job is active) and claims a
/// key with `INSERT … ON CONFLICT (key) DO UPDATE … WHERE the holder no
/// longer holds it` in the same transaction as the job's insert; the
/// filesystem backend keeps a reservation file per key (see its storage
/// format).
///
/// # Paused types
///
/// A paused job type ([`set_paused`](Self::set_paused)) is skipped by
/// [`claim`](Self::claim), [`claim_batch`](Self::claim_batch) and
/// [`peek_next`](Self::peek_next) of every instance and process sharing the
/// store, from the moment `set_paused` returns; running jobs of the type
/// run on. The set is stored with the jobs (a small file, a table) and
/// survives restarts.
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug + 'static {
    /// Stores a new job (any status, normally pending) if no job has its id
    /// and, for a job that would hold a unique key, no other job holds that
    /// key (see the section on unique keys).
    ///
    /// Errors: [`ErrorKind::AlreadyExists`] when the id is taken, or
    /// ([`Error::UniqueKeyTaken`](crate::Error::UniqueKeyTaken)) when the key is held.
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
    /// not in `expect`; [`Error::UniqueKeyTaken`](crate::Error::UniqueKeyTaken) when a retry would make
    /// the job hold a unique key another job holds.
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

    /// Records a checkpoint of a running job: merges `req.checkpoint` into
    /// its `completedUnits` and `unitCursors` by the model's merge rules,
    /// writes `req.progress` when given, and renews its lease
    /// (`leaseExpiresAt = now + lease`, like a heartbeat) — all in one
    /// write, fenced: only while the job is running at `req.attempt`.
    /// Returns the job as written. Never waits for stable storage longer
    /// than a progress write does ([`rules::checkpointed`] computes the new
    /// version).
    ///
    /// Errors: [`ErrorKind::NotFound`]; [`ErrorKind::Conflict`] when the
    /// job is not running at that attempt (nothing is written).
    ///
    /// The default reads the job, merges, and writes it back with
    /// [`update_running`](Self::update_running): correct because only the
    /// worker holding an attempt writes its content (and heartbeats, which
    /// this write renews anyway). Backends that can read and write under one
    /// lock override it; a database does it in one transaction (`SELECT …
    /// FOR UPDATE` of the row at (id, running, attempt), merge, `UPDATE`),
    /// or in one `UPDATE … WHERE id = $1 AND status = 'running' AND attempt
    /// = $2` computing the union and the cursor rule in SQL.
    async fn checkpoint(&self, req: &CheckpointRequest) -> Result<Job> {
        let current = self.get(&req.id).await?;
        let expect = Expect::running(req.attempt);
        if !expect.holds(current.status, current.attempt) {
            return Err(crate::Error::Conflict {
                id: req.id.clone(),
                expected: expect,
                actual: Some((current.status, current.attempt)),
            });
        }
        let next = rules::checkpointed(current, req);
        self.update_running(&next).await?;
        Ok(next)
    }

    /// Atomically takes the due pending job with the highest priority and
    /// then the smallest id among `req.types` (paused types skipped), and
    /// makes it running ([`rules::claimed`]): attempt + 1, `startedAt`,
    /// `workerId`, `leaseExpiresAt = now + lease`, no `progress` (a new
    /// attempt starts clean; checkpoints are kept). Returns the running
    /// job, or `None` when nothing is due.
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

    /// Job counts per status for each job type that has jobs or is paused,
    /// with [`QueueStats::paused`] set for paused types.
    async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>>;

    /// Pauses (`paused = true`) or resumes claims of `job_type` for every
    /// instance and process sharing the store (see the section on paused
    /// types). Returns whether the set changed. A database: one `INSERT …
    /// ON CONFLICT DO NOTHING` into (or `DELETE` from) a table of paused
    /// types, which the claim statement excludes.
    async fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool>;

    /// The paused job types.
    async fn paused_types(&self) -> Result<BTreeSet<JobType>>;

    /// Cancels every pending job matching `selector` ([`rules::cancelled`]
    /// at `now`) and returns how many it cancelled. Jobs that move
    /// meanwhile (claimed, cancelled by someone else) are left alone. Each
    /// cancelled job is announced as a transition.
    ///
    /// The default lists the matching jobs page by page and cancels them one
    /// by one with [`transition`](Self::transition), examining at most as
    /// many jobs as matched at its start (so producers enqueueing
    /// meanwhile cannot keep it going); a database does it in one `UPDATE …
    /// WHERE status = 'pending' AND …`, exactly the jobs matching at that
    /// instant.
    async fn cancel_pending(&self, selector: &JobSelector, now: Timestamp) -> Result<u64> {
        bulk(self, selector, JobStatus::Pending, |job| {
            rules::cancelled(job.clone(), now)
        })
        .await
    }

    /// Retries every failed job matching `selector` ([`rules::retried`]:
    /// pending, due at once, a fresh retry budget, checkpoints kept) and
    /// returns how many it retried. Jobs whose unique key another job holds
    /// now stay failed and are not counted. The default and a database's
    /// one statement are as for [`cancel_pending`](Self::cancel_pending)
    /// (the database's `UPDATE` skips rows whose key is held).
    async fn retry_failed(&self, selector: &JobSelector) -> Result<u64> {
        bulk(self, selector, JobStatus::Failed, |job| {
            rules::retried(job.clone())
        })
        .await
    }

    /// Takes the retention-sweep lease for `holder` if nobody else holds
    /// it: returns true (and holds it until `now + ttl`) when it was free,
    /// expired, or already `holder`'s; false when another holder's lease
    /// runs. One sweep at a time across every process sharing the store,
    /// with no leader election: a holder that dies simply lets its lease
    /// run out. Leases are judged like job leases (see the section on
    /// clocks).
    ///
    /// Memory: a mutex-guarded (holder, until); filesystem: the lease
    /// written in a file under an `flock`; a database: one `INSERT … ON
    /// CONFLICT (name) DO UPDATE SET holder = $1, until = now() + $2 WHERE
    /// locks.until < now() OR locks.holder = $1 RETURNING holder` (or a
    /// transaction-level advisory lock around the same check).
    async fn try_lock_sweep(&self, holder: &str, ttl: Duration, now: Timestamp) -> Result<bool>;

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
            async fn checkpoint(&self, req: &CheckpointRequest) -> Result<Job> {
                (**self).checkpoint(req).await
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
            async fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool> {
                (**self).set_paused(job_type, paused).await
            }
            async fn paused_types(&self) -> Result<BTreeSet<JobType>> {
                (**self).paused_types().await
            }
            async fn cancel_pending(&self, selector: &JobSelector, now: Timestamp) -> Result<u64> {
                (**self).cancel_pending(selector, now).await
            }
            async fn retry_failed(&self, selector: &JobSelector) -> Result<u64> {
                (**self).retry_failed(selector).await
            }
            async fn try_lock_sweep(
                &self,
                holder: &str,
                ttl: Duration,
                now: Timestamp,
            ) -> Result<bool> {
                (**self).try_lock_sweep(holder, ttl, now).await
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

/// The default of the bulk operations: moves the jobs in `from` matching
/// `selector` to what `next` makes of them, page by page, one conditional
/// transition each. Examines at most as many jobs as matched at the start.
async fn bulk<S, F>(store: &S, selector: &JobSelector, from: JobStatus, next: F) -> Result<u64>
where
    S: JobStore + ?Sized,
    F: Fn(&Job) -> Job + Send + Sync,
{
    let page_size = MAX_LIST_LIMIT.min(1000);
    let mut filter = selector.filter(from).limit(page_size);
    let budget = store.list(&filter.clone().limit(0)).await?.total;
    let (mut examined, mut moved, mut skipped) = (0usize, 0u64, 0usize);
    while examined < budget {
        filter.offset = skipped;
        let page = store.list(&filter).await?;
        if page.jobs.is_empty() {
            break;
        }
        for job in page.jobs.iter().take(budget - examined) {
            examined += 1;
            if job.status != from || !selector.matches(job) {
                skipped += 1;
                continue;
            }
            match store.transition(Expect::exactly(job), &next(job)).await {
                Ok(()) => moved += 1,
                // Moved by someone else: it left the listing.
                Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
                // Its unique key is held: it stays where it is.
                Err(e) if e.unique_holder().is_some() => skipped += 1,
                Err(e) => return Err(e),
            }
        }
    }
    Ok(moved)
}

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
