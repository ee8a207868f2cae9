//! The event hub: one task reads the queue's lifecycle events (this
//! process's and, through the backend, other processes'), numbers them,
//! renders each once as an SSE frame, keeps the latest in a bounded replay
//! buffer for `Last-Event-ID`, feeds the metrics, and broadcasts them to
//! every event-stream client through a bounded channel (a client that falls
//! behind loses events and is told to resync; it never slows the others).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use semiont_jobs_model::{Job, JobId, JobStatus, JobType};
use semiont_jobs_queue::{EventKind, EventStream, QueueEvent};
use semiont_jobs_store::ChangeOrigin;
use serde_json::{json, Map, Value};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::history::History;
use crate::metrics::Metrics;

/// Largest `data` of one event; a job snapshot that does not fit is sent
/// without its parameters and result, and then without the job at all.
pub(crate) const MAX_FRAME_DATA: usize = 16 << 10;

/// One rendered event.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The event id (`None` for per-client frames such as a lag resync).
    pub seq: Option<u64>,
    /// The SSE event name.
    pub name: &'static str,
    /// The job, for filtering.
    pub job_id: Option<JobId>,
    /// The job's type, for filtering.
    pub job_type: Option<JobType>,
    /// The job's user, for filtering (from the snapshot).
    pub user_id: Option<String>,
    /// The job's status after the change.
    pub status: Option<JobStatus>,
    /// The whole SSE frame (`id:`, `event:`, `data:` lines and the blank line).
    pub bytes: Bytes,
}

impl Frame {
    /// Whether this frame ends a single job's stream: a final status, or
    /// the job is gone.
    pub fn is_final(&self) -> bool {
        self.name == "deleted" || self.status.is_some_and(JobStatus::is_finished)
    }

    /// A frame sent to one client only (not numbered, not replayed).
    pub fn local(name: &'static str, data: &Value) -> Frame {
        Frame {
            seq: None,
            name,
            job_id: None,
            job_type: None,
            user_id: None,
            status: None,
            bytes: render(None, name, &data.to_string()),
        }
    }
}

/// `id:`/`event:`/`data:` lines. `data` is single-line JSON.
fn render(seq: Option<u64>, name: &str, data: &str) -> Bytes {
    let mut s = String::with_capacity(data.len() + 48);
    if let Some(seq) = seq {
        s.push_str("id: ");
        s.push_str(&seq.to_string());
        s.push('\n');
    }
    s.push_str("event: ");
    s.push_str(name);
    s.push_str("\ndata: ");
    s.push_str(data);
    s.push_str("\n\n");
    Bytes::from(s)
}

/// The SSE event name of a queue event (`resync` for the queue's
/// `resynced`, so every resynchronisation has one name).
pub(crate) fn event_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Resynced => "resync",
        other => other.as_str(),
    }
}

/// What an event means for clients and metrics. A backend watching other
/// processes may see several quick changes as one: the filesystem backend
/// reports a job it first sees already finished as created, and pending →
/// complete (never a legal single move) as an update. Such an event is
/// named by the status it reached.
pub(crate) fn effective_kind(event: &QueueEvent) -> EventKind {
    match (event.kind, event.status) {
        (EventKind::Progress | EventKind::Created, Some(JobStatus::Complete)) => {
            EventKind::Completed
        }
        (EventKind::Progress | EventKind::Created, Some(JobStatus::Failed)) => EventKind::Failed,
        (EventKind::Progress | EventKind::Created, Some(JobStatus::Cancelled)) => {
            EventKind::Cancelled
        }
        (EventKind::Created, Some(JobStatus::Running)) => EventKind::Started,
        (kind, _) => kind,
    }
}

/// The job as sent in events: whole when small, else without parameters
/// and result (`truncated: true`), else `None`.
pub(crate) fn job_for_event(job: &Job) -> Option<Value> {
    let Ok(Value::Object(mut map)) = serde_json::to_value(job) else {
        return None;
    };
    if serde_json::to_vec(&map).map_or(usize::MAX, |b| b.len()) <= MAX_FRAME_DATA - 512 {
        return Some(Value::Object(map));
    }
    for key in job.params.keys() {
        map.remove(key);
    }
    map.remove("result");
    map.insert("truncated".into(), Value::Bool(true));
    if serde_json::to_vec(&map).map_or(usize::MAX, |b| b.len()) <= MAX_FRAME_DATA - 512 {
        return Some(Value::Object(map));
    }
    None
}

