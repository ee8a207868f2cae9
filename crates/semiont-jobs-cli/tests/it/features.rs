//! Resumable, unique, paused and configured work through the binary: the
//! `steps` job killed after two units and finished by another process,
//! unique keys, bulk cancel and retry, pause and resume, the configuration
//! file and its errors, `--params @file` and `-`, the retention sweep, plain
//! (colourless) text logs, and `get --json` keeping a document exactly.

use std::io::Write;
use std::process::Stdio;

use serde_json::{json, Value};

use crate::processes::WorkerProc;
use crate::support::{path_str, Env};

fn enqueue_steps(env: &Env, units: &[&str], ms: u64) -> String {
    let params = json!({ "units": units, "ms": ms }).to_string();
    env.json(&[
        "enqueue", "custom", "--type", "steps", "--user", "u", "--params", &params,
    ])["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn units_of(events: &[Value], id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|v| v["event"] == "job.unit" && v["job_id"] == id)
        .map(|v| v["unit"].as_str().unwrap().to_owned())
        .collect()
}

/// A `work` process is SIGKILLed after logging two of four units; a second
/// process finishes only the remaining two (asserted from both processes'
/// JSON logs), and the job ends with every unit completed.
#[test]
fn a_steps_job_killed_after_two_units_is_finished_with_the_other_two() {
    let env = Env::new();
    let id = enqueue_steps(&env, &["a", "b", "c", "d"], 500);
    let first = WorkerProc::start(&env, &["--types", "steps"]);
    let mut seen = first.collect_until("job.unit", Some(&id));
    seen.extend(first.collect_until("job.unit", Some(&id)));
    assert_eq!(units_of(&seen, &id), ["a", "b"]);
    assert!(seen
        .iter()
        .all(|v| v["attempt"] == 1 || v["attempt"].is_null()));
    drop(first); // SIGKILL, half a second before unit c would be done

    let second = WorkerProc::start(&env, &["--types", "steps", "--exit-when-idle"]);
    let events = second.collect_until("job.completed", Some(&id));
    assert_eq!(
        units_of(&events, &id),
        ["c", "d"],
        "only the remaining units"
    );
    let done = events.last().unwrap();
    assert_eq!(done["attempt"], 2);
    assert!(second.wait_exit().success());

    let job = env.json(&["get", &id]);
    assert_eq!(job["status"], "complete");
    assert_eq!(job["completedUnits"], json!(["a", "b", "c", "d"]));
    assert!(job.get("unitCursors").is_none());
    assert_eq!(job["result"]["ranThisAttempt"], json!(["c", "d"]));
    let text = env.ok(&["get", &id]);
    assert!(text.contains("done units:  a, b, c, d"), "{text}");
}

#[test]
fn a_unique_key_returns_the_job_holding_it() {
    let env = Env::new();
    let args = [
        "enqueue",
        "custom",
        "--type",
        "noop",
        "--user",
        "u",
        "--unique-key",
        "nightly:2026-01-01",
    ];
    let first = env.json(&args);
    assert_eq!(first["enqueued"], true);
    assert_eq!(first["uniqueKey"], "nightly:2026-01-01");
    let second = env.json(&args);
    assert_eq!(second["enqueued"], false);
    assert_eq!(second["id"], first["id"]);
    let text = env.ok(&args);
    assert!(text.starts_with("not enqueued: job "), "{text}");
    assert!(text.contains(first["id"].as_str().unwrap()), "{text}");
    assert_eq!(env.json(&["stats"])["pending"], 1);
    env.ok(&[
        "work",
        "--types",
        "noop",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    let third = env.json(&args);
    assert_eq!(third["enqueued"], true, "the holder finished");
    let err = env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "noop",
            "--user",
            "u",
            "--unique-key",
            " ",
        ],
        2,
    );
    assert!(err.contains("invalid unique key"), "{err}");
    let err = env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "noop",
            "--user",
            "u",
            "--unique-for",
            "1h",
        ],
        2,
    );
    assert!(err.contains("--unique-key"), "{err}");
}

