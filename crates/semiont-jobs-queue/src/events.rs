//! Job lifecycle events: the store's change notifications, named the way
//! users think of them (started, progress, retrying, ...) and enriched with
//! a snapshot of the job. What `watch`, the HTTP API and progress UIs read.

use std::sync::Arc;

use semiont_jobs_model::{Job, JobId, JobStatus, JobType, Timestamp, Transition};
use semiont_jobs_store::{ChangeKind, ChangeOrigin, ChangeStream, JobChange, JobStore};
use serde_json::Value;

use crate::Clock;

/// What happened to a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A new pending job.
    Created,
    /// A worker (or [`JobQueue::update_job_status`](crate::JobQueue::update_job_status))
    /// made the job running.
    Started,
    /// A running job reported progress (or its lease was renewed in place).
    Progress,
    /// The job finished successfully.
    Completed,
    /// The job failed for good (a permanent error, or its retries are spent).
    Failed,
    /// A failed attempt sent the job back to pending, due again after a
    /// back-off (also: a running job released at shutdown).
    Retrying,
    /// The job was cancelled (while pending, or while running: its worker is
    /// fenced off and learns of it).
    Cancelled,
    /// A failed or cancelled job was put back to pending by a manual retry.
    Resubmitted,
    /// A dead worker's job was put back to pending or failed by recovery.
    Recovered,
    /// A finished job was deleted (retention cleanup).
    Deleted,
    /// Events were missed (this subscriber fell behind, or the store lost
    /// track of changes): re-read whatever you display.
    Resynced,
}