fn frame_of(seq: u64, event: &QueueEvent) -> Frame {
    let name = event_name(effective_kind(event));
    let mut data = Map::new();
    data.insert("kind".into(), Value::from(name));
    if let Some(id) = &event.job_id {
        data.insert("jobId".into(), Value::from(id.as_str()));
    }
    if let Some(status) = event.status {
        data.insert("status".into(), Value::from(status.as_str()));
    }
    if let Some(t) = &event.job_type {
        data.insert("type".into(), Value::from(t.as_str()));
    }
    let user_id = event.job.as_ref().map(|j| j.user_id.clone());
    if let Some(user) = &user_id {
        data.insert("userId".into(), Value::from(user.as_str()));
    }
    data.insert(
        "origin".into(),
        Value::from(match event.origin {
            ChangeOrigin::Local => "local",
            ChangeOrigin::External => "external",
        }),
    );
    data.insert("at".into(), Value::from(event.at.to_string()));
    if event.kind == EventKind::Resynced {
        data.insert("reason".into(), Value::from("store"));
        data.insert("missed".into(), Value::from(event.missed));
    }
    if let Some(job) = event.job.as_deref().and_then(job_for_event) {
        data.insert("job".into(), job);
    }
    let text = Value::Object(data).to_string();
    Frame {
        seq: Some(seq),
        name,
        job_id: event.job_id.clone(),
        job_type: event
            .job_type
            .clone()
            .or_else(|| event.job.as_ref().map(|j| j.job_type.clone())),
        user_id,
        status: event.status,
        bytes: render(Some(seq), name, &text),
    }
}

/// What a new subscriber gets besides the live events.
pub(crate) enum Replay {
    /// No `Last-Event-ID`: live events only.
    Live,
    /// The events after the given id, oldest first.
    Frames(Vec<Arc<Frame>>),
    /// The given id is not in the buffer (too old, or from an earlier
    /// server): the client must resync.
    Gap,
}

struct Ring {
    next_seq: u64,
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    max_frames: usize,
    max_bytes: usize,
}

impl Ring {
    fn push(&mut self, frame: Arc<Frame>) {
        self.bytes += frame.bytes.len();
        self.frames.push_back(frame);
        while self.frames.len() > self.max_frames
            || (self.bytes > self.max_bytes && self.frames.len() > 1)
        {
            if let Some(old) = self.frames.pop_front() {
                self.bytes -= old.bytes.len();
            }
        }
    }

    /// The first id still in the buffer (or the next id, when empty).
    fn first_seq(&self) -> u64 {
        self.frames
            .front()
            .and_then(|f| f.seq)
            .unwrap_or(self.next_seq)
    }
}

/// The shared side of the hub: sequence, replay buffer, broadcast.
#[derive(Clone)]
pub(crate) struct Hub {
    ring: Arc<Mutex<Ring>>,
    tx: broadcast::Sender<Arc<Frame>>,
}

