//! Model-based property test: random sequences of queue operations issued
//! by several logical workers (create, claim, progress, complete, fail,
//! release, retry, cancel, cleanup, recover, register/unregister/heartbeat,
//! clock moves both ways, and reopening the directory) run against the
//! filesystem backend and against a small reference model. After every
//! step the observable state must agree: every job (`get`, field by field),
//! `list` under several filters, `stats`, and the claim order
//! (`poll_next_pending_job`).
//!
//! Cases: `PROPTEST_CASES` (default 1,000 in CI), or 100,000 with
//! `SEMIONT_JOBS_TORTURE=1` (`cargo xtask torture`). A shrunk failing case
//! is printed as a `Vec<Op>` literal; it becomes a test in `regressions`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use semiont_jobs_model::{
    Job, JobFilter, JobId, JobStatus, JobType, NewJob, QueueStats, RetryPolicy, Timestamp,
};
use semiont_jobs_queue::{ErrorKind, JobFailure, JobQueue, ManualClock};
use semiont_jobs_store::{Durability, TypeFilter};
use semiont_jobs_store_fs::{FsOptions, FsStore};
use serde_json::json;

/// The manual clock starts here (2001-09-09): far before the real time, so
/// a recovery pass at open (which uses the real clock for leases) always
/// finds leases of this test's clock expired, deterministically.
const T0: i64 = 1_000_000_000_000;
const LEASE: Duration = Duration::from_secs(30);
const RETENTION: Duration = Duration::from_secs(3600);
const MAX_RETRIES: u32 = 2;
const QUEUE_WORKER: &str = "q";
const WORKERS: [&str; 3] = ["w0", "w1", "w2"];
const TYPES: [&str; 3] = ["t0", "t1", "t2"];
const USERS: [&str; 2] = ["u0", "u1"];
const CLEANUP_AGES: [u64; 4] = [0, 1_000, 10_000, 3_600_000];
const UNKNOWN: &str = "job-never-created";

fn policy() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(8),
        jitter: 0.0,
    }
}

/// One step of a scenario. Small numbers index into fixed tables (workers,
/// types, users) or into the jobs created so far (modulo their count).
#[derive(Clone, Debug)]
pub enum Op {
    /// `create_job` of a custom job.
    Create {
        ty: u8,
        user: u8,
        max_retries: Option<u8>,
        priority: i8,
        delay_ms: Option<u32>,
    },
    /// `create_jobs` of `n` jobs.
    CreateBatch { n: u8, ty: u8 },
    /// `claim_next_job` by a worker, for any type, `t0`, or `t1`+`t2`.
    Claim { worker: u8, types: u8 },
    /// `update_job_status` to any status (pending, running, ...).
    SetStatus { job: u8, status: u8 },
    /// `update_job_progress_at` with the current (or a stale) attempt.
    Progress { job: u8, stale: bool, pct: u8 },
    /// `complete_job_at`.
    Complete { job: u8, stale: bool },
    /// `fail_job_at`, retryable or permanent.
    Fail {
        job: u8,
        stale: bool,
        retryable: bool,
    },
    /// `release_job`.
    Release { job: u8, stale: bool },
    /// `retry_job`.
    Retry { job: u8 },
    /// `cancel_job`.
    Cancel { job: u8 },
    /// `cleanup_jobs_older_than` one of [`CLEANUP_AGES`].
    Cleanup { age: u8 },
    /// `recover`.
    Recover,
    /// `register_worker`.
    Register { worker: u8 },
    /// `unregister_worker`.
    Unregister { worker: u8 },
    /// `heartbeat`.
    Heartbeat { worker: u8 },
    /// Moves the clock forward.
    Advance { ms: u32 },
    /// Moves the clock backwards (a clock step).
    ClockBack { ms: u32 },
    /// Drops the queue and its store and opens the directory again.
    Reopen,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let job = any::<u8>();
    prop_oneof![
        6 => (0u8..3, 0u8..2, proptest::option::of(0u8..3), -1i8..=1, proptest::option::weighted(0.2, 1u32..20_000))
            .prop_map(|(ty, user, max_retries, priority, delay_ms)| Op::Create { ty, user, max_retries, priority, delay_ms }),
        1 => (1u8..4, 0u8..3).prop_map(|(n, ty)| Op::CreateBatch { n, ty }),
        6 => (0u8..3, 0u8..3).prop_map(|(worker, types)| Op::Claim { worker, types }),
        2 => (job, 0u8..5).prop_map(|(job, status)| Op::SetStatus { job, status }),
        2 => (job, proptest::bool::weighted(0.2), 0u8..=100).prop_map(|(job, stale, pct)| Op::Progress { job, stale, pct }),
        3 => (job, proptest::bool::weighted(0.2)).prop_map(|(job, stale)| Op::Complete { job, stale }),
        3 => (job, proptest::bool::weighted(0.2), any::<bool>()).prop_map(|(job, stale, retryable)| Op::Fail { job, stale, retryable }),
        1 => (job, proptest::bool::weighted(0.2)).prop_map(|(job, stale)| Op::Release { job, stale }),
        2 => job.prop_map(|job| Op::Retry { job }),
        2 => job.prop_map(|job| Op::Cancel { job }),
        1 => (0u8..4).prop_map(|age| Op::Cleanup { age }),
        2 => Just(Op::Recover),
        2 => (0u8..3).prop_map(|worker| Op::Register { worker }),
        1 => (0u8..3).prop_map(|worker| Op::Unregister { worker }),
        1 => (0u8..3).prop_map(|worker| Op::Heartbeat { worker }),
        3 => prop_oneof![Just(500u32), Just(1_000), Just(4_000), Just(31_000), Just(3_600_001), 0u32..10_000]
            .prop_map(|ms| Op::Advance { ms }),
        1 => prop_oneof![Just(1_000u32), Just(40_000), 0u32..10_000].prop_map(|ms| Op::ClockBack { ms }),
        1 => Just(Op::Reopen),
    ]
}

