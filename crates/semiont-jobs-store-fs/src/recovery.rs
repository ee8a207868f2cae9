//! Recovery: repairing one job left inconsistent by an interrupted
//! operation (roll forward or back, duplicates, bad copies), cleaning the
//! staging directories of dead instances, and returning running jobs of
//! dead workers to pending (or failed).

use std::collections::HashMap;

use semiont_jobs_model::{Job, JobStatus, Timestamp, Transition};
use semiont_jobs_store::{rules, ChangeKind, RecoveryReport, Result};

use crate::error::io_err;
use crate::index::Facts;
use crate::inner::{step, FoundJob, Inner, JobFile};
use crate::key::Key;
use crate::layout::{self, StagedFor};
use crate::staging::MoveSync;
use crate::sys::{self, Dir, EntryType};
use crate::workers::Verdict;

/// Duplicate ranking: which copy of a job found in two directories is kept.
/// Higher wins: a copy whose content matches its directory, then the higher
/// attempt, then the more advanced status.
fn rank(dir: JobStatus, job: &Job) -> (bool, u32, u8) {
    (job.status == dir, job.attempt, status_rank(dir))
}

/// The last part of [`rank`]: a more advanced status ranks higher.
pub(crate) fn status_rank(status: JobStatus) -> u8 {
    match status {
        JobStatus::Pending => 0,
        JobStatus::Running => 1,
        JobStatus::Cancelled => 2,
        JobStatus::Failed => 3,
        JobStatus::Complete => 4,
    }
}

impl Inner {
    /// Staged files (in any instance's staging directory) holding content
    /// for `key` in `target`, as (directory, name, job), best first.
    fn find_staged(&self, key: &Key, target: JobStatus) -> Result<Vec<(Dir, String, Job)>> {
        let mut found = Vec::new();
        let tmp_root = &self.layout.tmp_root;
        let entries = tmp_root
            .list()
            .map_err(|e| io_err("list", tmp_root.path(), e))?;
        for (inst, ty) in entries {
            if ty != EntryType::Dir {
                continue;
            }
            let Ok(dir) = tmp_root.open_sub(&inst) else {
                continue;
            };
            let Ok(names) = dir.list() else { continue };
            for (name, _) in names {
                let Some((k, StagedFor::Status(t))) = layout::parse_staged(&name) else {
                    continue;
                };
                if k != *key || t != target {
                    continue;
                }
                let mut buf = Vec::new();
                if let Ok(info) = dir.read(&name, &mut buf) {
                    if let JobFile::Job(job, _) = crate::inner::judge(&buf, key, info) {
                        if job.status == target {
                            let seq: u64 = name
                                .rsplit('.')
                                .next()
                                .and_then(|s| s.parse().ok())
                                .unwrap_or(0);
                            found.push((job.attempt, seq, inst.clone(), name.clone(), *job));
                        }
                    }
                }
            }
        }
        found.sort_by(|a, b| (b.0, b.1, &b.2).cmp(&(a.0, a.1, &a.2)));
        let mut out = Vec::new();
        for (_, _, inst, name, job) in found {
            if let Ok(dir) = tmp_root.open_sub(&inst) {
                out.push((dir, name, job));
            }
        }
        Ok(out)
    }

    /// Removes every staged transition file for `key` (never staged
    /// creates: those belong to a live batch until their instance dies).
    fn drop_staged(&self, key: &Key) {
        let tmp_root = &self.layout.tmp_root;
        let Ok(entries) = tmp_root.list() else { return };
        for (inst, ty) in entries {
            if ty != EntryType::Dir {
                continue;
            }
            let Ok(dir) = tmp_root.open_sub(&inst) else {
                continue;
            };
            let Ok(names) = dir.list() else { continue };
            for (name, _) in names {
                if let Some((k, StagedFor::Status(_))) = layout::parse_staged(&name) {
                    if k == *key {
                        let _ = dir.unlink(&name);
                    }
                }
            }
        }
    }

