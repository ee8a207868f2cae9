//! SQL fragments every statement shares: the server's time in
//! milliseconds, the judged "now" (the caller's in caller-clock mode, else
//! the server's), and the counter update that keeps `stats` exact in the
//! same statement as the change it counts.

/// The server's time, in milliseconds since the epoch.
pub(crate) const SERVER_NOW: &str = "(floor(extract(epoch from now()) * 1000))::bigint";

/// The number of counter shards (see the `counts` table).
pub(crate) const SHARDS: i32 = 32;

/// `now` judged for a statement whose parameter `$n` is the caller's time
/// in caller-clock mode and NULL in server-clock mode.
pub(crate) fn judged_now(n: usize) -> String {
    format!("coalesce(${n}::bigint, {SERVER_NOW})")
}

/// A `cnt` CTE adding `delta` to the count of every `(job_type, status,
/// delta)` row `deltas` yields, on this connection's shard. Rows are summed
/// per counter and locked in one order, so two statements never deadlock
/// on counters.
pub(crate) fn counts_cte(deltas: &str) -> String {
    format!(
        "cnt AS (
            INSERT INTO {{s}}.counts AS c (job_type, status, shard, n)
            SELECT d.job_type, d.status, (pg_backend_pid() % {SHARDS})::smallint, sum(d.delta)
            FROM ({deltas}) AS d(job_type, status, delta)
            GROUP BY d.job_type, d.status
            ORDER BY d.job_type, d.status
            ON CONFLICT (job_type, status, shard) DO UPDATE SET n = c.n + excluded.n
        )"
    )
}

/// `template` for `schema`: every `{s}` replaced.
pub(crate) fn render(template: &str, schema: &str) -> String {
    template.replace("{s}", schema)
}
