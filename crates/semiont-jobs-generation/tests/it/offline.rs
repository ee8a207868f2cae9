//! Offline generation end to end, idempotency and cancellation.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use semiont_jobs_content::{ProgressSink, ResourceId, ResourceStore};
use semiont_jobs_generation::{Error, Generator};
use semiont_jobs_model::{GenerationParams, GenerationProgress, GenerationStage, JobId};
use tokio_util::sync::CancellationToken;

use crate::{params, Counting, Fixture, SOURCE};

#[tokio::test]
async fn generates_stores_and_links_a_document() {
    let fx = Fixture::new().await;
    let generator = Generator::offline(fx.resources.clone(), fx.annotations.clone());
    let job = JobId::generate();
    let mut seen: Vec<GenerationProgress> = Vec::new();
    let result = generator
        .run(
            &job,
            &params(),
            &mut |p| seen.push(p),
            &CancellationToken::new(),
        )
        .await
        .unwrap();

    assert_eq!(
        result.resource_id,
        Generator::resource_id_for(&job).as_str()
    );
    assert!(result.resource_id.starts_with("gen-"));
    assert_eq!(result.resource_name, "Zoë Müller");
    let doc = fx
        .resources
        .get(&ResourceId::parse(&result.resource_id).unwrap())
        .await
        .unwrap();
    assert_eq!(doc.name, "Zoë Müller");
    assert_eq!(doc.language.as_deref(), Some("en"));
    assert_eq!(doc.media_type.as_str(), "text/markdown");
    assert_eq!(doc.extra["generatedFrom"]["annotationId"], "ref-zoe");
    let text = &doc.text;
    assert!(text.starts_with("# Zoë Müller\n"), "{text}");
    assert!(
        text.contains(
            "_Person · Generated from “Helix Dynamics to open research centre in Kraków”_"
        ),
        "{text}"
    );
    // The summary holds the referenced sentence with its neighbours.
    assert!(
        text.contains("## Summary\n\nConstruction is expected to begin in June 2024"),
        "{text}"
    );
    assert!(text.contains("2025. \"Kraków has one of the deepest pools of engineering talent in Europe,\" said Zoë Müller"), "{text}");
    // Other sentences about her, by full name or surname.
    assert!(
        text.contains("- Helix Dynamics was founded in 2011 by Zoë Müller and Tobias Kessler"),
        "{text}"
    );
    assert!(
        text.contains("- Müller said the company had looked at sites"),
        "{text}"
    );
    assert!(
        text.contains("[Helix Dynamics to open research centre in Kraków](news-helix-krakow)"),
        "{text}"
    );

    // The reference now links to the new document.
    let reference = fx.reference().await;
    assert_eq!(
        reference.links().collect::<Vec<_>>(),
        [result.resource_id.as_str()]
    );
    assert!(reference.modified.is_some());
    assert_eq!(reference.tags().collect::<Vec<_>>(), ["Person"]);

    // Stages in order, percentages never going back.
    let stages: Vec<GenerationStage> = seen.iter().map(|p| p.stage).collect();
    let mut distinct = stages.clone();
    distinct.dedup();
    assert_eq!(
        distinct,
        [
            GenerationStage::Fetching,
            GenerationStage::Generating,
            GenerationStage::Creating,
            GenerationStage::Linking
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].percentage <= w[1].percentage));
    assert_eq!(seen.last().unwrap().percentage, 100.0);
    let v = serde_json::to_value(&seen[0]).unwrap();
    assert_eq!(v["stage"], "fetching");
}

