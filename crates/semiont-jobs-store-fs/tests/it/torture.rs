//! The kill -9 loop (slow; runs only with `SEMIONT_JOBS_TORTURE=1`):
//! worker processes are killed with `SIGKILL` at random moments while they
//! drain the queue, and replaced. Afterwards nothing is lost, nothing is
//! stuck in running, no file is torn, and a job ran twice only when a
//! worker was killed while running it.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use semiont_jobs_model::{Job, JobStatus, Timestamp};
use semiont_jobs_store::JobStore;
use semiont_jobs_store_fs::FsStore;
use serde_json::json;

use crate::support::{self, job_with_retries, spawn_child, Disk};

const WORKERS: usize = 3;
const BATCH: usize = 1_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn spawn_worker(dir: &Path, logs: &Path, serial: usize) -> Child {
    let log = logs.join(format!("worker-{serial}.log"));
    spawn_child(&json!({"mode": "torture", "dir": dir, "log": log}))
}

async fn add_jobs(dir: &Path, all: &mut Vec<Job>) {
    let store = FsStore::open(dir, support::opts()).await.unwrap();
    let jobs: Vec<Job> = (0..BATCH).map(|_| job_with_retries(100)).collect();
    store.create_batch(&jobs).await.unwrap();
    all.extend(jobs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(
    clippy::print_stderr,
    reason = "tells the runner the slow test was skipped"
)]
async fn kill_dash_nine_loop() {
    if std::env::var("SEMIONT_JOBS_TORTURE").as_deref() != Ok("1") {
        eprintln!("torture::kill_dash_nine_loop skipped: set SEMIONT_JOBS_TORTURE=1 to run it");
        return;
    }
    let target_kills: usize = std::env::var("SEMIONT_JOBS_TORTURE_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let tmp = support::tempdir();
    let dir = tmp.path().join("jobs");
    let logs = tmp.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut jobs = Vec::new();
    add_jobs(&dir, &mut jobs).await;

    let mut rng = Rng(Timestamp::now().as_millis() as u64 | 1);
    let mut serial = 0;
    let mut children: Vec<Child> = (0..WORKERS)
        .map(|_| {
            serial += 1;
            spawn_worker(&dir, &logs, serial)
        })
        .collect();
    let mut killed_pids: HashSet<u32> = HashSet::new();
    let started = Instant::now();
    while killed_pids.len() < target_kills {
        tokio::time::sleep(Duration::from_millis(20 + rng.next(130))).await;
        let i = rng.next(WORKERS as u64) as usize;
        if children[i].try_wait().unwrap().is_none() {
            let pid = children[i].id();
            // SAFETY: sending SIGKILL to our own child process.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
            }
            children[i].wait().unwrap();
            killed_pids.insert(pid);
        } else {
            // It ran out of work: give the workers more.
            add_jobs(&dir, &mut jobs).await;
        }
        serial += 1;
        children[i] = spawn_worker(&dir, &logs, serial);
    }
    for mut c in children {
        c.wait().unwrap();
    }
    // Finish whatever is left with unkilled workers.
    for _ in 0..10 {
        let disk = Disk::read(&dir);
        if disk.count(JobStatus::Pending) + disk.count(JobStatus::Running) == 0 {
            break;
        }
        serial += 1;
        spawn_worker(&dir, &logs, serial).wait().unwrap();
    }
    let elapsed = started.elapsed();

    // Nothing lost, nothing stuck, no torn file.
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    store.recover(Timestamp::now()).await.unwrap();
    let disk = Disk::read(&dir);
    let state = disk.single();
    assert!(disk.quarantined.is_empty(), "{:?}", disk.quarantined);
    for job in &jobs {
        let (status, _) = state
            .get(job.id.as_str())
            .unwrap_or_else(|| panic!("job {} lost", job.id));
        assert_eq!(*status, JobStatus::Complete, "job {}", job.id);
    }
    let stats = store.stats().await.unwrap();
    assert_eq!((stats.pending, stats.running), (0, 0));
    assert_eq!(stats.complete as usize, jobs.len());

    // Executions: a second start only after a start by a killed worker.
    let mut starts: HashMap<String, Vec<u32>> = HashMap::new();
    let mut dones: HashMap<String, usize> = HashMap::new();
    for entry in std::fs::read_dir(&logs).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            match parts.first() {
                Some(&"start") => starts
                    .entry(parts[1].to_owned())
                    .or_default()
                    .push(parts[3].parse().unwrap()),
                Some(&"done") => *dones.entry(parts[1].to_owned()).or_default() += 1,
                Some(&"lost") => panic!("a live worker lost its job: {line}"),
                // A line cut by a kill mid-write.
                _ => {}
            }
        }
    }
    let mut duplicates = 0;
    for (id, pids) in &starts {
        assert!(
            dones.get(id).copied().unwrap_or(0) <= 1,
            "job {id} completed twice"
        );
        if pids.len() > 1 {
            duplicates += pids.len() - 1;
            for pid in &pids[..pids.len() - 1] {
                assert!(
                    killed_pids.contains(pid),
                    "job {id} re-ran although its earlier worker {pid} was not killed"
                );
            }
        }
    }
    eprintln!(
        "torture: {} kills, {} jobs, {} duplicate executions (all in flight at a kill), {:.1}s",
        killed_pids.len(),
        jobs.len(),
        duplicates,
        elapsed.as_secs_f64()
    );
}
