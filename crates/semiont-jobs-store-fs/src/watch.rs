//! The directory watcher: `notify` events on the status directories are
//! hints. Each names a job whose file appeared or vanished; when the index
//! disagrees with the disk, the job is re-read under its lock, the index
//! corrected, and an `External` change event sent. Overflows and watcher
//! errors trigger a full rescan.

use std::collections::HashSet;
use std::path::Path;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;

use notify::event::{AccessKind, EventKind, ModifyKind};
use notify::{Event, RecommendedWatcher, RecursiveMode, Watcher};
use semiont_jobs_model::{JobStatus, JobType, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin};

use crate::inner::Inner;
use crate::key::Key;

/// Most events handled before looking at the channel again.
const BATCH: usize = 4096;
/// How long a burst of events is collected before it is handled (a delay
/// subscribers see on external changes).
const COALESCE: std::time::Duration = std::time::Duration::from_millis(2);

/// Starts watching the status directories; events queue in the returned
/// receiver until [`spawn_processor`] consumes them.
pub(crate) fn start(
    inner: &Inner,
) -> notify::Result<(RecommendedWatcher, Receiver<notify::Result<Event>>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<Event>| {
        // Reads of job files (ours and everyone's) are events too: drop
        // them here, before they cost a channel slot and a wake-up.
        if let Ok(e) = &ev {
            if ignored(&e.kind) && !e.need_rescan() {
                return;
            }
        }
        let _ = tx.send(ev);
    })?;
    for status in JobStatus::ALL {
        watcher.watch(inner.dir(status).path(), RecursiveMode::NonRecursive)?;
    }
    Ok((watcher, rx))
}

/// Runs the event loop on its own thread until the watcher is dropped or
/// the store is gone.
pub(crate) fn spawn_processor(
    inner: Weak<Inner>,
    rx: Receiver<notify::Result<Event>>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("semiont-jobs-fs-watch".into())
        .spawn(move || loop {
            let Ok(first) = rx.recv() else { return };
            // Events come in bursts (a transition is several): let the
            // burst finish, then handle it at once, each job once.
            std::thread::sleep(COALESCE);
            let Some(inner) = inner.upgrade() else { return };
            let mut batch = vec![first];
            loop {
                match rx.try_recv() {
                    Ok(ev) => {
                        batch.push(ev);
                        if batch.len() >= BATCH {
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => break,
                }
            }
            process(&inner, batch);
        })
}

fn process(inner: &Arc<Inner>, batch: Vec<notify::Result<Event>>) {
    let mut rescan = false;
    let mut seen: HashSet<(JobStatus, Key)> = HashSet::new();
    let mut hints = Vec::new();
    for ev in batch {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(error = %e, "directory watcher error; rescanning");
                rescan = true;
                continue;
            }
        };
        if ev.need_rescan() {
            rescan = true;
            continue;
        }
        if ignored(&ev.kind) {
            continue;
        }
        for path in &ev.paths {
            if let Some((status, key, name)) = parse_path(inner, path) {
                if seen.insert((status, key.clone())) {
                    hints.push((status, key, name));
                }
            }
        }
    }
    if rescan {
        if let Err(e) = inner.rescan(true) {
            tracing::warn!(error = %e, "rescan failed");
        }
        return;
    }
    for (status, key, name) in hints {
        inner.hint(status, &key, &name);
    }
}

/// Events that never mean a job file appeared, vanished or changed.
fn ignored(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Open(_))
            | EventKind::Access(AccessKind::Read)
            | EventKind::Access(AccessKind::Close(notify::event::AccessMode::Read))
            | EventKind::Modify(ModifyKind::Metadata(_))
    )
}

fn parse_path(inner: &Inner, path: &Path) -> Option<(JobStatus, Key, String)> {
    let status = inner.layout.status_of_dir(path.parent()?)?;
    let name = path.file_name()?.to_str()?;
    let key = Key::from_file_name(name)?;
    Some((status, key, name.to_owned()))
}

impl Inner {
    /// Whether what the disk shows for `status/<name>` differs from the index.
    fn hint_needs_look(&self, status: JobStatus, key: &Key, name: &str) -> bool {
        let on_disk = self.dir(status).stat(name).ok().flatten();
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
    pub(crate) fn hint(&self, status: JobStatus, key: &Key, name: &str) {
        if !self.hint_needs_look(status, key, name) {
            return;
        }
        let Ok(_g) = self.lock(key) else { return };
        if !self.hint_needs_look(status, key, name) {
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
