//! The CLI on PostgreSQL (`SEMIONT_JOBS_DATABASE_URL`): every command, four
//! `work` processes draining 5,000 jobs exactly once, `copy` from a data
//! directory to PostgreSQL and back keeping every document byte for byte,
//! and bad input (unreachable server, wrong password, a role that cannot
//! create the schema, a newer schema, a URL typo, an unknown database) as
//! one line, exit 1, the password never shown.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use semiont_jobs::model::{Job, JobId, JobLayout, JobStatus, NewJob, Timestamp};
use semiont_jobs::queue::{JobQueue, JobQueueConfig};
use semiont_jobs::store::JobStore;
use semiont_jobs::store_fs::{FsOptions, FsStore};
use semiont_jobs::store_pg::testing::TestSchema;
use semiont_jobs::store_pg::{PgOptions, PgStore};
use serde_json::json;

use crate::support::Env;

/// A password the tests check never appears in any output.
const SECRET: &str = "Pa55-word-never-shown";

/// Runs `f` on a runtime of its own (the tests themselves are plain).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// Runs SQL as the test database's (super)user.
fn admin_sql(schema: &TestSchema, sql: &str) {
    let url = schema.url().expose().to_owned();
    let sql = sql.to_owned();
    block_on(async move {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client.batch_execute(&sql).await.expect("admin SQL");
    });
}

fn url_as(schema: &TestSchema, user: &str, password: &str, db: &str) -> String {
    let (host, port) = schema.url().host_port();
    format!("postgres://{user}:{password}@{host}:{port}/{db}")
}

