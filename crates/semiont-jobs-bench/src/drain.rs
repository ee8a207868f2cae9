//! Many-process throughput, the shapes users compare PostgreSQL queues by:
//!
//! - `burndown` (River's benchmark): N `noop` jobs inserted first in
//!   `create_jobs` batches (timed apart, as the batch-enqueue rate), then P
//!   `semiont-jobs work --concurrency C --exit-when-idle` processes drain
//!   them. `drain_s` runs from `go` until the queue's counters show every
//!   job complete.
//! - `lifecycle`: P gated worker processes (concurrency C) wait; at `go`,
//!   K producer tasks of this process create N jobs one `create_job` call
//!   at a time while the workers drain them; `total_s` runs from `go` until
//!   every job is complete (create + claim + complete of each job), then the
//!   workers are stopped with SIGTERM.
//!
//! Executions per job come from the workers' exec logs; the end state from
//! the queue's counters (every job complete, none pending or running).

use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::Context;
use semiont_jobs::queue::JobQueue;
use serde_json::{json, Value};

use super::w4::{kill_all, read_exec_logs, release, start_workers};
use super::{loadavg1, noop_job, r3, Cpu, Ctx, Mode};
use crate::data::{App, Create};

/// A unit not finished after this long is stopped (and reported).
const TIMEOUT: Duration = Duration::from_secs(1800);

/// How the jobs reach the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// Inserted before the workers start (`burndown`).
    Before,
    /// Created by this many producers while the workers run (`lifecycle`).
    During(usize),
}

/// One unit: `jobs` jobs, `procs` worker processes of `concurrency` each.
#[derive(Clone, Copy, Debug)]
pub struct Unit {
    /// Jobs.
    pub jobs: usize,
    /// Worker processes.
    pub procs: usize,
    /// Jobs in flight per process (`work --concurrency`).
    pub concurrency: usize,
    /// Pre-inserted, or created during the run.
    pub feed: Feed,
    /// Jobs per `create_jobs` call when inserting before.
    pub batch_size: usize,
}

/// Runs one unit; returns its result line.
pub async fn run(ctx: &Ctx, unit: Unit, mode: Mode) -> anyhow::Result<Value> {
    let name = match unit.feed {
        Feed::Before => "burndown",
        Feed::During(_) => "lifecycle",
    };
    super::progress(format!(
        "{name} procs={} concurrency={} jobs={} durability={}",
        unit.procs,
        unit.concurrency,
        unit.jobs,
        mode.as_str()
    ));
    let dir = ctx.new_dir(&format!("{name}-p{}", unit.procs))?;
    let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
    let queue = app.queue;

    let mut insert_s = None;
    if unit.feed == Feed::Before {
        let t = Instant::now();
        let mut made = 0;
        while made < unit.jobs {
            let k = unit.batch_size.min(unit.jobs - made);
            queue.create_jobs((made..made + k).map(noop_job)).await?;
            made += k;
            if made % 100_000 < k {
                super::progress(format!("{name}: {made} jobs inserted"));
            }
        }
        insert_s = Some(t.elapsed().as_secs_f64());
    }

    let concurrency = unit.concurrency.to_string();
    let mut extra = vec!["--concurrency", concurrency.as_str()];
    if unit.feed == Feed::Before {
        extra.push("--exit-when-idle");
    }
    let load0 = loadavg1();
    let cpu0 = Cpu::now();
    let (mut children, logs) = start_workers(&dir, unit.procs, mode, &extra).await?;
    let go = Instant::now();
    release(&mut children)?;

    let producers = match unit.feed {
        Feed::Before => None,
        Feed::During(k) => Some(spawn_producers(&queue, unit.jobs, k.max(1))),
    };
    let outcome = wait_complete(&queue, unit.jobs, go).await;
    let mut create_s = None;
    if let Some(producers) = producers {
        create_s = Some(producers.await.context("a producer task failed")??);
    }
    let total_s = go.elapsed().as_secs_f64();
    let (done_at, timed_out) = match outcome {
        Ok(at) => (at, false),
        Err(at) => (at, true),
    };
    let codes = stop(&mut children).await;
    let cpu = Cpu::now().since(cpu0);
    let stats = queue.get_stats().await?;
    queue.close().await?;

    let (counts, per_process) = read_exec_logs(&logs, unit.jobs);
    let executions: u64 = counts.values().map(|&c| u64::from(c)).sum();
    let drain_s = done_at;
    let mut row = json!({
        "workload": name,
        "procs": unit.procs,
        "concurrency": unit.concurrency,
        "jobs": unit.jobs,
        "durability": mode.as_str(),
        "completed": !timed_out,
        "timeout_s": TIMEOUT.as_secs(),
        "total_executions": executions,
        "distinct_executed": counts.len(),
        "duplicates": counts.values().filter(|&&c| c > 1).count(),
        "never_executed": unit.jobs.saturating_sub(counts.len()),
        "final": { "pending": stats.pending, "running": stats.running, "complete": stats.complete, "failed": stats.failed },
        "lost": unit.jobs.saturating_sub(usize::try_from(stats.complete).unwrap_or(usize::MAX)),
        "drain_s": r3(drain_s),
        "jobs_per_s": (unit.jobs as f64 / drain_s).round(),
        "per_process_executions": per_process,
        "exit_codes": codes,
        "children_cpu_user_s": cpu.child_user,
        "children_cpu_sys_s": cpu.child_sys,
        "bench_cpu_user_s": cpu.user,
        "bench_cpu_sys_s": cpu.sys,
        "loadavg1_start": load0,
        "loadavg1_end": loadavg1(),
    });
    let obj = row.as_object_mut().context("a row is an object")?;
    if let Some(s) = insert_s {
        obj.insert("batch_size".into(), json!(unit.batch_size));
        obj.insert("insert_s".into(), json!(r3(s)));
        obj.insert(
            "insert_jobs_per_s".into(),
            json!((unit.jobs as f64 / s).round()),
        );
    }
    if let Some(s) = create_s {
        obj.insert("producers".into(), json!(unit.feed_producers()));
        obj.insert("create_s".into(), json!(r3(s)));
        obj.insert(
            "create_jobs_per_s".into(),
            json!((unit.jobs as f64 / s).round()),
        );
        obj.insert("total_s".into(), json!(r3(total_s)));
    }
    Ok(row)
}

