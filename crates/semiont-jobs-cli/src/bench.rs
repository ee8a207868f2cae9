//! `bench`: workloads W1–W4 (DESIGN §9) as JSON lines.

use crate::args::{BenchArgs, Cli};

/// Runs the benchmarks.
pub async fn run(_cli: &Cli, _args: &BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench: not wired yet")
}
