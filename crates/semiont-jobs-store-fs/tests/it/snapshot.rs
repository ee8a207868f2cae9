//! The index snapshot (`index.snapshot`): an open with a valid snapshot
//! builds the same index as a full scan while reading only the files the
//! snapshot does not explain; a stale snapshot (jobs moved, deleted,
//! retried, rewritten in place or added since) gives the truth; a damaged,
//! truncated, foreign or other-version snapshot is ignored as a whole; a
//! job the snapshot names whose file is gone is not resurrected.

use std::path::{Path, PathBuf};
use std::time::Duration;

use semiont_jobs_model::{
    Job, JobFilter, JobId, JobStatus, JobType, NewJob, QueueStats, Timestamp,
};
use semiont_jobs_store::{ErrorKind, Expect, JobStore, TypeFilter};
use semiont_jobs_store_fs::FsStore;
use serde_json::json;

use crate::support::{self, claim_req};

const SNAPSHOT: &str = "index.snapshot";

/// Everything the index answers, for comparing two opens.
#[derive(Debug, PartialEq)]
struct View {
    stats: QueueStats,
    /// Every job, newest first, with its status.
    all: Vec<(JobId, JobStatus)>,
    /// Filtered pages: (ids, total).
    pages: Vec<(Vec<JobId>, usize)>,
    /// Retention candidates: (id, status, completedAt ms).
    old: Vec<(JobId, JobStatus, i64)>,
    /// The next claim.
    next: Option<JobId>,
}

async fn view(store: &FsStore, now: Timestamp) -> View {
    let page = store
        .list(&JobFilter::default().limit(10_000))
        .await
        .unwrap();
    assert_eq!(page.total, page.jobs.len());
    let all = page.jobs.iter().map(|j| (j.id.clone(), j.status)).collect();
    let mut pages = Vec::new();
    for f in [
        JobFilter::default().status(JobStatus::Complete).limit(10),
        JobFilter::default()
            .status(JobStatus::Failed)
            .limit(3)
            .offset(2),
        JobFilter::default()
            .job_type(JobType::parse("beta").unwrap())
            .limit(7),
        JobFilter::default().user("u2").limit(5).offset(1),
        JobFilter::default()
            .user("u1")
            .status(JobStatus::Cancelled)
            .limit(50),
    ] {
        let p = store.list(&f).await.unwrap();
        pages.push((p.jobs.iter().map(|j| j.id.clone()).collect(), p.total));
    }
    let old = store
        .finished_before(Timestamp::from_millis(now.as_millis() + 3_600_000), 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.id, f.status, f.completed_at.as_millis()))
        .collect();
    let next = store
        .peek_next(&TypeFilter::Any, now)
        .await
        .unwrap()
        .map(|j| j.id);
    View {
        stats: store.stats().await.unwrap(),
        all,
        pages,
        old,
        next,
    }
}

/// A pending job of `ty` for `user`, created at `created` ms.
fn job(ty: &str, user: &str, created: i64) -> Job {
    NewJob::custom(ty, user, json!({"n": created}))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::from_millis(created), 3)
        .unwrap()
}

fn done(mut job: Job, status: JobStatus, at: i64) -> Job {
    job.status = status;
    job.completed_at = Some(Timestamp::from_millis(at));
    job
}

/// What `populate` made.
struct Made {
    /// Finished jobs with `job-<uuid>` ids (the snapshot's kind).
    finished_uuid: u64,
    /// Pending and running jobs, and finished ones with other ids.
    others: u64,
    complete: Vec<Job>,
    failed: Vec<Job>,
    cancelled: Vec<Job>,
    pending: Vec<Job>,
}

