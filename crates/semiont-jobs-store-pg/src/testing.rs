//! Test support (feature `test-support`): a throwaway schema per test in the
//! database named by [`TEST_URL_VAR`], dropped when the guard goes.
//!
//! The variable is required: a test that needs PostgreSQL fails with a
//! message saying how to provide one (`cargo xtask ci` starts a server and
//! sets it), it never skips silently.

#![allow(
    clippy::missing_panics_doc,
    reason = "test support: a missing database is a panic with a message"
)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{DatabaseUrl, PgClock, PgOptions, PgStore};

/// The environment variable naming the test database.
pub const TEST_URL_VAR: &str = "SEMIONT_JOBS_TEST_DATABASE_URL";

/// The test database's URL.
///
/// # Panics
/// When [`TEST_URL_VAR`] is unset or invalid.
pub fn test_url() -> DatabaseUrl {
    let raw = std::env::var(TEST_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{TEST_URL_VAR} is not set: the PostgreSQL tests need a database \
             (cargo xtask ci starts a throwaway server and sets it; or export \
             {TEST_URL_VAR}=postgres://user@127.0.0.1:5432/test)"
        )
    });
    DatabaseUrl::parse(&raw).unwrap_or_else(|e| panic!("{TEST_URL_VAR}: {e}"))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A schema of its own for one test, dropped (with everything in it) when
/// this guard is dropped.
#[derive(Debug)]
pub struct TestSchema {
    url: DatabaseUrl,
    name: String,
}

impl Default for TestSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSchema {
    /// A fresh, unique schema name in the test database (created by the
    /// first store opened on it).
    pub fn new() -> Self {
        let url = test_url();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("t_{}_{n}_{nanos:x}", std::process::id());
        TestSchema { url, name }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test database's URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Options for this schema, judging times by the server's clock, with
    /// a small pool.
    pub fn options(&self) -> PgOptions {
        PgOptions::default()
            .schema(self.name.clone())
            .pool_size(4)
            .durability(crate::Durability::None)
    }

    /// Options for this schema judging times by the caller's clock.
    pub fn caller_clock_options(&self) -> PgOptions {
        self.options().clock(PgClock::Caller)
    }

    /// Opens a store on this schema.
    ///
    /// # Panics
    /// When the store cannot be opened.
    pub async fn open(&self, opts: PgOptions) -> PgStore {
        PgStore::open(&self.url, opts)
            .await
            .unwrap_or_else(|e| panic!("open the test schema: {e}"))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let config = self.url.config().clone();
        let tls = crate::connect::tls(self.url.verify());
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop may run inside a runtime: use a thread with its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let (client, conn) = config.connect(tls.ok()?).await.ok()?;
                let driver = tokio::spawn(conn);
                let dropped = client.batch_execute(&sql).await;
                drop(client);
                let _ = driver.await;
                dropped.ok()
            })
        })
        .join();
        if !matches!(done, Ok(Some(()))) {
            tracing::warn!(schema = %self.name, "could not drop the test schema");
        }
    }
}
