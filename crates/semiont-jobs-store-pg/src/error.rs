//! Errors of opening a PostgreSQL queue ([`OpenError`]), and the mapping of
//! the client's errors to the store contract's error type: connection and
//! server failures are [`Error::Unavailable`] (transient when retrying may
//! help), the rest [`Error::Backend`]; never a password in a message.

use std::fmt;

use semiont_jobs_store::Error;
use tokio_postgres::error::SqlState;

/// The backend's name in store errors.
pub(crate) const STORE: &str = "postgres";

/// Why [`PgStore::open`](crate::PgStore::open) failed. Each message is one
/// lowercase line naming the database (password hidden) or schema.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The connection string could not be read.
    #[error("invalid database url {url}: {reason}")]
    InvalidUrl {
        /// The string, password hidden.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The schema name is not a plain identifier.
    #[error("invalid schema name {schema:?}: {reason}")]
    InvalidSchema {
        /// The name given.
        schema: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid postgres options: {0}")]
    InvalidOptions(String),
    /// The server could not be reached (refused, unknown host, timeout,
    /// shutting down, too many connections).
    #[error("cannot connect to {url}: {reason}")]
    Unreachable {
        /// The database, password hidden.
        url: String,
        /// What the client or server said.
        reason: String,
    },
    /// The server refused the credentials.
    #[error("cannot log in to {url}: {reason}")]
    Auth {
        /// The database, password hidden.
        url: String,
        /// What the server said.
        reason: String,
    },
    /// The database does not exist.
    #[error("cannot open {url}: {reason}")]
    NoDatabase {
        /// The database, password hidden.
        url: String,
        /// What the server said.
        reason: String,
    },
    /// The role lacks a privilege the queue needs (e.g. to create its
    /// schema and tables).
    #[error("permission denied on {url}: {reason} (the role needs CREATE on the database, or a schema created for it by an administrator)")]
    PermissionDenied {
        /// The database, password hidden.
        url: String,
        /// What the server said.
        reason: String,
    },
    /// The schema was migrated by a newer version of semiont-jobs.
    #[error("schema {schema} is at version {found}, newer than this semiont-jobs supports ({supported}); upgrade semiont-jobs")]
    NewerSchema {
        /// The schema.
        schema: String,
        /// Its version.
        found: i64,
        /// The newest version this code knows.
        supported: i64,
    },
    /// The schema needs migrations and opening was told not to apply them.
    #[error("schema {schema} is at version {found}, this semiont-jobs needs {latest}; run `semiont-jobs init` to migrate it")]
    OutdatedSchema {
        /// The schema.
        schema: String,
        /// Its version (0: not created).
        found: i64,
        /// The version this code needs.
        latest: i64,
    },
    /// A migration failed (nothing of it was applied).
    #[error("cannot migrate schema {schema} to version {version}: {reason}")]
    Migration {
        /// The schema.
        schema: String,
        /// The migration that failed.
        version: i64,
        /// What the server said.
        reason: String,
    },
    /// Any other database error while opening.
    #[error("cannot open {url}: {reason}")]
    Database {
        /// The database, password hidden.
        url: String,
        /// What the server said.
        reason: String,
    },
}

impl OpenError {
    /// Classifies a client error met while connecting to or preparing the
    /// database at `url` (already redacted).
    pub(crate) fn from_pg(url: &str, e: &tokio_postgres::Error) -> Self {
        let url = url.to_owned();
        let reason = describe(e);
        match e.code() {
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                OpenError::Auth { url, reason }
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => {
                OpenError::NoDatabase { url, reason }
            }
            Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
                OpenError::PermissionDenied { url, reason }
            }
            _ if transient(e) || e.as_db_error().is_none() => {
                OpenError::Unreachable { url, reason }
            }
            _ => OpenError::Database { url, reason },
        }
    }

    /// Classifies a pool error met while opening.
    pub(crate) fn from_pool(url: &str, e: deadpool_postgres::PoolError) -> Self {
        match e {
            deadpool_postgres::PoolError::Backend(e) => OpenError::from_pg(url, &e),
            other => OpenError::Unreachable {
                url: url.to_owned(),
                reason: pool_reason(&other),
            },
        }
    }
}

/// A one-line description of a client error: the server's message and
/// SQLSTATE, or the client's (connection) error with its cause.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let msg = s.to_string();
                if !text.contains(&msg) {
                    text.push_str(": ");
                    text.push_str(&msg);
                }
                source = s.source();
            }
            text
        }
    };
    text.replace('\n', " ")
}

/// Whether retrying the same call later may succeed: the connection broke
/// or could not be made, the server is shutting down or starting, it has
/// no connection slots, a deadlock or serialization failure was resolved
/// against us, or a statement timed out.
pub(crate) fn transient(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        None => e.as_db_error().is_none(),
        Some(c) => {
            let code = c.code();
            code.starts_with("08")
                || code.starts_with("57P")
                || code == SqlState::TOO_MANY_CONNECTIONS.code()
                || code == SqlState::T_R_SERIALIZATION_FAILURE.code()
                || code == SqlState::T_R_DEADLOCK_DETECTED.code()
                || code == SqlState::LOCK_NOT_AVAILABLE.code()
                || code == SqlState::QUERY_CANCELED.code()
                || code == SqlState::CANNOT_CONNECT_NOW.code()
                || code == SqlState::ADMIN_SHUTDOWN.code()
        }
    }
}

/// A described failure, as the source of a store error.
#[derive(Debug)]
pub(crate) struct Failure(pub(crate) String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}

/// A client error as a store error.
pub(crate) fn store_err(e: tokio_postgres::Error) -> Error {
    let reason = Failure(describe(&e));
    if transient(&e) {
        return Error::unavailable(STORE, true, reason);
    }
    match e.code() {
        Some(c)
            if *c == SqlState::INVALID_PASSWORD
                || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                || *c == SqlState::INVALID_CATALOG_NAME =>
        {
            Error::unavailable(STORE, false, reason)
        }
        _ => Error::Backend {
            store: STORE,
            source: Box::new(reason),
        },
    }
}

fn pool_reason(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Timeout(_) => {
            "timed out waiting for a database connection".into()
        }
        deadpool_postgres::PoolError::Backend(e) => describe(e),
        deadpool_postgres::PoolError::Closed => "the connection pool is closed".into(),
        other => other.to_string().replace('\n', " "),
    }
}

/// A pool error (no connection could be had) as a store error.
pub(crate) fn pool_err(e: deadpool_postgres::PoolError) -> Error {
    match e {
        deadpool_postgres::PoolError::Backend(e) => store_err(e),
        other => Error::unavailable(STORE, true, Failure(pool_reason(&other))),
    }
}

/// A stored row that is not a valid job.
pub(crate) fn corrupt(schema: &str, table: &str, id: &str, reason: impl fmt::Display) -> Error {
    Error::corrupt(
        format!("{schema}.{table} id={id}"),
        reason.to_string().replace('\n', " "),
    )
}
