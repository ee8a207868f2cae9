//! `cargo xtask`: the project's automation, in Rust so it needs nothing but
//! the toolchain. `cargo xtask ci` is the one command CI runs.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a command-line tool reports on the terminal"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().map(String::as_str).unwrap_or("help");
    let result = match task {
        "ci" => ci(),
        "tidy" => tidy(&root()),
        "torture" => torture(),
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask <ci|tidy|torture>\n");
            println!("  ci       fmt check, clippy -D warnings, tests, docs, tidy (what CI runs)");
            println!("  tidy     module docs present, no dbg!/todo!/unimplemented!");
            println!("  torture  the slow tests (crash loops, long property runs)");
            Ok(())
        }
        other => Err(format!("unknown task {other:?}; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root, found from this crate's manifest directory.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(name: &str, mut cmd: Command) -> Result<(), String> {
    println!("==> {name}");
    let start = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{name}: cannot start: {e}"))?;
    println!("<== {name}: {:.1}s", start.elapsed().as_secs_f64());
    if status.success() {
        Ok(())
    } else {
        Err(format!("{name} failed ({status})"))
    }
}

fn ci() -> Result<(), String> {
    let start = Instant::now();
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run("fmt", fmt)?;
    tidy(&root())?;
    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]);
    run("clippy", clippy)?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--all-features"]);
    run("test", test)?;
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--all-features", "--no-deps"]);
    doc.env(
        "RUSTDOCFLAGS",
        "-D warnings -D rustdoc::broken_intra_doc_links",
    );
    run("doc", doc)?;
    println!("ci passed in {:.0}s", start.elapsed().as_secs_f64());
    Ok(())
}

fn torture() -> Result<(), String> {
    let mut test = cargo();
    test.args(["test", "--workspace", "--all-features", "--release"]);
    test.env("SEMIONT_JOBS_TORTURE", "1");
    run("torture", test)
}

/// Every non-test `.rs` file starts with a `//!` line; no stray debugging or
/// placeholder macros anywhere.
fn tidy(root: &Path) -> Result<(), String> {
    println!("==> tidy");
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "tests"] {
        collect_rs(&root.join(dir), &mut files);
    }
    let banned = [
        concat!("dbg", "!("),
        concat!("todo", "!("),
        concat!("unimplemented", "!("),
    ];
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            problems.push(format!("{}: unreadable", file.display()));
            continue;
        };
        let rel = file.strip_prefix(root).unwrap_or(file);
        let is_test = rel
            .components()
            .any(|c| c.as_os_str() == "tests" || c.as_os_str() == "benches");
        if !is_test && !text.trim_start().starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a `//!` module doc",
                rel.display()
            ));
        }
        for (n, line) in text.lines().enumerate() {
            for b in banned {
                if line.contains(b) {
                    problems.push(format!("{}:{}: contains {b}", rel.display(), n + 1));
                }
            }
        }
    }
    if problems.is_empty() {
        println!("<== tidy: {} files ok", files.len());
        Ok(())
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        Err(format!("tidy found {} problem(s)", problems.len()))
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path
            .file_name()
            .is_some_and(|n| n == "target" || n == "fuzz")
        {
            continue;
        }
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
