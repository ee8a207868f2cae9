//! A server on an ephemeral loopback port, a plain HTTP client, an SSE
//! reader, and stores with injected failures or delays.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use semiont_jobs_model::{Job, JobFilter, JobId, JobPage, JobType, NewJob, QueueStats, Timestamp};
use semiont_jobs_queue::JobQueue;
use semiont_jobs_server::{AppState, Server, ServerConfig};
use semiont_jobs_store::{
    Capabilities, ChangeStream, ClaimRequest, Expect, FinishedJob, Heartbeat, JobStore, LostJob,
    MemoryStore, RecoveryReport, TypeFilter, WorkerInfo, WorkerRecord,
};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// Longest wait for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(10);

/// A running server and a client for it.
pub struct TestServer {
    /// `http://127.0.0.1:<port>` plus the base path.
    pub base: String,
    /// The bound address.
    pub addr: std::net::SocketAddr,
    /// A client without proxies.
    pub client: reqwest::Client,
    /// The queue served.
    pub queue: JobQueue,
    /// The server's state (to shut it down).
    pub state: AppState,
    handle: Option<JoinHandle<semiont_jobs_server::Result<()>>>,
}

/// A queue over a fresh in-memory store.
pub fn memory_queue() -> JobQueue {
    JobQueue::builder()
        .store(Arc::new(MemoryStore::new()))
        .build()
        .unwrap()
}

/// A config listening on an ephemeral loopback port.
pub fn config() -> ServerConfig {
    ServerConfig::default().listen("127.0.0.1:0".parse().unwrap())
}

/// A reqwest client that ignores proxy settings.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

impl TestServer {
    /// A server over a memory queue with the default config.
    pub async fn start() -> Self {
        Self::with(config()).await
    }

    /// A server over a memory queue.
    pub async fn with(config: ServerConfig) -> Self {
        Self::on(memory_queue(), config).await
    }

    /// A server over `queue`.
    pub async fn on(queue: JobQueue, config: ServerConfig) -> Self {
        let base_path = config.base_path.clone();
        let state = AppState::new(queue.clone(), config).unwrap();
        let server = Server::bind(state.clone()).await.unwrap();
        let addr = server.local_addr();
        let handle = tokio::spawn(server.run(std::future::pending()));
        TestServer {
            base: format!("http://{addr}{base_path}"),
            addr,
            client: client(),
            queue,
            state,
            handle: Some(handle),
        }
    }

    /// The URL of `path` (below the base path).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`.
    pub fn req(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// `GET path` → status and JSON body.
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        json_of(self.req(Method::GET, path).send().await.unwrap()).await
    }

    /// `POST path` with a JSON body → status and JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        json_of(
            self.req(Method::POST, path)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Creates a job through the API and returns it.
    pub async fn create(&self, body: Value) -> Value {
        let (status, job) = self.post("/api/v1/jobs", &body).await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        job
    }

    /// Waits for the server task to end by itself.
    pub async fn join(mut self) {
        if let Some(h) = self.handle.take() {
            tokio::time::timeout(WAIT, h)
                .await
                .expect("the server stops")
                .unwrap()
                .unwrap();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.shutdown();
    }
}

/// Status and body as JSON (`Value::Null` for an empty body), asserting
/// the content type of errors.
pub async fn json_of(resp: Response) -> (StatusCode, Value) {
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = resp.bytes().await.unwrap();
    if status.is_client_error() || status.is_server_error() {
        assert_eq!(ct, "application/problem+json", "{status}: {bytes:?}");
    }
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{status}: {e}: {bytes:?}"))
    };
    (status, body)
}

/// Asserts a problem document with `status` whose detail contains `needle`.
pub fn assert_problem(got: &(StatusCode, Value), status: u16, needle: &str) {
    assert_eq!(got.0.as_u16(), status, "{}", got.1);
    let detail = got.1["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(needle),
        "detail {detail:?} lacks {needle:?}"
    );
    assert!(!detail.contains('\n'), "{detail:?}");
    assert_eq!(got.1["status"], status);
}

