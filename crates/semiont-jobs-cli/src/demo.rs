//! `demo`: the end-to-end tour. Loads the sample documents, runs detection
//! jobs (Person, Organization, Location, Date) with two workers and live
//! progress, then generation jobs for a few detected references, and prints
//! a summary. Re-runnable: finished work from an earlier run is reused.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use semiont_jobs::content::inference::InferenceConfig;
use semiont_jobs::content::{install_samples, samples, AnnotationStore, ResourceId, ResourceStore};
use semiont_jobs::model::{
    GenerationParams, GenerationResult, Job, JobFilter, JobId, JobStatus, JobType, NewJob,
};
use semiont_jobs::queue::{EventKind, JobQueue};
use semiont_jobs::worker::{Worker, WorkerOptions};
use serde_json::json;

use crate::app::{create_private_dir, App, Create};
use crate::args::Cli;
use crate::content::{build_workers, Content};
use crate::output;
use crate::watch::{Display, Mode};
use crate::work::Builtin;

const USER: &str = "demo";
const ENTITY_TYPES: [&str; 4] = ["Person", "Organization", "Location", "Date"];
const REFERENCES: usize = 3;
const PHASE_TIMEOUT: Duration = Duration::from_secs(120);

/// What one phase did.
#[derive(Default)]
struct Phase {
    jobs: Vec<JobId>,
    enqueued: usize,
    reused: usize,
}

