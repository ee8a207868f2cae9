//! Every endpoint over real HTTP: happy paths and errors.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use reqwest::{Method, StatusCode};
use semiont_jobs_model::{JobStatus, NewJob};
use semiont_jobs_queue::JobFailure;
use semiont_jobs_server::openapi::OPERATIONS;
use serde_json::{json, Value};

use crate::support::{
    assert_problem, config, json_of, noop, queue_over, seed, FaultyStore, TestServer,
};

#[tokio::test]
async fn create_get_and_list_round_trip() {
    let s = TestServer::start().await;
    let resp = s
        .req(Method::POST, "/api/v1/jobs")
        .json(&json!({
            "type": "detection", "userId": "user-123", "resourceId": "doc-456",
            "entityTypes": ["Person", "Organization"], "maxRetries": 3, "priority": 2
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let etag = resp.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(etag, "\"pending.0\"");
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let job: Value = resp.json().await.unwrap();
    assert_eq!(
        location,
        format!("/api/v1/jobs/{}", job["id"].as_str().unwrap())
    );
    assert_eq!(job["status"], "pending");
    assert_eq!(job["entityTypes"], json!(["Person", "Organization"]));
    assert_eq!(job["priority"], 2);

    let resp = s.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), etag);
    let (status, got) = json_of(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, job);

    for n in 0..3 {
        s.create(json!({"type": "sleep", "userId": "u2", "ms": n}))
            .await;
    }
    let (status, page) = s.get("/api/v1/jobs?type=sleep&limit=2&offset=0").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    let jobs = page["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[0]["ms"], 2, "newest first");
    let (_, page) = s.get("/api/v1/jobs?type=sleep&limit=2&offset=2").await;
    assert_eq!(page["jobs"][0]["ms"], 0);
    let (_, page) = s.get("/api/v1/jobs?userId=user-123&status=pending").await;
    assert_eq!(page["total"], 1);
    let (_, page) = s.get("/api/v1/jobs?status=failed").await;
    assert_eq!(page["total"], 0);
    let (_, page) = s.get("/api/v1/jobs").await;
    assert_eq!(
        (page["total"].as_u64(), page["limit"].as_u64()),
        (Some(4), Some(100))
    );
}

#[tokio::test]
async fn get_errors() {
    let s = TestServer::start().await;
    assert_problem(
        &s.get("/api/v1/jobs/job-0193c1f0-8a2b-7cde-8f01-23456789abcd")
            .await,
        404,
        "not found",
    );
    assert_problem(&s.get("/api/v1/jobs/..%2Fetc").await, 400, "invalid job id");
    assert_problem(
        &s.get("/api/v1/jobs?status=done").await,
        400,
        "unknown job status",
    );
    assert_problem(
        &s.get("/api/v1/jobs?limit=5000").await,
        400,
        "limit must be",
    );
}

#[tokio::test]
async fn idempotency_key_returns_the_first_job() {
    let s = TestServer::start().await;
    let send = |key: &'static str, body: Value| {
        s.req(Method::POST, "/api/v1/jobs")
            .header("Idempotency-Key", key)
            .json(&body)
            .send()
    };
    let first = send("k-1", noop("u")).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    let first: Value = first.json().await.unwrap();
    let again = send("k-1", noop("u")).await.unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["id"], first["id"]);
    let other = json_of(send("k-1", noop("someone-else")).await.unwrap()).await;
    assert_problem(&other, 422, "different request body");
    let bad = json_of(send("k 1", noop("u")).await.unwrap()).await;
    assert_problem(&bad, 400, "Idempotency-Key");
    assert_eq!(
        s.queue.get_stats().await.unwrap().pending,
        1,
        "one job only"
    );
    // A new key makes a new job.
    assert_eq!(
        send("k-2", noop("u")).await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(s.queue.get_stats().await.unwrap().pending, 2);
}

#[tokio::test]
async fn cancel_retry_delete_with_if_match() {
    let s = TestServer::start().await;
    let job = s.create(noop("u")).await;
    let id = job["id"].as_str().unwrap();
    let path = format!("/api/v1/jobs/{id}");

    // A stale If-Match is refused and nothing changes.
    let stale = s
        .req(Method::POST, &format!("{path}/cancel"))
        .header("If-Match", "\"running.1\"")
        .send()
        .await
        .unwrap();
    assert_problem(&json_of(stale).await, 412, "changed");
    assert_eq!(
        s.queue.get_job(id).await.unwrap().status,
        JobStatus::Pending
    );
    assert_problem(
        &json_of(
            s.req(Method::POST, &format!("{path}/cancel"))
                .header("If-Match", "\"a b\"")
                .send()
                .await
                .unwrap(),
        )
        .await,
        400,
        "If-Match",
    );

    let ok = s
        .req(Method::POST, &format!("{path}/cancel"))
        .header("If-Match", "\"pending.0\"")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.headers()["etag"].to_str().unwrap(), "\"cancelled.0\"");
    let (status, cancelled) = json_of(ok).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"], "cancelled");
    assert_problem(
        &s.post(&format!("{path}/cancel"), &json!({})).await,
        409,
        "cancelled",
    );

    let (status, retried) = s.post(&format!("{path}/retry"), &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(retried["status"], "pending");
    assert_problem(
        &s.post(&format!("{path}/retry"), &json!({})).await,
        409,
        "illegal transition",
    );

    // Delete: only finished jobs.
    let del = json_of(s.req(Method::DELETE, &path).send().await.unwrap()).await;
    assert_problem(
        &del,
        409,
        "only complete, failed or cancelled jobs can be deleted",
    );
    s.queue.cancel_job(id).await.unwrap();
    let wrong = s
        .req(Method::DELETE, &path)
        .header("If-Match", "\"pending.0\"")
        .send()
        .await
        .unwrap();
    assert_problem(&json_of(wrong).await, 412, "cancelled");
    let gone = s
        .req(Method::DELETE, &path)
        .header("If-Match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    assert_problem(&s.get(&path).await, 404, "not found");
    assert_problem(
        &s.post(&format!("{path}/cancel"), &json!({})).await,
        404,
        "not found",
    );
    assert_problem(
        &json_of(s.req(Method::DELETE, &path).send().await.unwrap()).await,
        404,
        "not found",
    );
}

#[tokio::test]
async fn bulk_operations_by_ids_and_filter_with_dry_run() {
    let s = TestServer::start().await;
    let a = seed(&s.queue, 3, "alice").await;
    let b = seed(&s.queue, 2, "bob").await;

    // Dry run: counts, changes nothing.
    let (status, r) = s
        .post(
            "/api/v1/jobs/bulk/cancel",
            &json!({"filter": {"userId": "alice"}, "dryRun": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (r["matched"].as_u64(), r["succeeded"].as_u64()),
        (Some(3), Some(0))
    );
    assert_eq!(r["dryRun"], true);
    assert_eq!(s.queue.get_stats().await.unwrap().pending, 5);

    let (_, r) = s
        .post(
            "/api/v1/jobs/bulk/cancel",
            &json!({"filter": {"userId": "alice", "status": "pending"}}),
        )
        .await;
    assert_eq!(
        (r["matched"].as_u64(), r["succeeded"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(s.queue.get_stats().await.unwrap().cancelled, 3);

    // By ids: an unknown id and an ineligible job are skipped, named.
    let ids = json!([
        a[0].id.as_str(),
        b[0].id.as_str(),
        "job-0193c1f0-8a2b-7cde-8f01-23456789abcd"
    ]);
    let (_, r) = s
        .post("/api/v1/jobs/bulk/retry", &json!({ "ids": ids }))
        .await;
    assert_eq!(
        (r["matched"].as_u64(), r["succeeded"].as_u64()),
        (Some(1), Some(1))
    );
    let skipped = r["skipped"].as_array().unwrap();
    assert_eq!(skipped.len(), 2);
    assert_eq!(skipped[0]["code"], "conflict");
    assert!(skipped[0]["detail"]
        .as_str()
        .unwrap()
        .contains("only failed or cancelled jobs can be retried"));
    assert_eq!(skipped[1]["code"], "not_found");

    let (_, r) = s
        .post(
            "/api/v1/jobs/bulk/delete",
            &json!({"filter": {"status": "cancelled"}, "dryRun": true}),
        )
        .await;
    assert_eq!(r["matched"], 2);
    let (_, r) = s
        .post("/api/v1/jobs/bulk/delete", &json!({"filter": {}}))
        .await;
    assert_eq!(
        (r["matched"].as_u64(), r["succeeded"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(s.queue.get_stats().await.unwrap().total(), 3);

    for (body, needle) in [
        (json!({}), "give ids"),
        (json!({"ids": [], "dryRun": true}), "1 to 1000"),
        (json!({"ids": ["a/b"]}), "ids[0]"),
        (json!({"ids": ["job-1"], "filter": {}}), "not both"),
        (json!({"filter": {"status": "gone"}}), "filter.status"),
        (json!({"filter": {"type": "a b"}}), "filter.type"),
        (json!({"filter": {"userId": ""}}), "userId"),
        (json!({"filter": {"owner": "x"}}), "unknown field"),
        (json!({"ids": ["job-1"], "dry_run": true}), "unknown field"),
        (json!({"filter": {"userId": null}}), "invalid type: null"),
        (
            json!({"ids": ["job-1"], "filter": null}),
            "invalid type: null",
        ),
    ] {
        assert_problem(
            &s.post("/api/v1/jobs/bulk/cancel", &body).await,
            400,
            needle,
        );
    }
    assert_eq!(
        s.queue.get_stats().await.unwrap().total(),
        3,
        "nothing written"
    );
}

#[tokio::test]
async fn stats_types_and_workers() {
    let s = TestServer::start().await;
    seed(&s.queue, 2, "u").await;
    s.queue
        .create_job(NewJob::custom("sleep", "u", json!({})).unwrap())
        .await
        .unwrap();
    s.queue.register_worker("worker-a").await.unwrap();
    let running = s
        .queue
        .claim_next_job(["sleep"], "worker-a")
        .await
        .unwrap()
        .unwrap();

    let (status, stats) = s.get("/api/v1/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        stats,
        json!({"pending": 2, "running": 1, "complete": 0, "failed": 0, "cancelled": 0, "unreadable": 0})
    );
    let (_, types) = s.get("/api/v1/types").await;
    let types = types["types"].as_array().unwrap().clone();
    let noop = types.iter().find(|t| t["type"] == "noop").unwrap();
    assert_eq!(
        (noop["pending"].as_u64(), noop["total"].as_u64()),
        (Some(2), Some(2))
    );
    let sleep = types.iter().find(|t| t["type"] == "sleep").unwrap();
    assert_eq!(sleep["running"], 1);

    let (status, w) = s.get("/api/v1/workers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(w["runningTotal"], 1);
    let worker = w["workers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["id"] == "worker-a")
        .unwrap_or_else(|| panic!("{w}"))
        .clone();
    assert_eq!(worker["alive"], true);
    assert!(worker["leaseSeconds"].as_f64().unwrap() > 0.0);
    assert_eq!(worker["running"][0]["id"], running.id.as_str());
    assert_eq!(worker["running"][0]["attempt"], 1);
    assert_problem(
        &s.get("/api/v1/stats?x=1").await,
        400,
        "this endpoint takes none",
    );
}

#[tokio::test]
async fn whoami_health_readiness_and_store_outage() {
    let store = Arc::new(FaultyStore::default());
    let s = TestServer::on(queue_over(store.clone()), config()).await;
    let (status, me) = s.get("/api/v1/whoami").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["role"], "admin");
    assert_eq!(me["authenticated"], false);
    assert_eq!(me["basePath"], "");
    assert_eq!(
        s.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    assert_eq!(
        s.get("/readyz").await,
        (StatusCode::OK, json!({"status": "ready"}))
    );

    store.down.store(true, Ordering::SeqCst);
    assert_problem(&s.get("/readyz").await, 503, "unreachable");
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);
    assert_problem(&s.get("/api/v1/stats").await, 503, "unavailable");
    assert_problem(
        &s.post("/api/v1/jobs", &noop("u")).await,
        503,
        "unavailable",
    );
    store.down.store(false, Ordering::SeqCst);
    assert_eq!(s.get("/readyz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let s = TestServer::start().await;
    let job = s.create(noop("u")).await;
    let id = job["id"].as_str().unwrap();
    let (status, doc) = s.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path, op_id) in OPERATIONS {
        assert!(
            doc["paths"][*path][*method].is_object(),
            "{op_id} documented"
        );
        let url = path.replace("{id}", id);
        let method: Method = method.to_uppercase().parse().unwrap();
        let mut req = s.req(method.clone(), &url);
        if method == Method::POST {
            req = req.json(&json!({}));
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        if url.ends_with("events") {
            assert_eq!(status, StatusCode::OK, "{op_id}");
            continue;
        }
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("no route") && status != StatusCode::METHOD_NOT_ALLOWED,
            "{op_id}: {status} {body}"
        );
        assert!(!status.is_server_error(), "{op_id}: {status} {body}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let s = TestServer::start().await;
    assert_problem(&s.get("/api/v2/jobs").await, 404, "no route /api/v2/jobs");
    let resp = s.req(Method::PUT, "/api/v1/stats").send().await.unwrap();
    assert_problem(&json_of(resp).await, 405, "does not accept PUT");
    let resp = s
        .req(Method::GET, "/api/v1/jobs/bulk/cancel")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
}

#[tokio::test]
async fn base_path_prefixes_every_route() {
    let s = TestServer::with(config().base_path("/queue")).await;
    assert_eq!(s.get("/api/v1/stats").await.0, StatusCode::OK);
    let root = format!("http://{}/api/v1/stats", s.addr);
    let resp = s.client.get(root).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = s
        .req(Method::POST, "/api/v1/jobs")
        .json(&noop("u"))
        .send()
        .await
        .unwrap();
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/queue/api/v1/jobs/job-"),
        "{location}"
    );
    let (_, me) = s.get("/api/v1/whoami").await;
    assert_eq!(me["basePath"], "/queue");
    let (_, doc) = s.get("/api/v1/openapi.json").await;
    assert_eq!(doc["servers"][0]["url"], "/queue");
    assert_eq!(s.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn cors_is_off_unless_configured() {
    let s = TestServer::start().await;
    let resp = s
        .req(Method::GET, "/api/v1/stats")
        .header("Origin", "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let s = TestServer::with(config().cors_origin("https://ops.example.com")).await;
    let pre = s
        .req(Method::OPTIONS, "/api/v1/jobs")
        .header("Origin", "https://ops.example.com")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        pre.headers()["access-control-allow-origin"],
        "https://ops.example.com"
    );
    let other = s
        .req(Method::GET, "/api/v1/stats")
        .header("Origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn failed_jobs_can_be_retried_over_http() {
    let s = TestServer::start().await;
    let job = s
        .queue
        .create_job(NewJob::custom("fail", "u", json!({})).unwrap())
        .await
        .unwrap();
    s.queue.register_worker("w-1").await.unwrap();
    let claimed = s
        .queue
        .claim_next_job(["fail"], "w-1")
        .await
        .unwrap()
        .unwrap();
    s.queue
        .fail_job_at(&job.id, claimed.attempt, JobFailure::permanent("boom"))
        .await
        .unwrap();
    let (status, got) = s.get(&format!("/api/v1/jobs/{}", job.id)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (got["status"].as_str(), got["error"].as_str()),
        (Some("failed"), Some("boom"))
    );
    let resp = s
        .req(Method::POST, &format!("/api/v1/jobs/{}/retry", job.id))
        .header("If-Match", "\"failed.1\"")
        .send()
        .await
        .unwrap();
    let (status, got) = json_of(resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (got["status"].as_str(), got["retryCount"].as_u64()),
        (Some("pending"), Some(0))
    );
}

#[tokio::test]
async fn unique_keys_return_the_holding_job() {
    let s = TestServer::start().await;
    let body = json!({"type": "report", "userId": "u", "uniqueKey": "report:2026-01"});
    let first = s.create(body.clone()).await;
    assert_eq!(first["uniqueKey"], "report:2026-01");
    let (status, again) = s.post("/api/v1/jobs", &body).await;
    assert_eq!(status, StatusCode::OK, "the holder, not a new job");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(s.queue.get_stats().await.unwrap().pending, 1);
    // Once the holder finished (no after-finish period), the key is free.
    s.post(
        &format!("/api/v1/jobs/{}/cancel", first["id"].as_str().unwrap()),
        &json!({}),
    )
    .await;
    let third = s.create(body).await;
    assert_ne!(third["id"], first["id"]);
    // Retrying the first job would take the key the third holds: 409.
    let retry = s
        .post(
            &format!("/api/v1/jobs/{}/retry", first["id"].as_str().unwrap()),
            &json!({}),
        )
        .await;
    assert_problem(&retry, 409, "report:2026-01");
    assert_eq!(retry.1["code"], "conflict");
    assert_problem(
        &s.post(
            "/api/v1/jobs",
            &json!({"type": "report", "userId": "u", "uniqueAfterFinishMs": 10}),
        )
        .await,
        400,
        "needs a uniqueKey",
    );
}

#[tokio::test]
async fn types_can_be_paused_and_resumed() {
    let s = TestServer::start().await;
    seed(&s.queue, 1, "u").await;
    let (status, r) = s.post("/api/v1/types/noop/pause", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(r, json!({"type": "noop", "paused": true, "changed": true}));
    let (_, r) = s.post("/api/v1/types/noop/pause", &json!({})).await;
    assert_eq!(r["changed"], false);
    // A paused type without jobs is listed too.
    s.post("/api/v1/types/detection/pause", &json!({})).await;
    let (_, types) = s.get("/api/v1/types").await;
    let types = types["types"].as_array().unwrap().clone();
    let paused: Vec<&str> = types
        .iter()
        .filter(|t| t["paused"] == true)
        .map(|t| t["type"].as_str().unwrap())
        .collect();
    assert_eq!(paused, ["detection", "noop"]);
    s.queue.register_worker("w-1").await.unwrap();
    assert!(
        s.queue
            .claim_next_job(["noop"], "w-1")
            .await
            .unwrap()
            .is_none(),
        "paused"
    );
    let (_, r) = s.post("/api/v1/types/noop/resume", &json!({})).await;
    assert_eq!(
        (r["paused"].as_bool(), r["changed"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(s
        .queue
        .claim_next_job(["noop"], "w-1")
        .await
        .unwrap()
        .is_some());
    assert_problem(
        &s.post("/api/v1/types/a%20b/pause", &json!({})).await,
        400,
        "invalid job type",
    );
}
