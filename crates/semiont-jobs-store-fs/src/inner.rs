//! The shared state of an open store ([`Inner`], which holds its parts)
//! and the protocol's building blocks: reading and judging a job file,
//! loading a job under its lock, the staged move (stage → rename →
//! replace, with [`Staging`]'s files), and change events.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use semiont_jobs_model::{Job, JobId, JobStatus, JobType, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin, Error, JobChange, Result};
use tokio::sync::broadcast;

use crate::error::io_err;
use crate::index::{Facts, Index};
use crate::key::Key;
use crate::layout::{JobGuard, Layout, Stripes};
use crate::options::FsOptions;
use crate::quarantine::Quarantine;
use crate::recovery::status_rank;
use crate::staging::{MoveSync, Staging};
use crate::sys::{self, Dir, FileInfo};
use crate::workers::Registered;

/// Calls the fault-injection hook after step `what` of operation `op`.
#[inline]
pub(crate) fn step(op: &str, what: &str) {
    #[cfg(feature = "fault-injection")]
    crate::fault::step(op, what);
    #[cfg(not(feature = "fault-injection"))]
    let _ = (op, what);
}

/// What reading a file in a status directory found.
#[derive(Debug)]
pub(crate) enum JobFile {
    /// No such file.
    Missing,
    /// A valid job document whose `id` matches the file name (its `status`
    /// may still differ from the directory: the caller checks).
    Job(Box<Job>, FileInfo),
    /// Not a usable job file, with the reason (and the file's info when it
    /// could be seen).
    Bad(String, Option<FileInfo>),
}

/// A job found on disk by [`Inner::load_locked`].
#[derive(Debug)]
pub(crate) struct FoundJob {
    /// The status directory it is in (its document's status agrees).
    pub status: JobStatus,
    /// The job as its file holds it.
    pub job: Job,
    /// The file's metadata (its inode identifies this version).
    pub info: FileInfo,
}

/// The shared state of one open store: its parts, and the job protocol
/// that joins them (the methods here and in `ops`, `recovery`, `scan`,
/// `workers`, `unique`, `control`, `snapshot`, `watch`).
///
/// | part | owns |
/// | --- | --- |
/// | [`Layout`], `stripes`, `key_stripes` | the directories, the per-job and per-key lock stripes |
/// | [`Staging`] | `tmp/<instance>`: staged files, spares, exchange-or-rename, whole-file publish |
/// | [`Quarantine`] | `quarantine/`: setting unusable files aside, the grace period, the count |
/// | `index`, `tx` | what claims, lists and stats read; change events |
/// | `recovery_lock`, `recovery_mutex`, `rescan_mutex` | one recovery pass, one rescan at a time |
/// | `workers`, `paused` | this instance's registered workers; the paused types |
///
/// Opening and closing are `open.rs`'s; the snapshot's file format is
/// `snapshot/codec.rs`'s.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The jobs directory's open subdirectories.
    pub layout: Layout,
    /// The options the store was opened with.
    pub opts: FsOptions,
    /// Lock stripes of jobs (`locks/stripe-NN`).
    pub stripes: Stripes,
    /// Lock stripes of unique keys (`locks/unique-NN`), taken before job
    /// locks.
    pub key_stripes: Stripes,
    /// This instance's staging directory and what is written through it.
    pub staging: Staging,
    /// This instance's name (`<pid>-<random>`, its staging directory's).
    pub instance: String,
    /// `locks/recovery.lock`: serializes recovery passes across processes.
    pub recovery_lock: File,
    /// Serializes this instance's recovery passes (the flock is per file
    /// description, not per thread).
    pub recovery_mutex: Mutex<()>,
    /// Serializes this instance's rescans.
    pub rescan_mutex: Mutex<()>,
    /// The in-memory index (see [`Inner::ix`]).
    pub index: Mutex<Index>,
    /// Change events to subscribers.
    pub tx: broadcast::Sender<JobChange>,
    /// Where unusable files are set aside, and their count.
    pub quarantine: Quarantine,
    /// The workers this instance registered, with their lock files.
    pub workers: Mutex<HashMap<String, Registered>>,
    /// The paused types as last read from `paused.json`.
    pub paused: Mutex<crate::control::PausedCache>,
}

