//! Calls that arrive together share statements (group commit of finishes
//! and creates, batched reads, finishes of remembered claims): each caller
//! still gets its own outcome, and a remembered job never hides another
//! instance's change.

use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{Job, JobId, JobStatus, Timestamp};
use semiont_jobs_store::{ErrorKind, Expect, JobStore, TypeFilter, Updated};
use semiont_jobs_store_pg::testing::TestSchema;
use serde_json::json;

use crate::support::{claim_all, new_job};

fn completed(mut job: Job) -> Job {
    job.status = JobStatus::Complete;
    job.completed_at = Some(Timestamp::now());
    job.lease_expires_at = None;
    job.result = Some(json!({ "ok": job.id.as_str() }));
    job
}

/// Completes `claimed` through `update_with` if the stored job is still
/// running in the same attempt (else declines).
async fn complete_if_running(
    store: &dyn JobStore,
    claimed: &Job,
) -> semiont_jobs_store::Result<Updated> {
    let attempt = claimed.attempt;
    store
        .update_with(
            &claimed.id,
            Box::new(move |job: &Job| {
                (job.status == JobStatus::Running && job.attempt == attempt)
                    .then(|| (Expect::running(attempt), completed(job.clone())))
            }),
        )
        .await
}

/// Sixty finishes at once, a third of them expecting the wrong attempt:
/// those are refused with a conflict naming the stored attempt, the others
/// are written, each with its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_finishes_each_get_their_own_outcome() {
    let schema = TestSchema::new();
    let store: Arc<dyn JobStore> = Arc::new(schema.open(schema.options()).await);
    let jobs: Vec<Job> = (0..60).map(|_| new_job()).collect();
    store.create_batch(&jobs).await.unwrap();
    let running = claim_all(store.as_ref(), 60).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, job) in running.into_iter().enumerate() {
        let store = Arc::clone(&store);
        tasks.spawn(async move {
            let wrong = i % 3 == 0;
            let expect = Expect::running(if wrong { job.attempt + 7 } else { job.attempt });
            let outcome = store.transition(expect, &completed(job.clone())).await;
            (job, wrong, outcome)
        });
    }
    let mut refused = 0;
    while let Some(r) = tasks.join_next().await {
        let (job, wrong, outcome) = r.unwrap();
        let stored = store.get(&job.id).await.unwrap();
        if wrong {
            let e = outcome.expect_err("a wrong attempt is refused");
            assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
            assert_eq!(
                stored.status,
                JobStatus::Running,
                "nothing written for {}",
                job.id
            );
            refused += 1;
        } else {
            outcome.unwrap();
            assert_eq!(stored.status, JobStatus::Complete);
            assert_eq!(stored.result, Some(json!({ "ok": job.id.as_str() })));
        }
    }
    assert_eq!(refused, 20);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.running, stats.complete), (20, 40));
}

/// Creates at once, one of them reusing an id already stored: that one
/// fails with the id named, every other job is created once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_with_one_duplicate() {
    let schema = TestSchema::new();
    let store: Arc<dyn JobStore> = Arc::new(schema.open(schema.options()).await);
    let taken = new_job();
    store.create(&taken).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = Arc::clone(&store);
        let job = if i == 17 { taken.clone() } else { new_job() };
        tasks.spawn(async move { (job.id.clone(), store.create(&job).await) });
    }
    let mut created = 0;
    while let Some(r) = tasks.join_next().await {
        let (id, outcome) = r.unwrap();
        if id == taken.id {
            let e = outcome.expect_err("the stored id is refused");
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
            assert!(e.to_string().contains(id.as_str()), "{e}");
        } else {
            outcome.unwrap();
            store.get(&id).await.unwrap();
            created += 1;
        }
    }
    assert_eq!(created, 39);
    assert_eq!(store.stats().await.unwrap().pending, 40);
}

