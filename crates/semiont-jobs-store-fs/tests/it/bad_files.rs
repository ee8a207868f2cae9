//! Bad files in status directories (empty, truncated, not JSON, wrong
//! schema, wrong id, foreign names, a directory, a symlink, a FIFO, an
//! unreadable file, a second copy of a job) are moved to `quarantine/`
//! with a reason, counted in stats, and the queue keeps working.

use std::path::{Path, PathBuf};
use std::time::Duration;

use semiont_jobs_model::{JobId, JobStatus, Timestamp};
use semiont_jobs_store::{ErrorKind, Expect, JobStore};
use semiont_jobs_store_fs::{fault, FsStore};

use crate::support::{self, claim_req, eventually, finished, noop_job, Disk};

async fn fresh() -> (tempfile::TempDir, PathBuf) {
    let tmp = crate::support::tempdir();
    let dir = tmp.path().join("jobs");
    drop(FsStore::open(&dir, support::opts()).await.unwrap());
    (tmp, dir)
}

fn name_for(id: &JobId) -> String {
    format!("{id}.json")
}

fn reasons(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir.join("quarantine")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "reason") {
            out.push(std::fs::read_to_string(path).unwrap());
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_bad_file_is_quarantined_at_open() {
    let (_tmp, dir) = fresh().await;
    let pending = dir.join("pending");
    let w = |name: &str, bytes: &[u8]| std::fs::write(pending.join(name), bytes).unwrap();

    w(&name_for(&JobId::generate()), b"");
    let truncated = noop_job();
    let bytes = truncated.to_json();
    w(&name_for(&truncated.id), &bytes[..bytes.len() / 2]);
    w(&name_for(&JobId::generate()), b"hello, not json");
    let schema = JobId::generate();
    w(
        &name_for(&schema),
        format!(r#"{{"id":"{schema}","hello":1}}"#).as_bytes(),
    );
    let other = noop_job();
    w(&name_for(&JobId::generate()), &other.to_json());
    w("notes.txt", b"a foreign file");
    std::fs::create_dir(pending.join(name_for(&JobId::generate()))).unwrap();
    std::os::unix::fs::symlink(
        "../complete/x.json",
        pending.join(name_for(&JobId::generate())),
    )
    .unwrap();
    let fifo = pending.join(name_for(&JobId::generate()));
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid path; creates a FIFO.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Unreadable: tests run as root, so the error is injected at the IO layer.
    let unreadable = noop_job();
    w(&name_for(&unreadable.id), &unreadable.to_json());
    fault::set_read_error(&name_for(&unreadable.id), Some(libc::EACCES));
    // A job in complete/ with a stale second copy in pending/.
    let dup = finished(noop_job(), JobStatus::Complete);
    std::fs::write(dir.join("complete").join(name_for(&dup.id)), dup.to_json()).unwrap();
    let mut stale = dup.clone();
    stale.status = JobStatus::Pending;
    w(&name_for(&dup.id), &stale.to_json());
    // And one good job.
    let good = noop_job();
    w(&name_for(&good.id), &good.to_json());

    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    fault::set_read_error(&name_for(&unreadable.id), None);
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pending, stats.complete), (1, 1), "{stats:?}");
    assert_eq!(stats.unreadable, 11, "{stats:?}");
    let reasons = reasons(&dir);
    assert_eq!(reasons.len(), 11);
    let all = reasons.join("\n");
    for expected in [
        "empty file",
        "not JSON",
        "wrong schema",
        "does not match the file name",
        "not a job file name",
        "directory",
        "symlink",
        "fifo",
        "unreadable",
        "duplicate",
    ] {
        assert!(
            all.contains(expected),
            "a reason mentions {expected:?}:\n{all}"
        );
    }
    let disk = Disk::read(&dir);
    assert_eq!(disk.single().len(), 2);
    assert_eq!(store.get(&dup.id).await.unwrap(), dup);
    // The queue works.
    let claimed = store
        .claim(&claim_req("w", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, good.id);
    store
        .transition(Expect::running(1), &finished(claimed, JobStatus::Complete))
        .await
        .unwrap();
    // Reopening finds nothing new to quarantine.
    drop(store);
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    assert_eq!(store.stats().await.unwrap().unreadable, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_appearing_later_are_quarantined_and_skipped() {
    let (_tmp, dir) = fresh().await;
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let first = noop_job();
    store.create(&first).await.unwrap();
    // A corrupt job file dropped in by someone else: the watcher sees it.
    let bad = JobId::generate();
    std::fs::write(dir.join("pending").join(name_for(&bad)), b"{\"id\": tru").unwrap();
    let seen = eventually(Duration::from_secs(5), || async {
        store.stats().await.unwrap().unreadable == 1
    })
    .await;
    assert!(seen, "the watcher quarantined the file");
    // A foreign name: found by a rescan.
    std::fs::write(dir.join("running").join("README"), b"hi").unwrap();
    store.rescan().await.unwrap();
    assert_eq!(store.stats().await.unwrap().unreadable, 2);
    let claimed = store
        .claim(&claim_req("w", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, first.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_corrupted_job_is_corrupt_and_sets_it_aside() {
    let (_tmp, dir) = fresh().await;
    let store = FsStore::open(&dir, support::opts().watch(false))
        .await
        .unwrap();
    let job = noop_job();
    store.create(&job).await.unwrap();
    std::fs::write(dir.join("pending").join(name_for(&job.id)), b"{").unwrap();
    let err = store.get(&job.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert_eq!(
        store.get(&job.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(store.stats().await.unwrap().unreadable, 1);
    // A claim skips it and the index forgets it.
    assert!(store
        .claim(&claim_req("w", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.stats().await.unwrap().pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_young_unparseable_file_gets_a_grace_period() {
    let (_tmp, dir) = fresh().await;
    let bad = JobId::generate();
    std::fs::write(dir.join("pending").join(name_for(&bad)), b"{\"id\":").unwrap();
    let options = support::opts().quarantine_grace(Duration::from_secs(3600));
    let store = FsStore::open(&dir, options).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 0));
    assert!(dir.join("pending").join(name_for(&bad)).exists());
}

/// What a power loss after a durable completion can leave (the source
/// directory is not synced, so the running name may come back with the
/// claimed content): the completed copy wins, the stale one is set aside,
/// nothing is left running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_whose_old_name_came_back_stays_complete() {
    let (_tmp, dir) = fresh().await;
    let opts = support::opts().durability(semiont_jobs_store::Durability::Fsync);
    let store = FsStore::open(&dir, opts.clone()).await.unwrap();
    store.create(&noop_job()).await.unwrap();
    let running = store
        .claim(&claim_req("w", Timestamp::now(), Duration::from_secs(30)))
        .await
        .unwrap()
        .unwrap();
    let done = finished(running.clone(), JobStatus::Complete);
    store
        .transition(Expect::running(running.attempt), &done)
        .await
        .unwrap();
    drop(store);
    std::fs::write(
        dir.join("running").join(name_for(&running.id)),
        running.to_json(),
    )
    .unwrap();
    let store = FsStore::open(&dir, opts).await.unwrap();
    let stats = store.stats().await.unwrap();
    assert_eq!(
        (stats.running, stats.complete, stats.unreadable),
        (0, 1, 1),
        "{stats:?}"
    );
    assert_eq!(store.get(&running.id).await.unwrap(), done);
    assert!(reasons(&dir).join("\n").contains("duplicate"));
}
