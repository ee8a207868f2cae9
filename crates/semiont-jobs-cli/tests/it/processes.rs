//! Worker processes: cancellation across processes, a killed worker's job
//! re-run promptly by another process, graceful and forced stop on signals;
//! each on the filesystem backend and on PostgreSQL.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::Env;

const WAIT: Duration = Duration::from_secs(30);

/// A `work` process whose JSON log events arrive on a channel.
pub(crate) struct WorkerProc {
    child: Option<Child>,
    events: mpsc::Receiver<Value>,
}

impl WorkerProc {
    pub(crate) fn start(env: &Env, extra: &[&str]) -> WorkerProc {
        let mut child = env
            .cmd()
            .args(["--log-format", "json", "work", "--poll-interval", "200"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr: ChildStderr = child.stderr.take().unwrap();
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
            }
        });
        WorkerProc {
            child: Some(child),
            events,
        }
    }

    /// Waits for a log event named `event` (for `job_id`, if given).
    pub(crate) fn wait_for(&self, event: &str, job_id: Option<&str>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {event} event within {WAIT:?}"));
            if v["event"] == event && job_id.is_none_or(|id| v["job_id"] == id) {
                return v;
            }
        }
    }

    /// Every log event up to and including the first named `event` (for
    /// `job_id`, if given).
    pub(crate) fn collect_until(&self, event: &str, job_id: Option<&str>) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .events
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {event} event within {WAIT:?}"));
            let done = v["event"] == event && job_id.is_none_or(|id| v["job_id"] == id);
            out.push(v);
            if done {
                return out;
            }
        }
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.as_ref().unwrap().id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    }

    pub(crate) fn wait_exit(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        rx.recv_timeout(WAIT).expect("worker exits").unwrap()
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn enqueue_sleep(env: &Env, ms: u64) -> String {
    let params = format!(r#"{{"ms": {ms}}}"#);
    env.json(&[
        "enqueue", "custom", "--type", "sleep", "--user", "u", "--params", &params,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn cancel_from_another_process_reaches_the_running_job_within_a_second(env: Env) {
    let id = enqueue_sleep(&env, 60_000);
    let worker = WorkerProc::start(&env, &["--types", "sleep"]);
    worker.wait_for("job.started", Some(&id));
    let t0 = Instant::now();
    let cancelled = env.json(&["cancel", &id]);
    assert_eq!(cancelled["status"], "cancelled");
    worker.wait_for("job.cancelled", Some(&id));
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "cancel reached the job after {took:?}"
    );
    let after = env.json(&["get", &id]);
    assert_eq!(after["status"], "cancelled");
    assert!(
        after.get("result").is_none(),
        "nothing recorded after the cancel"
    );
    worker.signal("-TERM");
    assert!(worker.wait_exit().success());
}

fn a_killed_workers_job_is_rerun_by_another_process_well_before_its_lease_ends(env: Env) {
    let id = enqueue_sleep(&env, 2_000);
    let first = WorkerProc::start(&env, &["--types", "sleep"]);
    let started = first.wait_for("job.started", Some(&id));
    let first_worker = started["worker_id"].as_str().unwrap().to_owned();
    drop(first); // SIGKILL
    let t0 = Instant::now();
    let second = WorkerProc::start(&env, &["--types", "sleep", "--exit-when-idle"]);
    let restarted = second.wait_for("job.started", Some(&id));
    let took = t0.elapsed();
    assert_eq!(restarted["attempt"], 2);
    assert_ne!(restarted["worker_id"].as_str().unwrap(), first_worker);
    assert!(
        took < Duration::from_secs(10),
        "re-run after {took:?}; the lease is 30 s"
    );
    second.wait_for("job.completed", Some(&id));
    assert!(second.wait_exit().success());
    let job = env.json(&["get", &id]);
    assert_eq!(job["status"], "complete");
    assert_eq!(job["retryCount"], 1);
}

fn sigterm_waits_for_the_running_job_then_exits(env: Env) {
    let id = enqueue_sleep(&env, 800);
    let worker = WorkerProc::start(&env, &["--types", "sleep"]);
    worker.wait_for("job.started", Some(&id));
    worker.signal("-TERM");
    worker.wait_for("job.completed", Some(&id));
    assert!(worker.wait_exit().success());
    assert_eq!(env.json(&["get", &id])["status"], "complete");
}

fn a_second_signal_cancels_the_running_job_and_gives_it_back(env: Env) {
    let id = enqueue_sleep(&env, 60_000);
    let worker = WorkerProc::start(&env, &["--types", "sleep"]);
    worker.wait_for("job.started", Some(&id));
    worker.signal("-INT");
    // The first signal only stops claiming (signals can coalesce, so wait
    // until it was handled before sending the second).
    worker.wait_for("worker.stopping", None);
    worker.signal("-INT");
    worker.wait_for("job.released", Some(&id));
    assert!(worker.wait_exit().success());
    let job = env.json(&["get", &id]);
    assert_eq!(job["status"], "pending", "recoverable, never half-complete");
    assert_eq!(job["retryCount"], 0);
}

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod fs {
            $(
                #[test]
                fn $case() {
                    super::$case(crate::support::Env::new());
                }
            )*
        }
        mod postgres {
            $(
                #[test]
                fn $case() {
                    super::$case(crate::support::Env::pg());
                }
            )*
        }
    };
}

on_both_backends!(
    cancel_from_another_process_reaches_the_running_job_within_a_second,
    a_killed_workers_job_is_rerun_by_another_process_well_before_its_lease_ends,
    sigterm_waits_for_the_running_job_then_exits,
    a_second_signal_cancels_the_running_job_and_gives_it_back,
);
