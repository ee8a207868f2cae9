//! Engine behaviour: idempotency, progress, cancellation, errors.

use std::collections::BTreeSet;

use semiont_jobs_content::ProgressSink;
use semiont_jobs_detection::{Detector, Error, Recognizer};
use semiont_jobs_model::{DetectionProgress, JobId};
use tokio_util::sync::CancellationToken;

use crate::{params, Fixture};

fn detector(fx: &Fixture) -> Detector {
    Detector::offline(
        fx.resources.clone(),
        fx.annotations.clone(),
        Recognizer::new(),
    )
}

#[tokio::test]
async fn a_retried_job_emits_no_duplicates() {
    let fx = Fixture::new().await;
    let d = detector(&fx);
    let job = JobId::generate();
    let p = params("news-helix-krakow", &["Person", "Location"]);
    let first = d
        .run(&job, &p, &mut |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let ids: BTreeSet<String> = fx
        .annotations_of("news-helix-krakow")
        .await
        .into_iter()
        .map(|a| a.id.to_string())
        .collect();
    let second = d
        .run(&job, &p, &mut |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first, second);
    let again: BTreeSet<String> = fx
        .annotations_of("news-helix-krakow")
        .await
        .into_iter()
        .map(|a| a.id.to_string())
        .collect();
    assert_eq!(ids, again);
    assert_eq!(ids.len() as u64, first.total_emitted);
    // Another job gets its own ids.
    d.run(
        &JobId::generate(),
        &p,
        &mut |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        fx.annotations_of("news-helix-krakow").await.len(),
        2 * ids.len()
    );
}

#[tokio::test]
async fn annotations_are_w3c_linking_annotations_with_tagging_bodies() {
    let fx = Fixture::new().await;
    fx.add_doc("doc", "Zoë Müller moved to Kraków in 2021.")
        .await;
    let d = detector(&fx);
    d.run(
        &JobId::parse("job-fixed").unwrap(),
        &params("doc", &["Person"]),
        &mut |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let anns = fx.annotations_of("doc").await;
    assert_eq!(anns.len(), 1);
    let v = serde_json::to_value(&anns[0]).unwrap();
    assert_eq!(v["@context"], "http://www.w3.org/ns/anno.jsonld");
    assert_eq!(v["type"], "Annotation");
    assert_eq!(v["motivation"], "linking");
    assert_eq!(v["creator"]["type"], "Software");
    assert_eq!(v["target"]["source"], "doc");
    assert_eq!(
        v["target"]["selector"],
        serde_json::json!([
            {"type": "TextPositionSelector", "start": 0, "end": 10},
            {"type": "TextQuoteSelector", "exact": "Zoë Müller", "prefix": "", "suffix": " moved to Kraków in 2021."}
        ])
    );
    assert_eq!(
        v["body"],
        serde_json::json!([{"type": "TextualBody", "value": "Person", "purpose": "tagging"}])
    );
    // Deterministic id: a pure function of job, resource, type and span.
    let expected =
        semiont_jobs_content::AnnotationId::derive(&["job-fixed", "doc", "Person", "0", "10"]);
    assert_eq!(anns[0].id, expected);
}

#[tokio::test]
async fn progress_follows_the_seed_shape() {
    let fx = Fixture::new().await;
    let mut seen: Vec<DetectionProgress> = Vec::new();
    let result = detector(&fx)
        .run(
            &JobId::generate(),
            &params("minutes-aurora-board", &["Person", "Date", "Person"]),
            &mut |p| seen.push(p),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    // Duplicate types are done once.
    assert!(seen.iter().all(|p| p.total_entity_types == 2));
    assert_eq!(seen.first().unwrap().processed_entity_types, 0);
    assert_eq!(
        seen.first().unwrap().current_entity_type.as_deref(),
        Some("Person")
    );
    let last = seen.last().unwrap();
    assert_eq!(last.processed_entity_types, 2);
    assert_eq!(last.current_entity_type, None);
    assert_eq!(last.entities_found, result.total_found);
    assert_eq!(last.entities_emitted, result.total_emitted);
    for w in seen.windows(2) {
        assert!(w[1].processed_entity_types >= w[0].processed_entity_types);
        assert!(w[1].entities_emitted >= w[0].entities_emitted);
    }
    let v = serde_json::to_value(last).unwrap();
    assert_eq!(
        v.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        [
            "entitiesEmitted",
            "entitiesFound",
            "processedEntityTypes",
            "totalEntityTypes"
        ]
        .map(String::from)
        .into()
    );
}

/// A progress sink implemented by a job runtime's adapter (not a closure).
struct CancelAfterFirstType {
    cancel: CancellationToken,
    seen: Vec<DetectionProgress>,
}

#[async_trait::async_trait]
impl ProgressSink<DetectionProgress> for CancelAfterFirstType {
    async fn report(&mut self, p: DetectionProgress) {
        if p.processed_entity_types == 1 {
            self.cancel.cancel();
        }
        self.seen.push(p);
    }
}

#[tokio::test]
async fn cancellation_stops_within_one_entity_type() {
    let fx = Fixture::new().await;
    let cancel = CancellationToken::new();
    let mut sink = CancelAfterFirstType {
        cancel: cancel.clone(),
        seen: Vec::new(),
    };
    let e = detector(&fx)
        .run(
            &JobId::generate(),
            &params(
                "news-helix-krakow",
                &["Person", "Organization", "Location", "Date"],
            ),
            &mut sink,
            &cancel,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert_eq!(e.code(), "CANCELLED");
    assert!(!e.is_retryable());
    assert_eq!(sink.seen.last().unwrap().processed_entity_types, 1);
    let tags: BTreeSet<String> = fx
        .annotations_of("news-helix-krakow")
        .await
        .iter()
        .flat_map(|a| a.tags().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    assert_eq!(tags, BTreeSet::from(["Person".to_owned()]));
    // Cancelled before it starts: nothing is read or written.
    let e = detector(&fx)
        .run(
            &JobId::generate(),
            &params("travel-lisbon-porto", &["Person"]),
            &mut |_| {},
            &cancel,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }));
    assert!(fx.annotations_of("travel-lisbon-porto").await.is_empty());
}

#[tokio::test]
async fn unknown_types_count_as_errors_and_the_rest_goes_on() {
    let fx = Fixture::new().await;
    let r = detector(&fx)
        .run(
            &JobId::generate(),
            &params("abstract-andean-maize", &["Weapon", "person"]),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.errors, 1);
    assert!(r.total_found >= 4);
    // The tag is the type as the job spelled it.
    let anns = fx.annotations_of("abstract-andean-maize").await;
    assert!(anns.iter().all(|a| a.tags().eq(["person"])));
}

#[tokio::test]
async fn bad_input_is_a_permanent_error() {
    let fx = Fixture::new().await;
    let d = detector(&fx);
    let run = |p| {
        let d = d.clone();
        async move {
            d.run(
                &JobId::generate(),
                &p,
                &mut |_| {},
                &CancellationToken::new(),
            )
            .await
            .unwrap_err()
        }
    };
    let e = run(params("no-such-doc", &["Person"])).await;
    assert_eq!(e.code(), "NOT_FOUND");
    assert!(!e.is_retryable());
    let e = run(params("../etc/passwd", &["Person"])).await;
    assert_eq!(e.code(), "INVALID_INPUT");
    let e = run(params("news-helix-krakow", &[])).await;
    assert!(matches!(e, Error::InvalidParams(_)));
    let e = run(params("news-helix-krakow", &[" "])).await;
    assert!(matches!(e, Error::InvalidParams(_)));
}

#[test]
fn gazetteer_files_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("Instrument.txt");
    std::fs::write(&path, "# instruments\npiano\n\nPipe Organ\n").unwrap();
    let r = Recognizer::new().with_gazetteer_file(&path).unwrap();
    let text = "Piano, pipe organ and Pipe Organ.";
    let got: Vec<&str> = r
        .find(text, "instrument")
        .unwrap()
        .iter()
        .map(|m| &text[m.start..m.end])
        .collect();
    assert_eq!(got, ["Piano", "Pipe Organ"]);
    let e = Recognizer::new()
        .with_gazetteer_file(&dir.path().join("Missing.txt"))
        .unwrap_err();
    assert!(matches!(e, Error::Gazetteer { .. }));
    assert!(Recognizer::new()
        .with_gazetteer_dir(&dir.path().join("none"))
        .is_ok());
}
