//! Creating, reading and changing jobs: every change is one statement whose
//! `WHERE` is the compare-and-swap on (id, status, attempt), and which
//! moves the row between `jobs` and `jobs_done` when the status group
//! changes and updates the counters in the same transaction. A change that
//! matches no row is told apart afterwards: not found, or a conflict with
//! the status and attempt found.

use std::collections::{BTreeMap, HashSet};

use semiont_jobs_model::{
    Job, JobFilter, JobId, JobPage, JobStatus, JobType, QueueStats, Timestamp, Transition,
};
use semiont_jobs_store::{
    rules, ChangeKind, ChangeOrigin, Error, Expect, FinishedJob, JobChange, Result,
};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::batch::Outcome;
use crate::error::{corrupt, store_err};
use crate::notify;
use crate::row::{
    job_from_row, placeholders, status_of, table_of, Columns, JobRow, COLS, WRITE_COLS,
};
use crate::sql::{counts_cte, judged_now, render, SERVER_NOW};
use crate::Inner;

/// The rendered statements of this module.
#[derive(Debug)]
pub(crate) struct Sql {
    create: String,
    get: String,
    lookup: String,
    /// Transitions by (from table, to table, fenced by incarnation).
    moves: BTreeMap<(&'static str, &'static str, bool), String>,
    update_running: String,
    stats: String,
    type_stats: String,
    finished_before: String,
    delete: String,
    delete_finished_before: String,
    pause: String,
    resume: String,
    paused: String,
    sweep_lock: String,
}

const CREATE: &str = "WITH new AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
        $12::bigint[], $13::text[], $14::bigint[], $15::text[], $16::text[])
    AS n(id, job_type, status, user_id, priority, attempt, retry_count, max_retries, created,
         started_at, completed_at, run_at, worker_id, lease_expires_at, unique_key, doc)
),
a AS (
    INSERT INTO {s}.jobs (id, job_type, status, user_id, priority, attempt, retry_count,
        max_retries, created, started_at, completed_at, run_at, worker_id, worker_inc,
        lease_expires_at, unique_key, doc)
    SELECT id, job_type, status, user_id, priority, attempt, retry_count, max_retries, created,
        started_at, completed_at, run_at, worker_id, NULL, lease_expires_at, unique_key, doc::json
    FROM new WHERE status IN ('pending', 'running')
    RETURNING job_type, status,
        {s}.absent_from_done(id)
        AND {s}.key_free(id, unique_key, CASE WHEN $17::boolean THEN {server_now} ELSE created END) AS ok
),
d AS (
    INSERT INTO {s}.jobs_done (id, job_type, status, user_id, priority, attempt, retry_count,
        max_retries, created, started_at, completed_at, run_at, worker_id, worker_inc,
        lease_expires_at, unique_key, doc)
    SELECT id, job_type, status, user_id, priority, attempt, retry_count, max_retries, created,
        started_at, completed_at, run_at, worker_id, NULL, lease_expires_at, unique_key, doc::json
    FROM new WHERE status NOT IN ('pending', 'running')
    RETURNING job_type, status, {s}.absent_from_jobs(id) AS ok
),
{counts},
-- The creates' notifications ride in the same transaction ($18 the
-- channel, $19 the payloads): sent exactly when the jobs are committed,
-- with no second round trip or commit.
news AS (SELECT pg_notify($18::text, p) FROM unnest($19::text[]) AS p)
SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM d) + 0 * (SELECT count(*) FROM news)";

const GET: &str = "SELECT {cols}, 'jobs' FROM {s}.jobs WHERE id = $1
    UNION ALL SELECT {cols}, 'jobs_done' FROM {s}.jobs_done WHERE id = $1";

const LOOKUP: &str = "SELECT status, attempt, job_type FROM {s}.jobs WHERE id = $1
    UNION ALL SELECT status, attempt, job_type FROM {s}.jobs_done WHERE id = $1";

