use std::time::{Duration, Instant};

use semiont_jobs_content::inference::{
    ApiKey, HttpOptions, OllamaApi, OllamaClient, OllamaConfig, OpenAiClient, OpenAiConfig,
};
use semiont_jobs_content::testing::{Hangup, HangupServer, Reply, StubServer};
use semiont_jobs_content::{
    CompletionRequest, Error, InferenceClient, NetworkCause, ResponseFormat,
};
use serde_json::json;

fn fast() -> HttpOptions {
    HttpOptions {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_millis(300),
        request_timeout: None,
    }
}

fn ollama(stub: &StubServer, api: OllamaApi) -> OllamaClient {
    OllamaClient::new(
        OllamaConfig::new("llama-test")
            .base_url(stub.base_url())
            .api(api)
            .http(fast()),
    )
    .unwrap()
}

fn openai(stub: &StubServer, key: Option<&str>) -> OpenAiClient {
    OpenAiClient::new(
        OpenAiConfig::new("gpt-test")
            .base_url(format!("{}/v1", stub.base_url()))
            .api_key(key.map(ApiKey::new))
            .http(fast()),
    )
    .unwrap()
}

fn request() -> CompletionRequest {
    CompletionRequest::new("Who is Zoë Müller?")
        .system("Answer briefly.")
        .temperature(0.0)
        .max_tokens(64)
}

#[tokio::test]
async fn ollama_chat_success_and_request_shape() {
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::ollama_chat("She runs Helix Dynamics."));
    let client = OllamaClient::new(
        OllamaConfig::new("llama-test")
            .base_url(stub.base_url())
            .num_ctx(Some(2048))
            .http(fast()),
    )
    .unwrap();
    let got = client
        .complete(&request().format(ResponseFormat::Json))
        .await
        .unwrap();
    assert_eq!(got.text, "She runs Helix Dynamics.");
    assert_eq!(got.model, "stub-model");
    assert!(!got.truncated);
    let req = &stub.requests()[0];
    assert_eq!(req.path, "/api/chat");
    assert_eq!(
        req.body,
        json!({
            "model": "llama-test",
            "messages": [
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "Who is Zoë Müller?"}
            ],
            "stream": false,
            "options": {"temperature": 0.0, "num_predict": 64, "num_ctx": 2048},
            "format": "json"
        })
    );
    assert!(client.describe().contains("/api/chat"));
}

#[tokio::test]
async fn ollama_generate_success() {
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::ollama_generate("An engineer."));
    let got = ollama(&stub, OllamaApi::Generate)
        .complete(&request())
        .await
        .unwrap();
    assert_eq!(got.text, "An engineer.");
    let req = &stub.requests()[0];
    assert_eq!(req.path, "/api/generate");
    assert_eq!(req.body["prompt"], "Who is Zoë Müller?");
    assert_eq!(req.body["system"], "Answer briefly.");
    assert!(req.body.get("format").is_none());
    // Without a configured context, num_ctx is left to the server.
    assert!(req.body["options"].get("num_ctx").is_none());
}

#[tokio::test]
async fn answers_cut_off_at_the_token_limit_are_marked_truncated() {
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::openai_truncated("{\"entities\": [{\"text\": \"Zo"));
    let got = openai(&stub, None).complete(&request()).await.unwrap();
    assert!(got.truncated);
    stub.push(Reply::ollama_chat_truncated("{\"entities\": ["));
    let got = ollama(&stub, OllamaApi::Chat)
        .complete(&request())
        .await
        .unwrap();
    assert!(got.truncated);
}

#[tokio::test]
async fn openai_success_sends_bearer_key_and_limits() {
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::openai("{\"entities\": []}"));
    let client = openai(&stub, Some("sk-test-secret"));
    let got = client
        .complete(&request().format(ResponseFormat::Json))
        .await
        .unwrap();
    assert_eq!(got.text, "{\"entities\": []}");
    let req = &stub.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.authorization.as_deref(), Some("Bearer sk-test-secret"));
    assert_eq!(req.body["model"], "gpt-test");
    assert_eq!(req.body["max_tokens"], 64);
    assert_eq!(req.body["temperature"], 0.0);
    assert_eq!(req.body["response_format"], json!({"type": "json_object"}));
    assert_eq!(
        req.body["messages"][1],
        json!({"role": "user", "content": "Who is Zoë Müller?"})
    );
    // The key never shows in Debug output or descriptions.
    assert!(!format!("{client:?}").contains("sk-test-secret"));
    assert!(!client.describe().contains("sk-test-secret"));
    let config = OpenAiConfig::new("m").api_key(Some(ApiKey::new("sk-test-secret")));
    assert!(!format!("{config:?}").contains("sk-test-secret"));
}

