//! Full scans of the status directories: the one at open that builds the
//! index (taking finished jobs from the index snapshot where the listing and
//! a `stat` confirm them, reading the other files on several threads with a
//! parse of only the fields the index needs), and the rescans that reconcile
//! the index with the disk after a watcher overflow or error and on a slow
//! timer.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use std::collections::BTreeMap;

use semiont_jobs_model::{JobStatus, JobType, Timestamp, UnitCursor};
use semiont_jobs_store::{ChangeKind, ChangeOrigin, Result};
use serde::Deserialize;

use crate::error::io_err;
use crate::index::{Facts, FinRec, Index};
use crate::inner::Inner;
use crate::key::{Interner, Key};
use crate::snapshot::{self, OpenReport};
use crate::sys::{EntryType, FileInfo};

/// The fields of a job document the index needs, in either layout (flat:
/// all at top level; nested: identity and this implementation's fields in
/// `metadata`, see `JobLayout`), with every other field of `Job` type-checked
/// the same way (so a file that probes well parses well). A flat document
/// whose custom `metadata` parameter does not look like a nested one's does
/// not probe: it is read whole, under its lock, like any file that does not.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "fields are parsed for validation only")]
struct RawProbe<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    job_type: Option<Cow<'a, str>>,
    status: JobStatus,
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<Timestamp>,
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
    // Checked as `Job` checks them (so a probe that passes, a read passes).
    #[serde(default)]
    completed_units: Vec<Cow<'a, str>>,
    #[serde(default)]
    unit_cursors: BTreeMap<Cow<'a, str>, UnitCursor>,
    #[serde(default, deserialize_with = "unique_key")]
    unique_key: Option<Cow<'a, str>>,
    #[serde(default)]
    unique_after_finish_ms: Option<u64>,
    #[serde(default, borrow)]
    metadata: Option<MetaProbe<'a>>,
    // A nested document's parameters must be an object or null (`Job`
    // refuses anything else there); in a flat document a custom `params`
    // parameter of another type makes the probe fail (a full read then).
    #[serde(default)]
    params: Option<IgnoredObject>,
}

/// Any JSON object, its contents skipped (like `IgnoredAny`, but only an
/// object is accepted).
struct IgnoredObject;

impl<'de> Deserialize<'de> for IgnoredObject {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = IgnoredObject;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<IgnoredObject, A::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(IgnoredObject)
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// The `metadata` object of a nested document.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code, reason = "fields are parsed for validation only")]
struct MetaProbe<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", default, borrow)]
    job_type: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    user_id: Option<Cow<'a, str>>,
    #[serde(default)]
    created: Option<Timestamp>,
    #[serde(default)]
    retry_count: u32,
    #[serde(default)]
    max_retries: u32,
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
    // Checked as `Job` checks them (so a probe that passes, a read passes).
    #[serde(default)]
    completed_units: Vec<Cow<'a, str>>,
    #[serde(default)]
    unit_cursors: BTreeMap<Cow<'a, str>, UnitCursor>,
    #[serde(default, deserialize_with = "unique_key")]
    unique_key: Option<Cow<'a, str>>,
    #[serde(default)]
    unique_after_finish_ms: Option<u64>,
}

/// A unique key, validated as `Job` validates it.
fn unique_key<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Cow<'de, str>>, D::Error> {
    let key = Option::<Cow<'de, str>>::deserialize(d)?;
    if let Some(k) = &key {
        semiont_jobs_model::validate_unique_key(k).map_err(serde::de::Error::custom)?;
    }
    Ok(key)
}

/// What the index takes from a probed document, whatever its layout.
struct Probe<'a> {
    id: Cow<'a, str>,
    job_type: Cow<'a, str>,
    status: JobStatus,
    user_id: Cow<'a, str>,
    created: Timestamp,
    completed_at: Option<Timestamp>,
    run_at: Option<Timestamp>,
    priority: i16,
    worker_id: Option<Cow<'a, str>>,
}

