//! Opening the application data directory: `<data-dir>/jobs` (the queue),
//! `resources/` and `annotations/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use semiont_jobs::config::FileConfig;
use semiont_jobs::queue::{JobQueue, JobQueueConfig};
use semiont_jobs::store::Durability;
use semiont_jobs::store_fs::{FsOptions, FsStore};

use crate::args::{Cli, DurabilityArg};

/// An opened data directory.
pub struct App {
    /// The application data root.
    pub root: PathBuf,
    /// The queue on `<root>/jobs`.
    pub queue: JobQueue,
    /// The configuration file's settings (empty without `--config`).
    pub config: FileConfig,
}

/// Reads the configuration file named by `--config` / `SEMIONT_JOBS_CONFIG`
/// (a bad file is a usage error: exit 2, one line naming the key).
pub fn load_config(cli: &Cli) -> anyhow::Result<FileConfig> {
    match &cli.config {
        None => Ok(FileConfig::default()),
        Some(path) => FileConfig::load(path).map_err(|e| crate::UsageError(e.to_string()).into()),
    }
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
        let durability = match cli.durability {
            DurabilityArg::None => Durability::None,
            DurabilityArg::Fsync | DurabilityArg::Batch => Durability::Fsync,
        };
        let config = load_config(cli)?;
        Self::open_with(&cli.data_dir, durability, create, config).await
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
        let mut config = JobQueueConfig {
            durability,
            ..JobQueueConfig::new(&jobs)
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
            .with_context(|| format!("cannot initialise the job queue in {}", jobs.display()))?;
        Ok(App {
            root,
            queue,
            config: file,
        })
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
