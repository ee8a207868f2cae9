//! Fuzz target `params`: the CLI's `--params` path (`serde_json::from_str`,
//! `NewJob::custom`, `into_job`), then the queue: a job it accepts must be
//! readable again from its own JSON, and so must a job completed with the
//! same value as its result or reported with it as progress.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use semiont_jobs_model::{Job, JobId, NewJob, Timestamp};
use semiont_jobs_queue::{JobQueue, ManualClock};
use semiont_jobs_store::{JobStore, MemoryStore};
use serde_json::Value;

struct Env {
    rt: tokio::runtime::Runtime,
    queue: JobQueue,
    store: Arc<MemoryStore>,
    clock: ManualClock,
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(MemoryStore::new());
        let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
        let queue = JobQueue::builder()
            .store(store.clone())
            .clock(clock.clone())
            .build()
            .unwrap();
        rt.block_on(queue.register_worker("fuzz")).unwrap();
        Env {
            rt,
            queue,
            store,
            clock,
        }
    })
}

fn readable(job: &Job, what: &str) {
    let back = Job::from_json(&job.to_json())
        .unwrap_or_else(|e| panic!("{what}: an accepted job cannot be read back: {e}"));
    assert_eq!(
        &back, job,
        "{what}: the job changed on its way through JSON"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(value) = serde_json::from_str::<Value>(text) else {
        return;
    };
    let Ok(new) = NewJob::custom("noop", "u", value.clone()) else {
        return;
    };
    if let Ok(job) = new.clone().into_job(JobId::generate(), Timestamp::now(), 3) {
        readable(&job, "params");
    }
    let env = env();
    env.rt.block_on(async {
        let Ok(job) = env.queue.create_job(new).await else {
            return;
        };
        readable(&env.store.get(&job.id).await.unwrap(), "created");
        let job = env
            .queue
            .claim_next_job("noop", "fuzz")
            .await
            .unwrap()
            .unwrap();
        if env
            .queue
            .update_job_progress_at(&job.id, job.attempt, &value)
            .await
            .is_ok()
        {
            readable(&env.store.get(&job.id).await.unwrap(), "progress");
        }
        if env
            .queue
            .complete_job_at(&job.id, job.attempt, &value)
            .await
            .is_ok()
        {
            readable(&env.store.get(&job.id).await.unwrap(), "result");
        } else {
            env.queue.cancel_job(&job.id).await.unwrap();
        }
        // Finished jobs are deleted, so memory stays flat over millions of runs.
        env.clock.advance(std::time::Duration::from_secs(1));
        let _ = env
            .queue
            .cleanup_jobs_older_than(std::time::Duration::ZERO)
            .await;
    });
});
