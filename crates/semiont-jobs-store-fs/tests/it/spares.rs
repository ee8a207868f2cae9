//! Spare files: the staging directory's recycled files never leak old
//! content into a published job, are shortened when the new content is
//! smaller, stay bounded in number, and go away with the store.

use std::time::Duration;

use semiont_jobs_model::{Job, JobId, JobStatus, NewJob, Timestamp};
use semiont_jobs_store::{Expect, JobStore};
use semiont_jobs_store_fs::FsStore;
use serde_json::json;

use crate::support::{self, claim_req, finished, Disk};

const DAY: Duration = Duration::from_secs(86_400);

fn job_with_blob(bytes: usize) -> Job {
    NewJob::custom("noop", "u1", json!({ "blob": "x".repeat(bytes) }))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::now(), 3)
        .unwrap()
}

/// Claims the next pending job as worker `w1` (there must be one).
async fn claim_one(store: &FsStore) -> Job {
    store
        .claim(&claim_req("w1", Timestamp::now(), DAY))
        .await
        .unwrap()
        .expect("a pending job")
}

/// Big jobs first, then small ones: every small job's files are written
/// into spares that held a big document, and must read back exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recycled_files_hold_exactly_the_new_content() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("jobs");
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let mut jobs = Vec::new();
    for i in 0..120 {
        let job = if i < 40 {
            job_with_blob(64 * 1024)
        } else {
            job_with_blob(i)
        };
        store.create(&job).await.unwrap();
        jobs.push(job);
        // Interleave claims and completions with creates so that creates,
        // claims and requeues all draw on the spares.
        if i % 3 == 2 {
            let running = claim_one(&store).await;
            let disk = Disk::read(&dir);
            let (status, on_disk) = &disk.single()[running.id.as_str()];
            assert_eq!((*status, on_disk), (JobStatus::Running, &running));
            let mut back = running.clone();
            back.status = JobStatus::Pending;
            back.worker_id = None;
            back.lease_expires_at = None;
            if i % 2 == 0 {
                store
                    .transition(Expect::running(running.attempt), &back)
                    .await
                    .unwrap();
            } else {
                support::complete(&store, &running).await;
            }
        }
    }
    support::drain(&store, "w1").await;
    // Every file parses (Disk::read panics on a torn or padded file) and
    // holds its job's own parameters.
    let disk = Disk::read(&dir);
    let on_disk = disk.single();
    for job in &jobs {
        let (status, content) = &on_disk[job.id.as_str()];
        assert_eq!(*status, JobStatus::Complete);
        assert_eq!(content.params, job.params, "{}", job.id);
    }
    assert!(!disk.spares.is_empty(), "transitions leave spares");
    assert!(
        disk.spares.len() <= 32,
        "spares are bounded: {}",
        disk.spares.len()
    );
    assert!(disk.staged.is_empty(), "{:?}", disk.staged);
    drop(store);
    let disk = Disk::read(&dir);
    assert_eq!(
        (disk.tmp_dirs, disk.spares.len()),
        (0, 0),
        "closing removes them"
    );
}

/// A finished job's file is never kept as a spare: right after a retry
/// its inode is nowhere in the jobs directory, so it can never come back
/// under a finished job's name through a spare.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_files_are_not_recycled() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("jobs");
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    for _ in 0..10 {
        store.create(&job_with_blob(10)).await.unwrap();
        let running = claim_one(&store).await;
        let failed = finished(running.clone(), JobStatus::Failed);
        store
            .transition(Expect::running(running.attempt), &failed)
            .await
            .unwrap();
        let path = dir.join("failed").join(format!("{}.json", running.id));
        let failed_ino = inode(&path);
        assert!(!inodes(&dir).is_empty());
        let mut again = failed.clone();
        again.status = JobStatus::Pending;
        again.completed_at = None;
        store
            .transition(Expect::status(JobStatus::Failed), &again)
            .await
            .unwrap();
        assert!(
            !inodes(&dir).contains(&failed_ino),
            "the failed file of {} was kept",
            running.id
        );
    }
}

fn inode(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

/// Inodes of every file in the status and staging directories.
fn inodes(dir: &std::path::Path) -> Vec<u64> {
    let mut dirs: Vec<std::path::PathBuf> = JobStatus::ALL
        .iter()
        .map(|s| dir.join(s.as_str()))
        .collect();
    for entry in std::fs::read_dir(dir.join("tmp")).unwrap() {
        dirs.push(entry.unwrap().path());
    }
    let mut out = Vec::new();
    for d in dirs {
        for f in std::fs::read_dir(d).unwrap() {
            out.push(inode(&f.unwrap().path()));
        }
    }
    out
}

/// With durability `fsync` no spare is kept (a power loss could bring back
/// a name pointing at a recycled inode).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_mode_keeps_no_spares() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("jobs");
    let opts = support::opts().durability(semiont_jobs_store::Durability::Fsync);
    let store = FsStore::open(&dir, opts).await.unwrap();
    for _ in 0..5 {
        store.create(&job_with_blob(10)).await.unwrap();
        let running = claim_one(&store).await;
        support::complete(&store, &running).await;
    }
    let disk = Disk::read(&dir);
    assert_eq!(disk.count(JobStatus::Complete), 5);
    assert!(disk.spares.is_empty(), "{:?}", disk.spares);
    assert!(disk.staged.is_empty(), "{:?}", disk.staged);
}
