//! Liveness across connection faults: a store instance whose listener
//! connection is killed (`pg_terminate_backend`) or whose server restarts
//! loses its workers' jobs (its heartbeats report them, its subscribers
//! get a resync), registers its workers again under new incarnations, and
//! another instance recovers the jobs once the grace period has passed.

use std::future::Future;
use std::time::Duration;

use semiont_jobs_model::{Job, JobId, JobStatus, NewJob, Timestamp};
use semiont_jobs_store::{ChangeKind, ClaimRequest, Heartbeat, JobStore, TypeFilter, WorkerInfo};
use semiont_jobs_store_pg::testing::{TestCluster, TestSchema};
use semiont_jobs_store_pg::{PgOptions, PgStore};
use serde_json::json;

use crate::support::admin;

const LEASE: Duration = Duration::from_secs(30);

async fn until<T, F, Fut>(what: &str, limit: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn running_job(store: &PgStore, worker: &str) -> Job {
    store
        .register_worker(&WorkerInfo {
            id: worker.into(),
            lease: LEASE,
        })
        .await
        .unwrap();
    let job = NewJob::custom("t", "u", json!({}))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::now(), 3)
        .unwrap();
    store.create(&job).await.unwrap();
    store
        .claim(&ClaimRequest {
            types: TypeFilter::Any,
            worker_id: worker.into(),
            now: Timestamp::now(),
            lease: LEASE,
        })
        .await
        .unwrap()
        .expect("the job is due")
}

fn beat(worker: &str, job: &Job) -> Heartbeat {
    Heartbeat {
        worker_id: worker.into(),
        now: Timestamp::now(),
        held: vec![(job.id.clone(), job.attempt)],
    }
}

/// After the fault: `a`'s heartbeat reports the job lost, `a` registers
/// its worker again, `b` recovers the job after the grace period, and `a`
/// claims it again at the next attempt under its new incarnation.
async fn after_the_fault(a: &PgStore, b: &PgStore, job: &Job) {
    until(
        "the heartbeat reports the job lost",
        Duration::from_secs(20),
        || async {
            match a.heartbeat(&beat("w", job)).await {
                Ok(lost) if lost.iter().any(|l| l.id == job.id) => Some(()),
                _ => None,
            }
        },
    )
    .await;
    until(
        "the worker is registered again",
        Duration::from_secs(20),
        || async {
            let workers = a.workers().await.ok()?;
            (workers.iter().filter(|w| w.id == "w").count() >= 2
                && workers.iter().any(|w| w.id == "w" && w.alive))
            .then_some(())
        },
    )
    .await;
    let report = until(
        "a peer recovers the job",
        Duration::from_secs(30),
        || async {
            let r = b.recover(Timestamp::now()).await.ok()?;
            (!r.requeued.is_empty()).then_some(r)
        },
    )
    .await;
    assert_eq!(report.requeued, std::slice::from_ref(&job.id));
    let back = b.get(&job.id).await.unwrap();
    assert_eq!((back.status, back.retry_count), (JobStatus::Pending, 1));
    assert!(
        back.error
            .as_deref()
            .unwrap()
            .contains("lost its connection"),
        "{back:?}"
    );
    let again = until(
        "the worker claims again",
        Duration::from_secs(20),
        || async {
            a.claim(&ClaimRequest {
                types: TypeFilter::Any,
                worker_id: "w".into(),
                now: Timestamp::now(),
                lease: LEASE,
            })
            .await
            .ok()
            .flatten()
        },
    )
    .await;
    assert_eq!((again.id.clone(), again.attempt), (job.id.clone(), 2));
    let lost = a.heartbeat(&beat("w", &again)).await.unwrap();
    assert!(lost.is_empty(), "the new incarnation holds it: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_listener_connection_loses_its_jobs_to_a_peer() {
    let schema = TestSchema::new();
    let a = schema.open(schema.options()).await;
    let b = schema.open(schema.options()).await;
    let job = running_job(&a, "w").await;
    let mut events = a.subscribe();
    assert!(a.heartbeat(&beat("w", &job)).await.unwrap().is_empty());
    let db = admin(schema.url()).await;
    let killed = db
        .query(
            &format!(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l JOIN {}.workers w
                   ON l.locktype = 'advisory' AND l.objsubid = 1
                  AND l.classid = ((w.lock_key >> 32) & 4294967295)::oid
                  AND l.objid = (w.lock_key & 4294967295)::oid
                WHERE w.worker_id = 'w' AND w.alive",
                schema.name()
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        killed.len(),
        1,
        "one listener connection holds the worker's lock"
    );
    // Not recovered before the grace period: the owner stops first.
    let early = b.recover(Timestamp::now()).await.unwrap();
    assert!(early.requeued.is_empty(), "{early:?}");
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(c) = events.recv().await {
            if c.kind == ChangeKind::Resynced {
                return;
            }
        }
    })
    .await
    .expect("subscribers are told to resync");
    after_the_fault(&a, &b, &job).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_loses_running_jobs_to_recovery_and_nothing_else() {
    // A server of this test's own: restarting the shared one would cut
    // every other test's connections.
    let cluster = tokio::task::spawn_blocking(TestCluster::start)
        .await
        .unwrap();
    let opts = PgOptions::default().pool_size(4);
    let a = PgStore::open(&cluster.url(), opts.clone()).await.unwrap();
    let b = PgStore::open(&cluster.url(), opts).await.unwrap();
    let job = running_job(&a, "w").await;
    let waiting = NewJob::custom("t", "u", json!({"n": 2}))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::now(), 3)
        .unwrap();
    a.create(&waiting).await.unwrap();
    tokio::task::block_in_place(|| cluster.restart());
    after_the_fault(&a, &b, &job).await;
    assert_eq!(b.get(&waiting.id).await.unwrap(), waiting, "untouched");
    let stats = b.stats().await.unwrap();
    assert_eq!((stats.pending, stats.running), (1, 1));
}
