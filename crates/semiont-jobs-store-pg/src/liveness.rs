//! Liveness: worker incarnations, heartbeats and recovery.
//!
//! - Registering a worker creates an incarnation: a `workers` row with a
//!   fresh `inc` (never reused, whatever the worker id) and a random
//!   `lock_key`, a session advisory lock this store instance holds on its
//!   listener connection. Jobs a worker claims record its `inc`.
//! - An incarnation is dead when it was unregistered; when its lock has
//!   been free for the grace period (its process or its connection died:
//!   the server releases the lock at once, and a live process that lost
//!   its connection stops those jobs within the grace period, because its
//!   heartbeats then report them lost); or, judged by the server's clock,
//!   when no heartbeat reached the server within its lease (a hung or cut
//!   off process; its runner's watchdog stopped the jobs before).
//! - Each store instance beats once per period for all its incarnations
//!   (one statement), so a live process never looks dead; the runner's own
//!   heartbeat (one statement per worker) also renews its jobs' leases and
//!   returns the jobs it no longer holds.
//! - Any instance may recover (no leader). Recovery writes are fenced by
//!   (id, running, attempt, incarnation), so two recoverers, or a recoverer
//!   and a late completion, never both win.
//! - When the listener connection is lost, this instance's incarnations are
//!   lost with their locks: heartbeats report their jobs lost (the runner
//!   stops them), claims wait, and after reconnecting every worker is
//!   registered again under a new incarnation.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use semiont_jobs_model::{JobId, Timestamp};
use semiont_jobs_store::{
    rules, ChangeKind, ChangeOrigin, Error, ErrorKind, Expect, Heartbeat, JobChange, LostJob,
    RecoveryReport, Result, WorkerInfo, WorkerRecord,
};
use tokio_postgres::{AsyncMessage, Client};

use crate::connect::connect_one;
use crate::error::{store_err, Failure, STORE};
use crate::notify::decode;
use crate::row::{job_from_row, status_of, J_COLS};
use crate::sql::{judged_now, render, SERVER_NOW};
use crate::{Inner, PgClock};

/// Messages of the listener connection.
pub(crate) type Messages =
    tokio::sync::mpsc::UnboundedReceiver<std::result::Result<AsyncMessage, tokio_postgres::Error>>;

/// How many running jobs one recovery round looks at.
const RECOVERY_ROUND: i64 = 500;

/// Dead incarnations are forgotten this long after they stopped (once they
/// hold no running job).
const KEEP_DEAD_MS: i64 = 24 * 3600 * 1000;

/// The rendered statements of this module.
#[derive(Debug)]
pub(crate) struct Sql {
    new_inc: String,
    insert_worker: String,
    retire: String,
    unregister: String,
    heartbeat: String,
    self_beat: String,
    workers: String,
    probe: String,
    candidates: String,
    prune: String,
}

const NEW_INC: &str = "SELECT nextval('{s}.worker_inc'),
    ('x' || substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text), 1, 16))::bit(64)::bigint";

const INSERT_WORKER: &str = "INSERT INTO {s}.workers
    (inc, worker_id, lease_ms, lock_key, alive, host, pid, registered_at, last_seen)
    VALUES ($1, $2, $3, $4, true, $5, $6, {server_now}, {server_now})";

const RETIRE: &str = "UPDATE {s}.workers SET alive = false, stopped_at = {server_now}, why = $2
    WHERE inc = $1 AND alive";

const UNREGISTER: &str =
    "UPDATE {s}.workers SET alive = false, stopped_at = {server_now}, why = 'stopped'
    WHERE worker_id = $1 AND alive";

