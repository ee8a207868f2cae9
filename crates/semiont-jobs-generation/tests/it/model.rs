//! Generation with a model behind a stub OpenAI/Ollama server on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_content::inference::{
    HttpOptions, OllamaClient, OllamaConfig, OpenAiClient, OpenAiConfig,
};
use semiont_jobs_content::testing::{Reply, StubServer};
use semiont_jobs_content::{InferenceClient, ResourceId, ResourceStore};
use semiont_jobs_generation::{Error, Generator};
use semiont_jobs_model::{GenerationParams, JobId};
use tokio_util::sync::CancellationToken;

use crate::{params, Fixture};

fn http() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(60),
        request_timeout: None,
    }
}

fn openai(stub: &StubServer) -> Arc<dyn InferenceClient> {
    Arc::new(
        OpenAiClient::new(
            OpenAiConfig::new("stub")
                .base_url(format!("{}/v1", stub.base_url()))
                .api_key(None)
                .http(http()),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn a_model_document_gets_a_title_and_a_citation() {
    let fx = Fixture::new().await;
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::openai(
        "```markdown\nZoë Müller is the chief executive of Helix Dynamics.\n```",
    ));
    let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), openai(&stub));
    let p = GenerationParams {
        title: Some("Zoë Müller".into()),
        prompt: Some("Focus on the company.".into()),
        language: Some("en".into()),
        ..params()
    };
    let r = generator
        .run(
            &JobId::generate(),
            &p,
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let doc = fx
        .resources
        .get(&ResourceId::parse(&r.resource_id).unwrap())
        .await
        .unwrap();
    assert_eq!(
        doc.text,
        "# Zoë Müller\n\nZoë Müller is the chief executive of Helix Dynamics.\n\n---\n\n\
         Source: [Helix Dynamics to open research centre in Kraków](news-helix-krakow), reference “Zoë Müller”.\n"
    );
    let body = &stub.requests()[0].body;
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    for part in [
        "titled \"Zoë Müller\"",
        "(entity type: Person)",
        "\"en\"",
        "Focus on the company.",
        "Passage around the reference",
        "said Zoë Müller",
    ] {
        assert!(prompt.contains(part), "{part}: {prompt}");
    }
    assert_eq!(body["temperature"], 0.4);
    assert_eq!(fx.reference().await.links().count(), 1);
}

#[tokio::test]
async fn model_failures_keep_their_classification_and_create_nothing() {
    for (reply, code, retryable) in [
        (Reply::error(503, "overloaded"), "SERVER_ERROR", true),
        (Reply::error(429, "slow down"), "RATE_LIMITED", true),
        (Reply::error(401, "bad key"), "UNAUTHORIZED", false),
        (Reply::openai("   "), "MALFORMED_OUTPUT", false),
    ] {
        let fx = Fixture::new().await;
        let stub = StubServer::start().await.unwrap();
        stub.push(reply);
        let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), openai(&stub));
        let job = JobId::generate();
        let e = generator
            .run(&job, &params(), &mut |_| {}, &CancellationToken::new())
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        assert_eq!(e.is_retryable(), retryable, "{e}");
        assert!(fx
            .resources
            .get(&Generator::resource_id_for(&job))
            .await
            .is_err());
        assert_eq!(fx.reference().await.links().count(), 0);
    }
}

#[tokio::test]
async fn cancellation_abandons_an_in_flight_model_call() {
    let fx = Fixture::new().await;
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::ollama_chat("# late").delayed(Duration::from_secs(60)));
    let client = Arc::new(
        OllamaClient::new(
            OllamaConfig::new("stub")
                .base_url(stub.base_url())
                .http(http()),
        )
        .unwrap(),
    );
    let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), client);
    let cancel = CancellationToken::new();
    let job = JobId::generate();
    let task = {
        let (cancel, job) = (cancel.clone(), job.clone());
        tokio::spawn(async move { generator.run(&job, &params(), &mut |_| {}, &cancel).await })
    };
    assert!(stub.wait_for_request(Duration::from_secs(10)).await);
    cancel.cancel();
    let e = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert!(fx
        .resources
        .get(&Generator::resource_id_for(&job))
        .await
        .is_err());
}
