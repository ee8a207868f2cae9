//! The filesystem backend of semiont-jobs: a [`JobStore`] keeping each job
//! as `<id>.json` in the directory of its status, safe to share between
//! processes and crash-safe at every step.
//!
//! **Linux only.** The protocol rests on Linux system calls: `renameat2`
//! (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`), `syncfs`, `getdents64` and
//! inotify (through `notify`). On any other system this crate stops the
//! build with one `compile_error!` saying so; use another backend there
//! (`semiont_jobs_store::MemoryStore`, or the `semiont-jobs` facade without
//! its `fs` feature).
//!
//! ```text
//! <jobs dir>/
//!   pending/ running/ complete/ failed/ cancelled/   <id>.json, the seed's layout
//!   tmp/<instance>/       staged files of one live store instance (flocked)
//!   quarantine/           unusable files, each with a .reason file
//!   workers/<id>.lock     one per registered worker, flocked while it lives
//!   locks/stripe-NN       per-job lock stripes; locks/recovery.lock
//! ```
//!
//! The protocol in brief (`docs/storage-format.md` has every step):
//! - a file is published only by renaming a staged file from `tmp/` into
//!   a status directory; nothing is ever written in place there;
//! - every change of a job happens under its lock (an `flock` the kernel
//!   releases when a process dies) and is conditional on (status, attempt);
//! - a transition renames the job into its new directory, then renames the
//!   staged new content over it: the job is in exactly one directory at
//!   every instant, and recovery rolls a half-done transition forward
//!   (staged content present) or back;
//! - a claim is one rename out of `pending/`;
//! - claim, stats and list read an in-memory index built by one scan at
//!   open and kept current by this instance's operations and `notify`
//!   events (rescans on overflow and on a slow timer);
//! - the index of finished jobs is saved in `index.snapshot` (on drop and
//!   when enough changed), so an open reads only the files the snapshot
//!   does not explain; a file it names is trusted only when its inode,
//!   mtime and size are the recorded ones.
//!
//! ```no_run
//! use semiont_jobs_store::JobStore;
//! use semiont_jobs_store_fs::{FsOptions, FsStore};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = FsStore::open("/path/to/data/jobs", FsOptions::default()).await?;
//! let stats = store.stats().await?;
//! assert_eq!(stats.total(), stats.pending + stats.running + stats.complete + stats.failed + stats.cancelled);
//! # Ok(()) }
//! ```

// Elsewhere than Linux: this one error, and none of the modules below
// (they call Linux-only functions). The `crate::` imports of them then
// fail without a report of their own (rustc reports no unresolved import
// after a failed macro expansion), so this is the only error a build
// prints (checked by flipping these cfgs to `target_os = "macos"`).
#[cfg(not(target_os = "linux"))]
compile_error!(
    "semiont-jobs-store-fs needs Linux: it uses renameat2, syncfs, getdents64 and inotify; \
     on other systems use another backend (semiont_jobs_store::MemoryStore, or the \
     semiont-jobs facade without its `fs` feature)"
);

#[cfg(target_os = "linux")]
mod control;
#[cfg(target_os = "linux")]
mod error;
#[cfg(all(target_os = "linux", feature = "fault-injection"))]
pub mod fault;
#[cfg(target_os = "linux")]
mod format;
#[cfg(target_os = "linux")]
mod index;
#[cfg(target_os = "linux")]
mod inner;
#[cfg(target_os = "linux")]
mod key;
#[cfg(target_os = "linux")]
mod layout;
#[cfg(target_os = "linux")]
mod open;
#[cfg(target_os = "linux")]
mod ops;
#[cfg(target_os = "linux")]
mod options;
#[cfg(target_os = "linux")]
mod quarantine;
#[cfg(target_os = "linux")]
mod recovery;
#[cfg(target_os = "linux")]
mod scan;
#[cfg(target_os = "linux")]
mod snapshot;
#[cfg(target_os = "linux")]
mod staging;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod unique;
#[cfg(target_os = "linux")]
mod watch;
#[cfg(target_os = "linux")]
mod workers;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use semiont_jobs_model::{
    Job, JobFilter, JobId, JobLayout, JobPage, JobType, QueueStats, Timestamp,
};
use semiont_jobs_store::{
    Capabilities, ChangeStream, CheckpointRequest, ClaimRequest, Error, Expect, FinishedJob,
    Heartbeat, JobSelector, JobStore, LostJob, RecoveryReport, Result, TypeFilter, UpdateFn,
    Updated, WorkerInfo, WorkerRecord,
};

pub use crate::error::OpenError;
pub use crate::options::FsOptions;
pub use crate::snapshot::OpenReport;
#[doc(no_inline)]
pub use semiont_jobs_store::Durability;

