//! `copy`: moves every job of a queue into another, empty one (a data
//! directory or a PostgreSQL database on either side), documents unchanged,
//! then checks the counts per status on both sides.

use anyhow::bail;
use semiont_jobs::model::{JobFilter, JobStatus, QueueStats};
use serde_json::json;

use crate::app::{durability, Create, Location};
use crate::args::{Cli, CopyArgs};
use crate::output;

/// Jobs read and written per round.
const PAGE: usize = 1000;

/// Runs `copy`.
pub async fn run(cli: &Cli, args: &CopyArgs) -> anyhow::Result<()> {
    let from = Location::parse(&args.from)?;
    let to = Location::parse(&args.to)?;
    let durability = durability(cli);
    let (src, src_name) = from.open(&cli.db_schema, durability, Create::No).await?;
    let live: Vec<String> = src
        .workers()
        .await?
        .into_iter()
        .filter(|w| w.alive)
        .map(|w| w.id)
        .collect();
    if !live.is_empty() && !args.force {
        bail!(
            "{} worker(s) are registered on {src_name} ({}); stop them before copying, or pass --force",
            live.len(),
            live.join(", ")
        );
    }
    let (dst, dst_name) = to.open(&cli.db_schema, durability, Create::Yes).await?;
    if dst_name == src_name {
        bail!("--from and --to are the same queue ({src_name})");
    }
    let existing = dst.stats().await?.total();
    if existing > 0 {
        bail!("{dst_name} is not empty ({existing} job(s)); copy into an empty queue");
    }
    let before = src.stats().await?;
    let mut copied = 0u64;
    for status in JobStatus::ALL {
        let mut offset = 0;
        loop {
            let filter = JobFilter::default()
                .status(status)
                .limit(PAGE)
                .offset(offset);
            let page = src.list(&filter).await?;
            if page.jobs.is_empty() {
                break;
            }
            dst.create_batch(&page.jobs).await?;
            copied += page.jobs.len() as u64;
            offset += page.jobs.len();
        }
    }
    let after = src.stats().await?;
    let written = dst.stats().await?;
    let counts = |s: &QueueStats| (s.pending, s.running, s.complete, s.failed, s.cancelled);
    if counts(&before) != counts(&after) {
        bail!(
            "{src_name} changed during the copy ({} job(s) before, {} after); {dst_name} holds a partial copy",
            before.total(),
            after.total()
        );
    }
    if counts(&written) != counts(&before) || written.total() != copied {
        bail!(
            "the counts differ after copying: {src_name} has {} job(s), {dst_name} has {}",
            before.total(),
            written.total()
        );
    }
    if cli.json {
        output::json(&json!({
            "from": src_name,
            "to": dst_name,
            "copied": copied,
            "stats": written,
        }))
    } else {
        output::line(format!(
            "copied {copied} job(s) from {src_name} to {dst_name} (pending {}, running {}, complete {}, failed {}, cancelled {}); counts verified",
            written.pending, written.running, written.complete, written.failed, written.cancelled
        ));
        Ok(())
    }
}
