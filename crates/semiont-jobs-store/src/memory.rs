//! The in-memory backend: a reference implementation of the contract for
//! tests, examples and single-process use where durability does not matter.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use semiont_jobs_model::{
    Job, JobFilter, JobId, JobPage, JobStatus, JobType, QueueStats, Timestamp, Transition,
};
use tokio::sync::broadcast;

use crate::rules;
use crate::{
    Capabilities, ChangeKind, ChangeOrigin, ChangeStream, CheckpointRequest, ClaimRequest, Error,
    Expect, FinishedJob, Heartbeat, JobChange, JobSelector, JobStore, LostJob, RecoveryReport,
    Result, TypeFilter, WorkerInfo, WorkerRecord, CHANGE_CHANNEL_CAPACITY,
};

/// A [`JobStore`] that keeps jobs in memory: not persistent, not shared
/// between processes, exactly the contract otherwise. Change events are sent
/// while the state lock is held, so they arrive in the order the changes
/// were applied.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    tx: broadcast::Sender<JobChange>,
    server_clock: bool,
}

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<JobId, Job>,
    workers: HashMap<String, Worker>,
    /// Unique key → the job that took it last (the only job that can
    /// hold it: every take goes through this map).
    unique: HashMap<String, JobId>,
    paused: BTreeSet<JobType>,
    /// The retention-sweep lease: holder and expiry.
    sweep: Option<(String, Timestamp)>,
}

impl State {
    /// Checks that `job` may take its unique key by a write from `from`
    /// (`None`: a create) judged at `now`; returns the key it takes.
    fn check_key(
        &self,
        from: Option<JobStatus>,
        job: &Job,
        now: impl Fn(Timestamp) -> Timestamp,
    ) -> Result<Option<String>> {
        let Some((key, at)) = rules::unique_key_claim(from, job) else {
            return Ok(None);
        };
        let holder = self.unique.get(key).and_then(|id| self.jobs.get(id));
        match holder {
            Some(h) if rules::blocks_key(h, job, at.map(now)) => Err(rules::key_taken(key, h)),
            _ => Ok(Some(key.to_owned())),
        }
    }
}

/// A registered worker (kept after it unregisters, as dead).
#[derive(Debug)]
struct Worker {
    lease: Duration,
    alive: bool,
    last_seen: Option<Timestamp>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            tx: broadcast::channel(CHANGE_CHANNEL_CAPACITY).0,
            server_clock: false,
        }
    }

    /// An empty store that judges leases and due times by the system clock
    /// ([`Capabilities::server_clock`]), ignoring the callers' `now`, as a
    /// database shared by many hosts does: the reference for such backends.
    pub fn with_server_clock() -> Self {
        MemoryStore {
            server_clock: true,
            ..Self::new()
        }
    }

    /// The time leases and due times are judged by: the caller's, or the
    /// system clock for a server-clock store.
    fn judge(&self, caller: Timestamp) -> Timestamp {
        if self.server_clock {
            Timestamp::now()
        } else {
            caller
        }
    }

    fn judged(&self, req: &ClaimRequest) -> ClaimRequest {
        ClaimRequest {
            now: self.judge(req.now),
            ..req.clone()
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change:
        // every mutation below is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, job: &Job, kind: ChangeKind) {
        let _ = self.tx.send(JobChange::of(job, kind, ChangeOrigin::Local));
    }

    fn next_due<'a>(state: &'a State, types: &TypeFilter, now: Timestamp) -> Option<&'a Job> {
        state
            .jobs
            .values()
            .filter(|j| {
                rules::claimable(j, types, now) && rules::not_paused(&state.paused, &j.job_type)
            })
            .min_by(|a, b| rules::claim_order_key(a).cmp(&rules::claim_order_key(b)))
    }
}

fn conflict(id: &JobId, expect: Expect, actual: Option<&Job>) -> Error {
    Error::Conflict {
        id: id.clone(),
        expected: expect,
        actual: actual.map(|j| (j.status, j.attempt)),
    }
}

