//! The in-memory index: what claim, stats and list read instead of
//! scanning directories. It holds a few numbers per job (no job content),
//! built by one scan at open and kept current by this instance's operations
//! and by watcher hints.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use semiont_jobs_model::{Job, JobFilter, JobStatus};
use semiont_jobs_store::TypeFilter;

use crate::key::{Interner, Key};

/// Sentinel for "no interned string".
const NONE: u32 = u32::MAX;

/// The index's record of one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// `created`, ms since the epoch.
    pub created: i64,
    /// Pending: `runAt` (or `i64::MIN`); finished: `completedAt` (or
    /// `created`); running: 0.
    pub aux: i64,
    /// Interned user id.
    pub user: u32,
    /// Interned job type.
    pub ty: u32,
    /// Claim priority.
    pub priority: i16,
    /// Status (= directory).
    pub status: JobStatus,
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
    /// Inode of the published file (to tell own writes from others').
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

/// The index. All methods are O(log n) except `list` with a type or user
/// filter and `finished_before`, which walk the index (never the disk).
#[derive(Debug, Default)]
pub(crate) struct Index {
    jobs: BTreeMap<Key, Meta>,
    /// Per status: (created, key, type, user), for newest-first listing.
    by_created: [BTreeSet<ListEntry>; 5],
    /// Per type: due pending jobs in claim order.
    ready: Vec<BTreeSet<(Reverse<i16>, Key)>>,
    /// Pending jobs with a `runAt`, by `runAt`, not yet moved to `ready`.
    delayed: BTreeSet<(i64, Key)>,
    counts: [u64; 5],
    running: HashMap<Key, RunInfo>,
    types: Interner,
    users: Interner,
    workers: Interner,
}

