//! The command line: every command, flag and help text (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Output format of log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (`event`, `job_id`, `attempt`, `worker_id`, ...).
    Json,
}

/// Durability of writes to the jobs directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Survive process crashes only.
    None,
    /// Survive power loss: fsync before and after publishing (default).
    Fsync,
    /// Like fsync, and bulk enqueue shares one barrier per batch (what
    /// `bench` W1 measures as group commit; other commands treat it as fsync).
    Batch,
}

/// The document layout of new jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// The seed's flat document (the default).
    Flat,
    /// The published TypeScript package's nested document (`status`,
    /// `metadata`, `params`), for directories shared with it.
    Nested,
}

/// `semiont-jobs`: a durable, filesystem-based job queue.
#[derive(Debug, Parser)]
#[command(
    name = "semiont-jobs",
    version,
    about = "A durable, filesystem-based job queue: enqueue, inspect, watch and work jobs",
    after_help = "Examples:\n  semiont-jobs demo\n  semiont-jobs enqueue detection --user u1 --resource doc-1 --entity-type Person\n  semiont-jobs work --exit-when-idle\n  semiont-jobs list --status failed --json"
)]
pub struct Cli {
    /// Application data directory (holds jobs/, resources/, annotations/).
    #[arg(
        long,
        global = true,
        env = "SEMIONT_JOBS_DATA_DIR",
        default_value = "./data"
    )]
    pub data_dir: PathBuf,
    /// Keep the queue in this PostgreSQL database instead of the data
    /// directory (postgres://user:password@host:5432/db); resources and
    /// annotations stay in the data directory. The password is never printed.
    #[arg(
        long,
        global = true,
        env = "SEMIONT_JOBS_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,
    /// The PostgreSQL schema holding the queue (several queues can share a
    /// database).
    #[arg(
        long,
        global = true,
        env = "SEMIONT_JOBS_DB_SCHEMA",
        default_value = "semiont_jobs",
        value_name = "NAME"
    )]
    pub db_schema: String,
    /// Log line format (logs go to standard error).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Print data as JSON (one document, or JSON lines for streams).
    #[arg(long, global = true)]
    pub json: bool,
    /// Durability of queue writes.
    #[arg(long, global = true, value_enum, default_value = "fsync")]
    pub durability: DurabilityArg,
    /// Configuration file (TOML): queue settings, retention, per-type
    /// policies (retries, priority, timeout, back-off).
    #[arg(long, global = true, env = "SEMIONT_JOBS_CONFIG")]
    pub config: Option<PathBuf>,
    /// Document layout of new jobs (over the configuration file's
    /// `queue.layout`). A data directory records its layout in
    /// `jobs/format.json` on its first `init`, `enqueue` or `work`; a
    /// different one is refused, never mixed.
    #[arg(long, global = true, value_enum, env = "SEMIONT_JOBS_LAYOUT")]
    pub layout: Option<LayoutArg>,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the data directory (idempotent).
    #[command(after_help = "Example:\n  semiont-jobs --data-dir ./data init")]
    Init,
    /// Add a job to the queue.
    #[command(subcommand)]
    Enqueue(Enqueue),
    /// Show one job.
    #[command(
        after_help = "Example:\n  semiont-jobs get job-0193c1f0-8a2b-7cde-8f01-23456789abcd --json"
    )]
    Get {
        /// The job id.
        id: String,
    },
    /// List jobs, newest first.
    #[command(
        after_help = "Examples:\n  semiont-jobs list --status pending --type detection\n  semiont-jobs list --user user-123 --limit 10 --offset 10 --json"
    )]
    List(ListArgs),
    /// Job counts per status.
    #[command(after_help = "Example:\n  semiont-jobs stats --json")]
    Stats,
    /// Cancel a pending or running job (a running job's worker is told),
    /// or every pending job matching a filter.
    #[command(
        after_help = "Examples:\n  semiont-jobs cancel job-0193c1f0-8a2b-7cde-8f01-23456789abcd\n  semiont-jobs cancel --type detection --status pending\n  semiont-jobs cancel --status pending --user user-123"
    )]
    Cancel(CancelArgs),
    /// Retry a failed or cancelled job, or every failed job matching a filter.
    #[command(
        after_help = "Examples:\n  semiont-jobs retry job-0193c1f0-8a2b-7cde-8f01-23456789abcd\n  semiont-jobs retry --failed --type detection"
    )]
    Retry(RetryArgs),
    /// Pause claims of a job type in every process (running jobs finish).
    #[command(after_help = "Example:\n  semiont-jobs pause detection")]
    Pause {
        /// The job type.
        job_type: String,
    },
    /// Resume claims of a paused job type.
    #[command(after_help = "Example:\n  semiont-jobs resume detection")]
    Resume {
        /// The job type.
        job_type: String,
    },
    /// Delete finished jobs older than the retention period.
    #[command(
        after_help = "Examples:\n  semiont-jobs cleanup\n  semiont-jobs cleanup --older-than 7d"
    )]
    Cleanup {
        /// Age of finished jobs to delete (e.g. 90s, 30m, 24h, 7d).
        #[arg(long, default_value = "24h", value_parser = crate::duration::parse)]
        older_than: std::time::Duration,
    },
    /// Live progress of running jobs (of one job: until it ends).
    #[command(
        after_help = "Examples:\n  semiont-jobs watch\n  semiont-jobs watch job-0193c1f0-8a2b-7cde-8f01-23456789abcd --json"
    )]
    Watch {
        /// Only this job; the command ends when it ends.
        id: Option<String>,
    },
    /// Run the built-in workers until interrupted.
    #[command(
        after_help = "Examples:\n  semiont-jobs work\n  semiont-jobs work --types noop,sleep --concurrency 4 --exit-when-idle\n  semiont-jobs work --inference ollama --model llama3.2 --url http://127.0.0.1:11434\n  semiont-jobs work --inference openai --url http://127.0.0.1:8080/v1 --model smollm2 --model-context 2048\n\nSIGINT/SIGTERM stops gracefully (running jobs finish); a second signal cancels them."
    )]
    Work(WorkArgs),
    /// Serve the queue over HTTP: JSON API, live events (SSE), Prometheus metrics.
    #[command(
        after_help = "Examples:\n  semiont-jobs serve\n  semiont-jobs serve --listen 0.0.0.0:8080 --token-file /etc/semiont-jobs/tokens\n  curl -s http://127.0.0.1:8080/api/v1/stats\n  curl -N http://127.0.0.1:8080/api/v1/events\n\nTokens (role:token lines; roles read, write, admin) come from --token-file or SEMIONT_JOBS_TOKENS; without them only loopback addresses are allowed. SIGINT/SIGTERM stops gracefully."
    )]
    Serve(ServeArgs),
    /// Documents the workers read and write.
    #[command(subcommand)]
    Resources(Resources),
    /// Annotations the detection worker wrote.
    #[command(subcommand)]
    Annotations(Annotations),
    /// Run the end-to-end demo on the sample documents.
    #[command(after_help = "Example:\n  semiont-jobs --data-dir /tmp/demo demo")]
    Demo,
    /// Benchmark workloads W1–W4 (JSON lines), run by the harness
    /// `semiont-jobs-bench`.
    #[command(
        disable_help_flag = true,
        after_help = "Examples:\n  semiont-jobs bench --workload w1 --jobs 10000 --durability none\n  semiont-jobs bench --workload all --json\n\nThe workloads run in the benchmark harness semiont-jobs-bench (crate semiont-jobs-bench), found next to semiont-jobs or on PATH; `semiont-jobs bench --help` prints its options."
    )]
    Bench(BenchArgs),
    /// Copy every job between queues (a data directory or a database URL on
    /// each side), e.g. to move a queue to PostgreSQL.
    #[command(
        after_help = "Examples:\n  semiont-jobs copy --from ./data --to postgres://jobs@db.internal/app\n  semiont-jobs copy --from \"$SEMIONT_JOBS_DATABASE_URL\" --to ./backup\n\nRefuses while workers are registered on the source (stop them first, or --force), and into a queue that is not empty. Verifies the counts per status at the end."
    )]
    Copy(CopyArgs),
    /// Print shell completions.
    #[command(
        after_help = "Example:\n  semiont-jobs completions bash > /etc/bash_completion.d/semiont-jobs"
    )]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `enqueue` subcommands.
