//! Full disk, for real: the queue runs on a 1 MiB tmpfs mounted by the test
//! (as root; anywhere else the test says so on stderr and does nothing).
//! Enqueueing until the filesystem is full must fail with a clear `NoSpace`
//! error, damage nothing already stored, leave no staged leftovers, and work
//! again once space returns.

use std::path::Path;

use semiont_jobs_model::{JobStatus, NewJob};
use semiont_jobs_queue::{Error, ErrorKind};
use semiont_jobs_store::ErrorKind as StoreKind;
use semiont_jobs_store_fs::FsOptions;
use semiont_jobs_tests::TmpfsMount;
use serde_json::json;

use crate::support;

fn no_space(e: &Error) -> bool {
    matches!(e, Error::Store(s) if s.kind() == StoreKind::NoSpace)
}

fn staged_leftovers(dir: &Path) -> usize {
    let mut n = 0;
    for inst in std::fs::read_dir(dir.join("tmp")).unwrap() {
        let path = inst.unwrap().path();
        if path.is_dir() {
            n += std::fs::read_dir(path).unwrap().count();
        } else {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "says when the real-filesystem path could not run"
)]
async fn enqueue_on_a_full_disk_fails_cleanly_and_recovers() {
    let tmp = support::tempdir();
    let mnt = tmp.path().join("small");
    let Some(mount) = TmpfsMount::new(&mnt, "1m") else {
        eprintln!(
            "full_disk: cannot mount a tmpfs here (not root?); the real full-disk path did not run"
        );
        return;
    };
    // Ballast to free later, so space can "return".
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![7u8; 256 << 10]).unwrap();
    let dir = mnt.join("jobs");
    // Default durability (fsync), as a user would run it.
    let q = support::queue_with(&dir, FsOptions::default().watch(false)).await;
    q.register_worker("w").await.unwrap();

    // Fill the disk.
    let mut acked = Vec::new();
    let error = loop {
        let new = NewJob::custom(
            "noop",
            "u1",
            json!({ "pad": "p".repeat(1500), "n": acked.len() }),
        )
        .unwrap();
        match q.create_job(new).await {
            Ok(job) => acked.push(job),
            Err(e) => break e,
        }
        assert!(acked.len() < 10_000, "a 1 MiB filesystem never filled up");
    };
    assert_eq!(error.kind(), ErrorKind::Storage, "{error}");
    assert!(no_space(&error), "the store error is NoSpace: {error:?}");
    let text = error.to_string();
    assert!(text.contains("No space left on device"), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(
        acked.len() > 10,
        "some jobs fit before the disk filled: {}",
        acked.len()
    );

    // Nothing stored is damaged, and no staged file is left behind.
    for job in &acked {
        assert_eq!(&q.get_job(&job.id).await.unwrap(), job);
    }
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending as usize, stats.unreadable), (acked.len(), 0));
    assert_eq!(staged_leftovers(&dir), 0);

    // Transitions while full: refused with NoSpace or done; never damaging.
    let mut refused = 0;
    for _ in 0..3 {
        match q.claim_next_job("noop", "w").await {
            Ok(Some(job)) => match q.complete_job_at(&job.id, job.attempt, ()).await {
                Ok(_) => {}
                Err(e) => {
                    assert!(no_space(&e), "{e}");
                    refused += 1;
                    let back = q.get_job(&job.id).await.unwrap();
                    assert_eq!(
                        back.status,
                        JobStatus::Running,
                        "a refused completion leaves it running"
                    );
                }
            },
            Ok(None) => panic!("pending jobs exist"),
            Err(e) => {
                assert!(no_space(&e), "{e}");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "a full disk refuses the staged writes of transitions too"
    );
    eprintln!(
        "full_disk: {} jobs acknowledged before ENOSPC ({text}); {refused} of 3 claims or completions refused while full",
        acked.len()
    );
    assert_eq!(staged_leftovers(&dir), 0);
    let stats = q.get_stats().await.unwrap();
    assert_eq!(stats.total() as usize, acked.len());
    assert_eq!(stats.unreadable, 0);

    // Space returns: everything works again.
    std::fs::remove_file(&ballast).unwrap();
    let after = q
        .create_job(NewJob::custom("noop", "u1", json!({})).unwrap())
        .await
        .unwrap();
    let mut done = 0;
    while let Some(job) = q.claim_next_job("noop", "w").await.unwrap() {
        q.complete_job_at(&job.id, job.attempt, ()).await.unwrap();
        done += 1;
        if done > 20 {
            break;
        }
    }
    assert!(done > 0);
    drop(q);
    // Reopen: every acknowledged job is there and readable, nothing quarantined.
    let q = support::queue_with(&dir, support::opts()).await;
    for job in acked.iter().chain([&after]) {
        let back = q.get_job(&job.id).await.unwrap();
        assert_eq!(back.params, job.params);
    }
    assert_eq!(q.get_stats().await.unwrap().unreadable, 0);
    drop(q);
    drop(mount);
}
