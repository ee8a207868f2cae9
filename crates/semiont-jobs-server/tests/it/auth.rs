//! The auth matrix: every endpoint × no token, a wrong token, and each
//! role; plus the bind rule, and that no error detail quotes a token.

use reqwest::{Method, StatusCode};
use semiont_jobs_server::{AppState, Server, ServerConfig, Tokens};
use serde_json::{json, Value};

use crate::support::{config, json_of, memory_queue, seed, TestServer};

const READ: &str = "read-token-aaaaaaaaaaaa";
const WRITE: &str = "write-token-bbbbbbbbbbb";
const ADMIN: &str = "admin-token-ccccccccccc";

fn tokens() -> Tokens {
    Tokens::parse(
        &format!("read:{READ}\nwrite:{WRITE}\nadmin:{ADMIN}\n"),
        "test",
    )
    .unwrap()
}

/// Who may call what: (method, path, body, least role; `None` = no token
/// needed). `{id}` is a pending job, `{done}` a cancelled one.
fn endpoints() -> Vec<(Method, &'static str, Option<Value>, Option<&'static str>)> {
    vec![
        (Method::GET, "/api/v1/jobs", None, Some("read")),
        (Method::GET, "/api/v1/jobs/{id}", None, Some("read")),
        (Method::GET, "/api/v1/stats", None, Some("read")),
        (Method::GET, "/api/v1/types", None, Some("read")),
        (Method::GET, "/api/v1/workers", None, Some("read")),
        (Method::GET, "/api/v1/history", None, Some("read")),
        (Method::GET, "/metrics", None, Some("read")),
        (Method::GET, "/api/v1/whoami", None, Some("read")),
        (Method::GET, "/api/v1/events", None, Some("read")),
        (Method::GET, "/api/v1/jobs/{id}/events", None, Some("read")),
        (
            Method::POST,
            "/api/v1/jobs",
            Some(json!({"type": "noop", "userId": "u"})),
            Some("write"),
        ),
        (
            Method::POST,
            "/api/v1/jobs/{id}/cancel",
            Some(json!({})),
            Some("write"),
        ),
        (
            Method::POST,
            "/api/v1/jobs/{done}/retry",
            Some(json!({})),
            Some("write"),
        ),
        (
            Method::POST,
            "/api/v1/jobs/bulk/cancel",
            Some(json!({"ids": ["{id}"], "dryRun": true})),
            Some("write"),
        ),
        (
            Method::POST,
            "/api/v1/jobs/bulk/retry",
            Some(json!({"ids": ["{done}"], "dryRun": true})),
            Some("write"),
        ),
        (
            Method::POST,
            "/api/v1/types/other/pause",
            Some(json!({})),
            Some("write"),
        ),
        (
            Method::POST,
            "/api/v1/types/other/resume",
            Some(json!({})),
            Some("write"),
        ),
        (Method::DELETE, "/api/v1/jobs/{done}", None, Some("admin")),
        (
            Method::POST,
            "/api/v1/jobs/bulk/delete",
            Some(json!({"ids": ["{done}"], "dryRun": true})),
            Some("admin"),
        ),
        (Method::GET, "/healthz", None, None),
        (Method::GET, "/readyz", None, None),
        (Method::GET, "/api/v1/openapi.json", None, None),
        (Method::GET, "/", None, None),
        (Method::GET, "/assets/app.js", None, None),
    ]
}

fn rank(role: &str) -> u8 {
    match role {
        "read" => 1,
        "write" => 2,
        _ => 3,
    }
}

