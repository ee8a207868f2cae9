//! The behaviour suite every [`JobStore`] backend must pass: one public
//! function per behaviour, each on a fresh, empty store of its own, asserting
//! on error kinds rather than messages.
//!
//! A backend runs the whole suite from its own tests with
//! [`conformance_tests!`](crate::conformance_tests), naming the run and
//! giving a factory of [`Fixture`]s:
//!
//! ```text
//! mod conformance {
//!     semiont_jobs_store::conformance_tests!("my-store", || async {
//!         let data = MyTestData::new();          // isolated per case
//!         let opener = data.opener();
//!         semiont_jobs_store::conformance::Fixture::with_guard(MyStore::open(&data).await, data)
//!             .with_peer(move || { let o = opener.clone(); async move { o.open().await } })
//!     });
//! }
//! ```
//!
//! Cases that need an ability the contract does not require (several
//! instances over the same data, persistence, other processes' events, a
//! caller's or a server's clock) say so in [`CASES`]; they run exactly when
//! the store's [`Capabilities`] (and the fixture's
//! peer opener) provide it, and are skipped otherwise. The macro adds a
//! `conformance_summary` test that checks the case list against [`CASES`]
//! and writes how many cases ran and which were skipped, and why, to
//! `conformance-<name>.txt` in Cargo's `CARGO_TARGET_TMPDIR` (`cargo xtask
//! ci` prints these files).

#![allow(
    clippy::unwrap_used,
    clippy::missing_panics_doc,
    reason = "a test suite: a failed expectation is a panic with a message"
)]

use std::any::Any;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{
    Checkpoint, Job, JobFilter, JobId, JobStatus, JobType, NewJob, Timestamp, Transition,
    UnitCursor,
};
use serde_json::json;

use crate::{
    rules, Capabilities, ChangeKind, ChangeOrigin, CheckpointRequest, ClaimRequest, ErrorKind,
    Expect, Heartbeat, JobSelector, JobStore, JobStoreExt, Result, TypeFilter, Updated, WorkerInfo,
    CHANGE_CHANNEL_CAPACITY,
};

type PeerFuture = Pin<Box<dyn Future<Output = Arc<dyn JobStore>> + Send>>;
type PeerOpener = Arc<dyn Fn() -> PeerFuture + Send + Sync>;

/// A store under test plus whatever must live as long as it (a temp dir, a
/// database schema), and optionally a way to open more instances over the
/// same backing data.
pub struct Fixture {
    /// The store, fresh and empty.
    pub store: Arc<dyn JobStore>,
    peer: Option<PeerOpener>,
    guard: Box<dyn Any + Send + Sync>,
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
            peer: None,
            guard: Box::new(guard),
        }
    }

    /// Adds a way to open another instance over the same backing data, as
    /// another process would (another `FsStore` on the same directory,
    /// another connection pool on the same schema). Enables the
    /// cross-instance cases.
    pub fn with_peer<F, Fut, S>(mut self, open: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = S> + Send + 'static,
        S: JobStore,
    {
        self.peer = Some(Arc::new(move || {
            let fut = open();
            Box::pin(async move { Arc::new(fut.await) as Arc<dyn JobStore> })
        }));
        self
    }

    /// Opens another instance over the same backing data.
    ///
    /// # Panics
    /// When the fixture has no peer opener (the case list only runs
    /// cross-instance cases on fixtures that have one).
    pub async fn open_peer(&self) -> Arc<dyn JobStore> {
        let open = self.peer.as_ref().expect("this fixture opens no peers");
        open().await
    }

    /// Splits the fixture, so a case can drop the store (as if its process
    /// ended) while the backing data (the guard) and the peer opener live on.
    ///
    /// # Panics
    /// When the fixture has no peer opener.
    fn split(self) -> (Arc<dyn JobStore>, PeerOpener, Box<dyn Any + Send + Sync>) {
        let peer = self.peer.expect("this fixture opens no peers");
        (self.store, peer, self.guard)
    }

    /// Whether [`Fixture::open_peer`] works.
    pub fn has_peer(&self) -> bool {
        self.peer.is_some()
    }
}

/// What a case needs beyond the contract's minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// The backend judges times by the callers' `now` (no
    /// [`Capabilities::server_clock`]): the case moves time by hand.
    CallerClock,
    /// The backend judges times by its own clock.
    ServerClock,
    /// Several instances over the same data: the fixture opens peers and
    /// the backend is [`Capabilities::cross_process`].
    Peers,
    /// Data survives its instance ([`Capabilities::persistent`]).
    Persistent,
    /// Other instances' changes show up in `subscribe`
    /// ([`Capabilities::external_events`]).
    ExternalEvents,
}

impl Need {
    /// Why a store with `caps` (and a fixture with or without a peer
    /// opener) cannot run a case needing this; `None` when it can.
    pub fn missing(self, caps: Capabilities, has_peer: bool) -> Option<&'static str> {
        match self {
            Need::CallerClock if caps.server_clock => Some("judges times by its own clock"),
            Need::ServerClock if !caps.server_clock => Some("has no server clock"),
            Need::Peers if !caps.cross_process => Some("is not shared between processes"),
            Need::Peers if !has_peer => Some("fixture opens no peer instances"),
            Need::Persistent if !caps.persistent => Some("is not persistent"),
            Need::ExternalEvents if !caps.external_events => {
                Some("reports no other instances' changes")
            }
            _ => None,
        }
    }
}

/// Every case of the suite, with what it needs. Cases whose needs are met
/// run; the others are skipped, and the summary says why.
pub const CASES: &[(&str, &[Need])] = &[
    ("create_then_get_round_trips", &[]),
    ("create_duplicate_is_already_exists", &[]),
    ("get_unknown_is_not_found", &[]),
    ("create_batch_stores_all", &[]),
    ("create_batch_failure_reports_the_stored_prefix", &[]),
    ("claim_on_empty_store_returns_none", &[]),
    ("claim_is_fifo_by_id", &[]),
    ("claim_prefers_higher_priority", &[]),
    ("claim_filters_by_type", &[]),
    ("claim_skips_jobs_not_yet_due", &[Need::CallerClock]),
    (
        "claim_skips_jobs_not_yet_due_by_server_time",
        &[Need::ServerClock],
    ),
    ("claim_sets_running_fields", &[Need::CallerClock]),
    (
        "claim_sets_running_fields_by_server_time",
        &[Need::ServerClock],
    ),
    ("claimed_job_is_not_claimed_twice", &[]),
    ("claim_batch_takes_up_to_max_in_claim_order", &[]),
    ("peek_next_does_not_claim", &[]),
    ("complete_running_job", &[]),
    ("transition_with_wrong_status_conflicts", &[]),
    ("stale_attempt_cannot_complete", &[]),
    ("illegal_transition_is_invalid_input", &[]),
    ("transition_of_unknown_job_is_not_found", &[]),
    ("update_with_writes_what_the_closure_returns", &[]),
    ("update_with_declined_writes_nothing", &[]),
    ("update_with_checks_id_precondition_and_state_machine", &[]),
    ("cancel_pending_job", &[]),
    ("cancel_running_job_fences_the_worker", &[]),
    ("requeue_then_reclaim_increments_attempt", &[]),
    ("retry_failed_and_cancelled_jobs", &[]),
    ("update_running_replaces_content", &[]),
    ("update_running_requires_running_status", &[]),
    ("update_running_with_stale_attempt_conflicts", &[]),
    ("list_is_newest_first", &[]),
    ("list_filters_by_status_type_and_user", &[]),
    ("list_paginates_with_total", &[]),
    ("list_rejects_oversized_limit", &[]),
    ("stats_follow_every_transition", &[]),
    ("type_stats_count_per_type_and_status", &[]),
    ("delete_finished_job", &[]),
    ("delete_requires_finished_status", &[]),
    ("delete_with_wrong_status_conflicts", &[]),
    ("finished_before_lists_only_old_finished_jobs", &[]),
    ("delete_finished_before_deletes_old_finished_jobs_only", &[]),
    ("unknown_fields_survive_the_store", &[]),
    ("nul_characters_survive_every_write", &[]),
    ("subscribe_sees_own_changes_in_order", &[]),
    ("subscriber_that_falls_behind_gets_resynced", &[]),
    (
        "recover_requeues_job_with_expired_lease",
        &[Need::CallerClock],
    ),
    (
        "recover_judges_leases_by_the_callers_clock",
        &[Need::CallerClock],
    ),
    (
        "recover_requeues_expired_lease_by_server_time",
        &[Need::ServerClock],
    ),
    ("recover_fails_job_with_spent_retries", &[]),
    ("recover_spares_registered_workers", &[Need::CallerClock]),
    (
        "recover_spares_registered_workers_by_server_time",
        &[Need::ServerClock],
    ),
    ("recover_requeues_jobs_of_unregistered_worker", &[]),
    ("heartbeat_reports_jobs_no_longer_held", &[]),
    ("heartbeat_of_unregistered_worker_is_invalid", &[]),
    ("workers_lists_live_and_stopped_workers", &[]),
    ("concurrent_claimers_take_each_job_once", &[]),
    ("concurrent_transitions_have_one_winner", &[]),
    ("concurrent_creates_of_one_id_have_one_winner", &[]),
    ("peers_claim_each_job_once", &[Need::Peers]),
    (
        "peer_changes_arrive_as_external",
        &[Need::Peers, Need::ExternalEvents],
    ),
    ("reopen_keeps_every_job", &[Need::Peers, Need::Persistent]),
    (
        "dead_instance_worker_is_recovered_by_a_peer",
        &[Need::Peers],
    ),
    (
        "opening_a_peer_respects_the_callers_leases",
        &[Need::Peers, Need::CallerClock],
    ),
    (
        "checkpoint_merges_and_renews_the_lease",
        &[Need::CallerClock],
    ),
    ("checkpoint_is_fenced_by_attempt", &[]),
    (
        "checkpoints_survive_retry_recovery_and_failure",
        &[Need::CallerClock],
    ),
    ("unique_key_is_held_while_pending_or_running", &[]),
    ("unique_key_after_finish_period", &[Need::CallerClock]),
    ("unique_key_in_batches", &[]),
    ("retry_is_refused_while_another_job_holds_the_key", &[]),
    ("unique_key_race_has_one_winner", &[]),
    ("peers_race_for_a_unique_key", &[Need::Peers]),
    ("paused_types_are_not_claimed", &[]),
    ("pause_is_seen_by_peers", &[Need::Peers]),
    ("pause_survives_reopen", &[Need::Peers, Need::Persistent]),
    ("cancel_pending_by_selector", &[]),
    ("retry_failed_by_selector", &[]),
    (
        "sweep_lock_has_one_holder_until_it_expires",
        &[Need::CallerClock],
    ),
    (
        "sweep_lock_is_shared_by_peers",
        &[Need::Peers, Need::CallerClock],
    ),
];

