//! Integration tests of the store crate: the conformance suite against the
//! in-memory backend.

mod conformance {
    semiont_jobs_store::conformance_tests!(|| async {
        semiont_jobs_store::conformance::Fixture::new(semiont_jobs_store::MemoryStore::new())
    });
}
