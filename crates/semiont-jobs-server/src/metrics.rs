//! Prometheus metrics: counters and histograms fed by the event hub (so
//! work done by workers in other processes counts, with times taken from
//! the jobs' own timestamps), and gauges read from the store at scrape time;
//! rendered in the Prometheus text format.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use semiont_jobs_model::{Job, JobId, JobStatus, Timestamp};
use semiont_jobs_queue::{EventKind, QueueEvent};

/// Upper bounds (seconds) of the duration histograms' buckets.
pub(crate) const BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Distinct job types given their own label; the rest count as `_other`
/// (type names come from clients, labels must stay bounded).
const MAX_TYPE_LABELS: usize = 200;
/// Pending jobs whose due time is remembered for the wait histogram.
const MAX_DUE_TRACKED: usize = 100_000;

#[derive(Clone, Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (bound, count) in BUCKETS.iter().zip(self.counts) {
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{labels}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", self.count);
    }
}

#[derive(Clone, Default)]
struct PerType {
    created: u64,
    claimed: u64,
    finished: [u64; 3],
    retried_failure: u64,
    retried_manual: u64,
    recovered: u64,
    wait: Histogram,
    run: [Histogram; 3],
}

/// A per-type counter: name, help text, and how to read it.
type Counter = (&'static str, &'static str, fn(&PerType) -> u64);

/// Outcomes of the finished counter and the run-time histogram.
const FINISHED: [&str; 3] = ["complete", "failed", "cancelled"];
const RUN_OUTCOMES: [&str; 3] = ["complete", "failed", "retrying"];

#[derive(Default)]
struct Inner {
    types: BTreeMap<String, PerType>,
    due_since: HashMap<JobId, Timestamp>,
    events: u64,
    resyncs: u64,
    http: BTreeMap<u16, u64>,
}

impl Inner {
    fn per_type(&mut self, name: &str) -> &mut PerType {
        let key = if self.types.contains_key(name) || self.types.len() < MAX_TYPE_LABELS {
            name
        } else {
            "_other"
        };
        self.types.entry(key.to_owned()).or_default()
    }
}

/// The metrics the server counts itself (since it started).
#[derive(Default)]
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

fn seconds(later: Timestamp, earlier: Timestamp) -> f64 {
    later.since(earlier).as_secs_f64()
}

