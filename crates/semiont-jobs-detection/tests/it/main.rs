//! Integration tests of semiont-jobs-detection.

mod chunks;
mod engine;
mod golden;
mod model;

use std::sync::Arc;

use semiont_jobs_content::text::TextIndex;
use semiont_jobs_content::{
    install_samples, Annotation, AnnotationStore, DataDir, FsAnnotationStore, FsResourceStore,
    MediaType, PutMode, Resource, ResourceId, ResourceStore,
};
use semiont_jobs_model::DetectionParams;

/// A data dir in a temp dir with the sample documents installed.
pub(crate) struct Fixture {
    _dir: tempfile::TempDir,
    pub(crate) data: DataDir,
    pub(crate) resources: Arc<FsResourceStore>,
    pub(crate) annotations: Arc<FsAnnotationStore>,
}

impl Fixture {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::new(dir.path());
        let resources = Arc::new(data.resource_store().unwrap().durable(false));
        let annotations = Arc::new(data.annotation_store().unwrap().durable(false));
        install_samples(resources.as_ref()).await.unwrap();
        Fixture {
            _dir: dir,
            data,
            resources,
            annotations,
        }
    }

    pub(crate) async fn add_doc(&self, id: &str, text: &str) {
        let r = Resource::new(
            ResourceId::parse(id).unwrap(),
            id,
            MediaType::PlainText,
            text,
        );
        self.resources.create(&r, PutMode::CreateNew).await.unwrap();
    }

    pub(crate) async fn annotations_of(&self, id: &str) -> Vec<Annotation> {
        self.annotations
            .list(&ResourceId::parse(id).unwrap())
            .await
            .unwrap()
    }
}

pub(crate) fn params(resource: &str, types: &[&str]) -> DetectionParams {
    DetectionParams {
        resource_id: resource.into(),
        entity_types: types.iter().map(|t| (*t).to_owned()).collect(),
    }
}

/// Checks the selector invariants of an annotation against its text:
/// code-point offsets select exactly the quote, and prefix/suffix are the
/// text around it.
pub(crate) fn assert_selectors_match(text: &str, a: &Annotation) {
    let idx = TextIndex::new(text);
    let p = a.target.position().expect("position selector");
    let q = a.target.quote().expect("quote selector");
    let (start, end) = (p.start as usize, p.end as usize);
    assert_eq!(idx.slice_chars(start..end), Some(q.exact.as_str()), "{a:?}");
    let chars: Vec<char> = text.chars().collect();
    let exact: String = chars[start..end].iter().collect();
    assert_eq!(exact, q.exact);
    let prefix: String = chars[start.saturating_sub(q.prefix.chars().count())..start]
        .iter()
        .collect();
    assert_eq!(prefix, q.prefix, "{a:?}");
    let suffix: String = chars[end..(end + q.suffix.chars().count()).min(chars.len())]
        .iter()
        .collect();
    assert_eq!(suffix, q.suffix, "{a:?}");
}