impl<'a> RawProbe<'a> {
    /// The index's fields: from the top level when the document has an
    /// `id` (flat), else from `metadata` (nested, `JobLayout::of_document`).
    fn into_probe(self) -> Option<Probe<'a>> {
        let (id, job_type, user_id, created, run_at, priority, worker_id) = match self.id {
            Some(id) => (
                id,
                self.job_type?,
                self.user_id?,
                self.created?,
                self.run_at,
                self.priority,
                self.worker_id,
            ),
            None => {
                let m = self.metadata?;
                (
                    m.id?,
                    m.job_type?,
                    m.user_id?,
                    m.created?,
                    m.run_at,
                    m.priority,
                    m.worker_id,
                )
            }
        };
        Some(Probe {
            id,
            job_type,
            status: self.status,
            user_id,
            created,
            completed_at: self.completed_at,
            run_at,
            priority,
            worker_id,
        })
    }
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

impl Scanned {
    fn facts<'a>(&self, strings: &'a Interner) -> Facts<'a> {
        Facts {
            status: self.status,
            job_type: strings.name(self.ty),
            user_id: strings.name(self.user),
            created: self.created,
            completed_at: self.completed_at,
            run_at: self.run_at,
            priority: self.priority,
            worker_id: self.worker.map(|w| strings.name(w)),
            ino: self.ino,
        }
    }
}

/// What one scan thread produced.
#[derive(Default)]
struct Part {
    strings: Interner,
    /// Finished jobs with UUID ids (compact reads only), with type and
    /// user numbers of `strings`.
    fin: Vec<FinRec>,
    good: Vec<Scanned>,
    /// Keys needing a look under their lock (bad, mismatched, vanished).
    fixups: Vec<Key>,
}

/// A foreign entry of a status directory: not `<id>.json` for a valid id.
type Foreign = (JobStatus, String, EntryType);

/// The listing of the status directories.
struct Listing {
    /// Valid `<id>.json` names, by status.
    entries: Vec<(Key, JobStatus)>,
    /// Names that are not `<id>.json` for a valid id.
    foreign: Vec<Foreign>,
}

fn probe<'a>(buf: &'a [u8], key: &Key, dir: JobStatus) -> Option<Probe<'a>> {
    // Validate UTF-8 first: `from_slice` skips the check inside ignored
    // values, which the full `Job` parse (keeping unknown fields) does not.
    let text = std::str::from_utf8(buf).ok()?;
    let p = serde_json::from_str::<RawProbe<'a>>(text)
        .ok()?
        .into_probe()?;
    if p.status != dir || !key.with_str(|id| id == p.id) || JobType::parse(&p.job_type).is_err() {
        return None;
    }
    Some(p)
}

impl Inner {
    /// What the disk has under a finished record's name now (`None` when
    /// nothing is there or it cannot be looked at).
    pub(crate) fn stat_record(&self, r: &FinRec) -> Option<FileInfo> {
        r.key()
            .with_file_name(|name| self.dir(r.status()).stat(name))
            .ok()
            .flatten()
    }

    fn list_status_dirs(&self) -> Result<Listing> {
        let mut listing = Listing {
            entries: Vec::new(),
            foreign: Vec::new(),
        };
        for status in JobStatus::ALL {
            let dir = self.dir(status);
            dir.for_each_entry(|name, ty, _| {
                match (ty != EntryType::NotUtf8)
                    .then(|| Key::from_file_name_bytes(name))
                    .flatten()
                {
                    Some(key) => listing.entries.push((key, status)),
                    None => listing.foreign.push((
                        status,
                        String::from_utf8_lossy(name).into_owned(),
                        ty,
                    )),
                }
            })
            .map_err(|e| io_err("list", dir.path(), e))?;
        }
        Ok(listing)
    }

