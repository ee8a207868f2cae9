//! Opening the application: the queue (in `<data-dir>/jobs`, or in a
//! PostgreSQL schema with `--database-url`), and the data directory's
//! `resources/` and `annotations/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use semiont_jobs::config::FileConfig;
use semiont_jobs::queue::{JobQueue, JobQueueConfig};
use semiont_jobs::store::Durability;
use semiont_jobs::store::JobStore;
use semiont_jobs::store_fs::{FsOptions, FsStore};
use semiont_jobs::store_pg::{DatabaseUrl, PgOptions, PgStore};

use semiont_jobs::model::{JobFilter, JobLayout, MAX_LIST_LIMIT};

use crate::args::{Cli, DurabilityArg, LayoutArg};

/// An opened data directory.
pub struct App {
    /// The application data root.
    pub root: PathBuf,
    /// The queue on `<root>/jobs`.
    pub queue: JobQueue,
    /// The configuration file's settings (empty without `--config`).
    pub config: FileConfig,
    /// Where the queue is, for messages (a directory, or the database URL
    /// and schema, password hidden).
    pub location: String,
    /// For a queue in PostgreSQL: the schema version before and after this
    /// open.
    pub migrated: Option<semiont_jobs::store_pg::Migrated>,
    /// The document layout of new jobs, and whether this open chose (and
    /// recorded) it.
    pub job_layout: (JobLayout, bool),
}

/// Reads the configuration file named by `--config` / `SEMIONT_JOBS_CONFIG`
/// (a bad file is a usage error: exit 2, one line naming the key), with
/// `--layout` over its `queue.layout`.
pub fn load_config(cli: &Cli) -> anyhow::Result<FileConfig> {
    let mut config = match &cli.config {
        None => FileConfig::default(),
        Some(path) => FileConfig::load(path).map_err(|e| crate::UsageError(e.to_string()))?,
    };
    if let Some(l) = cli.layout {
        config.queue.layout = Some(match l {
            LayoutArg::Flat => JobLayout::Flat,
            LayoutArg::Nested => JobLayout::Nested,
        });
    }
    Ok(config)
}

/// What the layouts of the records already in a directory say.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayoutsSeen {
    /// Some record is flat.
    pub flat: bool,
    /// Some record is nested.
    pub nested: bool,
}

/// The layout of new jobs in a jobs directory: the one it recorded, else
/// the one asked for (`--layout`, `queue.layout`), else the one of the
/// records it holds, else flat. Returns the layout and whether it must
/// now be recorded; a choice that would mix layouts is an error (one line).
pub fn choose_layout(
    jobs: &Path,
    recorded: Option<JobLayout>,
    asked: Option<JobLayout>,
    seen: LayoutsSeen,
) -> anyhow::Result<(JobLayout, bool)> {
    let other = |l: JobLayout| match l {
        JobLayout::Flat => JobLayout::Nested,
        JobLayout::Nested => JobLayout::Flat,
    };
    match (recorded, asked) {
        (Some(r), Some(a)) if r != a => Err(crate::UsageError(format!(
            "{} creates {r} jobs (recorded in its format.json); --layout {a} would mix layouts",
            jobs.display()
        ))
        .into()),
        (Some(r), _) => Ok((r, false)),
        (None, Some(a)) => {
            let clash = match a {
                JobLayout::Flat => seen.nested,
                JobLayout::Nested => seen.flat,
            };
            if clash {
                return Err(crate::UsageError(format!(
                    "{} holds {} records; new {a} jobs would mix layouts (pass --layout {})",
                    jobs.display(),
                    other(a),
                    other(a)
                ))
                .into());
            }
            Ok((a, true))
        }
        (None, None) => match (seen.flat, seen.nested) {
            (true, true) => Err(crate::UsageError(format!(
                "{} holds records in both the flat and the nested layout; choose one for new jobs with --layout flat|nested",
                jobs.display()
            ))
            .into()),
            (false, true) => Ok((JobLayout::Nested, true)),
            _ => Ok((JobLayout::Flat, true)),
        },
    }
}

