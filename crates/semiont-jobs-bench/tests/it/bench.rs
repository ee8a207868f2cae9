//! `semiont-jobs bench`: fast smoke runs of every workload (tiny sizes;
//! nothing is timed here) checking the JSON lines carry the upstream
//! harness's field names and that no job runs twice or goes missing; the
//! CLI passing help, errors and exit codes through; the harness on its own.

use serde_json::Value;

use crate::support::{harness_cmd, ok, semiont_jobs, Env};

/// Runs `bench ... --json --root <temp>` and returns its JSON lines.
fn bench(env: &Env, args: &[&str]) -> Vec<Value> {
    let root = env.data.with_file_name("bench-root");
    let mut all = vec!["--json", "bench"];
    all.extend_from_slice(args);
    all.push("--root");
    all.push(root.to_str().unwrap());
    // Probe the create cost once per phase, but never wait for it: the
    // smoke runs measure nothing.
    all.extend(["--settle-max", "0"]);
    let text = env.ok(&all);
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    // Everything but --keep runs is cleaned up.
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
    assert!(left.is_empty(), "bench left data behind: {left:?}");
    rows
}

fn row<'a>(rows: &'a [Value], workload: &str) -> Vec<&'a Value> {
    rows.iter().filter(|r| r["workload"] == workload).collect()
}

fn has(r: &Value, keys: &[&str]) {
    for k in keys {
        assert!(!r[k].is_null(), "missing {k} in {r}");
    }
}

#[test]
fn w1_prints_the_throughput_fields_with_no_duplicates() {
    let env = Env::new();
    let rows = bench(
        &env,
        &["--workload", "w1", "--jobs", "200", "--durability", "none"],
    );
    let env_row = row(&rows, "env");
    assert_eq!(env_row.len(), 1);
    has(env_row[0], &["date", "nproc", "data_fs", "create_probe_us"]);
    let w1 = row(&rows, "W1");
    assert_eq!(w1.len(), 1, "{rows:?}");
    let r = w1[0];
    has(
        r,
        &[
            "create_jobs_per_s",
            "drain_jobs_per_s",
            "floor_jobs_per_s",
            "drain_vs_floor",
            "peak_rss_mib",
            "loadavg1_start",
            "cpu_user_s",
        ],
    );
    let probe = r["create_probe_us_before"]
        .as_f64()
        .expect("a create probe");
    assert!(probe > 0.0, "{probe}");
    assert_eq!(r["durability"], "none");
    assert_eq!(r["duplicate_jobs"], 0);
    assert_eq!(r["distinct_executed"], 200);
    assert_eq!(r["executions"], 200);
    assert_eq!(r["final_dirs"]["complete"], 200);
    assert_eq!(r["final_dirs"]["pending"], 0);
}

#[test]
fn w1_without_the_floor_measures_the_queue_alone() {
    let env = Env::new();
    let rows = bench(
        &env,
        &[
            "--workload",
            "w1",
            "--jobs",
            "50",
            "--durability",
            "none",
            "--no-floor",
        ],
    );
    let r = row(&rows, "W1")[0];
    assert_eq!(r["distinct_executed"], 50);
    assert_eq!(r["duplicate_jobs"], 0);
    has(r, &["drain_jobs_per_s", "create_probe_us_before"]);
    for k in [
        "floor_jobs_per_s",
        "drain_vs_floor",
        "create_probe_us_before_floor",
    ] {
        assert!(r[k].is_null(), "{k} present without the floor: {r}");
    }
}

#[test]
fn w1_batch_mode_uses_the_durable_floor() {
    let env = Env::new();
    let rows = bench(
        &env,
        &[
            "--workload",
            "w1",
            "--jobs",
            "60",
            "--durability",
            "batch",
            "--batch-size",
            "25",
        ],
    );
    let r = row(&rows, "W1")[0];
    assert_eq!(r["durability"], "batch");
    assert_eq!(r["batch_size"], 25);
    assert_eq!(r["duplicate_jobs"], 0);
    assert_eq!(r["distinct_executed"], 60);
    has(r, &["floor_durable_jobs_per_s", "drain_vs_floor_durable"]);
}

#[test]
fn w2_times_every_operation_at_a_small_scale() {
    let env = Env::new();
    let rows = bench(
        &env,
        &[
            "--workload",
            "w2",
            "--scale",
            "50,120",
            "--durability",
            "none",
        ],
    );
    let w2 = row(&rows, "W2");
    assert_eq!(w2.len(), 2, "{rows:?}");
    for (r, m) in w2.iter().zip([50, 120]) {
        assert_eq!(r["m"], m);
        has(
            r,
            &[
                "open_ms",
                "rss_mib",
                "list_ms",
                "stats_ms",
                "getjob_ms",
                "cleanup_ms",
            ],
        );
    }
}