impl Index {
    /// Builds an index from one scan's results, in bulk (dense trees).
    pub fn build<'a>(entries: impl IntoIterator<Item = (Key, Facts<'a>)>) -> Index {
        let mut ix = Index::default();
        let mut jobs = Vec::new();
        let mut lists: [Vec<ListEntry>; 5] = Default::default();
        for (key, f) in entries {
            let meta = ix.meta_of(&f);
            lists[f.status.index()].push((meta.created, key.clone(), meta.ty, meta.user));
            ix.counts[f.status.index()] += 1;
            ix.add_side(&key, &meta, &f);
            jobs.push((key, meta));
        }
        ix.jobs = jobs.into_iter().collect();
        for (set, list) in ix.by_created.iter_mut().zip(lists) {
            *set = list.into_iter().collect();
        }
        ix
    }

    fn meta_of(&mut self, f: &Facts<'_>) -> Meta {
        let aux = match f.status {
            JobStatus::Pending => f.run_at.unwrap_or(i64::MIN),
            JobStatus::Running => 0,
            _ => f.completed_at.unwrap_or(f.created),
        };
        Meta {
            created: f.created,
            aux,
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
                if meta.aux == i64::MIN {
                    self.ready_set(meta.ty)
                        .insert((Reverse(meta.priority), key.clone()));
                } else {
                    self.delayed.insert((meta.aux, key.clone()));
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
                if meta.aux != i64::MIN {
                    self.delayed.remove(&(meta.aux, key.clone()));
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

    /// The status the index has for `key`.
    pub fn status(&self, key: &Key) -> Option<JobStatus> {
        self.jobs.get(key).map(|m| m.status)
    }

    /// Records what a file says about `key`; returns the previous status.
    pub fn upsert(&mut self, key: &Key, f: &Facts<'_>) -> Option<JobStatus> {
        let meta = self.meta_of(f);
        let prev = self.jobs.get(key).copied();
        if let Some(old) = prev {
            if old == meta {
                if meta.status == JobStatus::Running {
                    let worker = f.worker_id.map_or(NONE, |w| self.workers.intern(w));
                    self.running
                        .insert(key.clone(), RunInfo { worker, ino: f.ino });
                }
                return Some(old.status);
            }
            self.remove_parts(key, &old);
        }
        self.jobs.insert(key.clone(), meta);
        self.by_created[meta.status.index()].insert((
            meta.created,
            key.clone(),
            meta.ty,
            meta.user,
        ));
        self.counts[meta.status.index()] += 1;
        self.add_side(key, &meta, f);
        prev.map(|m| m.status)
    }

    fn remove_parts(&mut self, key: &Key, old: &Meta) {
        self.by_created[old.status.index()].remove(&(old.created, key.clone(), old.ty, old.user));
        self.counts[old.status.index()] -= 1;
        self.remove_side(key, old);
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
            aux: i64::MAX,
            ..meta
        };
        self.jobs.insert(key.clone(), parked);
        self.delayed.insert((i64::MAX, key.clone()));
    }

    /// Forgets `key`; returns the status it had.
    pub fn remove(&mut self, key: &Key) -> Option<JobStatus> {
        let old = self.jobs.remove(key)?;
        self.remove_parts(key, &old);
        Some(old.status)
    }

    /// Jobs per status.
    pub fn counts(&self) -> [u64; 5] {
        self.counts
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
        self.jobs.get(key).map(|m| self.types.name(m.ty))
    }

    /// The best claim candidate for `types` at `now`: due, highest priority,
    /// then smallest id. Moves jobs whose `runAt` has passed to the ready sets.
    pub fn best_candidate(&mut self, types: &TypeFilter, now: i64) -> Option<Key> {
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
        let tys: Vec<u32> = match types {
            TypeFilter::Any => (0..self.ready.len() as u32).collect(),
            TypeFilter::Only(list) => list
                .iter()
                .filter_map(|t| self.types.find(t.as_str()))
                .collect(),
        };
        let mut best: Option<(Reverse<i16>, Key)> = None;
        for ty in tys {
            let Some(set) = self.ready.get(ty as usize) else {
                continue;
            };
            // Jobs promoted for a later clock than `now` are skipped here
            // (only when a caller's clock goes backwards).
            let first = set
                .iter()
                .find(|(_, k)| self.jobs.get(k).is_some_and(|m| m.aux <= now));
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
        let matches = |e: &&ListEntry| ty.is_none_or(|t| t == e.2) && user.is_none_or(|u| u == e.3);
        let statuses: Vec<JobStatus> = match filter.status {
            Some(s) => vec![s],
            None => JobStatus::ALL.to_vec(),
        };
        let mut iters: Vec<_> = statuses
            .iter()
            .map(|s| {
                self.by_created[s.index()]
                    .iter()
                    .rev()
                    .filter(matches)
                    .peekable()
            })
            .collect();
        let want = filter.offset.saturating_add(filter.limit);
        let mut page = Vec::new();
        let mut seen = 0usize;
        while seen < want {
            // k-way merge, newest (largest created, then id) first.
            let mut pick: Option<(usize, (i64, &Key))> = None;
            for (i, it) in iters.iter_mut().enumerate() {
                if let Some(&e) = it.peek() {
                    let e: &ListEntry = e;
                    let k = (e.0, &e.1);
                    if pick.as_ref().is_none_or(|(_, best)| k > *best) {
                        pick = Some((i, k));
                    }
                }
            }
            let Some((i, _)) = pick else { break };
            if let Some(e) = iters[i].next() {
                if seen >= filter.offset {
                    page.push(e.1.clone());
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
        for (key, m) in &self.jobs {
            if !m.status.is_finished() || m.aux >= before {
                continue;
            }
            if heap.len() < limit {
                heap.push((m.aux, key.clone(), m.status));
            } else if heap
                .peek()
                .is_some_and(|top| (m.aux, key) < (top.0, &top.1))
            {
                heap.pop();
                heap.push((m.aux, key.clone(), m.status));
            }
        }
        heap.into_sorted_vec()
    }

    /// Every indexed key with its status (for reconciliation).
    pub fn statuses(&self) -> impl Iterator<Item = (&Key, JobStatus)> {
        self.jobs.iter().map(|(k, m)| (k, m.status))
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
        let any = TypeFilter::Any;
        let only_a = TypeFilter::one(JobType::parse("a").unwrap());
        assert_eq!(ix.best_candidate(&any, 50), Some(k[4].clone()));
        assert_eq!(ix.best_candidate(&only_a, 50), Some(k[1].clone()));
        assert_eq!(ix.best_candidate(&only_a, 100), Some(k[0].clone()));
        // A clock that goes back does not see the promoted job as due.
        assert_eq!(ix.best_candidate(&only_a, 99), Some(k[1].clone()));
        ix.park(&k[1]);
        assert_eq!(ix.best_candidate(&only_a, 99), Some(k[3].clone()));
        assert_eq!(
            ix.counts()[JobStatus::Pending.index()],
            4,
            "parking keeps counts"
        );
        ix.upsert(&k[1], &facts(JobStatus::Pending, "a", 0));
        assert_eq!(
            ix.best_candidate(&only_a, 99),
            Some(k[1].clone()),
            "an upsert un-parks"
        );
        ix.upsert(&k[1], &facts(JobStatus::Running, "a", 0));
        assert_eq!(ix.best_candidate(&only_a, 99), Some(k[3].clone()));
        assert_eq!(
            ix.best_candidate(&TypeFilter::one(JobType::parse("zz").unwrap()), 99),
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
