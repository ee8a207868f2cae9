//! Statements shared by the calls that arrive together: finishes (group
//! commit) and reads of single jobs.
//!
//! - Finishes: the transitions that move a job out of `jobs` into
//!   `jobs_done` (complete, fail, cancel) are written by one statement in
//!   one transaction, and each caller is answered after the commit: moved,
//!   or not as expected (the caller then finds out why, as for a single
//!   write).
//! - Creates: single pending jobs created together are inserted by one
//!   statement in one transaction (all or none; when it fails, each is
//!   created alone and gets its own error, a taken id or key).
//! - Reads: `get`s of single jobs are answered by one `id = ANY(...)`
//!   query.
//!
//! A caller hands its request to the batch's task and waits; the task
//! takes everything queued (up to [`MAX_BATCH`], one request per job id: a
//! second request for an id waits for the next batch) and runs one
//! statement; before taking, it yields twice to the runtime, so callers
//! woken by the previous batch's answers can join ([`GATHER_YIELDS`]).
//! While one batch runs the next one gathers, so a busy worker
//! pays one round trip and one commit (one log flush with
//! `synchronous_commit = on`) for many jobs, and an idle one waits for
//! nobody. A batch the server refuses is not retried as a batch: every
//! caller runs its own statement alone, so one bad row cannot fail the
//! others and each gets its own error.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::Weak;

use semiont_jobs_model::Job;
use semiont_jobs_store::Result;
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;

use crate::error::store_err;
use crate::row::{job_from_row, Columns, JobRow, COLS, WRITE_COLS};
use crate::sql::{counts_cte, render};
use crate::Inner;

/// Most requests answered by one statement.
pub(crate) const MAX_BATCH: usize = 500;

/// How many times a batch's task yields to the runtime after its first
/// request arrived and before it takes the rest. The callers that the
/// previous batch's answers woke are then running; a caller that makes its
/// next call at once (a producer creating job after job, a worker slot
/// finishing its next job) joins this batch instead of the one after it.
/// Without it, four producers creating one job at a time alternated two
/// and two between batches (2.1 creates per statement); with it, nearly all
/// four go together (3.9), and the lifecycle at 4 processes went from
/// about 2,000 to about 2,800 jobs/s (docs/postgres-performance.md, item
/// 11). A yield costs microseconds; a lone caller waits no longer.
const GATHER_YIELDS: usize = 2;

/// What became of a finish handed to the finisher.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Written and committed.
    Moved,
    /// The stored job was not as expected: nothing written.
    Missed,
    /// The batch failed, or the finisher is gone: write it alone.
    Alone,
}

/// A finish waiting for its batch.
pub(crate) struct Finish {
    pub row: JobRow,
    pub expect_status: &'static str,
    pub expect_attempt: Option<i64>,
    pub done: oneshot::Sender<Outcome>,
}

/// $1..$16 the new rows (`WRITE_COLS` order), $17 the expected statuses,
/// $18 the expected attempts (NULL: any).
const FINISH: &str = "WITH req AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::smallint[],
        $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bigint[],
        $12::bigint[], $13::text[], $14::bigint[], $15::text[], $16::text[], $17::text[],
        $18::bigint[])
    AS r(id, job_type, status, user_id, priority, attempt, retry_count, max_retries, created,
         started_at, completed_at, run_at, worker_id, lease_expires_at, unique_key, doc,
         exp_status, exp_attempt)
),
del AS (
    -- Through the primary key whatever the statistics say (migration
    -- 0005: a plan made while the table was young read it whole).
    SELECT id FROM {s}.take_finished($1::text[], $2::text[], $17::text[], $18::bigint[]) AS id
),
changed AS (
    INSERT INTO {s}.jobs_done ({cols}, worker_inc)
    SELECT r.id, r.job_type, r.status, r.user_id, r.priority, r.attempt, r.retry_count,
        r.max_retries, r.created, r.started_at, r.completed_at, r.run_at, r.worker_id,
        r.lease_expires_at, r.unique_key, r.doc::json, NULL
    FROM req r JOIN del ON del.id = r.id
    RETURNING id
),
moved AS (
    SELECT r.id, r.job_type, r.status, r.exp_status FROM req r JOIN changed c ON c.id = r.id
),
{counts}
SELECT id FROM moved";

