//! Crash points: for every step of every protocol (the table in
//! `docs/storage-format.md`), a child process runs the operation and is
//! killed (`SIGKILL`) right after that step. Reopening must then satisfy
//! DESIGN §4 invariants 1–4 and 6: one directory per job, no torn file,
//! nothing lost, no staged leftovers, nothing stuck in running, nothing
//! quarantined, and the queue keeps working.

use std::path::Path;
use std::time::Duration;

use semiont_jobs_model::{Job, JobStatus, Timestamp};
use semiont_jobs_store::{Expect, JobStore, JobStoreExt, WorkerInfo};
use semiont_jobs_store_fs::FsStore;
use serde_json::{json, Value};

use crate::support::{self, claim_req, finished, killed, noop_job, run_child, Disk};

/// A worker id with no lock file: its jobs live by their lease.
const GHOST: &str = "w-ghost";
const DAY: Duration = Duration::from_secs(86_400);

/// The state a scenario starts from.
#[derive(Clone, Copy, Debug)]
enum Setup {
    Nothing,
    Pending,
    /// Claimed by [`GHOST`] with a one-day lease.
    Running,
    Failed,
    Complete,
    /// Claimed by a registered, then unregistered worker.
    Orphaned,
}

async fn setup(dir: &Path, setup: Setup) -> Option<Job> {
    let store = FsStore::open(dir, support::opts()).await.unwrap();
    let job = noop_job();
    if matches!(setup, Setup::Nothing) {
        return None;
    }
    store.create(&job).await.unwrap();
    let claim = |worker: &'static str| {
        let store = &store;
        async move {
            store
                .claim(&claim_req(worker, Timestamp::now(), DAY))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let job = match setup {
        Setup::Nothing => unreachable!(),
        Setup::Pending => job,
        Setup::Running => claim(GHOST).await,
        Setup::Failed | Setup::Complete => {
            let running = claim(GHOST).await;
            let status = if matches!(setup, Setup::Failed) {
                JobStatus::Failed
            } else {
                JobStatus::Complete
            };
            let end = finished(running.clone(), status);
            store
                .transition(Expect::running(running.attempt), &end)
                .await
                .unwrap();
            end
        }
        Setup::Orphaned => {
            let w = WorkerInfo {
                id: "w-gone".into(),
                lease: DAY,
            };
            store.register_worker(&w).await.unwrap();
            let running = claim("w-gone").await;
            store.unregister_worker("w-gone").await.unwrap();
            running
        }
    };
    Some(job)
}

/// Runs a child that must die at `crash`.
fn crash_child(dir: &Path, op: &str, crash: &str, before_open: bool, extra: Value) {
    let mut spec = json!({
        "mode": "crash",
        "dir": dir,
        "op": op,
        "crash": crash,
        "arm_before_open": before_open,
        "durability": "fsync",
    });
    if let (Value::Object(s), Value::Object(e)) = (&mut spec, extra) {
        s.extend(e);
    }
    let status = run_child(&spec);
    assert!(
        killed(&status),
        "{crash}: the crash point was reached ({status:?})"
    );
}

/// Reopens, recovers as if far in the future (so leases have lapsed), and
/// checks the invariants. Returns the final state of each job.
async fn reopen_and_check(
    dir: &Path,
    before: &[Job],
    may_vanish: bool,
    quarantined: usize,
) -> Vec<(JobStatus, Job)> {
    let store = FsStore::open(dir, support::opts()).await.unwrap();
    store
        .recover(Timestamp::now().add(Duration::from_secs(3 * 86_400)))
        .await
        .unwrap();
    let disk = Disk::read(dir);
    let jobs = disk.single();
    // Staged files: none; spares: only in this store's own directory (the
    // crashed instance's directory is gone).
    assert!(
        disk.staged.is_empty(),
        "staged leftovers: {:?}",
        disk.staged
    );
    assert_eq!(
        disk.tmp_dirs, 1,
        "only the reopened store's staging directory"
    );
    assert_eq!(
        disk.quarantined.len(),
        quarantined,
        "quarantine: {:?}",
        disk.quarantined
    );
    assert_eq!(
        disk.count(JobStatus::Running),
        0,
        "nothing stuck in running"
    );
    let mut out = Vec::new();
    for job in before {
        match jobs.get(job.id.as_str()) {
            Some((status, content)) => out.push((*status, content.clone())),
            None => assert!(may_vanish, "job {} was lost", job.id),
        }
    }
    let stats = store.stats().await.unwrap();
    assert_eq!(stats.total() as usize, jobs.len(), "stats match the disk");
    assert_eq!(stats.unreadable as usize, quarantined);
    // The queue still works: drain it.
    support::drain(&store, "w-after").await;
    assert_eq!(store.count(JobStatus::Pending).await.unwrap(), 0);
    out
}

/// One single-job scenario: set up, crash the op at `step`, check that the
/// job ends in one of `allowed`.
async fn scenario(op: &str, step: &str, from: Setup, allowed: &[JobStatus]) {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let job = setup(&dir, from).await;
    let (job, extra) = match job {
        Some(j) => (
            j.clone(),
            json!({ "job": serde_json::from_slice::<Value>(&j.to_json()).unwrap() }),
        ),
        None => {
            let j = noop_job();
            (
                j.clone(),
                json!({ "job": serde_json::from_slice::<Value>(&j.to_json()).unwrap() }),
            )
        }
    };
    // Unsynced rewrites replace by exchange only without durability (in
    // durable mode they keep the rename that ext4 flushes).
    let mut extra = extra;
    if step == "exchanged" && matches!(op, "progress" | "heartbeat" | "checkpoint") {
        extra["durability"] = json!("none");
    }
    let crash = format!("{op}:{step}");
    let before_open = op == "recover";
    let child_op = if op == "recover" { "open" } else { op };
    crash_child(&dir, child_op, &crash, before_open, extra);
    let may_vanish = matches!(op, "create" | "delete");
    let end = reopen_and_check(&dir, std::slice::from_ref(&job), may_vanish, 0).await;
    if let Some((status, _)) = end.first() {
        assert!(
            allowed.contains(status),
            "{crash}: job ended {status}, allowed {allowed:?}"
        );
    }
}

macro_rules! crash_cases {
    ($($name:ident: $op:literal from $setup:ident, steps [$($step:literal),*], ends in [$($end:ident),*];)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                for step in [$($step),*] {
                    scenario($op, step, Setup::$setup, &[$(JobStatus::$end),*]).await;
                }
            }
        )*
    };
}

