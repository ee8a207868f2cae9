//! Change notifications between processes: LISTEN on a dedicated
//! connection, NOTIFY sent by the application (no triggers), coalesced.
//!
//! Every change a store instance makes is broadcast to its own subscribers
//! at once. The other instances are told in one of two ways:
//!
//! - **Creates** carry their notification in their own statement
//!   (`pg_notify` in the create's transaction): it is delivered exactly
//!   when the jobs are committed, and a create costs one round trip and
//!   one commit. Creates are the news that wakes idle workers, so this is
//!   also the enqueue → start latency path.
//! - **Everything else** is queued for the notifier, which sends whatever
//!   is queued as soon as the previous send finished: one `pg_notify` per
//!   ~8 kB of changes, however many jobs a batch touched, and a progress
//!   write of a job counts once per send. News that brings no work
//!   (claims, progress, a worker's complete and fail) waits up to
//!   [`GATHER`] to share a NOTIFY; a writer that must know its news went
//!   out (a cancel from a one-shot command) waits for the send, and
//!   unregistering a worker flushes the queue. Sending after the commit
//!   keeps NOTIFY's database-wide commit lock off the claims and finishes.
//!
//! A change whose notification is lost (a crash in between) is caught by
//! the workers' fallback polls and heartbeats.
//!
//! A payload is the sending instance's id on the first line, then one
//! change per line: `<kind> <status> <type> <id>` (`-` for none; ids and
//! types never contain whitespace).

use std::collections::HashSet;
use std::time::Duration;

use deadpool_postgres::Pool;
use semiont_jobs_model::{JobId, JobStatus, JobType, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin, JobChange};
use tokio::sync::mpsc;

use crate::row::status_of;

/// Largest payload sent (PostgreSQL's limit is 8000 bytes).
const MAX_PAYLOAD: usize = 7900;

/// The NOTIFY channel of a schema.
pub(crate) fn channel(schema: &str) -> String {
    format!("semiont_jobs_{schema}")
}

fn kind_code(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::Created => "C",
        ChangeKind::Transition(Transition::Claim) => "Tc",
        ChangeKind::Transition(Transition::CancelPending) => "Tx",
        ChangeKind::Transition(Transition::Complete) => "Tk",
        ChangeKind::Transition(Transition::Fail) => "Tf",
        ChangeKind::Transition(Transition::Requeue) => "Tq",
        ChangeKind::Transition(Transition::CancelRunning) => "Ty",
        ChangeKind::Transition(Transition::Retry) => "Tr",
        ChangeKind::Updated => "U",
        ChangeKind::Recovered => "R",
        ChangeKind::Deleted => "D",
        ChangeKind::Resynced => "S",
    }
}

fn kind_of(code: &str) -> Option<ChangeKind> {
    Some(match code {
        "C" => ChangeKind::Created,
        "Tc" => ChangeKind::Transition(Transition::Claim),
        "Tx" => ChangeKind::Transition(Transition::CancelPending),
        "Tk" => ChangeKind::Transition(Transition::Complete),
        "Tf" => ChangeKind::Transition(Transition::Fail),
        "Tq" => ChangeKind::Transition(Transition::Requeue),
        "Ty" => ChangeKind::Transition(Transition::CancelRunning),
        "Tr" => ChangeKind::Transition(Transition::Retry),
        "U" => ChangeKind::Updated,
        "R" => ChangeKind::Recovered,
        "D" => ChangeKind::Deleted,
        "S" => ChangeKind::Resynced,
        _ => return None,
    })
}

/// One change as a payload line.
pub(crate) fn encode(change: &JobChange) -> String {
    line(
        change.kind,
        change.status.map_or("-", JobStatus::as_str),
        change.job_type.as_ref().map_or("-", JobType::as_str),
        change.id.as_ref().map_or("-", JobId::as_str),
    )
}

/// The payload line of a `kind` change of job `id` (`-` for none).
pub(crate) fn line(kind: ChangeKind, status: &str, job_type: &str, id: &str) -> String {
    format!("{} {status} {job_type} {id}", kind_code(kind))
}

/// The changes of a payload sent by another instance; `None` for this
/// instance's own payloads. Malformed lines are skipped.
pub(crate) fn decode(payload: &str, own: &str) -> Option<Vec<JobChange>> {
    let mut lines = payload.lines();
    let origin = lines.next()?;
    if origin == own {
        return None;
    }
    Some(
        lines
            .filter_map(|line| {
                let mut f = line.splitn(4, ' ');
                let kind = kind_of(f.next()?)?;
                let status = match f.next()? {
                    "-" => None,
                    s => Some(status_of(s)?),
                };
                let job_type = match f.next()? {
                    "-" => None,
                    t => Some(JobType::parse(t).ok()?),
                };
                let id = match f.next()? {
                    "-" => None,
                    i => Some(JobId::parse(i).ok()?),
                };
                Some(JobChange {
                    id,
                    kind,
                    status,
                    job_type,
                    origin: ChangeOrigin::External,
                    missed: 0,
                })
            })
            .collect(),
    )
}

