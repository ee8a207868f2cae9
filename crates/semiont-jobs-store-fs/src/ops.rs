//! The store operations as blocking functions: create, get, the
//! conditional transitions, in-place updates, claim, listing, stats and
//! deletion. `lib.rs` runs them on the blocking thread pool.

use semiont_jobs_model::{
    Job, JobFilter, JobId, JobPage, JobStatus, QueueStats, Timestamp, Transition,
};
use semiont_jobs_store::{
    rules, ChangeKind, ChangeOrigin, CheckpointRequest, ClaimRequest, Error, ErrorKind, Expect,
    FinishedJob, JobSelector, Result, TypeFilter, UpdateFn, Updated,
};

use crate::error::io_err;
use crate::index::Facts;
use crate::inner::{probe_order, step, FoundJob, Inner, JobFile};
use crate::key::Key;
use crate::staging::MoveSync;
use crate::sys;

/// Upper bound on candidates a claim tries before giving up for this call
/// (each failed candidate also corrects the index, so this is never hit in
/// practice).
const CLAIM_ATTEMPTS: usize = 100_000;

fn conflict(id: &JobId, expected: Expect, actual: Option<(JobStatus, u32)>) -> Error {
    Error::Conflict {
        id: id.clone(),
        expected,
        actual,
    }
}

/// The step-table name of a transition.
pub(crate) fn op_name(from: JobStatus, to: JobStatus) -> &'static str {
    match Transition::between(from, to) {
        Some(Transition::Claim) => "claim",
        Some(Transition::CancelPending) => "cancel-pending",
        Some(Transition::Complete) => "complete",
        Some(Transition::Fail) => "fail",
        Some(Transition::Requeue) => "requeue",
        Some(Transition::CancelRunning) => "cancel-running",
        Some(Transition::Retry) => "retry",
        None => "move",
    }
}

impl Inner {
    fn full_sync(&self) -> MoveSync {
        if self.opts.sync() {
            MoveSync::Full
        } else {
            MoveSync::Nothing
        }
    }

    fn sync_dir(&self, status: JobStatus) -> Result<()> {
        if self.opts.sync() {
            self.dir(status)
                .sync()
                .map_err(|e| io_err("fsync", self.dir(status).path(), e))?;
        }
        Ok(())
    }

    /// Publishes a staged new job under its lock: fails with `AlreadyExists`
    /// if the id is in any status directory.
    fn publish_created(
        &self,
        key: &Key,
        staged: &str,
        ino: u64,
        job: &Job,
        op: &str,
    ) -> Result<()> {
        let name = key.file_name();
        let _g = self.lock(key)?;
        // The target directory is checked by the no-replace rename below.
        for status in JobStatus::ALL.into_iter().filter(|s| *s != job.status) {
            let dir = self.dir(status);
            if dir
                .stat(&name)
                .map_err(|e| io_err("stat", dir.join(&name), e))?
                .is_some()
            {
                return Err(Error::AlreadyExists { id: job.id.clone() });
            }
        }
        let to = self.dir(job.status);
        match sys::rename(self.staging.dir(), staged, to, &name, true) {
            Ok(()) => {}
            Err(e) if sys::is_exists(&e) => {
                return Err(Error::AlreadyExists { id: job.id.clone() })
            }
            Err(e) => return Err(io_err("rename", self.staging.dir().join(staged), e)),
        }
        step(op, "published");
        self.ix().upsert(key, &Facts::of_job(job, ino));
        self.emit_local(job, ChangeKind::Created);
        Ok(())
    }

    /// Publishes a staged new job, first taking its unique key when it has
    /// one (under the key's lock, held through the publish).
    fn publish_new(&self, key: &Key, staged: &str, ino: u64, job: &Job, op: &str) -> Result<()> {
        let Some((unique, at)) = rules::unique_key_claim(None, job) else {
            return self.publish_created(key, staged, ino, job, op);
        };
        let _k = self.lock_key(unique)?;
        self.take_key(unique, job, at)?;
        self.publish_created(key, staged, ino, job, op)
    }

