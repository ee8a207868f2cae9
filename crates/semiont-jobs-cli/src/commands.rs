//! The commands that read or change the queue: init, enqueue, get, list,
//! stats, cancel, retry, pause, resume, cleanup, watch, work, completions;
//! the others are dispatched from here too.

use std::io::Read as _;

use anyhow::Context;
use clap::CommandFactory;
use semiont_jobs::model::{
    GenerationParams, JobFilter, JobId, JobStatus, JobType, NewJob, MAX_PARAMS_BYTES,
};
use semiont_jobs::store::JobSelector;
use serde_json::json;

use crate::app::{App, Create};
use crate::args::{
    CancelArgs, Cli, Command, Enqueue, EnqueueCommon, ListArgs, RetryArgs, WorkArgs,
};
use crate::{output, UsageError};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init => init(&cli).await,
        Command::Enqueue(e) => enqueue(&cli, e).await,
        Command::Get { id } => get(&cli, id).await,
        Command::List(args) => list(&cli, args).await,
        Command::Stats => stats(&cli).await,
        Command::Cancel(args) => cancel(&cli, args).await,
        Command::Retry(args) => retry(&cli, args).await,
        Command::Pause { job_type } => pause(&cli, job_type, true).await,
        Command::Resume { job_type } => pause(&cli, job_type, false).await,
        Command::Cleanup { older_than } => {
            let app = App::open(&cli, Create::No).await?;
            let deleted = app.queue.cleanup_jobs_older_than(*older_than).await?;
            if cli.json {
                output::json(&json!({ "deleted": deleted }))
            } else {
                output::line(format!("deleted {deleted} finished job(s)"));
                Ok(())
            }
        }
        Command::Watch { id } => {
            let id = id.as_deref().map(parse_id).transpose()?;
            let app = App::open(&cli, Create::No).await?;
            crate::watch::watch(&app.queue, id, cli.json).await
        }
        Command::Work(args) => work(&cli, args).await,
        Command::Serve(args) => crate::serve::run(&cli, args).await,
        Command::Resources(r) => crate::content::resources(&cli, r).await,
        Command::Annotations(a) => crate::content::annotations(&cli, a).await,
        Command::Demo => crate::demo::run(&cli).await,
        Command::Bench(args) => crate::bench::run(&cli, args),
        Command::Copy(args) => crate::copy::run(&cli, args).await,
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            // Generated in memory: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "semiont-jobs", &mut script);
            output::write_out(&script);
            Ok(())
        }
    }
}

/// Parses a job id given on the command line (a usage error if malformed).
pub fn parse_id(id: &str) -> anyhow::Result<JobId> {
    JobId::parse(id).map_err(|e| UsageError(e.to_string()).into())
}

fn print_job(cli: &Cli, job: &semiont_jobs::model::Job, what: &str) -> anyhow::Result<()> {
    if cli.json {
        output::json(job)
    } else {
        output::line(format!("{what} {} (now {})", job.id, job.status));
        Ok(())
    }
}

async fn init(cli: &Cli) -> anyhow::Result<()> {
    let app = App::open(cli, Create::Yes).await?;
    for sub in ["resources", "annotations"] {
        crate::app::create_private_dir(&app.root.join(sub))?;
    }
    let stats = app.queue.get_stats().await?;
    match (cli.json, app.migrated) {
        (true, None) => output::json(&json!({
            "dataDir": app.root,
            "jobsDir": app.root.join("jobs"),
            "stats": stats,
        })),
        (true, Some(m)) => output::json(&json!({
            "dataDir": app.root,
            "database": app.location,
            "schemaVersion": m.to,
            "migratedFrom": m.from,
            "stats": stats,
        })),
        (false, None) => {
            output::line(format!(
                "initialised {} ({} job(s) in the queue)",
                app.root.display(),
                stats.total()
            ));
            Ok(())
        }
        (false, Some(m)) => {
            let schema = if m.from == m.to {
                format!("schema at version {}", m.to)
            } else {
                format!("schema migrated from version {} to {}", m.from, m.to)
            };
            output::line(format!(
                "initialised {} with the queue in {} ({schema}; {} job(s) in the queue)",
                app.root.display(),
                app.location,
                stats.total()
            ));
            Ok(())
        }
    }
}

