//! `cargo xtask bench`: builds `semiont-jobs` and the benchmark harness
//! `semiont-jobs-bench` in release, runs the harness's workloads W1–W4
//! (whose W3 and W4 start `semiont-jobs work` processes) several times on
//! the disk (and once more on tmpfs as a diagnostic), runs the upstream
//! TypeScript harness on the same data root when `node`/`npm` and
//! `../shared/anchors/node` are there, captures `strace -c` / `perf`
//! profiles when those tools work, and writes `docs/benchmarks.md` from it
//! all ([`report`]).
//!
//! Options: `--runs R` (default 3), `--data-root DIR` (default
//! `/var/tmp/semiont-bench`), `--no-upstream`, `--no-1m` (skip W2 at one
//! million jobs), `--quick` (one run, small sizes, no upstream, no 1M; for
//! checking the pipeline, not for the doc), `--report-only` (no runs:
//! writes `docs/benchmarks.md` again from the last run's data in
//! `target/bench/`, with the current `bench_analysis.md`), `--http` (only
//! the HTTP API's workload, R runs, rewriting just its section of the page;
//! a full run includes it too).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

mod http;
mod pg;
mod report;
mod soak;

/// Settings of one `cargo xtask bench`.
struct Opts {
    runs: usize,
    data_root: PathBuf,
    upstream: bool,
    million: bool,
    quick: bool,
    report_only: bool,
    http_only: bool,
}

fn parse(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        runs: 3,
        data_root: PathBuf::from("/var/tmp/semiont-bench"),
        upstream: true,
        million: true,
        quick: false,
        report_only: false,
        http_only: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                o.runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&r| r > 0)
                    .ok_or("--runs needs a positive number")?;
            }
            "--data-root" => {
                o.data_root = PathBuf::from(it.next().ok_or("--data-root needs a directory")?);
            }
            "--no-upstream" => o.upstream = false,
            "--no-1m" => o.million = false,
            "--report-only" => o.report_only = true,
            "--http" => o.http_only = true,
            "--quick" => {
                o.quick = true;
                o.runs = 1;
                o.upstream = false;
                o.million = false;
            }
            other => return Err(format!("bench: unknown option {other:?}")),
        }
    }
    Ok(o)
}

/// Where the run's JSON lines, logs and profiles go.
struct Out {
    dir: PathBuf,
    commands: Vec<String>,
    failures: Vec<String>,
}

impl Out {
    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs `cmd`, appending its standard output to `jsonl` (standard error
    /// to the terminal). Fails if it fails.
    fn run_into(&mut self, what: &str, mut cmd: Command, jsonl: &Path) -> Result<(), String> {
        let line = describe(&cmd);
        println!("==> {what}: {line}");
        if !self.commands.contains(&line) {
            self.commands.push(line);
        }
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(jsonl)
            .map_err(|e| format!("cannot open {}: {e}", jsonl.display()))?;
        let start = Instant::now();
        let status = cmd
            .stdout(Stdio::from(out))
            .stderr(Stdio::inherit())
            .status()
            .map_err(|e| format!("{what}: cannot start: {e}"))?;
        println!("<== {what}: {:.1}s", start.elapsed().as_secs_f64());
        if status.success() {
            Ok(())
        } else {
            Err(format!("{what} failed ({status})"))
        }
    }

    /// Like [`Out::run_into`], but a failure is recorded for the report
    /// and the benchmark goes on.
    fn keep_going(&mut self, what: &str, cmd: Command, jsonl: &Path) {
        if let Err(e) = self.run_into(what, cmd, jsonl) {
            eprintln!("xtask bench: {e}; going on");
            self.failures.push(e);
        }
    }
}

fn describe(cmd: &Command) -> String {
    let prog = Path::new(cmd.get_program())
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut parts = vec![prog];
    parts.extend(cmd.get_args().map(|a| redact(&a.to_string_lossy())));
    parts.join(" ")
}

/// `arg` with the password of a URL in it replaced by `***`.
fn redact(arg: &str) -> String {
    if let Some(scheme) = arg.find("://") {
        let rest = &arg[scheme + 3..];
        if let Some(at) = rest.find('@') {
            if let Some(colon) = rest[..at].find(':') {
                return format!("{}://{}:***{}", &arg[..scheme], &rest[..colon], &rest[at..]);
            }
        }
    }
    arg.to_owned()
}

fn have(tool: &str, args: &[&str]) -> bool {
    Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn capture(tool: &str, args: &[&str]) -> String {
    Command::new(tool)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Processes using more than 5% CPU now (for "also running").
fn busy_processes() -> String {
    let text = capture("ps", &["-eo", "pcpu=,comm=", "--sort=-pcpu"]);
    let busy: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let (cpu, comm) = l.trim().split_once(' ')?;
            let cpu: f64 = cpu.parse().ok()?;
            (cpu >= 5.0).then(|| format!("{} {cpu:.0}%", comm.trim()))
        })
        .take(8)
        .collect();
    if busy.is_empty() {
        "nothing above 5% CPU".into()
    } else {
        busy.join(", ")
    }
}

/// The mount options of the filesystem holding `path`.
fn mount_options(path: &Path) -> String {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let mut best = ("", "");
    for line in mounts.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 3 && real.starts_with(f[1]) && f[1].len() >= best.0.len() {
            best = (f[1], f[3]);
        }
    }
    let journal = if Path::new("/proc/fs/jbd2").exists() {
        ""
    } else {
        "; no ext4 journal (no /proc/fs/jbd2)"
    };
    format!("{}{journal}", best.1)
}

