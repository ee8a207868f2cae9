//! Claims: one statement takes up to N due pending jobs of types that are
//! not paused in claim order (priority, then id) with `FOR UPDATE SKIP
//! LOCKED` (the function `due_pending`, which walks the pending index in
//! that order whatever the statistics say), makes them running
//! for the claimer's live incarnation and updates the counters. Due-ness
//! and the lease are judged by the server's clock (or, in caller-clock
//! mode, the claimer's `now`).

use std::time::Duration;

use semiont_jobs_model::{Job, Timestamp, Transition};
use semiont_jobs_store::{ChangeKind, ClaimRequest, Result, TypeFilter};

use crate::error::store_err;
use crate::row::{job_from_row, COLS, J_COLS};
use crate::sql::{counts_cte, judged_now, render};
use crate::Inner;

/// The rendered statements of this module.
#[derive(Debug)]
pub(crate) struct Sql {
    claim: String,
    peek: String,
}

/// $1 caller's now (NULL: server's), $2 accepted types (NULL: any),
/// $3 worker id, $4 lease in ms, $5 the worker's incarnation when the
/// caller knows it, $6 how many.
const CLAIM: &str = "WITH t AS (SELECT {now} AS now),
w AS (
    SELECT coalesce($5::bigint,
        (SELECT max(inc) FROM {s}.workers WHERE worker_id = $3::text AND alive)) AS inc
),
picked AS (
    -- In claim order through the pending index (migration 0004).
    SELECT id FROM {s}.due_pending((SELECT now FROM t), $2::text[], $6::bigint, true) AS id
),
upd AS (
    UPDATE {s}.jobs j SET status = 'running', attempt = j.attempt + 1, started_at = t.now,
        completed_at = NULL, worker_id = $3::text, worker_inc = w.inc,
        lease_expires_at = t.now + $4::bigint, run_at = NULL,
        -- A new attempt starts without progress (checkpoints are kept);
        -- the other keys keep their order. PostgreSQL cannot take apart a
        -- json document holding an escaped NUL (\\u0000, 22P05): such a
        -- document is left as it is here and the claimer drops its
        -- progress (`claim_jobs`), so it never blocks a claim.
        doc = CASE WHEN strpos(j.doc::text, '\\u0000') > 0 THEN j.doc
                   WHEN j.doc -> 'progress' IS NULL THEN j.doc
                   ELSE coalesce((SELECT json_object_agg(e.key, e.value)
                                  FROM json_each(j.doc) AS e WHERE e.key <> 'progress'),
                                 '{}'::json) END
    FROM picked, t, w
    WHERE j.id = picked.id
    RETURNING {jcols}
),
{counts}
SELECT * FROM upd";

/// $1 caller's now (NULL: server's), $2 accepted types (NULL: any).
const PEEK: &str = "SELECT {cols} FROM {s}.jobs
    WHERE status = 'pending'
      AND id = (SELECT id FROM {s}.due_pending({now}, $2::text[], 1, false) AS id)";

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let counts = counts_cte(
            "SELECT job_type, 'pending', -1 FROM upd UNION ALL SELECT job_type, 'running', 1 FROM upd",
        );
        Sql {
            claim: render(
                &CLAIM
                    .replace("{counts}", &counts)
                    .replace("{jcols}", J_COLS)
                    .replace("{now}", &judged_now(1)),
                schema,
            ),
            peek: render(
                &PEEK
                    .replace("{cols}", COLS)
                    .replace("{now}", &judged_now(1)),
                schema,
            ),
        }
    }
}

fn types_param(types: &TypeFilter) -> Option<Vec<&str>> {
    match types {
        TypeFilter::Any => None,
        TypeFilter::Only(list) => Some(list.iter().map(|t| t.as_str()).collect()),
    }
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Inner {
    /// Claims up to `max` jobs for `req.worker_id`, in claim order.
    pub(crate) async fn claim_jobs(&self, req: &ClaimRequest, max: usize) -> Result<Vec<Job>> {
        if max == 0 {
            return Ok(Vec::new());
        }
        // A worker this instance registered claims under its incarnation;
        // while the listener reconnects it has none and must wait.
        let inc = self.live.claim_inc(&req.worker_id)?;
        let now = self.caller_now(req.now);
        let types = types_param(&req.types);
        let lease = lease_ms(req.lease);
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.claim.claim)
            .await
            .map_err(store_err)?;
        let rows = conn
            .query(&stmt, &[&now, &types, &req.worker_id, &lease, &inc, &max])
            .await
            .map_err(store_err)?;
        drop(conn);
        let mut jobs = rows
            .iter()
            .map(|r| job_from_row(r, &self.schema, "jobs"))
            .collect::<Result<Vec<Job>>>()?;
        // Progress left by the statement (documents with an escaped NUL,
        // see above): the new attempt starts without it, in the returned
        // job and, fenced by the attempt, in the database.
        for job in jobs.iter_mut().filter(|j| j.progress.is_some()) {
            job.progress = None;
            if let Err(e) = self.update_running_job(job).await {
                tracing::warn!(job_id = %job.id, error = %e, "cannot clear the previous attempt's progress");
            }
        }
        jobs.sort_by(|a, b| {
            (std::cmp::Reverse(a.priority), &a.id).cmp(&(std::cmp::Reverse(b.priority), &b.id))
        });
        for job in &jobs {
            self.remember_claimed(job);
            self.announce(job, ChangeKind::Transition(Transition::Claim));
        }
        Ok(jobs)
    }

    /// The job a claim would take now.
    pub(crate) async fn peek(&self, types: &TypeFilter, now: Timestamp) -> Result<Option<Job>> {
        let now = self.caller_now(now);
        let types = types_param(types);
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.claim.peek)
            .await
            .map_err(store_err)?;
        let rows = conn
            .query(&stmt, &[&now, &types])
            .await
            .map_err(store_err)?;
        rows.first()
            .map(|r| job_from_row(r, &self.schema, "jobs"))
            .transpose()
    }
}