fn with_common(new: NewJob, common: &EnqueueCommon) -> NewJob {
    let mut new = new;
    if let Some(p) = common.priority {
        new = new.priority(p);
    }
    if let Some(n) = common.max_retries {
        new = new.max_retries(n);
    }
    if let Some(key) = &common.unique_key {
        new = new.unique_key(key.clone());
    }
    if let Some(period) = common.unique_for {
        new = new.unique_after_finish(period);
    }
    new
}

/// `--params`: inline JSON, `@FILE`, or `-` for standard input, at most
/// [`MAX_PARAMS_BYTES`] read.
fn read_params(arg: &str) -> anyhow::Result<serde_json::Value> {
    let limit = MAX_PARAMS_BYTES as u64;
    let too_big = |from: &str| {
        UsageError(format!(
            "--params {from} is more than {limit} bytes (the 1 MiB limit of a job's parameters)"
        ))
    };
    let (text, from) = if arg == "-" {
        let mut buf = String::new();
        std::io::stdin()
            .lock()
            .take(limit + 1)
            .read_to_string(&mut buf)
            .map_err(|e| UsageError(format!("--params -: cannot read standard input: {e}")))?;
        if buf.len() as u64 > limit {
            return Err(too_big("from standard input").into());
        }
        (buf, "from standard input".to_owned())
    } else if let Some(path) = arg.strip_prefix('@') {
        let from = format!("@{path}");
        let file = std::fs::File::open(path)
            .map_err(|e| UsageError(format!("--params {from}: cannot read {path}: {e}")))?;
        let mut buf = String::new();
        file.take(limit + 1)
            .read_to_string(&mut buf)
            .map_err(|e| UsageError(format!("--params {from}: cannot read {path}: {e}")))?;
        if buf.len() as u64 > limit {
            return Err(too_big(&from).into());
        }
        (buf, from)
    } else {
        if arg.len() as u64 > limit {
            return Err(too_big("").into());
        }
        (arg.to_owned(), String::new())
    };
    let sep = if from.is_empty() { "" } else { " " };
    serde_json::from_str(&text)
        .map_err(|err| UsageError(format!("--params{sep}{from} is not valid JSON: {err}")).into())
}

async fn cancel(cli: &Cli, args: &CancelArgs) -> anyhow::Result<()> {
    if let Some(id) = &args.id {
        let id = parse_id(id)?;
        let app = App::open(cli, Create::No).await?;
        let job = app.queue.cancel_job(id).await?;
        return print_job(cli, &job, "cancelled");
    }
    match args.status.as_deref() {
        Some("pending") => {}
        Some(other) => {
            return Err(UsageError(format!(
                "cancel --status {other}: only pending jobs are cancelled in bulk (cancel a running job by its id)"
            ))
            .into())
        }
        None => {
            return Err(UsageError(
                "cancel needs a job id, or --status pending with optional --type and --user".into(),
            )
            .into())
        }
    }
    let selector = selector(args.job_type.as_deref(), args.user.as_deref())?;
    let app = App::open(cli, Create::No).await?;
    let n = app.queue.cancel_pending_jobs(&selector).await?;
    bulk_output(cli, "cancelled", n, &selector, "pending")
}

async fn retry(cli: &Cli, args: &RetryArgs) -> anyhow::Result<()> {
    if let Some(id) = &args.id {
        let id = parse_id(id)?;
        let app = App::open(cli, Create::No).await?;
        let job = app.queue.retry_job(id).await?;
        return print_job(cli, &job, "resubmitted");
    }
    if !args.failed {
        return Err(UsageError(
            "retry needs a job id, or --failed with optional --type and --user".into(),
        )
        .into());
    }
    let selector = selector(args.job_type.as_deref(), args.user.as_deref())?;
    let app = App::open(cli, Create::No).await?;
    let n = app.queue.retry_failed_jobs(&selector).await?;
    bulk_output(cli, "resubmitted", n, &selector, "failed")
}

