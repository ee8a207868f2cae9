//! Fault torture on PostgreSQL: `work` processes run sleep jobs on a server
//! of the test's own while the test SIGKILLs a worker process mid-job,
//! terminates every database connection of another (`pg_terminate_backend`)
//! and restarts the server. Afterwards every job is complete (nothing lost,
//! nothing stuck running), and the execution spans the workers logged show
//! that no job ever ran twice at the same time and that only jobs in
//! flight at a fault ran again. One round in CI; `SEMIONT_JOBS_TORTURE=1`
//! (`cargo xtask torture`) runs five rounds over more jobs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use semiont_jobs::model::NewJob;
use semiont_jobs::queue::{JobQueue, JobQueueConfig};
use semiont_jobs::store_pg::testing::TestCluster;
use semiont_jobs::store_pg::{PgOptions, PgStore};
use serde_json::json;

use crate::support::Env;

const SCHEMA: &str = "torture";

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// What the test did, and when (unix nanos).
#[derive(Debug)]
enum Fault {
    /// SIGKILL of a worker process.
    Kill { pid: u32, at: u128 },
    /// Every connection of a worker process terminated.
    Terminate { pid: u32, at: u128 },
    /// The server restarted (fast shutdown) between `from` and `to`.
    Restart { from: u128, to: u128 },
}

/// One execution of one attempt in one process.
#[derive(Debug, Clone)]
struct Span {
    pid: u32,
    start: u128,
    end: Option<u128>,
}

fn spans(path: &Path) -> HashMap<String, Vec<Span>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut open: HashMap<(u32, String, String), Span> = HashMap::new();
    let mut out: HashMap<String, Vec<Span>> = HashMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [pid, job, attempt, what, at] = f[..] else {
            panic!("bad span line {line:?}")
        };
        let (pid, at): (u32, u128) = (pid.parse().unwrap(), at.parse().unwrap());
        let key = (pid, job.to_owned(), attempt.to_owned());
        match what {
            "start" => {
                open.insert(
                    key,
                    Span {
                        pid,
                        start: at,
                        end: None,
                    },
                );
            }
            "end" => {
                let mut span = open.remove(&key).expect("an end after its start");
                span.end = Some(at);
                out.entry(job.to_owned()).or_default().push(span);
            }
            other => panic!("bad span kind {other:?}"),
        }
    }
    for ((_, job, _), span) in open {
        out.entry(job).or_default().push(span);
    }
    out
}

/// Jobs started and not yet ended, per process.
fn in_flight(path: &Path) -> HashMap<u32, usize> {
    let mut n: HashMap<u32, usize> = HashMap::new();
    for span in spans(path).values().flatten() {
        if span.end.is_none() {
            *n.entry(span.pid).or_default() += 1;
        }
    }
    n
}

fn ended(path: &Path) -> usize {
    spans(path)
        .values()
        .flatten()
        .filter(|s| s.end.is_some())
        .count()
}

fn until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Workers {
    env: Env,
    log: PathBuf,
    procs: Vec<Child>,
}

impl Workers {
    fn spawn(&mut self) {
        let child = self
            .env
            .cmd()
            .args([
                "work",
                "--types",
                "sleep",
                "--concurrency",
                "4",
                "--poll-interval",
                "200",
            ])
            .arg("--exec-spans")
            .arg(&self.log)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.procs.push(child);
    }

    /// The index of a live worker process running at least one job.
    fn busy(&mut self) -> usize {
        let mut found = None;
        until(
            "a worker process runs a job",
            Duration::from_secs(60),
            || {
                let running = in_flight(&self.log);
                found = self
                    .procs
                    .iter()
                    .position(|c| running.get(&c.id()).copied().unwrap_or(0) > 0);
                found.is_some()
            },
        );
        found.unwrap()
    }