fn is_tmpfs(path: &str) -> bool {
    std::fs::read_to_string("/proc/mounts")
        .unwrap_or_default()
        .lines()
        .any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() > 2 && f[1] == path && f[2] == "tmpfs"
        })
}

/// `cargo xtask bench`.
pub fn bench(root: &Path, args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--pg") {
        return bench_pg(root, args);
    }
    let o = parse(args)?;
    let started = Instant::now();
    let load_start = loadavg();
    let concurrent = busy_processes();
    let target = target_of(root);
    if o.report_only {
        let dir = target.join("bench");
        let saved = std::fs::read_to_string(dir.join("report-args.txt")).map_err(|e| {
            format!(
                "--report-only needs a previous run's {}: {e}",
                dir.join("report-args.txt").display()
            )
        })?;
        let analysis = dir.join("analysis.md");
        std::fs::write(&analysis, include_str!("bench_analysis.md"))
            .map_err(|e| format!("cannot write {}: {e}", analysis.display()))?;
        let saved: Vec<String> = saved.split('\0').map(str::to_owned).collect();
        let inputs = report::Inputs::parse(&saved)
            .map_err(|e| format!("{}: {e}", dir.join("report-args.txt").display()))?;
        write_keeping_sections(&inputs)?;
        println!(
            "wrote {} again from {}",
            inputs.out.display(),
            dir.display()
        );
        return Ok(());
    }
    build_release()?;
    // `semiont-jobs` for the worker processes and the cold-open profile,
    // the harness for the workloads.
    let exe = target.join("release").join("semiont-jobs");
    let harness = target.join("release").join("semiont-jobs-bench");
    for bin in [&exe, &harness] {
        if !bin.exists() {
            return Err(format!("{} was not built", bin.display()));
        }
    }
    let mut out = Out {
        dir: target.join(if o.http_only { "bench-http" } else { "bench" }),
        commands: Vec::new(),
        failures: Vec::new(),
    };
    let _ = std::fs::remove_dir_all(&out.dir);
    std::fs::create_dir_all(&out.dir)
        .map_err(|e| format!("cannot create {}: {e}", out.dir.display()))?;
    std::fs::create_dir_all(&o.data_root)
        .map_err(|e| format!("cannot create {}: {e}", o.data_root.display()))?;
    let data = o.data_root.display().to_string();
    let disk = out.file("ours-disk.jsonl");
    let shm = out.file("ours-tmpfs.jsonl");
    // `semiont-jobs-bench --durability MODE --json --workload W REST --root
    // ROOT` (what `semiont-jobs bench` runs), starting this `semiont-jobs`.
    let bench_cmd = |mode: &str, workload: &str, rest: &[&str], root: &str| {
        let mut cmd = Command::new(&harness);
        cmd.args(["--durability", mode, "--json", "--workload", workload])
            .args(rest)
            .args(["--root", root])
            .env("SEMIONT_JOBS_BIN", &exe)
            .env_remove("RUST_LOG");
        cmd
    };
    let doc = root.join("docs").join("benchmarks.md");
    let http_file = out.file("ours-http.jsonl");
    let run_http = |out: &mut Out| {
        for r in 1..=o.runs {
            let cmd = bench_cmd("none", "http", &[], &data);
            out.keep_going(&format!("HTTP run {r}"), cmd, &http_file);
        }
    };
    let write_http = |out: &Out| -> Result<(), String> {
        let rows = http::load(&http_file)?;
        let command = "semiont-jobs bench --workload http --durability none";
        let facts = format!(
            "Measured {} with {} ({} cores; load average {} at the start); `cargo xtask bench --http` \
             rewrites this section alone.{}",
            capture("date", &["-u", "+%Y-%m-%d"]),
            capture("rustc", &["--version"]),
            capture("nproc", &[]),
            load_start,
            if out.failures.is_empty() {
                String::new()
            } else {
                format!(" Failed runs: {}.", out.failures.join("; "))
            }
        );
        http::splice(&doc, &http::section(&rows, o.runs, command, &facts))?;
        println!("wrote the HTTP section of {}", doc.display());
        Ok(())
    };
    if o.http_only {
        run_http(&mut out);
        return write_http(&out);
    }
    let (n_none, n_sync) = if o.quick {
        ("2000", "300")
    } else {
        ("10000", "2000")
    };
    let scales = if o.quick {
        "1000,10000"
    } else {
        "1000,10000,100000"
    };

    // ---- semiont-jobs on the disk
    // Every run keeps its data until the end: on ext4
    // without a journal, deleting tens of thousands of files slows every
    // create for the next 1–6 minutes, which the next run would measure. Inside
    // a run, `semiont-jobs bench` waits until creates are fast again (its
    // `settle`) before each measured phase.
    for r in 1..=o.runs {
        for (mode, n) in [("none", n_none), ("fsync", n_sync), ("batch", n_sync)] {
            let cmd = bench_cmd(mode, "w1", &["--jobs", n, "--keep"], &data);
            out.keep_going(&format!("W1 {mode} run {r}"), cmd, &disk);
        }
    }
    for r in 1..=o.runs {
        let cmd = bench_cmd("none", "w2", &["--scale", scales, "--keep"], &data);
        out.keep_going(&format!("W2 run {r}"), cmd, &disk);
    }
    for r in 1..=o.runs {
        for mode in ["fsync", "none"] {
            let cmd = bench_cmd(mode, "w3", &["--keep"], &data);
            out.keep_going(&format!("W3 {mode} run {r}"), cmd, &disk);
        }
    }
    for r in 1..=o.runs {
        for mode in ["none", "fsync"] {
            let cmd = bench_cmd(
                mode,
                "w4",
                &["--processes", "1,2,4", "--jobs", "2000", "--keep"],
                &data,
            );
            out.keep_going(&format!("W4 {mode} run {r}"), cmd, &disk);
        }
    }
    run_http(&mut out);

    if o.million {
        // Each 1M unit writes a million files (~4.5 GB), kept like the
        // rest until the end (deleting them would slow every later unit's
        // creates): check the room before each. Last of ours for that
        // reason too.
        for r in 1..=o.runs {
            let free_gb = capture("df", &["--output=avail", "-B1G", &data])
                .lines()
                .last()
                .and_then(|l| l.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if free_gb < 20 {
                println!("skipping W2 at 1M (run {r}): {free_gb} GB free in {data}");
                break;
            }
            let cmd = bench_cmd("none", "w2", &["--scale", "1000000", "--keep"], &data);
            out.keep_going(&format!("W2 1M run {r}"), cmd, &disk);
        }
    }
    // ---- the same code on tmpfs, and profiles (on the disk before anything
    // is deleted there)
    let tmpfs_root = "/dev/shm/semiont-bench";
    let tmpfs = is_tmpfs("/dev/shm") && std::fs::create_dir_all(tmpfs_root).is_ok();
    if tmpfs {
        for r in 1..=o.runs {
            for mode in ["none", "fsync", "batch"] {
                let cmd = bench_cmd(mode, "w1", &["--jobs", n_none], tmpfs_root);
                out.keep_going(&format!("tmpfs W1 {mode} run {r}"), cmd, &shm);
            }
            let cmd = bench_cmd("none", "w1", &["--jobs", n_none, "--no-watch"], tmpfs_root);
            out.keep_going(&format!("tmpfs W1 none --no-watch run {r}"), cmd, &shm);
            let cmd = bench_cmd("none", "w3,w4", &["--processes", "1,2,4"], tmpfs_root);
            out.keep_going(&format!("tmpfs W3, W4 run {r}"), cmd, &shm);
        }
    }
    let mut profiles = Vec::new();
    if have("strace", &["-V"]) {
        for (name, root_dir, mode) in [
            ("strace-c-w1-none-disk.txt", data.as_str(), "none"),
            ("strace-c-w1-fsync-disk.txt", data.as_str(), "fsync"),
            ("strace-c-w1-none-tmpfs.txt", tmpfs_root, "none"),
        ] {
            if root_dir == tmpfs_root && !tmpfs {
                continue;
            }
            let file = out.file(name);
            let n = if mode == "none" { "2000" } else { "500" };
            let mut cmd = Command::new("strace");
            cmd.args(["-c", "-f", "-o"])
                .arg(&file)
                .arg(&harness)
                .env("SEMIONT_JOBS_BIN", &exe)
                .args([
                    "--durability",
                    mode,
                    "--json",
                    "--workload",
                    "w1",
                    "--jobs",
                    n,
                    // The queue alone: no floors, no create probes (under
                    // strace every create looks slow), nothing deleted.
                    "--no-floor",
                    "--settle-max",
                    "0",
                    "--keep",
                ])
                .args(["--root", root_dir]);
            let header = format!(
                "# {} (N={n}: the queue's create phase and drain, no floor; per job ≈ calls / N, \
                 plus the store's open and close)\n",
                describe(&cmd)
            );
            out.keep_going(
                &format!("profile {name}"),
                cmd,
                &out.file("profile-runs.txt"),
            );
            if let Err(e) = prepend(&file, &header) {
                eprintln!("xtask bench: {e}");
            }
            profiles.push(file);
        }
    }
    // A data dir of 30,000 complete jobs kept for profiling the cold open
    // alone (`semiont-jobs stats` = open + one stats call).
    let kept_root = o.data_root.join("open-profile");
    let mut keep = bench_cmd(
        "none",
        "w2",
        &["--scale", "30000", "--keep"],
        &kept_root.display().to_string(),
    );
    keep.stderr(Stdio::null());
    let kept = match keep.status() {
        Ok(st) if st.success() => find_data_dir(&kept_root),
        _ => None,
    };
    if let (Some(dir), true) = (&kept, have("strace", &["-V"])) {
        let file = out.file("strace-c-open-30k-disk.txt");
        let mut cmd = Command::new("strace");
        cmd.args(["-c", "-f", "-o"])
            .arg(&file)
            .arg(&exe)
            .arg("--data-dir")
            .arg(dir)
            .args(["--durability", "none", "stats"]);
        let header = format!("# {} (cold open of 30,000 complete jobs)\n", describe(&cmd));
        out.keep_going("profile open (strace)", cmd, &out.file("profile-runs.txt"));
        if let Err(e) = prepend(&file, &header) {
            eprintln!("xtask bench: {e}");
        }
        profiles.push(file);
    }
    if have("perf", &["stat", "-e", "task-clock", "true"]) {
        let w1 = [
            "--durability",
            "none",
            "--json",
            "--workload",
            "w1",
            "--jobs",
            "3000",
            "--keep",
            "--root",
            &data,
        ];
        let w4 = [
            "--durability",
            "none",
            "--json",
            "--workload",
            "w4",
            "--processes",
            "2",
            "--jobs",
            "2000",
            "--keep",
            "--root",
            &data,
        ];
        let kept_dir = kept
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let open = [
            "--data-dir",
            kept_dir.as_str(),
            "--durability",
            "none",
            "stats",
        ];
        let mut runs: Vec<(&str, &Path, &[&str])> = vec![
            ("perf-w1-none-disk.txt", &harness, &w1[..]),
            ("perf-w4-2-processes-disk.txt", &harness, &w4[..]),
        ];
        if kept.is_some() {
            runs.push(("perf-open-30k-disk.txt", &exe, &open[..]));
        }
        for (name, program, args) in runs {
            let data_file = out.file(&format!("{name}.data"));
            let mut cmd = Command::new("perf");
            cmd.args(["record", "-F", "999", "-g", "-o"])
                .arg(&data_file)
                .arg("--")
                .arg(program)
                .args(args)
                .env("SEMIONT_JOBS_BIN", &exe);
            let header = format!(
                "# {}\n# perf report --no-children --sort comm,symbol (top 40; comm = thread name)\n",
                describe(&cmd)
            );
            out.keep_going(
                &format!("profile {name}"),
                cmd,
                &out.file("profile-runs.txt"),
            );
            let report = capture(
                "perf",
                &[
                    "report",
                    "-i",
                    &data_file.display().to_string(),
                    "--no-children",
                    "--sort",
                    "comm,symbol",
                    "--stdio",
                    "-g",
                    "none",
                ],
            );
            let top: Vec<&str> = report
                .lines()
                .filter(|l| {
                    l.trim_start()
                        .chars()
                        .next()
                        .is_some_and(|c| c.is_ascii_digit())
                })
                .take(40)
                .map(str::trim_end)
                .collect();
            let file = out.file(name);
            std::fs::write(&file, format!("{header}{}\n", top.join("\n")))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            let _ = std::fs::remove_file(&data_file);
            profiles.push(file);
        }
    }

    // ---- the upstream harness on the same data root, last: it deletes
    // its data after each run, and the slow creates that leaves behind
    // (see above) would be in our profiles
    let anchor = root.join("..").join("shared").join("anchors").join("node");
    let upstream = out.file("upstream.jsonl");
    let mut upstream_skipped = String::new();
    if !o.upstream {
        upstream_skipped = "`--no-upstream` was given".into();
    } else if !anchor.join("bench.mjs").exists() {
        upstream_skipped = format!("{} is absent", anchor.display());
    } else if !have("node", &["--version"]) || !have("npm", &["--version"]) {
        upstream_skipped = "node or npm is not installed".into();
    } else {
        let cache = std::env::var("ANCHOR_CACHE").unwrap_or_else(|_| "/tmp/anchor-cache".into());
        let mut setup = Command::new("bash");
        setup
            .arg("setup.sh")
            .current_dir(&anchor)
            .env("ANCHOR_CACHE", &cache);
        crate::run("upstream setup", setup)?;
        let runs = o.runs.to_string();
        let node = |extra: &[&str]| {
            let mut cmd = Command::new("node");
            cmd.arg("bench.mjs")
                .args(extra)
                .args(["--data-root", &data])
                .current_dir(&anchor)
                .env("ANCHOR_CACHE", &cache);
            cmd
        };
        // As shipped, W1 drains at ~60-100 jobs/s: each run is given up
        // after 150 s (the harness then reports the rates reached so far).
        out.keep_going(
            "upstream W1 as shipped",
            node(&["--workload", "w1", "--runs", &runs, "--w1-timeout", "150"]),
            &upstream,
        );
        out.keep_going(
            "upstream W1-nowatch, W2, W3, W3x, W4",
            node(&[
                "--workload",
                "w1nowatch,w2,w3,w3x,w4",
                "--runs",
                &runs,
                "--w4-runs",
                &runs,
            ]),
            &upstream,
        );
    }

    // ---- the report
    let load_end = loadavg();
    if tmpfs {
        let _ = std::fs::remove_dir_all(tmpfs_root);
    }
    let analysis = out.file("analysis.md");
    std::fs::write(&analysis, include_str!("bench_analysis.md"))
        .map_err(|e| format!("cannot write {}: {e}", analysis.display()))?;
    let elapsed = format!("{:.0} min", started.elapsed().as_secs_f64() / 60.0);
    let facts = [
        ("rustc", capture("rustc", &["--version"])),
        ("data_root", data.clone()),
        ("mount_options", mount_options(&o.data_root)),
        ("tmpfs_root", tmpfs_root.to_owned()),
        ("load_start", load_start.clone()),
        ("load_end", load_end),
        ("concurrent", concurrent),
        ("elapsed", elapsed),
        ("upstream_skipped", upstream_skipped),
        ("commands", out.commands.join(" ;; ")),
        ("failures", out.failures.join(" ;; ")),
    ];
    let inputs = report::Inputs {
        out: doc.clone(),
        ours: vec![disk],
        ours_tmpfs: shm.exists().then_some(shm).into_iter().collect(),
        upstream: upstream.exists().then_some(upstream),
        fact: facts
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
        analysis: Some(analysis),
        profile: profiles,
    };
    std::fs::write(out.file("report-args.txt"), inputs.to_args().join("\0"))
        .map_err(|e| format!("cannot save the report's arguments: {e}"))?;
    println!("==> report");
    let written = write_keeping_sections(&inputs).and_then(|()| write_http(&out));
    if written.is_ok() {
        println!(
            "wrote {} (raw data in {})",
            doc.display(),
            out.dir.display()
        );
    }
    // Millions of files: minutes of deleting, after the report.
    println!("removing {}", o.data_root.display());
    let _ = std::fs::remove_dir_all(&o.data_root);
    written
}