#[tokio::test]
async fn job_parameters_shape_the_document() {
    let fx = Fixture::new().await;
    let generator = Generator::offline(fx.resources.clone(), fx.annotations.clone());
    let p = GenerationParams {
        title: Some("Zoë Müller, Unternehmerin".into()),
        prompt: Some("Schwerpunkt: ihre Firma.".into()),
        language: Some("de".into()),
        entity_types: Some(vec!["Person".into(), "Executive".into()]),
        ..params()
    };
    let r = generator
        .run(
            &JobId::generate(),
            &p,
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(r.resource_name, "Zoë Müller, Unternehmerin");
    let doc = fx
        .resources
        .get(&ResourceId::parse(&r.resource_id).unwrap())
        .await
        .unwrap();
    assert_eq!(doc.language.as_deref(), Some("de"));
    assert!(
        doc.text.starts_with("# Zoë Müller, Unternehmerin\n"),
        "{}",
        doc.text
    );
    assert!(
        doc.text.contains("_Person, Executive · Erstellt aus"),
        "{}",
        doc.text
    );
    assert!(
        doc.text
            .contains("## Gewünschter Schwerpunkt\n\nSchwerpunkt: ihre Firma."),
        "{}",
        doc.text
    );
}

#[tokio::test]
async fn rerunning_a_job_creates_no_second_resource() {
    let fx = Fixture::new().await;
    let client = Arc::new(Counting::default());
    let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), client.clone());
    let job = JobId::generate();
    let first = generator
        .run(&job, &params(), &mut |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    let second = generator
        .run(&job, &params(), &mut |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(first, second);
    assert_eq!(
        client.0.load(Ordering::SeqCst),
        1,
        "the second run reuses the document"
    );
    let generated: Vec<_> = fx
        .resources
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.id.as_str().starts_with("gen-"))
        .collect();
    assert_eq!(generated.len(), 1);
    assert_eq!(fx.reference().await.links().count(), 1);
    // A different job makes its own document and adds its own link.
    generator
        .run(
            &JobId::generate(),
            &params(),
            &mut |_| {},
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(fx.reference().await.links().count(), 2);
}

/// Cancels once the document is stored: simulates a crash before linking.
struct CancelAfterCreating(CancellationToken);

#[async_trait::async_trait]
impl ProgressSink<GenerationProgress> for CancelAfterCreating {
    async fn report(&mut self, p: GenerationProgress) {
        if p.stage == GenerationStage::Creating && p.percentage >= 85.0 {
            self.0.cancel();
        }
    }
}

#[tokio::test]
async fn a_run_interrupted_before_linking_resumes_without_regenerating() {
    let fx = Fixture::new().await;
    let client = Arc::new(Counting::default());
    let generator = Generator::new(fx.resources.clone(), fx.annotations.clone(), client.clone());
    let job = JobId::generate();
    let cancel = CancellationToken::new();
    let e = generator
        .run(
            &job,
            &params(),
            &mut CancelAfterCreating(cancel.clone()),
            &cancel,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }), "{e}");
    assert_eq!(e.code(), "CANCELLED");
    assert!(fx
        .resources
        .get(&Generator::resource_id_for(&job))
        .await
        .is_ok());
    assert_eq!(fx.reference().await.links().count(), 0);

    let r = generator
        .run(&job, &params(), &mut |_| {}, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(client.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        fx.reference().await.links().collect::<Vec<_>>(),
        [r.resource_id.as_str()]
    );
}

#[tokio::test]
async fn cancelled_before_start_does_nothing() {
    let fx = Fixture::new().await;
    let generator = Generator::offline(fx.resources.clone(), fx.annotations.clone());
    let cancel = CancellationToken::new();
    cancel.cancel();
    let job = JobId::generate();
    let e = generator
        .run(&job, &params(), &mut |_| {}, &cancel)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Cancelled { .. }));
    assert!(fx
        .resources
        .get(&Generator::resource_id_for(&job))
        .await
        .is_err());
}

#[tokio::test]
async fn bad_references_are_permanent_errors() {
    let fx = Fixture::new().await;
    let generator = Generator::offline(fx.resources.clone(), fx.annotations.clone());
    let run = |p: GenerationParams| {
        let g = generator.clone();
        async move {
            g.run(
                &JobId::generate(),
                &p,
                &mut |_| {},
                &CancellationToken::new(),
            )
            .await
            .unwrap_err()
        }
    };
    let e = run(GenerationParams {
        reference_id: "ref-missing".into(),
        ..params()
    })
    .await;
    assert_eq!(e.code(), "NOT_FOUND");
    assert!(!e.is_retryable());
    let e = run(GenerationParams {
        source_resource_id: "no-such-doc".into(),
        ..params()
    })
    .await;
    assert_eq!(e.code(), "NOT_FOUND");
    let e = run(GenerationParams {
        reference_id: "../x".into(),
        ..params()
    })
    .await;
    assert_eq!(e.code(), "INVALID_INPUT");
    // A reference whose quote is not in the source (annotation of another text).
    fx.add_reference(
        "ref-elsewhere",
        "biography-tomas-ribeiro",
        "Tomás Ribeiro",
        "Person",
    )
    .await;
    let dir = fx.data.annotations_dir();
    std::fs::copy(
        dir.join("biography-tomas-ribeiro/ref-elsewhere.json"),
        dir.join(format!("{SOURCE}/ref-elsewhere.json")),
    )
    .unwrap();
    let raw = std::fs::read_to_string(dir.join(format!("{SOURCE}/ref-elsewhere.json"))).unwrap();
    std::fs::write(
        dir.join(format!("{SOURCE}/ref-elsewhere.json")),
        raw.replace(
            "\"source\": \"biography-tomas-ribeiro\"",
            &format!("\"source\": \"{SOURCE}\""),
        ),
    )
    .unwrap();
    let e = run(GenerationParams {
        reference_id: "ref-elsewhere".into(),
        ..params()
    })
    .await;
    assert!(matches!(e, Error::UnresolvableReference { .. }), "{e}");
    assert!(!e.is_retryable());
}
