//! The PostgreSQL backend of semiont-jobs: many hosts, one database, the
//! same guarantees as the filesystem backend.
//!
//! ```text
//! <schema>.jobs          pending and running jobs (the claim path; fillfactor 70 for HOT updates)
//! <schema>.jobs_done     complete, failed and cancelled jobs (retention, listing)
//! <schema>.counts        exact counts per (type, status), sharded per connection
//! <schema>.workers       one row per worker incarnation (ids never reused)
//! <schema>.schema_migrations
//! ```
//!
//! - Every change is one statement whose `WHERE` is the compare-and-swap
//!   on (id, status, attempt); it moves the row between the two tables
//!   when needed and updates the counters in the same transaction. The
//!   caller is answered after the commit.
//! - A claim is one statement taking up to N due jobs in claim order with
//!   `FOR UPDATE SKIP LOCKED`; due-ness and leases are judged by the
//!   server's clock ([`PgClock`]).
//! - Liveness: incarnations hold session advisory locks on their store
//!   instance's listener connection, so a dead process is seen at once;
//!   heartbeats are per process and per worker, not per job (see the
//!   `liveness` module's docs).
//! - Other processes' changes arrive through LISTEN/NOTIFY, coalesced.
//!
//! ```no_run
//! use semiont_jobs_store::JobStore;
//! use semiont_jobs_store_pg::{DatabaseUrl, PgOptions, PgStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let url: DatabaseUrl = "postgres://jobs@db.internal/app".parse()?;
//! let store = PgStore::open(&url, PgOptions::default()).await?;
//! let stats = store.stats().await?;
//! println!("{} jobs pending", stats.pending);
//! # Ok(()) }
//! ```

mod admin;
mod batch;
mod claim;
mod connect;
mod error;
mod jobs;
mod liveness;
mod notify;
mod options;
mod row;
mod schema;
mod sql;
#[cfg(feature = "test-support")]
pub mod testing;
mod url;
mod vacuum;

use std::collections::BTreeMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use semiont_jobs_model::{Job, JobFilter, JobId, JobPage, JobType, QueueStats, Timestamp};
use semiont_jobs_store::{
    rules, Capabilities, ChangeKind, ChangeOrigin, ChangeStream, ClaimRequest, Expect, FinishedJob,
    Heartbeat, JobChange, JobStore, LostJob, RecoveryReport, Result, TypeFilter, UpdateFn, Updated,
    WorkerInfo, WorkerRecord, CHANGE_CHANNEL_CAPACITY,
};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio::task::JoinHandle;

pub use admin::{admin_sql, server_settings, table_stats, TableStats};
pub use error::OpenError;
pub use options::{check_schema_name, PgClock, PgOptions, DEFAULT_SCHEMA, DEFAULT_VACUUM_EVERY};
pub use schema::{Migrated, SCHEMA_VERSION};
#[doc(no_inline)]
pub use semiont_jobs_store::Durability;
pub use url::{redact, DatabaseUrl};

use crate::error::pool_err;
use crate::liveness::Live;

/// A [`JobStore`] in a PostgreSQL schema. Cheap to share behind an `Arc`;
/// its background tasks (listener, notifier, liveness beat) stop when it is
/// dropped, and the server then releases its workers' liveness locks.
pub struct PgStore {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
    migrated: Migrated,
}

/// The rendered statements of every module.
#[derive(Debug)]
pub(crate) struct Statements {
    pub jobs: jobs::Sql,
    pub claim: claim::Sql,
    pub live: liveness::Sql,
    /// The group-committed finish ([`batch`]).
    pub finish: String,
    /// The batched read ([`batch`]).
    pub read: String,
}

