//! The directory watcher: inotify events on the status directories are
//! hints. Each names a job whose file appeared in or vanished from a
//! status directory; when the index disagrees with the disk, the job is
//! re-read under its lock, the index corrected, and an `External` change
//! event sent. Overflows and watcher errors trigger a full rescan.
//!
//! The watch mask is only what can change which jobs a directory holds:
//! `IN_MOVED_TO`, `IN_MOVED_FROM`, `IN_CREATE`, `IN_DELETE` and
//! `IN_CLOSE_WRITE` (a foreign writer that writes a file in place). Opens,
//! reads and attribute changes of job files — every process reads them
//! all the time — are not even queued by the kernel.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use semiont_jobs_model::{JobStatus, JobType, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin};

use crate::inner::Inner;
use crate::key::Key;

/// Bytes read from the inotify descriptor at once (a few hundred events).
const BUFFER: usize = 64 * 1024;

/// What events for one job in one directory said, within one read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Only that the file appeared (moved in, created, written).
    Appeared,
    /// Only that the file vanished (moved out, deleted).
    Vanished,
    /// Both, in some order.
    Both,
}

impl Seen {
    fn of(mask: EventMask) -> Option<Seen> {
        let appeared =
            mask.intersects(EventMask::MOVED_TO | EventMask::CREATE | EventMask::CLOSE_WRITE);
        let vanished = mask.intersects(EventMask::MOVED_FROM | EventMask::DELETE);
        match (appeared, vanished) {
            (true, true) => Some(Seen::Both),
            (true, false) => Some(Seen::Appeared),
            (false, true) => Some(Seen::Vanished),
            (false, false) => None,
        }
    }

    fn merge(self, other: Seen) -> Seen {
        if self == other {
            self
        } else {
            Seen::Both
        }
    }
}

/// The running watch: dropping it stops the event thread.
#[derive(Debug)]
pub(crate) struct Watcher {
    watches: Watches,
    wds: Vec<WatchDescriptor>,
    stop: Arc<AtomicBool>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Removing a watch queues an `IN_IGNORED` event, which wakes the
        // event thread's blocking read; it then sees `stop` and exits.
        for wd in self.wds.drain(..) {
            let _ = self.watches.remove(wd);
        }
    }
}

/// A watch whose events queue in the kernel until [`spawn_processor`]
/// consumes them.
pub(crate) struct Started {
    inotify: Inotify,
    dirs: HashMap<i32, JobStatus>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Started {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Started").field("dirs", &self.dirs).finish()
    }
}

/// Starts watching the status directories.
pub(crate) fn start(inner: &Inner) -> io::Result<(Watcher, Started)> {
    let inotify = Inotify::init()?;
    let mut watches = inotify.watches();
    let mask = WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::CREATE
        | WatchMask::DELETE
        | WatchMask::CLOSE_WRITE
        | WatchMask::ONLYDIR
        | WatchMask::DONT_FOLLOW;
    let mut wds = Vec::new();
    let mut dirs = HashMap::new();
    for status in JobStatus::ALL {
        let wd = watches.add(inner.dir(status).path(), mask)?;
        dirs.insert(wd.get_watch_descriptor_id(), status);
        wds.push(wd);
    }
    let stop = Arc::new(AtomicBool::new(false));
    Ok((
        Watcher {
            watches,
            wds,
            stop: stop.clone(),
        },
        Started {
            inotify,
            dirs,
            stop,
        },
    ))
}