/// What an operation returned, reduced to what both sides can produce.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Job(Box<Job>),
    Jobs(Vec<Job>),
    Claimed(Option<Box<Job>>),
    Count(u64),
    Recovered {
        requeued: Vec<JobId>,
        failed: Vec<JobId>,
    },
    Unit,
    Err(ErrorKind),
}

fn outcome_of_job(r: semiont_jobs_queue::Result<Job>) -> Outcome {
    match r {
        Ok(job) => Outcome::Job(Box::new(job)),
        Err(e) => Outcome::Err(e.kind()),
    }
}

fn outcome_of_unit(r: semiont_jobs_queue::Result<()>) -> Outcome {
    match r {
        Ok(()) => Outcome::Unit,
        Err(e) => Outcome::Err(e.kind()),
    }
}

/// What a dead worker's lock file says (`workers/<id>.lock`, not locked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WorkerFile {
    /// Written by `unregister_worker`.
    Stopped,
    /// Left behind by a store instance that went away while registered.
    Died,
}

/// The reference model: the queue's rules over a map of jobs, with the
/// worker-liveness rules of a store on one host.
#[derive(Debug, Default)]
pub struct Model {
    jobs: BTreeMap<JobId, Job>,
    /// Every id ever created, in creation order (deleted ones too).
    created: Vec<JobId>,
    /// Workers registered with the live store instance.
    registered: BTreeSet<String>,
    /// Unlocked worker files of dead workers.
    files: BTreeMap<String, WorkerFile>,
    now: i64,
    /// Jobs failed by the recovery pass at open, whose `completedAt` is the
    /// real time of that pass: adopted from the system under test.
    adopt_completed_at: BTreeSet<JobId>,
}

fn conflict() -> Outcome {
    Outcome::Err(ErrorKind::Conflict)
}

fn illegal() -> Outcome {
    Outcome::Err(ErrorKind::IllegalTransition)
}

fn not_found() -> Outcome {
    Outcome::Err(ErrorKind::NotFound)
}

fn type_filter(types: u8) -> TypeFilter {
    match types % 3 {
        0 => TypeFilter::Any,
        1 => TypeFilter::one(JobType::parse("t0").unwrap()),
        _ => TypeFilter::Only(vec![
            JobType::parse("t1").unwrap(),
            JobType::parse("t2").unwrap(),
        ]),
    }
}

fn status_of(n: u8) -> JobStatus {
    JobStatus::ALL[usize::from(n) % 5]
}

fn worker(n: u8) -> &'static str {
    WORKERS[usize::from(n) % WORKERS.len()]
}

