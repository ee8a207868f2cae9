//! Graceful shutdown: in-flight requests finish, event streams end, new
//! connections are refused.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reqwest::{Method, StatusCode};

use crate::support::{config, noop, queue_over, FaultyStore, Sse, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_streams_end() {
    let store = Arc::new(FaultyStore::default());
    let s = TestServer::on(queue_over(store.clone()), config()).await;
    let mut stream = Sse::open(s.req(Method::GET, "/api/v1/events")).await;
    stream.next_block().await.unwrap();
    store.create_delay_ms.store(500, Ordering::SeqCst);
    let create = tokio::spawn(s.req(Method::POST, "/api/v1/jobs").json(&noop("u")).send());
    // Shut down once the create is in the store (the slow call started).
    tokio::time::timeout(crate::support::WAIT, store.create_started.notified())
        .await
        .expect("the create reaches the store");
    s.state.shutdown();
    let resp = create.await.unwrap().unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::CREATED,
        "the in-flight create finished"
    );
    assert!(
        stream.next_event().await.is_none(),
        "the event stream ended"
    );
    let addr = s.addr;
    s.join().await;
    let refused = crate::support::client()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "no new connections after shutdown");
    assert_eq!(store_total(&store).await, 1);
}

async fn store_total(store: &FaultyStore) -> u64 {
    use semiont_jobs_store::JobStore;
    store.stats().await.unwrap().total()
}