#[derive(Debug, Subcommand)]
pub enum Enqueue {
    /// Entity detection in a resource.
    #[command(
        after_help = "Example:\n  semiont-jobs enqueue detection --user user-123 --resource doc-456 --entity-type Person --entity-type Organization"
    )]
    Detection {
        /// The user the job is for.
        #[arg(long)]
        user: String,
        /// The resource to analyse.
        #[arg(long)]
        resource: String,
        /// Entity types to find (repeat, or comma-separate).
        #[arg(long = "entity-type", required = true, value_delimiter = ',')]
        entity_types: Vec<String>,
        #[command(flatten)]
        common: EnqueueCommon,
    },
    /// Document generation from a reference annotation.
    #[command(
        after_help = "Example:\n  semiont-jobs enqueue generation --user user-123 --reference ann-1 --source-resource doc-456 --title 'Ada Lovelace'"
    )]
    Generation {
        /// The user the job is for.
        #[arg(long)]
        user: String,
        /// The reference annotation.
        #[arg(long)]
        reference: String,
        /// The resource holding the annotation.
        #[arg(long)]
        source_resource: String,
        /// Title of the generated document.
        #[arg(long)]
        title: Option<String>,
        /// Extra instructions.
        #[arg(long)]
        prompt: Option<String>,
        /// Language (e.g. en).
        #[arg(long)]
        language: Option<String>,
        /// Entity types to tag the document with.
        #[arg(long = "entity-type", value_delimiter = ',')]
        entity_types: Vec<String>,
        #[command(flatten)]
        common: EnqueueCommon,
    },
    /// A job of any type with JSON parameters.
    #[command(
        after_help = "Examples:\n  semiont-jobs enqueue custom --type noop --user u1\n  semiont-jobs enqueue custom --type sleep --user u1 --params '{\"ms\": 5000}'\n  semiont-jobs enqueue custom --type steps --user u1 --params @steps.json\n  generate-params | semiont-jobs enqueue custom --type my-type --user u1 --params -"
    )]
    Custom {
        /// The job type.
        #[arg(long = "type")]
        job_type: String,
        /// The user the job is for.
        #[arg(long)]
        user: String,
        /// Parameters: a JSON object, `@FILE` to read it from a file, or
        /// `-` to read it from standard input (at most 1 MiB).
        #[arg(long, default_value = "{}", allow_hyphen_values = true)]
        params: String,
        #[command(flatten)]
        common: EnqueueCommon,
    },
}

