//! `resources` and `annotations` commands, and the detection and generation
//! workers `work` and `demo` run (offline, or on an Ollama or
//! OpenAI-compatible server).

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use semiont_jobs::config::ModelSection;
use semiont_jobs::content::inference::{InferenceConfig, ModelSettings};
use semiont_jobs::content::{
    AnnotationStore, DataDir, FsAnnotationStore, FsResourceStore, MediaType, PutMode, Resource,
    ResourceId, ResourceStore,
};
use semiont_jobs::detection::{Backend, DetectionWorker, Detector, ModelOptions, Recognizer};
use semiont_jobs::generation::{GenerationOptions, GenerationWorker, Generator};
use semiont_jobs::model::Timestamp;
use semiont_jobs::worker::JobWorker;

use crate::app::{App, Create};
use crate::args::{Annotations, Cli, InferenceArg, Resources, WorkArgs};
use crate::{output, UsageError};

/// Largest file `resources add` accepts.
const MAX_RESOURCE_BYTES: u64 = 10 << 20;

/// The content stores of a data directory.
pub struct Content {
    /// Documents.
    pub resources: Arc<FsResourceStore>,
    /// Annotations.
    pub annotations: Arc<FsAnnotationStore>,
    /// The layout.
    pub data: DataDir,
}

impl Content {
    /// Opens the stores under `root`.
    pub fn open(root: &Path) -> anyhow::Result<Content> {
        let data = DataDir::new(root);
        Ok(Content {
            resources: Arc::new(
                data.resource_store()
                    .context("cannot open the resource store")?,
            ),
            annotations: Arc::new(
                data.annotation_store()
                    .context("cannot open the annotation store")?,
            ),
            data,
        })
    }
}

/// `resources ...`.
pub async fn resources(cli: &Cli, r: &Resources) -> anyhow::Result<()> {
    match r {
        Resources::Add {
            file,
            id,
            name,
            language,
        } => {
            let app = App::open(cli, Create::Yes).await?;
            let content = Content::open(&app.root)?;
            let meta = std::fs::metadata(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            if !meta.is_file() {
                bail!("{} is not a regular file", file.display());
            }
            if meta.len() > MAX_RESOURCE_BYTES {
                bail!(
                    "{} is {} bytes, more than the limit of {MAX_RESOURCE_BYTES}",
                    file.display(),
                    meta.len()
                );
            }
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))?;
            let stem = file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("resource");
            let id_text = id.clone().unwrap_or_else(|| slug(stem));
            let rid = ResourceId::parse(&id_text).map_err(|e| UsageError(e.to_string()))?;
            let media = match file.extension().and_then(|e| e.to_str()) {
                Some("md" | "markdown") => MediaType::Markdown,
                _ => MediaType::PlainText,
            };
            let display = name.clone().unwrap_or_else(|| {
                file.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or(stem)
                    .to_owned()
            });
            let mut resource = Resource::new(rid, display, media, text);
            resource.created = Timestamp::now();
            if let Some(lang) = language {
                resource = resource.with_language(lang.clone());
            }
            content
                .resources
                .create(&resource, PutMode::CreateNew)
                .await
                .with_context(|| format!("cannot add resource {}", resource.id))?;
            if cli.json {
                output::json(&resource.meta())
            } else {
                output::line(format!(
                    "added resource {} ({})",
                    resource.id, resource.name
                ));
                Ok(())
            }
        }
        Resources::List => {
            let app = App::open(cli, Create::No).await?;
            let content = Content::open(&app.root)?;
            let list = content.resources.list().await?;
            if cli.json {
                return output::json(&list);
            }
            if list.is_empty() {
                output::line("no resources");
            }
            for m in &list {
                output::line(format!(
                    "{:<32}  {:<14}  {:<3}  {:>7} chars  {}",
                    m.id.as_str(),
                    m.media_type.as_str(),
                    m.language.as_deref().unwrap_or("-"),
                    m.chars,
                    m.name
                ));
            }
            Ok(())
        }
        Resources::Show { id } => {
            let rid = ResourceId::parse(id).map_err(|e| UsageError(e.to_string()))?;
            let app = App::open(cli, Create::No).await?;
            let content = Content::open(&app.root)?;
            let resource = content.resources.get(&rid).await?;
            if cli.json {
                output::json(&resource)
            } else {
                output::line(format!(
                    "# {} ({}, {})\n",
                    resource.name,
                    resource.id,
                    resource.media_type.as_str()
                ));
                output::line(&resource.text);
                Ok(())
            }
        }
    }
}

/// `annotations ...`.
pub async fn annotations(cli: &Cli, a: &Annotations) -> anyhow::Result<()> {
    let Annotations::List { resource } = a;
    let rid = ResourceId::parse(resource).map_err(|e| UsageError(e.to_string()))?;
    let app = App::open(cli, Create::No).await?;
    let content = Content::open(&app.root)?;
    let list = content.annotations.list(&rid).await?;
    if cli.json {
        return output::json(&list);
    }
    if list.is_empty() {
        output::line(format!("no annotations on {rid}"));
    }
    for ann in &list {
        let quote = ann
            .target
            .quote()
            .map(|q| q.exact.clone())
            .unwrap_or_default();
        let pos = ann
            .target
            .position()
            .map(|p| format!("{}-{}", p.start, p.end))
            .unwrap_or_default();
        let tags: Vec<&str> = ann.tags().collect();
        let links: Vec<&str> = ann.links().collect();
        output::line(format!(
            "{:<44}  {:<14}  {:>11}  {}{}",
            ann.id.as_str(),
            tags.join(","),
            pos,
            quote,
            if links.is_empty() {
                String::new()
            } else {
                format!("  → {}", links.join(", "))
            }
        ));
    }
    Ok(())
}