/// $1 worker id, $2 its incarnation when this instance knows it (else the
/// live one is looked up), $3/$4 the held jobs' ids and attempts, $5 the
/// caller's now (NULL: the server's). Returns one row at least: whether the
/// worker is registered, and each held job it no longer holds.
const HEARTBEAT: &str = "WITH w AS (
    UPDATE {s}.workers SET last_seen = {now}
    WHERE inc = coalesce($2::bigint,
            (SELECT max(inc) FROM {s}.workers WHERE worker_id = $1::text AND alive))
      AND alive
    RETURNING inc, lease_ms
),
renew AS (
    UPDATE {s}.jobs j SET lease_expires_at = {now} + w.lease_ms
    FROM w WHERE j.status = 'running' AND j.worker_inc = w.inc
    RETURNING j.id
),
held AS (SELECT * FROM unnest($3::text[], $4::bigint[]) AS h(id, attempt)),
lost AS (
    SELECT h.id, h.attempt, coalesce(a.status, d.status) AS status
    FROM held h
    LEFT JOIN {s}.jobs a ON a.id = h.id
    LEFT JOIN {s}.jobs_done d ON d.id = h.id
    WHERE NOT coalesce(a.status = 'running' AND a.attempt = h.attempt
                       AND a.worker_inc = (SELECT inc FROM w), false)
)
SELECT (SELECT count(*) FROM w), (SELECT count(*) FROM renew), lost.id, lost.attempt, lost.status
FROM (SELECT 1) AS one LEFT JOIN lost ON true";

const SELF_BEAT: &str = "UPDATE {s}.workers SET last_seen = {server_now}
    WHERE inc = ANY($1) AND alive RETURNING inc";

/// $1: whether leases count (server clock).
const WORKERS: &str = "SELECT w.worker_id, w.lease_ms, w.last_seen, w.host, w.pid,
    w.alive AND NOT pg_try_advisory_xact_lock(w.lock_key)
        AND NOT ($1::boolean AND w.last_seen + w.lease_ms < {server_now})
FROM {s}.workers w ORDER BY w.worker_id, w.inc";

/// Marks incarnations dead: lock free for the grace period ($1 ms), or, with
/// $2 (server clock), no heartbeat within the lease. A free lock is noted
/// first (`suspect_since`); a lock once free is never taken again (keys
/// are not reused), so the note is never cleared.
const PROBE: &str = "WITH t AS (SELECT {server_now} AS now),
probe AS (
    SELECT w.inc, pg_try_advisory_xact_lock(w.lock_key) AS free
    FROM {s}.workers w WHERE w.alive
),
judged AS (
    SELECT p.inc, p.free,
        (p.free AND w.suspect_since IS NOT NULL AND w.suspect_since + $1::bigint <= t.now) AS lock_lost,
        ($2::boolean AND w.last_seen + w.lease_ms < t.now) AS lease_lost
    FROM probe p JOIN {s}.workers w ON w.inc = p.inc CROSS JOIN t
)
UPDATE {s}.workers w SET
    suspect_since = coalesce(w.suspect_since, CASE WHEN j.free THEN t.now END),
    alive = NOT (j.lock_lost OR j.lease_lost),
    stopped_at = CASE WHEN j.lock_lost OR j.lease_lost THEN t.now END,
    why = CASE WHEN j.lock_lost THEN 'lost its connection'
               WHEN j.lease_lost THEN 'missed its heartbeats' END
FROM judged j, t
WHERE w.inc = j.inc AND w.alive
  AND ((j.free AND w.suspect_since IS NULL) OR j.lock_lost OR j.lease_lost)
RETURNING NOT (j.lock_lost OR j.lease_lost) AS newly_suspect";

/// Running jobs whose holder is dead: a dead (or vanished) incarnation; or
/// no incarnation, no live worker of that id, and either a dead one or an
/// expired lease. $1 the caller's now (NULL: the server's).
const CANDIDATES: &str = "SELECT {jcols}, j.worker_inc, {now} AS now,
    CASE WHEN j.worker_inc IS NULL THEN
            CASE WHEN EXISTS (SELECT 1 FROM {s}.workers x WHERE x.worker_id = j.worker_id)
                 THEN 'stopped' ELSE 'lost its lease' END
         WHEN w.inc IS NULL THEN 'vanished'
         ELSE coalesce(w.why, 'stopped') END AS why
FROM {s}.jobs j LEFT JOIN {s}.workers w ON w.inc = j.worker_inc
WHERE j.status = 'running' AND (
    (j.worker_inc IS NOT NULL AND (w.inc IS NULL OR NOT w.alive))
    OR (j.worker_inc IS NULL
        AND NOT EXISTS (SELECT 1 FROM {s}.workers x WHERE x.worker_id = j.worker_id AND x.alive)
        AND (EXISTS (SELECT 1 FROM {s}.workers x WHERE x.worker_id = j.worker_id)
             OR j.lease_expires_at IS NULL OR j.lease_expires_at < {now})))