/// Pauses or resumes a type; returns a row when the set changed.
const PAUSE: &str =
    "INSERT INTO {s}.paused (job_type) VALUES ($1) ON CONFLICT DO NOTHING RETURNING job_type";
const RESUME: &str = "DELETE FROM {s}.paused WHERE job_type = $1 RETURNING job_type";
const PAUSED: &str = "SELECT job_type FROM {s}.paused ORDER BY job_type";

/// The retention sweep's lease: $1 holder, $2 ttl ms, $3 the caller's now
/// (NULL: the server's).
const SWEEP_LOCK: &str = "INSERT INTO {s}.locks AS l (name, holder, until_ms)
    VALUES ('sweep', $1, {now} + $2::bigint)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
    WHERE l.until_ms < {now} OR l.holder = excluded.holder
    RETURNING holder";

/// The precondition of every change: $17 the expected status, $18 the
/// expected attempt (NULL: any).
const EXPECT: &str = "id = $1::text AND job_type = $2::text AND status = $17::text \
     AND ($18::bigint IS NULL OR attempt = $18::bigint)";

/// A progress write: the owner's attempt fences it; a lease never moves
/// backwards (heartbeats may have renewed it since the writer's copy).
const UPDATE_RUNNING: &str = "UPDATE {s}.jobs SET user_id = $4::text, priority = $5::smallint,
        retry_count = $7::bigint, max_retries = $8::bigint, created = $9::bigint,
        started_at = $10::bigint, completed_at = $11::bigint, run_at = $12::bigint,
        worker_id = $13::text,
        lease_expires_at = CASE WHEN $14::bigint IS NULL THEN NULL
                                ELSE greatest(lease_expires_at, $14::bigint) END,
        unique_key = $15::text, doc = $16::text::json
    WHERE id = $1::text AND job_type = $2::text AND status = $3::text AND attempt = $6::bigint";

const STATS: &str = "SELECT status, coalesce(sum(n), 0)::bigint FROM {s}.counts GROUP BY status";

const TYPE_STATS: &str = "SELECT job_type, status, coalesce(sum(n), 0)::bigint FROM {s}.counts
    GROUP BY job_type, status";

const FINISHED_BEFORE: &str =
    "SELECT id, status, coalesce(completed_at, created) FROM {s}.jobs_done
    WHERE coalesce(completed_at, created) < $1
    ORDER BY coalesce(completed_at, created), id LIMIT $2";

const DELETE: &str = "WITH del AS (
    DELETE FROM {s}.jobs_done
    WHERE id = $1 AND status = $2 AND ($3::bigint IS NULL OR attempt = $3::bigint)
    RETURNING job_type, status
),
{counts}
SELECT job_type FROM del";

const DELETE_FINISHED_BEFORE: &str = "WITH victims AS (
    SELECT id FROM {s}.jobs_done
    WHERE coalesce(completed_at, created) < $1
    ORDER BY coalesce(completed_at, created), id
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
del AS (
    DELETE FROM {s}.jobs_done d USING victims v WHERE d.id = v.id
    RETURNING d.id, d.job_type, d.status
),
{counts}
SELECT id, job_type, status FROM del";

/// The incarnation written with a job: the claimer's live incarnation when
/// the job becomes running ($19 when the caller knows it, else looked up
/// by worker id), none otherwise.
const NEW_INC: &str = "CASE WHEN $3::text = 'running' THEN coalesce($19::bigint,
        (SELECT max(w.inc) FROM {s}.workers w WHERE w.worker_id = $13::text AND w.alive)) END";

