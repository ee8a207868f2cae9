//! Integration tests of the queue crate: one behaviour suite (`suite.rs`),
//! run once per store backend.

#[macro_use]
mod suite;

/// The suite on the in-memory reference backend.
mod memory {
    queue_suite!(|| async { crate::suite::Backend::new(semiont_jobs_store::MemoryStore::new()) });
}

// The filesystem backend runs the same suite with one more invocation here,
// e.g. `mod fs { queue_suite!(|| async { let dir = tempfile::tempdir().unwrap();
// crate::suite::Backend::with_guard(FsStore::open(dir.path(), ..).unwrap(), dir) }); }`.