/// Jobs in every status, of two types and two users, some finished by
/// this store's own transitions, some created finished, two with ids that
/// are not `job-<uuid>`.
async fn populate(store: &FsStore) -> Made {
    let base = Timestamp::now().as_millis() - 100_000;
    let mut made = Made {
        finished_uuid: 0,
        others: 0,
        complete: Vec::new(),
        failed: Vec::new(),
        cancelled: Vec::new(),
        pending: Vec::new(),
    };
    let ty = |i: i64| if i % 3 == 0 { "beta" } else { "alpha" };
    let user = |i: i64| if i % 2 == 0 { "u1" } else { "u2" };
    // Created finished.
    let mut batch = Vec::new();
    for i in 0..60 {
        let status = [JobStatus::Complete, JobStatus::Failed, JobStatus::Cancelled][i as usize % 3];
        // Some share a `created` (ties are ordered by id).
        let j = done(job(ty(i), user(i), base + i / 2), status, base + 50_000 + i);
        batch.push(j);
    }
    store.create_batch(&batch).await.unwrap();
    for j in batch {
        match j.status {
            JobStatus::Complete => made.complete.push(j),
            JobStatus::Failed => made.failed.push(j),
            _ => made.cancelled.push(j),
        }
        made.finished_uuid += 1;
    }
    for (n, id) in ["custom-one", "custom-two"].into_iter().enumerate() {
        let mut j = done(
            job("alpha", "u1", base + 70 + n as i64),
            JobStatus::Complete,
            base + 90,
        );
        j.id = JobId::parse(id).unwrap();
        store.create(&j).await.unwrap();
        made.others += 1;
    }
    // Through the protocol: create, claim, finish.
    for i in 100..130 {
        store.create(&job(ty(i), user(i), base + i)).await.unwrap();
    }
    let now = Timestamp::now();
    for i in 0..22 {
        let mut j = store
            .claim(&claim_req("w1", now, Duration::from_secs(3600)))
            .await
            .unwrap()
            .unwrap();
        let at = base + 60_000 + i;
        match i % 4 {
            0 | 1 => {
                j = done(j, JobStatus::Complete, at);
                store
                    .transition(Expect::running(j.attempt), &j)
                    .await
                    .unwrap();
                made.complete.push(j);
                made.finished_uuid += 1;
            }
            2 => {
                j = done(j, JobStatus::Failed, at);
                j.error = Some("boom".into());
                store
                    .transition(Expect::running(j.attempt), &j)
                    .await
                    .unwrap();
                made.failed.push(j);
                made.finished_uuid += 1;
            }
            _ if i < 15 => {
                j = done(j, JobStatus::Cancelled, at);
                store
                    .transition(Expect::running(j.attempt), &j)
                    .await
                    .unwrap();
                made.cancelled.push(j);
                made.finished_uuid += 1;
            }
            // Left running (a long lease: still running at the next open).
            _ => made.others += 1,
        }
    }
    for j in store
        .list(&JobFilter::default().status(JobStatus::Pending).limit(100))
        .await
        .unwrap()
        .jobs
    {
        made.pending.push(j);
        made.others += 1;
    }
    made
}

/// Retries the failed job `failed` (failed → pending); returns the new version.
async fn retry(store: &FsStore, failed: &Job) -> Job {
    let mut retried = failed.clone();
    retried.status = JobStatus::Pending;
    retried.completed_at = None;
    store
        .transition(Expect::status(JobStatus::Failed), &retried)
        .await
        .unwrap();
    retried
}

async fn open(dir: &Path) -> FsStore {
    FsStore::open(dir, support::opts()).await.unwrap()
}

/// The truth: what a full scan (no snapshot) gives. Leaves no snapshot.
async fn full_scan_view(dir: &Path, now: Timestamp) -> View {
    let _ = std::fs::remove_file(dir.join(SNAPSHOT));
    let store = open(dir).await;
    assert!(!store.open_report().snapshot_used);
    let v = view(&store, now).await;
    drop(store);
    std::fs::remove_file(dir.join(SNAPSHOT)).unwrap();
    v
}