fn move_sql(from: &str, to: &str, fenced: bool) -> String {
    let inc = if to == "jobs" { NEW_INC } else { "NULL" };
    // The recovery fence: the job is still held by the incarnation found dead.
    let fence = match (fenced, to) {
        (false, _) => String::new(),
        (true, "jobs") => " AND worker_inc IS NOT DISTINCT FROM $20::bigint".into(),
        (true, _) => " AND worker_inc IS NOT DISTINCT FROM $19::bigint".into(),
    };
    let counts = counts_cte(
        "SELECT job_type, $17::text, -1 FROM changed UNION ALL SELECT job_type, $3::text, 1 FROM changed",
    );
    if from == to {
        format!(
            "WITH changed AS (
                UPDATE {{s}}.{to} SET status = $3::text, user_id = $4::text, priority = $5::smallint,
                    attempt = $6::bigint, retry_count = $7::bigint, max_retries = $8::bigint,
                    created = $9::bigint, started_at = $10::bigint, completed_at = $11::bigint,
                    run_at = $12::bigint, worker_id = $13::text, lease_expires_at = $14::bigint,
                    unique_key = $15::text, doc = $16::text::json, worker_inc = {inc}
                WHERE {EXPECT}{fence}
                RETURNING job_type
            ),
            {counts}
            SELECT count(*) FROM changed"
        )
    } else {
        format!(
            "WITH del AS (
                DELETE FROM {{s}}.{from} WHERE {EXPECT}{fence} RETURNING id
            ),
            changed AS (
                INSERT INTO {{s}}.{to} ({WRITE_COLS}, worker_inc)
                SELECT {values}, {inc} FROM del{key_check}
                RETURNING job_type
            ),
            {counts}
            SELECT count(*) FROM changed",
            values = placeholders(1),
            // A retry makes the job hold its key again: no finished job may
            // still hold it (active holders meet the unique index).
            key_check = if to == "jobs" {
                format!(" WHERE {{s}}.key_free($1::text, $15::text, {SERVER_NOW})")
            } else {
                String::new()
            }
        )
    }
}

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let r = |t: &str| render(&t.replace("{cols}", COLS), schema);
        let mut moves = BTreeMap::new();
        for (from, to) in [
            ("jobs", "jobs"),
            ("jobs", "jobs_done"),
            ("jobs_done", "jobs"),
        ] {
            for fenced in [false, true] {
                moves.insert((from, to, fenced), r(&move_sql(from, to, fenced)));
            }
        }
        let create_counts = counts_cte(
            "SELECT job_type, status, 1 FROM a WHERE ok UNION ALL SELECT job_type, status, 1 FROM d WHERE ok",
        );
        let del_counts = counts_cte("SELECT job_type, status, -1 FROM del");
        Sql {
            create: r(&CREATE
                .replace("{counts}", &create_counts)
                .replace("{server_now}", SERVER_NOW)),
            pause: r(PAUSE),
            resume: r(RESUME),
            paused: r(PAUSED),
            sweep_lock: r(&SWEEP_LOCK.replace("{now}", &judged_now(3))),
            get: r(GET),
            lookup: r(LOOKUP),
            moves,
            update_running: r(UPDATE_RUNNING),
            stats: r(STATS),
            type_stats: r(TYPE_STATS),
            finished_before: r(FINISHED_BEFORE),
            delete: r(&DELETE.replace("{counts}", &del_counts)),
            delete_finished_before: r(&DELETE_FINISHED_BEFORE.replace("{counts}", &del_counts)),
        }
    }
}

/// The id named by a unique violation's detail ("Key (id)=(X) already exists.").
fn duplicate_id(e: &tokio_postgres::Error) -> Option<String> {
    let db = e.as_db_error()?;
    if *db.code() != SqlState::UNIQUE_VIOLATION {
        return None;
    }
    let detail = db.detail()?;
    let rest = detail.strip_prefix("Key (id)=(")?;
    rest.strip_suffix(") already exists.").map(str::to_owned)
}

/// Whether a job's type changed in a transition (types never change: the
/// counters and the claim filter rely on it).
fn type_change(id: &JobId, stored: &str, job: &Job) -> Error {
    Error::Invalid(semiont_jobs_model::Error::InvalidJob(format!(
        "job {id} has type {stored}; a job's type cannot change to {}",
        job.job_type
    )))
}

