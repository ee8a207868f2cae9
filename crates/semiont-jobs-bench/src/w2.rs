//! W2 scale: M complete jobs on disk (written directly in the storage
//! format, two threads), then in a fresh process: cold open (store open with
//! its recovery pass and index scan, plus queue initialize; the page cache
//! is warm) without an index snapshot (the first open) and with one (the
//! next two), RSS, `list(status=complete, limit=10)`, `stats`, `get(id)` of
//! random ids, and cleanup with nothing to delete. Each figure is the median
//! of several samples; a sample of a sub-millisecond call averages a few
//! calls.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use semiont_jobs::model::{Job, JobFilter, JobId, JobStatus, NewJob, Timestamp};
use serde_json::{json, Value};

use super::{loadavg1, median, peak_rss_mib, r3, reset_peak_rss, rss_mib, Ctx, Mode, Mulberry32};
use crate::data::{App, Create};
use semiont_jobs::queue::JobQueue;

/// Runs W2 at `m` in a child process (a fresh heap for the RSS figures) and
/// prints its result.
pub fn run_in_child(ctx: &Ctx, m: usize, mode: Mode) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find this executable")?;
    let mut cmd = Command::new(exe);
    cmd.args(["--durability", mode.as_str(), "--json", "--workload", "w2"])
        .arg("--scale")
        .arg(m.to_string())
        .arg("--root")
        .arg(&ctx.run_dir)
        .arg("--seed")
        .arg(ctx.seed.to_string())
        .arg("--inner")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("cannot start the W2 process")?;
    let stdout = child.stdout.take().context("no stdout of the W2 process")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Value = serde_json::from_str(&line)
            .with_context(|| format!("the W2 process printed something else than JSON: {line}"))?;
        ctx.emit(&row)?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the W2 process for M={m} failed ({status})");
    }
    Ok(())
}

/// Runs W2 at `m` in this process; returns its result line.
pub async fn run(ctx: &Ctx, m: usize, mode: Mode) -> anyhow::Result<Value> {
    if m == 0 {
        bail!("W2 needs at least one job (--scale)");
    }
    let dir = ctx.new_dir("w2")?;
    // Create the layout, then put M complete jobs in place.
    {
        let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
        app.queue.close().await?;
    }
    super::progress(format!("W2 M={m}: writing {m} complete jobs"));
    let t = Instant::now();
    let ids = populate(&dir.join("jobs").join("complete"), m)?;
    let populate_s = t.elapsed().as_secs_f64();
    // Keep only the ids the measurements use, so the RSS figures are the
    // store's and not this harness's list of M ids.
    let newest = ids[m - 1].clone();
    let mut rng = Mulberry32::new(ctx.seed.wrapping_mul(7919).wrapping_add(m as u32));
    let probes: Vec<JobId> = (0..21 * 10)
        .map(|_| ids[((rng.next_f64() * m as f64) as usize).min(m - 1)].clone())
        .collect();
    drop(ids);
    release_free_memory();
    let load0 = loadavg1();
    let rss_before = rss_mib();
    reset_peak_rss();

    super::progress(format!("W2 M={m}: measuring"));
    // Cold open: three opens, each of a fresh store and queue. The jobs
    // were written behind the store's back, so the first open has no index
    // snapshot (as after a crash, or a first open) and reads every file;
    // closing it writes the snapshot (not timed), which the next two use.
    let snapshot = dir.join("jobs").join("index.snapshot");
    let mut open = Vec::new();
    let mut had_snapshot = Vec::new();
    let mut rss_no_snapshot = 0.0;
    for i in 0..2 {
        had_snapshot.push(snapshot.is_file());
        let t = Instant::now();
        let a = App::open_at(&dir, mode.durability(), Create::No).await?;
        open.push(ms(t.elapsed()));
        if i == 0 {
            rss_no_snapshot = rss_mib();
        }
        let t = Instant::now();
        a.queue.close().await?;
        drop(a);
        if i == 0 {
            super::progress(format!(
                "W2 M={m}: close with snapshot write {:.0} ms",
                ms(t.elapsed())
            ));
        }
    }
    had_snapshot.push(snapshot.is_file());
    let t = Instant::now();
    let app = App::open_at(&dir, mode.durability(), Create::No).await?;
    open.push(ms(t.elapsed()));
    let queue = &app.queue;
    let rss_open = rss_mib();
    if had_snapshot != [false, true, true] {
        bail!("W2 expected no index snapshot at the first open and one at the next two, saw {had_snapshot:?}");
    }

    let Timings {
        list,
        stats,
        getjob,
        cleanup,
    } = timings(queue, m, &newest, &probes).await?;
    let rss_end = rss_mib();
    let peak = peak_rss_mib();
    queue.close().await?;
    drop(app);
    let f = |xs: &[f64]| (median(xs) * 1e6).round() / 1e6;
    Ok(json!({
        "workload": "W2",
        "m": m,
        "durability": mode.as_str(),
        "stat": "median",
        "open_ms": f(&open),
        "open_ms_no_snapshot": r3(open[0]),
        "open_ms_with_snapshot": f(&open[1..]),
        "rss_mib": rss_open,
        "rss_mib_after_no_snapshot_open": rss_no_snapshot,
        "rss_mib_before_open": rss_before,
        "rss_mib_end": rss_end,
        "peak_rss_mib": peak,
        "list_ms": f(&list),
        "stats_ms": f(&stats),
        "getjob_ms": f(&getjob),
        "cleanup_ms": f(&cleanup),
        "samples": { "open": 3, "list": 21, "stats": 21, "getjob": 21, "cleanup": 5 },
        "calls_per_sample": { "list": 10, "stats": 100, "getjob": 10, "cleanup": 1 },
        "samples_ms": { "open": open.iter().map(|x| r3(*x)).collect::<Vec<_>>(), "cleanup": cleanup.iter().map(|x| r3(*x)).collect::<Vec<_>>() },
        "populate_s": r3(populate_s),
        "page_cache": "warm (files just written)",
        "loadavg1_start": load0,
        "loadavg1_end": loadavg1(),
    }))
}

