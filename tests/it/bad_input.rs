//! The hostile-input corpus, library side: bad ids, oversized and deeply
//! nested parameters, wrong types in every field of a job file, duplicate
//! ids, files dropped into status directories by hand, clock steps, a data
//! directory deleted under a running queue, and two queues with different
//! durability on one directory. Each case is one test; `docs/reliability.md`
//! lists them with the behaviour observed.

use std::sync::Arc;
use std::time::Duration;

use semiont_jobs_model::{Job, JobFilter, JobId, JobStatus, NewJob, Progress, Timestamp};
use semiont_jobs_queue::{ErrorKind, JobFailure, JobQueue, ManualClock};
use semiont_jobs_store::{Durability, ErrorKind as StoreKind, JobStore};
use semiont_jobs_store_fs::{fault, FsStore};
use serde_json::{json, Value};

use crate::support::{self, file_name, fresh, noop_job, queue_at, reasons, status_entries};

fn custom(params: Value) -> NewJob {
    NewJob::custom("noop", "u1", params).unwrap()
}

/// A JSON value nested `depth` levels deep: `{"a":{"a":...{"a":1}}}`.
fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

async fn assert_invalid_id(id: &str) {
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    for e in [
        q.get_job(id).await.unwrap_err(),
        q.cancel_job(id).await.unwrap_err(),
        q.retry_job(id).await.unwrap_err(),
        q.complete_job(id, ()).await.unwrap_err(),
    ] {
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{id:?}: {e}");
        assert!(e.to_string().starts_with("invalid job id"), "{e}");
        assert!(!e.to_string().contains('\n'), "one line: {e}");
    }
    assert!(status_entries(&dir).is_empty());
}

