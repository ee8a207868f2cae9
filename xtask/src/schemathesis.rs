//! `cargo xtask schemathesis`: property-based API tests generated from the
//! server's own OpenAPI document. Installs schemathesis (pinned, from PyPI)
//! into a virtualenv under the target directory, starts `semiont-jobs serve`
//! on a loopback port over a fresh data directory with an admin token, runs
//! every check against it (no 5xx; statuses, content types, headers and
//! bodies as documented; invalid input refused, valid input accepted), and
//! stops the server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The schemathesis release the run is pinned to.
const VERSION: &str = "4.32.5";
/// Test cases per operation unless `--examples N` says otherwise.
const DEFAULT_EXAMPLES: u32 = 50;
/// The admin token of the server under test (a throwaway, loopback only).
const TOKEN: &str = "xtask-schemathesis-admin-token";

/// The target directory (`CARGO_TARGET_DIR` or `<root>/target`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| if p.is_absolute() { p } else { root.join(p) })
        .unwrap_or_else(|| root.join("target"))
}

/// The `st` executable, installing it first when missing.
fn install(cache: &Path) -> Result<PathBuf, String> {
    let venv = cache.join(format!("venv-{VERSION}"));
    let st = venv.join("bin/st");
    if st.exists() {
        return Ok(st);
    }
    std::fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let mut mk = Command::new("python3");
    mk.args(["-m", "venv"]).arg(&venv);
    crate::run("python3 -m venv (schemathesis)", mk).map_err(|e| {
        format!("{e}; schemathesis needs python3 with the venv module (Debian: python3-venv)")
    })?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--quiet", &format!("schemathesis=={VERSION}")]);
    crate::run(&format!("pip install schemathesis=={VERSION}"), pip)?;
    Ok(st)
}

/// A `serve` process, killed when dropped.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `cargo xtask schemathesis [--examples N] [--seed S]`; `build` says
/// whether to build `semiont-jobs` first (`ci` has built every binary).
pub fn schemathesis(root: &Path, args: &[String], build: bool) -> Result<(), String> {
    let mut examples = DEFAULT_EXAMPLES;
    let mut seed: Option<String> = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--examples" => {
                examples = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--examples needs a number")?;
            }
            "--seed" => seed = Some(it.next().ok_or("--seed needs a number")?.clone()),
            other => return Err(format!("unknown schemathesis argument {other:?}")),
        }
    }
    let target = target_dir(root);
    let cache = target.join("schemathesis");
    let st = install(&cache)?;
    if build {
        let mut cargo = crate::cargo();
        cargo.args(["build", "--quiet", "-p", "semiont-jobs-cli"]);
        crate::run("build semiont-jobs", cargo)?;
    }

    let work = cache.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let tokens = work.join("tokens");
    write_private(&tokens, &format!("admin:{TOKEN}\n"))?;
    let mut child = Command::new(target.join("debug/semiont-jobs"))
        .arg("--data-dir")
        .arg(work.join("data"))
        .args(["serve", "--listen", "127.0.0.1:0", "--token-file"])
        .arg(&tokens)
        .env("RUST_LOG", "warn")
        .env_remove("SEMIONT_JOBS_TOKENS")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start semiont-jobs serve: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout of serve")?;
    let serve = Serve(child);
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .map_err(|e| format!("reading serve's address: {e}"))?;
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("serve did not announce its address: {first:?}"))?
        .to_owned();

    let mut cmd = Command::new(&st);
    cmd.arg("--config-file")
        .arg(root.join("xtask/schemathesis.toml"))
        .arg("run")
        .arg(format!("{url}/api/v1/openapi.json"))
        .args(["--url", &url])
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        // Event streams never end by themselves; their behaviour is
        // covered by the server's own tests.
        .args(["--exclude-operation-id-regex", "^(events|jobEvents)$"])
        .args(["--checks", "all"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--request-timeout", "10"])
        .args(["--report", "junit", "--report-dir"])
        .arg(cache.join("report"));
    if let Some(seed) = &seed {
        cmd.args(["--seed", seed]);
    }
    let started = Instant::now();
    let result = crate::run("schemathesis", cmd);
    println!(
        "schemathesis {VERSION}: {} cases per operation in {:.0}s against {url}",
        examples,
        started.elapsed().as_secs_f64()
    );
    stop(serve)?;
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// SIGTERM, then wait for a clean exit (the graceful shutdown is part of
/// what is checked).
fn stop(mut serve: Serve) -> Result<(), String> {
    let pid = serve.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match serve.0.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("serve exited with {status} after SIGTERM")),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => return Err("serve did not stop within 30 s of SIGTERM".into()),
            Err(e) => return Err(format!("waiting for serve: {e}")),
        }
    }
}