impl EventKind {
    /// The lowercase name, e.g. `started`; log lines use `job.<name>`.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Started => "started",
            EventKind::Progress => "progress",
            EventKind::Completed => "completed",
            EventKind::Failed => "failed",
            EventKind::Retrying => "retrying",
            EventKind::Cancelled => "cancelled",
            EventKind::Resubmitted => "resubmitted",
            EventKind::Recovered => "recovered",
            EventKind::Deleted => "deleted",
            EventKind::Resynced => "resynced",
        }
    }

    /// The event a store change stands for.
    pub const fn from_change(kind: ChangeKind) -> Self {
        match kind {
            ChangeKind::Created => EventKind::Created,
            ChangeKind::Transition(t) => match t {
                Transition::Claim => EventKind::Started,
                Transition::CancelPending | Transition::CancelRunning => EventKind::Cancelled,
                Transition::Complete => EventKind::Completed,
                Transition::Fail => EventKind::Failed,
                Transition::Requeue => EventKind::Retrying,
                Transition::Retry => EventKind::Resubmitted,
            },
            ChangeKind::Updated => EventKind::Progress,
            ChangeKind::Recovered => EventKind::Recovered,
            ChangeKind::Deleted => EventKind::Deleted,
            ChangeKind::Resynced => EventKind::Resynced,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One lifecycle event of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueEvent {
    /// What happened.
    pub kind: EventKind,
    /// The job (`None` only for [`EventKind::Resynced`]).
    pub job_id: Option<JobId>,
    /// The job's status right after the change (`None` when deleted or unknown).
    pub status: Option<JobStatus>,
    /// The job's type, when known.
    pub job_type: Option<JobType>,
    /// Whether this process made the change or another one did (seen
    /// through the store's notifications, best effort).
    pub origin: ChangeOrigin,
    /// When the event was received, by the queue's clock.
    pub at: Timestamp,
    /// The job as read when the event was received: at least as new as the
    /// change, possibly newer (a later progress value, or already finished).
    /// `None` for deleted jobs, when the job could not be read, or when the
    /// stream was made [`without_snapshots`](EventStream::without_snapshots).
    pub job: Option<Arc<Job>>,
    /// For [`EventKind::Resynced`] after falling behind: how many events were
    /// missed.
    pub missed: u64,
}

impl QueueEvent {
    /// The job's last progress report, from the snapshot.
    pub fn progress(&self) -> Option<&Value> {
        self.job.as_ref()?.progress.as_ref()
    }

    /// The job's attempt number, from the snapshot.
    pub fn attempt(&self) -> Option<u32> {
        self.job.as_ref().map(|j| j.attempt)
    }

    /// The job's last error message, from the snapshot.
    pub fn error(&self) -> Option<&str> {
        self.job.as_ref()?.error.as_deref()
    }

    fn from_change(change: JobChange, at: Timestamp) -> Self {
        QueueEvent {
            kind: EventKind::from_change(change.kind),
            job_id: change.id,
            status: change.status,
            job_type: change.job_type,
            origin: change.origin,
            at,
            job: None,
            missed: change.missed,
        }
    }
}

/// A subscription to job lifecycle events, from
/// [`JobQueue::subscribe`](crate::JobQueue::subscribe).
///
/// Covers every change made through the store the queue uses — by this
/// queue, its clones, or anything else sharing that store in this process —
/// and, where the backend reports them, changes made by other processes
/// ([`ChangeOrigin::External`], best effort). Events of one job arrive in the
/// order the store applied the changes. Only changes made after the
/// subscription are seen.
#[derive(Debug)]
pub struct EventStream {
    rx: ChangeStream,
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    only: Option<JobId>,
    snapshots: bool,
}

impl EventStream {
    pub(crate) fn new(store: Arc<dyn JobStore>, clock: Arc<dyn Clock>) -> Self {
        EventStream {
            rx: store.subscribe(),
            store,
            clock,
            only: None,
            snapshots: true,
        }
    }

    /// Only events of job `id` (and [`EventKind::Resynced`]).
    pub fn only_job(mut self, id: JobId) -> Self {
        self.only = Some(id);
        self
    }

    /// Do not read the job for each event ([`QueueEvent::job`] stays
    /// `None`): cheaper when only kinds and statuses matter.
    pub fn without_snapshots(mut self) -> Self {
        self.snapshots = false;
        self
    }

    /// The next event, or `None` once the store is gone.
    pub async fn recv(&mut self) -> Option<QueueEvent> {
        loop {
            let change = self.rx.recv().await?;
            if change.kind == ChangeKind::Resynced && change.missed > 0 {
                tracing::warn!(
                    missed = change.missed,
                    "event subscriber fell behind; resynchronise"
                );
            }
            if let (Some(want), Some(id)) = (&self.only, &change.id) {
                if want != id {
                    continue;
                }
            }
            let mut event = QueueEvent::from_change(change, self.clock.now());
            if self.snapshots && event.kind != EventKind::Deleted {
                if let Some(id) = &event.job_id {
                    event.job = self.store.get(id).await.ok().map(Arc::new);
                }
            }
            return Some(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_change_kind_has_an_event() {
        use EventKind as E;
        let table = [
            (ChangeKind::Created, E::Created),
            (ChangeKind::Transition(Transition::Claim), E::Started),
            (
                ChangeKind::Transition(Transition::CancelPending),
                E::Cancelled,
            ),
            (
                ChangeKind::Transition(Transition::CancelRunning),
                E::Cancelled,
            ),
            (ChangeKind::Transition(Transition::Complete), E::Completed),
            (ChangeKind::Transition(Transition::Fail), E::Failed),
            (ChangeKind::Transition(Transition::Requeue), E::Retrying),
            (ChangeKind::Transition(Transition::Retry), E::Resubmitted),
            (ChangeKind::Updated, E::Progress),
            (ChangeKind::Recovered, E::Recovered),
            (ChangeKind::Deleted, E::Deleted),
            (ChangeKind::Resynced, E::Resynced),
        ];
        for (change, event) in table {
            assert_eq!(EventKind::from_change(change), event, "{change:?}");
        }
        assert_eq!(E::Retrying.to_string(), "retrying");
    }
}
