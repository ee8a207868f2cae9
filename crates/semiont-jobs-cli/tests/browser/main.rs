//! The web dashboard in a real browser: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven over WebDriver against a real
//! `semiont-jobs serve` (filesystem backend in a temp dir, tokens, a base
//! path) and a real `semiont-jobs work` process. Run by `cargo xtask
//! browser` (a step of `cargo xtask ci`), which installs the browser when
//! missing; `cargo test` leaves this target out (`test = false`).
//!
//! Screenshots of every page land in `<target>/dashboard-screenshots/`.

#![allow(
    clippy::print_stderr,
    reason = "the test reports where its screenshots are"
)]

mod webdriver;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use webdriver::{poll, Driver, Session, WAIT};

const ADMIN: &str = "admin-token-browser-0123456789";
const READ: &str = "read-token-browser-0123456789";
const BASE_PATH: &str = "/ops";

/// The browser binaries: from the environment (set by `cargo xtask
/// browser`), else Debian's paths; missing ones fail the test with the
/// packages to install.
fn browser_paths() -> (String, String) {
    let chromium =
        std::env::var("SEMIONT_JOBS_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let driver = std::env::var("SEMIONT_JOBS_CHROMEDRIVER")
        .unwrap_or_else(|_| "/usr/bin/chromedriver".into());
    for p in [&chromium, &driver] {
        assert!(
            Path::new(p).is_file(),
            "{p} is missing: install Debian's chromium and chromium-driver \
             (`cargo xtask browser` does it when run as root)"
        );
    }
    (chromium, driver)
}

/// Where screenshots go: `<target>/dashboard-screenshots/`.
fn screenshot_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A child process whose standard error lines (JSON logs) are collected.
struct Proc {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn spawn(mut cmd: Command) -> (Proc, mpsc::Receiver<String>) {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        (Proc { child, log }, rx)
    }

    /// The JSON log events so far.
    fn events(&self) -> Vec<Value> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits for a log event named `event` about `job_id` (and `attempt`).
    async fn wait_log(&self, event: &str, job_id: &str, attempt: Option<u64>) -> Value {
        let this = self;
        poll(WAIT, move || async move {
            this.events()
                .into_iter()
                .find(|v| {
                    v["event"] == event
                        && v["job_id"] == job_id
                        && attempt.is_none_or(|a| v["attempt"].as_u64() == Some(a))
                })
                .ok_or_else(|| {
                    format!(
                        "no {event} for {job_id} in the work log within {WAIT:?}:\n{}",
                        this.log.lock().unwrap().join("\n")
                    )
                })
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn semiont(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_semiont-jobs"));
    c.arg("--data-dir").arg(data).args(["--log-format", "json"]);
    for var in [
        "SEMIONT_JOBS_DATA_DIR",
        "SEMIONT_JOBS_CONFIG",
        "SEMIONT_JOBS_DATABASE_URL",
        "SEMIONT_JOBS_DB_SCHEMA",
        "SEMIONT_JOBS_TOKENS",
        "RUST_LOG",
    ] {
        c.env_remove(var);
    }
    c
}

/// The API, as a script would call it (admin token).
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(ADMIN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    async fn enqueue(&self, job_type: &str, user: &str, params: Value) -> String {
        let mut body = json!({ "type": job_type, "userId": user, "maxRetries": 0 });
        for (k, v) in params.as_object().unwrap() {
            body[k] = v.clone();
        }
        let job = self.call(reqwest::Method::POST, "/jobs", Some(body)).await;
        job["id"].as_str().unwrap().to_owned()
    }

    async fn job(&self, id: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/jobs/{id}"), None)
            .await
    }

    async fn wait_status(&self, id: &str, status: &str) -> Value {
        let this = self;
        poll(WAIT, move || async move {
            let job = this.job(id).await;
            if job["status"] == status {
                Ok(job)
            } else {
                Err(format!("{id} not {status}: {job}"))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Api {
    /// Waits until the server counts `n` event-stream clients.
    async fn wait_sse_clients(&self, n: u64) {
        let this = self;
        poll(WAIT, move || async move {
            let text = this
                .http
                .get(format!("{}/metrics", this.url))
                .bearer_auth(ADMIN)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let clients = text
                .lines()
                .find_map(|l| l.strip_prefix("semiont_jobs_sse_clients "))
                .and_then(|v| v.trim().parse::<u64>().ok());
            if clients == Some(n) {
                Ok(())
            } else {
                Err(format!("sse clients {clients:?}, expected {n}"))
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
}

async fn shot(s: &Session, dir: &Path, name: &str) {
    let png = s.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Signs in with `token` and waits until the event stream is live.
async fn sign_in(s: &Session, token: &str) {
    let input = s
        .wait("the sign-in form shows", || async {
            s.find("#token").await.ok()
        })
        .await;
    s.type_into(&input, token).await.unwrap();
    s.click_when_ready("#login button[type=submit]").await;
    s.wait_js(
        "the live indicator says live",
        "document.getElementById('live').dataset.state === 'live'",
    )
    .await;
}

/// Clicks the confirmation dialog's OK after checking its question.
async fn confirm(s: &Session, expect: &str) {
    let text = s
        .wait_js(
            "the confirmation dialog opens",
            "document.getElementById('confirm').open && document.getElementById('confirm-text').textContent",
        )
        .await;
    let text = text.as_str().unwrap_or_default().to_owned();
    assert!(
        text.contains(expect),
        "dialog says {text:?}, expected {expect:?}"
    );
    s.click_when_ready("#confirm-yes").await;
}

async fn hash(s: &Session, to: &str) {
    s.exec("location.hash = arguments[0];", vec![json!(to)])
        .await
        .unwrap();
}

/// Controls without an accessible name (a label, `aria-label` or text):
/// their descriptions. Every page must have none.
async fn unlabelled(s: &Session) -> Vec<String> {
    let v = s
        .exec(
            "return [...document.querySelectorAll('input, select, button, a[href]')]
               .filter(el => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
               .map(el => el.outerHTML.slice(0, 120));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

/// The ids of the rows the jobs table shows.
async fn row_ids(s: &Session) -> Vec<String> {
    let v = s
        .exec(
            "return [...document.querySelectorAll('#jobs-table tbody tr[data-job-id]')].map(r => r.dataset.jobId);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(v).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let started = Instant::now();
    let (chromium, chromedriver) = browser_paths();
    let shots = screenshot_dir();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let tokens = tmp.path().join("tokens");
    std::fs::write(&tokens, format!("admin:{ADMIN}\nread:{READ}\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();

    // A document for a detection job (typed progress on the job page).
    let notes = tmp.path().join("notes.md");
    std::fs::write(
        &notes,
        "# Notes\n\nAda Lovelace met Charles Babbage in London on 5 June 1833.\n",
    )
    .unwrap();
    let added = semiont(&data)
        .args(["resources", "add"])
        .arg(&notes)
        .args(["--name", "Notes", "--language", "en"])
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");

    let mut serve_cmd = semiont(&data);
    serve_cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--base-path", BASE_PATH])
        .arg("--token-file")
        .arg(&tokens);
    let (serve, serve_out) = Proc::spawn(serve_cmd);
    let first = serve_out
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("serve did not start: {:?}", serve.log.lock().unwrap()));
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    assert!(url.ends_with(BASE_PATH), "{url}");
    let mut work_cmd = semiont(&data);
    work_cmd.args([
        "work",
        "--poll-interval",
        "200",
        "--types",
        "sleep,fail,noop,detection",
        "--concurrency",
        "4",
        "--no-sweep",
    ]);
    let (work, _) = Proc::spawn(work_cmd);
    let api = Api {
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        url: url.clone(),
    };

    let driver = Driver::start(&chromedriver).await;
    let s = driver.session(&chromium).await;

    // Sign in as admin; the stream goes live.
    s.goto(&format!("{url}/")).await.unwrap();
    sign_in(&s, ADMIN).await;
    s.exec("window.__noReload = 'marker';", vec![])
        .await
        .unwrap();

    // Some history: jobs that complete and jobs that fail.
    for _ in 0..6 {
        api.enqueue("noop", "bob", json!({})).await;
    }
    let mut failed = Vec::new();
    for _ in 0..2 {
        failed.push(
            api.enqueue("fail", "bob", json!({ "retryable": false }))
                .await,
        );
    }
    for id in &failed {
        api.wait_status(id, "failed").await;
    }

    // Jobs enqueued through the API appear in the list without a reload.
    s.click_when_ready("#nav a[data-route=jobs]").await;
    s.wait_js(
        "the jobs table shows",
        "document.querySelector('#jobs-table tbody tr')",
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(api.enqueue("hold", "alice", json!({})).await);
    }
    s.wait("the new jobs appear in the list", || async {
        let ids = row_ids(&s).await;
        held.iter().all(|h| ids.contains(h)).then_some(())
    })
    .await;
    assert_eq!(
        s.exec("return window.__noReload;", vec![]).await.unwrap(),
        "marker",
        "the page was reloaded"
    );

    // Filters change the URL and the rows.
    s.click_when_ready("#f-status option[value=failed]").await;
    s.wait_js(
        "the URL has status=failed",
        "location.hash === '#/jobs?status=failed'",
    )
    .await;
    s.wait("only failed jobs are listed", || async {
        let ids = row_ids(&s).await;
        let statuses = s
            .exec(
                "return [...document.querySelectorAll('#jobs-table tbody tr[data-job-id]')].every(r => r.dataset.status === 'failed');",
                vec![],
            )
            .await
            .unwrap();
        (failed.iter().all(|f| ids.contains(f)) && !ids.iter().any(|i| held.contains(i)) && statuses == true)
            .then_some(())
    })
    .await;
    let user = s.find("#f-user").await.unwrap();
    s.type_into(&user, "alice\u{E007}").await.unwrap();
    s.wait_js(
        "the URL has both filters",
        "location.hash === '#/jobs?status=failed&userId=alice'",
    )
    .await;
    s.wait("no failed job of alice is listed", || async {
        row_ids(&s).await.is_empty().then_some(())
    })
    .await;
    s.click_when_ready("#f-status option[value=pending]").await;
    s.wait_js(
        "the URL has status=pending",
        "location.hash === '#/jobs?status=pending&userId=alice'",
    )
    .await;
    s.wait("alice's pending jobs are listed", || async {
        let mut ids = row_ids(&s).await;
        ids.sort();
        let mut want = held.clone();
        want.sort();
        (ids == want).then_some(())
    })
    .await;
    // Id search: part of an id finds the job (with the other filters).
    let part = &held[1][held[1].len() - 8..];
    let id_box = s.find("#f-id").await.unwrap();
    s.type_into(&id_box, &format!("{part}\u{E007}"))
        .await
        .unwrap();
    s.wait_js(
        "the URL has the id search",
        &format!("location.hash === '#/jobs?status=pending&userId=alice&id={part}'"),
    )
    .await;
    s.wait("only the searched job is listed", || async {
        (row_ids(&s).await == [held[1].clone()]).then_some(())
    })
    .await;
    shot(&s, &shots, "jobs-search").await;
    s.click_when_ready("#f-clear").await;
    s.wait_js("the filters are cleared", "location.hash === '#/jobs'")
        .await;
    s.click_when_ready("#f-status option[value=pending]").await;
    let user = s.find("#f-user").await.unwrap();
    s.type_into(&user, "alice\u{E007}").await.unwrap();
    s.wait_js(
        "the URL has both filters again",
        "location.hash === '#/jobs?status=pending&userId=alice'",
    )
    .await;
    s.wait("alice's pending jobs are listed again", || async {
        (row_ids(&s).await.len() == 3).then_some(())
    })
    .await;
    shot(&s, &shots, "jobs-filtered").await;
    assert_eq!(unlabelled(&s).await, Vec::<String>::new(), "jobs page");

    // Bulk cancel of everything matching: the count, a confirmation, done.
    s.click_when_ready("#bulk-cancel-matching").await;
    confirm(&s, "Cancel 3 jobs matching status=pending userId=alice").await;
    for id in &held {
        api.wait_status(id, "cancelled").await;
    }
    s.wait("cancelled jobs leave the pending list", || async {
        row_ids(&s).await.is_empty().then_some(())
    })
    .await;

    // Bulk delete of a selection: tick one row, delete it.
    hash(&s, "#/jobs?status=cancelled&userId=alice").await;
    let tick = format!("#jobs-table tr[data-job-id=\"{}\"] input.select", held[0]);
    s.click_when_ready(&tick).await;
    s.wait_js(
        "the bulk button counts the selection",
        "document.getElementById('bulk-delete-selected')?.textContent === 'Delete selected (1)'",
    )
    .await;
    s.click_when_ready("#bulk-delete-selected").await;
    confirm(&s, "Delete 1 selected job?").await;
    s.wait("the deleted job leaves the list", || async {
        let ids = row_ids(&s).await;
        (ids.len() == 2 && !ids.contains(&held[0])).then_some(())
    })
    .await;
    let gone = api
        .http
        .get(format!("{}/api/v1/jobs/{}", api.url, held[0]))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), reqwest::StatusCode::NOT_FOUND);

    // Retry of a failed job from the list makes it run again.
    let again = &failed[0];
    hash(&s, "#/jobs?status=failed").await;
    let retry = format!("#jobs-table tr[data-job-id=\"{again}\"] button[data-action=retry]");
    s.click_when_ready(&retry).await;
    confirm(&s, &format!("Retry job {again}?")).await;
    work.wait_log("job.started", again, Some(2)).await;
    let job = api.wait_status(again, "failed").await;
    assert_eq!(job["attempt"], 2, "{job}");

    // Detection's typed progress: entity types done, entities found.
    let detection = api
        .enqueue(
            "detection",
            "dave",
            json!({ "resourceId": "notes", "entityTypes": ["Person", "Location", "Date"] }),
        )
        .await;
    api.wait_status(&detection, "complete").await;
    hash(&s, &format!("#/job/{detection}")).await;
    s.wait_js(
        "the job page shows detection's progress and result",
        "document.getElementById('job-progress-panel')?.textContent.includes('entity types3 of 3') \
         && document.getElementById('job-progress-panel').textContent.includes('entities found') \
         && document.getElementById('job-progress')?.value === 100 \
         && document.getElementById('job-result')?.textContent.includes('totalEmitted')",
    )
    .await;
    shot(&s, &shots, "job-detection").await;

    // A running sleep job's progress bar moves on its page.
    let sleeper = api.enqueue("sleep", "carol", json!({ "ms": 8000 })).await;
    hash(&s, &format!("#/job/{sleeper}")).await;
    let first = s
        .wait_js(
            "the progress bar shows progress",
            "document.getElementById('job-progress')?.value",
        )
        .await
        .as_f64()
        .unwrap();
    let expr = format!("document.getElementById('job-progress')?.value > {first}");
    s.wait_js("the progress bar moves", &expr).await;
    shot(&s, &shots, "job").await;
    assert_eq!(unlabelled(&s).await, Vec::<String>::new(), "job page");

    // Cancel from the job page stops the running job.
    s.click_when_ready("#action-cancel").await;
    confirm(&s, &format!("Cancel job {sleeper}?")).await;
    s.wait_js(
        "the page shows the job cancelled",
        "document.getElementById('job-status')?.textContent === 'cancelled'",
    )
    .await;
    work.wait_log("job.cancelled", &sleeper, Some(1)).await;
    let job = api.wait_status(&sleeper, "cancelled").await;
    assert!(
        !work
            .events()
            .iter()
            .any(|v| v["event"] == "job.completed" && v["job_id"] == sleeper.as_str()),
        "the cancelled job completed anyway: {job}"
    );
    assert!(
        s.find("#action-retry").await.is_ok(),
        "a cancelled job can be retried"
    );

    // The overview: counts live (a running job shown with its worker).
    let running = api.enqueue("sleep", "carol", json!({ "ms": 30000 })).await;
    api.wait_status(&running, "running").await;
    hash(&s, "#/").await;
    s.wait_js(
        "the charts are drawn",
        "document.getElementById('chart-throughput') && document.getElementById('chart-due')",
    )
    .await;
    let stats = api.call(reqwest::Method::GET, "/stats", None).await;
    let expr = format!(
        "document.querySelector('#status-cards [data-status=complete] .n')?.textContent === '{}' \
         && document.querySelector('#status-cards [data-status=running] .n')?.textContent === '1' \
         && document.querySelector('#workers-panel progress')",
        stats["complete"]
    );
    s.wait_js("the overview shows the counts and the running job", &expr)
        .await;
    let noop = api.enqueue("noop", "bob", json!({})).await;
    api.wait_status(&noop, "complete").await;
    let expr = format!(
        "document.querySelector('#status-cards [data-status=complete] .n')?.textContent === '{}'",
        stats["complete"].as_u64().unwrap() + 1
    );
    s.wait_js("the complete count rises without a reload", &expr)
        .await;
    s.wait_js(
        "the failures are grouped",
        "document.querySelector('#failures-panel td.err')?.textContent.includes('fail job asked to fail')",
    )
    .await;
    // The README's picture: without the action messages of earlier steps.
    s.wait_js(
        "the messages fade",
        "!document.querySelector('#toasts .toast')",
    )
    .await;
    shot(&s, &shots, "overview").await;
    assert_eq!(unlabelled(&s).await, Vec::<String>::new(), "overview");

    // The dark color scheme: the page follows prefers-color-scheme.
    let background = "return getComputedStyle(document.body).backgroundColor;";
    let light = s.exec(background, vec![]).await.unwrap();
    s.color_scheme("dark").await.unwrap();
    let dark = s.exec(background, vec![]).await.unwrap();
    assert_ne!(light, dark, "the background follows the color scheme");
    shot(&s, &shots, "overview-dark").await;
    s.color_scheme("light").await.unwrap();

    // Workers and types.
    s.click_when_ready("#nav a[data-route=workers]").await;
    s.wait_js(
        "the worker and its running job are listed",
        "document.querySelector('#workers tr[data-worker-id] progress')",
    )
    .await;
    // Pause and resume a type from its row.
    let paused = |want: bool| {
        let api = &api;
        async move {
            poll(WAIT, move || async move {
                let types = api.call(reqwest::Method::GET, "/types", None).await;
                let now = types["types"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|t| t["type"] == "fail" && t["paused"] == true);
                if now == want {
                    Ok(())
                } else {
                    Err(format!("fail paused: {now}, expected {want}"))
                }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    s.click_when_ready("#types tr[data-type=fail] .type-toggle[data-action=pause]")
        .await;
    confirm(&s, "Pause claims of fail?").await;
    paused(true).await;
    s.click_when_ready("#types tr[data-type=fail] .type-toggle[data-action=resume]")
        .await;
    confirm(&s, "Resume claims of fail?").await;
    paused(false).await;
    s.wait_js(
        "the row offers pause again",
        "document.querySelector('#types tr[data-type=fail] .type-toggle[data-action=pause]')",
    )
    .await;
    s.wait_js(
        "noop's run-time percentiles show (from /metrics)",
        "Number(document.querySelector('#types tr[data-type=noop] td.runs')?.textContent) >= 7 \
         && document.querySelector('#types tr[data-type=noop] td.p50').textContent !== '—'",
    )
    .await;
    shot(&s, &shots, "workers").await;
    assert_eq!(unlabelled(&s).await, Vec::<String>::new(), "workers page");

    // Keyboard: a focused link followed with Enter.
    let jobs_link = s.find("#nav a[data-route=jobs]").await.unwrap();
    s.type_into(&jobs_link, "\u{E007}").await.unwrap();
    s.wait_js(
        "Enter on the Jobs link opens the jobs",
        "location.hash === '#/jobs'",
    )
    .await;

    // No console error so far.
    let log = s.console_log().await.unwrap();
    let errors: Vec<&Value> = log.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // Without the event stream: the indicator says so, polling keeps the
    // page current, and the stream comes back when it can.
    s.block_urls(&["*/api/v1/events*"]).await.unwrap();
    hash(&s, "#/").await;
    s.exec("location.reload();", vec![]).await.unwrap();
    s.wait_js(
        "the indicator says reconnecting",
        "document.getElementById('live')?.dataset.state === 'reconnecting' \
         && document.getElementById('live').textContent.includes('polling')",
    )
    .await;
    let complete = api.call(reqwest::Method::GET, "/stats", None).await["complete"]
        .as_u64()
        .unwrap();
    s.wait_js(
        "the overview shows the counts",
        &format!("document.querySelector('#status-cards [data-status=complete] .n')?.textContent === '{complete}'"),
    )
    .await;
    let noop = api.enqueue("noop", "bob", json!({})).await;
    api.wait_status(&noop, "complete").await;
    // Within the 5 s poll (the overview also refreshes every 15 s by itself).
    s.wait_js_for(
        "polling brings the new count",
        Duration::from_secs(9),
        &format!(
            "document.querySelector('#status-cards [data-status=complete] .n')?.textContent === '{}'",
            complete + 1
        ),
    )
    .await;
    shot(&s, &shots, "overview-polling").await;
    s.block_urls(&[]).await.unwrap();
    s.wait_js(
        "the stream is live again",
        "document.getElementById('live')?.dataset.state === 'live'",
    )
    .await;
    // The only errors of this phase: the blocked stream requests.
    let log = s.console_log().await.unwrap();
    let errors: Vec<&Value> = log
        .iter()
        .filter(|e| {
            e["level"] == "SEVERE"
                && !e["message"].as_str().is_some_and(|m| {
                    m.contains("/api/v1/events") && m.contains("ERR_BLOCKED_BY_CLIENT")
                })
        })
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    // A hidden tab holds no stream (the server counts its clients), and
    // a visible one opens it again.
    let visibility = "const hidden = arguments[0];
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => hidden ? 'hidden' : 'visible' });
        document.dispatchEvent(new Event('visibilitychange'));";
    api.wait_sse_clients(1).await;
    s.exec(visibility, vec![json!(true)]).await.unwrap();
    s.wait_js(
        "the indicator says paused",
        "document.getElementById('live')?.dataset.state === 'paused'",
    )
    .await;
    api.wait_sse_clients(0).await;
    s.exec(visibility, vec![json!(false)]).await.unwrap();
    s.wait_js(
        "the stream is live again",
        "document.getElementById('live')?.dataset.state === 'live'",
    )
    .await;
    api.wait_sse_clients(1).await;

    // Read-only: a read token sees everything and no action.
    s.click_when_ready("#signout").await;
    sign_in(&s, READ).await;
    s.wait_js(
        "the page says read-only",
        "document.getElementById('read-only')",
    )
    .await;
    hash(&s, "#/jobs?status=failed").await;
    s.wait("failed jobs are listed", || async {
        row_ids(&s).await.contains(again).then_some(())
    })
    .await;
    let none = "return document.querySelectorAll('button.row-action, #bulk button, input.select, #select-all').length;";
    assert_eq!(
        s.exec(none, vec![]).await.unwrap(),
        0,
        "actions in read-only mode"
    );
    shot(&s, &shots, "jobs-read-only").await;
    hash(&s, &format!("#/job/{again}")).await;
    s.wait_js(
        "the job page shows",
        "document.getElementById('job-status')",
    )
    .await;
    let none = "return document.querySelectorAll('[id^=action-]').length;";
    assert_eq!(
        s.exec(none, vec![]).await.unwrap(),
        0,
        "job actions in read-only mode"
    );
    hash(&s, "#/workers").await;
    s.wait_js(
        "the types show",
        "document.querySelector('#types tr[data-type]')",
    )
    .await;
    let none = "return document.querySelectorAll('.type-toggle').length;";
    assert_eq!(
        s.exec(none, vec![]).await.unwrap(),
        0,
        "pause buttons in read-only mode"
    );

    // No console errors on any page.
    let log = s.console_log().await.unwrap();
    let errors: Vec<&Value> = log.iter().filter(|e| e["level"] == "SEVERE").collect();
    assert!(errors.is_empty(), "console errors: {errors:#?}");

    s.quit().await;
    drop(driver);
    drop(work);
    drop(serve);
    eprintln!(
        "dashboard browser test: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}