impl Inner {
    /// The unique-key error a unique violation stands for, naming the job
    /// holding the key (looked up after the failed statement: the holder
    /// has committed by then).
    async fn key_taken(&self, e: &tokio_postgres::Error) -> Option<Error> {
        let db = e.as_db_error()?;
        if *db.code() != SqlState::UNIQUE_VIOLATION {
            return None;
        }
        let conn = self.conn().await.ok()?;
        let (key, holder): (String, String) = match db.constraint()? {
            "unique_key_window" => {
                let holder = db.detail()?.to_owned();
                let row = conn
                    .query_opt(
                        &format!(
                            "SELECT unique_key FROM {}.jobs_done WHERE id = $1",
                            self.schema
                        ),
                        &[&holder],
                    )
                    .await
                    .ok()??;
                (row.get(0), holder)
            }
            "jobs_unique_key" => {
                let key = db
                    .detail()?
                    .strip_prefix("Key (unique_key)=(")?
                    .strip_suffix(") already exists.")?
                    .to_owned();
                let row = conn
                    .query_opt(
                        &format!("SELECT id FROM {}.jobs WHERE unique_key = $1", self.schema),
                        &[&key],
                    )
                    .await
                    .ok()??;
                (key, row.get(0))
            }
            _ => return None,
        };
        Some(Error::UniqueKeyTaken {
            key,
            holder: JobId::parse(&holder).ok()?,
        })
    }