/// The layouts among the (up to [`MAX_LIST_LIMIT`] most recent) records
/// of `store`.
async fn layouts_seen(store: &FsStore) -> anyhow::Result<LayoutsSeen> {
    let page = store
        .list(&JobFilter {
            limit: MAX_LIST_LIMIT,
            ..JobFilter::default()
        })
        .await?;
    let mut seen = LayoutsSeen::default();
    for job in &page.jobs {
        match job.layout {
            JobLayout::Flat => seen.flat = true,
            JobLayout::Nested => seen.nested = true,
        }
    }
    Ok(seen)
}

/// Whether a command may create a missing data directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create it (init, enqueue, work, demo).
    Yes,
    /// Refuse: reading a directory that does not exist is a mistake.
    No,
}

impl App {
    /// Opens (or creates) the data directory named on the command line,
    /// with the configuration file's settings.
    pub async fn open(cli: &Cli, create: Create) -> anyhow::Result<App> {
        let durability = durability(cli);
        let config = load_config(cli)?;
        match &cli.database_url {
            Some(url) => {
                let url = parse_url(url)?;
                Self::open_pg(cli, &url, durability, create, config).await
            }
            None => Self::open_with(&cli.data_dir, durability, create, config).await,
        }
    }

    /// Opens the queue in the database at `url` (schema `--db-schema`);
    /// the data directory is created only when `create` says so and is not
    /// needed otherwise.
    async fn open_pg(
        cli: &Cli,
        url: &DatabaseUrl,
        durability: Durability,
        create: Create,
        file: FileConfig,
    ) -> anyhow::Result<App> {
        let store = open_pg_store(url, &cli.db_schema, durability).await?;
        let migrated = store.migrated();
        let location = format!("{url} (schema {})", cli.db_schema);
        let root = &cli.data_dir;
        if create == Create::Yes && !root.exists() {
            create_private_dir(root)?;
        }
        let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
        let mut config = JobQueueConfig {
            durability,
            ..JobQueueConfig::new(root.join("jobs"))
        };
        file.apply_to(&mut config)
            .map_err(|e| crate::UsageError(e.to_string()))?;
        let queue = JobQueue::builder()
            .config(config)
            .store(Arc::new(store))
            .build()?;
        queue
            .initialize()
            .await
            .with_context(|| format!("cannot initialise the job queue in {location}"))?;
        let job_layout = (config_layout(&file), false);
        Ok(App {
            root,
            queue,
            config: file,
            location,
            migrated: Some(migrated),
            job_layout,
        })
    }

    /// Opens `root` with the given durability and configuration file.
    pub async fn open_with(
        root: &Path,
        durability: Durability,
        create: Create,
        file: FileConfig,
    ) -> anyhow::Result<App> {
        match std::fs::symlink_metadata(root) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                // A symlinked root is the user's choice; follow it once.
                if !root.is_dir() {
                    bail!(
                        "data directory {} is a symlink to something that is not a directory",
                        root.display()
                    );
                }
            }
            Ok(_) => bail!("data directory {} is not a directory", root.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if create == Create::No {
                    bail!(
                        "data directory {} does not exist (run `semiont-jobs init` or pass --data-dir)",
                        root.display()
                    );
                }
                create_private_dir(root)?;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read data directory {}", root.display()))
            }
        }
        let root = std::fs::canonicalize(root)
            .with_context(|| format!("cannot resolve data directory {}", root.display()))?;
        let jobs = root.join("jobs");
        let store = FsStore::open(&jobs, FsOptions::default().durability(durability))
            .await
            .with_context(|| format!("cannot open the job queue in {}", jobs.display()))?;
        // Commands that may create jobs choose the layout of new ones (and
        // record it on the first open); the others only read it.
        let recorded = store.new_job_layout()?;
        let (layout, chosen) = match (create, recorded) {
            (Create::Yes, None) => {
                let seen = layouts_seen(&store).await?;
                choose_layout(&jobs, None, file.queue.layout, seen)?
            }
            (Create::Yes, Some(r)) => {
                choose_layout(&jobs, Some(r), file.queue.layout, LayoutsSeen::default())?
            }
            (Create::No, r) => (r.or(file.queue.layout).unwrap_or_default(), false),
        };
        if chosen {
            store.set_new_job_layout(layout)?;
        }
        let mut config = JobQueueConfig {
            durability,
            ..JobQueueConfig::new(&jobs)
        };
        file.apply_to(&mut config)
            .map_err(|e| crate::UsageError(e.to_string()))?;
        config.job_layout = layout;
        let queue = JobQueue::builder()
            .config(config)
            .store(Arc::new(store))
            .build()?;
        queue
            .initialize()
            .await
            .with_context(|| format!("cannot initialise the job queue in {}", jobs.display()))?;
        Ok(App {
            location: jobs.display().to_string(),
            root,
            queue,
            config: file,
            migrated: None,
            job_layout: (layout, chosen),
        })
    }
}

