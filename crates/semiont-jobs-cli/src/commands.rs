//! The commands that read or change the queue: init, enqueue, get, list,
//! stats, cancel, retry, cleanup, watch, work, completions; the others are
//! dispatched from here too.

use anyhow::Context;
use clap::CommandFactory;
use semiont_jobs::model::{GenerationParams, JobFilter, JobId, JobStatus, JobType, NewJob};
use serde_json::json;

use crate::app::{App, Create};
use crate::args::{Cli, Command, Enqueue, EnqueueCommon, ListArgs, WorkArgs};
use crate::{output, UsageError};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init => init(&cli).await,
        Command::Enqueue(e) => enqueue(&cli, e).await,
        Command::Get { id } => get(&cli, id).await,
        Command::List(args) => list(&cli, args).await,
        Command::Stats => stats(&cli).await,
        Command::Cancel { id } => {
            let app = App::open(&cli, Create::No).await?;
            let job = app.queue.cancel_job(parse_id(id)?).await?;
            print_job(&cli, &job, "cancelled")
        }
        Command::Retry { id } => {
            let app = App::open(&cli, Create::No).await?;
            let job = app.queue.retry_job(parse_id(id)?).await?;
            print_job(&cli, &job, "resubmitted")
        }
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
        Command::Resources(r) => crate::content::resources(&cli, r).await,
        Command::Annotations(a) => crate::content::annotations(&cli, a).await,
        Command::Demo => crate::demo::run(&cli).await,
        Command::Bench(args) => crate::bench::run(&cli, args),
        Command::Copy(args) => crate::copy::run(&cli, args).await,
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(*shell, &mut cmd, "semiont-jobs", &mut std::io::stdout());
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
    let new = new.priority(common.priority);
    match common.max_retries {
        Some(n) => new.max_retries(n),
        None => new,
    }
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
            let value: serde_json::Value = serde_json::from_str(params)
                .map_err(|err| UsageError(format!("--params is not valid JSON: {err}")))?;
            let new = NewJob::custom(job_type, user.clone(), value)
                .map_err(|err| UsageError(err.to_string()))?;
            with_common(new, common)
        }
    };
    let app = App::open(cli, Create::Yes).await?;
    let job = app
        .queue
        .create_job(new)
        .await
        .map_err(|err| match err.kind() {
            semiont_jobs::queue::ErrorKind::InvalidInput => UsageError(err.to_string()).into(),
            _ => anyhow::Error::from(err),
        })?;
    if cli.json {
        output::json(&job)
    } else {
        output::line(format!("enqueued {} ({}, pending)", job.id, job.job_type));
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
    if cli.json {
        output::json(&page)
    } else {
        output::job_table(&page.jobs, page.total, args.offset);
        Ok(())
    }
}

async fn stats(cli: &Cli) -> anyhow::Result<()> {
    let app = App::open(cli, Create::No).await?;
    let stats = app.queue.get_stats().await?;
    if cli.json {
        // The shape `stats --json` always had: the seed's counts plus the
        // files set aside in quarantine (0 on a backend without files).
        output::json(&serde_json::json!({
            "pending": stats.pending,
            "running": stats.running,
            "complete": stats.complete,
            "failed": stats.failed,
            "cancelled": stats.cancelled,
            "quarantined": stats.unreadable,
        }))
    } else {
        output::stats_table(&stats);
        Ok(())
    }
}

async fn work(cli: &Cli, args: &WorkArgs) -> anyhow::Result<()> {
    let types = crate::work::parse_types(&args.types)?;
    let options = crate::work::options(args)?;
    let app = App::open(cli, Create::Yes).await?;
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
