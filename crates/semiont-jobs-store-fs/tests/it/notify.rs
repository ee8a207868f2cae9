//! Wake-ups through the directory watcher: a job created by another store
//! instance (with its own watcher) or another process reaches a waiting
//! subscriber as an `External` event, long before any poll interval.

use std::time::Duration;

use semiont_jobs_model::{JobId, JobStatus, Timestamp, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin, ChangeStream, JobChange, JobStore};
use semiont_jobs_store_fs::FsStore;
use serde_json::json;

use crate::support::{self, claim_req, noop_job, run_child};

/// Well below any poll interval a worker would use (1 s by default).
const WAKE_UP: Duration = Duration::from_secs(5);

async fn wait_for(rx: &mut ChangeStream, id: &JobId, kind: ChangeKind) -> JobChange {
    tokio::time::timeout(WAKE_UP, async {
        loop {
            match rx.recv().await {
                Some(c) if c.id.as_ref() == Some(id) && c.kind == kind => return c,
                Some(_) => continue,
                None => panic!("channel closed"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {kind:?} event for {id} within {WAKE_UP:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_created_by_another_instance_wakes_a_subscriber() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let watcher = FsStore::open(&dir, support::opts()).await.unwrap();
    let other = FsStore::open(&dir, support::opts()).await.unwrap();
    let mut rx = watcher.subscribe();

    let job = noop_job();
    other.create(&job).await.unwrap();
    let change = wait_for(&mut rx, &job.id, ChangeKind::Created).await;
    assert_eq!(change.origin, ChangeOrigin::External);
    assert_eq!(change.status, Some(JobStatus::Pending));
    assert_eq!(change.job_type, Some(job.job_type.clone()));

    // The watcher's index knows the job: it can claim it at once.
    let claimed = watcher
        .claim(&claim_req("w", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, job.id);
    // And the other instance hears about the claim.
    let mut rx_other = other.subscribe();
    let job2 = noop_job();
    watcher.create(&job2).await.unwrap();
    wait_for(&mut rx_other, &job2.id, ChangeKind::Created).await;
    assert_eq!(other.stats().await.unwrap().running, 1);
    // Own changes are local only: no external echo of the create.
    let mut own = Vec::new();
    while let Some(c) = rx.try_recv() {
        if c.id.as_ref() == Some(&job2.id) {
            own.push((c.kind, c.origin));
        }
    }
    assert_eq!(own, [(ChangeKind::Created, ChangeOrigin::Local)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_created_by_another_process_wakes_a_subscriber() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let mut rx = store.subscribe();
    let job = noop_job();
    let spec = json!({
        "mode": "crash",
        "dir": dir,
        "op": "create",
        "job": serde_json::from_slice::<serde_json::Value>(&job.to_json()).unwrap(),
    });
    let child = tokio::task::spawn_blocking(move || run_child(&spec));
    let change = wait_for(&mut rx, &job.id, ChangeKind::Created).await;
    assert_eq!(change.origin, ChangeOrigin::External);
    assert!(child.await.unwrap().success());
    assert_eq!(store.get(&job.id).await.unwrap(), job);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_by_another_instance_arrive_with_their_kind() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let a = FsStore::open(&dir, support::opts()).await.unwrap();
    let b = FsStore::open(&dir, support::opts()).await.unwrap();
    let job = noop_job();
    let mut rx_b = b.subscribe();
    a.create(&job).await.unwrap();
    let mut rx = a.subscribe();
    // b learns of the job through its watcher, then claims and updates it.
    wait_for(&mut rx_b, &job.id, ChangeKind::Created).await;
    let claimed = b
        .claim(&claim_req("wb", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let c = wait_for(&mut rx, &job.id, ChangeKind::Transition(Transition::Claim)).await;
    assert_eq!(
        (c.origin, c.status),
        (ChangeOrigin::External, Some(JobStatus::Running))
    );
    let mut p = claimed.clone();
    p.progress = Some(json!({"percentage": 40}));
    b.update_running(&p).await.unwrap();
    wait_for(&mut rx, &job.id, ChangeKind::Updated).await;
    assert_eq!(a.get(&job.id).await.unwrap().progress, p.progress);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_by_another_instance_arrives_whole() {
    // Hundreds of creates and claims back to back: the watcher coalesces
    // them into batches, and every job still arrives as `External`.
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let watcher = FsStore::open(&dir, support::opts()).await.unwrap();
    let other = FsStore::open(&dir, support::opts()).await.unwrap();
    let mut rx = watcher.subscribe();
    let jobs: Vec<_> = (0..300).map(|_| noop_job()).collect();
    for job in &jobs {
        other.create(job).await.unwrap();
    }
    for _ in 0..100 {
        other
            .claim(&claim_req("wo", Timestamp::now(), Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap();
    }
    // What the events said of each job (a job created and claimed before
    // the watcher looked arrives once, as created in running).
    let mut last = std::collections::HashMap::new();
    let running = |last: &std::collections::HashMap<JobId, JobStatus>| {
        last.values().filter(|s| **s == JobStatus::Running).count()
    };
    let mut resynced = false;
    tokio::time::timeout(WAKE_UP, async {
        while !resynced && (last.len() < jobs.len() || running(&last) < 100) {
            let Some(c) = rx.recv().await else {
                panic!("channel closed")
            };
            if c.kind == ChangeKind::Resynced {
                resynced = true;
                continue;
            }
            assert_eq!(c.origin, ChangeOrigin::External, "{c:?}");
            let id = c.id.clone().unwrap();
            match c.kind {
                ChangeKind::Created => assert!(!last.contains_key(&id), "created twice: {c:?}"),
                ChangeKind::Transition(Transition::Claim) | ChangeKind::Updated => {
                    assert!(last.contains_key(&id), "before its create: {c:?}");
                }
                other => panic!("unexpected {other:?}"),
            }
            last.insert(id, c.status.unwrap());
        }
    })
    .await
    .expect("the burst did not arrive");
    // Whether through hints or a rescan, the index agrees with the disk.
    let stats = watcher.stats().await.unwrap();
    assert_eq!((stats.pending, stats.running), (200, 100));
}

/// Threads of this process whose name starts with each of `prefixes`.
fn threads_named(prefixes: &[&str]) -> Vec<usize> {
    let names: Vec<String> = std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    prefixes
        .iter()
        .map(|p| names.iter().filter(|n| n.starts_with(p)).count())
        .collect()
}

/// Waits until the counts of [`threads_named`] are `want`.
async fn wait_for_threads(prefixes: &[&str], want: &[usize]) {
    tokio::time::timeout(WAKE_UP, async {
        // A new thread names itself once it runs.
        while threads_named(prefixes) != want {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "threads {prefixes:?}: {:?}, not {want:?}",
            threads_named(prefixes)
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_store_ends_its_watcher_threads() {
    // In a process of its own: the test threads of this binary open
    // stores of their own, whose watcher threads would count too.
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let status = run_child(&json!({ "mode": "threads", "dir": dir }));
    assert!(status.success(), "the child's check failed: {status:?}");
}

/// The check of [`dropping_a_store_ends_its_watcher_threads`], run in a
/// child process.
pub async fn check_watcher_threads(dir: &std::path::Path) {
    // notify's event thread and the coalescing thread (names cut to 15
    // bytes by the kernel).
    let names = ["notify-rs inoti", "semiont-jobs-fs"];
    let before = threads_named(&names);
    let mut stores = Vec::new();
    for _ in 0..5 {
        stores.push(FsStore::open(dir, support::opts()).await.unwrap());
    }
    wait_for_threads(&names, &[before[0] + 5, before[1] + 5]).await;
    drop(stores);
    wait_for_threads(&names, &before).await;
}

/// A read that learns of another instance's change before the watcher
/// does reports it: a `get` of a job another instance completed sends the
/// completion (here with no watcher at all, so the read is the only way
/// the instance can learn of it), and the watcher does not report it a
/// second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_finds_another_instances_change_reports_it_once() {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    let writer = FsStore::open(&dir, support::opts()).await.unwrap();
    let blind = FsStore::open(&dir, support::opts().watch(false))
        .await
        .unwrap();
    let job = noop_job();
    writer.create(&job).await.unwrap();
    assert_eq!(blind.get(&job.id).await.unwrap().status, JobStatus::Pending);
    let mut rx = blind.subscribe();
    let claimed = writer
        .claim(&claim_req("w", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let mut done = claimed.clone();
    done.status = JobStatus::Complete;
    done.completed_at = Some(Timestamp::now());
    writer
        .transition(semiont_jobs_store::Expect::running(1), &done)
        .await
        .unwrap();
    assert_eq!(
        blind.get(&job.id).await.unwrap().status,
        JobStatus::Complete
    );
    let change = rx.try_recv().expect("the read reported the change");
    assert_eq!(change.id.as_ref(), Some(&job.id));
    assert_eq!(change.status, Some(JobStatus::Complete));
    assert_eq!(change.origin, ChangeOrigin::External);
    assert!(rx.try_recv().is_none(), "reported once");

    // With a watcher: whichever of the read and the watcher sees the
    // completion first reports it; the subscriber hears of it once.
    let seeing = FsStore::open(&dir, support::opts()).await.unwrap();
    let job = noop_job();
    writer.create(&job).await.unwrap();
    let mut rx = seeing.subscribe();
    let claimed = writer
        .claim(&claim_req("w", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let mut done = claimed.clone();
    done.status = JobStatus::Complete;
    done.completed_at = Some(Timestamp::now());
    writer
        .transition(semiont_jobs_store::Expect::running(1), &done)
        .await
        .unwrap();
    let _ = seeing.get(&job.id).await.unwrap();
    // A marker job created after the completion: once its event arrives,
    // every event about the completion has arrived too.
    let marker = noop_job();
    writer.create(&marker).await.unwrap();
    let mut completions = 0;
    tokio::time::timeout(WAKE_UP, async {
        loop {
            let c = rx.recv().await.expect("channel open");
            if c.id.as_ref() == Some(&job.id) && c.status == Some(JobStatus::Complete) {
                completions += 1;
            }
            if c.id.as_ref() == Some(&marker.id) {
                return;
            }
        }
    })
    .await
    .expect("the marker's creation arrives");
    assert_eq!(completions, 1);
}