fn slug(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.starts_with(['-', '.']) {
        out.remove(0);
    }
    if out.is_empty() {
        out = "resource".into();
    }
    out.chars().take(100).collect()
}

/// The inference configuration and the model settings from `work`'s
/// flags, falling back to the environment (`SEMIONT_INFERENCE`,
/// `OLLAMA_HOST`, `OPENAI_API_KEY`, `SEMIONT_INFERENCE_CONTEXT`, ...), then
/// to the configuration file's `[model]` section.
pub fn inference_config(
    args: &WorkArgs,
    file: &ModelSection,
) -> anyhow::Result<(InferenceConfig, ModelSettings)> {
    let kind = args.inference.map(|k| match k {
        InferenceArg::Offline => "offline",
        InferenceArg::Ollama => "ollama",
        InferenceArg::Openai => "openai",
    });
    let flags: Vec<(&str, Option<String>)> = vec![
        ("SEMIONT_INFERENCE", kind.map(str::to_owned)),
        ("SEMIONT_INFERENCE_MODEL", args.model.clone()),
        ("OLLAMA_HOST", args.url.clone()),
        ("OPENAI_BASE_URL", args.url.clone()),
        (
            "SEMIONT_INFERENCE_CONTEXT",
            args.model_context.map(|v| v.to_string()),
        ),
        (
            "SEMIONT_INFERENCE_MAX_TOKENS",
            args.model_max_tokens.map(|v| v.to_string()),
        ),
        (
            "SEMIONT_INFERENCE_CHUNK_CHARS",
            args.model_chunk_chars.map(|v| v.to_string()),
        ),
        (
            "SEMIONT_INFERENCE_TEMPERATURE",
            args.model_temperature.map(|v| v.to_string()),
        ),
        (
            "SEMIONT_INFERENCE_CONCURRENCY",
            args.model_concurrency.map(|v| v.to_string()),
        ),
        (
            "SEMIONT_INFERENCE_READ_TIMEOUT_SECS",
            args.model_timeout.map(|v| v.to_string()),
        ),
    ];
    let lookup = |key: &str| {
        flags
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.clone())
            .or_else(|| std::env::var(key).ok())
            .or_else(|| file.lookup(key).map(str::to_owned))
    };
    let usage = |e: semiont_jobs::content::Error| -> anyhow::Error {
        if e.code() == "CONFIG_ERROR" {
            UsageError(e.to_string()).into()
        } else {
            e.into()
        }
    };
    let config = InferenceConfig::from_lookup(lookup).map_err(usage)?;
    let settings = ModelSettings::from_lookup(lookup).map_err(usage)?;
    Ok((config, settings))
}

/// The detection and generation workers over the data directory of `root`.
pub fn build_workers(
    root: &Path,
    config: &InferenceConfig,
    settings: &ModelSettings,
) -> anyhow::Result<(Arc<dyn JobWorker>, Arc<dyn JobWorker>)> {
    let content = Content::open(root)?;
    let resources: Arc<dyn ResourceStore> = content.resources.clone();
    let annotations: Arc<dyn AnnotationStore> = content.annotations.clone();
    let (detector, generator) = if config.is_offline() {
        let recognizer = Recognizer::new()
            .with_gazetteer_dir(&content.data.gazetteers_dir())
            .context("cannot load the gazetteers")?;
        (
            Detector::offline(resources.clone(), annotations.clone(), recognizer),
            Generator::offline(resources, annotations),
        )
    } else {
        let client = config
            .build()
            .context("cannot set up the inference client")?;
        let detection = ModelOptions::from_settings(client.clone(), settings);
        tracing::info!(?detection, "model-based detection");
        (
            Detector::new(
                resources.clone(),
                annotations.clone(),
                Backend::Model(detection),
            ),
            Generator::new(resources, annotations, client)
                .with_options(GenerationOptions::from_settings(settings)),
        )
    };
    Ok((
        Arc::new(DetectionWorker::new(detector)),
        Arc::new(GenerationWorker::new(generator)),
    ))
}

/// The detection and generation workers for `work`.
#[allow(clippy::type_complexity, reason = "a pair of optional trait objects")]
pub fn workers(
    app: &App,
    args: &WorkArgs,
) -> anyhow::Result<(Option<Arc<dyn JobWorker>>, Option<Arc<dyn JobWorker>>)> {
    let (config, settings) = inference_config(args, &app.config.model)?;
    tracing::info!(inference = ?config, "inference backend");
    let (d, g) = build_workers(&app.root, &config, &settings)?;
    Ok((Some(d), Some(g)))
}