/// Packs queued lines into payloads: progress writes (`U`) of one job
/// count once, at their last place; each payload starts with `origin`.
pub(crate) fn pack(origin: &str, lines: Vec<String>) -> Vec<String> {
    let mut seen_updates = HashSet::new();
    let mut kept: Vec<String> = lines
        .into_iter()
        .rev()
        .filter(|l| {
            // An empty line only asks for a flush.
            !l.is_empty()
                && (!l.starts_with("U ")
                    || seen_updates.insert(l.rsplit(' ').next().unwrap_or_default().to_owned()))
        })
        .collect();
    kept.reverse();
    let mut payloads = Vec::new();
    let mut current = String::from(origin);
    for line in kept {
        if current.len() + 1 + line.len() > MAX_PAYLOAD && current.len() > origin.len() {
            payloads.push(std::mem::replace(&mut current, String::from(origin)));
        }
        current.push('\n');
        current.push_str(&line);
    }
    if current.len() > origin.len() {
        payloads.push(current);
    }
    payloads
}

/// Sends one transaction's worth of notifications; the transaction does
/// not wait for the log flush (notifications need no durability).
const SEND: &str = "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p
    WHERE set_config('synchronous_commit', 'off', true) IS NOT NULL";

/// How long news that brings no work may wait for more (see [`notifier`]).
const GATHER: Duration = Duration::from_millis(5);

/// Whether a change line must go out at once: it may bring work to an
/// idle worker (created, requeued, retried, recovered, resynced) or stop a
/// running job (cancelled while running).
fn urgent(line: &str) -> bool {
    matches!(
        line.split(' ').next(),
        Some("C" | "Tq" | "Tr" | "Ty" | "R" | "S")
    )
}

/// A queued change line, and whom to tell once it was sent.
pub(crate) type Outgoing = (String, Option<tokio::sync::oneshot::Sender<()>>);

/// The notifier: sends queued change lines as soon as the previous send is
/// done, until the queue's senders are gone; then tells the waiting
/// writers.
pub(crate) async fn notifier(
    pool: Pool,
    channel: String,
    origin: String,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < 20_000 {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        // News that brings no work (claims, progress) and that nobody
        // waits for gathers a little longer: one NOTIFY for many instead
        // of one each, which every listening process must read.
        let until = tokio::time::Instant::now() + GATHER;
        while !batch
            .iter()
            .any(|(line, waiter)| waiter.is_some() || urgent(line))
        {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(next)) => batch.push(next),
                Ok(None) | Err(_) => break,
            }
        }
        let (lines, waiting): (Vec<String>, Vec<_>) = batch.into_iter().unzip();
        let waiting: Vec<_> = waiting.into_iter().flatten().collect();
        let payloads = pack(&origin, lines);
        let sent = async {
            if payloads.is_empty() {
                return Ok(Vec::new());
            }
            let conn = pool.get().await.map_err(|e| e.to_string())?;
            let stmt = conn.prepare_cached(SEND).await.map_err(|e| e.to_string())?;
            conn.query(&stmt, &[&channel, &payloads])
                .await
                .map_err(|e| e.to_string())
        };
        let failed = sent.await.err();
        for done in waiting {
            let _ = done.send(());
        }
        if let Some(e) = failed {
            // Best effort: other processes fall back to their polls.
            tracing::debug!(error = %e, "cannot send change notifications");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_survive_the_payload() {
        let id = JobId::generate();
        let change = JobChange {
            id: Some(id.clone()),
            kind: ChangeKind::Transition(Transition::Complete),
            status: Some(JobStatus::Complete),
            job_type: Some(JobType::parse("t.x:y-z").unwrap()),
            origin: ChangeOrigin::Local,
            missed: 0,
        };
        let payloads = pack("me", vec![encode(&change)]);
        assert_eq!(payloads.len(), 1);
        assert!(
            decode(&payloads[0], "me").is_none(),
            "own payloads are skipped"
        );
        let got = decode(&payloads[0], "other").unwrap();
        assert_eq!(
            got,
            [JobChange {
                origin: ChangeOrigin::External,
                ..change
            }]
        );
    }

    #[test]
    fn progress_counts_once_and_payloads_stay_small() {
        let ids: Vec<JobId> = (0..400).map(|_| JobId::generate()).collect();
        let mut lines = Vec::new();
        for id in &ids {
            for _ in 0..3 {
                lines.push(format!("U running t {id}"));
            }
            lines.push(format!("C pending t {id}"));
        }
        let payloads = pack("origin", lines);
        assert!(payloads.len() > 1);
        let mut updates = 0;
        let mut created = 0;
        for p in &payloads {
            assert!(p.len() <= MAX_PAYLOAD);
            for c in decode(p, "me").unwrap() {
                match c.kind {
                    ChangeKind::Updated => updates += 1,
                    ChangeKind::Created => created += 1,
                    other => panic!("{other:?}"),
                }
            }
        }
        assert_eq!((updates, created), (400, 400));
        assert!(
            pack("origin", vec![String::new(), String::new()]).is_empty(),
            "a flush request alone sends nothing"
        );
        assert_eq!(decode("x\ngarbage line\nZ - - -", "me").unwrap(), []);
    }
}
