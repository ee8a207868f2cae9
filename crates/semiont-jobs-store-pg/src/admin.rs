//! Administration helpers on a connection of their own: running SQL
//! (a benchmark's cleanup) and reading the server's version and the
//! settings that decide performance and durability.

use std::collections::BTreeMap;

use crate::{DatabaseUrl, OpenError};

async fn connect(url: &DatabaseUrl) -> Result<tokio_postgres::Client, OpenError> {
    let redacted = url.redacted();
    let tls = crate::connect::tls(url.verify()).map_err(|reason| OpenError::InvalidUrl {
        url: redacted.clone(),
        reason,
    })?;
    let (client, conn) = url
        .config()
        .connect(tls)
        .await
        .map_err(|e| OpenError::from_pg(&redacted, &e))?;
    tokio::spawn(conn);
    Ok(client)
}

/// Runs `sql` (one or more statements) on the database at `url`.
pub async fn admin_sql(url: &DatabaseUrl, sql: &str) -> Result<(), OpenError> {
    let client = connect(url).await?;
    client
        .batch_execute(sql)
        .await
        .map_err(|e| OpenError::from_pg(&url.redacted(), &e))
}

/// The server's version and its settings that decide a queue's speed and
/// durability: `fsync`, `synchronous_commit`, `full_page_writes`,
/// `wal_level`, `shared_buffers`, `max_connections`.
pub async fn server_settings(url: &DatabaseUrl) -> Result<BTreeMap<String, String>, OpenError> {
    let client = connect(url).await?;
    let rows = client
        .query(
            "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'fsync', \
             'synchronous_commit', 'full_page_writes', 'wal_level', 'shared_buffers', \
             'max_connections')",
            &[],
        )
        .await
        .map_err(|e| OpenError::from_pg(&url.redacted(), &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// The size and tuple counts of one table of a queue's schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// The table's name.
    pub table: String,
    /// Bytes of the table with its indexes and TOAST.
    pub total_bytes: i64,
    /// Bytes of its indexes.
    pub index_bytes: i64,
    /// Live rows (the statistics collector's estimate).
    pub live: i64,
    /// Dead rows not yet vacuumed.
    pub dead: i64,
    /// Autovacuum runs on it so far.
    pub autovacuums: i64,
}

/// Size, live and dead rows of `jobs` and `jobs_done` in `schema`
/// (benchmarks: a soak reports them at intervals).
pub async fn table_stats(url: &DatabaseUrl, schema: &str) -> Result<Vec<TableStats>, OpenError> {
    let client = connect(url).await?;
    let rows = client
        .query(
            "SELECT relname::text, pg_total_relation_size(relid), pg_indexes_size(relid), \
             n_live_tup, n_dead_tup, autovacuum_count \
             FROM pg_stat_user_tables WHERE schemaname = $1 AND relname IN ('jobs', 'jobs_done') \
             ORDER BY relname",
            &[&schema],
        )
        .await
        .map_err(|e| OpenError::from_pg(&url.redacted(), &e))?;
    Ok(rows
        .iter()
        .map(|r| TableStats {
            table: r.get(0),
            total_bytes: r.get(1),
            index_bytes: r.get(2),
            live: r.get(3),
            dead: r.get(4),
            autovacuums: r.get(5),
        })
        .collect())
}
