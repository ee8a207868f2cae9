//! Integration tests of semiont-jobs-generation.

mod model;
mod offline;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use semiont_jobs_content::text::TextIndex;
use semiont_jobs_content::{
    install_samples, samples, Agent, Annotation, AnnotationId, AnnotationStore, Body, Completion,
    CompletionRequest, DataDir, FsAnnotationStore, FsResourceStore, InferenceClient, Motivation,
    OfflineInference, ResourceId, Target,
};
use semiont_jobs_model::{GenerationParams, Timestamp};

/// A data dir in a temp dir with the samples and one reference annotation
/// (`ref-zoe`, on the first "Zoë Müller" of the news sample, tagged Person).
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) data: DataDir,
    pub(crate) resources: Arc<FsResourceStore>,
    pub(crate) annotations: Arc<FsAnnotationStore>,
}

pub(crate) const SOURCE: &str = "news-helix-krakow";
pub(crate) const REFERENCE: &str = "ref-zoe";

impl Fixture {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let resources = Arc::new(data.resource_store().unwrap().durable(false));
        let annotations = Arc::new(data.annotation_store().unwrap().durable(false));
        install_samples(resources.as_ref()).await.unwrap();
        let fx = Fixture {
            _dir: dir,
            data,
            resources,
            annotations,
        };
        fx.add_reference(REFERENCE, SOURCE, "Zoë Müller", "Person")
            .await;
        fx
    }

    pub(crate) async fn add_reference(&self, id: &str, resource: &str, exact: &str, tag: &str) {
        let text = samples().iter().find(|s| s.id == resource).unwrap().text;
        let start = text.find(exact).unwrap();
        let mut a = Annotation::new(
            AnnotationId::parse(id).unwrap(),
            Motivation::Linking,
            Target {
                source: ResourceId::parse(resource).unwrap(),
                selector: TextIndex::new(text)
                    .selectors(start..start + exact.len())
                    .unwrap(),
            },
            Timestamp::now(),
        );
        a.creator = Some(Agent::software("test", "test"));
        a.body.push(Body::tag(tag));
        self.annotations.add(&a).await.unwrap();
    }

    pub(crate) async fn reference(&self) -> Annotation {
        self.annotations
            .get(
                &ResourceId::parse(SOURCE).unwrap(),
                &AnnotationId::parse(REFERENCE).unwrap(),
            )
            .await
            .unwrap()
    }
}

pub(crate) fn params() -> GenerationParams {
    GenerationParams {
        reference_id: REFERENCE.into(),
        source_resource_id: SOURCE.into(),
        ..Default::default()
    }
}

/// Counts calls, answering like the offline client.
#[derive(Debug, Default)]
pub(crate) struct Counting(pub(crate) AtomicUsize);

#[async_trait::async_trait]
impl InferenceClient for Counting {
    fn describe(&self) -> String {
        "counting offline".into()
    }
    async fn complete(
        &self,
        request: &CompletionRequest,
    ) -> semiont_jobs_content::Result<Completion> {
        self.0.fetch_add(1, Ordering::SeqCst);
        OfflineInference::new().complete(request).await
    }
}