impl Model {
    fn new() -> Model {
        Model {
            registered: BTreeSet::from([QUEUE_WORKER.to_owned()]),
            now: T0,
            ..Model::default()
        }
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.now)
    }

    /// The id an op's job index names.
    fn pick(&self, n: u8) -> String {
        if self.created.is_empty() {
            UNKNOWN.to_owned()
        } else {
            self.created[usize::from(n) % self.created.len()].to_string()
        }
    }

    fn get(&self, id: &str) -> Option<&Job> {
        JobId::parse(id).ok().and_then(|id| self.jobs.get(&id))
    }

    fn put(&mut self, job: Job) -> Outcome {
        self.jobs.insert(job.id.clone(), job.clone());
        Outcome::Job(Box::new(job))
    }

    fn new_job(&self, ty: u8, user: u8, max_retries: Option<u8>, priority: i8, n: u64) -> NewJob {
        let mut new = NewJob::custom(
            TYPES[usize::from(ty) % TYPES.len()],
            USERS[usize::from(user) % USERS.len()],
            json!({ "n": n }),
        )
        .unwrap()
        .priority(i16::from(priority));
        if let Some(m) = max_retries {
            new = new.max_retries(u32::from(m));
        }
        new
    }

    /// Records jobs the system under test created (their ids are its).
    fn created(&mut self, new: Vec<NewJob>, ids: &[JobId]) -> Vec<Job> {
        new.into_iter()
            .zip(ids)
            .map(|(n, id)| {
                let job = n.into_job(id.clone(), self.now(), MAX_RETRIES).unwrap();
                self.jobs.insert(id.clone(), job.clone());
                self.created.push(id.clone());
                job
            })
            .collect()
    }

    fn next_due(&self, types: &TypeFilter) -> Option<&Job> {
        let now = self.now();
        self.jobs
            .values()
            .filter(|j| {
                j.status == JobStatus::Pending && types.matches(&j.job_type) && j.is_due(now)
            })
            .min_by(|a, b| {
                (std::cmp::Reverse(a.priority), &a.id).cmp(&(std::cmp::Reverse(b.priority), &b.id))
            })
    }

    fn claimed(&self, mut job: Job, worker: &str) -> Job {
        job.status = JobStatus::Running;
        job.attempt += 1;
        job.started_at = Some(self.now());
        job.completed_at = None;
        job.worker_id = Some(worker.to_owned());
        job.lease_expires_at = Some(self.now().add(LEASE));
        job.run_at = None;
        // A new attempt starts clean (issue 16): no progress of the last one.
        job.progress = None;
        job
    }

    fn claim(&mut self, types: &TypeFilter, worker: &str) -> Outcome {
        let Some(next) = self.next_due(types).cloned() else {
            return Outcome::Claimed(None);
        };
        let job = self.claimed(next, worker);
        self.jobs.insert(job.id.clone(), job.clone());
        Outcome::Claimed(Some(Box::new(job)))
    }

    fn complete(&mut self, mut job: Job, result: Option<serde_json::Value>) -> Outcome {
        job.status = JobStatus::Complete;
        job.completed_at = Some(self.now());
        job.result = result;
        job.error = None;
        job.lease_expires_at = None;
        job.run_at = None;
        self.put(job)
    }

    fn fail(&mut self, mut job: Job, failure: &JobFailure) -> Outcome {
        job.error = Some(failure.error_text());
        job.lease_expires_at = None;
        if failure.retryable && job.retry_count < job.max_retries {
            let delay = policy().delay(job.retry_count, 0.0);
            job.status = JobStatus::Pending;
            job.retry_count += 1;
            job.run_at = Some(self.now().add(delay));
            job.worker_id = None;
            job.completed_at = None;
        } else {
            job.status = JobStatus::Failed;
            job.completed_at = Some(self.now());
            job.run_at = None;
        }
        self.put(job)
    }

    fn release(&mut self, mut job: Job) -> Outcome {
        job.status = JobStatus::Pending;
        job.worker_id = None;
        job.lease_expires_at = None;
        job.run_at = None;
        self.put(job)
    }

    fn retry(&mut self, mut job: Job) -> Outcome {
        job.status = JobStatus::Pending;
        job.retry_count = 0;
        job.run_at = None;
        job.completed_at = None;
        job.result = None;
        job.worker_id = None;
        job.lease_expires_at = None;
        self.put(job)
    }

    fn cancel(&mut self, mut job: Job) -> Outcome {
        if !matches!(job.status, JobStatus::Pending | JobStatus::Running) {
            return illegal();
        }
        job.status = JobStatus::Cancelled;
        job.completed_at = Some(self.now());
        job.lease_expires_at = None;
        job.run_at = None;
        self.put(job)
    }

    /// A running job at `attempt`, or the queue's error.
    fn running_at(&self, id: &str, attempt: u32) -> Result<Job, Outcome> {
        let job = self.get(id).ok_or_else(not_found)?;
        if job.status != JobStatus::Running || job.attempt != attempt {
            return Err(conflict());
        }
        Ok(job.clone())
    }

    fn attempt_for(&self, id: &str, stale: bool) -> u32 {
        let a = self.get(id).map_or(0, |j| j.attempt);
        if stale {
            a.wrapping_sub(1)
        } else {
            a
        }
    }

    fn set_status(&mut self, id: &str, to: JobStatus) -> Outcome {
        let Some(job) = self.get(id).cloned() else {
            return not_found();
        };
        if to == JobStatus::Running && job.status == JobStatus::Running {
            return conflict();
        }
        use JobStatus::*;
        match (job.status, to) {
            (Pending, Running) => {
                let running = self.claimed(job, QUEUE_WORKER);
                self.put(running)
            }
            (Pending | Running, Cancelled) => self.cancel(job),
            (Running, Complete) => self.complete(job, None),
            (Running, Failed) => self.fail(job, &JobFailure::permanent("status set to failed")),
            (Running, Pending) => self.release(job),
            (Failed | Cancelled, Pending) => self.retry(job),
            _ => illegal(),
        }
    }

    fn cleanup(&mut self, age: Duration) -> Outcome {
        let cutoff = self.now().sub(age);
        let old: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.status.is_finished() && j.completed_at.unwrap_or(j.created) < cutoff)
            .map(|j| j.id.clone())
            .collect();
        for id in &old {
            self.jobs.remove(id);
        }
        Outcome::Count(old.len() as u64)
    }

    /// One recovery pass. `at_open`: the pass an opening store runs with
    /// the real clock, so every lease of this test's clock has expired and
    /// `completedAt` of jobs it fails is adopted from the system under test.
    fn recovery_pass(&mut self, at_open: bool) -> Outcome {
        let now = self.now();
        let mut requeued = Vec::new();
        let mut failed = Vec::new();
        let ids: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Running)
            .map(|j| j.id.clone())
            .collect();
        for id in ids {
            let job = self.jobs[&id].clone();
            let w = job.worker_id.clone().unwrap_or_default();
            let why = if self.registered.contains(&w) {
                continue;
            } else if let Some(file) = self.files.get(&w) {
                match file {
                    WorkerFile::Stopped => "stopped",
                    WorkerFile::Died => "died",
                }
            } else if at_open || job.lease_expires_at.is_some_and(|t| t >= now) {
                // The store's own pass at open never judges a lease (the
                // clock rule): only the queue's pass, on its clock, does.
                continue;
            } else {
                "lost its lease"
            };
            let mut new = job;
            let message = format!("worker {w} {why} during attempt {}", new.attempt);
            new.worker_id = None;
            new.lease_expires_at = None;
            if new.retry_count < new.max_retries {
                new.status = JobStatus::Pending;
                new.retry_count += 1;
                new.run_at = None;
                requeued.push(id.clone());
            } else {
                new.status = JobStatus::Failed;
                new.completed_at = Some(now);
                failed.push(id.clone());
                if at_open {
                    self.adopt_completed_at.insert(id.clone());
                }
            }
            new.error = Some(message);
            self.jobs.insert(id, new);
        }
        // Worker files not locked and not named by a running job are
        // removed at the end of every pass; after it no dead worker has a
        // running job left, so that is all of them.
        self.files.clear();
        Outcome::Recovered { requeued, failed }
    }

    fn reopen(&mut self) {
        for w in std::mem::take(&mut self.registered) {
            self.files.insert(w, WorkerFile::Died);
        }
        self.recovery_pass(true);
        // The new queue's `initialize`: register, then a pass on our clock.
        self.registered.insert(QUEUE_WORKER.to_owned());
        self.recovery_pass(false);
    }

    fn register(&mut self, w: &str) -> Outcome {
        self.files.remove(w);
        self.registered.insert(w.to_owned());
        Outcome::Unit
    }

    fn unregister(&mut self, w: &str) -> Outcome {
        self.registered.remove(w);
        self.files.insert(w.to_owned(), WorkerFile::Stopped);
        Outcome::Unit
    }

    fn heartbeat(&mut self, w: &str) -> Outcome {
        if !self.registered.contains(w) {
            return Outcome::Err(ErrorKind::InvalidInput);
        }
        let lease = self.now().add(LEASE);
        for job in self.jobs.values_mut() {
            if job.status == JobStatus::Running && job.worker_id.as_deref() == Some(w) {
                job.lease_expires_at = Some(lease);
            }
        }
        Outcome::Unit
    }

    fn list(&self, filter: &JobFilter) -> (Vec<JobId>, usize) {
        let mut matching: Vec<&Job> = self.jobs.values().filter(|j| filter.matches(j)).collect();
        matching.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        let total = matching.len();
        let ids = matching
            .into_iter()
            .skip(filter.offset)
            .take(filter.limit)
            .map(|j| j.id.clone())
            .collect();
        (ids, total)
    }

    fn stats(&self) -> QueueStats {
        let mut stats = QueueStats::default();
        for job in self.jobs.values() {
            *stats.get_mut(job.status) += 1;
        }
        stats
    }
}

