//! W1 throughput: create N `noop` jobs (one `create_job` each, or
//! `create_jobs` batches behind one barrier each with `--durability batch`),
//! then drain them with one loop `claim_next_job → complete_job_at` on the
//! same queue, counting executions per id. The same run measures the floor:
//! the minimal raw file operations of the same lifecycles (`std::fs`, no
//! locks, no index, no JSON), durable or not like the queue.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Instant;

use std::sync::Arc;

use anyhow::Context;
use semiont_jobs::model::JobId;
use semiont_jobs::queue::{JobQueue, JobQueueConfig};
use semiont_jobs::store_fs::{FsOptions, FsStore};
use serde_json::{json, Value};

use super::{count_dir, loadavg1, noop_job, peak_rss_mib, r3, reset_peak_rss, Cpu, Ctx, Mode};

const WORKER: &str = "bench-w1";

/// What a W1 run includes besides the queue.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// The store's directory watcher on (as shipped).
    pub watch: bool,
    /// Measure the raw-syscall floors too (off only for profiling).
    pub floor: bool,
}

/// Runs W1 once with `n` jobs in `mode`; returns its result line.
pub async fn run(
    ctx: &Ctx,
    n: usize,
    mode: Mode,
    batch_size: usize,
    opts: Options,
) -> anyhow::Result<Value> {
    let watch = opts.watch;
    super::progress(format!(
        "W1 durability={} N={n} watch={watch}",
        mode.as_str()
    ));
    let dir = ctx.new_dir(&format!("w1-{}", mode.as_str()))?;
    // The floor first, in its own directory, then the queue; each starts
    // when creates are fast (the previous unit's deletes forgotten).
    let durable = mode != Mode::None;
    let pg = crate::data::DATABASE.get().is_some();
    let floor = if opts.floor && !pg {
        let probe_us = ctx.settle(&dir);
        Some((probe_us, floor(&dir.join("floor"), n, durable)?))
    } else {
        None
    };
    // The floor freed N inodes: let the filesystem forget them before the
    // queue creates its files (see `Ctx::settle`).
    let probe_us = ctx.settle(&dir);

    let jobs = dir.join("jobs");
    let queue = if pg {
        crate::data::App::open_at(&dir, mode.durability(), crate::data::Create::Yes)
            .await?
            .queue
    } else {
        let store = FsStore::open(
            &jobs,
            FsOptions::default()
                .durability(mode.durability())
                .watch(watch),
        )
        .await?;
        let config = JobQueueConfig {
            durability: mode.durability(),
            ..JobQueueConfig::new(&jobs)
        };
        let queue = JobQueue::builder()
            .config(config)
            .store(Arc::new(store))
            .build()?;
        queue.initialize().await?;
        queue
    };
    let queue = &queue;
    queue.register_worker(WORKER).await?;
    let noop = semiont_jobs::model::JobType::parse("noop")?;

    reset_peak_rss();
    let load0 = loadavg1();
    let cpu0 = Cpu::now();
    let t0 = Instant::now();
    let mut created = 0usize;
    if mode == Mode::Batch {
        while created < n {
            let k = batch_size.min(n - created);
            queue
                .create_jobs((created..created + k).map(noop_job))
                .await?;
            created += k;
        }
    } else {
        for i in 0..n {
            queue.create_job(noop_job(i)).await?;
            created += 1;
        }
    }
    let create_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let mut counts: HashMap<JobId, u32> = HashMap::with_capacity(n);
    let mut executions = 0usize;
    let (mut claim_s, mut complete_s) = (0.0, 0.0);
    loop {
        let t = Instant::now();
        let Some(job) = queue.claim_next_job(&noop, WORKER).await? else {
            break;
        };
        let claimed = Instant::now();
        executions += 1;
        *counts.entry(job.id.clone()).or_default() += 1;
        queue.complete_job_at(&job.id, job.attempt, ()).await?;
        claim_s += (claimed - t).as_secs_f64();
        complete_s += claimed.elapsed().as_secs_f64();
    }
    let drain_s = t1.elapsed().as_secs_f64();
    let cpu = Cpu::now().since(cpu0);
    let peak = peak_rss_mib();
    let load1 = loadavg1();
    queue.unregister_worker(WORKER).await?;
    queue.close().await?;
    let final_dirs = if pg {
        let stats = queue.get_stats().await?;
        json!({ "pending": stats.pending, "running": stats.running, "complete": stats.complete })
    } else {
        json!({
            "pending": count_dir(&jobs.join("pending")),
            "running": count_dir(&jobs.join("running")),
            "complete": count_dir(&jobs.join("complete")),
        })
    };

    let distinct = counts.len();
    let duplicates = counts.values().filter(|&&c| c > 1).count();
    let create_rate = created as f64 / create_s;
    let drain_rate = distinct as f64 / drain_s;
    let mut row = json!({
        "workload": "W1",
        "durability": mode.as_str(),
        "n": n,
        "batch_size": (mode == Mode::Batch).then_some(batch_size),
        "fs_watch": watch,
        "created": created,
        "executions": executions,
        "distinct_executed": distinct,
        "duplicate_jobs": duplicates,
        "create_s": r3(create_s),
        "drain_s": r3(drain_s),
        "total_s": r3(create_s + drain_s),
        "create_jobs_per_s": create_rate.round(),
        "drain_jobs_per_s": drain_rate.round(),
        "lifecycle_jobs_per_s": (created as f64 / (create_s + drain_s)).round(),
        "create_us_mean": r3(create_s * 1e6 / created.max(1) as f64),
        "claim_us_mean": r3(claim_s * 1e6 / executions.max(1) as f64),
        "complete_us_mean": r3(complete_s * 1e6 / executions.max(1) as f64),
        "final_dirs": final_dirs,
        "peak_rss_mib": peak,
        "cpu_user_s": cpu.user,
        "cpu_sys_s": cpu.sys,
        "loadavg1_start": load0,
        "loadavg1_end": load1,
        "create_probe_us_before": r3(probe_us),
    });
    let Some((floor_probe_us, floor)) = floor else {
        return Ok(row);
    };
    let obj = row.as_object_mut().context("a W1 row is an object")?;
    obj.insert(
        "create_probe_us_before_floor".into(),
        json!(r3(floor_probe_us)),
    );
    if !durable {
        // Diagnostics after the queue: the queue's file pattern as bare
        // system calls, with its replace-by-rename, and with an exchange.
        super::progress(format!("W1 protocol-shaped floors N={n}"));
        let exchange = staged_floor(&dir.join("staged-exchange"), n, Replace::Exchange)?;
        ctx.settle(&dir);
        let over = staged_floor(&dir.join("staged-rename"), n, Replace::RenameOver)?;
        let obj = row.as_object_mut().context("a W1 row is an object")?;
        obj.insert("staged_floor_jobs_per_s".into(), json!(over.round()));
        obj.insert(
            "staged_exchange_floor_jobs_per_s".into(),
            json!(exchange.round()),
        );
    }
    let (prefix, suffix) = if durable {
        ("floor_durable", "_durable")
    } else {
        ("floor", "")
    };
    let obj = row.as_object_mut().context("a W1 row is an object")?;
    obj.insert(
        format!("{prefix}_jobs_per_s"),
        json!(floor.drain_rate.round()),
    );
    obj.insert(
        format!("{prefix}_create_jobs_per_s"),
        json!(floor.create_rate.round()),
    );
    obj.insert(
        format!("{prefix}_lifecycle_jobs_per_s"),
        json!(floor.lifecycle_rate.round()),
    );
    obj.insert(
        format!("drain_vs_floor{suffix}"),
        json!(r3(drain_rate / floor.drain_rate)),
    );
    obj.insert(
        format!("create_vs_floor{suffix}"),
        json!(r3(create_rate / floor.create_rate)),
    );
    Ok(row)
}

