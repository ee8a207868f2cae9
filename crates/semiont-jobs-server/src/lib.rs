//! The HTTP face of semiont-jobs: a JSON API over any
//! [`JobQueue`](semiont_jobs_queue::JobQueue), live Server-Sent Event
//! streams, Prometheus metrics, health checks and a web dashboard (axum +
//! tower-http).
//!
//! [`router`] builds every route in one place; handlers are small functions
//! whose typed extractors validate the request (and check the caller's role)
//! before the store is touched; every error is an
//! `application/problem+json` document ([`Error`]); [`AppState`] is shared
//! behind an `Arc`. [`Server`] binds, serves and shuts down gracefully.
//!
//! The server knows nothing about directories: it works on whatever store
//! the queue uses, and sees other processes' changes through the store's
//! events where the backend reports them.
//!
//! # Routes
//!
//! Below the configured base path (default none):
//!
//! | route | role | what |
//! | --- | --- | --- |
//! | `POST /api/v1/jobs` | write | create a job (`Idempotency-Key`) |
//! | `GET /api/v1/jobs` | read | list, newest first (`status`, `type`, `userId`, `limit`, `offset`) |
//! | `GET /api/v1/jobs/{id}` | read | one job, with `ETag` |
//! | `POST /api/v1/jobs/{id}/cancel`, `/retry` | write | with `If-Match` |
//! | `DELETE /api/v1/jobs/{id}` | admin | finished jobs only, `If-Match` |
//! | `POST /api/v1/jobs/bulk/cancel`, `/retry` | write | ids or filter, `dryRun` |
//! | `POST /api/v1/jobs/bulk/delete` | admin | ids or filter, `dryRun` |
//! | `GET /api/v1/stats` | read | counts per status |
//! | `GET /api/v1/types` | read | counts per type and status, paused flag |
//! | `POST /api/v1/types/{type}/pause`, `/resume` | write | stop or restart claims of a type |
//! | `GET /api/v1/workers` | read | workers, heartbeats, their running jobs |
//! | `GET /api/v1/history` | read | the last hour per minute: jobs finished, oldest due job's age |
//! | `GET /api/v1/whoami` | any | the caller's role |
//! | `GET /api/v1/events` | read | SSE: every change (`type`, `userId`, `jobId`) |
//! | `GET /api/v1/jobs/{id}/events` | read | SSE: one job until it finishes |
//! | `GET /api/v1/openapi.json` | none | the OpenAPI 3.1 document |
//! | `GET /metrics` | read | Prometheus text format |
//! | `GET /healthz`, `/readyz` | none | process up; store reachable |
//! | `GET /`, `/assets/{file}` | none | the web dashboard (it calls the API with the user's token) |
//!
//! Without tokens (allowed on loopback addresses only) every caller is
//! admin.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use semiont_jobs_queue::JobQueue;
//! use semiont_jobs_server::{AppState, Server, ServerConfig};
//! use semiont_jobs_store::MemoryStore;
//!
//! let queue = JobQueue::builder().store(Arc::new(MemoryStore::new())).build()?;
//! let config = ServerConfig::default().listen("127.0.0.1:0".parse()?);
//! let server = Server::bind(AppState::new(queue, config)?).await?;
//! let addr = server.local_addr(); // curl http://{addr}/api/v1/stats
//! # let _ = addr;
//! server.run(async { /* e.g. SIGTERM */ }).await?;
//! # Ok(())
//! # }
//! ```

mod auth;
mod bulk;
mod config;
mod dashboard;
mod error;
mod extract;
mod history;
mod hub;
mod idempotency;
mod jobs;
mod layers;
mod metrics;
pub mod openapi;
mod serve;
mod sse;
mod state;
mod views;

use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use axum::Router;

pub use auth::{AdminAccess, Caller, ReadAccess, Role, Tokens, WriteAccess};
pub use config::ServerConfig;
pub use dashboard::CSP;
pub use error::{Error, ErrorKind, Result, PROBLEM_JSON};
pub use extract::etag;
pub use serve::Server;
pub use state::AppState;

