//! Integration tests of the PostgreSQL backend against the database named
//! by `SEMIONT_JOBS_TEST_DATABASE_URL` (each case in a schema of its own):
//! the conformance suite judging times by the server's clock and by the
//! caller's, and the backend's own cases.

mod batch;
mod liveness;
mod open;
mod pause;
mod support;
mod vacuum;

/// The suite with `clock`; peers are other `PgStore` instances on the same
/// schema (another process's view: own pool, own listener, own locks).
macro_rules! pg_conformance {
    ($name:expr, $clock:expr) => {
        use semiont_jobs_store_pg::testing::TestSchema;

        semiont_jobs_store::conformance_tests!($name, || async {
            let schema = TestSchema::new();
            let opts = schema.options().clock($clock);
            let store = schema.open(opts.clone()).await;
            let url = schema.url().clone();
            semiont_jobs_store::conformance::Fixture::with_guard(store, schema).with_peer(
                move || {
                    let (url, opts) = (url.clone(), opts.clone());
                    async move {
                        semiont_jobs_store_pg::PgStore::open(&url, opts)
                            .await
                            .expect("open a peer")
                    }
                },
            )
        });
    };
}

mod conformance {
    pg_conformance!("postgres", semiont_jobs_store_pg::PgClock::Server);
}

mod conformance_caller_clock {
    pg_conformance!(
        "postgres-caller-clock",
        semiont_jobs_store_pg::PgClock::Caller
    );
}