use crate::inner::Inner;

/// A [`JobStore`] on a jobs directory. See the crate docs for the layout
/// and protocol. Cheap to share behind an `Arc`; background work (watcher,
/// rescans, recovery passes) stops when it is dropped.
pub struct FsStore {
    inner: Arc<Inner>,
    _watcher: Option<watch::Watcher>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    report: OpenReport,
}

/// The background pass writes the snapshot once this many index changes
/// are not in one.
const SNAPSHOT_MIN_CHANGES: u64 = 10_000;

impl fmt::Debug for FsStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FsStore")
            .field("dir", &self.inner.layout.root_path())
            .field("instance", &self.inner.instance)
            .field("durability", &self.inner.opts.durability)
            .finish_non_exhaustive()
    }
}

impl Drop for FsStore {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // Save the index for the next open (a crash only costs it reads).
        self.inner.snapshot_if_behind(1);
    }
}

fn join_error(root: &Path, e: tokio::task::JoinError) -> Error {
    Error::io(
        "run a store operation on",
        root,
        std::io::Error::other(format!("the operation's thread failed: {e}")),
    )
}

fn spawn_timer(
    inner: Weak<Inner>,
    every: Duration,
    pass: fn(&Inner),
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let start = tokio::time::Instant::now() + every;
        let mut interval = tokio::time::interval_at(start, every);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(inner) = inner.upgrade() else { break };
            let _ = tokio::task::spawn_blocking(move || pass(&inner)).await;
        }
    })
}

impl FsStore {
    /// Opens (creating if needed) the jobs directory `dir`: checks that it
    /// and its subdirectories are real directories owned by this user (mode
    /// 0700), runs a recovery pass, builds the index, and starts the
    /// watcher and the background passes. Must be called within a Tokio
    /// runtime (the store runs its file operations on Tokio's blocking
    /// threads, or in place on a multi-threaded runtime when durability is
    /// `None`).
    pub async fn open(
        dir: impl Into<PathBuf>,
        options: FsOptions,
    ) -> std::result::Result<FsStore, OpenError> {
        let root: PathBuf = dir.into();
        let (inner, watch, report) = {
            let dir = root.clone();
            let opts = options.clone();
            tokio::task::spawn_blocking(move || open::open_blocking(dir, opts))
                .await
                .map_err(|e| OpenError::Io {
                    op: "open",
                    path: root.clone(),
                    source: std::io::Error::other(e.to_string()),
                })??
        };
        let inner = Arc::new(inner);
        let mut tasks = Vec::new();
        if let Some(watcher) = &watch {
            watcher
                .attach(Arc::downgrade(&inner))
                .map_err(|e| OpenError::io("start the watcher for", &root, e))?;
        }
        if let Some(every) = options.rescan_interval {
            tasks.push(spawn_timer(Arc::downgrade(&inner), every, |inner| {
                if let Err(e) = inner.rescan(false) {
                    tracing::warn!(error = %e, "periodic rescan failed");
                }
            }));
        }
        if let Some(every) = options.recovery_interval {
            tasks.push(spawn_timer(Arc::downgrade(&inner), every, |inner| {
                if let Err(e) = inner.recover(None) {
                    tracing::warn!(error = %e, "periodic recovery failed");
                }
            }));
        }
        if let Some(every) = options.snapshot_interval {
            tasks.push(spawn_timer(Arc::downgrade(&inner), every, |inner| {
                inner.snapshot_if_behind(SNAPSHOT_MIN_CHANGES);
            }));
        }
        Ok(FsStore {
            inner,
            _watcher: watch,
            tasks,
            report,
        })
    }

    /// How [`FsStore::open`] built the index: how many finished jobs came
    /// from the index snapshot and how many files were read.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Writes the index snapshot (`index.snapshot`) now. The store also
    /// writes it when dropped and, with `snapshot_interval`, in the
    /// background once 10,000 changes are not in one. Returns the number of
    /// finished jobs it holds.
    pub async fn write_snapshot(&self) -> Result<u64> {
        self.blocking(|inner| inner.write_snapshot()).await
    }

    /// The document layout new jobs take in this jobs directory, as
    /// recorded in its `format.json` (`None`: not recorded yet). A file
    /// that is not `{"newJobs": "flat"|"nested"}` is `Corrupt`.
    pub fn new_job_layout(&self) -> Result<Option<JobLayout>> {
        format::read(self.dir())
    }

    /// Records the document layout of new jobs in `format.json`, for every
    /// process that opens the directory (see [`FsStore::new_job_layout`]).
    pub fn set_new_job_layout(&self, layout: JobLayout) -> Result<()> {
        format::write(self.dir(), layout)
    }