impl Hub {
    /// A hub whose ids start at `first_seq`, keeping `max_frames` events or
    /// `max_bytes` bytes for replay, and letting clients fall `client_buffer`
    /// events behind.
    pub fn new(first_seq: u64, max_frames: usize, max_bytes: usize, client_buffer: usize) -> Self {
        Hub {
            ring: Arc::new(Mutex::new(Ring {
                next_seq: first_seq,
                frames: VecDeque::new(),
                bytes: 0,
                max_frames,
                max_bytes,
            })),
            tx: broadcast::channel(client_buffer).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers, stores and broadcasts one queue event.
    pub fn publish(&self, event: &QueueEvent) -> Arc<Frame> {
        let mut ring = self.lock();
        let seq = ring.next_seq;
        ring.next_seq += 1;
        let frame = Arc::new(frame_of(seq, event));
        ring.push(Arc::clone(&frame));
        // Sent under the lock, so a subscriber's replay and its live
        // events neither overlap nor leave a hole.
        let _ = self.tx.send(Arc::clone(&frame));
        frame
    }

    /// A live receiver and what to replay before it for `last_event_id`.
    pub fn subscribe(
        &self,
        last_event_id: Option<u64>,
    ) -> (broadcast::Receiver<Arc<Frame>>, Replay) {
        let ring = self.lock();
        let rx = self.tx.subscribe();
        let replay = match last_event_id {
            None => Replay::Live,
            Some(last) => {
                let first = ring.first_seq();
                if last.checked_add(1).is_some_and(|n| n >= first) && last < ring.next_seq {
                    Replay::Frames(
                        ring.frames
                            .iter()
                            .filter(|f| f.seq.is_some_and(|s| s > last))
                            .cloned()
                            .collect(),
                    )
                } else {
                    Replay::Gap
                }
            }
        };
        (rx, replay)
    }

    /// The id the next event will get.
    #[cfg(test)]
    pub fn next_seq(&self) -> u64 {
        self.lock().next_seq
    }

    /// Event-stream clients connected now.
    pub fn clients(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Runs the hub until `stop` fires or the store goes away: every event goes
/// to the metrics (and finished jobs to the history), then to the clients.
pub(crate) async fn run(
    hub: Hub,
    mut events: EventStream,
    metrics: Arc<Metrics>,
    history: Arc<History>,
    stop: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            event = events.recv() => event,
        };
        let Some(event) = event else {
            tracing::warn!("the store's event stream ended; event streams get no more events");
            return;
        };
        let kind = effective_kind(&event);
        metrics.observe(&event, kind);
        if matches!(
            kind,
            EventKind::Completed | EventKind::Failed | EventKind::Cancelled
        ) {
            if let Some(status) = event.status {
                history.finished(event.at, status);
            }
        }
        hub.publish(&event);
    }
}

/// The data of a `resync` frame sent to one client.
pub(crate) fn resync_data(reason: &str, missed: u64) -> Value {
    json!({ "kind": "resync", "reason": reason, "missed": missed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use semiont_jobs_model::Timestamp;

    fn event(n: u32) -> QueueEvent {
        QueueEvent {
            kind: EventKind::Created,
            job_id: Some(JobId::parse(&format!("job-{n}")).unwrap()),
            status: Some(JobStatus::Pending),
            job_type: Some(JobType::parse("noop").unwrap()),
            origin: ChangeOrigin::Local,
            at: Timestamp::from_millis(0),
            job: None,
            missed: 0,
        }
    }

    fn seqs(replay: Replay) -> Option<Vec<u64>> {
        match replay {
            Replay::Frames(f) => Some(f.iter().map(|f| f.seq.unwrap()).collect()),
            Replay::Live => Some(vec![]),
            Replay::Gap => None,
        }
    }

    #[test]
    fn replay_is_exact_inside_the_buffer_and_a_gap_outside() {
        let hub = Hub::new(100, 3, 1 << 20, 16);
        // Nothing published yet: only "99" (the id before the first) is current.
        assert_eq!(seqs(hub.subscribe(Some(99)).1), Some(vec![]));
        assert!(seqs(hub.subscribe(Some(100)).1).is_none());
        for n in 0..5 {
            hub.publish(&event(n));
        }
        // ids 100..=104 published; the buffer keeps 102, 103, 104.
        assert_eq!(seqs(hub.subscribe(Some(101)).1), Some(vec![102, 103, 104]));
        assert_eq!(seqs(hub.subscribe(Some(103)).1), Some(vec![104]));
        assert_eq!(seqs(hub.subscribe(Some(104)).1), Some(vec![]));
        for stale in [0, 99, 100, 105, u64::MAX] {
            assert!(seqs(hub.subscribe(Some(stale)).1).is_none(), "{stale}");
        }
        assert!(matches!(hub.subscribe(None).1, Replay::Live));
        assert_eq!(hub.next_seq(), 105);
    }

    #[test]
    fn the_byte_bound_evicts_old_frames() {
        let one = frame_of(0, &event(0)).bytes.len();
        let hub = Hub::new(1, 1000, one * 2 + 4, 16);
        for n in 0..10 {
            hub.publish(&event(n));
        }
        assert_eq!(seqs(hub.subscribe(Some(8)).1), Some(vec![9, 10]));
        assert!(seqs(hub.subscribe(Some(7)).1).is_none());
    }

    #[test]
    fn frames_are_rendered_once_as_sse() {
        let hub = Hub::new(7, 10, 1 << 20, 16);
        let (mut rx, _) = hub.subscribe(None);
        hub.publish(&event(1));
        let f = rx.try_recv().unwrap();
        let text = std::str::from_utf8(&f.bytes).unwrap();
        assert!(text.starts_with("id: 7\nevent: created\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n"));
        let data: Value =
            serde_json::from_str(text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                .unwrap();
        assert_eq!(data["jobId"], "job-1");
        assert_eq!(data["type"], "noop");
        assert_eq!(data["status"], "pending");
    }

    #[test]
    fn an_update_that_finished_the_job_is_named_by_its_status() {
        let mut e = event(1);
        e.kind = EventKind::Progress;
        e.status = Some(JobStatus::Complete);
        assert_eq!(frame_of(1, &e).name, "completed");
        e.status = Some(JobStatus::Running);
        assert_eq!(frame_of(1, &e).name, "progress");
        e.kind = EventKind::Created;
        e.status = Some(JobStatus::Complete);
        assert_eq!(frame_of(1, &e).name, "completed");
        e.status = Some(JobStatus::Running);
        assert_eq!(frame_of(1, &e).name, "started");
        e.status = Some(JobStatus::Pending);
        assert_eq!(frame_of(1, &e).name, "created");
        e.kind = EventKind::Resynced;
        e.status = None;
        assert_eq!(frame_of(1, &e).name, "resync");
    }

    #[test]
    fn big_jobs_are_trimmed_in_events() {
        let job = semiont_jobs_model::NewJob::custom(
            "t",
            "u",
            json!({ "blob": "x".repeat(MAX_FRAME_DATA) }),
        )
        .unwrap()
        .into_job(JobId::generate(), Timestamp::from_millis(0), 3)
        .unwrap();
        let v = job_for_event(&job).unwrap();
        assert_eq!(v["truncated"], true);
        assert!(v.get("blob").is_none());
        assert_eq!(v["userId"], "u");
    }
}
