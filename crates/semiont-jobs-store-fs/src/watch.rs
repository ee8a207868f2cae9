//! The directory watcher: `notify` events (its inotify backend) on the
//! status directories are hints. Each names a job whose file appeared in
//! or vanished from a status directory; when the index disagrees with the
//! disk, the job is re-read under its lock, the index corrected, and an
//! `External` change event sent. Queue overflows, watcher errors and a
//! status directory that stops being watched trigger a full rescan.
//!
//! The event kinds asked of `notify` are only what can change which jobs
//! a directory holds: creations, removals, renames and a close after
//! writing (a foreign writer that writes a file in place); the kernel
//! queues `IN_CREATE`, `IN_DELETE`, `IN_MOVED_FROM`, `IN_MOVED_TO` and
//! `IN_CLOSE_WRITE` for the files. Opens, reads and attribute changes of
//! job files — every process reads them all the time — are not even
//! queued by the kernel.
//!
//! `notify` reads the kernel queue on its own thread and calls the
//! handler there for each event; the handler collects hints into a batch
//! and, after a quiet spell, handles it at once on that thread (no second
//! thread between the kernel and the index). During a burst the handler
//! holds `notify`'s thread for [`COALESCE`] at the start of each window,
//! so the kernel queues the burst's events instead of waking that thread
//! for each; the window's batch is handled there when the next window
//! starts, each job and directory once, and by a coalescing thread when
//! the burst ends.

use std::collections::HashMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{
    Config, Event, EventKind, EventKindMask, INotifyWatcher, RecursiveMode, WatchPathConfig,
    Watcher as _,
};
use semiont_jobs_model::{JobStatus, JobType, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin};

use crate::inner::{FoundJob, Inner};
use crate::key::Key;

/// Most hints collected in one batch; past this the batch becomes one
/// full rescan (the kernel's own queue holds 16384 events by default and
/// overflows into a rescan the same way).
const MAX_BATCH: usize = 16_384;
/// A batch within this long of the previous one counts as a burst.
const QUIET: Duration = Duration::from_millis(5);
/// How long a burst's events are collected before they are handled.
const COALESCE: Duration = Duration::from_millis(1);
/// How long after [`COALESCE`] `notify`'s thread is given to read what
/// the kernel queued meanwhile (a few reads of a few dozen events each;
/// what comes later goes into the next batch).
const DRAIN: Duration = Duration::from_micros(250);
/// A burst has ended when no event came for this long; the coalescing
/// thread then handles its last batch.
const END: Duration = Duration::from_micros(2500);

/// What events for one job in one directory said, within one batch.
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
    /// What an event of `kind` says about the file it names; `None` for
    /// kinds that say neither (a rename's combined `Both` event repeats its
    /// `From` and `To` events, which are counted instead).
    fn of(kind: &EventKind) -> Option<Seen> {
        match kind {
            EventKind::Create(_)
            | EventKind::Modify(ModifyKind::Name(RenameMode::To))
            | EventKind::Access(AccessKind::Close(AccessMode::Write)) => Some(Seen::Appeared),
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                Some(Seen::Vanished)
            }
            _ => None,
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

/// What handles a batch: the store's [`Inner`] (a recording stand-in in
/// the unit tests).
pub(crate) trait Target: Send + Sync + 'static {
    /// Handles one hint: "something happened to `key` in `status`".
    fn hint(&self, status: JobStatus, key: &Key, seen: Seen);
    /// Reconciles everything with the disk (events were lost).
    fn rescan(&self);
}

impl Target for Inner {
    fn hint(&self, status: JobStatus, key: &Key, seen: Seen) {
        Inner::hint(self, status, key, seen);
    }

    fn rescan(&self) {
        if let Err(e) = Inner::rescan(self, true) {
            tracing::warn!(error = %e, "rescan failed");
        }
    }
}

/// The running watch: dropping it stops `notify`'s event thread and the
/// coalescing thread.
pub(crate) struct Watcher<T: Target = Inner> {
    shared: Arc<Shared<T>>,
    /// `None` in the unit tests, which feed events by hand.
    notify: Option<INotifyWatcher>,
}

impl<T: Target> std::fmt::Debug for Watcher<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("dirs", &self.shared.dirs)
            .finish_non_exhaustive()
    }
}

