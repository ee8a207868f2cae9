//! Integration tests of the queue crate: one behaviour suite (`suite.rs`),
//! run once per store backend.

#[macro_use]
mod suite;

/// The suite on the in-memory reference backend.
mod memory {
    queue_suite!(|| async { crate::suite::Backend::new(semiont_jobs_store::MemoryStore::new()) });
}

/// The same suite on the filesystem backend, a fresh directory per case;
/// `reopen` opens a second instance on the same directory (another
/// process's view, with its own watcher).
mod fs {
    use std::sync::Arc;

    use semiont_jobs_store::JobStore;
    use semiont_jobs_store_fs::{FsOptions, FsStore};

    async fn open(dir: std::path::PathBuf) -> FsStore {
        FsStore::open(dir, FsOptions::default()).await.unwrap()
    }

    queue_suite!(|| async {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("jobs");
        let store = open(dir.clone()).await;
        crate::suite::Backend::with_guard(store, tmp).with_reopen(move || {
            let dir = dir.clone();
            let store = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(open(dir))
            });
            Arc::new(store) as Arc<dyn JobStore>
        })
    });
}

/// The same suite on PostgreSQL, a schema per case, judging times by the
/// caller's clock (the suite's manual clock); `reopen` opens another store
/// instance on the schema (another process's pool and listener).
mod postgres {
    use std::sync::Arc;

    use semiont_jobs_store::JobStore;
    use semiont_jobs_store_pg::testing::TestSchema;
    use semiont_jobs_store_pg::PgStore;

    queue_suite!(|| async {
        let schema = TestSchema::new();
        let opts = schema.caller_clock_options();
        let store = schema.open(opts.clone()).await;
        let url = schema.url().clone();
        crate::suite::Backend::with_guard(store, schema).with_reopen(move || {
            let (url, opts) = (url.clone(), opts.clone());
            let store = tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(async move { PgStore::open(&url, opts).await.unwrap() })
            });
            Arc::new(store) as Arc<dyn JobStore>
        })
    });
}
