//! The last hour in minutes, for the dashboard's charts: jobs finished per
//! minute (fed by the event hub, so other processes' work counts) and the
//! oldest due pending job's age (sampled from the store by a timer and at
//! each request), served by `GET /api/v1/history`. Kept in memory since the
//! server started; minutes before that are reported as not observed.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::Json;
use semiont_jobs_model::{JobStatus, Timestamp};
use semiont_jobs_queue::JobQueue;
use semiont_jobs_store::TypeFilter;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::auth::ReadAccess;
use crate::extract::QueryMap;
use crate::{AppState, Result};

/// Minutes kept and reported.
pub const HISTORY_MINUTES: usize = 60;
/// How often the oldest due job's age is sampled between requests.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);

const MINUTE_MS: i64 = 60_000;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Bucket {
    /// Unix minute (milliseconds / 60 000).
    minute: i64,
    complete: u64,
    failed: u64,
    cancelled: u64,
    /// Largest sampled age of the oldest due pending job, in seconds.
    oldest_due: Option<f64>,
}

/// The minute buckets (at most [`HISTORY_MINUTES`], oldest first).
#[derive(Debug)]
pub(crate) struct History {
    started_minute: i64,
    buckets: Mutex<VecDeque<Bucket>>,
}

/// One minute in `GET /api/v1/history`.
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MinuteView {
    /// Start of the minute (RFC 3339).
    start: String,
    /// Whether the server was running during (part of) this minute.
    observed: bool,
    complete: u64,
    failed: u64,
    cancelled: u64,
    /// Jobs finished in the minute (the three outcomes together).
    finished: u64,
    /// Largest sampled age, in seconds, of the job a worker would claim
    /// next (0: none was due; absent: no sample in this minute).
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_due_seconds: Option<f64>,
}

/// The body of `GET /api/v1/history`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryView {
    bucket_seconds: u32,
    /// Oldest first; the last is the current, incomplete minute.
    minutes: Vec<MinuteView>,
}

impl History {
    /// Empty history of a server started at `now`.
    pub fn new(now: Timestamp) -> Self {
        History {
            started_minute: now.as_millis().div_euclid(MINUTE_MS),
            buckets: Mutex::new(VecDeque::with_capacity(HISTORY_MINUTES + 1)),
        }
    }

    fn with_bucket(&self, at: Timestamp, f: impl FnOnce(&mut Bucket)) {
        let minute = at.as_millis().div_euclid(MINUTE_MS);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let newest = buckets.back().map_or(i64::MIN, |b| b.minute);
        if minute <= newest.saturating_sub(HISTORY_MINUTES as i64) {
            return; // older than the hour kept
        }
        let bucket = match buckets.iter().position(|b| b.minute >= minute) {
            Some(i) if buckets[i].minute == minute => &mut buckets[i],
            Some(i) => {
                buckets.insert(
                    i,
                    Bucket {
                        minute,
                        ..Bucket::default()
                    },
                );
                &mut buckets[i]
            }
            None => {
                buckets.push_back(Bucket {
                    minute,
                    ..Bucket::default()
                });
                let last = buckets.len() - 1;
                &mut buckets[last]
            }
        };
        f(bucket);
        let newest = buckets.back().map_or(minute, |b| b.minute);
        while buckets
            .front()
            .is_some_and(|b| b.minute <= newest.saturating_sub(HISTORY_MINUTES as i64))
        {
            buckets.pop_front();
        }
    }

    /// Counts a job that reached the final `status` at `at` (other
    /// statuses are ignored).
    pub fn finished(&self, at: Timestamp, status: JobStatus) {
        self.with_bucket(at, |b| match status {
            JobStatus::Complete => b.complete += 1,
            JobStatus::Failed => b.failed += 1,
            JobStatus::Cancelled => b.cancelled += 1,
            JobStatus::Pending | JobStatus::Running => {}
        });
    }

    /// Records a sample of the oldest due pending job's age.
    pub fn oldest_due(&self, at: Timestamp, seconds: f64) {
        self.with_bucket(at, |b| {
            b.oldest_due = Some(b.oldest_due.map_or(seconds, |o| o.max(seconds)));
        });
    }

