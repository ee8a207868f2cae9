//! Hostile input: each case gets a clean 4xx problem document naming what
//! was wrong, nothing is written, and the server keeps serving.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{config, json_of, TestServer, WAIT};

struct Case {
    name: &'static str,
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    detail: &'static str,
}

fn case(
    name: &'static str,
    method: Method,
    path: &str,
    body: impl Into<Vec<u8>>,
    status: u16,
    detail: &'static str,
) -> Case {
    Case {
        name,
        method,
        path: path.to_owned(),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        detail,
    }
}

fn nested(depth: usize) -> String {
    format!(
        "{{\"type\":\"noop\",\"userId\":\"u\",\"x\":{}1{}}}",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

fn cases() -> Vec<Case> {
    let post = Method::POST;
    let jobs = "/api/v1/jobs";
    let mut c = vec![
        case(
            "malformed json",
            post.clone(),
            jobs,
            "{\"type\":",
            400,
            "malformed JSON",
        ),
        case(
            "trailing garbage",
            post.clone(),
            jobs,
            "{\"type\":\"noop\",\"userId\":\"u\"} x",
            400,
            "malformed JSON",
        ),
        case(
            "invalid utf-8",
            post.clone(),
            jobs,
            b"{\"type\":\"\xff\"}".to_vec(),
            400,
            "malformed JSON",
        ),
        case(
            "not an object",
            post.clone(),
            jobs,
            "[1,2]",
            400,
            "must be a JSON object, not an array",
        ),
        case(
            "null body",
            post.clone(),
            jobs,
            "null",
            400,
            "must be a JSON object, not null",
        ),
        case("empty body", post.clone(), jobs, "", 400, "malformed JSON"),
        case(
            "wrong type of type",
            post.clone(),
            jobs,
            r#"{"type":1,"userId":"u"}"#,
            400,
            "type must be a string",
        ),
        case(
            "wrong type of userId",
            post.clone(),
            jobs,
            r#"{"type":"noop","userId":["a"]}"#,
            400,
            "userId must be a string",
        ),
        case(
            "float maxRetries",
            post.clone(),
            jobs,
            r#"{"type":"noop","userId":"u","maxRetries":2.5}"#,
            400,
            "maxRetries must be a whole number",
        ),
        case(
            "huge number",
            post.clone(),
            jobs,
            r#"{"type":"noop","userId":"u","priority":1e999}"#,
            400,
            "malformed JSON",
        ),
        case(
            "control char in userId",
            post.clone(),
            jobs,
            "{\"type\":\"noop\",\"userId\":\"a\\u0000b\"}",
            400,
            "control character",
        ),
        case(
            "traversal type",
            post.clone(),
            jobs,
            r#"{"type":"../../etc","userId":"u"}"#,
            400,
            "invalid job type",
        ),
        case(
            "reserved field",
            post.clone(),
            jobs,
            r#"{"type":"noop","userId":"u","status":"complete"}"#,
            400,
            "field status is set by the queue",
        ),
        case(
            "worker id field",
            post.clone(),
            jobs,
            r#"{"type":"noop","userId":"u","workerId":"w"}"#,
            400,
            "field workerId",
        ),
        case(
            "unknown detection field",
            post.clone(),
            jobs,
            r#"{"type":"detection","userId":"u","resourceId":"d","entityTypes":["P"],"admin":true}"#,
            400,
            "unknown field \"admin\"",
        ),
        case(
            "deep nesting past serde",
            post.clone(),
            jobs,
            nested(100_000),
            400,
            "recursion limit",
        ),
        case(
            "deep nesting past the model",
            post.clone(),
            jobs,
            nested(100),
            400,
            "nested",
        ),
        case(
            "huge body",
            post.clone(),
            jobs,
            format!(
                "{{\"type\":\"noop\",\"userId\":\"u\",\"x\":\"{}\"}}",
                "a".repeat(3 << 20)
            ),
            413,
            "larger than the limit",
        ),
        case(
            "unknown bulk field",
            post.clone(),
            "/api/v1/jobs/bulk/cancel",
            r#"{"ids":["job-1"],"all":true}"#,
            400,
            "unknown field",
        ),
        case(
            "bulk ids wrong type",
            post.clone(),
            "/api/v1/jobs/bulk/cancel",
            r#"{"ids":"job-1"}"#,
            400,
            "invalid request body",
        ),
        case(
            "bulk traversal id",
            post.clone(),
            "/api/v1/jobs/bulk/delete",
            r#"{"ids":["../x"]}"#,
            400,
            "ids[0]",
        ),
        case(
            "bulk too many ids",
            post.clone(),
            "/api/v1/jobs/bulk/retry",
            serde_json::to_vec(&json!({"ids": vec!["job-1"; 1001]})).unwrap(),
            400,
            "1 to 1000",
        ),
    ];
    for (path, detail) in [
        ("/api/v1/jobs/..%2F..%2Fetc%2Fpasswd", "invalid job id"),
        ("/api/v1/jobs/.hidden", "starts with '.'"),
        ("/api/v1/jobs/a%00b", "invalid job id"),
        ("/api/v1/jobs/a%20b", "whitespace"),
        ("/api/v1/jobs/a%5Cb", "path separator"),
    ] {
        c.push(case("traversal id", Method::GET, path, "", 400, detail));
    }
    let long = format!("/api/v1/jobs/{}", "a".repeat(200));
    c.push(case(
        "long id",
        Method::GET,
        &long,
        "",
        400,
        "longer than 128",
    ));
    c.push(case(
        "traversal id cancel",
        Method::POST,
        "/api/v1/jobs/..%2Fx/cancel",
        "{}",
        400,
        "invalid job id",
    ));
    c.push(case(
        "traversal id delete",
        Method::DELETE,
        "/api/v1/jobs/x%2F..%2Fy",
        "",
        400,
        "invalid job id",
    ));
    for (query, detail) in [
        ("limit=-1", "limit must be"),
        ("limit=abc", "limit must be"),
        ("limit=99999999999999999999999", "limit must be"),
        ("offset=1e3", "offset must be"),
        ("status=PENDING", "unknown job status"),
        ("type=%00", "invalid job type"),
        ("userId=%0a", "userId"),
        ("userId=", "userId is empty"),
        ("sort=created", "unknown query parameter"),
        ("status=pending&status=failed", "repeated"),
    ] {
        c.push(case(
            "bad filter",
            Method::GET,
            &format!("/api/v1/jobs?{query}"),
            "",
            400,
            detail,
        ));
    }
    let mut text = case(
        "text body",
        post.clone(),
        jobs,
        r#"{"type":"noop","userId":"u"}"#,
        415,
        "must be JSON",
    );
    text.content_type = Some("text/plain");
    c.push(text);
    let mut none = case(
        "no content type",
        post,
        jobs,
        r#"{"type":"noop","userId":"u"}"#,
        415,
        "must be JSON",
    );
    none.content_type = None;
    c.push(none);
    c
}

#[tokio::test]
async fn hostile_requests_get_clean_4xx_and_write_nothing() {
    let s = TestServer::start().await;
    for c in cases() {
        let mut req = s.req(c.method.clone(), &c.path).body(c.body.clone());
        if let Some(ct) = c.content_type {
            req = req.header("content-type", ct);
        }
        let got = json_of(req.send().await.unwrap()).await;
        assert_eq!(got.0.as_u16(), c.status, "{}: {}", c.name, got.1);
        let detail = got.1["detail"].as_str().unwrap();
        assert!(
            detail.contains(c.detail),
            "{}: {detail:?} lacks {:?}",
            c.name,
            c.detail
        );
        assert!(
            !detail.contains('\n') && detail.len() < 400,
            "{}: {detail:?}",
            c.name
        );
        assert_eq!(
            s.get("/healthz").await.0,
            StatusCode::OK,
            "{}: still serving",
            c.name
        );
    }
    assert_eq!(
        s.queue.get_stats().await.unwrap().total(),
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused() {
    let s = TestServer::with(config().body_limit(1024)).await;
    // No Content-Length: the limit is enforced while reading.
    let mut req = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.addr
    );
    for _ in 0..20 {
        req.push_str(&format!("64\r\n{}\r\n", " ".repeat(100)));
    }
    req.push_str("0\r\n\r\n");
    let answer = raw(s.addr, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("larger than the limit of 1024 bytes"),
        "{answer}"
    );
    assert_eq!(s.queue.get_stats().await.unwrap().total(), 0);
}

/// Sends `bytes` on a raw connection and returns what the server answered
/// (until it closed the connection or `WAIT` passed).
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(WAIT, conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_off_and_others_are_served() {
    let s = TestServer::with(
        config()
            .request_timeout(Duration::from_millis(500))
            .header_timeout(Duration::from_millis(300)),
    )
    .await;
    // A body that never completes: 408 once the request timeout passes.
    let slow_body = format!(
        "POST /api/v1/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"type\":",
        s.addr
    );
    let (answer, other) = tokio::join!(raw(s.addr, slow_body.as_bytes()), async {
        // Meanwhile another client is served.
        s.get("/api/v1/stats").await.0
    });
    assert_eq!(other, StatusCode::OK);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");

    // Headers that never complete: the connection is closed.
    let slow_headers = format!("GET /api/v1/stats HTTP/1.1\r\nHost: {}\r\nX-Slow: ", s.addr);
    let started = std::time::Instant::now();
    let answer = raw(s.addr, slow_headers.as_bytes()).await;
    assert!(started.elapsed() < WAIT, "closed by the header timeout");
    assert!(!answer.contains("200 OK"), "{answer}");
    assert_eq!(s.get("/api/v1/stats").await.0, StatusCode::OK);
    assert_eq!(s.queue.get_stats().await.unwrap().total(), 0);
}

/// A page on another site cannot change jobs through a browser on this
/// machine: a state-changing request whose `Origin` is not this server's
/// (nor an allowed CORS origin) is refused before it does anything; the
/// server's own pages, CORS origins, programs (no `Origin`) and reads pass.
#[tokio::test]
async fn cross_site_writes_from_a_browser_are_refused() {
    let s = TestServer::with(config().cors_origin("https://ops.example")).await;
    let (status, job) = s
        .post("/api/v1/jobs", &json!({"type": "noop", "userId": "u"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let id = job["id"].as_str().unwrap().to_owned();
    let cancel = format!("/api/v1/jobs/{id}/cancel");
    for evil in ["https://evil.example", "null", "http://127.0.0.1:1"] {
        let r = s
            .req(Method::POST, &cancel)
            .header("origin", evil)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{evil}");
        let body: Value = r.json().await.unwrap();
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains("cross-origin request refused"), "{detail}");
        let r = s
            .req(Method::POST, "/api/v1/types/noop/pause")
            .header("origin", evil)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{evil}");
    }
    assert_eq!(
        s.get(&format!("/api/v1/jobs/{id}")).await.1["status"],
        "pending"
    );
    assert!(s.queue.paused_types().await.unwrap().is_empty());
    // Reads from anywhere pass (CORS decides what a page may read).
    let r = s
        .req(Method::GET, &format!("/api/v1/jobs/{id}"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The server's own origin and an allowed one may write.
    let own = format!("http://{}", s.addr);
    let r = s
        .req(Method::POST, "/api/v1/types/noop/pause")
        .header("origin", own)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = s
        .req(Method::POST, &cancel)
        .header("origin", "https://ops.example")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        s.get(&format!("/api/v1/jobs/{id}")).await.1["status"],
        "cancelled"
    );
}
