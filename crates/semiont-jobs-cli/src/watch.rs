//! `watch`: live progress of running jobs, driven by queue events (the
//! store's notifications, including other processes'), with indicatif bars on
//! a terminal and one line per change otherwise (or JSON lines).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use semiont_jobs::model::{Job, JobFilter, JobId, JobStatus};
use semiont_jobs::queue::{EventKind, JobQueue, QueueEvent};
use serde_json::json;

use crate::output;

/// How to show changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// indicatif bars (a terminal).
    Bars,
    /// One text line per change.
    Lines,
    /// One JSON object per change.
    Json,
}

impl Mode {
    /// Bars on a terminal, lines otherwise; JSON when asked.
    pub fn pick(json: bool) -> Mode {
        if json {
            Mode::Json
        } else if std::io::stdout().is_terminal() {
            Mode::Bars
        } else {
            Mode::Lines
        }
    }
}

/// Shows progress of jobs until `until` says stop.
pub struct Display {
    mode: Mode,
    multi: MultiProgress,
    bars: HashMap<JobId, ProgressBar>,
}

impl Display {
    /// A display in `mode`.
    pub fn new(mode: Mode) -> Self {
        let multi = MultiProgress::with_draw_target(if mode == Mode::Bars {
            ProgressDrawTarget::stdout()
        } else {
            ProgressDrawTarget::hidden()
        });
        Display {
            mode,
            multi,
            bars: HashMap::new(),
        }
    }

    fn bar(&mut self, job: &Job) -> &ProgressBar {
        let multi = &self.multi;
        self.bars.entry(job.id.clone()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(100));
            let style =
                ProgressStyle::with_template("{prefix:.bold} [{bar:30.cyan/blue}] {pos:>3}% {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            let short: String = job
                .id
                .as_str()
                .chars()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            bar.set_prefix(format!("{} {short}", job.job_type));
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        })
    }

    /// Shows the current state of `job`.
    pub fn show(&mut self, job: &Job, kind: Option<EventKind>) -> anyhow::Result<()> {
        match self.mode {
            Mode::Json => output::json_line(&json!({
                "event": kind.map(|k| format!("job.{}", k.as_str())),
                "jobId": job.id,
                "type": job.job_type,
                "status": job.status,
                "attempt": job.attempt,
                "progress": job.progress,
                "error": job.error,
            })),
            Mode::Lines => {
                output::line(format!(
                    "{} {} {} {}",
                    job.id,
                    job.job_type,
                    job.status,
                    output::progress_summary(job.progress.as_ref())
                ));
                Ok(())
            }
            Mode::Bars => {
                let finished = job.status.is_finished();
                let pct = output::percentage(job.progress.as_ref()).unwrap_or(
                    if job.status == JobStatus::Complete {
                        100.0
                    } else {
                        0.0
                    },
                );
                let msg = bar_message(job);
                let bar = self.bar(job).clone();
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "clamped to 0..=100"
                )]
                bar.set_position(pct.round() as u64);
                bar.set_message(msg);
                if finished {
                    bar.finish();
                    self.bars.remove(&job.id);
                }
                Ok(())
            }
        }
    }

    /// Clears the bars.
    pub fn finish(&mut self) {
        for (_, bar) in self.bars.drain() {
            bar.finish_and_clear();
        }
    }
}

/// The text beside a bar: the progress without its percentage (the bar
/// shows that once), or the status of a job that is not running.
pub fn bar_message(job: &Job) -> String {
    match job.status {
        JobStatus::Running => output::progress_detail(job.progress.as_ref()),
        other => other.to_string(),
    }
}

/// `watch ID`: until the job ends. `watch`: running jobs, until interrupted.
pub async fn watch(queue: &JobQueue, id: Option<JobId>, json: bool) -> anyhow::Result<()> {
    let mut display = Display::new(Mode::pick(json));
    // Subscribe first so no change between the read and the subscription is missed.
    let mut events = match &id {
        Some(id) => queue.subscribe().only_job(id.clone()),
        None => queue.subscribe(),
    };
    match &id {
        Some(id) => {
            let job = queue.get_job(id).await?;
            display.show(&job, None)?;
            if job.status.is_finished() {
                display.finish();
                return Ok(());
            }
        }
        None => {
            let running = queue
                .list_jobs(&JobFilter::default().status(JobStatus::Running).limit(1000))
                .await?;
            for job in running.jobs.iter().rev() {
                display.show(job, None)?;
            }
        }
    }
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        let ev: QueueEvent = tokio::select! {
            ev = events.recv() => match ev {
                Some(ev) => ev,
                None => break,
            },
            _ = &mut interrupted => break,
        };
        if ev.kind == EventKind::Resynced {
            if let Some(id) = &id {
                let job = queue.get_job(id).await?;
                display.show(&job, Some(ev.kind))?;
                if job.status.is_finished() {
                    break;
                }
            }
            continue;
        }
        let Some(job) = ev.job.as_deref() else {
            continue;
        };
        if id.is_none()
            && !matches!(
                ev.kind,
                EventKind::Started
                    | EventKind::Progress
                    | EventKind::Completed
                    | EventKind::Failed
                    | EventKind::Cancelled
                    | EventKind::Retrying
                    | EventKind::Recovered
            )
        {
            continue;
        }
        display.show(job, Some(ev.kind))?;
        if id.is_some() && job.status.is_finished() {
            break;
        }
    }
    display.finish();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use semiont_jobs::model::{NewJob, Progress, Timestamp};

    #[test]
    fn a_bar_shows_the_percentage_once() {
        let mut job = NewJob::custom("sleep", "u", serde_json::json!({}))
            .unwrap()
            .into_job(JobId::generate(), Timestamp::now(), 3)
            .unwrap();
        job.status = JobStatus::Running;
        job.progress = Some(
            serde_json::to_value(Progress::percent(45.0).with_message("slept 450 of 1000 ms"))
                .unwrap(),
        );
        assert_eq!(bar_message(&job), "slept 450 of 1000 ms");
        assert_eq!(
            output::progress_summary(job.progress.as_ref()),
            "45% slept 450 of 1000 ms",
            "the line mode keeps it"
        );
        job.progress = Some(serde_json::json!({"percentage": 10}));
        assert_eq!(bar_message(&job), "");
        job.status = JobStatus::Complete;
        assert_eq!(bar_message(&job), "complete");
    }
}
