//! The schema and its migrations: versioned SQL files embedded in the
//! crate, applied at open in one transaction under an advisory lock (two
//! processes opening a fresh database at once apply them once), recorded
//! in `<schema>.schema_migrations`; a schema newer than this code is
//! refused.

use tokio_postgres::Client;

use crate::error::describe;
use crate::OpenError;

/// The migrations, in order: (version, name, SQL with `{s}` for the schema).
pub(crate) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "jobs", include_str!("../migrations/0001_jobs.sql")),
    (
        2,
        "fence_finished_creates",
        include_str!("../migrations/0002_fence_finished_creates.sql"),
    ),
    (
        3,
        "nul_safe_unique_until",
        include_str!("../migrations/0003_nul_safe_unique_until.sql"),
    ),
    (
        4,
        "claim_in_index_order",
        include_str!("../migrations/0004_claim_in_index_order.sql"),
    ),
    (
        5,
        "finish_by_primary_key",
        include_str!("../migrations/0005_finish_by_primary_key.sql"),
    ),
];

/// The schema version this code works with.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Serialises migrations of one schema across processes (released at the
/// end of the transaction).
const LOCK: &str =
    "SELECT pg_advisory_xact_lock(hashtextextended('semiont-jobs migrate ' || $1, 0))";

const SCHEMA_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)";

const VERSION_TABLE_EXISTS: &str = "SELECT to_regclass($1 || '.schema_migrations') IS NOT NULL";

const CREATE_VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS {s}.schema_migrations (
    version    bigint      PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

const CURRENT_VERSION: &str = "SELECT coalesce(max(version), 0) FROM {s}.schema_migrations";

const RECORD: &str = "INSERT INTO {s}.schema_migrations (version, name) VALUES ($1, $2)";

/// What the migrations of [`PgStore::open`](crate::PgStore::open) found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Migrated {
    /// The version before.
    pub from: i64,
    /// The version after.
    pub to: i64,
}

/// Brings `schema` up to [`SCHEMA_VERSION`] (or, with `apply` false, only
/// checks that it is there). `url` is the redacted URL, for messages.
pub(crate) async fn migrate(
    client: &mut Client,
    url: &str,
    schema: &str,
    apply: bool,
) -> Result<Migrated, OpenError> {
    let open_err = |e: tokio_postgres::Error| OpenError::from_pg(url, &e);
    let tx = client.transaction().await.map_err(open_err)?;
    tx.execute(LOCK, &[&schema]).await.map_err(open_err)?;
    let exists: bool = tx
        .query_one(SCHEMA_EXISTS, &[&schema])
        .await
        .map_err(open_err)?
        .get(0);
    let has_table: bool = tx
        .query_one(VERSION_TABLE_EXISTS, &[&schema])
        .await
        .map_err(open_err)?
        .get(0);
    let found: i64 = if has_table {
        tx.query_one(&CURRENT_VERSION.replace("{s}", schema), &[])
            .await
            .map_err(open_err)?
            .get(0)
    } else {
        0
    };
    if found > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found == SCHEMA_VERSION {
        tx.commit().await.map_err(open_err)?;
        return Ok(Migrated {
            from: found,
            to: found,
        });
    }
    if !apply {
        return Err(OpenError::OutdatedSchema {
            schema: schema.to_owned(),
            found,
            latest: SCHEMA_VERSION,
        });
    }
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .map_err(open_err)?;
    }
    tx.batch_execute(&CREATE_VERSION_TABLE.replace("{s}", schema))
        .await
        .map_err(open_err)?;
    for (version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > found) {
        let failed = |e: tokio_postgres::Error| {
            let base = OpenError::from_pg(url, &e);
            match base {
                OpenError::PermissionDenied { .. } | OpenError::Unreachable { .. } => base,
                _ => OpenError::Migration {
                    schema: schema.to_owned(),
                    version: *version,
                    reason: describe(&e),
                },
            }
        };
        tx.batch_execute(&sql.replace("{s}", schema))
            .await
            .map_err(failed)?;
        tx.execute(&RECORD.replace("{s}", schema), &[version, name])
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(open_err)?;
    tracing::info!(schema, from = found, to = SCHEMA_VERSION, "schema migrated");
    Ok(Migrated {
        from: found,
        to: SCHEMA_VERSION,
    })
}
