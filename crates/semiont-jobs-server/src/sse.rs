//! Server-Sent Events: `GET /api/v1/events` (every lifecycle change,
//! filterable by type, user and job) and `GET /api/v1/jobs/{id}/events` (one
//! job's status and progress, ending after a final status). Replay from
//! `Last-Event-ID`, `resync` when events were lost, keep-alive comments,
//! and an end to every stream at shutdown.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use semiont_jobs_model::{Job, JobId, JobType};
use semiont_jobs_queue::JobQueue;
use serde_json::{json, Value};
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::auth::ReadAccess;
use crate::extract::{JobIdPath, LastEventId, QueryMap};
use crate::hub::{job_for_event, resync_data, Frame, Replay};
use crate::jobs::validate_user;
use crate::{AppState, Error, Result};

/// Most bytes sent in one chunk (frames waiting together are batched).
const MAX_CHUNK: usize = 64 << 10;
/// The first bytes of every stream: a comment (the stream is open) and the
/// reconnection delay browsers should use.
const PRELUDE: &[u8] = b": semiont-jobs events\nretry: 2000\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Which events a client wants.
#[derive(Debug, Default)]
struct EventFilter {
    job_type: Option<JobType>,
    user_id: Option<String>,
    job_id: Option<JobId>,
}

impl EventFilter {
    fn from_query(query: Option<&str>) -> Result<Self> {
        let q = QueryMap::parse(query, &["type", "userId", "jobId"])?;
        let mut f = EventFilter::default();
        if let Some(t) = q.get("type") {
            f.job_type = Some(JobType::parse(t).map_err(|e| Error::invalid(e.to_string()))?);
        }
        if let Some(u) = q.get("userId") {
            validate_user(u)?;
            f.user_id = Some(u.to_owned());
        }
        if let Some(j) = q.get("jobId") {
            f.job_id = Some(JobId::parse(j).map_err(|e| Error::invalid(e.to_string()))?);
        }
        Ok(f)
    }

    /// Whether the frame passes. Frames about no job (a store resync) pass
    /// every filter: they concern everyone.
    fn matches(&self, f: &Frame) -> bool {
        if f.job_id.is_none() {
            return true;
        }
        self.job_id
            .as_ref()
            .is_none_or(|want| f.job_id.as_ref() == Some(want))
            && self
                .job_type
                .as_ref()
                .is_none_or(|want| f.job_type.as_ref() == Some(want))
            && self
                .user_id
                .as_deref()
                .is_none_or(|want| f.user_id.as_deref() == Some(want))
    }
}

/// One client's stream.
struct ClientStream {
    rx: broadcast::Receiver<Arc<Frame>>,
    prelude: VecDeque<Bytes>,
    replay: VecDeque<Arc<Frame>>,
    filter: EventFilter,
    /// The last numbered event sent (never send it or an older one again).
    last_seq: u64,
    /// Single-job streams: the queue to re-read the job after a lag, and
    /// the stream ends after the job's final status.
    single: Option<JobQueue>,
    /// No more events after what is queued.
    done: bool,
    /// A single-job stream passed on a store resync: send the job's state.
    needs_state: bool,
    keep_alive: Interval,
    shutdown: CancellationToken,
}

fn state_frame(job: &Job) -> Bytes {
    let data = json!({
        "kind": "state",
        "jobId": job.id.as_str(),
        "status": job.status.as_str(),
        "type": job.job_type.as_str(),
        "userId": job.user_id,
        "job": job_for_event(job),
    });
    Frame::local("state", &data).bytes
}

impl ClientStream {
    fn new(
        state: &AppState,
        rx: broadcast::Receiver<Arc<Frame>>,
        filter: EventFilter,
        single: Option<JobQueue>,
    ) -> Self {
        let every = state.config().keep_alive;
        let mut keep_alive = tokio::time::interval_at(Instant::now() + every, every);
        keep_alive.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ClientStream {
            rx,
            prelude: VecDeque::from([Bytes::from_static(PRELUDE)]),
            replay: VecDeque::new(),
            filter,
            last_seq: 0,
            single,
            done: false,
            needs_state: false,
            keep_alive,
            shutdown: state.shutdown_token().clone(),
        }
    }

    /// Adds a frame to `out` if the client wants it; ends a single-job
    /// stream at the job's final status.
    fn push(&mut self, frame: &Frame, out: &mut Vec<u8>) {
        if frame.seq.is_some_and(|s| s <= self.last_seq) || !self.filter.matches(frame) {
            return;
        }
        if let Some(seq) = frame.seq {
            self.last_seq = seq;
        }
        out.extend_from_slice(&frame.bytes);
        if self.single.is_some() {
            if frame.job_id.is_none() {
                self.needs_state = true;
            } else if frame.is_final() {
                self.done = true;
            }
        }
    }

