//! `resources`, `annotations`, and the detection and generation workers of
//! `work` (being wired to the content crates).

use std::sync::Arc;

use semiont_jobs_worker::JobWorker;

use crate::app::App;
use crate::args::{Annotations, Cli, Resources, WorkArgs};

/// `resources ...`.
pub async fn resources(_cli: &Cli, _r: &Resources) -> anyhow::Result<()> {
    anyhow::bail!("resources: not wired yet")
}

/// `annotations ...`.
pub async fn annotations(_cli: &Cli, _a: &Annotations) -> anyhow::Result<()> {
    anyhow::bail!("annotations: not wired yet")
}

/// The detection and generation workers for `work`.
#[allow(clippy::type_complexity, reason = "temporary")]
pub fn workers(
    _app: &App,
    _args: &WorkArgs,
) -> anyhow::Result<(Option<Arc<dyn JobWorker>>, Option<Arc<dyn JobWorker>>)> {
    Ok((None, None))
}
