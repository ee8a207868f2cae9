//! Test support (feature `test-util`): a scripted HTTP server on 127.0.0.1
//! that speaks enough of the Ollama and OpenAI APIs to test the clients and
//! the engines that use them.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response body.
    pub body: String,
    /// Extra response headers.
    pub headers: Vec<(String, String)>,
    /// How long to wait before answering (to trigger client timeouts).
    pub delay: Duration,
}

impl Reply {
    /// A reply with this status and raw body.
    pub fn raw(status: u16, body: impl Into<String>) -> Self {
        Reply {
            status,
            body: body.into(),
            headers: vec![("content-type".into(), "application/json".into())],
            delay: Duration::ZERO,
        }
    }

    /// A successful Ollama `/api/chat` answer whose message content is `content`.
    pub fn ollama_chat(content: &str) -> Self {
        Self::raw(
            200,
            json!({"model": "stub-model", "message": {"role": "assistant", "content": content}, "done": true, "done_reason": "stop"})
                .to_string(),
        )
    }

    /// An Ollama `/api/chat` answer cut off at the token limit
    /// (`done_reason: "length"`).
    pub fn ollama_chat_truncated(content: &str) -> Self {
        Self::raw(
            200,
            json!({"model": "stub-model", "message": {"role": "assistant", "content": content}, "done": true, "done_reason": "length"})
                .to_string(),
        )
    }

    /// A successful Ollama `/api/generate` answer.
    pub fn ollama_generate(content: &str) -> Self {
        Self::raw(
            200,
            json!({"model": "stub-model", "response": content, "done": true}).to_string(),
        )
    }

    /// A successful OpenAI chat completion whose message content is `content`.
    pub fn openai(content: &str) -> Self {
        Self::raw(
            200,
            json!({
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": "stub-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
            })
            .to_string(),
        )
    }

    /// An OpenAI chat completion cut off at the token limit
    /// (`finish_reason: "length"`).
    pub fn openai_truncated(content: &str) -> Self {
        Self::raw(
            200,
            json!({
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "model": "stub-model",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "length"}],
            })
            .to_string(),
        )
    }

    /// An error status with an OpenAI-style error body.
    pub fn error(status: u16, message: &str) -> Self {
        Self::raw(
            status,
            json!({"error": {"message": message, "type": "stub_error"}}).to_string(),
        )
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Delays the answer.
    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// A request the stub received.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// Request path, e.g. `/api/chat`.
    pub path: String,
    /// The `authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
}

/// Computes a reply from the request (see [`StubServer::respond_with`]).
pub type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Shared {
    replies: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Reply>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<Recorded>>,
    arrived: mpsc::UnboundedSender<()>,
    in_flight: std::sync::atomic::AtomicUsize,
    max_in_flight: std::sync::atomic::AtomicUsize,
}

/// A scripted HTTP server on an ephemeral 127.0.0.1 port. Replies are
/// served in the order they were pushed; when none is left the fallback
/// reply (default: 500) is used. Stops when dropped.
pub struct StubServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    arrivals: tokio::sync::Mutex<mpsc::UnboundedReceiver<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl StubServer {
    /// Starts the server on 127.0.0.1 (port chosen by the OS).
    pub async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            replies: Mutex::new(VecDeque::new()),
            fallback: Mutex::new(Reply::error(500, "stub has no reply scripted")),
            responder: Mutex::new(None),
            requests: Mutex::new(Vec::new()),
            arrived: tx,
            in_flight: Default::default(),
            max_in_flight: Default::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(StubServer {
            addr,
            shared,
            arrivals: tokio::sync::Mutex::new(rx),
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues a reply.
    pub fn push(&self, reply: Reply) {
        lock(&self.shared.replies).push_back(reply);
    }

    /// Sets the reply used when the queue is empty.
    pub fn set_fallback(&self, reply: Reply) {
        *lock(&self.shared.fallback) = reply;
    }

    /// Answers requests with `f` when no queued reply is left (before the
    /// fallback), so a reply can depend on what was asked.
    pub fn respond_with(&self, f: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *lock(&self.shared.responder) = Some(Arc::new(f));
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// The most requests that were being answered at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.shared
            .max_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until one more request has arrived (at most `timeout`);
    /// `false` on timeout.
    pub async fn wait_for_request(&self, timeout: Duration) -> bool {
        let mut rx = self.arrivals.lock().await;
        matches!(tokio::time::timeout(timeout, rx.recv()).await, Ok(Some(())))
    }
}

impl std::fmt::Debug for StubServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StubServer")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for StubServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    lock(&shared.requests).push(recorded.clone());
    let _ = shared.arrived.send(());
    let queued = lock(&shared.replies).pop_front();
    let reply = match queued {
        Some(r) => r,
        None => {
            let responder = lock(&shared.responder).clone();
            match responder {
                Some(f) => f(&recorded),
                None => lock(&shared.fallback).clone(),
            }
        }
    };
    if method != Method::POST {
        return build(Reply::error(405, "only POST is supported"));
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    /// Counts the request out even when the client gives up on it.
    struct InFlight<'a>(&'a AtomicUsize);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _counted = InFlight(&shared.in_flight);
    shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    build(reply)
}

fn build(reply: Reply) -> Response {
    let mut builder =
        Response::builder().status(StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK));
    for (k, v) in &reply.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    builder
        .body(axum::body::Body::from(reply.body))
        .unwrap_or_else(|_| Response::new(axum::body::Body::empty()))
}

/// How a [`HangupServer`] ends each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hangup {
    /// Reads the request, then closes the connection without answering.
    Close,
    /// Reads the request, then resets the connection (TCP RST).
    Reset,
}

/// A server on 127.0.0.1 that accepts connections and hangs up on every
/// request without an answer, to test how clients report a connection
/// dropped mid-request. Stops when dropped.
#[derive(Debug)]
pub struct HangupServer {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl HangupServer {
    /// Starts the server (port chosen by the OS).
    pub async fn start(how: Hangup) -> std::io::Result<Self> {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // Read until the end of the request headers (the body
                    // follows; the client is still sending or waiting).
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 1 << 20 {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                    }
                    if how == Hangup::Reset {
                        let _ = stream.set_zero_linger();
                    }
                    drop(stream);
                });
            }
        });
        Ok(HangupServer { addr, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for HangupServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
