//! Benchmarks of the filesystem backend (not a test): lifecycle throughput
//! per durability mode against a raw-syscall floor, claim latency with many
//! pending jobs, and open time and memory with many jobs on disk.
//!
//! `cargo run --release -p semiont-jobs-store-fs --example fs_bench -- [--jobs N] [--pending N] [--scale N,N,...] [--runs N]`
//!
//! Prints one JSON object per measurement.

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use semiont_jobs_model::{Job, JobId, JobStatus, NewJob, Timestamp};
use semiont_jobs_store::{ClaimRequest, Durability, Expect, JobStore, TypeFilter, WorkerInfo};
use semiont_jobs_store_fs::{FsOptions, FsStore};
use serde_json::json;

fn noop() -> Job {
    NewJob::custom("noop", "bench", json!({}))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::now(), 3)
        .unwrap()
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The floor: the minimal file operations of one lifecycle, no store.
fn floor(dir: &Path, n: usize) -> (f64, f64, f64) {
    for sub in ["tmp", "pending", "running", "complete"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let jobs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|_| {
            let j = noop();
            (format!("{}.json", j.id), j.to_json())
        })
        .collect();
    let t = Instant::now();
    for (name, bytes) in &jobs {
        let tmp = dir.join("tmp").join(name);
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.join("pending").join(name)).unwrap();
    }
    let create = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (name, _) in &jobs {
        std::fs::rename(
            dir.join("pending").join(name),
            dir.join("running").join(name),
        )
        .unwrap();
    }
    let claim = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for (name, bytes) in &jobs {
        let tmp = dir.join("tmp").join(name);
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.join("complete").join(name)).unwrap();
        std::fs::remove_file(dir.join("running").join(name)).unwrap();
    }
    let complete = t.elapsed().as_secs_f64();
    (create, claim, complete)
}

async fn lifecycle(dir: &Path, n: usize, mode: &str) -> (f64, f64, f64) {
    let durability = if mode == "none" {
        Durability::None
    } else {
        Durability::Fsync
    };
    let watch = arg("--no-watch").is_none() && !std::env::args().any(|a| a == "--no-watch");
    let store = FsStore::open(
        dir,
        FsOptions::default().durability(durability).watch(watch),
    )
    .await
    .unwrap();
    let jobs: Vec<Job> = (0..n).map(|_| noop()).collect();
    let t = Instant::now();
    if mode == "batch" {
        for chunk in jobs.chunks(256) {
            store.create_batch(chunk).await.unwrap();
        }
    } else {
        for j in &jobs {
            store.create(j).await.unwrap();
        }
    }
    let create = t.elapsed().as_secs_f64();
    store
        .register_worker(&WorkerInfo {
            id: "bench".into(),
            lease: Duration::from_secs(60),
        })
        .await
        .unwrap();
    let req = ClaimRequest {
        types: TypeFilter::Any,
        worker_id: "bench".into(),
        now: Timestamp::now(),
        lease: Duration::from_secs(60),
    };
    let mut claim = 0.0;
    let mut complete = 0.0;
    loop {
        let t = Instant::now();
        let Some(job) = store.claim(&req).await.unwrap() else {
            break;
        };
        claim += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut done = job.clone();
        done.status = JobStatus::Complete;
        done.completed_at = Some(Timestamp::now());
        store
            .transition(Expect::running(job.attempt), &done)
            .await
            .unwrap();
        complete += t.elapsed().as_secs_f64();
    }
    (create, claim, complete)
}

async fn claim_latency(dir: &Path, pending: usize) {
    let store = FsStore::open(dir, FsOptions::default().durability(Durability::None))
        .await
        .unwrap();
    let jobs: Vec<Job> = (0..pending).map(|_| noop()).collect();
    for chunk in jobs.chunks(1000) {
        store.create_batch(chunk).await.unwrap();
    }
    let req = ClaimRequest {
        types: TypeFilter::Any,
        worker_id: "bench".into(),
        now: Timestamp::now(),
        lease: Duration::from_secs(60),
    };
    let mut claims = Vec::new();
    let mut stats = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        store.claim(&req).await.unwrap().unwrap();
        claims.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        store.stats().await.unwrap();
        stats.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut sorted = claims.clone();
    sorted.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{}",
        json!({"bench": "claim_latency", "pending": pending, "claim_p50_us": median(claims), "claim_p99_us": sorted[sorted.len() * 99 / 100], "stats_p50_us": median(stats)})
    );
}

/// Writes `n` complete jobs straight into `complete/` (fast set-up).
fn populate(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("complete")).unwrap();
    for _ in 0..n {
        let mut j = noop();
        j.status = JobStatus::Complete;
        j.completed_at = Some(Timestamp::now());
        j.attempt = 1;
        std::fs::write(
            dir.join("complete").join(format!("{}.json", j.id)),
            j.to_json(),
        )
        .unwrap();
    }
}

