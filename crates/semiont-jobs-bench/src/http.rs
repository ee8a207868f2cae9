//! HTTP: the load check of `semiont-jobs serve` on the filesystem backend,
//! loopback only and bounded in count and time (not part of `all`):
//!
//! - `HTTP-get`: `GET /api/v1/jobs/{id}` and `GET /api/v1/stats` from C
//!   keep-alive connections for S seconds (a raw HTTP/1.1 loop on tokio, so
//!   the client costs little of the machine it shares with the server):
//!   requests per second, p50/p99 latency, errors, server CPU and RSS.
//! - `HTTP-sse-burst`: N event-stream clients connected while a `semiont-jobs
//!   work` process runs a burst of J `noop` jobs enqueued by this process:
//!   every client must see every job complete (or be told to resync); the
//!   server's RSS with N clients.
//! - `HTTP-sse-latency`: W3's spaced enqueues with one event-stream client:
//!   how much later than the job's execution start its `started` event
//!   reaches the client (what a browser would add to W3's latency).
//!
//! The server runs with `RUST_LOG=warn` (no access log lines).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{noop_job, percentile, r3, wall_nanos, Ctx, Mode, Mulberry32};
use crate::data::{App, Create};

/// Sizes of the HTTP workload.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Seconds of each GET run.
    pub seconds: u64,
    /// Keep-alive connections of the GET runs.
    pub connections: usize,
    /// Event-stream clients during the burst.
    pub sse_clients: usize,
    /// Jobs in the burst.
    pub burst: usize,
    /// Spaced jobs of the latency run.
    pub spaced: usize,
}

/// A `semiont-jobs serve` process on a loopback port.
struct Serve {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn start(dir: &std::path::Path, mode: Mode) -> anyhow::Result<Serve> {
        use std::io::BufRead;
        let mut child = super::work_command(dir, mode)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "warn")
            .env_remove("SEMIONT_JOBS_TOKENS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| super::cannot_start("the server process"))?;
        let stdout = child.stdout.take().context("no stdout of serve")?;
        let mut first = String::new();
        std::io::BufReader::new(stdout).read_line(&mut first)?;
        let addr = first
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .with_context(|| format!("serve did not announce its address: {first:?}"))?;
        Ok(Serve { child, addr })
    }

    /// A field of the server's `/proc/<pid>/status`, in MiB.
    fn status_mib(&self, field: &str) -> f64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let kib: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0);
        r3(kib / 1024.0)
    }

    /// The server's CPU seconds (user + system) so far.
    fn cpu_s(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
    }
}

/// Runs the three parts; returns their result lines.
pub async fn run(ctx: &Ctx, opts: Options, mode: Mode) -> anyhow::Result<Vec<Value>> {
    let mut rows = Vec::new();
    rows.extend(gets(ctx, opts, mode).await?);
    rows.push(sse_burst(ctx, opts, mode).await?);
    rows.push(sse_latency(ctx, opts, mode).await?);
    Ok(rows)
}

