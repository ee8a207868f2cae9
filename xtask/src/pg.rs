//! A throwaway PostgreSQL cluster for the test suites: found or installed
//! (Debian's `postgresql` package, when running as root), initialised in
//! the target directory (or the temp directory when the `postgres` account
//! cannot reach it), listening on loopback at a free port with password
//! authentication, and stopped and removed when dropped, whatever happened.
//!
//! Tests find it through environment variables: [`URL_VAR`] (a database
//! for the tests, as the `postgres` superuser), and for the tests that
//! restart the server [`DATA_VAR`], [`BIN_VAR`] and [`AS_VAR`].

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// The test database URL.
pub const URL_VAR: &str = "SEMIONT_JOBS_TEST_DATABASE_URL";
/// The cluster's data directory (for `pg_ctl restart`).
pub const DATA_VAR: &str = "SEMIONT_JOBS_TEST_PG_DATA";
/// The directory holding `pg_ctl`.
pub const BIN_VAR: &str = "SEMIONT_JOBS_TEST_PG_BIN";
/// The account `pg_ctl` must run as (empty: the current user).
pub const AS_VAR: &str = "SEMIONT_JOBS_TEST_PG_AS";

/// How a throwaway cluster is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// For the test suites: no flushes at all (`fsync = off`).
    Test,
    /// For benchmarks: a durable server as deployed (`fsync = on`,
    /// `synchronous_commit = on` unless a connection turns it off,
    /// `full_page_writes = on`), 256 MB of shared buffers, and
    /// `pg_stat_statements` loaded.
    Bench,
}

impl Profile {
    /// The server options (`postgres -c ...`) of this profile.
    pub fn settings(self) -> &'static str {
        match self {
            Profile::Test => {
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400"
            }
            Profile::Bench => {
                "-c fsync=on -c synchronous_commit=on -c full_page_writes=on \
                 -c max_connections=600 -c shared_buffers=256MB \
                 -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
            }
        }
    }
}

/// A running throwaway cluster.
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    run_as: Option<&'static str>,
    url: String,
    port: u16,
}

/// Whether this process runs as root (it may then install packages).
pub(crate) fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The newest `/usr/lib/postgresql/<v>/bin` holding `initdb`.
fn find_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: u32 = e.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b)
}

fn install() -> Result<PathBuf, String> {
    if let Some(bin) = find_bin() {
        return Ok(bin);
    }
    if !is_root() {
        return Err(
            "the PostgreSQL server is not installed and this is not root: \
             install Debian's postgresql package (sudo apt-get install postgresql) \
             and run again"
                .into(),
        );
    }
    println!("==> installing PostgreSQL (apt-get install postgresql)");
    let update = Command::new("apt-get")
        .args(["update", "-qq"])
        .status()
        .map_err(|e| format!("apt-get update: {e}"))?;
    if !update.success() {
        return Err(format!("apt-get update failed ({update})"));
    }
    let status = Command::new("apt-get")
        .args([
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "postgresql",
        ])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("apt-get install postgresql: {e}"))?;
    if !status.success() {
        return Err(format!("apt-get install postgresql failed ({status})"));
    }
    find_bin().ok_or_else(|| "postgresql installed, but no initdb under /usr/lib/postgresql".into())
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))
}

fn random_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let a = h.finish();
    h.write_u64(a);
    format!("ci{a:016x}{:016x}", h.finish())
}

impl Cluster {
    /// Finds or installs the server, initialises a cluster under
    /// `target_dir` and starts it, configured for the test suites.
    pub fn start(target_dir: &Path) -> Result<Cluster, String> {
        Cluster::start_with(target_dir, Profile::Test)
    }