#[test]
fn pause_resume_and_bulk_cancel_and_retry() {
    let env = Env::new();
    env.ok(&["init"]);
    let paused = env.json(&["pause", "noop"]);
    assert_eq!(
        (paused["paused"].clone(), paused["changed"].clone()),
        (json!(true), json!(true))
    );
    assert!(env.ok(&["pause", "noop"]).contains("already"));
    for _ in 0..3 {
        env.enqueue_noop();
    }
    let sleep = env.json(&[
        "enqueue",
        "custom",
        "--type",
        "sleep",
        "--user",
        "u",
        "--params",
        r#"{"ms": 10}"#,
    ]);
    // The paused type's jobs wait; the worker runs the rest and exits.
    env.ok(&[
        "work",
        "--types",
        "noop,sleep",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    let stats = env.json(&["stats"]);
    assert_eq!(
        (stats["pending"].clone(), stats["complete"].clone()),
        (json!(3), json!(1))
    );
    assert_eq!(stats["pausedTypes"], json!(["noop"]));
    assert_eq!(stats["types"]["noop"]["paused"], true);
    assert_eq!(stats["types"]["noop"]["pending"], 3);
    assert!(env.ok(&["stats"]).contains("paused: noop"));
    assert_eq!(env.json(&["list"])["pausedTypes"], json!(["noop"]));
    assert!(env.ok(&["list"]).contains("paused: noop"));
    assert_eq!(
        env.json(&["get", sleep["id"].as_str().unwrap()])["status"],
        "complete"
    );

    let cancelled = env.json(&["cancel", "--type", "noop", "--status", "pending"]);
    assert_eq!(cancelled["cancelled"], 3);
    assert_eq!(env.json(&["stats"])["cancelled"], 3);
    assert!(env
        .ok(&["cancel", "--status", "pending"])
        .contains("cancelled 0 pending job(s)"));
    let resumed = env.json(&["resume", "noop"]);
    assert_eq!(resumed["pausedTypes"], json!([]));
    assert!(!env.ok(&["stats"]).contains("paused:"));

    for _ in 0..2 {
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
    }
    env.ok(&[
        "work",
        "--types",
        "fail",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    assert_eq!(env.json(&["stats"])["failed"], 2);
    assert_eq!(
        env.json(&["retry", "--failed", "--type", "noop"])["resubmitted"],
        0
    );
    let retried = env.json(&["retry", "--failed", "--type", "fail"]);
    assert_eq!(retried["resubmitted"], 2);
    assert_eq!(env.json(&["stats"])["pending"], 2);

    for (args, needle) in [
        (
            vec!["cancel", "--type", "noop", "--status", "running"],
            "only pending jobs",
        ),
        (vec!["cancel"], "needs a job id"),
        (vec!["retry"], "needs a job id"),
        (vec!["retry", "--type", "fail"], "--failed"),
        (vec!["pause", "bad type"], "invalid job type"),
    ] {
        let err = env.fails(&args, 2);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn the_config_file_sets_type_timeouts_and_names_a_bad_key() {
    let env = Env::new();
    let dir = env.data.parent().unwrap().to_owned();
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[types.sleep]\ntimeout = \"300ms\"\ntimeout_grace = \"100ms\"\nmax_retries = 0\n",
    )
    .unwrap();
    let job = env.json(&[
        "--config",
        path_str(&good),
        "enqueue",
        "custom",
        "--type",
        "sleep",
        "--user",
        "u",
        "--params",
        r#"{"ms": 60000}"#,
    ]);
    assert_eq!(job["maxRetries"], 0, "the type's default from the file");
    let out = env
        .cmd()
        .env("SEMIONT_JOBS_CONFIG", &good)
        .args([
            "work",
            "--types",
            "sleep",
            "--exit-when-idle",
            "--poll-interval",
            "50",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = env.json(&["get", job["id"].as_str().unwrap()]);
    assert_eq!(after["status"], "failed");
    let error = after["error"].as_str().unwrap();
    assert!(
        error.starts_with("TIMEOUT: execution timed out after 300 ms"),
        "{error}"
    );

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[types.sleep]\ntimout = \"300ms\"\n").unwrap();
    let err = env.fails(&["--config", path_str(&bad), "stats"], 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.toml line 2: unknown key types.sleep.timout"),
        "{err}"
    );
    let missing = dir.join("missing.toml");
    let err = env.fails(&["--config", path_str(&missing), "stats"], 2);
    assert!(err.contains("missing.toml: cannot read it"), "{err}");
}

/// The `[model]` section sets the model server of `work`; the environment
/// beats the file and a flag beats both.
#[test]
fn the_config_file_points_work_at_a_model_and_flags_and_variables_win() {
    use semiont_jobs::content::testing::{Reply, StubServer};
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let stub = rt.block_on(StubServer::start()).unwrap();
    stub.respond_with(|_| Reply::ollama_chat(r#"{"entities":[]}"#));
    let env = Env::new();
    env.ok(&["init"]);
    let dir = env.data.parent().unwrap().to_owned();
    let doc = dir.join("doc.txt");
    std::fs::write(
        &doc,
        "Grace Hopper taught the compiler a trick. ".repeat(30),
    )
    .unwrap();
    env.ok(&["resources", "add", path_str(&doc)]);
    let config = dir.join("model.toml");
    std::fs::write(
        &config,
        format!(
            "[model]\ninference = \"ollama\"\nmodel = \"from-file\"\nurl = \"{}\"\n\
             chunk_chars = 300\ncontext = 4096\n",
            stub.base_url()
        ),
    )
    .unwrap();
    let run = |extra_env: &[(&str, &str)], flags: &[&str]| {
        env.enqueue_detection("Person");
        let seen = stub.requests().len();
        let mut cmd = env.cmd();
        cmd.args([
            "--config",
            path_str(&config),
            "work",
            "--types",
            "detection",
        ])
        .args(["--exit-when-idle", "--poll-interval", "50"])
        .args(flags);
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stub.requests()[seen..].to_vec()
    };
    let asked = run(&[], &[]);
    assert!(asked.len() > 1, "the file's chunk size splits the document");
    for q in &asked {
        assert_eq!(q.body["model"], "from-file");
        assert_eq!(q.body["options"]["num_ctx"], 4096);
        let prompt = q.body["messages"][1]["content"].as_str().unwrap();
        assert!(prompt.len() < 300 + 2_000, "{}", prompt.len());
    }
    let from_file = asked.len();
    let asked = run(&[("SEMIONT_INFERENCE_MODEL", "from-env")], &[]);
    assert!(asked.iter().all(|q| q.body["model"] == "from-env"));
    let asked = run(
        &[("SEMIONT_INFERENCE_MODEL", "from-env")],
        &["--model", "from-flag", "--model-chunk-chars", "2000"],
    );
    assert!(asked.iter().all(|q| q.body["model"] == "from-flag"));
    assert!(
        asked.len() < from_file,
        "the flag's larger chunks: {} vs {from_file}",
        asked.len()
    );
    // A flag choosing the offline recognizer never calls the server.
    assert!(run(&[], &["--inference", "offline"]).is_empty());
}

#[test]
fn params_come_from_a_file_or_standard_input_within_1_mib() {
    let env = Env::new();
    let dir = env.data.parent().unwrap().to_owned();
    let file = dir.join("params.json");
    std::fs::write(&file, r#"{"units": ["x"], "ms": 1}"#).unwrap();
    let at = format!("@{}", path_str(&file));
    let job = env.json(&[
        "enqueue", "custom", "--type", "steps", "--user", "u", "--params", &at,
    ]);
    assert_eq!(job["units"], json!(["x"]));

    let mut child = env
        .cmd()
        .args([
            "enqueue", "custom", "--type", "sleep", "--user", "u", "--params", "-", "--json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"ms": 7}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["ms"], 7);

    let big = dir.join("big.json");
    let blob = "x".repeat(1 << 20);
    std::fs::write(&big, format!(r#"{{"blob": "{blob}"}}"#)).unwrap();
    let err = env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "t",
            "--user",
            "u",
            "--params",
            &format!("@{}", path_str(&big)),
        ],
        2,
    );
    assert!(err.contains("more than 1048576 bytes"), "{err}");
    let err = env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "t",
            "--user",
            "u",
            "--params",
            "@/nonexistent/p.json",
        ],
        2,
    );
    assert!(err.contains("cannot read /nonexistent/p.json"), "{err}");
    std::fs::write(&file, "{not json").unwrap();
    let err = env.fails(
        &[
            "enqueue", "custom", "--type", "t", "--user", "u", "--params", &at,
        ],
        2,
    );
    assert!(err.contains("is not valid JSON"), "{err}");
}

/// A worker sweeps finished jobs past the configured retention period and
/// logs `queue.swept` with the count.
#[test]
fn a_worker_sweeps_old_finished_jobs_and_logs_queue_swept() {
    let env = Env::new();
    let dir = env.data.parent().unwrap().to_owned();
    let config = dir.join("retention.toml");
    std::fs::write(
        &config,
        "[retention]\nperiod = \"0s\"\nsweep_interval = \"1h\"\n",
    )
    .unwrap();
    let id = env.enqueue_noop();
    env.ok(&[
        "work",
        "--types",
        "noop",
        "--exit-when-idle",
        "--no-sweep",
        "--poll-interval",
        "50",
    ]);
    assert_eq!(env.json(&["get", &id])["status"], "complete");
    let worker = WorkerProc::start(&env, &["--types", "noop", "--config", path_str(&config)]);
    let swept = worker.wait_for("queue.swept", None);
    assert_eq!(swept["deleted"], 1);
    drop(worker);
    let err = env.fails(&["get", &id], 1);
    assert!(err.contains("not found"), "{err}");
}

/// Text logs written to a file carry no terminal colour codes.
#[test]
fn text_logs_to_a_file_have_no_colour_codes() {
    let env = Env::new();
    env.enqueue_noop();
    let out = env.run(&[
        "work",
        "--types",
        "noop",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    assert!(out.status.success());
    let log = String::from_utf8(out.stderr).unwrap();
    assert!(log.contains("job completed"), "{log}");
    assert!(!log.contains('\u{1b}'), "escape sequences in {log:?}");
}

/// A document with checkpoints, a unique key and fields this version does
/// not know comes back from `get --json` exactly as written.
#[test]
fn a_document_with_checkpoints_round_trips_through_get_json() {
    let env = Env::new();
    env.ok(&["init"]);
    let id = "job-0193c1f0-8a2b-7cde-8f01-23456789abcd";
    let doc = json!({
        "id": id,
        "type": "detection",
        "status": "failed",
        "userId": "user-123",
        "created": "2026-01-01T00:00:00.000Z",
        "startedAt": "2026-01-01T00:00:01.000Z",
        "completedAt": "2026-01-01T00:00:09.000Z",
        "error": "model server unreachable",
        "retryCount": 3,
        "maxRetries": 3,
        "attempt": 4,
        "resourceId": "doc-456",
        "entityTypes": ["Person", "Organization", "Location"],
        "completedUnits": ["Organization", "Person"],
        "unitCursors": {
            "Location": {"next": 3, "size": 8, "found": 5, "emitted": 5, "errors": 0, "tokensUsed": 1234}
        },
        "uniqueKey": "detect:doc-456",
        "fromTheFuture": {"nested": [1, "two", null], "flag": true}
    });
    let path = env
        .data
        .join("jobs")
        .join("failed")
        .join(format!("{id}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    let back = env.json(&["get", id]);
    assert_eq!(back, doc);
    // And through a retry (a write), everything but what the retry changes.
    let retried = env.json(&["retry", id]);
    let mut expected = doc.clone();
    let obj = expected.as_object_mut().unwrap();
    obj.insert("status".into(), json!("pending"));
    obj.insert("retryCount".into(), json!(0));
    obj.remove("completedAt");
    assert_eq!(retried, expected);
    assert_eq!(env.json(&["get", id]), expected);
}
