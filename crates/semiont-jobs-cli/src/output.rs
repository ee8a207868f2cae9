//! Printing: JSON documents and lines, human tables and job details. The only
//! module (with `watch`) that writes to standard output.

#![allow(clippy::print_stdout, reason = "the CLI's output module")]

use std::io::Write;

use semiont_jobs::model::{Job, QueueStats};
use serde::Serialize;
use serde_json::Value;

/// Prints one JSON document (pretty) followed by a newline.
pub fn json(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints one JSON line (for streams).
pub fn json_line(value: &impl Serialize) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// Prints a line.
pub fn line(text: impl AsRef<str>) {
    println!("{}", text.as_ref());
}

/// A compact progress summary: `45% Processing item 3` or `-`.
pub fn progress_summary(progress: Option<&Value>) -> String {
    let Some(p) = progress else {
        return "-".into();
    };
    let detail = progress_detail(Some(p));
    match percentage(Some(p)) {
        Some(pct) if detail.is_empty() => format!("{pct:.0}%"),
        Some(pct) => format!("{pct:.0}% {detail}"),
        None if detail.is_empty() => "-".into(),
        None => detail,
    }
}

/// The progress summary without its percentage: `Processing item 3`, or
/// empty.
pub fn progress_detail(progress: Option<&Value>) -> String {
    let Some(p) = progress else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(stage) = p.get("stage").and_then(Value::as_str) {
        parts.push(stage.to_owned());
    }
    if let (Some(done), Some(total)) = (
        p.get("processedEntityTypes").and_then(Value::as_u64),
        p.get("totalEntityTypes").and_then(Value::as_u64),
    ) {
        parts.push(format!("{done}/{total} types"));
        if let Some(found) = p.get("entitiesFound").and_then(Value::as_u64) {
            parts.push(format!("{found} found"));
        }
    }
    if let Some(m) = p.get("message").and_then(Value::as_str) {
        parts.push(m.to_owned());
    }
    parts.join(" ")
}

/// The percentage of a progress value, computed from detection counts when
/// there is no explicit one.
pub fn percentage(progress: Option<&Value>) -> Option<f64> {
    let p = progress?;
    if let Some(pct) = p.get("percentage").and_then(Value::as_f64) {
        return Some(pct.clamp(0.0, 100.0));
    }
    let done = p.get("processedEntityTypes").and_then(Value::as_f64)?;
    let total = p.get("totalEntityTypes").and_then(Value::as_f64)?;
    (total > 0.0).then(|| (done / total * 100.0).clamp(0.0, 100.0))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// A table of jobs.
pub fn job_table(jobs: &[Job], total: usize, offset: usize) {
    if jobs.is_empty() {
        println!("no jobs (total {total})");
        return;
    }
    println!(
        "{:<40}  {:<12}  {:<9}  {:<12}  {:<24}  {:>3}  PROGRESS",
        "ID", "TYPE", "STATUS", "USER", "CREATED", "TRY"
    );
    for j in jobs {
        println!(
            "{:<40}  {:<12}  {:<9}  {:<12}  {:<24}  {:>3}  {}",
            j.id.as_str(),
            truncate(j.job_type.as_str(), 12),
            j.status.as_str(),
            truncate(&j.user_id, 12),
            j.created.to_string(),
            j.attempt,
            truncate(&progress_summary(j.progress.as_ref()), 40)
        );
    }
    println!("showing {}–{} of {total}", offset + 1, offset + jobs.len());
}

/// The details of one job.
pub fn job_detail(j: &Job) {
    let row = |k: &str, v: String| println!("{k:<12} {v}");
    row("id:", j.id.to_string());
    row("type:", j.job_type.to_string());
    let mut status = j.status.to_string();
    if j.attempt > 0 {
        status.push_str(&format!(" (attempt {}", j.attempt));
        if let Some(w) = &j.worker_id {
            status.push_str(&format!(", worker {w}"));
        }
        status.push(')');
    }
    row("status:", status);
    row("user:", j.user_id.clone());
    row("created:", j.created.to_string());
    if let Some(t) = j.started_at {
        row("started:", t.to_string());
    }
    if let Some(t) = j.completed_at {
        row("completed:", t.to_string());
    }
    if let Some(t) = j.run_at {
        row("due:", t.to_string());
    }
    row(
        "retries:",
        format!("{} of {}", j.retry_count, j.max_retries),
    );
    if j.priority != 0 {
        row("priority:", j.priority.to_string());
    }
    if j.progress.is_some() {
        row("progress:", progress_summary(j.progress.as_ref()));
    }
    if let Some(k) = &j.unique_key {
        let scope = match j.unique_after_finish_ms {
            Some(ms) => format!(" (and {ms} ms after it finishes)"),
            None => String::new(),
        };
        row("unique key:", format!("{k:?}{scope}"));
    }
    if !j.completed_units.is_empty() {
        row("done units:", j.completed_units.join(", "));
    }
    for (unit, c) in &j.unit_cursors {
        let size = if c.size > 0 {
            format!(" of {}", c.size)
        } else {
            String::new()
        };
        row(
            "in unit:",
            format!(
                "{unit}: next {}{size}, {} found, {} emitted, {} errors",
                c.next, c.found, c.emitted, c.errors
            ),
        );
    }
    if let Some(r) = &j.result {
        row("result:", r.to_string());
    }
    if let Some(e) = &j.error {
        row("error:", e.clone());
    }
    for (k, v) in &j.params {
        row(&format!("{k}:"), v.to_string());
    }
}

/// `paused: a, b` when any job type is paused.
pub fn paused_line<T: std::fmt::Display>(paused: impl IntoIterator<Item = T>) {
    let names: Vec<String> = paused.into_iter().map(|t| t.to_string()).collect();
    if !names.is_empty() {
        println!(
            "paused: {} (claims of these types wait for `semiont-jobs resume`)",
            names.join(", ")
        );
    }
}

/// Stats as a table.
pub fn stats_table(s: &QueueStats) {
    for (name, n) in [
        ("pending", s.pending),
        ("running", s.running),
        ("complete", s.complete),
        ("failed", s.failed),
        ("cancelled", s.cancelled),
    ] {
        println!("{name:<11} {n:>8}");
    }
    println!("{:<11} {:>8}", "total", s.total());
    if s.unreadable > 0 {
        println!(
            "{:<11} {:>8}  (unreadable files set aside)",
            "quarantined", s.unreadable
        );
    }
}