impl<T: Target> Drop for Watcher<T> {
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        st.stop = true;
        st.batch = Batch::default();
        drop(st);
        self.shared.burst.notify_all();
        // Dropping notify's watcher tells its thread to remove the watches
        // and exit.
        drop(self.notify.take());
    }
}

/// Starts watching the status directories of `inner`. Events that arrive
/// before [`Watcher::attach`] (while the store opens) are collected, not
/// lost.
pub(crate) fn start(inner: &Inner) -> io::Result<Watcher> {
    let dirs = Dirs(
        JobStatus::ALL
            .iter()
            .map(|&status| (inner.dir(status).path().to_path_buf(), status))
            .collect(),
    );
    let shared = Arc::new(Shared::new(dirs));
    let handler = shared.clone();
    let config = Config::default().with_event_kinds(
        EventKindMask::CREATE
            | EventKindMask::REMOVE
            | EventKindMask::MODIFY_NAME
            | EventKindMask::ACCESS_CLOSE,
    );
    let mut notify = INotifyWatcher::new(
        move |event: notify::Result<Event>| handler.on_event(event),
        config,
    )
    .map_err(notify_error)?;
    let mut watcher = Watcher {
        shared,
        notify: None,
    };
    for status in JobStatus::ALL {
        notify
            .watch_with(
                inner.dir(status).path(),
                WatchPathConfig::new(RecursiveMode::NonRecursive).with_dereference_symlinks(false),
            )
            .map_err(notify_error)?;
    }
    watcher.notify = Some(notify);
    Ok(watcher)
}

fn notify_error(e: notify::Error) -> io::Error {
    match e.kind {
        notify::ErrorKind::Io(e) => e,
        _ => io::Error::other(e.to_string()),
    }
}

impl<T: Target> Watcher<T> {
    /// Hands the events to `target` from now on (the ones collected so far
    /// first) and starts the coalescing thread, which ends with the
    /// watcher or when `target` is gone.
    pub(crate) fn attach(&self, target: Weak<T>) -> io::Result<()> {
        let shared = self.shared.clone();
        std::thread::Builder::new()
            .name("semiont-jobs-fs-watch".into())
            .spawn(move || shared.coalesce())?;
        let mut st = self.shared.lock();
        st.target = Some(target);
        if !st.batch.is_empty() {
            st.newest = Some(Instant::now());
            self.shared.open_window(st, Instant::now());
        }
        Ok(())
    }
}

/// What `notify`'s thread and the coalescing thread share.
struct Shared<T> {
    dirs: Dirs,
    state: Mutex<State<T>>,
    /// Signalled when a burst starts (the coalescing thread watches it) or
    /// the watch stops.
    burst: Condvar,
}

struct State<T> {
    batch: Batch,
    /// Who handles batches; `None` until attached.
    target: Option<Weak<T>>,
    /// When the last batch was handled.
    last: Option<Instant>,
    /// While a burst goes on: when its current collecting window started
    /// (`notify`'s thread was held for [`COALESCE`] from then on).
    window: Option<Instant>,
    /// When the newest event came.
    newest: Option<Instant>,
    /// The coalescing thread watches the current burst.
    watched: bool,
    /// The coalescing thread is handling a batch.
    handling: bool,
    stop: bool,
}

