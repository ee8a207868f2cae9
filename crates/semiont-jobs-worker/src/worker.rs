//! The [`JobWorker`] trait: what a job type's implementation provides.

use async_trait::async_trait;
use semiont_jobs_model::Job;
use semiont_jobs_store::TypeFilter;
use serde_json::Value;

use crate::{JobContext, JobError};

/// The code that executes jobs of some types (the seed's `JobWorker` class).
///
/// ```
/// use semiont_jobs_model::{Job, JobType, Progress};
/// use semiont_jobs_store::TypeFilter;
/// use semiont_jobs_worker::{JobContext, JobError, JobWorker};
///
/// struct MyWorker;
///
/// #[async_trait::async_trait]
/// impl JobWorker for MyWorker {
///     fn worker_name(&self) -> &str {
///         "my-worker"
///     }
///
///     fn job_types(&self) -> TypeFilter {
///         TypeFilter::one(JobType::parse("my-job-type").unwrap())
///     }
///
///     fn can_process_job(&self, job: &Job) -> bool {
///         job.job_type.as_str() == "my-job-type"
///     }
///
///     async fn execute_job(
///         &self,
///         ctx: &JobContext,
///         _job: &Job,
///     ) -> Result<Option<serde_json::Value>, JobError> {
///         for i in 0..100u32 {
///             // do_work(i).await?;
///             ctx.update_progress(
///                 Progress::percent(f64::from(i)).with_message(format!("Processing item {i}...")),
///             )
///             .await?;
///         }
///         Ok(None)
///     }
/// }
/// ```
#[async_trait]
pub trait JobWorker: Send + Sync + 'static {
    /// A short name for logs and the worker id (the seed's `getWorkerName`).
    fn worker_name(&self) -> &str;

    /// The job types this worker claims. The default, every type, suits a
    /// worker that is the only one on its queue; otherwise name the types so
    /// other workers' jobs are left for them.
    fn job_types(&self) -> TypeFilter {
        TypeFilter::Any
    }

    /// A last check on a claimed job (the seed's `canProcessJob`). A job
    /// refused here is given back to the queue, untouched, for another
    /// worker.
    fn can_process_job(&self, job: &Job) -> bool;

    /// Executes one attempt of `job`. `Ok(result)` completes the job with
    /// that result; an error fails the attempt (retried with back-off when
    /// [`JobError::is_retryable`] and retries remain). Long jobs should report
    /// progress through `ctx` and check `ctx`'s cancellation token.
    async fn execute_job(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError>;
}

#[async_trait]
impl<T: JobWorker + ?Sized> JobWorker for std::sync::Arc<T> {
    fn worker_name(&self) -> &str {
        (**self).worker_name()
    }
    fn job_types(&self) -> TypeFilter {
        (**self).job_types()
    }
    fn can_process_job(&self, job: &Job) -> bool {
        (**self).can_process_job(job)
    }
    async fn execute_job(&self, ctx: &JobContext, job: &Job) -> Result<Option<Value>, JobError> {
        (**self).execute_job(ctx, job).await
    }
}