/// What the store's calls and background tasks share.
pub(crate) struct Inner {
    pub schema: String,
    pub url: String,
    pub opts: PgOptions,
    pub config: tokio_postgres::Config,
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
    pub pool: Pool,
    pub sql: Statements,
    pub tx: broadcast::Sender<JobChange>,
    pub outbox: mpsc::UnboundedSender<notify::Outgoing>,
    /// Finishes waiting for the finisher's next batch.
    pub finishes: mpsc::UnboundedSender<batch::Finish>,
    /// Creates waiting for the creator's next batch.
    pub creates: mpsc::UnboundedSender<batch::Create>,
    /// Reads waiting for the reader's next batch.
    pub reads: mpsc::UnboundedSender<batch::Read>,
    pub live: Live,
    /// This instance's id in notification payloads.
    pub instance: String,
    pub channel: String,
    /// Wakes the liveness beat early (an incarnation to replace).
    pub wake_beat: Notify,
    /// This value, for tasks it spawns on its own.
    pub me: std::sync::OnceLock<std::sync::Weak<Inner>>,
    /// A recovery pass after the grace period is scheduled.
    pub recovery_scheduled: std::sync::atomic::AtomicBool,
    /// The jobs this instance claimed, as last written by it (see
    /// [`Inner::remember_claimed`]).
    pub claimed: std::sync::Mutex<std::collections::HashMap<JobId, Job>>,
    /// Changes this instance made since the vacuumer last looked.
    pub writes: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.inner.url)
            .field("schema", &self.inner.schema)
            .field("durability", &self.inner.opts.durability)
            .field("clock", &self.inner.opts.clock)
            .finish_non_exhaustive()
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn random_hex() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{:016x}", h.finish())
}

impl PgStore {
    /// Opens the queue in `opts.schema` of the database at `url`: connects,
    /// applies missing migrations (under an advisory lock; a newer schema
    /// is refused), opens the listener connection and starts the
    /// background tasks. Must run inside a tokio runtime.
    pub async fn open(url: &DatabaseUrl, opts: PgOptions) -> std::result::Result<Self, OpenError> {
        opts.validate()?;
        let redacted = url.redacted();
        let config = connect::config(url, &opts);
        let tls = connect::tls(url.verify()).map_err(|reason| OpenError::InvalidUrl {
            url: redacted.clone(),
            reason,
        })?;
        let pool = connect::pool(config.clone(), tls.clone(), &opts);
        let migrated = {
            let mut first = pool
                .get()
                .await
                .map_err(|e| OpenError::from_pool(&redacted, e))?;
            let client: &mut tokio_postgres::Client = &mut first;
            schema::migrate(client, &redacted, &opts.schema, opts.migrate).await?
        };
        let (tx, _) = broadcast::channel(CHANGE_CHANNEL_CAPACITY);
        let (outbox, outbox_rx) = mpsc::unbounded_channel();
        let (finishes, finishes_rx) = mpsc::unbounded_channel();
        let (reads, reads_rx) = mpsc::unbounded_channel();
        let (creates, creates_rx) = mpsc::unbounded_channel();
        let schema = opts.schema.clone();
        let inner = Arc::new(Inner {
            sql: Statements {
                jobs: jobs::Sql::new(&schema),
                claim: claim::Sql::new(&schema),
                live: liveness::Sql::new(&schema),
                finish: batch::sql(&schema),
                read: batch::read_sql(&schema),
            },
            channel: notify::channel(&schema),
            schema,
            url: redacted.clone(),
            opts,
            config,
            tls,
            pool: pool.clone(),
            tx,
            outbox,
            finishes,
            creates,
            reads,
            live: Live::default(),
            instance: random_hex(),
            wake_beat: Notify::new(),
            me: std::sync::OnceLock::new(),
            recovery_scheduled: std::sync::atomic::AtomicBool::new(false),
            claimed: std::sync::Mutex::new(std::collections::HashMap::new()),
            writes: std::sync::atomic::AtomicU64::new(0),
        });
        let _ = inner.me.set(Arc::downgrade(&inner));
        let messages =
            liveness::connect_listener(&inner)
                .await
                .map_err(|reason| OpenError::Unreachable {
                    url: redacted.clone(),
                    reason,
                })?;
        let mut tasks = vec![
            tokio::spawn(liveness::listen(Arc::clone(&inner), messages)),
            tokio::spawn(notify::notifier(
                pool,
                inner.channel.clone(),
                inner.instance.clone(),
                outbox_rx,
            )),
            tokio::spawn(liveness::self_beat(Arc::clone(&inner))),
            tokio::spawn(batch::finisher(Arc::downgrade(&inner), finishes_rx)),
            tokio::spawn(batch::reader(Arc::downgrade(&inner), reads_rx)),
            tokio::spawn(batch::creator(Arc::downgrade(&inner), creates_rx)),
        ];
        if let Some(every) = inner.opts.vacuum_every {
            tasks.push(tokio::spawn(vacuum::vacuumer(
                Arc::downgrade(&inner),
                every,
            )));
        }
        Ok(PgStore {
            inner,
            tasks,
            migrated,
        })
    }