    /// Like [`Cluster::start`], configured as `profile` says.
    pub fn start_with(target_dir: &Path, profile: Profile) -> Result<Cluster, String> {
        let t0 = Instant::now();
        let bin = install()?;
        let run_as = is_root().then_some("postgres");
        let port = free_port()?;
        let name = format!("semiont-jobs-pg-{}", std::process::id());
        let mut dir = target_dir.join(&name);
        if !prepare_dir(&dir, run_as) {
            dir = std::env::temp_dir().join(&name);
            if !prepare_dir(&dir, run_as) {
                return Err(format!(
                    "cannot prepare a data directory at {}",
                    dir.display()
                ));
            }
        }
        let password = random_password();
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n"))
            .map_err(|e| format!("{}: {e}", pwfile.display()))?;
        chown(&pwfile, run_as)?;
        let data = dir.join("data");
        let mut cluster = Cluster {
            bin,
            dir,
            run_as,
            url: String::new(),
            port,
        };
        cluster.pg(
            "initdb",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-U".as_ref(),
                "postgres".as_ref(),
                "--pwfile".as_ref(),
                pwfile.as_os_str(),
                "--auth-local=trust".as_ref(),
                "--auth-host=scram-sha-256".as_ref(),
                "--encoding=UTF8".as_ref(),
                "--locale=C".as_ref(),
                "--no-sync".as_ref(),
            ],
        )?;
        let _ = std::fs::remove_file(&pwfile);
        // A short socket path (the limit is ~100 bytes): the temp dir.
        let sock = std::env::temp_dir().join(format!("semiont-pg-{}", std::process::id()));
        std::fs::create_dir_all(&sock).map_err(|e| format!("{}: {e}", sock.display()))?;
        chown(&sock, run_as)?;
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} {}",
            sock.display(),
            profile.settings()
        );
        let log = cluster.dir.join("server.log");
        cluster.pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-l".as_ref(),
                log.as_os_str(),
                "-w".as_ref(),
                "-t".as_ref(),
                "60".as_ref(),
                "-o".as_ref(),
                opts.as_ref(),
                "start".as_ref(),
            ],
        )?;
        let db = "semiont_jobs_test";
        let psql = Command::new(cluster.bin.join("psql"))
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&sock)
            .args([
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
            ])
            .arg(format!("CREATE DATABASE {db}"))
            .status()
            .map_err(|e| format!("psql: {e}"))?;
        if !psql.success() {
            return Err(format!("creating the test database failed ({psql})"));
        }
        cluster.url = format!("postgres://postgres:{password}@127.0.0.1:{port}/{db}");
        println!(
            "==> PostgreSQL ({}) on 127.0.0.1:{port}, data in {}, ready in {:.1}s",
            cluster.bin.display(),
            cluster.dir.display(),
            t0.elapsed().as_secs_f64()
        );
        Ok(cluster)
    }

    /// Runs a server program (as the `postgres` account when root).
    fn pg(&self, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), String> {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        // Never pipes: a server started by pg_ctl would inherit them.
        let errors = self.dir.join(format!("{program}.err"));
        let err_file =
            std::fs::File::create(&errors).map_err(|e| format!("{}: {e}", errors.display()))?;
        let status = cmd
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(err_file)
            .status()
            .map_err(|e| format!("{program}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed ({status}): {}",
                std::fs::read_to_string(&errors).unwrap_or_default().trim()
            ))
        }
    }

    /// Runs `sql` with `psql` on the cluster's database; returns its
    /// unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> Result<String, String> {
        let sock = std::env::temp_dir().join(format!("semiont-pg-{}", std::process::id()));
        let out = Command::new(self.bin.join("psql"))
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&sock)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d"])
            .arg(self.url.rsplit('/').next().unwrap_or("postgres"))
            .args(["-c", sql])
            .output()
            .map_err(|e| format!("psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// The URL of the cluster's database (with its password).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sets the variables the tests read on `cmd`.
    pub fn export(&self, cmd: &mut Command) {
        cmd.env(URL_VAR, &self.url)
            .env(DATA_VAR, self.dir.join("data"))
            .env(BIN_VAR, &self.bin)
            .env(AS_VAR, self.run_as.unwrap_or(""));
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let stopped = self.pg(
            "pg_ctl",
            &[
                "-D".as_ref(),
                data.as_os_str(),
                "-m".as_ref(),
                "immediate".as_ref(),
                "-w".as_ref(),
                "stop".as_ref(),
            ],
        );
        if let Err(e) = stopped {
            eprintln!("xtask: stopping the test PostgreSQL: {e}");
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(
            std::env::temp_dir().join(format!("semiont-pg-{}", std::process::id())),
        );
        println!("==> PostgreSQL on port {} stopped and removed", self.port);
    }
}

fn chown(path: &Path, run_as: Option<&str>) -> Result<(), String> {
    let Some(user) = run_as else { return Ok(()) };
    let status = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(path)
        .status()
        .map_err(|e| format!("chown: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("chown {user} {} failed", path.display()))
    }
}

/// Creates `dir` for the cluster; when running as root, hands it to the
/// `postgres` account and checks that account can reach it.
fn prepare_dir(dir: &Path, run_as: Option<&str>) -> bool {
    let _ = std::fs::remove_dir_all(dir);
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let Some(user) = run_as else { return true };
    if chown(dir, run_as).is_err() {
        return false;
    }
    let reachable = Command::new("runuser")
        .args(["-u", user, "--", "test", "-w"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if !reachable {
        let _ = std::fs::remove_dir_all(dir);
    }
    reachable
}