/// The finish statement for `schema`.
pub(crate) fn sql(schema: &str) -> String {
    let counts = counts_cte(
        "SELECT job_type, exp_status, -1 FROM moved UNION ALL SELECT job_type, status, 1 FROM moved",
    );
    render(
        &FINISH
            .replace("{cols}", WRITE_COLS)
            .replace("{counts}", &counts),
        schema,
    )
}

/// Runs `batch` on what `queue` holds, a batch at a time (at most
/// [`MAX_BATCH`] requests, one per `key`), until the queue closes or
/// `batch` returns false.
async fn batches<T, F, Fut>(
    mut queue: mpsc::UnboundedReceiver<T>,
    key: fn(&T) -> &str,
    mut batch: F,
) where
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = bool>,
{
    let mut later: VecDeque<T> = VecDeque::new();
    loop {
        let first = match later.pop_front() {
            Some(f) => f,
            None => match queue.recv().await {
                Some(f) => f,
                None => return,
            },
        };
        // Let the callers the previous batch's answers woke hand in their
        // next requests before this batch is taken (see [`GATHER_YIELDS`]).
        for _ in 0..GATHER_YIELDS {
            tokio::task::yield_now().await;
        }
        let mut keys = HashSet::from([key(&first).to_owned()]);
        let mut next = vec![first];
        // Requests held back from earlier batches first, in their order.
        let mut held = std::mem::take(&mut later);
        while let Some(f) = held.pop_front() {
            if next.len() < MAX_BATCH && keys.insert(key(&f).to_owned()) {
                next.push(f);
            } else {
                later.push_back(f);
            }
        }
        while next.len() < MAX_BATCH {
            let Ok(f) = queue.try_recv() else { break };
            if keys.insert(key(&f).to_owned()) {
                next.push(f);
            } else {
                later.push_back(f);
            }
        }
        if !batch(next).await {
            return;
        }
    }
}

/// The finisher: writes queued finishes a batch at a time until the
/// store is gone.
pub(crate) async fn finisher(inner: Weak<Inner>, queue: mpsc::UnboundedReceiver<Finish>) {
    batches(
        queue,
        |f: &Finish| f.row.id.as_str(),
        |batch| {
            let inner = inner.clone();
            async move {
                let Some(store) = inner.upgrade() else {
                    return false;
                };
                let moved = store.finish_batch(&batch).await;
                drop(store);
                for f in batch {
                    let outcome = match &moved {
                        Ok(moved) if moved.contains(&f.row.id) => Outcome::Moved,
                        Ok(_) => Outcome::Missed,
                        Err(_) => Outcome::Alone,
                    };
                    let _ = f.done.send(outcome);
                }
                true
            }
        },
    )
    .await;
}

/// A create of one pending job waiting for its batch; answered `true`
/// when its batch was committed, `false` when it must be created alone.
pub(crate) struct Create {
    pub row: JobRow,
    pub done: oneshot::Sender<bool>,
}

/// The creator: inserts queued creates a batch at a time until the store
/// is gone.
pub(crate) async fn creator(inner: Weak<Inner>, queue: mpsc::UnboundedReceiver<Create>) {
    batches(
        queue,
        |c: &Create| c.row.id.as_str(),
        |batch| {
            let inner = inner.clone();
            async move {
                let Some(store) = inner.upgrade() else {
                    return false;
                };
                let rows: Vec<&JobRow> = batch.iter().map(|c| &c.row).collect();
                let created = store.insert_rows(&rows).await.is_ok();
                drop(store);
                for c in batch {
                    let _ = c.done.send(created);
                }
                true
            }
        },
    )
    .await;
}

/// A read of one job waiting for its batch: the job, `None` when there is
/// none, or `Err(())` when the batch failed (read it alone).
pub(crate) struct Read {
    pub id: String,
    pub done: oneshot::Sender<std::result::Result<Option<Job>, ()>>,
}

