//! `semiont-jobs-bench`, the benchmark harness behind `semiont-jobs bench`:
//! the workloads W1–W4 of DESIGN §9 as JSON lines (with `--json`) or one
//! readable line per result, with the field names of the upstream harness
//! (`../shared/anchors/node/bench.mjs`) so the two can be compared.
//!
//! - W1 ([`w1`]): create N `noop` jobs, then drain them in this process with
//!   one claim → complete loop; plus a raw-syscall floor of the same
//!   lifecycle measured in the same run.
//! - W2 ([`w2`]): M complete jobs on disk; cold open, RSS, list, stats, get,
//!   cleanup with nothing to delete (each size in a fresh process).
//! - W3 ([`w3`]): an idle `semiont-jobs work` process; enqueue → execution
//!   start latency.
//! - W4 ([`w4`]): P `semiont-jobs work` processes drain J pre-created jobs.
//! - http ([`http`], not in `all`): the load check of `semiont-jobs serve`.
//!
//! W3 and W4 start the `semiont-jobs` binary ([`semiont_jobs_bin`]). The
//! report, `docs/benchmarks.md`, is written from these JSON lines by
//! `cargo xtask bench`. Exit codes as `semiont-jobs`: 0 success, 2 usage
//! error, 1 anything else, with a one-line message.

#![allow(
    clippy::print_stderr,
    reason = "progress of long benchmark runs and the one-line errors go to standard error"
)]

mod args;
mod data;
mod drain;
mod http;
mod soak;
mod w1;
mod w2;
mod w3;
mod w4;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use semiont_jobs::model::{NewJob, Timestamp};
use semiont_jobs::store::Durability;
use serde_json::{json, Value};
use tracing_subscriber::EnvFilter;

use crate::args::{BenchArgs, Cli, DurabilityArg, LogFormat, Workload};

/// The environment variable naming the `semiont-jobs` binary that W3 and
/// W4 start; `semiont-jobs bench` sets it to itself.
pub const BIN_ENV: &str = "SEMIONT_JOBS_BIN";

/// A mistake in how the harness was called (exit code 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn main() -> ExitCode {
    let mut command = Cli::command();
    if std::env::var_os(BIN_ENV).is_some() {
        // Started by `semiont-jobs bench`: usage and errors name that command.
        command = command.bin_name("semiont-jobs bench");
    }
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // Standard output was a pipe whose reader went away (`| head`):
        // quietly, with the status of a program ended by SIGPIPE.
        Err(e) if is_broken_pipe(&e) => ExitCode::from(BROKEN_PIPE_STATUS),
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Exit status of a run whose output pipe was closed (128 + SIGPIPE).
const BROKEN_PIPE_STATUS: u8 = 141;

/// Whether `e` comes from writing to a pipe whose reader has gone.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

/// Warnings and errors of the queue under test, on standard error.
fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// The error and its causes on one line, `: `-separated, skipping a cause
/// whose text the line already ends with.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        if line.is_empty() {
            line = text;
        } else if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

/// The durability a workload runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No fsync at all.
    None,
    /// fsync on every create and transition.
    Fsync,
    /// fsync, with enqueue in batches behind one barrier each (W1).
    Batch,
}

impl Mode {
    /// The name used in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Fsync => "fsync",
            Mode::Batch => "batch",
        }
    }

    /// The queue's durability in this mode.
    pub fn durability(self) -> Durability {
        match self {
            Mode::None => Durability::None,
            Mode::Fsync | Mode::Batch => Durability::Fsync,
        }
    }

    /// The global `--durability` value a worker process gets.
    pub fn cli_flag(self) -> &'static str {
        match self {
            Mode::None => "none",
            Mode::Fsync | Mode::Batch => "fsync",
        }
    }

    fn of(arg: DurabilityArg) -> Mode {
        match arg {
            DurabilityArg::None => Mode::None,
            DurabilityArg::Fsync => Mode::Fsync,
            DurabilityArg::Batch => Mode::Batch,
        }
    }
}

/// Everything a workload needs to know.
pub struct Ctx {
    /// Print JSON lines (else readable lines).
    pub json: bool,
    /// This invocation's directory (under `--root`), holding every unit's
    /// data directory until the end: deleting many files right before the
    /// next unit would slow that unit down on ext4 without a journal.
    pub run_dir: PathBuf,
    /// Keep data directories.
    pub keep: bool,
    /// PRNG seed.
    pub seed: u32,
    /// Longest [`Ctx::settle`].
    pub settle_max: Duration,
}

