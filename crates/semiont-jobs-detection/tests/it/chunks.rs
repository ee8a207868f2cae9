//! Model-based detection over long documents against a stub server whose
//! answers depend on the chunk asked about: overlap and boundaries,
//! truncated answers, context overflow, malformed chunks among good ones,
//! concurrency and progress, and retry timing through the worker runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_content::inference::{HttpOptions, OllamaClient, OllamaConfig};
use semiont_jobs_content::testing::{Recorded, Reply, StubServer};
use semiont_jobs_content::text::TextIndex;
use semiont_jobs_content::InferenceClient;
use semiont_jobs_detection::{
    Backend, DetectionWorker, Detector, Error, ModelOptions, Resume, TypeCursor,
};
use semiont_jobs_model::{
    DetectionProgress, DetectionResult, JobId, JobStatus, NewJob, RetryPolicy, Timestamp,
};
use semiont_jobs_queue::JobQueue;
use semiont_jobs_store::MemoryStore;
use semiont_jobs_worker::{Worker, WorkerOptions};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{assert_selectors_match, params, Fixture};

const NAMES: [&str; 2] = ["Zoë Müller", "Tobias Kessler"];
const PARAGRAPHS: usize = 20;

/// Twenty paragraphs of about 120 characters, each naming both people once;
/// paragraph 7 carries the marker word `Quillwort` in its middle.
fn document() -> String {
    (0..PARAGRAPHS)
        .map(|i| {
            let marker = if i == 7 { " Quillwort" } else { "" };
            format!(
                "Day {i}: Zoë Müller met Tobias Kessler in Kraków.{marker} The talks went on for hours, and both of them took notes.\n\n"
            )
        })
        .collect()
}

fn expected_mentions(text: &str) -> usize {
    NAMES.iter().map(|n| text.matches(n).count()).sum()
}

/// The document text of a detection request.
fn chunk_of(r: &Recorded) -> String {
    let prompt = r.body["messages"][1]["content"].as_str().unwrap_or("");
    let start = prompt.find("<<<\n").map_or(0, |i| i + 4);
    let end = prompt.rfind("\n>>>").unwrap_or(prompt.len());
    prompt[start..end.max(start)].to_owned()
}

/// Every occurrence of the names in `chunk`, with character offsets.
fn entities(chunk: &str) -> Vec<Value> {
    let idx = TextIndex::new(chunk);
    let mut out = Vec::new();
    for name in NAMES {
        for (b, m) in chunk.match_indices(name) {
            let r = idx.bytes_to_chars(b..b + m.len()).unwrap();
            out.push(json!({"text": name, "start": r.start, "end": r.end}));
        }
    }
    out
}

fn finder(r: &Recorded) -> Reply {
    Reply::ollama_chat(&json!({ "entities": entities(&chunk_of(r)) }).to_string())
}

fn client(stub: &StubServer) -> Arc<dyn InferenceClient> {
    Arc::new(
        OllamaClient::new(
            OllamaConfig::new("stub")
                .base_url(stub.base_url())
                .http(HttpOptions {
                    connect_timeout: Duration::from_secs(2),
                    read_timeout: Duration::from_secs(10),
                    request_timeout: None,
                }),
        )
        .unwrap(),
    )
}

fn options(stub: &StubServer) -> ModelOptions {
    ModelOptions {
        chunk_chars: 600,
        overlap_chars: 60,
        min_chunk_chars: 100,
        ..ModelOptions::new(client(stub))
    }
}

async fn detect(
    fx: &Fixture,
    opts: ModelOptions,
    progress: &mut Vec<DetectionProgress>,
) -> Result<DetectionResult, Error> {
    Detector::new(
        fx.resources.clone(),
        fx.annotations.clone(),
        Backend::Model(opts),
    )
    .run(
        &JobId::generate(),
        &params("doc", &["Person"]),
        &mut |p| progress.push(p),
        &CancellationToken::new(),
    )
    .await
}

/// The annotations' (start, quote) pairs, after checking their selectors.
async fn found(fx: &Fixture, text: &str) -> Vec<(u64, String)> {
    let anns = fx.annotations_of("doc").await;
    for a in &anns {
        assert_selectors_match(text, a);
    }
    let mut got: Vec<(u64, String)> = anns
        .iter()
        .map(|a| {
            (
                a.target.position().unwrap().start,
                a.target.quote().unwrap().exact.clone(),
            )
        })
        .collect();
    got.sort();
    got
}