impl<T: Target> Shared<T> {
    fn new(dirs: Dirs) -> Self {
        Shared {
            dirs,
            state: Mutex::new(State {
                batch: Batch::default(),
                target: None,
                last: None,
                window: None,
                newest: None,
                watched: false,
                handling: false,
                stop: false,
            }),
            burst: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `notify`'s event handler, on its thread. Coalescing on the trailing
    /// edge: an event after a quiet spell is handled at once, here (the
    /// latency a waiting worker sees). While events keep coming (this
    /// process's own transitions, a busy producer), the first event of a
    /// window holds this thread for [`COALESCE`], so that the kernel
    /// queues what follows and `notify` reads it in a few reads instead of
    /// waking for every rename; the first event after the window (and
    /// [`DRAIN`]) has the window's batch handled here, with it, and opens
    /// the next window. Each batch is handled once per job and directory,
    /// instead of running into the operations that are still in flight
    /// event by event. When the burst ends, the coalescing thread handles
    /// the last window's batch.
    fn on_event(&self, event: notify::Result<Event>) {
        let mut st = self.lock();
        if st.stop {
            return;
        }
        match event {
            Ok(event) => st.batch.add(&self.dirs, &event),
            Err(e) => {
                tracing::warn!(error = %e, "directory watcher error; rescanning");
                st.batch.set_rescan();
            }
        }
        if st.batch.is_empty() || st.target.is_none() {
            return;
        }
        let now = Instant::now();
        st.newest = Some(now);
        if let Some(start) = st.window {
            if now.duration_since(start) < COALESCE + DRAIN || st.handling {
                // Read after the hold (or the coalescing thread is busy):
                // part of this window's batch.
                return;
            }
            // The burst goes on: handle the window's batch now, then hold
            // for the next window.
            st.window = Some(now);
            let batch = std::mem::take(&mut st.batch);
            let target = st.target.clone();
            drop(st);
            self.handle(batch, target);
            std::thread::sleep(COALESCE);
            return;
        }
        let busy = st.handling || st.last.is_some_and(|t| now.duration_since(t) < QUIET);
        if !busy {
            let batch = std::mem::take(&mut st.batch);
            let target = st.target.clone();
            drop(st);
            self.handle(batch, target);
            return;
        }
        self.open_window(st, now);
        std::thread::sleep(COALESCE);
    }

    /// Starts a burst's first window and has the coalescing thread watch
    /// it.
    fn open_window(&self, mut st: MutexGuard<'_, State<T>>, now: Instant) {
        st.window = Some(now);
        if !st.watched {
            st.watched = true;
            self.burst.notify_one();
        }
    }

    /// The coalescing thread: during a burst, waits until no event came
    /// for [`END`] (the burst ended) and handles the last window's batch.
    /// While the burst goes on, `notify`'s thread handles the batches and
    /// this thread only looks every [`END`].
    fn coalesce(&self) {
        let mut st = self.lock();
        loop {
            while !st.watched && !st.stop {
                st = self.burst.wait(st).unwrap_or_else(|e| e.into_inner());
            }
            if st.stop {
                return;
            }
            let (Some(start), Some(newest)) = (st.window, st.newest) else {
                st.watched = false;
                continue;
            };
            let due = (start + COALESCE + DRAIN).max(newest + END);
            let now = Instant::now();
            if now < due {
                drop(st);
                std::thread::sleep(due - now);
                st = self.lock();
                continue;
            }
            st.window = None;
            st.watched = false;
            st.handling = true;
            let batch = std::mem::take(&mut st.batch);
            let target = st.target.clone();
            drop(st);
            self.handle(batch, target);
            st = self.lock();
            st.handling = false;
        }
    }

    fn handle(&self, batch: Batch, target: Option<Weak<T>>) {
        let target = target.and_then(|t| t.upgrade());
        if let Some(target) = &target {
            batch.handle(&**target);
        }
        let mut st = self.lock();
        st.last = Some(Instant::now());
        if target.is_none() {
            // The store is gone: nothing more to do.
            st.stop = true;
            self.burst.notify_all();
        }
    }
}

/// The watched status directories, by the path each was watched as:
/// `notify` reports a file as that path joined with the file's name.
#[derive(Debug)]
struct Dirs(Vec<(PathBuf, JobStatus)>);

/// Where an event's path is.
#[derive(Debug, PartialEq, Eq)]
enum Place<'a> {
    /// A status directory itself.
    Dir(JobStatus),
    /// The file of this name directly in a status directory.
    File(JobStatus, &'a [u8]),
}

impl Dirs {
    /// Where `path` is, by comparing bytes (a few per event, no hashing
    /// of path components); `None` for anything outside the directories.
    fn place<'a>(&self, path: &'a Path) -> Option<Place<'a>> {
        let path = path.as_os_str().as_bytes();
        self.0.iter().find_map(|(dir, status)| {
            let dir = dir.as_os_str().as_bytes();
            let rest = path.strip_prefix(dir)?;
            if rest.is_empty() {
                return Some(Place::Dir(*status));
            }
            let name = if dir.ends_with(b"/") {
                rest
            } else {
                rest.strip_prefix(b"/")?
            };
            (!name.is_empty() && !name.contains(&b'/')).then_some(Place::File(*status, name))
        })
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
    fn is_empty(&self) -> bool {
        !self.rescan && self.hints.is_empty()
    }

    /// A rescan covers every hint.
    fn set_rescan(&mut self) {
        self.rescan = true;
        self.hints = Vec::new();
        self.at = HashMap::new();
    }

    fn add(&mut self, dirs: &Dirs, event: &Event) {
        if self.rescan {
            return;
        }
        if event.need_rescan() {
            self.set_rescan();
            return;
        }
        let Some(seen) = Seen::of(&event.kind) else {
            return;
        };
        let Some(path) = event.paths.first() else {
            return;
        };
        let (status, key) = match dirs.place(path) {
            Some(Place::File(status, name)) => match Key::from_file_name_bytes(name) {
                Some(key) => (status, key),
                None => return,
            },
            Some(Place::Dir(status)) => {
                if seen == Seen::Vanished {
                    tracing::warn!(status = %status, "a status directory stopped being watched (removed or moved?); rescanning");
                    self.set_rescan();
                }
                return;
            }
            None => return,
        };
        match self.at.get(&(status, key.clone())) {
            Some(&i) => self.hints[i].2 = self.hints[i].2.merge(seen),
            None if self.hints.len() >= MAX_BATCH => self.set_rescan(),
            None => {
                self.at.insert((status, key.clone()), self.hints.len());
                self.hints.push((status, key, seen));
            }
        }
    }

    fn handle<T: Target + ?Sized>(self, target: &T) {
        if self.rescan {
            target.rescan();
            return;
        }
        for (status, key, seen) in self.hints {
            target.hint(status, &key, seen);
        }
    }
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
            (None, Some(FoundJob { status: s, job, .. })) => {
                (ChangeKind::Created, Some(*s), Some(job.job_type.clone()))
            }
            (Some(p), Some(FoundJob { status: s, job, .. })) => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, Flag, RemoveKind};
    use semiont_jobs_model::JobId;