impl Ctx {
    /// Prints one result on standard output: a JSON line, or a readable one.
    #[allow(clippy::print_stdout, reason = "the results are the harness's output")]
    pub fn emit(&self, row: &Value) -> anyhow::Result<()> {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut out, row)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", summary_line(row))?;
        }
        out.flush()?;
        Ok(())
    }

    /// A fresh, empty directory for one measured unit.
    pub fn new_dir(&self, tag: &str) -> anyhow::Result<PathBuf> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = self.run_dir.join(format!("{tag}-{n}"));
        crate::data::create_private_dir(&dir)?;
        Ok(dir)
    }

    /// Deletes this invocation's data (unless `--keep`).
    fn finish(&self) {
        if self.keep {
            progress(format!("kept {}", self.run_dir.display()));
        } else if let Err(e) = std::fs::remove_dir_all(&self.run_dir) {
            progress(format!("cannot remove {}: {e}", self.run_dir.display()));
        } else {
            let root = self.run_dir.parent().unwrap_or(&self.run_dir);
            let (_, probes) = settle_in(root, self.settle_max);
            // A few thousand files at most: the price of leaving the root
            // as it was.
            let _ = std::fs::remove_dir_all(probes);
        }
    }

    /// Lets the filesystem forget recent deletes before the next measured unit
    /// and returns the mean create cost (µs) it ended with.
    ///
    /// ext4 without a journal does not reuse an inode freed less than 60 s ago
    /// (6 min while its inode table block is still dirty), and every create
    /// scans past each such inode: right after a unit freed tens of thousands
    /// of files, a create costs ~1 ms instead of ~40 µs, and the next unit
    /// would measure the benchmark's own cleanup. So: write everything back
    /// (`syncfs`, which starts the 60 s clock), then probe the create cost
    /// every [`SETTLE_POLL`] until it is back under [`FAST_CREATE_US`], for at
    /// most `--settle-max` seconds. On a filesystem without that rule (tmpfs, a
    /// journalled ext4) the first probe passes at once.
    pub fn settle(&self, root: &Path) -> f64 {
        if crate::data::DATABASE.get().is_some() {
            // A database's file creation pattern is its own business.
            return 0.0;
        }
        settle_in(root, self.settle_max).0
    }
}

/// [`Ctx::settle`], also returning the directory that holds its probe files.
fn settle_in(root: &Path, max: Duration) -> (f64, PathBuf) {
    static N: AtomicU64 = AtomicU64::new(0);
    let t0 = Instant::now();
    let dir = root.join(format!(".settle-{}", N.fetch_add(1, Ordering::Relaxed)));
    let mut us = f64::NAN;
    for round in 0.. {
        if let Ok(d) = std::fs::File::open(root) {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid descriptor for the duration of the call.
            unsafe {
                libc::syncfs(d.as_raw_fd());
            }
        }
        // The probe's own files stay until the run's data is removed:
        // deleting them would be what this waits out.
        us = match crate::data::create_private_dir(&dir)
            .and_then(|()| create_probe(&dir, &format!("r{round}-"), SETTLE_PROBE))
        {
            Ok(us) => us,
            Err(e) => {
                progress(format!("cannot probe {}: {e}; not waiting", dir.display()));
                return (f64::NAN, dir);
            }
        };
        if us <= FAST_CREATE_US {
            if round > 0 {
                progress(format!(
                    "filesystem settled after {:.0} s (create {us:.0} µs)",
                    t0.elapsed().as_secs_f64()
                ));
            }
            return (us, dir);
        }
        if t0.elapsed() >= max {
            progress(format!(
                "creates still cost {us:.0} µs after {} s; going on",
                max.as_secs()
            ));
            return (us, dir);
        }
        if round == 0 {
            progress(format!(
                "a create costs {us:.0} µs: waiting (at most {} s) for the filesystem to forget freed inodes",
                max.as_secs()
            ));
        }
        std::thread::sleep(SETTLE_POLL);
    }
    (us, dir)
}