/// Runs the demo.
pub async fn run(cli: &Cli) -> anyhow::Result<()> {
    let started = Instant::now();
    let app = App::open(cli, Create::Yes).await?;
    for sub in ["resources", "annotations"] {
        create_private_dir(&app.root.join(sub))?;
    }
    let content = Content::open(&app.root)?;
    let installed = install_samples(content.resources.as_ref())
        .await
        .context("cannot install the sample documents")?;
    let say = |text: String| {
        if !cli.json {
            output::line(text);
        }
    };
    say(format!(
        "semiont-jobs demo in {}: {} sample document(s) loaded, {} reused from an earlier run",
        app.root.display(),
        installed,
        samples().len() - installed
    ));

    let (detection, generation) = build_workers(&app.root, &InferenceConfig::Offline)?;
    let worker = Worker::new(
        app.queue.clone(),
        Builtin::new(
            vec![JobType::Detection, JobType::Generation],
            Some(detection),
            Some(generation),
        ),
        WorkerOptions::default()
            .concurrency(2)
            .poll_interval(Duration::from_millis(200)),
    );
    let runner = tokio::spawn({
        let worker = worker.clone();
        async move { worker.start().await }
    });
    let mode = if cli.json {
        None
    } else {
        Some(Mode::pick(false))
    };

    let outcome = async {
        // Phase 1: detection on every sample.
        say("\n1. detecting entities (Person, Organization, Location, Date) with 2 workers".into());
        let detection = detection_phase(&app.queue).await?;
        say(format!(
            "   {} detection job(s) enqueued, {} reused",
            detection.enqueued, detection.reused
        ));
        wait_all(&app.queue, &detection.jobs, mode).await?;

        // Phase 2: generation for a few detected people and organizations.
        let refs = pick_references(&content).await?;
        say(format!(
            "\n2. generating documents for {} detected reference(s)",
            refs.len()
        ));
        let generation = generation_phase(&app.queue, &refs).await?;
        say(format!(
            "   {} generation job(s) enqueued, {} reused",
            generation.enqueued, generation.reused
        ));
        wait_all(&app.queue, &generation.jobs, mode).await?;
        anyhow::Ok((detection, generation))
    }
    .await;
    worker.stop().await;
    runner.await.context("worker task failed")??;
    let (detection, generation) = outcome?;

    // Summary.
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = Vec::new();
    let mut generated = Vec::new();
    for id in detection.jobs.iter().chain(&generation.jobs) {
        let job = app.queue.get_job(id).await?;
        *by_status.entry(job.status.to_string()).or_default() += 1;
        if job.status != JobStatus::Complete {
            failed.push(format!(
                "{} ({}): {}",
                job.id,
                job.job_type,
                job.error.clone().unwrap_or_default()
            ));
        }
        if job.job_type == JobType::Generation {
            if let Some(r) = job.result_as::<GenerationResult>()? {
                let params = job.generation_params()?;
                generated.push(json!({
                    "resourceId": r.resource_id,
                    "resourceName": r.resource_name,
                    "path": content.data.resources_dir().join(format!("{}.json", r.resource_id)),
                    "referenceId": params.reference_id,
                    "sourceResourceId": params.source_resource_id,
                }));
            }
        }
    }
    let mut entities: BTreeMap<&str, u64> = ENTITY_TYPES.iter().map(|t| (*t, 0)).collect();
    for sample in samples() {
        let rid = ResourceId::parse(sample.id)?;
        for ann in content.annotations.list(&rid).await? {
            for tag in ann.tags() {
                if let Some(n) = entities.get_mut(tag) {
                    *n += 1;
                }
            }
        }
    }
    let stats = app.queue.get_stats().await?;
    let elapsed = started.elapsed();
    let summary = json!({
        "dataDir": app.root,
        "elapsedMs": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        "samples": { "installed": installed, "reused": samples().len() - installed },
        "detection": { "jobs": detection.jobs.len(), "enqueued": detection.enqueued, "reused": detection.reused },
        "generation": { "jobs": generation.jobs.len(), "enqueued": generation.enqueued, "reused": generation.reused },
        "demoJobsByStatus": by_status,
        "queueStats": stats,
        "entitiesFound": entities,
        "generatedResources": generated,
    });
    if cli.json {
        output::json(&summary)?;
    } else {
        output::line("\nsummary");
        output::line(format!(
            "  demo jobs:   {}",
            by_status
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        output::line(format!(
            "  queue:       {} pending, {} running, {} complete, {} failed, {} cancelled",
            stats.pending, stats.running, stats.complete, stats.failed, stats.cancelled
        ));
        output::line(format!(
            "  entities:    {}",
            entities
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        output::line("  generated:");
        for g in &generated {
            output::line(format!(
                "    {} \"{}\" -> {}",
                g["resourceId"].as_str().unwrap_or_default(),
                g["resourceName"].as_str().unwrap_or_default(),
                g["path"].as_str().unwrap_or_default()
            ));
        }
        output::line(format!("  total time:  {:.1} s", elapsed.as_secs_f64()));
        output::line(format!(
            "\nexplore: semiont-jobs --data-dir {} list | annotations list {} | resources show <id>",
            app.root.display(),
            samples().first().map(|s| s.id).unwrap_or("<resource>")
        ));
    }
    if !failed.is_empty() {
        bail!(
            "{} demo job(s) did not complete: {}",
            failed.len(),
            failed.join("; ")
        );
    }
    Ok(())
}

/// Demo jobs of `job_type` from earlier runs, by a key of their parameters.
async fn earlier(
    queue: &JobQueue,
    job_type: JobType,
    key: impl Fn(&Job) -> Option<String>,
) -> anyhow::Result<HashMap<String, Job>> {
    let page = queue
        .list_jobs(
            &JobFilter::default()
                .job_type(job_type)
                .user(USER)
                .limit(10_000),
        )
        .await?;
    let mut out: HashMap<String, Job> = HashMap::new();
    // Oldest first, so a later (retried) job wins.
    for job in page.jobs.into_iter().rev() {
        if matches!(job.status, JobStatus::Failed | JobStatus::Cancelled) {
            continue;
        }
        if let Some(k) = key(&job) {
            out.insert(k, job);
        }
    }
    Ok(out)
}

async fn detection_phase(queue: &JobQueue) -> anyhow::Result<Phase> {
    let previous = earlier(queue, JobType::Detection, |j| {
        j.detection_params().ok().map(|p| p.resource_id)
    })
    .await?;
    let mut phase = Phase::default();
    let mut new = Vec::new();
    for s in samples() {
        match previous.get(s.id) {
            Some(job) => {
                phase.jobs.push(job.id.clone());
                phase.reused += 1;
            }
            None => new.push(NewJob::detection(USER, s.id, ENTITY_TYPES)),
        }
    }
    phase.enqueued = new.len();
    for job in queue.create_jobs(new).await? {
        phase.jobs.push(job.id);
    }
    Ok(phase)
}

/// A reference to generate a document for: an annotation on a sample.
struct Reference {
    annotation: String,
    resource: String,
    title: String,
    language: Option<String>,
}

async fn pick_references(content: &Content) -> anyhow::Result<Vec<Reference>> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for wanted in ["Person", "Organization"] {
        for s in samples() {
            if out.len() >= REFERENCES {
                return Ok(out);
            }
            let rid = ResourceId::parse(s.id)?;
            let resource = content.resources.get(&rid).await?;
            let annotations = content.annotations.list(&rid).await?;
            let pick = annotations.iter().find(|a| {
                a.tags().any(|t| t == wanted)
                    && a.target.quote().is_some_and(|q| !seen.contains(&q.exact))
            });
            if let Some(a) = pick {
                let exact = a
                    .target
                    .quote()
                    .map(|q| q.exact.clone())
                    .unwrap_or_default();
                seen.insert(exact.clone());
                out.push(Reference {
                    annotation: a.id.to_string(),
                    resource: s.id.to_owned(),
                    title: exact,
                    language: resource.language.clone(),
                });
            }
        }
    }
    Ok(out)
}

async fn generation_phase(queue: &JobQueue, refs: &[Reference]) -> anyhow::Result<Phase> {
    let previous = earlier(queue, JobType::Generation, |j| {
        j.generation_params().ok().map(|p| p.reference_id)
    })
    .await?;
    let mut phase = Phase::default();
    let mut new = Vec::new();
    for r in refs {
        match previous.get(&r.annotation) {
            Some(job) => {
                phase.jobs.push(job.id.clone());
                phase.reused += 1;
            }
            None => new.push(NewJob::generation(
                USER,
                GenerationParams {
                    reference_id: r.annotation.clone(),
                    source_resource_id: r.resource.clone(),
                    title: Some(r.title.clone()),
                    language: r.language.clone(),
                    ..Default::default()
                },
            )),
        }
    }
    phase.enqueued = new.len();
    for job in queue.create_jobs(new).await? {
        phase.jobs.push(job.id);
    }
    Ok(phase)
}

/// Waits until every job in `ids` is finished, showing progress.
async fn wait_all(queue: &JobQueue, ids: &[JobId], mode: Option<Mode>) -> anyhow::Result<()> {
    let mut display = mode.map(Display::new);
    let mut events = queue.subscribe();
    let wanted: HashSet<&JobId> = ids.iter().collect();
    let mut open: HashSet<JobId> = HashSet::new();
    for id in ids {
        let job = queue.get_job(id).await?;
        if !job.status.is_finished() {
            open.insert(id.clone());
        }
    }
    let deadline = tokio::time::Instant::now() + PHASE_TIMEOUT;
    while !open.is_empty() {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "demo timed out after {PHASE_TIMEOUT:?} waiting for {} job(s)",
                    open.len()
                )
            })?;
        let Some(ev) = ev else {
            bail!("the queue closed during the demo")
        };
        if ev.kind == EventKind::Resynced {
            for id in open.clone() {
                if queue.get_job(&id).await?.status.is_finished() {
                    open.remove(&id);
                }
            }
            continue;
        }
        let (Some(id), Some(job)) = (&ev.job_id, ev.job.as_deref()) else {
            continue;
        };
        if !wanted.contains(id) {
            continue;
        }
        if let Some(d) = display.as_mut() {
            d.show(job, Some(ev.kind))?;
        }
        if job.status.is_finished() {
            open.remove(id);
        }
    }
    if let Some(mut d) = display {
        d.finish();
    }
    Ok(())
}
