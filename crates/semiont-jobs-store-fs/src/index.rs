//! The in-memory index: what claim, stats and list read instead of
//! scanning directories. It holds a few numbers per job (no job content),
//! built by one scan at open (or from the index snapshot) and kept current
//! by this instance's operations and by watcher hints.
//!
//! It has two parts. The *base* holds finished jobs with `job-<uuid>` ids
//! in flat arrays, 52 bytes per job: one record of 48 bytes in a vector
//! sorted by id, and a 4-byte position in a per-status list sorted by
//! `(created, id)`. It is filled in bulk at open, where nearly all jobs of a
//! large queue are finished. The *overlay* (ordered trees) holds everything
//! else: pending and running jobs, other ids, and finished jobs that left
//! their base slot. A job is live in at most one part. A base record whose
//! job changes status or goes away is marked dead (its slot can be taken
//! again when the job comes back to the same status); the base is rebuilt
//! without its dead records when they are more than half of it.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::iter::Peekable;

use semiont_jobs_model::{Job, JobFilter, JobStatus};
use semiont_jobs_store::TypeFilter;

use crate::key::{Interner, Key};

/// The base is rebuilt only when more than this many records are dead.
const COMPACT_MIN: usize = if cfg!(test) { 16 } else { 1024 };
/// Finished jobs in the overlay are moved into the base when there are more
/// than this many of them and more than an eighth of the base.
const ABSORB_MIN: usize = if cfg!(test) { 8 } else { 4096 };

/// Sentinel for "no interned string".
const NONE: u32 = u32::MAX;

/// [`Meta::due_or_finished_at`] of a pending job without `runAt`: due at
/// once (in a ready set, not among the delayed).
const DUE_NOW: i64 = i64::MIN;
/// [`Meta::due_or_finished_at`] of a parked pending job: never due until
/// the next `upsert` for it (see [`Index::park`]).
const PARKED: i64 = i64::MAX;

/// The index's record of one job in the overlay.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// `created`, ms since the epoch.
    pub created: i64,
    /// The time that orders the job within its status, ms since the epoch.
    /// Pending: when it is due for a claim, its `runAt` ([`DUE_NOW`]
    /// without one, [`PARKED`] while another process holds it); finished:
    /// `completedAt` (or `created`), the retention order; running: 0.
    pub due_or_finished_at: i64,
    /// Inode of the file the facts came from (0: unknown).
    pub ino: u64,
    /// Interned user id.
    pub user: u32,
    /// Interned job type.
    pub ty: u32,
    /// Claim priority.
    pub priority: i16,
    /// Status (= directory).
    pub status: JobStatus,
}

impl Meta {
    /// Equal in everything but the inode.
    fn same_facts(&self, other: &Meta) -> bool {
        Meta {
            ino: other.ino,
            ..*self
        } == *other
    }
}

/// A finished job with a `job-<uuid>` id, as the base (and the snapshot)
/// keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FinRec {
    /// The id's UUID bytes (`Key::Uuid`).
    pub uuid: [u8; 16],
    /// `created`, ms since the epoch.
    pub created: i64,
    /// `completedAt` (or `created`), ms since the epoch.
    pub finished_at: i64,
    /// Inode of the file the facts came from (0: unknown).
    pub ino: u64,
    /// Interned user id.
    pub user: u32,
    /// Interned job type.
    pub ty: u16,
    /// `JobStatus::index()` of a finished status.
    pub status: u8,
    /// False once the job left this slot.
    pub live: bool,
}

const _: () = assert!(std::mem::size_of::<FinRec>() == 48);

impl FinRec {
    /// The compact record of a finished job's overlay entry; `None` for an
    /// id that is not a UUID or a type number too large for a record.
    fn of(key: &Key, m: &Meta) -> Option<FinRec> {
        let (Key::Uuid(uuid), Ok(ty)) = (key, u16::try_from(m.ty)) else {
            return None;
        };
        Some(FinRec {
            uuid: *uuid,
            created: m.created,
            finished_at: m.due_or_finished_at,
            ino: m.ino,
            user: m.user,
            ty,
            status: m.status.index() as u8,
            live: true,
        })
    }

    /// The record's status.
    pub fn status(&self) -> JobStatus {
        JobStatus::ALL[usize::from(self.status) % 5]
    }

    /// The record's key.
    pub fn key(&self) -> Key {
        Key::Uuid(self.uuid)
    }
}

/// What the index learns from a job file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Facts<'a> {
    pub status: JobStatus,
    pub job_type: &'a str,
    pub user_id: &'a str,
    pub created: i64,
    pub completed_at: Option<i64>,
    pub run_at: Option<i64>,
    pub priority: i16,
    pub worker_id: Option<&'a str>,
    /// Inode of the published file (to tell own writes from others', and
    /// to validate snapshot records).
    pub ino: u64,
}

impl<'a> Facts<'a> {
    /// The facts of `job`, published as inode `ino`.
    pub fn of_job(job: &'a Job, ino: u64) -> Self {
        Facts {
            status: job.status,
            job_type: job.job_type.as_str(),
            user_id: &job.user_id,
            created: job.created.as_millis(),
            completed_at: job.completed_at.map(|t| t.as_millis()),
            run_at: job.run_at.map(|t| t.as_millis()),
            priority: job.priority,
            worker_id: job.worker_id.as_deref(),
            ino,
        }
    }
}