    fn dirs() -> Dirs {
        Dirs(
            JobStatus::ALL
                .iter()
                .map(|&s| (PathBuf::from(format!("/jobs/{s}")), s))
                .collect(),
        )
    }

    fn name_event(mode: RenameMode, path: &Path) -> Event {
        Event::new(EventKind::Modify(ModifyKind::Name(mode))).add_path(path.to_path_buf())
    }

    fn job_path(status: JobStatus, key: &Key) -> PathBuf {
        PathBuf::from(format!("/jobs/{status}/{}", key.file_name()))
    }

    fn key() -> Key {
        Key::of(&JobId::generate())
    }

    #[test]
    fn events_become_one_hint_per_job_and_directory() {
        let dirs = dirs();
        let (a, b) = (key(), key());
        let mut batch = Batch::default();
        let pending_a = job_path(JobStatus::Pending, &a);
        let running_a = job_path(JobStatus::Running, &a);
        // A claim seen from outside: out of pending, into running, then the
        // staged content renamed over it; the rename's combined event adds
        // nothing.
        batch.add(&dirs, &name_event(RenameMode::From, &pending_a));
        batch.add(&dirs, &name_event(RenameMode::To, &running_a));
        batch.add(
            &dirs,
            &Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
                .add_path(pending_a.clone())
                .add_path(running_a.clone()),
        );
        batch.add(&dirs, &name_event(RenameMode::To, &running_a));
        // A file created and deleted in place.
        let pending_b = job_path(JobStatus::Pending, &b);
        batch.add(
            &dirs,
            &Event::new(EventKind::Create(CreateKind::File)).add_path(pending_b.clone()),
        );
        batch.add(
            &dirs,
            &Event::new(EventKind::Access(AccessKind::Close(AccessMode::Write)))
                .add_path(pending_b.clone()),
        );
        batch.add(
            &dirs,
            &Event::new(EventKind::Remove(RemoveKind::File)).add_path(pending_b),
        );
        assert!(!batch.rescan);
        assert_eq!(
            batch.hints,
            [
                (JobStatus::Pending, a.clone(), Seen::Vanished),
                (JobStatus::Running, a, Seen::Appeared),
                (JobStatus::Pending, b, Seen::Both),
            ]
        );
    }