    /// Reads `entries` on several threads. With `compact`, finished jobs
    /// with UUID ids come back as base records (`Part::fin`).
    fn read_entries(&self, entries: &[(Key, JobStatus)], compact: bool) -> Vec<Part> {
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
                            if let (true, true, Key::Uuid(uuid)) =
                                (compact, status.is_finished(), key)
                            {
                                let ty = part.strings.intern(&p.job_type);
                                if let Ok(ty) = u16::try_from(ty) {
                                    let created = p.created.as_millis();
                                    part.fin.push(FinRec {
                                        uuid: *uuid,
                                        created,
                                        finished_at: p
                                            .completed_at
                                            .map_or(created, |t| t.as_millis()),
                                        ino: info.ino,
                                        user: part.strings.intern(&p.user_id),
                                        ty,
                                        status: status.index() as u8,
                                        live: true,
                                    });
                                    continue;
                                }
                            }
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
    fn quarantine_foreign(&self, foreign: Vec<Foreign>) -> Result<()> {
        for (status, name, ty) in foreign {
            let dir = self.dir(status);
            if ty == EntryType::NotUtf8 {
                tracing::warn!(dir = %dir.path().display(), name, "a file name that is not UTF-8 cannot be quarantined; remove it by hand");
                continue;
            }
            if ty == EntryType::File {
                let info = dir.stat(&name).ok().flatten();
                if self.quarantine.within_grace(info.as_ref()) {
                    continue;
                }
            }
            let reason = match ty {
                EntryType::File => "not a job file name (<id>.json)".to_owned(),
                EntryType::Dir => "a directory where job files live".to_owned(),
                EntryType::Symlink => "a symlink (symlinks are refused)".to_owned(),
                _ => "not a regular file".to_owned(),
            };
            self.quarantine
                .set_aside(dir, &name, status.as_str(), &reason)?;
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
            changed |= found.map(|f| f.status) != before;
        }
        Ok(changed)
    }

    /// The scan at open: builds the index from scratch, taking finished
    /// jobs from the snapshot where the disk confirms them.
    pub fn initial_scan(&self) -> Result<OpenReport> {
        let started = Instant::now();
        let mut ix = Index::default();
        let snap = self.load_snapshot();
        let snapshot_used = snap.is_some();
        // The snapshot's records with `ix`'s type and user numbers; `live`
        // marks the ones the disk confirms.
        let (mut recs, stamps) = match snap {
            Some(s) => {
                let tmap: Vec<u32> = s.types.iter().map(|t| ix.intern_type(t)).collect();
                let umap: Vec<u32> = s.users.iter().map(|u| ix.intern_user(u)).collect();
                let mut recs = s.recs;
                for r in &mut recs {
                    let r = &mut r.rec;
                    r.user = umap[r.user as usize];
                    match u16::try_from(tmap[usize::from(r.ty)]) {
                        Ok(ty) => r.ty = ty,
                        // Cannot be a base record: never matches, so read.
                        Err(_) => r.ino = 0,
                    }
                }
                (recs, s.dirs)
            }
            None => (Vec::new(), Default::default()),
        };
        // List the status directories. Finished entries with UUID names
        // are matched against the snapshot (sorted, then merged: the
        // listing comes in hash order); the rest is read.
        let before = self.dir_stamps();
        let mut to_read: Vec<(Key, JobStatus)> = Vec::new();
        let mut listed: Vec<([u8; 16], u64, u8)> = Vec::with_capacity(if recs.is_empty() {
            0
        } else {
            recs.len() + 4096
        });
        let mut foreign: Vec<Foreign> = Vec::new();
        for status in JobStatus::ALL {
            let dir = self.dir(status);
            let match_snapshot = status.is_finished() && !recs.is_empty();
            dir.for_each_entry(|name, ty, ino| {
                let key = (ty != EntryType::NotUtf8)
                    .then(|| Key::from_file_name_bytes(name))
                    .flatten();
                match key {
                    None => foreign.push((status, String::from_utf8_lossy(name).into_owned(), ty)),
                    Some(Key::Uuid(uuid)) if match_snapshot => {
                        listed.push((uuid, ino, status.index() as u8));
                    }
                    Some(key) => to_read.push((key, status)),
                }
            })
            .map_err(|e| io_err("list", dir.path(), e))?;
        }
        // A directory unchanged since the snapshot was written (same inode
        // and mtime then, before and after the listing) had no entry
        // created, removed or renamed since: its files are the ones the
        // snapshot's records were checked against.
        let after = self.dir_stamps();
        let unchanged: [bool; 3] = std::array::from_fn(|i| {
            stamps[i].known() && stamps[i] == before[i] && before[i] == after[i]
        });
        listed.sort_unstable_by_key(|e| e.0);
        // A candidate (`live` for now): the listed inode is the one its
        // record names.
        let mut j = 0usize;
        for (uuid, ino, status) in std::mem::take(&mut listed) {
            while j < recs.len() && recs[j].rec.uuid < uuid {
                j += 1;
            }
            match recs.get_mut(j) {
                Some(s)
                    if s.rec.uuid == uuid
                        && s.rec.ino == ino
                        && ino != 0
                        && s.rec.status == status =>
                {
                    s.rec.live = true;
                }
                _ => to_read.push((Key::Uuid(uuid), JobStatus::ALL[usize::from(status) % 5])),
            }
        }
        // Confirm the candidates in changed directories with a `stat`:
        // same inode, mtime and size as recorded.
        let checked = par_chunks_mut(&mut recs, |offset, chunk| {
            let mut failed: Vec<u32> = Vec::new();
            let mut checked = 0u64;
            for (k, s) in chunk.iter_mut().enumerate() {
                let slot = usize::from(s.rec.status).wrapping_sub(2);
                if !s.rec.live || unchanged.get(slot).copied().unwrap_or(false) {
                    continue;
                }
                checked += 1;
                let r = &s.rec;
                let info = self.stat_record(r);
                if !snapshot::same_file(s, info.as_ref()) {
                    s.rec.live = false;
                    failed.push((offset + k) as u32);
                }
            }
            (failed, checked)
        });
        let mut files_checked = 0;
        for (failed, n) in checked {
            files_checked += n;
            for i in failed {
                let r = &recs[i as usize].rec;
                to_read.push((r.key(), r.status()));
            }
        }
        // A job listed twice (in two directories) is resolved under its lock.
        to_read.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut dups: Vec<Key> = Vec::new();
        for w in to_read.windows(2) {
            if w[0].0 == w[1].0 {
                dups.push(w[0].0.clone());
            }
        }
        for (key, _) in &to_read {
            if let Key::Uuid(uuid) = key {
                if let Ok(i) = recs.binary_search_by(|s| s.rec.uuid.cmp(uuid)) {
                    if recs[i].rec.live {
                        recs[i].rec.live = false;
                        dups.push(key.clone());
                    }
                }
            }
        }
        dups.sort_unstable();
        dups.dedup();
        to_read.retain(|(k, _)| dups.binary_search(k).is_err());
        let from_snapshot = recs.iter().filter(|s| s.rec.live).count();
        let stale = recs.len() - from_snapshot;
        let mut base: Vec<FinRec> = Vec::with_capacity(from_snapshot);
        base.extend(recs.iter().filter(|s| s.rec.live).map(|s| s.rec));
        drop(recs);
        let files_read = to_read.len();
        // Finished jobs the snapshot could have held but did not.
        let finished_read = to_read
            .iter()
            .filter(|(k, s)| s.is_finished() && matches!(k, Key::Uuid(_)))
            .count();
        let mut parts = self.read_entries(&to_read, true);
        drop(to_read);
        // Finished jobs read from files join the snapshot's in the base.
        let mut fixups = dups;
        let mut misfits: Vec<(usize, FinRec)> = Vec::new();
        let from_file = base.len();
        for (pi, part) in parts.iter_mut().enumerate() {
            fixups.append(&mut part.fixups);
            let mut tys: Vec<Option<u32>> = Vec::new();
            let mut users: Vec<Option<u32>> = Vec::new();
            for f in std::mem::take(&mut part.fin) {
                let ty = *cached(&mut tys, u32::from(f.ty), || {
                    ix.intern_type(part.strings.name(u32::from(f.ty)))
                });
                let user = *cached(&mut users, f.user, || {
                    ix.intern_user(part.strings.name(f.user))
                });
                match u16::try_from(ty) {
                    Ok(ty) => base.push(FinRec { ty, user, ..f }),
                    Err(_) => misfits.push((pi, f)),
                }
            }
        }
        if base.len() > from_file {
            base.sort_unstable_by_key(|a| a.uuid);
        }
        ix.set_base(base);
        for part in &parts {
            for s in &part.good {
                ix.upsert(&s.key, &s.facts(&part.strings));
            }
        }
        for (pi, f) in misfits {
            let strings = &parts[pi].strings;
            let facts = Facts {
                status: f.status(),
                job_type: strings.name(u32::from(f.ty)),
                user_id: strings.name(f.user),
                created: f.created,
                completed_at: Some(f.finished_at),
                run_at: None,
                priority: 0,
                worker_id: None,
                ino: f.ino,
            };
            ix.upsert(&f.key(), &facts);
        }
        ix.set_snapshot_lag((finished_read + stale) as u64);
        *self.ix() = ix;
        drop(parts);
        release_free_memory();
        self.fix_keys(fixups)?;
        self.quarantine_foreign(foreign)?;
        self.quarantine.recount();
        let report = OpenReport {
            snapshot_used,
            from_snapshot: from_snapshot as u64,
            files_read: files_read as u64,
            files_checked,
            stale_records: stale as u64,
            index_time: started.elapsed(),
        };
        tracing::debug!(?report, "index built");
        Ok(report)
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
                    (Some((lk, ls)), Some((ik, is))) if lk == ik => {
                        let (lk, ls, is) = (lk.clone(), *ls, *is);
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
                    (Some((lk, _)), Some((ik, _))) if lk > ik => {
                        // Indexed but not listed: gone, or moved mid-scan.
                        suspects.push(ik.clone());
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
                        suspects.push(ik.clone());
                        indexed.next();
                    }
                }
            }
        }
        let mut changed = !to_read.is_empty();
        let parts = self.read_entries(&to_read, false);
        for part in &parts {
            suspects.extend(part.fixups.iter().cloned());
            for s in &part.good {
                let facts = s.facts(&part.strings);
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
        self.quarantine.recount();
        Ok(changed || foreign)
    }
}

/// Runs `f` on contiguous mutable chunks of `items` on several threads
/// (one when there are few items); `f` gets each chunk's offset. Returns
/// the results in order.
pub(crate) fn par_chunks_mut<T: Send, R: Send>(
    items: &mut [T],
    f: impl Fn(usize, &mut [T]) -> R + Sync,
) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8)
        .min(items.len().div_ceil(4096).max(1));
    if threads <= 1 {
        return vec![f(0, items)];
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks_mut(chunk)
            .enumerate()
            .map(|(k, c)| {
                let f = &f;
                s.spawn(move || f(k * chunk, c))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The cached value of `slot` in `cache`, computed by `f` the first time.
fn cached(cache: &mut Vec<Option<u32>>, slot: u32, f: impl FnOnce() -> u32) -> &u32 {
    let i = slot as usize;
    if cache.len() <= i {
        cache.resize(i + 1, None);
    }
    cache[i].get_or_insert_with(f)
}

/// Gives the scan's freed temporaries back to the operating system (glibc
/// keeps freed heap memory otherwise, and the scan's peak is several times
/// the index it leaves).
pub(crate) fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn probed(doc: &serde_json::Value, dir: JobStatus) -> Option<(String, String, i64, i16)> {
        let buf = serde_json::to_vec(doc).unwrap();
        let key = Key::from_file_name("job-1.json").unwrap();
        probe(&buf, &key, dir).map(|p| {
            (
                p.id.into_owned(),
                p.user_id.into_owned(),
                p.created.as_millis(),
                p.priority,
            )
        })
    }

    #[test]
    fn both_layouts_probe_the_same_facts() {
        let flat = json!({"id": "job-1", "type": "t", "status": "pending", "userId": "u",
                          "created": "1970-01-01T00:00:01.000Z", "priority": 2, "n": 1});
        let nested = json!({"status": "pending", "params": {"n": 1},
                            "metadata": {"id": "job-1", "type": "t", "userId": "u",
                                         "created": "1970-01-01T00:00:01.000Z", "priority": 2,
                                         "retryCount": 0, "maxRetries": 3, "tenant": "x"}});
        let want = Some(("job-1".to_owned(), "u".to_owned(), 1000, 2));
        assert_eq!(probed(&flat, JobStatus::Pending), want);
        assert_eq!(probed(&nested, JobStatus::Pending), want);
        // The directory must match, and a nested document needs its identity.
        assert_eq!(probed(&nested, JobStatus::Running), None);
        let mut no_id = nested.clone();
        no_id["metadata"].as_object_mut().unwrap().remove("id");
        assert_eq!(probed(&no_id, JobStatus::Pending), None);
        // A nested document's params must be an object, as `Job` says.
        let mut bad_params = nested.clone();
        bad_params["params"] = json!("a string");
        assert_eq!(probed(&bad_params, JobStatus::Pending), None);
        assert!(
            semiont_jobs_model::Job::from_json(&serde_json::to_vec(&bad_params).unwrap()).is_err()
        );
        // A flat document's own `metadata` parameter does not make it nested.
        let mut flat_meta = flat.clone();
        flat_meta["metadata"] = json!({"id": "other", "note": "a parameter"});
        assert_eq!(probed(&flat_meta, JobStatus::Pending), want);
    }
}
