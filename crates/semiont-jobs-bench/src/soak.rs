//! PostgreSQL under sustained load, and at scale.
//!
//! - `soak`: N `noop` jobs through the queue with retention on. This
//!   process creates them in `create_jobs` batches, keeping at most
//!   [`BACKLOG`] pending; P `semiont-jobs work --concurrency C` processes
//!   run them and sweep finished jobs older than [`RETENTION`] every
//!   [`SWEEP`]. At every tenth of the jobs a `soak-interval` row gives the
//!   throughput of that tenth and the size, live and dead rows of `jobs`
//!   and `jobs_done`; the `soak` row at the end compares the last tenth's
//!   throughput with the first's.
//! - `pgscale`: M finished jobs inserted (`create_batch` of finished jobs,
//!   as `copy` does), then the timings W2 takes on the filesystem: `list`
//!   (first page of the complete jobs, and of one user's), `stats`, `get`,
//!   and a retention sweep with nothing to delete.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use semiont_jobs::model::{JobFilter, JobId, Timestamp};
use serde_json::{json, Value};

use super::w4::{kill_all, read_exec_logs, release, start_workers};
use super::{loadavg1, noop_job, r3, Ctx, Mode};
use crate::data::{schema_for, App, Create, DATABASE};

/// Most jobs pending at once during a soak.
const BACKLOG: u64 = 20_000;
/// The soak's retention period.
const RETENTION: &str = "30s";
/// How often the soak's workers sweep.
const SWEEP: &str = "5s";