/// A create at most this slow (µs) counts as settled; ~40 µs is usual on
/// this project's machines, ~1,000 µs right after mass deletes.
const FAST_CREATE_US: f64 = 150.0;
/// Creates per settle probe: enough to use up the free slots an earlier
/// probe or unit left and reach the recently freed inodes behind them (a
/// probe of 20 files measured ~45 µs while the next 2,000 creates cost
/// ~1 ms each).
const SETTLE_PROBE: usize = 300;
/// Time between settle probes.
const SETTLE_POLL: Duration = Duration::from_secs(3);

/// A progress message on standard error.
pub fn progress(msg: impl AsRef<str>) {
    eprintln!("[bench] {}", msg.as_ref());
}

/// Drops the schemas this run made in its database.
async fn drop_schemas() {
    let Some(url) = crate::data::DATABASE.get() else {
        return;
    };
    let schemas = std::mem::take(
        &mut *crate::data::SCHEMAS
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    if schemas.is_empty() {
        return;
    }
    match semiont_jobs::store_pg::admin_sql(
        url,
        &schemas
            .iter()
            .map(|s| format!("DROP SCHEMA IF EXISTS {s} CASCADE;"))
            .collect::<String>(),
    )
    .await
    {
        Ok(()) => progress(format!("dropped {} schema(s)", schemas.len())),
        Err(e) => progress(format!("cannot drop the benchmark schemas: {e}")),
    }
}

/// The database server's version and the settings that decide W1's
/// numbers (`server_version`, `fsync`, `synchronous_commit`, ...).
async fn server_row() -> Option<Value> {
    let url = crate::data::DATABASE.get()?;
    let settings = semiont_jobs::store_pg::server_settings(url).await.ok()?;
    Some(json!({ "backend": "postgres", "url": url.to_string(), "server": settings }))
}

/// Runs the benchmarks.
async fn run(cli: &Cli) -> anyhow::Result<()> {
    let args = &cli.bench;
    // Nothing is made on disk before the arguments are known to be good.
    if args.jobs == Some(0) {
        return Err(UsageError("--jobs must be at least 1".into()).into());
    }
    if args.batch_size == 0 {
        return Err(UsageError("--batch-size must be at least 1".into()).into());
    }
    if args.http_seconds == 0 || args.http_connections == 0 || args.sse_clients == 0 {
        return Err(UsageError(
            "--http-seconds, --http-connections and --sse-clients must be at least 1".into(),
        )
        .into());
    }
    if args.processes.contains(&0) {
        return Err(UsageError("--processes must be at least 1".into()).into());
    }
    let root = match &args.root {
        Some(r) => r.clone(),
        None => std::env::temp_dir(),
    };
    crate::data::create_private_dir(&root)?;
    let root = std::fs::canonicalize(&root)
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    let run_dir = root.join(format!(
        "semiont-bench-{}-{}",
        std::process::id(),
        wall_nanos() % 1_000_000_000
    ));
    crate::data::create_private_dir(&run_dir)?;
    if let Some(url) = &cli.database_url {
        let url = semiont_jobs::store_pg::DatabaseUrl::parse(url)?;
        let _ = crate::data::DATABASE.set(url);
    }
    let ctx = Ctx {
        json: cli.json,
        run_dir,
        keep: args.keep || args.inner,
        seed: args.seed,
        settle_max: Duration::from_secs(args.settle_max),
    };
    let result = run_workloads(cli, args, &ctx).await;
    if result.as_ref().is_err_and(is_broken_pipe) {
        // Nobody reads the results any more: leave quietly, and tidily.
        if !ctx.keep {
            let _ = std::fs::remove_dir_all(&ctx.run_dir);
            drop_schemas().await;
        }
    } else if result.is_err() {
        progress(format!("failed; data kept in {}", ctx.run_dir.display()));
    } else {
        ctx.finish();
        if !ctx.keep {
            drop_schemas().await;
        }
    }
    result
}

async fn run_workloads(cli: &Cli, args: &BenchArgs, ctx: &Ctx) -> anyhow::Result<()> {
    // When `--durability` is not given, W1 runs every mode and the rest
    // run with fsync.
    let explicit = cli.durability.is_some();
    let mode = Mode::of(cli.durability.unwrap_or(DurabilityArg::Fsync));
    let mut workloads = args.workload.clone();
    if workloads.contains(&Workload::All) {
        workloads = vec![Workload::W1, Workload::W2, Workload::W3, Workload::W4];
    }
    workloads.sort();
    workloads.dedup();
    if !args.inner {
        let mut env = env_row(ctx, args)?;
        if let (Some(server), Some(obj)) = (server_row().await, env.as_object_mut()) {
            obj.insert("database".into(), server);
        }
        ctx.emit(&env)?;
    }
    if crate::data::DATABASE.get().is_some() {
        workloads.retain(|w| *w != Workload::W2);
    }
    for w in workloads {
        match w {
            Workload::W1 => {
                let modes = if explicit {
                    vec![mode]
                } else {
                    vec![Mode::None, Mode::Fsync, Mode::Batch]
                };
                let n = args.jobs.unwrap_or(10_000);
                for m in modes {
                    let row = w1::run(
                        ctx,
                        n,
                        m,
                        args.batch_size,
                        w1::Options {
                            watch: !args.no_watch,
                            floor: !args.no_floor,
                        },
                    )
                    .await?;
                    ctx.emit(&row)?;
                }
            }
            Workload::W2 => {
                if args.inner {
                    for &m in &args.scale {
                        let row = w2::run(ctx, m, mode).await?;
                        ctx.emit(&row)?;
                    }
                } else {
                    for &m in &args.scale {
                        w2::run_in_child(ctx, m, mode)?;
                    }
                }
            }
            Workload::W3 => {
                let row = w3::run(ctx, args.jobs.unwrap_or(20), mode).await?;
                ctx.emit(&row)?;
            }
            Workload::W4 => {
                let jobs = args.jobs.unwrap_or(2000);
                let mut rates = Vec::new();
                for &p in &args.processes {
                    let row = w4::run(ctx, p, jobs, mode).await?;
                    rates.push((p, row["jobs_per_s"].as_f64()));
                    ctx.emit(&row)?;
                }
                let rate = |p: usize| rates.iter().find(|r| r.0 == p).and_then(|r| r.1);
                if let (Some(one), Some(two)) = (rate(1), rate(2)) {
                    ctx.emit(&json!({
                        "workload": "W4-scaling",
                        "durability": mode.as_str(),
                        "jobs": jobs,
                        "jobs_per_s_1": one,
                        "jobs_per_s_2": two,
                        "ratio_2_vs_1": r3(two / one),
                    }))?;
                }
            }
            Workload::Burndown | Workload::Lifecycle => {
                for &c in &args.concurrency {
                    for &p in &args.processes {
                        let (jobs, feed) = if w == Workload::Burndown {
                            (args.jobs.unwrap_or(100_000), drain::Feed::Before)
                        } else {
                            (
                                args.jobs.unwrap_or(20_000),
                                drain::Feed::During(args.producers.unwrap_or(p)),
                            )
                        };
                        let unit = drain::Unit {
                            jobs,
                            procs: p,
                            concurrency: c.max(1),
                            feed,
                            batch_size: args.batch_size,
                        };
                        let row = drain::run(ctx, unit, mode).await?;
                        ctx.emit(&row)?;
                    }
                }
            }
            Workload::Soak => {
                let rows = soak::soak(
                    ctx,
                    args.jobs.unwrap_or(2_000_000),
                    args.processes.first().copied().unwrap_or(2).max(1),
                    args.concurrency.first().copied().unwrap_or(10).max(1),
                    mode,
                )
                .await?;
                for row in rows {
                    ctx.emit(&row)?;
                }
            }
            Workload::Pgscale => {
                for &m in &args.scale {
                    let row = soak::scale(ctx, m, mode).await?;
                    ctx.emit(&row)?;
                }
            }
            Workload::Http => {
                let opts = http::Options {
                    seconds: args.http_seconds,
                    connections: args.http_connections,
                    sse_clients: args.sse_clients,
                    burst: args.jobs.unwrap_or(1000),
                    spaced: 20,
                };
                for row in http::run(ctx, opts, mode).await? {
                    ctx.emit(&row)?;
                }
            }
            Workload::All => {}
        }
    }
    Ok(())
}

/// The `env` line: where and on what the benchmark runs, and what a file
/// create costs in the data root right now.
fn env_row(ctx: &Ctx, args: &BenchArgs) -> anyhow::Result<Value> {
    let root = ctx.run_dir.parent().unwrap_or(&ctx.run_dir);
    let probe = create_probe(&ctx.new_dir("probe")?, "", 500)?;
    Ok(json!({
        "workload": "env",
        "date": Timestamp::now().to_string(),
        "semiont_jobs": env!("CARGO_PKG_VERSION"),
        "nproc": std::thread::available_parallelism().map_or(1, usize::from),
        "cpu": cpu_model(),
        "mem_gib": r3(mem_total_kib() as f64 / 1024.0 / 1024.0),
        "os": format!("Linux {}", read_trim("/proc/sys/kernel/osrelease")),
        "data_root": root,
        "data_fs": fs_type_of(root),
        "loadavg": loadavg(),
        "create_probe_us": probe,
        "args": std::env::args().skip(1).collect::<Vec<_>>(),
        "batch_size": args.batch_size,
    }))
}

/// Mean microseconds of `n` file creates (open, write 400 bytes, close) in
/// `dir`: on ext4 without a journal this jumps from ~50 µs to ~1 ms when
/// the directory's block group holds many recently freed inodes.
fn create_probe(dir: &Path, prefix: &str, n: usize) -> anyhow::Result<f64> {
    use std::io::Write;
    let data = [b'x'; 400];
    let t = Instant::now();
    for i in 0..n {
        let mut f = std::fs::File::create(dir.join(format!("probe-{prefix}{i}")))?;
        f.write_all(&data)?;
    }
    Ok(r3(t.elapsed().as_secs_f64() * 1e6 / n as f64))
}

/// The one-line readable form of a result.
fn summary_line(row: &Value) -> String {
    let f = |k: &str| -> String {
        match &row[k] {
            Value::Null => "-".into(),
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                if x.fract() == 0.0 {
                    format!("{x:.0}")
                } else {
                    format!("{x:.3}")
                }
            }
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    };
    match row["workload"].as_str().unwrap_or("") {
        "env" => format!(
            "machine: {} cores, {} GiB, {}, data in {} ({})",
            f("nproc"),
            f("mem_gib"),
            f("os"),
            f("data_root"),
            f("data_fs")
        ),
        "W1" => {
            let (floor, ratio) = if row["durability"] == "none" {
                (f("floor_jobs_per_s"), f("drain_vs_floor"))
            } else {
                (f("floor_durable_jobs_per_s"), f("drain_vs_floor_durable"))
            };
            format!(
                "W1 {:<5} N={}: create {} jobs/s, drain {} jobs/s (floor {floor}, ratio {ratio}), {} duplicate(s), peak RSS {} MiB",
                f("durability"),
                f("n"),
                f("create_jobs_per_s"),
                f("drain_jobs_per_s"),
                f("duplicate_jobs"),
                f("peak_rss_mib")
            )
        }
        "W2" => format!(
            "W2 M={}: open {} ms, RSS {} MiB, list(10) {} ms, stats {} ms, get {} ms, cleanup {} ms",
            f("m"),
            f("open_ms"),
            f("rss_mib"),
            f("list_ms"),
            f("stats_ms"),
            f("getjob_ms"),
            f("cleanup_ms")
        ),
        "W3" => format!(
            "W3 {} jobs ({}): enqueue→start p50 {} ms, p99 {} ms, mean {} ms, max {} ms",
            f("jobs"),
            f("durability"),
            f("p50_ms"),
            f("p99_ms"),
            f("mean_ms"),
            f("max_ms")
        ),
        "W4" => format!(
            "W4 {} process(es) × {} jobs ({}): {} jobs/s, drain {} s, wall {} s, {} executions, {} duplicate(s), {} lost, per process {}",
            f("procs"),
            f("jobs"),
            f("durability"),
            f("jobs_per_s"),
            f("drain_s"),
            f("wall_s"),
            f("total_executions"),
            f("duplicates"),
            f("lost"),
            f("per_process_executions")
        ),
        "soak-interval" => format!(
            "soak: {} done at {} s, {} jobs/s, jobs_done {}",
            f("done"),
            f("elapsed_s"),
            f("jobs_per_s"),
            f("jobs_done")
        ),
        "soak" => format!(
            "soak {} jobs: {} jobs/s overall, first tenth {} jobs/s, last tenth {} jobs/s ({}×), jobs_done at most {} MiB, {} duplicate(s)",
            f("jobs"),
            f("jobs_per_s"),
            f("first_tenth_jobs_per_s"),
            f("last_tenth_jobs_per_s"),
            f("last_vs_first"),
            f("jobs_done_mib_max"),
            f("duplicates")
        ),
        "pgscale" => format!(
            "pgscale M={}: list {} ms, list by user {} ms, stats {} ms, get {} ms, cleanup {} ms (insert {} jobs/s)",
            f("m"),
            f("list_ms"),
            f("list_user_ms"),
            f("stats_ms"),
            f("getjob_ms"),
            f("cleanup_ms"),
            f("insert_jobs_per_s")
        ),
        "burndown" | "lifecycle" => format!(
            "{} {} process(es) × concurrency {} × {} jobs ({}): {} jobs/s, drain {} s, {} executions, {} duplicate(s), {} lost, per process {}",
            f("workload"),
            f("procs"),
            f("concurrency"),
            f("jobs"),
            f("durability"),
            f("jobs_per_s"),
            f("drain_s"),
            f("total_executions"),
            f("duplicates"),
            f("lost"),
            f("per_process_executions")
        ),
        "HTTP-get" => format!(
            "HTTP {} over {} connections: {} req/s, p50 {} ms, p99 {} ms, {} error(s), server RSS {} MiB",
            f("request"),
            f("connections"),
            f("requests_per_s"),
            f("p50_ms"),
            f("p99_ms"),
            f("errors"),
            f("server_rss_mib")
        ),
        "HTTP-sse-burst" => format!(
            "HTTP {} event-stream clients × {} jobs: {} saw every completion, {} resynced, {} missed events; server RSS {} MiB connected, peak {} MiB; {} s",
            f("clients"),
            f("jobs"),
            f("clients_saw_every_completion"),
            f("clients_resynced"),
            f("clients_missing_events"),
            f("server_rss_connected_mib"),
            f("server_hwm_mib"),
            f("wall_s")
        ),
        "HTTP-sse-latency" => format!(
            "HTTP events: enqueue→start p50 {} ms, enqueue→event p50 {} ms (p99 {} ms); the event stream adds p50 {} ms",
            f("enqueue_to_start_p50_ms"),
            f("enqueue_to_sse_p50_ms"),
            f("enqueue_to_sse_p99_ms"),
            f("sse_after_start_p50_ms")
        ),
        "W4-scaling" => format!(
            "W4 scaling: 2 processes {} jobs/s vs 1 process {} jobs/s: {}×",
            f("jobs_per_s_2"),
            f("jobs_per_s_1"),
            f("ratio_2_vs_1")
        ),
        _ => row.to_string(),
    }
}

// ------------------------------------------------------------------ helpers

/// A `noop` job shaped like the upstream harness's jobs (same parameters,
/// so the documents have about the same size).
pub fn noop_job(n: usize) -> NewJob {
    NewJob::custom(
        "noop",
        "bench-user@example.com",
        json!({
            "resourceId": format!("res-{n:010}"),
            "entityTypes": ["Person", "Organization", "Location"],
        }),
    )
    .unwrap_or_else(|e| unreachable!("a static noop job is valid: {e}"))
}

/// Rounds to 3 decimals.
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Wall-clock nanoseconds since the epoch (comparable across processes).
pub fn wall_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// The median (mean of the middle two for an even count); 0 when empty.
pub fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile (as the upstream harness computes it).
pub fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.saturating_sub(1).min(s.len() - 1)]
}