ORDER BY j.id LIMIT {round}";

const PRUNE: &str = "DELETE FROM {s}.workers w
    WHERE NOT w.alive AND w.stopped_at < {server_now} - {keep}
      AND NOT EXISTS (SELECT 1 FROM {s}.jobs j WHERE j.status = 'running' AND j.worker_inc = w.inc)";

impl Sql {
    pub(crate) fn new(schema: &str) -> Self {
        let r = |t: &str, now_param: usize| {
            render(
                &t.replace("{server_now}", SERVER_NOW)
                    .replace("{now}", &judged_now(now_param))
                    .replace("{jcols}", J_COLS)
                    .replace("{round}", &RECOVERY_ROUND.to_string())
                    .replace("{keep}", &KEEP_DEAD_MS.to_string()),
                schema,
            )
        };
        Sql {
            new_inc: r(NEW_INC, 0),
            insert_worker: r(INSERT_WORKER, 0),
            retire: r(RETIRE, 0),
            unregister: r(UNREGISTER, 0),
            heartbeat: r(HEARTBEAT, 5),
            self_beat: r(SELF_BEAT, 0),
            workers: r(WORKERS, 0),
            probe: r(PROBE, 0),
            candidates: r(CANDIDATES, 1),
            prune: r(PRUNE, 0),
        }
    }
}

/// A worker registered through this instance.
#[derive(Clone, Copy, Debug)]
struct Reg {
    lease: Duration,
    /// Its incarnation and lock key; `None` while the listener connection
    /// is down (the lock went with it).
    current: Option<(i64, i64)>,
}

