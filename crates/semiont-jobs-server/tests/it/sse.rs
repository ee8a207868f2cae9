//! Event streams over real HTTP: lifecycle events with filters, one job's
//! stream ending at its final status, `Last-Event-ID` replay, `resync` for a
//! lagging client (while a fast client gets everything), keep-alives,
//! changes made by another store instance, and the end of every stream at
//! shutdown.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use semiont_jobs_model::{NewJob, Progress};
use semiont_jobs_queue::JobQueue;
use semiont_jobs_store::Durability;
use semiont_jobs_store_fs::{FsOptions, FsStore};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{assert_problem, config, json_of, noop, Sse, TestServer, WAIT};

async fn run_one(queue: &JobQueue, job_type: &str, worker: &str) {
    queue.register_worker(worker).await.unwrap();
    let job = queue
        .claim_next_job([job_type], worker)
        .await
        .unwrap()
        .unwrap();
    queue
        .update_job_progress_at(&job.id, job.attempt, Progress::percent(50.0))
        .await
        .unwrap();
    queue
        .complete_job_at(&job.id, job.attempt, ())
        .await
        .unwrap();
}

#[tokio::test]
async fn lifecycle_events_with_a_type_filter() {
    let s = TestServer::start().await;
    let mut all = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    let mut only_a = Sse::open(s.req(Method::GET, "/api/v1/events?type=alpha")).await;
    let b = s.create(json!({"type": "beta", "userId": "u"})).await;
    let a = s.create(json!({"type": "alpha", "userId": "u"})).await;
    run_one(&s.queue, "alpha", "w-1").await;

    let seen = only_a.until(|e| e.event == "completed").await;
    let kinds: Vec<&str> = seen.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(kinds, ["created", "started", "progress", "completed"]);
    assert!(seen
        .iter()
        .all(|e| e.data["jobId"] == a["id"] && e.data["type"] == "alpha"));
    assert_eq!(seen[2].data["job"]["progress"]["percentage"], 50.0);
    assert_eq!(seen[3].data["status"], "complete");
    let ids: Vec<u64> = seen.iter().map(|e| e.id.unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    let everything = all.until(|e| e.event == "completed").await;
    assert_eq!(everything[0].data["jobId"], b["id"]);
    assert_eq!(everything.len(), 5);
    assert!(everything.iter().all(|e| e.data["origin"] == "local"));

    for bad in ["type=a%20b", "jobId=..", "userId=", "colour=red"] {
        let resp = s
            .req(Method::GET, &format!("/api/v1/events?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn user_and_job_filters() {
    let s = TestServer::start().await;
    let mut alice = Sse::open(s.req(Method::GET, "/api/v1/events?userId=alice")).await;
    s.create(noop("bob")).await;
    let mine = s.create(noop("alice")).await;
    let id = mine["id"].as_str().unwrap();
    let mut one = Sse::open(s.req(Method::GET, &format!("/api/v1/events?jobId={id}"))).await;
    s.post(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))
        .await;
    let got = alice.until(|e| e.event == "cancelled").await;
    assert_eq!(got.len(), 2);
    assert!(got.iter().all(|e| e.data["userId"] == "alice"));
    let got = one.next_event().await.unwrap();
    assert_eq!(
        (got.event.as_str(), got.data["jobId"].as_str()),
        ("cancelled", Some(id))
    );
}

#[tokio::test]
async fn a_job_stream_starts_with_its_state_and_ends_after_the_final_status() {
    let s = TestServer::start().await;
    let job = s.create(json!({"type": "sleep", "userId": "u"})).await;
    let id = job["id"].as_str().unwrap();
    let mut stream = Sse::open(s.req(Method::GET, &format!("/api/v1/jobs/{id}/events"))).await;
    let first = stream.next_event().await.unwrap();
    assert_eq!(
        (first.event.as_str(), first.data["status"].as_str()),
        ("state", Some("pending"))
    );
    assert_eq!(first.id, None);
    s.create(noop("other")).await; // not this job's
    run_one(&s.queue, "sleep", "w-1").await;
    let mut kinds = Vec::new();
    while let Some(e) = stream.next_event().await {
        kinds.push(e.event);
    }
    assert_eq!(
        kinds,
        ["started", "progress", "completed"],
        "the stream ended after completion"
    );

    // A finished job: its state, then the end.
    let mut done = Sse::open(s.req(Method::GET, &format!("/api/v1/jobs/{id}/events"))).await;
    let state = done.next_event().await.unwrap();
    assert_eq!(state.data["status"], "complete");
    assert!(done.next_event().await.is_none());

    let missing = s
        .req(
            Method::GET,
            "/api/v1/jobs/job-0193c1f0-8a2b-7cde-8f01-23456789abcd/events",
        )
        .send()
        .await
        .unwrap();
    assert_problem(&json_of(missing).await, 404, "not found");
}

#[tokio::test]
async fn last_event_id_replays_exactly_the_missed_events() {
    let s = TestServer::start().await;
    let mut first = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    for _ in 0..3 {
        s.create(noop("u")).await;
    }
    let seen = first.until(|_| true).await;
    let last = seen[0].id.unwrap();
    drop(first);
    // While disconnected: two more creates and a cancel.
    let j4 = s.create(noop("u")).await;
    s.create(noop("u")).await;
    s.post(
        &format!("/api/v1/jobs/{}/cancel", j4["id"].as_str().unwrap()),
        &json!({}),
    )
    .await;

    let mut resumed = Sse::open(
        s.req(Method::GET, "/api/v1/events")
            .header("Last-Event-ID", last.to_string()),
    )
    .await;
    let replayed = resumed.until(|e| e.event == "cancelled").await;
    let ids: Vec<u64> = replayed.iter().map(|e| e.id.unwrap()).collect();
    assert_eq!(ids, (last + 1..=last + 5).collect::<Vec<_>>());
    let kinds: Vec<&str> = replayed.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(
        kinds,
        ["created", "created", "created", "created", "cancelled"]
    );
    // Live events continue after the replay, without duplicates.
    s.create(noop("u")).await;
    let live = resumed.next_event().await.unwrap();
    assert_eq!(live.id, Some(last + 6));

    // An id the server never sent (or no longer keeps): resync.
    let mut stale = Sse::open(
        s.req(Method::GET, "/api/v1/events")
            .header("Last-Event-ID", "12"),
    )
    .await;
    let e = stale.next_event().await.unwrap();
    assert_eq!(
        (e.event.as_str(), e.data["reason"].as_str()),
        ("resync", Some("replay_unavailable"))
    );
    let bad = s
        .req(Method::GET, "/api/v1/events")
        .header("Last-Event-ID", "not-a-number")
        .send()
        .await
        .unwrap();
    assert_problem(&json_of(bad).await, 400, "Last-Event-ID");
}

#[tokio::test]
async fn replay_beyond_the_buffer_resyncs() {
    let s = TestServer::with(config().replay(4, 1 << 20)).await;
    let mut first = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    s.create(noop("u")).await;
    let last = first.next_event().await.unwrap().id.unwrap();
    drop(first);
    for _ in 0..6 {
        s.create(noop("u")).await;
    }
    // Wait until the hub numbered all six (the stats alone do not say).
    let mut probe = Sse::open(
        s.req(Method::GET, "/api/v1/events")
            .header("Last-Event-ID", (last + 6).to_string()),
    )
    .await;
    s.create(noop("u")).await;
    assert_eq!(probe.next_event().await.unwrap().id, Some(last + 7));
    let mut resumed = Sse::open(
        s.req(Method::GET, "/api/v1/events")
            .header("Last-Event-ID", last.to_string()),
    )
    .await;
    let e = resumed.next_event().await.unwrap();
    assert_eq!(e.event, "resync");
    // A job stream whose id is too old: resync, then the job's state.
    let job = s.create(noop("u")).await;
    let mut one = Sse::open(
        s.req(
            Method::GET,
            &format!("/api/v1/jobs/{}/events", job["id"].as_str().unwrap()),
        )
        .header("Last-Event-ID", last.to_string()),
    )
    .await;
    assert_eq!(one.next_event().await.unwrap().event, "resync");
    assert_eq!(one.next_event().await.unwrap().event, "state");
}

/// A client that stops reading falls behind, is sent `resync` when it reads
/// again, and never slowed the client that kept reading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_client_gets_resync_and_never_blocks_others() {
    let s = TestServer::with(config().client_buffer(256)).await;
    // The slow client: a raw socket with a small receive buffer that reads
    // nothing while the burst is sent.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut slow = socket.connect(s.addr).await.unwrap();
    slow.write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {}\r\n\r\n", s.addr).as_bytes())
        .await
        .unwrap();
    let mut head = vec![0u8; 256];
    let n = slow.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));

    let mut fast = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    // About 30 MB of events (each carries a 14 KiB job): far more than the
    // socket buffers hold. Sent in rounds the fast client reads completely,
    // so it stays within its buffer while the slow one falls behind.
    let params = json!({ "blob": "x".repeat(14 << 10) });
    for _round in 0..20 {
        for _ in 0..100 {
            s.queue
                .create_job(NewJob::custom("big", "u", params.clone()).unwrap())
                .await
                .unwrap();
        }
        let mut got = 0;
        while got < 100 {
            let e = fast
                .next_event()
                .await
                .expect("the fast client keeps receiving");
            assert_eq!(e.event, "created", "the fast client never lags");
            got += 1;
        }
    }

    // Now the slow client reads: somewhere in its stream is a resync.
    let mut tail = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = slow.read(&mut buf).await.unwrap();
            assert!(n > 0, "stream closed");
            // Keep only what a match could still start in.
            let keep = tail.len().saturating_sub(64);
            tail.drain(..keep);
            tail.extend_from_slice(&buf[..n]);
            if let Some(at) = find(&tail, b"event: resync\n") {
                // Read on until the data line is complete.
                while !tail[at..].windows(2).any(|w| w == b"\n\n") {
                    let n = slow.read(&mut buf).await.unwrap();
                    tail.extend_from_slice(&buf[..n]);
                }
                return String::from_utf8_lossy(&tail[at..]).into_owned();
            }
        }
    })
    .await
    .expect("a resync reaches the slow client");
    assert!(
        found.contains("\"reason\":\"lagged\""),
        "resync says why: {found}"
    );
    // The server still serves.
    assert_eq!(s.get("/api/v1/stats").await.0, StatusCode::OK);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn keep_alive_comments_flow_on_an_idle_stream() {
    let s = TestServer::with(config().keep_alive(Duration::from_millis(100))).await;
    let mut stream = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    let prelude = stream.next_block().await.unwrap();
    assert!(prelude
        .comments
        .iter()
        .any(|c| c.contains("semiont-jobs events")));
    let mut keep_alives = 0;
    while keep_alives < 3 {
        let b = stream.next_block().await.unwrap();
        assert!(b.event.is_empty(), "no events on an idle queue: {b:?}");
        keep_alives += usize::from(b.comments.iter().any(|c| c == "keep-alive"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_by_another_store_instance_are_streamed_as_external() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("jobs");
    let opts = || FsOptions::default().durability(Durability::None);
    let served = FsStore::open(&dir, opts()).await.unwrap();
    let other = FsStore::open(&dir, opts()).await.unwrap();
    let queue = JobQueue::builder().store(Arc::new(served)).build().unwrap();
    let s = TestServer::on(queue, config()).await;
    let elsewhere = JobQueue::builder().store(Arc::new(other)).build().unwrap();

    let mut stream = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    let job = elsewhere
        .create_job(NewJob::custom("sleep", "u", json!({})).unwrap())
        .await
        .unwrap();
    let created = stream.until(|e| e.data["jobId"] == job.id.as_str()).await;
    assert_eq!(created.last().unwrap().event, "created");
    let mut job_stream =
        Sse::open(s.req(Method::GET, &format!("/api/v1/jobs/{}/events", job.id))).await;
    assert_eq!(job_stream.next_event().await.unwrap().event, "state");
    run_one(&elsewhere, "sleep", "w-elsewhere").await;
    // The watcher may see the claim, progress and completion as fewer
    // changes; the last one says complete.
    let seen = stream.until(|e| e.data["status"] == "complete").await;
    assert_eq!(seen.last().unwrap().event, "completed");
    assert!(seen
        .iter()
        .chain(&created)
        .all(|e| e.data["origin"] == "external"));
    let last = job_stream.until(|e| e.data["status"] == "complete").await;
    assert_eq!(last.last().unwrap().event, "completed");
    assert!(
        job_stream.next_event().await.is_none(),
        "the job stream ended"
    );
}

#[tokio::test]
async fn shutdown_ends_event_streams() {
    let s = TestServer::start().await;
    let mut stream = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    stream.next_block().await.unwrap();
    s.state.shutdown();
    assert!(stream.next_event().await.is_none(), "the stream ends");
    s.join().await;
}