    /// The schema version before and after this open's migrations.
    pub fn migrated(&self) -> Migrated {
        self.migrated
    }

    /// The schema holding the queue.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The database URL, password hidden.
    pub fn url(&self) -> &str {
        &self.inner.url
    }
}

/// Most claimed jobs remembered at once.
const CLAIMED_CAPACITY: usize = 10_000;

impl Inner {
    /// Remembers a job this instance claimed or rewrote while it runs, so
    /// that finishing it (`update_with`: the queue's complete and fail)
    /// needs no read first. Only the claimer writes a running attempt's
    /// document; the finish is conditioned on status and attempt, so a
    /// job cancelled, recovered or claimed again meanwhile is refused as
    /// with a fresh read. Forgotten on any transition of the job, on any
    /// other instance's news of it, and when finished.
    pub(crate) fn remember_claimed(&self, job: &Job) {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if claimed.len() < CLAIMED_CAPACITY || claimed.contains_key(&job.id) {
            claimed.insert(job.id.clone(), job.clone());
        }
    }

    /// Replaces a remembered job with the version just written.
    pub(crate) fn rewrote_claimed(&self, job: &Job) {
        let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = claimed.get_mut(&job.id) {
            *held = job.clone();
        }
    }

    /// Forgets a remembered job; returns it.
    pub(crate) fn forget_claimed(&self, id: &JobId) -> Option<Job> {
        self.claimed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
    }

    /// A pooled connection.
    pub(crate) async fn conn(&self) -> Result<Object> {
        self.pool.get().await.map_err(pool_err)
    }

    /// The caller's time when it judges leases and due times, else `None`
    /// (the statement uses the server's).
    pub(crate) fn caller_now(&self, now: Timestamp) -> Option<i64> {
        match self.opts.clock {
            PgClock::Caller => Some(now.as_millis()),
            PgClock::Server => None,
        }
    }

    /// Tells this instance's subscribers at once and queues the change for
    /// the others (NOTIFY, coalesced).
    pub(crate) fn announce_change(&self, change: JobChange) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.outbox.send((notify::encode(&change), None));
        let _ = self.tx.send(change);
    }

    /// Tells this instance's subscribers only (the others learn of the
    /// change from a notification the change's own statement sent).
    pub(crate) fn tell_local(&self, change: JobChange) {
        self.writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.tx.send(change);
    }

    /// Waits (briefly) until every change queued so far was sent to the
    /// other instances.
    pub(crate) async fn flush_news(&self) {
        // An empty line carries no change, only the wait.
        self.queue_and_wait(String::new()).await;
    }

    /// Queues `line` for the notifier and waits (at most 2 s) until it,
    /// and every line queued before it, was sent.
    async fn queue_and_wait(&self, line: String) {
        let (done, sent) = tokio::sync::oneshot::channel();
        if self.outbox.send((line, Some(done))).is_ok() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), sent).await;
        }
    }

    /// Announces a change of `job`.
    pub(crate) fn announce(&self, job: &Job, kind: ChangeKind) {
        self.announce_change(JobChange::of(job, kind, ChangeOrigin::Local));
    }

    /// Announces a change and waits (briefly) until the notification that
    /// carries it, and every one queued before it, was sent: a process that
    /// exits right after a write (a CLI command) still tells the others.
    /// Concurrent writers share one NOTIFY.
    pub(crate) async fn announce_sent(&self, change: JobChange) {
        let line = notify::encode(&change);
        let _ = self.tx.send(change);
        self.queue_and_wait(line).await;
    }
}