#[test]
fn w3_measures_enqueue_to_start_in_a_worker_process() {
    let env = Env::new();
    let rows = bench(
        &env,
        &["--workload", "w3", "--jobs", "3", "--durability", "none"],
    );
    let r = row(&rows, "W3")[0];
    assert_eq!(r["executed"], 3, "{r}");
    has(r, &["p50_ms", "p99_ms", "mean_ms", "latencies_ms"]);
    assert!(r["p50_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn w4_two_processes_run_every_job_once_and_lose_none() {
    let env = Env::new();
    let rows = bench(
        &env,
        &[
            "--workload",
            "w4",
            "--processes",
            "2",
            "--jobs",
            "100",
            "--durability",
            "none",
        ],
    );
    let w4 = row(&rows, "W4");
    assert_eq!(w4.len(), 1, "{rows:?}");
    let r = w4[0];
    assert_eq!(r["procs"], 2);
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["distinct_executed"], 100, "{r}");
    assert_eq!(r["total_executions"], 100, "{r}");
    assert_eq!(r["per_process_executions"].as_array().unwrap().len(), 2);
    assert_eq!(r["exit_codes"], serde_json::json!([0, 0]));
    has(r, &["wall_s", "drain_s", "jobs_per_s"]);
}

#[test]
fn global_flags_before_bench_reach_the_harness_only_when_given() {
    let env = Env::new();
    let root = env.path("bench-root");
    let w1 = |globals: &[&str]| -> Vec<String> {
        let mut all = globals.to_vec();
        all.extend(["bench", "--workload", "w1", "--jobs", "20", "--no-floor"]);
        all.extend(["--settle-max", "0", "--root", root.to_str().unwrap()]);
        let text = env.ok(&all);
        let rows: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        row(&rows, "W1")
            .iter()
            .map(|r| r["durability"].as_str().unwrap().to_owned())
            .collect()
    };
    // `--json` and `--durability` of `semiont-jobs`, before `bench`.
    assert_eq!(w1(&["--json", "--durability", "none"]), ["none"]);
    // No `--durability` at all: W1 runs every mode.
    assert_eq!(w1(&["--json"]), ["none", "fsync", "batch"]);
}

#[test]
fn bench_help_is_the_harness_help_with_examples() {
    let env = Env::new();
    let help = env.ok(&["bench", "--help"]);
    for needle in [
        "Usage: semiont-jobs bench",
        "--workload",
        "--processes",
        "--settle-max",
        "Examples:",
    ] {
        assert!(help.contains(needle), "{needle:?} not in:\n{help}");
    }
}

#[test]
fn harness_usage_errors_pass_through_with_exit_code_2_and_nothing_made() {
    let env = Env::new();
    let root = env.path("bench-root");
    for (args, message) in [
        (&["--jobs", "0"][..], "error: --jobs must be at least 1"),
        (
            &["--processes", "2,0"][..],
            "error: --processes must be at least 1",
        ),
        (
            &["--batch-size", "0"][..],
            "error: --batch-size must be at least 1",
        ),
        (
            &["--workload", "w9"][..],
            "error: invalid value 'w9' for '--workload",
        ),
    ] {
        let mut all = vec!["bench"];
        all.extend_from_slice(args);
        all.extend(["--root", root.to_str().unwrap()]);
        let out = env.run(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {err}");
        let first = err.lines().next().unwrap_or_default();
        assert!(first.starts_with(message), "{all:?}: {err}");
        assert!(out.stdout.is_empty(), "{all:?} printed results");
        assert!(!root.exists(), "{all:?} made {}", root.display());
    }
}

#[test]
fn the_harness_alone_starts_the_semiont_jobs_beside_it() {
    let env = Env::new();
    let root = env.path("bench-root");
    let args = [
        "--json",
        "--workload",
        "w3",
        "--jobs",
        "2",
        "--durability",
        "none",
        "--settle-max",
        "0",
        "--root",
        root.to_str().unwrap(),
    ];
    // No SEMIONT_JOBS_BIN: the harness finds semiont-jobs next to itself.
    assert!(semiont_jobs().is_file());
    let text = ok(harness_cmd().args(args), &args);
    let rows: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let r = row(&rows, "W3")[0];
    assert_eq!(r["executed"], 2, "{r}");
    assert_eq!(r["worker_warnings"], 0, "{r}");
}

#[test]
fn a_semiont_jobs_that_cannot_start_is_named() {
    let env = Env::new();
    let root = env.path("bench-root");
    let missing = env.path("no-such-dir").join("semiont-jobs");
    let out = harness_cmd()
        .env("SEMIONT_JOBS_BIN", &missing)
        .args(["--workload", "w3", "--jobs", "1", "--settle-max", "0"])
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {err}"));
    assert!(
        line.contains("cannot start the W3 worker process")
            && line.contains(missing.to_str().unwrap()),
        "{line}"
    );
}
