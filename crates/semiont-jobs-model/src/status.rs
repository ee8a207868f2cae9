//! Job statuses and the state machine: which moves between them are legal.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where a job is in its life. Each status is also a directory name in the
/// filesystem layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting to be claimed (possibly not yet due, see `runAt`).
    Pending,
    /// Claimed by a worker, which holds it at one attempt number.
    Running,
    /// Finished successfully. Terminal.
    Complete,
    /// Finished unsuccessfully after its retries (or with a permanent error).
    Failed,
    /// Cancelled by a user or the system.
    Cancelled,
}

impl JobStatus {
    /// All statuses, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Pending,
        JobStatus::Running,
        JobStatus::Complete,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// The lowercase name, as in JSON and directory names.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Complete => "complete",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the job has finished (complete, failed or cancelled). Finished
    /// jobs are what retention cleanup may delete.
    pub const fn is_finished(self) -> bool {
        matches!(
            self,
            JobStatus::Complete | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// Position in [`JobStatus::ALL`], for dense per-status tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        JobStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| Error::UnknownStatus(s.chars().take(64).collect()))
    }
}

/// The named moves of the state machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    /// pending → running: a worker takes the job (attempt + 1).
    Claim,
    /// pending → cancelled.
    CancelPending,
    /// running → complete.
    Complete,
    /// running → failed (permanent error or retries spent).
    Fail,
    /// running → pending: a retryable failure with retries left, a graceful
    /// release at shutdown, or recovery of a dead worker's job.
    Requeue,
    /// running → cancelled: the running worker is told through its token.
    CancelRunning,
    /// failed → pending or cancelled → pending: a manual retry.
    Retry,
}

impl Transition {
    /// The transition that moves `from` to `to`, if the state machine has one.
    pub const fn between(from: JobStatus, to: JobStatus) -> Option<Transition> {
        use JobStatus::*;
        Some(match (from, to) {
            (Pending, Running) => Transition::Claim,
            (Pending, Cancelled) => Transition::CancelPending,
            (Running, Complete) => Transition::Complete,
            (Running, Failed) => Transition::Fail,
            (Running, Pending) => Transition::Requeue,
            (Running, Cancelled) => Transition::CancelRunning,
            (Failed | Cancelled, Pending) => Transition::Retry,
            _ => return None,
        })
    }
}

/// Whether the state machine allows moving a job from `from` to `to`.
///
/// Complete is terminal; failed and cancelled jobs can only go back to pending
/// (a manual retry); a status never "moves" to itself.
pub const fn is_legal_transition(from: JobStatus, to: JobStatus) -> bool {
    Transition::between(from, to).is_some()
}

/// Like [`is_legal_transition`], as a `Result` naming the job for errors.
pub fn check_transition(id: &str, from: JobStatus, to: JobStatus) -> Result<Transition> {
    Transition::between(from, to).ok_or_else(|| Error::IllegalTransition {
        id: id.to_owned(),
        from,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use JobStatus::*;

    fn check(from: JobStatus, to: JobStatus, expected: Option<Transition>) {
        assert_eq!(Transition::between(from, to), expected, "{from} -> {to}");
        assert_eq!(is_legal_transition(from, to), expected.is_some());
    }

    #[test]
    fn transition_table() {
        use Transition as T;
        let table = [
            (Pending, Pending, None),
            (Pending, Running, Some(T::Claim)),
            (Pending, Complete, None),
            (Pending, Failed, None),
            (Pending, Cancelled, Some(T::CancelPending)),
            (Running, Pending, Some(T::Requeue)),
            (Running, Running, None),
            (Running, Complete, Some(T::Complete)),
            (Running, Failed, Some(T::Fail)),
            (Running, Cancelled, Some(T::CancelRunning)),
            (Complete, Pending, None),
            (Complete, Running, None),
            (Complete, Complete, None),
            (Complete, Failed, None),
            (Complete, Cancelled, None),
            (Failed, Pending, Some(T::Retry)),
            (Failed, Running, None),
            (Failed, Complete, None),
            (Failed, Failed, None),
            (Failed, Cancelled, None),
            (Cancelled, Pending, Some(T::Retry)),
            (Cancelled, Running, None),
            (Cancelled, Complete, None),
            (Cancelled, Failed, None),
            (Cancelled, Cancelled, None),
        ];
        assert_eq!(table.len(), 25, "every pair is listed");
        for (from, to, expected) in table {
            check(from, to, expected);
        }
    }

    #[test]
    fn illegal_transition_error_names_job_and_statuses() {
        let e = check_transition("job-1", Complete, Running).unwrap_err();
        assert_eq!(
            e.to_string(),
            "illegal transition of job job-1 from complete to running"
        );
    }

    #[test]
    fn status_names_round_trip() {
        for st in JobStatus::ALL {
            assert_eq!(st.as_str().parse::<JobStatus>().unwrap(), st);
            assert_eq!(serde_json::to_string(&st).unwrap(), format!("\"{st}\""));
            assert_eq!(JobStatus::ALL[st.index()], st);
        }
        assert!(matches!(
            "done".parse::<JobStatus>(),
            Err(Error::UnknownStatus(_))
        ));
    }
}