/// Rates of the raw-syscall floor.
struct Floor {
    create_rate: f64,
    drain_rate: f64,
    lifecycle_rate: f64,
}

/// A job document of about the size the queue writes.
fn doc(i: usize, status: &str) -> Vec<u8> {
    format!(
        "{{\n  \"id\": \"job-{i:036}\",\n  \"type\": \"noop\",\n  \"status\": \"{status}\",\n  \"userId\": \"bench-user@example.com\",\n  \"created\": \"2026-01-01T00:00:00.000Z\",\n  \"retryCount\": 0,\n  \"maxRetries\": 3,\n  \"resourceId\": \"res-{i:010}\",\n  \"entityTypes\": [\n    \"Person\",\n    \"Organization\",\n    \"Location\"\n  ]\n}}"
    )
    .into_bytes()
}

fn write_file(dir: &Path, name: &str, data: &[u8], sync: bool) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(name))?;
    f.write_all(data)?;
    if sync {
        f.sync_data()?;
    }
    Ok(())
}

/// The floor (measured first, in the unit's `floor/` directory): per job, create = write `tmp/x` (+ fdatasync) and rename it
/// into `pending/` (+ fsync of `pending/`); claim = rename `pending/x` →
/// `running/x`; complete = write `tmp/x` (+ fdatasync), rename it into
/// `complete/` (+ fsync of `complete/`), unlink `running/x`. The same N as
/// the queue, in the same process.
fn floor(dir: &Path, n: usize, durable: bool) -> anyhow::Result<Floor> {
    let sub = |s: &str| dir.join(s);
    for s in ["tmp", "pending", "running", "complete"] {
        crate::data::create_private_dir(&sub(s))?;
    }
    let (tmp, pending, running, complete) =
        (sub("tmp"), sub("pending"), sub("running"), sub("complete"));
    let pending_fd = File::open(&pending)?;
    let complete_fd = File::open(&complete)?;
    let names: Vec<String> = (0..n).map(|i| format!("job-{i:036}.json")).collect();
    let t0 = Instant::now();
    for (i, name) in names.iter().enumerate() {
        write_file(&tmp, name, &doc(i, "pending"), durable)?;
        std::fs::rename(tmp.join(name), pending.join(name))?;
        if durable {
            pending_fd.sync_all()?;
        }
    }
    let create_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    for (i, name) in names.iter().enumerate() {
        std::fs::rename(pending.join(name), running.join(name))?;
        write_file(&tmp, name, &doc(i, "complete"), durable)?;
        std::fs::rename(tmp.join(name), complete.join(name))?;
        if durable {
            complete_fd.sync_all()?;
        }
        std::fs::remove_file(running.join(name))?;
    }
    let drain_s = t1.elapsed().as_secs_f64();
    Ok(Floor {
        create_rate: n as f64 / create_s,
        drain_rate: n as f64 / drain_s,
        lifecycle_rate: n as f64 / (create_s + drain_s),
    })
}