/// A running job's extra record: its worker and the inode last seen.
#[derive(Clone, Copy, Debug)]
struct RunInfo {
    worker: u32,
    ino: u64,
}

type ListEntry = (i64, Key, u32, u32);

/// The slot of a finished status in the base's per-status lists.
fn fin_slot(status: JobStatus) -> Option<usize> {
    match status {
        JobStatus::Complete => Some(0),
        JobStatus::Failed => Some(1),
        JobStatus::Cancelled => Some(2),
        _ => None,
    }
}

/// Whether an overlay entry could live in the base.
fn base_kind(key: &Key, meta: &Meta) -> bool {
    matches!(key, Key::Uuid(_)) && meta.status.is_finished() && meta.ty <= u32::from(u16::MAX)
}

/// The bulk part of the index: finished jobs with UUID ids.
#[derive(Debug, Default)]
struct Base {
    /// Sorted by `uuid`, unique.
    recs: Vec<FinRec>,
    /// Per finished status (`fin_slot`): positions in `recs`, ascending by
    /// `(created, uuid)`. Dead records stay listed until a rebuild.
    order: [Vec<u32>; 3],
    /// Records with `live == false`.
    dead: usize,
}

impl Base {
    /// Builds the base from records sorted by uuid (all taken as live).
    fn build(mut recs: Vec<FinRec>) -> Base {
        recs.shrink_to_fit();
        let mut order: [Vec<u32>; 3] = Default::default();
        let mut n = [0usize; 3];
        for r in &mut recs {
            r.live = true;
            if let Some(slot) = fin_slot(r.status()) {
                n[slot] += 1;
            }
        }
        for (slot, o) in order.iter_mut().enumerate() {
            o.reserve_exact(n[slot]);
        }
        for (i, r) in recs.iter().enumerate() {
            if let Some(slot) = fin_slot(r.status()) {
                order[slot].push(i as u32);
            }
        }
        // Positions ascend with the uuid, so (created, position) sorts like
        // (created, uuid). Ids made at creation time are nearly in this
        // order already. (No side vector of sort keys: it would be freed
        // into a malloc arena that keeps it.)
        for o in &mut order {
            o.sort_unstable_by_key(|&i| (recs[i as usize].created, i));
        }
        Base {
            recs,
            order,
            dead: 0,
        }
    }

    fn find(&self, uuid: &[u8; 16]) -> Option<usize> {
        self.recs.binary_search_by(|r| r.uuid.cmp(uuid)).ok()
    }

    fn live(&self) -> impl Iterator<Item = &FinRec> {
        self.recs.iter().filter(|r| r.live)
    }
}

/// The index. All methods are O(log n) except `list` with a type or user
/// filter and `finished_before`, which walk the index (never the disk), and
/// the rare rebuild of the base.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// The overlay: every job not live in the base.
    jobs: BTreeMap<Key, Meta>,
    /// Overlay, per status: (created, key, type, user), for newest-first listing.
    by_created: [BTreeSet<ListEntry>; 5],
    /// Per type: due pending jobs in claim order.
    ready: Vec<BTreeSet<(Reverse<i16>, Key)>>,
    /// Pending jobs with a `runAt`, by `runAt`, not yet moved to `ready`.
    delayed: BTreeSet<(i64, Key)>,
    /// Jobs per status, both parts.
    counts: [u64; 5],
    /// Jobs per type (by interned number) and status, both parts.
    type_counts: Vec<[u64; 5]>,
    running: HashMap<Key, RunInfo>,
    types: Interner,
    users: Interner,
    workers: Interner,
    base: Base,
    /// Overlay entries that could live in the base (finished, UUID id).
    overlay_fin: usize,
    /// Changes since the index was built (upserts and removes).
    changes: u64,
    /// `changes` as of the last snapshot written or loaded.
    snapshot_at: u64,
}

/// The newest-first entries of one status in one part.
type ListIter<'a> = Peekable<Box<dyn Iterator<Item = (i64, Cow<'a, Key>)> + 'a>>;