#[tokio::test]
async fn openai_without_key_sends_no_authorization() {
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::openai("hi"));
    openai(&stub, None).complete(&request()).await.unwrap();
    assert_eq!(stub.requests()[0].authorization, None);
}

async fn error_of(reply: Reply) -> Error {
    let stub = StubServer::start().await.unwrap();
    stub.push(reply.clone());
    let e1 = openai(&stub, Some("k"))
        .complete(&request())
        .await
        .unwrap_err();
    stub.push(reply);
    let e2 = ollama(&stub, OllamaApi::Chat)
        .complete(&request())
        .await
        .unwrap_err();
    assert_eq!(
        e1.code(),
        e2.code(),
        "both clients classify alike: {e1} / {e2}"
    );
    e1
}

#[tokio::test]
async fn rate_limiting_is_retryable_with_retry_after() {
    let e = error_of(Reply::error(429, "slow down").header("retry-after", "7")).await;
    assert!(matches!(e, Error::RateLimited { .. }), "{e}");
    assert!(e.is_retryable());
    assert_eq!(e.code(), "RATE_LIMITED");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    // An HTTP date an hour ahead (a date in the past would mean zero).
    let e = error_of(
        Reply::error(429, "slow down").header("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT"),
    )
    .await;
    assert!(e.retry_after().unwrap() > Duration::from_secs(3600));
    // Without the header: the caller's own back-off.
    let e = error_of(Reply::error(429, "slow down")).await;
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn waits_before_a_retry_follow_the_cause() {
    // 5xx: the server's Retry-After, else a tenth of the read timeout (at least 5 s).
    let e = error_of(Reply::error(503, "loading model").header("retry-after", "12")).await;
    assert_eq!(e.retry_after(), Some(Duration::from_secs(12)));
    let e = error_of(Reply::error(500, "crashed")).await;
    assert_eq!(e.retry_after(), Some(Duration::from_secs(5)));
    // A read timeout: the read timeout (the server may still be busy).
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::openai("late").delayed(Duration::from_secs(5)));
    let e = openai(&stub, None).complete(&request()).await.unwrap_err();
    assert!(
        matches!(
            e,
            Error::Timeout {
                connecting: false,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.retry_after(), Some(fast().read_timeout));
    assert!(e.to_string().contains("waiting for the answer"), "{e}");
    // Refused connections: none (the retry policy's brief back-off).
    let e = refused_error().await;
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn context_overflow_is_its_own_permanent_error() {
    for reply in [
        Reply::error(400, "This model's maximum context length is 2048 tokens. However, you requested 2300 tokens (1788 in the messages, 512 in the completion)."),
        Reply::raw(400, r#"{"error":{"code":400,"message":"request (4476 tokens) exceeds the available context size (4096 tokens)","type":"exceed_context_size_error"}}"#),
        Reply::raw(400, r#"{"error":"the input length exceeds the context length"}"#),
    ] {
        let e = error_of(reply).await;
        assert!(matches!(e, Error::ContextExceeded { status: 400, .. }), "{e}");
        assert_eq!(e.code(), "CONTEXT_EXCEEDED");
        assert!(!e.is_retryable());
    }
}

#[tokio::test]
async fn fastapi_details_are_read_not_dumped() {
    let e = error_of(Reply::raw(
        422,
        r#"{"detail":[{"loc":["body","messages"],"msg":"Field required","type":"missing"}]}"#,
    ))
    .await;
    assert_eq!(e.code(), "BAD_REQUEST");
    assert!(
        e.to_string()
            .ends_with("status 422: body.messages: Field required"),
        "{e}"
    );
    let e = error_of(Reply::raw(404, r#"{"detail":"Not Found"}"#)).await;
    assert!(e.to_string().ends_with("status 404: Not Found"), "{e}");
    assert!(!e.to_string().contains('{'), "{e}");
}

#[tokio::test]
async fn server_errors_are_retryable() {
    for status in [500, 502, 503] {
        let e = error_of(Reply::error(status, "overloaded")).await;
        assert!(matches!(e, Error::ServerError { .. }), "{e}");
        assert!(e.is_retryable());
        assert_eq!(e.code(), "SERVER_ERROR");
        assert!(e.to_string().contains("overloaded"), "{e}");
    }
}

#[tokio::test]
async fn client_errors_are_permanent() {
    let e = error_of(Reply::error(400, "bad temperature")).await;
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "BAD_REQUEST");
    assert!(e.to_string().contains("bad temperature"), "{e}");
    let e = error_of(Reply::error(401, "invalid api key")).await;
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "UNAUTHORIZED");
    let e = error_of(Reply::raw(
        404,
        r#"{"error":"model 'llama-test' not found"}"#,
    ))
    .await;
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "NOT_FOUND");
    assert!(e.to_string().contains("not found"), "{e}");
}

#[tokio::test]
async fn malformed_responses_are_permanent() {
    let e = error_of(Reply::raw(200, "this is not json")).await;
    assert!(matches!(e, Error::MalformedOutput { .. }), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "MALFORMED_OUTPUT");
    let e = error_of(Reply::raw(200, r#"{"unexpected": true}"#)).await;
    assert_eq!(e.code(), "MALFORMED_OUTPUT");
}

#[tokio::test]
async fn slow_servers_time_out_retryably() {
    let stub = StubServer::start().await.unwrap();
    stub.push(Reply::openai("late").delayed(Duration::from_secs(5)));
    let started = Instant::now();
    let e = openai(&stub, None).complete(&request()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(e.is_retryable());
    assert_eq!(e.code(), "TIMEOUT");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // HTTP 408 is a timeout too.
    let e = error_of(Reply::error(408, "request timeout")).await;
    assert_eq!(e.code(), "TIMEOUT");
}

async fn refused_error() -> Error {
    // Bind a port, then free it: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = OllamaClient::new(
        OllamaConfig::new("m")
            .base_url(format!("127.0.0.1:{port}"))
            .http(fast()),
    )
    .unwrap();
    client.complete(&request()).await.unwrap_err()
}

fn cause(e: &Error) -> NetworkCause {
    match e {
        Error::Network { cause, .. } => *cause,
        other => panic!("not a network error: {other}"),
    }
}

#[tokio::test]
async fn unreachable_servers_are_network_errors_naming_the_cause() {
    let e = refused_error().await;
    assert!(e.is_retryable());
    assert_eq!(e.code(), "NETWORK_ERROR");
    assert_eq!(cause(&e), NetworkCause::Refused);
    // One line naming the request and the root cause.
    let text = e.to_string();
    assert!(
        text.starts_with("inference request POST http://127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("/api/chat (model m) failed: connection refused"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn connections_dropped_mid_request_are_told_apart() {
    for (how, want) in [
        (Hangup::Close, NetworkCause::Closed),
        (Hangup::Reset, NetworkCause::Reset),
    ] {
        let server = HangupServer::start(how).await.unwrap();
        let client = OpenAiClient::new(
            OpenAiConfig::new("m")
                .base_url(format!("{}/v1", server.base_url()))
                .api_key(None)
                .http(fast()),
        )
        .unwrap();
        let e = client.complete(&request()).await.unwrap_err();
        assert_eq!(cause(&e), want, "{how:?}: {e}");
        assert!(e.is_retryable());
        assert!(e.to_string().contains(&want.to_string()), "{e}");
    }
}

#[test]
fn bad_configuration_is_rejected() {
    assert!(matches!(
        OllamaClient::new(OllamaConfig::new(" ")),
        Err(Error::Config(_))
    ));
    let e =
        OpenAiClient::new(OpenAiConfig::new("m").base_url("ftp://user:pw@host/v1")).unwrap_err();
    assert!(matches!(e, Error::Config(_)));
    assert!(!e.to_string().contains("pw"), "{e}");
}