/// When a pending job became due, as far as its document tells.
fn due_time(job: &Job, at: Timestamp) -> Timestamp {
    match job.run_at {
        Some(run_at) => run_at.max(job.created),
        None if job.attempt == 0 => job.created,
        None => at,
    }
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one lifecycle event, taken to mean `kind`.
    pub fn observe(&self, event: &QueueEvent, kind: EventKind) {
        let mut m = self.lock();
        m.events += 1;
        if kind == EventKind::Resynced {
            m.resyncs += 1;
            return;
        }
        let job = event.job.as_deref();
        let type_name = event
            .job_type
            .as_ref()
            .or(job.map(|j| &j.job_type))
            .map_or("unknown", |t| t.as_str())
            .to_owned();
        let id = event.job_id.clone();
        let became_pending = matches!(
            kind,
            EventKind::Created
                | EventKind::Retrying
                | EventKind::Resubmitted
                | EventKind::Recovered
        ) && event.status == Some(JobStatus::Pending);
        if became_pending {
            if let (Some(id), Some(job)) = (&id, job) {
                if m.due_since.len() < MAX_DUE_TRACKED || m.due_since.contains_key(id) {
                    let due = due_time(job, event.at);
                    m.due_since.insert(id.clone(), due);
                }
            }
        }
        let wait = match (kind, job) {
            (EventKind::Started, Some(job)) => {
                let due = id
                    .as_ref()
                    .and_then(|id| m.due_since.remove(id))
                    .or((job.attempt <= 1).then_some(job.created));
                due.zip(job.started_at)
                    .map(|(due, started)| seconds(started, due))
            }
            _ => None,
        };
        if matches!(
            kind,
            EventKind::Cancelled | EventKind::Deleted | EventKind::Failed | EventKind::Completed
        ) {
            if let Some(id) = &id {
                m.due_since.remove(id);
            }
        }
        let run = |end: Option<Timestamp>| {
            job.and_then(|j| j.started_at.zip(end.or(j.completed_at)))
                .map(|(start, end)| seconds(end, start))
        };
        let t = m.per_type(&type_name);
        if event.kind == EventKind::Created && kind != EventKind::Created {
            // First seen past pending (changes of another process merged).
            t.created += 1;
        }
        match kind {
            EventKind::Created => t.created += 1,
            EventKind::Started => {
                t.claimed += 1;
                if let Some(w) = wait {
                    t.wait.observe(w);
                }
            }
            EventKind::Completed => {
                t.finished[0] += 1;
                if let Some(r) = run(None) {
                    t.run[0].observe(r);
                }
            }
            EventKind::Failed => {
                t.finished[1] += 1;
                if let Some(r) = run(None) {
                    t.run[1].observe(r);
                }
            }
            EventKind::Cancelled => t.finished[2] += 1,
            EventKind::Retrying => {
                t.retried_failure += 1;
                if let Some(r) = run(Some(event.at)) {
                    t.run[2].observe(r);
                }
            }
            EventKind::Resubmitted => t.retried_manual += 1,
            EventKind::Recovered => t.recovered += 1,
            _ => {}
        }
    }

    /// Counts one HTTP response.
    pub fn count_response(&self, status: u16) {
        *self.lock().http.entry(status).or_default() += 1;
    }

    /// Renders the counters and histograms.
    pub fn render(&self, out: &mut String) {
        let m = self.lock();
        let counters: [Counter; 4] = [
            (
                "semiont_jobs_created_total",
                "Jobs created (seen by this server since it started).",
                |t| t.created,
            ),
            (
                "semiont_jobs_claimed_total",
                "Jobs claimed by a worker (started).",
                |t| t.claimed,
            ),
            (
                "semiont_jobs_recovered_total",
                "Running jobs of dead workers returned to pending or failed by recovery.",
                |t| t.recovered,
            ),
            (
                "semiont_jobs_resubmitted_total",
                "Failed or cancelled jobs put back to pending by a manual retry.",
                |t| t.retried_manual,
            ),
        ];
        for (name, help, get) in counters {
            header(out, name, help, "counter");
            for (ty, t) in &m.types {
                let _ = writeln!(out, "{name}{{type=\"{}\"}} {}", escape(ty), get(t));
            }
        }
        header(
            out,
            "semiont_jobs_retried_total",
            "Failed attempts sent back to pending for another try (automatic retries).",
            "counter",
        );
        for (ty, t) in &m.types {
            let _ = writeln!(
                out,
                "semiont_jobs_retried_total{{type=\"{}\"}} {}",
                escape(ty),
                t.retried_failure
            );
        }
        header(
            out,
            "semiont_jobs_finished_total",
            "Jobs that reached a final status.",
            "counter",
        );
        for (ty, t) in &m.types {
            for (status, n) in FINISHED.iter().zip(t.finished) {
                let _ = writeln!(
                    out,
                    "semiont_jobs_finished_total{{type=\"{}\",status=\"{status}\"}} {n}",
                    escape(ty)
                );
            }
        }
        header(
            out,
            "semiont_jobs_pending_wait_seconds",
            "Time from when a job was due (created, or its runAt) to when a worker started it.",
            "histogram",
        );
        for (ty, t) in &m.types {
            t.wait.render(
                out,
                "semiont_jobs_pending_wait_seconds",
                &format!("type=\"{}\"", escape(ty)),
            );
        }
        header(
            out,
            "semiont_jobs_run_seconds",
            "Run time of attempts (startedAt to completedAt), by outcome.",
            "histogram",
        );
        for (ty, t) in &m.types {
            for (outcome, h) in RUN_OUTCOMES.iter().zip(&t.run) {
                h.render(
                    out,
                    "semiont_jobs_run_seconds",
                    &format!("type=\"{}\",outcome=\"{outcome}\"", escape(ty)),
                );
            }
        }
        header(
            out,
            "semiont_jobs_events_total",
            "Lifecycle events received from the store.",
            "counter",
        );
        let _ = writeln!(out, "semiont_jobs_events_total {}", m.events);
        header(
            out,
            "semiont_jobs_event_resyncs_total",
            "Times the server's own event subscription lost events and resynchronised.",
            "counter",
        );
        let _ = writeln!(out, "semiont_jobs_event_resyncs_total {}", m.resyncs);
        header(
            out,
            "semiont_jobs_http_responses_total",
            "HTTP responses sent, by status code.",
            "counter",
        );
        for (code, n) in &m.http {
            let _ = writeln!(
                out,
                "semiont_jobs_http_responses_total{{code=\"{code}\"}} {n}"
            );
        }
    }
}

