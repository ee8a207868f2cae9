//! `bench`: runs the benchmark harness, the `semiont-jobs-bench` binary of
//! crate `semiont-jobs-bench`, with this command's arguments. The harness
//! is a separate program so that this binary depends on the facade alone;
//! it is looked up next to this executable, then on `PATH`. Its output and
//! exit status are passed through, and `SEMIONT_JOBS_BIN` tells it which
//! `semiont-jobs` to start for the W3 and W4 worker processes.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::{CommandFactory, ValueEnum};

use crate::args::{BenchArgs, Cli};
use crate::output;

/// The harness's file name (without the platform's executable suffix).
const HARNESS: &str = "semiont-jobs-bench";

/// The environment variable through which the harness learns this binary.
const BIN_ENV: &str = "SEMIONT_JOBS_BIN";

/// The harness ended with this exit code; it has said why on its own
/// standard error, so `main` exits with the code and prints nothing.
#[derive(Debug)]
pub struct Exited(pub u8);

impl std::fmt::Display for Exited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the benchmark harness exited with code {}", self.0)
    }
}

impl std::error::Error for Exited {}

/// Runs the harness with `semiont-jobs`'s global flags that matter to it
/// (`--json`, and `--durability`/`--log-format` when given) followed by
/// the `bench` arguments, and waits for it.
pub fn run(cli: &Cli, args: &BenchArgs) -> anyhow::Result<()> {
    let Some(harness) = find_harness() else {
        if args
            .args
            .first()
            .is_some_and(|a| a == "--help" || a == "-h")
        {
            // Still say what the command is and how to get the harness.
            let mut cmd = Cli::command();
            cmd.build();
            if let Some(bench) = cmd.find_subcommand_mut("bench") {
                output::line(bench.render_long_help().to_string());
            }
            output::line(format!(
                "The harness is not installed: build it next to semiont-jobs (cargo build --release -p {HARNESS}) to see its options."
            ));
            return Ok(());
        }
        bail!("semiont-jobs bench needs the {HARNESS} binary next to semiont-jobs (cargo build --release -p {HARNESS})");
    };
    let me = std::env::current_exe().context("cannot find the semiont-jobs executable")?;
    let mut cmd = Command::new(&harness);
    cmd.args(global_flags(cli))
        .args(&args.args)
        .env(BIN_ENV, me);
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", harness.display()))?;
    if status.success() {
        return Ok(());
    }
    let code = status.code().unwrap_or_else(|| {
        // Killed by a signal: the shell's convention, 128 + the signal.
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    Err(Exited(u8::try_from(code).unwrap_or(1)).into())
}

/// `semiont-jobs-bench` next to this executable, else on `PATH`.
fn find_harness() -> Option<PathBuf> {
    let name = format!("{HARNESS}{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(&name)));
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(&name));
    beside.into_iter().chain(on_path).find(|p| p.is_file())
}

/// The global flags the harness understands: `--json` when set,
/// `--durability` and `--log-format` when given on the command line (an
/// absent `--durability` makes W1 run every mode).
fn global_flags(cli: &Cli) -> Vec<OsString> {
    let mut flags = Vec::new();
    if cli.json {
        flags.push("--json".into());
    }
    let given = given_on_command_line();
    if given.contains(&"durability") {
        flags.push("--durability".into());
        flags.push(value_name(cli.durability).into());
    }
    if given.contains(&"log_format") {
        flags.push("--log-format".into());
        flags.push(value_name(cli.log_format).into());
    }
    flags
}

/// Which of the global options `durability` and `log_format` the command
/// line gave (before or after `bench`), rather than their defaults.
fn given_on_command_line() -> Vec<&'static str> {
    let Ok(matches) = Cli::command().try_get_matches_from(std::env::args_os()) else {
        return Vec::new();
    };
    ["durability", "log_format"]
        .into_iter()
        .filter(|id| {
            let given = |m: &clap::ArgMatches| m.value_source(id) == Some(ValueSource::CommandLine);
            given(&matches) || matches.subcommand_matches("bench").is_some_and(given)
        })
        .collect()
}

/// The command-line spelling of a value of a global option.
fn value_name(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map_or_else(String::new, |v| v.get_name().to_owned())
}
