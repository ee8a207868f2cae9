//! Full scans of the status directories: the one at open that builds the
//! index (reading files on several threads with a parse of only the fields
//! the index needs), and the rescans that reconcile the index with the disk
//! after a watcher overflow or error and on a slow timer.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use semiont_jobs_model::{JobStatus, JobType, Timestamp};
use semiont_jobs_store::{ChangeKind, ChangeOrigin, Result};
use serde::Deserialize;

use crate::error::io_err;
use crate::index::{Facts, Index};
use crate::inner::Inner;
use crate::key::{Interner, Key};
use crate::sys::EntryType;

/// The fields of a job document the index needs, with every other field of
/// `Job` type-checked the same way (so a file that probes well parses well).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "fields are parsed for validation only")]
struct Probe<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    job_type: Cow<'a, str>,
    status: JobStatus,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    created: Timestamp,
    #[serde(default)]
    started_at: Option<Timestamp>,
    #[serde(default)]
    completed_at: Option<Timestamp>,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
    #[serde(default)]
    retry_count: u32,
    // Parsed only so that the probe rejects exactly what `Job` rejects
    // (`"maxRetries": null` included).
    #[serde(default)]
    #[allow(dead_code, reason = "validated, not read")]
    max_retries: u32,
    #[serde(default)]
    progress: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    result: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    attempt: u32,
    #[serde(default)]
    run_at: Option<Timestamp>,
    #[serde(default)]
    priority: i16,
    #[serde(default, borrow)]
    worker_id: Option<Cow<'a, str>>,
    #[serde(default)]
    lease_expires_at: Option<Timestamp>,
}

/// Index facts with strings interned in a scan thread's own interner.
struct Scanned {
    key: Key,
    status: JobStatus,
    ty: u32,
    user: u32,
    worker: Option<u32>,
    created: i64,
    completed_at: Option<i64>,
    run_at: Option<i64>,
    priority: i16,
    ino: u64,
}

/// What one scan thread produced.
#[derive(Default)]
struct Part {
    strings: Interner,
    good: Vec<Scanned>,
    /// Keys needing a look under their lock (bad, mismatched, vanished).
    fixups: Vec<Key>,
}

/// The listing of the status directories.
struct Listing {
    /// Valid `<id>.json` names, by status.
    entries: Vec<(Key, JobStatus)>,
    /// Names that are not `<id>.json` for a valid id.
    foreign: Vec<(JobStatus, String, EntryType)>,
}

fn probe<'a>(buf: &'a [u8], key: &Key, dir: JobStatus) -> Option<Probe<'a>> {
    // Validate UTF-8 first: `from_slice` skips the check inside ignored
    // values, which the full `Job` parse (keeping unknown fields) does not.
    let text = std::str::from_utf8(buf).ok()?;
    let p: Probe<'a> = serde_json::from_str(text).ok()?;
    if p.status != dir || !key.with_str(|id| id == p.id) || JobType::parse(&p.job_type).is_err() {
        return None;
    }
    Some(p)
}

impl Inner {
    fn list_status_dirs(&self) -> Result<Listing> {
        let mut listing = Listing {
            entries: Vec::new(),
            foreign: Vec::new(),
        };
        for status in JobStatus::ALL {
            let dir = self.dir(status);
            let names = dir.list().map_err(|e| io_err("list", dir.path(), e))?;
            for (name, ty) in names {
                match (ty != EntryType::NotUtf8)
                    .then(|| Key::from_file_name(&name))
                    .flatten()
                {
                    Some(key) => listing.entries.push((key, status)),
                    None => listing.foreign.push((status, name, ty)),
                }
            }
        }
        Ok(listing)
    }