fn selector(job_type: Option<&str>, user: Option<&str>) -> anyhow::Result<JobSelector> {
    Ok(JobSelector {
        job_type: job_type
            .map(JobType::parse)
            .transpose()
            .map_err(|e| UsageError(e.to_string()))?,
        user_id: user.map(str::to_owned),
    })
}

fn bulk_output(
    cli: &Cli,
    what: &str,
    n: u64,
    selector: &JobSelector,
    status: &str,
) -> anyhow::Result<()> {
    if cli.json {
        return output::json(&json!({
            what: n,
            "status": status,
            "type": selector.job_type,
            "userId": selector.user_id,
        }));
    }
    let mut filter = String::new();
    if let Some(t) = &selector.job_type {
        filter.push_str(&format!(" of type {t}"));
    }
    if let Some(u) = &selector.user_id {
        filter.push_str(&format!(" of user {u}"));
    }
    output::line(format!("{what} {n} {status} job(s){filter}"));
    Ok(())
}

async fn pause(cli: &Cli, job_type: &str, paused: bool) -> anyhow::Result<()> {
    let job_type = JobType::parse(job_type).map_err(|e| UsageError(e.to_string()))?;
    let app = App::open(cli, Create::No).await?;
    let changed = if paused {
        app.queue.pause_type(&job_type).await?
    } else {
        app.queue.resume_type(&job_type).await?
    };
    let all = app.queue.paused_types().await?;
    if cli.json {
        return output::json(&json!({
            "type": job_type,
            "paused": paused,
            "changed": changed,
            "pausedTypes": all,
        }));
    }
    let state = if paused { "paused" } else { "resumed" };
    let note = if changed { "" } else { " (it already was)" };
    output::line(format!("{state} {job_type}{note}"));
    Ok(())
}

async fn enqueue(cli: &Cli, e: &Enqueue) -> anyhow::Result<()> {
    let new = match e {
        Enqueue::Detection {
            user,
            resource,
            entity_types,
            common,
        } => with_common(
            NewJob::detection(user.clone(), resource.clone(), entity_types.clone()),
            common,
        ),
        Enqueue::Generation {
            user,
            reference,
            source_resource,
            title,
            prompt,
            language,
            entity_types,
            common,
        } => with_common(
            NewJob::generation(
                user.clone(),
                GenerationParams {
                    reference_id: reference.clone(),
                    source_resource_id: source_resource.clone(),
                    prompt: prompt.clone(),
                    title: title.clone(),
                    entity_types: (!entity_types.is_empty()).then(|| entity_types.clone()),
                    language: language.clone(),
                },
            ),
            common,
        ),
        Enqueue::Custom {
            job_type,
            user,
            params,
            common,
        } => {
            let value = read_params(params)?;
            let new = NewJob::custom(job_type, user.clone(), value)
                .map_err(|err| UsageError(err.to_string()))?;
            with_common(new, common)
        }
    };
    let app = App::open(cli, Create::Yes).await?;
    let done = app
        .queue
        .enqueue(new)
        .await
        .map_err(|err| match err.kind() {
            semiont_jobs::queue::ErrorKind::InvalidInput => UsageError(err.to_string()).into(),
            _ => anyhow::Error::from(err),
        })?;
    let job = &done.job;
    if cli.json {
        // The job document, plus whether this call created it.
        let mut v = serde_json::to_value(job)?;
        if let serde_json::Value::Object(map) = &mut v {
            map.insert("enqueued".into(), done.created.into());
        }
        output::json(&v)
    } else if done.created {
        output::line(format!("enqueued {} ({}, pending)", job.id, job.job_type));
        Ok(())
    } else {
        output::line(format!(
            "not enqueued: job {} ({}, {}) holds unique key {:?}",
            job.id,
            job.job_type,
            job.status,
            job.unique_key.as_deref().unwrap_or_default()
        ));
        Ok(())
    }
}

