//! The harness's command line (clap derive): the options of `semiont-jobs
//! bench`, and the global flags of `semiont-jobs` that matter to it.

use std::path::PathBuf;

use clap::{Args, Parser, ValueEnum};

/// `semiont-jobs-bench` (run as `semiont-jobs bench`): the workloads of
/// DESIGN §9.
#[derive(Debug, Parser)]
#[command(
    name = "semiont-jobs-bench",
    version,
    about = "Benchmark workloads W1–W4 of semiont-jobs (JSON lines with --json)",
    after_help = "Examples:\n  semiont-jobs bench --workload w1 --jobs 10000 --durability none\n  semiont-jobs bench --workload all --json\n\nW3 and W4 run `semiont-jobs work` processes: the harness takes the binary from SEMIONT_JOBS_BIN (set by `semiont-jobs bench`), else next to itself, else from PATH.",
    args_override_self = true
)]
pub struct Cli {
    /// Print JSON lines (else one readable line per result).
    #[arg(long)]
    pub json: bool,
    /// Durability of queue writes; when not given, W1 runs all three and
    /// W2–W4 use fsync (the default of every `semiont-jobs` command).
    #[arg(long, value_enum)]
    pub durability: Option<DurabilityArg>,
    /// Log line format (logs go to standard error).
    #[arg(long, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Ignored: `semiont-jobs bench` accepts the global `--data-dir`, but
    /// the benchmark makes its own data directories under `--root`.
    #[arg(long, hide = true)]
    pub data_dir: Option<PathBuf>,
    /// Run the workloads on PostgreSQL (a schema per unit, dropped at the
    /// end unless --keep) instead of data directories; W2 is skipped.
    #[arg(
        long,
        env = "SEMIONT_JOBS_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// The workloads and their sizes.
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// Output format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Durability of writes to the jobs directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Survive process crashes only.
    None,
    /// Survive power loss: fsync before and after publishing.
    Fsync,
    /// Like fsync, and W1's enqueue shares one barrier per batch (group
    /// commit); the other workloads treat it as fsync.
    Batch,
}

/// A benchmark workload (`--workload`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum Workload {
    /// Throughput: create N noop jobs, then drain them with one in-process loop.
    W1,
    /// Scale: list, stats, get, cleanup and cold open with M complete jobs on disk.
    W2,
    /// Latency: enqueue → execution start in an idle `work` process.
    W3,
    /// Contention: P `work` processes drain J pre-created jobs.
    W4,
    /// River-style burn-down: N pre-inserted jobs drained by P processes
    /// with --concurrency C each.
    Burndown,
    /// Create + claim + complete: P worker processes drain while
    /// --producers tasks create N jobs one call at a time.
    Lifecycle,
    /// PostgreSQL under sustained load: N jobs (default 2000000) through
    /// the queue with retention on, sizes and throughput at every tenth.
    Soak,
    /// PostgreSQL at scale: list, stats, get and cleanup with M
    /// (--scale) finished jobs in the database.
    Pgscale,
    /// W1, W2, W3 and W4 (not http, burndown, lifecycle, soak, pgscale).
    All,
    /// The HTTP load check of `semiont-jobs serve`: GET throughput and
    /// latency, event-stream clients during a burst, the latency events add.
    Http,
}

/// The workload options (definitions in DESIGN §9).
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Workloads to run (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub workload: Vec<Workload>,
    /// Jobs per run: W1 (default 10000), W3 (default 20), W4 (default 2000), burndown (default 100000), lifecycle (default 20000), http's burst (default 1000).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Complete jobs on disk for W2, comma-separated (1000000 needs ~5 GB of disk).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    pub scale: Vec<usize>,
    /// Worker process counts for W4, comma-separated (each count is one run).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub processes: Vec<usize>,
    /// burndown and lifecycle: jobs in flight per worker process (`work --concurrency`), comma-separated (each value is one run).
    #[arg(long, value_delimiter = ',', default_value = "10")]
    pub concurrency: Vec<usize>,
    /// lifecycle: tasks creating the jobs (default: one per worker process).
    #[arg(long)]
    pub producers: Option<usize>,
    /// Jobs per `create_jobs` call with `--durability batch` (W1) and of burndown's insert.
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// W1 only: open the store with its directory watcher off (shows what watching costs).
    #[arg(long)]
    pub no_watch: bool,
    /// W1 only: skip the raw-syscall floors (to profile the queue alone, e.g. under `strace -c`).
    #[arg(long)]
    pub no_floor: bool,
    /// Directory in which the benchmark's data directories are made (default: the system temp dir).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Seed of the W3 spacing and of everything else random.
    #[arg(long, default_value_t = 42)]
    pub seed: u32,
    /// Keep the data directories (their paths are printed).
    #[arg(long)]
    pub keep: bool,
    /// Longest wait, in seconds, for file creates to be fast again after
    /// deletes, before each measured phase and after the cleanup (ext4
    /// without a journal skips inodes freed in the last minute); 0 probes
    /// once and never waits.
    #[arg(long, default_value_t = 75, value_name = "SECONDS")]
    pub settle_max: u64,
    /// http: seconds of each GET run.
    #[arg(long, default_value_t = 5)]
    pub http_seconds: u64,
    /// http: keep-alive connections of the GET runs.
    #[arg(long, default_value_t = 32)]
    pub http_connections: usize,
    /// http: event-stream clients during the burst (its jobs: --jobs, default 1000).
    #[arg(long, default_value_t = 1000)]
    pub sse_clients: usize,
    /// Internal: run exactly one W2 size in this process.
    #[arg(long, hide = true)]
    pub inner: bool,
}