// ---- ids -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_path_traversal_is_rejected() {
    assert_invalid_id("../../../etc/passwd").await;
    assert_invalid_id("..").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_with_separator_or_nul_is_rejected() {
    assert_invalid_id("pending/x").await;
    assert_invalid_id("a\\b").await;
    assert_invalid_id("a\0b").await;
    assert_invalid_id("/abs").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_hidden_empty_whitespace_control_and_overlong_are_rejected() {
    assert_invalid_id("").await;
    assert_invalid_id(".json").await;
    assert_invalid_id("a b").await;
    assert_invalid_id("a\u{a0}b").await;
    assert_invalid_id("a\u{7f}b").await;
    assert_invalid_id("a\u{2028}b").await;
    assert_invalid_id(&"x".repeat(129)).await;
    // The longest and the non-ASCII ids that are accepted are just unknown.
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    for ok in [
        "x".repeat(128),
        "jöb-ünïcode".to_owned(),
        "job.with.dots".to_owned(),
    ] {
        assert_eq!(
            q.get_job(&ok).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_id_traversal_is_rejected_and_writes_nothing() {
    let (tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    for bad in ["../../escape", "w/x", ".w", ""] {
        assert_eq!(
            q.register_worker(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            q.claim_next_job("noop", bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            q.unregister_worker(bad).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    assert!(!tmp.path().join("escape").exists());
    assert!(!tmp.path().join("escape.lock").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_made_file_names_that_are_not_ids_are_quarantined() {
    let (_tmp, dir) = fresh().await;
    let pending = dir.join("pending");
    for name in [
        ".hidden.json",
        "a b.json",
        "x.JSON",
        "no-extension",
        "..json",
    ] {
        std::fs::write(pending.join(name), noop_job().to_json()).unwrap();
    }
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 5), "{stats:?}");
    assert!(reasons(&dir)
        .iter()
        .all(|r| r.contains("not a job file name")));
}

// ---- parameters ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_over_one_mib_are_rejected_and_nothing_is_written() {
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    let big = "x".repeat((1 << 20) + 1);
    let e = q
        .create_job(custom(json!({ "blob": big })))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("more than the limit"), "{e}");
    assert!(status_entries(&dir).is_empty());
    // Just under the limit is accepted and reads back intact.
    let fits = "y".repeat((1 << 20) - 100);
    let job = q.create_job(custom(json!({ "blob": fits }))).await.unwrap();
    assert_eq!(q.get_job(&job.id).await.unwrap(), job);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_params_are_refused_or_read_back() {
    // A job the queue acknowledges must be readable again: never accepted
    // and then quarantined as unparseable.
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    for depth in [10, 62, 63, 64, 100, 126, 127, 128, 200] {
        match q.create_job(custom(json!({ "deep": nested(depth) }))).await {
            Ok(job) => {
                let back = q.get_job(&job.id).await;
                assert!(
                    back.as_ref().is_ok_and(|b| *b == job),
                    "depth {depth}: accepted but not readable: {back:?}"
                );
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidInput, "depth {depth}: {e}");
                assert!(e.to_string().contains("nested"), "depth {depth}: {e}");
            }
        }
    }
    assert_eq!(q.get_stats().await.unwrap().unreadable, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_progress_and_result_are_refused_or_read_back() {
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    q.register_worker("w").await.unwrap();
    for depth in [50, 200] {
        q.create_job(custom(json!({}))).await.unwrap();
        let job = q.claim_next_job("noop", "w").await.unwrap().unwrap();
        match q
            .update_job_progress_at(&job.id, job.attempt, json!({ "deep": nested(depth) }))
            .await
        {
            Ok(_) => assert!(q.get_job(&job.id).await.is_ok(), "progress depth {depth}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
        }
        match q.complete_job_at(&job.id, job.attempt, nested(depth)).await {
            Ok(_) => assert!(q.get_job(&job.id).await.is_ok(), "result depth {depth}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}"),
        }
    }
    assert_eq!(q.get_stats().await.unwrap().unreadable, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_and_non_object_params_are_rejected() {
    for bad in [json!([1, 2]), json!("s"), json!(3), json!(true)] {
        let e = NewJob::custom("noop", "u", bad).unwrap_err();
        assert!(e.to_string().contains("JSON object"), "{e}");
    }
    for key in ["id", "status", "attempt", "workerId", "leaseExpiresAt"] {
        let e = custom(json!({ key: 1 }))
            .into_job(JobId::generate(), Timestamp::now(), 3)
            .unwrap_err();
        assert!(e.to_string().contains("reserved"), "{key}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_user_type_retries_progress_and_results_are_rejected() {
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    let cases: Vec<NewJob> = vec![
        NewJob::custom("noop", "", json!({})).unwrap(),
        NewJob::custom("noop", "u\u{1b}[31m", json!({})).unwrap(),
        NewJob::custom("noop", "u".repeat(257), json!({})).unwrap(),
        custom(json!({})).max_retries(101),
        custom(json!({})).max_retries(u32::MAX),
    ];
    for new in cases {
        let e = q.create_job(new).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    for ty in ["", "a b", "../x", &"t".repeat(65)] {
        assert!(NewJob::custom(ty, "u", json!({})).is_err(), "{ty:?}");
    }
    q.create_job(custom(json!({}))).await.unwrap();
    q.register_worker("w").await.unwrap();
    let job = q.claim_next_job("noop", "w").await.unwrap().unwrap();
    for p in [
        json!({ "percentage": 150 }),
        json!({ "percentage": -1 }),
        json!({ "percentage": "half" }),
        json!([1]),
    ] {
        let e = q
            .update_job_progress_at(&job.id, job.attempt, p)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    }
    let nan = Progress {
        percentage: Some(f64::NAN),
        ..Default::default()
    };
    let e = q
        .update_job_progress_at(&job.id, job.attempt, nan)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = q
        .complete_job_at(&job.id, job.attempt, json!({ "x": "y".repeat(1 << 20) }))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = q
        .complete_job_at(&job.id, job.attempt, [f64::INFINITY])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // Nothing of the refused writes reached the job.
    let stored = q.get_job(&job.id).await.unwrap();
    assert_eq!(stored, job);
    // A megabyte of error text is cut to 16 KiB.
    let failed = q
        .fail_job_at(
            &job.id,
            job.attempt,
            JobFailure::permanent("e".repeat(1 << 20)),
        )
        .await
        .unwrap();
    assert!(failed.error.unwrap().len() <= 16 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_priorities_and_run_at_values_keep_their_order() {
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    let far = Timestamp::parse("9999-12-31T23:59:59.999Z").unwrap();
    let low = q
        .create_job(custom(json!({})).priority(i16::MIN))
        .await
        .unwrap();
    let high = q
        .create_job(custom(json!({})).priority(i16::MAX))
        .await
        .unwrap();
    let later = q
        .create_job(custom(json!({})).priority(i16::MAX).run_at(far))
        .await
        .unwrap();
    let past = q
        .create_job(custom(json!({})).run_at(Timestamp::from_millis(0)))
        .await
        .unwrap();
    q.register_worker("w").await.unwrap();
    let mut order = Vec::new();
    while let Some(j) = q.claim_next_job("noop", "w").await.unwrap() {
        order.push(j.id);
    }
    assert_eq!(order, [high.id, past.id, low.id]);
    assert_eq!(
        q.get_job(&later.id).await.unwrap().status,
        JobStatus::Pending
    );
}

// ---- wrong types in every field of a job file -------------------------

/// A job file whose `field` holds `value` is quarantined as "wrong schema"
/// (or, where the value is a valid alternative, read as a job), and never
/// stops the queue.
async fn wrong_type(field: &str, value: Value) {
    let (_tmp, dir) = fresh().await;
    let job = noop_job();
    let mut doc: Value = serde_json::from_slice(&job.to_json()).unwrap();
    doc[field] = value.clone();
    let name = file_name(&job.id);
    std::fs::write(
        dir.join("pending").join(&name),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
    let good = noop_job();
    std::fs::write(
        dir.join("pending").join(file_name(&good.id)),
        good.to_json(),
    )
    .unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.unreadable),
        (1, 1),
        "{field}={value}: {stats:?}"
    );
    let all = reasons(&dir).join("\n");
    assert!(
        all.contains("wrong schema") || all.contains("does not match"),
        "{field}={value}: {all}"
    );
    let e = q.get_job(&job.id).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    q.register_worker("w").await.unwrap();
    let claimed = q.claim_next_job("noop", "w").await.unwrap().unwrap();
    assert_eq!(claimed.id, good.id);
}

macro_rules! wrong_type_cases {
    ($($name:ident: $field:literal = $value:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            wrong_type($field, $value).await;
        }
    )*};
}

wrong_type_cases! {
    wrong_type_id_number: "id" = json!(42);
    wrong_type_type_number: "type" = json!(7);
    wrong_type_type_invalid_name: "type" = json!("bad type/..");
    wrong_type_status_unknown: "status" = json!("done");
    wrong_type_user_id_object: "userId" = json!({"a": 1});
    wrong_type_created_garbage: "created" = json!("yesterday");
    wrong_type_started_at_number: "startedAt" = json!(5);
    wrong_type_completed_at_bool: "completedAt" = json!(true);
    wrong_type_error_array: "error" = json!(["x"]);
    wrong_type_retry_count_negative: "retryCount" = json!(-1);
    wrong_type_max_retries_string: "maxRetries" = json!("3");
    wrong_type_attempt_float: "attempt" = json!(1.5);
    wrong_type_run_at_object: "runAt" = json!({});
    wrong_type_priority_out_of_range: "priority" = json!(70000);
    wrong_type_worker_id_number: "workerId" = json!(9);
    wrong_type_lease_expires_at_string: "leaseExpiresAt" = json!("soon");
}

// ---- duplicates ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_id_create_is_already_exists_in_every_status() {
    let (_tmp, dir) = fresh().await;
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let job = noop_job();
    store.create(&job).await.unwrap();
    let e = store.create(&job).await.unwrap_err();
    assert_eq!(e.kind(), StoreKind::AlreadyExists);
    let mut done = job.clone();
    done.status = JobStatus::Complete;
    let e = store.create(&done).await.unwrap_err();
    assert_eq!(
        e.kind(),
        StoreKind::AlreadyExists,
        "another status, same id"
    );
    assert_eq!(status_entries(&dir).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_id_from_two_instances_has_one_winner() {
    let (_tmp, dir) = fresh().await;
    let a = Arc::new(FsStore::open(&dir, support::opts()).await.unwrap());
    let b = Arc::new(FsStore::open(&dir, support::opts()).await.unwrap());
    for _ in 0..50 {
        let job = noop_job();
        let (ja, jb) = (job.clone(), job.clone());
        let (sa, sb) = (a.clone(), b.clone());
        let ra = tokio::spawn(async move { sa.create(&ja).await });
        let rb = tokio::spawn(async move { sb.create(&jb).await });
        let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
        assert!(ra.is_ok() != rb.is_ok(), "exactly one wins: {ra:?} {rb:?}");
    }
    assert_eq!(status_entries(&dir).len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_keys_inside_a_job_file_are_quarantined() {
    let (_tmp, dir) = fresh().await;
    let job = noop_job();
    let text = String::from_utf8(job.to_json()).unwrap();
    // A second "status" key after the first (a foreign writer's mistake).
    let doubled = text.replacen(
        "\"status\": \"pending\",",
        "\"status\": \"pending\", \"status\": \"complete\",",
        1,
    );
    assert_ne!(doubled, text);
    std::fs::write(dir.join("pending").join(file_name(&job.id)), doubled).unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_copy_in_two_status_dirs_keeps_one() {
    let (_tmp, dir) = fresh().await;
    let job = noop_job();
    let mut done = job.clone();
    done.status = JobStatus::Complete;
    done.completed_at = Some(Timestamp::now());
    std::fs::write(dir.join("pending").join(file_name(&job.id)), job.to_json()).unwrap();
    std::fs::write(
        dir.join("complete").join(file_name(&job.id)),
        done.to_json(),
    )
    .unwrap();
    let q = queue_at(&dir).await;
    assert_eq!(q.get_job(&job.id).await.unwrap(), done);
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.complete, stats.unreadable), (0, 1, 1));
    assert!(reasons(&dir)[0].contains("duplicate"));
}

// ---- files dropped into status directories by hand -------------------

/// Drops `bytes` as a job file into `status/`, opens a queue, and expects
/// it quarantined with a reason mentioning `why`, the queue still working.
async fn dropped_file_is_quarantined(status: &str, bytes: &[u8], why: &str) {
    let (_tmp, dir) = fresh().await;
    let id = JobId::generate();
    std::fs::write(dir.join(status).join(file_name(&id)), bytes).unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!(stats.unreadable, 1, "{stats:?}");
    assert_eq!(stats.total(), 0, "{stats:?}");
    let all = reasons(&dir).join("\n");
    assert!(all.contains(why), "{why}: {all}");
    assert_eq!(
        q.get_job(&id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let job = q.create_job(custom(json!({}))).await.unwrap();
    q.register_worker("w").await.unwrap();
    assert_eq!(
        q.claim_next_job("noop", "w").await.unwrap().unwrap().id,
        job.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_empty_file_is_quarantined() {
    dropped_file_is_quarantined("pending", b"", "empty file").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_truncated_file_is_quarantined() {
    let bytes = noop_job().to_json();
    dropped_file_is_quarantined("running", &bytes[..bytes.len() - 7], "not JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_binary_file_is_quarantined() {
    let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    dropped_file_is_quarantined("complete", &bytes, "not JSON").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_file_with_wrong_id_is_quarantined() {
    dropped_file_is_quarantined(
        "pending",
        &noop_job().to_json(),
        "does not match the file name",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_file_with_an_illegal_status_for_its_dir_is_quarantined() {
    // complete content in pending/: complete → pending is no transition.
    let (_tmp, dir) = fresh().await;
    let mut job = noop_job();
    job.status = JobStatus::Complete;
    job.completed_at = Some(Timestamp::now());
    std::fs::write(dir.join("pending").join(file_name(&job.id)), job.to_json()).unwrap();
    // pending content in failed/: pending → failed is no transition either.
    let mut other = noop_job();
    other.status = JobStatus::Pending;
    std::fs::write(
        dir.join("failed").join(file_name(&other.id)),
        other.to_json(),
    )
    .unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.total(), stats.unreadable), (0, 2), "{stats:?}");
    assert!(reasons(&dir)
        .iter()
        .all(|r| r.contains("status field says")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_file_with_a_legal_other_status_is_rolled_back() {
    // running content in pending/: an interrupted running → pending move
    // with nothing staged is rolled back to where its content says.
    let (_tmp, dir) = fresh().await;
    let mut job = noop_job();
    job.status = JobStatus::Running;
    job.attempt = 1;
    job.worker_id = Some("ghost".into());
    job.lease_expires_at = Some(Timestamp::now().add(Duration::from_secs(3600)));
    std::fs::write(dir.join("pending").join(file_name(&job.id)), job.to_json()).unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.running, stats.unreadable), (1, 0), "{stats:?}");
    assert_eq!(q.get_job(&job.id).await.unwrap(), job);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_symlink_is_quarantined_and_its_target_untouched() {
    let (tmp, dir) = fresh().await;
    let secret = tmp.path().join("secret.json");
    let job = noop_job();
    std::fs::write(&secret, job.to_json()).unwrap();
    let before = std::fs::read(&secret).unwrap();
    std::os::unix::fs::symlink(&secret, dir.join("pending").join(file_name(&job.id))).unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 1), "{stats:?}");
    assert!(reasons(&dir)[0].contains("symlink"));
    assert_eq!(std::fs::read(&secret).unwrap(), before);
    assert_eq!(
        q.get_job(&job.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_directory_is_quarantined() {
    let (_tmp, dir) = fresh().await;
    let id = JobId::generate();
    std::fs::create_dir(dir.join("pending").join(file_name(&id))).unwrap();
    std::fs::write(dir.join("pending").join(file_name(&id)).join("inner"), b"x").unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_fifo_never_blocks_and_is_quarantined() {
    let (_tmp, dir) = fresh().await;
    let id = JobId::generate();
    let fifo = dir.join("pending").join(file_name(&id));
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let opened = tokio::time::timeout(Duration::from_secs(20), queue_at(&dir))
        .await
        .expect("opening never blocks on a FIFO");
    let stats = opened.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_huge_file_is_quarantined() {
    let (_tmp, dir) = fresh().await;
    let id = JobId::generate();
    let mut bytes = b"{\"id\": \"".to_vec();
    bytes.resize(64 << 20, b'x');
    std::fs::write(dir.join("pending").join(file_name(&id)), &bytes).unwrap();
    drop(bytes);
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 1), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_file_with_a_non_utf8_name_is_left_and_skipped() {
    use std::os::unix::ffi::OsStrExt;
    let (_tmp, dir) = fresh().await;
    let name = std::ffi::OsStr::from_bytes(b"job-\xff\xfe.json");
    std::fs::write(dir.join("pending").join(name), noop_job().to_json()).unwrap();
    let q = queue_at(&dir).await;
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 0), "{stats:?}");
    let job = q.create_job(custom(json!({}))).await.unwrap();
    q.register_worker("w").await.unwrap();
    assert_eq!(
        q.claim_next_job("noop", "w").await.unwrap().unwrap().id,
        job.id
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_job_file_eacces_injected_is_quarantined() {
    // Root ignores file modes: the error is injected at the IO layer.
    let (_tmp, dir) = fresh().await;
    let job = noop_job();
    let name = file_name(&job.id);
    std::fs::write(dir.join("pending").join(&name), job.to_json()).unwrap();
    fault::set_read_error(&name, Some(libc::EACCES));
    let q = queue_at(&dir).await;
    fault::set_read_error(&name, None);
    let stats = q.get_stats().await.unwrap();
    assert_eq!((stats.pending, stats.unreadable), (0, 1), "{stats:?}");
    assert!(reasons(&dir)[0].contains("unreadable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_file_eio_on_read_is_corrupt_for_the_reader_and_the_queue_goes_on() {
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    let job = q.create_job(custom(json!({}))).await.unwrap();
    let other = q.create_job(custom(json!({}))).await.unwrap();
    let name = file_name(&job.id);
    fault::set_read_error(&name, Some(libc::EIO));
    let e = q.get_job(&job.id).await.unwrap_err();
    fault::set_read_error(&name, None);
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(e.to_string().contains("unreadable"), "{e}");
    q.register_worker("w").await.unwrap();
    assert_eq!(
        q.claim_next_job("noop", "w").await.unwrap().unwrap().id,
        other.id
    );
}

// ---- the environment changing under the queue ------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_deleted_while_running_gives_errors_not_panics() {
    let (_tmp, dir) = fresh().await;
    let q = queue_at(&dir).await;
    let job = q.create_job(custom(json!({}))).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let e = q.create_job(custom(json!({}))).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Storage, "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");
    let e = q.get_job(&job.id).await.unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::NotFound | ErrorKind::Storage),
        "{e}"
    );
    q.register_worker("w").await.unwrap_or_default();
    let claimed = q.claim_next_job("noop", "w").await;
    assert!(!matches!(claimed, Ok(Some(_))), "{claimed:?}");
    // Reopening recreates an empty directory and works.
    drop(q);
    let q = queue_at(&dir).await;
    assert_eq!(q.get_stats().await.unwrap().total(), 0);
    q.create_job(custom(json!({}))).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clock_jumping_backwards_keeps_fifo_and_loses_nothing() {
    let (_tmp, dir) = fresh().await;
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let q = JobQueue::builder()
        .store(Arc::new(store))
        .clock(clock.clone())
        .retention_period(Duration::from_secs(60))
        .build()
        .unwrap();
    q.initialize().await.unwrap();
    let first = q.create_job(custom(json!({}))).await.unwrap();
    clock.advance(Duration::from_secs(10));
    let done = q.create_job(custom(json!({}))).await.unwrap();
    // The clock steps back an hour.
    clock.set(Timestamp::from_millis(1_800_000_000_000 - 3_600_000));
    let second = q.create_job(custom(json!({}))).await.unwrap();
    assert!(second.id > first.id, "ids stay increasing");
    q.register_worker("w").await.unwrap();
    // Claim order is by id (creation order), not by the stepped clock.
    let a = q.claim_next_job("noop", "w").await.unwrap().unwrap();
    assert_eq!(a.id, first.id);
    let b = q.claim_next_job("noop", "w").await.unwrap().unwrap();
    assert_eq!(b.id, done.id);
    q.complete_job_at(&b.id, b.attempt, ()).await.unwrap();
    // A lease taken at the stepped-back time is not recovered early.
    assert!(q.recover().await.unwrap().requeued.is_empty());
    // A job completed "in the past" is not older than the retention
    // period relative to the stepped clock: nothing is deleted early.
    assert_eq!(q.cleanup_old_jobs().await.unwrap(), 0);
    let c = q.claim_next_job("noop", "w").await.unwrap().unwrap();
    assert_eq!(c.id, second.id);
    assert_eq!(q.get_stats().await.unwrap().total(), 3);
    // Listing is newest-first by `created`: the job created after the step
    // lists as the oldest (documented: list order follows the clock).
    let page = q.list_jobs(&JobFilter::default()).await.unwrap();
    assert_eq!(page.jobs.last().unwrap().id, second.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_queues_with_different_durability_share_one_dir() {
    let (_tmp, dir) = fresh().await;
    // Watching on: each instance learns of the other's changes by `notify`.
    let none = support::queue_with(&dir, support::opts().watch(true)).await;
    let fsync = support::queue_with(
        &dir,
        support::opts().watch(true).durability(Durability::Fsync),
    )
    .await;
    none.register_worker("wa").await.unwrap();
    fsync.register_worker("wb").await.unwrap();
    // Subscribed before any change, so no change goes unheard.
    let mut events = [
        none.subscribe().without_snapshots(),
        fsync.subscribe().without_snapshots(),
    ];
    let mut created = Vec::new();
    for i in 0..40 {
        let q = if i % 2 == 0 { &none } else { &fsync };
        created.push(q.create_job(custom(json!({ "i": i }))).await.unwrap().id);
    }
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let a = none.claim_next_job("noop", "wa").await.unwrap();
        let b = fsync.claim_next_job("noop", "wb").await.unwrap();
        if a.is_none() && b.is_none() {
            break;
        }
        for (q, j) in [(&fsync, a), (&none, b)] {
            if let Some(j) = j {
                assert!(seen.insert(j.id.clone()), "claimed twice: {}", j.id);
                // Finished through the other queue, fenced by the attempt.
                q.complete_job_at(&j.id, j.attempt, ()).await.unwrap();
            }
        }
    }
    assert_eq!(seen.len(), created.len());
    // Each instance's index catches up with the other's changes through
    // its watcher: wait for its change events, not for time.
    for (q, events) in [&none, &fsync].into_iter().zip(events.iter_mut()) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let stats = q.get_stats().await.unwrap();
            if (stats.complete, stats.unreadable) == (40, 0) {
                break;
            }
            let next = tokio::time::timeout_at(deadline, events.recv()).await;
            assert!(
                matches!(next, Ok(Some(_))),
                "the other instance's changes never arrived: {stats:?}"
            );
        }
    }
    let reopened = queue_at(&dir).await;
    for id in &created {
        assert_eq!(
            reopened.get_job(id).await.unwrap().status,
            JobStatus::Complete
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_of_a_foreign_writer_survive_every_transition() {
    let (_tmp, dir) = fresh().await;
    let job = noop_job();
    let mut doc: Value = serde_json::from_slice(&job.to_json()).unwrap();
    doc["fromTheFuture"] = json!({ "v": 2, "list": [1, 2, 3] });
    std::fs::write(
        dir.join("pending").join(file_name(&job.id)),
        serde_json::to_vec(&doc).unwrap(),
    )
    .unwrap();
    let q = queue_at(&dir).await;
    q.register_worker("w").await.unwrap();
    let running = q.claim_next_job("noop", "w").await.unwrap().unwrap();
    q.update_job_progress_at(&running.id, running.attempt, json!({"percentage": 5}))
        .await
        .unwrap();
    let failed = q
        .fail_job_at(&running.id, running.attempt, "again")
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Pending);
    let back: Job = q.get_job(&job.id).await.unwrap();
    assert_eq!(
        back.params["fromTheFuture"],
        json!({ "v": 2, "list": [1, 2, 3] })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn junk_in_tmp_and_a_dead_instances_staging_dir_are_cleaned_at_open() {
    let (_tmp, dir) = fresh().await;
    std::fs::write(dir.join("tmp").join("stray"), b"junk").unwrap();
    let dead = dir.join("tmp").join("99999-deadbeef");
    std::fs::create_dir(&dead).unwrap();
    std::fs::write(dead.join("garbage-name"), b"x").unwrap();
    std::fs::write(
        dead.join(format!("{}.create.1", JobId::generate())),
        noop_job().to_json(),
    )
    .unwrap();
    let q = queue_at(&dir).await;
    assert_eq!(q.get_stats().await.unwrap().total(), 0);
    assert!(!dir.join("tmp").join("stray").exists());
    assert!(!dead.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_opens_of_one_dir_all_succeed() {
    // Several processes starting at once on one directory (two CLI commands,
    // a worker pool). Found by `hostile::two_processes_with_different_
    // durability_share_one_dir`: an opening store's recovery pass could
    // take the lock of another instance's staging directory in the moment
    // between its `mkdir` and its `flock`, and delete it.
    let (_tmp, dir) = fresh().await;
    let mut failures = Vec::new();
    for round in 0..100 {
        let opens: Vec<_> = (0..6)
            .map(|_| {
                let dir = dir.clone();
                tokio::spawn(async move { FsStore::open(&dir, support::opts()).await })
            })
            .collect();
        for open in opens {
            if let Err(e) = open.await.unwrap() {
                failures.push(format!("round {round}: {e}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failed opens, e.g. {}",
        failures.len(),
        failures[0]
    );
}
