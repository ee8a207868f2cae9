//! The behaviour suite every [`JobStore`] backend must pass: one public
//! function per behaviour, each on a fresh, empty store, asserting on error
//! kinds rather than messages.
//!
//! A backend runs the whole suite from its own tests with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! mod conformance {
//!     semiont_jobs_store::conformance_tests!(|| async {
//!         semiont_jobs_store::conformance::Fixture::new(MyStore::new())
//!     });
//! }
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "a test suite: a failed expectation is a panic with a message"
)]

use std::any::Any;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{
    Job, JobFilter, JobId, JobStatus, JobType, NewJob, Timestamp, Transition,
};
use serde_json::json;

use crate::{
    ChangeKind, ClaimRequest, ErrorKind, Expect, JobStore, JobStoreExt, Result, TypeFilter,
    Updated, WorkerInfo,
};

/// A store under test plus whatever must live as long as it (a temp dir).
pub struct Fixture {
    /// The store, fresh and empty.
    pub store: Arc<dyn JobStore>,
    _guard: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// A fixture that needs nothing kept alive.
    pub fn new(store: impl JobStore) -> Self {
        Self::with_guard(store, ())
    }

    /// A fixture that keeps `guard` alive as long as the store.
    pub fn with_guard(store: impl JobStore, guard: impl Any + Send + Sync) -> Self {
        Fixture {
            store: Arc::new(store),
            _guard: Box::new(guard),
        }
    }
}

/// Runs every conformance case as its own `#[tokio::test]`. The argument is
/// a closure returning a future of a [`Fixture`] with a fresh store.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::conformance_tests!(@cases $factory;
            create_then_get_round_trips,
            create_duplicate_is_already_exists,
            get_unknown_is_not_found,
            create_batch_stores_all,
            create_batch_stops_at_duplicate,
            claim_on_empty_store_returns_none,
            claim_is_fifo_by_id,
            claim_prefers_higher_priority,
            claim_filters_by_type,
            claim_skips_jobs_not_yet_due,
            claim_sets_running_fields,
            claimed_job_is_not_claimed_twice,
            peek_next_does_not_claim,
            complete_running_job,
            transition_with_wrong_status_conflicts,
            stale_attempt_cannot_complete,
            illegal_transition_is_invalid_input,
            transition_of_unknown_job_is_not_found,
            update_with_writes_what_the_closure_returns,
            update_with_declined_writes_nothing,
            update_with_checks_id_precondition_and_state_machine,
            cancel_pending_job,
            cancel_running_job_fences_the_worker,
            requeue_then_reclaim_increments_attempt,
            retry_failed_and_cancelled_jobs,
            update_running_replaces_content,
            update_running_requires_running_status,
            update_running_with_stale_attempt_conflicts,
            list_is_newest_first,
            list_filters_by_status_type_and_user,
            list_paginates_with_total,
            list_rejects_oversized_limit,
            stats_follow_every_transition,
            delete_finished_job,
            delete_requires_finished_status,
            delete_with_wrong_status_conflicts,
            finished_before_lists_only_old_finished_jobs,
            unknown_fields_survive_the_store,
            subscribe_sees_own_changes_in_order,
            recover_requeues_job_with_expired_lease,
            recover_fails_job_with_spent_retries,
            recover_spares_registered_workers,
            recover_requeues_jobs_of_unregistered_worker,
            concurrent_claimers_take_each_job_once,
            concurrent_transitions_have_one_winner,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture = ($factory)().await;
                let store = ::std::sync::Arc::clone(&fixture.store);
                ::tokio::time::timeout(
                    ::std::time::Duration::from_secs(120),
                    $crate::conformance::$case(store),
                )
                .await
                .expect(concat!("conformance case ", stringify!($case), " timed out"));
                drop(fixture);
            }
        )*
    };
}

/// The suite's fixed "now": 2026-01-01T00:00:00Z.
pub const T0: Timestamp = Timestamp::from_millis(1_767_225_600_000);
const LEASE: Duration = Duration::from_secs(30);

fn at(secs: i64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + secs * 1000)
}

/// A new pending job of type `ty` for user `u1`, created at [`T0`].
pub fn pending(ty: &str) -> Job {
    pending_for(ty, "u1", T0)
}

fn pending_for(ty: &str, user: &str, created: Timestamp) -> Job {
    NewJob::custom(ty, user, json!({ "n": 1 }))
        .unwrap()
        .into_job(JobId::generate_at(created), created, 3)
        .unwrap()
}