impl Unit {
    fn feed_producers(&self) -> usize {
        match self.feed {
            Feed::Before => 0,
            Feed::During(k) => k,
        }
    }
}

/// `k` tasks creating `n` jobs between them, one call each; the task's
/// result is the time until the last create returned.
fn spawn_producers(
    queue: &JobQueue,
    n: usize,
    k: usize,
) -> tokio::task::JoinHandle<anyhow::Result<f64>> {
    let queue = queue.clone();
    tokio::spawn(async move {
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for p in 0..k {
            let queue = queue.clone();
            tasks.spawn(async move {
                let mut i = p;
                while i < n {
                    queue.create_job(noop_job(i)).await?;
                    i += k;
                }
                anyhow::Ok(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r.context("a producer panicked")??;
        }
        Ok(t.elapsed().as_secs_f64())
    })
}

/// Polls the queue's counters until `n` jobs are complete; returns the
/// seconds since `go` (as `Err` when the timeout passed first).
async fn wait_complete(queue: &JobQueue, n: usize, go: Instant) -> Result<f64, f64> {
    let n = u64::try_from(n).unwrap_or(u64::MAX);
    loop {
        if let Ok(stats) = queue.get_stats().await {
            if stats.complete >= n {
                return Ok(go.elapsed().as_secs_f64());
            }
        }
        if go.elapsed() > TIMEOUT {
            return Err(go.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Stops the workers: SIGTERM (graceful), then waits up to 30 s, then
/// kills; returns their exit codes.
pub(crate) async fn stop(children: &mut [Child]) -> Vec<Option<i32>> {
    for child in children.iter() {
        if let Ok(pid) = i32::try_from(child.id()) {
            // SAFETY: signalling a child we spawned and have not reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut codes = vec![None; children.len()];
    loop {
        let mut running = false;
        for (i, child) in children.iter_mut().enumerate() {
            if codes[i].is_none() {
                match child.try_wait() {
                    Ok(Some(status)) => codes[i] = Some(status.code().unwrap_or(-1)),
                    Ok(None) => running = true,
                    Err(_) => codes[i] = Some(-1),
                }
            }
        }
        if !running {
            return codes;
        }
        if Instant::now() > deadline {
            kill_all(children);
            return codes;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
