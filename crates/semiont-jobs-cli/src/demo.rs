//! `demo`: the end-to-end tour on the sample documents.

use crate::args::Cli;

/// Runs the demo.
pub async fn run(_cli: &Cli) -> anyhow::Result<()> {
    anyhow::bail!("demo: not wired yet")
}
