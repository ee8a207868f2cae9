//! Integration tests of the filesystem backend: the conformance suite,
//! multi-process contention, crash points, bad files, notify wake-ups,
//! opening, the index snapshot, and the kill -9 torture test (`SEMIONT_JOBS_TORTURE=1`).

mod bad_files;
mod child;
mod crash;
mod multiprocess;
mod notify;
mod open;
mod snapshot;
mod spares;
mod support;
mod torture;

/// The suite in both durabilities; peers are other `FsStore` instances on
/// the same directory (another process's view, with its own watcher and
/// locks: dropping an instance releases its worker locks as a process exit
/// does).
macro_rules! fs_conformance {
    ($name:expr, $durability:expr) => {
        use semiont_jobs_store_fs::{FsOptions, FsStore};

        semiont_jobs_store::conformance_tests!($name, || async {
            let dir = crate::support::tempdir();
            let jobs = dir.path().join("jobs");
            let opts = FsOptions::default().durability($durability);
            let store = FsStore::open(&jobs, opts.clone()).await.unwrap();
            semiont_jobs_store::conformance::Fixture::with_guard(store, dir).with_peer(move || {
                let (jobs, opts) = (jobs.clone(), opts.clone());
                async move { FsStore::open(jobs, opts).await.unwrap() }
            })
        });
    };
}

mod conformance {
    fs_conformance!("fs-fsync", semiont_jobs_store::Durability::Fsync);
}

mod conformance_no_fsync {
    fs_conformance!("fs-none", semiont_jobs_store::Durability::None);
}