/// The system under test: a queue on an `FsStore`, reopenable.
struct Sut {
    dir: PathBuf,
    clock: ManualClock,
    queue: Option<JobQueue>,
}

fn fs_options() -> FsOptions {
    FsOptions::default()
        .durability(Durability::None)
        .watch(false)
        .recovery_interval(None)
        .rescan_interval(None)
        .quarantine_grace(Duration::ZERO)
}

async fn open_queue(dir: &Path, clock: &ManualClock) -> JobQueue {
    let store = FsStore::open(dir, fs_options()).await.unwrap();
    let queue = JobQueue::builder()
        .max_retries(MAX_RETRIES)
        .retention_period(RETENTION)
        .retry_policy(policy())
        .lease(LEASE)
        .store(Arc::new(store))
        .clock(clock.clone())
        .worker_id(QUEUE_WORKER)
        .jitter_seed(1)
        .build()
        .unwrap();
    queue.initialize().await.unwrap();
    queue
}

impl Sut {
    fn q(&self) -> &JobQueue {
        self.queue.as_ref().expect("the queue is open")
    }
}

type Check = Result<(), TestCaseError>;

fn fail(
    step: usize,
    op: &Op,
    what: &str,
    expected: &dyn std::fmt::Debug,
    got: &dyn std::fmt::Debug,
) -> TestCaseError {
    TestCaseError::fail(format!(
        "step {step} ({op:?}): {what} differs\n  model: {expected:?}\n  fs:    {got:?}"
    ))
}