fn claim_req(types: TypeFilter, worker: &str, now: Timestamp) -> ClaimRequest {
    ClaimRequest {
        types,
        worker_id: worker.to_owned(),
        now,
        lease: LEASE,
    }
}

async fn claim(store: &dyn JobStore, worker: &str) -> Option<Job> {
    store
        .claim(&claim_req(TypeFilter::Any, worker, at(1)))
        .await
        .unwrap()
}

fn kind<T: std::fmt::Debug>(r: Result<T>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.kind(),
    }
}

fn finished(mut job: Job, status: JobStatus, when: Timestamp) -> Job {
    job.status = status;
    job.completed_at = Some(when);
    job
}

async fn create_claimed(store: &dyn JobStore, ty: &str) -> Job {
    let job = pending(ty);
    store.create(&job).await.unwrap();
    let running = store
        .claim(&claim_req(
            TypeFilter::one(job.job_type.clone()),
            "w1",
            at(1),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.id, job.id);
    running
}

/// A created job reads back unchanged.
pub async fn create_then_get_round_trips(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    assert_eq!(store.get(&job.id).await.unwrap(), job);
}

/// Creating an id twice fails with `AlreadyExists` and keeps the first.
pub async fn create_duplicate_is_already_exists(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let mut other = job.clone();
    other.user_id = "intruder".into();
    assert_eq!(kind(store.create(&other).await), ErrorKind::AlreadyExists);
    assert_eq!(store.get(&job.id).await.unwrap().user_id, "u1");
}

/// Reading a missing id fails with `NotFound`.
pub async fn get_unknown_is_not_found(store: Arc<dyn JobStore>) {
    assert_eq!(
        kind(store.get(&JobId::generate()).await),
        ErrorKind::NotFound
    );
    assert_eq!(store.get_opt(&JobId::generate()).await.unwrap(), None);
}

/// A batch create stores every job.
pub async fn create_batch_stores_all(store: Arc<dyn JobStore>) {
    let jobs: Vec<Job> = (0..50).map(|_| pending("t")).collect();
    store.create_batch(&jobs).await.unwrap();
    for job in &jobs {
        assert_eq!(&store.get(&job.id).await.unwrap(), job);
    }
    assert_eq!(store.count(JobStatus::Pending).await.unwrap(), 50);
}

/// A batch with an existing id stores the jobs before it and reports
/// `AlreadyExists`.
pub async fn create_batch_stops_at_duplicate(store: Arc<dyn JobStore>) {
    let existing = pending("t");
    store.create(&existing).await.unwrap();
    let first = pending("t");
    let batch = vec![first.clone(), existing.clone(), pending("t")];
    assert_eq!(
        kind(store.create_batch(&batch).await),
        ErrorKind::AlreadyExists
    );
    assert!(store.get_opt(&first.id).await.unwrap().is_some());
    assert_eq!(store.get(&existing.id).await.unwrap(), existing);
}

/// Claiming from an empty store returns `None`.
pub async fn claim_on_empty_store_returns_none(store: Arc<dyn JobStore>) {
    assert!(claim(&*store, "w1").await.is_none());
}

/// Claims come in id (creation) order, whatever the insertion order.
pub async fn claim_is_fifo_by_id(store: Arc<dyn JobStore>) {
    let jobs: Vec<Job> = (0..20).map(|_| pending("t")).collect();
    for job in jobs.iter().rev() {
        store.create(job).await.unwrap();
    }
    for job in &jobs {
        assert_eq!(claim(&*store, "w1").await.unwrap().id, job.id);
    }
    assert!(claim(&*store, "w1").await.is_none());
}

/// A higher priority is claimed first; FIFO within a priority.
pub async fn claim_prefers_higher_priority(store: Arc<dyn JobStore>) {
    let low = pending("t");
    let mut high1 = pending("t");
    high1.priority = 5;
    let mut high2 = pending("t");
    high2.priority = 5;
    let mut negative = pending("t");
    negative.priority = -1;
    for j in [&negative, &low, &high2, &high1] {
        store.create(j).await.unwrap();
    }
    let order: Vec<JobId> = [
        claim(&*store, "w").await,
        claim(&*store, "w").await,
        claim(&*store, "w").await,
        claim(&*store, "w").await,
    ]
    .into_iter()
    .map(|j| j.unwrap().id)
    .collect();
    assert_eq!(order, [high1.id, high2.id, low.id, negative.id]);
}

/// A claim for some types skips jobs of other types.
pub async fn claim_filters_by_type(store: Arc<dyn JobStore>) {
    let a = pending("alpha");
    let b = pending("beta");
    let c = pending("gamma");
    for j in [&a, &b, &c] {
        store.create(j).await.unwrap();
    }
    let only_c = TypeFilter::one(JobType::parse("gamma").unwrap());
    let got = store
        .claim(&claim_req(only_c.clone(), "w", at(1)))
        .await
        .unwrap();
    assert_eq!(got.unwrap().id, c.id);
    assert!(store
        .claim(&claim_req(only_c, "w", at(1)))
        .await
        .unwrap()
        .is_none());
    let b_or_c = TypeFilter::Only(vec![
        JobType::parse("beta").unwrap(),
        JobType::parse("gamma").unwrap(),
    ]);
    let got = store.claim(&claim_req(b_or_c, "w", at(1))).await.unwrap();
    assert_eq!(got.unwrap().id, b.id);
    assert_eq!(store.get(&a.id).await.unwrap().status, JobStatus::Pending);
}

/// A pending job with `runAt` in the future is not claimed until due.
pub async fn claim_skips_jobs_not_yet_due(store: Arc<dyn JobStore>) {
    let mut later = pending("t");
    later.run_at = Some(at(60));
    let now_job = pending("t");
    store.create(&later).await.unwrap();
    store.create(&now_job).await.unwrap();
    let req = |s| claim_req(TypeFilter::Any, "w", at(s));
    assert_eq!(store.claim(&req(1)).await.unwrap().unwrap().id, now_job.id);
    assert!(store.claim(&req(59)).await.unwrap().is_none());
    assert!(store
        .peek_next(&TypeFilter::Any, at(59))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.claim(&req(60)).await.unwrap().unwrap().id, later.id);
}

/// A claim makes the job running at attempt + 1 for the worker, with a lease.
pub async fn claim_sets_running_fields(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let running = claim(&*store, "worker-7").await.unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.attempt, job.attempt + 1);
    assert_eq!(running.started_at, Some(at(1)));
    assert_eq!(running.worker_id.as_deref(), Some("worker-7"));
    assert_eq!(running.lease_expires_at, Some(at(1).add(LEASE)));
    assert_eq!(store.get(&job.id).await.unwrap(), running);
}