async fn setup() -> (tempfile::TempDir, PathBuf, Made) {
    let tmp = support::tempdir();
    let dir = tmp.path().join("jobs");
    let store = open(&dir).await;
    let made = populate(&store).await;
    drop(store);
    assert!(
        dir.join(SNAPSHOT).is_file(),
        "dropping the store writes the snapshot"
    );
    (tmp, dir, made)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_snapshot_gives_the_same_index_as_a_full_scan() {
    let (_tmp, dir, made) = setup().await;
    let now = Timestamp::now();
    let snapshot = std::fs::read(dir.join(SNAPSHOT)).unwrap();

    let store = open(&dir).await;
    let report = store.open_report().clone();
    assert!(report.snapshot_used);
    assert_eq!(report.from_snapshot, made.finished_uuid, "{report:?}");
    assert_eq!(report.files_read, made.others, "{report:?}");
    assert_eq!(report.stale_records, 0);
    let with_snapshot = view(&store, now).await;
    drop(store);
    // Nothing changed: the snapshot was not rewritten.
    assert_eq!(std::fs::read(dir.join(SNAPSHOT)).unwrap(), snapshot);

    let truth = full_scan_view(&dir, now).await;
    assert_eq!(with_snapshot, truth);
    assert_eq!(
        truth.stats.complete as usize
            + truth.stats.failed as usize
            + truth.stats.cancelled as usize,
        made.complete.len() + made.failed.len() + made.cancelled.len() + 2
    );
    assert_eq!(truth.stats.pending as usize, made.pending.len());
    assert!(truth.next.is_some());

    // The store opened from the snapshot claims what the scan would.
    std::fs::write(dir.join(SNAPSHOT), &snapshot).unwrap();
    let store = open(&dir).await;
    assert!(store.open_report().snapshot_used);
    let claimed = store
        .claim(&claim_req("w2", now, Duration::from_secs(60)))
        .await
        .unwrap()
        .map(|j| j.id);
    assert_eq!(claimed, truth.next);
    // And keeps working: finish a job, retry one, delete one.
    retry(&store, &made.failed[0]).await;
    store
        .delete(&made.complete[0].id, Expect::status(JobStatus::Complete))
        .await
        .unwrap();
    let after = view(&store, now).await;
    drop(store);
    assert_eq!(after, full_scan_view(&dir, now).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_snapshot_gives_the_truth() {
    let (_tmp, dir, made) = setup().await;
    let now = Timestamp::now();
    let stale = std::fs::read(dir.join(SNAPSHOT)).unwrap();

    let store = open(&dir).await;
    // Retried: failed → pending; and another failed one retried, claimed
    // and failed again (same id, same created, same directory as before,
    // a new completedAt).
    let retried = retry(&store, &made.failed[1]).await;
    let mut again = made.failed[3].clone();
    // (First in claim order, to be claimed now.)
    again.priority = 100;
    retry(&store, &again).await;
    let claimed = store
        .claim(&claim_req("w3", now, Duration::from_secs(3600)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, again.id);
    let refailed = done(claimed.clone(), JobStatus::Failed, now.as_millis() + 777);
    store
        .transition(Expect::running(claimed.attempt), &refailed)
        .await
        .unwrap();
    // Deleted.
    store
        .delete(&made.cancelled[0].id, Expect::status(JobStatus::Cancelled))
        .await
        .unwrap();
    // Moved: pending → cancelled.
    let mut cancelled = made.pending[0].clone();
    cancelled.status = JobStatus::Cancelled;
    cancelled.completed_at = Some(now);
    store
        .transition(Expect::status(JobStatus::Pending), &cancelled)
        .await
        .unwrap();
    // New jobs, finished and not.
    for i in 0..5 {
        store
            .create(&done(
                job("gamma", "u3", now.as_millis() + i),
                JobStatus::Complete,
                now.as_millis(),
            ))
            .await
            .unwrap();
    }
    store
        .create(&job("gamma", "u3", now.as_millis()))
        .await
        .unwrap();
    drop(store);
    // A foreign writer rewrites a complete file in place: same inode, other
    // content (and a modification time surely different from the old one).
    let rewritten = made.complete[5].clone();
    let path = dir.join("complete").join(format!("{}.json", rewritten.id));
    let old_mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let changed = done(rewritten.clone(), JobStatus::Complete, 12_345);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut &f, &changed.to_json()).unwrap();
    f.set_modified(old_mtime + Duration::from_secs(1)).unwrap();
    drop(f);

    // Put the old snapshot back: it knows none of the above.
    std::fs::write(dir.join(SNAPSHOT), &stale).unwrap();
    let store = open(&dir).await;
    let report = store.open_report().clone();
    assert!(report.snapshot_used);
    // Retried, failed again, deleted, rewritten in place.
    assert_eq!(report.stale_records, 4, "{report:?}");
    let got = view(&store, now).await;
    // The specific truths.
    assert_eq!(
        store.get(&made.cancelled[0].id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.get(&retried.id).await.unwrap().status,
        JobStatus::Pending
    );
    let completed_at = |id: &JobId| got.old.iter().find(|o| o.0 == *id).map(|o| o.2);
    assert_eq!(completed_at(&again.id), Some(now.as_millis() + 777));
    assert_eq!(completed_at(&rewritten.id), Some(12_345));
    drop(store);
    assert_eq!(got, full_scan_view(&dir, now).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_ignored() {
    let (_tmp, dir, made) = setup().await;
    let now = Timestamp::now();
    let good = std::fs::read(dir.join(SNAPSHOT)).unwrap();
    let truth = full_scan_view(&dir, now).await;
    let total = made.finished_uuid + made.others;

    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] ^= 0x01;
    let mut version = good.clone();
    version[8] = version[8].wrapping_add(1);
    let mut garbage = vec![0u8; good.len()];
    for (i, b) in garbage.iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let mut wrong_magic = good.clone();
    wrong_magic[0] = b'X';
    let variants: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("truncated to half", good[..good.len() / 2].to_vec()),
        ("one byte short", good[..good.len() - 1].to_vec()),
        ("one byte flipped", flipped),
        ("another format version", version),
        ("garbage", garbage),
        ("not a snapshot", wrong_magic),
        ("twice", [good.clone(), good.clone()].concat()),
    ];
    for (what, bytes) in variants {
        std::fs::write(dir.join(SNAPSHOT), &bytes).unwrap();
        let store = open(&dir).await;
        let report = store.open_report().clone();
        assert!(!report.snapshot_used, "{what}: {report:?}");
        assert_eq!(report.files_read, total, "{what}");
        assert_eq!(view(&store, now).await, truth, "{what}");
        drop(store);
        // The drop replaced it with a valid one.
        assert_ne!(std::fs::read(dir.join(SNAPSHOT)).unwrap(), bytes, "{what}");
    }
    // Not a regular file: a directory, a symlink to a valid snapshot.
    std::fs::remove_file(dir.join(SNAPSHOT)).unwrap();
    std::fs::create_dir(dir.join(SNAPSHOT)).unwrap();
    let store = open(&dir).await;
    assert!(!store.open_report().snapshot_used);
    assert_eq!(view(&store, now).await, truth, "a directory");
    drop(store);
    std::fs::remove_dir(dir.join(SNAPSHOT)).unwrap();
    let elsewhere = dir.parent().unwrap().join("elsewhere.snapshot");
    std::fs::write(&elsewhere, &good).unwrap();
    std::os::unix::fs::symlink(&elsewhere, dir.join(SNAPSHOT)).unwrap();
    let store = open(&dir).await;
    assert!(
        !store.open_report().snapshot_used,
        "a symlink is not followed"
    );
    assert_eq!(view(&store, now).await, truth, "a symlink");
    drop(store);
    // The good one is used again.
    std::fs::write(dir.join(SNAPSHOT), &good).unwrap();
    let store = open(&dir).await;
    assert!(store.open_report().snapshot_used);
    assert_eq!(view(&store, now).await, truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_snapshot_names_whose_file_is_gone_is_not_resurrected() {
    let (_tmp, dir, made) = setup().await;
    let now = Timestamp::now();
    let gone = [&made.complete[1], &made.failed[2], &made.cancelled[3]];
    for j in gone {
        std::fs::remove_file(dir.join(j.status.as_str()).join(format!("{}.json", j.id))).unwrap();
    }
    // And one moved by hand into the quarantine (a foreign tool).
    let moved = &made.complete[2];
    std::fs::rename(
        dir.join("complete").join(format!("{}.json", moved.id)),
        dir.join("quarantine").join("by-hand"),
    )
    .unwrap();
    let store = open(&dir).await;
    let report = store.open_report().clone();
    assert!(report.snapshot_used);
    assert_eq!(report.stale_records, 4, "{report:?}");
    assert_eq!(report.from_snapshot, made.finished_uuid - 4);
    for j in gone.into_iter().chain([moved]) {
        assert_eq!(
            store.get(&j.id).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
    let got = view(&store, now).await;
    for j in gone.into_iter().chain([moved]) {
        assert!(!got.all.iter().any(|(id, _)| *id == j.id));
        assert!(!got.old.iter().any(|(id, ..)| *id == j.id));
    }
    drop(store);
    assert_eq!(got, full_scan_view(&dir, now).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_snapshot_saves_the_index_while_the_store_is_open() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("jobs");
    let store = open(&dir).await;
    let made = populate(&store).await;
    assert_eq!(store.write_snapshot().await.unwrap(), made.finished_uuid);
    let saved = std::fs::read(dir.join(SNAPSHOT)).unwrap();
    // A second open while the first store lives (another process would do
    // the same) uses it.
    let other = open(&dir).await;
    assert_eq!(
        other.open_report().from_snapshot,
        made.finished_uuid,
        "{:?}",
        other.open_report()
    );
    assert_eq!(
        other.open_report().stale_records,
        0,
        "{:?}",
        other.open_report()
    );
    drop(other);
    // A crash (no drop) leaves the snapshot as it was.
    std::mem::forget(store);
    assert_eq!(std::fs::read(dir.join(SNAPSHOT)).unwrap(), saved);
}

/// Sets the finished directories' mtime an hour back, as if nothing had
/// changed in them for that long.
fn settle(dir: &Path) {
    for status in ["complete", "failed", "cancelled"] {
        std::fs::File::open(dir.join(status))
            .unwrap()
            .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unchanged_directories_skip_the_per_file_check() {
    let tmp = support::tempdir();
    let dir = tmp.path().join("jobs");
    let store = open(&dir).await;
    let made = populate(&store).await;
    settle(&dir);
    drop(store);
    let now = Timestamp::now();

    let store = open(&dir).await;
    let report = store.open_report().clone();
    assert_eq!(report.from_snapshot, made.finished_uuid, "{report:?}");
    assert_eq!(report.files_checked, 0, "{report:?}");
    let got = view(&store, now).await;
    drop(store);
    let snapshot = std::fs::read(dir.join(SNAPSHOT)).unwrap();
    assert_eq!(got, full_scan_view(&dir, now).await);
    std::fs::write(dir.join(SNAPSHOT), &snapshot).unwrap();

    // A change in failed/ (a file removed by hand): that directory's
    // records are checked one by one again, the others' not.
    let gone = &made.failed[0];
    std::fs::remove_file(dir.join("failed").join(format!("{}.json", gone.id))).unwrap();
    let store = open(&dir).await;
    let report = store.open_report().clone();
    assert_eq!(
        report.files_checked,
        made.failed.len() as u64 - 1,
        "{report:?}"
    );
    assert_eq!(report.stale_records, 1, "{report:?}");
    assert_eq!(
        store.get(&gone.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let got = view(&store, now).await;
    drop(store);
    assert_eq!(got, full_scan_view(&dir, now).await);

    // A directory whose mtime is recent when the snapshot is written is not
    // stamped (a change in the same clock tick could go unseen).
    let store = open(&dir).await;
    store.write_snapshot().await.unwrap();
    drop(store);
    let store = open(&dir).await;
    assert!(store.open_report().files_checked > 0);
}