/// Options of every `enqueue` command.
#[derive(Debug, Args)]
pub struct EnqueueCommon {
    /// Retry budget of this job (default: its type's, else the queue's, 3).
    #[arg(long)]
    pub max_retries: Option<u32>,
    /// Claim priority, higher first (default: its type's, else 0).
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i16>,
    /// While a job with this key is pending or running, return it instead
    /// of creating another.
    #[arg(long)]
    pub unique_key: Option<String>,
    /// Keep the unique key taken this long after the job finished too
    /// (e.g. 1h).
    #[arg(long, requires = "unique_key", value_parser = crate::duration::parse)]
    pub unique_for: Option<std::time::Duration>,
}

/// `cancel` options: one job by id, or pending jobs by filter.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job id (or use the filters to cancel pending jobs in bulk).
    #[arg(conflicts_with_all = ["job_type", "status", "user"])]
    pub id: Option<String>,
    /// Bulk: only jobs of this type.
    #[arg(long = "type")]
    pub job_type: Option<String>,
    /// Bulk: the status of the jobs to cancel (only `pending`).
    #[arg(long)]
    pub status: Option<String>,
    /// Bulk: only jobs of this user.
    #[arg(long)]
    pub user: Option<String>,
}

/// `retry` options: one job by id, or failed jobs by filter.
#[derive(Debug, Args)]
pub struct RetryArgs {
    /// The job id (or use `--failed` to retry failed jobs in bulk).
    #[arg(conflicts_with_all = ["failed", "job_type", "user"])]
    pub id: Option<String>,
    /// Bulk: retry every failed job matching the filters.
    #[arg(long)]
    pub failed: bool,
    /// Bulk: only jobs of this type.
    #[arg(long = "type", requires = "failed")]
    pub job_type: Option<String>,
    /// Bulk: only jobs of this user.
    #[arg(long, requires = "failed")]
    pub user: Option<String>,
}

/// `list` options: the seed's filters.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this status (pending, running, complete, failed, cancelled).
    #[arg(long)]
    pub status: Option<String>,
    /// Only jobs of this type.
    #[arg(long = "type")]
    pub job_type: Option<String>,
    /// Only jobs of this user.
    #[arg(long)]
    pub user: Option<String>,
    /// Page size.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Page start.
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
}

/// Inference backend of the detection and generation workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InferenceArg {
    /// Deterministic, rule- and gazetteer-based; no network.
    Offline,
    /// An Ollama server.
    Ollama,
    /// An OpenAI-compatible server (key from OPENAI_API_KEY).
    Openai,
}

