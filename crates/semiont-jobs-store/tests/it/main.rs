//! Integration tests of the store crate: the conformance suite against the
//! in-memory backend, judging times by the callers' clock and by its own.

mod conformance {
    semiont_jobs_store::conformance_tests!("memory", || async {
        semiont_jobs_store::conformance::Fixture::new(semiont_jobs_store::MemoryStore::new())
    });
}

mod conformance_server_clock {
    semiont_jobs_store::conformance_tests!("memory-server-clock", || async {
        semiont_jobs_store::conformance::Fixture::new(
            semiont_jobs_store::MemoryStore::with_server_clock(),
        )
    });
}