impl Inner {
    /// The index, locked (never held across IO of another job's lock).
    pub fn ix(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks a job across threads and processes.
    pub fn lock(&self, key: &Key) -> Result<JobGuard<'_>> {
        self.stripes
            .lock(key)
            .map_err(|e| io_err("lock", self.layout.locks.path(), e))
    }

    /// The directory of `status`.
    pub fn dir(&self, status: JobStatus) -> &Dir {
        self.layout.dir(status)
    }

    /// Sends a change event (nobody listening is fine).
    pub fn emit(
        &self,
        id: Option<JobId>,
        kind: ChangeKind,
        status: Option<JobStatus>,
        job_type: Option<JobType>,
        origin: ChangeOrigin,
    ) {
        let _ = self.tx.send(JobChange {
            id,
            kind,
            status,
            job_type,
            origin,
            missed: 0,
        });
    }

    /// Sends a local change event about `job`.
    pub fn emit_local(&self, job: &Job, kind: ChangeKind) {
        self.emit(
            Some(job.id.clone()),
            kind,
            Some(job.status),
            Some(job.job_type.clone()),
            ChangeOrigin::Local,
        );
    }

    /// Reads and judges `status/<name>` for `key`.
    pub fn read_file(&self, status: JobStatus, key: &Key, name: &str) -> Result<JobFile> {
        let mut buf = Vec::new();
        let dir = self.dir(status);
        let info = match dir.read(name, &mut buf) {
            Ok(info) => info,
            Err(e) if sys::is_not_found(&e) => return Ok(JobFile::Missing),
            Err(e) if sys::is_symlink_error(&e) => {
                return Ok(JobFile::Bad(
                    "a symlink (symlinks are refused)".into(),
                    None,
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Ok(JobFile::Bad(e.to_string(), None))
            }
            Err(e)
                if e.kind() == io::ErrorKind::PermissionDenied
                    || e.raw_os_error() == Some(libc::EIO) =>
            {
                return Ok(JobFile::Bad(format!("unreadable: {e}"), None))
            }
            Err(e) => return Err(io_err("read", dir.join(name), e)),
        };
        Ok(judge(&buf, key, info))
    }

    /// Loads the job `key` under its lock (the caller holds it): looks in
    /// `hint`'s directory first, then the others; repairs an interrupted
    /// operation and quarantines bad copies on the way. `None` when the job
    /// is nowhere; `Corrupt` when its only copy is unreadable.
    pub fn load_locked(&self, key: &Key, hint: Option<JobStatus>) -> Result<Option<FoundJob>> {
        let name = key.file_name();
        let order = probe_order(hint);
        for _round in 0..4 {
            let mut corrupt: Option<Error> = None;
            let mut repaired = false;
            for &status in &order {
                match self.read_file(status, key, &name)? {
                    JobFile::Missing => {}
                    JobFile::Job(job, info) if job.status == status => {
                        return Ok(Some(FoundJob {
                            status,
                            job: *job,
                            info,
                        }));
                    }
                    JobFile::Job(..) => {
                        self.repair_locked(key)?;
                        repaired = true;
                        break;
                    }
                    JobFile::Bad(reason, info) => {
                        let path = self.dir(status).join(&name);
                        if !self.quarantine.within_grace(info.as_ref()) {
                            self.quarantine.set_aside(
                                self.dir(status),
                                &name,
                                status.as_str(),
                                &reason,
                            )?;
                        }
                        corrupt = Some(Error::corrupt(path.display(), reason));
                    }
                }
            }
            if !repaired {
                return match corrupt {
                    Some(e) => Err(e),
                    None => Ok(None),
                };
            }
        }
        Err(Error::corrupt(
            self.layout.root_path().join(&name).display(),
            "the job could not be repaired",
        ))
    }

    /// Like [`Inner::load_locked`], and brings the index in line with what
    /// was found. Returns the index's previous status too.
    ///
    /// What the index did not know yet is a change another process made
    /// (this process indexes its own writes as it makes them), which the
    /// watcher may not have reported yet. When the read changes the job's
    /// status, its existence, or a running job's file, this sends the
    /// `External` change event for it, as the watcher would: the watcher's
    /// own hint for that change, coming later, then finds the index in line
    /// and stays quiet. Whoever corrects the index reports the change, so
    /// it is reported exactly once, whichever read saw it first (a `get`
    /// of a job that finished between two watcher batches once made its
    /// completion invisible to subscribers).
    pub fn refresh_locked(
        &self,
        key: &Key,
        hint: Option<JobStatus>,
    ) -> Result<(Option<JobStatus>, Option<FoundJob>)> {
        let found = match self.load_locked(key, hint) {
            Ok(found) => found,
            Err(e) if e.kind() == semiont_jobs_store::ErrorKind::Corrupt => None,
            Err(e) => return Err(e),
        };
        Ok((self.adopt_locked(key, found.as_ref()), found))
    }

    /// Puts what a locked read found (`None`: nothing readable) into the
    /// index and reports what that changes (see [`Inner::refresh_locked`]).
    /// Returns the index's previous status.
    pub fn adopt_locked(&self, key: &Key, found: Option<&FoundJob>) -> Option<JobStatus> {
        let mut ix = self.ix();
        let old_ino = ix.running_ino(key);
        let old_type = ix.job_type(key).and_then(|t| JobType::parse(t).ok());
        let prev = match found {
            Some(FoundJob { job, info, .. }) => ix.upsert(key, &Facts::of_job(job, info.ino)),
            None => ix.remove(key),
        };
        drop(ix);
        let change = match (prev, found) {
            (None, None) => None,
            (None, Some(FoundJob { status: s, job, .. })) => {
                Some((ChangeKind::Created, Some(*s), Some(job.job_type.clone())))
            }
            (
                Some(p),
                Some(FoundJob {
                    status: s,
                    job,
                    info,
                }),
            ) => {
                let kind = if p != *s {
                    Some(
                        Transition::between(p, *s)
                            .map_or(ChangeKind::Updated, ChangeKind::Transition),
                    )
                } else if *s == JobStatus::Running && old_ino != Some(info.ino) {
                    Some(ChangeKind::Updated)
                } else {
                    None
                };
                kind.map(|k| (k, Some(*s), Some(job.job_type.clone())))
            }
            (Some(_), None) => Some((ChangeKind::Deleted, None, old_type)),
        };
        if let Some((kind, status, job_type)) = change {
            self.emit(
                Some(key.id()),
                kind,
                status,
                job_type,
                ChangeOrigin::External,
            );
        }
        prev
    }

    /// The staged move of a job from `from` to `to` with new content `job`
    /// (the caller holds the job lock and has checked the precondition):
    /// 1. write the new content to `tmp/<instance>/<id>.<to>.<n>`
    ///    (`fdatasync` when durable), 2. rename `from/<id>.json` to
    ///    `to/<id>.json` (no replace), 3. replace it by the staged file
    ///    ([`Staging::replace`]), 4. `fsync` both directories when durable. Returns the published
    ///    inode. `from == to` (an update in place) skips step 2.
    ///    `durability` says which of the syncs happen.
    pub fn move_job(
        &self,
        key: &Key,
        from: JobStatus,
        job: &Job,
        durability: MoveSync,
        op: &str,
    ) -> Result<u64> {
        let to = job.status;
        let name = key.file_name();
        // Spares for every move, not for an update in place (what watchers
        // of a running job compare is the inode).
        let spare_ok = from != to;
        // A file that was a finished job's is never recycled: an inode
        // number seen under a finished name never comes back under one by
        // our doing (what the index snapshot relies on).
        let recycle = !from.is_finished();
        let data = job.to_json();
        let sync = durability != MoveSync::Nothing;
        // A claim's new content is never rolled forward (recovery rolls an
        // interrupted claim back), so it needs no staged name: a spare is
        // rewritten and exchanged in under its own name, which then holds
        // the pending content and stays a spare. Two renames fewer.
        let in_spare = if (from, to) == (JobStatus::Pending, JobStatus::Running) {
            self.staging.stage_in_spare(&data, sync)
        } else {
            None
        };
        let (staged, ino) = match in_spare {
            Some(done) => done,
            None => {
                let staged = self.staging.staged_name(key, to.as_str());
                let ino = self
                    .staging
                    .stage(&staged, &data, sync, spare_ok)
                    .map_err(|e| io_err("write", self.staging.dir().join(&staged), e))?;
                (staged, ino)
            }
        };
        step(op, "staged");
        if from != to {
            if let Err(e) = sys::rename(self.dir(from), &name, self.dir(to), &name, true) {
                let _ = self.staging.dir().unlink(&staged);
                if sys::is_exists(&e) {
                    // A second copy in `to`: not made by this protocol.
                    // Resolve it; the caller's precondition no longer holds.
                    self.repair_locked(key)?;
                    return Err(Error::Conflict {
                        id: job.id.clone(),
                        expected: semiont_jobs_store::Expect::status(from),
                        actual: None,
                    });
                }
                return Err(io_err("rename", self.dir(from).join(&name), e));
            }
            step(op, "moved");
        }
        if let Err(e) = self
            .staging
            .replace(&staged, self.dir(to), &name, durability, recycle, op)
        {
            // Put the job back where it was, with its old content.
            if from != to {
                let _ = sys::rename(self.dir(to), &name, self.dir(from), &name, true);
            }
            let _ = self.staging.dir().unlink(&staged);
            return Err(io_err("rename", self.staging.dir().join(&staged), e));
        }
        step(op, "replaced");
        if durability == MoveSync::Full {
            self.dir(to)
                .sync()
                .map_err(|e| io_err("fsync", self.dir(to).path(), e))?;
            // The source directory needs no sync when the target outranks
            // it: if a power loss brings the old name back, recovery finds
            // two copies of the same attempt and keeps the one in `to`
            // (see `rank` in recovery.rs). A completion then waits for two
            // syncs, not three.
            if from != to && status_rank(to) <= status_rank(from) {
                self.dir(from)
                    .sync()
                    .map_err(|e| io_err("fsync", self.dir(from).path(), e))?;
            }
        }
        Ok(ino)
    }
}

/// The order to look for a job: `hint` first, then lifecycle order.
pub(crate) fn probe_order(hint: Option<JobStatus>) -> Vec<JobStatus> {
    let mut order = Vec::with_capacity(5);
    if let Some(h) = hint {
        order.push(h);
    }
    order.extend(JobStatus::ALL.into_iter().filter(|s| Some(*s) != hint));
    order
}

/// Judges the bytes of a job file named for `key`.
pub(crate) fn judge(buf: &[u8], key: &Key, info: FileInfo) -> JobFile {
    if buf.is_empty() {
        return JobFile::Bad("empty file".into(), Some(info));
    }
    match Job::from_json(buf) {
        Ok(job) => {
            if key.with_str(|id| id == job.id.as_str()) {
                JobFile::Job(Box::new(job), info)
            } else {
                JobFile::Bad(
                    format!(
                        "id field {:?} does not match the file name {}",
                        job.id.as_str(),
                        key.file_name()
                    ),
                    Some(info),
                )
            }
        }
        Err(e) => {
            let reason = if serde_json::from_slice::<serde::de::IgnoredAny>(buf).is_ok() {
                format!("wrong schema: {e}")
            } else {
                format!("not JSON (truncated or garbage): {e}")
            };
            JobFile::Bad(reason, Some(info))
        }
    }
}

/// Wall-clock milliseconds (only for grace periods and unique names; the
/// protocol's times come from callers).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
