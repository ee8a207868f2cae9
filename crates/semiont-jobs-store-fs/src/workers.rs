//! Worker liveness: `workers/<worker-id>.lock`, exclusively `flock`ed by the
//! store instance that registered the worker for as long as it lives. A
//! lock file that exists but is not locked means the worker is dead (its
//! process exited or it unregistered); no lock file means its liveness
//! cannot be seen, and the job's lease decides.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom, Write};
use std::time::Duration;

use semiont_jobs_model::{Job, JobId, JobStatus, Timestamp};
use semiont_jobs_store::{Error, Heartbeat, LostJob, Result, WorkerInfo, WorkerRecord};
use serde_json::json;

use crate::error::io_err;
use crate::index::Facts;
use crate::inner::{FoundJob, Inner, JobFile};
use crate::key::Key;
use crate::staging::MoveSync;
use crate::sys;

/// A worker registered by this instance.
#[derive(Debug)]
pub(crate) struct Registered {
    /// The locked worker file.
    file: File,
    /// Lease length promised by the worker.
    lease: Duration,
}

/// What recovery concludes about a running job's worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Leave the job alone.
    Alive,
    /// Recover the job; the word goes into its error message.
    Dead(&'static str),
}

fn invalid(msg: String) -> Error {
    semiont_jobs_model::Error::InvalidParams(msg).into()
}

/// Validates a worker id (it becomes a file name) like a job id.
fn check_worker_id(id: &str) -> Result<String> {
    match JobId::parse(id) {
        Ok(_) => Ok(format!("{id}.lock")),
        Err(semiont_jobs_model::Error::InvalidId { reason, .. }) => {
            Err(invalid(format!("invalid worker id {id:?}: {reason}")))
        }
        Err(e) => Err(e.into()),
    }
}

fn write_info(file: &mut File, content: &serde_json::Value) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(content).unwrap_or_default();
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&bytes)
}

