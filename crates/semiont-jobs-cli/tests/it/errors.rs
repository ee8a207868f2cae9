//! Bad input: exit codes (2 usage, 1 other) and one-line messages naming
//! what was wrong; nothing written.

use crate::support::{path_str, Env};

#[test]
fn unknown_id_is_exit_1_and_named() {
    let env = Env::new();
    env.ok(&["init"]);
    let err = env.fails(&["get", "job-does-not-exist"], 1);
    assert!(
        err.contains("job-does-not-exist") && err.contains("not found"),
        "{err}"
    );
    env.fails(&["cancel", "job-does-not-exist"], 1);
    env.fails(&["retry", "job-does-not-exist"], 1);
}

#[test]
fn invalid_id_is_a_usage_error() {
    let env = Env::new();
    env.ok(&["init"]);
    for bad in ["../etc/passwd", "a b", ".hidden"] {
        let err = env.fails(&["get", bad], 2);
        assert!(err.contains("invalid job id"), "{err}");
    }
}

#[test]
fn bad_params_are_usage_errors_and_write_nothing() {
    let env = Env::new();
    env.ok(&["init"]);
    let err = env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "noop",
            "--user",
            "u",
            "--params",
            "{not json",
        ],
        2,
    );
    assert!(err.contains("--params is not valid JSON"), "{err}");
    let err = env.fails(
        &[
            "enqueue", "custom", "--type", "noop", "--user", "u", "--params", "[1,2]",
        ],
        2,
    );
    assert!(err.contains("JSON object"), "{err}");
    let err = env.fails(
        &["enqueue", "custom", "--type", "bad type", "--user", "u"],
        2,
    );
    assert!(err.contains("bad type"), "{err}");
    let err = env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "noop",
            "--user",
            "u",
            "--params",
            r#"{"status":"complete"}"#,
        ],
        2,
    );
    assert!(err.contains("reserved"), "{err}");
    env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "noop",
            "--user",
            "u",
            "--max-retries",
            "1000",
        ],
        2,
    );
    env.fails(
        &["enqueue", "detection", "--user", "u", "--resource", "r"],
        2,
    );
    assert_eq!(env.json(&["stats"])["pending"], 0);
}

#[test]
fn unknown_status_and_bad_flags_are_usage_errors() {
    let env = Env::new();
    env.ok(&["init"]);
    let err = env.fails(&["list", "--status", "done"], 2);
    assert!(err.contains("done"), "{err}");
    env.fails(&["list", "--limit", "100000"], 2);
    env.fails(&["cleanup", "--older-than", "1y"], 2);
    env.fails(&["work", "--concurrency", "0"], 2);
    env.fails(&["no-such-command"], 2);
}

#[test]
fn data_dir_that_is_a_file_or_missing() {
    let env = Env::new();
    std::fs::create_dir_all(env.data.parent().unwrap()).unwrap();
    std::fs::write(&env.data, "not a dir").unwrap();
    let err = env.fails(&["stats"], 1);
    assert!(
        err.contains(path_str(&env.data)) && err.contains("not a directory"),
        "{err}"
    );
    let err = env.fails(&["enqueue", "custom", "--type", "noop", "--user", "u"], 1);
    assert!(err.contains("not a directory"), "{err}");
    let missing = Env::new();
    let err = missing.fails(&["stats"], 1);
    assert!(err.contains("does not exist"), "{err}");
    assert!(!missing.data.exists(), "reading never creates the data dir");
}

#[test]
fn bench_without_its_harness_says_how_to_build_it() {
    // A copy of the binary in a directory of its own, and a PATH without
    // the harness: `bench` cannot find `semiont-jobs-bench`.
    let dir = tempfile::tempdir().unwrap();
    let lone = dir.path().join("semiont-jobs");
    std::fs::copy(env!("CARGO_BIN_EXE_semiont-jobs"), &lone).unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(&lone)
            .args(args)
            .env("PATH", &empty)
            .env_remove("SEMIONT_JOBS_DATA_DIR")
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&["bench", "--workload", "w1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: semiont-jobs bench needs the semiont-jobs-bench binary next to semiont-jobs \
         (cargo build --release -p semiont-jobs-bench)\n"
    );
    assert!(out.stdout.is_empty());
    // Its help still says what the command is, with examples.
    let out = run(&["bench", "--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("Examples:") && help.contains("cargo build --release -p semiont-jobs-bench"),
        "{help}"
    );
    assert!(!dir.path().join("data").exists(), "bench made a data dir");
}

/// Every command stops quietly, with status 141 (128 + SIGPIPE), when its
/// standard output is a pipe nobody reads any more.
#[test]
fn a_closed_output_pipe_ends_commands_quietly() {
    let env = Env::new();
    env.ok(&["init"]);
    let id = env.enqueue_noop();
    let file = env.data.parent().unwrap().join("doc.txt");
    std::fs::write(&file, "Grace Hopper visited Boston in 1952.").unwrap();
    env.ok(&["resources", "add", file.to_str().unwrap()]);
    env.enqueue_detection("Person,Location");
    env.ok(&[
        "work",
        "--types",
        "detection",
        "--exit-when-idle",
        "--poll-interval",
        "50",
    ]);
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["get", id.as_str()],
        vec!["stats"],
        vec!["stats", "--json"],
        vec!["resources", "list"],
        vec!["resources", "show", "doc"],
        vec!["annotations", "list", "doc"],
        vec!["annotations", "list", "doc", "--json"],
        vec!["completions", "bash"],
    ] {
        // The read end is closed before the command writes anything.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .cmd()
            .args(&args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(141),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
    // Like `semiont-jobs resources show big | head -1`: the reader takes
    // one line and goes away while the command still writes (1 MB, far
    // more than a pipe holds).
    let big = env.data.parent().unwrap().join("big.txt");
    std::fs::write(&big, "A line of text about Grace Hopper.\n".repeat(30_000)).unwrap();
    env.ok(&["resources", "add", big.to_str().unwrap()]);
    let mut child = env
        .cmd()
        .args(["resources", "show", "big"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.starts_with("# big.txt"), "{first}");
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(141), "{:?}", out.status);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// The benchmark harness too: a closed pipe ends it with 141, no error
/// message, and its data removed.
#[test]
fn a_closed_output_pipe_ends_a_benchmark_quietly_and_tidily() {
    let env = Env::new();
    let root = env.data.parent().unwrap().join("bench-root");
    std::fs::create_dir(&root).unwrap();
    for json in [false, true] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut cmd = env.cmd();
        cmd.args(["bench", "--workload", "w1", "--jobs", "50", "--no-floor"])
            .args(["--settle-max", "0", "--root", root.to_str().unwrap()]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{stderr}");
        assert!(
            !stderr.contains("error") && !stderr.contains("failed"),
            "{stderr}"
        );
        let left: Vec<_> = std::fs::read_dir(&root).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }
}