/// A running job is not claimed again.
pub async fn claimed_job_is_not_claimed_twice(store: Arc<dyn JobStore>) {
    store.create(&pending("t")).await.unwrap();
    assert!(claim(&*store, "w1").await.is_some());
    assert!(claim(&*store, "w2").await.is_none());
}

/// Peeking returns the next due job without changing it.
pub async fn peek_next_does_not_claim(store: Arc<dyn JobStore>) {
    let a = pending("t");
    let b = pending("t");
    store.create(&b).await.unwrap();
    store.create(&a).await.unwrap();
    let peeked = store
        .peek_next(&TypeFilter::Any, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(peeked, a);
    assert_eq!(store.get(&a.id).await.unwrap().status, JobStatus::Pending);
    assert_eq!(claim(&*store, "w").await.unwrap().id, a.id);
}

/// running → complete with a result.
pub async fn complete_running_job(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let mut done = finished(running.clone(), JobStatus::Complete, at(2));
    done.result = Some(json!({"totalProcessed": 100, "errors": 0}));
    store
        .transition(Expect::running(running.attempt), &done)
        .await
        .unwrap();
    assert_eq!(store.get(&running.id).await.unwrap(), done);
}

/// A transition whose expected status is stale gets `Conflict`.
pub async fn transition_with_wrong_status_conflicts(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let mut cancelled = finished(job.clone(), JobStatus::Cancelled, at(1));
    cancelled.error = None;
    // Pretend the job is failed: failed → pending is legal, but it is pending.
    let mut retried = job.clone();
    retried.status = JobStatus::Pending;
    let r = store
        .transition(Expect::status(JobStatus::Failed), &retried)
        .await;
    assert_eq!(kind(r), ErrorKind::Conflict);
    store
        .transition(Expect::status(JobStatus::Pending), &cancelled)
        .await
        .unwrap();
    let r = store
        .transition(Expect::status(JobStatus::Pending), &cancelled)
        .await;
    assert_eq!(kind(r), ErrorKind::Conflict);
}

/// A worker whose attempt is stale cannot complete the job.
pub async fn stale_attempt_cannot_complete(store: Arc<dyn JobStore>) {
    let first = create_claimed(&*store, "t").await;
    let mut requeued = first.clone();
    requeued.status = JobStatus::Pending;
    store
        .transition(Expect::running(first.attempt), &requeued)
        .await
        .unwrap();
    let second = claim(&*store, "w2").await.unwrap();
    assert_eq!(second.attempt, first.attempt + 1);
    let stale = finished(first.clone(), JobStatus::Complete, at(3));
    let r = store
        .transition(Expect::running(first.attempt), &stale)
        .await;
    assert_eq!(kind(r), ErrorKind::Conflict);
    assert_eq!(store.get(&first.id).await.unwrap(), second);
}

/// A move the state machine forbids is `InvalidInput`, and nothing changes.
pub async fn illegal_transition_is_invalid_input(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let done = finished(job.clone(), JobStatus::Complete, at(1));
    let r = store
        .transition(Expect::status(JobStatus::Pending), &done)
        .await;
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    let r = store
        .transition(Expect::status(JobStatus::Pending), &job)
        .await;
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    assert_eq!(store.get(&job.id).await.unwrap(), job);
}

/// `update_with` hands the closure the stored job and writes its version.
pub async fn update_with_writes_what_the_closure_returns(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let seen = running.clone();
    let r = store
        .update_with(
            &running.id,
            Box::new(move |cur: &Job| {
                assert_eq!(*cur, seen, "the closure sees the stored job");
                Some((
                    Expect::running(cur.attempt),
                    finished(cur.clone(), JobStatus::Complete, at(5)),
                ))
            }),
        )
        .await
        .unwrap();
    let done = finished(running.clone(), JobStatus::Complete, at(5));
    assert_eq!(r, Updated::Written(done.clone()));
    assert_eq!(store.get(&running.id).await.unwrap(), done);
    assert_eq!(store.stats().await.unwrap().complete, 1);
}

/// A declining closure writes nothing and gets the job back.
pub async fn update_with_declined_writes_nothing(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let r = store
        .update_with(&job.id, Box::new(|_: &Job| None))
        .await
        .unwrap();
    assert_eq!(r, Updated::Declined(job.clone()));
    assert_eq!(store.get(&job.id).await.unwrap(), job);
    let ghost = pending("t");
    let r = store.update_with(&ghost.id, Box::new(|_: &Job| None)).await;
    assert_eq!(kind(r), ErrorKind::NotFound);
}

/// The closure's version is checked like a `transition`: same id, the
/// precondition holds, the state machine allows the move; nothing changes
/// otherwise.
pub async fn update_with_checks_id_precondition_and_state_machine(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let other = pending("t");
    let r = store
        .update_with(
            &running.id,
            Box::new(move |cur: &Job| {
                let mut wrong = finished(cur.clone(), JobStatus::Complete, at(5));
                wrong.id = other.id.clone();
                Some((Expect::running(cur.attempt), wrong))
            }),
        )
        .await;
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    let r = store
        .update_with(
            &running.id,
            Box::new(|cur: &Job| {
                Some((
                    Expect::running(cur.attempt + 1),
                    finished(cur.clone(), JobStatus::Complete, at(5)),
                ))
            }),
        )
        .await;
    assert_eq!(kind(r), ErrorKind::Conflict);
    let r = store
        .update_with(
            &running.id,
            Box::new(|cur: &Job| Some((Expect::running(cur.attempt), cur.clone()))),
        )
        .await;
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    assert_eq!(store.get(&running.id).await.unwrap(), running);
}

/// A transition of a missing job is `NotFound`.
pub async fn transition_of_unknown_job_is_not_found(store: Arc<dyn JobStore>) {
    let ghost = finished(pending("t"), JobStatus::Cancelled, at(1));
    let r = store
        .transition(Expect::status(JobStatus::Pending), &ghost)
        .await;
    assert_eq!(kind(r), ErrorKind::NotFound);
}

/// pending → cancelled; the job is no longer claimable.
pub async fn cancel_pending_job(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let cancelled = finished(job.clone(), JobStatus::Cancelled, at(1));
    store
        .transition(Expect::status(JobStatus::Pending), &cancelled)
        .await
        .unwrap();
    assert!(claim(&*store, "w").await.is_none());
    assert_eq!(
        store.get(&job.id).await.unwrap().status,
        JobStatus::Cancelled
    );
}

/// running → cancelled; the worker's later writes are refused.
pub async fn cancel_running_job_fences_the_worker(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let cancelled = finished(running.clone(), JobStatus::Cancelled, at(2));
    store
        .transition(Expect::running(running.attempt), &cancelled)
        .await
        .unwrap();
    let mut progress = running.clone();
    progress.progress = Some(json!({"percentage": 50}));
    assert_eq!(
        kind(store.update_running(&progress).await),
        ErrorKind::Conflict
    );
    let done = finished(running.clone(), JobStatus::Complete, at(3));
    let r = store
        .transition(Expect::running(running.attempt), &done)
        .await;
    assert_eq!(kind(r), ErrorKind::Conflict);
    assert_eq!(store.get(&running.id).await.unwrap(), cancelled);
}

/// running → pending → running again at attempt + 1.
pub async fn requeue_then_reclaim_increments_attempt(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let mut back = running.clone();
    back.status = JobStatus::Pending;
    back.retry_count += 1;
    back.worker_id = None;
    back.error = Some("boom".into());
    store
        .transition(Expect::running(running.attempt), &back)
        .await
        .unwrap();
    let again = claim(&*store, "w2").await.unwrap();
    assert_eq!(again.attempt, running.attempt + 1);
    assert_eq!(again.retry_count, 1);
    assert_eq!(again.worker_id.as_deref(), Some("w2"));
}

/// failed → pending and cancelled → pending (manual retries).
pub async fn retry_failed_and_cancelled_jobs(store: Arc<dyn JobStore>) {
    for status in [JobStatus::Failed, JobStatus::Cancelled] {
        let running = create_claimed(&*store, "t").await;
        let end = finished(running.clone(), status, at(2));
        store
            .transition(Expect::running(running.attempt), &end)
            .await
            .unwrap();
        let mut retried = end.clone();
        retried.status = JobStatus::Pending;
        retried.completed_at = None;
        store
            .transition(Expect::status(status), &retried)
            .await
            .unwrap();
        assert_eq!(claim(&*store, "w").await.unwrap().id, running.id);
    }
}

/// A running job's content can be rewritten in place by its owner.
pub async fn update_running_replaces_content(store: Arc<dyn JobStore>) {
    let mut running = create_claimed(&*store, "t").await;
    for p in [10, 50, 90] {
        running.progress = Some(json!({"percentage": p, "message": format!("at {p}")}));
        store.update_running(&running).await.unwrap();
        assert_eq!(store.get(&running.id).await.unwrap(), running);
    }
}

/// In-place updates are only for running jobs.
pub async fn update_running_requires_running_status(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let mut running_copy = job.clone();
    running_copy.status = JobStatus::Running;
    assert_eq!(
        kind(store.update_running(&running_copy).await),
        ErrorKind::Conflict
    );
    let mut as_pending = job.clone();
    as_pending.progress = Some(json!({"percentage": 1}));
    assert_eq!(
        kind(store.update_running(&as_pending).await),
        ErrorKind::InvalidInput
    );
    assert_eq!(store.get(&job.id).await.unwrap(), job);
}

/// An in-place update with a stale attempt is refused.
pub async fn update_running_with_stale_attempt_conflicts(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let mut stale = running.clone();
    stale.attempt -= 1;
    assert_eq!(
        kind(store.update_running(&stale).await),
        ErrorKind::Conflict
    );
    assert_eq!(store.get(&running.id).await.unwrap(), running);
}

/// Listing is newest first.
pub async fn list_is_newest_first(store: Arc<dyn JobStore>) {
    let jobs: Vec<Job> = (0..10).map(|i| pending_for("t", "u1", at(i))).collect();
    for j in [&jobs[3], &jobs[0], &jobs[9], &jobs[5]] {
        store.create(j).await.unwrap();
    }
    for j in &jobs {
        let _ = store.create(j).await;
    }
    let page = store.list(&JobFilter::default()).await.unwrap();
    let ids: Vec<&JobId> = page.jobs.iter().map(|j| &j.id).collect();
    let expected: Vec<&JobId> = jobs.iter().rev().map(|j| &j.id).collect();
    assert_eq!(ids, expected);
    assert_eq!(page.total, 10);
}

/// Status, type and user filters combine.
pub async fn list_filters_by_status_type_and_user(store: Arc<dyn JobStore>) {
    let mut all = Vec::new();
    for (i, (ty, user)) in [("a", "u1"), ("b", "u1"), ("a", "u2"), ("a", "u1")]
        .iter()
        .enumerate()
    {
        let j = pending_for(ty, user, at(i as i64));
        store.create(&j).await.unwrap();
        all.push(j);
    }
    let claimed = store
        .claim(&claim_req(
            TypeFilter::one(JobType::parse("a").unwrap()),
            "w",
            at(10),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, all[0].id);
    let count = |f: JobFilter| {
        let store = Arc::clone(&store);
        async move { store.list(&f).await.unwrap() }
    };
    let a = JobType::parse("a").unwrap();
    assert_eq!(
        count(JobFilter::default().job_type(a.clone())).await.total,
        3
    );
    assert_eq!(count(JobFilter::default().user("u1")).await.total, 3);
    let p = count(
        JobFilter::default()
            .job_type(a.clone())
            .user("u1")
            .status(JobStatus::Pending),
    )
    .await;
    assert_eq!(p.total, 1);
    assert_eq!(p.jobs[0].id, all[3].id);
    let r = count(JobFilter::default().status(JobStatus::Running)).await;
    assert_eq!(r.jobs.len(), 1);
    assert_eq!(r.jobs[0].id, all[0].id);
    assert_eq!(count(JobFilter::default().user("nobody")).await.total, 0);
}

/// Limit and offset page through the matches; `total` counts all matches.
pub async fn list_paginates_with_total(store: Arc<dyn JobStore>) {
    let jobs: Vec<Job> = (0..25).map(|i| pending_for("t", "u1", at(i))).collect();
    store.create_batch(&jobs).await.unwrap();
    let mut seen = Vec::new();
    for page in 0..3 {
        let p = store
            .list(&JobFilter::default().limit(10).offset(page * 10))
            .await
            .unwrap();
        assert_eq!(p.total, 25);
        seen.extend(p.jobs.into_iter().map(|j| j.id));
    }
    let expected: Vec<JobId> = jobs.iter().rev().map(|j| j.id.clone()).collect();
    assert_eq!(seen, expected);
    let beyond = store.list(&JobFilter::default().offset(100)).await.unwrap();
    assert!(beyond.jobs.is_empty());
    assert_eq!(beyond.total, 25);
}

/// A limit above the maximum is `InvalidInput`.
pub async fn list_rejects_oversized_limit(store: Arc<dyn JobStore>) {
    let r = store
        .list(&JobFilter::default().limit(semiont_jobs_model::MAX_LIST_LIMIT + 1))
        .await;
    assert_eq!(kind(r), ErrorKind::InvalidInput);
}

/// Stats count every status after every kind of move.
pub async fn stats_follow_every_transition(store: Arc<dyn JobStore>) {
    let s = store.stats().await.unwrap();
    assert_eq!(s.total(), 0);
    let jobs: Vec<Job> = (0..5).map(|_| pending("t")).collect();
    store.create_batch(&jobs).await.unwrap();
    let check = |p, r, c, f, x| {
        let store = Arc::clone(&store);
        async move {
            let s = store.stats().await.unwrap();
            assert_eq!(
                (s.pending, s.running, s.complete, s.failed, s.cancelled),
                (p, r, c, f, x)
            );
        }
    };
    check(5, 0, 0, 0, 0).await;
    let r1 = claim(&*store, "w").await.unwrap();
    let r2 = claim(&*store, "w").await.unwrap();
    let r3 = claim(&*store, "w").await.unwrap();
    check(2, 3, 0, 0, 0).await;
    store
        .transition(
            Expect::running(1),
            &finished(r1.clone(), JobStatus::Complete, at(2)),
        )
        .await
        .unwrap();
    check(2, 2, 1, 0, 0).await;
    let failed = finished(r2.clone(), JobStatus::Failed, at(2));
    store.transition(Expect::running(1), &failed).await.unwrap();
    check(2, 1, 1, 1, 0).await;
    store
        .transition(
            Expect::running(1),
            &finished(r3.clone(), JobStatus::Cancelled, at(2)),
        )
        .await
        .unwrap();
    check(2, 0, 1, 1, 1).await;
    let mut retried = failed.clone();
    retried.status = JobStatus::Pending;
    store
        .transition(Expect::status(JobStatus::Failed), &retried)
        .await
        .unwrap();
    check(3, 0, 1, 0, 1).await;
    store
        .delete(&r1.id, Expect::status(JobStatus::Complete))
        .await
        .unwrap();
    check(3, 0, 0, 0, 1).await;
}

/// A finished job can be deleted.
pub async fn delete_finished_job(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let done = finished(running.clone(), JobStatus::Complete, at(2));
    store
        .transition(Expect::running(running.attempt), &done)
        .await
        .unwrap();
    store
        .delete(&done.id, Expect::status(JobStatus::Complete))
        .await
        .unwrap();
    assert_eq!(kind(store.get(&done.id).await), ErrorKind::NotFound);
    let r = store
        .delete(&done.id, Expect::status(JobStatus::Complete))
        .await;
    assert_eq!(kind(r), ErrorKind::NotFound);
}

/// Pending and running jobs cannot be deleted.
pub async fn delete_requires_finished_status(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let r = store
        .delete(&job.id, Expect::status(JobStatus::Pending))
        .await;
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    let running = claim(&*store, "w").await.unwrap();
    let r = store
        .delete(&running.id, Expect::status(JobStatus::Running))
        .await;
    assert_eq!(kind(r), ErrorKind::InvalidInput);
    assert_eq!(store.get(&job.id).await.unwrap(), running);
}

/// Deleting with the wrong expected status is `Conflict`.
pub async fn delete_with_wrong_status_conflicts(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let done = finished(running.clone(), JobStatus::Failed, at(2));
    store
        .transition(Expect::running(running.attempt), &done)
        .await
        .unwrap();
    let r = store
        .delete(&done.id, Expect::status(JobStatus::Complete))
        .await;
    assert_eq!(kind(r), ErrorKind::Conflict);
    assert_eq!(store.get(&done.id).await.unwrap(), done);
}

/// Only finished jobs that finished before the cutoff are candidates.
pub async fn finished_before_lists_only_old_finished_jobs(store: Arc<dyn JobStore>) {
    let mut ends = Vec::new();
    for (status, secs) in [
        (JobStatus::Complete, 10),
        (JobStatus::Failed, 20),
        (JobStatus::Cancelled, 30),
        (JobStatus::Complete, 100),
    ] {
        let running = create_claimed(&*store, "t").await;
        let end = finished(running.clone(), status, at(secs));
        store
            .transition(Expect::running(running.attempt), &end)
            .await
            .unwrap();
        ends.push(end);
    }
    store.create(&pending("t")).await.unwrap();
    let old = store.finished_before(at(50), 100).await.unwrap();
    let ids: Vec<&JobId> = old.iter().map(|f| &f.id).collect();
    assert_eq!(ids, [&ends[0].id, &ends[1].id, &ends[2].id]);
    assert_eq!(old[1].status, JobStatus::Failed);
    assert_eq!(old[2].completed_at, at(30));
    assert_eq!(store.finished_before(at(50), 2).await.unwrap().len(), 2);
    assert!(store.finished_before(at(5), 100).await.unwrap().is_empty());
}

/// Fields the store does not know are kept through every move.
pub async fn unknown_fields_survive_the_store(store: Arc<dyn JobStore>) {
    let mut job = pending("t");
    job.params
        .insert("fromTheFuture".into(), json!({"v": [1, 2]}));
    store.create(&job).await.unwrap();
    let running = claim(&*store, "w").await.unwrap();
    assert_eq!(running.params["fromTheFuture"], json!({"v": [1, 2]}));
    let done = finished(running.clone(), JobStatus::Complete, at(2));
    store.transition(Expect::running(1), &done).await.unwrap();
    let back = store.get(&job.id).await.unwrap();
    assert_eq!(back.params["fromTheFuture"], json!({"v": [1, 2]}));
}

/// A subscriber sees this store's changes to one job in order.
pub async fn subscribe_sees_own_changes_in_order(store: Arc<dyn JobStore>) {
    let mut rx = store.subscribe();
    let running = create_claimed(&*store, "t").await;
    let mut p = running.clone();
    p.progress = Some(json!({"percentage": 5}));
    store.update_running(&p).await.unwrap();
    let done = finished(running.clone(), JobStatus::Complete, at(2));
    store.transition(Expect::running(1), &done).await.unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let change = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("change events arrive")
            .expect("channel open");
        if change.id.as_ref() == Some(&running.id) {
            kinds.push((change.kind, change.status));
        }
    }
    assert_eq!(
        kinds,
        [
            (ChangeKind::Created, Some(JobStatus::Pending)),
            (
                ChangeKind::Transition(Transition::Claim),
                Some(JobStatus::Running)
            ),
            (ChangeKind::Updated, Some(JobStatus::Running)),
            (
                ChangeKind::Transition(Transition::Complete),
                Some(JobStatus::Complete)
            ),
        ]
    );
}

/// A running job whose (unregistered) owner's lease expired goes back to
/// pending with `retryCount + 1`.
pub async fn recover_requeues_job_with_expired_lease(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let report = store.recover(at(2)).await.unwrap();
    assert!(report.requeued.is_empty(), "lease still valid: {report:?}");
    let report = store
        .recover(at(1).add(LEASE).add(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&running.id));
    let back = store.get(&running.id).await.unwrap();
    assert_eq!(back.status, JobStatus::Pending);
    assert_eq!(back.retry_count, 1);
    assert!(back.error.is_some());
    let again = claim(&*store, "w2").await.unwrap();
    assert_eq!(again.attempt, running.attempt + 1);
}

/// A dead worker's job with no retries left becomes failed.
pub async fn recover_fails_job_with_spent_retries(store: Arc<dyn JobStore>) {
    let mut job = pending("t");
    job.max_retries = 0;
    store.create(&job).await.unwrap();
    claim(&*store, "w").await.unwrap();
    let report = store.recover(at(1000)).await.unwrap();
    assert_eq!(report.failed, [job.id.clone()]);
    let back = store.get(&job.id).await.unwrap();
    assert_eq!(back.status, JobStatus::Failed);
    assert_eq!(back.completed_at, Some(at(1000)));
}

/// A registered worker's jobs are never recovered while it lives, however
/// long they run; heartbeats extend their leases.
pub async fn recover_spares_registered_workers(store: Arc<dyn JobStore>) {
    let worker = WorkerInfo {
        id: "alive".into(),
        lease: LEASE,
    };
    store.register_worker(&worker).await.unwrap();
    store.create(&pending("t")).await.unwrap();
    let running = claim(&*store, "alive").await.unwrap();
    store.heartbeat("alive", at(100)).await.unwrap();
    let leased = store.get(&running.id).await.unwrap();
    assert_eq!(leased.lease_expires_at, Some(at(100).add(LEASE)));
    let report = store.recover(at(120)).await.unwrap();
    assert!(
        report.requeued.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        store.get(&running.id).await.unwrap().status,
        JobStatus::Running
    );
}

/// Once a worker unregisters, its running jobs are recovered at once.
pub async fn recover_requeues_jobs_of_unregistered_worker(store: Arc<dyn JobStore>) {
    let worker = WorkerInfo {
        id: "leaving".into(),
        lease: LEASE,
    };
    store.register_worker(&worker).await.unwrap();
    store.create(&pending("t")).await.unwrap();
    let running = claim(&*store, "leaving").await.unwrap();
    store.unregister_worker("leaving").await.unwrap();
    let report = store.recover(at(2)).await.unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&running.id));
}

