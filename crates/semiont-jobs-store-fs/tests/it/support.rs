//! Helpers shared by the integration tests: jobs, options, running this
//! test binary as a child process, and reading a jobs directory directly
//! (bypassing the store) to check the on-disk invariants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use semiont_jobs_model::{Job, JobId, JobStatus, NewJob, Timestamp};
use semiont_jobs_store::{ClaimRequest, Durability, Expect, JobStore, TypeFilter};
use semiont_jobs_store_fs::FsOptions;
use serde_json::{json, Value};

/// The env var carrying a child's instructions.
pub const CHILD_ENV: &str = "SEMIONT_FS_TEST_CHILD";

/// A pending `noop` job created now.
pub fn noop_job() -> Job {
    job_with_retries(3)
}

/// A pending `noop` job with this retry budget.
pub fn job_with_retries(max_retries: u32) -> Job {
    NewJob::custom("noop", "u1", json!({"n": 1}))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::now(), max_retries)
        .unwrap()
}

/// Options for tests: no fsync, no grace period, no background timers.
pub fn opts() -> FsOptions {
    FsOptions::default()
        .durability(Durability::None)
        .quarantine_grace(Duration::ZERO)
        .recovery_interval(None)
        .rescan_interval(None)
}

/// A claim request for any type.
pub fn claim_req(worker: &str, now: Timestamp, lease: Duration) -> ClaimRequest {
    ClaimRequest {
        types: TypeFilter::Any,
        worker_id: worker.into(),
        now,
        lease,
    }
}

/// `job` finished with `status` now.
pub fn finished(mut job: Job, status: JobStatus) -> Job {
    job.status = status;
    job.completed_at = Some(Timestamp::now());
    job
}

/// Completes the running `job` (fenced by its attempt); returns what was
/// written.
pub async fn complete(store: &impl JobStore, job: &Job) -> Job {
    let done = finished(job.clone(), JobStatus::Complete);
    store
        .transition(Expect::running(job.attempt), &done)
        .await
        .unwrap();
    done
}

/// Claims and completes jobs as `worker` until none is due.
pub async fn drain(store: &impl JobStore, worker: &str) {
    let day = Duration::from_secs(86_400);
    while let Some(j) = store
        .claim(&claim_req(worker, Timestamp::now(), day))
        .await
        .unwrap()
    {
        complete(store, &j).await;
    }
}

/// Starts this test binary running only `child::entry`, with `spec`.
pub fn spawn_child(spec: &Value) -> Child {
    let exe = std::env::current_exe().unwrap();
    Command::new(exe)
        .args([
            "--exact",
            "child::entry",
            "--nocapture",
            "--test-threads",
            "1",
            "-q",
        ])
        .env(CHILD_ENV, spec.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Runs a child to its end.
pub fn run_child(spec: &Value) -> ExitStatus {
    spawn_child(spec).wait().unwrap()
}

/// Whether a child was killed by `SIGKILL` (a crash point fired).
pub fn killed(status: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(libc::SIGKILL)
}

/// What is on disk, read without the store.
#[derive(Debug, Default)]
pub struct Disk {
    /// Every job file, by id: (directory, parsed content).
    pub jobs: BTreeMap<String, Vec<(JobStatus, Job)>>,
    /// Files in `tmp/` subdirectories (and stray entries in `tmp/`),
    /// except spares.
    pub staged: Vec<PathBuf>,
    /// Spare files (`spare.<n>`) in `tmp/` subdirectories.
    pub spares: Vec<PathBuf>,
    /// Subdirectories of `tmp/` (one per live or unrecovered instance).
    pub tmp_dirs: usize,
    /// Entries in `quarantine/` that are not `.reason` files.
    pub quarantined: Vec<String>,
}

impl Disk {
    /// Reads `dir`; panics on a job file that does not parse or does not
    /// match its name and directory (a torn or inconsistent file).
    pub fn read(dir: &Path) -> Disk {
        let mut disk = Disk::default();
        for status in JobStatus::ALL {
            let sdir = dir.join(status.as_str());
            for entry in std::fs::read_dir(&sdir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                let bytes = std::fs::read(entry.path())
                    .unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
                let job = Job::from_json(&bytes)
                    .unwrap_or_else(|e| panic!("torn or bad file {}: {e}", entry.path().display()));
                assert_eq!(format!("{}.json", job.id), name, "id matches the file name");
                assert_eq!(
                    job.status, status,
                    "{name}: status field matches the directory"
                );
                disk.jobs
                    .entry(job.id.to_string())
                    .or_default()
                    .push((status, job));
            }
        }
        for entry in std::fs::read_dir(dir.join("tmp")).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                disk.tmp_dirs += 1;
                for f in std::fs::read_dir(entry.path()).unwrap() {
                    let f = f.unwrap();
                    if f.file_name().to_string_lossy().starts_with("spare.") {
                        disk.spares.push(f.path());
                    } else {
                        disk.staged.push(f.path());
                    }
                }
            } else {
                disk.staged.push(entry.path());
            }
        }
        for entry in std::fs::read_dir(dir.join("quarantine")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if !name.ends_with(".reason") {
                disk.quarantined.push(name);
            }
        }
        disk
    }

    /// Asserts DESIGN §4 invariant 1 (one directory per job) and returns
    /// each job's single (status, content).
    pub fn single(&self) -> BTreeMap<String, (JobStatus, Job)> {
        self.jobs
            .iter()
            .map(|(id, copies)| {
                assert_eq!(
                    copies.len(),
                    1,
                    "job {id} is in one directory only: {copies:?}"
                );
                (id.clone(), copies[0].clone())
            })
            .collect()
    }

    /// Number of jobs in `status`.
    pub fn count(&self, status: JobStatus) -> usize {
        self.jobs
            .values()
            .flatten()
            .filter(|(s, _)| *s == status)
            .count()
    }
}

/// Polls `cond` until it holds or `timeout` passes (for conditions that
/// have no event to wait for).
pub async fn eventually<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A fresh temporary directory under cargo's per-target scratch directory
/// (`CARGO_TARGET_TMPDIR`): on the same filesystem as the build, which on
/// some machines is much faster than `/tmp`.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("fs-it-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap()
}
