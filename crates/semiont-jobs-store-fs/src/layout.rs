//! The jobs directory's layout: creating and checking its directories
//! (0700, owned by us, no symlinks), the per-job lock stripes, this
//! instance's staging directory, and staged-file names.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use semiont_jobs_model::{JobId, JobStatus};

use crate::error::OpenError;
use crate::key::Key;
use crate::sys::{self, Dir};

/// Status directories, in `JobStatus::ALL` order.
pub(crate) const STATUS_DIRS: [&str; 5] = ["pending", "running", "complete", "failed", "cancelled"];
/// Staging: one subdirectory per live store instance.
pub(crate) const TMP: &str = "tmp";
/// Files set aside, each with a `.reason` file.
pub(crate) const QUARANTINE: &str = "quarantine";
/// One `<worker-id>.lock` per registered worker.
pub(crate) const WORKERS: &str = "workers";
/// Lock stripes and the recovery lock.
pub(crate) const LOCKS: &str = "locks";
/// One reservation file per unique key.
pub(crate) const UNIQUE: &str = "unique";
/// Number of per-job lock stripes.
pub(crate) const STRIPES: usize = 64;
/// The name of the lock file serializing recovery passes.
pub(crate) const RECOVERY_LOCK: &str = "recovery.lock";

/// The open directories of a jobs directory.
#[derive(Debug)]
pub(crate) struct Layout {
    pub root: Dir,
    pub status: [Dir; 5],
    pub tmp_root: Dir,
    pub workers: Dir,
    pub locks: Dir,
    pub unique: Dir,
}

fn check_dir(path: &Path, info: &sys::FileInfo) -> Result<(), OpenError> {
    if info.is_symlink() {
        return Err(OpenError::Symlink {
            path: path.to_owned(),
        });
    }
    if !info.is_dir() {
        return Err(OpenError::NotADirectory {
            path: path.to_owned(),
        });
    }
    let uid = sys::euid();
    if info.uid != uid {
        return Err(OpenError::ForeignOwner {
            path: path.to_owned(),
            owner: info.uid,
            uid,
        });
    }
    Ok(())
}

fn tighten(dir: &Dir, info: &sys::FileInfo) -> Result<(), OpenError> {
    if info.mode & 0o077 != 0 {
        sys::chmod_dir(dir, 0o700).map_err(|e| OpenError::io("chmod", dir.path(), e))?;
    }
    Ok(())
}

impl Layout {
    /// Creates (if needed) and checks the jobs directory and its
    /// subdirectories. Returns the quarantine directory apart (it is
    /// [`Quarantine`](crate::quarantine::Quarantine)'s).
    pub fn open(root: &Path) -> Result<(Layout, Dir), OpenError> {
        let info = match sys::lstat(root).map_err(|e| OpenError::io("stat", root, e))? {
            Some(info) => info,
            None => {
                std::fs::create_dir_all(root).map_err(|e| OpenError::io("create", root, e))?;
                sys::lstat(root)
                    .map_err(|e| OpenError::io("stat", root, e))?
                    .ok_or_else(|| OpenError::NotADirectory {
                        path: root.to_owned(),
                    })?
            }
        };
        check_dir(root, &info)?;
        let root_dir = Dir::open(root).map_err(|e| OpenError::io("open", root, e))?;
        tighten(&root_dir, &info)?;
        let sub = |name: &str| -> Result<Dir, OpenError> {
            let path = root.join(name);
            let info = match root_dir
                .stat(name)
                .map_err(|e| OpenError::io("stat", &path, e))?
            {
                Some(info) => info,
                None => {
                    match root_dir.mkdir(name, 0o700) {
                        Ok(()) => {}
                        Err(e) if sys::is_exists(&e) => {}
                        Err(e) => return Err(OpenError::io("create", &path, e)),
                    }
                    root_dir
                        .stat(name)
                        .map_err(|e| OpenError::io("stat", &path, e))?
                        .ok_or_else(|| OpenError::NotADirectory { path: path.clone() })?
                }
            };
            check_dir(&path, &info)?;
            let dir = root_dir
                .open_sub(name)
                .map_err(|e| OpenError::io("open", &path, e))?;
            tighten(&dir, &info)?;
            Ok(dir)
        };
        let status = [
            sub(STATUS_DIRS[0])?,
            sub(STATUS_DIRS[1])?,
            sub(STATUS_DIRS[2])?,
            sub(STATUS_DIRS[3])?,
            sub(STATUS_DIRS[4])?,
        ];
        let tmp_root = sub(TMP)?;
        let quarantine = sub(QUARANTINE)?;
        let layout = Layout {
            status,
            tmp_root,
            workers: sub(WORKERS)?,
            locks: sub(LOCKS)?,
            unique: sub(UNIQUE)?,
            root: root_dir,
        };
        Ok((layout, quarantine))
    }

