//! Every command's happy path and JSON schema.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use serde_json::Value;

use crate::support::Env;

fn assert_job_schema(job: &Value) {
    for key in [
        "id",
        "type",
        "status",
        "userId",
        "created",
        "retryCount",
        "maxRetries",
    ] {
        assert!(job.get(key).is_some(), "missing {key} in {job}");
    }
    assert!(job["id"].as_str().unwrap().starts_with("job-"));
}

#[test]
fn init_is_idempotent_and_creates_the_layout() {
    let env = Env::new();
    let first = env.json(&["init"]);
    assert_eq!(first["stats"]["pending"], 0);
    env.json(&["init"]);
    for sub in [
        "jobs/pending",
        "jobs/running",
        "jobs/complete",
        "jobs/failed",
        "jobs/cancelled",
        "resources",
        "annotations",
    ] {
        assert!(env.data.join(sub).is_dir(), "{sub}");
    }
}

#[test]
fn enqueue_every_kind() {
    let env = Env::new();
    let d = env.json(&[
        "enqueue",
        "detection",
        "--user",
        "user-123",
        "--resource",
        "doc-456",
        "--entity-type",
        "Person",
        "--entity-type",
        "Organization",
        "--max-retries",
        "5",
    ]);
    assert_job_schema(&d);
    assert_eq!(d["type"], "detection");
    assert_eq!(d["status"], "pending");
    assert_eq!(
        d["entityTypes"],
        serde_json::json!(["Person", "Organization"])
    );
    assert_eq!(d["maxRetries"], 5);
    let g = env.json(&[
        "enqueue",
        "generation",
        "--user",
        "u",
        "--reference",
        "ann-1",
        "--source-resource",
        "doc-1",
        "--title",
        "Ada",
        "--language",
        "en",
        "--entity-type",
        "Person,Location",
    ]);
    assert_eq!(g["referenceId"], "ann-1");
    assert_eq!(g["sourceResourceId"], "doc-1");
    assert_eq!(g["entityTypes"], serde_json::json!(["Person", "Location"]));
    let c = env.json(&[
        "enqueue",
        "custom",
        "--type",
        "sleep",
        "--user",
        "u",
        "--params",
        r#"{"ms": 10}"#,
        "--priority",
        "-2",
    ]);
    assert_eq!(c["ms"], 10);
    assert_eq!(c["priority"], -2);
    let human = env.ok(&["enqueue", "custom", "--type", "noop", "--user", "u"]);
    assert!(human.starts_with("enqueued job-"), "{human}");
}

#[test]
fn get_list_stats_cancel_retry() {
    let env = Env::new();
    let a = env.enqueue_noop();
    let b = env.enqueue_noop();
    let got = env.json(&["get", &a]);
    assert_eq!(got["id"], a.as_str());
    assert!(env.ok(&["get", &a]).contains("status:"));
    let page = env.json(&[
        "list", "--status", "pending", "--type", "noop", "--user", "u1", "--limit", "1",
    ]);
    assert_eq!(page["total"], 2);
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(page["jobs"][0]["id"], b.as_str(), "newest first");
    let page2 = env.json(&["list", "--limit", "1", "--offset", "1"]);
    assert_eq!(page2["jobs"][0]["id"], a.as_str());
    assert!(env.ok(&["list"]).contains("showing 1–2 of 2"));
    let cancelled = env.json(&["cancel", &a]);
    assert_eq!(cancelled["status"], "cancelled");
    let stats = env.json(&["stats"]);
    for key in [
        "pending",
        "running",
        "complete",
        "failed",
        "cancelled",
        "quarantined",
    ] {
        assert!(stats[key].is_u64(), "{key}");
    }
    assert_eq!(
        (stats["pending"].as_u64(), stats["cancelled"].as_u64()),
        (Some(1), Some(1))
    );
    let retried = env.json(&["retry", &a]);
    assert_eq!(retried["status"], "pending");
    assert!(env.ok(&["stats"]).contains("pending"));
}