/// Every route of the server, with its middleware, for `state`.
///
/// Event streams are exempt from the request timeout; everything is under
/// the configured base path; unknown routes and methods get problem
/// documents.
pub fn router(state: AppState) -> Router {
    let timed = Router::new()
        .route("/api/v1/jobs", post(jobs::create).get(jobs::list))
        .route("/api/v1/jobs/{id}", get(jobs::get).delete(jobs::delete))
        .route("/api/v1/jobs/{id}/cancel", post(jobs::cancel))
        .route("/api/v1/jobs/{id}/retry", post(jobs::retry))
        .route("/api/v1/jobs/bulk/cancel", post(bulk::cancel))
        .route("/api/v1/jobs/bulk/retry", post(bulk::retry))
        .route("/api/v1/jobs/bulk/delete", post(bulk::delete))
        .route("/api/v1/stats", get(views::stats))
        .route("/api/v1/types", get(views::types))
        .route("/api/v1/types/{type}/pause", post(views::pause))
        .route("/api/v1/types/{type}/resume", post(views::resume))
        .route("/api/v1/workers", get(views::workers))
        .route("/api/v1/history", get(history::history))
        .route("/api/v1/whoami", get(views::whoami))
        .route("/api/v1/openapi.json", get(views::openapi))
        .route("/metrics", get(views::metrics))
        .route("/", get(dashboard::index))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/healthz", get(views::healthz))
        .route("/readyz", get(views::readyz))
        .layer(from_fn_with_state(state.clone(), layers::timeout));
    let streams = Router::new()
        .route("/api/v1/events", get(sse::events))
        .route("/api/v1/jobs/{id}/events", get(sse::job_events));
    let api = timed
        .merge(streams)
        .fallback(views::not_found)
        .method_not_allowed_fallback(views::method_not_allowed);
    let base = state.config().base_path.clone();
    let app = if base.is_empty() {
        api
    } else {
        // The page answers at `/base` and `/base/` alike.
        Router::new()
            .route(&format!("{base}/"), get(dashboard::index))
            .nest(&base, api)
            .fallback(views::not_found)
    };
    let app = app
        .layer(from_fn_with_state(state.clone(), layers::same_origin))
        .layer(from_fn_with_state(state.clone(), layers::access_log))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            layers::panic_response,
        ));
    let app = match layers::cors(&state.config().cors_origins) {
        Some(cors) => app.layer(cors),
        None => app,
    };
    app.with_state(state)
}

#[cfg(test)]
mod tests {
    //! The router driven in process with `oneshot` (no sockets): routing,
    //! the problem documents of the fallbacks, the extractors' order.

    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::{header, Method, Request, StatusCode};
    use semiont_jobs_queue::JobQueue;
    use semiont_jobs_store::MemoryStore;
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;

    fn app(config: ServerConfig) -> Router {
        let queue = JobQueue::builder()
            .store(Arc::new(MemoryStore::new()))
            .build()
            .unwrap();
        router(AppState::new(queue, config).unwrap())
    }

    async fn call(app: &Router, req: Request<Body>) -> (StatusCode, String, Value) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, ct, body)
    }

    fn get(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn fallbacks_are_problem_documents() {
        let app = app(ServerConfig::default());
        let (status, ct, body) = call(&app, get("/nope")).await;
        assert_eq!((status, ct.as_str()), (StatusCode::NOT_FOUND, PROBLEM_JSON));
        assert_eq!(body["code"], "not_found");
        assert_eq!(body["detail"], "no route /nope");
        let req = Request::builder()
            .method(Method::PATCH)
            .uri("/api/v1/jobs")
            .body(Body::empty())
            .unwrap();
        let (status, ct, body) = call(&app, req).await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::METHOD_NOT_ALLOWED, PROBLEM_JSON)
        );
        assert_eq!(body["detail"], "/api/v1/jobs does not accept PATCH");
    }

    #[tokio::test]
    async fn auth_is_checked_before_the_body_is_read() {
        let tokens = Tokens::parse("read:read-token-0123456789", "test").unwrap();
        let app = app(ServerConfig::default().tokens(tokens));
        // Not JSON, and no token: the token is what the answer is about.
        let req = Request::post("/api/v1/jobs")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("x"))
            .unwrap();
        let (status, _, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let req = Request::post("/api/v1/jobs")
            .header(header::AUTHORIZATION, "Bearer read-token-0123456789")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("x"))
            .unwrap();
        let (status, _, body) = call(&app, req).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(
            body["detail"],
            "this operation needs the write role; the token has read"
        );
    }

    #[tokio::test]
    async fn the_base_path_nests_every_route() {
        let app = app(ServerConfig::default().base_path("/q"));
        assert_eq!(call(&app, get("/q/healthz")).await.0, StatusCode::OK);
        assert_eq!(call(&app, get("/q/api/v1/stats")).await.0, StatusCode::OK);
        let (status, _, body) = call(&app, get("/healthz")).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("not_found"))
        );
    }
}
