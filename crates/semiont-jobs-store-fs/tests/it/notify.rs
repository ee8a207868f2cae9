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
