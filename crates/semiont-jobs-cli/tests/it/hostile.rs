//! The hostile-input corpus through the CLI (see `docs/reliability.md`):
//! odd ids and `--params`, permission denied on every directory (run as
//! uid 65534 with `setpriv`, since root ignores file modes), a read-only
//! data directory (a read-only bind mount), a full disk (a 512 KiB tmpfs),
//! two processes with different durability on one directory, and API keys
//! kept out of job files and logs. Cases that need root to set up (mounts,
//! dropping privileges) say so on stderr and do nothing elsewhere.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::{path_str, Env};

const BIN: &str = env!("CARGO_BIN_EXE_semiont-jobs");
const NOBODY: u32 = 65534;

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// `semiont-jobs --data-dir <data> <args>` run as uid/gid 65534 (root
/// drops privileges with `setpriv`); `None` when that is impossible here.
#[allow(clippy::print_stderr, reason = "says why a case could not run")]
fn run_as_nobody(data: &Path, args: &[&str]) -> Option<Output> {
    if !is_root() || !Path::new("/usr/bin/setpriv").exists() {
        eprintln!("hostile: not root or no setpriv: permission case not run");
        return None;
    }
    let out = Command::new("/usr/bin/setpriv")
        .arg(format!("--reuid={NOBODY}"))
        .arg(format!("--regid={NOBODY}"))
        .arg("--clear-groups")
        .arg(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("SEMIONT_JOBS_DATA_DIR")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    Some(out)
}

/// A temp dir nobody can traverse into, holding `data` owned by nobody
/// and initialised (as nobody).
fn nobody_data_dir() -> Option<(tempfile::TempDir, PathBuf)> {
    if !is_root() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = run_as_nobody(&data, &["init"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some((tmp, data))
}

/// Exit code 1 and a single `error: ...` line containing every needle.
fn assert_one_line_error(out: &Output, needles: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} in {err}");
    }
    err
}

// ---- ids and --params -------------------------------------------------

#[test]
fn id_overlong_or_with_control_characters_is_a_usage_error() {
    let env = Env::new();
    env.ok(&["init"]);
    let long = "j".repeat(200);
    let err = env.fails(&["get", &long], 2);
    assert!(err.contains("longer than 128 bytes"), "{err}");
    let err = env.fails(&["cancel", "job\u{1b}[31mred"], 2);
    assert!(err.contains("control character"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "the escape is not echoed raw: {err:?}"
    );
}

#[test]
fn params_nested_deeper_than_the_parser_allows_are_a_usage_error() {
    let env = Env::new();
    env.ok(&["init"]);
    let deep = format!(
        "{}{}",
        "{\"a\":".repeat(200),
        "1".to_owned() + &"}".repeat(200)
    );
    let err = env.fails(
        &[
            "enqueue", "custom", "--type", "noop", "--user", "u", "--params", &deep,
        ],
        2,
    );
    assert!(err.contains("recursion limit"), "{err}");
    assert_eq!(env.json(&["stats"])["pending"], 0);
}

#[test]
fn params_near_the_argv_limit_are_accepted_and_read_back() {
    // One argv string may hold at most 128 KiB on Linux, so the 1 MiB
    // parameter limit cannot be reached through the command line.
    let env = Env::new();
    env.ok(&["init"]);
    let params = format!("{{\"blob\":\"{}\"}}", "b".repeat(120 << 10));
    let job = env.json(&[
        "enqueue", "custom", "--type", "noop", "--user", "u", "--params", &params,
    ]);
    let id = job["id"].as_str().unwrap();
    let back = env.json(&["get", id]);
    assert_eq!(back["blob"].as_str().unwrap().len(), 120 << 10);
}

#[test]
fn params_that_are_not_plain_json_objects_are_usage_errors() {
    let env = Env::new();
    env.ok(&["init"]);
    for bad in [
        "NaN",
        "{\"x\": NaN}",
        "{\"x\": Infinity}",
        "\"s\"",
        "null x",
        "{\"a\":1}{",
    ] {
        env.fails(
            &[
                "enqueue", "custom", "--type", "noop", "--user", "u", "--params", bad,
            ],
            2,
        );
    }
    assert_eq!(env.json(&["stats"])["pending"], 0);
}

#[test]
fn params_with_duplicate_keys_keep_the_last_value() {
    let env = Env::new();
    env.ok(&["init"]);
    let job = env.json(&[
        "enqueue",
        "custom",
        "--type",
        "noop",
        "--user",
        "u",
        "--params",
        r#"{"a":1,"a":2}"#,
    ]);
    assert_eq!(job["a"], 2);
}

#[test]
fn params_that_are_not_utf8_are_a_usage_error() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    env.ok(&["init"]);
    let out = env
        .cmd()
        .args([
            "enqueue", "custom", "--type", "noop", "--user", "u", "--params",
        ])
        .arg(std::ffi::OsStr::from_bytes(b"{\"a\":\"\xff\"}"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.json(&["stats"])["pending"], 0);
}

#[test]
fn user_empty_or_with_control_characters_and_priority_out_of_range_are_usage_errors() {
    let env = Env::new();
    env.ok(&["init"]);
    env.fails(&["enqueue", "custom", "--type", "noop", "--user", ""], 2);
    env.fails(
        &["enqueue", "custom", "--type", "noop", "--user", "u\u{7}"],
        2,
    );
    env.fails(
        &[
            "enqueue",
            "custom",
            "--type",
            "noop",
            "--user",
            "u",
            "--priority",
            "40000",
        ],
        2,
    );
    assert_eq!(env.json(&["stats"])["pending"], 0);
}

// ---- permissions (as uid 65534) ----------------------------------------

#[test]
fn permission_denied_on_a_root_owned_data_dir() {
    if !is_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let Some(out) = run_as_nobody(&data, &["stats"]) else {
        return;
    };
    assert_one_line_error(&out, &[path_str(&data)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ermission denied"));
    let Some(out) = run_as_nobody(
        &data,
        &["enqueue", "custom", "--type", "noop", "--user", "u"],
    ) else {
        return;
    };
    assert_one_line_error(&out, &["ermission denied"]);
}

/// `sub` of nobody's jobs dir made unreadable (mode 000): every command
/// fails with one line naming it, and nothing is written.
fn permission_denied_on(sub: &str) {
    let Some((_tmp, data)) = nobody_data_dir() else {
        return;
    };
    let dir = data.join("jobs").join(sub);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o000)).unwrap();
    for args in [
        &["stats"][..],
        &["enqueue", "custom", "--type", "noop", "--user", "u"][..],
        &["list"][..],
    ] {
        let Some(out) = run_as_nobody(&data, args) else {
            return;
        };
        assert_one_line_error(&out, &["permission denied", sub]);
    }
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let out = run_as_nobody(&data, &["--json", "stats"]).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["pending"], 0, "nothing was written");
}

macro_rules! permission_cases {
    ($($name:ident: $sub:literal;)*) => {$(
        #[test]
        fn $name() {
            permission_denied_on($sub);
        }
    )*};
}

permission_cases! {
    permission_denied_on_pending: "pending";
    permission_denied_on_running: "running";
    permission_denied_on_complete: "complete";
    permission_denied_on_failed: "failed";
    permission_denied_on_cancelled: "cancelled";
    permission_denied_on_tmp: "tmp";
    permission_denied_on_quarantine: "quarantine";
    permission_denied_on_workers: "workers";
    permission_denied_on_locks: "locks";
}

#[test]
fn a_status_dir_owned_by_another_user_is_refused() {
    let Some((_tmp, data)) = nobody_data_dir() else {
        return;
    };
    let dir = data.join("jobs").join("running");
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    let out = run_as_nobody(&data, &["stats"]).unwrap();
    assert_one_line_error(&out, &["owned by uid 0", "running"]);
}

#[test]
fn a_read_only_jobs_dir_gives_one_line_errors() {
    // Mode 0500 on the jobs dir itself: its subdirectories stay writable,
    // so the queue keeps working (nothing is written in the jobs dir root).
    let Some((_tmp, data)) = nobody_data_dir() else {
        return;
    };
    let jobs = data.join("jobs");
    std::fs::set_permissions(&jobs, std::fs::Permissions::from_mode(0o500)).unwrap();
    let out = run_as_nobody(
        &data,
        &[
            "--json", "enqueue", "custom", "--type", "noop", "--user", "u",
        ],
    )
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The application root read-only: `resources add` cannot create its file.
    std::fs::set_permissions(&jobs, std::fs::Permissions::from_mode(0o700)).unwrap();
    let note = data.join("..").join("note.txt");
    std::fs::write(&note, "Ada Lovelace").unwrap();
    std::fs::set_permissions(
        data.join("resources"),
        std::fs::Permissions::from_mode(0o500),
    )
    .unwrap();
    let out = run_as_nobody(&data, &["resources", "add", path_str(&note)]).unwrap();
    assert_one_line_error(&out, &["ermission denied"]);
}

/// A read-only bind mount of `dir` over itself, undone on drop.
struct ReadOnlyBind(PathBuf);

impl ReadOnlyBind {
    fn new(dir: &Path) -> Option<ReadOnlyBind> {
        let ok = |args: &[&str]| {
            Command::new("mount")
                .args(args)
                .arg(dir)
                .arg(dir)
                .status()
                .is_ok_and(|s| s.success())
        };
        if !ok(&["--bind"]) {
            return None;
        }
        let guard = ReadOnlyBind(dir.to_owned());
        let remount = Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        remount.then_some(guard)
    }
}

impl Drop for ReadOnlyBind {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[allow(clippy::print_stderr, reason = "says when the mount could not be made")]
fn a_read_only_filesystem_gives_one_line_errors_and_changes_nothing() {
    let env = Env::new();
    env.ok(&["init"]);
    let id = env.enqueue_noop();
    let Some(ro) = ReadOnlyBind::new(&env.data) else {
        eprintln!("hostile: cannot bind-mount read-only here (not root?): case not run");
        return;
    };
    let out = env.run(&["stats"]);
    let err = assert_one_line_error(&out, &["Read-only file system"]);
    assert_eq!(
        err.matches("Read-only file system").count(),
        1,
        "said once: {err}"
    );
    let out = env.run(&["enqueue", "custom", "--type", "noop", "--user", "u"]);
    assert_one_line_error(&out, &["Read-only file system"]);
    let out = env.run(&["cancel", &id]);
    assert_one_line_error(&out, &["Read-only file system"]);
    drop(ro);
    let job = env.json(&["get", &id]);
    assert_eq!(job["status"], "pending");
    assert_eq!(env.json(&["stats"])["pending"], 1);
}

// ---- full disk ----------------------------------------------------------

/// A tmpfs of `size` mounted at `path`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn new(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).ok()?;
        Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success())
            .then(|| Tmpfs(path.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[allow(clippy::print_stderr, reason = "says when the mount could not be made")]
fn enqueue_on_a_full_disk_exits_1_with_one_line_and_damages_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    let Some(fs) = Tmpfs::new(&mnt, "512k") else {
        eprintln!("hostile: cannot mount a tmpfs here (not root?): full-disk CLI case not run");
        return;
    };
    let data = mnt.join("data");
    let run = |args: &[&str]| {
        Command::new(BIN)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let ballast = mnt.join("ballast");
    std::fs::write(&ballast, vec![1u8; 128 << 10]).unwrap();
    let pad = format!("{{\"pad\":\"{}\"}}", "p".repeat(3000));
    let mut ids = Vec::new();
    let out = loop {
        let out = run(&[
            "--json", "enqueue", "custom", "--type", "noop", "--user", "u", "--params", &pad,
        ]);
        if !out.status.success() {
            break out;
        }
        let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        ids.push(job["id"].as_str().unwrap().to_owned());
        assert!(ids.len() < 1000, "the disk never filled");
    };
    let err = assert_one_line_error(&out, &["No space left on device"]);
    assert_eq!(err.matches("No space left").count(), 1, "said once: {err}");
    std::fs::remove_file(&ballast).unwrap();
    let out = run(&["--json", "stats"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["pending"], ids.len());
    assert_eq!(stats["quarantined"], 0);
    for id in &ids {
        assert!(run(&["get", id]).status.success());
    }
    assert!(run(&["enqueue", "custom", "--type", "noop", "--user", "u"])
        .status
        .success());
    drop(fs);
}

// ---- two processes, different durability -------------------------------

#[test]
fn two_processes_with_different_durability_share_one_dir() {
    let env = Env::new();
    env.ok(&["init"]);
    let spawn = |durability: &str| {
        let mut cmds = Vec::new();
        for _ in 0..10 {
            cmds.push(
                env.cmd()
                    .args([
                        "--durability",
                        durability,
                        "--json",
                        "enqueue",
                        "custom",
                        "--type",
                        "noop",
                        "--user",
                        "u",
                    ])
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        cmds
    };
    let mut children = spawn("none");
    children.extend(spawn("fsync"));
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = env
        .cmd()
        .args([
            "--durability",
            "none",
            "work",
            "--types",
            "noop",
            "--exit-when-idle",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stats = env.json(&["stats"]);
    assert_eq!(
        (stats["complete"].as_u64(), stats["quarantined"].as_u64()),
        (Some(20), Some(0))
    );
}

// ---- secrets -------------------------------------------------------------

/// An HTTP server on 127.0.0.1 answering every request with `401`, keeping
/// the raw requests.
struct Stub {
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl Stub {
    fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, halt) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut head = String::new();
                let mut len = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                head.push_str(&String::from_utf8_lossy(&body));
                reqs.lock().unwrap().push(head);
                let reply = r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error"}}"#;
                let _ = write!(
                    conn,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
            }
        });
        Stub {
            port,
            requests,
            stop,
        }
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn files_containing(root: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            if m.is_dir() {
                stack.push(path);
            } else if m.is_file()
                && String::from_utf8_lossy(&std::fs::read(&path).unwrap()).contains(needle)
            {
                hits.push(path);
            }
        }
    }
    hits
}

#[test]
fn api_key_is_sent_to_the_server_but_never_written_to_job_files_or_logs() {
    let secret = "sk-test-5ecret-0f-the-hardening-suite";
    let stub = Stub::start();
    let env = Env::new();
    env.ok(&["init"]);
    let doc = env.data.join("..").join("doc.txt");
    std::fs::write(&doc, "Ada Lovelace met Charles Babbage in London.").unwrap();
    env.ok(&["resources", "add", path_str(&doc), "--id", "doc-1"]);
    let job = env.json(&[
        "enqueue",
        "detection",
        "--user",
        "u",
        "--resource",
        "doc-1",
        "--entity-type",
        "Person",
        "--max-retries",
        "0",
    ]);
    let url = format!("http://127.0.0.1:{}/v1", stub.port);
    let out = env
        .cmd()
        .args([
            "--log-format",
            "json",
            "work",
            "--inference",
            "openai",
            "--url",
            &url,
        ])
        .args(["--model", "m", "--exit-when-idle", "--poll-interval", "100"])
        .env("OPENAI_API_KEY", secret)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{logs}");
    let sent = stub.requests.lock().unwrap().join("\n");
    assert!(sent.contains(secret), "the key was used: {sent}");
    assert!(!logs.contains(secret), "key in the logs");
    assert!(!logs.contains("5ecret"), "part of the key in the logs");
    let files = files_containing(&env.data, "5ecret");
    assert!(files.is_empty(), "key in files: {files:?}");
    let back = env.json(&["get", job["id"].as_str().unwrap()]);
    assert_eq!(back["status"], "failed", "{back}");
    assert!(!back.to_string().contains("5ecret"));
}