    /// `JobStore::create`.
    pub fn create(&self, job: &Job) -> Result<()> {
        let key = Key::of(&job.id);
        let staged = self.staging.staged_name(&key, "create");
        let ino = self
            .staging
            .stage(
                &staged,
                &job.to_json(),
                self.opts.sync(),
                job.status == JobStatus::Pending,
            )
            .map_err(|e| io_err("write", self.staging.dir().join(&staged), e))?;
        step("create", "staged");
        if let Err(e) = self.publish_new(&key, &staged, ino, job, "create") {
            let _ = self.staging.dir().unlink(&staged);
            return Err(e);
        }
        self.sync_dir(job.status)
    }

    /// `JobStore::create_batch`: stage all, one barrier, publish in order.
    pub fn create_batch(&self, jobs: &[Job]) -> Result<()> {
        let mut staged: Vec<(Key, String, u64)> = Vec::with_capacity(jobs.len());
        let mut failure: Option<Error> = None;
        for job in jobs {
            let key = Key::of(&job.id);
            let name = self.staging.staged_name(&key, "create");
            match self.staging.stage(
                &name,
                &job.to_json(),
                false,
                job.status == JobStatus::Pending,
            ) {
                Ok(ino) => staged.push((key, name, ino)),
                Err(e) => {
                    failure = Some(io_err("write", self.staging.dir().join(&name), e));
                    break;
                }
            }
        }
        step("batch", "staged");
        if self.opts.sync() && !staged.is_empty() {
            if let Err(e) = self.staging.dir().syncfs() {
                for (_, name, _) in &staged {
                    let _ = self.staging.dir().unlink(name);
                }
                return Err(Error::batch(
                    0,
                    io_err("syncfs", self.staging.dir().path(), e),
                ));
            }
            step("batch", "synced");
        }
        let mut touched = [false; 5];
        let mut published = 0usize;
        for (i, (key, name, ino)) in staged.iter().enumerate() {
            let job = &jobs[i];
            match self.publish_new(key, name, *ino, job, "batch") {
                Ok(()) => {
                    touched[job.status.index()] = true;
                    published += 1;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        for (_, name, _) in &staged[published..] {
            let _ = self.staging.dir().unlink(name);
        }
        for status in JobStatus::ALL {
            if touched[status.index()] {
                // Published but perhaps not durable: the jobs are there,
                // and the caller learns that the barrier failed.
                self.sync_dir(status)
                    .map_err(|e| Error::batch(published, e))?;
            }
        }
        match failure {
            Some(e) => Err(Error::batch(published, e)),
            None => Ok(()),
        }
    }

    /// Reads job `key` wherever it is (no lock on the fast path).
    pub fn get_key(&self, key: &Key) -> Result<Job> {
        let hint = self.ix().status(key);
        let name = key.file_name();
        for status in probe_order(hint) {
            match self.read_file(status, key, &name)? {
                JobFile::Missing => continue,
                // Where the index says: the common case, no lock.
                JobFile::Job(job, _) if job.status == status && hint == Some(status) => {
                    return Ok(*job)
                }
                _ => break,
            }
        }
        // Not found, found where the index did not expect it (another
        // process's change the watcher has not reported yet), mid-move, or
        // needing repair: look again under the lock, and bring the index in
        // line, reporting the change.
        let _g = self.lock(key)?;
        match self.load_locked(key, hint) {
            Ok(found) => {
                self.adopt_locked(key, found.as_ref());
                match found {
                    Some(FoundJob { job, .. }) => Ok(job),
                    None => Err(Error::NotFound { id: key.id() }),
                }
            }
            Err(e) => {
                if e.kind() == semiont_jobs_store::ErrorKind::Corrupt {
                    self.adopt_locked(key, None);
                }
                Err(e)
            }
        }
    }

    /// `JobStore::get`.
    pub fn get(&self, id: &JobId) -> Result<Job> {
        self.get_key(&Key::of(id))
    }

    /// `JobStore::transition`. A retry of a job with a unique key takes
    /// the key's lock first (before the job's) and the key with it.
    pub fn transition(&self, expect: Expect, job: &Job) -> Result<()> {
        rules::check_transition_request(expect, job)?;
        let key = Key::of(&job.id);
        let claim = rules::unique_key_claim(Some(expect.status), job);
        let _k = match claim {
            Some((unique, _)) => Some(self.lock_key(unique)?),
            None => None,
        };
        let _g = self.lock(&key)?;
        let Some(found) = self.load_locked(&key, Some(expect.status))? else {
            self.adopt_locked(&key, None);
            return Err(Error::NotFound { id: job.id.clone() });
        };
        self.transition_loaded(&key, expect, job, found, claim)
    }

    /// `JobStore::update_with`: one lock, one read. A closure that makes a
    /// keyed job take its key again (a retry) needs the key's lock, which
    /// is only tried here (the job lock is held): when it is busy, the
    /// update is a `Conflict`, for the caller to re-read and try again.
    pub fn update_with(&self, id: &JobId, f: UpdateFn) -> Result<Updated> {
        let key = Key::of(id);
        let hint = self.ix().status(&key);
        let _g = self.lock(&key)?;
        let Some(found) = self.load_locked(&key, hint)? else {
            self.adopt_locked(&key, None);
            return Err(Error::NotFound { id: id.clone() });
        };
        let Some((expect, job)) = f(&found.job) else {
            return Ok(Updated::Declined(found.job));
        };
        rules::check_same_id(id, &job)?;
        rules::check_transition_request(expect, &job)?;
        let claim = rules::unique_key_claim(Some(expect.status), &job);
        let _k = match claim {
            Some((unique, _)) => match self.try_lock_key(unique)? {
                Some(g) => Some(g),
                None => {
                    return Err(conflict(
                        id,
                        expect,
                        Some((found.status, found.job.attempt)),
                    ))
                }
            },
            None => None,
        };
        self.transition_loaded(&key, expect, &job, found, claim)?;
        Ok(Updated::Written(job))
    }

    /// The rest of a transition once the job is loaded under its lock (and
    /// the key's lock is held when the move takes a unique key).
    fn transition_loaded(
        &self,
        key: &Key,
        expect: Expect,
        job: &Job,
        found: FoundJob,
        claim: Option<(&str, Option<Timestamp>)>,
    ) -> Result<()> {
        let FoundJob {
            status,
            job: current,
            info,
        } = found;
        if !expect.holds(status, current.attempt) {
            let attempt = current.attempt;
            self.adopt_locked(
                key,
                Some(&FoundJob {
                    status,
                    job: current,
                    info,
                }),
            );
            return Err(conflict(&job.id, expect, Some((status, attempt))));
        }
        if let Some((unique, at)) = claim {
            self.take_key(unique, job, at)?;
        }
        let ino = self.move_job(
            key,
            status,
            job,
            self.full_sync(),
            op_name(status, job.status),
        )?;
        self.ix().upsert(key, &Facts::of_job(job, ino));
        if let Some(t) = Transition::between(status, job.status) {
            self.emit_local(job, ChangeKind::Transition(t));
        }
        Ok(())
    }

    /// `JobStore::update_running`.
    pub fn update_running(&self, job: &Job) -> Result<()> {
        let expect = rules::check_update_running(job)?;
        let key = Key::of(&job.id);
        let _g = self.lock(&key)?;
        let current = self.load_locked(&key, Some(JobStatus::Running))?;
        match &current {
            Some(FoundJob {
                status, job: cur, ..
            }) if expect.holds(*status, cur.attempt) => {}
            Some(FoundJob {
                status, job: cur, ..
            }) => return Err(conflict(&job.id, expect, Some((*status, cur.attempt)))),
            None => return Err(conflict(&job.id, expect, None)),
        }
        let ino = self.move_job(&key, JobStatus::Running, job, MoveSync::Nothing, "progress")?;
        self.ix().upsert(&key, &Facts::of_job(job, ino));
        self.emit_local(job, ChangeKind::Updated);
        Ok(())
    }

    /// `JobStore::checkpoint`: under the job lock, fenced by the attempt,
    /// an in-place rewrite like a progress update.
    pub fn checkpoint(&self, req: &CheckpointRequest) -> Result<Job> {
        let key = Key::of(&req.id);
        let expect = Expect::running(req.attempt);
        let _g = self.lock(&key)?;
        let current = match self.load_locked(&key, Some(JobStatus::Running))? {
            Some(FoundJob {
                status, job: cur, ..
            }) if expect.holds(status, cur.attempt) => cur,
            Some(FoundJob {
                status, job: cur, ..
            }) => return Err(conflict(&req.id, expect, Some((status, cur.attempt)))),
            None => {
                self.adopt_locked(&key, None);
                return Err(Error::NotFound { id: req.id.clone() });
            }
        };
        let job = rules::checkpointed(current, req);
        let ino = self.move_job(
            &key,
            JobStatus::Running,
            &job,
            MoveSync::Nothing,
            "checkpoint",
        )?;
        self.ix().upsert(&key, &Facts::of_job(&job, ino));
        self.emit_local(&job, ChangeKind::Updated);
        Ok(job)
    }

    /// `JobStore::claim`.
    pub fn claim(&self, req: &ClaimRequest) -> Result<Option<Job>> {
        let now = req.now.as_millis();
        let paused = self.paused()?;
        for _ in 0..CLAIM_ATTEMPTS {
            let Some(key) = self.ix().best_candidate(&req.types, now, &paused) else {
                return Ok(None);
            };
            let _g = self.lock(&key)?;
            let name = key.file_name();
            let job = match self.read_file(JobStatus::Pending, &key, &name)? {
                JobFile::Job(job, _) if job.status == JobStatus::Pending => job,
                // Taken by another process: skip it (the watcher will
                // tell the index where it went).
                JobFile::Missing => {
                    self.ix().park(&key);
                    continue;
                }
                // Bad or mid-repair: fix the index entry and try the next
                // candidate.
                _ => {
                    self.refresh_locked(&key, Some(JobStatus::Pending))?;
                    continue;
                }
            };
            if !rules::claimable(&job, &req.types, req.now) {
                self.ix().upsert(&key, &Facts::of_job(&job, 0));
                continue;
            }
            let claimed = rules::claimed(*job, req);
            let sync = if self.opts.sync() {
                MoveSync::File
            } else {
                MoveSync::Nothing
            };
            let ino = self.move_job(&key, JobStatus::Pending, &claimed, sync, "claim")?;
            self.ix().upsert(&key, &Facts::of_job(&claimed, ino));
            self.emit_local(&claimed, ChangeKind::Transition(Transition::Claim));
            return Ok(Some(claimed));
        }
        tracing::warn!(root = %self.layout.root_path().display(), "claim gave up after too many stale candidates");
        Ok(None)
    }

    /// `JobStore::peek_next`.
    pub fn peek_next(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
        let paused = self.paused()?;
        for _ in 0..CLAIM_ATTEMPTS {
            let Some(key) = self.ix().best_candidate(types, now.as_millis(), &paused) else {
                return Ok(None);
            };
            match self.get_key(&key) {
                Ok(job) if rules::claimable(&job, types, now) => return Ok(Some(job)),
                Ok(_) | Err(Error::NotFound { .. }) | Err(Error::Corrupt { .. }) => {
                    let _g = self.lock(&key)?;
                    self.refresh_locked(&key, None)?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// `JobStore::list`.
    pub fn list(&self, filter: &JobFilter) -> Result<JobPage> {
        filter.validate()?;
        let (keys, total) = self.ix().list(filter);
        let mut jobs = Vec::with_capacity(keys.len());
        for key in keys {
            match self.get_key(&key) {
                Ok(job) if filter.matches(&job) => jobs.push(job),
                Ok(_) | Err(Error::NotFound { .. }) | Err(Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(JobPage { jobs, total })
    }

    /// `JobStore::stats`.
    pub fn stats(&self) -> QueueStats {
        let counts = self.ix().counts();
        let mut stats = QueueStats::default();
        for status in JobStatus::ALL {
            *stats.get_mut(status) = counts[status.index()];
        }
        stats.unreadable = self.quarantine.count();
        stats
    }

    /// `JobStore::type_stats`: the index's counts per type, and the paused
    /// types.
    pub fn type_stats(
        &self,
    ) -> Result<std::collections::BTreeMap<semiont_jobs_model::JobType, QueueStats>> {
        let paused = self.paused()?;
        let ix = self.ix();
        let mut out = std::collections::BTreeMap::new();
        for (name, counts) in ix.type_counts() {
            // Interned names came from parsed jobs: they parse again.
            let Ok(ty) = semiont_jobs_model::JobType::parse(name) else {
                continue;
            };
            let mut stats = QueueStats::default();
            for status in JobStatus::ALL {
                *stats.get_mut(status) = counts[status.index()];
            }
            if stats.total() > 0 {
                out.insert(ty, stats);
            }
        }
        drop(ix);
        for t in paused.iter() {
            out.entry(t.clone()).or_default().paused = true;
        }
        Ok(out)
    }

    /// The bulk operations: every job the index shows in `from` matching
    /// `selector` (a snapshot, in id order), each moved by one conditional
    /// transition; jobs that moved meanwhile, or whose unique key is held,
    /// are left alone.
    fn bulk(
        &self,
        selector: &JobSelector,
        from: JobStatus,
        next: impl Fn(Job) -> Job,
    ) -> Result<u64> {
        let mut filter = selector.filter(from);
        filter.limit = usize::MAX;
        let (mut keys, _) = self.ix().list(&filter);
        keys.sort();
        let mut moved = 0;
        for key in keys {
            let job = match self.get_key(&key) {
                Ok(job) => job,
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Corrupt) => continue,
                Err(e) => return Err(e),
            };
            if job.status != from || !selector.matches(&job) {
                continue;
            }
            let expect = Expect::exactly(&job);
            match self.transition(expect, &next(job)) {
                Ok(()) => moved += 1,
                Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
                Err(e) if e.unique_holder().is_some() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    /// `JobStore::cancel_pending`.
    pub fn cancel_pending(&self, selector: &JobSelector, now: Timestamp) -> Result<u64> {
        self.bulk(selector, JobStatus::Pending, |job| {
            rules::cancelled(job, now)
        })
    }

    /// `JobStore::retry_failed`.
    pub fn retry_failed(&self, selector: &JobSelector) -> Result<u64> {
        self.bulk(selector, JobStatus::Failed, rules::retried)
    }

    /// `JobStore::finished_before`.
    pub fn finished_before(&self, before: Timestamp, limit: usize) -> Vec<FinishedJob> {
        self.ix()
            .finished_before(before.as_millis(), limit)
            .into_iter()
            .map(|(at, key, status)| FinishedJob {
                id: key.id(),
                status,
                completed_at: Timestamp::from_millis(at),
            })
            .collect()
    }

    /// `JobStore::delete`.
    pub fn delete(&self, id: &JobId, expect: Expect) -> Result<()> {
        rules::check_delete_request(id, expect)?;
        let key = Key::of(id);
        let _g = self.lock(&key)?;
        let Some(FoundJob {
            status,
            job: current,
            info,
        }) = self.load_locked(&key, Some(expect.status))?
        else {
            self.adopt_locked(&key, None);
            return Err(Error::NotFound { id: id.clone() });
        };
        if !expect.holds(status, current.attempt) {
            let attempt = current.attempt;
            self.adopt_locked(
                &key,
                Some(&FoundJob {
                    status,
                    job: current,
                    info,
                }),
            );
            return Err(conflict(id, expect, Some((status, attempt))));
        }
        let name = key.file_name();
        let dir = self.dir(status);
        dir.unlink(&name)
            .map_err(|e| io_err("delete", dir.join(&name), e))?;
        step("delete", "unlinked");
        self.sync_dir(status)?;
        self.ix().remove(&key);
        drop(_g);
        if let Some(unique) = &current.unique_key {
            // After the job lock: key locks come first.
            self.release_key(unique, id);
        }
        self.emit(
            Some(id.clone()),
            ChangeKind::Deleted,
            None,
            Some(current.job_type),
            ChangeOrigin::Local,
        );
        Ok(())
    }
}