#[test]
fn work_drains_diagnostic_jobs_and_exits_when_idle() {
    let env = Env::new();
    env.enqueue_noop();
    env.ok(&[
        "enqueue",
        "custom",
        "--type",
        "sleep",
        "--user",
        "u",
        "--params",
        r#"{"ms": 50}"#,
    ]);
    env.ok(&[
        "enqueue",
        "custom",
        "--type",
        "fail",
        "--user",
        "u",
        "--params",
        r#"{"retryable": false}"#,
    ]);
    let out = env.run(&[
        "--log-format",
        "json",
        "work",
        "--exit-when-idle",
        "--concurrency",
        "2",
        "--poll-interval",
        "50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logs = String::from_utf8(out.stderr).unwrap();
    let events: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"].as_str().is_some_and(|e| e.starts_with("job.")))
        .collect();
    let count = |name: &str| events.iter().filter(|e| e["event"] == name).count();
    assert_eq!(count("job.started"), 3, "{logs}");
    assert_eq!(count("job.completed"), 2);
    assert_eq!(count("job.failed"), 1);
    for e in &events {
        assert!(
            e["job_id"].as_str().is_some()
                && e["attempt"].is_u64()
                && e["worker_id"].as_str().is_some(),
            "{e}"
        );
    }
    let stats = env.json(&["stats"]);
    assert_eq!(
        (stats["complete"].as_u64(), stats["failed"].as_u64()),
        (Some(2), Some(1))
    );
}

#[test]
fn cleanup_deletes_only_old_finished_jobs() {
    let env = Env::new();
    env.enqueue_noop();
    env.ok(&["work", "--exit-when-idle", "--poll-interval", "50"]);
    let pending = env.enqueue_noop();
    let kept = env.json(&["cleanup"]);
    assert_eq!(kept["deleted"], 0, "younger than 24h");
    let gone = env.json(&["cleanup", "--older-than", "0s"]);
    assert_eq!(gone["deleted"], 1);
    assert_eq!(env.json(&["get", &pending])["status"], "pending");
}

#[test]
fn watch_follows_one_job_until_it_ends() {
    let env = Env::new();
    let id = env.json(&[
        "enqueue",
        "custom",
        "--type",
        "sleep",
        "--user",
        "u",
        "--params",
        r#"{"ms": 600}"#,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut watch = env
        .cmd()
        .args(["watch", &id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut worker = env
        .cmd()
        .args(["work", "--exit-when-idle", "--poll-interval", "50"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(watch.stdout.take().unwrap());
    let lines: Vec<String> = stdout.lines().map(Result::unwrap).collect();
    let status = watch.wait().unwrap();
    assert!(status.success());
    assert!(worker.wait().unwrap().success());
    assert!(
        lines.first().unwrap().contains("pending") || lines.first().unwrap().contains("running"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("running") && l.contains('%')),
        "progress lines: {lines:?}"
    );
    assert!(lines.last().unwrap().contains("complete"), "{lines:?}");
    // JSON mode on a finished job: one line, then exit.
    let out = env.ok(&["watch", &id, "--json"]);
    let v: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(v["status"], "complete");
}

#[test]
fn completions_for_every_shell() {
    let env = Env::new();
    for shell in ["bash", "zsh", "fish"] {
        let out = env.ok(&["completions", shell]);
        assert!(out.contains("semiont-jobs"), "{shell}");
    }
}

#[test]
fn every_command_has_help_with_examples() {
    let env = Env::new();
    for cmd in [
        vec!["init"],
        vec!["enqueue", "detection"],
        vec!["enqueue", "generation"],
        vec!["enqueue", "custom"],
        vec!["get"],
        vec!["list"],
        vec!["stats"],
        vec!["cancel"],
        vec!["retry"],
        vec!["cleanup"],
        vec!["watch"],
        vec!["work"],
        vec!["resources", "add"],
        vec!["annotations", "list"],
        vec!["demo"],
        vec!["bench"],
        vec!["completions"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let out = env.ok(&args);
        assert!(
            out.contains("Example"),
            "{cmd:?} --help has no example:\n{out}"
        );
    }
}
