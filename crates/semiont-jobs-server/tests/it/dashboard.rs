//! The dashboard's files (embedded, with their Content-Security-Policy, at
//! the root and under a base path) and the history endpoint its charts read.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use semiont_jobs_queue::JobFailure;
use semiont_jobs_server::{Tokens, CSP};
use serde_json::Value;

use crate::support::{config, seed, TestServer};

async fn fetch(s: &TestServer, path: &str) -> (StatusCode, String, String, String) {
    let resp = s.req(Method::GET, path).send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (ct, csp) = (header("content-type"), header("content-security-policy"));
    (resp.status(), ct, csp, resp.text().await.unwrap())
}

#[tokio::test]
async fn the_page_and_its_modules_are_served_with_the_csp() {
    let s = TestServer::start().await;
    let (status, ct, csp, page) = fetch(&s, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ct, "text/html; charset=utf-8");
    assert_eq!(csp, CSP);
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(
        page.contains(r#"<meta name="semiont-base" content="">"#),
        "{page}"
    );
    assert!(page.contains(r#"<meta name="semiont-auth" content="none">"#));
    assert!(page.contains(r#"src="/assets/app.js""#), "{page}");
    for (file, want) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("overview.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let (status, ct, csp, body) = fetch(&s, &format!("/assets/{file}")).await;
        assert_eq!(
            (status, ct.as_str(), csp.as_str()),
            (StatusCode::OK, want, CSP),
            "{file}"
        );
        assert!(!body.is_empty());
    }
    let (status, ct, _, body) = fetch(&s, "/assets/..%2Fsrc%2Flib.rs").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(ct.starts_with("application/problem+json"), "{ct}");
    let (status, _, _, _) = fetch(&s, "/assets/nope.js").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn under_a_base_path_the_page_names_it_and_says_a_token_is_needed() {
    let tokens = Tokens::parse("read:read-token-0123456789", "test").unwrap();
    let s = TestServer::with(config().base_path("/ops/queue").tokens(tokens)).await;
    for path in ["", "/"] {
        let (status, _, csp, page) = fetch(&s, path).await;
        assert_eq!((status, csp.as_str()), (StatusCode::OK, CSP), "{path:?}");
        assert!(page.contains(r#"<meta name="semiont-base" content="/ops/queue">"#));
        assert!(page.contains(r#"<meta name="semiont-auth" content="required">"#));
        assert!(page.contains(r#"src="/ops/queue/assets/app.js""#));
    }
    // The files need no token; the API does.
    assert_eq!(fetch(&s, "/assets/jobs.js").await.0, StatusCode::OK);
    assert_eq!(fetch(&s, "/api/v1/stats").await.0, StatusCode::UNAUTHORIZED);
    let root = s
        .client
        .get(format!("http://{}/", s.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn history_counts_finished_jobs_in_the_current_minute() {
    let s = TestServer::start().await;
    let jobs = seed(&s.queue, 3, "u").await;
    // One completes, one fails for good, one is cancelled.
    for (i, job) in jobs.iter().enumerate() {
        if i == 2 {
            s.queue.cancel_job(&job.id).await.unwrap();
            continue;
        }
        let claimed = s
            .queue
            .claim_next_job(["noop"], "w-1")
            .await
            .unwrap()
            .unwrap();
        if i == 0 {
            s.queue
                .complete_job(&claimed.id, Value::Null)
                .await
                .unwrap();
        } else {
            s.queue
                .fail_job_at(
                    &claimed.id,
                    claimed.attempt,
                    JobFailure::permanent("broken"),
                )
                .await
                .unwrap();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let last = loop {
        let (status, history) = s.get("/api/v1/history").await;
        assert_eq!(status, StatusCode::OK);
        let minutes = history["minutes"].as_array().unwrap().clone();
        assert_eq!(minutes.len(), 60);
        assert_eq!(history["bucketSeconds"], 60);
        // The jobs may have finished in the minute before this one.
        let sum = |k: &str| minutes.iter().map(|m| m[k].as_u64().unwrap()).sum::<u64>();
        if sum("finished") == 3 || tokio::time::Instant::now() > deadline {
            assert_eq!(
                (sum("complete"), sum("failed"), sum("cancelled")),
                (1, 1, 1),
                "{history}"
            );
            break minutes.last().cloned().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(last["observed"], true);
    // Sampled at the request: nothing is due now.
    assert_eq!(last["oldestDueSeconds"], Value::from(0.0));
    assert_eq!(
        s.get("/api/v1/history?x=1").await.0,
        StatusCode::BAD_REQUEST
    );
}
