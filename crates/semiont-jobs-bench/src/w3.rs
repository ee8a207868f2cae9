//! W3 latency: one idle `semiont-jobs work --types noop` process; this
//! process enqueues K jobs one at a time on the same data dir, spaced 50–300
//! ms (the upstream harness's PRNG and seed, so the same gaps), and measures
//! enqueue → execution start from the worker's exec log (wall-clock
//! nanoseconds in both processes).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{loadavg1, noop_job, percentile, r3, wall_nanos, Ctx, Mode, Mulberry32};
use crate::data::{App, Create};

/// Runs W3 with `k` jobs; returns its result line.
pub async fn run(ctx: &Ctx, k: usize, mode: Mode) -> anyhow::Result<Value> {
    super::progress(format!("W3 jobs={k} durability={}", mode.as_str()));
    let dir = ctx.new_dir("w3")?;
    // The producer's creates are part of what is measured (see `Ctx::settle`).
    let probe_us = ctx.settle(&dir);
    let app = App::open_at(&dir, mode.durability(), Create::Yes).await?;
    let log = dir.join("exec-w3.log");
    let mut child = super::work_command(&dir, mode)
        .args(["--log-format", "json"])
        .args(["work", "--types", "noop", "--exec-log"])
        .arg(&log)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| super::cannot_start("the W3 worker process"))?;
    let stderr = child.stderr.take().context("no stderr of the worker")?;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        // Drain the worker's log (a full pipe would block it); say when it started.
        let mut tail = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("\"worker.started\"") {
                let _ = ready_tx.send(());
            }
            if line.contains("\"WARN\"") || line.contains("\"ERROR\"") {
                tail.push(line);
            }
        }
        tail
    });
    let started =
        tokio::task::spawn_blocking(move || ready_rx.recv_timeout(Duration::from_secs(30))).await?;
    if started.is_err() {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the W3 worker did not start within 30 s");
    }

    let load0 = loadavg1();
    // The upstream harness draws K ids (21 draws each) from this PRNG first.
    let mut rng = Mulberry32::new(ctx.seed.wrapping_mul(31).wrapping_add(3));
    for _ in 0..21 * k {
        rng.next_f64();
    }
    let mut enqueued = Vec::with_capacity(k);
    for i in 0..k {
        let gap = 50 + (rng.next_f64() * 251.0) as u64;
        tokio::time::sleep(Duration::from_millis(gap)).await;
        let at = wall_nanos();
        let job = app.queue.create_job(noop_job(i)).await?;
        enqueued.push((job.id.to_string(), at));
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut starts = read_exec_log(&log)?;
    while enqueued.iter().any(|(id, _)| !starts.0.contains_key(id)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
        starts = read_exec_log(&log)?;
    }
    let _ = child.kill();
    let _ = child.wait();
    let warnings = reader.join().unwrap_or_default();
    app.queue.close().await?;
    drop(app);

    let (first, executions) = starts;
    let lat: Vec<f64> = enqueued
        .iter()
        .filter_map(|(id, at)| {
            first
                .get(id)
                .map(|s| (*s as f64 - *at as f64) / 1_000_000.0)
        })
        .collect();
    if lat.is_empty() {
        bail!("the W3 worker ran none of the {k} jobs");
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64;
    Ok(json!({
        "workload": "W3",
        "mode": "worker in another process (semiont-jobs work), same data dir",
        "durability": mode.as_str(),
        "jobs": k,
        "poll_interval_ms": 1000,
        "executed": lat.len(),
        "executions": executions,
        "spacing_ms": "50-300 uniform",
        "p50_ms": r3(percentile(&lat, 50.0)),
        "p99_ms": r3(percentile(&lat, 99.0)),
        "mean_ms": r3(mean),
        "min_ms": r3(lat.iter().copied().fold(f64::INFINITY, f64::min)),
        "max_ms": r3(lat.iter().copied().fold(0.0, f64::max)),
        "percentile_method": "nearest-rank",
        "latencies_ms": lat.iter().map(|x| r3(*x)).collect::<Vec<_>>(),
        "worker_warnings": warnings.len(),
        "loadavg1_start": load0,
        "loadavg1_end": loadavg1(),
        "create_probe_us_before": r3(probe_us),
    }))
}

/// The exec log: first start (nanos) per job id, and the number of lines.
pub fn read_exec_log(path: &Path) -> anyhow::Result<(HashMap<String, u128>, usize)> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut first = HashMap::new();
    let mut lines = 0;
    // Only whole lines: the last one may still be being written.
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let Some((id, nanos)) = line.trim_end().split_once('\t') else {
            continue;
        };
        let Ok(nanos) = nanos.parse::<u128>() else {
            continue;
        };
        lines += 1;
        first.entry(id.to_owned()).or_insert(nanos);
    }
    Ok((first, lines))
}
