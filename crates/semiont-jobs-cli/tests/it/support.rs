//! Running the binary in a temp data dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub struct Env {
    _dir: tempfile::TempDir,
    pub data: PathBuf,
    /// With the queue in PostgreSQL: its URL and schema.
    pub db: Option<(String, String)>,
    _schema: Option<semiont_jobs::store_pg::testing::TestSchema>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        Env {
            _dir: dir,
            data,
            db: None,
            _schema: None,
        }
    }

    /// A data directory whose queue is in a fresh schema of the test
    /// database (`SEMIONT_JOBS_TEST_DATABASE_URL`), passed to every command
    /// through `SEMIONT_JOBS_DATABASE_URL` and `SEMIONT_JOBS_DB_SCHEMA`.
    pub fn pg() -> Env {
        let schema = semiont_jobs::store_pg::testing::TestSchema::new();
        let (url, name) = (schema.url().expose().to_owned(), schema.name().to_owned());
        Env::on_db(&url, &name, Some(schema))
    }

    /// A data directory whose queue is in `schema` of the database at `url`.
    pub fn on_db(
        url: &str,
        schema: &str,
        guard: Option<semiont_jobs::store_pg::testing::TestSchema>,
    ) -> Env {
        Env {
            db: Some((url.to_owned(), schema.to_owned())),
            _schema: guard,
            ..Env::new()
        }
    }

    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_semiont-jobs"));
        c.arg("--data-dir").arg(&self.data);
        c.env_remove("SEMIONT_JOBS_DATA_DIR");
        c.env_remove("SEMIONT_JOBS_CONFIG");
        c.env_remove("RUST_LOG");
        c.env_remove("SEMIONT_JOBS_DATABASE_URL");
        c.env_remove("SEMIONT_JOBS_DB_SCHEMA");
        for (key, _) in std::env::vars() {
            if key.starts_with("SEMIONT_INFERENCE") || key == "OLLAMA_HOST" {
                c.env_remove(key);
            }
        }
        c.env_remove("SEMIONT_JOBS_LAYOUT");
        if let Some((url, schema)) = &self.db {
            c.env("SEMIONT_JOBS_DATABASE_URL", url);
            c.env("SEMIONT_JOBS_DB_SCHEMA", schema);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with `--json` and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    /// Runs, expects exit code `code` and a one-line error; returns it.
    pub fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        assert!(!lines.is_empty(), "{args:?}: no error message");
        assert!(lines[0].starts_with("error"), "{args:?}: {err}");
        err
    }

    pub fn enqueue_noop(&self) -> String {
        let job = self.json(&["enqueue", "custom", "--type", "noop", "--user", "u1"]);
        job["id"].as_str().unwrap().to_owned()
    }

    /// `init`, then `text` added as the resource `doc`.
    pub fn add_doc(&self, text: &str) {
        self.ok(&["init"]);
        let file = self.data.parent().unwrap().join("doc.txt");
        std::fs::write(&file, text).unwrap();
        self.ok(&["resources", "add", file.to_str().unwrap()]);
    }

    /// Enqueues detection of `types` (comma-separated) in `doc` for user
    /// `u`; returns the job id.
    pub fn enqueue_detection(&self, types: &str) -> String {
        let job = self.json(&[
            "enqueue",
            "detection",
            "--user",
            "u",
            "--resource",
            "doc",
            "--entity-type",
            types,
        ]);
        job["id"].as_str().unwrap().to_owned()
    }
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}