#[async_trait]
impl JobStore for MemoryStore {
    async fn create(&self, job: &Job) -> Result<()> {
        let mut st = self.lock();
        if st.jobs.contains_key(&job.id) {
            return Err(Error::AlreadyExists { id: job.id.clone() });
        }
        if let Some(key) = st.check_key(None, job, |t| self.judge(t))? {
            st.unique.insert(key, job.id.clone());
        }
        st.jobs.insert(job.id.clone(), job.clone());
        self.notify(job, ChangeKind::Created);
        drop(st);
        Ok(())
    }

    /// All or nothing: a taken id or unique key (also one taken twice
    /// within the batch) stores none of the batch.
    async fn create_batch(&self, jobs: &[Job]) -> Result<()> {
        let mut st = self.lock();
        let mut seen = std::collections::HashSet::new();
        let mut keys: HashMap<String, &Job> = HashMap::new();
        for job in jobs {
            if st.jobs.contains_key(&job.id) || !seen.insert(&job.id) {
                return Err(Error::batch(0, Error::AlreadyExists { id: job.id.clone() }));
            }
            if let Some(key) = st
                .check_key(None, job, |t| self.judge(t))
                .map_err(|e| Error::batch(0, e))?
            {
                if let Some(earlier) = keys.get(&key) {
                    return Err(Error::batch(0, rules::key_taken(&key, earlier)));
                }
                keys.insert(key, job);
            }
        }
        for (key, job) in keys {
            st.unique.insert(key, job.id.clone());
        }
        for job in jobs {
            st.jobs.insert(job.id.clone(), job.clone());
            self.notify(job, ChangeKind::Created);
        }
        drop(st);
        Ok(())
    }

    async fn get(&self, id: &JobId) -> Result<Job> {
        self.lock()
            .jobs
            .get(id)
            .cloned()
            .ok_or_else(|| Error::NotFound { id: id.clone() })
    }