/// Why `case` cannot run on `fixture`, or `None` when it runs.
///
/// # Panics
/// When `case` is not in [`CASES`].
pub fn skip_reason(case: &str, fixture: &Fixture) -> Option<String> {
    let needs = CASES
        .iter()
        .find(|(name, _)| *name == case)
        .unwrap_or_else(|| panic!("conformance case {case} is not listed in CASES"))
        .1;
    let caps = fixture.store.capabilities();
    needs
        .iter()
        .find_map(|n| n.missing(caps, fixture.has_peer()))
        .map(|why| format!("the store {why}"))
}

/// The summary of a run: checks that `cases` (the macro's list) is exactly
/// [`CASES`], and returns the report the macro's `conformance_summary`
/// test prints and writes.
///
/// # Panics
/// When the lists differ.
pub fn summary(name: &str, cases: &[&str], fixture: &Fixture) -> String {
    let listed: Vec<&str> = CASES.iter().map(|(n, _)| *n).collect();
    let mut a = listed.clone();
    let mut b = cases.to_vec();
    a.sort_unstable();
    b.sort_unstable();
    assert_eq!(a, b, "the macro's case list and CASES differ");
    let skipped: Vec<(&str, String)> = listed
        .iter()
        .filter_map(|c| skip_reason(c, fixture).map(|why| (*c, why)))
        .collect();
    let mut out = format!(
        "conformance {name}: {} of {} cases ran, {} skipped\n",
        listed.len() - skipped.len(),
        listed.len(),
        skipped.len()
    );
    for (case, why) in skipped {
        out.push_str(&format!("  skipped {case}: {why}\n"));
    }
    out
}