/// Runs the soak; returns its rows (one per tenth, then the summary).
pub async fn soak(
    ctx: &Ctx,
    n: usize,
    procs: usize,
    concurrency: usize,
    mode: Mode,
) -> anyhow::Result<Vec<Value>> {
    let url = DATABASE
        .get()
        .context("the soak runs on PostgreSQL: give --database-url")?;
    super::progress(format!(
        "soak jobs={n} procs={procs} concurrency={concurrency} retention={RETENTION} sweep every {SWEEP}"
    ));
    let dir = ctx.new_dir("soak")?;
    let schema = schema_for(&dir);
    let config = dir.join("soak.toml");
    std::fs::write(
        &config,
        format!(
            "[retention]\nperiod = \"{RETENTION}\"\nsweep = true\nsweep_interval = \"{SWEEP}\"\n"
        ),
    )?;
    let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
    let queue = app.queue;
    let c = concurrency.to_string();
    let config_arg = config.display().to_string();
    let (mut children, logs) = start_workers(
        &dir,
        procs,
        mode,
        &["--concurrency", &c, "--config", &config_arg],
    )
    .await?;
    release(&mut children)?;
    let n64 = u64::try_from(n)?;
    let tenth = (n64 / 10).max(1);
    let go = Instant::now();
    let mut made: u64 = 0;
    let mut rows = Vec::new();
    let mut mark = (go, 0u64);
    let mut rates = Vec::new();
    loop {
        let stats = queue.get_stats().await?;
        let open = stats.pending + stats.running;
        let done = made.saturating_sub(open);
        if done >= mark.1 + tenth || (done >= n64 && mark.1 < n64) {
            let now = Instant::now();
            let rate = (done - mark.1) as f64 / (now - mark.0).as_secs_f64();
            rates.push(rate);
            let tables = semiont_jobs::store_pg::table_stats(url, &schema).await?;
            let table = |name: &str| {
                tables
                    .iter()
                    .find(|t| t.table == name)
                    .map(|t| {
                        json!({
                            "total_mib": r3(t.total_bytes as f64 / 1048576.0),
                            "index_mib": r3(t.index_bytes as f64 / 1048576.0),
                            "live": t.live,
                            "dead": t.dead,
                            "autovacuums": t.autovacuums,
                        })
                    })
                    .unwrap_or(Value::Null)
            };
            let row = json!({
                "workload": "soak-interval",
                "done": done,
                "elapsed_s": r3(go.elapsed().as_secs_f64()),
                "jobs_per_s": rate.round(),
                "pending": stats.pending,
                "finished_kept": stats.complete + stats.failed + stats.cancelled,
                "jobs": table("jobs"),
                "jobs_done": table("jobs_done"),
            });
            super::progress(format!(
                "soak: {done} done, {:.0} jobs/s, jobs_done {}",
                rate, row["jobs_done"]
            ));
            rows.push(row);
            mark = (now, done);
        }
        if done >= n64 {
            break;
        }
        if go.elapsed() > Duration::from_secs(3600) {
            kill_all(&mut children);
            bail!("the soak did not finish within an hour ({done} of {n} done)");
        }
        if made < n64 && open < BACKLOG {
            let k = 1000.min(n64 - made);
            let from = usize::try_from(made)?;
            queue
                .create_jobs((from..from + usize::try_from(k)?).map(noop_job))
                .await?;
            made += k;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let total_s = go.elapsed().as_secs_f64();
    super::drain::stop(&mut children).await;
    let (counts, _) = read_exec_logs(&logs, n);
    let first = rates.first().copied().unwrap_or(f64::NAN);
    let last = rates.last().copied().unwrap_or(f64::NAN);
    let sizes: Vec<f64> = rows
        .iter()
        .filter_map(|r| r["jobs_done"]["total_mib"].as_f64())
        .collect();
    let stats = queue.get_stats().await?;
    queue.close().await?;
    rows.push(json!({
        "workload": "soak",
        "jobs": n,
        "procs": procs,
        "concurrency": concurrency,
        "durability": mode.as_str(),
        "retention": RETENTION,
        "sweep_interval": SWEEP,
        "total_s": r3(total_s),
        "jobs_per_s": (n as f64 / total_s).round(),
        "first_tenth_jobs_per_s": first.round(),
        "last_tenth_jobs_per_s": last.round(),
        "last_vs_first": r3(last / first),
        "jobs_done_mib_max": sizes.iter().copied().fold(0.0, f64::max),
        "jobs_done_mib_last": sizes.last().copied(),
        "executions": counts.values().map(|&c| u64::from(c)).sum::<u64>(),
        "duplicates": counts.values().filter(|&&c| c > 1).count(),
        "never_executed": n.saturating_sub(counts.len()),
        "final": { "pending": stats.pending, "running": stats.running, "failed": stats.failed, "complete_kept": stats.complete },
        "loadavg1_end": loadavg1(),
    }));
    Ok(rows)
}

/// Runs the PostgreSQL scale check with `m` finished jobs.
pub async fn scale(ctx: &Ctx, m: usize, mode: Mode) -> anyhow::Result<Value> {
    if DATABASE.get().is_none() {
        bail!("pgscale runs on PostgreSQL: give --database-url");
    }
    super::progress(format!("pgscale M={m}"));
    let dir = ctx.new_dir(&format!("pgscale-{m}"))?;
    let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
    let queue = &app.queue;
    let now = Timestamp::now().as_millis();
    let base = now - m as i64 - 60_000;
    let t = Instant::now();
    let mut newest = None;
    let mut probes = Vec::new();
    let mut i = 0usize;
    while i < m {
        let k = 5000.min(m - i);
        let jobs = (i..i + k)
            .map(|j| {
                let at = base + j as i64;
                super::w2::complete_job(JobId::generate_at(Timestamp::from_millis(at)), at, now)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if probes.len() < 210 {
            probes.extend(jobs.iter().step_by(97).map(|j| j.id.clone()));
        }
        newest = jobs.last().map(|j| j.id.clone());
        queue.store().create_batch(&jobs).await?;
        i += k;
        if i % 200_000 < k {
            super::progress(format!("pgscale: {i} finished jobs inserted"));
        }
    }
    let insert_s = t.elapsed().as_secs_f64();
    let newest = newest.context("no jobs")?;
    let super::w2::Timings {
        list,
        stats,
        getjob,
        cleanup,
    } = super::w2::timings(queue, m, &newest, &probes).await?;
    let by_user = &JobFilter::default()
        .user("bench-user@example.com")
        .limit(10);
    let list_user = super::w2::sample(21, 10, || async move {
        let page = queue.list_jobs(by_user).await?;
        if page.jobs.len() != m.min(10) || page.total != m {
            bail!(
                "list by user returned {} jobs of {}",
                page.jobs.len(),
                page.total
            );
        }
        Ok(())
    })
    .await?;
    queue.close().await?;
    let f = |xs: &[f64]| r3(super::median(xs));
    Ok(json!({
        "workload": "pgscale",
        "m": m,
        "durability": mode.as_str(),
        "stat": "median of 21 samples (5 for cleanup); ms per call",
        "insert_s": r3(insert_s),
        "insert_jobs_per_s": (m as f64 / insert_s).round(),
        "list_ms": f(&list),
        "list_user_ms": f(&list_user),
        "stats_ms": f(&stats),
        "getjob_ms": f(&getjob),
        "cleanup_ms": f(&cleanup),
        "loadavg1_end": loadavg1(),
    }))
}
