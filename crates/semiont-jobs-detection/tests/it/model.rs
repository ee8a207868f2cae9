//! Model-based detection against a stub Ollama/OpenAI server on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_content::inference::{
    HttpOptions, OllamaClient, OllamaConfig, OpenAiClient, OpenAiConfig,
};
use semiont_jobs_content::testing::{Reply, StubServer};
use semiont_jobs_content::InferenceClient;
use semiont_jobs_detection::{Backend, Detector, Error, ModelOptions};
use semiont_jobs_model::JobId;
use tokio_util::sync::CancellationToken;

use crate::{assert_selectors_match, params, Fixture};

const TEXT: &str =
    "Zoë Müller visited Kraków. Later, Zoë Müller and Tobias Kessler left Kraków for São Paulo.";

fn http(read_ms: u64) -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(read_ms),
        request_timeout: None,
    }
}

fn ollama(stub: &StubServer, read_ms: u64) -> Arc<dyn InferenceClient> {
    Arc::new(
        OllamaClient::new(
            OllamaConfig::new("stub")
                .base_url(stub.base_url())
                .http(http(read_ms)),
        )
        .unwrap(),
    )
}

fn openai(stub: &StubServer) -> Arc<dyn InferenceClient> {
    Arc::new(
        OpenAiClient::new(
            OpenAiConfig::new("stub")
                .base_url(format!("{}/v1", stub.base_url()))
                .api_key(None)
                .http(http(5000)),
        )
        .unwrap(),
    )
}

fn detector(fx: &Fixture, client: Arc<dyn InferenceClient>) -> Detector {
    Detector::new(
        fx.resources.clone(),
        fx.annotations.clone(),
        Backend::Model(ModelOptions::new(client)),
    )
}