#[tokio::test]
async fn overlapping_chunks_find_each_mention_once() {
    let text = document();
    let fx = Fixture::new().await;
    fx.add_doc("doc", &text).await;
    let stub = StubServer::start().await.unwrap();
    stub.respond_with(finder);
    let mut progress = Vec::new();
    let r = detect(&fx, options(&stub), &mut progress).await.unwrap();
    let want = expected_mentions(&text);
    assert_eq!(
        (r.total_found, r.total_emitted, r.errors),
        (want as u64, want as u64, 0)
    );
    let got = found(&fx, &text).await;
    assert_eq!(got.len(), want);
    let mut starts: Vec<u64> = got.iter().map(|g| g.0).collect();
    starts.dedup();
    assert_eq!(starts.len(), want, "no mention twice");
    // The chunks overlap: together they saw more mentions than there are.
    let requests = stub.requests();
    assert!(requests.len() > 3, "{}", requests.len());
    let seen: usize = requests.iter().map(|q| entities(&chunk_of(q)).len()).sum();
    assert!(seen > want, "{seen} seen, {want} in the text");
    for q in &requests {
        assert!(chunk_of(q).chars().count() <= 600);
    }
    assert_eq!(r.chunks, Some(requests.len() as u64));
    // Progress counts chunks of the type, in order, up to the total.
    let chunked: Vec<(u32, u32)> = progress
        .iter()
        .filter_map(|p| Some((p.processed_chunks?, p.total_chunks?)))
        .collect();
    let total = requests.len() as u32;
    assert_eq!(chunked.first(), Some(&(0, total)));
    assert_eq!(chunked.last(), Some(&(total, total)));
    assert!(chunked.windows(2).all(|w| w[0].0 <= w[1].0));
}

#[tokio::test]
async fn a_truncated_answer_is_asked_again_in_halves_and_later_chunks_start_smaller() {
    let text = document();
    let fx = Fixture::new().await;
    fx.add_doc("doc", &text).await;
    let stub = StubServer::start().await.unwrap();
    let cut_off = Arc::new(AtomicUsize::new(0));
    stub.respond_with({
        let cut_off = Arc::clone(&cut_off);
        move |r| {
            if chunk_of(r).chars().count() > 400 {
                cut_off.fetch_add(1, Ordering::SeqCst);
                Reply::ollama_chat_truncated(r#"{"entities": [{"text": "Zoë Mü"#)
            } else {
                finder(r)
            }
        }
    });
    let r = detect(&fx, options(&stub), &mut Vec::new()).await.unwrap();
    let want = expected_mentions(&text);
    assert_eq!((r.total_found, r.errors), (want as u64, 0), "{r:?}");
    assert_eq!(found(&fx, &text).await.len(), want);
    // Only the first chunk was cut off; the others were sent at the size
    // that worked.
    assert_eq!(cut_off.load(Ordering::SeqCst), 1);
    assert!(r.model_calls.unwrap() > r.chunks.unwrap());
}

#[tokio::test]
async fn an_answer_still_truncated_at_the_floor_counts_as_truncated_and_keeps_its_complete_items() {
    let text = "Day 0: Zoë Müller met Tobias Kessler in Kraków. The talks went on for hours.";
    let fx = Fixture::new().await;
    fx.add_doc("doc", text).await;
    let stub = StubServer::start().await.unwrap();
    stub.respond_with(|_| {
        Reply::ollama_chat_truncated(
            r#"{"entities": [{"text": "Zoë Müller", "start": 7, "end": 17}, {"text": "Tobias Kes"#,
        )
    });
    let r = detect(&fx, options(&stub), &mut Vec::new()).await.unwrap();
    assert_eq!(
        r.error_classes,
        [("TRUNCATED".to_owned(), 1)].into(),
        "{r:?}"
    );
    assert_eq!(r.errors, 1);
    assert_eq!(found(&fx, text).await, [(7, "Zoë Müller".to_owned())]);
    assert_eq!(stub.requests().len(), 1, "too small to halve");
}

#[tokio::test]
async fn a_context_overflow_halves_the_chunk() {
    let text = document();
    let fx = Fixture::new().await;
    fx.add_doc("doc", &text).await;
    let stub = StubServer::start().await.unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    stub.respond_with({
        let refused = Arc::clone(&refused);
        move |r| {
            if chunk_of(r).chars().count() > 400 {
                refused.fetch_add(1, Ordering::SeqCst);
                Reply::raw(
                    400,
                    r#"{"error":{"code":400,"message":"request (700 tokens) exceeds the available context size (512 tokens)","type":"exceed_context_size_error"}}"#,
                )
            } else {
                finder(r)
            }
        }
    });
    let r = detect(&fx, options(&stub), &mut Vec::new()).await.unwrap();
    let want = expected_mentions(&text);
    assert_eq!((r.total_found, r.errors), (want as u64, 0), "{r:?}");
    assert_eq!(found(&fx, &text).await.len(), want);
    assert_eq!(refused.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_context_too_small_for_the_smallest_chunk_fails_the_job_permanently() {
    let fx = Fixture::new().await;
    fx.add_doc("doc", &document()).await;
    let stub = StubServer::start().await.unwrap();
    stub.respond_with(|_| {
        Reply::error(
            400,
            "This model's maximum context length is 256 tokens. However, you requested 900 tokens.",
        )
    });
    let e = detect(&fx, options(&stub), &mut Vec::new())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ContextTooSmall { .. }), "{e}");
    assert_eq!(e.code(), "CONTEXT_EXCEEDED");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("--model-context"), "{e}");
}