/// The upstream harness's PRNG (mulberry32), so W3 uses the same spacing.
pub struct Mulberry32(u32);

impl Mulberry32 {
    /// Seeded.
    pub fn new(seed: u32) -> Self {
        Mulberry32(seed)
    }

    /// The next value in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x6d2b_79f5);
        let mut t = self.0;
        t = (t ^ (t >> 15)).wrapping_mul(t | 1);
        t ^= t.wrapping_add((t ^ (t >> 7)).wrapping_mul(t | 61));
        f64::from(t ^ (t >> 14)) / 4_294_967_296.0
    }
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// A field of `/proc/self/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// This process's resident set now, MiB.
pub fn rss_mib() -> f64 {
    r3(status_kib("VmRSS") as f64 / 1024.0)
}

/// This process's peak resident set (since the last [`reset_peak_rss`]), MiB.
pub fn peak_rss_mib() -> f64 {
    r3(status_kib("VmHWM") as f64 / 1024.0)
}

/// Resets the peak resident set (`echo 5 > /proc/self/clear_refs`).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The 1-minute load average.
pub fn loadavg1() -> f64 {
    loadavg().first().copied().unwrap_or(0.0)
}

fn loadavg() -> Vec<f64> {
    read_trim("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect()
}

/// CPU seconds: (user, system) of this process, and of its waited-for children.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    /// User time of this process.
    pub user: f64,
    /// System time of this process.
    pub sys: f64,
    /// User time of waited-for children.
    pub child_user: f64,
    /// System time of waited-for children.
    pub child_sys: f64,
}