/// Child mode: open `dir` and report time and memory.
async fn open_only(dir: PathBuf) {
    let before = rss_kb();
    let t = Instant::now();
    let store = FsStore::open(&dir, FsOptions::default()).await.unwrap();
    let open_s = t.elapsed().as_secs_f64();
    let after = rss_kb();
    let t = Instant::now();
    let stats = store.stats().await.unwrap();
    let stats_us = t.elapsed().as_secs_f64() * 1e6;
    let t = Instant::now();
    let page = store
        .list(
            &semiont_jobs_model::JobFilter::default()
                .status(JobStatus::Complete)
                .limit(10),
        )
        .await
        .unwrap();
    let list_us = t.elapsed().as_secs_f64() * 1e6;
    let id = page.jobs[0].id.clone();
    let t = Instant::now();
    store.get(&id).await.unwrap();
    let get_us = t.elapsed().as_secs_f64() * 1e6;
    println!(
        "{}",
        json!({"bench": "open", "jobs": stats.total(), "open_s": open_s, "rss_mb": after as f64 / 1024.0, "rss_growth_mb": (after - before) as f64 / 1024.0, "stats_us": stats_us, "list10_us": list_us, "get_us": get_us})
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if let Some(dir) = arg("--open-only") {
        open_only(PathBuf::from(dir)).await;
        return;
    }
    if let Some(dir) = arg("--populate") {
        let n = arg("--jobs").map_or(100_000, |s| s.parse().unwrap());
        populate(Path::new(&dir), n);
        return;
    }
    let n: usize = arg("--jobs").map_or(10_000, |s| s.parse().unwrap());
    let runs: usize = arg("--runs").map_or(3, |s| s.parse().unwrap());
    let pending: usize = arg("--pending").map_or(100_000, |s| s.parse().unwrap());
    let scales: Vec<usize> = arg("--scale")
        .unwrap_or_else(|| "100000".into())
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    // Default: under the target directory (on some machines /tmp is much
    // slower at creating files than the filesystem the build lives on).
    let base = std::env::var("BENCH_DIR").map_or_else(
        |_| PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&base).unwrap();
    let root = tempfile::tempdir_in(base).unwrap();

    let mut floors = Vec::new();
    for r in 0..runs {
        let (c, k, d) = floor(&root.path().join(format!("floor-{r}")), n);
        floors.push((c, k, d));
    }
    let floor_life = median(
        floors
            .iter()
            .map(|(c, k, d)| n as f64 / (c + k + d))
            .collect(),
    );
    println!(
        "{}",
        json!({"bench": "floor", "jobs": n,
            "create_per_s": median(floors.iter().map(|f| n as f64 / f.0).collect()),
            "claim_per_s": median(floors.iter().map(|f| n as f64 / f.1).collect()),
            "complete_per_s": median(floors.iter().map(|f| n as f64 / f.2).collect()),
            "lifecycle_per_s": floor_life})
    );
    for mode in ["none", "fsync", "batch"] {
        let mut res = Vec::new();
        let runs_here = if mode == "none" { runs } else { 1 };
        let jobs_here = if mode == "none" { n } else { n.min(2_000) };
        for r in 0..runs_here {
            res.push(lifecycle(&root.path().join(format!("{mode}-{r}")), jobs_here, mode).await);
        }
        let life = median(
            res.iter()
                .map(|(c, k, d)| jobs_here as f64 / (c + k + d))
                .collect(),
        );
        println!(
            "{}",
            json!({"bench": "lifecycle", "durability": mode, "jobs": jobs_here,
                "create_per_s": median(res.iter().map(|f| jobs_here as f64 / f.0).collect()),
                "claim_per_s": median(res.iter().map(|f| jobs_here as f64 / f.1).collect()),
                "complete_per_s": median(res.iter().map(|f| jobs_here as f64 / f.2).collect()),
                "lifecycle_per_s": life,
                "of_floor": if mode == "none" { Some(life / floor_life) } else { None }})
        );
    }
    if pending > 0 {
        claim_latency(&root.path().join("latency"), pending).await;
        claim_latency(&root.path().join("latency-small"), 1_000.max(pending / 100)).await;
    }
    for scale in scales {
        let dir = root.path().join(format!("scale-{scale}"));
        populate(&dir, scale);
        // Warm the page cache the same way for every run, then open in a
        // fresh process so its memory is measured alone.
        let exe = std::env::current_exe().unwrap();
        for _ in 0..2 {
            let out = std::process::Command::new(&exe)
                .arg("--open-only")
                .arg(&dir)
                .output()
                .unwrap();
            print!("{}", String::from_utf8_lossy(&out.stdout));
        }
    }
}
