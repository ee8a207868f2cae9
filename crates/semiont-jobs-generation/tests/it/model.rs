//! Generation with a model behind a stub OpenAI/Ollama server on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_content::inference::{
    HttpOptions, OllamaClient, OllamaConfig, OpenAiClient, OpenAiConfig,
};
use semiont_jobs_content::testing::{Reply, StubServer};
use semiont_jobs_content::{InferenceClient, ResourceId, ResourceStore};
use semiont_jobs_generation::{Error, GenerationOptions, Generator};
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

#[tokio::test]
async fn the_citation_is_added_unless_the_document_links_the_source_exactly() {
    // The source id appears inside a longer word and a longer link: still
    // no citation of the source, so one is added.
    for (answer, added) in [
        (
            "# Zoë Müller\n\nSee news-helix-krakowski and [more](news-helix-krakow-2).",
            true,
        ),
        (
            "# Zoë Müller\n\nShe leads Helix ([source](news-helix-krakow)).",
            false,
        ),
    ] {
        let fx = Fixture::new().await;
        let stub = StubServer::start().await.unwrap();
        stub.push(Reply::openai(answer));
        let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), openai(&stub));
        let r = generator
            .run(
                &JobId::generate(),
                &params(),
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
            doc.text.contains("\n\n---\n\nSource: ["),
            added,
            "{}",
            doc.text
        );
        assert!(!r.truncated);
    }
}

#[tokio::test]
async fn a_document_cut_off_at_the_token_limit_is_kept_and_reported() {
    let fx = Fixture::new().await;
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::openai_truncated(
        "# Zoë Müller\n\nZoë Müller is the chief",
    ));
    let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), openai(&stub));
    let r = generator
        .run(
            &JobId::generate(),
            &params(),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(r.truncated);
    assert_eq!(
        serde_json::to_value(&r).unwrap()["truncated"],
        serde_json::json!(true)
    );
}

#[tokio::test]
async fn prompts_fit_the_configured_context_and_shrink_when_refused() {
    let fx = Fixture::new().await;
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::error(
        400,
        "This model's maximum context length is 1024 tokens. However, you requested 1100 tokens.",
    ));
    stub.push(Reply::openai("# Zoë Müller\n\nShe leads Helix Dynamics."));
    let settings = semiont_jobs_content::ModelSettings {
        context_tokens: 1024,
        ..Default::default()
    };
    let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), openai(&stub))
        .with_options(GenerationOptions::from_settings(&settings));
    generator
        .run(
            &JobId::generate(),
            &params(),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let requests = stub.requests();
    assert_eq!(requests.len(), 2);
    let prompt_len = |i: usize| {
        requests[i].body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .chars()
            .count()
    };
    assert!(
        prompt_len(1) < prompt_len(0),
        "{} then {}",
        prompt_len(0),
        prompt_len(1)
    );
    // The prompt (at 3 characters per token) and the answer fit in 1024 tokens.
    let max_tokens = requests[0].body["max_tokens"].as_u64().unwrap() as usize;
    assert!(
        max_tokens >= 128 && prompt_len(0) / 3 + max_tokens <= 1024,
        "{max_tokens}"
    );
    // Refused every time: a permanent CONTEXT_EXCEEDED failure.
    let stub = StubServer::start().await.unwrap();
    stub.set_fallback(Reply::error(
        400,
        "the input length exceeds the context length",
    ));
    let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), openai(&stub))
        .with_options(GenerationOptions::from_settings(&settings));
    let e = generator
        .run(
            &JobId::generate(),
            &params(),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "CONTEXT_EXCEEDED");
    assert!(!e.is_retryable());
}
