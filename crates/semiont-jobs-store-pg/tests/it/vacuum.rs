//! The store vacuums its own tables when they hold enough dead rows (the
//! `vacuum` module's docs say why).

use std::time::Duration;

use semiont_jobs_model::{Job, JobStatus, Timestamp};
use semiont_jobs_store::{Expect, JobStore};
use semiont_jobs_store_pg::testing::TestSchema;

use crate::support::{admin, claim_all, new_job};

/// Manual vacuums (autovacuum's are counted apart) of `table` in `schema`.
async fn vacuums(client: &tokio_postgres::Client, schema: &str, table: &str) -> i64 {
    client
        .query_one(
            "SELECT coalesce(max(vacuum_count), 0) FROM pg_stat_user_tables \
             WHERE schemaname = $1 AND relname = $2",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .get(0)
}

/// 300 jobs created, claimed and completed by a store told to look every
/// 100 ms and vacuum at 100 dead rows: the store itself vacuums `jobs`
/// (the claims and the moves to `jobs_done` left 600 dead versions there)
/// within the time the statistics take to count them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_writes_vacuums_its_tables() {
    let schema = TestSchema::new();
    let store = schema
        .open(
            schema
                .options()
                .vacuum(Some(Duration::from_millis(100)), 100),
        )
        .await;
    let admin = admin(schema.url()).await;
    assert_eq!(vacuums(&admin, schema.name(), "jobs").await, 0);

    let jobs: Vec<Job> = (0..300).map(|_| new_job()).collect();
    store.create_batch(&jobs).await.unwrap();
    let claimed = claim_all(&store, 300).await;
    for job in claimed {
        let attempt = job.attempt;
        let mut done = job.clone();
        done.status = JobStatus::Complete;
        done.completed_at = Some(Timestamp::now());
        done.lease_expires_at = None;
        store
            .transition(Expect::running(attempt), &done)
            .await
            .unwrap();
    }

    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while vacuums(&admin, schema.name(), "jobs").await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store did not vacuum `jobs` within 40 s of 600 dead rows"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(store);
}
