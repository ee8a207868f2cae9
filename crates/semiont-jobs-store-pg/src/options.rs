//! [`PgOptions`]: the schema, durability, clock and pool settings of a
//! [`PgStore`](crate::PgStore).

use std::time::Duration;

use semiont_jobs_store::Durability;

use crate::OpenError;

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "semiont_jobs";

/// How often a writing store instance looks for tables to vacuum, by
/// default.
pub const DEFAULT_VACUUM_EVERY: Duration = Duration::from_secs(2);

/// Which clock judges leases and due times.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PgClock {
    /// The database server's clock (`now()`): hosts' clocks differ, the
    /// server's does not. What every deployment uses
    /// ([`Capabilities::server_clock`](semiont_jobs_store::Capabilities)).
    #[default]
    Server,
    /// The `now` each call passes in, as the filesystem backend does. A test
    /// option: suites written on a manual clock (retry back-off, lease
    /// expiry) run unchanged against PostgreSQL with it. Never mix the two
    /// modes on one schema.
    Caller,
}

/// How a [`PgStore`](crate::PgStore) uses its database.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgOptions {
    /// The schema holding the queue's tables (default `semiont_jobs`).
    /// Several queues, and every test case, can share one database with
    /// schemas of their own. Lowercase letters, digits and `_`, at most
    /// 40 bytes, not starting with a digit or `pg_`.
    pub schema: String,
    /// `Fsync` (default): creates and transitions are acknowledged after
    /// the server flushed its log (`synchronous_commit = on`). `None`:
    /// before (`synchronous_commit = off`): a server crash may lose the
    /// last moments, never consistency.
    pub durability: Durability,
    /// Which clock judges leases and due times (default the server's).
    pub clock: PgClock,
    /// Most connections the store opens for its calls (default 16), besides
    /// its listener connection.
    pub pool_size: usize,
    /// How long opening a connection may take (default 5 s).
    pub connect_timeout: Duration,
    /// How long a worker whose liveness lock was released (its process or
    /// connection died) stays alive before a recovery pass takes its jobs
    /// (default 3 s): time for a live process that lost its connection to
    /// stop those jobs first, so one job never runs twice at once.
    pub liveness_grace: Duration,
    /// Apply missing migrations at open (default true). When false, an
    /// out-of-date schema is an error naming `semiont-jobs init`.
    pub migrate: bool,
    /// How often a store instance that wrote since its last look checks
    /// whether the queue's tables need a vacuum (default 2 s; `None`:
    /// never, autovacuum alone). See the `vacuum` module's docs.
    pub vacuum_every: Option<Duration>,
    /// Dead rows a table must hold, besides a fifth of its live rows,
    /// before the store vacuums it (default 1,000).
    pub vacuum_min_dead: u64,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            durability: Durability::Fsync,
            clock: PgClock::Server,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            liveness_grace: Duration::from_secs(3),
            migrate: true,
            vacuum_every: Some(DEFAULT_VACUUM_EVERY),
            vacuum_min_dead: 1_000,
        }
    }
}

impl PgOptions {
    /// Sets the schema name.
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = schema.into();
        self
    }

    /// Sets the durability.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Sets the clock that judges leases and due times.
    pub fn clock(mut self, clock: PgClock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the pool size.
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n;
        self
    }

    /// Sets the connect timeout.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets the grace period after a worker's liveness lock is released.
    pub fn liveness_grace(mut self, d: Duration) -> Self {
        self.liveness_grace = d;
        self
    }

    /// Whether opening applies missing migrations.
    pub fn migrate(mut self, migrate: bool) -> Self {
        self.migrate = migrate;
        self
    }

    /// Sets how often the store looks for tables to vacuum (`None`:
    /// never) and how many dead rows, besides a fifth of the live ones,
    /// make a table due.
    pub fn vacuum(mut self, every: Option<Duration>, min_dead: u64) -> Self {
        self.vacuum_every = every;
        self.vacuum_min_dead = min_dead;
        self
    }

    pub(crate) fn validate(&self) -> Result<(), OpenError> {
        check_schema_name(&self.schema)?;
        if self.pool_size == 0 || self.pool_size > 1000 {
            return Err(OpenError::InvalidOptions(format!(
                "pool size {} is not between 1 and 1000",
                self.pool_size
            )));
        }
        if self.connect_timeout.is_zero() {
            return Err(OpenError::InvalidOptions(
                "connect timeout must be above zero".into(),
            ));
        }
        if self.vacuum_every.is_some_and(|d| d.is_zero()) {
            return Err(OpenError::InvalidOptions(
                "vacuum interval must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// Checks a schema name: it is pasted into SQL, so only a conservative
/// identifier passes.
pub fn check_schema_name(name: &str) -> Result<(), OpenError> {
    let bad = |reason: &str| {
        Err(OpenError::InvalidSchema {
            schema: name.chars().take(64).collect(),
            reason: reason.to_owned(),
        })
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name.len() > 40 {
        return bad("it is longer than 40 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return bad("only lowercase letters, digits and _ are allowed");
    }
    if name.as_bytes()[0].is_ascii_digit() {
        return bad("it starts with a digit");
    }
    if name.starts_with("pg_") {
        return bad("names starting with pg_ are reserved by PostgreSQL");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["semiont_jobs", "q1", "_x", "a_b_c_2"] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Jobs",
            "a-b",
            "a;drop",
            "1abc",
            "pg_jobs",
            "x\"y",
            &"a".repeat(41),
        ] {
            let err = check_schema_name(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid schema name"), "{err}");
        }
    }
}
