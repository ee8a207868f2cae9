//! The soak and scale parts of `cargo xtask bench --pg`: `semiont-jobs
//! bench --workload soak` (N jobs through the queue with retention on,
//! sizes and throughput at every tenth) and `--workload pgscale` (list,
//! stats, get and a sweep with one million finished jobs), and their
//! tables.

use std::process::Command;

use super::pg::Tools;
use super::report::{int, num, Rows};
use super::Out;
use crate::pg::Cluster;

/// Finished jobs of the scale check.
const SCALE: &str = "1000000";

/// Runs the soak of `n` jobs and the scale check, into `soak.jsonl` of the
/// run's directory.
pub fn run(t: &Tools, cluster: &Cluster, out: &mut Out, n: usize) -> Result<(), String> {
    let file = out.file("soak.jsonl");
    let jobs = n.to_string();
    for args in [
        &[
            "--workload",
            "soak",
            "--durability",
            "fsync",
            "--jobs",
            &jobs,
            "--processes",
            "2",
            "--concurrency",
            "20",
        ][..],
        &[
            "--workload",
            "pgscale",
            "--durability",
            "fsync",
            "--scale",
            SCALE,
        ][..],
    ] {
        let mut cmd = Command::new(&t.harness);
        cmd.arg("--json")
            .args(args)
            .env("SEMIONT_JOBS_DATABASE_URL", cluster.url())
            .env("SEMIONT_JOBS_BIN", &t.exe)
            .env_remove("RUST_LOG");
        out.keep_going(&format!("{} (semiont-jobs)", args[1]), cmd, &file);
    }
    Ok(())
}

/// The soak's and the scale check's lines of the targets table.
pub fn targets(rows: &Rows) -> String {
    let mut s = String::new();
    if let Some(soak) = rows.of("soak", |_| true).first() {
        let ratio = soak["last_vs_first"].as_f64();
        s.push_str(&format!(
            "| soak ({} jobs, retention {}): last tenth's throughput within 20% of the first's; table size bounded by retention | first {} jobs/s, last {} jobs/s ({}×); `jobs_done` at most {} MiB, {} MiB at the end; {} duplicate(s) | {} |\n",
            int(soak["jobs"].as_f64()),
            soak["retention"].as_str().unwrap_or("?"),
            int(soak["first_tenth_jobs_per_s"].as_f64()),
            int(soak["last_tenth_jobs_per_s"].as_f64()),
            num(ratio),
            num(soak["jobs_done_mib_max"].as_f64()),
            num(soak["jobs_done_mib_last"].as_f64()),
            int(soak["duplicates"].as_f64()),
            match ratio {
                Some(r) if r >= 0.8 => "**met**",
                Some(_) => "**missed**",
                None => "not measured",
            }
        ));
    }
    s
}

/// The soak's intervals and the scale check's timings.
pub fn section(rows: &Rows) -> String {
    let mut s = String::new();
    let intervals = rows.of("soak-interval", |_| true);
    if !intervals.is_empty() {
        s.push_str(
            "\n**Soak**: jobs created in batches of 1,000 (at most 20,000 pending), run by 2 `work` processes \
             × concurrency 20 with `synchronous_commit = on`, finished jobs deleted after 30 s by the workers' \
             sweep (every 5 s). At every tenth:\n\n\
             | done | elapsed s | jobs/s in the tenth | `jobs` MiB (dead rows) | `jobs_done` MiB | `jobs_done` live / dead rows | autovacuums of `jobs` |\n\
             | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for r in intervals {
            s.push_str(&format!(
                "| {} | {} | {} | {} ({}) | {} | {} / {} | {} |\n",
                int(r["done"].as_f64()),
                num(r["elapsed_s"].as_f64()),
                int(r["jobs_per_s"].as_f64()),
                num(r["jobs"]["total_mib"].as_f64()),
                int(r["jobs"]["dead"].as_f64()),
                num(r["jobs_done"]["total_mib"].as_f64()),
                int(r["jobs_done"]["live"].as_f64()),
                int(r["jobs_done"]["dead"].as_f64()),
                int(r["jobs"]["autovacuums"].as_f64()),
            ));
        }
    }
    for r in rows.of("pgscale", |_| true) {
        s.push_str(&format!(
            "\n**At scale**: {} finished jobs in `jobs_done` (inserted at {} jobs/s in batches of 5,000); \
             milliseconds per call, medians of 21 samples:\n\n\
             | list (first 10 complete, with total) | list by user | stats | get | retention sweep, nothing to delete |\n\
             | ---: | ---: | ---: | ---: | ---: |\n| {} | {} | {} | {} | {} |\n",
            int(r["m"].as_f64()),
            int(r["insert_jobs_per_s"].as_f64()),
            num(r["list_ms"].as_f64()),
            num(r["list_user_ms"].as_f64()),
            num(r["stats_ms"].as_f64()),
            num(r["getjob_ms"].as_f64()),
            num(r["cleanup_ms"].as_f64()),
        ));
    }
    s
}
