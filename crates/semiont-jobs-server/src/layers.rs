//! Middleware: the structured access log (never the `Authorization`
//! header), the request timeout (408 while the body is still arriving, 503
//! after), panic capture and CORS.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderName, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::RoleSlot;
use crate::{AppState, Error, ErrorKind};

/// Set while a handler reads the request body (so a timeout then is the
/// client's slowness: 408, not 503).
#[derive(Clone, Default)]
pub(crate) struct BodyReading(pub Arc<AtomicBool>);

impl BodyReading {
    /// Marks the start or end of reading the body.
    pub fn set(&self, reading: bool) {
        self.0.store(reading, Ordering::Relaxed);
    }
}

/// One log line per request: `event = "http.request"`, method, path, query,
/// status, duration, role and peer.
pub(crate) async fn access_log(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(300).collect();
    let query: String = req.uri().query().unwrap_or("").chars().take(300).collect();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string())
        .unwrap_or_default();
    let role = RoleSlot::default();
    req.extensions_mut().insert(role.clone());
    let response = next.run(req).await;
    let status = response.status().as_u16();
    state.metrics().count_response(status);
    let role = role.0.get().map_or("-", |r| r.as_str());
    let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        target: "semiont_jobs_server::access",
        event = "http.request",
        method = %method,
        path = %path,
        query = %query,
        status,
        duration_ms,
        role,
        peer = %peer,
        "request"
    );
    response
}

/// Answers within the configured time or not at all.
pub(crate) async fn timeout(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    let reading = BodyReading::default();
    req.extensions_mut().insert(reading.clone());
    let limit = state.config().request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) if reading.0.load(Ordering::Relaxed) => Error::new(
            ErrorKind::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
        Err(_) => Error::new(
            ErrorKind::Unavailable,
            format!(
                "the request did not complete within {} s",
                limit.as_secs_f64()
            ),
        )
        .into_response(),
    }
}

/// Refuses a state-changing request that a browser sent from another
/// site. A form or a `fetch` without a body or with a plain-text body is a
/// "simple" request that a browser sends cross-origin without asking
/// first, so a page on any site, open in a browser on this machine, could
/// otherwise cancel or delete jobs on a loopback server without tokens.
/// Browsers name the sending page's origin in `Origin`; it must be this
/// server's own (`http://` or `https://` + the request's `Host`) or one of
/// the `--cors-origin`s. Requests without `Origin` (curl, programs) and
/// reads (`GET`, `HEAD`, `OPTIONS`) pass.
pub(crate) async fn same_origin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    use axum::http::{header, Method};
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return next.run(req).await;
    };
    let origin = origin.to_str().unwrap_or("");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let own = !host.is_empty()
        && (origin == format!("http://{host}") || origin == format!("https://{host}"));
    if own || state.config().cors_origins.iter().any(|o| o == origin) {
        return next.run(req).await;
    }
    let shown: String = origin.chars().take(200).collect();
    Error::new(
        ErrorKind::Forbidden,
        format!(
            "cross-origin request refused: Origin {shown:?} is neither this server's origin nor an allowed --cors-origin"
        ),
    )
    .into_response()
}

/// A handler panicked: 500, the server keeps serving.
pub(crate) fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    Error::new(
        ErrorKind::Internal,
        "internal error while handling the request; the server log has the details",
    )
    .into_response()
}

/// CORS for the configured origins (`None`: CORS off).
pub(crate) fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<_> = origins.iter().filter_map(|o| o.parse().ok()).collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::ETAG, header::LOCATION])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
