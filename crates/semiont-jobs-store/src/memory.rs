//! The in-memory backend: a reference implementation of the contract for
//! tests, examples and single-process use where durability does not matter.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use semiont_jobs_model::{
    Job, JobFilter, JobId, JobPage, JobStatus, QueueStats, Timestamp, Transition,
};
use tokio::sync::broadcast;

use crate::rules;
use crate::{
    Capabilities, ChangeKind, ChangeOrigin, ClaimRequest, Error, Expect, FinishedJob, JobChange,
    JobStore, RecoveryReport, Result, TypeFilter, WorkerInfo, CHANGE_CHANNEL_CAPACITY,
};

/// A [`JobStore`] that keeps jobs in memory: not persistent, not shared
/// between processes, exactly the contract otherwise. Change events are sent
/// while the state lock is held, so they arrive in the order the changes
/// were applied.
#[derive(Debug)]
pub struct MemoryStore {
    state: Mutex<State>,
    tx: broadcast::Sender<JobChange>,
}

#[derive(Debug, Default)]
struct State {
    jobs: BTreeMap<JobId, Job>,
    registered: HashMap<String, Duration>,
    gone: HashSet<String>,
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
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change:
        // every mutation below is a single insert or remove.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn notify(&self, job: &Job, kind: ChangeKind) {
        let _ = self.tx.send(JobChange {
            id: Some(job.id.clone()),
            kind,
            status: Some(job.status),
            job_type: Some(job.job_type.clone()),
            origin: ChangeOrigin::Local,
        });
    }

    fn next_due<'a>(state: &'a State, types: &TypeFilter, now: Timestamp) -> Option<&'a Job> {
        state
            .jobs
            .values()
            .filter(|j| rules::claimable(j, types, now))
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
        st.jobs.insert(job.id.clone(), job.clone());
        self.notify(job, ChangeKind::Created);
        drop(st);
        Ok(())
    }

    async fn create_batch(&self, jobs: &[Job]) -> Result<()> {
        for job in jobs {
            self.create(job).await?;
        }
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
        st.jobs.insert(job.id.clone(), job.clone());
        if let Some(t) = Transition::between(expect.status, job.status) {
            self.notify(job, ChangeKind::Transition(t));
        }
        drop(st);
        Ok(())
    }

    async fn update_running(&self, job: &Job) -> Result<()> {
        let expect = Expect::running(job.attempt);
        if job.status != JobStatus::Running {
            return Err(semiont_jobs_model::Error::IllegalTransition {
                id: job.id.to_string(),
                from: JobStatus::Running,
                to: job.status,
            }
            .into());
        }
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

    async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
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

    async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
        Ok(Self::next_due(&self.lock(), types, now).cloned())
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
        if let Some(job) = job {
            let _ = self.tx.send(JobChange {
                id: Some(job.id),
                kind: ChangeKind::Deleted,
                status: None,
                job_type: Some(job.job_type),
                origin: ChangeOrigin::Local,
            });
        }
        drop(st);
        Ok(())
    }

    async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        let mut st = self.lock();
        st.gone.remove(&worker.id);
        st.registered.insert(worker.id.clone(), worker.lease);
        Ok(())
    }

    async fn heartbeat(&self, worker_id: &str, now: Timestamp) -> Result<()> {
        let mut st = self.lock();
        let Some(lease) = st.registered.get(worker_id).copied() else {
            return Err(semiont_jobs_model::Error::InvalidParams(format!(
                "worker {worker_id} is not registered"
            ))
            .into());
        };
        for job in st.jobs.values_mut() {
            if job.status == JobStatus::Running && job.worker_id.as_deref() == Some(worker_id) {
                job.lease_expires_at = Some(now.add(lease));
            }
        }
        Ok(())
    }

    async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
        let mut st = self.lock();
        st.registered.remove(worker_id);
        st.gone.insert(worker_id.to_owned());
        Ok(())
    }

    async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        {
            let mut st = self.lock();
            let State {
                jobs,
                registered,
                gone,
            } = &mut *st;
            for job in jobs.values_mut() {
                if job.status != JobStatus::Running {
                    continue;
                }
                let why = match job.worker_id.as_deref() {
                    Some(w) if registered.contains_key(w) => continue,
                    Some(w) if gone.contains(w) => "stopped",
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

    fn subscribe(&self) -> broadcast::Receiver<JobChange> {
        self.tx.subscribe()
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new(false, false, false)
    }
}
