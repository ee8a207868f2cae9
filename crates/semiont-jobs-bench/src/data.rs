//! Opening a benchmark data directory: the queue on `<dir>/jobs`, the
//! layout `semiont-jobs --data-dir <dir>` uses, through the facade's
//! `open_fs_queue` (what an application does).

use std::path::Path;

use anyhow::{bail, Context};
use semiont_jobs::queue::{JobQueue, JobQueueConfig};
use semiont_jobs::store::Durability;

/// An opened data directory.
pub struct App {
    /// The queue on `<dir>/jobs`.
    pub queue: JobQueue,
}

/// Whether [`App::open_at`] may create a missing data directory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Create {
    /// Create it.
    Yes,
    /// It must exist (a reopen).
    No,
}

impl App {
    /// Opens the queue in `<root>/jobs` with the given durability.
    pub async fn open_at(
        root: &Path,
        durability: Durability,
        create: Create,
    ) -> anyhow::Result<App> {
        if !root.is_dir() {
            if create == Create::No {
                bail!("data directory {} does not exist", root.display());
            }
            create_private_dir(root)?;
        }
        let jobs = root.join("jobs");
        let config = JobQueueConfig {
            durability,
            ..JobQueueConfig::new(&jobs)
        };
        let queue = semiont_jobs::open_fs_queue(config)
            .await
            .with_context(|| format!("cannot open the job queue in {}", jobs.display()))?;
        Ok(App { queue })
    }
}

/// Creates a directory (and parents) with mode 0700.
pub fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create directory {}", path.display()))
}
