//! The index snapshot, `<jobs>/index.snapshot`: the index records of the
//! finished jobs, each with the inode, modification time and size of the
//! file it was learned from, so that an open can take a finished job from
//! the snapshot after one `stat` instead of reading and parsing its file.
//!
//! A record is only ever used for a file the open's directory listing shows
//! in the record's status directory with the record's inode, and whose
//! `stat` gives the record's modification time and size — or, in a status
//! directory whose inode and mtime are still the ones the snapshot stamped
//! (nothing created, removed or renamed in it since), without the `stat`.
//! Job files are never modified in place (every change publishes a new file
//! by rename), so such a file is the one the record was made from. Everything else is read from
//! its file as without a snapshot: a stale snapshot costs reads, never
//! truth. A missing, unreadable, truncated, corrupt or other-version
//! snapshot is ignored as a whole (logged at `debug`/`info`).
//!
//! The snapshot is written (staged in the instance's `tmp/` directory,
//! then renamed over the old one) when the store is dropped and by a
//! background pass once enough has changed; see `docs/storage-format.md`.
//!
//! This module reads, checks and writes the file; the bytes' format is
//! [`codec`]'s.

mod codec;

use std::time::{Duration, Instant};

use semiont_jobs_model::JobStatus;

use crate::inner::Inner;
use crate::sys::{self, FileInfo};
use semiont_jobs_store::Result;

pub(crate) use codec::{decode, encode, DirStamp, SnapRec, Snapshot};

/// The snapshot's file name in the jobs directory.
pub(crate) const FILE: &str = "index.snapshot";
/// A directory counts as unchanged only if its mtime was at least this old
/// when the snapshot was written (timestamp granularity; clock ticks).
const DIR_SETTLED_NS: i64 = 1_000_000_000;

/// How an open built the index (see [`FsStore::open_report`](crate::FsStore::open_report)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct OpenReport {
    /// Whether a valid index snapshot was found (and used for what it
    /// could explain).
    pub snapshot_used: bool,
    /// Finished jobs taken from the snapshot without reading their files.
    pub from_snapshot: u64,
    /// Job files read: every pending and running job, and the finished
    /// jobs the snapshot did not explain (all of them without a snapshot).
    pub files_read: u64,
    /// Snapshot records checked with a `stat` of their file (the others
    /// are in directories unchanged since the snapshot was written).
    pub files_checked: u64,
    /// Snapshot records the disk did not confirm (job gone, moved or
    /// rewritten since), ignored.
    pub stale_records: u64,
    /// Time spent building the index (listing, checks, reads); the
    /// recovery pass before it is not included.
    pub index_time: Duration,
}

/// The finished statuses, in the order of the snapshot's directory stamps.
pub(crate) const FINISHED: [JobStatus; 3] =
    [JobStatus::Complete, JobStatus::Failed, JobStatus::Cancelled];

/// Whether `info` (a `stat` of the record's path) is the file `s`
/// describes.
pub(crate) fn same_file(s: &SnapRec, info: Option<&FileInfo>) -> bool {
    info.is_some_and(|i| {
        i.is_file() && i.ino == s.rec.ino && (i.mtime_ns, i.size) == (s.mtime_ns, s.size)
    })
}

impl Inner {
    /// The current stamps of the finished status directories (unknown
    /// where `stat` fails).
    pub(crate) fn dir_stamps(&self) -> [DirStamp; 3] {
        FINISHED.map(|s| {
            let dir = self.dir(s);
            match crate::sys::fstat_dir(dir) {
                Ok(info) => DirStamp::of(&info),
                Err(_) => DirStamp::default(),
            }
        })
    }
}

impl Inner {
    /// The snapshot, when there is a valid one.
    pub(crate) fn load_snapshot(&self) -> Option<Snapshot> {
        let root = &self.layout.root;
        let mut buf = Vec::new();
        if let Err(e) = root.read(FILE, &mut buf) {
            if sys::is_not_found(&e) {
                tracing::debug!(dir = %root.path().display(), "no index snapshot; reading every job file");
            } else {
                tracing::info!(path = %root.join(FILE).display(), error = %e, "cannot read the index snapshot; reading every job file");
            }
            return None;
        }
        match decode(&buf) {
            Ok(s) => Some(s),
            Err(reason) => {
                tracing::info!(path = %root.join(FILE).display(), reason, "index snapshot ignored; reading every job file");
                None
            }
        }
    }

    /// Writes the snapshot of the current index (staged, then renamed over
    /// the old one). Records whose file no longer has the inode the index
    /// knows are left out. Returns the number of records written.
    pub(crate) fn write_snapshot(&self) -> Result<u64> {
        let started = Instant::now();
        let now_ns = crate::inner::now_ms().saturating_mul(1_000_000);
        let before = self.dir_stamps();
        let (recs, types, users, at) = {
            let ix = self.ix();
            let (recs, types, users) = ix.finished_records();
            (recs, types, users, ix.snapshot_lag().1)
        };
        // Identify each record's file. Without a lock: a record is only
        // kept when the file at its path still has the inode its facts came
        // from, and that file's mtime and size are what the next open checks.
        // (Filled in place: per-thread result vectors would be freed into
        // those threads' malloc arenas, which keep their memory.)
        let mut snap: Vec<SnapRec> = Vec::with_capacity(recs.len());
        snap.extend(recs.iter().map(|r| SnapRec {
            rec: *r,
            mtime_ns: 0,
            size: 0,
        }));
        drop(recs);
        crate::scan::par_chunks_mut(&mut snap, |_, chunk| {
            for s in chunk {
                let r = &s.rec;
                let info = self.stat_record(r);
                match info.filter(|i| i.is_file() && i.ino == r.ino) {
                    Some(i) => (s.mtime_ns, s.size) = (i.mtime_ns, i.size),
                    // Not that file any more: left out.
                    None => s.rec.ino = 0,
                }
            }
        });
        snap.retain(|s| s.rec.ino != 0);
        // A directory is stamped only if it had settled before the records
        // were taken and did not change until now.
        let after = self.dir_stamps();
        let mut dirs = [DirStamp::default(); 3];
        for i in 0..3 {
            if before[i] == after[i] && before[i].mtime_ns < now_ns - DIR_SETTLED_NS {
                dirs[i] = before[i];
            }
        }
        let data = encode(&types, &users, &snap, &dirs, crate::inner::now_ms());
        let (n, len) = (snap.len() as u64, data.len());
        drop(snap);
        let staged = format!("index-snapshot.{}.staged", self.staging.next_seq());
        self.staging
            .publish(&staged, &data, &self.layout.root, FILE)?;
        self.ix().snapshot_done(at);
        drop(data);
        crate::scan::release_free_memory();
        tracing::debug!(
            records = n,
            bytes = len,
            ms = started.elapsed().as_millis() as u64,
            "wrote the index snapshot"
        );
        Ok(n)
    }

    /// Writes the snapshot when at least `min_changes` changes are not in
    /// one (errors are logged: a missing snapshot only costs reads).
    pub(crate) fn snapshot_if_behind(&self, min_changes: u64) {
        let (lag, _) = self.ix().snapshot_lag();
        if lag == 0 || lag < min_changes {
            return;
        }
        if let Err(e) = self.write_snapshot() {
            tracing::info!(error = %e, "cannot write the index snapshot");
        }
    }
}