    /// Makes job `key` consistent (the caller holds its lock): bad copies
    /// quarantined, duplicates resolved by [`rank`], and a file whose
    /// content status differs from its directory — an operation stopped
    /// between its move and its content replace — rolled forward (staged
    /// content found) or back (claims, or nothing staged). Returns the
    /// number of repairs.
    pub fn repair_locked(&self, key: &Key) -> Result<u64> {
        let name = key.file_name();
        let mut repairs = 0;
        let mut copies: Vec<(JobStatus, Job)> = Vec::new();
        for status in JobStatus::ALL {
            match self.read_file(status, key, &name)? {
                JobFile::Missing => {}
                JobFile::Job(job, _) => copies.push((status, *job)),
                JobFile::Bad(reason, info) => {
                    if !self.quarantine.within_grace(info.as_ref())
                        && self.quarantine.set_aside(
                            self.dir(status),
                            &name,
                            status.as_str(),
                            &reason,
                        )?
                    {
                        repairs += 1;
                    }
                }
            }
        }
        copies.sort_by_key(|c| std::cmp::Reverse(rank(c.0, &c.1)));
        if copies.len() > 1 {
            let kept = copies[0].0;
            for (status, _) in &copies[1..] {
                let reason = format!(
                    "duplicate: job {key} is also in {kept}/ (that copy ranks higher and was kept)"
                );
                if self
                    .quarantine
                    .set_aside(self.dir(*status), &name, status.as_str(), &reason)?
                {
                    repairs += 1;
                }
            }
            step("repair", "deduplicated");
        }
        let Some((dir_status, job)) = copies.into_iter().next() else {
            return Ok(repairs);
        };
        if job.status == dir_status {
            return Ok(repairs);
        }
        let (content, dir) = (job.status, dir_status);
        if Transition::between(content, dir).is_none() {
            let reason = format!("status field says {content} but the file is in {dir}/");
            if self
                .quarantine
                .set_aside(self.dir(dir), &name, dir.as_str(), &reason)?
            {
                repairs += 1;
            }
            return Ok(repairs);
        }
        let staged = if (content, dir) == (JobStatus::Pending, JobStatus::Running) {
            Vec::new()
        } else {
            self.find_staged(key, dir)?
        };
        match staged.first() {
            Some((sdir, sname, _)) => {
                sys::rename(sdir, sname, self.dir(dir), &name, false)
                    .map_err(|e| io_err("rename", sdir.join(sname), e))?;
                step("repair", "rolled-forward");
                tracing::info!(job = %key, status = %dir, "rolled an interrupted transition forward");
            }
            None => {
                match sys::rename(self.dir(dir), &name, self.dir(content), &name, true) {
                    Ok(()) => {}
                    Err(e) if sys::is_exists(&e) => {
                        // Cannot happen after deduplication; keep the copy
                        // that is where its content says.
                        self.quarantine.set_aside(
                            self.dir(dir),
                            &name,
                            dir.as_str(),
                            "duplicate",
                        )?;
                    }
                    Err(e) => return Err(io_err("rename", self.dir(dir).join(&name), e)),
                }
                step("repair", "rolled-back");
                tracing::info!(job = %key, status = %content, "rolled an interrupted transition back");
            }
        }
        self.drop_staged(key);
        if self.opts.sync() {
            let _ = self.dir(dir).sync();
            let _ = self.dir(content).sync();
        }
        Ok(repairs + 1)
    }

