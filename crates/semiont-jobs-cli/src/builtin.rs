//! The built-in diagnostic job types run by `work`: `noop` (completes at
//! once), `sleep` (`{"ms": N}`, reports progress, honours cancellation) and
//! `fail` (`{"retryable": bool}`).

use std::time::Duration;

use semiont_jobs::model::{Job, Progress};
use semiont_jobs::worker::{JobContext, JobError};
use serde_json::{json, Value};

/// Runs a diagnostic job, or `None` if `job_type` is not one.
pub async fn run(ctx: &JobContext, job: &Job) -> Option<Result<Option<Value>, JobError>> {
    Some(match job.job_type.as_str() {
        "noop" => Ok(None),
        "sleep" => sleep(ctx, job).await,
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