/// Runs every conformance case as its own `#[tokio::test]`, plus a
/// `conformance_summary` test. The arguments: a name for the run (used in
/// the summary's file name) and a closure returning a future of a
/// [`Fixture`] with a fresh store.
#[macro_export]
macro_rules! conformance_tests {
    ($name:expr, $factory:expr) => {
        $crate::conformance_tests!(@run $name, $factory;
            store: [
                create_then_get_round_trips,
                create_duplicate_is_already_exists,
                get_unknown_is_not_found,
                create_batch_stores_all,
                create_batch_failure_reports_the_stored_prefix,
                claim_on_empty_store_returns_none,
                claim_is_fifo_by_id,
                claim_prefers_higher_priority,
                claim_filters_by_type,
                claim_skips_jobs_not_yet_due,
                claim_skips_jobs_not_yet_due_by_server_time,
                claim_sets_running_fields,
                claim_sets_running_fields_by_server_time,
                claimed_job_is_not_claimed_twice,
                claim_batch_takes_up_to_max_in_claim_order,
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
                type_stats_count_per_type_and_status,
                delete_finished_job,
                delete_requires_finished_status,
                delete_with_wrong_status_conflicts,
                finished_before_lists_only_old_finished_jobs,
                delete_finished_before_deletes_old_finished_jobs_only,
                unknown_fields_survive_the_store,
                nul_characters_survive_every_write,
                subscribe_sees_own_changes_in_order,
                subscriber_that_falls_behind_gets_resynced,
                recover_requeues_job_with_expired_lease,
                recover_judges_leases_by_the_callers_clock,
                recover_requeues_expired_lease_by_server_time,
                recover_fails_job_with_spent_retries,
                recover_spares_registered_workers,
                recover_spares_registered_workers_by_server_time,
                recover_requeues_jobs_of_unregistered_worker,
                heartbeat_reports_jobs_no_longer_held,
                heartbeat_of_unregistered_worker_is_invalid,
                workers_lists_live_and_stopped_workers,
                concurrent_claimers_take_each_job_once,
                concurrent_transitions_have_one_winner,
                concurrent_creates_of_one_id_have_one_winner,
                checkpoint_merges_and_renews_the_lease,
                checkpoint_is_fenced_by_attempt,
                checkpoints_survive_retry_recovery_and_failure,
                unique_key_is_held_while_pending_or_running,
                unique_key_after_finish_period,
                unique_key_in_batches,
                retry_is_refused_while_another_job_holds_the_key,
                unique_key_race_has_one_winner,
                paused_types_are_not_claimed,
                cancel_pending_by_selector,
                retry_failed_by_selector,
                sweep_lock_has_one_holder_until_it_expires,
            ],
            fixture: [
                peers_claim_each_job_once,
                peer_changes_arrive_as_external,
                reopen_keeps_every_job,
                dead_instance_worker_is_recovered_by_a_peer,
                opening_a_peer_respects_the_callers_leases,
                peers_race_for_a_unique_key,
                pause_is_seen_by_peers,
                pause_survives_reopen,
                sweep_lock_is_shared_by_peers,
            ]
        );
    };
    (@run $name:expr, $factory:expr; store: [$($case:ident),* $(,)?], fixture: [$($fcase:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[allow(clippy::print_stderr)]
            async fn $case() {
                let fixture: $crate::conformance::Fixture = ($factory)().await;
                if let Some(why) = $crate::conformance::skip_reason(stringify!($case), &fixture) {
                    eprintln!("skipped {}: {why}", stringify!($case));
                    return;
                }
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
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[allow(clippy::print_stderr)]
            async fn $fcase() {
                let fixture: $crate::conformance::Fixture = ($factory)().await;
                if let Some(why) = $crate::conformance::skip_reason(stringify!($fcase), &fixture) {
                    eprintln!("skipped {}: {why}", stringify!($fcase));
                    return;
                }
                ::tokio::time::timeout(
                    ::std::time::Duration::from_secs(120),
                    $crate::conformance::$fcase(fixture),
                )
                .await
                .expect(concat!("conformance case ", stringify!($fcase), " timed out"));
            }
        )*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[allow(clippy::print_stdout)]
        async fn conformance_summary() {
            let fixture: $crate::conformance::Fixture = ($factory)().await;
            let report = $crate::conformance::summary(
                $name,
                &[$(stringify!($case),)* $(stringify!($fcase),)*],
                &fixture,
            );
            print!("{report}");
            let path = ::std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("conformance-{}.txt", $name));
            ::std::fs::write(&path, &report).expect("write the conformance summary");
        }
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

/// A failed batch reports exactly how many jobs, from its start, it stored
/// (a transactional backend: none; a filesystem: those before the failing
/// one); the others are not stored and the existing job is untouched.
pub async fn create_batch_failure_reports_the_stored_prefix(store: Arc<dyn JobStore>) {
    let existing = pending("t");
    store.create(&existing).await.unwrap();
    let batch = vec![pending("t"), pending("t"), existing.clone(), pending("t")];
    let err = store.create_batch(&batch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    let stored = err
        .batch_stored()
        .expect("a create_batch error says how many jobs it stored");
    assert!(stored <= 2, "stored {stored} jobs, but job 3 of 4 is taken");
    for (i, job) in batch.iter().enumerate() {
        if job.id == existing.id {
            continue;
        }
        let present = store.get_opt(&job.id).await.unwrap();
        if i < stored {
            assert_eq!(present.as_ref(), Some(job), "job {i} of the stored prefix");
        } else {
            assert!(present.is_none(), "job {i} is after the stored prefix");
        }
    }
    assert_eq!(store.get(&existing.id).await.unwrap(), existing);
    assert_eq!(
        store.count(JobStatus::Pending).await.unwrap(),
        1 + stored as u64
    );
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

/// With a server clock, due-ness follows the server's time whatever the
/// caller's `now` says.
pub async fn claim_skips_jobs_not_yet_due_by_server_time(store: Arc<dyn JobStore>) {
    let mut later = pending("t");
    later.run_at = Some(Timestamp::now().add(Duration::from_millis(1500)));
    store.create(&later).await.unwrap();
    // A caller whose clock runs an hour ahead does not make it due.
    let ahead = Timestamp::now().add(Duration::from_secs(3600));
    let req = claim_req(TypeFilter::Any, "w", ahead);
    assert!(store.claim(&req).await.unwrap().is_none());
    // A caller whose clock is a year behind still sees it due once the
    // server's time passes runAt.
    let behind = claim_req(TypeFilter::Any, "w", T0);
    let got = wait_for(Duration::from_secs(20), || async {
        store.claim(&behind).await.unwrap()
    })
    .await;
    assert_eq!(got.id, later.id);
    assert!(Timestamp::now() >= later.run_at.unwrap());
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

/// With a server clock, a claim's `startedAt` and lease come from the
/// server's time, not the caller's.
pub async fn claim_sets_running_fields_by_server_time(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let before = Timestamp::now().sub(Duration::from_secs(5));
    let running = store
        .claim(&claim_req(TypeFilter::Any, "worker-7", T0))
        .await
        .unwrap()
        .unwrap();
    let after = Timestamp::now().add(Duration::from_secs(5));
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.attempt, 1);
    let started = running.started_at.unwrap();
    assert!(before <= started && started <= after, "startedAt {started}");
    let lease = running.lease_expires_at.unwrap();
    assert!(
        before.add(LEASE) <= lease && lease <= after.add(LEASE),
        "leaseExpiresAt {lease}"
    );
    assert_eq!(store.get(&job.id).await.unwrap(), running);
}

/// A running job is not claimed again.
pub async fn claimed_job_is_not_claimed_twice(store: Arc<dyn JobStore>) {
    store.create(&pending("t")).await.unwrap();
    assert!(claim(&*store, "w1").await.is_some());
    assert!(claim(&*store, "w2").await.is_none());
}

/// `claim_batch` takes up to `max` due jobs in claim order, each running
/// at attempt 1, and fewer (then none) when fewer are due.
pub async fn claim_batch_takes_up_to_max_in_claim_order(store: Arc<dyn JobStore>) {
    let mut jobs: Vec<Job> = (0..5).map(|_| pending("t")).collect();
    jobs[3].priority = 2;
    let mut later = pending("t");
    later.run_at = Some(Timestamp::now().add(Duration::from_secs(3600)));
    let other = pending("other");
    for j in jobs.iter().chain([&later, &other]) {
        store.create(j).await.unwrap();
    }
    let types = TypeFilter::one(JobType::parse("t").unwrap());
    let req = claim_req(types, "w", at(1));
    assert!(store.claim_batch(&req, 0).await.unwrap().is_empty());
    let first = store.claim_batch(&req, 3).await.unwrap();
    let ids: Vec<&JobId> = first.iter().map(|j| &j.id).collect();
    assert_eq!(ids, [&jobs[3].id, &jobs[0].id, &jobs[1].id]);
    for j in &first {
        assert_eq!(j.status, JobStatus::Running);
        assert_eq!(j.attempt, 1);
        assert_eq!(j.worker_id.as_deref(), Some("w"));
        assert_eq!(&store.get(&j.id).await.unwrap(), j);
    }
    let rest = store.claim_batch(&req, 10).await.unwrap();
    let ids: Vec<&JobId> = rest.iter().map(|j| &j.id).collect();
    assert_eq!(ids, [&jobs[2].id, &jobs[4].id]);
    assert!(store.claim_batch(&req, 10).await.unwrap().is_empty());
    assert_eq!(
        store.get(&later.id).await.unwrap().status,
        JobStatus::Pending
    );
    assert_eq!(
        store.get(&other.id).await.unwrap().status,
        JobStatus::Pending
    );
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

/// Per-type stats count each type's jobs per status.
pub async fn type_stats_count_per_type_and_status(store: Arc<dyn JobStore>) {
    assert!(store.type_stats().await.unwrap().is_empty());
    let a1 = pending("alpha");
    let a2 = pending("alpha");
    let b = pending("beta");
    for j in [&a1, &a2, &b] {
        store.create(j).await.unwrap();
    }
    let running = store
        .claim(&claim_req(TypeFilter::one(b.job_type.clone()), "w", at(1)))
        .await
        .unwrap()
        .unwrap();
    let done = finished(running, JobStatus::Complete, at(2));
    store.transition(Expect::running(1), &done).await.unwrap();
    let cancelled = finished(a2.clone(), JobStatus::Cancelled, at(2));
    store
        .transition(Expect::status(JobStatus::Pending), &cancelled)
        .await
        .unwrap();
    let stats = store.type_stats().await.unwrap();
    assert_eq!(stats.len(), 2);
    let alpha = &stats[&a1.job_type];
    assert_eq!((alpha.pending, alpha.cancelled, alpha.total()), (1, 1, 2));
    let beta = &stats[&b.job_type];
    assert_eq!((beta.complete, beta.total()), (1, 1));
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

/// The bulk retention delete removes old finished jobs only, at most
/// `limit`, oldest first, and announces each deletion.
pub async fn delete_finished_before_deletes_old_finished_jobs_only(store: Arc<dyn JobStore>) {
    let mut old = Vec::new();
    for (i, status) in [JobStatus::Complete, JobStatus::Failed, JobStatus::Cancelled]
        .into_iter()
        .enumerate()
    {
        let job = finished(pending("t"), status, at(10 + i as i64));
        store.create(&job).await.unwrap();
        old.push(job);
    }
    let recent = finished(pending("t"), JobStatus::Complete, at(500));
    let waiting = pending("t");
    store.create(&recent).await.unwrap();
    store.create(&waiting).await.unwrap();
    let running = create_claimed(&*store, "r").await;
    let mut rx = store.subscribe();
    assert_eq!(store.delete_finished_before(at(100), 2).await.unwrap(), 2);
    assert!(store.get_opt(&old[0].id).await.unwrap().is_none());
    assert!(store.get_opt(&old[1].id).await.unwrap().is_none());
    assert!(store.get_opt(&old[2].id).await.unwrap().is_some());
    assert_eq!(store.delete_finished_before(at(100), 10).await.unwrap(), 1);
    assert_eq!(store.delete_finished_before(at(100), 10).await.unwrap(), 0);
    for job in [&recent, &waiting] {
        assert_eq!(&store.get(&job.id).await.unwrap(), job);
    }
    assert_eq!(
        store.get(&running.id).await.unwrap().status,
        JobStatus::Running
    );
    let mut deleted = HashSet::new();
    while deleted.len() < 3 {
        let change = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("deletions are announced")
            .expect("channel open");
        if change.kind == ChangeKind::Deleted {
            deleted.insert(change.id.unwrap());
        }
    }
    let expected: HashSet<JobId> = old.iter().map(|j| j.id.clone()).collect();
    assert_eq!(deleted, expected);
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

/// A NUL character is text like any other (a model's answer or an error
/// message may hold one): in parameters, progress, a result and an error,
/// of jobs with and without a unique key, through claim, progress, retry,
/// failure and completion; and such a job never blocks the claims of
/// others.
pub async fn nul_characters_survive_every_write(store: Arc<dyn JobStore>) {
    let nul = "before\u{0}after";
    let mut first = pending("t");
    first.params.insert("text".into(), json!(nul));
    let mut keyed = NewJob::custom("t", "u1", json!({ "text": nul }))
        .unwrap()
        .unique_key("nul-key")
        // Long enough to hold by any clock (a server's is not the suite's).
        .unique_after_finish(Duration::from_secs(10 * 365 * 86_400))
        .into_job(JobId::generate_at(T0), T0, 3)
        .unwrap();
    keyed.params.insert("more".into(), json!([nul]));
    store.create(&first).await.unwrap();
    store.create(&keyed).await.unwrap();
    let a = claim(&*store, "w")
        .await
        .expect("a job with NUL is claimed");
    let b = claim(&*store, "w").await.expect("and so is the next");
    for running in [a, b] {
        assert_eq!(running.params["text"], json!(nul));
        let mut p = running.clone();
        p.progress = Some(json!({ "stage": nul }));
        store.update_running(&p).await.unwrap();
        let mut failed = finished(p.clone(), JobStatus::Failed, at(2));
        failed.error = Some(format!("the model said {nul}"));
        store.transition(Expect::running(1), &failed).await.unwrap();
        assert_eq!(store.get(&running.id).await.unwrap(), failed);
        let retried = rules::retried(failed.clone());
        store
            .transition(Expect::status(JobStatus::Failed), &retried)
            .await
            .unwrap();
    }
    for _ in 0..2 {
        let running = claim(&*store, "w")
            .await
            .expect("retried jobs are claimed again");
        assert_eq!(running.attempt, 2);
        assert!(running.progress.is_none(), "{:?}", running.progress);
        let mut done = finished(running.clone(), JobStatus::Complete, at(3));
        done.result = Some(json!({ "answer": nul }));
        store.transition(Expect::running(2), &done).await.unwrap();
        assert_eq!(store.get(&running.id).await.unwrap(), done);
    }
    // The finished keyed job still holds its key (its window is ten years).
    let again = NewJob::custom("t", "u1", json!({}))
        .unwrap()
        .unique_key("nul-key")
        .into_job(JobId::generate_at(at(4)), at(4), 3)
        .unwrap();
    let err = store.create(&again).await.unwrap_err();
    assert!(matches!(err, crate::Error::UniqueKeyTaken { .. }), "{err}");
    assert_eq!(store.stats().await.unwrap().complete, 2);
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

/// A subscriber that falls further behind than the channel holds gets a
/// `Resynced` change saying how many it missed, then the changes after.
pub async fn subscriber_that_falls_behind_gets_resynced(store: Arc<dyn JobStore>) {
    let mut rx = store.subscribe();
    let jobs: Vec<Job> = (0..CHANGE_CHANNEL_CAPACITY + 50)
        .map(|_| pending("t"))
        .collect();
    for chunk in jobs.chunks(1000) {
        store.create_batch(chunk).await.unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a change arrives")
        .expect("channel open");
    assert_eq!(first.kind, ChangeKind::Resynced, "{first:?}");
    assert!(first.missed > 0, "{first:?}");
    let next = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("changes go on after the resync")
        .expect("channel open");
    assert_ne!(next.kind, ChangeKind::Resynced);
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

/// Leases are judged by the caller's clock only: a job leased at the
/// suite's "now" (a year before the wall clock) is alive for a caller at
/// that time, however late the wall clock is.
pub async fn recover_judges_leases_by_the_callers_clock(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    assert!(
        Timestamp::now() > at(1).add(LEASE),
        "the wall clock is past the lease"
    );
    let report = store.recover(at(1).add(LEASE)).await.unwrap();
    assert!(
        report.requeued.is_empty() && report.failed.is_empty(),
        "{report:?}"
    );
    assert_eq!(&store.get(&running.id).await.unwrap(), &running);
}

/// With a server clock, a lease expires by the server's time whatever the
/// caller's `now` says: a job of an unregistered worker with a short lease
/// is recovered once the server's time passes it, and not before.
pub async fn recover_requeues_expired_lease_by_server_time(store: Arc<dyn JobStore>) {
    let job = pending("t");
    store.create(&job).await.unwrap();
    let mut req = claim_req(TypeFilter::Any, "gone", T0);
    req.lease = Duration::from_millis(1500);
    let running = store.claim(&req).await.unwrap().unwrap();
    // A caller far in the future does not expire the lease early.
    let ahead = Timestamp::now().add(Duration::from_secs(3600));
    let report = store.recover(ahead).await.unwrap();
    if Timestamp::now() < running.lease_expires_at.unwrap() {
        assert!(report.requeued.is_empty(), "{report:?}");
    }
    let report = wait_for(Duration::from_secs(20), || async {
        let r = store.recover(T0).await.unwrap();
        (!r.requeued.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(report.requeued, std::slice::from_ref(&job.id));
    let back = store.get(&job.id).await.unwrap();
    assert_eq!((back.status, back.retry_count), (JobStatus::Pending, 1));
}

/// A dead worker's job with no retries left becomes failed.
pub async fn recover_fails_job_with_spent_retries(store: Arc<dyn JobStore>) {
    let mut job = pending("t");
    job.max_retries = 0;
    store.create(&job).await.unwrap();
    let worker = WorkerInfo {
        id: "w".into(),
        lease: LEASE,
    };
    store.register_worker(&worker).await.unwrap();
    claim(&*store, "w").await.unwrap();
    store.unregister_worker("w").await.unwrap();
    let report = store.recover(at(1000)).await.unwrap();
    assert_eq!(report.failed, [job.id.clone()]);
    let back = store.get(&job.id).await.unwrap();
    assert_eq!(back.status, JobStatus::Failed);
    assert!(back.completed_at.is_some());
    if !store.capabilities().server_clock {
        assert_eq!(back.completed_at, Some(at(1000)));
    }
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
    let lost = store
        .heartbeat(&beat("alive", at(100), &[&running]))
        .await
        .unwrap();
    assert!(lost.is_empty(), "{lost:?}");
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

/// With a server clock, a registered worker's heartbeats keep its job's
/// lease ahead of the server's time, and its job is never recovered.
pub async fn recover_spares_registered_workers_by_server_time(store: Arc<dyn JobStore>) {
    let worker = WorkerInfo {
        id: "alive".into(),
        lease: Duration::from_millis(1500),
    };
    store.register_worker(&worker).await.unwrap();
    store.create(&pending("t")).await.unwrap();
    let mut req = claim_req(TypeFilter::Any, "alive", T0);
    req.lease = worker.lease;
    let running = store.claim(&req).await.unwrap().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < deadline {
        let lost = store
            .heartbeat(&beat("alive", T0, &[&running]))
            .await
            .unwrap();
        assert!(lost.is_empty(), "{lost:?}");
        let report = store.recover(T0).await.unwrap();
        assert!(
            report.requeued.is_empty() && report.failed.is_empty(),
            "{report:?}"
        );
        let leased = store.get(&running.id).await.unwrap();
        assert!(leased.lease_expires_at.unwrap() > Timestamp::now().sub(Duration::from_secs(1)));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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

/// A heartbeat returns the held jobs the store no longer holds for the
/// worker at that attempt: cancelled, re-queued and re-claimed, deleted,
/// or held at another attempt; never the jobs it still holds.
pub async fn heartbeat_reports_jobs_no_longer_held(store: Arc<dyn JobStore>) {
    let worker = WorkerInfo {
        id: "w".into(),
        lease: LEASE,
    };
    store.register_worker(&worker).await.unwrap();
    let jobs: Vec<Job> = (0..4).map(|_| pending("t")).collect();
    store.create_batch(&jobs).await.unwrap();
    let held: Vec<Job> = store
        .claim_batch(&claim_req(TypeFilter::Any, "w", at(1)), 4)
        .await
        .unwrap();
    assert_eq!(held.len(), 4);
    let [kept, cancelled, requeued, deleted] = [&held[0], &held[1], &held[2], &held[3]];
    let c = finished(cancelled.clone(), JobStatus::Cancelled, at(2));
    store.transition(Expect::running(1), &c).await.unwrap();
    let mut r = requeued.clone();
    r.status = JobStatus::Pending;
    r.worker_id = None;
    store.transition(Expect::running(1), &r).await.unwrap();
    let again = store
        .claim(&claim_req(TypeFilter::Any, "other", at(3)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((&again.id, again.attempt), (&requeued.id, 2));
    let d = finished(deleted.clone(), JobStatus::Complete, at(2));
    store.transition(Expect::running(1), &d).await.unwrap();
    store
        .delete(&deleted.id, Expect::status(JobStatus::Complete))
        .await
        .unwrap();
    let mut b = beat("w", at(4), &held.iter().collect::<Vec<_>>());
    b.held.push((kept.id.clone(), 7));
    let mut lost = store.heartbeat(&b).await.unwrap();
    lost.sort_by(|x, y| (&x.id, x.attempt).cmp(&(&y.id, y.attempt)));
    let mut expected = vec![
        (cancelled.id.clone(), 1, Some(JobStatus::Cancelled)),
        (requeued.id.clone(), 1, Some(JobStatus::Running)),
        (deleted.id.clone(), 1, None),
        (kept.id.clone(), 7, Some(JobStatus::Running)),
    ];
    expected.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
    let got: Vec<(JobId, u32, Option<JobStatus>)> = lost
        .iter()
        .map(|l| (l.id.clone(), l.attempt, l.status))
        .collect();
    assert_eq!(got, expected);
    assert!(lost
        .iter()
        .find(|l| l.id == cancelled.id)
        .unwrap()
        .cancelled());
    let kept_now = store.get(&kept.id).await.unwrap();
    assert_eq!((kept_now.status, kept_now.attempt), (JobStatus::Running, 1));
}

/// A heartbeat of a worker that is not registered is invalid input.
pub async fn heartbeat_of_unregistered_worker_is_invalid(store: Arc<dyn JobStore>) {
    assert_eq!(
        kind(store.heartbeat(&beat("nobody", at(1), &[])).await),
        ErrorKind::InvalidInput
    );
}

/// `workers` lists registered workers as alive and, while the store keeps
/// them, unregistered ones as dead.
pub async fn workers_lists_live_and_stopped_workers(store: Arc<dyn JobStore>) {
    for id in ["wa", "wb"] {
        let info = WorkerInfo {
            id: id.into(),
            lease: LEASE,
        };
        store.register_worker(&info).await.unwrap();
    }
    store.unregister_worker("wb").await.unwrap();
    let workers = store.workers().await.unwrap();
    let ids: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "in id order");
    let a = workers.iter().find(|w| w.id == "wa").expect("wa is listed");
    assert!(a.alive);
    assert_eq!(a.lease, LEASE);
    if let Some(b) = workers.iter().find(|w| w.id == "wb") {
        assert!(!b.alive, "{b:?}");
    }
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

/// Creates of one id racing, in statuses a backend may keep apart (pending
/// and finished): exactly one is stored, the others are `AlreadyExists`,
/// and the id reads back as the winner. Repeated for many ids, since the
/// window is narrow.
pub async fn concurrent_creates_of_one_id_have_one_winner(store: Arc<dyn JobStore>) {
    for round in 0..40 {
        let job = pending("t");
        let statuses = [
            JobStatus::Pending,
            JobStatus::Complete,
            JobStatus::Failed,
            JobStatus::Cancelled,
        ];
        let mut tasks = Vec::new();
        for (i, status) in statuses.into_iter().enumerate() {
            let store = Arc::clone(&store);
            let mut mine = match status {
                JobStatus::Pending => job.clone(),
                done => finished(job.clone(), done, at(2)),
            };
            mine.user_id = format!("creator-{round}-{i}");
            tasks.push(tokio::spawn(async move {
                store.create(&mine).await.map(|()| mine)
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            match t.await.unwrap() {
                Ok(mine) => winners.push(mine),
                Err(e) => assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} creates of one id stored",
            winners.len()
        );
        assert_eq!(store.get(&job.id).await.unwrap(), winners[0]);
        let stats = store.stats().await.unwrap();
        assert_eq!(stats.total(), round + 1, "round {round}: {stats:?}");
    }
}

/// Two instances over the same data claim concurrently: each job once.
pub async fn peers_claim_each_job_once(fixture: Fixture) {
    let a = Arc::clone(&fixture.store);
    let b = fixture.open_peer().await;
    let jobs: Vec<Job> = (0..300).map(|_| pending("t")).collect();
    a.create_batch(&jobs).await.unwrap();
    let mut tasks = Vec::new();
    for (n, store) in [a, b].into_iter().enumerate() {
        for w in 0..2 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let worker = format!("p{n}-w{w}");
                let mut mine = Vec::new();
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
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: HashSet<&JobId> = all.iter().collect();
    assert_eq!((all.len(), distinct.len()), (300, 300));
    // The other instance's last completions reach this one's counts
    // through its notifications.
    wait_for(Duration::from_secs(20), || async {
        let n = fixture.store.count(JobStatus::Complete).await.unwrap();
        (n == 300).then_some(())
    })
    .await;
}

/// Changes made through one instance reach another instance's subscribers
/// as `External` changes, in order.
pub async fn peer_changes_arrive_as_external(fixture: Fixture) {
    let b = fixture.open_peer().await;
    let mut rx = b.subscribe();
    let a = &fixture.store;
    let running = create_claimed(&**a, "t").await;
    let done = finished(running.clone(), JobStatus::Complete, at(2));
    a.transition(Expect::running(1), &done).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.last() != Some(&JobStatus::Complete) {
        let change = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .expect("the peer sees the changes")
            .expect("channel open");
        if change.id.as_ref() == Some(&running.id) {
            assert_eq!(change.origin, ChangeOrigin::External, "{change:?}");
            seen.push(change.status.unwrap());
        }
    }
    let mut order = seen.clone();
    order.dedup();
    // Fast changes may be seen coalesced, never out of order.
    let rank = |s: &JobStatus| match s {
        JobStatus::Pending => 0,
        JobStatus::Running => 1,
        _ => 2,
    };
    assert!(
        order.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
        "{seen:?}"
    );
    assert_eq!(b.get(&running.id).await.unwrap(), done);
}

/// Everything a closed instance wrote is there, unchanged, for an instance
/// opened afterwards: every status, unknown fields included.
pub async fn reopen_keeps_every_job(fixture: Fixture) {
    let (store, open_peer, _guard) = fixture.split();
    let mut written = Vec::new();
    for status in JobStatus::ALL {
        let mut job = pending("t");
        job.params
            .insert("fromTheFuture".into(), json!({"v": [1, "two"]}));
        if status != JobStatus::Pending {
            job.status = status;
            job.attempt = 1;
            job.started_at = Some(at(1));
        }
        if status == JobStatus::Running {
            job.worker_id = Some("w".into());
            job.lease_expires_at = Some(at(1).add(LEASE));
        }
        if status.is_finished() {
            job.completed_at = Some(at(2));
            job.result = Some(json!({"n": 1}));
        }
        store.create(&job).await.unwrap();
        written.push(job);
    }
    drop(store);
    let reopened = open_peer().await;
    for job in &written {
        assert_eq!(&reopened.get(&job.id).await.unwrap(), job);
    }
    assert_eq!(
        reopened.stats().await.unwrap().total(),
        written.len() as u64
    );
}

/// When an instance goes away (its process dies), a peer recovers its
/// registered worker's running job at once, without waiting for the lease.
pub async fn dead_instance_worker_is_recovered_by_a_peer(fixture: Fixture) {
    let (store, open_peer, _guard) = fixture.split();
    let worker = WorkerInfo {
        id: "mortal".into(),
        lease: Duration::from_secs(3600),
    };
    store.register_worker(&worker).await.unwrap();
    store.create(&pending("t")).await.unwrap();
    let mut req = claim_req(TypeFilter::Any, "mortal", at(1));
    req.lease = worker.lease;
    let running = store.claim(&req).await.unwrap().unwrap();
    let b = open_peer().await;
    let report = b.recover(at(2)).await.unwrap();
    assert!(report.requeued.is_empty(), "its worker lives: {report:?}");
    drop(store);
    let report = wait_for(Duration::from_secs(20), || async {
        let r = b.recover(at(2)).await.unwrap();
        (!r.requeued.is_empty()).then_some(r)
    })
    .await;
    assert_eq!(report.requeued, std::slice::from_ref(&running.id));
    let back = b.get(&running.id).await.unwrap();
    assert_eq!((back.status, back.retry_count), (JobStatus::Pending, 1));
}

/// Opening another instance (whatever the backend does on its own at open)
/// never recovers a job whose lease is valid by the caller's clock, even
/// when the wall clock is far past it.
pub async fn opening_a_peer_respects_the_callers_leases(fixture: Fixture) {
    let running = create_claimed(&*fixture.store, "t").await;
    assert!(Timestamp::now() > running.lease_expires_at.unwrap());
    let b = fixture.open_peer().await;
    assert_eq!(b.get(&running.id).await.unwrap(), running);
    assert_eq!(fixture.store.get(&running.id).await.unwrap(), running);
}

fn beat(worker: &str, now: Timestamp, held: &[&Job]) -> Heartbeat {
    Heartbeat {
        worker_id: worker.to_owned(),
        now,
        held: held.iter().map(|j| (j.id.clone(), j.attempt)).collect(),
    }
}

/// Polls `f` until it returns `Some`, failing after `limit`.
async fn wait_for<T, F, Fut>(limit: Duration, mut f: F) -> T
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
            "condition not reached within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------------------
// Checkpoints, unique keys, paused types, bulk operations, the sweep lease.

fn checkpoint_req(job: &Job, cp: Checkpoint, now: Timestamp) -> CheckpointRequest {
    CheckpointRequest {
        id: job.id.clone(),
        attempt: job.attempt,
        checkpoint: cp,
        progress: None,
        now,
        lease: LEASE,
    }
}

fn keyed(ty: &str, key: &str, created: Timestamp) -> Job {
    let mut job = pending_for(ty, "u1", created);
    job.unique_key = Some(key.to_owned());
    job
}

fn taken_by(r: Result<()>) -> JobId {
    match r {
        Ok(()) => panic!("expected the unique key to be taken"),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
            e.unique_holder()
                .unwrap_or_else(|| panic!("{e} names no holder"))
                .clone()
        }
    }
}

/// A checkpoint merges units and cursors by the model's rules, renews the
/// lease like a heartbeat, and returns the job as stored.
pub async fn checkpoint_merges_and_renews_the_lease(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let cp = Checkpoint::unit_done("a").with_done("c");
    let mut cp = cp;
    cp.cursors.insert("b".into(), UnitCursor::at(2, 9));
    let mut req = checkpoint_req(&running, cp, at(10));
    req.progress = Some(json!({"percentage": 40}));
    let written = store.checkpoint(&req).await.unwrap();
    assert_eq!(store.get(&running.id).await.unwrap(), written);
    assert_eq!(written.completed_units, ["a", "c"]);
    assert_eq!(written.unit_cursors["b"].next, 2);
    assert_eq!(written.progress, Some(json!({"percentage": 40})));
    assert_eq!(written.lease_expires_at, Some(at(10).add(LEASE)));
    assert_eq!((written.status, written.attempt), (JobStatus::Running, 1));
    // A cursor never moves back; completing its unit removes it.
    let back = store
        .checkpoint(&checkpoint_req(
            &running,
            Checkpoint::cursor("b", UnitCursor::at(1, 9)),
            at(11),
        ))
        .await
        .unwrap();
    assert_eq!(back.unit_cursors["b"].next, 2);
    assert_eq!(back.progress, Some(json!({"percentage": 40})), "kept");
    let done_b = store
        .checkpoint(&checkpoint_req(
            &running,
            Checkpoint::unit_done("b"),
            at(12),
        ))
        .await
        .unwrap();
    assert_eq!(done_b.completed_units, ["a", "b", "c"]);
    assert!(done_b.unit_cursors.is_empty());
    assert_eq!(store.get(&running.id).await.unwrap(), done_b);
}

/// A checkpoint is fenced: refused with `Conflict` (nothing written) for a
/// stale attempt or a job that is not running, `NotFound` for no job.
pub async fn checkpoint_is_fenced_by_attempt(store: Arc<dyn JobStore>) {
    let running = create_claimed(&*store, "t").await;
    let mut stale = checkpoint_req(&running, Checkpoint::unit_done("x"), at(2));
    stale.attempt = 7;
    assert_eq!(kind(store.checkpoint(&stale).await), ErrorKind::Conflict);
    assert_eq!(store.get(&running.id).await.unwrap(), running);
    let cancelled = finished(running.clone(), JobStatus::Cancelled, at(3));
    store
        .transition(Expect::running(1), &cancelled)
        .await
        .unwrap();
    let late = checkpoint_req(&running, Checkpoint::unit_done("x"), at(4));
    assert_eq!(kind(store.checkpoint(&late).await), ErrorKind::Conflict);
    assert_eq!(store.get(&running.id).await.unwrap(), cancelled);
    let waiting = pending("t");
    store.create(&waiting).await.unwrap();
    let on_pending = checkpoint_req(&waiting, Checkpoint::unit_done("x"), at(4));
    assert_eq!(
        kind(store.checkpoint(&on_pending).await),
        ErrorKind::Conflict
    );
    assert_eq!(store.get(&waiting.id).await.unwrap(), waiting);
    let mut nobody = on_pending;
    nobody.id = JobId::generate();
    assert_eq!(kind(store.checkpoint(&nobody).await), ErrorKind::NotFound);
}

/// Checkpoints survive a requeue, a re-claim, recovery after the worker
/// died, and a final failure; a new attempt starts with empty progress.
pub async fn checkpoints_survive_retry_recovery_and_failure(store: Arc<dyn JobStore>) {
    let mut job = pending("t");
    job.max_retries = 1;
    store.create(&job).await.unwrap();
    let worker = WorkerInfo {
        id: "mortal".into(),
        lease: LEASE,
    };
    store.register_worker(&worker).await.unwrap();
    let first = store
        .claim(&claim_req(TypeFilter::Any, "mortal", at(1)))
        .await
        .unwrap()
        .unwrap();
    let mut req = checkpoint_req(&first, Checkpoint::unit_done("a"), at(2));
    req.progress = Some(json!({"percentage": 75}));
    store.checkpoint(&req).await.unwrap();
    // The worker dies: recovery puts the job back with its checkpoint.
    store.unregister_worker("mortal").await.unwrap();
    let report = store.recover(at(3)).await.unwrap();
    assert_eq!(report.requeued, std::slice::from_ref(&job.id));
    let requeued = store.get(&job.id).await.unwrap();
    assert_eq!(requeued.completed_units, ["a"]);
    // The next attempt starts clean but sees the checkpoint.
    let second = claim(&*store, "w2").await.unwrap();
    assert_eq!(second.attempt, 2);
    assert_eq!(
        second.progress, None,
        "a new attempt starts with no progress"
    );
    assert_eq!(second.completed_units, ["a"]);
    store
        .checkpoint(&checkpoint_req(
            &second,
            Checkpoint::cursor("b", UnitCursor::at(3, 4)),
            at(4),
        ))
        .await
        .unwrap();
    let mut failed = store.get(&job.id).await.unwrap();
    failed.status = JobStatus::Failed;
    failed.completed_at = Some(at(5));
    store.transition(Expect::running(2), &failed).await.unwrap();
    let end = store.get(&job.id).await.unwrap();
    assert_eq!(end.completed_units, ["a"]);
    assert_eq!(end.unit_cursors["b"].next, 3);
    // A manual retry keeps them too, and its claim clears progress.
    store
        .transition(Expect::exactly(&end), &rules::retried(end.clone()))
        .await
        .unwrap();
    let third = claim(&*store, "w3").await.unwrap();
    assert_eq!(
        (third.attempt, third.progress.as_ref()),
        (3, None),
        "{third:?}"
    );
    assert_eq!(third.completed_units, ["a"]);
    assert_eq!(third.unit_cursors["b"].next, 3);
}

/// While a job holds its unique key (pending or running), creating another
/// job with the key fails naming the holder, and stores nothing; once the
/// holder finished, the key is free.
pub async fn unique_key_is_held_while_pending_or_running(store: Arc<dyn JobStore>) {
    let a = keyed("t", "doc-1", T0);
    store.create(&a).await.unwrap();
    let b = keyed("t", "doc-1", at(1));
    assert_eq!(taken_by(store.create(&b).await), a.id);
    assert_eq!(store.get_opt(&b.id).await.unwrap(), None);
    // Another key, or no key, is not affected.
    store.create(&keyed("t", "doc-2", at(1))).await.unwrap();
    store.create(&pending("t")).await.unwrap();
    let running = store
        .claim(&claim_req(TypeFilter::Any, "w", at(2)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(running.id, a.id);
    assert_eq!(taken_by(store.create(&b).await), a.id);
    let done = finished(running, JobStatus::Complete, at(3));
    store.transition(Expect::running(1), &done).await.unwrap();
    store.create(&b).await.unwrap();
    let c = keyed("t", "doc-1", at(4));
    assert_eq!(taken_by(store.create(&c).await), b.id);
}

/// With `uniqueAfterFinishMs` the key stays taken that long after the
/// holder finished (judged at the new job's `created`), and deleting the
/// holder frees it.
pub async fn unique_key_after_finish_period(store: Arc<dyn JobStore>) {
    let mut a = keyed("t", "import", T0);
    a.unique_after_finish_ms = Some(60_000);
    store.create(&a).await.unwrap();
    let cancelled = rules::cancelled(a.clone(), at(10));
    store
        .transition(Expect::exactly(&a), &cancelled)
        .await
        .unwrap();
    assert_eq!(
        taken_by(store.create(&keyed("t", "import", at(69))).await),
        a.id
    );
    store.create(&keyed("t", "import", at(71))).await.unwrap();
    // Deleting a holder within its period frees the key.
    let mut x = keyed("t", "other", T0);
    x.unique_after_finish_ms = Some(3_600_000);
    store.create(&x).await.unwrap();
    store
        .transition(Expect::exactly(&x), &rules::cancelled(x.clone(), at(1)))
        .await
        .unwrap();
    assert_eq!(
        taken_by(store.create(&keyed("t", "other", at(2))).await),
        x.id
    );
    store
        .delete(&x.id, Expect::status(JobStatus::Cancelled))
        .await
        .unwrap();
    store.create(&keyed("t", "other", at(3))).await.unwrap();
}

/// A batch whose job would take a held key (held before, or by an earlier
/// job of the same batch) fails naming the holder; the stored prefix is
/// exact as for any batch error.
pub async fn unique_key_in_batches(store: Arc<dyn JobStore>) {
    let held = keyed("t", "k1", T0);
    store.create(&held).await.unwrap();
    let batch = vec![pending("t"), keyed("t", "k1", at(1)), pending("t")];
    let err = store.create_batch(&batch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(err.unique_holder(), Some(&held.id));
    let stored = err.batch_stored().expect("a batch error");
    assert!(stored <= 1, "{stored}");
    assert_eq!(store.get_opt(&batch[1].id).await.unwrap(), None);
    let twice = vec![keyed("t", "k2", at(1)), keyed("t", "k2", at(1))];
    let err = store.create_batch(&twice).await.unwrap_err();
    assert_eq!(err.unique_holder(), Some(&twice[0].id));
    assert_eq!(store.get_opt(&twice[1].id).await.unwrap(), None);
}

/// A manual retry (failed → pending) of a keyed job is refused while
/// another job holds the key actively, and allowed once it does not.
pub async fn retry_is_refused_while_another_job_holds_the_key(store: Arc<dyn JobStore>) {
    let a = keyed("t", "k", T0);
    store.create(&a).await.unwrap();
    let running = claim(&*store, "w").await.unwrap();
    let failed = finished(running, JobStatus::Failed, at(2));
    store.transition(Expect::running(1), &failed).await.unwrap();
    let b = keyed("t", "k", at(3));
    store.create(&b).await.unwrap();
    let retry = rules::retried(failed.clone());
    assert_eq!(
        taken_by(store.transition(Expect::exactly(&failed), &retry).await),
        b.id
    );
    assert_eq!(store.get(&a.id).await.unwrap(), failed, "nothing written");
    store
        .transition(Expect::exactly(&b), &rules::cancelled(b.clone(), at(4)))
        .await
        .unwrap();
    store
        .transition(Expect::exactly(&failed), &retry)
        .await
        .unwrap();
    assert_eq!(
        taken_by(store.create(&keyed("t", "k", at(5))).await),
        a.id,
        "the retried job holds the key again"
    );
}

/// Sixteen tasks create sixteen jobs with one unique key at once: exactly
/// one is stored, the others name it.
pub async fn unique_key_race_has_one_winner(store: Arc<dyn JobStore>) {
    race_for_a_key(vec![Arc::clone(&store)], store).await;
}

async fn race_for_a_key(creators: Vec<Arc<dyn JobStore>>, reader: Arc<dyn JobStore>) {
    let mut tasks = Vec::new();
    for i in 0..16 {
        let store = Arc::clone(&creators[i % creators.len()]);
        tasks.push(tokio::spawn(async move {
            let job = keyed("t", "race", T0);
            let r = store.create(&job).await;
            (job.id, r)
        }));
    }
    let mut winners = Vec::new();
    let mut named = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, Ok(())) => winners.push(id),
            (_, r) => named.push(taken_by(r)),
        }
    }
    assert_eq!(winners.len(), 1, "one job for the key");
    assert!(named.iter().all(|h| *h == winners[0]), "{named:?}");
    wait_for(Duration::from_secs(20), || async {
        let n = reader.stats().await.unwrap().pending;
        (n == 1).then_some(())
    })
    .await;
}

/// Two instances over the same data race for one unique key: one job.
pub async fn peers_race_for_a_unique_key(fixture: Fixture) {
    let b = fixture.open_peer().await;
    race_for_a_key(
        vec![Arc::clone(&fixture.store), b],
        Arc::clone(&fixture.store),
    )
    .await;
}

/// Claims (`claim`, `claim_batch`, `peek_next`) skip paused types; running
/// jobs of the type are untouched; resuming makes them claimable again.
/// `paused_types` and `type_stats` show the set.
pub async fn paused_types_are_not_claimed(store: Arc<dyn JobStore>) {
    let ta = JobType::parse("alpha").unwrap();
    let a1 = pending("alpha");
    store.create(&a1).await.unwrap();
    let running_a = claim(&*store, "w").await.unwrap();
    let a2 = pending("alpha");
    let b = pending("beta");
    store.create(&a2).await.unwrap();
    store.create(&b).await.unwrap();
    assert!(store.set_paused(&ta, true).await.unwrap());
    assert!(!store.set_paused(&ta, true).await.unwrap(), "no change");
    let idle = JobType::parse("idle").unwrap();
    store.set_paused(&idle, true).await.unwrap();
    assert_eq!(
        store
            .paused_types()
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [ta.clone(), idle.clone()]
    );
    let stats = store.type_stats().await.unwrap();
    assert!(
        stats[&ta].paused && stats[&idle].paused && !stats[&JobType::parse("beta").unwrap()].paused
    );
    assert_eq!((stats[&ta].pending, stats[&ta].running), (1, 1));
    assert_eq!(stats[&idle].total(), 0);
    assert!(!store.stats().await.unwrap().paused);
    let peeked = store.peek_next(&TypeFilter::Any, at(1)).await.unwrap();
    assert_eq!(peeked.map(|j| j.id), Some(b.id.clone()));
    let batch = store
        .claim_batch(&claim_req(TypeFilter::Any, "w", at(1)), 10)
        .await
        .unwrap();
    assert_eq!(batch.iter().map(|j| &j.id).collect::<Vec<_>>(), [&b.id]);
    assert!(store
        .claim(&claim_req(TypeFilter::one(ta.clone()), "w", at(1)))
        .await
        .unwrap()
        .is_none());
    // The running job of the paused type finishes normally.
    let done = finished(running_a, JobStatus::Complete, at(2));
    store.transition(Expect::running(1), &done).await.unwrap();
    assert!(store.set_paused(&ta, false).await.unwrap());
    assert!(!store.set_paused(&ta, false).await.unwrap());
    assert_eq!(claim(&*store, "w").await.unwrap().id, a2.id);
    assert_eq!(
        store
            .paused_types()
            .await
            .unwrap()
            .into_iter()
            .collect::<Vec<_>>(),
        [idle]
    );
}

/// A pause made through one instance holds for claims of another at once,
/// and a resume through the other holds for the first.
pub async fn pause_is_seen_by_peers(fixture: Fixture) {
    let a = Arc::clone(&fixture.store);
    let b = fixture.open_peer().await;
    let t = JobType::parse("paused-across").unwrap();
    let job = pending("paused-across");
    a.create(&job).await.unwrap();
    assert!(a.set_paused(&t, true).await.unwrap());
    assert!(b.paused_types().await.unwrap().contains(&t));
    // B's index learns of the job by its notifications; the pause holds
    // from the start.
    for _ in 0..20 {
        assert!(b
            .claim(&claim_req(TypeFilter::Any, "wb", at(1)))
            .await
            .unwrap()
            .is_none());
        assert!(b
            .peek_next(&TypeFilter::Any, at(1))
            .await
            .unwrap()
            .is_none());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(b.set_paused(&t, false).await.unwrap());
    let got = a
        .claim(&claim_req(TypeFilter::Any, "wa", at(1)))
        .await
        .unwrap();
    assert_eq!(got.map(|j| j.id), Some(job.id));
}

/// The paused set survives its instance.
pub async fn pause_survives_reopen(fixture: Fixture) {
    let (store, open_peer, _guard) = fixture.split();
    let t = JobType::parse("kept-paused").unwrap();
    store.set_paused(&t, true).await.unwrap();
    store.create(&pending("kept-paused")).await.unwrap();
    drop(store);
    let reopened = open_peer().await;
    assert!(reopened.paused_types().await.unwrap().contains(&t));
    assert!(reopened
        .claim(&claim_req(TypeFilter::Any, "w", at(1)))
        .await
        .unwrap()
        .is_none());
}

/// `cancel_pending` cancels exactly the pending jobs matching the selector
/// and counts them; running and other jobs are untouched.
pub async fn cancel_pending_by_selector(store: Arc<dyn JobStore>) {
    let mut rx = store.subscribe();
    let running = create_claimed(&*store, "alpha").await;
    let mut mine = Vec::new();
    for (ty, user) in [
        ("alpha", "u1"),
        ("alpha", "u2"),
        ("beta", "u1"),
        ("alpha", "u1"),
    ] {
        let job = pending_for(ty, user, T0);
        store.create(&job).await.unwrap();
        mine.push(job);
    }
    let sel = JobSelector {
        job_type: Some(JobType::parse("alpha").unwrap()),
        user_id: Some("u1".into()),
    };
    assert_eq!(store.cancel_pending(&sel, at(5)).await.unwrap(), 2);
    for (i, job) in mine.iter().enumerate() {
        let now = store.get(&job.id).await.unwrap();
        let want = if i == 0 || i == 3 {
            JobStatus::Cancelled
        } else {
            JobStatus::Pending
        };
        assert_eq!(now.status, want, "job {i}");
        if want == JobStatus::Cancelled {
            assert_eq!(now.completed_at, Some(at(5)));
        }
    }
    assert_eq!(store.get(&running.id).await.unwrap(), running);
    assert_eq!(
        store
            .cancel_pending(&JobSelector::default(), at(6))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        store
            .cancel_pending(&JobSelector::default(), at(7))
            .await
            .unwrap(),
        0
    );
    let mut cancels = 0;
    while let Ok(Some(change)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        if change.kind == ChangeKind::Transition(Transition::CancelPending) {
            cancels += 1;
        }
        if cancels == 4 {
            break;
        }
    }
    assert_eq!(cancels, 4, "each cancel is announced");
}

/// `retry_failed` retries the failed jobs matching the selector (pending,
/// fresh budget, checkpoints kept) and counts them; a job whose unique key
/// another job holds stays failed and is not counted.
pub async fn retry_failed_by_selector(store: Arc<dyn JobStore>) {
    let mut failed = Vec::new();
    for (ty, key) in [("alpha", None), ("alpha", Some("k")), ("beta", None)] {
        let mut job = pending(ty);
        job.unique_key = key.map(str::to_owned);
        job.retry_count = 3;
        job.status = JobStatus::Failed;
        job.attempt = 1;
        job.completed_at = Some(at(1));
        job.completed_units = vec!["u".into()];
        store.create(&job).await.unwrap();
        failed.push(job);
    }
    let holder = keyed("alpha", "k", at(2));
    store.create(&holder).await.unwrap();
    let alpha = JobSelector::of_type(JobType::parse("alpha").unwrap());
    assert_eq!(store.retry_failed(&alpha).await.unwrap(), 1);
    let retried = store.get(&failed[0].id).await.unwrap();
    assert_eq!(
        (retried.status, retried.retry_count),
        (JobStatus::Pending, 0)
    );
    assert_eq!(retried.completed_units, ["u"]);
    assert_eq!(
        store.get(&failed[1].id).await.unwrap(),
        failed[1],
        "key held"
    );
    assert_eq!(store.get(&failed[2].id).await.unwrap(), failed[2], "beta");
    assert_eq!(
        store.retry_failed(&JobSelector::default()).await.unwrap(),
        1
    );
    assert_eq!(
        store.get(&failed[2].id).await.unwrap().status,
        JobStatus::Pending
    );
}

/// The sweep lease: one holder at a time until it expires (judged by the
/// caller's clock); its holder may renew it.
pub async fn sweep_lock_has_one_holder_until_it_expires(store: Arc<dyn JobStore>) {
    let ttl = Duration::from_secs(60);
    assert!(store.try_lock_sweep("h1", ttl, at(0)).await.unwrap());
    assert!(!store.try_lock_sweep("h2", ttl, at(30)).await.unwrap());
    assert!(
        store.try_lock_sweep("h1", ttl, at(30)).await.unwrap(),
        "renew"
    );
    assert!(!store.try_lock_sweep("h2", ttl, at(89)).await.unwrap());
    assert!(store.try_lock_sweep("h2", ttl, at(91)).await.unwrap());
    assert!(!store.try_lock_sweep("h1", ttl, at(92)).await.unwrap());
}

/// The sweep lease is shared by every instance over the same data.
pub async fn sweep_lock_is_shared_by_peers(fixture: Fixture) {
    let b = fixture.open_peer().await;
    let ttl = Duration::from_secs(60);
    assert!(fixture
        .store
        .try_lock_sweep("pa", ttl, at(0))
        .await
        .unwrap());
    assert!(!b.try_lock_sweep("pb", ttl, at(1)).await.unwrap());
    assert!(b.try_lock_sweep("pb", ttl, at(61)).await.unwrap());
    assert!(!fixture
        .store
        .try_lock_sweep("pa", ttl, at(62))
        .await
        .unwrap());
}