/// `work` options.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Job types to run (default: all built-in: detection, generation, noop, sleep, fail, steps).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Jobs run at once.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Fallback poll interval in milliseconds (idle workers wake on notifications).
    #[arg(long, default_value_t = 1000)]
    pub poll_interval: u64,
    /// Least milliseconds between two claims prompted by news of new work
    /// (under a stream of creates one claim takes several jobs; news after
    /// a quiet spell is claimed at once; 0: claim at every news; at most
    /// the poll interval).
    #[arg(long, default_value_t = semiont_jobs::worker::DEFAULT_CLAIM_COOLDOWN.as_millis() as u64, value_name = "MS", env = "SEMIONT_JOBS_CLAIM_COOLDOWN")]
    pub claim_cooldown: u64,
    /// Stop once no job of these types is pending or running.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Graceful shutdown timeout in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub shutdown_timeout: u64,
    /// Inference backend for detection and generation [env: SEMIONT_INFERENCE; config: model.inference; default: offline].
    #[arg(long, value_enum)]
    pub inference: Option<InferenceArg>,
    /// Model name (ollama, openai).
    #[arg(long)]
    pub model: Option<String>,
    /// Server base URL (ollama default 127.0.0.1:11434, openai default api.openai.com/v1).
    #[arg(long)]
    pub url: Option<String>,
    /// The model's context window in tokens, sent to Ollama as num_ctx [env: SEMIONT_INFERENCE_CONTEXT; default 2048].
    #[arg(long, value_name = "TOKENS")]
    pub model_context: Option<u32>,
    /// Most tokens per answer [env: SEMIONT_INFERENCE_MAX_TOKENS; default: detection a quarter of the context, generation half].
    #[arg(long, value_name = "TOKENS")]
    pub model_max_tokens: Option<u32>,
    /// Most characters of a document per detection request [env: SEMIONT_INFERENCE_CHUNK_CHARS; default: what fits the context].
    #[arg(long, value_name = "CHARS")]
    pub model_chunk_chars: Option<usize>,
    /// Sampling temperature [env: SEMIONT_INFERENCE_TEMPERATURE; default: detection 0, generation 0.4].
    #[arg(long, value_name = "T")]
    pub model_temperature: Option<f32>,
    /// Model calls one job may have in flight [env: SEMIONT_INFERENCE_CONCURRENCY; default 1].
    #[arg(long, value_name = "N")]
    pub model_concurrency: Option<usize>,
    /// Seconds to wait for a model's answer [env: SEMIONT_INFERENCE_READ_TIMEOUT_SECS; default 300].
    #[arg(long, value_name = "SECS")]
    pub model_timeout: Option<f64>,
    /// Worker id (default: generated).
    #[arg(long)]
    pub worker_id: Option<String>,
    /// How often to delete finished jobs older than the retention period
    /// (one process at a time; default: the config file's, else 1h).
    #[arg(long, value_parser = crate::duration::parse, conflicts_with = "no_sweep")]
    pub sweep_interval: Option<std::time::Duration>,
    /// Never delete finished jobs from this process.
    #[arg(long)]
    pub no_sweep: bool,
    /// Benchmarks: append `<job id>\t<unix nanos>` to this file when a job starts executing.
    #[arg(long, hide = true)]
    pub exec_log: Option<PathBuf>,
    /// Tests: append `<pid>\t<job id>\t<attempt>\tstart|end\t<unix nanos>`
    /// to this file when a job starts and when its execution returns.
    #[arg(long, hide = true)]
    pub exec_spans: Option<PathBuf>,
    /// Benchmarks: after opening the queue print `ready`, then wait for a line on stdin before working.
    #[arg(long, hide = true)]
    pub gate: bool,
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (a non-loopback address needs tokens).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// File of bearer tokens, one `role:token` per line (mode 0600).
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Prefix of every route, e.g. /jobs.
    #[arg(long, default_value = "")]
    pub base_path: String,
    /// Browser origin allowed to call the API (CORS; repeatable; off by default).
    #[arg(long)]
    pub cors_origin: Vec<String>,
}

/// `resources` subcommands.
#[derive(Debug, Subcommand)]
pub enum Resources {
    /// Add a text or markdown file as a resource.
    #[command(
        after_help = "Example:\n  semiont-jobs resources add notes.md --name 'Meeting notes'"
    )]
    Add {
        /// The file.
        file: PathBuf,
        /// Resource id (default: derived from the file name).
        #[arg(long)]
        id: Option<String>,
        /// Display name (default: the file name).
        #[arg(long)]
        name: Option<String>,
        /// Language (e.g. en).
        #[arg(long)]
        language: Option<String>,
    },
    /// List resources.
    List,
    /// Show one resource.
    Show {
        /// The resource id.
        id: String,
    },
}

/// `annotations` subcommands.
#[derive(Debug, Subcommand)]
pub enum Annotations {
    /// List a resource's annotations.
    #[command(after_help = "Example:\n  semiont-jobs annotations list doc-456 --json")]
    List {
        /// The resource id.
        resource: String,
    },
}

/// `copy` options.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// The source: a data directory (its jobs/) or a PostgreSQL URL.
    #[arg(long, value_name = "DIR|URL")]
    pub from: String,
    /// The destination: a data directory or a PostgreSQL URL.
    #[arg(long, value_name = "DIR|URL")]
    pub to: String,
    /// Copy even while workers are registered on the source.
    #[arg(long)]
    pub force: bool,
}

/// `bench` options: the harness's, passed to it unchanged.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Options of the benchmark harness (`--workload w1,w2,w3,w4|all`,
    /// `--jobs`, `--scale`, `--processes`, `--root`, `--keep`, ...), passed
    /// to it unchanged; `semiont-jobs bench --help` prints them all.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "ARGS"
    )]
    pub args: Vec<std::ffi::OsString>,
}
