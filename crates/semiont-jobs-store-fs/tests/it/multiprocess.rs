//! Multi-process contention: four OS processes (this test binary in child
//! mode) drain 5,000 jobs from one jobs directory; every job is completed
//! exactly once and nothing is left pending or running. Two processes race
//! to create jobs with one unique key: exactly one job is created.

use std::collections::HashSet;

use semiont_jobs_model::{Job, JobStatus};
use semiont_jobs_store::JobStore;
use semiont_jobs_store_fs::FsStore;
use serde_json::json;

use crate::support::{self, noop_job, spawn_child, Disk};

const PROCESSES: usize = 4;
const JOBS: usize = 5_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_drain_5000_jobs_exactly_once() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let jobs: Vec<Job> = (0..JOBS).map(|_| noop_job()).collect();
    {
        let store = FsStore::open(&dir, support::opts()).await.unwrap();
        for chunk in jobs.chunks(500) {
            store.create_batch(chunk).await.unwrap();
        }
        assert_eq!(store.stats().await.unwrap().pending as usize, JOBS);
    }
    let children: Vec<_> = (0..PROCESSES)
        .map(|i| {
            let out = tmp.path().join(format!("out-{i}"));
            let child = spawn_child(&json!({"mode": "drain", "dir": dir, "out": out}));
            (child, out)
        })
        .collect();
    let mut all = Vec::new();
    let mut per_process = Vec::new();
    for (mut child, out) in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "drain child failed: {status:?}");
        let text = std::fs::read_to_string(out).unwrap();
        let ids: Vec<String> = text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect();
        per_process.push(ids.len());
        all.extend(ids);
    }
    let distinct: HashSet<&String> = all.iter().collect();
    assert_eq!(
        all.len(),
        JOBS,
        "completions (per process: {per_process:?})"
    );
    assert_eq!(distinct.len(), JOBS, "distinct jobs");
    let expected: HashSet<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    assert_eq!(
        distinct.into_iter().cloned().collect::<HashSet<_>>(),
        expected
    );

    let disk = Disk::read(&dir);
    disk.single();
    assert_eq!(disk.count(JobStatus::Complete), JOBS);
    assert_eq!(disk.count(JobStatus::Pending), 0);
    assert_eq!(disk.count(JobStatus::Running), 0);
    assert!(disk.staged.is_empty(), "{:?}", disk.staged);
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.running, stats.complete),
        (0, 0, JOBS as u64)
    );
}

/// Two processes, four tasks each, create 200 jobs with one unique key at
/// the same moment: exactly one is created, and it is the one on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_racing_for_a_unique_key_create_one_job() {
    for durability in ["none", "fsync"] {
        let tmp = crate::support::tempdir();
        let dir = tmp.path().join("jobs");
        drop(FsStore::open(&dir, support::opts()).await.unwrap());
        let go = tmp.path().join("go");
        let children: Vec<_> = (0..2)
            .map(|i| {
                let out = tmp.path().join(format!("out-{i}"));
                let spec = json!({
                    "mode": "unique", "dir": dir, "out": out, "go": go,
                    "key": "report:2026/01", "count": 100, "durability": durability,
                });
                (spawn_child(&spec), out)
            })
            .collect();
        std::fs::write(&go, b"go").unwrap();
        let mut created = Vec::new();
        for (mut child, out) in children {
            let status = child.wait().unwrap();
            assert!(status.success(), "unique child failed: {status:?}");
            let text = std::fs::read_to_string(out).unwrap();
            created.extend(text.lines().filter(|l| !l.is_empty()).map(str::to_owned));
        }
        assert_eq!(
            created.len(),
            1,
            "{durability}: one job for the key: {created:?}"
        );
        let disk = Disk::read(&dir);
        assert_eq!(disk.jobs.len(), 1, "{durability}");
        assert!(disk.jobs.contains_key(&created[0]));
    }
}