    /// The hour ending with the minute of `now`, one entry per minute.
    pub fn view(&self, now: Timestamp) -> HistoryView {
        let current = now.as_millis().div_euclid(MINUTE_MS);
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let minutes = (current - HISTORY_MINUTES as i64 + 1..=current)
            .map(|minute| {
                let b = buckets
                    .iter()
                    .find(|b| b.minute == minute)
                    .copied()
                    .unwrap_or(Bucket {
                        minute,
                        ..Bucket::default()
                    });
                MinuteView {
                    start: Timestamp::from_millis(minute * MINUTE_MS).to_string(),
                    observed: minute >= self.started_minute,
                    complete: b.complete,
                    failed: b.failed,
                    cancelled: b.cancelled,
                    finished: b.complete + b.failed + b.cancelled,
                    oldest_due_seconds: b.oldest_due,
                }
            })
            .collect();
        HistoryView {
            bucket_seconds: 60,
            minutes,
        }
    }
}

/// How long the job a worker would claim next has been due, in seconds
/// (0 when none is due).
pub(crate) async fn oldest_due_age(queue: &JobQueue) -> Result<f64> {
    let now = queue.now();
    let next = queue.poll_next_pending_job(TypeFilter::Any).await?;
    Ok(next.map_or(0.0, |job| {
        let due = job.run_at.map_or(job.created, |r| r.max(job.created));
        now.since(due).as_secs_f64()
    }))
}

/// Samples the oldest due job's age every [`SAMPLE_EVERY`] until `stop`.
pub(crate) async fn sample(queue: JobQueue, history: Arc<History>, stop: CancellationToken) {
    let mut every = tokio::time::interval(SAMPLE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = every.tick() => {}
        }
        record_sample(&queue, &history).await;
    }
}

async fn record_sample(queue: &JobQueue, history: &History) {
    match oldest_due_age(queue).await {
        Ok(age) => history.oldest_due(queue.now(), age),
        Err(e) => tracing::debug!(error = %e, "history: cannot sample the oldest due job"),
    }
}

/// `GET /api/v1/history`: the last hour, per minute.
pub(crate) async fn history(
    State(state): State<AppState>,
    _: ReadAccess,
    RawQuery(query): RawQuery,
) -> Result<Json<HistoryView>> {
    QueryMap::parse(query.as_deref(), &[])?;
    record_sample(state.queue(), state.history()).await;
    Ok(Json(state.history().view(state.queue().now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64, second: i64) -> Timestamp {
        Timestamp::from_millis(minute * MINUTE_MS + second * 1000)
    }

    #[test]
    fn finished_jobs_and_samples_land_in_their_minute() {
        let h = History::new(at(100, 30));
        h.finished(at(100, 31), JobStatus::Complete);
        h.finished(at(100, 59), JobStatus::Failed);
        h.finished(at(102, 0), JobStatus::Complete);
        h.finished(at(102, 1), JobStatus::Running); // not a final status
        h.oldest_due(at(102, 5), 3.0);
        h.oldest_due(at(102, 9), 1.5);
        // An event from another process may arrive late: still counted.
        h.finished(at(101, 10), JobStatus::Cancelled);
        let v = h.view(at(102, 20));
        assert_eq!(v.minutes.len(), HISTORY_MINUTES);
        let last3: Vec<_> = v.minutes[HISTORY_MINUTES - 3..]
            .iter()
            .map(|m| {
                (
                    m.finished,
                    m.complete,
                    m.failed,
                    m.cancelled,
                    m.oldest_due_seconds,
                )
            })
            .collect();
        assert_eq!(
            last3,
            [
                (2, 1, 1, 0, None),
                (1, 0, 0, 1, None),
                (1, 1, 0, 0, Some(3.0))
            ]
        );
        assert!(v.minutes[HISTORY_MINUTES - 3].observed);
        assert!(!v.minutes[HISTORY_MINUTES - 4].observed);
        assert_eq!(v.minutes[HISTORY_MINUTES - 1].start, at(102, 0).to_string());
    }

    #[test]
    fn only_the_last_hour_is_kept() {
        let h = History::new(at(0, 0));
        for minute in 0..200 {
            h.finished(at(minute, 0), JobStatus::Complete);
        }
        assert_eq!(h.buckets.lock().unwrap().len(), HISTORY_MINUTES);
        // Too old to keep: dropped, not counted.
        h.finished(at(10, 0), JobStatus::Complete);
        let v = h.view(at(199, 0));
        assert_eq!(v.minutes.iter().map(|m| m.finished).sum::<u64>(), 60);
        assert!(v.minutes.iter().all(|m| m.observed));
    }
}