/// `# HELP` and `# TYPE` lines.
pub(crate) fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
pub(crate) fn escape(value: &str) -> String {
    let mut s = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use semiont_jobs_model::NewJob;
    use semiont_jobs_store::ChangeOrigin;
    use std::sync::Arc;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn ev(kind: EventKind, job: &Job, when: i64) -> QueueEvent {
        QueueEvent {
            kind,
            job_id: Some(job.id.clone()),
            status: Some(job.status),
            job_type: Some(job.job_type.clone()),
            origin: ChangeOrigin::External,
            at: at(when),
            job: Some(Arc::new(job.clone())),
            missed: 0,
        }
    }

    fn line<'a>(text: &'a str, prefix: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no line {prefix} in\n{text}"))
    }

    #[test]
    fn a_lifecycle_fills_counters_and_histograms_from_job_timestamps() {
        let m = Metrics::default();
        let mut job = NewJob::custom("sleep", "u", serde_json::json!({}))
            .unwrap()
            .into_job(JobId::generate(), at(1_000), 3)
            .unwrap();
        m.observe(&ev(EventKind::Created, &job, 1_000), EventKind::Created);
        job.status = JobStatus::Running;
        job.attempt = 1;
        job.started_at = Some(at(1_300));
        m.observe(&ev(EventKind::Started, &job, 1_400), EventKind::Started);
        job.status = JobStatus::Complete;
        job.completed_at = Some(at(3_300));
        m.observe(&ev(EventKind::Completed, &job, 9_999), EventKind::Completed);
        let mut out = String::new();
        m.render(&mut out);
        assert_eq!(
            line(&out, "semiont_jobs_created_total{type=\"sleep\"}"),
            "semiont_jobs_created_total{type=\"sleep\"} 1"
        );
        assert!(line(&out, "semiont_jobs_claimed_total{").ends_with(" 1"));
        assert!(line(
            &out,
            "semiont_jobs_finished_total{type=\"sleep\",status=\"complete\"}"
        )
        .ends_with(" 1"));
        // waited 0.3 s: in the 0.5 bucket, not in the 0.25 one
        assert!(line(
            &out,
            "semiont_jobs_pending_wait_seconds_bucket{type=\"sleep\",le=\"0.25\"}"
        )
        .ends_with(" 0"));
        assert!(line(
            &out,
            "semiont_jobs_pending_wait_seconds_bucket{type=\"sleep\",le=\"0.5\"}"
        )
        .ends_with(" 1"));
        assert_eq!(
            line(&out, "semiont_jobs_pending_wait_seconds_sum{"),
            "semiont_jobs_pending_wait_seconds_sum{type=\"sleep\"} 0.3"
        );
        // ran 2 s (from the job's timestamps, not the event's arrival)
        assert_eq!(
            line(
                &out,
                "semiont_jobs_run_seconds_sum{type=\"sleep\",outcome=\"complete\"}"
            ),
            "semiont_jobs_run_seconds_sum{type=\"sleep\",outcome=\"complete\"} 2"
        );
        assert!(line(
            &out,
            "semiont_jobs_run_seconds_bucket{type=\"sleep\",outcome=\"complete\",le=\"+Inf\"}"
        )
        .ends_with(" 1"));
        assert_eq!(
            line(&out, "semiont_jobs_events_total "),
            "semiont_jobs_events_total 3"
        );
    }

    #[test]
    fn a_retry_waits_from_its_run_at() {
        let m = Metrics::default();
        let mut job = NewJob::custom("t", "u", serde_json::json!({}))
            .unwrap()
            .into_job(JobId::generate(), at(0), 3)
            .unwrap();
        job.attempt = 1;
        job.retry_count = 1;
        job.run_at = Some(at(5_000));
        m.observe(&ev(EventKind::Retrying, &job, 4_000), EventKind::Retrying);
        job.status = JobStatus::Running;
        job.attempt = 2;
        job.run_at = None;
        job.started_at = Some(at(6_000));
        m.observe(&ev(EventKind::Started, &job, 6_000), EventKind::Started);
        let mut out = String::new();
        m.render(&mut out);
        assert_eq!(
            line(&out, "semiont_jobs_pending_wait_seconds_sum{"),
            "semiont_jobs_pending_wait_seconds_sum{type=\"t\"} 1"
        );
        assert!(line(&out, "semiont_jobs_retried_total{type=\"t\"}").ends_with(" 1"));
    }

    #[test]
    fn type_labels_are_bounded() {
        let m = Metrics::default();
        for n in 0..(MAX_TYPE_LABELS + 50) {
            let job = NewJob::custom(&format!("t{n}"), "u", serde_json::json!({}))
                .unwrap()
                .into_job(JobId::generate(), at(0), 3)
                .unwrap();
            m.observe(&ev(EventKind::Created, &job, 0), EventKind::Created);
        }
        let mut out = String::new();
        m.render(&mut out);
        let created = out
            .lines()
            .filter(|l| l.starts_with("semiont_jobs_created_total{"))
            .count();
        assert_eq!(created, MAX_TYPE_LABELS + 1);
        assert!(line(&out, "semiont_jobs_created_total{type=\"_other\"}").ends_with(" 50"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