impl Index {
    /// Builds an index from one scan's results: finished jobs with UUID ids
    /// go to the base, the rest to the overlay.
    #[cfg(test)]
    pub fn build<'a>(entries: impl IntoIterator<Item = (Key, Facts<'a>)>) -> Index {
        let mut ix = Index::default();
        let mut recs = Vec::new();
        let mut rest = Vec::new();
        for (key, f) in entries {
            match ix.fin_rec(&key, &f) {
                Some(r) => recs.push(r),
                None => rest.push((key, f)),
            }
        }
        recs.sort_unstable_by_key(|a| a.uuid);
        recs.dedup_by(|a, b| a.uuid == b.uuid);
        ix.set_base(recs);
        for (key, f) in rest {
            ix.upsert(&key, &f);
        }
        ix
    }

    /// The base record `f` makes for `key`, when it belongs in the base.
    #[cfg(test)]
    fn fin_rec(&mut self, key: &Key, f: &Facts<'_>) -> Option<FinRec> {
        let Key::Uuid(uuid) = key else { return None };
        if !f.status.is_finished() {
            return None;
        }
        let meta = self.meta_of(f);
        Some(FinRec {
            uuid: *uuid,
            created: meta.created,
            finished_at: meta.due_or_finished_at,
            ino: meta.ino,
            user: meta.user,
            ty: u16::try_from(meta.ty).ok()?,
            status: meta.status.index() as u8,
            live: true,
        })
    }

    /// Installs the base (an empty index only): `recs` sorted by uuid and
    /// unique, their type and user numbers from [`Index::intern_type`] and
    /// [`Index::intern_user`].
    pub fn set_base(&mut self, recs: Vec<FinRec>) {
        debug_assert!(self.jobs.is_empty() && self.base.recs.is_empty());
        for r in &recs {
            self.count(u32::from(r.ty), r.status(), true);
        }
        self.base = Base::build(recs);
    }

    /// The number of job type `s`, adding it if new.
    pub fn intern_type(&mut self, s: &str) -> u32 {
        self.types.intern(s)
    }

    /// The number of user id `s`, adding it if new.
    pub fn intern_user(&mut self, s: &str) -> u32 {
        self.users.intern(s)
    }

    fn meta_of(&mut self, f: &Facts<'_>) -> Meta {
        let due_or_finished_at = match f.status {
            JobStatus::Pending => f.run_at.unwrap_or(DUE_NOW),
            JobStatus::Running => 0,
            _ => f.completed_at.unwrap_or(f.created),
        };
        Meta {
            created: f.created,
            due_or_finished_at,
            ino: f.ino,
            user: self.users.intern(f.user_id),
            ty: self.types.intern(f.job_type),
            priority: f.priority,
            status: f.status,
        }
    }

    /// Adds the pending/running side records (not `jobs`, `by_created`, counts).
    fn add_side(&mut self, key: &Key, meta: &Meta, f: &Facts<'_>) {
        match meta.status {
            JobStatus::Pending => {
                if meta.due_or_finished_at == DUE_NOW {
                    self.ready_set(meta.ty)
                        .insert((Reverse(meta.priority), key.clone()));
                } else {
                    self.delayed.insert((meta.due_or_finished_at, key.clone()));
                }
            }
            JobStatus::Running => {
                let worker = f.worker_id.map_or(NONE, |w| self.workers.intern(w));
                self.running
                    .insert(key.clone(), RunInfo { worker, ino: f.ino });
            }
            _ => {}
        }
    }

    fn remove_side(&mut self, key: &Key, meta: &Meta) {
        match meta.status {
            JobStatus::Pending => {
                if let Some(set) = self.ready.get_mut(meta.ty as usize) {
                    set.remove(&(Reverse(meta.priority), key.clone()));
                }
                if meta.due_or_finished_at != DUE_NOW {
                    self.delayed.remove(&(meta.due_or_finished_at, key.clone()));
                }
            }
            JobStatus::Running => {
                self.running.remove(key);
            }
            _ => {}
        }
    }

    fn ready_set(&mut self, ty: u32) -> &mut BTreeSet<(Reverse<i16>, Key)> {
        let i = ty as usize;
        if self.ready.len() <= i {
            self.ready.resize_with(i + 1, BTreeSet::new);
        }
        &mut self.ready[i]
    }

    /// The base position of `key`, live or dead.
    fn base_pos(&self, key: &Key) -> Option<usize> {
        match key {
            Key::Uuid(uuid) => self.base.find(uuid),
            Key::Other(_) => None,
        }
    }

    /// The live base record of `key`.
    fn base_live(&self, key: &Key) -> Option<&FinRec> {
        self.base_pos(key)
            .map(|i| &self.base.recs[i])
            .filter(|r| r.live)
    }

    /// Marks base record `i` dead; rebuilds the base when most of it is.
    fn kill_base(&mut self, i: usize) {
        let r = &mut self.base.recs[i];
        if !r.live {
            return;
        }
        r.live = false;
        let (ty, status) = (u32::from(r.ty), r.status());
        self.count(ty, status, false);
        self.base.dead += 1;
        if self.base.dead > COMPACT_MIN && self.base.dead * 2 > self.base.recs.len() {
            self.compact();
        }
    }

    /// Rebuilds the base without its dead records.
    fn compact(&mut self) {
        let recs: Vec<FinRec> = self.base.live().copied().collect();
        self.base = Base::build(recs);
    }

    /// The status the index has for `key`.
    pub fn status(&self, key: &Key) -> Option<JobStatus> {
        match self.jobs.get(key) {
            Some(m) => Some(m.status),
            None => self.base_live(key).map(FinRec::status),
        }
    }

    /// Records what a file says about `key`; returns the previous status.
    pub fn upsert(&mut self, key: &Key, f: &Facts<'_>) -> Option<JobStatus> {
        self.changes += 1;
        let meta = self.meta_of(f);
        let prev_overlay = self.jobs.get(key).copied();
        let base_i = self.base_pos(key);
        let prev = prev_overlay.map(|m| m.status).or_else(|| {
            base_i
                .map(|i| &self.base.recs[i])
                .filter(|r| r.live)
                .map(FinRec::status)
        });
        if let Some(old) = prev_overlay {
            if old.same_facts(&meta) {
                if let Some(m) = self.jobs.get_mut(key) {
                    m.ino = meta.ino;
                }
                if meta.status == JobStatus::Running {
                    let worker = f.worker_id.map_or(NONE, |w| self.workers.intern(w));
                    self.running
                        .insert(key.clone(), RunInfo { worker, ino: f.ino });
                }
                return prev;
            }
        }
        if let Some(i) = base_i {
            let r = self.base.recs[i];
            let fits = meta.status.is_finished()
                && usize::from(r.status) == meta.status.index()
                && r.created == meta.created;
            match u16::try_from(meta.ty) {
                Ok(ty) if fits => {
                    // Same list position: update the slot in place.
                    if let Some(old) = prev_overlay {
                        self.jobs.remove(key);
                        self.remove_parts(key, &old);
                    }
                    let r = self.base.recs[i];
                    if r.live {
                        self.count(u32::from(r.ty), r.status(), false);
                    } else {
                        self.base.dead -= 1;
                    }
                    self.count(meta.ty, meta.status, true);
                    let r = &mut self.base.recs[i];
                    r.live = true;
                    r.finished_at = meta.due_or_finished_at;
                    r.ty = ty;
                    r.user = meta.user;
                    r.ino = meta.ino;
                    return prev;
                }
                _ => self.kill_base(i),
            }
        }
        if let Some(old) = prev_overlay {
            self.remove_parts(key, &old);
        }
        self.jobs.insert(key.clone(), meta);
        self.by_created[meta.status.index()].insert((
            meta.created,
            key.clone(),
            meta.ty,
            meta.user,
        ));
        self.count(meta.ty, meta.status, true);
        self.add_side(key, &meta, f);
        if base_kind(key, &meta) {
            self.overlay_fin += 1;
            if self.overlay_fin > ABSORB_MIN.max(self.base.recs.len() / 8) {
                self.absorb();
            }
        }
        prev
    }

    fn remove_parts(&mut self, key: &Key, old: &Meta) {
        self.by_created[old.status.index()].remove(&(old.created, key.clone(), old.ty, old.user));
        self.count(old.ty, old.status, false);
        self.remove_side(key, old);
        if base_kind(key, old) {
            self.overlay_fin -= 1;
        }
    }

    /// Moves the overlay's finished UUID jobs into the base (rebuilt
    /// without its dead records). O(n log n), once per n/8 such jobs.
    fn absorb(&mut self) {
        let moved: Vec<(Key, Meta)> = self
            .jobs
            .iter()
            .filter(|(k, m)| base_kind(k, m))
            .map(|(k, m)| (k.clone(), *m))
            .collect();
        let mut recs: Vec<FinRec> =
            Vec::with_capacity(self.base.recs.len() - self.base.dead + moved.len());
        recs.extend(self.base.live().copied());
        for (key, m) in moved {
            self.jobs.remove(&key);
            self.by_created[m.status.index()].remove(&(m.created, key.clone(), m.ty, m.user));
            recs.extend(FinRec::of(&key, &m));
        }
        recs.sort_unstable_by_key(|r| r.uuid);
        self.overlay_fin = 0;
        self.base = Base::build(recs);
    }

    /// Takes a pending job out of the claim candidates until the next
    /// `upsert` for it (another process took it; the watcher will say
    /// where it went). Its status and counts stay as they were.
    pub fn park(&mut self, key: &Key) {
        let Some(meta) = self.jobs.get(key).copied() else {
            return;
        };
        if meta.status != JobStatus::Pending {
            return;
        }
        self.remove_side(key, &meta);
        let parked = Meta {
            due_or_finished_at: PARKED,
            ..meta
        };
        self.jobs.insert(key.clone(), parked);
        self.delayed.insert((PARKED, key.clone()));
    }

    /// Forgets `key`; returns the status it had.
    pub fn remove(&mut self, key: &Key) -> Option<JobStatus> {
        if let Some(old) = self.jobs.remove(key) {
            self.changes += 1;
            self.remove_parts(key, &old);
            return Some(old.status);
        }
        let i = self.base_pos(key)?;
        let r = self.base.recs[i];
        if !r.live {
            return None;
        }
        self.changes += 1;
        self.kill_base(i);
        Some(r.status())
    }

    /// Counts one job of type number `ty` in `status` in (`add`) or out.
    fn count(&mut self, ty: u32, status: JobStatus, add: bool) {
        let i = status.index();
        let t = ty as usize;
        if self.type_counts.len() <= t {
            self.type_counts.resize(t + 1, [0; 5]);
        }
        if add {
            self.counts[i] += 1;
            self.type_counts[t][i] += 1;
        } else {
            self.counts[i] -= 1;
            self.type_counts[t][i] -= 1;
        }
    }

    /// Jobs per status.
    pub fn counts(&self) -> [u64; 5] {
        self.counts
    }

    /// Jobs per status for each type that has jobs, by type name.
    pub fn type_counts(&self) -> Vec<(&str, [u64; 5])> {
        self.type_counts
            .iter()
            .enumerate()
            .filter(|(_, c)| c.iter().any(|n| *n > 0))
            .map(|(t, c)| (self.types.name(t as u32), *c))
            .collect()
    }

    /// The inode last published or seen for a running job.
    pub fn running_ino(&self, key: &Key) -> Option<u64> {
        self.running.get(key).map(|r| r.ino)
    }

    /// Running jobs of `worker`, as far as the index knows.
    pub fn running_of_worker(&self, worker: &str) -> Vec<Key> {
        let Some(w) = self.workers.find(worker) else {
            return Vec::new();
        };
        self.running
            .iter()
            .filter(|(_, r)| r.worker == w)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The interned type name of `key`'s job, if indexed.
    pub fn job_type(&self, key: &Key) -> Option<&str> {
        match self.jobs.get(key) {
            Some(m) => Some(self.types.name(m.ty)),
            None => self
                .base_live(key)
                .map(|r| self.types.name(u32::from(r.ty))),
        }
    }

    /// The best claim candidate for `types` at `now`, `paused` types
    /// excluded: due, highest priority, then smallest id. Moves jobs whose
    /// `runAt` has passed to the ready sets.
    pub fn best_candidate(
        &mut self,
        types: &TypeFilter,
        now: i64,
        paused: &std::collections::BTreeSet<semiont_jobs_model::JobType>,
    ) -> Option<Key> {
        while let Some((at, _)) = self.delayed.first() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.delayed.pop_first() else {
                break;
            };
            if let Some(meta) = self.jobs.get(&key).copied() {
                self.ready_set(meta.ty)
                    .insert((Reverse(meta.priority), key));
            }
        }
        let mut tys: Vec<u32> = match types {
            TypeFilter::Any => (0..self.ready.len() as u32).collect(),
            TypeFilter::Only(list) => list
                .iter()
                .filter_map(|t| self.types.find(t.as_str()))
                .collect(),
        };
        if !paused.is_empty() {
            tys.retain(|ty| {
                let name = self.types.name(*ty);
                !paused.iter().any(|p| p.as_str() == name)
            });
        }
        let mut best: Option<(Reverse<i16>, Key)> = None;
        for ty in tys {
            let Some(set) = self.ready.get(ty as usize) else {
                continue;
            };
            // Jobs promoted for a later clock than `now` are skipped here
            // (only when a caller's clock goes backwards).
            let first = set.iter().find(|(_, k)| {
                self.jobs
                    .get(k)
                    .is_some_and(|m| m.due_or_finished_at <= now)
            });
            if let Some(cand) = first {
                if best.as_ref().is_none_or(|b| cand < b) {
                    best = Some(cand.clone());
                }
            }
        }
        best.map(|(_, k)| k)
    }

    /// Keys of the jobs matching `filter` (page only) and the match count.
    pub fn list(&self, filter: &JobFilter) -> (Vec<Key>, usize) {
        let ty = match &filter.job_type {
            Some(t) => match self.types.find(t.as_str()) {
                Some(i) => Some(i),
                None => return (Vec::new(), 0),
            },
            None => None,
        };
        let user = match &filter.user_id {
            Some(u) => match self.users.find(u) {
                Some(i) => Some(i),
                None => return (Vec::new(), 0),
            },
            None => None,
        };
        let matches =
            move |t: u32, u: u32| ty.is_none_or(|x| x == t) && user.is_none_or(|x| x == u);
        let statuses: Vec<JobStatus> = match filter.status {
            Some(s) => vec![s],
            None => JobStatus::ALL.to_vec(),
        };
        let mut iters: Vec<ListIter<'_>> = Vec::new();
        for s in &statuses {
            let overlay: Box<dyn Iterator<Item = (i64, Cow<'_, Key>)> + '_> = Box::new(
                self.by_created[s.index()]
                    .iter()
                    .rev()
                    .filter(move |e| matches(e.2, e.3))
                    .map(|e| (e.0, Cow::Borrowed(&e.1))),
            );
            iters.push(overlay.peekable());
            if let Some(slot) = fin_slot(*s) {
                let recs = &self.base.recs;
                let base: Box<dyn Iterator<Item = (i64, Cow<'_, Key>)> + '_> = Box::new(
                    self.base.order[slot]
                        .iter()
                        .rev()
                        .map(move |&i| &recs[i as usize])
                        .filter(move |r| r.live && matches(u32::from(r.ty), r.user))
                        .map(|r| (r.created, Cow::Owned(r.key()))),
                );
                iters.push(base.peekable());
            }
        }
        let want = filter.offset.saturating_add(filter.limit);
        let mut page = Vec::new();
        let mut seen = 0usize;
        while seen < want {
            // k-way merge, newest (largest created, then id) first.
            let mut pick: Option<(usize, (i64, &Key))> = None;
            for (i, it) in iters.iter_mut().enumerate() {
                if let Some((created, key)) = it.peek() {
                    let k = (*created, key.as_ref());
                    if pick.as_ref().is_none_or(|(_, best)| k > *best) {
                        pick = Some((i, k));
                    }
                }
            }
            let Some((i, _)) = pick else { break };
            if let Some((_, key)) = iters[i].next() {
                if seen >= filter.offset {
                    page.push(key.into_owned());
                }
                seen += 1;
            }
        }
        let total = if ty.is_none() && user.is_none() {
            statuses
                .iter()
                .map(|s| self.counts[s.index()] as usize)
                .sum()
        } else {
            seen + iters.into_iter().map(|it| it.count()).sum::<usize>()
        };
        (page, total)
    }

    /// Finished jobs whose `completedAt` (or `created`) is before `before`,
    /// oldest first, at most `limit`.
    pub fn finished_before(&self, before: i64, limit: usize) -> Vec<(i64, Key, JobStatus)> {
        if limit == 0 {
            return Vec::new();
        }
        let mut heap: BinaryHeap<(i64, Key, JobStatus)> = BinaryHeap::new();
        let mut offer = |finished_at: i64, key: Cow<'_, Key>, status: JobStatus| {
            if heap.len() < limit {
                heap.push((finished_at, key.into_owned(), status));
            } else if heap
                .peek()
                .is_some_and(|top| (finished_at, key.as_ref()) < (top.0, &top.1))
            {
                heap.pop();
                heap.push((finished_at, key.into_owned(), status));
            }
        };
        for (key, m) in &self.jobs {
            if m.status.is_finished() && m.due_or_finished_at < before {
                offer(m.due_or_finished_at, Cow::Borrowed(key), m.status);
            }
        }
        for r in self.base.live() {
            if r.finished_at < before {
                offer(r.finished_at, Cow::Owned(r.key()), r.status());
            }
        }
        heap.into_sorted_vec()
    }

    /// Every indexed key with its status, in key order (for reconciliation).
    pub fn statuses(&self) -> impl Iterator<Item = (Key, JobStatus)> + '_ {
        let mut overlay = self.jobs.iter().peekable();
        let mut base = self.base.live().peekable();
        std::iter::from_fn(move || match (overlay.peek(), base.peek()) {
            (None, None) => None,
            (Some(_), None) => overlay.next().map(|(k, m)| (k.clone(), m.status)),
            (None, Some(_)) => base.next().map(|r| (r.key(), r.status())),
            (Some((k, _)), Some(r)) => {
                if **k < r.key() {
                    overlay.next().map(|(k, m)| (k.clone(), m.status))
                } else {
                    base.next().map(|r| (r.key(), r.status()))
                }
            }
        })
    }

    /// Finished jobs with UUID ids and a known inode, sorted by uuid, with
    /// the interned type and user names their numbers refer to: what the
    /// index snapshot holds.
    pub fn finished_records(&self) -> (Vec<FinRec>, Vec<Box<str>>, Vec<Box<str>>) {
        let from_overlay: Vec<FinRec> = self
            .jobs
            .iter()
            .filter(|(_, m)| m.status.is_finished() && m.ino != 0)
            .filter_map(|(key, m)| FinRec::of(key, m))
            .collect();
        let base = self.base.live().filter(|r| r.ino != 0);
        let mut out =
            Vec::with_capacity(self.base.recs.len() - self.base.dead + from_overlay.len());
        let mut a = base.peekable();
        let mut b = from_overlay.into_iter().peekable();
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some(x), Some(y)) => x.uuid < y.uuid,
            };
            let next = if take_a { a.next().copied() } else { b.next() };
            out.extend(next);
        }
        (
            out,
            self.types.names().to_vec(),
            self.users.names().to_vec(),
        )
    }

    /// Changes not yet in a snapshot, and the change count to pass to
    /// [`Index::snapshot_done`] after writing one now.
    pub fn snapshot_lag(&self) -> (u64, u64) {
        (self.changes - self.snapshot_at, self.changes)
    }

    /// Records that a snapshot holding the index as of change `at` exists.
    pub fn snapshot_done(&mut self, at: u64) {
        self.snapshot_at = self.snapshot_at.max(at);
    }

    /// Sets how many changes the disk has that no snapshot holds (at open).
    pub fn set_snapshot_lag(&mut self, lag: u64) {
        self.changes = self.changes.max(lag);
        self.snapshot_at = self.changes - lag;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use semiont_jobs_model::{JobId, JobType};

    fn facts(status: JobStatus, ty: &'static str, created: i64) -> Facts<'static> {
        Facts {
            status,
            job_type: ty,
            user_id: "u",
            created,
            completed_at: None,
            run_at: None,
            priority: 0,
            worker_id: None,
            ino: 0,
        }
    }

    fn keys(n: usize) -> Vec<Key> {
        (0..n).map(|_| Key::of(&JobId::generate())).collect()
    }

    #[test]
    fn claim_order_is_priority_then_id_and_respects_run_at() {
        let k = keys(5);
        let mut ix = Index::default();
        ix.upsert(&k[3], &facts(JobStatus::Pending, "a", 0));
        ix.upsert(&k[1], &facts(JobStatus::Pending, "a", 0));
        ix.upsert(
            &k[4],
            &Facts {
                priority: 2,
                ..facts(JobStatus::Pending, "b", 0)
            },
        );
        ix.upsert(
            &k[0],
            &Facts {
                run_at: Some(100),
                ..facts(JobStatus::Pending, "a", 0)
            },
        );
        ix.upsert(&k[2], &facts(JobStatus::Running, "a", 0));
        let none = std::collections::BTreeSet::new();
        let any = TypeFilter::Any;
        let only_a = TypeFilter::one(JobType::parse("a").unwrap());
        assert_eq!(ix.best_candidate(&any, 50, &none), Some(k[4].clone()));
        let b_paused = std::collections::BTreeSet::from([JobType::parse("b").unwrap()]);
        assert_eq!(
            ix.best_candidate(&any, 50, &b_paused),
            Some(k[1].clone()),
            "a paused type is skipped"
        );
        assert_eq!(ix.best_candidate(&only_a, 50, &none), Some(k[1].clone()));
        assert_eq!(ix.best_candidate(&only_a, 100, &none), Some(k[0].clone()));
        // A clock that goes back does not see the promoted job as due.
        assert_eq!(ix.best_candidate(&only_a, 99, &none), Some(k[1].clone()));
        ix.park(&k[1]);
        assert_eq!(ix.best_candidate(&only_a, 99, &none), Some(k[3].clone()));
        assert_eq!(
            ix.counts()[JobStatus::Pending.index()],
            4,
            "parking keeps counts"
        );
        ix.upsert(&k[1], &facts(JobStatus::Pending, "a", 0));
        assert_eq!(
            ix.best_candidate(&only_a, 99, &none),
            Some(k[1].clone()),
            "an upsert un-parks"
        );
        ix.upsert(&k[1], &facts(JobStatus::Running, "a", 0));
        assert_eq!(ix.best_candidate(&only_a, 99, &none), Some(k[3].clone()));
        assert_eq!(
            ix.best_candidate(&TypeFilter::one(JobType::parse("zz").unwrap()), 99, &none),
            None
        );
    }

    #[test]
    fn lists_are_newest_first_with_totals_and_bulk_build_matches_upserts() {
        let k = keys(6);
        let rows: Vec<(Key, Facts<'static>)> = vec![
            (k[0].clone(), facts(JobStatus::Complete, "a", 30)),
            (k[1].clone(), facts(JobStatus::Pending, "b", 10)),
            (k[2].clone(), facts(JobStatus::Complete, "a", 30)),
            (k[3].clone(), facts(JobStatus::Failed, "b", 50)),
            (k[4].clone(), facts(JobStatus::Pending, "a", 20)),
            (
                k[5].clone(),
                Facts {
                    completed_at: Some(5),
                    ..facts(JobStatus::Cancelled, "a", 40)
                },
            ),
        ];
        let built = Index::build(rows.clone());
        let mut upserted = Index::default();
        for (key, f) in &rows {
            upserted.upsert(key, f);
        }
        for ix in [&built, &upserted] {
            let (page, total) = ix.list(&JobFilter::default());
            assert_eq!(total, 6);
            assert_eq!(
                page,
                [
                    k[3].clone(),
                    k[5].clone(),
                    k[2].clone(),
                    k[0].clone(),
                    k[4].clone(),
                    k[1].clone()
                ]
            );
            let (page, total) = ix.list(
                &JobFilter::default()
                    .job_type(JobType::parse("a").unwrap())
                    .limit(2)
                    .offset(1),
            );
            assert_eq!((page, total), (vec![k[2].clone(), k[0].clone()], 4));
            let (page, total) = ix.list(&JobFilter::default().status(JobStatus::Pending));
            assert_eq!((page, total), (vec![k[4].clone(), k[1].clone()], 2));
            assert_eq!(ix.list(&JobFilter::default().user("nobody")).1, 0);
            let old = ix.finished_before(35, 10);
            let ids: Vec<Key> = old.iter().map(|o| o.1.clone()).collect();
            let mut first_two = vec![k[0].clone(), k[2].clone()];
            first_two.sort();
            assert_eq!(ids, [vec![k[5].clone()], first_two].concat());
            assert_eq!(ix.finished_before(35, 1).len(), 1);
            assert_eq!(ix.counts(), [2, 0, 2, 1, 1]);
        }
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;
    use semiont_jobs_model::{JobId, JobType};

    /// What the index must say about one job.
    #[derive(Clone, Debug, PartialEq)]
    struct Truth {
        status: JobStatus,
        created: i64,
        completed: i64,
        ty: &'static str,
        user: &'static str,
    }

    struct Rng(u64);

    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    const TYPES: [&str; 3] = ["a", "b", "c"];
    const USERS: [&str; 2] = ["u1", "u2"];

    fn facts(t: &Truth, ino: u64) -> Facts<'static> {
        Facts {
            status: t.status,
            job_type: t.ty,
            user_id: t.user,
            created: t.created,
            completed_at: t.status.is_finished().then_some(t.completed),
            run_at: None,
            priority: 0,
            worker_id: None,
            ino,
        }
    }

    fn check(ix: &Index, truth: &BTreeMap<Key, Truth>) {
        let in_overlay = ix.jobs.iter().filter(|(k, m)| base_kind(k, m)).count();
        assert_eq!(ix.overlay_fin, in_overlay);
        assert!(
            ix.overlay_fin <= ABSORB_MIN.max(ix.base.recs.len() / 8),
            "finished jobs move into the base"
        );
        let mut counts = [0u64; 5];
        for t in truth.values() {
            counts[t.status.index()] += 1;
        }
        assert_eq!(ix.counts(), counts);
        let listed: Vec<(Key, JobStatus)> = ix.statuses().collect();
        let want: Vec<(Key, JobStatus)> =
            truth.iter().map(|(k, t)| (k.clone(), t.status)).collect();
        assert_eq!(listed, want, "statuses() in key order");
        for (k, t) in truth {
            assert_eq!(ix.status(k), Some(t.status));
            assert_eq!(ix.job_type(k), Some(t.ty));
        }
        let filters = [
            JobFilter::default().limit(7),
            JobFilter::default().limit(5).offset(3),
            JobFilter::default().status(JobStatus::Complete).limit(4),
            JobFilter::default().status(JobStatus::Failed).limit(100),
            JobFilter::default()
                .job_type(JobType::parse("b").unwrap())
                .limit(6)
                .offset(1),
            JobFilter::default()
                .user("u2")
                .status(JobStatus::Complete)
                .limit(3),
        ];
        for f in &filters {
            let mut all: Vec<(i64, Key)> = truth
                .iter()
                .filter(|(_, t)| f.status.is_none_or(|s| s == t.status))
                .filter(|(_, t)| f.job_type.as_ref().is_none_or(|x| x.as_str() == t.ty))
                .filter(|(_, t)| f.user_id.as_deref().is_none_or(|u| u == t.user))
                .map(|(k, t)| (t.created, k.clone()))
                .collect();
            all.sort();
            all.reverse();
            let page: Vec<Key> = all
                .iter()
                .skip(f.offset)
                .take(f.limit)
                .map(|e| e.1.clone())
                .collect();
            assert_eq!(ix.list(f), (page, all.len()), "{f:?}");
        }
        let mut old: Vec<(i64, Key, JobStatus)> = truth
            .iter()
            .filter(|(_, t)| t.status.is_finished() && t.completed < 500)
            .map(|(k, t)| (t.completed, k.clone(), t.status))
            .collect();
        old.sort();
        old.truncate(9);
        assert_eq!(ix.finished_before(500, 9), old);
        // The snapshot's records: every finished UUID job with an inode.
        let (recs, types, users) = ix.finished_records();
        let want: Vec<(Key, JobStatus, i64, i64, &str, &str)> = truth
            .iter()
            .filter(|(k, t)| t.status.is_finished() && matches!(k, Key::Uuid(_)))
            .map(|(k, t)| (k.clone(), t.status, t.created, t.completed, t.ty, t.user))
            .collect();
        let got: Vec<(Key, JobStatus, i64, i64, &str, &str)> = recs
            .iter()
            .map(|r| {
                (
                    r.key(),
                    r.status(),
                    r.created,
                    r.finished_at,
                    &*types[usize::from(r.ty)],
                    &*users[r.user as usize],
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn base_and_overlay_behave_like_one_map() {
        for seed in 1..=6u64 {
            let mut rng = Rng(seed * 0x9e37_79b9);
            let mut keys: Vec<Key> = (0..300).map(|_| Key::of(&JobId::generate())).collect();
            keys.push(Key::of(&JobId::parse("job-other-1").unwrap()));
            keys.push(Key::of(&JobId::parse("zz-other-2").unwrap()));
            let mut truth: BTreeMap<Key, Truth> = BTreeMap::new();
            let random = |rng: &mut Rng, created: i64| Truth {
                status: JobStatus::ALL[rng.next(5) as usize],
                created,
                completed: rng.next(1000) as i64,
                ty: TYPES[rng.next(3) as usize],
                user: USERS[rng.next(2) as usize],
            };
            // Mostly finished at build time, like a large queue.
            for k in keys.iter().take(250) {
                let created = rng.next(200) as i64;
                let mut t = random(&mut rng, created);
                if rng.next(10) < 8 {
                    t.status = JobStatus::ALL[2 + rng.next(3) as usize];
                }
                truth.insert(k.clone(), t);
            }
            let mut ix = Index::build(truth.iter().map(|(k, t)| (k.clone(), facts(t, 7))));
            check(&ix, &truth);
            for step in 0..1500 {
                let k = &keys[rng.next(keys.len() as u64) as usize];
                match rng.next(6) {
                    0 => {
                        if ix.remove(k).is_some() {
                            truth.remove(k);
                        }
                    }
                    1 | 2 => {
                        // A new status, same created (the protocol's moves).
                        let created = truth.get(k).map_or(rng.next(200) as i64, |t| t.created);
                        let t = random(&mut rng, created);
                        ix.upsert(k, &facts(&t, 100 + step));
                        truth.insert(k.clone(), t);
                    }
                    3 => {
                        // Anything (a foreign writer).
                        let created = rng.next(200) as i64;
                        let t = random(&mut rng, created);
                        ix.upsert(k, &facts(&t, 100 + step));
                        truth.insert(k.clone(), t);
                    }
                    _ => {
                        // The same facts again (a watcher re-read).
                        if let Some(t) = truth.get(k) {
                            ix.upsert(k, &facts(t, 100 + step));
                        }
                    }
                }
                if step % 100 == 0 {
                    check(&ix, &truth);
                }
            }
            check(&ix, &truth);
            // Removing most of the base rebuilds it; everything still holds.
            let finished: Vec<Key> = truth
                .iter()
                .filter(|(_, t)| t.status.is_finished())
                .map(|(k, _)| k.clone())
                .collect();
            for k in finished.iter().skip(3) {
                ix.remove(k);
                truth.remove(k);
            }
            assert!(
                ix.base.dead <= COMPACT_MIN || ix.base.dead * 2 <= ix.base.recs.len(),
                "dead records are compacted away"
            );
            check(&ix, &truth);
        }
    }
}