/// Applies `op` to both sides and compares what they returned.
async fn step(model: &mut Model, sut: &mut Sut, i: usize, op: &Op) -> Check {
    let (expected, got) = match op {
        Op::Create {
            ty,
            user,
            max_retries,
            priority,
            delay_ms,
        } => {
            let mut new = model.new_job(*ty, *user, *max_retries, *priority, i as u64);
            if let Some(d) = delay_ms {
                new = new.run_at(model.now().add(Duration::from_millis(u64::from(*d))));
            }
            let got = sut.q().create_job(new.clone()).await;
            let job = got
                .as_ref()
                .map_err(|e| fail(i, op, "create", &"ok", &e.to_string()))?;
            let expected = model.created(vec![new], std::slice::from_ref(&job.id));
            (Outcome::Jobs(expected), Outcome::Jobs(vec![job.clone()]))
        }
        Op::CreateBatch { n, ty } => {
            let new: Vec<NewJob> = (0..*n)
                .map(|k| model.new_job(*ty, k, None, 0, (i * 10 + usize::from(k)) as u64))
                .collect();
            let got = sut.q().create_jobs(new.clone()).await;
            let jobs = got.map_err(|e| fail(i, op, "create_jobs", &"ok", &e.to_string()))?;
            let ids: Vec<JobId> = jobs.iter().map(|j| j.id.clone()).collect();
            let expected = model.created(new, &ids);
            (Outcome::Jobs(expected), Outcome::Jobs(jobs))
        }
        Op::Claim { worker: w, types } => {
            let filter = type_filter(*types);
            let expected = model.claim(&filter, worker(*w));
            let got = match sut.q().claim_next_job(filter, worker(*w)).await {
                Ok(j) => Outcome::Claimed(j.map(Box::new)),
                Err(e) => Outcome::Err(e.kind()),
            };
            (expected, got)
        }
        Op::SetStatus { job, status } => {
            let id = model.pick(*job);
            let expected = model.set_status(&id, status_of(*status));
            let got = outcome_of_job(sut.q().update_job_status(&id, status_of(*status)).await);
            (expected, got)
        }
        Op::Progress { job, stale, pct } => {
            let id = model.pick(*job);
            let attempt = model.attempt_for(&id, *stale);
            let value = json!({ "percentage": pct, "message": format!("step {i}") });
            let expected = match model.running_at(&id, attempt) {
                Ok(mut j) => {
                    j.progress = Some(value.clone());
                    model.put(j)
                }
                Err(e) => e,
            };
            let got = outcome_of_job(sut.q().update_job_progress_at(&id, attempt, value).await);
            (expected, got)
        }
        Op::Complete { job, stale } => {
            let id = model.pick(*job);
            let attempt = model.attempt_for(&id, *stale);
            let result = json!({ "done": i });
            let expected = match model.running_at(&id, attempt) {
                Ok(j) => model.complete(j, Some(result.clone())),
                Err(e) => e,
            };
            let got = outcome_of_job(sut.q().complete_job_at(&id, attempt, result).await);
            (expected, got)
        }
        Op::Fail {
            job,
            stale,
            retryable,
        } => {
            let id = model.pick(*job);
            let attempt = model.attempt_for(&id, *stale);
            let failure = if *retryable {
                JobFailure::retryable(format!("boom {i}"))
            } else {
                JobFailure::permanent(format!("fatal {i}")).with_code("E")
            };
            let expected = match model.running_at(&id, attempt) {
                Ok(j) => model.fail(j, &failure),
                Err(e) => e,
            };
            let got = outcome_of_job(sut.q().fail_job_at(&id, attempt, failure).await);
            (expected, got)
        }
        Op::Release { job, stale } => {
            let id = model.pick(*job);
            let attempt = model.attempt_for(&id, *stale);
            let expected = match model.running_at(&id, attempt) {
                Ok(j) => model.release(j),
                Err(e) => e,
            };
            let got = outcome_of_job(sut.q().release_job(&id, attempt).await);
            (expected, got)
        }
        Op::Retry { job } => {
            let id = model.pick(*job);
            let expected = match model.get(&id).cloned() {
                None => not_found(),
                Some(j) if matches!(j.status, JobStatus::Failed | JobStatus::Cancelled) => {
                    model.retry(j)
                }
                Some(_) => illegal(),
            };
            let got = outcome_of_job(sut.q().retry_job(&id).await);
            (expected, got)
        }
        Op::Cancel { job } => {
            let id = model.pick(*job);
            let expected = match model.get(&id).cloned() {
                None => not_found(),
                Some(j) => model.cancel(j),
            };
            let got = outcome_of_job(sut.q().cancel_job(&id).await);
            (expected, got)
        }
        Op::Cleanup { age } => {
            let age = Duration::from_millis(CLEANUP_AGES[usize::from(*age) % CLEANUP_AGES.len()]);
            let expected = model.cleanup(age);
            let got = match sut.q().cleanup_jobs_older_than(age).await {
                Ok(n) => Outcome::Count(n),
                Err(e) => Outcome::Err(e.kind()),
            };
            (expected, got)
        }
        Op::Recover => {
            let expected = model.recovery_pass(false);
            let got = match sut.q().recover().await {
                Ok(mut r) => {
                    r.requeued.sort();
                    r.failed.sort();
                    Outcome::Recovered {
                        requeued: r.requeued,
                        failed: r.failed,
                    }
                }
                Err(e) => Outcome::Err(e.kind()),
            };
            (expected, got)
        }
        Op::Register { worker: w } => (
            model.register(worker(*w)),
            outcome_of_unit(sut.q().register_worker(worker(*w)).await),
        ),
        Op::Unregister { worker: w } => (
            model.unregister(worker(*w)),
            outcome_of_unit(sut.q().unregister_worker(worker(*w)).await),
        ),
        Op::Heartbeat { worker: w } => (
            model.heartbeat(worker(*w)),
            outcome_of_unit(sut.q().heartbeat(worker(*w), &[]).await.map(|_| ())),
        ),
        Op::Advance { ms } => {
            model.now += i64::from(*ms);
            sut.clock.advance(Duration::from_millis(u64::from(*ms)));
            (Outcome::Unit, Outcome::Unit)
        }
        Op::ClockBack { ms } => {
            model.now -= i64::from(*ms);
            sut.clock.set(Timestamp::from_millis(model.now));
            (Outcome::Unit, Outcome::Unit)
        }
        Op::Reopen => {
            drop(sut.queue.take());
            let before = Timestamp::now();
            sut.queue = Some(open_queue(&sut.dir, &sut.clock).await);
            let after = Timestamp::now();
            model.reopen();
            // Adopt the real-clock `completedAt` of jobs failed at open.
            for id in std::mem::take(&mut model.adopt_completed_at) {
                let real = sut.q().get_job(&id).await.ok().and_then(|j| j.completed_at);
                match real {
                    Some(t) if t >= before && t <= after => {
                        if let Some(j) = model.jobs.get_mut(&id) {
                            j.completed_at = Some(t);
                        }
                    }
                    other => {
                        return Err(fail(
                            i,
                            op,
                            "completedAt of a job failed at open",
                            &(before, after),
                            &other,
                        ))
                    }
                }
            }
            (Outcome::Unit, Outcome::Unit)
        }
    };
    if expected != got {
        return Err(fail(i, op, "result", &expected, &got));
    }
    Ok(())
}