/// A worker file's content, when it is readable JSON.
fn read_info(file: &mut File) -> Option<serde_json::Value> {
    let mut s = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

/// The state a worker file's content says (`stopped` after unregister).
fn says_stopped(file: &mut File) -> bool {
    read_info(file)
        .and_then(|v| {
            v.get("state")
                .and_then(|s| s.as_str())
                .map(|s| s == "stopped")
        })
        .unwrap_or(false)
}

/// How many times `register_worker` retries a lock held only briefly by a
/// recovery pass probing the file.
const REGISTER_TRIES: u32 = 50;

impl Inner {
    fn worker_content(&self, id: &str, lease: Duration, state: &str) -> serde_json::Value {
        json!({
            "workerId": id,
            "state": state,
            "host": semiont_jobs_store::host_name(),
            "pid": sys::pid(),
            "instance": self.instance,
            "leaseMs": lease.as_millis() as u64,
            "updatedAt": Timestamp::now(),
        })
    }

    /// `JobStore::register_worker`.
    pub fn register_worker(&self, worker: &WorkerInfo) -> Result<()> {
        let name = check_worker_id(&worker.id)?;
        let dir = &self.layout.workers;
        let path = dir.join(&name);
        {
            let mut map = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(reg) = map.get_mut(&worker.id) {
                reg.lease = worker.lease;
                let content = self.worker_content(&worker.id, worker.lease, "running");
                write_info(&mut reg.file, &content).map_err(|e| io_err("write", &path, e))?;
                return Ok(());
            }
        }
        let mut tries = 0;
        let mut file = loop {
            tries += 1;
            let file = dir
                .open_rw(&name, true)
                .map_err(|e| io_err("open", &path, e))?;
            match file.try_lock() {
                Ok(()) => {
                    // The file may have been removed by a GC pass between
                    // our open and our lock: then lock the new one.
                    let ino = file
                        .metadata()
                        .map(|m| std::os::unix::fs::MetadataExt::ino(&m));
                    let now = dir.stat(&name).ok().flatten().map(|i| i.ino);
                    if ino.ok() == now {
                        break file;
                    }
                }
                Err(_) if tries < REGISTER_TRIES => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(_) => {
                    return Err(invalid(format!(
                        "worker {} is registered by another live process ({})",
                        worker.id,
                        path.display()
                    )))
                }
            }
        };
        let content = self.worker_content(&worker.id, worker.lease, "running");
        write_info(&mut file, &content).map_err(|e| io_err("write", &path, e))?;
        self.workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                worker.id.clone(),
                Registered {
                    file,
                    lease: worker.lease,
                },
            );
        Ok(())
    }

    /// `JobStore::heartbeat`: renews the lease of every running job of the
    /// worker (in place, never synced), touches the worker file, and
    /// returns the held jobs that are no longer the worker's at that
    /// attempt. Reads only the worker's running jobs, plus (under their
    /// lock) held jobs the index does not show as the worker's.
    pub fn heartbeat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
        let worker_id = beat.worker_id.as_str();
        let lease = {
            let mut map = self.workers.lock().unwrap_or_else(|e| e.into_inner());
            let Some(reg) = map.get_mut(worker_id) else {
                return Err(invalid(format!("worker {worker_id} is not registered")));
            };
            let content = self.worker_content(worker_id, reg.lease, "running");
            let _ = write_info(&mut reg.file, &content);
            reg.lease
        };
        let mut holding: HashMap<JobId, u32> = HashMap::new();
        // (Not in the `for` head: the index guard would live through the loop.)
        let keys = self.ix().running_of_worker(worker_id);
        for key in keys {
            let _g = self.lock(&key)?;
            let name = key.file_name();
            let JobFile::Job(job, _) = self.read_file(JobStatus::Running, &key, &name)? else {
                continue;
            };
            if job.status != JobStatus::Running || job.worker_id.as_deref() != Some(worker_id) {
                continue;
            }
            let mut job: Job = *job;
            job.lease_expires_at = Some(beat.now.add(lease));
            let ino = self.move_job(
                &key,
                JobStatus::Running,
                &job,
                MoveSync::Nothing,
                "heartbeat",
            )?;
            self.ix().upsert(&key, &Facts::of_job(&job, ino));
            holding.insert(job.id.clone(), job.attempt);
        }
        let mut lost = Vec::new();
        for (id, attempt) in &beat.held {
            if holding.get(id) == Some(attempt) {
                continue;
            }
            // Not seen as ours through the index: read it under its lock.
            let key = Key::of(id);
            let _g = self.lock(&key)?;
            let found = match self.load_locked(&key, Some(JobStatus::Running)) {
                Ok(found) => found,
                Err(e) if e.kind() == semiont_jobs_store::ErrorKind::Corrupt => None,
                Err(e) => return Err(e),
            };
            match found {
                Some(FoundJob {
                    status: JobStatus::Running,
                    job,
                    ..
                }) if job.attempt == *attempt && job.worker_id.as_deref() == Some(worker_id) => {}
                Some(FoundJob { status, .. }) => lost.push(LostJob {
                    id: id.clone(),
                    attempt: *attempt,
                    status: Some(status),
                }),
                None => lost.push(LostJob {
                    id: id.clone(),
                    attempt: *attempt,
                    status: None,
                }),
            }
        }
        Ok(lost)
    }

    /// `JobStore::workers`: every worker file, alive when it is locked (by
    /// this or another live process) and not marked stopped.
    pub fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        let dir = &self.layout.workers;
        let names = dir.list().map_err(|e| io_err("list", dir.path(), e))?;
        let mut out = Vec::new();
        for (name, _) in names {
            let Some(id) = name.strip_suffix(".lock") else {
                continue;
            };
            let Ok(mut file) = dir.open_rw(&name, false) else {
                continue;
            };
            let mine = self
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains_key(id);
            let alive = mine
                || match file.try_lock_shared() {
                    Ok(()) => {
                        let _ = file.unlock();
                        false
                    }
                    Err(_) => true,
                };
            let info = read_info(&mut file);
            let field = |k: &str| info.as_ref().and_then(|v| v.get(k));
            out.push(WorkerRecord {
                id: id.to_owned(),
                alive,
                lease: Duration::from_millis(
                    field("leaseMs").and_then(|v| v.as_u64()).unwrap_or(0),
                ),
                last_seen: field("updatedAt")
                    .and_then(|v| v.as_str())
                    .and_then(|t| Timestamp::parse(t).ok()),
                host: field("host").and_then(|v| v.as_str()).map(str::to_owned),
                pid: field("pid")
                    .and_then(|v| v.as_u64())
                    .and_then(|p| u32::try_from(p).ok()),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// `JobStore::unregister_worker`: marks the worker file `stopped` and
    /// releases its lock, so its running jobs are recoverable at once.
    pub fn unregister_worker(&self, worker_id: &str) -> Result<()> {
        let name = check_worker_id(worker_id)?;
        let dir = &self.layout.workers;
        let path = dir.join(&name);
        let registered = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(worker_id);
        let content = self.worker_content(worker_id, Duration::ZERO, "stopped");
        match registered {
            Some(mut reg) => {
                write_info(&mut reg.file, &content).map_err(|e| io_err("write", &path, e))?;
                let _ = reg.file.unlock();
            }
            None => {
                let mut file = dir
                    .open_rw(&name, true)
                    .map_err(|e| io_err("open", &path, e))?;
                // Held by another live process: that registration stands.
                if file.try_lock().is_ok() {
                    write_info(&mut file, &content).map_err(|e| io_err("write", &path, e))?;
                    let _ = file.unlock();
                }
            }
        }
        Ok(())
    }

    /// Whether the worker of running `job` is alive, by (in order): this
    /// instance's registrations, the worker's lock file, the job's lease
    /// against the caller's `now` (with no `now`, a worker whose liveness
    /// cannot be seen counts as alive).
    pub fn liveness(
        &self,
        job: &Job,
        now: Option<Timestamp>,
        cache: &mut HashMap<String, Verdict>,
    ) -> Verdict {
        if let Some(w) = job.worker_id.as_deref() {
            let seen = match cache.get(w) {
                Some(v) => Some(*v),
                None => {
                    let v = self.worker_file_verdict(w);
                    if let Some(v) = v {
                        cache.insert(w.to_owned(), v);
                    }
                    v
                }
            };
            if let Some(v) = seen {
                return v;
            }
        }
        match now {
            None => Verdict::Alive,
            Some(now) if job.lease_expires_at.is_some_and(|t| t >= now) => Verdict::Alive,
            Some(_) => Verdict::Dead("lost its lease"),
        }
    }

    /// `Some` when the worker's liveness can be seen on this host.
    fn worker_file_verdict(&self, worker: &str) -> Option<Verdict> {
        if self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(worker)
        {
            return Some(Verdict::Alive);
        }
        let name = check_worker_id(worker).ok()?;
        let mut file = match self.layout.workers.open_rw(&name, false) {
            Ok(f) => f,
            Err(e) if sys::is_not_found(&e) => return None,
            Err(e) => {
                tracing::warn!(worker, error = %e, "cannot open worker file; using the lease");
                return None;
            }
        };
        match file.try_lock_shared() {
            Ok(()) => {
                let stopped = says_stopped(&mut file);
                let _ = file.unlock();
                Some(Verdict::Dead(if stopped { "stopped" } else { "died" }))
            }
            Err(_) => Some(Verdict::Alive),
        }
    }

    /// Removes worker files of dead workers that no running job names.
    pub fn gc_workers(&self) {
        let dir = &self.layout.workers;
        let Ok(entries) = dir.list() else { return };
        let running = self.dir(JobStatus::Running);
        let Ok(names) = running.list() else { return };
        let mut referenced = std::collections::HashSet::new();
        for (name, _) in names {
            let Some(key) = Key::from_file_name(&name) else {
                continue;
            };
            if let Ok(JobFile::Job(job, _)) = self.read_file(JobStatus::Running, &key, &name) {
                if let Some(w) = job.worker_id {
                    referenced.insert(w);
                }
            }
        }
        let mine: std::collections::HashSet<String> = self
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for (name, _) in entries {
            let Some(worker) = name.strip_suffix(".lock") else {
                continue;
            };
            if mine.contains(worker) || referenced.contains(worker) {
                continue;
            }
            let Ok(file) = dir.open_rw(&name, false) else {
                continue;
            };
            if file.try_lock().is_ok() {
                let _ = dir.unlink(&name);
                let _ = file.unlock();
            }
        }
    }
}