crash_cases! {
    create: "create" from Nothing, steps ["staged", "published"], ends in [Pending];
    claim: "claim" from Pending, steps ["staged", "moved", "exchanged", "replaced"], ends in [Pending];
    progress: "progress" from Running, steps ["staged", "exchanged", "replaced"], ends in [Pending];
    complete: "complete" from Running, steps ["staged", "moved", "exchanged", "replaced"], ends in [Complete, Pending];
    fail: "fail" from Running, steps ["staged", "moved", "exchanged", "replaced"], ends in [Failed, Pending];
    requeue: "requeue" from Running, steps ["staged", "moved", "exchanged", "replaced"], ends in [Pending];
    retry: "retry" from Failed, steps ["staged", "moved", "exchanged", "replaced"], ends in [Failed, Pending];
    cancel_pending: "cancel-pending" from Pending, steps ["staged", "moved", "exchanged", "replaced"], ends in [Cancelled, Pending];
    cancel_running: "cancel-running" from Running, steps ["staged", "moved", "exchanged", "replaced"], ends in [Cancelled, Pending];
    delete: "delete" from Complete, steps ["unlinked"], ends in [Complete];
    heartbeat: "heartbeat" from Running, steps ["staged", "exchanged", "replaced"], ends in [Pending];
    checkpoint: "checkpoint" from Running, steps ["staged", "exchanged", "replaced"], ends in [Pending];
    recover: "recover" from Orphaned, steps ["staged", "moved", "exchanged", "replaced"], ends in [Pending];
}