#[test]
fn every_command_works_on_postgres() {
    let env = Env::pg();
    let init = env.json(&["init"]);
    assert_eq!(
        init["schemaVersion"],
        semiont_jobs::store_pg::SCHEMA_VERSION
    );
    assert_eq!(init["migratedFrom"], 0);
    let url: semiont_jobs::store_pg::DatabaseUrl = env.db.as_ref().unwrap().0.parse().unwrap();
    if let Some(password) = url.password() {
        assert!(!init.to_string().contains(password), "{init}");
    }
    let again = env.json(&["init"]);
    assert_eq!(
        again["migratedFrom"],
        semiont_jobs::store_pg::SCHEMA_VERSION,
        "init is idempotent"
    );
    let mut detection = env.json(&[
        "enqueue",
        "detection",
        "--user",
        "u1",
        "--resource",
        "doc-1",
        "--entity-type",
        "Person",
    ]);
    let id = detection["id"].as_str().unwrap().to_owned();
    assert_eq!(detection["enqueued"], true);
    detection.as_object_mut().unwrap().remove("enqueued");
    assert_eq!(env.json(&["get", &id]), detection);
    // A unique key: the second enqueue returns the first job.
    let keyed = [
        "enqueue",
        "custom",
        "--type",
        "noop",
        "--user",
        "u1",
        "--unique-key",
        "once",
    ];
    let first = env.json(&keyed);
    let again = env.json(&keyed);
    assert_eq!(
        (first["enqueued"].as_bool(), again["enqueued"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(first["id"], again["id"]);
    assert_eq!(
        env.json(&["cancel", first["id"].as_str().unwrap()])["status"],
        "cancelled"
    );
    let sleepy = env.json(&[
        "enqueue",
        "custom",
        "--type",
        "sleep",
        "--user",
        "u2",
        "--params",
        r#"{"ms": 400, "note": "kept"}"#,
        "--priority",
        "5",
    ]);
    let sleepy_id = sleepy["id"].as_str().unwrap().to_owned();
    let page = env.json(&["list", "--status", "pending", "--user", "u2"]);
    assert_eq!(page["total"], 1);
    assert_eq!(page["jobs"][0]["note"], "kept");
    assert_eq!(env.json(&["stats"])["pending"], 2);
    assert_eq!(env.json(&["cancel", &id])["status"], "cancelled");
    assert_eq!(env.json(&["retry", &id])["status"], "pending");
    assert_eq!(env.json(&["cancel", &id])["status"], "cancelled");
    // `watch` of one job follows it to its end while a worker runs it.
    let watch = env
        .cmd()
        .args(["--json", "watch", &sleepy_id])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let work = env.ok(&["work", "--types", "sleep", "--exit-when-idle"]);
    drop(work);
    let out = watch.wait_with_output().unwrap();
    assert!(out.status.success());
    let last = String::from_utf8(out.stdout).unwrap();
    assert!(last.contains("complete"), "{last}");
    assert_eq!(env.json(&["get", &sleepy_id])["result"]["sleptMs"], 400);
    let cleaned = env.json(&["cleanup", "--older-than", "0s"]);
    assert_eq!(cleaned["deleted"], 3);
    let stats = env.json(&["stats"]);
    assert_eq!(stats["complete"], 0);
    assert_eq!(stats["cancelled"], 0);
    // The demo runs end to end on the database.
    let demo = env.json(&["demo"]);
    assert!(demo.to_string().contains("complete"), "{demo}");
}

#[test]
#[allow(clippy::print_stderr, reason = "the test reports what it measured")]
fn four_work_processes_drain_5000_jobs_exactly_once() {
    let env = Env::pg();
    let (url, schema) = env.db.clone().unwrap();
    block_on(async {
        let store = PgStore::open(
            &url.parse().unwrap(),
            PgOptions::default().schema(schema.clone()),
        )
        .await
        .unwrap();
        let queue = JobQueue::new(JobQueueConfig::new("unused"), Arc::new(store)).unwrap();
        for _ in 0..5 {
            let batch = (0..1000).map(|i| NewJob::custom("noop", "u", json!({ "i": i })).unwrap());
            queue.create_jobs(batch).await.unwrap();
        }
    });
    let log = env.data.with_extension("exec.log");
    let started = Instant::now();
    let workers: Vec<std::process::Child> = (0..4)
        .map(|_| {
            env.cmd()
                .args([
                    "work",
                    "--types",
                    "noop",
                    "--concurrency",
                    "8",
                    "--exit-when-idle",
                ])
                .arg("--exec-log")
                .arg(&log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in workers {
        let status = w.wait().unwrap();
        assert!(status.success(), "a worker failed: {status}");
    }
    let took = started.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        *runs.entry(line.split('\t').next().unwrap()).or_default() += 1;
    }
    assert_eq!(runs.len(), 5000, "every job executed");
    let twice: Vec<_> = runs.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "executed more than once: {twice:?}");
    let stats = env.json(&["stats"]);
    assert_eq!(
        (stats["complete"].as_u64(), stats["pending"].as_u64()),
        (Some(5000), Some(0))
    );
    eprintln!("4 processes drained 5000 jobs in {took:?}");
}

/// Jobs in every status with everything a document can hold: progress,
/// result, error, priority, runAt, lease, fields this version does not
/// know (nested, unicode, big and small numbers), in both layouts.
fn varied_jobs() -> Vec<Job> {
    let t = Timestamp::parse("2026-03-04T05:06:07.089Z").unwrap();
    let mut jobs = Vec::new();
    for (i, status) in JobStatus::ALL.into_iter().enumerate() {
        for k in 0..3 {
            let params = json!({
                "zeta": i,
                "alpha": {"nested": [1, 2.5, -0.0, 1e300, "ünïcødé ✓"], "k": k},
                "fromTheFuture": {"b": true, "a": null},
                "big": 18446744073709551615u64,
            });
            let mut job = NewJob::custom("copy-test", "user-\u{e9}", params)
                .unwrap()
                .priority(i as i16 - 2)
                .into_job(JobId::generate_at(t), t, 4)
                .unwrap();
            job.status = status;
            if status != JobStatus::Pending {
                job.attempt = 2;
                job.started_at = Some(t);
                job.progress = Some(json!({"percentage": 42.5, "message": "half \"way\""}));
            } else if k == 1 {
                job.run_at = Some(t.add(Duration::from_secs(3600)));
            }
            if status == JobStatus::Running {
                job.worker_id = Some("worker-far-away".into());
                job.lease_expires_at = Some(t.add(Duration::from_secs(30)));
            }
            if status.is_finished() {
                job.completed_at = Some(t.add(Duration::from_secs(9)));
                job.error = Some(format!("boom\nline two\ttab \u{0} nul {k}"));
                job.result = Some(json!({"z": 1, "a": [k]}));
                job.retry_count = 1;
            }
            if k == 2 {
                // The TypeScript package's layout, with fields neither
                // implementation knows at top level and in `metadata`.
                job.layout = JobLayout::Nested;
                job.nested_extra
                    .top
                    .insert("traceId".into(), json!("t-\u{e9}"));
                job.nested_extra
                    .metadata
                    .insert("tenant".into(), json!({"b": [1, 2.5], "a": null}));
                if !status.is_finished() {
                    job.unique_key = Some(format!("nested-{i}"));
                    job.unique_after_finish_ms = Some(60_000);
                }
            }
            jobs.push(job);
        }
    }
    jobs
}

/// Every `<status>/<id>.json` under a jobs directory, with its bytes.
fn documents(jobs_dir: &Path) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    for status in JobStatus::ALL {
        let dir = jobs_dir.join(status.as_str());
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("{}/{}", status, path.file_name().unwrap().to_str().unwrap());
            out.insert(name, std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn copy_from_a_directory_to_postgres_and_back_keeps_every_document() {
    let source = Env::new();
    let jobs = varied_jobs();
    let jobs_dir = source.data.join("jobs");
    block_on(async {
        let fs = FsStore::open(&jobs_dir, FsOptions::default())
            .await
            .unwrap();
        fs.create_batch(&jobs).await.unwrap();
    });
    let before = documents(&jobs_dir);
    assert_eq!(before.len(), jobs.len());
    let pg = Env::pg();
    let (url, schema) = pg.db.clone().unwrap();
    let data = source.data.to_str().unwrap();
    let out = source.ok(&["--db-schema", &schema, "copy", "--from", data, "--to", &url]);
    assert!(
        out.contains("copied 15 job(s)") && out.contains("counts verified"),
        "{out}"
    );
    // Into a queue that is not empty: refused.
    let again = source.fails(
        &["--db-schema", &schema, "copy", "--from", data, "--to", &url],
        1,
    );
    assert!(again.contains("not empty"), "{again}");
    let back = tempfile::tempdir().unwrap();
    let back_data = back.path().join("data");
    let out = source.ok(&[
        "--db-schema",
        &schema,
        "copy",
        "--from",
        &url,
        "--to",
        back_data.to_str().unwrap(),
    ]);
    assert!(out.contains("copied 15 job(s)"), "{out}");
    let after = documents(&back_data.join("jobs"));
    assert_eq!(after.len(), before.len());
    for (name, bytes) in &before {
        let copied = after
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing after the round trip"));
        assert!(
            copied == bytes,
            "{name} differs:\n{}\n---\n{}",
            String::from_utf8_lossy(bytes),
            String::from_utf8_lossy(copied)
        );
    }
    // The database held the same documents.
    let got = block_on(async {
        let store = PgStore::open(&url.parse().unwrap(), PgOptions::default().schema(schema))
            .await
            .unwrap();
        let mut got = Vec::new();
        for job in &jobs {
            got.push(store.get(&job.id).await.unwrap());
        }
        got
    });
    assert_eq!(got, jobs);
}

#[test]
fn copy_refuses_a_source_with_live_workers_unless_forced() {
    let env = Env::pg();
    env.ok(&["init"]);
    let (url, _) = env.db.clone().unwrap();
    let mut worker = env
        .cmd()
        .args(["--log-format", "json", "work", "--types", "noop"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the worker registered.
    let stderr = worker.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the worker never started");
        match lines.next() {
            Some(Ok(l)) if l.contains("worker.started") => break,
            Some(_) => {}
            None => panic!("the worker exited"),
        }
    }
    let dest = tempfile::tempdir().unwrap();
    let to = dest.path().join("d");
    let err = env.fails(&["copy", "--from", &url, "--to", to.to_str().unwrap()], 1);
    assert!(
        err.contains("worker(s) are registered") && err.contains("--force"),
        "{err}"
    );
    let out = env.ok(&[
        "copy",
        "--from",
        &url,
        "--to",
        to.to_str().unwrap(),
        "--force",
    ]);
    assert!(out.contains("copied 0 job(s)"), "{out}");
    let _ = worker.kill();
    let _ = worker.wait();
}

/// Runs a command with `SEMIONT_JOBS_DATABASE_URL=url` (and nothing else
/// about the database) and expects exit 1 with one line that never shows
/// the password.
fn fails_cleanly(env: &Env, url: &str, args: &[&str]) -> String {
    let out = env
        .cmd()
        .env("SEMIONT_JOBS_DATABASE_URL", url)
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for text in [&stderr, &stdout] {
        assert!(!text.contains(SECRET), "the password is shown: {text}");
    }
    lines[0].to_owned()
}

#[test]
fn bad_database_input_is_one_line_exit_1_without_the_password() {
    let schema = TestSchema::new();
    let env = Env::new();
    let db = schema.url().dbname().to_owned();
    // Unreachable: nothing listens on the port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = fails_cleanly(
        &env,
        &format!("postgres://u:{SECRET}@127.0.0.1:{port}/db"),
        &["stats"],
    );
    assert!(
        err.contains("cannot connect") && err.contains("refused"),
        "{err}"
    );
    // A wrong password.
    let err = fails_cleanly(&env, &url_as(&schema, "postgres", SECRET, &db), &["stats"]);
    assert!(err.contains("password authentication failed"), "{err}");
    // A role that may connect but not create the schema.
    let role = format!("r_{}", schema.name());
    admin_sql(
        &schema,
        &format!("CREATE ROLE {role} LOGIN PASSWORD '{SECRET}'; GRANT CONNECT ON DATABASE {db} TO {role}"),
    );
    let err = fails_cleanly(
        &env,
        &url_as(&schema, &role, SECRET, &db),
        &["--db-schema", schema.name(), "init"],
    );
    assert!(err.contains("permission denied"), "{err}");
    admin_sql(
        &schema,
        &format!("REVOKE CONNECT ON DATABASE {db} FROM {role}; DROP ROLE {role}"),
    );
    // A schema migrated by a newer version.
    let env_db = Env::on_db(schema.url().expose(), schema.name(), None);
    env_db.ok(&["init"]);
    admin_sql(
        &schema,
        &format!(
            "INSERT INTO {}.schema_migrations (version, name) VALUES (99, 'future')",
            schema.name()
        ),
    );
    let err = fails_cleanly(
        &env_db,
        schema.url().expose(),
        &["--db-schema", schema.name(), "stats"],
    );
    assert!(
        err.contains("version 99") && err.contains("upgrade semiont-jobs"),
        "{err}"
    );
    // A typo in the URL, and an unknown database.
    for typo in [
        format!("postgress://u:{SECRET}@127.0.0.1/db"),
        format!("postgres://u:{SECRET}@127.0.0.1:54x3/db"),
    ] {
        let err = fails_cleanly(&env, &typo, &["list"]);
        assert!(err.contains("invalid database url"), "{err}");
    }
    let (host, port) = schema.url().host_port();
    let password = schema.url().password().unwrap_or_default().to_owned();
    let unknown = format!("postgres://postgres:{password}@{host}:{port}/no_such_db");
    let err = fails_cleanly(&env, &unknown, &["stats"]);
    assert!(
        err.contains("no_such_db") && err.contains("does not exist"),
        "{err}"
    );
    if !password.is_empty() {
        assert!(!err.contains(&password), "{err}");
    }
    // Help with the variable set never shows its value.
    let help = env
        .cmd()
        .env(
            "SEMIONT_JOBS_DATABASE_URL",
            format!("postgres://u:{SECRET}@h/db"),
        )
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(text.contains("--database-url"), "{text}");
    assert!(!text.contains(SECRET), "{text}");
}