    async fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
        rules::check_transition_request(expect, job)?;
        let mut st = self.lock();
        let current = st
            .jobs
            .get(&job.id)
            .ok_or_else(|| Error::NotFound { id: job.id.clone() })?;
        if !expect.holds(current.status, current.attempt) {
            return Err(conflict(&job.id, expect, Some(current)));
        }
        if let Some(key) = st.check_key(Some(expect.status), job, |t| self.judge(t))? {
            st.unique.insert(key, job.id.clone());
        }
        st.jobs.insert(job.id.clone(), job.clone());
        if let Some(t) = Transition::between(expect.status, job.status) {
            self.notify(job, ChangeKind::Transition(t));
        }
        drop(st);
        Ok(())
    }

    async fn update_running(&self, job: &Job) -> Result<()> {
        let expect = rules::check_update_running(job)?;
        let mut st = self.lock();
        let current = st.jobs.get(&job.id);
        match current {
            Some(c) if expect.holds(c.status, c.attempt) => {}
            other => return Err(conflict(&job.id, expect, other)),
        }
        st.jobs.insert(job.id.clone(), job.clone());
        self.notify(job, ChangeKind::Updated);
        drop(st);
        Ok(())
    }

    async fn checkpoint(&self, req: &CheckpointRequest) -> Result<Job> {
        let mut st = self.lock();
        let current = st
            .jobs
            .get(&req.id)
            .ok_or_else(|| Error::NotFound { id: req.id.clone() })?;
        let expect = Expect::running(req.attempt);
        if !expect.holds(current.status, current.attempt) {
            return Err(conflict(&req.id, expect, Some(current)));
        }
        let judged = CheckpointRequest {
            now: self.judge(req.now),
            ..req.clone()
        };
        let job = rules::checkpointed(current.clone(), &judged);
        st.jobs.insert(job.id.clone(), job.clone());
        self.notify(&job, ChangeKind::Updated);
        drop(st);
        Ok(job)
    }

    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
        let req = &self.judged(req);
        let mut st = self.lock();
        let Some(next) = Self::next_due(&st, &req.types, req.now) else {
            return Ok(None);
        };
        let job = rules::claimed(next.clone(), req);
        st.jobs.insert(job.id.clone(), job.clone());
        self.notify(&job, ChangeKind::Transition(Transition::Claim));
        drop(st);
        Ok(Some(job))
    }

    async fn claim_batch(&self, req: &ClaimRequest, max: usize) -> Result<Vec<Job>> {
        let req = &self.judged(req);
        let mut st = self.lock();
        let mut out = Vec::new();
        while out.len() < max {
            let Some(next) = Self::next_due(&st, &req.types, req.now) else {
                break;
            };
            let job = rules::claimed(next.clone(), req);
            st.jobs.insert(job.id.clone(), job.clone());
            self.notify(&job, ChangeKind::Transition(Transition::Claim));
            out.push(job);
        }
        drop(st);
        Ok(out)
    }

    async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
        Ok(Self::next_due(&self.lock(), types, self.judge(now)).cloned())
    }

    async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        filter.validate()?;
        let st = self.lock();
        let mut matching: Vec<&Job> = st.jobs.values().filter(|j| filter.matches(j)).collect();
        matching.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        Ok(JobPage {
            total: matching.len(),
            jobs: matching
                .into_iter()
                .skip(filter.offset)
                .take(filter.limit)
                .cloned()
                .collect(),
        })
    }

    async fn stats(&self) -> Result<QueueStats> {
        let mut stats = QueueStats::default();
        for job in self.lock().jobs.values() {
            *stats.get_mut(job.status) += 1;
        }
        Ok(stats)
    }

    async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>> {
        let mut out: BTreeMap<JobType, QueueStats> = BTreeMap::new();
        let st = self.lock();
        for job in st.jobs.values() {
            *out.entry(job.job_type.clone())
                .or_default()
                .get_mut(job.status) += 1;
        }
        for t in &st.paused {
            out.entry(t.clone()).or_default().paused = true;
        }
        Ok(out)
    }

    async fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool> {
        let mut st = self.lock();
        let changed = if paused {
            st.paused.insert(job_type.clone())
        } else {
            st.paused.remove(job_type)
        };
        if changed && !paused {
            // Its pending jobs are claimable again: wake idle claimers.
            let _ = self.tx.send(JobChange::resynced(ChangeOrigin::Local, 0));
        }
        Ok(changed)
    }

    async fn paused_types(&self) -> Result<BTreeSet<JobType>> {
        Ok(self.lock().paused.clone())
    }

    /// Exact: one pass under the lock.
    async fn cancel_pending(&self, selector: &JobSelector, now: Timestamp) -> Result<u64> {
        let mut st = self.lock();
        let mut n = 0;
        for job in st.jobs.values_mut() {
            if job.status == JobStatus::Pending && selector.matches(job) {
                *job = rules::cancelled(job.clone(), now);
                self.notify(job, ChangeKind::Transition(Transition::CancelPending));
                n += 1;
            }
        }
        Ok(n)
    }

    /// Exact: one pass under the lock, in id order (an older job takes a
    /// unique key first).
    async fn retry_failed(&self, selector: &JobSelector) -> Result<u64> {
        let mut st = self.lock();
        let ids: Vec<JobId> = st
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Failed && selector.matches(j))
            .map(|j| j.id.clone())
            .collect();
        let mut n = 0;
        for id in ids {
            let Some(job) = st.jobs.get(&id) else {
                continue;
            };
            let next = rules::retried(job.clone());
            match st.check_key(Some(JobStatus::Failed), &next, |t| self.judge(t)) {
                Ok(Some(key)) => {
                    st.unique.insert(key, id.clone());
                }
                Ok(None) => {}
                Err(_) => continue,
            }
            self.notify(&next, ChangeKind::Transition(Transition::Retry));
            st.jobs.insert(id, next);
            n += 1;
        }
        Ok(n)
    }

    async fn try_lock_sweep(&self, holder: &str, ttl: Duration, now: Timestamp) -> Result<bool> {
        let now = self.judge(now);
        let mut st = self.lock();
        let free = match &st.sweep {
            Some((h, until)) => h == holder || *until < now,
            None => true,
        };
        if free {
            st.sweep = Some((holder.to_owned(), now.add(ttl)));
        }
        Ok(free)
    }

    async fn finished_before(&self, before: Timestamp, limit: usize) -> Result<Vec<FinishedJob>> {
        let st = self.lock();
        let mut out: Vec<FinishedJob> = st
            .jobs
            .values()
            .filter(|j| j.status.is_finished())
            .filter_map(|j| {
                let at = j.completed_at.unwrap_or(j.created);
                (at < before).then(|| FinishedJob {
                    id: j.id.clone(),
                    status: j.status,
                    completed_at: at,
                })
            })
            .collect();
        out.sort_by(|a, b| (a.completed_at, &a.id).cmp(&(b.completed_at, &b.id)));
        out.truncate(limit);
        Ok(out)
    }

    async fn delete(&self, id: &JobId, expect: Expect) -> Result<()> {
        rules::check_delete_request(id, expect)?;
        let mut st = self.lock();
        let current = st
            .jobs
            .get(id)
            .ok_or_else(|| Error::NotFound { id: id.clone() })?;
        if !expect.holds(current.status, current.attempt) {
            return Err(conflict(id, expect, Some(current)));
        }
        let job = st.jobs.remove(id);
        if let Some(key) = job.as_ref().and_then(|j| j.unique_key.as_deref()) {
            if st.unique.get(key) == Some(id) {
                st.unique.remove(key);
            }
        }
        if let Some(job) = job {
            let mut change = JobChange::of(&job, ChangeKind::Deleted, ChangeOrigin::Local);
            change.status = None;
            let _ = self.tx.send(change);
        }
        drop(st);
        Ok(())
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        self.lock().workers.insert(
            worker.id.clone(),
            Worker {
                lease: worker.lease,
                alive: true,
                last_seen: None,
            },
        );
        Ok(())
    }

    async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
        let now = self.judge(beat.now);
        let mut st = self.lock();
        let State { jobs, workers, .. } = &mut *st;
        let lease = match workers.get_mut(&beat.worker_id) {
            Some(w) if w.alive => {
                w.last_seen = Some(now);
                w.lease
            }
            _ => {
                return Err(semiont_jobs_model::Error::InvalidParams(format!(
                    "worker {} is not registered",
                    beat.worker_id
                ))
                .into())
            }
        };
        for job in jobs.values_mut() {
            if job.status == JobStatus::Running
                && job.worker_id.as_deref() == Some(beat.worker_id.as_str())
            {
                job.lease_expires_at = Some(now.add(lease));
            }
        }
        let lost = beat
            .held
            .iter()
            .filter_map(|(id, attempt)| {
                let job = jobs.get(id);
                let held = job.is_some_and(|j| {
                    j.status == JobStatus::Running
                        && j.attempt == *attempt
                        && j.worker_id.as_deref() == Some(beat.worker_id.as_str())
                });
                (!held).then(|| LostJob {
                    id: id.clone(),
                    attempt: *attempt,
                    status: job.map(|j| j.status),
                })
            })
            .collect();
        Ok(lost)
    }

    async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
        let mut st = self.lock();
        let w = st.workers.entry(worker_id.to_owned()).or_insert(Worker {
            lease: Duration::ZERO,
            alive: false,
            last_seen: None,
        });
        w.alive = false;
        Ok(())
    }

    async fn workers(&self) -> Result<Vec<WorkerRecord>> {
        let st = self.lock();
        let mut out: Vec<WorkerRecord> = st
            .workers
            .iter()
            .map(|(id, w)| WorkerRecord {
                id: id.clone(),
                alive: w.alive,
                lease: w.lease,
                last_seen: w.last_seen,
                host: None,
                pid: Some(std::process::id()),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
        let now = self.judge(now);
        let mut report = RecoveryReport::default();
        {
            let mut st = self.lock();
            let State { jobs, workers, .. } = &mut *st;
            for job in jobs.values_mut() {
                if job.status != JobStatus::Running {
                    continue;
                }
                let why = match job.worker_id.as_deref().and_then(|w| workers.get(w)) {
                    Some(w) if w.alive => continue,
                    Some(_) => "stopped",
                    _ if job.lease_expires_at.is_some_and(|t| t >= now) => continue,
                    _ => "lost its lease",
                };
                let new = rules::recovered(job.clone(), now, why);
                if new.status == JobStatus::Pending {
                    report.requeued.push(new.id.clone());
                } else {
                    report.failed.push(new.id.clone());
                }
                self.notify(&new, ChangeKind::Recovered);
                *job = new;
            }
        }
        Ok(report)
    }

    fn subscribe(&self) -> ChangeStream {
        ChangeStream::from_broadcast(self.tx.subscribe())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(false, false, false).with_server_clock(self.server_clock)
    }
}