#[async_trait]
impl JobStore for PgStore {
    async fn create(&self, job: &Job) -> Result<()> {
        self.inner.insert_jobs(std::slice::from_ref(job)).await
    }

    /// All or nothing, in one statement: a failed batch stores no job.
    async fn create_batch(&self, jobs: &[Job]) -> Result<()> {
        self.inner
            .insert_jobs(jobs)
            .await
            .map_err(|e| semiont_jobs_store::Error::batch(0, e))
    }

    async fn get(&self, id: &JobId) -> Result<Job> {
        self.inner.get_job(id).await
    }

    async fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
        self.inner.transition_job(expect, job).await
    }

    async fn update_with(&self, id: &JobId, f: UpdateFn) -> Result<Updated> {
        // A job this instance claimed is finished from its remembered
        // version (one statement instead of a read and a write).
        let remembered = self.inner.forget_claimed(id);
        let fresh = remembered.is_none();
        let current = match remembered {
            Some(job) => job,
            None => self.get(id).await?,
        };
        match f(&current) {
            Some((expect, next)) => {
                rules::check_same_id(id, &next)?;
                self.transition(expect, &next).await?;
                Ok(Updated::Written(next))
            }
            None if fresh => Ok(Updated::Declined(current)),
            None => Ok(Updated::Declined(self.get(id).await?)),
        }
    }

    async fn update_running(&self, job: &Job) -> Result<()> {
        self.inner.update_running_job(job).await
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
        Ok(self.inner.claim_jobs(req, 1).await?.into_iter().next())
    }

    async fn claim_batch(&self, req: &ClaimRequest, max: usize) -> Result<Vec<Job>> {
        self.inner.claim_jobs(req, max).await
    }

    async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
        self.inner.peek(types, now).await
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        self.inner.list_jobs(filter).await
    }

    async fn stats(&self) -> Result<QueueStats> {
        self.inner.stats_now().await
    }

    async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>> {
        self.inner.type_stats_now().await
    }

    async fn finished_before(&self, before: Timestamp, limit: usize) -> Result<Vec<FinishedJob>> {
        self.inner.finished_jobs_before(before, limit).await
    }

    async fn delete(&self, id: &JobId, expect: Expect) -> Result<()> {
        self.inner.delete_job(id, expect).await
    }

    async fn delete_finished_before(&self, before: Timestamp, limit: usize) -> Result<u64> {
        self.inner.delete_old(before, limit).await
    }

    async fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool> {
        self.inner.pause(job_type, paused).await
    }

    async fn paused_types(&self) -> Result<std::collections::BTreeSet<JobType>> {
        self.inner.paused_set().await
    }

    async fn try_lock_sweep(
        &self,
        holder: &str,
        ttl: std::time::Duration,
        now: Timestamp,
    ) -> Result<bool> {
        self.inner.sweep_lock(holder, ttl, now).await
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        self.inner.register(worker).await
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
        self.inner.beat(beat).await
    }

    async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
        self.inner.unregister(worker_id).await
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        self.inner.list_workers().await
    }

    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
        self.inner.recover_jobs(now).await
    }

    fn subscribe(&self) -> ChangeStream {
        ChangeStream::from_broadcast(self.inner.tx.subscribe())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(true, true, true)
            .with_server_clock(self.inner.opts.clock == PgClock::Server)
    }
}
