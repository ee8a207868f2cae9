//! Helpers shared by the integration tests: temp dirs, store options, jobs,
//! queues on the filesystem backend, and reading the quarantine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{Job, JobId, NewJob, Timestamp};
use semiont_jobs_queue::JobQueue;
use semiont_jobs_store::Durability;
use semiont_jobs_store_fs::{FsOptions, FsStore};
use serde_json::json;

/// A fresh temporary directory under cargo's per-target scratch directory.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("hardening-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}

/// Test options: no fsync, no grace period, no watcher, no timers.
pub fn opts() -> FsOptions {
    FsOptions::default()
        .durability(Durability::None)
        .watch(false)
        .quarantine_grace(Duration::ZERO)
        .recovery_interval(None)
        .rescan_interval(None)
}

/// A pending `noop` job created now.
pub fn noop_job() -> Job {
    NewJob::custom("noop", "u1", json!({"n": 1}))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::now(), 3)
        .unwrap()
}

/// A fresh jobs directory `<tmp>/jobs`, created by opening a store once.
pub async fn fresh() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempdir();
    let dir = tmp.path().join("jobs");
    drop(FsStore::open(&dir, opts()).await.unwrap());
    (tmp, dir)
}

/// A queue on an `FsStore` at `dir` with [`opts`].
pub async fn queue_at(dir: &Path) -> JobQueue {
    queue_with(dir, opts()).await
}

/// A queue on an `FsStore` at `dir` with `options`.
pub async fn queue_with(dir: &Path, options: FsOptions) -> JobQueue {
    let store = FsStore::open(dir, options).await.unwrap();
    let queue = JobQueue::builder().store(Arc::new(store)).build().unwrap();
    queue.initialize().await.unwrap();
    queue
}

/// `<id>.json`.
pub fn file_name(id: &JobId) -> String {
    format!("{id}.json")
}

/// The texts of the `.reason` files in `dir/quarantine`, sorted.
pub fn reasons(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("quarantine")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "reason") {
            out.push(std::fs::read_to_string(path).unwrap());
        }
    }
    out.sort();
    out
}

/// Names of the status-directory entries under `dir` (all five).
pub fn status_entries(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for s in ["pending", "running", "complete", "failed", "cancelled"] {
        for e in std::fs::read_dir(dir.join(s)).unwrap() {
            out.push(format!("{s}/{}", e.unwrap().file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}
