//! The queue vacuums its own tables.
//!
//! Every job leaves dead row versions behind in `jobs` (its claim and its
//! move to `jobs_done`), and retention leaves them in `jobs_done`. The
//! autovacuum launcher looks at a database once per `autovacuum_naptime`
//! (a minute by default); between two of its visits a busy queue piles up
//! hundreds of thousands of dead versions in `jobs`, a table whose live
//! rows are only the pending and running jobs, and every claim then walks
//! past them. Measured in the soak (`semiont-jobs-bench --workload soak`),
//! throughput followed that sawtooth, down to half between two
//! autovacuums.
//!
//! So every store instance that wrote in the last [`KEEP_LOOKING`] reads
//! the two tables' counts of live and dead rows from the statistics collector
//! every [`PgOptions::vacuum_every`](crate::PgOptions) and runs
//! `VACUUM (SKIP_LOCKED)` on a table whose dead rows reached
//! [`PgOptions::vacuum_min_dead`](crate::PgOptions) plus a fifth of its live
//! rows. `SKIP_LOCKED` leaves a table alone while another process (or
//! autovacuum) vacuums it, so many processes never queue up behind one
//! another. An instance whose role does not own the tables (only the owner
//! may vacuum) says so once and stops looking; autovacuum still runs.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::Duration;

use crate::Inner;

/// How long after its last write an instance keeps looking: a session's
/// counts reach the statistics up to about ten seconds late (PostgreSQL
/// 15 flushes an idle session's counts after ten seconds), so the dead rows
/// of the last writes show up after the writes.
const KEEP_LOOKING: Duration = Duration::from_secs(30);

/// The two tables' live and dead rows ($1 the schema).
const DEAD_ROWS: &str = "SELECT relname::text, n_live_tup, n_dead_tup FROM pg_stat_user_tables
    WHERE schemaname = $1 AND relname IN ('jobs', 'jobs_done')";

/// Whether this session's role may vacuum both tables ($1 the schema).
const OWNS: &str = "SELECT coalesce(bool_and(pg_has_role(c.relowner, 'MEMBER')), false)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relname IN ('jobs', 'jobs_done')";

/// Whether a table with `live` and `dead` rows is due a vacuum.
pub(crate) fn due(live: i64, dead: i64, min_dead: u64) -> bool {
    let min_dead = i64::try_from(min_dead).unwrap_or(i64::MAX);
    dead >= min_dead.saturating_add(live.max(0) / 5)
}

/// Looks every `every` while the store lives; vacuums what is due.
pub(crate) async fn vacuumer(inner: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut owner_checked = false;
    let mut last_write: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        let Some(store) = inner.upgrade() else {
            return;
        };
        // An instance that changed nothing lately leaves the looking to
        // those that did.
        if store.writes.swap(0, Ordering::Relaxed) > 0 {
            last_write = Some(tokio::time::Instant::now());
        }
        if last_write.is_none_or(|at| at.elapsed() > KEEP_LOOKING) {
            continue;
        }
        match store.vacuum_due(!owner_checked).await {
            Ok(true) => owner_checked = true,
            Ok(false) => {
                tracing::info!(
                    schema = %store.schema,
                    "this role does not own the queue's tables: leaving their vacuuming to autovacuum"
                );
                return;
            }
            Err(e) => tracing::debug!(error = %e, "cannot look at or vacuum the queue's tables"),
        }
    }
}

impl Inner {
    /// Vacuums the tables that are due; `Ok(false)` when this role may
    /// not vacuum them (asked when `check_owner`).
    async fn vacuum_due(&self, check_owner: bool) -> Result<bool, String> {
        let conn = self.pool.get().await.map_err(|e| e.to_string())?;
        if check_owner {
            let owns: bool = conn
                .query_one(OWNS, &[&self.schema])
                .await
                .map_err(|e| crate::error::describe(&e))?
                .get(0);
            if !owns {
                return Ok(false);
            }
        }
        let rows = conn
            .query(DEAD_ROWS, &[&self.schema])
            .await
            .map_err(|e| crate::error::describe(&e))?;
        for row in rows {
            let (table, live, dead): (String, i64, i64) = (row.get(0), row.get(1), row.get(2));
            if !due(live, dead, self.opts.vacuum_min_dead) {
                continue;
            }
            // The schema name is checked at open (plain identifier) and the
            // table is one of two fixed names.
            let sql = format!("VACUUM (SKIP_LOCKED) {}.{table}", self.schema);
            let started = std::time::Instant::now();
            conn.batch_execute(&sql)
                .await
                .map_err(|e| crate::error::describe(&e))?;
            tracing::debug!(
                table = %table,
                dead,
                live,
                ms = started.elapsed().as_millis() as u64,
                "vacuumed"
            );
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::due;

    #[test]
    fn a_table_is_due_at_the_minimum_plus_a_fifth_of_its_live_rows() {
        assert!(!due(0, 999, 1_000));
        assert!(due(0, 1_000, 1_000));
        assert!(!due(100_000, 20_999, 1_000));
        assert!(due(100_000, 21_000, 1_000));
        assert!(due(-5, 1_000, 1_000), "a negative estimate counts as none");
        assert!(!due(i64::MAX, i64::MAX - 1, u64::MAX));
    }
}
