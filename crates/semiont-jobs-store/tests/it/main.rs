//! Integration tests of the store crate: the conformance suite against the
//! in-memory backend, judging times by the callers' clock and by its own.

mod conformance {
    semiont_jobs_store::conformance_tests!("memory", || async {
        semiont_jobs_store::conformance::Fixture::new(semiont_jobs_store::MemoryStore::new())
    });
}

mod conformance_server_clock {
    semiont_jobs_store::conformance_tests!("memory-server-clock", || async {
        semiont_jobs_store::conformance::Fixture::new(
            semiont_jobs_store::MemoryStore::with_server_clock(),
        )
    });
}

/// The in-memory backend with every method that has a default left to the
/// default (`update_with`, `claim_batch`, `delete_finished_before`,
/// `checkpoint`, `cancel_pending`, `retry_failed`): the suite checks the
/// defaults a new backend starts from.
mod defaults {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use async_trait::async_trait;
    use semiont_jobs_model::{Job, JobFilter, JobId, JobPage, JobType, QueueStats, Timestamp};
    use semiont_jobs_store::{
        Capabilities, ChangeStream, ClaimRequest, Expect, FinishedJob, Heartbeat, JobStore,
        LostJob, MemoryStore, RecoveryReport, Result, TypeFilter, WorkerInfo, WorkerRecord,
    };

    #[derive(Debug, Default)]
    pub struct Defaults(MemoryStore);

    #[async_trait]
    impl JobStore for Defaults {
        async fn create(&self, job: &Job) -> Result<()> {
            self.0.create(job).await
        }
        async fn create_batch(&self, jobs: &[Job]) -> Result<()> {
            self.0.create_batch(jobs).await
        }
        async fn get(&self, id: &JobId) -> Result<Job> {
            self.0.get(id).await
        }
        async fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
            self.0.transition(expect, job).await
        }
        async fn update_running(&self, job: &Job) -> Result<()> {
            self.0.update_running(job).await
        }
        async fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
            self.0.claim(req).await
        }
        async fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
            self.0.peek_next(types, now).await
        }
        async fn list(&self, filter: &JobFilter) -> Result<JobPage> {
            self.0.list(filter).await
        }
        async fn stats(&self) -> Result<QueueStats> {
            self.0.stats().await
        }
        async fn type_stats(&self) -> Result<BTreeMap<JobType, QueueStats>> {
            self.0.type_stats().await
        }
        async fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool> {
            self.0.set_paused(job_type, paused).await
        }
        async fn paused_types(&self) -> Result<BTreeSet<JobType>> {
            self.0.paused_types().await
        }
        async fn try_lock_sweep(
            &self,
            holder: &str,
            ttl: Duration,
            now: Timestamp,
        ) -> Result<bool> {
            self.0.try_lock_sweep(holder, ttl, now).await
        }
        async fn finished_before(
            &self,
            before: Timestamp,
            limit: usize,
        ) -> Result<Vec<FinishedJob>> {
            self.0.finished_before(before, limit).await
        }
        async fn delete(&self, id: &JobId, expect: Expect) -> Result<()> {
            self.0.delete(id, expect).await
        }
        async fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
            self.0.register_worker(worker).await
        }
        async fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
            self.0.heartbeat(beat).await
        }
        async fn unregister_worker(&self, worker_id: &str) -> Result<()> {
            self.0.unregister_worker(worker_id).await
        }
        async fn workers(&self) -> Result<Vec<WorkerRecord>> {
            self.0.workers().await
        }
        async fn recover(&self, now: Timestamp) -> Result<RecoveryReport> {
            self.0.recover(now).await
        }
        fn subscribe(&self) -> ChangeStream {
            self.0.subscribe()
        }
        fn capabilities(&self) -> Capabilities {
            self.0.capabilities()
        }
    }

    semiont_jobs_store::conformance_tests!("memory-defaults", || async {
        semiont_jobs_store::conformance::Fixture::new(Defaults::default())
    });
}