/// Per-call milliseconds of each sample of the queries W2 times.
pub(crate) struct Timings {
    /// `list` of the first 10 complete jobs, with the total (21 × 10 calls).
    pub list: Vec<f64>,
    /// `stats` (21 × 100 calls).
    pub stats: Vec<f64>,
    /// `get` of the `probes` (21 × 10 calls).
    pub getjob: Vec<f64>,
    /// A retention sweep with nothing to delete (5 × 1 call).
    pub cleanup: Vec<f64>,
}

/// Times list, stats, get and cleanup on a queue holding `m` complete jobs,
/// `newest` the most recent; each answer is checked. Needs 210 `probes`.
pub(crate) async fn timings(
    queue: &JobQueue,
    m: usize,
    newest: &JobId,
    probes: &[JobId],
) -> anyhow::Result<Timings> {
    let filter = &JobFilter::default().status(JobStatus::Complete).limit(10);
    let list = sample(21, 10, || async move {
        let page = queue.list_jobs(filter).await?;
        if page.jobs.len() != m.min(10) || page.total != m {
            bail!("list returned {} jobs of {}", page.jobs.len(), page.total);
        }
        if page.jobs[0].id != *newest {
            bail!("list is not newest first");
        }
        Ok(())
    })
    .await?;
    let stats = sample(21, 100, || async move {
        let s = queue.get_stats().await?;
        if s.complete != m as u64 {
            bail!("stats says {} complete, not {m}", s.complete);
        }
        Ok(())
    })
    .await?;
    let mut next = probes.iter();
    let getjob = sample(21, 10, || {
        let id = next.next().cloned();
        async move {
            let id = id.context("probe ids")?;
            let job = queue.get_job(&id).await?;
            if job.status != JobStatus::Complete || job.id != id {
                bail!("get returned the wrong job");
            }
            Ok(())
        }
    })
    .await?;
    let cleanup = sample(5, 1, || async move {
        let deleted = queue
            .cleanup_jobs_older_than(Duration::from_secs(24 * 3600))
            .await?;
        if deleted != 0 {
            bail!("cleanup deleted {deleted} jobs");
        }
        Ok(())
    })
    .await?;
    Ok(Timings {
        list,
        stats,
        getjob,
        cleanup,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `samples` samples, each the mean time (ms) of `calls` calls of `op`.
pub(crate) async fn sample<F, Fut>(
    samples: usize,
    calls: usize,
    mut op: F,
) -> anyhow::Result<Vec<f64>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut out = Vec::with_capacity(samples);
    for _ in 0..samples {
        let t = Instant::now();
        for _ in 0..calls {
            op().await?;
        }
        out.push(ms(t.elapsed()) / calls as f64);
    }
    Ok(out)
}

/// Writes `m` complete jobs (ids in creation order) straight into
/// `complete/`, on two threads; returns their ids, oldest first.
fn populate(complete: &Path, m: usize) -> anyhow::Result<Vec<JobId>> {
    let now = Timestamp::now().as_millis();
    let base = now - m as i64 - 60_000;
    let ids: Vec<JobId> = (0..m)
        .map(|i| JobId::generate_at(Timestamp::from_millis(base + i as i64)))
        .collect();
    let threads = 2;
    let chunk = m.div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = ids
            .chunks(chunk)
            .enumerate()
            .map(|(t, part)| {
                s.spawn(move || -> anyhow::Result<()> {
                    for (j, id) in part.iter().enumerate() {
                        let i = t * chunk + j;
                        let job = complete_job(id.clone(), base + i as i64, now)?;
                        let mut f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .mode(0o600)
                            .open(complete.join(format!("{id}.json")))?;
                        f.write_all(&job.to_json())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a populate thread panicked"))??;
        }
        Ok::<(), anyhow::Error>(())
    })?;
    Ok(ids)
}

/// A complete detection job like the upstream harness's.
pub(crate) fn complete_job(id: JobId, created: i64, completed: i64) -> anyhow::Result<Job> {
    let resource = format!("res-{}", &id.as_str()[id.as_str().len() - 10..]);
    let mut job = NewJob::detection(
        "bench-user@example.com",
        resource,
        ["Person", "Organization", "Location"],
    )
    .into_job(id, Timestamp::from_millis(created), 1)?;
    job.status = JobStatus::Complete;
    job.attempt = 1;
    job.started_at = Some(Timestamp::from_millis(completed - 5));
    job.completed_at = Some(Timestamp::from_millis(completed));
    job.worker_id = Some("bench-w2".into());
    job.result = Some(json!({ "totalFound": 3, "totalEmitted": 3, "errors": 0 }));
    Ok(job)
}

/// Gives freed heap memory back to the operating system (glibc keeps it).
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only releases free memory of the allocator.
    unsafe {
        libc::malloc_trim(0);
    }
}