    /// Waits until `n` more executions have ended.
    fn progress(&self, n: usize) {
        let base = ended(&self.log);
        until(
            "the workers make progress",
            Duration::from_secs(120),
            || ended(&self.log) >= base + n,
        );
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.procs {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn terminate_connections_of(cluster: &TestCluster, pid: u32) -> u64 {
    let url = cluster.url().expose().to_owned();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async move {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(conn);
            let rows = client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                    &[&format!("semiont-jobs/{pid}")],
                )
                .await
                .unwrap();
            rows.len() as u64
        })
}

#[test]
#[allow(clippy::print_stderr, reason = "the test reports what it measured")]
fn jobs_survive_killed_workers_cut_connections_and_a_server_restart() {
    let long = std::env::var_os("SEMIONT_JOBS_TORTURE").is_some();
    let (rounds, jobs) = if long { (5, 1500) } else { (1, 240) };
    let cluster = TestCluster::start();
    let url = cluster.url().expose().to_owned();
    let env = Env::on_db(&url, SCHEMA, None);
    env.ok(&["init"]);
    {
        let url = url.clone();
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let store =
                    PgStore::open(&url.parse().unwrap(), PgOptions::default().schema(SCHEMA))
                        .await
                        .unwrap();
                let queue = JobQueue::new(JobQueueConfig::new("unused"), Arc::new(store)).unwrap();
                let batch = (0..jobs).map(|i| {
                    NewJob::custom("sleep", "u", json!({ "ms": 150 + (i * 37) % 450 })).unwrap()
                });
                queue.create_jobs(batch).await.unwrap();
            });
    }
    let log = env.data.with_extension("spans");
    let mut workers = Workers {
        env: Env::on_db(&url, SCHEMA, None),
        log: log.clone(),
        procs: Vec::new(),
    };
    for _ in 0..3 {
        workers.spawn();
    }
    let mut faults = Vec::new();
    for _ in 0..rounds {
        // SIGKILL a process in the middle of jobs; a new one takes its place.
        let i = workers.busy();
        let mut victim = workers.procs.remove(i);
        let pid = victim.id();
        victim.kill().unwrap();
        faults.push(Fault::Kill {
            pid,
            at: now_nanos(),
        });
        victim.wait().unwrap();
        workers.spawn();
        workers.progress(20);
        // Cut every connection of a busy process (it lives on).
        let i = workers.busy();
        let pid = workers.procs[i].id();
        let at = now_nanos();
        let cut = terminate_connections_of(&cluster, pid);
        assert!(
            cut >= 2,
            "the process had its listener and pool connections ({cut})"
        );
        faults.push(Fault::Terminate { pid, at });
        workers.progress(20);
        // Restart the server under everyone.
        workers.busy();
        let from = now_nanos();
        cluster.restart();
        faults.push(Fault::Restart {
            from,
            to: now_nanos(),
        });
        workers.progress(20);
    }
    // Everything finishes: nothing lost, nothing stuck running.
    let deadline = Duration::from_secs(if long { 900 } else { 180 });
    until("every job completes", deadline, || {
        env.json(&["stats"])["complete"].as_u64() == Some(jobs as u64)
    });
    let stats = env.json(&["stats"]);
    assert_eq!(
        (
            stats["pending"].as_u64(),
            stats["running"].as_u64(),
            stats["failed"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{stats}"
    );
    for mut c in std::mem::take(&mut workers.procs) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let status = c.wait().unwrap();
        assert!(status.success(), "a worker exited with {status}");
    }
    // The spans: one job never runs twice at once, and runs again only
    // when an earlier run was in flight at a fault.
    let killed: HashMap<u32, u128> = faults
        .iter()
        .filter_map(|f| match f {
            Fault::Kill { pid, at } => Some((*pid, *at)),
            _ => None,
        })
        .collect();
    let slack: u128 = 2_000_000_000;
    let at_a_fault = |span: &Span, end: u128| {
        faults.iter().any(|f| match f {
            Fault::Kill { pid, at } | Fault::Terminate { pid, at } => {
                span.pid == *pid && span.start <= *at && end + slack >= *at
            }
            Fault::Restart { from, to } => span.start <= *to && end + slack >= *from,
        })
    };
    let all = spans(&log);
    assert_eq!(all.len(), jobs, "every job was executed");
    let mut reruns = 0;
    for (job, runs) in &all {
        let mut runs: Vec<(Span, u128)> = runs
            .iter()
            .map(|s| {
                let end = s.end.or_else(|| killed.get(&s.pid).copied()).unwrap_or_else(|| {
                    panic!("job {job}: a run without an end in a process that was not killed: {s:?}")
                });
                (s.clone(), end)
            })
            .collect();
        runs.sort_by_key(|(s, _)| s.start);
        for pair in runs.windows(2) {
            let ((a, a_end), (b, _)) = (&pair[0], &pair[1]);
            assert!(
                *a_end <= b.start,
                "job {job} ran twice at once: {a:?} (ended {a_end}) and {b:?}; faults {faults:?}"
            );
            assert!(
                at_a_fault(a, *a_end),
                "job {job} ran again though its run {a:?} was not in flight at a fault {faults:?}"
            );
            reruns += 1;
        }
    }
    assert!(reruns > 0, "the faults interrupted some jobs");
    eprintln!(
        "{jobs} jobs, {} faults, {reruns} re-runs, all complete, no overlap",
        faults.len()
    );
}