async fn get(cli: &Cli, id: &str) -> anyhow::Result<()> {
    let id = parse_id(id)?;
    let app = App::open(cli, Create::No).await?;
    let job = app.queue.get_job(&id).await?;
    if cli.json {
        output::json(&job)
    } else {
        output::job_detail(&job);
        Ok(())
    }
}

async fn list(cli: &Cli, args: &ListArgs) -> anyhow::Result<()> {
    let mut filter = JobFilter::default().limit(args.limit).offset(args.offset);
    if let Some(s) = &args.status {
        filter = filter.status(
            s.parse::<JobStatus>()
                .map_err(|e| UsageError(e.to_string()))?,
        );
    }
    if let Some(t) = &args.job_type {
        filter = filter.job_type(JobType::parse(t).map_err(|e| UsageError(e.to_string()))?);
    }
    if let Some(u) = &args.user {
        filter = filter.user(u.clone());
    }
    filter.validate().map_err(|e| UsageError(e.to_string()))?;
    let app = App::open(cli, Create::No).await?;
    let page = app.queue.list_jobs(&filter).await?;
    let paused = app.queue.paused_types().await?;
    if cli.json {
        output::json(&json!({
            "jobs": page.jobs,
            "total": page.total,
            "pausedTypes": paused,
        }))
    } else {
        output::job_table(&page.jobs, page.total, args.offset);
        output::paused_line(&paused);
        Ok(())
    }
}

async fn stats(cli: &Cli) -> anyhow::Result<()> {
    let app = App::open(cli, Create::No).await?;
    let stats = app.queue.get_stats().await?;
    let types = app.queue.get_type_stats().await?;
    let paused: Vec<&JobType> = types
        .iter()
        .filter(|(_, s)| s.paused)
        .map(|(t, _)| t)
        .collect();
    if cli.json {
        // The shape `stats --json` always had: the seed's counts plus the
        // files set aside in quarantine (0 on a backend without files);
        // then the paused types and the counts per type.
        output::json(&serde_json::json!({
            "pending": stats.pending,
            "running": stats.running,
            "complete": stats.complete,
            "failed": stats.failed,
            "cancelled": stats.cancelled,
            "quarantined": stats.unreadable,
            "pausedTypes": paused,
            "types": types,
        }))
    } else {
        output::stats_table(&stats);
        output::paused_line(&paused);
        Ok(())
    }
}

async fn work(cli: &Cli, args: &WorkArgs) -> anyhow::Result<()> {
    let types = crate::work::parse_types(&args.types)?;
    let options = crate::work::options(args)?;
    // The model flags are checked before anything is opened.
    crate::content::inference_config(args, &crate::app::load_config(cli)?.model)?;
    let mut options = options;
    let app = App::open(cli, Create::Yes).await?;
    if args.no_sweep {
        options = options.sweep_interval(None);
    } else if let Some(every) = args.sweep_interval {
        options = options.sweep_interval(Some(every));
    } else if let Some(from_file) = app.config.sweep_interval() {
        options = options.sweep_interval(from_file);
    }
    let (detection, generation) = crate::content::workers(&app, args)
        .context("cannot set up the detection and generation workers")?;
    let worker = semiont_jobs::worker::Worker::new(
        app.queue.clone(),
        crate::work::Builtin::new(types.clone(), detection, generation)
            .with_exec_log(args.exec_log.as_deref())?
            .with_exec_spans(args.exec_spans.as_deref())?,
        options,
    );
    tracing::info!(worker_id = %worker.worker_id(), types = ?types.iter().map(JobType::as_str).collect::<Vec<_>>(), "working");
    if args.gate {
        crate::work::gate().await?;
    }
    crate::work::run_until_stopped(&app.queue, worker, types, args.exit_when_idle).await
}