/// How a staged file replaces the job file in [`staged_floor`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replace {
    /// `rename(2)` over the existing file (what the store does).
    RenameOver,
    /// `renameat2(RENAME_EXCHANGE)`, then unlink the old content.
    Exchange,
}

/// `renameat2(old, new, RENAME_EXCHANGE)`.
fn exchange(old: &Path, new: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other("path contains NUL"))
    };
    let (old, new) = (c(old)?, c(new)?);
    // SAFETY: two valid NUL-terminated paths; AT_FDCWD and the flag are constants.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            old.as_ptr(),
            libc::AT_FDCWD,
            new.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The store's file pattern as bare system calls (no locks, index, JSON or
/// threads), not durable; returns the drain rate. Create as in [`floor`];
/// claim = write `tmp/x.r`, rename `pending/x` → `running/x`, replace
/// `running/x` by `tmp/x.r`; complete = write `tmp/x.c`, rename
/// `running/x` → `complete/x`, replace `complete/x` by `tmp/x.c`.
fn staged_floor(dir: &Path, n: usize, how: Replace) -> anyhow::Result<f64> {
    let sub = |s: &str| dir.join(s);
    for s in ["tmp", "pending", "running", "complete"] {
        crate::data::create_private_dir(&sub(s))?;
    }
    let (tmp, pending, running, complete) =
        (sub("tmp"), sub("pending"), sub("running"), sub("complete"));
    let names: Vec<String> = (0..n).map(|i| format!("job-{i:036}.json")).collect();
    for (i, name) in names.iter().enumerate() {
        write_file(&tmp, name, &doc(i, "pending"), false)?;
        std::fs::rename(tmp.join(name), pending.join(name))?;
    }
    let replace = |staged: &Path, target: &Path| -> std::io::Result<()> {
        match how {
            Replace::RenameOver => std::fs::rename(staged, target),
            Replace::Exchange => {
                exchange(staged, target)?;
                std::fs::remove_file(staged)
            }
        }
    };
    let t = Instant::now();
    for (i, name) in names.iter().enumerate() {
        let (r, c) = (format!("{name}.r"), format!("{name}.c"));
        write_file(&tmp, &r, &doc(i, "running"), false)?;
        std::fs::rename(pending.join(name), running.join(name))?;
        replace(&tmp.join(&r), &running.join(name))?;
        write_file(&tmp, &c, &doc(i, "complete"), false)?;
        std::fs::rename(running.join(name), complete.join(name))?;
        replace(&tmp.join(&c), &complete.join(name))?;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}