    /// Resolves the staged files of dead instances (their staging
    /// directory is not locked) and removes those directories.
    pub fn clean_staging(&self) -> Result<u64> {
        let tmp_root = &self.layout.tmp_root;
        let mut repaired = 0;
        let entries = tmp_root
            .list()
            .map_err(|e| io_err("list", tmp_root.path(), e))?;
        for (inst, ty) in entries {
            if inst == self.instance {
                continue;
            }
            if ty != EntryType::Dir {
                // Nothing of ours lives directly in tmp/.
                if tmp_root.unlink(&inst).is_ok() {
                    repaired += 1;
                }
                continue;
            }
            let Ok(dir) = tmp_root.open_sub(&inst) else {
                continue;
            };
            let Ok(lock) = dir.as_file() else { continue };
            match lock.try_lock() {
                Ok(()) => {}
                Err(_) => continue, // a live instance
            }
            let names = match dir.list() {
                Ok(names) => names,
                // Its instance closed and removed it between our listing of
                // `tmp/` and now (the lock is released after the removal).
                Err(e) if sys::is_not_found(&e) => continue,
                Err(e) => return Err(io_err("list", dir.path(), e)),
            };
            for (name, _) in names {
                match layout::parse_staged(&name) {
                    Some((key, StagedFor::Status(target))) => {
                        let _g = self.lock(&key)?;
                        if dir.stat(&name).ok().flatten().is_some() {
                            let mismatch = matches!(
                                self.read_file(target, &key, &key.file_name())?,
                                JobFile::Job(job, _) if job.status != target
                            );
                            if mismatch {
                                repaired += self.repair_locked(&key)?;
                            }
                        }
                        step("recover", "staging-resolved");
                        if dir.unlink(&name).is_ok() {
                            repaired += 1;
                        }
                    }
                    _ => {
                        // A create that was never acknowledged, or junk.
                        if dir.unlink(&name).is_ok() {
                            repaired += 1;
                        }
                    }
                }
            }
            match tmp_root.rmdir(&inst) {
                Ok(()) => {}
                Err(e) if sys::is_not_found(&e) => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.path().display(), error = %e, "cannot remove a dead instance's staging directory")
                }
            }
            drop(lock);
        }
        Ok(repaired)
    }

    /// Returns running jobs of dead workers to pending or failed.
    fn recover_running(&self, now: Option<Timestamp>, report: &mut RecoveryReport) -> Result<()> {
        let running = self.dir(JobStatus::Running);
        let names = running
            .list()
            .map_err(|e| io_err("list", running.path(), e))?;
        let mut verdicts: HashMap<String, Verdict> = HashMap::new();
        for (name, _) in names {
            let Some(key) = Key::from_file_name(&name) else {
                continue; // foreign names are the scan's business
            };
            let job = match self.read_file(JobStatus::Running, &key, &name)? {
                JobFile::Missing => continue,
                JobFile::Job(job, _) if job.status == JobStatus::Running => job,
                _ => {
                    let _g = self.lock(&key)?;
                    report.repaired += self.repair_locked(&key)?;
                    self.refresh_locked(&key, None)?;
                    continue;
                }
            };
            let why = match self.liveness(&job, now, &mut verdicts) {
                Verdict::Alive => continue,
                Verdict::Dead(why) => why,
            };
            let _g = self.lock(&key)?;
            // Re-check under the lock: still the same attempt of the same worker?
            let Some(FoundJob {
                status,
                job: current,
                ..
            }) = self.load_locked(&key, Some(JobStatus::Running))?
            else {
                continue;
            };
            if status != JobStatus::Running
                || current.attempt != job.attempt
                || current.worker_id != job.worker_id
            {
                continue;
            }
            let new = rules::recovered(current, now.unwrap_or_else(Timestamp::now), why);
            let sync = if self.opts.sync() {
                MoveSync::Full
            } else {
                MoveSync::Nothing
            };
            let ino = self.move_job(&key, JobStatus::Running, &new, sync, "recover")?;
            self.ix().upsert(&key, &Facts::of_job(&new, ino));
            self.emit_local(&new, ChangeKind::Recovered);
            tracing::info!(job = %new.id, status = %new.status, why, "recovered a dead worker's job");
            if new.status == JobStatus::Pending {
                report.requeued.push(new.id);
            } else {
                report.failed.push(new.id);
            }
        }
        Ok(())
    }

    /// One recovery pass (serialized across processes by `locks/recovery.lock`).
    ///
    /// `now` is the caller's clock (`JobStore::recover`): jobs whose worker's
    /// liveness cannot be seen are judged by their lease against it. The
    /// store's own passes (at open, on its timer) pass `None`: they recover
    /// only jobs whose worker is seen dead, never by a lease, so a caller on
    /// another clock (a fake one in tests) is never overruled by the wall
    /// clock. See the clock rule on `JobStore`.
    pub fn recover(&self, now: Option<Timestamp>) -> Result<RecoveryReport> {
        let _m = self
            .recovery_mutex
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        layout::flock_exclusive(&self.recovery_lock)
            .map_err(|e| io_err("lock", self.layout.locks.join(layout::RECOVERY_LOCK), e))?;
        let before = self.quarantine.count();
        let result = (|| -> Result<RecoveryReport> {
            let mut report = RecoveryReport {
                repaired: self.clean_staging()?,
                ..RecoveryReport::default()
            };
            self.recover_running(now, &mut report)?;
            self.gc_workers();
            Ok(report)
        })();
        let _ = self.recovery_lock.unlock();
        let mut report = result?;
        report.unreadable = self.quarantine.count().saturating_sub(before);
        Ok(report)
    }
}