/// The layout the configuration asks for (flat when it says nothing).
fn config_layout(file: &FileConfig) -> JobLayout {
    file.queue.layout.unwrap_or_default()
}

/// The durability `--durability` asks for.
pub fn durability(cli: &Cli) -> Durability {
    match cli.durability {
        DurabilityArg::None => Durability::None,
        DurabilityArg::Fsync | DurabilityArg::Batch => Durability::Fsync,
    }
}

/// Parses a database URL given on the command line (a usage error when
/// malformed; the message hides the password).
pub fn parse_url(url: &str) -> anyhow::Result<DatabaseUrl> {
    Ok(DatabaseUrl::parse(url)?)
}

/// Opens the PostgreSQL store in `schema` (applying missing migrations).
pub async fn open_pg_store(
    url: &DatabaseUrl,
    schema: &str,
    durability: Durability,
) -> anyhow::Result<PgStore> {
    semiont_jobs::store_pg::check_schema_name(schema)
        .map_err(|e| crate::UsageError(e.to_string()))?;
    let options = PgOptions::default().schema(schema).durability(durability);
    Ok(PgStore::open(url, options).await?)
}

/// Where a queue is, as `copy` names it: a data directory or a database.
pub enum Location {
    /// A data directory (the queue in its `jobs/`).
    Dir(PathBuf),
    /// A PostgreSQL database.
    Db(Box<DatabaseUrl>),
}

impl Location {
    /// Reads `DIR|URL`: a `postgres://`/`postgresql://` URL or `key=value`
    /// connection string is a database, anything else a directory.
    pub fn parse(s: &str) -> anyhow::Result<Location> {
        let t = s.trim();
        if t.contains("://") || t.contains('=') {
            Ok(Location::Db(Box::new(parse_url(t)?)))
        } else if t.is_empty() {
            Err(crate::UsageError("an empty queue location".into()).into())
        } else {
            Ok(Location::Dir(PathBuf::from(t)))
        }
    }

    /// Opens the store there (a directory's `jobs/` must exist unless
    /// `create`).
    pub async fn open(
        &self,
        schema: &str,
        durability: Durability,
        create: Create,
    ) -> anyhow::Result<(Arc<dyn JobStore>, String)> {
        match self {
            Location::Db(url) => {
                let store = open_pg_store(url, schema, durability).await?;
                Ok((Arc::new(store), format!("{url} (schema {schema})")))
            }
            Location::Dir(root) => {
                let jobs = root.join("jobs");
                if !jobs.is_dir() {
                    if create == Create::No {
                        bail!(
                            "{} holds no queue ({} is not a directory)",
                            root.display(),
                            jobs.display()
                        );
                    }
                    create_private_dir(root)?;
                }
                let store = FsStore::open(&jobs, FsOptions::default().durability(durability))
                    .await
                    .with_context(|| format!("cannot open the job queue in {}", jobs.display()))?;
                Ok((Arc::new(store), jobs.display().to_string()))
            }
        }
    }
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create data directory {}", path.display()))
}
