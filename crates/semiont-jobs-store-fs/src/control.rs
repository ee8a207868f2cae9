//! Queue-wide settings kept beside the jobs: the paused job types
//! (`paused.json`, rewritten under `locks/paused.lock`, re-read by claims
//! whenever its inode, size or change time differs from the cached copy)
//! and the retention-sweep lease (`locks/sweep.lock`, its content read and
//! rewritten under an `flock` of the file itself).

use std::collections::BTreeSet;
use std::io::{Read as _, Seek, SeekFrom, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use semiont_jobs_model::{JobType, Timestamp};
use semiont_jobs_store::{ChangeOrigin, JobChange, Result};
use serde_json::json;

use crate::error::io_err;
use crate::inner::{step, Inner};
use crate::layout::flock_exclusive;
use crate::sys;

/// The paused types, in the jobs directory.
pub(crate) const PAUSED_FILE: &str = "paused.json";
/// Serializes rewrites of [`PAUSED_FILE`].
const PAUSED_LOCK: &str = "paused.lock";
/// The retention-sweep lease.
const SWEEP_LOCK: &str = "sweep.lock";

/// How long a cached paused set is trusted on its file's stamp alone
/// (an inode reused within the file system's timestamp granularity, with
/// the same size, could hide a change for this long at most).
const PAUSED_REREAD: Duration = Duration::from_secs(1);

/// The cached paused set and what the file looked like when read.
#[derive(Debug, Default)]
pub(crate) struct PausedCache {
    /// `(inode, size, mtime in ns)` of the file read, `None` when it was
    /// missing.
    stamp: Option<(u64, u64, i64)>,
    /// When the file was read (`None`: never).
    read_at: Option<Instant>,
    types: Arc<BTreeSet<JobType>>,
}

fn parse_paused(bytes: &[u8]) -> Option<BTreeSet<JobType>> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let list = v.get("pausedTypes")?.as_array()?;
    let mut out = BTreeSet::new();
    for t in list {
        match t.as_str().map(JobType::parse) {
            Some(Ok(t)) => {
                out.insert(t);
            }
            _ => tracing::warn!(value = %t, "ignoring an invalid job type in paused.json"),
        }
    }
    Some(out)
}

impl Inner {
    /// The paused types: the cached set, re-read first when the file
    /// changed or the copy is over a second old (one `fstatat` per call).
    pub fn paused(&self) -> Result<Arc<BTreeSet<JobType>>> {
        let root = &self.layout.root;
        let stat = root
            .stat(PAUSED_FILE)
            .map_err(|e| io_err("stat", root.join(PAUSED_FILE), e))?;
        let stamp = stat.map(|i| (i.ino, i.size, i.mtime_ns));
        {
            let cache = self.paused.lock().unwrap_or_else(|e| e.into_inner());
            let fresh = cache.read_at.is_some_and(|t| t.elapsed() < PAUSED_REREAD);
            if fresh && cache.stamp == stamp {
                return Ok(Arc::clone(&cache.types));
            }
        }
        let (stamp, types) = self.read_paused()?;
        let types = Arc::new(types);
        let mut cache = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        *cache = PausedCache {
            stamp,
            read_at: Some(Instant::now()),
            types: Arc::clone(&types),
        };
        Ok(types)
    }

    /// Reads the paused file (missing or unusable: nothing paused).
    #[allow(clippy::type_complexity)]
    fn read_paused(&self) -> Result<(Option<(u64, u64, i64)>, BTreeSet<JobType>)> {
        let root = &self.layout.root;
        let mut buf = Vec::new();
        match root.read(PAUSED_FILE, &mut buf) {
            Ok(info) => {
                let stamp = Some((info.ino, info.size, info.mtime_ns));
                match parse_paused(&buf) {
                    Some(types) => Ok((stamp, types)),
                    None => {
                        tracing::warn!(file = %root.join(PAUSED_FILE).display(), "paused.json is not a paused-types document; no type is paused");
                        Ok((stamp, BTreeSet::new()))
                    }
                }
            }
            Err(e) if sys::is_not_found(&e) => Ok((None, BTreeSet::new())),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData || sys::is_symlink_error(&e) => {
                tracing::warn!(file = %root.join(PAUSED_FILE).display(), error = %e, "unusable paused.json; no type is paused");
                Ok((None, BTreeSet::new()))
            }
            Err(e) => Err(io_err("read", root.join(PAUSED_FILE), e)),
        }
    }

    /// `JobStore::set_paused`: read, change and republish the file under
    /// its lock (staged, renamed, the directory synced when durable).
    pub fn set_paused(&self, job_type: &JobType, paused: bool) -> Result<bool> {
        let locks = &self.layout.locks;
        let lock = locks
            .open_rw(PAUSED_LOCK, true)
            .map_err(|e| io_err("open", locks.join(PAUSED_LOCK), e))?;
        flock_exclusive(&lock).map_err(|e| io_err("lock", locks.join(PAUSED_LOCK), e))?;
        let (_, mut types) = self.read_paused()?;
        let changed = if paused {
            types.insert(job_type.clone())
        } else {
            types.remove(job_type)
        };
        if changed {
            let names: Vec<&str> = types.iter().map(JobType::as_str).collect();
            let body =
                serde_json::to_vec_pretty(&json!({ "pausedTypes": names })).unwrap_or_default();
            let staged = format!("paused.{}", self.staging.next_seq());
            self.staging
                .publish(&staged, &body, &self.layout.root, PAUSED_FILE)?;
            step("pause", "published");
        }
        let _ = lock.unlock();
        // Re-read through the cache so this instance sees it at once.
        self.paused()?;
        if changed && !paused {
            // Its pending jobs are claimable again: wake idle claimers here
            // (other processes find them at their next poll).
            let _ = self.tx.send(JobChange::resynced(ChangeOrigin::Local, 0));
        }
        Ok(changed)
    }

    /// `JobStore::try_lock_sweep`: the lease `{holder, until}` in
    /// `locks/sweep.lock`, read and rewritten under an `flock` of the file.
    /// A torn or unreadable lease counts as free.
    pub fn try_lock_sweep(&self, holder: &str, ttl: Duration, now: Timestamp) -> Result<bool> {
        let locks = &self.layout.locks;
        let path = locks.join(SWEEP_LOCK);
        let mut file = locks
            .open_rw(SWEEP_LOCK, true)
            .map_err(|e| io_err("open", &path, e))?;
        flock_exclusive(&file).map_err(|e| io_err("lock", &path, e))?;
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        let current: Option<(String, Timestamp)> = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                let h = v.get("holder")?.as_str()?.to_owned();
                let until = Timestamp::parse(v.get("until")?.as_str()?).ok()?;
                Some((h, until))
            });
        let free = match &current {
            Some((h, until)) => h == holder || *until < now,
            None => true,
        };
        if free {
            let body = serde_json::to_vec_pretty(&json!({
                "holder": holder,
                "until": now.add(ttl),
                "pid": sys::pid(),
                "host": semiont_jobs_store::host_name(),
            }))
            .unwrap_or_default();
            (|| {
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&body)
            })()
            .map_err(|e| io_err("write", &path, e))?;
        }
        let _ = file.unlock();
        Ok(free)
    }
}
