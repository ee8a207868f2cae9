//! Golden tests: every JSON-shaped example of the seed's API reference
//! (transcribed to JSON in `tests/golden/`) parses into the model's types and
//! writes back equivalently.

use std::path::Path;

use semiont_jobs_model::{
    DetectionProgress, DetectionResult, GenerationProgress, GenerationResult, GenerationStage, Job,
    JobFilter, JobStatus, JobType, NewJob, Progress, QueueStats, Timestamp,
};
use serde_json::Value;

fn golden(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Numbers compare by value: `50` and `50.0` are the same JSON number.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_json(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str) -> T {
    let v = golden(name);
    let typed: T = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert!(same_json(&v, &back), "{name}: wrote back {back}");
    typed
}

#[test]
fn create_job_request() {
    let v = golden("create-detection-request.json");
    let new = NewJob::detection(
        v["userId"].as_str().unwrap(),
        v["resourceId"].as_str().unwrap(),
        ["Person", "Organization"],
    )
    .max_retries(3);
    let job = new
        .into_job(semiont_jobs_model::JobId::generate(), Timestamp::now(), 3)
        .unwrap();
    let written = serde_json::to_value(&job).unwrap();
    for (key, value) in v.as_object().unwrap() {
        assert_eq!(&written[key], value, "field {key}");
    }
    assert_eq!(job.status, JobStatus::Pending);
    assert!(job.id.as_str().starts_with("job-"));
}

#[test]
fn generic_progress_shapes() {
    let p: Progress = round_trips("progress-generic.json");
    assert_eq!((p.current_step, p.total_steps), (Some(2), Some(4)));
    let p: Progress = round_trips("progress-items.json");
    assert_eq!((p.current_item, p.total_items), (Some(4), Some(10)));
}

#[test]
fn custom_result() {
    let v: Value = round_trips("result-custom.json");
    assert_eq!(v["totalProcessed"], 100);
}

#[test]
fn list_filter() {
    let f: JobFilter = round_trips("list-filter.json");
    assert_eq!(f.status, Some(JobStatus::Pending));
    assert_eq!(f.job_type, Some(JobType::Detection));
    assert_eq!((f.limit, f.offset), (10, 0));
    let defaults: JobFilter = serde_json::from_str("{}").unwrap();
    assert_eq!(defaults.limit, 100);
}

#[test]
fn stats() {
    let v = golden("stats.json");
    let s: QueueStats = serde_json::from_value(v).unwrap();
    assert_eq!(s.total(), 111);
    assert_eq!(s.unreadable, 0);
}

#[test]
fn detection_job_documents() {
    let job: Job = round_trips("detection-job.json");
    let p: DetectionProgress = job.progress_as().unwrap().unwrap();
    assert_eq!(p.current_entity_type.as_deref(), Some("Organization"));
    assert_eq!(job.detection_params().unwrap().resource_id, "doc-456");
    let job: Job = round_trips("detection-job-complete.json");
    let r: DetectionResult = job.result_as().unwrap().unwrap();
    assert_eq!(r.total_found, 12);
}

#[test]
fn generation_job_document() {
    let job: Job = round_trips("generation-job.json");
    let params = job.generation_params().unwrap();
    assert_eq!(params.language.as_deref(), Some("en"));
    let p: GenerationProgress = job.progress_as().unwrap().unwrap();
    assert_eq!(p.stage, GenerationStage::Linking);
    let r: GenerationResult = job.result_as().unwrap().unwrap();
    assert_eq!(r.resource_id, "gen-987");
}

#[test]
fn failed_job_with_offsets_in_timestamps() {
    let v = golden("failed-job.json");
    let job: Job = serde_json::from_value(v).unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(
        job.completed_at.unwrap().to_string(),
        "2024-01-15T10:35:00.000Z"
    );
    assert_eq!(job.job_type.as_str(), "my-job-type");
}