    /// After lost events: tell the client, and for a single-job stream send
    /// the job as it is now (ending the stream if it finished).
    async fn lagged(&mut self, missed: u64) -> Bytes {
        let mut out = Frame::local("resync", &resync_data("lagged", missed))
            .bytes
            .to_vec();
        self.needs_state = true;
        self.append_state(&mut out).await;
        Bytes::from(out)
    }

    /// For a single-job stream that lost track: the job as it is now; the
    /// stream ends if it finished (or is gone).
    async fn append_state(&mut self, out: &mut Vec<u8>) {
        if !std::mem::take(&mut self.needs_state) {
            return;
        }
        if let (Some(queue), Some(id)) = (&self.single, &self.filter.job_id) {
            match queue.get_job(id).await {
                Ok(job) => {
                    out.extend_from_slice(&state_frame(&job));
                    self.done = job.status.is_finished();
                }
                Err(_) => self.done = true,
            }
        }
    }

    /// The next chunk of the response body, or `None` to end it.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if let Some(b) = self.prelude.pop_front() {
            return Some(b);
        }
        let mut out = Vec::new();
        while let Some(frame) = self.replay.pop_front() {
            self.push(&frame, &mut out);
            if self.done || out.len() >= MAX_CHUNK {
                break;
            }
        }
        self.append_state(&mut out).await;
        if !out.is_empty() {
            return Some(Bytes::from(out));
        }
        if self.done {
            return None;
        }
        loop {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                received = self.rx.recv() => match received {
                    Ok(frame) => {
                        self.push(&frame, &mut out);
                        // Batch what else is waiting.
                        while !self.done && out.len() < MAX_CHUNK {
                            match self.rx.try_recv() {
                                Ok(frame) => self.push(&frame, &mut out),
                                Err(TryRecvError::Lagged(missed)) => {
                                    let resync = self.lagged(missed).await;
                                    out.extend_from_slice(&resync);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        self.append_state(&mut out).await;
                        if !out.is_empty() {
                            return Some(Bytes::from(out));
                        }
                    }
                    Err(RecvError::Lagged(missed)) => return Some(self.lagged(missed).await),
                    Err(RecvError::Closed) => return None,
                },
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(KEEP_ALIVE)),
            }
        }
    }

    fn into_response(self) -> Response {
        let stream = futures_util::stream::unfold(self, |mut s| async move {
            let chunk = s.next_chunk().await?;
            Some((Ok::<Bytes, Infallible>(chunk), s))
        });
        let mut response = Body::from_stream(stream).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        response
    }
}

fn gap_frame() -> Bytes {
    Frame::local(
        "resync",
        &json!({ "kind": "resync", "reason": "replay_unavailable", "missed": Value::Null }),
    )
    .bytes
}

/// `GET /api/v1/events`.
pub(crate) async fn events(
    State(state): State<AppState>,
    _: ReadAccess,
    RawQuery(query): RawQuery,
    LastEventId(last): LastEventId,
) -> Result<Response> {
    let filter = EventFilter::from_query(query.as_deref())?;
    let (rx, replay) = state.hub().subscribe(last);
    let mut stream = ClientStream::new(&state, rx, filter, None);
    match replay {
        Replay::Live => {}
        Replay::Frames(frames) => stream.replay = frames.into(),
        Replay::Gap => stream.prelude.push_back(gap_frame()),
    }
    Ok(stream.into_response())
}

/// `GET /api/v1/jobs/{id}/events`.
pub(crate) async fn job_events(
    State(state): State<AppState>,
    _: ReadAccess,
    JobIdPath(id): JobIdPath,
    RawQuery(query): RawQuery,
    LastEventId(last): LastEventId,
) -> Result<Response> {
    QueryMap::parse(query.as_deref(), &[])?;
    // Subscribe first, then read: nothing between the read and the live
    // events is missed.
    let (rx, replay) = state.hub().subscribe(last);
    let job = state.queue().get_job(&id).await?;
    let filter = EventFilter {
        job_id: Some(id),
        ..EventFilter::default()
    };
    let mut stream = ClientStream::new(&state, rx, filter, Some(state.queue().clone()));
    let finished = job.status.is_finished();
    match replay {
        Replay::Frames(frames) => {
            let frames: VecDeque<Arc<Frame>> = frames
                .into_iter()
                .filter(|f| stream.filter.matches(f) && f.job_id.is_some())
                .collect();
            if finished && !frames.iter().any(|f| f.is_final()) {
                // The final event is older than the buffer or the client's
                // id: send the job as it is, then end.
                stream.prelude.push_back(state_frame(&job));
                stream.done = true;
            } else {
                stream.replay = frames;
            }
        }
        Replay::Live | Replay::Gap => {
            if matches!(replay, Replay::Gap) {
                stream.prelude.push_back(gap_frame());
            }
            stream.prelude.push_back(state_frame(&job));
            stream.done = finished;
        }
    }
    Ok(stream.into_response())
}
