//! The built-in diagnostic job types run by `work`: `noop` (completes at
//! once), `sleep` (`{"ms": N}`, reports progress, honours cancellation),
//! `fail` (`{"retryable": bool}`) and `steps` (`{"units": [...], "ms": N}`,
//! resumable: each unit is checkpointed, a retry does only the rest).

use std::time::Duration;

use semiont_jobs::model::{Checkpoint, Job, Progress};
use semiont_jobs::worker::{JobContext, JobError};
use serde_json::{json, Value};

/// Runs a diagnostic job, or `None` if `job_type` is not one.
pub async fn run(ctx: &JobContext, job: &Job) -> Option<Result<Option<Value>, JobError>> {
    Some(match job.job_type.as_str() {
        "noop" => Ok(None),
        "sleep" => sleep(ctx, job).await,
        "steps" => steps(ctx, job).await,
        "fail" => {
            let retryable = job
                .params
                .get("retryable")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let message = format!("fail job asked to fail (attempt {})", ctx.attempt());
            if retryable {
                Err(JobError::retryable(message).with_code("REQUESTED_FAILURE"))
            } else {
                Err(JobError::permanent(message).with_code("REQUESTED_FAILURE"))
            }
        }
        _ => return None,
    })
}

async fn sleep(ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
    let ms = match job.params.get("ms") {
        None => 1000,
        Some(v) => v.as_u64().ok_or_else(|| {
            JobError::permanent(format!(
                "sleep job: ms must be a whole number of milliseconds, not {v}"
            ))
            .with_code("INVALID_PARAMS")
        })?,
    };
    let steps = 20u64.min(ms.max(1));
    let step = Duration::from_millis(ms) / u32::try_from(steps).unwrap_or(1);
    for i in 1..=steps {
        tokio::select! {
            _ = tokio::time::sleep(step) => {}
            _ = ctx.cancellation_token().cancelled() => return Err(JobError::cancelled()),
        }
        #[allow(clippy::cast_precision_loss, reason = "steps is at most 20")]
        let pct = (i * 100) as f64 / steps as f64;
        ctx.update_progress(
            Progress::percent(pct)
                .with_message(format!("slept {} of {ms} ms", step.as_millis() as u64 * i)),
        )
        .await?;
    }
    Ok(Some(json!({ "sleptMs": ms })))
}

/// `steps`: for each unit not completed by an earlier attempt, waits `ms`
/// (default 500), checkpoints the unit, then logs `job.unit` (so a logged
/// unit is a recorded one). Reports progress per unit; honours
/// cancellation.
async fn steps(ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
    let invalid =
        |m: String| JobError::permanent(format!("steps job: {m}")).with_code("INVALID_PARAMS");
    let units: Vec<String> = match job.params.get("units") {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| invalid(format!("units must be an array of strings, not {v}")))?,
        None => return Err(invalid("units is missing".into())),
    };
    let ms = match job.params.get("ms") {
        None => 500,
        Some(v) => v.as_u64().ok_or_else(|| {
            invalid(format!(
                "ms must be a whole number of milliseconds, not {v}"
            ))
        })?,
    };
    let total = units.len();
    let mut ran = Vec::new();
    for (i, unit) in units.iter().enumerate() {
        if ctx.is_completed(unit) {
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
            _ = ctx.cancellation_token().cancelled() => return Err(JobError::cancelled()),
        }
        #[allow(clippy::cast_precision_loss, reason = "unit counts are small")]
        let pct = ((i + 1) * 100) as f64 / total as f64;
        ctx.update_progress(Progress::percent(pct).with_message(format!("unit {unit} done")))
            .await?;
        ctx.checkpoint(Checkpoint::unit_done(unit.clone())).await?;
        tracing::info!(event = "job.unit", job_id = %job.id, attempt = ctx.attempt(), worker_id = %ctx.worker_id(), unit = %unit, "unit done");
        ran.push(unit.clone());
    }
    Ok(Some(json!({ "units": total, "ranThisAttempt": ran })))
}
