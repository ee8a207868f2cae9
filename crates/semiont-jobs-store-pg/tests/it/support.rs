//! Helpers of the backend's own tests: a superuser connection to the test
//! database, URLs for other roles, new jobs and claims of them.

use std::time::Duration;

use semiont_jobs_model::{Job, JobId, NewJob, Timestamp};
use semiont_jobs_store::{ClaimRequest, JobStore, TypeFilter, WorkerInfo};
use semiont_jobs_store_pg::DatabaseUrl;
use serde_json::json;

/// A password the tests use and check never appears in messages.
pub const SECRET: &str = "s3cret-Pa55word";

/// A connection to the test database as its (super)user.
pub async fn admin(url: &DatabaseUrl) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url.expose(), tokio_postgres::NoTls)
        .await
        .expect("connect to the test database");
    tokio::spawn(conn);
    client
}

/// The test database's URL as `user` with `password`.
pub fn with_password(url: &DatabaseUrl, user: &str, password: &str) -> DatabaseUrl {
    let (host, port) = url.host_port();
    format!(
        "postgres://{user}:{password}@{host}:{port}/{}",
        url.dbname()
    )
    .parse()
    .unwrap()
}

/// The lease of the tests' claims.
pub const LEASE: Duration = Duration::from_secs(30);

/// A new pending job of type `t`.
pub fn new_job() -> Job {
    NewJob::custom("t", "u", json!({}))
        .unwrap()
        .into_job(JobId::generate(), Timestamp::now(), 3)
        .unwrap()
}

/// Registers worker `w` and claims `n` jobs for it (all of them, or the
/// test fails).
pub async fn claim_all(store: &dyn JobStore, n: usize) -> Vec<Job> {
    store
        .register_worker(&WorkerInfo {
            id: "w".into(),
            lease: LEASE,
        })
        .await
        .unwrap();
    let jobs = store
        .claim_batch(
            &ClaimRequest {
                types: TypeFilter::Any,
                worker_id: "w".into(),
                now: Timestamp::now(),
                lease: LEASE,
            },
            n,
        )
        .await
        .unwrap();
    assert_eq!(jobs.len(), n, "every job is claimed");
    jobs
}