#[tokio::test]
async fn a_malformed_chunk_among_good_ones_costs_only_that_chunk() {
    let text = document();
    let fx = Fixture::new().await;
    fx.add_doc("doc", &text).await;
    let stub = StubServer::start().await.unwrap();
    stub.respond_with(|r| {
        if chunk_of(r).contains("Quillwort") {
            Reply::ollama_chat("Sure! The people are Zoë Müller and Tobias Kessler.")
        } else {
            finder(r)
        }
    });
    let r = detect(&fx, options(&stub), &mut Vec::new()).await.unwrap();
    assert_eq!(
        r.error_classes,
        [("MALFORMED_OUTPUT".to_owned(), 1)].into(),
        "{r:?}"
    );
    let requests = stub.requests();
    let bad = requests
        .iter()
        .filter(|q| chunk_of(q).contains("Quillwort"))
        .count();
    assert_eq!(bad, 2, "the bad chunk is asked twice");
    assert_eq!(r.chunks, Some((requests.len() - 1) as u64));
    // Mentions before and after the bad chunk are kept.
    let got = found(&fx, &text).await;
    let marker = text.find("Quillwort").unwrap() as u64;
    assert!(got.iter().any(|g| g.0 < marker) && got.iter().any(|g| g.0 > marker + 200));
    let want = expected_mentions(&text);
    assert!(
        got.len() < want && got.len() >= want - 8,
        "{} of {want}",
        got.len()
    );
}

#[tokio::test]
async fn one_malformed_answer_is_retried_and_recovered() {
    let text = document();
    let fx = Fixture::new().await;
    fx.add_doc("doc", &text).await;
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::ollama_chat("no JSON here"));
    stub.respond_with(finder);
    let r = detect(&fx, options(&stub), &mut Vec::new()).await.unwrap();
    assert_eq!(r.errors, 0);
    assert_eq!(found(&fx, &text).await.len(), expected_mentions(&text));
    assert_eq!(r.model_calls, Some(r.chunks.unwrap() + 1));
}

#[tokio::test]
async fn concurrent_model_calls_give_the_same_annotations_in_order() {
    let text = document();
    let fx = Fixture::new().await;
    fx.add_doc("doc", &text).await;
    let stub = StubServer::start().await.unwrap();
    stub.respond_with(|r| finder(r).delayed(Duration::from_millis(100)));
    let mut progress = Vec::new();
    let opts = ModelOptions {
        concurrency: 3,
        ..options(&stub)
    };
    let r = detect(&fx, opts, &mut progress).await.unwrap();
    assert_eq!(found(&fx, &text).await.len(), expected_mentions(&text));
    assert_eq!(r.errors, 0);
    assert_eq!(stub.max_in_flight(), 3);
    let done: Vec<u32> = progress.iter().filter_map(|p| p.processed_chunks).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
}

