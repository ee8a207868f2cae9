//! The child-process side of the multi-process tests: when this test binary
//! is started with `SEMIONT_FS_TEST_CHILD` set, `entry` runs one role
//! (crash an operation, drain the queue, or be a torture-test worker);
//! otherwise it does nothing.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use semiont_jobs_model::{Job, JobStatus, Timestamp};
use semiont_jobs_store::{Durability, Expect, Heartbeat, JobStore, WorkerInfo};
use semiont_jobs_store_fs::{fault, FsStore};
use serde_json::Value;

use crate::support::{self, claim_req, finished, CHILD_ENV};

#[test]
fn entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let spec: Value = serde_json::from_str(&spec).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        match spec["mode"].as_str().unwrap() {
            "crash" => crash(&spec).await,
            "drain" => drain(&spec).await,
            "torture" => torture(&spec).await,
            "unique" => unique(&spec).await,
            "threads" => crate::notify::check_watcher_threads(&dir(&spec)).await,
            other => panic!("unknown child mode {other}"),
        }
    });
}

fn dir(spec: &Value) -> PathBuf {
    PathBuf::from(spec["dir"].as_str().unwrap())
}

fn durability(spec: &Value) -> Durability {
    spec["durability"]
        .as_str()
        .unwrap_or("none")
        .parse()
        .unwrap()
}

fn job_of(v: &Value) -> Job {
    Job::from_json(v.to_string().as_bytes()).unwrap()
}

