//! `cargo xtask interop`: the published TypeScript package `@semiont/jobs`
//! and this project's `semiont-jobs` on one data directory, both ways.
//! Needs Node.js (>= 20) and the npm registry (the package is fetched with
//! `npm pack` by `tests/ts-package/package.mjs`); not part of `ci`.
//!
//! 1. The package's `JobQueue.createJob` writes a pending `sleep` job;
//!    `semiont-jobs work --exit-when-idle` runs it; the package's `getJob`
//!    sees it `complete` with our result, `listJobs` lists it and
//!    `getStats` counts it.
//! 2. `semiont-jobs enqueue` (the directory now records the nested
//!    layout) writes a job; the package's `JobWorker` processes it; the
//!    package and `semiont-jobs get` both see it `complete` with the
//!    package's result.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::Value;

/// Runs a command and returns its standard output (an error naming the
/// command and its standard error when it fails).
fn output(name: &str, cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{name} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn json(name: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text.trim()).map_err(|e| format!("{name}: not JSON ({e}): {text}"))
}

fn check(ok: bool, what: &str, detail: &Value) -> Result<(), String> {
    if ok {
        println!("    ok: {what}");
        Ok(())
    } else {
        Err(format!("interop: {what} does not hold: {detail}"))
    }
}

/// The task.
pub fn interop(root: &Path, target: &Path) -> Result<(), String> {
    let start = Instant::now();
    for tool in ["node", "npm"] {
        Command::new(tool)
            .arg("--version")
            .output()
            .map_err(|e| format!("interop: {tool} not found ({e}); install Node.js >= 20"))?;
    }
    println!("==> build semiont-jobs");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "semiont-jobs-cli", "--bin", "semiont-jobs"])
        .current_dir(root)
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err("cargo build of semiont-jobs failed".into());
    }
    let bin = target.join("debug/semiont-jobs");
    let script = root.join("tests/ts-package/interop.mjs");
    let cache = target.join("ts-package");
    let tmp = std::env::temp_dir().join(format!("semiont-jobs-interop-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    let data = tmp.join("data");
    let data_s = data.to_str().ok_or("temp path is not UTF-8")?.to_owned();
    let node = |args: &[&str]| {
        let mut c = Command::new("node");
        c.arg(&script).args(args).env("TS_PACKAGE_CACHE", &cache);
        c
    };
    let ours = |args: &[&str]| {
        let mut c = Command::new(&bin);
        c.arg("--data-dir").arg(&data).args(args);
        c.env_remove("SEMIONT_JOBS_DATABASE_URL");
        c.env_remove("SEMIONT_JOBS_CONFIG");
        c.env_remove("SEMIONT_JOBS_LAYOUT");
        c
    };
    let result = (|| -> Result<(), String> {
        println!("==> 1. the package's createJob -> semiont-jobs work -> the package's getJob");
        let id = "job-ts-interop-1";
        let out = output(
            "node interop.mjs create",
            &mut node(&["create", &data_s, id, "sleep", r#"{"ms": 50}"#]),
        )?;
        println!("    package: {}", out.trim());
        let out = output(
            "semiont-jobs work",
            &mut ours(&["work", "--exit-when-idle", "--types", "sleep"]),
        )?;
        if !out.trim().is_empty() {
            println!(
                "    semiont-jobs work: {}",
                out.trim().replace('\n', "\n    ")
            );
        }
        let format = std::fs::read_to_string(data.join("jobs/format.json")).unwrap_or_default();
        println!("    jobs/format.json: {}", format.trim());
        let got = json(
            "get",
            &output("node interop.mjs get", &mut node(&["get", &data_s, id]))?,
        )?;
        println!("    package getJob: {}", got["job"]);
        check(
            got["job"]["status"] == "complete",
            "the package's getJob sees complete",
            &got,
        )?;
        check(
            got["job"]["result"] == serde_json::json!({"sleptMs": 50}),
            "with semiont-jobs' result {\"sleptMs\": 50}",
            &got,
        )?;
        check(
            got["job"]["metadata"]["attempt"] == 1 && got["job"].get("id").is_none(),
            "in the package's nested layout (our attempt in metadata)",
            &got,
        )?;
        check(got["listed"] == true, "its listJobs lists it", &got)?;
        check(
            got["stats"]["complete"] == 1,
            "its getStats counts it complete",
            &got,
        )?;

        println!("==> 2. semiont-jobs enqueue (nested) -> the package's JobWorker");
        let out = output(
            "semiont-jobs enqueue",
            &mut ours(&[
                "--layout",
                "nested",
                "--json",
                "enqueue",
                "custom",
                "--type",
                "ts-work",
                "--user",
                "rust-user",
                "--params",
                r#"{"resourceId": "doc-9", "n": 3}"#,
            ]),
        )?;
        let job = json("enqueue", &out)?;
        let id2 = job["id"]
            .as_str()
            .ok_or("enqueue printed no id")?
            .to_owned();
        println!("    semiont-jobs enqueued {id2}");
        let raw = std::fs::read_to_string(data.join("jobs/pending").join(format!("{id2}.json")))
            .map_err(|e| format!("the enqueued file: {e}"))?;
        println!(
            "    on disk: {}",
            raw.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        let got = json(
            "work",
            &output(
                "node interop.mjs work",
                &mut node(&["work", &data_s, &id2, "ts-work", "20000"]),
            )?,
        )?;
        println!("    package getJob after its JobWorker: {}", got["job"]);
        check(
            got["job"]["status"] == "complete",
            "the package's JobWorker completed it",
            &got,
        )?;
        let ours_now = json(
            "get",
            &output("semiont-jobs get", &mut ours(&["--json", "get", &id2]))?,
        )?;
        println!("    semiont-jobs get: {ours_now}");
        check(
            ours_now["status"] == "complete"
                && ours_now["result"]["by"] == "ts-worker"
                && ours_now["result"]["params"]["n"] == 3,
            "semiont-jobs reads it complete with the package's result",
            &ours_now,
        )?;
        let stats = json(
            "stats",
            &output("semiont-jobs stats", &mut ours(&["--json", "stats"]))?,
        )?;
        check(
            stats["complete"] == 2 && stats["quarantined"] == 0,
            "semiont-jobs stats: 2 complete, nothing quarantined",
            &stats,
        )?;
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&tmp);
    result?;
    println!(
        "<== interop: passed in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
