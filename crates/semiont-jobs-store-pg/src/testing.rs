//! Test support (feature `test-support`): a throwaway schema per test in the
//! database named by [`TEST_URL_VAR`], dropped when the guard goes.
//!
//! The variable is required: a test that needs PostgreSQL fails with a
//! message saying how to provide one (`cargo xtask ci` starts a server and
//! sets it), it never skips silently.

#![allow(
    clippy::missing_panics_doc,
    reason = "test support: a missing database is a panic with a message"
)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{DatabaseUrl, PgClock, PgOptions, PgStore};

/// The environment variable naming the test database.
pub const TEST_URL_VAR: &str = "SEMIONT_JOBS_TEST_DATABASE_URL";

/// The test database's URL.
///
/// # Panics
/// When [`TEST_URL_VAR`] is unset or invalid.
pub fn test_url() -> DatabaseUrl {
    let raw = std::env::var(TEST_URL_VAR).unwrap_or_else(|_| {
        panic!(
            "{TEST_URL_VAR} is not set: the PostgreSQL tests need a database \
             (cargo xtask ci starts a throwaway server and sets it; or export \
             {TEST_URL_VAR}=postgres://user@127.0.0.1:5432/test)"
        )
    });
    DatabaseUrl::parse(&raw).unwrap_or_else(|e| panic!("{TEST_URL_VAR}: {e}"))
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A schema of its own for one test, dropped (with everything in it) when
/// this guard is dropped.
#[derive(Debug)]
pub struct TestSchema {
    url: DatabaseUrl,
    name: String,
}

impl Default for TestSchema {
    fn default() -> Self {
        Self::new()
    }
}

impl TestSchema {
    /// A fresh, unique schema name in the test database (created by the
    /// first store opened on it).
    pub fn new() -> Self {
        let url = test_url();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("t_{}_{n}_{nanos:x}", std::process::id());
        TestSchema { url, name }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test database's URL.
    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// Options for this schema, judging times by the server's clock, with
    /// a small pool.
    pub fn options(&self) -> PgOptions {
        PgOptions::default()
            .schema(self.name.clone())
            .pool_size(4)
            .durability(crate::Durability::None)
    }

    /// Options for this schema judging times by the caller's clock.
    pub fn caller_clock_options(&self) -> PgOptions {
        self.options().clock(PgClock::Caller)
    }

    /// Opens a store on this schema.
    ///
    /// # Panics
    /// When the store cannot be opened.
    pub async fn open(&self, opts: PgOptions) -> PgStore {
        PgStore::open(&self.url, opts)
            .await
            .unwrap_or_else(|e| panic!("open the test schema: {e}"))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let config = self.url.config().clone();
        let tls = crate::connect::tls(self.url.verify());
        let sql = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        // Drop may run inside a runtime: use a thread with its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async move {
                let (client, conn) = config.connect(tls.ok()?).await.ok()?;
                let driver = tokio::spawn(conn);
                let dropped = client.batch_execute(&sql).await;
                drop(client);
                let _ = driver.await;
                dropped.ok()
            })
        })
        .join();
        if !matches!(done, Ok(Some(()))) {
            tracing::warn!(schema = %self.name, "could not drop the test schema");
        }
    }
}

/// The directory holding the server programs (`initdb`, `pg_ctl`), as
/// `cargo xtask` exports it, else the newest `/usr/lib/postgresql/<v>/bin`.
const BIN_VAR: &str = "SEMIONT_JOBS_TEST_PG_BIN";

fn server_bin() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os(BIN_VAR) {
        return dir.into();
    }
    let mut found: Vec<(u32, std::path::PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server programs: set {BIN_VAR} or install Debian's postgresql \
             package (cargo xtask ci installs it when run as root)"
        )
    })
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL server of a test's own (for tests that restart or stop
/// it): a fresh cluster on loopback at a free port, trust authentication,
/// stopped and removed on drop.
#[derive(Debug)]
pub struct TestCluster {
    bin: std::path::PathBuf,
    dir: std::path::PathBuf,
    as_postgres: bool,
    port: u16,
}

impl TestCluster {
    /// Initialises and starts the cluster (a few seconds).
    ///
    /// # Panics
    /// When the server programs are missing or fail.
    pub fn start() -> Self {
        let bin = server_bin();
        let as_postgres = running_as_root();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let dir = std::env::temp_dir().join(format!(
            "semiont-tc-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        let cluster = TestCluster {
            bin,
            dir,
            as_postgres,
            port,
        };
        if as_postgres {
            let ok = std::process::Command::new("chown")
                .arg("postgres:")
                .arg(&cluster.dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster directory to postgres");
        }
        let data = cluster.dir.join("data");
        cluster.pg(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            cluster.dir.display()
        );
        cluster.pg_ctl(&[
            "-o",
            &opts,
            "-l",
            &cluster.dir.join("log").display().to_string(),
            "start",
        ]);
        cluster
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let path = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        // Never pipes: a server started by pg_ctl inherits them and would
        // keep them open.
        let errors = self.dir.join(format!("{program}.err"));
        let err_file = std::fs::File::create(&errors).expect("create an error file");
        let status = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err_file)
            .status()
            .expect("run a server program");
        assert!(
            status.success(),
            "{program} {args:?} failed: {}",
            std::fs::read_to_string(&errors).unwrap_or_default()
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.dir.join("data").display().to_string();
        let mut all = vec!["-D", &data, "-w", "-t", "60"];
        all.extend_from_slice(args);
        self.pg("pg_ctl", &all);
    }

    /// The URL of its `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> DatabaseUrl {
        DatabaseUrl::parse(&format!(
            "postgres://postgres@127.0.0.1:{}/postgres",
            self.port
        ))
        .expect("a valid URL")
    }

    /// Restarts the server (fast shutdown: every connection is cut).
    pub fn restart(&self) {
        let log = self.dir.join("log").display().to_string();
        self.pg_ctl(&["-m", "fast", "-l", &log, "restart"]);
    }

    /// Stops the server (fast shutdown).
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// Starts a stopped server again.
    pub fn start_again(&self) {
        let log = self.dir.join("log").display().to_string();
        self.pg_ctl(&["-l", &log, "start"]);
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let path = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
