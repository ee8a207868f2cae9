//! `work`: runs the built-in workers in this process until interrupted (or
//! idle, with `--exit-when-idle`), stopping gracefully on SIGINT/SIGTERM and
//! cancelling running jobs on a second signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use semiont_jobs::model::{Job, JobType, TypeFilter};
use semiont_jobs::queue::JobQueue;
use semiont_jobs::worker::{JobContext, JobError, JobWorker, Worker, WorkerOptions};
use serde_json::Value;

use crate::builtin;

/// Every type `work` runs by default.
pub const ALL_TYPES: [&str; 6] = ["detection", "generation", "noop", "sleep", "fail", "steps"];

/// The one worker `work` runs: dispatches each job to the built-in code for
/// its type.
pub struct Builtin {
    types: Vec<JobType>,
    detection: Option<Arc<dyn JobWorker>>,
    generation: Option<Arc<dyn JobWorker>>,
    exec_log: Option<ExecLog>,
    exec_spans: Option<ExecLog>,
}

/// The hidden `--exec-log` of `work` (benchmarks): one `<job id>\t<unix
/// nanos>` line appended when each job starts executing, so another process
/// can measure enqueue → start latency and count executions per job.
pub struct ExecLog {
    file: std::sync::Mutex<std::fs::File>,
}

impl ExecLog {
    /// Opens `path` for appending (creating it).
    pub fn open(path: &std::path::Path) -> anyhow::Result<ExecLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open the exec log {}", path.display()))?;
        Ok(ExecLog {
            file: std::sync::Mutex::new(file),
        })
    }

    /// Appends one line for `job` (one `write`, so lines of several
    /// processes never interleave).
    pub fn record(&self, job: &Job) {
        self.write(&format!("{}\t{}\n", job.id, unix_nanos()));
    }

    /// Appends a span line: `<pid>\t<job id>\t<attempt>\t<what>\t<nanos>`.
    pub fn span(&self, job: &Job, what: &str) {
        self.write(&format!(
            "{}\t{}\t{}\t{what}\t{}\n",
            std::process::id(),
            job.id,
            job.attempt,
            unix_nanos()
        ));
    }

    fn write(&self, line: &str) {
        use std::io::Write;
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "cannot write the exec log");
        }
    }
}

fn unix_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl Builtin {
    /// A dispatcher for `types`, with the content workers it should use.
    pub fn new(
        types: Vec<JobType>,
        detection: Option<Arc<dyn JobWorker>>,
        generation: Option<Arc<dyn JobWorker>>,
    ) -> Self {
        Builtin {
            types,
            detection,
            generation,
            exec_log: None,
            exec_spans: None,
        }
    }

    /// Records every execution start in `path` (the hidden `--exec-log`).
    pub fn with_exec_log(mut self, path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        self.exec_log = path.map(ExecLog::open).transpose()?;
        Ok(self)
    }

    /// Records every execution's start and end in `path` (the hidden
    /// `--exec-spans`).
    pub fn with_exec_spans(mut self, path: Option<&std::path::Path>) -> anyhow::Result<Self> {
        self.exec_spans = path.map(ExecLog::open).transpose()?;
        Ok(self)
    }
}

#[async_trait]
impl JobWorker for Builtin {
    fn worker_name(&self) -> &str {
        "semiont-jobs"
    }

    fn job_types(&self) -> TypeFilter {
        TypeFilter::Only(self.types.clone())
    }

    fn can_process_job(&self, job: &Job) -> bool {
        self.types.contains(&job.job_type)
    }

    async fn execute_job(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
        if let Some(log) = &self.exec_log {
            log.record(job);
        }
        if let Some(spans) = &self.exec_spans {
            spans.span(job, "start");
        }
        let outcome = self.dispatch(ctx, job).await;
        if let Some(spans) = &self.exec_spans {
            spans.span(job, "end");
        }
        outcome
    }
}

impl Builtin {
    async fn dispatch(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
        let delegate = match job.job_type {
            JobType::Detection => self.detection.as_ref(),
            JobType::Generation => self.generation.as_ref(),
            _ => None,
        };
        if let Some(worker) = delegate {
            return worker.execute_job(ctx, job).await;
        }
        match builtin::run(ctx, job).await {
            Some(outcome) => outcome,
            None => Err(JobError::permanent(format!(
                "this worker has no implementation for job type {}",
                job.job_type
            ))
            .with_code("UNKNOWN_TYPE")),
        }
    }
}