/// $1 the ids.
const READ: &str = "SELECT {cols}, 'jobs' FROM {s}.jobs WHERE id = ANY($1::text[])
    UNION ALL SELECT {cols}, 'jobs_done' FROM {s}.jobs_done WHERE id = ANY($1::text[])";

/// The batched read for `schema`.
pub(crate) fn read_sql(schema: &str) -> String {
    render(&READ.replace("{cols}", COLS), schema)
}

/// The reader: answers queued reads a batch at a time until the store is
/// gone.
pub(crate) async fn reader(inner: Weak<Inner>, queue: mpsc::UnboundedReceiver<Read>) {
    batches(
        queue,
        |r: &Read| r.id.as_str(),
        |batch| {
            let inner = inner.clone();
            async move {
                let Some(store) = inner.upgrade() else {
                    return false;
                };
                let found = store.read_batch(&batch).await;
                drop(store);
                match found {
                    Ok(mut found) => {
                        for r in batch {
                            let _ = r.done.send(Ok(found.remove(&r.id)));
                        }
                    }
                    Err(()) => {
                        for r in batch {
                            let _ = r.done.send(Err(()));
                        }
                    }
                }
                true
            }
        },
    )
    .await;
}

impl Inner {
    /// Writes one batch; returns the ids it moved.
    async fn finish_batch(&self, batch: &[Finish]) -> Result<HashSet<String>> {
        let columns = Columns::of(batch.iter().map(|f| &f.row));
        let expect_status: Vec<&str> = batch.iter().map(|f| f.expect_status).collect();
        let expect_attempt: Vec<Option<i64>> = batch.iter().map(|f| f.expect_attempt).collect();
        let mut params: Vec<&(dyn ToSql + Sync)> = columns.params().to_vec();
        params.push(&expect_status);
        params.push(&expect_attempt);
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&self.sql.finish)
            .await
            .map_err(store_err)?;
        let rows = conn.query(&stmt, &params).await.map_err(|e| {
            tracing::debug!(jobs = batch.len(), error = %crate::error::describe(&e), "a batch of finishes failed; writing them one by one");
            store_err(e)
        })?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).collect())
    }

    /// Hands a finish to the finisher and waits for its batch's commit.
    pub(crate) async fn finish_grouped(
        &self,
        row: JobRow,
        expect_status: &'static str,
        expect_attempt: Option<i64>,
    ) -> Outcome {
        let (done, answer) = oneshot::channel();
        let finish = Finish {
            row,
            expect_status,
            expect_attempt,
            done,
        };
        if self.finishes.send(finish).is_err() {
            return Outcome::Alone;
        }
        answer.await.unwrap_or(Outcome::Alone)
    }

    /// Reads one batch: the jobs found, by id.
    async fn read_batch(&self, batch: &[Read]) -> std::result::Result<HashMap<String, Job>, ()> {
        let ids: Vec<&str> = batch.iter().map(|r| r.id.as_str()).collect();
        let conn = self.conn().await.map_err(|_| ())?;
        let stmt = conn.prepare_cached(&self.sql.read).await.map_err(|_| ())?;
        let rows = conn.query(&stmt, &[&ids]).await.map_err(|_| ())?;
        drop(conn);
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            // A row that does not decode is read alone (its error is then
            // its caller's).
            let Ok(job) = job_from_row(row, &self.schema, row.get(15)) else {
                return Err(());
            };
            found.insert(job.id.to_string(), job);
        }
        Ok(found)
    }

    /// Hands a read to the reader and waits for its batch; `Err(())` when
    /// it must be read alone.
    pub(crate) async fn read_grouped(&self, id: &str) -> std::result::Result<Option<Job>, ()> {
        let (done, answer) = oneshot::channel();
        let read = Read {
            id: id.to_owned(),
            done,
        };
        self.reads.send(read).map_err(|_| ())?;
        answer.await.unwrap_or(Err(()))
    }

    /// Hands the create of one pending job to the creator and waits for
    /// its batch's commit; `false` when it must be created alone.
    pub(crate) async fn create_grouped(&self, row: JobRow) -> bool {
        let (done, answer) = oneshot::channel();
        if self.creates.send(Create { row, done }).is_err() {
            return false;
        }
        answer.await.unwrap_or(false)
    }
}