/// Compares everything observable.
async fn observe(model: &Model, sut: &Sut, i: usize, op: &Op) -> Check {
    let q = sut.q();
    for id in &model.created {
        let expected = model.jobs.get(id).cloned().map(Box::new);
        let got = match q.get_job(id).await {
            Ok(j) => Some(Box::new(j)),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(fail(i, op, "get", &expected, &e.to_string())),
        };
        if expected != got {
            return Err(fail(i, op, &format!("get({id})"), &expected, &got));
        }
    }
    let stats = q
        .get_stats()
        .await
        .map_err(|e| fail(i, op, "stats", &"ok", &e.to_string()))?;
    if stats != model.stats() {
        return Err(fail(i, op, "stats", &model.stats(), &stats));
    }
    let mut filters = vec![
        JobFilter::default().limit(1000),
        JobFilter::default().limit(3).offset(2),
        JobFilter::default().job_type(JobType::parse("t0").unwrap()),
        JobFilter::default().user("u1").status(JobStatus::Pending),
    ];
    filters.extend(JobStatus::ALL.map(|s| JobFilter::default().status(s)));
    for filter in &filters {
        let expected = model.list(filter);
        let page = q
            .list_jobs(filter)
            .await
            .map_err(|e| fail(i, op, "list", &"ok", &e.to_string()))?;
        let got = (
            page.jobs.iter().map(|j| j.id.clone()).collect::<Vec<_>>(),
            page.total,
        );
        if expected != got {
            return Err(fail(i, op, &format!("list({filter:?})"), &expected, &got));
        }
    }
    for types in 0..3 {
        let filter = type_filter(types);
        let expected = model.next_due(&filter).map(|j| j.id.clone());
        let got = q
            .poll_next_pending_job(filter.clone())
            .await
            .map_err(|e| fail(i, op, "poll", &"ok", &e.to_string()))?
            .map(|j| j.id);
        if expected != got {
            return Err(fail(
                i,
                op,
                &format!("claim order ({filter:?})"),
                &expected,
                &got,
            ));
        }
    }
    Ok(())
}