/// Reads one HTTP/1.1 response (headers and a `Content-Length` body) into
/// `buf`; returns its status.
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<u16> {
    buf.clear();
    let mut chunk = [0u8; 16 << 10];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).context("response head")?;
            let status: u16 = head
                .get(9..12)
                .and_then(|s| s.parse().ok())
                .context("status line")?;
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .context("no content-length")?;
            while buf.len() < end + 4 + length {
                let n = conn.read(&mut chunk).await?;
                if n == 0 {
                    bail!("connection closed mid-body");
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Requests from `connections` keep-alive connections for `seconds`; each
/// connection cycles through `paths`. Returns (latencies in µs, errors).
async fn load(
    addr: SocketAddr,
    paths: Arc<Vec<String>>,
    connections: usize,
    seconds: u64,
) -> anyhow::Result<(Vec<u32>, u64, f64)> {
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let paths = Arc::clone(&paths);
        tasks.push(tokio::spawn(async move {
            let mut conn = TcpStream::connect(addr).await?;
            conn.set_nodelay(true)?;
            let mut buf = Vec::with_capacity(4096);
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut i = c;
            while Instant::now() < deadline {
                let path = &paths[i % paths.len()];
                i += connections;
                let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
                let t = Instant::now();
                conn.write_all(req.as_bytes()).await?;
                let status = read_response(&mut conn, &mut buf).await?;
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                if status != 200 {
                    errors += 1;
                }
            }
            anyhow::Ok((lat, errors))
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    Ok((all, errors, start.elapsed().as_secs_f64()))
}

async fn gets(ctx: &Ctx, opts: Options, mode: Mode) -> anyhow::Result<Vec<Value>> {
    super::progress(format!(
        "HTTP get: {} connections × {} s",
        opts.connections, opts.seconds
    ));
    let dir = ctx.new_dir("http-get")?;
    let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
    let jobs = app
        .queue
        .create_jobs((0..1000).map(noop_job))
        .await
        .context("seeding 1000 jobs")?;
    app.queue.close().await?;
    drop(app);
    let serve = Serve::start(&dir, mode)?;
    let ids: Vec<String> = jobs
        .iter()
        .map(|j| format!("/api/v1/jobs/{}", j.id))
        .collect();
    let mut rows = Vec::new();
    for (name, paths) in [
        ("GET /api/v1/jobs/{id}", ids),
        ("GET /api/v1/stats", vec!["/api/v1/stats".to_owned()]),
    ] {
        let cpu0 = serve.cpu_s();
        let (lat, errors, secs) =
            load(serve.addr, Arc::new(paths), opts.connections, opts.seconds).await?;
        let lat_ms: Vec<f64> = lat.iter().map(|us| f64::from(*us) / 1000.0).collect();
        rows.push(json!({
            "workload": "HTTP-get",
            "request": name,
            "durability": mode.as_str(),
            "connections": opts.connections,
            "seconds": r3(secs),
            "requests": lat.len(),
            "errors": errors,
            "requests_per_s": r3(lat.len() as f64 / secs),
            "p50_ms": r3(percentile(&lat_ms, 50.0)),
            "p99_ms": r3(percentile(&lat_ms, 99.0)),
            "p999_ms": r3(percentile(&lat_ms, 99.9)),
            "server_cpu_s": r3(serve.cpu_s() - cpu0),
            "server_rss_mib": serve.status_mib("VmRSS"),
            "client": "raw HTTP/1.1 keep-alive loop in the harness (same machine)",
        }));
    }
    Ok(rows)
}

/// What one event-stream client saw.
#[derive(Default)]
struct Seen {
    events: u64,
    /// Distinct jobs whose `completed` event arrived.
    completed: std::collections::HashSet<Vec<u8>>,
    resyncs: u64,
}

impl Seen {
    /// Counts one SSE block (`id:`/`event:`/`data:` lines).
    fn block(&mut self, block: &[u8]) {
        let Some(at) = find(block, b"event: ") else {
            return; // a comment
        };
        let name = &block[at + 7..];
        let name = &name[..name.iter().position(|b| *b == b'\n').unwrap_or(name.len())];
        self.events += 1;
        match name {
            b"completed" => {
                const KEY: &[u8] = b"\"jobId\":\"";
                if let Some(k) = find(block, KEY) {
                    let id = &block[k + KEY.len()..];
                    let id = &id[..id.iter().position(|b| *b == b'"').unwrap_or(0)];
                    self.completed.insert(id.to_vec());
                }
            }
            b"resync" => self.resyncs += 1,
            _ => {}
        }
    }
}

/// Opens an event stream; returns the connection once the server answered.
async fn open_stream(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while find(&buf, b"retry: 2000\n\n").is_none() {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("event stream closed before it started");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if !buf.starts_with(b"HTTP/1.1 200") {
        bail!("event stream refused: {}", String::from_utf8_lossy(&buf));
    }
    Ok(conn)
}

/// Counts events until `want` jobs completed (or a resync) or `deadline`.
async fn count_events(mut conn: TcpStream, want: usize, deadline: tokio::time::Instant) -> Seen {
    let mut seen = Seen::default();
    let mut buf = vec![0u8; 16 << 10];
    // Bytes of a block not complete yet.
    let mut pending: Vec<u8> = Vec::new();
    while seen.completed.len() < want && seen.resyncs == 0 {
        let n = match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut at = 0;
        while let Some(end) = find(&pending[at..], b"\n\n") {
            seen.block(&pending[at..at + end]);
            at += end + 2;
        }
        pending.drain(..at);
    }
    seen
}

async fn sse_burst(ctx: &Ctx, opts: Options, mode: Mode) -> anyhow::Result<Value> {
    super::progress(format!(
        "HTTP sse-burst: {} clients, {} jobs",
        opts.sse_clients, opts.burst
    ));
    let dir = ctx.new_dir("http-sse")?;
    let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
    let serve = Serve::start(&dir, mode)?;
    let rss_idle = serve.status_mib("VmRSS");
    let mut conns = Vec::with_capacity(opts.sse_clients);
    for _ in 0..opts.sse_clients {
        conns.push(open_stream(serve.addr).await?);
    }
    let rss_connected = serve.status_mib("VmRSS");
    let mut worker = super::work_command(&dir, mode)
        .args(["work", "--types", "noop", "--concurrency", "4"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| super::cannot_start("the burst's worker process"))?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    let want = opts.burst;
    let clients: Vec<_> = conns
        .into_iter()
        .map(|c| tokio::spawn(count_events(c, want, deadline)))
        .collect();
    let cpu0 = serve.cpu_s();
    let t0 = Instant::now();
    for i in 0..opts.burst {
        app.queue.create_job(noop_job(i)).await?;
    }
    let enqueue_s = t0.elapsed().as_secs_f64();
    let mut seen = Vec::with_capacity(clients.len());
    let mut peak = 0.0f64;
    for c in clients {
        seen.push(c.await?);
        peak = peak.max(serve.status_mib("VmRSS"));
    }
    let wall_s = t0.elapsed().as_secs_f64();
    let _ = worker.kill();
    let _ = worker.wait();
    let stats = app.queue.get_stats().await?;
    app.queue.close().await?;
    let complete = seen.iter().filter(|s| s.completed.len() >= want).count();
    let resynced = seen
        .iter()
        .filter(|s| s.completed.len() < want && s.resyncs > 0)
        .count();
    let events: Vec<f64> = seen.iter().map(|s| s.events as f64).collect();
    Ok(json!({
        "workload": "HTTP-sse-burst",
        "durability": mode.as_str(),
        "clients": opts.sse_clients,
        "jobs": opts.burst,
        "jobs_complete_in_store": stats.complete,
        "clients_saw_every_completion": complete,
        "clients_resynced": resynced,
        "clients_missing_events": opts.sse_clients - complete - resynced,
        "events_per_client_min": events.iter().copied().fold(f64::INFINITY, f64::min),
        "events_per_client_max": events.iter().copied().fold(0.0, f64::max),
        "enqueue_s": r3(enqueue_s),
        "wall_s": r3(wall_s),
        "server_cpu_s": r3(serve.cpu_s() - cpu0),
        "server_rss_idle_mib": rss_idle,
        "server_rss_connected_mib": rss_connected,
        "server_rss_peak_sampled_mib": r3(peak.max(rss_connected)),
        "server_hwm_mib": serve.status_mib("VmHWM"),
    }))
}

async fn sse_latency(ctx: &Ctx, opts: Options, mode: Mode) -> anyhow::Result<Value> {
    super::progress(format!("HTTP sse-latency: {} spaced jobs", opts.spaced));
    let dir = ctx.new_dir("http-lat")?;
    let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
    let serve = Serve::start(&dir, mode)?;
    let log = dir.join("exec-http.log");
    let mut worker = super::work_command(&dir, mode)
        .args([
            "--log-format",
            "json",
            "work",
            "--types",
            "sleep",
            "--exec-log",
        ])
        .arg(&log)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| super::cannot_start("the latency run's worker process"))?;
    let stderr = worker.stderr.take().context("no stderr of the worker")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // Drain the worker's log (a full pipe would block it); say when it started.
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("\"worker.started\"") {
                let _ = ready_tx.send(());
            }
        }
    });
    let started =
        tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(30))).await?;
    if started.is_err() {
        let _ = worker.kill();
        let _ = worker.wait();
        bail!("the latency run's worker did not start within 30 s");
    }
    let mut conn = open_stream(serve.addr).await?;
    // The client: when each job's `started` event arrives (wall time).
    let (tx, mut arrivals_rx) = tokio::sync::mpsc::unbounded_channel::<(String, u128)>();
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        let mut buf = vec![0u8; 16 << 10];
        loop {
            let n = match conn.read(&mut buf).await {
                Ok(n) if n > 0 => n,
                _ => return,
            };
            let now = wall_nanos();
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(end) = text.find("\n\n") {
                let block: String = text.drain(..end + 2).collect();
                // The job is visible as running (or, should the server's
                // view of the store have merged the moves, as finished).
                if !block.contains("event: started\n") && !block.contains("event: completed\n") {
                    continue;
                }
                let id = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .and_then(|d| serde_json::from_str::<Value>(d).ok())
                    .and_then(|v| v["jobId"].as_str().map(str::to_owned));
                if let Some(id) = id {
                    if tx.send((id, now)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut rng = Mulberry32::new(ctx.seed.wrapping_mul(31).wrapping_add(3));
    let mut enqueued = Vec::with_capacity(opts.spaced);
    for i in 0..opts.spaced {
        let gap = 50 + (rng.next_f64() * 251.0) as u64;
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let at = wall_nanos();
        // Jobs that run for a moment, as real ones do, so that the stream
        // can show them running.
        let job = semiont_jobs::model::NewJob::custom(
            "sleep",
            "bench-user@example.com",
            serde_json::json!({ "ms": 100, "n": i }),
        )?;
        let job = app.queue.create_job(job).await?;
        enqueued.push((job.id.to_string(), at));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut arrivals: HashMap<String, u128> = HashMap::new();
    while enqueued.iter().any(|(id, _)| !arrivals.contains_key(id)) {
        match tokio::time::timeout_at(deadline, arrivals_rx.recv()).await {
            Ok(Some((id, at))) => {
                arrivals.entry(id).or_insert(at);
            }
            _ => break,
        }
    }
    let mut starts = super::w3::read_exec_log(&log)?.0;
    while enqueued.iter().any(|(id, _)| !starts.contains_key(id))
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
        starts = super::w3::read_exec_log(&log)?.0;
    }
    reader.abort();
    drop(serve);
    let _ = worker.kill();
    let _ = worker.wait();
    app.queue.close().await?;
    let ms = |a: u128, b: u128| (a as f64 - b as f64) / 1e6;
    let mut exec = Vec::new();
    let mut sse = Vec::new();
    let mut added = Vec::new();
    for (id, at) in &enqueued {
        if let (Some(s), Some(a)) = (starts.get(id), arrivals.get(id)) {
            exec.push(ms(*s, *at));
            sse.push(ms(*a, *at));
            added.push(ms(*a, *s));
        }
    }
    if sse.is_empty() {
        bail!("no started event reached the client");
    }
    Ok(json!({
        "workload": "HTTP-sse-latency",
        "durability": mode.as_str(),
        "jobs": opts.spaced,
        "measured": sse.len(),
        "enqueue_to_start_p50_ms": r3(percentile(&exec, 50.0)),
        "enqueue_to_sse_p50_ms": r3(percentile(&sse, 50.0)),
        "enqueue_to_sse_p99_ms": r3(percentile(&sse, 99.0)),
        "sse_after_start_p50_ms": r3(percentile(&added, 50.0)),
        "sse_after_start_p99_ms": r3(percentile(&added, 99.0)),
    }))
}
