//! Running `semiont-jobs` (and the harness) in a temp directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The harness binary of this package.
pub fn harness() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_semiont-jobs-bench"))
}

/// `semiont-jobs`, from the same target directory as the harness (Cargo's
/// `CARGO_BIN_EXE_*` names only this package's binaries). `cargo xtask ci`
/// builds every binary of the workspace before the tests.
pub fn semiont_jobs() -> PathBuf {
    let bin = harness().with_file_name(format!("semiont-jobs{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.is_file(),
        "{} is missing: these tests run the semiont-jobs binary next to semiont-jobs-bench; \
         build it first (cargo build -p semiont-jobs-cli, or cargo build --workspace --bins)",
        bin.display()
    );
    bin
}

pub struct Env {
    dir: tempfile::TempDir,
    pub data: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Env { dir, data }
    }

    /// A directory in this environment's temp dir, by name.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `semiont-jobs --data-dir <data>` with a clean environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(semiont_jobs());
        c.arg("--data-dir").arg(&self.data);
        clean(&mut c);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        ok(self.cmd().args(args), args)
    }
}

/// The harness alone, with a clean environment.
pub fn harness_cmd() -> Command {
    let mut c = Command::new(harness());
    clean(&mut c);
    c
}

fn clean(c: &mut Command) {
    c.env_remove("SEMIONT_JOBS_DATA_DIR")
        .env_remove("SEMIONT_JOBS_BIN")
        .env_remove("RUST_LOG");
}

/// Runs `cmd` and expects success; returns stdout.
pub fn ok(cmd: &mut Command, what: &[&str]) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