    /// Stores `jobs` in one statement: all or none.
    pub(crate) async fn insert_jobs(&self, jobs: &[Job]) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut seen = HashSet::with_capacity(jobs.len());
        let mut keys: std::collections::HashMap<&str, &JobId> = std::collections::HashMap::new();
        for job in jobs {
            if !seen.insert(&job.id) {
                return Err(Error::AlreadyExists { id: job.id.clone() });
            }
            // Two jobs of one batch taking one key: the first holds it.
            if let Some(key) = job.unique_key.as_deref() {
                if !job.status.is_finished() {
                    if let Some(first) = keys.insert(key, &job.id) {
                        return Err(Error::UniqueKeyTaken {
                            key: key.to_owned(),
                            holder: first.clone(),
                        });
                    }
                }
            }
        }
        let rows: Vec<JobRow> = jobs.iter().map(JobRow::of).collect::<Result<_>>()?;
        let mut grouped = false;
        if let [job] = jobs {
            if !job.status.is_finished() {
                // Creates that arrive together share one statement and
                // commit ([`crate::batch`]).
                if let Some(row) = rows.first() {
                    grouped = self.create_grouped(row.clone()).await;
                }
            }
        }
        if !grouped {
            let all: Vec<&JobRow> = rows.iter().collect();
            self.insert_rows(&all).await?;
        }
        // The other instances were told by the statement itself.
        for job in jobs {
            self.tell_local(JobChange::of(job, ChangeKind::Created, ChangeOrigin::Local));
        }
        Ok(())
    }

    /// Runs the create statement for `rows` (one transaction: all or
    /// none); a taken id or unique key is named in the error.
    pub(crate) async fn insert_rows(&self, rows: &[&JobRow]) -> Result<()> {
        let columns = Columns::of(rows.iter().copied());
        let server = self.opts.clock == crate::PgClock::Server;
        let payloads = notify::pack(
            &self.instance,
            rows.iter()
                .map(|r| notify::line(ChangeKind::Created, r.status, &r.job_type, &r.id))
                .collect(),
        );
        let mut params = columns.params().to_vec();
        params.push(&server);
        params.push(&self.channel);
        params.push(&payloads);
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.create)
            .await
            .map_err(store_err)?;
        let Err(e) = conn.query_one(&stmt, &params).await else {
            return Ok(());
        };
        drop(conn);
        if let Some(taken) = self.key_taken(&e).await {
            return Err(taken);
        }
        Err(match duplicate_id(&e).map(|id| JobId::parse(&id)) {
            Some(Ok(id)) => Error::AlreadyExists { id },
            _ => store_err(e),
        })
    }

    /// Reads a job (with the reads that arrive together, [`crate::batch`]).
    pub(crate) async fn get_job(&self, id: &JobId) -> Result<Job> {
        match self.read_grouped(id.as_str()).await {
            Ok(Some(job)) => return Ok(job),
            Ok(None) => return Err(Error::NotFound { id: id.clone() }),
            Err(()) => {}
        }
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.get)
            .await
            .map_err(store_err)?;
        let rows = conn
            .query(&stmt, &[&id.as_str()])
            .await
            .map_err(store_err)?;
        match rows.first() {
            Some(row) => job_from_row(row, &self.schema, row.get(15)),
            None => Err(Error::NotFound { id: id.clone() }),
        }
    }

    /// The status, attempt and type stored for `id`.
    async fn lookup(&self, id: &JobId) -> Result<Option<(JobStatus, u32, String)>> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.lookup)
            .await
            .map_err(store_err)?;
        let rows = conn
            .query(&stmt, &[&id.as_str()])
            .await
            .map_err(store_err)?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let status: String = row.get(0);
        let status = status_of(&status)
            .ok_or_else(|| corrupt(&self.schema, "jobs", id.as_str(), "unknown status"))?;
        let attempt = u32::try_from(row.get::<_, i64>(1)).unwrap_or(u32::MAX);
        Ok(Some((status, attempt, row.get(2))))
    }

    /// Why a change of job `job` conditioned on `expect` matched no row.
    async fn explain_miss(&self, expect: Expect, job: &Job) -> Error {
        match self.lookup(&job.id).await {
            Err(e) => e,
            Ok(None) => Error::NotFound { id: job.id.clone() },
            Ok(Some((status, attempt, ty))) => {
                if expect.holds(status, attempt) && ty != job.job_type.as_str() {
                    type_change(&job.id, &ty, job)
                } else {
                    Error::Conflict {
                        id: job.id.clone(),
                        expected: expect,
                        actual: Some((status, attempt)),
                    }
                }
            }
        }
    }

    /// Writes `job` if the stored job is as `expect` says (and, with
    /// `fence`, still held by that incarnation), moving it between the
    /// tables as its status requires, and announces it as `kind`.
    pub(crate) async fn write_transition(
        &self,
        expect: Expect,
        job: &Job,
        fence: Option<Option<i64>>,
        kind: ChangeKind,
    ) -> Result<()> {
        self.forget_claimed(&job.id);
        let from = table_of(expect.status);
        let to = table_of(job.status);
        let sql = self
            .sql
            .jobs
            .moves
            .get(&(from, to, fence.is_some()))
            .ok_or_else(|| {
                Error::Invalid(semiont_jobs_model::Error::IllegalTransition {
                    id: job.id.to_string(),
                    from: expect.status,
                    to: job.status,
                })
            })?;
        let expected_status = expect.status.as_str();
        let expected_attempt = expect.attempt.map(i64::from);
        if from == "jobs" && to == "jobs_done" && fence.is_none() {
            // Finishes that arrive together share one statement and commit.
            match self
                .finish_grouped(JobRow::of(job)?, expected_status, expected_attempt)
                .await
            {
                Outcome::Moved => {
                    if matches!(
                        kind,
                        ChangeKind::Transition(Transition::Complete | Transition::Fail)
                    ) {
                        // A worker's finish brings no work to anyone: its
                        // news shares the next NOTIFY (within a few ms)
                        // instead of costing one of its own; unregistering
                        // the worker flushes it ([`Inner::flush_news`]).
                        self.announce(job, kind);
                    } else {
                        // A cancel may come from a one-shot command that
                        // exits next: it waits until the others are told.
                        self.announce_sent(JobChange::of(job, kind, ChangeOrigin::Local))
                            .await;
                    }
                    return Ok(());
                }
                Outcome::Missed => return Err(self.explain_miss(expect, job).await),
                Outcome::Alone => {}
            }
        }
        let row = JobRow::of(job)?;
        let inc_hint = if job.status == JobStatus::Running {
            job.worker_id
                .as_deref()
                .and_then(|w| self.live.local_inc(w))
        } else {
            None
        };
        let fence_inc = fence.flatten();
        let mut params: Vec<&(dyn ToSql + Sync)> = row.params().to_vec();
        params.push(&expected_status);
        params.push(&expected_attempt);
        if to == "jobs" {
            params.push(&inc_hint);
        }
        if fence.is_some() {
            params.push(&fence_inc);
        }
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await.map_err(store_err)?;
        let n: i64 = match conn.query_one(&stmt, &params).await {
            Ok(row) => row.get(0),
            Err(e) => {
                drop(conn);
                return Err(match self.key_taken(&e).await {
                    Some(taken) => taken,
                    None => store_err(e),
                });
            }
        };
        drop(conn);
        if n == 0 {
            return Err(self.explain_miss(expect, job).await);
        }
        self.announce_sent(JobChange::of(job, kind, ChangeOrigin::Local))
            .await;
        Ok(())
    }

    /// A transition of the contract.
    pub(crate) async fn transition_job(&self, expect: Expect, job: &Job) -> Result<()> {
        rules::check_transition_request(expect, job)?;
        let kind = match Transition::between(expect.status, job.status) {
            Some(t) => ChangeKind::Transition(t),
            None => ChangeKind::Updated,
        };
        self.write_transition(expect, job, None, kind).await
    }

    /// Rewrites a running job in place.
    pub(crate) async fn update_running_job(&self, job: &Job) -> Result<()> {
        let expect = rules::check_update_running(job)?;
        let row = JobRow::of(job)?;
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.update_running)
            .await
            .map_err(store_err)?;
        let n = conn
            .execute(&stmt, &row.params())
            .await
            .map_err(store_err)?;
        drop(conn);
        if n == 0 {
            return Err(match self.explain_miss(expect, job).await {
                Error::NotFound { id } => Error::Conflict {
                    id,
                    expected: expect,
                    actual: None,
                },
                other => other,
            });
        }
        self.rewrote_claimed(job);
        self.announce(job, ChangeKind::Updated);
        Ok(())
    }

    /// A page of jobs, newest first, and the number of matches.
    pub(crate) async fn list_jobs(&self, filter: &JobFilter) -> Result<JobPage> {
        filter.validate()?;
        let tables: &[&str] = match filter.status {
            Some(s) => &[table_of(s)][..],
            None => &["jobs", "jobs_done"][..],
        };
        let status = filter.status.map(JobStatus::as_str);
        let job_type = filter.job_type.as_ref().map(JobType::as_str);
        let user = filter.user_id.as_deref();
        let mut conds = Vec::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        if let Some(s) = &status {
            params.push(s);
            conds.push(format!("status = ${}", params.len()));
        }
        if let Some(t) = &job_type {
            params.push(t);
            conds.push(format!("job_type = ${}", params.len()));
        }
        if let Some(u) = &user {
            params.push(u);
            conds.push(format!("user_id = ${}", params.len()));
        }
        let filters = params.len();
        let cond = if conds.is_empty() {
            "true".to_owned()
        } else {
            conds.join(" AND ")
        };
        let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
        let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
        let reach = limit.saturating_add(offset);
        params.push(&limit);
        params.push(&offset);
        params.push(&reach);
        let branches: Vec<String> = tables
            .iter()
            .map(|t| {
                format!(
                    "(SELECT {COLS} FROM {s}.{t} WHERE {cond} ORDER BY created DESC, id DESC LIMIT ${r})",
                    s = self.schema,
                    r = filters + 3
                )
            })
            .collect();
        let page_sql = format!(
            "SELECT * FROM ({}) x ORDER BY created DESC, id DESC LIMIT ${} OFFSET ${}",
            branches.join(" UNION ALL "),
            filters + 1,
            filters + 2
        );
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(&page_sql).await.map_err(store_err)?;
        let rows = conn.query(&stmt, &params).await.map_err(store_err)?;
        let jobs = rows
            .iter()
            .map(|r| {
                let status: String = r.get(2);
                let table = status_of(&status).map_or("jobs", table_of);
                job_from_row(r, &self.schema, table)
            })
            .collect::<Result<Vec<Job>>>()?;
        // The total: from the counters, unless a user filter needs a count.
        let total: i64 = if user.is_some() {
            let count_sql = tables
                .iter()
                .map(|t| {
                    format!(
                        "(SELECT count(*) FROM {s}.{t} WHERE {cond})",
                        s = self.schema
                    )
                })
                .collect::<Vec<_>>()
                .join(" + ");
            let stmt = conn
                .prepare_cached(&format!("SELECT {count_sql}"))
                .await
                .map_err(store_err)?;
            conn.query_one(&stmt, &params[..filters])
                .await
                .map_err(store_err)?
                .get(0)
        } else {
            // Without a user filter the conditions are on status and type
            // only, which the counter rows carry too.
            let stmt = conn
                .prepare_cached(&format!(
                    "SELECT coalesce(sum(n), 0)::bigint FROM {}.counts WHERE {cond}",
                    self.schema
                ))
                .await
                .map_err(store_err)?;
            conn.query_one(&stmt, &params[..filters])
                .await
                .map_err(store_err)?
                .get(0)
        };
        Ok(JobPage {
            jobs,
            total: usize::try_from(total).unwrap_or(0),
        })
    }

    /// Counts per status, from the counter rows.
    pub(crate) async fn stats_now(&self) -> Result<QueueStats> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.stats)
            .await
            .map_err(store_err)?;
        let mut stats = QueueStats::default();
        for row in conn.query(&stmt, &[]).await.map_err(store_err)? {
            let status: String = row.get(0);
            if let Some(s) = status_of(&status) {
                *stats.get_mut(s) = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
            }
        }
        Ok(stats)
    }

    /// Counts per type and status, from the counter rows.
    pub(crate) async fn type_stats_now(&self) -> Result<BTreeMap<JobType, QueueStats>> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.type_stats)
            .await
            .map_err(store_err)?;
        let mut out: BTreeMap<JobType, QueueStats> = BTreeMap::new();
        for row in conn.query(&stmt, &[]).await.map_err(store_err)? {
            let n = u64::try_from(row.get::<_, i64>(2)).unwrap_or(0);
            if n == 0 {
                continue;
            }
            let ty: String = row.get(0);
            let status: String = row.get(1);
            let (Ok(ty), Some(status)) = (JobType::parse(&ty), status_of(&status)) else {
                continue;
            };
            *out.entry(ty).or_default().get_mut(status) += n;
        }
        for ty in self.paused_set().await? {
            out.entry(ty).or_default().paused = true;
        }
        Ok(out)
    }

    /// Pauses or resumes claims of `job_type`; whether the set changed.
    pub(crate) async fn pause(&self, job_type: &JobType, paused: bool) -> Result<bool> {
        let conn = self.conn().await?;
        let sql = if paused {
            &self.sql.jobs.pause
        } else {
            &self.sql.jobs.resume
        };
        let rows = conn
            .query(sql, &[&job_type.as_str()])
            .await
            .map_err(store_err)?;
        drop(conn);
        let changed = !rows.is_empty();
        if changed && !paused {
            // Its pending jobs are claimable again: wake idle claimers here
            // and in every other process (one NOTIFY).
            self.announce_sent(JobChange::resynced(ChangeOrigin::Local, 0))
                .await;
        }
        Ok(changed)
    }

    /// The paused types.
    pub(crate) async fn paused_set(&self) -> Result<std::collections::BTreeSet<JobType>> {
        let conn = self.conn().await?;
        let rows = conn
            .query(&self.sql.jobs.paused, &[])
            .await
            .map_err(store_err)?;
        Ok(rows
            .iter()
            .filter_map(|r| JobType::parse(&r.get::<_, String>(0)).ok())
            .collect())
    }

    /// Takes the retention sweep's lease for `holder`.
    pub(crate) async fn sweep_lock(
        &self,
        holder: &str,
        ttl: std::time::Duration,
        now: Timestamp,
    ) -> Result<bool> {
        let conn = self.conn().await?;
        let ttl = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let now = self.caller_now(now);
        let rows = conn
            .query(&self.sql.jobs.sweep_lock, &[&holder, &ttl, &now])
            .await
            .map_err(store_err)?;
        Ok(!rows.is_empty())
    }

    /// Finished jobs older than `before`, oldest first.
    pub(crate) async fn finished_jobs_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<FinishedJob>> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.finished_before)
            .await
            .map_err(store_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .query(&stmt, &[&before.as_millis(), &limit])
            .await
            .map_err(store_err)?;
        rows.iter()
            .map(|r| {
                let id: String = r.get(0);
                let status: String = r.get(1);
                let bad = |why: &str| corrupt(&self.schema, "jobs_done", &id, why);
                Ok(FinishedJob {
                    id: JobId::parse(&id).map_err(|e| bad(&e.to_string()))?,
                    status: status_of(&status).ok_or_else(|| bad("unknown status"))?,
                    completed_at: Timestamp::from_millis(r.get(2)),
                })
            })
            .collect()
    }

    /// Deletes a finished job if it is as `expect` says.
    pub(crate) async fn delete_job(&self, id: &JobId, expect: Expect) -> Result<()> {
        rules::check_delete_request(id, expect)?;
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.delete)
            .await
            .map_err(store_err)?;
        let attempt = expect.attempt.map(i64::from);
        let rows = conn
            .query(&stmt, &[&id.as_str(), &expect.status.as_str(), &attempt])
            .await
            .map_err(store_err)?;
        drop(conn);
        let Some(row) = rows.first() else {
            return match self.lookup(id).await? {
                None => Err(Error::NotFound { id: id.clone() }),
                Some((status, attempt, _)) => Err(Error::Conflict {
                    id: id.clone(),
                    expected: expect,
                    actual: Some((status, attempt)),
                }),
            };
        };
        let change = deleted(id, row.get(0));
        self.announce_sent(change).await;
        Ok(())
    }

    /// Deletes up to `limit` finished jobs older than `before` in one statement.
    pub(crate) async fn delete_old(&self, before: Timestamp, limit: usize) -> Result<u64> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.jobs.delete_finished_before)
            .await
            .map_err(store_err)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = conn
            .query(&stmt, &[&before.as_millis(), &limit])
            .await
            .map_err(store_err)?;
        drop(conn);
        let mut changes: Vec<JobChange> = rows
            .iter()
            .filter_map(|row| {
                let id = JobId::parse(&row.get::<_, String>(0)).ok()?;
                Some(deleted(&id, row.get(1)))
            })
            .collect();
        if let Some(last) = changes.pop() {
            for change in changes {
                self.announce_change(change);
            }
            self.announce_sent(last).await;
        }
        Ok(rows.len() as u64)
    }
}

/// The change announcing that job `id` of `job_type` was deleted.
fn deleted(id: &JobId, job_type: String) -> JobChange {
    JobChange {
        id: Some(id.clone()),
        kind: ChangeKind::Deleted,
        status: None,
        job_type: JobType::parse(&job_type).ok(),
        origin: ChangeOrigin::Local,
        missed: 0,
    }
}
