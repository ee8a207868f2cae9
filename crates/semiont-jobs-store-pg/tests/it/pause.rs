//! A resume reaches idle claimers everywhere: the instance that resumed a
//! type tells every other instance on the schema (one notification that
//! arrives as a resync), so their workers claim the type's jobs at once
//! instead of at their next poll.

use std::time::Duration;

use semiont_jobs_model::JobType;
use semiont_jobs_store::{ChangeKind, ChangeOrigin, JobStore};
use semiont_jobs_store_pg::testing::TestSchema;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_wakes_the_other_instances() {
    let schema = TestSchema::new();
    let a = schema.open(schema.options()).await;
    let b = schema.open(schema.options()).await;
    let ty = JobType::parse("t").unwrap();
    assert!(a.set_paused(&ty, true).await.unwrap());
    let mut rx = b.subscribe();
    // Pausing again changes nothing and says nothing.
    assert!(!a.set_paused(&ty, true).await.unwrap());
    assert!(a.set_paused(&ty, false).await.unwrap());
    let change = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let change = rx.recv().await.expect("channel open");
            if change.kind == ChangeKind::Resynced {
                return change;
            }
        }
    })
    .await
    .expect("the other instance hears of the resume");
    assert_eq!(change.origin, ChangeOrigin::External, "{change:?}");
    assert!(b.paused_types().await.unwrap().is_empty());
}