/// Runs the event loop on its own thread until the [`Watcher`] is dropped
/// or the store is gone.
pub(crate) fn spawn_processor(inner: Weak<Inner>, started: Started) -> io::Result<JoinHandle<()>> {
    let Started {
        mut inotify,
        dirs,
        stop,
    } = started;
    std::thread::Builder::new()
        .name("semiont-jobs-fs-watch".into())
        .spawn(move || {
            let mut buf = vec![0u8; BUFFER];
            loop {
                let events = match inotify.read_events_blocking(&mut buf) {
                    Ok(events) => events,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "directory watcher failed; changes by other processes show up at rescans only");
                        return;
                    }
                };
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(inner) = inner.upgrade() else { return };
                let mut rescan = false;
                let mut hints: Vec<(JobStatus, Key, Seen)> = Vec::new();
                let mut at: HashMap<(JobStatus, Key), usize> = HashMap::new();
                for ev in events {
                    if ev.mask.contains(EventMask::Q_OVERFLOW) {
                        rescan = true;
                        continue;
                    }
                    let Some(&status) = dirs.get(&ev.wd.get_watch_descriptor_id()) else {
                        continue;
                    };
                    if ev
                        .mask
                        .intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
                    {
                        tracing::warn!(status = %status, "a status directory stopped being watched (removed or moved?); rescanning");
                        rescan = true;
                        continue;
                    }
                    let (Some(seen), Some(key)) = (Seen::of(ev.mask), ev.name.and_then(key_of))
                    else {
                        continue;
                    };
                    match at.get(&(status, key.clone())) {
                        Some(&i) => hints[i].2 = hints[i].2.merge(seen),
                        None => {
                            at.insert((status, key.clone()), hints.len());
                            hints.push((status, key, seen));
                        }
                    }
                }
                if rescan {
                    if let Err(e) = inner.rescan(true) {
                        tracing::warn!(error = %e, "rescan failed");
                    }
                    continue;
                }
                for (status, key, seen) in hints {
                    inner.hint(status, &key, seen);
                }
            }
        })
}

fn key_of(name: &OsStr) -> Option<Key> {
    Key::from_file_name(Path::new(name).to_str()?)
}

impl Inner {
    /// Whether what the disk shows for `status/<key>.json` may differ from
    /// the index, given what the events said (`seen`). Events that only
    /// confirm the index (a file appeared where the index has it, vanished
    /// from where the index does not have it) need no look at the disk; a
    /// later event reports any later change.
    fn hint_needs_look(&self, status: JobStatus, key: &Key, seen: Seen) -> bool {
        let indexed = self.ix().status(key);
        match (indexed == Some(status), seen) {
            (true, Seen::Appeared) if status != JobStatus::Running => return false,
            (false, Seen::Vanished) => return false,
            _ => {}
        }
        let on_disk = self.dir(status).stat(&key.file_name()).ok().flatten();
        let ix = self.ix();
        match (on_disk, ix.status(key)) {
            (Some(info), Some(s)) if s == status => {
                status == JobStatus::Running && ix.running_ino(key) != Some(info.ino)
            }
            (Some(_), _) => true,
            (None, Some(s)) => s == status,
            (None, None) => false,
        }
    }

    /// Handles one hint: "something happened to `key` in `status`".
    pub(crate) fn hint(&self, status: JobStatus, key: &Key, seen: Seen) {
        if !self.hint_needs_look(status, key, seen) {
            return;
        }
        let Ok(_g) = self.lock(key) else { return };
        if !self.hint_needs_look(status, key, Seen::Both) {
            return;
        }
        let old_type = self.ix().job_type(key).and_then(|t| JobType::parse(t).ok());
        let (prev, found) = match self.refresh_locked(key, Some(status)) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(job = %key, error = %e, "cannot re-read a job after a watcher event");
                return;
            }
        };
        let (kind, now, job_type) = match (prev, &found) {
            (None, None) => return,
            (None, Some((s, job, _))) => {
                (ChangeKind::Created, Some(*s), Some(job.job_type.clone()))
            }
            (Some(p), Some((s, job, _))) => {
                let kind = if p == *s {
                    ChangeKind::Updated
                } else {
                    Transition::between(p, *s).map_or(ChangeKind::Updated, ChangeKind::Transition)
                };
                (kind, Some(*s), Some(job.job_type.clone()))
            }
            (Some(_), None) => (ChangeKind::Deleted, None, old_type),
        };
        self.emit(Some(key.id()), kind, now, job_type, ChangeOrigin::External);
    }
}
