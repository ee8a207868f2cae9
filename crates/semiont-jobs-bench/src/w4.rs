//! W4 contention: J pre-created `noop` jobs, P `semiont-jobs work --types
//! noop --exit-when-idle` processes on the same data dir, started together
//! (each opens the queue, says `ready`, and waits for `go`). Executions per
//! id come from the workers' exec logs; every job must end complete on disk
//! (read back from `complete/`); `drain_s` runs from `go` to the last
//! `completedAt`, `wall_s` from spawning to the last exit.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use semiont_jobs::model::{Job, JobStatus};
use semiont_jobs::store::Durability;
use serde_json::{json, Value};

use super::{count_dir, loadavg1, noop_job, r3, wall_nanos, Cpu, Ctx, Mode};
use crate::data::{App, Create};

/// Children still running after this long are killed (the run reports it).
const TIMEOUT: Duration = Duration::from_secs(300);

/// How often a unit is tried when a worker process fails before `ready`.
const START_ATTEMPTS: usize = 3;

/// A worker process exited before it said `ready` (the unit is retried on
/// fresh data, and the result says how often that happened).
#[derive(Debug)]
pub struct NotReady(pub String);

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotReady {}

/// Runs W4 with `p` processes and `j` jobs; returns its result line. A unit
/// in which a worker fails to start is run again on fresh data (up to three
/// times); `start_failures` counts those and quotes the first error.
pub async fn run(ctx: &Ctx, p: usize, j: usize, mode: Mode) -> anyhow::Result<Value> {
    let mut failures = Vec::new();
    for _ in 0..START_ATTEMPTS {
        match run_once(ctx, p, j, mode).await {
            Ok(mut row) => {
                row["start_failures"] = json!(failures.len());
                if let Some(first) = failures.first() {
                    row["start_failure"] = json!(first);
                }
                return Ok(row);
            }
            Err(e) if e.downcast_ref::<NotReady>().is_some() => {
                super::progress(format!("W4 procs={p}: {e}; starting the unit again"));
                failures.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    anyhow::bail!(
        "W4 procs={p}: a worker failed to start {START_ATTEMPTS} times: {}",
        failures.join("; ")
    )
}

async fn run_once(ctx: &Ctx, p: usize, j: usize, mode: Mode) -> anyhow::Result<Value> {
    super::progress(format!(
        "W4 procs={p} jobs={j} durability={}",
        mode.as_str()
    ));
    let dir = ctx.new_dir(&format!("w4-p{p}"))?;
    let mut ids: Vec<String> = Vec::with_capacity(j);
    {
        let app = App::open_at(&dir, Durability::None, Create::Yes).await?;
        while ids.len() < j {
            let from = ids.len();
            let k = 1000.min(j - from);
            let jobs = app
                .queue
                .create_jobs((from..from + k).map(noop_job))
                .await?;
            ids.extend(jobs.into_iter().map(|job| job.id.to_string()));
        }
        app.queue.close().await?;
    }
    // The previous unit's deletes (durable transitions free an inode each)
    // would slow this unit's creates (see `Ctx::settle`).
    let probe_us = ctx.settle(&dir);

    let load0 = loadavg1();
    let cpu0 = Cpu::now();
    let spawned = Instant::now();
    let (mut children, logs) = start_workers(&dir, p, mode, &["--exit-when-idle"]).await?;
    let go_nanos = wall_nanos();
    release(&mut children)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut codes: Vec<Option<i32>> = vec![None; p];
    let mut timed_out = false;
    loop {
        let mut running = 0;
        for (i, child) in children.iter_mut().enumerate() {
            if codes[i].is_none() {
                match child.try_wait()? {
                    Some(status) => codes[i] = Some(status.code().unwrap_or(-1)),
                    None => running += 1,
                }
            }
        }
        if running == 0 {
            break;
        }
        if Instant::now() > deadline {
            timed_out = true;
            kill_all(&mut children);
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let wall_s = spawned.elapsed().as_secs_f64();
    let cpu = Cpu::now().since(cpu0);

    let (counts, per_process) = read_exec_logs(&logs, j);
    let jobs_dir = dir.join("jobs");
    let mut complete_ok: HashSet<String> = HashSet::with_capacity(j);
    let mut corrupt = 0;
    let mut last_completed_ms = 0i64;
    let mut complete_files = 0;
    let mut finished: Vec<Option<Job>> = Vec::new();
    let db_stats = if crate::data::DATABASE.get().is_some() {
        let app = App::open_at(&dir, Durability::None, Create::No).await?;
        loop {
            let filter = semiont_jobs::model::JobFilter::default()
                .status(JobStatus::Complete)
                .limit(10_000)
                .offset(finished.len());
            let page = app.queue.list_jobs(&filter).await?;
            if page.jobs.is_empty() {
                break;
            }
            finished.extend(page.jobs.into_iter().map(Some));
        }
        let stats = app.queue.get_stats().await?;
        app.queue.close().await?;
        Some(stats)
    } else {
        for entry in std::fs::read_dir(jobs_dir.join("complete"))? {
            let entry = entry?;
            finished.push(
                std::fs::read(entry.path())
                    .ok()
                    .and_then(|b| Job::from_json(&b).ok()),
            );
        }
        None
    };
    for job in finished {
        complete_files += 1;
        match job {
            Some(job) if job.status == JobStatus::Complete => {
                if let Some(at) = job.completed_at {
                    last_completed_ms = last_completed_ms.max(at.as_millis());
                }
                complete_ok.insert(job.id.to_string());
            }
            _ => corrupt += 1,
        }
    }
    let final_dirs = match db_stats {
        Some(stats) => json!({
            "pending": stats.pending,
            "running": stats.running,
            "complete": complete_files,
            "complete_corrupt": corrupt,
        }),
        None => json!({
            "pending": count_dir(&jobs_dir.join("pending")),
            "running": count_dir(&jobs_dir.join("running")),
            "complete": complete_files,
            "complete_corrupt": corrupt,
        }),
    };

    let total: u32 = counts.values().sum();
    let drain_s = (last_completed_ms as f64 * 1e6 - go_nanos as f64) / 1e9;
    Ok(json!({
        "workload": "W4",
        "procs": p,
        "jobs": j,
        "durability": mode.as_str(),
        "completed": !timed_out,
        "timeout_s": TIMEOUT.as_secs(),
        "total_executions": total,
        "distinct_executed": counts.len(),
        "duplicates": counts.values().filter(|&&c| c > 1).count(),
        "extra_executions": total as usize - counts.len(),
        "lost": ids.iter().filter(|id| !complete_ok.contains(*id)).count(),
        "never_executed": ids.iter().filter(|id| !counts.contains_key(*id)).count(),
        "wall_s": r3(wall_s),
        "drain_s": r3(drain_s),
        "jobs_per_s": (j as f64 / drain_s).round(),
        "per_process_executions": per_process,
        "exit_codes": codes,
        "final_dirs": final_dirs,
        "children_cpu_user_s": cpu.child_user,
        "children_cpu_sys_s": cpu.child_sys,
        "worker_log_level": "warn",
        "idle_exit_rule": "--exit-when-idle: no pending job of its types and none in flight, checked on every queue event and every 200 ms",
        "loadavg1_start": load0,
        "loadavg1_end": loadavg1(),
        "create_probe_us_before": r3(probe_us),
    }))
}

/// Starts `p` `semiont-jobs work --types noop --gate --exec-log` processes
/// (plus `extra` arguments) on `dir` and waits until each has opened the
/// queue and said `ready`; returns them and their exec logs. A worker that
/// exits first is a [`NotReady`] error (the others are killed).
pub async fn start_workers(
    dir: &std::path::Path,
    p: usize,
    mode: Mode,
    extra: &[&str],
) -> anyhow::Result<(Vec<Child>, Vec<std::path::PathBuf>)> {
    let logs: Vec<_> = (0..p)
        .map(|i| dir.join(format!("exec-log-{i}.txt")))
        .collect();
    let mut children: Vec<Child> = Vec::with_capacity(p);
    for (i, log) in logs.iter().enumerate() {
        let stderr = std::fs::File::create(dir.join(format!("worker-{i}.stderr")))?;
        let child = super::work_command(dir, mode)
            .args(["work", "--types", "noop"])
            .args(extra)
            .args(["--gate", "--exec-log"])
            .arg(log)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| super::cannot_start("a worker process"));
        match child {
            Ok(child) => children.push(child),
            Err(e) => {
                kill_all(&mut children);
                return Err(e);
            }
        }
    }
    // Wait until every worker has opened the queue.
    let mut readers = Vec::new();
    for child in &mut children {
        let out = child.stdout.take().context("no stdout of a worker")?;
        readers.push(tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(out).read_line(&mut line).map(|_| line)
        }));
    }
    for (i, r) in readers.into_iter().enumerate() {
        let line = match tokio::time::timeout(Duration::from_secs(60), r).await {
            Ok(Ok(Ok(line))) => line,
            _ => String::new(),
        };
        if line.trim() != "ready" {
            kill_all(&mut children);
            let err =
                std::fs::read_to_string(dir.join(format!("worker-{i}.stderr"))).unwrap_or_default();
            return Err(NotReady(format!(
                "worker {i} of {p} was not ready within 60 s: {}",
                err.trim()
            ))
            .into());
        }
    }
    Ok((children, logs))
}

/// Tells gated workers to start claiming.
pub fn release(children: &mut [Child]) -> anyhow::Result<()> {
    for child in children {
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(b"go\n")?;
        }
    }
    Ok(())
}

/// Executions per job id from the workers' exec logs, and per process.
pub fn read_exec_logs(
    logs: &[std::path::PathBuf],
    expected: usize,
) -> (HashMap<String, u32>, Vec<usize>) {
    let mut counts: HashMap<String, u32> = HashMap::with_capacity(expected);
    let mut per_process = Vec::with_capacity(logs.len());
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let mut n = 0;
        for line in text.lines() {
            if let Some((id, _)) = line.split_once('\t') {
                *counts.entry(id.to_owned()).or_default() += 1;
                n += 1;
            }
        }
        per_process.push(n);
    }
    (counts, per_process)
}

/// Kills and reaps every child.
pub fn kill_all(children: &mut [Child]) {
    for child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
}