/// A `noop` job body for `user`.
pub fn noop(user: &str) -> Value {
    json!({ "type": "noop", "userId": user })
}

/// One SSE block: id, event name, data (JSON), or a comment.
#[derive(Debug, Clone)]
pub struct Block {
    /// `id:` as a number.
    pub id: Option<u64>,
    /// `event:` (empty for comments).
    pub event: String,
    /// `data:` parsed as JSON (`Null` for comments).
    pub data: Value,
    /// Comment lines (without the `:`).
    pub comments: Vec<String>,
}

/// An open event stream.
pub struct Sse {
    resp: Response,
    buf: String,
    /// Bytes received so far.
    pub received: usize,
}

impl Sse {
    /// Opens `url` with optional headers; asserts 200 and the media type.
    pub async fn open(req: RequestBuilder) -> Sse {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            resp,
            buf: String::new(),
            received: 0,
        }
    }

    /// The next block, `None` when the stream ended; panics after `WAIT`.
    pub async fn next_block(&mut self) -> Option<Block> {
        tokio::time::timeout(WAIT, self.next_block_inner())
            .await
            .expect("an SSE block within the wait")
    }

    async fn next_block_inner(&mut self) -> Option<Block> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let mut block = Block {
                    id: None,
                    event: String::new(),
                    data: Value::Null,
                    comments: Vec::new(),
                };
                for line in raw.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        block.id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        block.event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        block.data = serde_json::from_str(v).unwrap();
                    } else if let Some(v) = line.strip_prefix(':') {
                        block.comments.push(v.trim().to_owned());
                    }
                }
                return Some(block);
            }
            match self.resp.chunk().await {
                Ok(Some(bytes)) => {
                    self.received += bytes.len();
                    self.buf.push_str(std::str::from_utf8(&bytes).unwrap());
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The next event (comments and `retry:` blocks skipped), `None` at the end.
    pub async fn next_event(&mut self) -> Option<Block> {
        loop {
            let b = self.next_block().await?;
            if !b.event.is_empty() {
                return Some(b);
            }
        }
    }

    /// Events until one satisfies `pred` (returned last).
    pub async fn until(&mut self, mut pred: impl FnMut(&Block) -> bool) -> Vec<Block> {
        let mut seen = Vec::new();
        loop {
            let b = self
                .next_event()
                .await
                .unwrap_or_else(|| panic!("stream ended; saw {seen:#?}"));
            let done = pred(&b);
            seen.push(b);
            if done {
                return seen;
            }
        }
    }
}

/// A memory store that can be made to fail (`Unavailable`) or to delay
/// creates, to test readiness, error mapping and graceful shutdown.
#[derive(Debug, Default)]
pub struct FaultyStore {
    inner: MemoryStore,
    /// Every call fails with `Unavailable`.
    pub down: AtomicBool,
    /// `create` sleeps this long first (milliseconds).
    pub create_delay_ms: std::sync::atomic::AtomicU64,
    /// Notified when a delayed `create` starts.
    pub create_started: tokio::sync::Notify,
}

impl FaultyStore {
    fn check(&self) -> semiont_jobs_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(semiont_jobs_store::Error::Unavailable {
                store: "test",
                transient: true,
                source: "connection refused".into(),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl JobStore for FaultyStore {
    async fn create(&self, job: &Job) -> semiont_jobs_store::Result<()> {
        let ms = self.create_delay_ms.load(Ordering::SeqCst);
        if ms > 0 {
            self.create_started.notify_one();
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        self.check()?;
        self.inner.create(job).await
    }
    async fn create_batch(&self, jobs: &[Job]) -> semiont_jobs_store::Result<()> {
        self.check()?;
        self.inner.create_batch(jobs).await
    }
    async fn get(&self, id: &JobId) -> semiont_jobs_store::Result<Job> {
        self.check()?;
        self.inner.get(id).await
    }
    async fn transition(&self, expect: Expect, job: &Job) -> semiont_jobs_store::Result<()> {
        self.check()?;
        self.inner.transition(expect, job).await
    }
    async fn update_running(&self, job: &Job) -> semiont_jobs_store::Result<()> {
        self.check()?;
        self.inner.update_running(job).await
    }
    async fn claim(&self, req: &ClaimRequest) -> semiont_jobs_store::Result<Option<Job>> {
        self.check()?;
        self.inner.claim(req).await
    }
    async fn peek_next(
        &self,
        types: &TypeFilter,
        now: Timestamp,
    ) -> semiont_jobs_store::Result<Option<Job>> {
        self.check()?;
        self.inner.peek_next(types, now).await
    }
    async fn list(&self, filter: &JobFilter) -> semiont_jobs_store::Result<JobPage> {
        self.check()?;
        self.inner.list(filter).await
    }
    async fn stats(&self) -> semiont_jobs_store::Result<QueueStats> {
        self.check()?;
        self.inner.stats().await
    }
    async fn type_stats(
        &self,
    ) -> semiont_jobs_store::Result<std::collections::BTreeMap<JobType, QueueStats>> {
        self.check()?;
        self.inner.type_stats().await
    }
    async fn set_paused(
        &self,
        job_type: &JobType,
        paused: bool,
    ) -> semiont_jobs_store::Result<bool> {
        self.check()?;
        self.inner.set_paused(job_type, paused).await
    }
    async fn paused_types(
        &self,
    ) -> semiont_jobs_store::Result<std::collections::BTreeSet<JobType>> {
        self.check()?;
        self.inner.paused_types().await
    }
    async fn try_lock_sweep(
        &self,
        holder: &str,
        ttl: Duration,
        now: Timestamp,
    ) -> semiont_jobs_store::Result<bool> {
        self.check()?;
        self.inner.try_lock_sweep(holder, ttl, now).await
    }
    async fn finished_before(
        &self,
        before: Timestamp,
        limit: usize,
    ) -> semiont_jobs_store::Result<Vec<FinishedJob>> {
        self.check()?;
        self.inner.finished_before(before, limit).await
    }
    async fn delete(&self, id: &JobId, expect: Expect) -> semiont_jobs_store::Result<()> {
        self.check()?;
        self.inner.delete(id, expect).await
    }
    async fn register_worker(&self, worker: &WorkerInfo) -> semiont_jobs_store::Result<()> {
        self.check()?;
        self.inner.register_worker(worker).await
    }
    async fn heartbeat(&self, beat: &Heartbeat) -> semiont_jobs_store::Result<Vec<LostJob>> {
        self.check()?;
        self.inner.heartbeat(beat).await
    }
    async fn unregister_worker(&self, worker_id: &str) -> semiont_jobs_store::Result<()> {
        self.check()?;
        self.inner.unregister_worker(worker_id).await
    }
    async fn workers(&self) -> semiont_jobs_store::Result<Vec<WorkerRecord>> {
        self.check()?;
        self.inner.workers().await
    }
    async fn recover(&self, now: Timestamp) -> semiont_jobs_store::Result<RecoveryReport> {
        self.check()?;
        self.inner.recover(now).await
    }
    fn subscribe(&self) -> ChangeStream {
        self.inner.subscribe()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

/// A queue over `store`.
pub fn queue_over(store: Arc<dyn JobStore>) -> JobQueue {
    JobQueue::builder().store(store).build().unwrap()
}

/// Creates `n` noop jobs directly in the queue.
pub async fn seed(queue: &JobQueue, n: usize, user: &str) -> Vec<Job> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            queue
                .create_job(NewJob::custom("noop", user, json!({})).unwrap())
                .await
                .unwrap(),
        );
    }
    out
}
