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
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};
use semiont_jobs_model::{JobStatus, JobType, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin};

use crate::inner::Inner;
use crate::key::Key;

/// Bytes read from the inotify descriptor at once (a few hundred events).
const BUFFER: usize = 64 * 1024;
/// Most hints collected before they are handled.
const MAX_BATCH: usize = 4096;
/// A batch within this long of the previous one counts as a burst.
const QUIET: Duration = Duration::from_millis(5);
/// How long a burst's events are collected before they are handled.
const COALESCE: Duration = Duration::from_millis(1);

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
///
/// Coalescing on the trailing edge: an event after a quiet spell is
/// handled at once (the latency a waiting worker sees); while events keep
/// coming (this process's own transitions, a busy producer), the thread
/// waits [`COALESCE`] after each batch and handles what queued meanwhile
/// in one pass, instead of waking for every rename and running into the
/// operations that are still in flight.
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
            let mut last_batch: Option<Instant> = None;
            loop {
                if let Err(e) = wait_readable(&inotify) {
                    tracing::warn!(error = %e, "directory watcher failed; changes by other processes show up at rescans only");
                    return;
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let mut batch = Batch::default();
                let busy = last_batch.is_some_and(|t| t.elapsed() < QUIET);
                if busy {
                    std::thread::sleep(COALESCE);
                }
                loop {
                    match inotify.read_events(&mut buf) {
                        Ok(events) => {
                            for ev in events {
                                batch.add(&dirs, ev.mask, &ev.wd, ev.name);
                            }
                            if batch.hints.len() >= MAX_BATCH {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            tracing::warn!(error = %e, "directory watcher failed; changes by other processes show up at rescans only");
                            return;
                        }
                    }
                }
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Some(inner) = inner.upgrade() else { return };
                batch.handle(&inner);
                last_batch = Some(Instant::now());
            }
        })
}

/// Blocks until the inotify descriptor has events (or an error).
fn wait_readable(inotify: &Inotify) -> io::Result<()> {
    let mut pfd = libc::pollfd {
        fd: inotify.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd, for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r >= 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The hints of one batch of events, each job and directory once.
#[derive(Default)]
struct Batch {
    rescan: bool,
    hints: Vec<(JobStatus, Key, Seen)>,
    at: HashMap<(JobStatus, Key), usize>,
}

impl Batch {
    fn add(
        &mut self,
        dirs: &HashMap<i32, JobStatus>,
        mask: EventMask,
        wd: &WatchDescriptor,
        name: Option<&OsStr>,
    ) {
        if mask.contains(EventMask::Q_OVERFLOW) {
            self.rescan = true;
            return;
        }
        let Some(&status) = dirs.get(&wd.get_watch_descriptor_id()) else {
            return;
        };
        if mask.intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF) {
            tracing::warn!(status = %status, "a status directory stopped being watched (removed or moved?); rescanning");
            self.rescan = true;
            return;
        }
        let (Some(seen), Some(key)) = (Seen::of(mask), name.and_then(key_of)) else {
            return;
        };
        match self.at.get(&(status, key.clone())) {
            Some(&i) => self.hints[i].2 = self.hints[i].2.merge(seen),
            None => {
                self.at.insert((status, key.clone()), self.hints.len());
                self.hints.push((status, key, seen));
            }
        }
    }

    fn handle(self, inner: &Inner) {
        if self.rescan {
            if let Err(e) = inner.rescan(true) {
                tracing::warn!(error = %e, "rescan failed");
            }
            return;
        }
        for (status, key, seen) in self.hints {
            inner.hint(status, &key, seen);
        }
    }
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