/// Person: one right span, one off by two, one at offset 0 for the wrong
/// text, one name not in the text. Location: not JSON. Date: none.
fn script(stub: &StubServer, reply: fn(&str) -> Reply) {
    stub.push(reply(
        r#"```json
{"entities": [
  {"text": "Zoë Müller", "start": 0, "end": 10},
  {"text": "Zoë Müller", "start": 36, "end": 46},
  {"text": "Tobias Kessler", "start": 0, "end": 14},
  {"text": "Maria Curie", "start": 5, "end": 16}
]}
```"#,
    ));
    // Asked twice: the malformed answer is retried once.
    stub.push(reply("The places are Kraków and São Paulo."));
    stub.push(reply("Kraków, São Paulo."));
    stub.push(reply(r#"{"entities": []}"#));
}

async fn check_run(fx: &Fixture, client: Arc<dyn InferenceClient>, stub: &StubServer) {
    let r = detector(fx, client)
        .run(
            &JobId::generate(),
            &params("doc", &["Person", "Location", "Date"]),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!((r.total_found, r.total_emitted, r.errors), (3, 3, 1));
    assert_eq!(r.error_classes, [("MALFORMED_OUTPUT".to_owned(), 1)].into());
    assert_eq!((r.chunks, r.model_calls), (Some(3), Some(4)));
    let anns = fx.annotations_of("doc").await;
    let got: Vec<(u64, &str)> = anns
        .iter()
        .map(|a| {
            (
                a.target.position().unwrap().start,
                a.target.quote().unwrap().exact.as_str(),
            )
        })
        .collect();
    // Code points: the second "Zoë Müller" starts at 34, "Tobias Kessler" at 49.
    assert_eq!(
        got,
        [
            (0, "Zoë Müller"),
            (34, "Zoë Müller"),
            (49, "Tobias Kessler")
        ]
    );
    for a in &anns {
        assert_selectors_match(TEXT, a);
    }
    let requests = stub.requests();
    assert_eq!(requests.len(), 4);
    let prompt = requests[0].body.to_string();
    assert!(
        prompt.contains("\\\"Person\\\"") && prompt.contains("Tobias Kessler left Kraków"),
        "{prompt}"
    );
}

#[tokio::test]
async fn ollama_spans_are_validated_and_repaired() {
    let fx = Fixture::new().await;
    fx.add_doc("doc", TEXT).await;
    let stub = StubServer::start().await.unwrap();
    script(&stub, Reply::ollama_chat);
    check_run(&fx, ollama(&stub, 5000), &stub).await;
    assert_eq!(stub.requests()[0].path, "/api/chat");
    assert_eq!(stub.requests()[0].body["format"], "json");
}

#[tokio::test]
async fn openai_spans_are_validated_and_repaired() {
    let fx = Fixture::new().await;
    fx.add_doc("doc", TEXT).await;
    let stub = StubServer::start().await.unwrap();
    script(&stub, Reply::openai);
    check_run(&fx, openai(&stub), &stub).await;
    assert_eq!(stub.requests()[0].path, "/v1/chat/completions");
    assert_eq!(stub.requests()[0].body["temperature"], 0.0);
}

async fn failure(reply: Reply, read_ms: u64) -> Error {
    let fx = Fixture::new().await;
    fx.add_doc("doc", TEXT).await;
    let stub = StubServer::start().await.unwrap();
    stub.push(reply);
    let e = detector(&fx, ollama(&stub, read_ms))
        .run(
            &JobId::generate(),
            &params("doc", &["Person"]),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(fx.annotations_of("doc").await.is_empty());
    e
}

#[tokio::test]
async fn transient_model_failures_fail_the_run_retryably() {
    let e = failure(Reply::error(429, "busy").header("retry-after", "3"), 5000).await;
    assert!(e.is_retryable());
    assert_eq!(e.code(), "RATE_LIMITED");
    let e = failure(Reply::error(503, "loading model"), 5000).await;
    assert!(e.is_retryable());
    assert_eq!(e.code(), "SERVER_ERROR");
    let e = failure(
        Reply::ollama_chat("{}").delayed(Duration::from_secs(3)),
        200,
    )
    .await;
    assert!(e.is_retryable());
    assert_eq!(e.code(), "TIMEOUT");
    // The retry waits as long as the read timeout: the server may still be
    // working on the abandoned request.
    assert_eq!(e.retry_after(), Some(Duration::from_millis(200)));
}

#[tokio::test]
async fn rejected_requests_fail_the_run_permanently() {
    let e = failure(Reply::error(400, "bad request"), 5000).await;
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "BAD_REQUEST");
    let e = failure(Reply::error(401, "no key"), 5000).await;
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "UNAUTHORIZED");
}

#[tokio::test]
async fn a_malformed_server_response_counts_as_a_failed_chunk() {
    let fx = Fixture::new().await;
    fx.add_doc("doc", TEXT).await;
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::raw(200, "<html>not json</html>"));
    stub.push(Reply::raw(200, "<html>still not json</html>"));
    stub.push(Reply::ollama_chat(r#"[{"text": "Kraków"}]"#));
    let r = detector(&fx, ollama(&stub, 5000))
        .run(
            &JobId::generate(),
            &params("doc", &["Person", "Location"]),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    // Person failed; Location without offsets: every occurrence.
    assert_eq!((r.total_found, r.errors), (2, 1));
}

#[tokio::test]
async fn cancellation_abandons_an_in_flight_model_call() {
    let fx = Fixture::new().await;
    fx.add_doc("doc", TEXT).await;
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::ollama_chat("{}").delayed(Duration::from_secs(60)));
    let d = detector(&fx, ollama(&stub, 120_000));
    let cancel = CancellationToken::new();
    let run = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            d.run(
                &JobId::generate(),
                &params("doc", &["Person", "Location"]),
                &mut |_| {},
                &cancel,
            )
            .await
        })
    };
    assert!(
        stub.wait_for_request(Duration::from_secs(10)).await,
        "no request reached the stub"
    );
    cancel.cancel();
    let e = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .expect("run ends soon after cancellation")
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert_eq!(stub.requests().len(), 1, "no further model calls");
}
