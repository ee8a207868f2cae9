//! Open time of a jobs directory by document layout (not a test): the same
//! N pending jobs written flat and nested (the TypeScript package's
//! layout), each directory opened R times without an index snapshot (every
//! file is probed), median index time printed as one JSON object per
//! layout; and the time `Job::from_json` takes per document of each layout.
//!
//! `cargo run --release -p semiont-jobs-store-fs --example layout_open -- [--jobs N] [--runs R]`

#![allow(clippy::print_stdout, reason = "a benchmark prints its results")]

use std::time::Duration;

use std::time::Instant;

use semiont_jobs_model::{Job, JobId, JobLayout, JobStatus, NewJob, Timestamp};
use semiont_jobs_store::{Durability, JobStore};
use semiont_jobs_store_fs::{FsOptions, FsStore};
use serde_json::json;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| v.parse().expect("a number"))
}

fn opts() -> FsOptions {
    FsOptions::default()
        .durability(Durability::None)
        .watch(false)
        .recovery_interval(None)
        .rescan_interval(None)
}

#[tokio::main]
async fn main() {
    let jobs = arg("--jobs", 20_000);
    let runs = arg("--runs", 5);
    let tmp = tempfile::tempdir().unwrap();
    for layout in [JobLayout::Flat, JobLayout::Nested] {
        let dir = tmp.path().join(layout.as_str()).join("jobs");
        let store = FsStore::open(&dir, opts()).await.unwrap();
        let batch: Vec<_> = (0..jobs)
            .map(|i| {
                let mut job = NewJob::detection("bench", format!("doc-{i}"), ["Person"])
                    .into_job(JobId::generate(), Timestamp::now(), 3)
                    .unwrap();
                job.layout = layout;
                job
            })
            .collect();
        store.create_batch(&batch).await.unwrap();
        drop(store);
        let mut times = Vec::new();
        for _ in 0..runs {
            let _ = std::fs::remove_file(dir.join("index.snapshot"));
            let store = FsStore::open(&dir, opts()).await.unwrap();
            let report = store.open_report().clone();
            assert_eq!(report.files_read as usize, jobs);
            let stats = store.stats().await.unwrap();
            assert_eq!((stats.pending as usize, stats.unreadable), (jobs, 0));
            assert_eq!(
                store.get(&batch[0].id).await.unwrap().status,
                JobStatus::Pending
            );
            times.push(report.index_time);
            drop(store);
        }
        let docs: Vec<Vec<u8>> = batch.iter().map(Job::to_json).collect();
        let start = Instant::now();
        for d in &docs {
            assert_eq!(Job::from_json(d).unwrap().layout, layout);
        }
        let parse_us = start.elapsed().as_secs_f64() * 1e6 / docs.len() as f64;
        times.sort();
        let median: Duration = times[times.len() / 2];
        println!(
            "{}",
            json!({
                "measure": "open_without_snapshot",
                "layout": layout.as_str(),
                "jobs": jobs,
                "runs": runs,
                "median_index_ms": (median.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
                "from_json_us_per_doc": (parse_us * 100.0).round() / 100.0,
            })
        );
    }
}
