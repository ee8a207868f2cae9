//! Opening a benchmark data directory: the queue on `<dir>/jobs`, the
//! layout `semiont-jobs --data-dir <dir>` uses, through the facade's
//! `open_fs_queue` (what an application does); or, with `--database-url`,
//! in a PostgreSQL schema named after the directory.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use semiont_jobs::store_pg::{DatabaseUrl, PgOptions};

/// The database of this run (`--database-url`), when there is one.
pub static DATABASE: OnceLock<DatabaseUrl> = OnceLock::new();

/// The schemas this run created (dropped at the end unless `--keep`).
pub static SCHEMAS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The schema of a unit's directory: `bench_<dir name>`, in identifier form.
pub fn schema_for(dir: &Path) -> String {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("unit")
        .to_ascii_lowercase();
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("bench_{}_{clean}", std::process::id())
        .chars()
        .take(40)
        .collect()
}

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
        if let Some(url) = DATABASE.get() {
            let schema = schema_for(root);
            {
                let mut made = SCHEMAS.lock().unwrap_or_else(|e| e.into_inner());
                if !made.contains(&schema) {
                    made.push(schema.clone());
                }
            }
            let options = PgOptions::default()
                .schema(schema.clone())
                .durability(durability);
            let config = JobQueueConfig {
                durability,
                ..JobQueueConfig::new(root.join("jobs"))
            };
            let queue = semiont_jobs::open_pg_queue_with(url, options, config)
                .await
                .with_context(|| format!("cannot open the job queue in {url} schema {schema}"))?;
            return Ok(App { queue });
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
