//! `bench`: fast smoke runs of every workload (tiny sizes; nothing is timed
//! here) checking the JSON lines carry the upstream harness's field names
//! and that no job runs twice or goes missing; and the report mode.

use serde_json::Value;

use crate::support::Env;

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
fn report_mode_writes_markdown_from_json_lines() {
    let env = Env::new();
    let dir = env.data.with_file_name("report");
    std::fs::create_dir_all(&dir).unwrap();
    let ours = dir.join("ours.jsonl");
    let lines = [
        r#"{"workload":"env","date":"2026-01-01T00:00:00.000Z","nproc":2,"cpu":"x","mem_gib":1,"os":"Linux","data_fs":"ext4","create_probe_us":50}"#,
        r#"{"workload":"W1","durability":"none","n":100,"create_jobs_per_s":1000,"drain_jobs_per_s":900,"floor_jobs_per_s":1000,"drain_vs_floor":0.9,"floor_create_jobs_per_s":2000,"duplicate_jobs":0}"#,
        r#"{"workload":"W2","m":1000,"open_ms":10,"rss_mib":8,"list_ms":0.2,"stats_ms":0.0001,"getjob_ms":0.01,"cleanup_ms":0.003}"#,
        r#"{"workload":"W3","jobs":20,"p50_ms":1.5,"p99_ms":4,"mean_ms":1.7,"max_ms":4,"latencies_ms":[1.5,4]}"#,
        r#"{"workload":"W4","durability":"none","procs":1,"jobs":100,"jobs_per_s":100,"drain_s":1,"wall_s":1.2,"total_executions":100,"duplicates":0,"lost":0}"#,
        r#"{"workload":"W4","durability":"none","procs":2,"jobs":100,"jobs_per_s":160,"drain_s":0.6,"wall_s":0.8,"total_executions":100,"duplicates":0,"lost":0}"#,
    ];
    std::fs::write(&ours, lines.join("\n")).unwrap();
    let doc = dir.join("benchmarks.md");
    env.ok(&[
        "bench",
        "--report",
        doc.to_str().unwrap(),
        "--ours",
        ours.to_str().unwrap(),
        "--fact",
        "rustc=rustc 1.0",
    ]);
    let md = std::fs::read_to_string(&doc).unwrap();
    for needle in [
        "# Benchmarks",
        "## W1 throughput",
        "| none | 100 | 1 | 1,000 | 900 |",
        "## Targets",
        "rustc 1.0",
    ] {
        assert!(md.contains(needle), "{needle:?} not in:\n{md}");
    }
    // W4: two processes at 160 jobs/s against one at 100 is a ratio of 1.6.
    assert!(
        md.contains("1.6×") || md.contains("1.60×"),
        "no 1.6× ratio in:\n{md}"
    );
}