/// A claimed job that another instance cancels is not completed from the
/// claimer's remembered copy; one that it rewrote (a checkpoint) is
/// completed with what it wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_claim_never_hides_a_change() {
    let schema = TestSchema::new();
    let a = schema.open(schema.options()).await;
    let b = schema.open(schema.options()).await;
    let jobs = vec![new_job(), new_job()];
    a.create_batch(&jobs).await.unwrap();
    let running = claim_all(&a, 2).await;
    let (first, second) = (&running[0], &running[1]);

    // Another instance cancels the first while it runs.
    let mut cancelled = first.clone();
    cancelled.status = JobStatus::Cancelled;
    cancelled.completed_at = Some(Timestamp::now());
    b.transition(Expect::running(first.attempt), &cancelled)
        .await
        .unwrap();
    let e = complete_if_running(&a, first).await;
    match e {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "{e}"),
        Ok(Updated::Declined(job)) => assert_eq!(job.status, JobStatus::Cancelled),
        Ok(Updated::Written(job)) => panic!("completed over a cancel: {job:?}"),
    }
    assert_eq!(b.get(&first.id).await.unwrap().status, JobStatus::Cancelled);

    // The claimer writes progress, then completes: the progress it wrote
    // is in the completed job.
    let mut progressed = second.clone();
    progressed.progress = Some(json!({ "done": 3 }));
    a.update_running(&progressed).await.unwrap();
    let written = complete_if_running(&a, second).await.unwrap();
    assert!(matches!(written, Updated::Written(_)));
    let stored = b.get(&second.id).await.unwrap();
    assert_eq!(stored.status, JobStatus::Complete);
    assert_eq!(stored.progress, Some(json!({ "done": 3 })));
}

/// Claims take jobs in claim order through the pending index right after a
/// bulk insert into a young table (stale statistics), and a peek agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_keep_claim_order_after_a_bulk_insert() {
    let schema = TestSchema::new();
    let store = schema.open(schema.options()).await;
    let mut jobs: Vec<Job> = (0..3000).map(|_| new_job()).collect();
    for (i, job) in jobs.iter_mut().enumerate() {
        job.priority = i16::try_from(i % 3).unwrap();
    }
    for chunk in jobs.chunks(1000) {
        store.create_batch(chunk).await.unwrap();
    }
    let mut order: Vec<&Job> = jobs.iter().collect();
    order.sort_by(|x, y| {
        (std::cmp::Reverse(x.priority), &x.id).cmp(&(std::cmp::Reverse(y.priority), &y.id))
    });
    let peeked = store
        .peek_next(&TypeFilter::Any, Timestamp::now())
        .await
        .unwrap()
        .expect("a job is due");
    assert_eq!(peeked.id, order[0].id);
    let claimed = claim_all(&store, 25).await;
    let ids: Vec<&JobId> = claimed.iter().map(|j| &j.id).collect();
    let expected: Vec<&JobId> = order[..25].iter().map(|j| &j.id).collect();
    assert_eq!(ids, expected);
}

/// A worker's complete does not wait for its NOTIFY (it gathers with other
/// news that brings no work), and unregistering the worker sends it: an
/// instance whose runtime ends right after still told the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unregistering_sends_the_workers_last_news() {
    use semiont_jobs_model::Transition;
    use semiont_jobs_store::ChangeKind;

    let schema = TestSchema::new();
    let peer = schema.open(schema.options()).await;
    let mut news = peer.subscribe();
    let job = new_job();
    let (url, opts, id) = (schema.url().clone(), schema.options(), job.id.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = semiont_jobs_store_pg::PgStore::open(&url, opts)
                .await
                .unwrap();
            store.create(&job).await.unwrap();
            let running = claim_all(&store, 1).await.remove(0);
            let expect = Expect::running(running.attempt);
            store.transition(expect, &completed(running)).await.unwrap();
            store.unregister_worker("w").await.unwrap();
        });
        // Ends the instance's notifier with whatever it still held.
        drop(rt);
    })
    .join()
    .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(change) = news.recv().await {
            if change.id.as_ref() == Some(&id)
                && change.kind == ChangeKind::Transition(Transition::Complete)
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(heard, Ok(true), "the peer heard of the complete");
}

/// A create's notification rides in its own statement: a create the
/// database refused (a taken id, alone or in a batch) tells the other
/// instances nothing, and the ones committed reach them in commit order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_committed_creates_are_announced() {
    use semiont_jobs_store::ChangeKind;

    let schema = TestSchema::new();
    let store = schema.open(schema.options()).await;
    let peer = schema.open(schema.options()).await;
    let mut news = peer.subscribe();
    let first = new_job();
    store.create(&first).await.unwrap();
    let again = store.create(&first).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists, "{again}");
    let refused = [new_job(), first.clone()];
    store.create_batch(&refused).await.unwrap_err();
    let last = new_job();
    store.create(&last).await.unwrap();

    let mut created = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(change) = news.recv().await {
            if change.kind == ChangeKind::Created {
                let id = change.id.clone().expect("a create names its job");
                let done = id == last.id;
                created.push(id);
                if done {
                    return;
                }
            }
        }
    })
    .await
    .expect("the peer heard of the last create");
    assert_eq!(
        created,
        [first.id.clone(), last.id.clone()],
        "each committed create once, in order; nothing of the refused ones"
    );
}