/// The time the job went back to pending after its first failure, and the
/// job then.
async fn first_retry(
    queue: &JobQueue,
    id: &semiont_jobs_model::JobId,
) -> (Timestamp, semiont_jobs_model::Job) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut events = queue.subscribe().only_job(id.clone());
    loop {
        let job = queue.get_job(id).await.unwrap();
        if job.status == JobStatus::Pending && job.retry_count == 1 {
            return (Timestamp::now(), job);
        }
        assert!(tokio::time::Instant::now() < deadline, "no retry: {job:?}");
        let _ = tokio::time::timeout(Duration::from_millis(50), events.recv()).await;
    }
}

/// Runs one detection job through the worker runtime against `reply` and
/// returns how long after its failure the job is due again.
async fn retry_wait(reply: Reply, read_timeout: Duration) -> (Duration, String) {
    let fx = Fixture::new().await;
    fx.add_doc("doc", "Zoë Müller visited Kraków.").await;
    let stub = StubServer::start().await.unwrap();
    stub.set_fallback(reply);
    let client =
        Arc::new(
            OllamaClient::new(OllamaConfig::new("stub").base_url(stub.base_url()).http(
                HttpOptions {
                    connect_timeout: Duration::from_secs(2),
                    read_timeout,
                    request_timeout: None,
                },
            ))
            .unwrap(),
        );
    let detector = Detector::new(
        fx.resources.clone(),
        fx.annotations.clone(),
        Backend::Model(ModelOptions::new(client)),
    );
    let queue = JobQueue::builder()
        .store(Arc::new(MemoryStore::new()))
        .retry_policy(RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_secs(600),
            jitter: 0.0,
        })
        .build()
        .unwrap();
    queue.initialize().await.unwrap();
    let job = queue
        .create_job(NewJob::detection("u1", "doc", ["Person"]).max_retries(3))
        .await
        .unwrap();
    let worker = Worker::new(
        queue.clone(),
        DetectionWorker::new(detector),
        WorkerOptions::default().poll_interval(Duration::from_millis(20)),
    );
    let running = tokio::spawn({
        let w = worker.clone();
        async move { w.start().await }
    });
    let (seen_at, retried) = first_retry(&queue, &job.id).await;
    worker.stop().await;
    running.await.unwrap().unwrap();
    let due = retried.run_at.expect("a retry has runAt");
    (due.since(seen_at), retried.error.unwrap_or_default())
}

#[tokio::test]
async fn retries_wait_by_cause_through_the_worker_runtime() {
    // 429 with Retry-After: the job is not due for 30 s (the policy alone
    // would retry after 1 ms).
    let (wait, error) = retry_wait(
        Reply::error(429, "busy").header("retry-after", "30"),
        Duration::from_secs(5),
    )
    .await;
    assert!(wait > Duration::from_secs(25), "{wait:?} {error}");
    assert!(error.starts_with("RATE_LIMITED: "), "{error}");
    // A read timeout: the job waits about as long as the read timeout,
    // while the abandoned request may still occupy the server.
    let (wait, error) = retry_wait(
        Reply::ollama_chat("{}").delayed(Duration::from_secs(30)),
        Duration::from_millis(1500),
    )
    .await;
    assert!(wait > Duration::from_millis(1000), "{wait:?} {error}");
    assert!(error.starts_with("TIMEOUT: "), "{error}");
    assert!(error.contains("waiting for the answer"), "{error}");
}

/// Checkpoints kept in memory, as the job runtime keeps them on the job:
/// finished types, the totals, and the cursor of a type stopped inside.
/// `stop_after` chunks this attempt, it reports the job lost.
#[derive(Default)]
struct Saved {
    done: Vec<String>,
    totals: DetectionResult,
    cursors: std::collections::HashMap<String, TypeCursor>,
    stop_after: Option<usize>,
    chunks_this_attempt: usize,
}