/// This instance's liveness state: the listener connection (which holds
/// the incarnations' locks) and the workers registered through it.
#[derive(Default)]
pub(crate) struct Live {
    listener: tokio::sync::Mutex<Option<Client>>,
    regs: Mutex<HashMap<String, Reg>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

impl Live {
    fn regs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Reg>> {
        self.regs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The incarnation of a worker registered here, if it has one now.
    pub(crate) fn local_inc(&self, worker_id: &str) -> Option<i64> {
        self.regs()
            .get(worker_id)
            .and_then(|r| r.current.map(|c| c.0))
    }

    /// The incarnation a claim by `worker_id` records: this instance's, if
    /// it registered the worker (an error while it has none), else `None`
    /// (the statement looks the live one up).
    pub(crate) fn claim_inc(&self, worker_id: &str) -> Result<Option<i64>> {
        match self.regs().get(worker_id) {
            Some(Reg {
                current: Some((inc, _)),
                ..
            }) => Ok(Some(*inc)),
            Some(Reg { current: None, .. }) => Err(Error::unavailable(
                STORE,
                true,
                Failure(format!(
                    "worker {worker_id} is being registered again after a lost connection"
                )),
            )),
            None => Ok(None),
        }
    }

    fn beat_period(&self) -> Duration {
        self.regs()
            .values()
            .map(|r| r.lease / 3)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .clamp(Duration::from_millis(100), Duration::from_secs(10))
    }

    /// The listener connection was lost: every incarnation with it.
    fn lose_all(&self) {
        for reg in self.regs().values_mut() {
            reg.current = None;
        }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}

impl Inner {
    /// A new incarnation of `worker_id` on the listener connection `client`:
    /// its lock taken before its row says it is alive.
    async fn incarnate(
        &self,
        client: &Client,
        worker_id: &str,
        lease: Duration,
    ) -> Result<(i64, i64)> {
        let sql = &self.sql.live;
        let row = client
            .query_one(&sql.new_inc, &[])
            .await
            .map_err(store_err)?;
        let (inc, key): (i64, i64) = (row.get(0), row.get(1));
        client
            .execute("SELECT pg_advisory_lock($1)", &[&key])
            .await
            .map_err(store_err)?;
        let pid = i32::try_from(std::process::id()).ok();
        let inserted = client
            .execute(
                &sql.insert_worker,
                &[
                    &inc,
                    &worker_id,
                    &ms(lease),
                    &key,
                    &semiont_jobs_store::host_name(),
                    &pid,
                ],
            )
            .await;
        if let Err(e) = inserted {
            let _ = client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await;
            return Err(store_err(e));
        }
        Ok((inc, key))
    }

    /// Retires an incarnation this instance holds: dead, lock released.
    async fn retire(&self, client: Option<&Client>, inc: i64, key: i64, why: &str) -> Result<()> {
        let conn = self.conn().await?;
        conn.execute(&self.sql.live.retire, &[&inc, &why])
            .await
            .map_err(store_err)?;
        if let Some(client) = client {
            let _ = client
                .execute("SELECT pg_advisory_unlock($1)", &[&key])
                .await;
        }
        Ok(())
    }

    pub(crate) async fn register(&self, worker: &WorkerInfo) -> Result<()> {
        let listener = self.live.listener.lock().await;
        let Some(client) = listener.as_ref() else {
            return Err(Error::unavailable(
                STORE,
                true,
                Failure("the listener connection is down; reconnecting".into()),
            ));
        };
        let (inc, key) = self.incarnate(client, &worker.id, worker.lease).await?;
        let old = self.live.regs().insert(
            worker.id.clone(),
            Reg {
                lease: worker.lease,
                current: Some((inc, key)),
            },
        );
        if let Some(Reg {
            current: Some((old_inc, old_key)),
            ..
        }) = old
        {
            self.retire(Some(client), old_inc, old_key, "registered again")
                .await?;
        }
        tracing::debug!(worker_id = %worker.id, inc, "worker registered");
        Ok(())
    }

    pub(crate) async fn unregister(&self, worker_id: &str) -> Result<()> {
        // The worker's last finishes may still be gathering for a NOTIFY:
        // send them before the process that unregisters goes away.
        self.flush_news().await;
        let conn = self.conn().await?;
        conn.execute(&self.sql.live.unregister, &[&worker_id])
            .await
            .map_err(store_err)?;
        drop(conn);
        let removed = self.live.regs().remove(worker_id);
        if let Some(Reg {
            current: Some((_, key)),
            ..
        }) = removed
        {
            if let Some(client) = self.live.listener.lock().await.as_ref() {
                let _ = client
                    .execute("SELECT pg_advisory_unlock($1)", &[&key])
                    .await;
            }
        }
        Ok(())
    }

    /// Registers `worker_id` again under a new incarnation (after its
    /// incarnation was lost or declared dead).
    async fn reincarnate(&self, client: &Client, worker_id: &str) {
        let lease = match self.live.regs().get(worker_id) {
            Some(r) => r.lease,
            None => return,
        };
        match self.incarnate(client, worker_id, lease).await {
            Ok(current) => {
                if let Some(reg) = self.live.regs().get_mut(worker_id) {
                    reg.current = Some(current);
                }
                tracing::info!(
                    worker_id,
                    inc = current.0,
                    "worker registered again under a new incarnation"
                );
            }
            Err(e) => tracing::warn!(worker_id, error = %e, "cannot register worker again"),
        }
    }

    pub(crate) async fn beat(&self, beat: &Heartbeat) -> Result<Vec<LostJob>> {
        let local = self
            .live
            .regs()
            .get(&beat.worker_id)
            .map(|r| r.current.map(|c| c.0));
        // A worker registered here whose incarnation went with the listener
        // connection: nothing is held any more (-1 matches no incarnation).
        let inc = match local {
            Some(Some(inc)) => Some(inc),
            Some(None) => Some(-1),
            None => None,
        };
        let ids: Vec<&str> = beat.held.iter().map(|(id, _)| id.as_str()).collect();
        let attempts: Vec<i64> = beat.held.iter().map(|(_, a)| i64::from(*a)).collect();
        let now = self.caller_now(beat.now);
        let rows = async {
            let conn = self.conn().await?;
            let stmt = conn
                .prepare_cached(&self.sql.live.heartbeat)
                .await
                .map_err(store_err)?;
            conn.query(&stmt, &[&beat.worker_id, &inc, &ids, &attempts, &now])
                .await
                .map_err(store_err)
        }
        .await;
        let rows = match (rows, local) {
            (Ok(rows), _) => rows,
            (Err(_), Some(None)) => {
                return Ok(beat
                    .held
                    .iter()
                    .map(|(id, attempt)| LostJob {
                        id: id.clone(),
                        attempt: *attempt,
                        status: None,
                    })
                    .collect())
            }
            (Err(e), _) => return Err(e),
        };
        let registered = rows.first().is_some_and(|r| r.get::<_, i64>(0) > 0);
        if !registered {
            match local {
                None => {
                    return Err(semiont_jobs_model::Error::InvalidParams(format!(
                        "worker {} is not registered",
                        beat.worker_id
                    ))
                    .into())
                }
                Some(Some(_)) => {
                    // Declared dead meanwhile (e.g. this process was paused
                    // past its lease): its jobs are lost; a new incarnation
                    // takes over at the next self-beat.
                    if let Some(reg) = self.live.regs().get_mut(&beat.worker_id) {
                        reg.current = None;
                    }
                    self.wake_beat.notify_one();
                }
                Some(None) => {}
            }
        }
        let mut lost = Vec::new();
        for row in &rows {
            let Some(id) = row.get::<_, Option<String>>(2) else {
                continue;
            };
            let Ok(id) = JobId::parse(&id) else { continue };
            let attempt = u32::try_from(row.get::<_, i64>(3)).unwrap_or(u32::MAX);
            let status = row.get::<_, Option<String>>(4).and_then(|s| status_of(&s));
            lost.push(LostJob {
                id,
                attempt,
                status,
            });
        }
        Ok(lost)
    }

    pub(crate) async fn list_workers(&self) -> Result<Vec<WorkerRecord>> {
        let conn = self.conn().await?;
        let server = self.opts.clock == PgClock::Server;
        let rows = conn
            .query(&self.sql.live.workers, &[&server])
            .await
            .map_err(store_err)?;
        Ok(rows
            .iter()
            .map(|r| WorkerRecord {
                id: r.get(0),
                alive: r.get(5),
                lease: Duration::from_millis(u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)),
                last_seen: Some(Timestamp::from_millis(r.get(2))),
                host: r.get(3),
                pid: r
                    .get::<_, Option<i32>>(4)
                    .and_then(|p| u32::try_from(p).ok()),
            })
            .collect())
    }

    pub(crate) async fn recover_jobs(&self, now: Timestamp) -> Result<RecoveryReport> {
        let conn = self.conn().await?;
        let server = self.opts.clock == PgClock::Server;
        let probed = conn
            .query(
                &self.sql.live.probe,
                &[&ms(self.opts.liveness_grace), &server],
            )
            .await
            .map_err(store_err)?;
        if probed.iter().any(|r| r.get::<_, bool>(0)) {
            self.recover_after_grace(now);
        }
        let caller = self.caller_now(now);
        let stmt = conn
            .prepare_cached(&self.sql.live.candidates)
            .await
            .map_err(store_err)?;
        let mut report = RecoveryReport::default();
        let mut tried = HashSet::new();
        loop {
            let rows = conn.query(&stmt, &[&caller]).await.map_err(store_err)?;
            let mut progress = false;
            for row in &rows {
                let job = job_from_row(row, &self.schema, "jobs")?;
                if !tried.insert(job.id.clone()) {
                    continue;
                }
                progress = true;
                let inc: Option<i64> = row.get(15);
                let at = Timestamp::from_millis(row.get(16));
                let why: String = row.get(17);
                let attempt = job.attempt;
                let next = rules::recovered(job, at, &why);
                let fenced = self
                    .write_transition(
                        Expect::running(attempt),
                        &next,
                        Some(inc),
                        ChangeKind::Recovered,
                    )
                    .await;
                match fenced {
                    Ok(()) if next.status == semiont_jobs_model::JobStatus::Pending => {
                        report.requeued.push(next.id)
                    }
                    Ok(()) => report.failed.push(next.id),
                    Err(e) if matches!(e.kind(), ErrorKind::Conflict | ErrorKind::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
            if !progress || (rows.len() as i64) < RECOVERY_ROUND {
                break;
            }
        }
        conn.execute(&self.sql.live.prune, &[])
            .await
            .map_err(store_err)?;
        Ok(report)
    }

    /// A worker was just found without its lock: recover its jobs once the
    /// grace period has passed, rather than at the caller's next pass (the
    /// recovered jobs wake idle workers everywhere).
    fn recover_after_grace(&self, now: Timestamp) {
        let Some(me) = self.me.get().cloned() else {
            return;
        };
        if self
            .recovery_scheduled
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let wait = self.opts.liveness_grace + Duration::from_millis(100);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            // A store dropped meanwhile is not kept alive for this.
            let Some(me) = me.upgrade() else { return };
            me.recovery_scheduled
                .store(false, std::sync::atomic::Ordering::Release);
            if let Err(e) = me.recover_jobs(now).await {
                tracing::debug!(error = %e, "recovery after the grace period failed");
            }
        });
    }

    fn on_notification(&self, payload: &str) {
        if let Some(changes) = decode(payload, &self.instance) {
            for change in changes {
                if let Some(id) = &change.id {
                    self.forget_claimed(id);
                }
                let _ = self.tx.send(change);
            }
        }
    }
}

/// Serves the listener connection: relays other instances' notifications
/// to subscribers; when the connection fails, reports a resync, marks this
/// instance's incarnations lost, reconnects with back-off and registers
/// every worker again.
pub(crate) async fn listen(inner: Arc<Inner>, mut messages: Messages) {
    loop {
        while let Some(message) = messages.recv().await {
            match message {
                Ok(AsyncMessage::Notification(n)) => inner.on_notification(n.payload()),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %crate::error::describe(&e), "listener connection lost");
                    break;
                }
            }
        }
        *inner.live.listener.lock().await = None;
        inner.live.lose_all();
        let _ = inner
            .tx
            .send(JobChange::resynced(ChangeOrigin::External, 0));
        let mut delay = Duration::from_millis(100);
        messages = loop {
            tokio::time::sleep(delay).await;
            match connect_listener(&inner).await {
                Ok(m) => break m,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reconnect the listener; retrying");
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        let _ = inner
            .tx
            .send(JobChange::resynced(ChangeOrigin::External, 0));
    }
}

/// Opens the listener connection, LISTENs, installs it and registers
/// every worker that lost its incarnation again.
pub(crate) async fn connect_listener(inner: &Inner) -> std::result::Result<Messages, String> {
    let (client, messages) = connect_one(&inner.config, inner.tls.clone())
        .await
        .map_err(|e| crate::error::describe(&e))?;
    client
        .batch_execute(&format!("LISTEN {}", inner.channel))
        .await
        .map_err(|e| crate::error::describe(&e))?;
    let mut slot = inner.live.listener.lock().await;
    let orphans: Vec<String> = inner
        .live
        .regs()
        .iter()
        .filter(|(_, r)| r.current.is_none())
        .map(|(id, _)| id.clone())
        .collect();
    for worker_id in orphans {
        inner.reincarnate(&client, &worker_id).await;
    }
    *slot = Some(client);
    Ok(messages)
}

/// This instance's beat: every period (a third of the shortest lease of
/// its workers), one statement marks all its incarnations seen; one found
/// dead (this process was paused past its lease) is replaced.
pub(crate) async fn self_beat(inner: Arc<Inner>) {
    loop {
        let period = inner.live.beat_period();
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = inner.wake_beat.notified() => {}
        }
        let incs: Vec<(String, i64)> = inner
            .live
            .regs()
            .iter()
            .filter_map(|(id, r)| r.current.map(|(inc, _)| (id.clone(), inc)))
            .collect();
        let mut dead: Vec<String> = inner
            .live
            .regs()
            .iter()
            .filter(|(_, r)| r.current.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if !incs.is_empty() {
            let list: Vec<i64> = incs.iter().map(|(_, i)| *i).collect();
            let seen = async {
                let conn = inner.conn().await?;
                conn.query(&inner.sql.live.self_beat, &[&list])
                    .await
                    .map_err(store_err)
            }
            .await;
            match seen {
                Ok(rows) => {
                    let alive: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
                    for (id, inc) in incs {
                        if !alive.contains(&inc) {
                            tracing::warn!(worker_id = %id, inc, "this worker's incarnation was declared dead; registering it again");
                            dead.push(id);
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "self-beat failed"),
            }
        }
        if dead.is_empty() {
            continue;
        }
        let listener = inner.live.listener.lock().await;
        if let Some(client) = listener.as_ref() {
            for id in dead {
                inner.reincarnate(client, &id).await;
            }
        }
    }
}