impl Cpu {
    /// Now, from `/proc/self/stat` (clock ticks of 1/100 s).
    pub fn now() -> Cpu {
        let stat = read_trim("/proc/self/stat");
        // Fields after the command name (which may hold spaces) in parentheses.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // rest[0] is field 3 (state); utime is field 14.
        let at = |field: usize| f.get(field - 3).copied().unwrap_or(0.0) / 100.0;
        Cpu {
            user: at(14),
            sys: at(15),
            child_user: at(16),
            child_sys: at(17),
        }
    }

    /// The time spent since `earlier`.
    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: r3(self.user - earlier.user),
            sys: r3(self.sys - earlier.sys),
            child_user: r3(self.child_user - earlier.child_user),
            child_sys: r3(self.child_sys - earlier.child_sys),
        }
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name")?.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

fn mem_total_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// `type (device on mountpoint)` of the filesystem holding `path`.
pub fn fs_type_of(path: &Path) -> String {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best: Option<(&str, &str, &str)> = None;
    for line in mounts.lines() {
        let mut it = line.split(' ');
        let (Some(dev), Some(mnt), Some(ty)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if real.starts_with(mnt) && best.is_none_or(|b| mnt.len() >= b.1.len()) {
            best = Some((dev, mnt, ty));
        }
    }
    match best {
        Some((dev, mnt, ty)) => format!("{ty} ({dev} on {mnt})"),
        None => "unknown".into(),
    }
}

/// The `semiont-jobs` binary W3 and W4 start: `$SEMIONT_JOBS_BIN` (which
/// `semiont-jobs bench` sets to itself), else `semiont-jobs` next to this
/// executable, else `semiont-jobs` from `PATH`.
pub fn semiont_jobs_bin() -> OsString {
    if let Some(bin) = std::env::var_os(BIN_ENV).filter(|b| !b.is_empty()) {
        return bin;
    }
    let name = format!("semiont-jobs{}", std::env::consts::EXE_SUFFIX);
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(&name)))
        .filter(|sibling| sibling.is_file())
        .map_or_else(|| name.into(), PathBuf::into_os_string)
}