/// A batch create killed after staging, after the barrier, and after its
/// first publish: the published jobs are a prefix of the batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch() {
    for step in ["staged", "synced", "published"] {
        let tmp = crate::support::tempdir();
        let dir = tmp.path().join("jobs");
        setup(&dir, Setup::Nothing).await;
        let jobs: Vec<Job> = (0..5).map(|_| noop_job()).collect();
        let values: Vec<Value> = jobs
            .iter()
            .map(|j| serde_json::from_slice(&j.to_json()).unwrap())
            .collect();
        crash_child(
            &dir,
            "batch",
            &format!("batch:{step}"),
            false,
            json!({ "jobs": values }),
        );
        let disk = Disk::read(&dir);
        let present: Vec<bool> = jobs
            .iter()
            .map(|j| disk.jobs.contains_key(j.id.as_str()))
            .collect();
        let published = present.iter().filter(|p| **p).count();
        assert!(
            present[..published].iter().all(|p| *p),
            "{step}: a prefix is published: {present:?}"
        );
        if step == "published" {
            assert_eq!(published, 1, "killed right after the first publish");
        }
        reopen_and_check(&dir, &jobs, true, 0).await;
    }
}

/// Recovery itself interrupted: rolling a half-done transition forward or
/// back, and resolving a dead instance's staged file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_steps() {
    let cases = [
        (
            "complete",
            "complete:moved",
            "repair:rolled-forward",
            JobStatus::Complete,
        ),
        (
            "claim",
            "claim:moved",
            "repair:rolled-back",
            JobStatus::Pending,
        ),
        (
            "complete",
            "complete:staged",
            "recover:staging-resolved",
            JobStatus::Pending,
        ),
    ];
    for (op, first, second, end) in cases {
        let tmp = crate::support::tempdir();
        let dir = tmp.path().join("jobs");
        let from = if op == "claim" {
            Setup::Pending
        } else {
            Setup::Running
        };
        let job = setup(&dir, from).await.unwrap();
        let extra = json!({ "job": serde_json::from_slice::<Value>(&job.to_json()).unwrap() });
        crash_child(&dir, op, first, false, extra.clone());
        crash_child(&dir, "open", second, true, extra);
        let out = reopen_and_check(&dir, std::slice::from_ref(&job), false, 0).await;
        assert_eq!(out[0].0, end, "{first} then {second}");
        if end == JobStatus::Complete {
            assert_eq!(
                out[0].1.result,
                Some(json!({"ok": true})),
                "rolled forward with the new content"
            );
        }
    }
}

/// Deduplication and quarantine interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_steps() {
    // A job in complete/ and a stale copy in pending/.
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let job = setup(&dir, Setup::Complete).await.unwrap();
    let mut stale = job.clone();
    stale.status = JobStatus::Pending;
    stale.completed_at = None;
    std::fs::write(
        dir.join("pending").join(format!("{}.json", job.id)),
        stale.to_json(),
    )
    .unwrap();
    crash_child(&dir, "open", "repair:deduplicated", true, json!({}));
    let out = reopen_and_check(&dir, std::slice::from_ref(&job), false, 1).await;
    assert_eq!(out[0].0, JobStatus::Complete);

    // A bad file, quarantine killed before its reason file.
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let job = setup(&dir, Setup::Pending).await.unwrap();
    std::fs::write(dir.join("pending").join("garbage.txt"), b"hello").unwrap();
    crash_child(&dir, "open", "quarantine:moved", true, json!({}));
    let out = reopen_and_check(&dir, std::slice::from_ref(&job), false, 1).await;
    assert_eq!(out[0].0, JobStatus::Pending);
}

/// A create of a keyed job killed after its reservation was written and
/// before the job was published: the job is absent, and the reservation
/// (naming a job that does not exist) does not keep the key taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_key_reserved_then_crashed() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    setup(&dir, Setup::Nothing).await;
    let mut job = noop_job();
    job.unique_key = Some("k/1".into());
    let extra = json!({ "job": serde_json::from_slice::<Value>(&job.to_json()).unwrap() });
    crash_child(&dir, "create", "unique:reserved", false, extra);
    reopen_and_check(&dir, &[], true, 0).await;
    let disk = Disk::read(&dir);
    assert!(disk.jobs.is_empty());
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let mut again = noop_job();
    again.unique_key = Some("k/1".into());
    store.create(&again).await.unwrap();
    let mut third = noop_job();
    third.unique_key = Some("k/1".into());
    let err = store.create(&third).await.unwrap_err();
    assert_eq!(err.unique_holder(), Some(&again.id));
}