    /// The directory of `status`.
    pub fn dir(&self, status: JobStatus) -> &Dir {
        &self.status[status.index()]
    }

    /// The root path.
    pub fn root_path(&self) -> &Path {
        self.root.path()
    }
}

/// Per-job locks across threads and processes: a job's lock is one of
/// [`STRIPES`] lock files chosen by the id's hash, held with `flock`
/// (which the kernel releases when a process dies) under an in-process
/// mutex (`flock` does not exclude threads sharing a descriptor).
#[derive(Debug)]
pub(crate) struct Stripes {
    stripes: Vec<(Mutex<()>, File)>,
}

/// A held job lock; released on drop.
pub(crate) struct JobGuard<'a> {
    _mutex: MutexGuard<'a, ()>,
    file: &'a File,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Takes an exclusive `flock`, retrying on `EINTR`.
pub(crate) fn flock_exclusive(file: &File) -> io::Result<()> {
    loop {
        match file.lock() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

impl Stripes {
    /// Opens (creating) the job lock stripes `stripe-NN` in `locks`.
    pub fn open(locks: &Dir) -> Result<Stripes, OpenError> {
        Self::open_named(locks, "stripe")
    }

    /// Opens (creating) the lock stripes `<prefix>-NN` in `locks`.
    pub fn open_named(locks: &Dir, prefix: &str) -> Result<Stripes, OpenError> {
        let mut stripes = Vec::with_capacity(STRIPES);
        for i in 0..STRIPES {
            let name = format!("{prefix}-{i:02}");
            let file = locks
                .open_rw(&name, true)
                .map_err(|e| OpenError::io("open", &locks.join(&name), e))?;
            stripes.push((Mutex::new(()), file));
        }
        Ok(Stripes { stripes })
    }

    /// Locks `key`'s stripe.
    pub fn lock(&self, key: &Key) -> io::Result<JobGuard<'_>> {
        self.lock_hash(key.stripe_hash())
    }

    /// Locks the stripe of a hash (stable across processes).
    pub fn lock_hash(&self, hash: u64) -> io::Result<JobGuard<'_>> {
        let (mutex, file) = &self.stripes[(hash % STRIPES as u64) as usize];
        let guard = mutex.lock().unwrap_or_else(|e| e.into_inner());
        flock_exclusive(file)?;
        Ok(JobGuard {
            _mutex: guard,
            file,
        })
    }

    /// Like [`Stripes::lock_hash`] without waiting: `None` when another
    /// thread or process holds the stripe.
    pub fn try_lock_hash(&self, hash: u64) -> io::Result<Option<JobGuard<'_>>> {
        let (mutex, file) = &self.stripes[(hash % STRIPES as u64) as usize];
        let guard = match mutex.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return Ok(None),
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(JobGuard {
                _mutex: guard,
                file,
            })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// A staged file's name: `<id>.<target>.<seq>`, where `target` is the
/// status the content is for, or `create`.
pub(crate) fn staged_name(key: &Key, target: &str, seq: u64) -> String {
    key.with_str(|id| format!("{id}.{target}.{seq}"))
}

/// What a staged file is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StagedFor {
    /// A new job (never touched while its instance lives).
    Create,
    /// The new content of a transition or update into this status.
    Status(JobStatus),
}

/// Parses `<id>.<target>.<seq>`.
pub(crate) fn parse_staged(name: &str) -> Option<(Key, StagedFor)> {
    let mut parts = name.rsplitn(3, '.');
    let seq = parts.next()?;
    let target = parts.next()?;
    let id = parts.next()?;
    if seq.is_empty() || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    JobId::parse(id).ok()?;
    let what = if target == "create" {
        StagedFor::Create
    } else {
        StagedFor::Status(target.parse().ok()?)
    };
    Some((Key::from_valid_str(id), what))
}

/// A fresh instance name: `<pid>-<random>`.
pub(crate) fn instance_name() -> String {
    let id = JobId::generate();
    let s = id.as_str();
    format!("{}-{}", sys::pid(), &s[s.len().saturating_sub(12)..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names_round_trip_even_with_dots_in_ids() {
        for id in ["job-0193c1f0-8a2b-7cde-8f01-23456789abcd", "a.b.c", "x"] {
            let key = Key::from_valid_str(id);
            for (target, what) in [
                ("create", StagedFor::Create),
                ("running", StagedFor::Status(JobStatus::Running)),
                ("cancelled", StagedFor::Status(JobStatus::Cancelled)),
            ] {
                let name = staged_name(&key, target, 42);
                assert_eq!(parse_staged(&name), Some((key.clone(), what)), "{name}");
            }
        }
        for bad in [
            "x",
            "x.running",
            "x.running.",
            "x.bogus.1",
            "..running.1",
            "x.running.1a",
        ] {
            assert_eq!(parse_staged(bad), None, "{bad}");
        }
    }
}
