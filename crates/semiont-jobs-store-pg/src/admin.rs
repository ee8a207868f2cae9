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