#[tokio::test]
async fn every_role_against_every_endpoint() {
    let s = TestServer::with(config().tokens(tokens())).await;
    let callers: [(&str, Option<&str>); 5] = [
        ("none", None),
        ("wrong", Some("not-a-token-at-all-xxxxxx")),
        ("read", Some(READ)),
        ("write", Some(WRITE)),
        ("admin", Some(ADMIN)),
    ];
    for (method, path, body, least) in endpoints() {
        for (caller, token) in callers {
            // Fresh jobs per call: a successful cancel or delete must not
            // change what the next caller sees.
            let pending = seed(&s.queue, 1, "u").await.remove(0).id;
            let done = seed(&s.queue, 1, "u").await.remove(0).id;
            s.queue.cancel_job(&done).await.unwrap();
            let fill = |t: &str| {
                t.replace("{id}", pending.as_str())
                    .replace("{done}", done.as_str())
            };
            let mut req = s.req(method.clone(), &fill(path));
            if let Some(b) = &body {
                req = req.json(&serde_json::from_str::<Value>(&fill(&b.to_string())).unwrap());
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status();
            let www = resp.headers().get("www-authenticate").cloned();
            let expected = match (least, caller) {
                (None, _) => "ok",
                (Some(_), "none" | "wrong") => "401",
                (Some(need), role) if rank(role) < rank(need) => "403",
                _ => "ok",
            };
            let what = format!("{method} {path} as {caller}: {status}");
            match expected {
                "401" => {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                    assert!(www.is_some(), "{what}: WWW-Authenticate");
                }
                "403" => assert_eq!(status, StatusCode::FORBIDDEN, "{what}"),
                _ => assert!(status.is_success(), "{what}"),
            }
            if path.ends_with("events") && status.is_success() {
                drop(resp); // an open stream; we only needed the status
            } else if !status.is_success() {
                let (_, problem) = json_of(resp).await;
                let detail = problem["detail"].as_str().unwrap();
                for t in [READ, WRITE, ADMIN] {
                    assert!(!detail.contains(t), "{what}: a token in {detail}");
                }
            }
        }
    }
}

#[tokio::test]
async fn whoami_reports_the_role() {
    let s = TestServer::with(config().tokens(tokens())).await;
    for (token, role) in [(READ, "read"), (WRITE, "write"), (ADMIN, "admin")] {
        let resp = s
            .req(Method::GET, "/api/v1/whoami")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (_, me) = json_of(resp).await;
        assert_eq!(
            (me["role"].as_str(), me["authenticated"].as_bool()),
            (Some(role), Some(true))
        );
    }
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let s = TestServer::with(config().tokens(tokens())).await;
    for header in [
        format!("Basic {ADMIN}"),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        ADMIN.to_owned(),
        format!("Bearer {ADMIN}x"),
        format!("Bearer {}", &ADMIN[..ADMIN.len() - 1]),
    ] {
        let resp = s
            .req(Method::GET, "/api/v1/stats")
            .header("Authorization", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{header:?}");
    }
    // The scheme is case-insensitive.
    let resp = s
        .req(Method::GET, "/api/v1/stats")
        .header("Authorization", format!("bearer {ADMIN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Nothing was created by the refused requests.
    assert_eq!(s.queue.get_stats().await.unwrap().total(), 0);
}

#[tokio::test]
async fn a_non_loopback_address_needs_a_token() {
    let queue = memory_queue();
    let open = ServerConfig::default().listen("0.0.0.0:0".parse().unwrap());
    let e = Server::bind(AppState::new(queue.clone(), open).unwrap())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("refusing to listen on 0.0.0.0:0 without a token"),
        "{e}"
    );
    let guarded = ServerConfig::default()
        .listen("0.0.0.0:0".parse().unwrap())
        .tokens(tokens());
    let server = Server::bind(AppState::new(queue, guarded).unwrap())
        .await
        .unwrap();
    assert!(server.local_addr().ip().is_unspecified());
}

#[tokio::test]
async fn idempotency_keys_are_scoped_per_token() {
    let s = TestServer::with(config().tokens(tokens())).await;
    let post = |token: &'static str| {
        s.req(Method::POST, "/api/v1/jobs")
            .bearer_auth(token)
            .header("Idempotency-Key", "same-key")
            .json(&json!({"type": "noop", "userId": "u"}))
            .send()
    };
    assert_eq!(post(WRITE).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(post(ADMIN).await.unwrap().status(), StatusCode::CREATED);
    assert_eq!(post(WRITE).await.unwrap().status(), StatusCode::OK);
    assert_eq!(s.queue.get_stats().await.unwrap().pending, 2);
}
