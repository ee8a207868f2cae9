//! `/metrics` values change as jobs run (including jobs run through another
//! store instance, as a worker process would).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use semiont_jobs_model::{NewJob, Progress};
use semiont_jobs_queue::JobFailure;
use serde_json::json;

use crate::support::{Sse, TestServer};

async fn scrape(s: &TestServer) -> String {
    let resp = s.req(Method::GET, "/metrics").send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    resp.text().await.unwrap()
}

/// The value of the sample whose name and labels are exactly `series`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series}"))
}

#[tokio::test]
async fn metrics_follow_the_jobs() {
    let s = TestServer::start().await;
    let before = scrape(&s).await;
    assert_eq!(value(&before, "semiont_jobs_jobs{status=\"pending\"}"), 0.0);
    assert_eq!(value(&before, "semiont_jobs_workers"), 0.0);
    assert_eq!(
        value(&before, "semiont_jobs_oldest_due_pending_age_seconds"),
        0.0
    );
    // Every metric family has HELP and TYPE lines.
    for line in before.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(before.contains(&format!("# HELP {name} ")), "{name}");
    }

    // Watch the events so the test knows when the server has seen them.
    let mut events = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    let q = &s.queue;
    let ok = q
        .create_job(NewJob::custom("sleep", "u", json!({})).unwrap())
        .await
        .unwrap();
    let bad = q
        .create_job(NewJob::custom("sleep", "u", json!({})).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await; // some pending wait to measure
    q.register_worker("w-1").await.unwrap();
    let a = q.claim_next_job(["sleep"], "w-1").await.unwrap().unwrap();
    q.update_job_progress_at(&a.id, a.attempt, Progress::percent(10.0))
        .await
        .unwrap();
    q.complete_job_at(&a.id, a.attempt, ()).await.unwrap();
    let b = q.claim_next_job(["sleep"], "w-1").await.unwrap().unwrap();
    q.fail_job_at(&b.id, b.attempt, JobFailure::retryable("flaky"))
        .await
        .unwrap();
    assert_eq!((a.id.clone(), b.id.clone()), (ok.id, bad.id));
    events.until(|e| e.event == "retrying").await;

    let after = scrape(&s).await;
    let t = "type=\"sleep\"";
    assert_eq!(
        value(&after, &format!("semiont_jobs_created_total{{{t}}}")),
        2.0
    );
    assert_eq!(
        value(&after, &format!("semiont_jobs_claimed_total{{{t}}}")),
        2.0
    );
    assert_eq!(
        value(
            &after,
            &format!("semiont_jobs_finished_total{{{t},status=\"complete\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(&after, &format!("semiont_jobs_retried_total{{{t}}}")),
        1.0
    );
    assert_eq!(
        value(
            &after,
            &format!("semiont_jobs_pending_wait_seconds_count{{{t}}}")
        ),
        2.0
    );
    assert!(
        value(
            &after,
            &format!("semiont_jobs_pending_wait_seconds_sum{{{t}}}")
        ) >= 0.02
    );
    assert_eq!(
        value(
            &after,
            &format!("semiont_jobs_run_seconds_count{{{t},outcome=\"complete\"}}")
        ),
        1.0
    );
    assert_eq!(
        value(
            &after,
            &format!("semiont_jobs_run_seconds_count{{{t},outcome=\"retrying\"}}")
        ),
        1.0
    );
    assert_eq!(value(&after, "semiont_jobs_jobs{status=\"complete\"}"), 1.0);
    assert_eq!(value(&after, "semiont_jobs_jobs{status=\"pending\"}"), 1.0);
    assert_eq!(
        value(
            &after,
            &format!("semiont_jobs_type_jobs{{{t},status=\"complete\"}}")
        ),
        1.0
    );
    assert_eq!(value(&after, "semiont_jobs_workers"), 1.0);
    assert_eq!(value(&after, "semiont_jobs_sse_clients"), 1.0);
    assert!(value(&after, "semiont_jobs_events_total") >= 7.0);
    assert!(value(&after, "semiont_jobs_http_responses_total{code=\"200\"}") >= 1.0);
}

#[tokio::test]
async fn oldest_due_pending_age_grows() {
    let s = TestServer::start().await;
    s.queue
        .create_job(NewJob::custom("noop", "u", json!({})).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await; // the age to observe
    let text = scrape(&s).await;
    assert!(value(&text, "semiont_jobs_oldest_due_pending_age_seconds") >= 0.05);
}
