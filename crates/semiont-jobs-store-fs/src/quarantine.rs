//! [`Quarantine`]: where files that are not usable jobs are set aside.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use semiont_jobs_store::Result;

use crate::error::io_err;
use crate::inner::{now_ms, step};
use crate::sys::{self, Dir, FileInfo};

/// The `quarantine/` directory and the rules for putting files in it. It
/// owns:
///
/// - the directory, and the names of what is set aside there
///   (`<origin>.<name>.<ms>-<n>`, each with a `.reason` file);
/// - the grace period: a bad file younger than it may still be being
///   written by hand and is left in place ([`Quarantine::within_grace`]);
/// - the count of quarantined files, reported as the store's unreadable
///   records ([`Quarantine::count`]).
///
/// Which files are bad is decided by the callers (reads, recovery,
/// scans); this part only moves them and keeps count.
#[derive(Debug)]
pub(crate) struct Quarantine {
    dir: Dir,
    /// `FsOptions::quarantine_grace`.
    grace: Duration,
    /// Whether durability is `fsync` (moves and reasons are synced).
    durable: bool,
    /// Numbers for unique names.
    seq: AtomicU64,
    /// Files in the directory (not their `.reason` files), as last
    /// counted plus those moved in since.
    count: AtomicU64,
}

impl Quarantine {
    /// The quarantine directory `dir`.
    pub fn new(dir: Dir, grace: Duration, durable: bool) -> Quarantine {
        Quarantine {
            dir,
            grace,
            durable,
            seq: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// How many files are in quarantine.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether a file modified at `info.mtime_ms` is still in its grace
    /// period (and so left where it is).
    pub fn within_grace(&self, info: Option<&FileInfo>) -> bool {
        let Some(info) = info else { return false };
        let grace = self.grace.as_millis() as i64;
        grace > 0 && now_ms() - info.mtime_ms < grace
    }

    /// Moves `dir/<name>` to `quarantine/<origin>.<name>.<unique>` and writes
    /// a `.reason` file beside it. Returns false if the file was already gone.
    pub fn set_aside(&self, dir: &Dir, name: &str, origin: &str, reason: &str) -> Result<bool> {
        let q = &self.dir;
        let qname = format!(
            "{origin}.{name}.{}-{}",
            now_ms(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        match sys::rename(dir, name, q, &qname, true) {
            Ok(()) => {}
            Err(e) if sys::is_not_found(&e) => return Ok(false),
            Err(e) => return Err(io_err("quarantine", dir.join(name), e)),
        }
        step("quarantine", "moved");
        let text = format!(
            "reason: {reason}\noriginal: {}\nquarantined-at: {}\nby-pid: {}\n",
            dir.join(name).display(),
            semiont_jobs_model::Timestamp::now(),
            sys::pid()
        );
        let rname = format!("{qname}.reason");
        if let Err(e) = q.create_write(&rname, text.as_bytes(), self.durable, false) {
            tracing::warn!(path = %q.join(&rname).display(), error = %e, "cannot write quarantine reason");
        }
        if self.durable {
            let _ = q.sync();
            let _ = dir.sync();
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            file = %dir.join(name).display(),
            moved_to = %q.join(&qname).display(),
            reason,
            "quarantined a file that is not a usable job"
        );
        Ok(true)
    }

    /// Counts the files in quarantine again (not their `.reason` files).
    pub fn recount(&self) {
        if let Ok(names) = self.dir.list() {
            let n = names
                .iter()
                .filter(|(name, _)| !name.ends_with(".reason"))
                .count();
            self.count.store(n as u64, Ordering::Relaxed);
        }
    }
}
