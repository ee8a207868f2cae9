//! Opening the application data directory: `<data-dir>/jobs` (the queue),
//! `resources/` and `annotations/`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
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
    /// Opens (or creates) the data directory named on the command line.
    pub async fn open(cli: &Cli, create: Create) -> anyhow::Result<App> {
        let durability = match cli.durability {
            DurabilityArg::None => Durability::None,
            DurabilityArg::Fsync | DurabilityArg::Batch => Durability::Fsync,
        };
        Self::open_at(&cli.data_dir, durability, create).await
    }

    /// Opens `root` with the given durability.
    pub async fn open_at(
        root: &Path,
        durability: Durability,
        create: Create,
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
        let config = JobQueueConfig {
            durability,
            ..JobQueueConfig::new(&jobs)
        };
        let queue = JobQueue::builder()
            .config(config)
            .store(Arc::new(store))
            .build()?;
        queue
            .initialize()
            .await
            .with_context(|| format!("cannot initialise the job queue in {}", jobs.display()))?;
        Ok(App { root, queue })
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