    #[test]
    fn places_are_found_by_the_watched_path() {
        let dirs = Dirs(vec![
            (PathBuf::from("rel/jobs/pending"), JobStatus::Pending),
            (PathBuf::from("/abs/jobs/running/"), JobStatus::Running),
        ]);
        fn place<'a>(dirs: &Dirs, p: &'a str) -> Option<Place<'a>> {
            dirs.place(Path::new(p))
        }
        assert_eq!(
            place(&dirs, "rel/jobs/pending/a.json"),
            Some(Place::File(JobStatus::Pending, b"a.json"))
        );
        assert_eq!(
            place(&dirs, "rel/jobs/pending"),
            Some(Place::Dir(JobStatus::Pending))
        );
        assert_eq!(
            place(&dirs, "/abs/jobs/running/b.json"),
            Some(Place::File(JobStatus::Running, b"b.json"))
        );
        assert_eq!(
            place(&dirs, "/abs/jobs/running/"),
            Some(Place::Dir(JobStatus::Running))
        );
        for outside in [
            "rel/jobs/pendingx/a.json",
            "rel/jobs/pending/sub/a.json",
            "/rel/jobs/pending/a.json",
            "rel/jobs",
        ] {
            assert_eq!(place(&dirs, outside), None, "{outside}");
        }
    }

    #[test]
    fn foreign_names_and_places_are_no_hints() {
        let dirs = dirs();
        let k = key();
        let mut batch = Batch::default();
        for path in [
            "/jobs/pending/notes.txt",
            "/jobs/pending/.hidden.json",
            "/jobs/pending/sub/x.json",
            "/elsewhere/job-1.json",
        ] {
            batch.add(&dirs, &name_event(RenameMode::To, Path::new(path)));
        }
        batch.add(
            &dirs,
            &Event::new(EventKind::Access(AccessKind::Open(AccessMode::Any)))
                .add_path(job_path(JobStatus::Pending, &k)),
        );
        batch.add(&dirs, &Event::new(EventKind::Create(CreateKind::File)));
        assert!(batch.is_empty(), "{:?}", batch.hints);
    }

    #[test]
    fn overflow_errors_and_lost_directories_become_one_rescan() {
        let dirs = dirs();
        let k = key();
        let overflow = Event::new(EventKind::Other).set_flag(Flag::Rescan);
        let dir_gone =
            Event::new(EventKind::Remove(RemoveKind::Folder)).add_path("/jobs/running".into());
        let dir_moved = name_event(RenameMode::From, Path::new("/jobs/failed"));
        for event in [overflow, dir_gone, dir_moved] {
            let mut batch = Batch::default();
            batch.add(
                &dirs,
                &name_event(RenameMode::To, &job_path(JobStatus::Pending, &k)),
            );
            batch.add(&dirs, &event);
            batch.add(
                &dirs,
                &name_event(RenameMode::To, &job_path(JobStatus::Running, &k)),
            );
            assert!(batch.rescan, "{event:?}");
            assert!(batch.hints.is_empty());
        }
        // Other events about a status directory itself are no hints.
        let mut batch = Batch::default();
        batch.add(
            &dirs,
            &Event::new(EventKind::Create(CreateKind::Folder)).add_path("/jobs/running".into()),
        );
        assert!(batch.is_empty());
    }

    #[test]
    fn a_batch_past_its_bound_becomes_a_rescan() {
        let dirs = dirs();
        let mut batch = Batch::default();
        for _ in 0..MAX_BATCH {
            batch.add(
                &dirs,
                &name_event(RenameMode::To, &job_path(JobStatus::Pending, &key())),
            );
        }
        assert_eq!(batch.hints.len(), MAX_BATCH);
        assert!(!batch.rescan);
        batch.add(
            &dirs,
            &name_event(RenameMode::To, &job_path(JobStatus::Pending, &key())),
        );
        assert!(batch.rescan);
        assert!(batch.hints.is_empty());
    }

    /// Records what it was asked to handle, and on which thread.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<(JobStatus, Key, Seen, std::thread::ThreadId)>>,
        rescans: Mutex<u32>,
        changed: Condvar,
    }

    impl Target for Recorder {
        fn hint(&self, status: JobStatus, key: &Key, seen: Seen) {
            let id = std::thread::current().id();
            self.seen
                .lock()
                .unwrap()
                .push((status, key.clone(), seen, id));
            self.changed.notify_all();
        }

        fn rescan(&self) {
            *self.rescans.lock().unwrap() += 1;
            self.changed.notify_all();
        }
    }

    impl Recorder {
        fn wait_for_hints(&self, n: usize) -> Vec<(JobStatus, Key, Seen, std::thread::ThreadId)> {
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut seen = self.seen.lock().unwrap();
            while seen.len() < n {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "only {} of {n} hints handled", seen.len());
                seen = self.changed.wait_timeout(seen, left).unwrap().0;
            }
            seen.clone()
        }
    }

    fn fed_by_hand(target: &Arc<Recorder>) -> Watcher<Recorder> {
        let watcher = Watcher {
            shared: Arc::new(Shared::new(dirs())),
            notify: None,
        };
        watcher.attach(Arc::downgrade(target)).unwrap();
        watcher
    }

    #[test]
    fn an_event_after_a_quiet_spell_is_handled_at_once_on_the_event_thread() {
        let target = Arc::new(Recorder::default());
        let watcher = fed_by_hand(&target);
        let k = key();
        let event = name_event(RenameMode::To, &job_path(JobStatus::Pending, &k));
        watcher.shared.on_event(Ok(event));
        // Handled before the handler returned, on the caller's thread.
        let seen = target.seen.lock().unwrap().clone();
        assert_eq!(
            seen,
            [(
                JobStatus::Pending,
                k,
                Seen::Appeared,
                std::thread::current().id()
            )]
        );
    }

    #[test]
    fn events_collected_before_attach_and_during_a_burst_are_all_handled() {
        let target = Arc::new(Recorder::default());
        let watcher = Watcher {
            shared: Arc::new(Shared::new(dirs())),
            notify: None,
        };
        let keys: Vec<Key> = (0..50).map(|_| key()).collect();
        // Before attach (the store is still opening): collected.
        let early = name_event(RenameMode::To, &job_path(JobStatus::Pending, &keys[0]));
        watcher.shared.on_event(Ok(early));
        assert!(target.seen.lock().unwrap().is_empty());
        watcher.attach(Arc::downgrade(&target)).unwrap();
        target.wait_for_hints(1);
        // A burst: every job once in each directory it touched, whichever
        // thread handled it.
        for k in &keys[1..] {
            let from = name_event(RenameMode::From, &job_path(JobStatus::Pending, k));
            let to = name_event(RenameMode::To, &job_path(JobStatus::Running, k));
            watcher.shared.on_event(Ok(from));
            watcher.shared.on_event(Ok(to));
        }
        let seen = target.wait_for_hints(1 + 2 * (keys.len() - 1));
        let mut got: Vec<(JobStatus, Key, Seen)> =
            seen.into_iter().map(|(s, k, x, _)| (s, k, x)).collect();
        let mut want = vec![(JobStatus::Pending, keys[0].clone(), Seen::Appeared)];
        for k in &keys[1..] {
            want.push((JobStatus::Pending, k.clone(), Seen::Vanished));
            want.push((JobStatus::Running, k.clone(), Seen::Appeared));
        }
        got.sort_by_key(|h| (h.1.file_name(), h.0.to_string()));
        want.sort_by_key(|h| (h.1.file_name(), h.0.to_string()));
        assert_eq!(got, want);
        // An overflow or a watcher error: a rescan.
        watcher
            .shared
            .on_event(Ok(Event::new(EventKind::Other).set_flag(Flag::Rescan)));
        watcher.shared.on_event(Err(notify::Error::generic("boom")));
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut rescans = target.rescans.lock().unwrap();
        while *rescans == 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no rescan");
            rescans = target.changed.wait_timeout(rescans, left).unwrap().0;
        }
    }

    #[test]
    fn a_gone_target_stops_the_watch() {
        let target = Arc::new(Recorder::default());
        let watcher = fed_by_hand(&target);
        drop(target);
        let k = key();
        watcher.shared.on_event(Ok(name_event(
            RenameMode::To,
            &job_path(JobStatus::Pending, &k),
        )));
        assert!(watcher.shared.lock().stop);
    }
}