fn prepend(file: &Path, header: &str) -> Result<(), String> {
    let body = std::fs::read_to_string(file).unwrap_or_default();
    let mut f = File::create(file).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    f.write_all(header.as_bytes())
        .and_then(|()| f.write_all(body.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", file.display()))
}

/// The data dir (parent of a `jobs/` holding `complete/`) somewhere below `root`.
fn find_data_dir(root: &Path) -> Option<PathBuf> {
    if root.join("jobs").join("complete").is_dir() {
        return Some(root.to_owned());
    }
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .find_map(|e| find_data_dir(&e.path()))
}

/// Puts `section` (which starts with `begin` and ends with `end`) into the
/// page at `doc`: in place of the section between those markers when there
/// is one, else at the end.
pub fn splice(doc: &Path, begin: &str, end: &str, section: &str) -> Result<(), String> {
    let page = std::fs::read_to_string(doc).unwrap_or_default();
    let page = match (page.find(begin), page.find(end)) {
        (Some(b), Some(e)) if b < e => {
            let after = &page[e + end.len()..];
            format!(
                "{}{}{}",
                &page[..b],
                section,
                after.strip_prefix('\n').unwrap_or(after)
            )
        }
        _ => format!(
            "{}\n{section}",
            page.trim_end_matches('\n').to_owned() + "\n"
        ),
    };
    std::fs::write(doc, page).map_err(|e| format!("cannot write {}: {e}", doc.display()))
}

/// `cargo xtask bench --pg` ([`pg`]).
fn bench_pg(root: &Path, args: &[String]) -> Result<(), String> {
    let opts = pg::Opts::parse(args)?;
    let target = target_of(root);
    let tools = pg::Tools {
        root: root.to_path_buf(),
        exe: target.join("release").join("semiont-jobs"),
        harness: target.join("release").join("semiont-jobs-bench"),
        target,
    };
    if opts.report_only {
        return pg::report(&tools, &opts);
    }
    build_release()?;
    pg::run(&tools, &opts)
}

/// Writes the report's page anew, keeping the sections other commands
/// write (`--http`, `--pg`) as they were.
fn write_keeping_sections(inputs: &report::Inputs) -> Result<(), String> {
    let old = std::fs::read_to_string(&inputs.out).unwrap_or_default();
    let kept: Vec<(&str, &str, String)> = [(http::BEGIN, http::END), (pg::BEGIN, pg::END)]
        .into_iter()
        .filter_map(|(b, e)| {
            let start = old.find(b)?;
            let end = old[start..].find(e)? + start + e.len();
            Some((b, e, format!("{}\n", &old[start..end])))
        })
        .collect();
    report::write(inputs)?;
    for (b, e, section) in kept {
        splice(&inputs.out, b, e, &section)?;
    }
    Ok(())
}

/// The target directory (`CARGO_TARGET_DIR`, relative to `root` when
/// relative, else `root/target`).
fn target_of(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_absolute() { t } else { root.join(t) })
        .unwrap_or_else(|| root.join("target"))
}

/// Builds the release `semiont-jobs` (worker processes) and
/// `semiont-jobs-bench` (the harness) that every benchmark runs.
fn build_release() -> Result<(), String> {
    let mut build = crate::cargo();
    build.args([
        "build",
        "--release",
        "-j2",
        "-p",
        "semiont-jobs-cli",
        "-p",
        "semiont-jobs-bench",
    ]);
    crate::run("build (release)", build)
}