/// `semiont-jobs --data-dir DIR --durability D` ([`semiont_jobs_bin`]), to
/// which the caller adds the `work` command and its options.
pub fn work_command(dir: &Path, mode: Mode) -> std::process::Command {
    let mut cmd = std::process::Command::new(semiont_jobs_bin());
    cmd.arg("--data-dir")
        .arg(dir)
        .args(["--durability", mode.cli_flag()])
        .env_remove("SEMIONT_JOBS_DATA_DIR");
    match crate::data::DATABASE.get() {
        Some(url) => {
            cmd.env("SEMIONT_JOBS_DATABASE_URL", url.expose())
                .env("SEMIONT_JOBS_DB_SCHEMA", crate::data::schema_for(dir));
        }
        None => {
            cmd.env_remove("SEMIONT_JOBS_DATABASE_URL");
        }
    }
    cmd
}

/// The context of a failed start of a `semiont-jobs work` process: which
/// binary, and how to provide it.
pub fn cannot_start(what: &str) -> String {
    format!(
        "cannot start {what} ({}; build semiont-jobs next to semiont-jobs-bench with `cargo build -p semiont-jobs-cli`, or set {BIN_ENV})",
        semiont_jobs_bin().to_string_lossy()
    )
}

/// Counts the entries of a directory (-1 when it cannot be read).
pub fn count_dir(dir: &Path) -> i64 {
    std::fs::read_dir(dir).map_or(-1, |d| d.count() as i64)
}