/// Parses `--types` (empty: all built-in types).
pub fn parse_types(names: &[String]) -> anyhow::Result<Vec<JobType>> {
    let names: Vec<&str> = if names.is_empty() {
        ALL_TYPES.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    let mut out = Vec::new();
    for n in names {
        let t = JobType::parse(n).map_err(|e| crate::UsageError(e.to_string()))?;
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The hidden `--gate` of `work` (benchmarks): prints `ready` on standard
/// output, then waits for one line on standard input (or its end), so a
/// benchmark can start several workers at the same instant.
pub async fn gate() -> anyhow::Result<()> {
    use std::io::BufRead;
    crate::output::line("ready");
    tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map(drop)
    })
    .await
    .context("the gate's reader failed")?
    .context("cannot read the gate's standard input")
}

/// Whether no job of `types` is pending (due or not) or running (in any
/// process: a job whose worker died is recovered and becomes pending
/// again), paused types left out (their jobs wait for a resume, not for
/// this worker).
///
/// One read of the store's per-type counters (`get_type_stats`): exact,
/// and as cheap with a million jobs waiting as with none — unlike a look
/// at the next due job, which walks the pending index.
pub async fn nothing_pending(queue: &JobQueue, types: &[JobType]) -> anyhow::Result<bool> {
    let stats = queue.get_type_stats().await?;
    Ok(types.iter().all(|t| {
        stats
            .get(t)
            .is_none_or(|s| s.paused || (s.pending == 0 && s.running == 0))
    }))
}

/// How often, at most, `--exit-when-idle` asks the store whether anything
/// is left once it found something: a process between two claims has no
/// job in flight many times a second, and the answer then is almost
/// always "yes".
const IDLE_CHECK_GAP: Duration = Duration::from_millis(100);

/// Runs `worker` until a signal (or idleness), returning once it stopped.
pub async fn run_until_stopped(
    queue: &JobQueue,
    worker: Worker,
    types: Vec<JobType>,
    exit_when_idle: bool,
) -> anyhow::Result<()> {
    let runner = tokio::spawn({
        let worker = worker.clone();
        async move { worker.start().await }
    });
    let signals = tokio::spawn(handle_signals(worker.clone()));
    let idle = exit_when_idle.then(|| {
        let worker = worker.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut events = queue.subscribe().without_snapshots();
            loop {
                let _ = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
                if worker.in_flight() != 0 {
                    continue;
                }
                if nothing_pending(&queue, &types).await.unwrap_or(false) {
                    // Re-check after the runner had a chance to claim.
                    if worker.in_flight() == 0
                        && nothing_pending(&queue, &types).await.unwrap_or(false)
                    {
                        tracing::info!("no pending jobs left; stopping");
                        worker.stop().await;
                        return;
                    }
                } else {
                    // Work is left: the events of the next moment say
                    // nothing new. They are read (a subscriber left
                    // behind is told so in the log) but not acted on.
                    let until = tokio::time::Instant::now() + IDLE_CHECK_GAP;
                    while let Ok(Some(_)) = tokio::time::timeout_at(until, events.recv()).await {}
                }
            }
        })
    });
    let result = runner.await.context("worker task failed")?;
    signals.abort();
    if let Some(idle) = idle {
        idle.abort();
    }
    result?;
    Ok(())
}

async fn handle_signals(worker: Worker) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    next_signal(&mut int, &mut term).await;
    tracing::info!(event = "worker.stopping", worker_id = %worker.worker_id(), "stopping: waiting for running jobs (signal again to cancel them)");
    let stopping = tokio::spawn({
        let worker = worker.clone();
        async move { worker.stop().await }
    });
    next_signal(&mut int, &mut term).await;
    tracing::warn!(event = "worker.cancelling", worker_id = %worker.worker_id(), "cancelling running jobs");
    worker.cancel_running();
    let _ = stopping.await;
}

async fn next_signal(
    int: &mut tokio::signal::unix::Signal,
    term: &mut tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

/// Worker options from `work`'s flags.
pub fn options(args: &crate::args::WorkArgs) -> anyhow::Result<WorkerOptions> {
    if args.concurrency == 0 {
        return Err(crate::UsageError("--concurrency must be at least 1".into()).into());
    }
    if args.poll_interval == 0 {
        return Err(crate::UsageError("--poll-interval must be at least 1 ms".into()).into());
    }
    let mut o = WorkerOptions::default()
        .concurrency(args.concurrency)
        .claim_cooldown(Duration::from_millis(args.claim_cooldown))
        .poll_interval(Duration::from_millis(args.poll_interval))
        .shutdown_timeout(Duration::from_millis(args.shutdown_timeout));
    if let Some(id) = &args.worker_id {
        o = o.worker_id(id.clone());
    }
    Ok(o)
}
