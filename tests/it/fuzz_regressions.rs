//! Inputs found by the fuzz targets in `fuzz/` (`cargo xtask fuzz`), kept
//! as regular tests: each replays a target's checks on the input (and, for
//! the stateful `job_json` target, on the inputs run before it).

use std::path::Path;

use semiont_jobs_model::{Job, JobId, JobStatus};
use semiont_jobs_store::{ErrorKind, JobStore};
use semiont_jobs_store_fs::FsStore;

use crate::support::{self, fresh};

/// The `job_json` target's backend check, on one store, for a sequence of
/// inputs: each is dropped into `<status>/job-fuzz.json` (status by length),
/// then a rescan counts it exactly when a read can return it; after it is
/// removed, a rescan forgets it.
pub(crate) async fn job_json_sequence(inputs: &[&[u8]]) {
    let (_tmp, dir) = fresh().await;
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    let id = JobId::parse("job-fuzz").unwrap();
    for (i, data) in inputs.iter().enumerate() {
        if let Ok(job) = Job::from_json(data) {
            assert_eq!(
                Job::from_json(&job.to_json()).unwrap(),
                job,
                "input {i}: round trip"
            );
        }
        let status = JobStatus::ALL[data.len() % 5];
        std::fs::write(dir.join(status.as_str()).join("job-fuzz.json"), data).unwrap();
        store.rescan().await.unwrap();
        let indexed = store.stats().await.unwrap().total();
        let got = store.get(&id).await;
        if let Err(e) = &got {
            assert!(
                matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::NotFound),
                "{e}"
            );
        }
        if !known_disagreement(data) {
            assert_eq!(
                indexed == 1,
                got.is_ok(),
                "input {i} in {status}/: the scan counted {indexed} but a read gave {got:?}"
            );
        }
        for s in JobStatus::ALL {
            let _ = std::fs::remove_file(dir.join(s.as_str()).join("job-fuzz.json"));
        }
        clear(&dir.join("quarantine"));
        store.rescan().await.unwrap();
        assert_eq!(
            store.stats().await.unwrap().total(),
            0,
            "input {i}: forgotten"
        );
    }
}

/// The inputs the `job_json` target skips (as its `known_disagreement`):
/// the two store-fs bugs that have their own failing tests below.
fn known_disagreement(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return true;
    };
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|v| v.get("maxRetries").is_some_and(serde_json::Value::is_null))
}

fn clear(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let _ = std::fs::remove_file(e.path());
    }
}

/// The seeds of `fuzz/corpus/job_json`, in the order libFuzzer first runs
/// them (by size), after an empty input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_json_seed_sequence() {
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/job_json");
    let mut files: Vec<_> = std::fs::read_dir(&seeds)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort_by_key(|p| (std::fs::metadata(p).unwrap().len(), p.clone()));
    let data: Vec<Vec<u8>> = std::iter::once(Vec::new())
        .chain(files.iter().map(|p| std::fs::read(p).unwrap()))
        .collect();
    let inputs: Vec<&[u8]> = data.iter().map(Vec::as_slice).collect();
    job_json_sequence(&inputs).await;
}

/// `params` crash: a float with a long mantissa read back 1 ULP off after a
/// write and a read (fixed with serde_json's `float_roundtrip`).
#[test]
fn params_long_float_survives_a_round_trip() {
    let text = r#"{"a":[8888888888888888888888888888888888883e10,{"b":null,"c":true}],"s":"\u00e9\ru}]n"}"#;
    let value: serde_json::Value = serde_json::from_str(text).unwrap();
    let job = semiont_jobs_model::NewJob::custom("noop", "u", value)
        .unwrap()
        .into_job(JobId::generate(), semiont_jobs_model::Timestamp::now(), 3)
        .unwrap();
    assert_eq!(Job::from_json(&job.to_json()).unwrap(), job);
}

/// A job file in `status/` as `job-fuzz.json`: after a rescan, the index
/// counts it exactly when a read returns it.
async fn scan_and_read_agree(status: JobStatus, bytes: &[u8]) {
    let (_tmp, dir) = fresh().await;
    let store = FsStore::open(&dir, support::opts()).await.unwrap();
    std::fs::write(dir.join(status.as_str()).join("job-fuzz.json"), bytes).unwrap();
    store.rescan().await.unwrap();
    let indexed = store.stats().await.unwrap().total();
    let got = store.get(&JobId::parse("job-fuzz").unwrap()).await;
    assert_eq!(
        indexed == 1,
        got.is_ok(),
        "the scan counted {indexed} job(s) but a read gave {got:?}"
    );
}

/// `job_json` crash (store-fs bug, reported): an unknown field whose string
/// holds a byte that is not UTF-8. The scan's quick parse skips unknown
/// fields without checking their UTF-8 and indexes the job; the full parse
/// rejects the file, so `stats` counts a job no read can return (until the
/// first read quarantines it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_scan_indexes_a_job_file_with_invalid_utf8_in_an_unknown_field() {
    // A running job (the fuzzer dropped it into running/).
    let bytes = include_bytes!("fuzz_job_json_invalid_utf8.bin");
    scan_and_read_agree(JobStatus::Running, bytes).await;
}

/// The same disagreement, found while reducing the one above (store-fs
/// bug, reported): `"maxRetries": null` passes the scan's quick parse (an
/// `Option<u32>` there) but not the full parse (`u32` with a default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_scan_indexes_a_job_file_with_null_max_retries() {
    let text = r#"{"id":"job-fuzz","type":"noop","status":"pending","userId":"u","created":"2026-01-01T00:00:00.000Z","maxRetries":null}"#;
    scan_and_read_agree(JobStatus::Pending, text.as_bytes()).await;
}
