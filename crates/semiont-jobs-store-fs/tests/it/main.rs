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

mod conformance {
    use semiont_jobs_store_fs::{FsOptions, FsStore};

    semiont_jobs_store::conformance_tests!(|| async {
        let dir = crate::support::tempdir();
        let store = FsStore::open(dir.path().join("jobs"), FsOptions::default())
            .await
            .unwrap();
        semiont_jobs_store::conformance::Fixture::with_guard(store, dir)
    });
}