#[async_trait::async_trait]
impl Resume for Saved {
    fn is_done(&self, entity_type: &str) -> bool {
        self.done.iter().any(|t| t == entity_type)
    }
    fn totals(&self) -> DetectionResult {
        self.totals.clone()
    }
    async fn type_done(&mut self, entity_type: &str, totals: &DetectionResult, _: u32) -> bool {
        self.done.push(entity_type.to_owned());
        self.cursors.remove(entity_type);
        self.totals = totals.clone();
        true
    }
    fn type_cursor(&self, entity_type: &str) -> Option<TypeCursor> {
        self.cursors.get(entity_type).cloned()
    }
    async fn chunk_done(&mut self, entity_type: &str, cursor: &TypeCursor) -> bool {
        self.cursors.insert(entity_type.to_owned(), cursor.clone());
        self.chunks_this_attempt += 1;
        self.stop_after != Some(self.chunks_this_attempt)
    }
}

/// One attempt of a `Person` detection of `doc` resuming from `saved`.
async fn resume_run(
    detector: &Detector,
    job: &JobId,
    saved: &mut Saved,
    progress: &mut Vec<DetectionProgress>,
) -> Result<DetectionResult, Error> {
    detector
        .run_resumable(
            job,
            &params("doc", &["Person"]),
            &mut |p| progress.push(p),
            &CancellationToken::new(),
            saved,
        )
        .await
}

#[tokio::test]
async fn a_retry_resumes_inside_a_type_from_the_last_finished_chunk() {
    let text = document();
    let fx = Fixture::new().await;
    fx.add_doc("doc", &text).await;
    let stub = StubServer::start().await.unwrap();
    stub.respond_with(finder);
    let detector = Detector::new(
        fx.resources.clone(),
        fx.annotations.clone(),
        Backend::Model(options(&stub)),
    );
    let job = JobId::generate();
    let mut saved = Saved {
        stop_after: Some(3),
        ..Saved::default()
    };
    let mut progress = Vec::new();
    let err = resume_run(&detector, &job, &mut saved, &mut progress)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Cancelled { .. }), "{err}");
    let first_calls = stub.requests().len();
    let cursor = saved
        .cursors
        .get("Person")
        .cloned()
        .expect("a cursor inside Person");
    assert_eq!(cursor.chunks_done, 3);
    assert_eq!(cursor.chunk_chars, 600);
    assert!(cursor.done_chars > 0 && (cursor.done_chars as usize) < text.chars().count());
    let found_before = found(&fx, &text).await.len() as u64;
    assert!(found_before > 0);
    assert_eq!(cursor.totals.total_emitted, found_before);
    assert_eq!(cursor.totals.chunks, Some(3));

    // The retry asks only for the text after the cursor, ...
    saved.stop_after = None;
    saved.chunks_this_attempt = 0;
    let mut progress = Vec::new();
    let r = resume_run(&detector, &job, &mut saved, &mut progress)
        .await
        .unwrap();
    let requests = stub.requests();
    let retry = &requests[first_calls..];
    let done_text: String = text.chars().take(cursor.done_chars as usize).collect();
    let margin = 30; // half the overlap
    for q in retry {
        let chunk = chunk_of(q);
        let at = text.find(&chunk).expect("a chunk is a piece of the text");
        assert!(
            at + margin >= done_text.len(),
            "asked again for text before the cursor: {chunk:?}"
        );
    }
    // ... finds every mention once, and counts both attempts.
    let want = expected_mentions(&text) as u64;
    assert_eq!(found(&fx, &text).await.len() as u64, want);
    assert_eq!((r.total_found, r.total_emitted, r.errors), (want, want, 0));
    assert_eq!(r.chunks, Some(requests.len() as u64));
    assert_eq!(r.model_calls, Some(requests.len() as u64));
    // Progress goes on from the chunks done before.
    let chunked: Vec<(u32, u32)> = progress
        .iter()
        .filter_map(|p| Some((p.processed_chunks?, p.total_chunks?)))
        .collect();
    let total = requests.len() as u32;
    assert_eq!(chunked.first(), Some(&(3, total)));
    assert_eq!(chunked.last(), Some(&(total, total)));
    assert!(saved.cursors.is_empty(), "a finished type drops its cursor");
    assert_eq!(saved.done, ["Person"]);
}