/// Runs one scenario against a fresh directory.
pub async fn run_ops(ops: &[Op]) -> Check {
    // tmpfs when there is one: this test is about the protocol's logic
    // (durability `none`), and thousands of short-lived directories on a
    // disk mounted with `discard` spend most of their time in unlink.
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
    };
    let tmp = tempfile::Builder::new()
        .prefix("semiont-model-")
        .tempdir_in(base)
        .unwrap();
    let clock = ManualClock::new(Timestamp::from_millis(T0));
    let dir = tmp.path().join("jobs");
    let queue = open_queue(&dir, &clock).await;
    let mut sut = Sut {
        dir,
        clock,
        queue: Some(queue),
    };
    let mut model = Model::new();
    for (i, op) in ops.iter().enumerate() {
        step(&mut model, &mut sut, i, op).await?;
        observe(&model, &sut, i, op).await?;
    }
    let stats = sut.q().get_stats().await.unwrap();
    prop_assert_eq!(stats.unreadable, 0, "nothing was quarantined");
    Ok(())
}

fn cases() -> u32 {
    if std::env::var("SEMIONT_JOBS_TORTURE").as_deref() == Ok("1") {
        return 100_000;
    }
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000)
}

#[test]
#[allow(
    clippy::print_stderr,
    reason = "reports how many cases ran and how long they took"
)]
fn fs_backend_agrees_with_the_model() {
    let cases = cases();
    let max_len = if cases > 10_000 { 60 } else { 30 };
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..Config::default()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(config);
    let started = Instant::now();
    let result = runner.run(
        &proptest::collection::vec(op_strategy(), 1..=max_len),
        |ops| rt.block_on(run_ops(&ops)),
    );
    eprintln!(
        "model_based: {cases} cases of up to {max_len} ops in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Fixed scenarios through the same harness: each path the random runs
/// must be able to reach (every recovery verdict, back-off, clock steps,
/// reopening with work in flight), pinned so it is covered on every run.
/// Shrunk failing cases of the property test go here too.
mod scenarios {
    use super::{run_ops, Op};

    fn create() -> Op {
        Op::Create {
            ty: 0,
            user: 0,
            max_retries: None,
            priority: 0,
            delay_ms: None,
        }
    }

    async fn check(ops: Vec<Op>) {
        if let Err(e) = run_ops(&ops).await {
            panic!("{e}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unregistered_worker_is_recovered_as_stopped() {
        check(vec![
            create(),
            Op::Register { worker: 1 },
            Op::Claim {
                worker: 1,
                types: 0,
            },
            Op::Unregister { worker: 1 },
            Op::Recover,
            Op::Claim {
                worker: 2,
                types: 1,
            },
        ])
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unseen_worker_lives_by_its_lease_and_heartbeats() {
        check(vec![
            create(),
            Op::Claim {
                worker: 0,
                types: 0,
            },
            Op::Advance { ms: 20_000 },
            Op::Recover,
            Op::Heartbeat { worker: 0 },
            Op::Register { worker: 0 },
            Op::Heartbeat { worker: 0 },
            Op::Unregister { worker: 0 },
            Op::Recover,
            Op::Claim {
                worker: 0,
                types: 0,
            },
            Op::Advance { ms: 31_000 },
            Op::Recover,
        ])
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopening_recovers_work_in_flight_and_spends_retries() {
        check(vec![
            Op::Create {
                ty: 1,
                user: 1,
                max_retries: Some(0),
                priority: 1,
                delay_ms: None,
            },
            create(),
            Op::Register { worker: 2 },
            Op::Claim {
                worker: 2,
                types: 0,
            },
            Op::SetStatus { job: 1, status: 1 },
            Op::Progress {
                job: 1,
                stale: false,
                pct: 40,
            },
            Op::Reopen,
            Op::Claim {
                worker: 2,
                types: 2,
            },
            Op::Reopen,
            Op::Retry { job: 0 },
        ])
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn back_off_clock_steps_fencing_and_cleanup() {
        check(vec![
            create(),
            Op::CreateBatch { n: 3, ty: 1 },
            Op::Register { worker: 0 },
            Op::Claim {
                worker: 0,
                types: 0,
            },
            Op::Fail {
                job: 0,
                stale: false,
                retryable: true,
            },
            Op::Claim {
                worker: 0,
                types: 1,
            },
            Op::Advance { ms: 1_000 },
            Op::Claim {
                worker: 0,
                types: 1,
            },
            Op::Complete {
                job: 0,
                stale: true,
            },
            Op::Fail {
                job: 0,
                stale: false,
                retryable: false,
            },
            Op::ClockBack { ms: 40_000 },
            Op::Cleanup { age: 0 },
            Op::Advance { ms: 3_600_001 },
            Op::Cancel { job: 2 },
            Op::Release {
                job: 1,
                stale: false,
            },
            Op::Cleanup { age: 3 },
            Op::Advance { ms: 3_600_001 },
            Op::Cleanup { age: 3 },
        ])
        .await;
    }
}