    /// The jobs directory.
    pub fn dir(&self) -> &Path {
        self.inner.layout.root_path()
    }

    /// Re-reads every status directory and corrects the index (what the
    /// slow timer and watcher overflows do). Sends `Resynced`.
    pub async fn rescan(&self) -> Result<()> {
        self.blocking(|inner| inner.rescan(true)).await
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        // Without fsync an operation is a few fast system calls: run it on
        // this worker thread (handing the worker's other tasks to another
        // thread) instead of paying two thread hand-offs. With fsync it
        // waits for the disk: the blocking pool.
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread && !self.inner.opts.sync() {
            return tokio::task::block_in_place(|| f(&self.inner));
        }
        let inner = Arc::clone(&self.inner);
        match tokio::task::spawn_blocking(move || f(&inner)).await {
            Ok(r) => r,
            Err(e) => Err(join_error(self.dir(), e)),
        }
    }
}

#[async_trait]
impl JobStore for FsStore {
    async fn create(&self, job: &Job) -> Result<()> {
        let job = job.clone();
        self.blocking(move |inner| inner.create(&job)).await
    }

    async fn create_batch(&self, jobs: &[Job]) -> Result<()> {
        let jobs = jobs.to_vec();
        self.blocking(move |inner| inner.create_batch(&jobs)).await
    }

    async fn get(&self, id: &JobId) -> Result<Job> {
        let id = id.clone();
        self.blocking(move |inner| inner.get(&id)).await
    }

    async fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
        let job = job.clone();
        self.blocking(move |inner| inner.transition(expect, &job))
            .await
    }

    async fn update_with(&self, id: &JobId, f: UpdateFn) -> Result<Updated> {
        let id = id.clone();
        self.blocking(move |inner| inner.update_with(&id, f)).await
    }

    async fn update_running(&self, job: &Job) -> Result<()> {
        let job = job.clone();
        self.blocking(move |inner| inner.update_running(&job)).await
    }

    async fn checkpoint(&self, req: &CheckpointRequest) -> Result<Job> {
        let req = req.clone();
        self.blocking(move |inner| inner.checkpoint(&req)).await
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
        let req = req.clone();
        self.blocking(move |inner| inner.claim(&req)).await
    }

    async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
        let types = types.clone();
        self.blocking(move |inner| inner.peek_next(&types, now))
            .await
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        let filter = filter.clone();
        self.blocking(move |inner| inner.list(&filter)).await
    }

    async fn stats(&self) -> Result<QueueStats> {
        Ok(self.inner.stats())
    }

    async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>> {
        self.blocking(|inner| inner.type_stats()).await
    }

    async fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool> {
        let job_type = job_type.clone();
        self.blocking(move |inner| inner.set_paused(&job_type, paused))
            .await
    }

    async fn paused_types(&self) -> Result<BTreeSet<JobType>> {
        self.blocking(|inner| Ok(BTreeSet::clone(&*inner.paused()?)))
            .await
    }

    async fn cancel_pending(&self, selector: &JobSelector, now: Timestamp) -> Result<u64> {
        let selector = selector.clone();
        self.blocking(move |inner| inner.cancel_pending(&selector, now))
            .await
    }

    async fn retry_failed(&self, selector: &JobSelector) -> Result<u64> {
        let selector = selector.clone();
        self.blocking(move |inner| inner.retry_failed(&selector))
            .await
    }

    async fn try_lock_sweep(&self, holder: &str, ttl: Duration, now: Timestamp) -> Result<bool> {
        let holder = holder.to_owned();
        self.blocking(move |inner| inner.try_lock_sweep(&holder, ttl, now))
            .await
    }

    async fn finished_before(&self, before: Timestamp, limit: usize) -> Result<Vec<FinishedJob>> {
        Ok(self.inner.finished_before(before, limit))
    }

    async fn delete(&self, id: &JobId, expect: Expect) -> Result<()> {
        let id = id.clone();
        self.blocking(move |inner| inner.delete(&id, expect)).await
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        let worker = worker.clone();
        self.blocking(move |inner| inner.register_worker(&worker))
            .await
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
        let beat = beat.clone();
        self.blocking(move |inner| inner.heartbeat(&beat)).await
    }

    async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
        let worker_id = worker_id.to_owned();
        self.blocking(move |inner| inner.unregister_worker(&worker_id))
            .await
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        self.blocking(|inner| inner.list_workers()).await
    }

    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
        self.blocking(move |inner| inner.recover(Some(now))).await
    }

    fn subscribe(&self) -> ChangeStream {
        ChangeStream::from_broadcast(self.inner.tx.subscribe())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(true, true, true)
    }
}