/// Eight concurrent claimers over 1,000 jobs: each job claimed exactly once.
pub async fn concurrent_claimers_take_each_job_once(store: Arc<dyn JobStore>) {
    let jobs: Vec<Job> = (0..1000).map(|_| pending("t")).collect();
    store.create_batch(&jobs).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let worker = format!("w{w}");
            while let Some(job) = claim(&*store, &worker).await {
                let done = finished(job.clone(), JobStatus::Complete, at(2));
                store
                    .transition(Expect::running(job.attempt), &done)
                    .await
                    .unwrap();
                mine.push(job.id);
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&JobId> = all.iter().collect();
    assert_eq!(all.len(), 1000, "claims");
    assert_eq!(distinct.len(), 1000, "distinct jobs");
    assert_eq!(store.count(JobStatus::Complete).await.unwrap(), 1000);
}

/// Many tasks racing to move the same job: exactly one wins, the others get
/// `Conflict`.
pub async fn concurrent_transitions_have_one_winner(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&store);
        let mut next = finished(job.clone(), JobStatus::Cancelled, at(2));
        next.error = Some(format!("cancelled by {i}"));
        tasks.push(tokio::spawn(async move {
            store
                .transition(Expect::status(JobStatus::Pending), &next)
                .await
                .map(|()| next)
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(next) => winners.push(next),
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict),
        }
    }
    assert_eq!(winners.len(), 1);
    assert_eq!(store.get(&job.id).await.unwrap(), winners[0]);
}
