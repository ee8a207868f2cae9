//! `serve` as a process: a job enqueued over HTTP and run by a `work`
//! process streams its progress to completion over SSE; SIGTERM stops the
//! server gracefully; tokens from a file or the environment are enforced
//! and never logged; a public address without tokens is refused.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use crate::processes::WorkerProc;
use crate::support::Env;

const WAIT: Duration = Duration::from_secs(30);

/// A `serve` process; its log lines are collected.
struct ServeProc {
    child: Option<Child>,
    url: String,
    log: Arc<Mutex<String>>,
}

impl ServeProc {
    fn start(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> ServeProc {
        let mut cmd = env.cmd();
        cmd.args(["--log-format", "json", "serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("SEMIONT_JOBS_TOKENS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        let first = rx.recv_timeout(WAIT).expect("serve announces its address");
        let url = first
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {first:?}: {}", log.lock().unwrap()))
            .to_owned();
        ServeProc {
            child: Some(child),
            url,
            log,
        }
    }

    fn sigterm(&self) {
        let ok = std::process::Command::new("kill")
            .args(["-TERM", &self.child.as_ref().unwrap().id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        rx.recv_timeout(WAIT).expect("serve exits").unwrap()
    }
}

impl Drop for ServeProc {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Reads SSE events (name, data) from a streaming response.
struct Events {
    resp: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(req: reqwest::RequestBuilder) -> Events {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        Events {
            resp,
            buf: String::new(),
        }
    }

    /// The next named event, or `None` when the stream ends.
    async fn next(&mut self) -> Option<(String, Value)> {
        tokio::time::timeout(WAIT, async {
            loop {
                while let Some(end) = self.buf.find("\n\n") {
                    let block: String = self.buf.drain(..end + 2).collect();
                    let name = block.lines().find_map(|l| l.strip_prefix("event: "));
                    let data = block.lines().find_map(|l| l.strip_prefix("data: "));
                    if let (Some(name), Some(data)) = (name, data) {
                        return Some((name.to_owned(), serde_json::from_str(data).unwrap()));
                    }
                }
                match self.resp.chunk().await {
                    Ok(Some(b)) => self.buf.push_str(std::str::from_utf8(&b).unwrap()),
                    _ => return None,
                }
            }
        })
        .await
        .expect("an event within the wait")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_run_by_a_work_process_streams_to_completion() {
    let env = Env::new();
    env.ok(&["init"]);
    let mut serve = ServeProc::start(&env, &[], &[]);
    let http = client();
    let mut all = Events::open(http.get(format!("{}/api/v1/events", serve.url))).await;
    let resp = http
        .post(format!("{}/api/v1/jobs", serve.url))
        .json(&json!({"type": "sleep", "userId": "u1", "ms": 800}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let job: Value = resp.json().await.unwrap();
    let id = job["id"].as_str().unwrap().to_owned();
    let mut one = Events::open(http.get(format!("{}/api/v1/jobs/{id}/events", serve.url))).await;
    let (name, state) = one.next().await.unwrap();
    assert_eq!(
        (name.as_str(), state["status"].as_str()),
        ("state", Some("pending"))
    );

    let worker = WorkerProc::start(&env, &["--types", "sleep"]);
    let mut kinds = Vec::new();
    let mut percentages = Vec::new();
    while let Some((name, data)) = one.next().await {
        assert_eq!(data["jobId"], id.as_str());
        // The stream may open before the server has relayed this process's
        // own create; the snapshot above already showed it. Everything
        // after comes from the work process.
        if name == "created" && kinds.is_empty() {
            assert_eq!(data["origin"], "local", "{data}");
            continue;
        }
        assert_eq!(data["origin"], "external", "{data}");
        if name == "progress" {
            percentages.push(data["job"]["progress"]["percentage"].as_f64().unwrap());
        }
        kinds.push(name);
    }
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("started"),
        "{kinds:?}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("completed"),
        "{kinds:?}"
    );
    assert!(!percentages.is_empty(), "progress streamed: {kinds:?}");
    assert!(
        percentages.windows(2).all(|w| w[0] <= w[1]),
        "{percentages:?}"
    );
    worker.wait_for("job.completed", Some(&id));

    // The all-jobs stream saw the local create and the worker's changes.
    let (name, created) = all.next().await.unwrap();
    assert_eq!(
        (name.as_str(), created["origin"].as_str()),
        ("created", Some("local"))
    );
    loop {
        let (name, data) = all.next().await.expect("the stream goes on");
        if name == "completed" {
            assert_eq!(data["job"]["result"]["sleptMs"], 800);
            break;
        }
    }
    let metrics = http
        .get(format!("{}/metrics", serve.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("semiont_jobs_finished_total{type=\"sleep\",status=\"complete\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("semiont_jobs_run_seconds_count{type=\"sleep\",outcome=\"complete\"} 1")
    );

    // SIGTERM: the open stream ends, the process exits 0.
    serve.sigterm();
    assert!(all.next().await.is_none(), "the stream ended at shutdown");
    assert!(serve.wait_exit().success());
    let log = serve.log.lock().unwrap().clone();
    assert!(log.contains("\"event\":\"server.stopping\""), "{log}");
    assert!(
        log.contains("\"event\":\"http.request\""),
        "access log: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_from_a_file_or_the_environment_are_enforced_and_never_logged() {
    let env = Env::new();
    env.ok(&["init"]);
    let admin = "admin-secret-0123456789abcdef";
    let file = env.data.join("tokens");
    std::fs::write(&file, format!("# ops\nadmin:{admin}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = file.to_str().unwrap().to_owned();
    let http = client();
    {
        let mut serve = ServeProc::start(&env, &["--token-file", &file], &[]);
        let stats = format!("{}/api/v1/stats", serve.url);
        assert_eq!(http.get(&stats).send().await.unwrap().status(), 401);
        let wrong = http
            .get(&stats)
            .bearer_auth("admin-secret-0123456789abcdeX");
        assert_eq!(wrong.send().await.unwrap().status(), 401);
        assert_eq!(
            http.get(&stats)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        serve.sigterm();
        assert!(serve.wait_exit().success());
        let log = serve.log.lock().unwrap().clone();
        assert!(log.contains("\"status\":401"), "{log}");
        assert!(
            !log.contains("secret-0123456789"),
            "a token in the log: {log}"
        );
    }
    // From the environment: a read token cannot create jobs.
    let reader = "reader-secret-0123456789abcd";
    let mut serve = ServeProc::start(
        &env,
        &[],
        &[("SEMIONT_JOBS_TOKENS", &format!("read:{reader}"))],
    );
    let jobs = format!("{}/api/v1/jobs", serve.url);
    let resp = http
        .post(&jobs)
        .bearer_auth(reader)
        .json(&json!({"type": "noop", "userId": "u"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        http.get(&jobs)
            .bearer_auth(reader)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    serve.sigterm();
    assert!(serve.wait_exit().success());
    assert!(!serve.log.lock().unwrap().contains("secret-0123456789"));

    // A token file others can read is refused, naming the fix.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = env.fails(
        &["serve", "--listen", "127.0.0.1:0", "--token-file", &file],
        2,
    );
    assert!(err.contains("chmod 600"), "{err}");
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn a_public_address_without_tokens_is_refused() {
    let env = Env::new();
    let mut cmd = env.cmd();
    cmd.env_remove("SEMIONT_JOBS_TOKENS");
    let out = cmd
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(
            "error: invalid server configuration: refusing to listen on 0.0.0.0:0 without a token"
        ),
        "{err}"
    );
    let err = env.fails(
        &["serve", "--listen", "127.0.0.1:0", "--base-path", "jobs/"],
        2,
    );
    assert!(
        err.contains("base path \"jobs/\" must start with /"),
        "{err}"
    );
}