/// Performs one operation with a crash point armed.
async fn crash(spec: &Value) {
    let crash_at = spec["crash"].as_str();
    let before_open = spec["arm_before_open"].as_bool().unwrap_or(false);
    if before_open {
        fault::set_crash_point(crash_at);
    }
    let options = support::opts().durability(durability(spec));
    let store = FsStore::open(dir(spec), options).await.unwrap();
    fault::set_crash_point(crash_at);
    let now = Timestamp::now();
    let op = spec["op"].as_str().unwrap();
    let job = || job_of(&spec["job"]);
    let current = || async { store.get(&job().id).await.unwrap() };
    match op {
        "open" => {}
        "create" => store.create(&job()).await.unwrap(),
        "batch" => {
            let jobs: Vec<Job> = spec["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(job_of)
                .collect();
            store.create_batch(&jobs).await.unwrap();
        }
        "claim" => {
            store
                .register_worker(&WorkerInfo {
                    id: "w-child".into(),
                    lease: Duration::from_secs(30),
                })
                .await
                .unwrap();
            store
                .claim(&claim_req("w-child", now, Duration::from_secs(30)))
                .await
                .unwrap()
                .unwrap();
        }
        "progress" => {
            let mut j = current().await;
            j.progress = Some(serde_json::json!({"percentage": 50}));
            store.update_running(&j).await.unwrap();
        }
        "complete" | "fail" | "cancel-running" => {
            let j = current().await;
            let status = match op {
                "complete" => JobStatus::Complete,
                "fail" => JobStatus::Failed,
                _ => JobStatus::Cancelled,
            };
            let mut done = finished(j.clone(), status);
            if status == JobStatus::Complete {
                done.result = Some(serde_json::json!({"ok": true}));
            }
            store
                .transition(Expect::running(j.attempt), &done)
                .await
                .unwrap();
        }
        "requeue" => {
            let j = current().await;
            let mut back = j.clone();
            back.status = JobStatus::Pending;
            back.retry_count += 1;
            back.worker_id = None;
            store
                .transition(Expect::running(j.attempt), &back)
                .await
                .unwrap();
        }
        "retry" => {
            let j = current().await;
            let mut back = j.clone();
            back.status = JobStatus::Pending;
            back.completed_at = None;
            store
                .transition(Expect::status(JobStatus::Failed), &back)
                .await
                .unwrap();
        }
        "cancel-pending" => {
            let j = current().await;
            store
                .transition(
                    Expect::status(JobStatus::Pending),
                    &finished(j, JobStatus::Cancelled),
                )
                .await
                .unwrap();
        }
        "delete" => {
            store
                .delete(&job().id, Expect::status(JobStatus::Complete))
                .await
                .unwrap();
        }
        "heartbeat" => {
            let j = current().await;
            let worker = j.worker_id.clone().unwrap();
            store
                .register_worker(&WorkerInfo {
                    id: worker.clone(),
                    lease: Duration::from_secs(30),
                })
                .await
                .unwrap();
            let beat = Heartbeat {
                worker_id: worker,
                now,
                held: vec![(j.id.clone(), j.attempt)],
            };
            store.heartbeat(&beat).await.unwrap();
        }
        "recover" => {
            store.recover(now).await.unwrap();
        }
        "checkpoint" => {
            let j = current().await;
            let req = semiont_jobs_store::CheckpointRequest {
                id: j.id.clone(),
                attempt: j.attempt,
                checkpoint: semiont_jobs_model::Checkpoint::unit_done("a"),
                progress: Some(serde_json::json!({"percentage": 50})),
                now,
                lease: Duration::from_secs(30),
            };
            store.checkpoint(&req).await.unwrap();
        }
        other => panic!("unknown op {other}"),
    }
}

/// Races for one unique key: waits for the file `go` to exist, then creates
/// `count` jobs with key `key` from four tasks at once; writes the ids it
/// created to `out`, one per line.
async fn unique(spec: &Value) {
    let store = std::sync::Arc::new(
        FsStore::open(dir(spec), support::opts().durability(durability(spec)))
            .await
            .unwrap(),
    );
    let go = PathBuf::from(spec["go"].as_str().unwrap());
    let key = spec["key"].as_str().unwrap().to_owned();
    let count = spec["count"].as_u64().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !go.exists() {
        assert!(std::time::Instant::now() < deadline, "no go signal");
        std::thread::yield_now();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let store = std::sync::Arc::clone(&store);
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..count / 4 {
                let mut job = support::noop_job();
                job.unique_key = Some(key.clone());
                match store.create(&job).await {
                    Ok(()) => mine.push(job.id.to_string()),
                    Err(e) => assert!(e.unique_holder().is_some(), "{e}"),
                }
            }
            mine
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        created.extend(t.await.unwrap());
    }
    let mut out = std::fs::File::create(spec["out"].as_str().unwrap()).unwrap();
    out.write_all(created.join("\n").as_bytes()).unwrap();
}

/// Drains the queue as one worker; writes each completed id to `out`.
async fn drain(spec: &Value) {
    let store = FsStore::open(dir(spec), support::opts()).await.unwrap();
    let worker = format!(
        "drain-{}-{}",
        std::process::id(),
        Timestamp::now().as_millis()
    );
    store
        .register_worker(&WorkerInfo {
            id: worker.clone(),
            lease: Duration::from_secs(60),
        })
        .await
        .unwrap();
    let mut done = Vec::new();
    while let Some(job) = store
        .claim(&claim_req(
            &worker,
            Timestamp::now(),
            Duration::from_secs(60),
        ))
        .await
        .unwrap()
    {
        store
            .transition(
                Expect::running(job.attempt),
                &finished(job.clone(), JobStatus::Complete),
            )
            .await
            .unwrap();
        done.push(job.id.to_string());
    }
    store.unregister_worker(&worker).await.unwrap();
    let mut out = std::fs::File::create(spec["out"].as_str().unwrap()).unwrap();
    out.write_all(done.join("\n").as_bytes()).unwrap();
}

/// A torture-test worker: logs `start`/`done` records (one `write` each,
/// `O_APPEND`) and drains until nothing is left to do.
async fn torture(spec: &Value) {
    let store = FsStore::open(dir(spec), support::opts()).await.unwrap();
    let worker = format!(
        "torture-{}-{}",
        std::process::id(),
        Timestamp::now().as_millis()
    );
    store
        .register_worker(&WorkerInfo {
            id: worker.clone(),
            lease: Duration::from_secs(60),
        })
        .await
        .unwrap();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(spec["log"].as_str().unwrap())
        .unwrap();
    let mut idle = 0;
    loop {
        let claimed = store
            .claim(&claim_req(
                &worker,
                Timestamp::now(),
                Duration::from_secs(60),
            ))
            .await
            .unwrap();
        let Some(job) = claimed else {
            // Jobs of killed workers come back through recovery.
            store.recover(Timestamp::now()).await.unwrap();
            idle += 1;
            let stats = store.stats().await.unwrap();
            if stats.pending == 0 && stats.running == 0 || idle > 2000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        idle = 0;
        log.write_all(
            format!("start {} {} {}\n", job.id, job.attempt, std::process::id()).as_bytes(),
        )
        .unwrap();
        // The "work": long enough for kills to land mid-job.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let mut done = finished(job.clone(), JobStatus::Complete);
        done.result = Some(serde_json::json!({"by": worker}));
        match store.transition(Expect::running(job.attempt), &done).await {
            Ok(()) => log
                .write_all(
                    format!("done {} {} {}\n", job.id, job.attempt, std::process::id()).as_bytes(),
                )
                .unwrap(),
            Err(e) => log
                .write_all(
                    format!(
                        "lost {} {} {} {e}\n",
                        job.id,
                        job.attempt,
                        std::process::id()
                    )
                    .as_bytes(),
                )
                .unwrap(),
        }
    }
}