    /// Reads `entries` on several threads.
    fn read_entries(&self, entries: &[(Key, JobStatus)]) -> Vec<Part> {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(1, 8)
            .min(entries.len().div_ceil(256).max(1));
        let next = AtomicUsize::new(0);
        const CHUNK: usize = 512;
        let work = || {
            let mut part = Part::default();
            let mut buf = Vec::with_capacity(4096);
            loop {
                let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                if start >= entries.len() {
                    break;
                }
                for (key, status) in &entries[start..(start + CHUNK).min(entries.len())] {
                    let name = key.file_name();
                    let info = match self.dir(*status).read(&name, &mut buf) {
                        Ok(info) => info,
                        Err(_) => {
                            part.fixups.push(key.clone());
                            continue;
                        }
                    };
                    match probe(&buf, key, *status) {
                        Some(p) => {
                            let scanned = Scanned {
                                key: key.clone(),
                                status: *status,
                                ty: part.strings.intern(&p.job_type),
                                user: part.strings.intern(&p.user_id),
                                worker: p.worker_id.as_deref().map(|w| part.strings.intern(w)),
                                created: p.created.as_millis(),
                                completed_at: p.completed_at.map(|t| t.as_millis()),
                                run_at: p.run_at.map(|t| t.as_millis()),
                                priority: p.priority,
                                ino: info.ino,
                            };
                            part.good.push(scanned);
                        }
                        None => part.fixups.push(key.clone()),
                    }
                }
            }
            part
        };
        if threads <= 1 {
            return vec![work()];
        }
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(work)).collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        })
    }

    /// Quarantines names in status directories that are not job files.
    fn quarantine_foreign(&self, foreign: Vec<(JobStatus, String, EntryType)>) -> Result<()> {
        for (status, name, ty) in foreign {
            let dir = self.dir(status);
            if ty == EntryType::NotUtf8 {
                tracing::warn!(dir = %dir.path().display(), name, "a file name that is not UTF-8 cannot be quarantined; remove it by hand");
                continue;
            }
            if ty == EntryType::File {
                let info = dir.stat(&name).ok().flatten();
                if self.within_grace(info.as_ref()) {
                    continue;
                }
            }
            let reason = match ty {
                EntryType::File => "not a job file name (<id>.json)".to_owned(),
                EntryType::Dir => "a directory where job files live".to_owned(),
                EntryType::Symlink => "a symlink (symlinks are refused)".to_owned(),
                _ => "not a regular file".to_owned(),
            };
            self.quarantine(dir, &name, status.as_str(), &reason)?;
        }
        Ok(())
    }

    /// Fixes keys that need a look under their lock, updating the index.
    fn fix_keys(&self, keys: impl IntoIterator<Item = Key>) -> Result<bool> {
        let mut changed = false;
        for key in keys {
            let _g = self.lock(&key)?;
            let before = self.ix().status(&key);
            self.repair_locked(&key)?;
            let (_, found) = self.refresh_locked(&key, before)?;
            changed |= found.map(|f| f.0) != before;
        }
        Ok(changed)
    }

    /// The scan at open: builds the index from scratch.
    pub fn initial_scan(&self) -> Result<()> {
        let listing = self.list_status_dirs()?;
        let mut entries = listing.entries;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut dups: HashSet<Key> = HashSet::new();
        for w in entries.windows(2) {
            if w[0].0 == w[1].0 {
                dups.insert(w[0].0.clone());
            }
        }
        let unique: Vec<(Key, JobStatus)> = entries
            .into_iter()
            .filter(|(k, _)| !dups.contains(k))
            .collect();
        let parts = self.read_entries(&unique);
        drop(unique);
        let mut fixups: Vec<Key> = dups.into_iter().collect();
        let mut facts = Vec::new();
        for part in &parts {
            fixups.extend(part.fixups.iter().cloned());
            for s in &part.good {
                facts.push((
                    s.key.clone(),
                    Facts {
                        status: s.status,
                        job_type: part.strings.name(s.ty),
                        user_id: part.strings.name(s.user),
                        created: s.created,
                        completed_at: s.completed_at,
                        run_at: s.run_at,
                        priority: s.priority,
                        worker_id: s.worker.map(|w| part.strings.name(w)),
                        ino: s.ino,
                    },
                ));
            }
        }
        facts.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        *self.ix() = Index::build(facts);
        drop(parts);
        release_free_memory();
        self.fix_keys(fixups)?;
        self.quarantine_foreign(listing.foreign)?;
        self.recount_quarantine();
        Ok(())
    }

    /// Counts the files in quarantine (not their `.reason` files).
    pub fn recount_quarantine(&self) {
        let q = &self.layout.quarantine;
        if let Ok(names) = q.list() {
            let n = names
                .iter()
                .filter(|(name, _)| !name.ends_with(".reason"))
                .count();
            self.quarantined.store(n as u64, Ordering::Relaxed);
        }
    }

    /// A rescan: reconciles the index with the directories. Emits one
    /// `Resynced` event when `always_announce` or when anything differed.
    pub fn rescan(&self, always_announce: bool) -> Result<()> {
        let _r = self.rescan_mutex.lock().unwrap_or_else(|e| e.into_inner());
        let changed = self.rescan_inner()?;
        if changed || always_announce {
            self.emit(
                None,
                ChangeKind::Resynced,
                None,
                None,
                ChangeOrigin::External,
            );
        }
        Ok(())
    }

    fn rescan_inner(&self) -> Result<bool> {
        let listing = self.list_status_dirs()?;
        let mut entries = listing.entries;
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut suspects: Vec<Key> = Vec::new();
        let mut to_read: Vec<(Key, JobStatus)> = Vec::new();
        {
            let ix = self.ix();
            let mut listed = entries.iter().peekable();
            let mut indexed = ix.statuses().peekable();
            loop {
                match (listed.peek(), indexed.peek()) {
                    (None, None) => break,
                    (Some((lk, ls)), Some((ik, is))) if lk == *ik => {
                        let (lk, ls, is) = ((*lk).clone(), *ls, *is);
                        listed.next();
                        let dup = listed.peek().is_some_and(|(k, _)| *k == lk);
                        if dup {
                            suspects.push(lk.clone());
                            while listed.peek().is_some_and(|(k, _)| *k == lk) {
                                listed.next();
                            }
                        } else if ls != is {
                            to_read.push((lk, ls));
                        }
                        indexed.next();
                    }
                    (Some((lk, _)), Some((ik, _))) if lk > *ik => {
                        // Indexed but not listed: gone, or moved mid-scan.
                        suspects.push((*ik).clone());
                        indexed.next();
                    }
                    (Some((lk, ls)), _) => {
                        let (lk, ls) = ((*lk).clone(), *ls);
                        listed.next();
                        if listed.peek().is_some_and(|(k, _)| *k == lk) {
                            suspects.push(lk.clone());
                            while listed.peek().is_some_and(|(k, _)| *k == lk) {
                                listed.next();
                            }
                        } else {
                            to_read.push((lk, ls));
                        }
                    }
                    (None, Some((ik, _))) => {
                        suspects.push((*ik).clone());
                        indexed.next();
                    }
                }
            }
        }
        let mut changed = !to_read.is_empty();
        let parts = self.read_entries(&to_read);
        for part in &parts {
            suspects.extend(part.fixups.iter().cloned());
            for s in &part.good {
                let facts = Facts {
                    status: s.status,
                    job_type: part.strings.name(s.ty),
                    user_id: part.strings.name(s.user),
                    created: s.created,
                    completed_at: s.completed_at,
                    run_at: s.run_at,
                    priority: s.priority,
                    worker_id: s.worker.map(|w| part.strings.name(w)),
                    ino: s.ino,
                };
                // Under the job lock, so no operation of ours is mid-way.
                let _g = self.lock(&s.key)?;
                let on_disk = self.dir(s.status).stat(&s.key.file_name()).ok().flatten();
                if on_disk.is_some_and(|i| i.ino == s.ino) {
                    self.ix().upsert(&s.key, &facts);
                } else {
                    drop(_g);
                    suspects.push(s.key.clone());
                }
            }
        }
        changed |= self.fix_keys(suspects)?;
        let foreign = !listing.foreign.is_empty();
        self.quarantine_foreign(listing.foreign)?;
        self.recount_quarantine();
        Ok(changed || foreign)
    }
}

/// Gives the scan's freed temporaries back to the operating system (glibc
/// keeps freed heap memory otherwise, and the scan's peak is several times
/// the index it leaves).
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
